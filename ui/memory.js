// The memory panel: lists what the companion remembers about the user and lets them
// forget an item. Data comes from the core (memory_list -> memories).

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
      const forget = document.createElement("button");
      forget.type = "button";
      forget.className = "link-btn";
      forget.textContent = "Forget";
      forget.addEventListener("click", () => this.bridge.send({ type: "memory_forget", id: item.id }));
      const row = document.createElement("div");
      row.className = "memory-meta";
      row.append(meta, forget);
      li.append(text, row);
      this.el.list.append(li);
    }
  }
}
