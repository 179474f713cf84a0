// The page's executor module, named by the server's /config.json (EXECUTOR_MODULE in
// companion/bridge/http.py) and loaded by ui/engine-link.js: the WebGPU plan executor.
export { createExecutor, WebGPUExecutor } from "./webgpu-executor.js";
