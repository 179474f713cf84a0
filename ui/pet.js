// Pet mode (`pet.html`): the avatar alone: the same view as the chat page's (app.js: the WGSL
// avatar where it can draw, else the orb), driven by the core's avatar messages. It joins the
// bridge as a plain page (never the executor). Dragging and clicking are the shell's: Qt reads
// the mouse before the page does; where the shell is not Qt (Windows, macOS) a click asks
// pywebview's API, if the shell offers one, to show the chat.

import { Bridge, loadSchema } from "./bridge.js";
import { OrbAvatar } from "./avatar.js";
import { Animator, poseOrders } from "./avatar/animator.js";
import { createAvatarView } from "./avatar/view.js";
import { startVrm } from "./avatar/vrm.js";

async function main() {
  const schema = await loadSchema();
  const bridge = new Bridge(schema, { executor: false, client: "pet" });
  const orb = /** @type {HTMLCanvasElement} */ (document.getElementById("avatar"));
  const avatar = new OrbAvatar(orb, /** @type {HTMLElement} */ (document.getElementById("mood")), schema);
  const reduced = matchMedia("(prefers-reduced-motion: reduce)").matches;
  // the user's VRM model where one is chosen (ui/avatar/vrm.js), else the orb, then the WGSL view
  const config = await fetch("/config.json", { cache: "no-store" }).then((r) => (r.ok ? r.json() : {}), () => ({}));
  const vrm = startVrm(config, { frame: /** @type {HTMLElement} */ (orb.parentElement), schema, orders: poseOrders(schema), onMessage: () => {} });
  const animator = new Animator(vrm.wrap(avatar), schema, { reducedMotion: reduced });
  animator.start();
  // The WGSL avatar (WebGPU here, else frames the core draws) takes over from the orb once ready.
  const gpu = Object.assign(document.createElement("canvas"), { id: "avatar-gpu", className: "pet-avatar" });
  gpu.style.display = "none";
  orb.after(gpu);
  createAvatarView(gpu, bridge, { fallback: avatar, fallbackCanvas: orb }).then((view) => { animator.view = vrm.wrap(view); },
    (e) => console.warn("avatar: staying with the orb:", e));
  bridge.addEventListener("connection", (/** @type {CustomEvent} */ e) => avatar.setConnected(e.detail.connected));
  bridge.on("avatar_state", (m) => { animator.state(m); avatar.set(m); });
  bridge.on("avatar_visemes", (m) => animator.visemes(m));
  bridge.on("reply_started", (m) => animator.replyStarted(m.turn));
  document.addEventListener("click", () => {
    const api = /** @type {any} */ (window).pywebview?.api;
    if (api?.toggle_chat) api.toggle_chat();
  });
  bridge.connect();
  document.body.dataset.ready = "1";
}

main().catch((e) => console.error(e));
