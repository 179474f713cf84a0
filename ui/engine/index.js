// The page's executor module, named by the server's /config.json (EXECUTOR_MODULE in
// companion/bridge/server.py) and loaded by ui/executor.js: the WebGPU plan executor.
export { createExecutor, WebGPUExecutor } from "./webgpu-executor.js";
