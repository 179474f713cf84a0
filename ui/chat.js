// The conversation view and the composer. Model text is only ever inserted as text
// (textContent), never as HTML.

/** @typedef {import("./bridge.js").Bridge} Bridge */

export class ChatView {
  /**
   * @param {Bridge} bridge
   * @param {{messages: HTMLElement, empty: HTMLElement, form: HTMLFormElement,
   *          input: HTMLTextAreaElement, send: HTMLButtonElement, stop: HTMLButtonElement,
   *          chips: HTMLElement}} el
   */
  constructor(bridge, el) {
    this.bridge = bridge;
    this.el = el;
    this.streaming = false;
    /** @type {Map<number, {row: HTMLElement, body: HTMLElement, meta: HTMLElement, text: string}>} */
    this.replies = new Map();
    this.pendingEcho = null; // text we showed before the core's reply_started
    this.characterName = "Companion";

    el.form.addEventListener("submit", (e) => { e.preventDefault(); this.submit(); });
    el.input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); this.submit(); }
      if (e.key === "Escape" && this.streaming) { e.preventDefault(); this.requestStop(); }
    });
    el.input.addEventListener("input", () => this.autosize());
    el.stop.addEventListener("click", () => this.requestStop());
    el.chips.addEventListener("click", (e) => {
      const chip = /** @type {HTMLElement} */ (e.target).closest(".chip");
      if (chip) { el.input.value = chip.textContent; this.submit(); }
    });

    bridge.on("reply_started", (m) => this.started(m));
    bridge.on("assistant_delta", (m) => this.delta(m));
    bridge.on("reply_done", (m) => this.finished(m, "done"));
    bridge.on("reply_stopped", (m) => this.finished(m, "stopped"));
    bridge.on("reply_error", (m) => this.finished(m, "error"));
    bridge.on("memory_note", (m) => this.memoryNote(m));
    bridge.on("error", (m) => {
      if (m.ref_type === "user_message") { this.notice(m.message); this.setStreaming(false); }
    });
  }

  setCharacter(name) { this.characterName = name; }

  submit() {
    const text = this.el.input.value.trim();
    if (!text || this.streaming) return;
    if (!this.bridge.send({ type: "user_message", text })) {
      this.notice("Not connected to Companion yet. Your message is still in the box.");
      return;
    }
    this.el.input.value = "";
    this.autosize();
    this.addUser(text);
    this.pendingEcho = text;
    this.setStreaming(true);
  }

  requestStop() {
    this.bridge.send({ type: "stop" });
    this.el.stop.disabled = true;
  }

  autosize() {
    const t = this.el.input;
    t.style.height = "auto";
    t.style.height = Math.min(t.scrollHeight, 220) + "px";
  }

  /** @param {boolean} on */
  setStreaming(on) {
    this.streaming = on;
    this.el.send.hidden = on;
    this.el.stop.hidden = !on;
    this.el.stop.disabled = false;
    document.body.classList.toggle("is-streaming", on);
  }

  nearBottom() {
    const m = this.el.messages;
    return m.scrollHeight - m.scrollTop - m.clientHeight < 80;
  }

  scroll(force = false) {
    if (force || this.stick) this.el.messages.scrollTop = this.el.messages.scrollHeight;
  }

  hideEmpty() { this.el.empty.hidden = true; }

  addUser(text) {
    this.hideEmpty();
    const row = div("msg msg-user");
    const bubble = div("bubble");
    bubble.textContent = text;
    row.append(bubble);
    this.el.messages.append(row);
    this.scroll(true);
  }

  started(m) {
    if (this.pendingEcho === null || this.pendingEcho !== m.text) this.addUser(m.text); // another window sent it
    this.pendingEcho = null;
    this.setStreaming(true);
    const row = div("msg msg-bot is-streaming");
    row.dataset.turn = String(m.turn);
    const who = div("who");
    who.textContent = this.characterName;
    const body = div("bubble");
    const meta = div("meta");
    const typing = div("typing");
    typing.append(div("dot"), div("dot"), div("dot"));
    body.append(typing);
    row.append(who, body, meta);
    this.el.messages.append(row);
    this.replies.set(m.turn, { row, body, meta, text: "" });
    this.scroll(true);
  }

  delta(m) {
    const r = this.replies.get(m.turn);
    if (!r) return;
    this.stick = this.nearBottom();
    if (!r.text) r.body.textContent = "";
    r.text += m.text;
    r.body.textContent = r.text;
    this.scroll();
  }

  finished(m, how) {
    const r = this.replies.get(m.turn);
    this.setStreaming(false);
    if (!r) return;
    this.stick = this.nearBottom();
    r.row.classList.remove("is-streaming");
    r.row.classList.add(`is-${how}`);
    if (!r.text) r.body.textContent = how === "error" ? "" : "…";
    if (!r.text && how === "error") r.body.remove();
    const parts = [];
    if (how === "stopped") parts.push("stopped");
    const s = m.stats || {};
    const tokens = s.generated_tokens ?? s.tokens;
    const rate = s.decode_tok_per_s ?? s.tok_per_s;
    if (typeof tokens === "number") parts.push(`${tokens} tokens`);
    if (typeof rate === "number" && rate > 0) parts.push(`${rate.toFixed(1)} tok/s`);
    if (typeof s.engine === "string") parts.push(s.engine);
    r.meta.textContent = parts.join(" · ");
    if (how === "error") {
      const err = div("msg-error");
      err.textContent = m.error;
      r.row.append(err);
    }
    this.scroll();
    this.el.input.focus();
  }

  /** Show a stored conversation (welcome.history) in an empty view. */
  restore(lines) {
    if (!lines?.length || this.el.messages.querySelector(".msg")) return;
    for (const line of lines) {
      if (line.role === "user") { this.addUser(line.text); continue; }
      this.hideEmpty();
      const row = div(`msg msg-bot is-${line.status === "interrupted" ? "stopped" : "done"}`);
      const who = div("who");
      who.textContent = this.characterName;
      const body = div("bubble");
      body.textContent = line.text || "…";
      const meta = div("meta");
      if (line.status === "interrupted") meta.textContent = "interrupted";
      row.append(who, body, meta);
      this.el.messages.append(row);
    }
    this.scroll(true);
  }

  /**
   * A small "remembered: …" / "forgot: …" marker after the user's message (before the reply
   * of its turn), with an Undo button that sends memory_undo; "undone: …" after an undo.
   * @param {{turn: number, action: string, text: string, undo_id: number}} m
   */
  memoryNote(m) {
    this.hideEmpty();
    const row = div(`memory-note is-${m.action}`);
    const label = document.createElement("span");
    label.textContent = `${m.action}: ${m.text}`;
    row.append(label);
    if (m.undo_id > 0) {
      const undo = document.createElement("button");
      undo.type = "button";
      undo.className = "link-btn";
      undo.textContent = "Undo";
      undo.addEventListener("click", () => {
        if (this.bridge.send({ type: "memory_undo", undo_id: m.undo_id })) {
          undo.disabled = true;
          row.classList.add("is-reverted");
        }
      });
      row.append(undo);
    }
    const reply = this.replies.get(m.turn);
    if (reply) reply.row.before(row);
    else this.el.messages.append(row);
    this.scroll(true);
  }

  notice(text) {
    this.hideEmpty();
    const row = div("msg msg-notice");
    row.textContent = text;
    this.el.messages.append(row);
    this.scroll(true);
  }

  clear() {
    for (const node of [...this.el.messages.children]) if (node !== this.el.empty) node.remove();
    this.replies.clear();
    this.el.empty.hidden = false;
    this.setStreaming(false);
  }
}

function div(cls) {
  const d = document.createElement("div");
  d.className = cls;
  return d;
}
