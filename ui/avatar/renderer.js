// The avatar drawn with WebGPU in the page: it compiles shaders/avatar.wgsl, the same WGSL the
// native renderer (companion/avatar/render.py) draws with, writes one uniform buffer per frame
// from a Pose and draws the shader's layers (its `// layer <fragment entry> <quads>` lines) with
// premultiplied-over blending. The uniform's layout is read from the shader's `struct Pose`
// (whose fields follow companion/avatar/pose.py's POSE_LAYOUT; tests/test_avatar_render.py
// checks that), so the page never re-types it.

export const SHADER_URL = "/shaders/avatar.wgsl";
const PARTS_PER_LAYER = 8; // instance index = 8 * layer + quad (the shader's vs decodes it)
const OVER = { srcFactor: "one", dstFactor: "one-minus-src-alpha", operation: "add" };
const BLEND = { color: OVER, alpha: OVER };
const READ_FORMAT = "rgba8unorm"; // the native renderer's format: readPixels compares with it

/** @typedef {import("./animator.js").Pose} Pose */
/** @typedef {{entry: string, quads: number}} Layer */
/** @typedef {{scalars: string[], emotions: number, visemes: number, floats: number}} PoseLayout */

/**
 * The draws the shader asks for, in order.
 * @param {string} source the WGSL
 * @returns {Layer[]}
 */
export function shaderLayers(source) {
  const layers = [...source.matchAll(/^\/\/ layer (fs_\w+) (\d+)\s*$/gm)].map((m) => ({ entry: m[1], quads: Number(m[2]) }));
  if (!layers.length) throw new Error("avatar.wgsl declares no `// layer` lines");
  return layers;
}

/**
 * The uniform layout of the shader's `struct Pose`: its f32 fields in order, then the weights
 * (N_EMOTIONS emotions, N_VISEMES visemes) packed in vec4s.
 * @param {string} source the WGSL
 * @returns {PoseLayout}
 */
export function poseLayout(source) {
  const body = /struct Pose \{([\s\S]*?)\n\}/.exec(source);
  const emotions = /const N_EMOTIONS: u32 = (\d+)u;/.exec(source);
  const visemes = /const N_VISEMES: u32 = (\d+)u;/.exec(source);
  if (!body || !emotions || !visemes) throw new Error("avatar.wgsl: no struct Pose / N_EMOTIONS / N_VISEMES");
  const scalars = [...body[1].matchAll(/^\s*(\w+): f32,/gm)].map((m) => m[1]);
  const e = Number(emotions[1]), v = Number(visemes[1]);
  const floats = Math.ceil((scalars.length + e + v) / 4) * 4; // padded to 16 bytes
  return { scalars, emotions: e, visemes: v, floats };
}

/**
 * A pose as the uniform block's f32s (missing values are 0; a missing weight list is neutral /
 * closed, as Pose's defaults).
 * @param {Partial<Pose>} pose
 * @param {PoseLayout} layout
 * @param {Float32Array} [out]
 * @returns {Float32Array}
 */
export function packPose(pose, layout, out = new Float32Array(layout.floats)) {
  out.fill(0);
  let i = 0;
  for (const name of layout.scalars) out[i++] = Number(pose[name]) || 0;
  const emo = pose.emotion || [1], vis = pose.viseme || [1];
  for (let k = 0; k < layout.emotions; k++) out[i++] = Number(emo[k]) || 0;
  for (let k = 0; k < layout.visemes; k++) out[i++] = Number(vis[k]) || 0;
  return out;
}

export class AvatarRenderer {
  /**
   * Compile the shader on `device`; throws with the compiler's messages when it does not.
   * @param {GPUDevice} device
   * @param {string} source the WGSL (fetch SHADER_URL)
   */
  static async create(device, source) {
    device.pushErrorScope("validation");
    const module = device.createShaderModule({ label: "avatar.wgsl", code: source });
    const info = await module.getCompilationInfo();
    const errors = info.messages.filter((m) => m.type === "error");
    const scope = await device.popErrorScope();
    if (errors.length || scope) {
      const text = errors.map((m) => `avatar.wgsl:${m.lineNum}:${m.linePos}: ${m.message}`).join("\n");
      throw new Error(text || scope.message);
    }
    return new AvatarRenderer(device, module, source);
  }

  /**
   * @param {GPUDevice} device
   * @param {GPUShaderModule} module
   * @param {string} source
   */
  constructor(device, module, source) {
    this.device = device;
    this.module = module;
    this.layers = shaderLayers(source);
    this.layout = poseLayout(source);
    const visibility = GPUShaderStage.VERTEX | GPUShaderStage.FRAGMENT;
    this.groupLayout = device.createBindGroupLayout({
      entries: [0, 1].map((binding) => ({ binding, visibility, buffer: { type: "uniform" } })),
    });
    this.pipelineLayout = device.createPipelineLayout({ bindGroupLayouts: [this.groupLayout] });
    const usage = GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST;
    this.poseBuf = device.createBuffer({ size: this.layout.floats * 4, usage });
    this.viewBuf = device.createBuffer({ size: 16, usage });
    this.group = device.createBindGroup({
      layout: this.groupLayout,
      entries: [{ binding: 0, resource: { buffer: this.poseBuf } }, { binding: 1, resource: { buffer: this.viewBuf } }],
    });
    /** @type {Map<string, GPURenderPipeline[]>} per target format */
    this.pipelines = new Map();
    this.poseData = new Float32Array(this.layout.floats);
    this.viewData = new Float32Array(4);
    /** @type {{width: number, height: number, row: number, texture: GPUTexture, buffer: GPUBuffer} | null} */
    this.target = null;
  }

  /** @param {GPUTextureFormat} format */
  pipelinesFor(format) {
    let list = this.pipelines.get(format);
    if (!list) {
      list = this.layers.map(({ entry }) => this.device.createRenderPipeline({
        label: `avatar ${entry}`,
        layout: this.pipelineLayout,
        vertex: { module: this.module, entryPoint: "vs" },
        fragment: { module: this.module, entryPoint: entry, targets: [{ format, blend: BLEND }] },
        primitive: { topology: "triangle-list" },
      }));
      this.pipelines.set(format, list);
    }
    return list;
  }

  /**
   * Record the pose drawn into `target` (width x height, cleared to transparent).
   * @param {GPUCommandEncoder} encoder
   * @param {GPUTextureView} target
   * @param {GPUTextureFormat} format
   * @param {number} width
   * @param {number} height
   * @param {Partial<Pose>} pose
   */
  encode(encoder, target, format, width, height, pose) {
    const q = this.device.queue;
    q.writeBuffer(this.poseBuf, 0, packPose(pose, this.layout, this.poseData));
    this.viewData.set([width, height, 2 / Math.min(width, height), 0]);
    q.writeBuffer(this.viewBuf, 0, this.viewData);
    const pass = encoder.beginRenderPass({
      colorAttachments: [{ view: target, clearValue: [0, 0, 0, 0], loadOp: "clear", storeOp: "store" }],
    });
    pass.setBindGroup(0, this.group);
    this.pipelinesFor(format).forEach((pipeline, i) => {
      pass.setPipeline(pipeline);
      pass.draw(6, this.layers[i].quads, 0, PARTS_PER_LAYER * i);
    });
    pass.end();
  }

  /**
   * Draw the pose into a canvas configured for this device; resolves when the GPU is done.
   * @param {GPUCanvasContext} context
   * @param {GPUTextureFormat} format the context's format
   * @param {Partial<Pose>} pose
   * @returns {Promise<void>}
   */
  draw(context, format, pose) {
    const texture = context.getCurrentTexture();
    const encoder = this.device.createCommandEncoder();
    this.encode(encoder, texture.createView(), format, texture.width, texture.height, pose);
    this.device.queue.submit([encoder.finish()]);
    return this.device.queue.onSubmittedWorkDone();
  }

  /**
   * The pose drawn offscreen and read back: width x height premultiplied RGBA rows, as the
   * native renderer returns them (the gallery test compares the two). Also how a page whose
   * canvas cannot present WebGPU (headless Chromium) shows frames: see view.js.
   * @param {Partial<Pose>} pose
   * @param {number} width
   * @param {number} height
   * @returns {Promise<Uint8Array>}
   */
  async readPixels(pose, width, height) {
    const device = this.device;
    if (!this.target || this.target.width !== width || this.target.height !== height) {
      this.dropTarget();
      const row = Math.ceil((width * 4) / 256) * 256; // copies need 256-byte rows
      this.target = {
        width, height, row,
        texture: device.createTexture({
          size: [width, height], format: READ_FORMAT,
          usage: GPUTextureUsage.RENDER_ATTACHMENT | GPUTextureUsage.COPY_SRC,
        }),
        buffer: device.createBuffer({ size: row * height, usage: GPUBufferUsage.COPY_DST | GPUBufferUsage.MAP_READ }),
      };
    }
    const { texture, buffer, row } = this.target;
    const encoder = device.createCommandEncoder();
    this.encode(encoder, texture.createView(), READ_FORMAT, width, height, pose);
    encoder.copyTextureToBuffer({ texture }, { buffer, bytesPerRow: row, rowsPerImage: height }, [width, height]);
    device.queue.submit([encoder.finish()]);
    await buffer.mapAsync(GPUMapMode.READ);
    const mapped = new Uint8Array(buffer.getMappedRange());
    const out = new Uint8Array(width * height * 4);
    if (row === width * 4) out.set(mapped.subarray(0, out.length));
    else for (let y = 0; y < height; y++) out.set(mapped.subarray(y * row, y * row + width * 4), y * width * 4);
    buffer.unmap();
    return out;
  }

  dropTarget() {
    if (!this.target) return;
    this.target.texture.destroy();
    this.target.buffer.destroy();
    this.target = null;
  }

  destroy() {
    this.dropTarget();
    this.poseBuf.destroy();
    this.viewBuf.destroy();
  }
}

/**
 * Premultiplied RGBA -> straight alpha, in place (what ImageData holds). Only the partly
 * transparent pixels (the avatar's edges) change.
 * @param {Uint8Array | Uint8ClampedArray} px
 */
export function unpremultiply(px) {
  for (let i = 3; i < px.length; i += 4) {
    const a = px[i];
    if (a === 255 || a === 0) continue;
    const k = 255 / a;
    px[i - 3] = Math.min(255, px[i - 3] * k + 0.5);
    px[i - 2] = Math.min(255, px[i - 2] * k + 0.5);
    px[i - 1] = Math.min(255, px[i - 1] * k + 0.5);
  }
  return px;
}

/**
 * A device and a compiled renderer, or null where the page has no WebGPU adapter.
 * @param {{shaderUrl?: string, powerPreference?: GPUPowerPreference}} [options]
 * @returns {Promise<{device: GPUDevice, adapter: GPUAdapter, renderer: AvatarRenderer} | null>}
 */
export async function openRenderer(options = {}) {
  if (!navigator.gpu) return null;
  const adapter = await navigator.gpu.requestAdapter({ powerPreference: options.powerPreference || "high-performance" });
  if (!adapter) return null;
  const device = await adapter.requestDevice();
  const response = await fetch(options.shaderUrl || SHADER_URL, { cache: "no-store" });
  if (!response.ok) throw new Error(`avatar shader: HTTP ${response.status}`);
  const renderer = await AvatarRenderer.create(device, await response.text());
  return { device, adapter, renderer };
}
