// The settings drawer: edits the subset of Settings the core marks editable and sends
// settings_set; the core answers with the full settings (or an error shown inline).

/** Controls for the known settings; unknown editable ones are skipped. */
const FIELDS = [
  { key: "temperature", label: "Temperature", hint: "Higher is more adventurous; 0 always picks the likeliest word.", kind: "range", min: 0, max: 2, step: 0.05 },
  { key: "top_p", label: "Top-p", hint: "Keep the likeliest words that add up to this probability.", kind: "range", min: 0.05, max: 1, step: 0.01 },
  { key: "top_k", label: "Top-k", hint: "Consider at most this many words (0 = no limit).", kind: "range", min: 0, max: 200, step: 1 },
  { key: "min_p", label: "Min-p", hint: "Drop words far less likely than the best one.", kind: "range", min: 0, max: 0.5, step: 0.01 },
  { key: "repeat_penalty", label: "Repetition penalty", hint: "Discourage repeating recent words (1 = off).", kind: "range", min: 1, max: 2, step: 0.01 },
  { key: "max_new_tokens", label: "Longest reply", hint: "In tokens (about ¾ of a word each).", kind: "number", min: 1, max: 8192, step: 1 },
  { key: "seed", label: "Seed", hint: "Same seed, same reply. Empty for a new one each time.", kind: "seed" },
  { key: "engine", label: "Engine", hint: "Where the model runs. Auto picks the GPU in this window when it can.", kind: "select", options: ["auto", "browser", "native", "reference"] },
  { key: "memory_enabled", label: "Long-term memory", hint: "Remember facts from conversations.", kind: "toggle" },
  { key: "pet_mode", label: "Pet mode", hint: "Show only the avatar on the desktop; click it to chat.", kind: "toggle" },
  { key: "muted", label: "Mute", hint: "Silence the app's sounds.", kind: "toggle" },
];

export class SettingsDrawer {
  /**
   * @param {import("./bridge.js").Bridge} bridge
   * @param {HTMLFormElement} form
   * @param {HTMLElement} note
   */
  constructor(bridge, form, note) {
    this.bridge = bridge;
    this.form = form;
    this.note = note;
    this.values = {};
    this.timer = 0;
    this.pending = {};
    bridge.on("settings", (m) => this.render(m.values, m.editable));
    bridge.on("error", (m) => {
      if (m.ref_type === "settings_set") { this.note.textContent = m.message; this.note.classList.add("is-error"); this.render(this.values, this.editable); }
    });
  }

  refresh() { this.bridge.send({ type: "settings_get" }); }

  /**
   * The raw editor of settings.json: loaded when opened, saved whole; the core checks it first.
   * @param {HTMLDetailsElement} box @param {HTMLTextAreaElement} text
   * @param {HTMLButtonElement} save @param {HTMLElement} note @param {HTMLElement} where
   */
  attachFile(box, text, save, note, where) {
    const ask = () => this.bridge.send({ type: "settings_file_get" });
    box.addEventListener("toggle", () => { if (box.open) ask(); });
    this.bridge.on("settings_file", (m) => {
      text.value = m.text;
      if (m.path) where.textContent = `${m.path}: every setting, as JSON. Checked as a whole before it is saved.`;
      if (note.dataset.saving) { note.textContent = "Saved"; delete note.dataset.saving; }
      note.classList.remove("is-error");
    });
    this.bridge.on("error", (m) => {
      if (m.ref_type === "settings_file_set" || m.ref_type === "settings_file_get") {
        note.textContent = m.message;
        note.classList.add("is-error");
        delete note.dataset.saving;
      }
    });
    save.addEventListener("click", () => {
      note.textContent = "Checking…";
      note.classList.remove("is-error");
      note.dataset.saving = "1";
      this.bridge.send({ type: "settings_file_set", text: text.value });
    });
  }

  render(values, editable = []) {
    this.values = values;
    this.editable = editable;
    this.form.replaceChildren();
    const fields = FIELDS.filter((f) => editable.includes(f.key) && f.key in values);
    if (!fields.length) {
      const p = document.createElement("p");
      p.className = "drawer-note";
      p.textContent = "Settings are not available yet.";
      this.form.append(p);
      return;
    }
    for (const f of fields) this.form.append(this.control(f, values[f.key]));
  }

  control(f, value) {
    const wrap = document.createElement("label");
    wrap.className = `field field-${f.kind}`;
    const head = document.createElement("span");
    head.className = "field-head";
    const name = document.createElement("span");
    name.className = "field-label";
    name.textContent = f.label;
    const out = document.createElement("output");
    head.append(name, out);
    let input;
    if (f.kind === "select") {
      input = document.createElement("select");
      for (const o of f.options) input.append(new Option(o[0].toUpperCase() + o.slice(1), o, false, o === value));
    } else if (f.kind === "toggle") {
      input = document.createElement("input");
      input.type = "checkbox";
      input.role = "switch";
      input.checked = !!value;
    } else {
      input = document.createElement("input");
      input.type = f.kind === "range" ? "range" : "number";
      if (f.kind !== "seed") Object.assign(input, { min: f.min, max: f.max, step: f.step });
      input.value = value ?? "";
      if (f.kind === "seed") input.placeholder = "random";
    }
    input.name = f.key;
    const show = () => { out.textContent = f.kind === "range" ? fmt(Number(input.value), f.step) : ""; };
    show();
    input.addEventListener("input", () => { show(); this.queue(f, input); });
    input.addEventListener("change", () => this.queue(f, input));
    const hint = document.createElement("span");
    hint.className = "field-hint";
    hint.textContent = f.hint;
    if (f.kind === "toggle") wrap.append(head, hint, input);
    else wrap.append(head, input, hint);
    head.append(f.kind === "toggle" ? input : out);
    return wrap;
  }

  queue(f, input) {
    let v;
    if (f.kind === "toggle") v = input.checked;
    else if (f.kind === "select") v = input.value;
    else if (f.kind === "seed") v = input.value === "" ? null : Math.trunc(Number(input.value));
    else v = f.step >= 1 ? Math.trunc(Number(input.value)) : Number(input.value);
    this.pending[f.key] = v;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      const values = this.pending;
      this.pending = {};
      this.note.classList.remove("is-error");
      this.note.textContent = "Saved";
      this.bridge.send({ type: "settings_set", values });
    }, 250);
  }
}

function fmt(v, step) {
  return step >= 1 ? String(Math.round(v)) : v.toFixed(step < 0.05 ? 2 : 2);
}
