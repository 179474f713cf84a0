// Entry point: loads the bridge schema, finds an executor (WebGPU engine) if the page has
// one, connects to the core and wires the views.

import { Bridge, loadSchema } from "./bridge.js";
import { ChatView } from "./chat.js";
import { OrbAvatar } from "./avatar.js";
import { createAvatarView } from "./avatar/view.js";
import { Animator, poseOrders, reportTyping, trackPointer } from "./avatar/animator.js";
import { startVrm } from "./avatar/vrm.js";
import { SettingsDrawer } from "./settings.js";
import { MemoryPanel } from "./memory.js";
import { ModelPicker } from "./models.js";
import { ExecutorHost, findExecutor } from "./engine-link.js";

const $ = (id) => /** @type {any} */ (document.getElementById(id));

const PHASES = {
  idle: "Idle", probing: "Looking for a GPU", loading: "Loading model",
  ready: "Ready", generating: "Generating", failed: "Engine failed",
};

async function main() {
  const [schema, config] = await Promise.all([loadSchema(), loadConfig()]);
  const executor = await findExecutor(config);
  const bridge = new Bridge(schema, { executor: !!executor });
  if (executor) new ExecutorHost(bridge, executor);
  /** @type {any} */ (window).companion = { bridge, executor };

  const chat = new ChatView(bridge, {
    messages: $("messages"), empty: $("empty"), form: $("composer"), input: $("input"),
    send: $("send"), stop: $("stop"), chips: $("chips"),
  });
  const avatar = new OrbAvatar($("avatar"), $("avatar-mood"), schema);
  const reduced = matchMedia("(prefers-reduced-motion: reduce)").matches;
  // a user's VRM model, where one is chosen, takes the poses; else the orb, then the WGSL view
  const vrm = startVrm(config, { frame: $("avatar").parentElement, schema, orders: poseOrders(schema), onMessage: (t) => chat.notice(t) });
  const animator = new Animator(vrm.wrap(avatar), schema, { reducedMotion: reduced }); // the renderer's view replaces the orb
  animator.start();
  trackPointer(animator, $("avatar").parentElement); // the frame: the orb canvas hides when the WGSL avatar draws
  reportTyping(bridge, $("input"));
  const settings = new SettingsDrawer(bridge, $("settings-form"), $("settings-note"));
  const models = new ModelPicker(bridge, $("model-picker"));
  settings.attachFile($("settings-file"), $("settings-file-text"), $("settings-file-save"), $("settings-file-note"), $("settings-file-path"));
  const memory = new MemoryPanel(bridge, { list: $("memory-list"), search: $("memory-search"), note: $("memory-note") });
  const drawers = new Drawers($("scrim"));
  /** @type {any} */ (window).companion.animator = animator;
  // The WGSL avatar (WebGPU here, else frames the core draws) takes over from the orb once ready;
  // the orb keeps the caption, and draws again where neither can.
  const avatarCanvas = Object.assign(document.createElement("canvas"), { id: "avatar-gpu", className: "avatar-canvas" });
  avatarCanvas.style.display = "none";
  $("avatar").after(avatarCanvas);
  createAvatarView(avatarCanvas, bridge, { fallback: avatar, fallbackCanvas: $("avatar") }).then((view) => {
    animator.view = vrm.wrap(view);
    /** @type {any} */ (window).companion.avatarView = view;
  }, (e) => console.warn("avatar: staying with the orb:", e));

  $("open-settings").addEventListener("click", () => { settings.refresh(); models.refresh(); drawers.toggle($("settings-panel")); });
  // The desktop shell's tray asks for the settings drawer (companion/shell/desktop.py).
  window.addEventListener("companion-shell", (/** @type {CustomEvent} */ e) => {
    if (e.detail?.action === "settings" && drawers.open !== $("settings-panel")) {
      settings.refresh();
      models.refresh();
      drawers.toggle($("settings-panel"));
    }
  });
  $("open-memory").addEventListener("click", () => { memory.refresh(); drawers.toggle($("memory-panel")); });
  $("new-chat").addEventListener("click", () => {
    if (chat.streaming) return;
    bridge.send({ type: "reset" });
    chat.clear();
  });

  bridge.addEventListener("connection", (/** @type {CustomEvent} */ e) => {
    const { connected, welcome } = e.detail;
    avatar.setConnected(connected);
    document.body.classList.toggle("is-offline", !connected);
    if (connected) {
      banner(null);
      setName(welcome.character);
      chat.setCharacter(welcome.character);
      chat.restore(welcome.history);
      showEngine({ engine: welcome.engine, adapter: welcome.adapter, phase: "ready", progress: 1 });
      chat.setStreaming(welcome.busy);
      document.body.dataset.ready = "1";
    } else if (e.detail.was) {
      banner("Lost the connection to Companion. Reconnecting…");
      chat.setStreaming(false);
    }
  });
  bridge.on("engine_status", (m) => {
    showEngine(m);
    if (m.error && m.phase !== "failed") chat.notice(`Now running on the ${m.engine} engine: ${m.error}`);
  });
  bridge.on("avatar_state", (m) => { animator.state(m); avatar.set(m); });
  bridge.on("avatar_visemes", (m) => animator.visemes(m));
  bridge.on("reply_started", (m) => animator.replyStarted(m.turn));
  bridge.on("error", (m) => {
    if (m.code === "protocol_version") banner(m.message);
    else if (!["user_message", "settings_set", "model_use", "model_configure", "model_list", "settings_file_set", "settings_file_get"].includes(m.ref_type)) console.warn("core refused a message:", m.message);
  });
  bridge.connect();
  $("input").focus();
}

async function loadConfig() {
  const r = await fetch("/config.json", { cache: "no-store" });
  return r.ok ? r.json() : { executor_module: null };
}

/** Show which engine runs the model and how far it loaded. */
function showEngine(m) {
  const el = $("engine");
  el.dataset.phase = m.phase;
  $("engine-name").textContent = m.engine !== "none" ? m.engine : m.phase === "failed" ? "no engine" : "starting…";
  $("engine-adapter").textContent = m.adapter || "";
  el.title = m.error ? `${m.engine}: ${m.error}` : `${m.engine} engine${m.adapter ? " on " + m.adapter : ""} — ${PHASES[m.phase] || m.phase}`;
  const loading = m.phase === "loading" || m.phase === "probing";
  const pct = Math.round((m.progress || 0) * 100);
  $("load-bar").hidden = !loading;
  $("load-card").hidden = !loading;
  $("load-fill").style.transform = `scaleX(${m.progress || 0})`;
  $("load-card-fill").style.transform = `scaleX(${m.progress || 0})`;
  $("load-phase").textContent = m.detail || PHASES[m.phase] || m.phase;
  $("load-pct").textContent = `${pct}%`;
  if (m.phase === "failed" && m.error) banner(`The ${m.engine} engine failed: ${m.error}`);
}

function setName(name) {
  for (const id of ["character-name", "avatar-name", "empty-name"]) $(id).textContent = name;
  document.title = `${name} — Companion`;
}

function banner(text) {
  const b = $("banner");
  b.hidden = !text;
  b.textContent = text || "";
}

/** One drawer open at a time; Esc or the scrim closes it. */
class Drawers {
  constructor(scrim) {
    this.scrim = scrim;
    this.open = null;
    scrim.addEventListener("click", () => this.close());
    document.addEventListener("keydown", (e) => { if (e.key === "Escape" && this.open) this.close(); });
    for (const b of document.querySelectorAll("[data-close]")) b.addEventListener("click", () => this.close());
  }

  toggle(panel) {
    if (this.open === panel) return this.close();
    this.close();
    this.open = panel;
    panel.classList.add("is-open");
    panel.removeAttribute("inert");
    panel.setAttribute("aria-hidden", "false");
    this.scrim.hidden = false;
    const first = panel.querySelector("input, select, button");
    if (first) first.focus();
  }

  close() {
    if (!this.open) return;
    this.open.classList.remove("is-open");
    this.open.setAttribute("inert", "");
    this.open.setAttribute("aria-hidden", "true");
    this.open = null;
    this.scrim.hidden = true;
  }
}

main().catch((e) => {
  console.error(e);
  banner(`Companion could not start its page: ${e.message}`);
});
