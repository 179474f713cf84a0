// The page's model executor: runs a plan (companion/gpu/plan.py) with navigator.gpu. It
// knows buffers, pipelines and dispatches, not transformers, and mirrors the native executor
// (companion/gpu/executor.py) step for step: the same uniform block packed by field name, the
// same prefill chunks of max_batch tokens, one command buffer and one submit per chunk, the
// forward pass and GPU sampling of the last chunk in one compute pass, and a readback of only
// the 4-byte token id (or of the last position's logits, for parity checks).
//
// The kernels come composed in the plan (companion/gpu/shaders.py composes them, once, for
// both executors): `plan.modules[key]` = {name, code, line_map} per variant, and each pipeline
// names its `module`. This page only compiles them and maps error lines through the line map.

/** Limits worth raising from the WebGPU defaults to what the adapter offers (as companion/gpu/adapters.py). */
const WANTED_LIMITS = [
  "maxStorageBufferBindingSize", "maxBufferSize", "maxStorageBuffersPerShaderStage",
  "maxComputeWorkgroupStorageSize", "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupSizeX", "maxComputeWorkgroupsPerDimension",
];
const PARALLEL_FETCHES = 4; // weight downloads in flight (loopback: more only costs memory)
const STEP_SLOT = 256; // bytes per uniform block of a decode chain (the binding offset alignment)
const MAX_CHAIN = 16; // decode steps one chained generate may ask for (the bridge's limit)

/**
 * The step uniform's sampling fields from a generate request's `sampling` (the app's defaults
 * where a knob is absent), for the plain path and each step of a chain alike.
 * @param {any} s
 */
const samplingFields = (s) => ({
  seed: Number(s.seed || 0) >>> 0, temperature: s.temperature ?? 0.7, top_k: s.top_k ?? 40, top_p: s.top_p ?? 0.95,
  min_p: s.min_p ?? 0.05, repeat_penalty: s.repeat_penalty ?? 1.0,
});

/** "max-buffer-size" -> "maxBufferSize" (plan limits use the spec's hyphenated names). */
const camel = (s) => s.replace(/-([a-z])/g, (_m, c) => c.toUpperCase());

/**
 * @typedef {Object} ExecutorContext  (ui/engine-link.js executorContext)
 * @property {(url?: string) => Promise<any>} fetchPlan
 * @property {(offset: number, length: number) => Promise<ArrayBuffer>} fetchModelRange
 */

/**
 * A composed kernel as served in the plan JSON (companion.gpu.shaders.ShaderSource.to_json),
 * or the error composing it gave.
 * @typedef {Object} ServedModule
 * @property {string} name   kernel file, e.g. "matmul.wgsl"
 * @property {string} [code] composed WGSL
 * @property {Array<[string, number]>} [line_map] composed line i+1 -> [file, line in file]
 * @property {string} [error] why it could not be composed
 */

/**
 * "file.wgsl:line:col" of a 1-based line (and column) of a served module's code, through its
 * line map: the text companion.gpu.shaders.describe_error writes for the native executor.
 * @param {ServedModule} mod @param {number} line @param {number|string} col
 */
export function wgslLocation(mod, line, col) {
  const map = mod.line_map || [];
  const [file, ln] = line >= 1 && line <= map.length ? map[line - 1] : [mod.name, line];
  return `${file}:${ln}:${col}`;
}

/** A pipeline-creation message with every `:LINE:COL` of the composed code mapped. */
function relocate(mod, message) {
  return String(message).replace(/(?:[\w.-]*wgsl)?:(\d+):(\d+)/g, (_m, line, col) => wgslLocation(mod, Number(line), col));
}

/**
 * Compile a served module; throw an Error naming the .wgsl file and line of each error.
 * @param {GPUDevice} device @param {ServedModule} mod
 * @returns {Promise<GPUShaderModule>}
 */
async function compileModule(device, mod) {
  if (mod.error) throw new Error(mod.error);
  device.pushErrorScope("validation");
  const module = device.createShaderModule({ label: mod.name, code: /** @type {string} */ (mod.code) });
  const info = await module.getCompilationInfo();
  const scoped = await device.popErrorScope();
  const errors = info.messages.filter((m) => m.type === "error");
  if (errors.length) {
    const text = errors.slice(0, 5).map((m) => `${wgslLocation(mod, m.lineNum, m.linePos)}: ${m.message}`).join("\n");
    throw new Error(`WGSL compile error in ${mod.name}:\n${text}`);
  }
  if (scoped) throw new Error(`${mod.name}: ${relocate(mod, scoped.message)}`);
  return module;
}

/**
 * Why this page cannot run `plan`, or null. The plan's version is the server's; what the page
 * checks is what it relies on: the composed kernels, one for every pipeline.
 * @param {any} plan @returns {string|null}
 */
function unrunnable(plan) {
  if (!plan || typeof plan !== "object") return "it is not a JSON object";
  for (const k of ["model", "uniform", "buffers", "pipelines", "programs"]) if (!plan[k]) return `it has no ${k}`;
  const modules = plan.modules;
  if (!modules || typeof modules !== "object") return "it carries no composed kernels (modules)";
  for (const p of plan.pipelines) {
    const mod = Object.hasOwn(modules, p.module) ? modules[p.module] : null;
    if (!mod) return `pipeline ${p.name} names no served module (${p.module})`;
    if (!mod.error && (typeof mod.code !== "string" || !Array.isArray(mod.line_map))) return `module ${p.module} has no code or line map`;
  }
  return null;
}

/**
 * The subgroup size where every subgroup of a 256- and a 64-invocation workgroup has that one
 * size (a power of two, 4..128) and holds consecutive invocations (invocation i is lane i % n):
 * what the plan's subgroup reductions assume when the core passes them SG
 * (shaders/_reduce_sg.wgsl; companion.gpu.adapters.probe_subgroups does the same natively).
 * WebGPU promises neither, so it is measured on a device of its own (from a second adapter
 * object for the same GPU: an adapter opens one device); 0 where it does not hold or the
 * adapter has no subgroups.
 * @param {GPUAdapter} adapter the adapter the plan is for
 */
export async function probeSubgroups(adapter) {
  if (!adapter.features.has("subgroups")) return 0;
  const sizes = [256, 64];
  const total = sizes.reduce((a, b) => a + b, 0);
  /** @type {GPUDevice|null} */
  let device = null;
  try {
    const twin = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
    const same = (/** @type {any} */ a, /** @type {any} */ b) => ["vendor", "architecture", "device", "description"].every((k) => (a.info || {})[k] === (b.info || {})[k]);
    if (!twin || !twin.features.has("subgroups") || !same(twin, adapter)) return 0;
    device = await twin.requestDevice({ requiredFeatures: ["subgroups"], label: "companion subgroup probe" });
    const out = device.createBuffer({ size: 4 * total, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
    const read = device.createBuffer({ size: 4 * total, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass();
    let off = 0;
    for (const wg of sizes) {
      const code = `enable subgroups;
@group(0) @binding(0) var<storage, read_write> out: array<u32>;
@compute @workgroup_size(${wg})
fn main(@builtin(local_invocation_index) lid: u32, @builtin(subgroup_size) n: u32,
        @builtin(subgroup_invocation_id) lane: u32) {
    out[${off}u + lid] = (n << 16u) | lane;
}`;
      const pipeline = device.createComputePipeline({ layout: "auto", compute: { module: device.createShaderModule({ code }), entryPoint: "main" } });
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: out } }] }));
      pass.dispatchWorkgroups(1);
      off += wg;
    }
    pass.end();
    enc.copyBufferToBuffer(out, 0, read, 0, 4 * total);
    device.queue.submit([enc.finish()]);
    await read.mapAsync(GPUMapMode.READ);
    const got = new Uint32Array(read.getMappedRange().slice(0));
    const n = got[0] >>> 16;
    if (n < 4 || n > 128 || (n & (n - 1)) !== 0) return 0;
    let i = 0;
    for (const wg of sizes) {
      for (let lid = 0; lid < wg; lid++, i++) if (got[i] >>> 16 !== n || (got[i] & 0xffff) !== lid % n) return 0;
    }
    return n;
  } catch (e) {
    return 0;  // no device with subgroups, or a compiler without the builtins: no fast path
  } finally {
    if (device) device.destroy();
  }
}

export class WebGPUExecutor {
  /** @param {ExecutorContext} ctx */
  constructor(ctx) {
    this.ctx = ctx;
    /** @type {string} */
    this.adapter = "";
    /** @type {GPUDevice|null} */
    this.device = null;
    this.plan = null;
    this.nPast = 0;
    /** @type {string|null} why the executor can no longer run (device lost, GPU error) */
    this.failure = null;
    /** @type {((reason: string) => void)|null} set by the host: report a failure on its own */
    this.onfailure = null;
    this.stats = { submits: 0, dispatches: 0, readbackBytes: 0, loadMs: 0 };
  }

  // --- loading -------------------------------------------------------------------------------

  /**
   * Fetch the plan, open a device, compile the pipelines, upload the weights.
   * @param {{plan_url?: string, model_url?: string, n_ctx?: number}} req
   * @param {(phase: string, fraction: number, detail?: string) => void} progress
   */
  async load(req, progress = () => {}) {
    const t0 = performance.now();
    this.dispose();
    this.failure = null;
    progress("probing", 0, "looking for a WebGPU adapter");
    if (!("gpu" in navigator) || !navigator.gpu) {
      throw new Error("WebGPU is not available in this browser (navigator.gpu is missing)");
    }
    const adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
    if (!adapter) throw new Error("WebGPU offers no adapter here (navigator.gpu.requestAdapter() gave null)");
    const info = adapter.info || {};
    this.adapter = [info.description || info.device || info.vendor || "WebGPU adapter",
      info.architecture ? `(${info.architecture})` : ""].join(" ").trim() + " via WebGPU";
    // the plan is built for this adapter: its kernel variants follow the features offered
    const base = req.plan_url || "/plan.json";
    const offered = [...adapter.features].sort().join(",");
    const query = new URLSearchParams({ features: offered });
    for (const k of ["vendor", "architecture", "device", "description"]) if (info[k]) query.set(k, String(info[k]));
    // the core checks the model fits these before anything is loaded (a one-line reason if not)
    for (const k of ["max-storage-buffer-binding-size", "max-buffer-size"]) {
      const v = adapter.limits[camel(k)];
      if (v !== undefined) query.set(k, String(v));
    }
    // where subgroups are one size and in invocation order, the plan's reductions use that
    const sg = await probeSubgroups(adapter);
    if (sg) query.set("subgroup-size", String(sg));
    const plan = await this.ctx.fetchPlan(`${base}${base.includes("?") ? "&" : "?"}${query}`);
    const why = unrunnable(plan);
    if (why) throw new Error(`this page cannot run the server's plan (version ${plan && plan.version}): ${why}; reload it`);
    this.plan = plan;

    const missing = (plan.features || []).filter((f) => !adapter.features.has(f));
    if (missing.length) throw new Error(`the adapter ${this.adapter} lacks WebGPU features ${missing.join(", ")}`);
    /** @type {Record<string, number>} */
    const requiredLimits = {};
    for (const k of WANTED_LIMITS) if (adapter.limits[k] !== undefined) requiredLimits[k] = adapter.limits[k];
    for (const [name, need] of Object.entries(plan.limits || {})) {
      const key = camel(name);
      const have = adapter.limits[key];
      if (have === undefined) continue;
      if (have < need) throw new Error(`this plan needs ${name} >= ${need}, the adapter ${this.adapter} offers ${have}`);
      requiredLimits[key] = Math.max(requiredLimits[key] || 0, need);
    }
    const device = await adapter.requestDevice({ requiredFeatures: plan.features || [], requiredLimits, label: "companion" });
    this.device = device;
    device.lost.then((lost) => {
      if (this.device !== device || lost.reason === "destroyed") return;
      this.fail(`the GPU device was lost (${lost.message || lost.reason}); switch engine or reload`);
    });
    device.addEventListener("uncapturederror", (ev) => {
      const e = /** @type {GPUUncapturedErrorEvent} */ (ev).error;
      console.error("webgpu:", e.message);
      this.fail(`a GPU error occurred: ${e.message}`);
    });

    await this.compile(plan, progress);
    this.createBuffers(plan);
    await this.upload(plan, progress);
    this.createBindGroups(plan);
    this.nCtx = Number(plan.model.n_ctx);
    this.maxBatch = Number(plan.model.max_batch);
    this.nVocab = Number(plan.model.n_vocab);
    this.maxHist = Number(plan.model.max_hist);
    this.nPast = 0;
    await device.queue.onSubmittedWorkDone();
    if (this.failure) throw new Error(this.failure);
    this.stats.loadMs = performance.now() - t0;
    progress("ready", 1, "");
    return { adapter: this.adapter, n_past: 0 };
  }

  /** @param {any} plan @param {(phase: string, f: number, detail?: string) => void} progress */
  async compile(plan, progress) {
    const device = /** @type {GPUDevice} */ (this.device);
    // one module per variant the plan's pipelines use, as the native executor
    /** @type {Map<string, GPUShaderModule>} */
    const modules = new Map();
    for (const p of plan.pipelines) {
      if (!modules.has(p.module)) modules.set(p.module, await compileModule(device, plan.modules[p.module]));
    }
    const kinds = { "uniform": "uniform", "read-only-storage": "read-only-storage", "storage": "storage" };
    /** @type {Map<string, {pipeline: GPUComputePipeline, layout: GPUBindGroupLayout}>} */
    this.pipelines = new Map();
    let done = 0;
    progress("loading", 0, `compiling ${plan.pipelines.length} kernels`);
    // createComputePipelineAsync lets the GPU process compile several at once
    await Promise.all(plan.pipelines.map(async (p) => {
      const layout = device.createBindGroupLayout({
        label: p.name,
        entries: p.bindings.map((b) => ({ binding: b.binding, visibility: GPUShaderStage.COMPUTE, buffer: { type: kinds[b.type] } })),
      });
      /** @type {Record<string, number>} */
      const constants = {};
      for (const [k, v] of Object.entries(p.constants || {})) constants[k] = typeof v === "boolean" ? (v ? 1 : 0) : Number(v);
      let pipeline;
      try {
        pipeline = await device.createComputePipelineAsync({
          label: p.name,
          layout: device.createPipelineLayout({ label: p.name, bindGroupLayouts: [layout] }),
          compute: { module: /** @type {GPUShaderModule} */ (modules.get(p.module)), entryPoint: p.entry_point || "main", constants },
        });
      } catch (e) {
        throw new Error(`kernel ${p.name} (${p.shader}) failed to build: ${relocate(plan.modules[p.module], e.message)}`);
      }
      this.pipelines.set(p.name, { pipeline, layout });
      done += 1;
      progress("loading", 0.1 * done / plan.pipelines.length, `compiled ${done}/${plan.pipelines.length} kernels`);
    }));
  }

  /** @param {any} plan */
  createBuffers(plan) {
    const device = /** @type {GPUDevice} */ (this.device);
    /** @type {Map<string, GPUBuffer>} */
    this.buffers = new Map();
    for (const b of plan.buffers) {
      const usage = GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC | (b.usage === "uniform" ? GPUBufferUsage.UNIFORM : GPUBufferUsage.STORAGE);
      this.buffers.set(b.name, device.createBuffer({ label: b.name, size: b.size, usage }));
    }
    const fields = plan.uniform.fields;
    this.uniform = new DataView(new ArrayBuffer(plan.uniform.size));
    /** @type {Map<string, {type: string, offset: number}>} */
    this.fields = new Map(fields.map((f) => [f.name, f]));
    /** @type {Map<number, GPUBuffer>} mappable staging buffers by size */
    this.staging = new Map();
    // a decode chain's uniform blocks, one 256-byte slot per step
    this.chainSteps = device.createBuffer({ label: "chain steps", size: MAX_CHAIN * STEP_SLOT, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  }

  /**
   * Download each weight buffer's bytes (GGUF byte ranges, builder blobs) and write them.
   * @param {any} plan @param {(phase: string, f: number, detail?: string) => void} progress
   */
  async upload(plan, progress) {
    const device = /** @type {GPUDevice} */ (this.device);
    const todo = plan.buffers.filter((b) => b.source);
    const total = todo.reduce((s, b) => s + b.size, 0) || 1;
    let done = 0;
    let next = 0;
    const offsets = plan.gguf_offsets || {};
    const fetchOne = async (b) => {
      const src = b.source;
      let data;
      if (src.kind === "gguf") {
        if (offsets[src.tensor] === undefined) throw new Error(`the plan gives no file offset for GGUF tensor ${src.tensor}`);
        data = await this.ctx.fetchModelRange(offsets[src.tensor] + (src.offset || 0), src.size);
      } else {
        const r = await fetch(`/plan/blob/${encodeURIComponent(src.name)}`, { cache: "no-store" });
        if (!r.ok) throw new Error(`weights ${src.name}: HTTP ${r.status} ${await r.text()}`);
        data = await r.arrayBuffer();
      }
      if (data.byteLength > b.size) throw new Error(`weights for ${b.name} are ${data.byteLength} bytes, the buffer holds ${b.size}`);
      let bytes = new Uint8Array(data);
      if (bytes.byteLength % 4) {
        const padded = new Uint8Array(bytes.byteLength + 4 - (bytes.byteLength % 4));
        padded.set(bytes);
        bytes = padded;
      }
      device.queue.writeBuffer(/** @type {GPUBuffer} */ (this.buffers.get(b.name)), 0, bytes);
      done += b.size;
      progress("loading", 0.1 + 0.9 * done / total, `uploading weights ${Math.round(done / 1048576)}/${Math.round(total / 1048576)} MiB`);
    };
    const worker = async () => {
      while (next < todo.length) {
        const b = todo[next++];
        await fetchOne(b);
        if (this.failure) throw new Error(this.failure);
      }
    };
    await Promise.all(Array.from({ length: PARALLEL_FETCHES }, worker));
  }

  /** Bind groups are static: one per dispatch, created once. @param {any} plan */
  createBindGroups(plan) {
    const device = /** @type {GPUDevice} */ (this.device);
    /** @type {Map<string, Array<{pipeline: GPUComputePipeline, group: GPUBindGroup, workgroups: any[], layout: GPUBindGroupLayout, plan: any}>>} */
    this.programs = new Map();
    /** @type {Map<string, any[]>} a decode chain's per-step copies of programs (chainProgram) */
    this.chainPrograms = new Map();
    const maxGroups = device.limits.maxComputeWorkgroupsPerDimension;
    for (const [name, prog] of Object.entries(plan.programs)) {
      this.programs.set(name, prog.dispatches.map((d) => {
        const p = this.pipelines.get(d.pipeline);
        if (!p) throw new Error(`dispatch ${d.label} names an unknown pipeline ${d.pipeline}`);
        // the largest count each dimension can take (variables at their max_vars)
        const most = d.workgroups.map((w) => (typeof w === "number" ? w : Math.ceil((prog.max_vars || {})[w.var] / (w.per || 1)) || 0));
        if (most.some((n) => n > maxGroups)) {
          throw new Error(`dispatch ${d.label} needs ${most.join("x")} workgroups; this adapter allows ${maxGroups} per dimension`);
        }
        return { pipeline: p.pipeline, group: this.bindGroup(d, p.layout), workgroups: d.workgroups, layout: p.layout, plan: d };
      }));
    }
  }

  /**
   * The bind group of plan dispatch `d`, with the buffers named in `swap` bound in place of
   * theirs (name -> [buffer, offset, size]): a decode chain's per-step uniform slots and ids.
   * @param {any} d @param {GPUBindGroupLayout} layout
   * @param {Record<string, [GPUBuffer, number, number|undefined]>} [swap]
   */
  bindGroup(d, layout, swap = {}) {
    const entries = d.bindings.map((bb) => {
      const [buffer, offset, size] = swap[bb.buffer] || [this.buffers.get(bb.buffer), bb.offset || 0, bb.size];
      if (!buffer) throw new Error(`dispatch ${d.label} binds an unknown buffer ${bb.buffer}`);
      return { binding: bb.binding, resource: { buffer, offset, size: size ?? buffer.size - offset } };
    });
    return /** @type {GPUDevice} */ (this.device).createBindGroup({ label: d.label || d.pipeline, layout, entries });
  }

  // --- running -------------------------------------------------------------------------------

  /** Pack named fields into the uniform block (written with the next run). */
  setUniforms(values) {
    for (const [k, v] of Object.entries(values)) {
      const f = this.fields.get(k);
      if (!f) throw new Error(`the plan's uniform block has no field ${k}`);
      if (f.type === "u32") this.uniform.setUint32(f.offset, Number(v) >>> 0, true);
      else this.uniform.setFloat32(f.offset, Number(v), true);
    }
  }

  /** Queue a write of host data into a named buffer (no submit). */
  write(name, data, offset = 0) {
    this.device.queue.writeBuffer(this.buffers.get(name), offset, data);
  }

  /** @param {number} size */
  stagingBuffer(size) {
    const key = Math.max(256, Math.ceil(size / 256) * 256);
    let b = this.staging.get(key);
    if (!b) {
      b = this.device.createBuffer({ label: `readback ${key}`, size: key, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
      this.staging.set(key, b);
    }
    return b;
  }

  /**
   * Record the programs into one compute pass, submit once, and return the bytes of `read`
   * ([buffer, offset, size]) or of the last program's readback, if any.
   * @param {Array<[string, Record<string, number>]>} programs
   * @param {[string, number, number]|null} read
   * @returns {Promise<ArrayBuffer|null>}
   */
  async run(programs, read = null) {
    this.check();
    const device = /** @type {GPUDevice} */ (this.device);
    device.queue.writeBuffer(this.buffers.get(this.plan.uniform.buffer), 0, this.uniform.buffer);
    if (read === null && programs.length) {
      const rb = this.plan.programs[programs[programs.length - 1][0]].readback;
      if (rb) read = [rb.buffer, rb.offset || 0, rb.size];
    }
    return this.submit(programs.map(([name, vars]) => [this.programs.get(name), vars]), read);
  }

  /**
   * Record dispatch lists (workgroup counts from their `vars`) into one compute pass, copy
   * `read` ([buffer, offset, size]) out after it, submit once and return those bytes (null
   * without `read`).
   * @param {Array<[any[], Record<string, number>]>} lists
   * @param {[string, number, number]|null} read
   * @returns {Promise<ArrayBuffer|null>}
   */
  async submit(lists, read) {
    const device = /** @type {GPUDevice} */ (this.device);
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass();
    let n = 0;
    let current = null;
    for (const [dispatches, vars] of lists) {
      for (const d of dispatches) {
        const [x, y, z] = d.workgroups.map((w) => (typeof w === "number" ? w : Math.ceil(vars[w.var] / (w.per || 1))));
        if (x * y * z === 0) continue;
        if (current !== d.pipeline) pass.setPipeline((current = d.pipeline));
        pass.setBindGroup(0, d.group);
        pass.dispatchWorkgroups(x, y, z);
        n += 1;
      }
    }
    pass.end();
    let staging = null;
    if (read) {
      staging = this.stagingBuffer(read[2]);
      enc.copyBufferToBuffer(this.buffers.get(read[0]), read[1], staging, 0, read[2]);
    }
    device.queue.submit([enc.finish()]);
    this.stats.submits += 1;
    this.stats.dispatches += n;
    if (!staging || !read) return null;
    try {
      await staging.mapAsync(GPUMapMode.READ, 0, read[2]);
    } catch (e) {
      this.fail(this.failure || `reading back from the GPU failed (${e.message}); the device may be lost`);
      throw new Error(/** @type {string} */ (this.failure));
    }
    const out = staging.getMappedRange(0, read[2]).slice(0);
    staging.unmap();
    this.stats.readbackBytes += read[2];
    return out;
  }

  /**
   * Step slot `j`'s copy of program `name`: "step" bound to the j-th 256-byte uniform slot of
   * the chain's scratch buffer, and (decode) the ids read from the plan's "chain" buffer.
   * Made once per slot and kept. @param {string} name @param {number} j
   */
  chainProgram(name, j) {
    const key = `${name}#${j}`;
    let list = this.chainPrograms.get(key);
    if (!list) {
      const io = this.plan.io;
      /** @type {Record<string, [GPUBuffer, number, number|undefined]>} */
      const swap = { [this.plan.uniform.buffer]: [/** @type {GPUBuffer} */ (this.chainSteps), j * STEP_SLOT, this.plan.uniform.size] };
      if (name === "decode") swap[io.tokens] = [/** @type {GPUBuffer} */ (this.buffers.get(io.chain)), 0, undefined];
      list = this.programs.get(name).map((d) => ({ ...d, group: this.bindGroup(d.plan, d.layout, swap) }));
      this.chainPrograms.set(key, list);
    }
    return list;
  }

  /**
   * `steps` decode steps in one submit, each feeding the id the one before sampled on the GPU
   * (as the native engine's run-ahead): the plan's "chain" buffer holds the penalty history,
   * which ends with the input id, then each step's id; step j embeds chain[L - 1 + j], samples
   * into chain[L + j] and reads its penalty window from the same buffer. One readback of the
   * k ids. @param {any} req
   */
  async chain(req) {
    const io = this.plan.io;
    if (!this.plan.programs.sample_chain || !io.chain) throw new Error("this plan has no decode chain (sample_chain)");
    const k = Math.min(Number(req.steps), MAX_CHAIN, this.nCtx - this.nPast);
    const s = req.sampling || {};
    const base = (req.history || []).slice(-this.maxHist).map(Number);
    if (!base.length || base[base.length - 1] !== Number(req.ids[0])) throw new Error("a chained generate's history must end with its input id");
    const L = base.length;
    const penalty = (s.repeat_penalty ?? 1.0) !== 1.0 && (s.repeat_last_n ?? 64) > 0;
    const window = penalty ? Math.min(s.repeat_last_n ?? 64, this.maxHist) : 0;
    this.write(io.chain, new Uint32Array(base));
    const blocks = new Uint8Array(k * STEP_SLOT);
    const own = new Uint8Array(this.uniform.buffer);
    const saved = own.slice();  // the blocks are packed in the plain path's block: put back after
    for (let j = 0; j < k; j++) {
      const nHist = Math.min(L + j, window);
      this.setUniforms({
        ...samplingFields(s), n_past: this.nPast + j, n_tokens: 1, rng_step: (req.step || 0) + j,
        n_hist: nHist, tok_in: L - 1 + j, tok_out: L + j, hist_at: L + j - nHist,
      });
      blocks.set(own, j * STEP_SLOT);
    }
    own.set(saved);
    const device = /** @type {GPUDevice} */ (this.device);
    device.queue.writeBuffer(/** @type {GPUBuffer} */ (this.chainSteps), 0, blocks);
    /** @type {Array<[any[], Record<string, number>]>} */
    const lists = [];
    for (let j = 0; j < k; j++) lists.push([this.chainProgram("decode", j), { n_tokens: 1 }], [this.chainProgram("sample_chain", j), { n_tokens: 1 }]);
    const raw = await this.submit(lists, [io.chain, 4 * L, 4 * k]);
    this.nPast += k;
    return Array.from(new Uint32Array(/** @type {ArrayBuffer} */ (raw)));
  }

  check() {
    if (this.failure) throw new Error(this.failure);
    if (!this.device || !this.plan) throw new Error("the WebGPU executor has no model loaded (engine_load first)");
  }

  /** @param {string} reason */
  fail(reason) {
    if (this.failure) return;
    this.failure = reason;
    if (this.onfailure) this.onfailure(reason);
  }

  /** @param {number[]} ids */
  chunks(ids) {
    const out = [];
    for (let i = 0; i < ids.length; i += this.maxBatch) out.push(ids.slice(i, i + this.maxBatch));
    return out;
  }

  /**
   * Write the chunk's ids and step values, run `program` (+ `tail`) in one submit.
   * @param {number[]} chunk @param {string} program @param {string[]} tail
   * @param {[string, number, number]|null} read
   */
  feed(chunk, program, tail = [], read = null) {
    this.write(this.plan.io.tokens, new Uint32Array(chunk));
    this.setUniforms({ n_past: this.nPast, n_tokens: chunk.length });
    const vars = { n_tokens: chunk.length };
    const p = this.run([[program, vars], ...tail.map((t) => /** @type {[string, any]} */ ([t, vars]))], read);
    this.nPast += chunk.length;
    return p;
  }

  /**
   * Append ids; answer the GPU-sampled next id, or the last position's logits.
   * @param {{ids: number[], sampling?: any, step?: number, history?: number[], want?: string}} req
   */
  async generate(req) {
    this.check();
    const t0 = performance.now();
    const ids = req.ids.map(Number);
    if (!ids.length) throw new Error("generate needs at least one token");
    if (req.n_past !== undefined && req.n_past !== null) {
      // positions past the core's count were run ahead and not used: dropped
      if (Number(req.n_past) > this.nPast) throw new Error(`the core counts ${req.n_past} positions, the page holds ${this.nPast} (was the page reloaded?)`);
      this.nPast = Number(req.n_past);
    }
    if (this.nPast + ids.length > this.nCtx) {
      throw new Error(`context full: ${this.nPast} + ${ids.length} tokens > n_ctx ${this.nCtx}`);
    }
    if ((req.steps || 1) > 1 && req.want !== "logits" && ids.length === 1) {
      const got = await this.chain(req);
      return { id: got[0], ids: got, n_past: this.nPast, ms: performance.now() - t0 };
    }
    const chunks = this.chunks(ids);
    const last = chunks.pop();
    if (req.want === "logits") {
      for (const c of chunks) this.feed(c, "prefill");
      const raw = await this.feed(last, last.length === 1 ? "decode" : "prefill", [], [this.plan.io.logits, 0, this.nVocab * 4]);
      return { logits: new Float32Array(raw), n_past: this.nPast, ms: performance.now() - t0 };
    }
    const s = req.sampling || {};
    const hist = (req.history || []).slice(-this.maxHist);
    if (hist.length) this.write(this.plan.io.history, new Uint32Array(hist));
    this.setUniforms({ ...samplingFields(s), rng_step: req.step || 0, n_hist: hist.length });
    for (const c of chunks) this.feed(c, "prefill");
    // a decode step's head leaves candidates for the greedy sampler ("sample_decode")
    const one = last.length === 1;
    const raw = await this.feed(last, one ? "decode" : "prefill", [one && this.plan.programs.sample_decode ? "sample_decode" : "sample"]);
    const id = new Uint32Array(/** @type {ArrayBuffer} */ (raw))[0];
    return { id, n_past: this.nPast, ms: performance.now() - t0 };
  }

  /**
   * Diagnostics: run each dispatch of `program` in its own submit and time it (ms per
   * pipeline, summed). Leaves n_past unchanged; the KV row at n_past is scratch.
   * @param {string} program @param {Record<string, number>} vars @param {number} repeats
   */
  async profile(program = "decode", vars = { n_tokens: 1 }, repeats = 3) {
    this.check();
    const device = /** @type {GPUDevice} */ (this.device);
    this.setUniforms({ n_past: this.nPast, n_tokens: vars.n_tokens || 1 });
    device.queue.writeBuffer(this.buffers.get(this.plan.uniform.buffer), 0, this.uniform.buffer);
    const dispatches = this.programs.get(program);
    const meta = this.plan.programs[program].dispatches;
    /** @type {Record<string, number>} */
    const ms = {};
    for (let r = 0; r < repeats; r++) {
      for (let i = 0; i < dispatches.length; i++) {
        const d = dispatches[i];
        const [x, y, z] = d.workgroups.map((w) => (typeof w === "number" ? w : Math.ceil(vars[w.var] / (w.per || 1))));
        const enc = device.createCommandEncoder();
        const pass = enc.beginComputePass();
        pass.setPipeline(d.pipeline);
        pass.setBindGroup(0, d.group);
        pass.dispatchWorkgroups(x, y, z);
        pass.end();
        const t0 = performance.now();
        device.queue.submit([enc.finish()]);
        await device.queue.onSubmittedWorkDone();
        const key = meta[i].pipeline;
        ms[key] = (ms[key] || 0) + (performance.now() - t0) / repeats;
      }
    }
    return ms;
  }

  /** Forget cached positions from n_keep on (the rows are simply overwritten later). */
  async reset(req) {
    this.nPast = Math.max(0, Math.min(Number(req.n_keep) || 0, this.nPast));
    return { n_past: this.nPast };
  }

  dispose() {
    const device = this.device;
    this.device = null;
    this.plan = null;
    if (device) device.destroy();
  }
}

/**
 * The factory ui/engine-link.js looks for.
 * @param {ExecutorContext} ctx
 */
export async function createExecutor(ctx) {
  return new WebGPUExecutor(ctx);
}
