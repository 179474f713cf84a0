// The avatar's view: what the animator (./animator.js) hands a Pose every frame. It draws where
// it can, in this order:
//   webgpu  the page has an adapter: shaders/avatar.wgsl drawn here (./renderer.js), into the
//           canvas; where presenting a WebGPU canvas loses the device (headless Chromium on
//           SwiftShader does, on the first submit) it draws offscreen and copies each frame
//           into a 2D canvas instead ("copy");
//   native  it has none (Qt WebEngine on Linux, navigator.gpu missing) or lost its device: the
//           core draws the same WGSL with wgpu-py (companion/avatar/stream.py) and answers each
//           `avatar_frame` request with one binary frame, put into a 2D canvas;
//   fallback  the core cannot draw either: the poses go to `options.fallback` (the 2D orb).
// Frames are paced: at most `fps` a second (30), `busyFps` (10) while a reply streams (the model
// decodes on the same device), never more than one in flight, and never sooner than twice the
// last frame's time after it started (on a CPU rasterizer the avatar takes at most about half a
// core; native frames carry the core's interval, which follows the same rule).

import { openRenderer, unpremultiply } from "./renderer.js";

/** @typedef {import("./animator.js").Pose} Pose */

/**
 * @typedef {Object} AvatarView
 * @property {(pose: Pose) => void} setPose draw this pose (when the pacing allows; the latest wins)
 * @property {() => void} destroy stop drawing and let go of the GPU and the bridge listeners
 * @property {() => ViewStats} stats how it is drawing
 * @property {string} mode "webgpu" | "native" | "fallback"
 */

/**
 * @typedef {Object} ViewStats
 * @property {string} mode
 * @property {number} frames frames drawn
 * @property {number} fps frames a second over the last 2 s
 * @property {number} frameMs mean time per frame over the last 30: GPU submit to done (webgpu),
 *   request to frame drawn (native)
 * @property {number} renderMs native: the core's render time of the last frame
 * @property {number} width
 * @property {number} height
 * @property {string} adapter
 * @property {string} reason why the view is not on WebGPU, if it is not
 * @property {string} present webgpu: "canvas" or "copy" (offscreen, read back, putImageData)
 */

/**
 * @typedef {Object} ViewOptions
 * @property {{setPose: (pose: Pose) => void}} [fallback] draws the poses when nothing else can
 * @property {HTMLElement} [fallbackCanvas] shown instead of the canvas while the fallback draws
 * @property {number} [fps] frames a second at most (30)
 * @property {number} [busyFps] frames a second while a reply streams (10)
 * @property {number} [nativeMaxSide] native frames' longest side in pixels (256)
 * @property {number} [gpuMaxSide] WebGPU canvas' longest side (640; 320 on a CPU adapter)
 * @property {boolean} [webgpu] try WebGPU (true)
 */

const MAGIC = 0x31465641; // "AVF1" little-endian: companion/avatar/stream.py's frame header
const HEADER_BYTES = 20;
const LOST_MS = 3000; // a native request unanswered this long is given up (e.g. a reconnect)

/**
 * Make the avatar's view on `canvas`, drawing with WebGPU where the page has it, else with frames
 * the core draws.
 * @param {HTMLCanvasElement} canvas
 * @param {import("../bridge.js").Bridge} bridge
 * @param {ViewOptions} [options]
 * @returns {Promise<AvatarView>}
 */
export async function createAvatarView(canvas, bridge, options = {}) {
  const view = new View(canvas, bridge, options);
  await view.start();
  return view;
}

class View {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {import("../bridge.js").Bridge} bridge
   * @param {ViewOptions} options
   */
  constructor(canvas, bridge, options) {
    this.canvas = canvas;
    this.bridge = bridge;
    this.options = options;
    this.mode = "starting";
    this.shown = false; // a frame of the current mode is in view (else the fallback is)
    this.present = "";
    this.reason = "";
    /** @type {Pose | null} */
    this.pose = null;
    this.busy = false;
    this.inFlight = 0; // seq of the native request awaited, or 1 while a WebGPU frame renders
    this.sentAt = 0;
    this.nextAt = 0;
    this.seq = 0;
    this.refusals = 0; // avatar_frame requests the core refused in a row
    this.times = /** @type {number[]} */ ([]); // recent frame times (ms)
    this.drawnAt = /** @type {number[]} */ ([]); // when recent frames were drawn
    this.frames = 0;
    this.renderMs = 0;
    this.adapter = "";
    // sized by the box it fills (the canvas itself is hidden until it has a frame)
    this.box = canvas.parentElement || canvas;
    this.cssSize = { w: this.box.clientWidth || canvas.width, h: this.box.clientHeight || canvas.height };
    this.gpu = /** @type {any} */ (null);
    this.ctx2d = /** @type {CanvasRenderingContext2D | null} */ (null);
    this.offs = /** @type {(() => void)[]} */ ([]);
    const end = () => { this.busy = false; };
    this.offs.push(
      bridge.on("reply_started", () => { this.busy = true; }),
      bridge.on("reply_done", end), bridge.on("reply_stopped", end), bridge.on("reply_error", end),
      bridge.on("error", (m) => this.refused(m)),
    );
    const onFrame = (/** @type {any} */ e) => this.frame(e.detail);
    bridge.addEventListener("binary", onFrame);
    this.offs.push(() => bridge.removeEventListener("binary", onFrame));
    const onConnection = (/** @type {any} */ e) => { if (!e.detail.connected) { this.busy = false; this.inFlight = 0; } };
    bridge.addEventListener("connection", onConnection);
    this.offs.push(() => bridge.removeEventListener("connection", onConnection));
    this.resizer = new ResizeObserver(() => {
      this.cssSize = { w: this.box.clientWidth, h: this.box.clientHeight };
    });
    this.resizer.observe(this.box);
  }

  async start() {
    if (this.options.webgpu !== false) {
      try {
        if (await this.startWebGPU()) return;
      } catch (e) {
        this.reason = `WebGPU failed: ${/** @type {Error} */ (e).message}`;
        console.warn("avatar:", this.reason);
        this.freshCanvas();
      }
    }
    this.startNative(this.reason || (navigator.gpu ? "no WebGPU adapter" : "no navigator.gpu"));
  }

  // --- WebGPU -------------------------------------------------------------------------------

  /**
   * @param {"canvas" | "copy" | ""} present draw into the canvas, or offscreen and copy the
   *   pixels; "" picks by the adapter
   * @returns {Promise<boolean>} drawing with WebGPU
   */
  async startWebGPU(present = /** @type {"canvas" | "copy" | ""} */ ("")) {
    let opened = await openRenderer();
    // right after an instance was lost the adapter comes back only after a moment
    for (let i = 0; !opened && present === "copy" && i < 5; i++) {
      await new Promise((r) => setTimeout(r, 200));
      opened = await openRenderer();
    }
    if (!opened) { this.reason = navigator.gpu ? "no WebGPU adapter" : "no navigator.gpu"; return false; }
    const { device, adapter, renderer } = opened;
    const info = adapter.info || {};
    this.adapter = [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(" ");
    const cpu = /swiftshader|llvmpipe|lavapipe|warp|software/i.test(this.adapter);
    this.maxSide = this.options.gpuMaxSide || (cpu ? 320 : 640);
    // a CPU rasterizer copies its frames (reading back costs next to nothing there, and headless
    // Chromium's SwiftShader loses the device presenting a WebGPU canvas); a GPU presents
    present = present || (cpu ? "copy" : "canvas");
    let context = null, format = "rgba8unorm";
    if (present === "canvas") {
      context = this.canvas.getContext("webgpu");
      if (!context) { device.destroy(); this.reason = "no WebGPU canvas context"; return false; }
      format = navigator.gpu.getPreferredCanvasFormat();
      context.configure({ device, format, alphaMode: "premultiplied" });
    } else {
      this.ctx2d = this.canvas.getContext("2d");
      if (!this.ctx2d) { device.destroy(); this.reason = "no 2D canvas context"; return false; }
    }
    this.gpu = { device, renderer, context, format, present };
    device.lost.then((lost) => {
      if (this.mode !== "webgpu" || this.gpu?.device !== device) return;
      this.gpu = null;
      this.inFlight = 0;
      this.freshCanvas(); // the canvas keeps its context for good
      if (present === "canvas" && this.frames === 0) {
        // never presented a frame: this page cannot present WebGPU canvases; copy instead
        this.startWebGPU("copy").then((ok) => ok || this.startNative(this.reason),
          (e) => this.startNative(`WebGPU failed: ${e.message}`));
      } else {
        this.startNative(`the WebGPU device was lost: ${lost.message}`);
      }
    });
    this.present = present;
    this.setMode("webgpu");
    return true;
  }

  /** Swap the canvas for a fresh one (a canvas keeps the first kind of context it gave). */
  freshCanvas() {
    const fresh = /** @type {HTMLCanvasElement} */ (this.canvas.cloneNode(false));
    this.canvas.replaceWith(fresh);
    this.canvas = fresh;
    this.ctx2d = null;
  }

  drawWebGPU(now) {
    const { w, h } = this.targetSize(this.maxSide);
    this.inFlight = 1;
    this.sentAt = now;
    const gpu = this.gpu;
    const done = () => {
      const ms = performance.now() - now;
      this.inFlight = 0;
      this.drawn(ms);
      this.nextAt = now + Math.max(this.interval(), 2 * ms); // a CPU rasterizer: at most ~half a core
    };
    const failed = (/** @type {Error} */ e) => {
      this.inFlight = 0;
      console.warn("avatar: WebGPU frame failed:", e.message);
    };
    if (gpu.present === "canvas") {
      if (this.canvas.width !== w || this.canvas.height !== h) { this.canvas.width = w; this.canvas.height = h; }
      gpu.renderer.draw(gpu.context, gpu.format, this.pose).then(done, failed);
      return;
    }
    gpu.renderer.readPixels(this.pose, w, h).then((px) => {
      if (this.gpu !== gpu || !this.ctx2d) return;
      if (this.canvas.width !== w || this.canvas.height !== h) { this.canvas.width = w; this.canvas.height = h; }
      const pixels = new Uint8ClampedArray(px.buffer, px.byteOffset, px.length);
      this.ctx2d.putImageData(new ImageData(unpremultiply(pixels), w, h), 0, 0);
      done();
    }, failed);
  }

  // --- native frames --------------------------------------------------------------------------

  /** @param {string} reason why not WebGPU */
  startNative(reason) {
    this.reason = reason;
    if (!this.bridge.schema?.messages?.avatar_frame) return this.toFallback("the core cannot draw avatar frames");
    this.ctx2d = this.ctx2d || this.canvas.getContext("2d");
    if (!this.ctx2d) return this.toFallback("no 2D canvas");
    this.maxSide = this.options.nativeMaxSide || 256;
    this.present = "";
    this.inFlight = 0;
    this.setMode("native");
  }

  requestNative(now) {
    if (!this.bridge.connected) return;
    const { w, h } = this.targetSize(this.maxSide);
    const seq = this.seq + 1;
    const sent = this.bridge.send({ type: "avatar_frame", seq, width: w, height: h, pose: this.pose });
    if (!sent) return;
    this.seq = seq;
    this.inFlight = seq;
    this.sentAt = now;
  }

  /** A binary frame from the core. @param {ArrayBuffer} data */
  frame(data) {
    if (this.mode !== "native" || !this.ctx2d || data.byteLength < HEADER_BYTES) return;
    const head = new DataView(data, 0, HEADER_BYTES);
    if (head.getUint32(0, true) !== MAGIC) return;
    const seq = head.getUint32(4, true);
    const w = head.getUint16(8, true), h = head.getUint16(10, true);
    const interval = head.getUint16(12, true);
    if (data.byteLength < HEADER_BYTES + w * h * 4) return;
    if (this.canvas.width !== w || this.canvas.height !== h) { this.canvas.width = w; this.canvas.height = h; }
    const pixels = new Uint8ClampedArray(data, HEADER_BYTES, w * h * 4);
    if (head.getUint16(14, true) & 1) unpremultiply(pixels); // ImageData holds straight alpha
    this.ctx2d.putImageData(new ImageData(pixels, w, h), 0, 0);
    this.renderMs = head.getFloat32(16, true);
    if (seq === this.inFlight) {
      const now = performance.now();
      this.inFlight = 0;
      this.refusals = 0;
      this.drawn(now - this.sentAt);
      this.nextAt = this.sentAt + Math.max(interval, this.interval());
      this.pump(now);
    }
  }

  /** The core refused something: an unusable avatar_frame means it cannot draw here. */
  refused(m) {
    if (m.ref_type !== "avatar_frame" || this.mode !== "native") return;
    this.inFlight = 0;
    if (m.code === "unavailable" || ++this.refusals >= 5) this.toFallback(m.message);
  }

  // --- fallback -----------------------------------------------------------------------------

  /** @param {string} reason */
  toFallback(reason) {
    this.reason = reason;
    console.warn("avatar: drawing the fallback:", reason);
    this.setMode("fallback");
  }

  // --- common -------------------------------------------------------------------------------

  /** Switch mode; the fallback stays in view until the new mode has drawn a frame. */
  setMode(mode) {
    this.mode = mode;
    this.shown = false;
    this.canvas.dataset.mode = mode;
    this.showMine(false);
  }

  showMine(on) {
    this.shown = on;
    this.canvas.style.display = on ? "" : "none";
    if (this.options.fallbackCanvas) this.options.fallbackCanvas.style.display = on ? "none" : "";
  }

  /** @param {Pose} pose */
  setPose(pose) {
    this.pose = pose;
    if (!this.shown) this.options.fallback?.setPose(pose);
    if (this.mode !== "fallback") this.pump(performance.now());
  }

  pump(now) {
    if (!this.pose) return;
    if (this.inFlight && !(this.mode === "native" && now - this.sentAt > LOST_MS)) return;
    if (now < this.nextAt) return;
    if (this.mode === "webgpu" && this.gpu) this.drawWebGPU(now);
    else if (this.mode === "native") this.requestNative(now);
  }

  interval() {
    return 1000 / (this.busy ? this.options.busyFps || 10 : this.options.fps || 30);
  }

  /** The drawing's size in pixels: the canvas' CSS size times the device pixel ratio, capped. */
  targetSize(maxSide) {
    const dpr = Math.min(window.devicePixelRatio || 1, 2);
    let w = Math.max(16, Math.round(this.cssSize.w * dpr)), h = Math.max(16, Math.round(this.cssSize.h * dpr));
    const k = Math.min(1, maxSide / Math.max(w, h));
    return { w: Math.max(16, Math.round(w * k)), h: Math.max(16, Math.round(h * k)) };
  }

  drawn(ms) {
    const now = performance.now();
    if (!this.shown) this.showMine(true);
    this.frames++;
    this.times.push(ms);
    if (this.times.length > 30) this.times.shift();
    this.drawnAt.push(now);
    while (this.drawnAt.length && now - this.drawnAt[0] > 2000) this.drawnAt.shift();
  }

  /** @returns {ViewStats} */
  stats() {
    const mean = this.times.length ? this.times.reduce((a, b) => a + b, 0) / this.times.length : 0;
    const span = this.drawnAt.length > 1 ? this.drawnAt[this.drawnAt.length - 1] - this.drawnAt[0] : 0;
    return {
      mode: this.mode, frames: this.frames, fps: span > 0 ? ((this.drawnAt.length - 1) * 1000) / span : 0,
      frameMs: mean, renderMs: this.renderMs, width: this.canvas.width, height: this.canvas.height,
      adapter: this.adapter, reason: this.reason, present: this.present,
    };
  }

  destroy() {
    this.mode = "destroyed";
    for (const off of this.offs) off();
    this.resizer.disconnect();
    if (this.gpu) { this.gpu.renderer.destroy(); this.gpu.device.destroy(); this.gpu = null; }
  }
}
