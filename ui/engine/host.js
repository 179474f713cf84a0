// A page that is only the model executor (companion/browser_engine.py opens it in a headless
// Chromium when no desktop window is attached): the bridge with `executor: true` and the
// WebGPU executor behind ui/engine-link.js's ExecutorHost. Nothing else runs in it, so the
// kernels get the CPU (SwiftShader) or the GPU to themselves.

import { Bridge, loadSchema } from "../bridge.js";
import { ExecutorHost, executorContext } from "../engine-link.js";
import { createExecutor } from "./webgpu-executor.js";

async function main() {
  const schema = await loadSchema();
  const executor = await createExecutor(executorContext);
  const bridge = new Bridge(schema, { executor: true, client: "executor" });
  new ExecutorHost(bridge, executor);
  /** @type {any} */ (window).companion = { bridge, executor };
  const status = /** @type {HTMLElement} */ (document.getElementById("status"));
  bridge.addEventListener("connection", (/** @type {CustomEvent} */ e) => {
    status.textContent = e.detail.connected ? "executor connected" : "reconnecting…";
    document.body.dataset.ready = e.detail.connected ? "1" : "";
  });
  bridge.connect();
}

main().catch((e) => {
  console.error(e);
  document.body.textContent = `the executor page failed: ${e.message}`;
});
