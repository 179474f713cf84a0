// The model picker in the settings drawer: every model the core knows (built in, and added
// with `companion model add`), what each needs and whether it fits this machine, and the
// model's own settings (context length, chat template). model_list / model_use /
// model_configure go to the core; it answers `models` (or an error shown inline).

const MIB = 1 << 20;

/** "214 MiB" / "1.2 GiB" */
function bytes(n) {
  if (n == null) return "";
  if (n < MIB) return `${Math.max(1, Math.round(n / 1024))} KiB`;
  return n >= 1024 * MIB ? `${(n / (1024 * MIB)).toFixed(1)} GiB` : `${Math.round(n / MIB)} MiB`;
}

/** "135M" / "1.2B" parameters */
function params(n) {
  if (n < 1e6) return `${Math.max(1, Math.round(n / 1e3))}K`;
  return n >= 1e9 ? `${(n / 1e9).toFixed(1)}B` : `${Math.round(n / 1e6)}M`;
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
}

export class ModelPicker {
  /**
   * @param {import("./bridge.js").Bridge} bridge
   * @param {HTMLElement} root  where the picker is drawn
   */
  constructor(bridge, root) {
    this.bridge = bridge;
    this.root = root;
    this.items = [];
    this.switching = null;
    this.open = null; // the model whose own settings are shown
    this.note = el("p", "drawer-note");
    this.note.setAttribute("role", "status");
    bridge.on("models", (m) => {
      this.root.hidden = false;
      this.items = m.items || [];
      this.switching = m.switching || null;
      if (!this.switching && this.note.dataset.pending) { this.note.textContent = ""; delete this.note.dataset.pending; }
      this.render();
    });
    bridge.on("error", (m) => {
      if (m.ref_type === "model_list" && m.code === "unavailable") { this.root.hidden = true; return; }
      if (["model_use", "model_configure", "model_list"].includes(m.ref_type)) {
        this.note.textContent = m.message;
        this.note.classList.add("is-error");
        delete this.note.dataset.pending;
        this.render();
      }
    });
    bridge.on("engine_status", (m) => {
      if (this.switching && m.phase === "ready") { this.switching = null; this.refresh(); }
    });
  }

  refresh() { this.bridge.send({ type: "model_list" }); }

  render() {
    const list = el("div", "model-list");
    list.setAttribute("role", "radiogroup");
    list.setAttribute("aria-label", "Model");
    for (const m of this.items) list.append(this.card(m));
    if (!this.items.length) list.append(el("p", "drawer-note", "No models are known yet."));
    const head = el("div", "field-head");
    head.append(el("span", "field-label", "Model"));
    const hint = el("span", "field-hint", "Add more with companion model add PATH.gguf; each shows what it needs here.");
    this.root.replaceChildren(head, list, hint, this.note);
  }

  /** One model: name, shape, memory, whether it runs here; its own settings when open. */
  card(m) {
    const card = el("div", "model-card");
    card.dataset.name = m.name;
    if (m.in_use) card.classList.add("is-current");
    if (!m.runs) card.classList.add("is-unrunnable");
    const top = el("div", "model-top");
    const pick = document.createElement("input");
    pick.type = "radio";
    pick.name = "model";
    pick.value = m.name;
    pick.checked = this.switching ? this.switching === m.name : m.in_use;
    pick.disabled = !m.runs || !!this.switching;
    pick.setAttribute("aria-label", `Use ${m.name}`);
    pick.addEventListener("change", () => this.use(m.name));
    const title = el("span", "model-name", m.name);
    const badge = this.switching === m.name ? el("span", "model-badge", "loading…")
      : m.in_use ? el("span", "model-badge", "in use") : null;
    top.append(pick, title);
    if (badge) top.append(badge);
    const more = el("button", "model-more", this.open === m.name ? "Close" : "Options");
    more.type = "button";
    more.setAttribute("aria-expanded", String(this.open === m.name));
    more.addEventListener("click", () => { this.open = this.open === m.name ? null : m.name; this.render(); });
    top.append(more);
    card.append(top);
    const shape = [m.arch, m.file_type, params(m.parameters), `${m.run_context.toLocaleString()} tokens`,
      m.can_chat ? "" : "base model"].filter(Boolean).join(" · ");
    card.append(el("div", "model-shape", shape));
    const mem = [m.gpu_bytes != null ? `GPU ≈ ${bytes(m.gpu_bytes)}` : "", m.cpu_bytes ? `CPU ≈ ${bytes(m.cpu_bytes)}` : ""]
      .filter(Boolean).join(" · ");
    if (mem) card.append(el("div", "model-mem", mem));
    if (m.reason) card.append(el("div", m.runs ? "model-reason" : "model-reason is-error", m.runs ? m.reason : `Cannot run here: ${m.reason}`));
    if (this.open === m.name) card.append(this.options(m));
    return card;
  }

  /** The model's own context length and chat template. */
  options(m) {
    const form = el("div", "model-options");
    const ctxLabel = el("label", "field field-number");
    const ctxHead = el("span", "field-head");
    ctxHead.append(el("span", "field-label", "Context length"));
    const ctx = document.createElement("input");
    ctx.type = "number";
    ctx.min = "64";
    ctx.max = String(m.max_context);
    ctx.step = "64";
    ctx.name = "context_length";
    ctx.placeholder = `general setting (${m.run_context})`;
    ctx.value = m.context_length ?? "";
    ctxLabel.append(ctxHead, ctx, el("span", "field-hint", `Tokens it remembers of the conversation, up to ${m.max_context.toLocaleString()}. Longer takes more memory.`));
    const tLabel = el("label", "field field-select");
    const tHead = el("span", "field-head");
    tHead.append(el("span", "field-label", "Chat template"));
    const sel = document.createElement("select");
    sel.name = "chat_template";
    for (const [v, t] of [["auto", "The file's own"], ["chatml", "ChatML"], ["custom", "Custom…"]]) sel.append(new Option(t, v, false, v === m.chat_template));
    const text = document.createElement("textarea");
    text.name = "template_text";
    text.rows = 5;
    text.spellcheck = false;
    text.placeholder = "{% for message in messages %}…{% endfor %}";
    text.hidden = sel.value !== "custom";
    sel.addEventListener("change", () => { text.hidden = sel.value !== "custom"; });
    tLabel.append(tHead, sel, text, el("span", "field-hint", "How a conversation is written for this model (jinja, run in a sandbox)."));
    const save = el("button", "model-save", "Save");
    save.type = "button";
    save.addEventListener("click", () => {
      const msg = { type: "model_configure", name: m.name, reset: [] };
      const n = ctx.value.trim();
      if (n === "") msg.reset.push("context_length");
      else msg.context_length = Math.trunc(Number(n));
      if (sel.value === "auto") msg.reset.push("chat_template");
      else if (sel.value === "chatml") msg.chat_template = "chatml";
      else if (text.value.trim()) msg.chat_template = text.value;
      else if (m.chat_template !== "custom") { this.say("Write the template first, or choose another one.", true); return; }
      this.say(m.in_use ? "Saved; reloading the model…" : "Saved", false, m.in_use);
      this.bridge.send(msg);
    });
    form.append(ctxLabel, tLabel, save);
    return form;
  }

  use(name) {
    this.switching = name;
    this.say(`Loading ${name}…`, false, true);
    this.render();
    this.bridge.send({ type: "model_use", name });
  }

  say(text, error = false, pending = false) {
    this.note.textContent = text;
    this.note.classList.toggle("is-error", error);
    if (pending) this.note.dataset.pending = "1";
  }
}
