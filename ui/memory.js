// The memory panel: lists what the companion remembers about the user and lets them
// edit, pin (always in the prompt) or forget an item. Data comes from the core
// (memory_list -> memories; memory_edit / memory_forget answer with the new list).

export class MemoryPanel {
  /**
   * @param {import("./bridge.js").Bridge} bridge
   * @param {{list: HTMLUListElement, search: HTMLInputElement, note: HTMLElement}} el
   */
  constructor(bridge, el) {
    this.bridge = bridge;
    this.el = el;
    this.timer = 0;
    bridge.on("memories", (m) => this.render(m.items, m.enabled));
    bridge.on("memory_note", () => this.refresh()); // a fact remembered or forgotten in the chat
    el.search.addEventListener("input", () => {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.refresh(), 200);
    });
  }

  refresh() {
    this.bridge.send({ type: "memory_list", query: this.el.search.value.slice(0, 1000) });
  }

  render(items, enabled) {
    this.el.list.replaceChildren();
    this.el.note.textContent = !enabled
      ? "Long-term memory is off."
      : items.length ? "" : this.el.search.value ? "Nothing matches." : "Nothing remembered yet. Facts you share will show up here.";
    for (const item of items) {
      const li = document.createElement("li");
      li.className = "memory";
      const text = document.createElement("p");
      text.textContent = item.text;
      const meta = document.createElement("time");
      meta.textContent = item.created ? new Date(item.created).toLocaleDateString(undefined, { dateStyle: "medium" }) : "";
      if (item.created) meta.dateTime = item.created;
      const forget = this.button("Forget", () => this.bridge.send({ type: "memory_forget", id: item.id }));
      forget.classList.add("danger");
      const pin = this.button(item.pinned ? "Unpin" : "Pin", () =>
        this.bridge.send({ type: "memory_edit", id: item.id, pinned: !item.pinned }));
      pin.title = item.pinned ? "Stop always including this in the prompt" : "Always include this in the prompt";
      const edit = this.button("Edit", () => this.startEdit(li, text, item));
      if (item.pinned) li.classList.add("pinned");
      const actions = document.createElement("span");
      actions.className = "memory-actions";
      actions.append(edit, pin, forget);
      const row = document.createElement("div");
      row.className = "memory-meta";
      row.append(meta, actions);
      li.append(text, row);
      this.el.list.append(li);
    }
  }

  /** @param {string} label @param {() => void} onClick */
  button(label, onClick) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "link-btn";
    b.textContent = label;
    b.addEventListener("click", onClick);
    return b;
  }

  /** Replace the memory's text with an editor; Enter or Save sends memory_edit. */
  startEdit(li, textEl, item) {
    const box = document.createElement("textarea");
    box.className = "memory-editor";
    box.value = item.text;
    box.maxLength = 2000;
    box.rows = 2;
    box.setAttribute("aria-label", "Edit memory");
    const save = () => {
      const value = box.value.trim();
      if (value && value !== item.text) this.bridge.send({ type: "memory_edit", id: item.id, text: value });
      else this.refresh();
    };
    box.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); save(); }
      if (e.key === "Escape") { e.preventDefault(); this.refresh(); }
    });
    const actions = document.createElement("div");
    actions.className = "memory-meta";
    const spacer = document.createElement("span");
    const buttons = document.createElement("span");
    buttons.className = "memory-actions";
    buttons.append(this.button("Save", save), this.button("Cancel", () => this.refresh()));
    actions.append(spacer, buttons);
    li.replaceChildren(box, actions);
    box.focus();
  }
}
