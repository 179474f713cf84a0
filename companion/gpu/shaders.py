"""Loading the WGSL kernels shipped as `companion.shaders`, resolving their one composition rule
(`//!include _name.wgsl`), and mapping compile errors back to the .wgsl file and line.

The include rule: a line that is exactly `//!include <file>` is replaced by that file's text;
included files are private helpers (`_*.wgsl`) and may not include anything themselves; each is
included once.

Feature variants (see companion.gpu.plan.Pipeline): a pipeline's `includes` map swaps a helper
for its variant (`_reduce.wgsl` -> `_reduce_sg.wgsl`), and its `enable` list becomes WGSL
`enable` directives put in front of line 1 (same line, so line numbers do not move).

Composition happens here only. Both executors compile one module per variant, grouped by
`module_key`: the native executor composes with `pipeline_module`, and the browser engine serves
the same composed code and line map in the plan JSON (`ShaderSource.to_json`), so the page only
compiles and maps error lines through the served line map.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from companion.errors import EngineError

_INCLUDE = re.compile(r"^//!include (_[a-z0-9_]+\.wgsl)\s*$")
_LOCATION = re.compile(r"[\w.-]*wgsl:(\d+):(\d+)")
_ENABLE = re.compile(r"enable ([a-z0-9_]+); ")
_ENABLES = re.compile(r"(?:enable [a-z0-9_]+; )*")  # the directives `load` puts in front of line 1


class ShaderError(EngineError):
    """A WGSL kernel failed to load, compile or validate; the message names file and line."""


@dataclass(frozen=True)
class ShaderSource:
    """A kernel with its includes resolved, plus where each composed line came from."""

    name: str  # file name, e.g. "matmul.wgsl"
    code: str  # composed WGSL
    line_map: tuple[tuple[str, int], ...]  # composed line i+1 -> (file, line in file)

    def locate(self, line: int) -> tuple[str, int]:
        """(file, line) of a 1-based line of the composed code."""
        if 1 <= line <= len(self.line_map):
            return self.line_map[line - 1]
        return (self.name, line)

    def to_json(self) -> dict[str, Any]:
        """As served to the page in the plan JSON's `modules`: {name, code, line_map}, where
        line_map[i] = [file, line] of composed line i+1."""
        return {"name": self.name, "code": self.code, "line_map": [[f, ln] for f, ln in self.line_map]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ShaderSource:
        return cls(str(data["name"]), str(data["code"]), tuple((str(f), int(ln)) for f, ln in data["line_map"]))


def _shader_dir() -> Path:
    """The folder holding the .wgsl files: the installed package, else the source tree."""
    from companion.resources import shaders_dir

    return Path(str(shaders_dir()))


@functools.cache
def read_text(name: str) -> str:
    """Raw text of one shader file (cached)."""
    if "/" in name or "\\" in name or not name.endswith(".wgsl"):
        raise ShaderError(f"invalid shader name {name!r}: expected a bare file name ending in .wgsl")
    path = _shader_dir() / name
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ShaderError(f"shader {name} not found in {path.parent}: reinstall companion") from exc


def includes_of(name: str) -> list[str]:
    """The helper files kernel `name` includes, in order."""
    return [m.group(1) for line in read_text(name).splitlines() if (m := _INCLUDE.match(line))]


def load(name: str, includes: dict[str, str] | None = None, enable: list[str] | tuple[str, ...] = ()) -> ShaderSource:
    """The kernel `name` with its `//!include` lines resolved, helpers swapped per `includes`
    and `enable <ext>;` directives put in front of line 1 (cached)."""
    return _load(name, tuple(sorted((includes or {}).items())), tuple(enable))


def clear_cache() -> None:
    """Forget cached shader text (tests that point _shader_dir elsewhere)."""
    read_text.cache_clear()
    _load.cache_clear()


@functools.cache
def _load(name: str, swaps: tuple[tuple[str, str], ...], enable: tuple[str, ...]) -> ShaderSource:
    swap = dict(swaps)
    for old, new in swap.items():
        if not (old.startswith("_") and new.startswith("_") and new.endswith(".wgsl") and "/" not in new):
            raise ShaderError(f"{name}: invalid include swap {old!r} -> {new!r}")
    lines: list[str] = []
    where: list[tuple[str, int]] = []
    seen: set[str] = set()
    for i, line in enumerate(read_text(name).splitlines(), start=1):
        m = _INCLUDE.match(line)
        if m is None:
            if line.startswith("//!"):
                raise ShaderError(f"{name}:{i}: unknown directive {line.strip()!r}")
            lines.append(line)
            where.append((name, i))
            continue
        inc = swap.get(m.group(1), m.group(1))
        if inc in seen:
            raise ShaderError(f"{name}:{i}: {inc} is included twice")
        seen.add(inc)
        for j, sub in enumerate(read_text(inc).splitlines(), start=1):
            if sub.startswith("//!"):
                raise ShaderError(f"{inc}:{j}: included files may not use directives")
            lines.append(sub)
            where.append((inc, j))
    if enable:
        for ext in enable:
            if not re.fullmatch(r"[a-z0-9_]+", ext):
                raise ShaderError(f"{name}: invalid enable directive {ext!r}")
        lines[0] = " ".join(f"enable {e};" for e in enable) + " " + lines[0]
    return ShaderSource(name, "\n".join(lines) + "\n", tuple(where))


class PipelineShader(Protocol):
    """What composition reads of a pipeline (companion.gpu.plan.Pipeline)."""

    shader: str
    includes: dict[str, str]
    enable: list[str]


def module_key(name: str, includes: dict[str, str] | None = None, enable: list[str] | tuple[str, ...] = ()) -> str:
    """The name of one composed variant of kernel `name`: pipelines with equal keys share a
    module (the native executor's and the plan JSON's `modules`). E.g. "matmul.wgsl" for the
    f32 path, "attention.wgsl[_prec.wgsl=_prec_f16.wgsl,_reduce.wgsl=_reduce_sg.wgsl][enable f16,subgroups]"."""
    key = name
    if includes:
        key += "[" + ",".join(f"{old}={new}" for old, new in sorted(includes.items())) + "]"
    if enable:
        key += "[enable " + ",".join(enable) + "]"
    return key


def pipeline_module(p: PipelineShader) -> tuple[str, ShaderSource]:
    """(module_key, composed source) of the module pipeline `p` runs (cached)."""
    return module_key(p.shader, p.includes, p.enable), load(p.shader, p.includes, p.enable)


def describe_error(src: ShaderSource, exc: BaseException) -> str:
    """A compiler message rewritten so every `wgsl:LINE:COL` names the real file and line."""
    text = str(exc)

    def repl(m: re.Match[str]) -> str:
        f, ln = src.locate(int(m.group(1)))
        return f"{f}:{ln}:{m.group(2)}"

    located = _LOCATION.findall(text)
    text = _LOCATION.sub(repl, text)
    if located:
        f, ln = src.locate(int(located[0][0]))
        return f"{f}:{ln}: {text.strip()}"
    return f"{src.name}: {text.strip()}"


# WGSL extensions that naga (wgpu-py 0.32) rejects in an `enable` directive although the
# device feature makes the builtins available: leave the directive out natively.
NAGA_IMPLICIT = frozenset({"subgroups"})


def for_naga(src: ShaderSource) -> ShaderSource:
    """`src` without the `enable` directives of NAGA_IMPLICIT (line 1 only: the line map holds)."""
    head = _ENABLES.match(src.code)
    n = head.end() if head else 0
    keep = "".join(f"enable {e}; " for e in _ENABLE.findall(src.code[:n]) if e not in NAGA_IMPLICIT)
    return ShaderSource(src.name, keep + src.code[n:], src.line_map)


def compile_module(device, src: ShaderSource):
    """Compile a composed kernel on a wgpu-py `device`; raise ShaderError naming the .wgsl
    file and line."""
    src = for_naga(src)
    try:
        return device.create_shader_module(label=src.name, code=src.code)
    except Exception as exc:  # wgpu raises GPUValidationError (and friends) for bad WGSL
        raise ShaderError(describe_error(src, exc)) from exc


def create_module(device, name: str, includes: dict[str, str] | None = None, enable: list[str] | tuple[str, ...] = ()):
    """Compile shader `name` (a variant of it, per includes/enable) on `device`; raise
    ShaderError naming the .wgsl file and line."""
    return compile_module(device, load(name, includes, enable))


def list_shaders() -> list[str]:
    """Names of all kernel files (not the private `_*.wgsl` helpers, nor the avatar's render
    shaders `avatar*.wgsl`, which companion.avatar.render draws with)."""
    return sorted(p.name for p in _shader_dir().glob("*.wgsl") if not p.name.startswith(("_", "avatar")))
