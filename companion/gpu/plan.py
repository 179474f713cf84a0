"""The plan: a model's forward pass as plain data (buffers, pipelines, programs of dispatches).

Written once by companion.gpu.builder, run by any executor (wgpu-py natively, navigator.gpu in
the page) without knowing what a transformer is. Everything here is JSON; sizes are bytes.

Optional features (for executor authors). `Plan.features` lists the WebGPU features the plan
needs, by their WebGPU names ("shader-f16", "subgroups"; wgpu-py spells the latter "subgroup"):
request exactly these on the device. A plan built for an adapter without them has an empty list
and only f32/workgroup-memory kernels. Each `Pipeline` may carry two more fields, both empty on
the f32 path, so older plans read the same:
- `includes`: helper swaps applied while composing, e.g. {"_reduce.wgsl": "_reduce_sg.wgsl"}
  (a `//!include _reduce.wgsl` line composes `_reduce_sg.wgsl` instead);
- `enable`: WGSL extensions to declare, e.g. ["f16", "subgroups"]: put
  `enable f16; enable subgroups; ` in front of the composed code's first line (same line, so the
  line map is unchanged). Tint (Chromium) requires them; naga (wgpu-py 0.32) rejects
  `enable subgroups;`, so the native executor leaves that one out.
Compile one module per (shader, includes, enable), not per shader file.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import BaseModel, Field

PLAN_VERSION = 1  # bump on any change an existing executor could misread


class GgufSource(BaseModel):
    """Bytes taken as they are from a GGUF tensor's data (e.g. F32 norm weights)."""

    kind: Literal["gguf"] = "gguf"
    tensor: str  # GGUF tensor name, e.g. "blk.0.attn_norm.weight"
    offset: int = 0  # byte offset inside the tensor's data
    size: int  # bytes


class BlobSource(BaseModel):
    """Bytes produced once at load by the builder (repacked layouts, tables); served by name."""

    kind: Literal["blob"] = "blob"
    name: str  # blob name, unique in the plan, e.g. "blk.0.attn_qkv"
    recipe: str  # how the builder made it, for humans and cache keys


Source = Annotated[GgufSource | BlobSource, Field(discriminator="kind")]


class Buffer(BaseModel):
    """One GPU buffer. Weights have a source; activations and caches start zeroed."""

    name: str
    size: int  # bytes, a multiple of 4
    usage: Literal["storage", "uniform"] = "storage"
    source: Source | None = None


class BindingLayout(BaseModel):
    """One entry of a pipeline's (explicit) bind group layout, group 0."""

    binding: int
    type: Literal["uniform", "read-only-storage", "storage"]


class Pipeline(BaseModel):
    """A compute pipeline: shader file, entry point and override constants."""

    name: str
    shader: str  # file in companion.shaders, e.g. "matmul.wgsl"
    entry_point: str = "main"
    constants: dict[str, float | int | bool] = {}  # WGSL `override` values
    bindings: list[BindingLayout]
    includes: dict[str, str] = {}  # helper swaps while composing, e.g. {"_prec.wgsl": "_prec_f16.wgsl"}
    enable: list[str] = []  # WGSL extensions to declare in front of line 1, e.g. ["f16", "subgroups"]


class Count(BaseModel):
    """A workgroup count that depends on a program variable: ceil(vars[var] / per)."""

    var: str  # e.g. "n_tokens"
    per: int = 1

    def value(self, vars: dict[str, int]) -> int:
        return math.ceil(vars[self.var] / self.per)


Dim = int | Count


class BufferBinding(BaseModel):
    """A buffer (or a byte range of it) bound at one binding slot."""

    binding: int
    buffer: str
    offset: int = 0  # a multiple of minStorageBufferOffsetAlignment (256)
    size: int | None = None  # None = to the end of the buffer


class Dispatch(BaseModel):
    """One compute dispatch."""

    pipeline: str
    bindings: list[BufferBinding]
    workgroups: tuple[Dim, Dim, Dim]
    label: str = ""  # what it computes, e.g. "blk.3 ffn"

    def counts(self, vars: dict[str, int]) -> tuple[int, int, int]:
        x, y, z = (d if isinstance(d, int) else d.value(vars) for d in self.workgroups)
        return x, y, z


class Readback(BaseModel):
    """Bytes copied to a mappable buffer after the program's pass and returned to the host."""

    buffer: str
    offset: int = 0
    size: int


class Program(BaseModel):
    """An ordered list of dispatches, recorded into one compute pass."""

    name: str
    vars: list[str] = []  # variables its workgroup counts read, e.g. ["n_tokens"]
    max_vars: dict[str, int] = {}  # largest value each variable may take
    dispatches: list[Dispatch]
    readback: Readback | None = None


class UniformField(BaseModel):
    name: str
    type: Literal["u32", "f32"]
    offset: int  # bytes


class UniformBlock(BaseModel):
    """The small per-step uniform buffer (struct Step in _step.wgsl), packed by field name."""

    buffer: str
    size: int
    fields: list[UniformField]


class Plan(BaseModel):
    """A model's forward pass for one device class. Executable from this JSON alone plus the
    GGUF file and the named blobs."""

    version: int = PLAN_VERSION
    model: dict[str, str | int | float | bool] = {}  # informational: arch, name, sizes
    features: list[str] = []  # WebGPU features the pipelines need ("shader-f16", "subgroups")
    limits: dict[str, int] = {}  # WebGPU limits (hyphenated names) the plan needs at least
    uniform: UniformBlock
    buffers: list[Buffer]
    pipelines: list[Pipeline]
    programs: dict[str, Program]
    io: dict[str, str] = {}  # buffer roles for the caller: tokens, logits, history, token_out
    notes: list[str] = []  # decisions worth showing (e.g. why a variant fell back to f32)

    def buffer(self, name: str) -> Buffer:
        for b in self.buffers:
            if b.name == name:
                return b
        raise KeyError(name)

    def to_json(self, indent: int | None = None) -> str:
        return self.model_dump_json(indent=indent)

    @classmethod
    def from_json(cls, text: str | bytes) -> Plan:
        plan = cls.model_validate_json(text)
        if plan.version != PLAN_VERSION:
            raise ValueError(f"plan version {plan.version} is not supported (expected {PLAN_VERSION})")
        return plan

    def dispatch_count(self, program: str) -> int:
        return len(self.programs[program].dispatches)
