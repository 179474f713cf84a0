// The VRM avatar: a user's VRM 0.x / 1.0 model (settings.avatar_model, served at
// /avatar/model.vrm) drawn with three.js and @pixiv/three-vrm (the bundle ui/vrm/three-vrm.js,
// built by scripts/build_vrm.sh), in place of the built-in avatar. It takes the same Pose as the
// built-in view (./animator.js) and maps it onto the model's expressions (three-vrm gives VRM 0.x
// presets their 1.0 names: joy -> happy, a -> aa, ...), its look-at and its head and spine.
//
// Renderer: three.js's WebGPURenderer, which draws with WebGPU where the page has a hardware
// adapter and with its WebGL2 backend where it has none (Qt WebEngine on Linux) or only a CPU
// rasterizer (headless Chromium's SwiftShader loses the device presenting a canvas); a device lost
// later starts it again on WebGL2. A page with neither (Qt WebEngine compositing in software: no
// WebGL2 there, measured under Xvfb) keeps the built-in avatar and says so in one line.
//
// A model is never trusted: the core checked it (companion/avatar/vrm.py) and the page checks its
// header again before three.js parses it; any failure leaves the built-in avatar in view and shows
// one line saying why. A .vrm dropped onto the page is sent to the core (POST /avatar/model), which
// checks and keeps it, and is then loaded from /avatar/model.vrm like a saved one.
//
// window.__companionAvatar is a read-only debug hook for tests: expressionWeights() and state().

/** @typedef {import("./animator.js").Pose} Pose */

// What each emotion of the core (companion/emotion.py) shows with the VRM presets, per unit of
// its weight in the Pose. Emotions VRM has no preset for borrow the nearest ones.
export const EMOTION_EXPRESSIONS = {
  neutral: {},
  happy: { happy: 1 },
  sad: { sad: 1 },
  angry: { angry: 1 },
  surprised: { surprised: 1 },
  relaxed: { relaxed: 1 },
  excited: { happy: 0.85, surprised: 0.35 },
  embarrassed: { happy: 0.45, sad: 0.25 },
  thinking: { relaxed: 0.25 },
  sleepy: { relaxed: 0.6, blink: 0.45 },
};
// The Pose's visemes onto VRM's mouth presets ("closed" is all of them at rest).
export const VISEME_EXPRESSIONS = { aa: "aa", ee: "ee", ih: "ih", oh: "oh", ou: "ou" };
export const DRIVEN = ["happy", "angry", "sad", "relaxed", "surprised", "blink", "aa", "ih", "ou", "ee", "oh"];
const GAZE_YAW_DEG = 25; // how far the eyes turn at gaze_x = +-1
const GAZE_PITCH_DEG = 15;
const ARMS_DOWN = 1.2; // radians from the T-pose towards the sides
const GLB_MAGIC = 0x46546c67; // "glTF"
// Adapters that rasterize on the CPU. Headless Chromium on SwiftShader loses its WebGPU device
// (and with it every WebGPU device of the page, the built-in avatar's too) the first time a WebGPU
// canvas is presented; WebGL2 draws there (measured 2026-11-30: ~25 ms a frame at 280x280).
const CPU_ADAPTER = /swiftshader|llvmpipe|lavapipe|warp|software/i;

const clamp01 = (x) => Math.min(1, Math.max(0, x));

/**
 * The VRM expression weights for a pose.
 * @param {Pose} pose
 * @param {{emotions: string[], visemes: string[]}} orders the Pose's weight orders
 * @returns {Object<string, number>} one weight (0..1) per name of DRIVEN
 */
export function expressionWeights(pose, orders) {
  /** @type {Object<string, number>} */
  const w = Object.fromEntries(DRIVEN.map((n) => [n, 0]));
  (pose.emotion || []).forEach((weight, i) => {
    const map = EMOTION_EXPRESSIONS[orders.emotions[i]] || {};
    for (const [name, k] of Object.entries(map)) w[name] += weight * k;
  });
  (pose.viseme || []).forEach((weight, i) => {
    const name = VISEME_EXPRESSIONS[orders.visemes[i]];
    if (name) w[name] += weight * (pose.talk ?? 1);
  });
  w.blink += pose.blink || 0;
  for (const n of DRIVEN) w[n] = clamp01(w[n]);
  return w;
}

/**
 * Check a .vrm's glTF binary header (the first 20 bytes) against its real length.
 * @param {ArrayBuffer} buf
 * @returns {string | null} what is wrong, or null
 */
export function glbProblem(buf) {
  if (buf.byteLength < 20) return `only ${buf.byteLength} bytes: too short for a glTF binary`;
  const v = new DataView(buf);
  if (v.getUint32(0, true) !== GLB_MAGIC) return "it does not start with 'glTF': not a VRM file";
  if (v.getUint32(4, true) !== 2) return `glTF version ${v.getUint32(4, true)}; VRM models are glTF 2`;
  const length = v.getUint32(8, true);
  if (length !== buf.byteLength) return `its header says ${length} bytes, it has ${buf.byteLength}: truncated or damaged`;
  if (v.getUint32(12, true) > buf.byteLength - 20 || v.getUint32(16, true) !== 0x4e4f534a) return "its JSON chunk is damaged";
  return null;
}

/** Whether this page can make a WebGL2 context (a probe canvas, let go at once). */
function hasWebGL2() {
  const gl = document.createElement("canvas").getContext("webgl2");
  gl?.getExtension("WEBGL_lose_context")?.loseContext();
  return !!gl;
}

/** One line from an error (three.js and three-vrm errors can be long). */
function oneLine(e) {
  const text = String(e?.message || e || "unknown error").split("\n")[0];
  return text.length > 200 ? text.slice(0, 197) + "…" : text;
}

export class VrmView {
  /**
   * @param {HTMLElement} frame the avatar's box (its other canvases hide while a model is shown)
   * @param {any} schema the bridge schema (the Pose's orders)
   * @param {{module: string, onMessage?: (text: string) => void, fps?: number, orders: {emotions: string[], visemes: string[]}}} options
   */
  constructor(frame, schema, options) {
    this.frame = frame;
    this.options = options;
    this.orders = options.orders;
    this.canvas = this.newCanvas();
    this.V = /** @type {any} */ (null); // the bundle's exports
    this.renderer = /** @type {any} */ (null);
    this.backend = ""; // "webgpu" | "webgl2"
    this.reason = ""; // why not WebGPU
    this.vrm = /** @type {any} */ (null);
    this.title = "";
    this.materials = /** @type {string[]} */ ([]); // the model's material types
    this.message = "";
    this.frames = 0;
    this.frameMs = 0;
    this.nextAt = 0;
    this.last = performance.now();
    this.weights = Object.fromEntries(DRIVEN.map((n) => [n, 0]));
    this.loading = /** @type {Promise<boolean> | null} */ (null);
  }

  /** Whether a model is in view (the built-in avatar is hidden). */
  get active() {
    return !!this.vrm && !!this.renderer;
  }

  newCanvas() {
    const c = document.createElement("canvas");
    c.className = "avatar-canvas";
    c.id = "avatar-vrm";
    Object.assign(c.style, { position: "absolute", inset: "0", display: "none" });
    this.frame.style.position = "relative";
    this.frame.append(c);
    return c;
  }

  /**
   * Load a model (a URL of ours, or the bytes of a dropped file) and show it; on any failure keep
   * what is in view and say why in one line.
   * @param {string | ArrayBuffer} source
   * @returns {Promise<boolean>} shown
   */
  load(source) {
    const run = async () => {
      try {
        await this.show(await this.fetchModel(source));
        return true;
      } catch (e) {
        this.say(`The VRM model could not be shown (${oneLine(e)}); ${this.vrm ? "keeping the current model" : "drawing the built-in avatar"}.`);
        return false;
      }
    };
    this.loading = (this.loading || Promise.resolve(true)).then(run, run);
    return this.loading;
  }

  /** @param {string | ArrayBuffer} source @returns {Promise<ArrayBuffer>} */
  async fetchModel(source) {
    if (typeof source !== "string") return source;
    const r = await fetch(source, { cache: "no-store" });
    if (!r.ok) throw new Error((await r.text()).split("\n")[0] || `HTTP ${r.status}`);
    return r.arrayBuffer();
  }

  /** @param {ArrayBuffer} buf */
  async show(buf) {
    const problem = glbProblem(buf);
    if (problem) throw new Error(problem);
    this.V = this.V || (await import(this.options.module));
    const V = this.V;
    const loader = new V.GLTFLoader();
    loader.register((/** @type {any} */ parser) => {
      // textures through <img> (img-src allows blob:), not fetch(): the page's CSP keeps
      // connect-src to our own origin
      parser.textureLoader = new V.TextureLoader(parser.options.manager);
      return { name: "companion_texture_loader" };
    });
    loader.register((/** @type {any} */ parser) => new V.VRMLoaderPlugin(parser, {
      mtoonMaterialPlugin: new V.MToonMaterialLoaderPlugin(parser, { materialType: V.MToonNodeMaterial }),
    }));
    const gltf = await loader.parseAsync(buf, "");
    const vrm = gltf.userData.vrm;
    try {
      if (!vrm) throw new Error("three-vrm found no VRM extension (VRMC_vrm or VRM) in it");
      if (!vrm.expressionManager) throw new Error("it has no expressions");
      if (!this.renderer) await this.openRenderer();
    } catch (e) {
      V.VRMUtils.deepDispose(gltf.scene); // its geometries and textures
      throw e;
    }
    V.VRMUtils.removeUnnecessaryVertices(gltf.scene);
    V.VRMUtils.rotateVRM0(vrm); // VRM 0.x faces -Z; 1.0 and the camera below expect +Z
    const kinds = new Set();
    vrm.scene.traverse((/** @type {any} */ o) => {
      o.frustumCulled = false;
      for (const m of [o.material || []].flat()) kinds.add(m.isMToonNodeMaterial ? "MToon" : m.type);
    });
    this.materials = [...kinds].sort();
    for (const side of ["left", "right"]) { // arms down from the T-pose
      const arm = vrm.humanoid?.getNormalizedBoneNode(`${side}UpperArm`);
      if (arm) arm.rotation.z = side === "left" ? -ARMS_DOWN : ARMS_DOWN;
    }
    const old = this.vrm;
    this.vrm = vrm;
    this.scene = this.makeScene(vrm);
    if (old) V.VRMUtils.deepDispose(old.scene);
    this.title = vrm.meta?.name || vrm.meta?.title || "";
    this.frames = 0;
    this.nextAt = 0;
    this.say("");
    this.draw(performance.now());
    this.showMine(true);
  }

  /** @param {any} vrm */
  makeScene(vrm) {
    const V = this.V;
    const scene = new V.Scene();
    scene.add(vrm.scene);
    const sun = new V.DirectionalLight(0xffffff, 2.2);
    sun.position.set(0.6, 1.6, 2.2);
    scene.add(sun, new V.HemisphereLight(0xffffff, 0x8a7f9a, 1.4));
    vrm.scene.updateMatrixWorld(true);
    // frame the head and shoulders
    const head = vrm.humanoid?.getNormalizedBoneNode("head");
    const at = head ? head.getWorldPosition(new V.Vector3()) : new V.Box3().setFromObject(vrm.scene).getCenter(new V.Vector3());
    this.camera = new V.PerspectiveCamera(22, 1, 0.05, 50);
    this.camera.position.set(0, at.y + 0.03, at.z + 1.35);
    this.camera.lookAt(0, at.y + 0.01, at.z); // the head bone is about the chin: head above, shoulders below
    return scene;
  }

  /** WebGPU where the page has it (three.js falls back to WebGL2 where it has not). */
  async openRenderer(forceWebGL = false) {
    const V = this.V;
    if (!forceWebGL && !navigator.gpu) {
      forceWebGL = true;
      this.reason = "no navigator.gpu";
    } else if (!forceWebGL) {
      const adapter = await navigator.gpu.requestAdapter().catch(() => null);
      const info = adapter?.info || {};
      const name = [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(" ");
      forceWebGL = !adapter || CPU_ADAPTER.test(name);
      this.reason = !adapter ? "no WebGPU adapter" : forceWebGL ? `WebGPU adapter "${name}" is a CPU rasterizer` : "";
    }
    if (forceWebGL && !hasWebGL2()) {
      throw new Error(`this page has no WebGL2${this.reason ? ` and ${this.reason}` : ""} (Qt WebEngine compositing in software has neither)`);
    }
    const renderer = new V.WebGPURenderer({ canvas: this.canvas, alpha: true, antialias: true, forceWebGL });
    await renderer.init();
    renderer.setClearColor(0x000000, 0);
    renderer.setPixelRatio(Math.min(window.devicePixelRatio || 1, 2));
    this.backend = renderer.backend?.isWebGPUBackend ? "webgpu" : "webgl2";
    this.renderer = renderer;
    renderer.onDeviceLost = (/** @type {any} */ info) => this.lost(renderer, info);
  }

  /** WebGPU lost its device: start again on WebGL2 (a fresh canvas: a canvas keeps its context). */
  lost(renderer, info) {
    if (this.renderer !== renderer) return;
    console.warn("avatar: the VRM's WebGPU device was lost; drawing with WebGL2:", info?.message);
    this.renderer = null;
    this.reason = `the WebGPU device was lost: ${info?.message}`;
    this.canvas.remove();
    this.canvas = this.newCanvas();
    const retry = async () => {
      for (let i = 0; ; i++) { // right after a loss the GPU process may need a moment
        try { return await this.openRenderer(true); } catch (e) { if (i >= 4) throw e; }
        await new Promise((r) => setTimeout(r, 250));
      }
    };
    retry().then(() => this.vrm && this.showMine(true),
      (e) => { this.vrm = null; this.showMine(false); this.say(`The VRM model cannot be drawn here (${oneLine(e)}); drawing the built-in avatar.`); });
  }

  /** @param {Pose} pose */
  setPose(pose) {
    this.pose = pose;
    const now = performance.now();
    if (this.active && now >= this.nextAt) this.draw(now);
  }

  draw(now) {
    const { vrm, pose, renderer } = this;
    if (!vrm || !renderer) return;
    const dt = Math.min(0.1, (now - this.last) / 1000);
    this.last = now;
    if (pose) this.apply(pose);
    vrm.update(dt);
    const { clientWidth: w, clientHeight: h } = this.frame;
    if (w && h) {
      const size = renderer.getSize(new this.V.Vector2());
      if (size.x !== w || size.y !== h) { renderer.setSize(w, h, false); this.camera.aspect = w / h; this.camera.updateProjectionMatrix(); }
    }
    const t0 = performance.now();
    renderer.render(this.scene, this.camera);
    const ms = performance.now() - t0;
    this.frameMs = this.frames ? 0.9 * this.frameMs + 0.1 * ms : ms;
    this.frames++;
    this.nextAt = now + Math.max(1000 / (this.options.fps || 30), 2 * ms); // a CPU rasterizer: about half a core at most
  }

  /** The pose onto the model: expressions, look-at, head, breathing and sway. @param {Pose} pose */
  apply(pose) {
    const vrm = this.vrm;
    this.weights = expressionWeights(pose, this.orders);
    for (const [name, w] of Object.entries(this.weights)) vrm.expressionManager.setValue(name, w);
    if (vrm.lookAt) {
      vrm.lookAt.yaw = (pose.gaze_x || 0) * GAZE_YAW_DEG;
      vrm.lookAt.pitch = -(pose.gaze_y || 0) * GAZE_PITCH_DEG; // three-vrm: positive pitch looks down
    }
    const bone = (/** @type {string} */ name) => vrm.humanoid?.getNormalizedBoneNode(name);
    const head = bone("head");
    if (head) head.rotation.set(-(pose.head_pitch || 0), pose.head_yaw || 0, pose.head_roll || 0);
    const chest = bone("chest") || bone("spine");
    if (chest) chest.rotation.x = -0.03 * ((pose.breath ?? 0.5) - 0.5);
    const spine = bone("spine");
    if (spine) spine.rotation.z = 0.02 * (pose.sway || 0);
  }

  /** @param {boolean} on the model in view (else the built-in avatar's canvases) */
  showMine(on) {
    this.canvas.style.display = on ? "" : "none";
    for (const c of this.frame.querySelectorAll("canvas")) {
      if (c !== this.canvas) /** @type {HTMLElement} */ (c).style.visibility = on ? "hidden" : "";
    }
  }

  /** @param {string} text one line for the user ("" clears) */
  say(text) {
    this.message = text;
    if (text) {
      console.warn("avatar:", text);
      this.options.onMessage?.(text);
    }
  }

  /** The weights the model's expression manager holds now (three-vrm's own values). */
  expressionWeights() {
    const m = this.vrm?.expressionManager;
    if (!m) return {};
    return Object.fromEntries(m.expressions.map((/** @type {any} */ e) => [e.expressionName, m.getValue(e.expressionName)]));
  }

  state() {
    return {
      mode: this.active ? "vrm" : "builtin", renderer: this.backend, reason: this.reason, model: this.title, materials: this.materials,
      message: this.message, frames: this.frames, frameMs: this.frameMs,
    };
  }
}

/**
 * Put the VRM view beside the built-in avatar: load the saved model (config.avatar_model), take
 * .vrm files dropped onto the page, and expose the debug hook. Returns a pose sink that feeds the
 * model while one is shown and `inner` (the built-in view or the orb) otherwise.
 * @param {{vrm_module?: string | null, avatar_model?: string | null}} config /config.json
 * @param {{frame: HTMLElement, schema: any, orders: {emotions: string[], visemes: string[]}, onMessage: (text: string) => void}} options
 */
export function startVrm(config, options) {
  const module = config.vrm_module ? new URL(`../${config.vrm_module}`, import.meta.url).href : null;
  const view = module ? new VrmView(options.frame, options.schema, { module, orders: options.orders, onMessage: options.onMessage }) : null;
  /** @type {{setPose: (pose: Pose) => void} | null} */
  let inner = null;
  const hook = {
    expressionWeights: () => (view ? view.expressionWeights() : {}),
    get ready() { return ready; },
    state: () => (view ? view.state() : { mode: "builtin", renderer: "", model: "", message: "no VRM bundle (scripts/build_vrm.sh)", frames: 0, frameMs: 0 }),
  };
  /** @type {Promise<boolean>} settles when the last load did */
  let ready = Promise.resolve(false);
  Object.defineProperty(window, "__companionAvatar", { value: Object.freeze(hook), configurable: false, writable: false });
  const setReady = (/** @type {Promise<boolean>} */ p) => { ready = p; };
  if (view && config.avatar_model) setReady(view.load(config.avatar_model));
  enableDrop(document.documentElement, async (file) => {
    if (!view) return options.onMessage("This build cannot show VRM models (its three.js bundle was not built).");
    const r = await fetch(`/avatar/model?name=${encodeURIComponent(file.name)}`, {
      method: "POST", body: file, headers: { "Content-Type": "application/octet-stream" },
    });
    const answer = await r.json().catch(() => ({ error: `HTTP ${r.status}` }));
    if (!r.ok) return options.onMessage(`${answer.error || "the model was refused"} (${view.active ? "keeping the current model" : "the built-in avatar stays"}).`);
    const shown = view.load(answer.url);
    setReady(shown);
    await shown;
  });
  return {
    view,
    /** @param {{setPose: (pose: Pose) => void}} v the built-in avatar's view */
    wrap(v) {
      inner = v;
      return this;
    },
    /** @param {Pose} pose */
    setPose(pose) {
      if (view?.active) view.setPose(pose);
      else inner?.setPose(pose);
    },
  };
}

/**
 * Call `onFile` with a .vrm file dropped anywhere on `target`.
 * @param {HTMLElement} target
 * @param {(file: File) => Promise<void> | void} onFile
 */
function enableDrop(target, onFile) {
  const isFile = (/** @type {DragEvent} */ e) => Array.from(e.dataTransfer?.types || []).includes("Files");
  target.addEventListener("dragover", (e) => {
    if (!isFile(e)) return;
    e.preventDefault();
    if (e.dataTransfer) e.dataTransfer.dropEffect = "copy";
  });
  target.addEventListener("drop", (e) => {
    const file = e.dataTransfer?.files?.[0];
    if (!file || !/\.vrm$/i.test(file.name)) return;
    e.preventDefault();
    Promise.resolve(onFile(file)).catch((err) => console.warn("avatar: the dropped model failed:", err));
  });
}
