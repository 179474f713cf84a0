// WGSL sources for the page executor: the one composition rule of companion/gpu/shaders.py
// (a line that is exactly `//!include _name.wgsl` is replaced by that file; included files may
// not include anything; each is included once), a pipeline's feature variant (`includes`
// swaps a helper for its variant, `enable` puts `enable <ext>;` in front of line 1 so line
// numbers do not move) and compile messages mapped back to the real .wgsl file and line.

const INCLUDE = /^\/\/!include (_[a-z0-9_]+\.wgsl)\s*$/;

/**
 * @typedef {Object} ShaderSource
 * @property {string} name   file name, e.g. "matmul.wgsl"
 * @property {string} code   composed WGSL
 * @property {Array<[string, number]>} lineMap composed line i+1 -> [file, line in file]
 */

/**
 * Compose a kernel with its includes.
 * @param {string} name
 * @param {(file: string) => Promise<string>} read raw text of one shader file
 * @param {Record<string, string>} [includes] helper swaps, e.g. {"_reduce.wgsl": "_reduce_sg.wgsl"}
 * @param {string[]} [enable] WGSL extensions to declare, e.g. ["subgroups"]
 * @returns {Promise<ShaderSource>}
 */
export async function composeShader(name, read, includes = {}, enable = []) {
  for (const [from, to] of Object.entries(includes)) {
    if (!/^_[a-z0-9_]+\.wgsl$/.test(from) || !/^_[a-z0-9_]+\.wgsl$/.test(to)) throw new Error(`${name}: invalid include swap ${from} -> ${to}`);
  }
  for (const ext of enable) if (!/^[a-z0-9_]+$/.test(ext)) throw new Error(`${name}: invalid enable directive ${ext}`);
  const lines = [];
  /** @type {Array<[string, number]>} */
  const lineMap = [];
  const seen = new Set();
  const text = await read(name);
  const own = text.split(/\r?\n/);
  if (own.length && own[own.length - 1] === "") own.pop();
  for (let i = 0; i < own.length; i++) {
    const line = own[i];
    const m = INCLUDE.exec(line);
    if (!m) {
      if (line.startsWith("//!")) throw new Error(`${name}:${i + 1}: unknown directive ${JSON.stringify(line.trim())}`);
      lines.push(line);
      lineMap.push([name, i + 1]);
      continue;
    }
    const inc = includes[m[1]] || m[1];
    if (seen.has(inc)) throw new Error(`${name}:${i + 1}: ${inc} is included twice`);
    seen.add(inc);
    const sub = (await read(inc)).split(/\r?\n/);
    if (sub.length && sub[sub.length - 1] === "") sub.pop();
    sub.forEach((s, j) => {
      if (s.startsWith("//!")) throw new Error(`${inc}:${j + 1}: included files may not use directives`);
      lines.push(s);
      lineMap.push([inc, j + 1]);
    });
  }
  if (enable.length) lines[0] = enable.map((e) => `enable ${e};`).join(" ") + " " + lines[0];
  return { name, code: lines.join("\n") + "\n", lineMap };
}

/**
 * [file, line] of a 1-based line of the composed code.
 * @param {ShaderSource} src @param {number} line
 * @returns {[string, number]}
 */
export function locate(src, line) {
  return line >= 1 && line <= src.lineMap.length ? src.lineMap[line - 1] : [src.name, line];
}

/**
 * Compile a composed shader; throw an Error naming the .wgsl file and line of each error.
 * @param {GPUDevice} device @param {ShaderSource} src
 * @returns {Promise<GPUShaderModule>}
 */
export async function compileShader(device, src) {
  device.pushErrorScope("validation");
  const module = device.createShaderModule({ label: src.name, code: src.code });
  const info = await module.getCompilationInfo();
  const scoped = await device.popErrorScope();
  const errors = info.messages.filter((m) => m.type === "error");
  if (errors.length) {
    const text = errors.slice(0, 5).map((m) => {
      const [file, line] = locate(src, m.lineNum);
      return `${file}:${line}:${m.linePos}: ${m.message}`;
    }).join("\n");
    throw new Error(`WGSL compile error in ${src.name}:\n${text}`);
  }
  if (scoped) throw new Error(`${src.name}: ${relocate(src, scoped.message)}`);
  return module;
}

/**
 * A pipeline-creation message with every `:LINE:COL` of the composed code rewritten.
 * @param {ShaderSource} src @param {string} message
 */
export function relocate(src, message) {
  return String(message).replace(/(?:[\w.-]*wgsl)?:(\d+):(\d+)/g, (_m, line, col) => {
    const [file, ln] = locate(src, Number(line));
    return `${file}:${ln}:${col}`;
  });
}
