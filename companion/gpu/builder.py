"""Builds the plan for a loaded model: which buffers, kernels and dispatches run its forward pass.

This is the only GPU module that knows what a transformer is. It also produces the repacked
weight blobs (see shaders/_quant.wgsl for the layout) once at load.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from gguf import GGMLQuantizationType as QT

from companion.errors import UnsupportedModelError
from companion.gpu import _flash, _tiled, shaders
from companion.gpu._flash import flash_dispatches, flash_fits, part_bytes
from companion.gpu._tiled import TILED, tiled_dispatch
from companion.gpu.adapters import (
    AUTO_F32_NOTE,
    VARIANTS,
    auto_subgroups_note,
    choose_features,
    choose_layout,
    is_auto_features,
    is_cpu_adapter,
)
from companion.gpu.plan import (
    BindingLayout,
    BlobSource,
    Buffer,
    BufferBinding,
    Count,
    Dim,
    Dispatch,
    GgufSource,
    Pipeline,
    Plan,
    Program,
    Readback,
    UniformBlock,
    UniformField,
)

log = logging.getLogger(__name__)

# Weight types the kernels read directly (after repacking); anything else is dequantized to F16.
# type -> u32 words of quants per 32-element block in the blob (the low 4 bits for the 5- and
# 6-bit types, whose high bits have a region of their own: HIGH_WORDS).
KERNEL_TYPES = {
    QT.F32: 32, QT.F16: 16, QT.Q4_0: 4, QT.Q4_1: 4, QT.Q8_0: 8,
    QT.Q5_0: 4, QT.Q4_K: 4, QT.Q5_K: 4, QT.Q6_K: 4,
}  # fmt: skip
_BLOCK_BYTES = {QT.Q4_0: 18, QT.Q4_1: 20, QT.Q8_0: 34}
HIGH_WORDS = {QT.Q5_0: 1, QT.Q5_K: 1, QT.Q6_K: 2}  # u32 of high quant bits per 32-element block
# ggml block sizes (ggml-common.h): bytes per block of QK values
_SPLIT_TYPES = {QT.Q5_0: (32, 22), QT.Q4_K: (256, 144), QT.Q5_K: (256, 176), QT.Q6_K: (256, 210)}

# struct Step in shaders/_step.wgsl, in order
STEP_FIELDS: list[tuple[str, str]] = [
    ("n_past", "u32"),
    ("n_tokens", "u32"),
    ("seed", "u32"),
    ("rng_step", "u32"),
    ("temperature", "f32"),
    ("top_k", "u32"),
    ("top_p", "f32"),
    ("min_p", "f32"),
    ("repeat_penalty", "f32"),
    ("n_hist", "u32"),
    ("tok_in", "u32"),
    ("tok_out", "u32"),
    ("hist_at", "u32"),
    ("_pad0", "u32"),
    ("_pad1", "u32"),
    ("_pad2", "u32"),
]
STEP_SIZE = 4 * len(STEP_FIELDS)

U, R, W = "uniform", "read-only-storage", "storage"
# binding types of every kernel, in binding order (the tables at the top of each .wgsl file)
SHADER_BINDINGS: dict[str, list[str]] = {
    "embed.wgsl": [U, R, R, W],
    "matmul.wgsl": [U, R, R, W],
    "matmul_norm.wgsl": [U, R, R, R, W],
    "matmul_swiglu.wgsl": [U, R, R, R, W],
    "matmul_qkv.wgsl": [U, R, R, R, R, W, W, W],
    "attention.wgsl": [U, R, R, R, W],
    "attention_split.wgsl": [U, R, R, R, W],
    "sample.wgsl": [U, W, R, W],
    "qkv_rope.wgsl": [U, R, R, R, W, W, W],
    "add_norm.wgsl": [U, R, R, W],
    "attention_flash.wgsl": [U, R, R, R, W],
    "matmul_attn.wgsl": [U, R, R, W],
    "matmul_tiled.wgsl": [U, R, R, W],
    "matmul_swiglu_tiled.wgsl": [U, R, R, R, W],
    "matmul_qkv_tiled.wgsl": [U, R, R, R, R, W, W, W],
}

WG = 64  # invocations per workgroup of the matmul-style kernels (<= 256 everywhere)
# Largest blob one binding may hold: WebGPU's default maxStorageBufferBindingSize (128 MiB),
# which every adapter offers (lavapipe's maximum too). Bigger tables (embeddings and output
# heads of large vocabularies) are split into row chunks, one dispatch each.
MAX_BINDING = 128 << 20
ARCHITECTURES = ("llama", "mistral", "qwen2", "gemma3")
TT_PREFILL = 4  # token rows per invocation in batched matmuls (1..4)
MAX_HIST = 1024  # ids the repetition-penalty history buffer holds
HEAD_RP = 1  # split-K output head: row pairs each invocation group computes in series
ATTN_GQ = 4  # batched split-K attention: at most this many query heads per workgroup (<= 4; 1: one each)
# The split-K decode head streams the largest matrix of a token (SmolLM2-135M: 49152 x 576 Q8_0,
# 35 MB repacked), so it wants many loads in flight, not a wide reduction per row: about
# HEAD_UNITS quant vec4s per invocation (head_lanes; 4 invocations a row pair for SmolLM2) and
# HEAD_WG / lanes row pairs per workgroup. H200, the head alone: 64 lanes x 4 pairs x 4 in
# series (before) 44.2 us; lanes 32 / 16 / 8 / 4 at 256 invocations 39.6 / 33.6 / 30.7 / 22.5
# us; 4 lanes in workgroups of 128 / 64: 36.4 / 49.9 us; 2 lanes 33.9 us; 4 lanes with two row
# groups in series 33.9 us. Whole decode, alternating runs at contexts 0/512/2048: 873/838/743
# and 873/841/738 before, 885/861/754 and 889/859/756 tok/s after.
HEAD_WG = 256
HEAD_UNITS = 8
HEAD_CANDIDATES = True  # split-K decode head leaves per-workgroup argmax candidates (sample_decode)
# split-K norm+matvec kernels on the f32 path: the RMSNorm's sum of squares taken in the matvec
# loop (shaders/_normed_pair.wgsl FUSED_NORM: one pass over x and one reduction, not two; H200
# decode +3..6% in two same-run comparisons). False: inv_rms_sk first, as the f16 kernels do.
FUSED_NORM = True


MAX_GROUPS = 65535  # workgroups per dimension (WebGPU default limit)
# split-K norm+matvec kernels of a decode step: row pairs each workgroup computes at once
# (shaders/_matvec.wgsl PAIRS; the output head's on top of its HEAD_RP serial ones). H200, same
# runs, decode tok/s at contexts 0/512/2048: none 702/681/612, norm+gate+up and norm+qkv at 2
# 763/734/649, and the head at 4 785/761/672; ffn_down's and the attention merge's at 4 gained
# nothing (their 288 workgroups already fit the GPU), nor did 4 or 8 for norm+gate+up.
SPLITK_PAIRS: dict[str, int] = {"matmul_swiglu.wgsl": 2, "matmul_qkv.wgsl": 2, "matmul_norm.wgsl": 4}


def attention_gq(n_head: int, n_kv: int) -> int:
    """Batched split-K attention: the query heads of a key/value head that one workgroup serves
    (they share each key and value load; H200 prefill of 512 tokens, SmolLM2: see
    attention_split.wgsl): the most, up to ATTN_GQ, that divide the group evenly."""
    return max(g for g in range(1, ATTN_GQ + 1) if (n_head // n_kv) % g == 0)


def splitk_wg(qtype: int, K: int) -> int:
    """Invocations per split-K workgroup: enough for one quant vec4 each (32..256, power of 2)."""
    units = (K // 32) * (KERNEL_TYPES[QT(qtype)] // 4)
    wg = 32
    while wg < units and wg < 256:
        wg *= 2
    return wg


def head_lanes(qtype: int, K: int) -> int:
    """Invocations per row pair of the split-K decode head: about HEAD_UNITS quant vec4s each."""
    units = (K // 32) * (KERNEL_TYPES[QT(qtype)] // 4)
    lanes = 1
    while lanes * 2 * HEAD_UNITS <= units and lanes < 256:
        lanes *= 2
    return lanes


def uniform_block() -> UniformBlock:
    fields = [UniformField(name=n, type=t, offset=4 * i) for i, (n, t) in enumerate(STEP_FIELDS)]
    return UniformBlock(buffer="step", size=STEP_SIZE, fields=fields)


# ----------------------------------------------------------------------------- repacking


def repack(raw: np.ndarray, qtype: QT, n_cols: int, rowmajor: bool = False) -> np.ndarray:
    """Interleaved blob (u32) of a weight matrix given its raw GGUF rows (M, bytes per row).

    Layout (shaders/_quant.wgsl), in vec4<u32> units: quant groups q[(b*G + g)*M + r], then
    (d, m) f32 pairs at [b*M + r] (Q4_0 m = -8d, Q8_0 m = 0). Neighbouring rows become
    neighbouring 16-byte vectors. rowmajor (the split-K layout, ROWMAJOR in the kernels):
    q[(r*nb + b)*G + g] and pairs at [r*nb + b], each row contiguous."""
    if n_cols % 32:
        raise UnsupportedModelError(f"matrix with {n_cols} columns: the kernels need a multiple of 32")
    M, nb = raw.shape[0], n_cols // 32
    raw = np.ascontiguousarray(raw)
    G = KERNEL_TYPES[qtype] // 4 if qtype in KERNEL_TYPES else 0  # vec4 groups per block
    if qtype in (QT.F32, QT.F16):
        words = raw.view(np.uint32).reshape(M, nb, G, 4)  # (M, nb, G, 4)
        if rowmajor:
            return words.reshape(-1).copy()
        return np.ascontiguousarray(words.transpose(1, 2, 0, 3)).reshape(-1)  # (nb, G, M, 4)
    if qtype in _SPLIT_TYPES:
        return _repack_split(raw, qtype, n_cols, rowmajor)
    if qtype not in _BLOCK_BYTES:
        raise UnsupportedModelError(f"no kernel reads {qtype.name} directly")
    blocks = raw.reshape(M, nb, _BLOCK_BYTES[qtype])  # (M, nb, block bytes)
    head = 4 if qtype == QT.Q4_1 else 2  # f16 d (+ f16 m) before the quants
    qs = np.ascontiguousarray(blocks[:, :, head:]).view(np.uint32).reshape(M, nb, G, 4)  # (M, nb, G, 4)
    d = np.ascontiguousarray(blocks[:, :, 0:2]).view(np.float16)[..., 0].astype(np.float32)  # (M, nb)
    if qtype == QT.Q4_1:
        m = np.ascontiguousarray(blocks[:, :, 2:4]).view(np.float16)[..., 0].astype(np.float32)  # (M, nb)
    elif qtype == QT.Q4_0:
        m = -8.0 * d  # d * (q - 8) = q * d - 8 d
    else:
        m = np.zeros_like(d)
    if rowmajor:
        dm = np.stack([d, m], axis=-1).reshape(-1)  # (M * nb * 2,) f32 pairs at [r*nb + b]
        quants = qs.reshape(-1)  # (M, nb, G, 4) u32
    else:
        dm = np.stack([d.T, m.T], axis=-1).reshape(-1)  # (nb * M * 2,) f32 pairs at [b*M + r]
        quants = np.ascontiguousarray(qs.transpose(1, 2, 0, 3)).reshape(-1)  # (nb, G, M, 4) u32
    dm = np.concatenate([dm, np.zeros((-len(dm)) % 4, np.float32)])  # whole vec4s
    return np.concatenate([quants, dm.view(np.uint32)])  # (words,) u32


def _k_scale_min(scales: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """6-bit scales and mins of Q4_K / Q5_K super-blocks: (..., 12) bytes -> (..., 8) each
    (ggml's get_scale_min_k4, as gguf.quants.Q4_K.get_scale_min)."""
    d, m, md = scales[..., 0:4], scales[..., 4:8], scales[..., 8:12]  # (..., 4) each
    sc = np.concatenate([d & 63, (md & 15) | ((d >> 2) & 48)], axis=-1)  # (..., 8)
    mn = np.concatenate([m & 63, (md >> 4) | ((m >> 2) & 48)], axis=-1)  # (..., 8)
    return sc, mn


def split_blocks(raw: np.ndarray, qtype: QT) -> tuple[np.ndarray, np.ndarray]:
    """Q5_0 and K-quant rows as 32-element blocks: (q (M, nb, 32) uint8 unsigned quants in element
    order, s (M, nb, 2) f32). Element = q * s0 + s1 for Q4_K / Q5_K (s1 = -dmin * min), s0 * (q - 16)
    for Q5_0 (s1 = 0), and s0 * (q - 32) for elements 0..15 and s1 * (q - 32) for 16..31 for Q6_K
    (its two 16-element sub-blocks). The products of an f16 scale and a 6- or 8-bit integer are
    exact in f32, so the blob holds the file's values exactly. Formats: ggml-common.h."""
    M = raw.shape[0]
    qk, nbytes = _SPLIT_TYPES[qtype]
    b = np.ascontiguousarray(raw).reshape(M, -1, nbytes)  # (M, n super-blocks, bytes)
    ns = b.shape[1]

    def f16(lo: int) -> np.ndarray:
        return np.ascontiguousarray(b[..., lo : lo + 2]).view(np.float16)[..., 0].astype(np.float32)  # (M, ns)

    if qtype == QT.Q5_0:
        d = f16(0)  # (M, ns)
        qh = np.ascontiguousarray(b[..., 2:6]).view(np.uint32)[..., 0]  # (M, ns)
        qs = b[..., 6:22]  # (M, ns, 16)
        lo = np.concatenate([qs & 15, qs >> 4], axis=-1)  # (M, ns, 32)
        hi = ((qh[..., None] >> np.arange(32, dtype=np.uint32)) & 1).astype(np.uint8)  # (M, ns, 32)
        return lo | (hi << 4), np.stack([d, np.zeros_like(d)], axis=-1)  # (M, nb, 32), (M, nb, 2)
    if qtype in (QT.Q4_K, QT.Q5_K):
        d, dmin = f16(0), f16(2)  # (M, ns) each
        sc, mn = _k_scale_min(b[..., 4:16])  # (M, ns, 8) each
        qs = b[..., -128:].reshape(M, ns, 4, 32)  # (M, ns, chunk, 32): two sub-blocks per chunk
        q = np.stack([qs & 15, qs >> 4], axis=3).reshape(M, ns, 8, 32)  # (M, ns, sub-block, 32)
        if qtype == QT.Q5_K:
            qh = b[..., 16:48]  # (M, ns, 32): bit s = high bit of sub-block s
            q = q | (((qh[:, :, None, :] >> np.arange(8, dtype=np.uint8)[:, None]) & 1) << 4)  # (M, ns, 8, 32)
        s = np.stack([d[..., None] * sc, -dmin[..., None] * mn], axis=-1)  # (M, ns, 8, 2)
        return q.reshape(M, ns * 8, 32), s.reshape(M, ns * 8, 2).astype(np.float32)
    # Q6_K: ql[128], qh[64], int8 scales[16], f16 d
    ql = b[..., :128].reshape(M, ns, 2, 64)  # (M, ns, half, 64)
    lo = np.stack([ql & 15, ql >> 4], axis=3).reshape(M, ns, 256)  # element 128h + 64n + i
    qh = b[..., 128:192].reshape(M, ns, 2, 32)  # (M, ns, half, 32)
    hi = np.stack([(qh >> (2 * k)) & 3 for k in range(4)], axis=3).reshape(M, ns, 256)  # element 128h + 32k + i
    sc = np.ascontiguousarray(b[..., 192:208]).view(np.int8).astype(np.float32)  # (M, ns, 16)
    s = (f16(208)[..., None] * sc).reshape(M, ns * 8, 2)  # (M, nb, 2): the two halves' scales
    return (lo | (hi << 4)).reshape(M, ns * 8, 32), s


def _repack_split(raw: np.ndarray, qtype: QT, n_cols: int, rowmajor: bool) -> np.ndarray:
    """repack for Q5_0 and the K-quants: the low 4 bits as Q4_0's bytes (G = 1), the (d, m) pairs,
    then HIGH_WORDS u32 per block (bit k, or bits 2k..2k+1 for Q6_K, of element k's high bits)
    at [(b*M + r) * H + w] (rowmajor: [(r*nb + b) * H + w]), padded to whole vec4s."""
    qk, _ = _SPLIT_TYPES[qtype]
    if n_cols % qk:
        raise UnsupportedModelError(f"{qtype.name} matrix with {n_cols} columns: expected a multiple of {qk}")
    q, s = split_blocks(raw, qtype)  # (M, nb, 32), (M, nb, 2)
    M, nb = q.shape[0], q.shape[1]
    lo = q & 15  # (M, nb, 32)
    qs = np.ascontiguousarray(lo[..., :16] | (lo[..., 16:] << 4)).view(np.uint32)  # (M, nb, 4)
    H = HIGH_WORDS.get(qtype, 0)  # Q4_K: none
    hi = (q >> 4).astype(np.uint64)  # (M, nb, 32)
    packed = (hi << (np.arange(32, dtype=np.uint64) * max(H, 1))).sum(axis=-1, dtype=np.uint64)  # (M, nb)
    qh = packed.view(np.uint32).reshape(M, nb, 2)[..., :H]  # (M, nb, H) little-endian words
    if not rowmajor:
        qs, s, qh = (np.ascontiguousarray(a.transpose(1, 0, 2)) for a in (qs, s, qh))  # (nb, M, ...)
    words = [qs.reshape(-1), s.astype(np.float32).reshape(-1).view(np.uint32), qh.reshape(-1).astype(np.uint32)]
    out = []
    for w in words:  # each region in whole vec4s
        out += [w, np.zeros((-len(w)) % 4, np.uint32)]
    return np.concatenate(out)


def qkv_pair_order(n_head: int, n_head_kv: int, head_dim: int, neox: bool) -> np.ndarray:
    """Row order of the fused q|k|v blob: rows of rotation pair p at p and p + M/2
    (see shaders/matmul_qkv.wgsl)."""
    hh = head_dim // 2
    first: list[int] = []
    second: list[int] = []
    base = 0
    for n_h in (n_head, n_head_kv):  # q, then k: rotated pairs
        for h in range(n_h):
            for j in range(hh):
                a = base + h * head_dim + (j if neox else 2 * j)
                first.append(a)
                second.append(a + (hh if neox else 1))
        base += n_h * head_dim
    for lp in range(n_head_kv * hh):  # v: plain adjacent rows
        first.append(base + 2 * lp)
        second.append(base + 2 * lp + 1)
    return np.array(first + second, dtype=np.int64)


def rope_table(
    n_ctx: int, head_dim: int, base: float, freq_scale: float = 1.0, freq_factors: np.ndarray | None = None
) -> np.ndarray:
    """(n_ctx, head_dim/2, 2) f32 cos, sin of pos * freq_scale * base^(-2j/head_dim) / freq_factors[j],
    as the reference (companion.engines.reference.rope_tables)."""
    j = np.arange(head_dim // 2, dtype=np.float32)  # (hd/2,)
    inv_freq = np.float32(base) ** (-2.0 * j / np.float32(head_dim))  # (hd/2,)
    inv_freq = inv_freq * np.float32(freq_scale)  # (hd/2,)
    if freq_factors is not None:
        inv_freq = (inv_freq / freq_factors.astype(np.float32)).astype(np.float32)  # (hd/2,)
    angle = np.arange(n_ctx, dtype=np.float32)[:, None] * inv_freq[None, :].astype(np.float32)  # (n_ctx, hd/2)
    return np.stack([np.cos(angle), np.sin(angle)], axis=-1).astype(np.float32)  # (n_ctx, hd/2, 2)


def blob_row_bytes(qtype: QT, K: int) -> int:
    """Bytes one row of a K-column matrix takes in a repacked blob (quants, scales, high bits)."""
    nb = K // 32
    words = KERNEL_TYPES[qtype] + HIGH_WORDS.get(qtype, 0)
    if qtype not in (QT.F32, QT.F16):
        words += 2  # the (d, m) pair
    return nb * words * 4


# ----------------------------------------------------------------------------- plan assembly


@dataclass
class BuiltPlan:
    """A plan plus the bytes it refers to: named blobs made here, GGUF ranges read on demand."""

    plan: Plan
    blobs: dict[str, np.ndarray]  # blob name -> contiguous array (any dtype)
    tensor_bytes: Callable[[str], np.ndarray] | None = None  # GGUF tensor name -> raw uint8

    def resolve(self, buf: Buffer) -> np.ndarray | None:
        """Initial contents of a buffer as a uint8 array, or None (zero-filled)."""
        src = buf.source
        if src is None:
            return None
        if isinstance(src, BlobSource):
            return np.ascontiguousarray(self.blobs[src.name]).reshape(-1).view(np.uint8)
        if isinstance(src, GgufSource):
            if self.tensor_bytes is None:
                raise KeyError(f"no GGUF attached to resolve {src.tensor}")
            return self.tensor_bytes(src.tensor)[src.offset : src.offset + src.size]
        raise TypeError(src)

    def export(self, folder) -> list[str]:
        """Write plan.json and every blob as blobs/<name>.bin (what a browser executor fetches
        besides the GGUF and the shaders); returns the written paths."""
        from pathlib import Path

        out = Path(folder)
        (out / "blobs").mkdir(parents=True, exist_ok=True)
        written = [out / "plan.json"]
        written[0].write_text(self.plan.to_json(indent=1))
        for name, data in self.blobs.items():
            path = out / "blobs" / f"{name}.bin"
            path.write_bytes(np.ascontiguousarray(data).tobytes())
            written.append(path)
        return [str(p) for p in written]


@dataclass
class _Weight:
    buffer: str  # blob buffer name
    qtype: int  # GGML type id the kernels read
    M: int  # rows
    K: int  # cols
    order: bool = False  # rows in rotation-pair order (the fused qkv blob)


@dataclass
class _Layer:
    qkv: list[_Weight]  # one fused blob (matmul_qkv), or row groups of one type (matmul_norm + qkv_rope)
    wo: _Weight
    gu: _Weight
    down: _Weight
    attn_norm: str
    ffn_norm: str
    k: str  # (n_ctx, NK) key cache, f32 (f16 on the shader-f16 path)
    v: str  # (n_ctx, NK) value cache, likewise
    rope: str  # this layer's rope table (sliding-window layers have their own base)
    window: int  # sliding window (0 = global attention)
    aux: str | None = None  # qkv_rope's f32 biases and q/k norm weights, if any
    post_attn_norm: str | None = None  # gemma3's post-norms (add_norm.wgsl), if any
    post_ffn_norm: str | None = None

    @property
    def fused_qkv(self) -> bool:
        return self.aux is None and len(self.qkv) == 1 and self.qkv[0].order


@dataclass
class _Chunk:
    weight: _Weight
    row0: int  # first row of the whole matrix this chunk holds


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


@dataclass
class PlanWriter:
    """Accumulates buffers, deduplicated pipelines and programs."""

    buffers: dict[str, Buffer] = field(default_factory=dict)
    pipelines: dict[str, Pipeline] = field(default_factory=dict)
    blobs: dict[str, np.ndarray] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    features: Sequence[str] = ()  # WebGPU features the kernels may use (keys of VARIANTS)
    subgroup_size: int = 0  # probed linear subgroup size (_reduce_sg.wgsl SG); 0 = not probed

    def buffer(self, name: str, size: int, source=None, usage: str = "storage") -> str:
        size = max(16, _ceil(size, 16) * 16)
        self.buffers[name] = Buffer(name=name, size=size, usage=usage, source=source)  # type: ignore[arg-type]
        return name

    def blob(self, name: str, data: np.ndarray, recipe: str) -> str:
        self.blobs[name] = data
        return self.buffer(name, data.nbytes, BlobSource(name=name, recipe=recipe))

    def pipeline(self, shader: str, **constants: float | int | bool) -> str:
        """Name of the pipeline for (shader, constants), created on first use."""
        key = shader.removesuffix(".wgsl") + "".join(
            f"|{k}={v}" for k, v in sorted(constants.items())
        )
        helpers = set(shaders.includes_of(shader))
        includes: dict[str, str] = {}
        enable: list[str] = []
        for feat in self.features:
            short, swaps, ext = VARIANTS[feat]
            mine = {a: b for a, b in swaps.items() if a in helpers}
            if mine:
                includes.update(mine)
                enable.append(ext)
                key += f"|{short}"
                if feat == "subgroups" and self.subgroup_size:
                    constants = dict(constants, SG=self.subgroup_size)
                    key += f"{self.subgroup_size}"
        if key not in self.pipelines:
            layout = [BindingLayout(binding=i, type=t) for i, t in enumerate(SHADER_BINDINGS[shader])]  # type: ignore[arg-type]
            self.pipelines[key] = Pipeline(
                name=key, shader=shader, constants=constants, bindings=layout, includes=includes, enable=enable
            )
        return key

    @staticmethod
    def dispatch(pipeline: str, buffers: Sequence[str], workgroups: tuple[Dim, Dim, Dim], label: str) -> Dispatch:
        binds = [BufferBinding(binding=i, buffer=b) for i, b in enumerate(buffers)]
        return Dispatch(pipeline=pipeline, bindings=binds, workgroups=workgroups, label=label)


def matmul_dispatch(
    w: PlanWriter,
    shader: str,
    weight: str,
    qtype: int,
    M: int,
    K: int,
    buffers: Sequence[str],
    n_tokens: int | None,
    label: str,
    layout: str = "rows",
    **constants: float | int | bool,
) -> Dispatch:
    """A dispatch of one of the matmul kernels; n_tokens None = batched (count from vars).
    layout "splitk": a workgroup per row pair and token (the blob must be row-major)."""
    pairs = M // 2 if shader in ("matmul_swiglu.wgsl", "matmul_qkv.wgsl") else _ceil(M, 2)
    rp = int(constants.pop("RP", 1))  # split-K row pairs per workgroup (matmul_norm.wgsl only)
    lanes = int(constants.pop("LANES", 0))  # the decode head: invocations per row pair (0: splitk_wg's)
    if n_tokens is None:
        lanes = 0
    head_per = 0  # the decode head: row pairs a workgroup computes at once (HEAD_WG invocations,
    if lanes:  # fewer, down to 64, so that it spreads over at least 8 workgroups)
        head_per = HEAD_WG // lanes
        while lanes * head_per > 64 and _ceil(pairs, rp * head_per) < 8:
            head_per //= 2
    if layout == "splitk" and _ceil(pairs, rp * max(head_per, 1)) > MAX_GROUPS:
        layout = "rowmajor"  # more row pairs than one grid dimension holds: the rows kernels
    if layout == "splitk" and n_tokens is None and shader in TILED and _tiled.ENABLED:  # prefill: tiles
        return tiled_dispatch(w, shader, weight, qtype, M, K, buffers, label, **constants)
    if layout == "splitk":
        wg = lanes or splitk_wg(qtype, K)
        if rp > 1:
            constants = dict(constants, RP=rp)
        per = head_per or (SPLITK_PAIRS.get(shader, 1) if n_tokens is not None else 1)
        if per > 1:  # several row pairs per workgroup at once (shaders/_matvec.wgsl PAIRS)
            per = min(per, 256 // wg)
            constants = dict(constants, PAIRS=per)
            wg *= per
            rp *= per
        pl = w.pipeline(shader, QTYPE=qtype, M=M, K=K, WG=wg, TT=1, ROWMAJOR=True, SPLITK=True, **constants)
        ys: Dim = 1 if constants.get("LAST_ONLY") else (Count(var="n_tokens") if n_tokens is None else n_tokens)
        return w.dispatch(pl, ["step", weight, *buffers], (_ceil(pairs, rp), ys, 1), label)
    constants.pop("CAND", None)  # per-workgroup candidates: split-K heads only (matmul_norm.wgsl)
    rowmajor = layout == "rowmajor"  # the rows kernels on a row-major blob (too many rows for split-K)
    if rowmajor:
        constants = dict(constants, ROWMAJOR=True)
    tt = 1 if n_tokens is not None else TT_PREFILL
    if constants.get("LAST_ONLY"):
        tt = 1
    pl = w.pipeline(shader, QTYPE=qtype, M=M, K=K, WG=WG, TT=tt, **constants)
    x = _ceil(pairs, WG)
    y: Dim
    if constants.get("LAST_ONLY"):
        y = 1
    elif n_tokens is None:
        y = Count(var="n_tokens", per=tt)
    else:
        y = _ceil(n_tokens, tt)
    return w.dispatch(pl, ["step", weight, *buffers], (x, y, 1), label)


def check_plannable(model) -> None:
    """UnsupportedModelError unless build_plan can describe this model (architecture, head
    layout, matrices that fit a binding: only embedding tables and heads are split)."""
    cfg = model.config
    if cfg.arch not in ARCHITECTURES:
        raise UnsupportedModelError(f"architecture {cfg.arch!r} has no GPU plan yet")
    if cfg.rope_dim != cfg.head_dim:
        raise UnsupportedModelError(f"partial RoPE (rope_dim {cfg.rope_dim} < head_dim {cfg.head_dim}) is not supported")
    if cfg.head_dim % 4 or cfg.head_dim > 256 or cfg.n_head % cfg.n_head_kv:
        raise UnsupportedModelError(f"head layout {cfg.n_head}/{cfg.n_head_kv}x{cfg.head_dim} is not supported")
    big = {"token_embd.weight", "output.weight"}
    for name, t in model.tensors.items():
        if len(t.shape) == 2 and name not in big:
            q = t.ggml_type if t.ggml_type in KERNEL_TYPES else QT.F16
            n = t.shape[0] * blob_row_bytes(q, t.shape[1])
            if name.endswith(("ffn_gate.weight", "ffn_up.weight")):
                n *= 2  # gate and up share one blob
            if n > MAX_BINDING:
                raise UnsupportedModelError(f"{name} needs {n:,} bytes in one GPU binding (at most {MAX_BINDING:,})")


def estimate_gpu_bytes(model, n_ctx: int = 2048, max_batch: int = 64, f16_kv: bool = False) -> dict[str, int]:
    """GPU memory a plan for `model` takes (bytes): repacked weights, KV cache, activations,
    and the largest single binding (embedding tables and heads are split at MAX_BINDING)."""
    cfg = model.config
    n_ctx = min(n_ctx, cfg.n_ctx_train) if cfg.n_ctx_train else n_ctx
    weights = largest = 0
    for name, t in model.tensors.items():
        if name == "output.weight" and cfg.tied_output:
            continue
        if len(t.shape) != 2:
            weights += 4 * int(np.prod(t.shape))
            continue
        q = t.ggml_type if t.ggml_type in KERNEL_TYPES else QT.F16
        n = t.shape[0] * blob_row_bytes(q, t.shape[1])
        weights += n
        largest = max(largest, min(n, MAX_BINDING) if name in ("token_embd.weight", "output.weight") else n)
    NQ, NK = cfg.n_head * cfg.head_dim, cfg.n_head_kv * cfg.head_dim
    kv = 2 * cfg.n_layer * n_ctx * NK * (2 if f16_kv else 4)
    act = max_batch * 4 * (3 * cfg.n_embd + 2 * NQ + (NQ + 2 * NK) + cfg.n_ff + cfg.n_vocab)
    rope = n_ctx * cfg.head_dim * 4 * (2 if cfg.sliding_window else 1)
    return {"weights": weights, "kv_cache": kv, "activations": act + rope,
            "total": weights + kv + act + rope, "largest_binding": max(largest, act // 2)}  # fmt: skip


def build_plan(
    model,
    n_ctx: int = 2048,
    max_batch: int = 64,
    features: Sequence[str] = (),
    allow: str | Sequence[str] | None = None,
    layout: str | None = None,
    adapter_info: dict | None = None,
    subgroup_size: int | None = None,
) -> BuiltPlan:
    """The plan for a loaded GGUF model (companion.model.GGUFModel).

    n_ctx: KV cache positions; max_batch: token rows one prefill dispatch list handles;
    features: the adapter's features (variants that need absent ones fall back to f32, with a
    logged reason); allow: the features the user permits ("auto" | "none" | "f16,subgroups" or a
    list), None = the COMPANION_GPU_FEATURES environment variable; layout: the matmul layout
    "rows" | "splitk" | "auto" (splitk on GPUs, rows on CPU rasterizers, judged from
    adapter_info, the adapter's info dict), None = COMPANION_GPU_LAYOUT (default auto);
    subgroup_size: the device's subgroup size where companion.gpu.adapters.probe_subgroups found
    them one fixed size in invocation order (the subgroup kernels' fast path), None = unknown."""
    cfg = model.config
    check_plannable(model)
    n_ctx = min(n_ctx, cfg.n_ctx_train) if cfg.n_ctx_train else n_ctx

    lay, lay_why = choose_layout(adapter_info, layout)
    splitk = lay == "splitk"
    gpu_why = []
    if is_auto_features(allow):
        if splitk and subgroup_size and not is_cpu_adapter(adapter_info or {}):
            allow = "subgroups"
            gpu_why.append(auto_subgroups_note(subgroup_size))
        else:
            allow = "none"
            gpu_why.append(AUTO_F32_NOTE)
    used, why = choose_features(features, allow)
    if "subgroups" in used:
        why.append(f"subgroup reductions: {subgroup_size} wide in invocation order (probed)" if subgroup_size else
                   "subgroup reductions: size and layout not probed (the slower path that assumes neither)")
    w = PlanWriter(features=used, subgroup_size=int(subgroup_size or 0))
    for n in [*gpu_why, *why]:
        log.info("plan: %s", n)
    w.notes.extend([*gpu_why, *why])
    if used:
        w.notes.append("kernel variants: " + ", ".join(VARIANTS[f][0] for f in used))
    kv_bytes = 2 if "shader-f16" in used else 4  # KV cache element (_prec.wgsl kv)
    log.info("plan: %s", lay_why)
    w.notes.append(lay_why)

    d, ff, V = cfg.n_embd, cfg.n_ff, cfg.n_vocab
    H, KV, hd = cfg.n_head, cfg.n_head_kv, cfg.head_dim
    NQ, NK = H * hd, KV * hd
    tensors = model.tensors

    def raw_rows(name: str) -> tuple[np.ndarray, QT]:
        t = tensors[name]
        rows = t.shape[0]
        return t.raw.reshape(rows, -1), t.ggml_type

    def weight(blob_name: str, names: Sequence[str], order: np.ndarray | None = None, rows: slice | None = None) -> _Weight:
        """Repacked blob of the row-concatenation of `names` (rows: only those of one name);
        (buffer, qtype, M, K)."""
        parts = [raw_rows(n) for n in names]
        if rows is not None:
            parts = [(r[rows], q) for r, q in parts]
        qtypes = {q for _, q in parts}
        K = tensors[names[0]].shape[1]
        if len(qtypes) == 1 and next(iter(qtypes)) in KERNEL_TYPES:
            qtype = next(iter(qtypes))
            raw = np.concatenate([r for r, _ in parts]) if len(parts) > 1 else parts[0][0]
            recipe = f"interleave({qtype.name}; {', '.join(names)})"
        else:  # mixed or unsupported types: dequantize once to F16
            qtype = QT.F16
            sel = rows if rows is not None else slice(None)  # a row chunk of a big table: only its rows
            raw = np.concatenate([model.dequantize(n).astype(np.float16).reshape(tensors[n].shape)[sel] for n in names]).view(np.uint8)
            recipe = f"interleave(F16 from {'/'.join(q.name for q in qtypes)}; {', '.join(names)})"
            note = f"{blob_name}: {recipe}"
            if note not in w.notes:
                w.notes.append(note)
        if order is not None:
            raw = raw[order]
            recipe += "; rows in rotation-pair order"
        if rows is not None:
            recipe += f"; rows {rows.start}..{rows.stop - 1}"
        blob = repack(raw, qtype, K, rowmajor=splitk)
        if splitk:
            recipe += "; row-major (split-K)"
        if blob.nbytes > MAX_BINDING:
            raise UnsupportedModelError(
                f"{blob_name} takes {blob.nbytes:,} bytes, more than one GPU binding holds ({MAX_BINDING:,}); "
                "only embedding tables and output heads are split"
            )
        return _Weight(w.blob(blob_name, blob, recipe), int(qtype), raw.shape[0], K, order is not None)

    def chunks(blob_name: str, name: str) -> list[_Chunk]:
        """A big table as row chunks of at most MAX_BINDING bytes each."""
        t = tensors[name]
        M, K = t.shape
        qtype = t.ggml_type if t.ggml_type in KERNEL_TYPES else QT.F16
        per = max(2, (MAX_BINDING - 4096) // blob_row_bytes(qtype, K) // 2 * 2)  # rows per chunk (even)
        if M <= per:
            return [_Chunk(weight(blob_name, [name]), 0)]
        return [
            _Chunk(weight(f"{blob_name}.{i}", [name], rows=slice(r0, min(M, r0 + per))), r0)
            for i, r0 in enumerate(range(0, M, per))
        ]

    def f32_vector(name: str) -> str:
        t = tensors[name]
        if t.ggml_type == QT.F32:
            return w.buffer(name, t.n_bytes, GgufSource(tensor=name, size=t.n_bytes))
        return w.blob(name, model.dequantize(name).astype(np.float32).reshape(-1), f"f32({name})")

    def aux_vector(i: int) -> str | None:
        """qkv_rope's aux blob of layer i: q|k|v biases, then q and k norm weights (f32)."""
        p = f"blk.{i}."
        parts = []
        if cfg.has_qkv_bias:
            parts += [model.dequantize(p + f"attn_{n}.bias").reshape(-1) for n in "qkv"]
        if cfg.qk_norm:
            parts += [model.dequantize(p + f"attn_{n}_norm.weight").reshape(-1) for n in "qk"]
        if not parts:
            return None
        data = np.concatenate(parts).astype(np.float32)  # ((NQ + 2 NK) + 2 hd,) at most
        return w.blob(p + "attn_aux", data, f"f32({'bias q|k|v, ' if cfg.has_qkv_bias else ''}{'q_norm, k_norm' if cfg.qk_norm else ''})")

    # --- weights
    emb_chunks = chunks("token_embd", "token_embd.weight")
    if len(emb_chunks) > 1:
        w.notes.append(f"token_embd: {len(emb_chunks)} row chunks (each within one {MAX_BINDING >> 20} MiB binding)")
    out_name = model.output_name
    out_chunks = emb_chunks if out_name == "token_embd.weight" else chunks("output", out_name)
    out_norm = f32_vector("output_norm.weight")
    order = qkv_pair_order(H, KV, hd, cfg.rope_neox)
    freq_factors = model.dequantize("rope_freqs.weight").reshape(-1) if cfg.rope_freqs else None
    recipe = f"rope_table(n_ctx={n_ctx}, head_dim={hd}, base={{}}, freq_scale={cfg.rope_freq_scale}{', rope_freqs' if cfg.rope_freqs else ''})"
    rope = w.blob("rope", rope_table(n_ctx, hd, cfg.rope_base, cfg.rope_freq_scale, freq_factors), recipe.format(cfg.rope_base))
    rope_swa = rope
    if cfg.sliding_window:
        rope_swa = w.blob("rope_swa", rope_table(n_ctx, hd, cfg.rope_base_swa, 1.0, freq_factors), recipe.format(cfg.rope_base_swa))
    layers: list[_Layer] = []
    for i in range(cfg.n_layer):
        p = f"blk.{i}."
        names = [p + "attn_q.weight", p + "attn_k.weight", p + "attn_v.weight"]
        aux = aux_vector(i)
        qtypes = [tensors[n].ggml_type for n in names]
        if aux is None and len(set(qtypes)) == 1:  # one fused dispatch: norm + q|k|v + RoPE + KV store
            qkv = [weight(p + "attn_qkv", names, order)]
        else:  # runs of one type through matmul_norm, then qkv_rope.wgsl
            qkv, start = [], 0
            while start < 3:
                end = start + 1
                while end < 3 and qtypes[end] == qtypes[start]:
                    end += 1
                qkv.append(weight(p + "attn_" + "".join("qkv"[start:end]), names[start:end]))
                start = end
        swa = cfg.is_swa(i)
        layers.append(
            _Layer(
                qkv=qkv,
                wo=weight(p + "attn_output", [p + "attn_output.weight"]),
                gu=weight(p + "ffn_gate_up", [p + "ffn_gate.weight", p + "ffn_up.weight"]),
                down=weight(p + "ffn_down", [p + "ffn_down.weight"]),
                attn_norm=f32_vector(p + "attn_norm.weight"),
                ffn_norm=f32_vector(p + "ffn_norm.weight"),
                k=w.buffer(p + "k_cache", n_ctx * NK * kv_bytes),
                v=w.buffer(p + "v_cache", n_ctx * NK * kv_bytes),
                rope=rope_swa if swa else rope,
                window=cfg.sliding_window if swa else 0,
                aux=aux,
                post_attn_norm=f32_vector(p + "post_attention_norm.weight") if cfg.post_norms else None,
                post_ffn_norm=f32_vector(p + "post_ffw_norm.weight") if cfg.post_norms else None,
            )
        )
    if any(not L.fused_qkv for L in layers):
        w.notes.append("attention inputs: matmul_norm + qkv_rope (biases, q/k norms or mixed quant types)")

    # --- activations and io
    B = max_batch
    w.buffer("step", STEP_SIZE, usage="uniform")
    w.buffer("ids", B * 4)
    w.buffer("hist", MAX_HIST * 4)
    w.buffer("chain", (MAX_HIST + n_ctx + 1) * 4)  # a decode chain's ids: penalty history, then each step's id
    w.buffer("token_out", 4)
    w.buffer("x", B * d * 4)  # (B, d) residual stream
    w.buffer("q", B * NQ * 4)  # (B, NQ) roped queries
    w.buffer("att", B * NQ * 4)  # (B, NQ) attention output
    flash = splitk and _flash.ENABLED and flash_fits(H, hd)  # decode attention split over workgroups (gpu/_flash.py)
    if flash:
        w.buffer("attn_part", part_bytes(H, hd))  # (H, FLASH_S, hd / 4 + 1) vec4 partials
    w.buffer("ff", B * ff * 4)  # (B, ff) swiglu output
    w.buffer("logits", B * V * 4)  # (B, V) logits (row 0 only unless prefill_all)
    if any(not L.fused_qkv for L in layers):
        w.buffer("qkv", B * (NQ + 2 * NK) * 4)  # (B, NQ + 2 NK) unroped q | k | v
    if cfg.post_norms:
        w.buffer("tmp", B * d * 4)  # (B, d) a block's output before its post-norm
    act = 1 if cfg.ffn_act == "gelu_tanh" else 0
    att_consts: dict[str, float | int | bool] = {"SCALE": cfg.q_scale} if cfg.attn_scale else {}
    att_gq = attention_gq(H, KV)

    def forward(n_tokens: int | None, all_logits: bool) -> list[Dispatch]:
        T: Dim = Count(var="n_tokens") if n_tokens is None else n_tokens

        # one token row (decode): the split-K norm+matvec kernels take the norm in their loop
        fused: dict[str, float | int | bool] = {"FUSED_NORM": True} if splitk and FUSED_NORM and n_tokens is not None and "shader-f16" not in used else {}

        ds = []
        many = len(emb_chunks) > 1
        for c in emb_chunks:
            E = c.weight
            extra: dict[str, float | int | bool] = {"ROWMAJOR": True} if splitk else {}
            if many:
                extra |= {"ROW0": c.row0, "CHUNKED": True}
            if cfg.embd_scale != 1.0:
                extra["SCALE"] = cfg.embd_scale
            pl = w.pipeline("embed.wgsl", QTYPE=E.qtype, M=E.M, K=E.K, WG=WG, **extra)
            ds.append(w.dispatch(pl, ["step", "ids", E.buffer, "x"], (_ceil(E.K // 32, WG), T, 1), "embed" + (f" rows {c.row0}.." if many else "")))
        for i, L in enumerate(layers):
            if splitk:  # GPUs: keys spread over the workgroup's invocations
                att = w.pipeline("attention_split.wgsl", NH=H, NKV=KV, HD=hd, WG=256, GQ=att_gq, **att_consts, **({"WINDOW": L.window} if L.window else {}))
            else:  # CPU rasterizers: an invocation per head dimension walks the keys
                att = w.pipeline("attention.wgsl", NH=H, NKV=KV, HD=hd, WG=64, **att_consts, **({"WINDOW": L.window} if L.window else {}))
            if L.fused_qkv:
                Q = L.qkv[0]
                ds.append(matmul_dispatch(
                    w, "matmul_qkv.wgsl", Q.buffer, Q.qtype, Q.M, Q.K, ["x", L.attn_norm, L.rope, "q", L.k, L.v],
                    n_tokens, f"blk.{i} norm+qkv+rope+kv", lay, NQ=NQ, NK=NK, HD=hd, NEOX=cfg.rope_neox, EPS=cfg.rms_eps,
                    **fused,
                ))  # fmt: skip
            else:
                o = 0
                for Q in L.qkv:
                    ds.append(matmul_dispatch(
                        w, "matmul_norm.wgsl", Q.buffer, Q.qtype, Q.M, Q.K, ["x", L.attn_norm, "qkv"], n_tokens,
                        f"blk.{i} norm+{Q.buffer.rsplit('_', 1)[-1]}", lay, EPS=cfg.rms_eps, YS=NQ + 2 * NK, YO=o,
                    ))  # fmt: skip
                    o += Q.M
                pl = w.pipeline(
                    "qkv_rope.wgsl", NQ=NQ, NK=NK, HD=hd, NEOX=cfg.rope_neox, HAS_BIAS=cfg.has_qkv_bias,
                    QK_NORM=cfg.qk_norm, EPS=cfg.rms_eps, WG=64,
                )  # fmt: skip
                ds.append(w.dispatch(pl, ["step", "qkv", L.aux or "qkv", L.rope, "q", L.k, L.v], (H + 2 * KV, T, 1), f"blk.{i} {'bias+' if cfg.has_qkv_bias else ''}{'qk_norm+' if cfg.qk_norm else ''}rope+kv"))
            Q = L.wo
            if flash and n_tokens == 1 and L.post_attn_norm is None and _ceil(Q.M, 2) <= MAX_GROUPS:
                ds += flash_dispatches(
                    w, layer=f"blk.{i}", n_head=H, n_head_kv=KV, head_dim=hd, k_cache=L.k, v_cache=L.v, part="attn_part",
                    wo=Q.buffer, wo_qtype=Q.qtype, wo_rows=Q.M, wo_wg=splitk_wg(Q.qtype, Q.K), window=L.window, att_consts=att_consts,
                )  # fmt: skip
            else:
                heads = H // att_gq if att.startswith("attention_split") else H  # workgroups per token
                ds.append(w.dispatch(att, ["step", "q", L.k, L.v, "att"], (heads, T, 1), f"blk.{i} attention" + (f" (window {L.window})" if L.window else "")))
            add_pl = w.pipeline("add_norm.wgsl", K=d, EPS=cfg.rms_eps, WG=64) if cfg.post_norms else ""
            Q = L.wo
            if ds[-1].pipeline.startswith("matmul_attn"):
                pass  # flash: the output projection merged the partials above
            elif L.post_attn_norm is not None:
                ds.append(matmul_dispatch(w, "matmul.wgsl", Q.buffer, Q.qtype, Q.M, Q.K, ["att", "tmp"], n_tokens, f"blk.{i} attn_output", lay))
                ds.append(w.dispatch(add_pl, ["step", "tmp", L.post_attn_norm, "x"], (1, T, 1), f"blk.{i} post_attention_norm+residual"))
            else:
                ds.append(matmul_dispatch(w, "matmul.wgsl", Q.buffer, Q.qtype, Q.M, Q.K, ["att", "x"], n_tokens, f"blk.{i} attn_output+residual", lay, ADD=True))
            Q = L.gu
            ds.append(matmul_dispatch(
                w, "matmul_swiglu.wgsl", Q.buffer, Q.qtype, Q.M, Q.K, ["x", L.ffn_norm, "ff"], n_tokens,
                f"blk.{i} norm+gate+up+{'geglu' if act else 'swiglu'}", lay, EPS=cfg.rms_eps, **({"ACT": act} if act else {}),
                **fused,
            ))  # fmt: skip
            Q = L.down
            if L.post_ffn_norm is not None:
                ds.append(matmul_dispatch(w, "matmul.wgsl", Q.buffer, Q.qtype, Q.M, Q.K, ["ff", "tmp"], n_tokens, f"blk.{i} ffn_down", lay))
                ds.append(w.dispatch(add_pl, ["step", "tmp", L.post_ffn_norm, "x"], (1, T, 1), f"blk.{i} post_ffw_norm+residual"))
            else:
                ds.append(matmul_dispatch(w, "matmul.wgsl", Q.buffer, Q.qtype, Q.M, Q.K, ["ff", "x"], n_tokens, f"blk.{i} ffn_down+residual", lay, ADD=True))
        head: dict[str, float | int | bool] = {"CAP": cfg.logit_softcap} if cfg.logit_softcap else {}
        for c in out_chunks:
            Q = c.weight
            if len(out_chunks) > 1:
                head |= {"YS": V, "YO": c.row0}
            # a decode step's head leaves its per-workgroup best logits past row 0 (sample_decode):
            # at most ceil(V / 2) pairs of floats, which rows 1 and 2 of the logits hold (B >= 3)
            cand = {"CAND": V} if HEAD_CANDIDATES and n_tokens == 1 and not all_logits and len(out_chunks) == 1 and B >= 3 else {}
            label = "output_norm+output" + (f" rows {c.row0}.." if len(out_chunks) > 1 else "")
            dh = matmul_dispatch(w, "matmul_norm.wgsl", Q.buffer, Q.qtype, Q.M, d, ["x", out_norm, "logits"], n_tokens, label, lay,
                                 EPS=cfg.rms_eps, LAST_ONLY=not all_logits, RP=HEAD_RP, LANES=head_lanes(Q.qtype, d), **head, **cand)  # fmt: skip
            if w.pipelines[dh.pipeline].constants.get("CAND"):  # split-K took it (matmul_dispatch)
                candidates.append(int(dh.workgroups[0]))  # type: ignore[arg-type]
            ds.append(dh)
        return ds

    candidates: list[int] = []  # per-workgroup best logits the decode step's head leaves (CAND)
    programs = {
        "prefill": Program(name="prefill", vars=["n_tokens"], max_vars={"n_tokens": B}, dispatches=forward(None, False)),
        "prefill_all": Program(name="prefill_all", vars=["n_tokens"], max_vars={"n_tokens": B}, dispatches=forward(None, True)),
        "decode": Program(name="decode", dispatches=forward(1, False)),
    }
    # "sample" follows any head; "sample_decode" only "decode", whose head may have left
    # candidates; "sample_chain" likewise, in a decode chain: the history and the ids in "chain"
    # (NativeEngine runs decode steps ahead with the decode program's "ids" bound to "chain")
    cands: dict[str, int] = {"NC": sum(candidates), "CAND": V} if candidates else {}
    for name, out, consts in (("sample", "token_out", {}), ("sample_decode", "token_out", cands), ("sample_chain", "chain", {**cands, "CHAIN": True})):
        pl = w.pipeline("sample.wgsl", V=V, **consts)
        programs[name] = Program(
            name=name,
            dispatches=[w.dispatch(pl, ["step", "logits", "hist", out], (1, 1, 1), "sample")],
            readback=Readback(buffer=out, size=4) if out == "token_out" else None,  # a chain reads its ids itself
        )
    biggest = max(b.size for b in w.buffers.values())
    plan = Plan(
        model={
            "arch": cfg.arch, "name": cfg.name, "n_layer": cfg.n_layer, "n_embd": d, "n_vocab": V,
            "n_ctx": n_ctx, "max_batch": B, "max_hist": MAX_HIST,
            "layout": lay,
        },
        features=sorted(used),
        limits={"max-storage-buffer-binding-size": biggest, "max-buffer-size": biggest,
                "max-compute-invocations-per-workgroup": 256, "max-storage-buffers-per-shader-stage": 7},
        uniform=uniform_block(),
        buffers=list(w.buffers.values()),
        pipelines=list(w.pipelines.values()),
        programs=programs,
        io={"tokens": "ids", "logits": "logits", "history": "hist", "token_out": "token_out", "chain": "chain"},
        notes=w.notes,
    )  # fmt: skip

    def tensor_bytes(name: str) -> np.ndarray:
        return tensors[name].raw

    return BuiltPlan(plan=plan, blobs=w.blobs, tensor_bytes=tensor_bytes)


__all__ = ["BuiltPlan", "build_plan", "repack", "qkv_pair_order", "rope_table"]
