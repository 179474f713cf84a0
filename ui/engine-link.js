// The hook for the page's model executor (WebGPU, in ui/engine/). This module only
// carries requests between the bridge and an executor object; it knows nothing of GPUs.
//
// An executor module is `ui/engine/index.js` exporting
//     export async function createExecutor(ctx) -> Executor
// where ctx = {fetchPlan, fetchModelRange} (same-origin helpers below) and
//
/**
 * @typedef {Object} Executor
 * @property {string} [adapter] description of the GPU adapter, once known
 * @property {(req: {plan_url: string, model_url: string, n_ctx: number},
 *             progress: (phase: string, fraction: number, detail?: string) => void)
 *             => Promise<{adapter?: string, n_past?: number}>} load
 *   fetch the plan and the weights, build pipelines; call progress(phase, 0..1) on the way
 * @property {(req: {n_keep: number}) => Promise<{n_past?: number}>} reset
 *   forget KV positions from n_keep on
 * @property {(req: {ids: number[], sampling: Object, step: number, history: number[],
 *                   want: "token"|"logits", steps?: number, n_past?: number|null})
 *             => Promise<{id: number, ids?: number[], n_past?: number, ms?: number}
 *                        | {logits: Float32Array, n_past?: number}>} generate
 *   drop positions past n_past (when given), append ids, run one token; answer the sampled id,
 *   or the last position's logits; with steps > 1 (one id), that many chained decode steps
 *   and all their ids
 * @property {() => void} [dispose]
 * @property {((reason: string) => void)|null} [onfailure] set by ExecutorHost: report a failure
 *   that happens outside any request (a lost device) as engine_failed without a request_id
 */
//
// Requests run one at a time in arrival order. A thrown error becomes `engine_failed` with
// the error's message, and the core falls back to its native engine for that turn.
// Tests (and tools) may provide `window.companionExecutorFactory(ctx)` instead of a module.

/** Same-origin fetch helpers handed to the executor. */
export const executorContext = {
  /** @param {string} [url] */
  async fetchPlan(url = "/plan.json") {
    const r = await fetch(url, { cache: "no-store" });
    if (!r.ok) {
      const why = r.status === 422 ? (await r.json().catch(() => ({}))).error : "";
      throw new Error(why || `plan: HTTP ${r.status}`);
    }
    return r.json();
  },
  /**
   * Bytes [offset, offset + length) of the GGUF, without a second copy on disk.
   * @param {number} offset @param {number} length @returns {Promise<ArrayBuffer>}
   */
  async fetchModelRange(offset, length) {
    const r = await fetch(`/model/blob?offset=${offset}&length=${length}`, { cache: "no-store" });
    if (!r.ok) throw new Error(`model bytes ${offset}+${length}: HTTP ${r.status}`);
    return r.arrayBuffer();
  },
};

/**
 * Find an executor: the test hook, else the module the server names in /config.json
 * (ui/engine/index.js when it exists and the settings allow the browser engine), else none.
 * @param {{executor_module: string|null}} config
 * @returns {Promise<Executor|null>}
 */
export async function findExecutor(config) {
  if (typeof window.companionExecutorFactory === "function") {
    return window.companionExecutorFactory(executorContext);
  }
  if (!config.executor_module) return null;
  const url = new URL(config.executor_module, new URL("./", import.meta.url));
  try {
    const mod = await import(url.href);
    return typeof mod.createExecutor === "function" ? await mod.createExecutor(executorContext) : null;
  } catch (e) {
    console.warn(`executor: could not load ${url}:`, e);
    return null;
  }
}

/** Base64 of a Float32Array's little-endian bytes (the `logits` message's `values`). */
export function f32ToBase64(values) {
  const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

/** Connects an Executor to the bridge: answers engine_load / engine_reset / generate. */
export class ExecutorHost {
  /**
   * @param {import("./bridge.js").Bridge} bridge
   * @param {Executor} executor
   */
  constructor(bridge, executor) {
    this.bridge = bridge;
    this.executor = executor;
    this.queue = Promise.resolve();
    for (const type of ["engine_load", "engine_reset", "generate"]) {
      bridge.on(type, (m) => { this.queue = this.queue.then(() => this.serve(m)); });
    }
    // A failure outside any request (device lost): engine_failed without a request_id.
    executor.onfailure = (reason) => this.bridge.send({ type: "engine_failed", request_id: null, reason: String(reason).slice(0, 4000) });
  }

  /** @param {import("./bridge.js").Message} m */
  async serve(m) {
    const rid = m.request_id;
    try {
      if (m.type === "engine_load") {
        const progress = (phase, fraction, detail = "") => this.bridge.send({
          type: "engine_status", engine: "browser", adapter: (this.executor.adapter || "").slice(0, 300),
          phase, progress: Math.max(0, Math.min(1, fraction)), detail: String(detail).slice(0, 300),
        });
        const r = (await this.executor.load(m, progress)) || {};
        this.bridge.send({ type: "engine_ack", request_id: rid, n_past: r.n_past || 0, adapter: (r.adapter || this.executor.adapter || "").slice(0, 300) });
      } else if (m.type === "engine_reset") {
        const r = (await this.executor.reset(m)) || {};
        this.bridge.send({ type: "engine_ack", request_id: rid, n_past: r.n_past ?? m.n_keep });
      } else {
        const r = await this.executor.generate(m);
        if (r.logits) {
          this.bridge.send({ type: "logits", request_id: rid, n_vocab: r.logits.length, values: f32ToBase64(r.logits), n_past: r.n_past ?? null });
        } else {
          this.bridge.send({ type: "token", request_id: rid, id: r.id, ids: r.ids ?? null, n_past: r.n_past ?? null, ms: r.ms ?? null });
        }
      }
    } catch (e) {
      const reason = (e && e.message ? e.message : String(e)).slice(0, 4000) || "executor error";
      this.bridge.send({ type: "engine_failed", request_id: rid, reason });
    }
  }
}
