"""The numpy reference: a readable forward pass of a llama-style decoder with a KV cache.

Slow and clear on purpose. Both GPU executors are checked against it, and it is checked
against llama.cpp's outputs (shared/golden). Everything stays float32: a float64 scalar
would silently promote the whole pass (NumPy 2 rules) and make it ~20x slower.

Architectures (companion.model.gguf_model.ARCHITECTURES) differ only where ModelConfig says:
llama / mistral (SwiGLU, normal RoPE; Llama 3's rope_freqs divide the pair frequencies),
qwen2 (q/k/v biases, neox RoPE) and gemma3 (embeddings times sqrt(d), RMSNorm of each q and k
head, GeGLU with tanh GELU, post-attention and post-FFN norms, sliding-window layers with their
own RoPE base, optional final logit soft-capping). Gemma's RMSNorm weights are used as stored:
llama.cpp's converter already wrote 1 + w (conversion/gemma.py norm_shift).

Two ways to hold the weights (ReferenceModel's `lean`):
- lean (what ReferenceEngine builds from a GGUF file, and so what `--engine reference` and the
  auto choice on a CPU-only adapter run): the matrices of the types in LEAN_TYPES stay in their
  GGUF blocks, in the file's memory map, and are multiplied by compiled kernels
  (companion.engines._cpu_kernels, numba): decode fuses each block's products in float32 on the
  exact dequantized values; prefill dequantizes a chunk of rows at a time (the values
  gguf.quants gives) and hands it to BLAS. F32 matrices are used in place from the memory map,
  other types are dequantized to float32. Resident weights: about the file's size.
- f32 (ReferenceModel(model) by default, the exact referee the tests change weights of): every
  tensor dequantized once to a float32 array, multiplied by numpy.
Both compute in float32 from the same values; only the order of the sums differs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from gguf import GGMLQuantizationType as QT

from companion.engines.base import Engine
from companion.model.gguf_model import GGUFModel, ModelConfig

f32 = np.float32
log = logging.getLogger(__name__)

# Types the lean model keeps in their GGUF blocks (the compiled kernels' types;
# companion.gpu.fit.reference_bytes counts them at their file size).
LEAN_TYPES = frozenset({QT.Q4_0, QT.Q4_1, QT.Q5_0, QT.Q5_1, QT.Q8_0, QT.Q4_K, QT.Q5_K, QT.Q6_K})
# Up to this many positions a quantized product runs the fused kernel once per position;
# beyond, a chunk of rows is dequantized and multiplied by BLAS (prefill).
FUSED_MAX_T = 2
DEQUANT_CHUNK = 1 << 20  # values per dequantized chunk (4 MiB of float32)
PREFILL_CHUNK = 128  # positions per forward pass of a long prompt
KV_CACHE_START = 256  # positions the KV cache holds at first (it doubles as needed)


class QuantMatrix:
    """A weight matrix kept as its GGUF blocks: raw (rows, bytes per row), a view of the file's
    memory map, of a type in LEAN_TYPES. `matmul(x)` is x @ W.T, `take(ids)` rows of W."""

    def __init__(self, qtype: QT, shape: tuple[int, ...], raw: np.ndarray):
        from companion.engines import _cpu_kernels

        self.k = _cpu_kernels
        self.qtype, self.shape, self.raw = qtype, (int(shape[0]), int(shape[1])), raw
        self._mv: Any = None  # the prepared kernel call

    def matmul(self, x: np.ndarray) -> np.ndarray:
        """x (T, cols) @ W.T -> (T, rows) float32."""
        return _quant_matmul(x, [self], self)

    def take(self, ids: np.ndarray) -> np.ndarray:
        """Rows ids of W as float32 (len(ids), cols): an embedding lookup."""
        return self.k.dequantize_rows(self.qtype, self.raw, self.shape[1], ids)


def _quant_matmul(x: np.ndarray, parts: Sequence[QuantMatrix], owner: Any) -> np.ndarray:
    """x (T, cols) @ [W1; W2; ...].T for matrices of one type: the fused kernel for a few
    positions (its call prepared once, kept on owner), else row chunks dequantized and
    multiplied by BLAS."""
    k, qtype, cols = parts[0].k, parts[0].qtype, parts[0].shape[1]
    if x.shape[0] <= FUSED_MAX_T:
        return _prepared(parts, owner)(x)
    out = np.empty((x.shape[0], sum(p.shape[0] for p in parts)), f32)  # (T, rows)
    step, o = max(1, DEQUANT_CHUNK // cols), 0
    for p in parts:
        for r0 in range(0, p.shape[0], step):
            r1 = min(p.shape[0], r0 + step)
            w = k.dequantize_rows(qtype, p.raw, cols, slice(r0, r1))  # (r1-r0, cols)
            out[:, o + r0 : o + r1] = x @ w.T
        o += p.shape[0]
    return out


def _prepared(parts: Sequence[QuantMatrix], owner: Any) -> Any:
    """The kernel call of parts (quantized alike, stacked by rows), prepared once and kept on
    owner (the QuantMatrix or Stacked they make up)."""
    if owner._mv is None:
        owner._mv = parts[0].k.Matvec(parts[0].qtype, [p.raw for p in parts])
    return owner._mv


class Stacked:
    """Matrices multiplied as if stacked by rows (attn q, k, v; ffn gate, up) without copying
    them: one kernel call where they are all quantized alike."""

    def __init__(self, parts: Sequence[np.ndarray | QuantMatrix]):
        self.parts = tuple(parts)
        self.shape = (sum(int(p.shape[0]) for p in self.parts), int(self.parts[0].shape[1]))
        q = [p for p in self.parts if isinstance(p, QuantMatrix)]
        self.fused = len(q) == len(self.parts) <= 3 and len({p.qtype for p in q}) == 1
        self._mv: Any = None

    def matmul(self, x: np.ndarray) -> np.ndarray:
        if self.fused:
            return _quant_matmul(x, self.parts, self)  # type: ignore[arg-type]
        return np.concatenate([matmul(x, p) for p in self.parts], axis=1)  # (T, sum of rows)


Weight = Any  # np.ndarray (float32, numpy order) | QuantMatrix | Stacked


def matmul(x: np.ndarray, w: Weight) -> np.ndarray:
    """x (T, in) @ W.T -> (T, out) for a float32 array or a lean matrix."""
    if isinstance(w, np.ndarray):
        return x @ w.T
    return w.matmul(x)


@dataclass
class LayerWeights:
    """One transformer block (numpy order: out_features, in_features). Matrices are float32
    arrays, or in a lean model QuantMatrix / Stacked (see matmul)."""

    attn_norm: np.ndarray  # (d,)
    wqkv: Weight  # (q + 2*kv, d)  attn_q, attn_k, attn_v stacked
    bqkv: np.ndarray | None  # (q + 2*kv,)  qwen2 biases, else None
    wo: Weight  # (d, q)  attn_output
    ffn_norm: np.ndarray  # (d,)
    w_gate_up: Weight  # (2*ff, d)  ffn_gate, ffn_up stacked
    w_down: Weight  # (d, ff)  ffn_down
    q_norm: np.ndarray | None = None  # (hd,)  attn_q_norm (gemma3), else None
    k_norm: np.ndarray | None = None  # (hd,)  attn_k_norm (gemma3), else None
    post_attn_norm: np.ndarray | None = None  # (d,)  post_attention_norm (gemma3), else None
    post_ffn_norm: np.ndarray | None = None  # (d,)  post_ffw_norm (gemma3), else None


def rms_norm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    """x / sqrt(mean(x^2) + eps) * weight over the last axis."""
    ms = np.mean(x * x, axis=-1, keepdims=True)  # (T, 1)
    return x / np.sqrt(ms + f32(eps)) * weight  # (T, d)


def rope_tables(
    cfg: ModelConfig, positions: np.ndarray, base: float | None = None, freq_factors: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """cos/sin of position * freq_scale * base^(-2i/rope_dim) / freq_factors[i] for each rotated
    pair i (base: cfg.rope_base unless given; freq_factors: Llama 3's rope_freqs, else none)."""
    i = np.arange(cfg.rope_dim // 2, dtype=f32)  # (r/2,)
    inv_freq = f32(cfg.rope_base if base is None else base) ** (-2.0 * i / f32(cfg.rope_dim))  # (r/2,)
    inv_freq = inv_freq * f32(cfg.rope_freq_scale)  # (r/2,)
    if freq_factors is not None:
        inv_freq = inv_freq / freq_factors  # (r/2,)
    angle = positions.astype(f32)[:, None] * inv_freq[None, :]  # (T, r/2)
    return np.cos(angle).astype(f32), np.sin(angle).astype(f32)


def apply_rope(x: np.ndarray, cos: np.ndarray, sin: np.ndarray, rope_dim: int, neox: bool) -> np.ndarray:
    """Rotate the first rope_dim dims of each head. x: (T, n_heads, head_dim).

    normal (llama): pairs (2i, 2i+1) rotate together; neox: pairs (i, i + rope_dim/2)."""
    out = x.copy()  # (T, H, hd)
    c, s = cos[:, None, :], sin[:, None, :]  # (T, 1, r/2)
    if neox:
        half = rope_dim // 2
        a, b = x[..., :half], x[..., half:rope_dim]  # (T, H, r/2) each
        out[..., :half] = a * c - b * s
        out[..., half:rope_dim] = a * s + b * c
    else:
        a, b = x[..., 0:rope_dim:2], x[..., 1:rope_dim:2]  # (T, H, r/2) each
        out[..., 0:rope_dim:2] = a * c - b * s
        out[..., 1:rope_dim:2] = a * s + b * c
    return out


def silu(x: np.ndarray) -> np.ndarray:
    return x / (f32(1.0) + np.exp(-x))


def gelu_tanh(x: np.ndarray) -> np.ndarray:
    """GELU, tanh approximation (gelu_pytorch_tanh; ggml_gelu)."""
    return f32(0.5) * x * (f32(1.0) + np.tanh(f32(np.sqrt(2.0 / np.pi)) * (x + f32(0.044715) * x * x * x)))


class ReferenceModel:
    """Weights of the whole model: every tensor dequantized once to float32 (the default, the
    exact referee), or lean=True: matrices of LEAN_TYPES kept in their GGUF blocks in the memory
    map, F32 ones used in place (see the module docstring). Without numba, lean falls back to
    float32 (logged)."""

    def __init__(self, model: GGUFModel, lean: bool = False):
        self.cfg = cfg = model.config
        if lean:
            try:
                import time

                from companion.engines import _cpu_kernels, _cpu_step

                t0 = time.perf_counter()
                _cpu_kernels.warm_up()
                _cpu_step.warm_up()
                secs = time.perf_counter() - t0
                if secs > 1.0:
                    log.info("reference: compiled CPU kernels loaded or built in %.1f s (cache: %s)", secs, _cpu_kernels.CACHE_DIR)
            except ImportError as exc:  # pragma: no cover - numba ships with the app
                log.warning("reference: compiled CPU kernels unavailable (%s); weights as float32", exc)
                lean = False
        self.lean = lean
        dq = model.dequantize

        def mat(name: str) -> Weight:
            if not lean:
                return dq(name)
            t = model.tensors[name]
            if t.ggml_type in LEAN_TYPES and len(t.shape) == 2:
                return QuantMatrix(t.ggml_type, t.shape, np.asarray(t.data))
            if t.ggml_type == QT.F32:
                return np.asarray(t.data).reshape(t.shape)  # in place, in the memory map
            return dq(name)

        def stack(names: list[str]) -> Weight:
            if not lean:
                return np.ascontiguousarray(np.concatenate([dq(n) for n in names]))
            return Stacked([mat(n) for n in names])

        self.tok_embd = mat("token_embd.weight")  # (V, d)
        self.output_norm = dq("output_norm.weight")  # (d,)
        self.output = self.tok_embd if cfg.tied_output else mat("output.weight")  # (V, d)
        self.rope_freqs = dq("rope_freqs.weight") if cfg.rope_freqs else None  # (r/2,) Llama 3, else None
        self.layers: list[LayerWeights] = []
        for i in range(cfg.n_layer):
            b = f"blk.{i}."

            def opt(name: str, present: bool, b: str = b) -> np.ndarray | None:
                return dq(b + name) if present else None

            bias = None
            if cfg.has_qkv_bias:
                bias = np.concatenate([dq(b + f"attn_{n}.bias") for n in "qkv"])  # (q+2kv,)
            self.layers.append(
                LayerWeights(
                    attn_norm=dq(b + "attn_norm.weight"),
                    wqkv=stack([b + f"attn_{n}.weight" for n in "qkv"]),
                    bqkv=bias,
                    wo=mat(b + "attn_output.weight"),
                    ffn_norm=dq(b + "ffn_norm.weight"),
                    w_gate_up=stack([b + "ffn_gate.weight", b + "ffn_up.weight"]),
                    w_down=mat(b + "ffn_down.weight"),
                    q_norm=opt("attn_q_norm.weight", cfg.qk_norm),
                    k_norm=opt("attn_k_norm.weight", cfg.qk_norm),
                    post_attn_norm=opt("post_attention_norm.weight", cfg.post_norms),
                    post_ffn_norm=opt("post_ffw_norm.weight", cfg.post_norms),
                )
            )

    def embed(self, ids: Sequence[int]) -> np.ndarray:
        """Token embedding rows (T, d) float32."""
        idx = np.asarray(ids, dtype=np.int64)
        if isinstance(self.tok_embd, QuantMatrix):
            return self.tok_embd.take(idx)
        return np.asarray(self.tok_embd[idx], dtype=f32)


class ReferenceEngine(Engine):
    """Runs ReferenceModel on the CPU with a float32 KV cache. From a GGUF file it builds the
    lean model (lean=False: the float32 one); a ReferenceModel is run as it is."""

    name = "reference"

    @property
    def adapter(self) -> str:
        """Where it runs: the compiled kernels on the file's blocks (lean), or numpy on float32."""
        if not self.w.lean:
            return "CPU (numpy, float32)"
        from companion.engines._cpu_kernels import THREADING

        return f"CPU (compiled kernels, {THREADING} threads)"

    def __init__(self, model: GGUFModel | ReferenceModel, n_ctx: int = 2048, lean: bool = True):
        self.w = model if isinstance(model, ReferenceModel) else ReferenceModel(model, lean=lean)
        cfg = self.cfg = self.w.cfg
        self._n_ctx = min(n_ctx, cfg.n_ctx_train)
        # the cache grows with the positions used (doubling, up to n_ctx): a zeroed n_ctx-long
        # one is resident anyway once written, each layer's first rows pulling in whole
        # (transparent huge) pages, ~94 MiB for SmolLM2 at 2,048 after a 128-token prompt
        # each kv head's positions contiguous: a decode step walks one head's keys in order
        shape = (cfg.n_layer, cfg.n_head_kv, min(self._n_ctx, KV_CACHE_START), cfg.head_dim)
        self.k_cache = np.zeros(shape, dtype=f32)  # (L, n_kv, capacity, hd)
        self.v_cache = np.zeros(shape, dtype=f32)  # (L, n_kv, capacity, hd)
        self._n_past = 0
        self._steps: list[_DecodeLayer] | None = None  # prepared by the first decode step

    def _grow(self, n: int) -> None:
        """Room for n positions in the KV cache (n <= n_ctx)."""
        cap = self.k_cache.shape[2]
        if n <= cap:
            return
        new = min(self._n_ctx, max(n, 2 * cap))
        for name in ("k_cache", "v_cache"):
            old = getattr(self, name)
            grown = np.zeros((*old.shape[:2], new, old.shape[3]), dtype=f32)  # (L, n_kv, new, hd)
            grown[:, :, : self._n_past] = old[:, :, : self._n_past]
            setattr(self, name, grown)

    def eval(self, ids: Sequence[int]) -> np.ndarray:
        return self.forward(ids)[-1]

    def eval_all(self, ids: Sequence[int]) -> np.ndarray:
        return self.forward(ids, all_logits=True)

    def forward(self, ids: Sequence[int], all_logits: bool = False) -> np.ndarray:
        """Append ids at positions n_past.. and return logits (T or 1, V). A long prompt goes
        through in chunks of PREFILL_CHUNK positions (the same result: each chunk attends to
        the cache and itself), so the attention scores stay ~10 MiB instead of T x T."""
        T, p0 = len(ids), self._n_past
        if T == 0:
            raise ValueError("forward() needs at least one token")
        if p0 + T > self._n_ctx:
            raise ValueError(f"context full: {p0} + {T} tokens > n_ctx {self._n_ctx}")
        self._grow(p0 + T)
        if T <= PREFILL_CHUNK:
            return self._forward(ids, all_logits)
        outs = [self._forward(ids[i : i + PREFILL_CHUNK], all_logits) for i in range(0, T, PREFILL_CHUNK)]
        return np.concatenate(outs) if all_logits else outs[-1]

    def _forward(self, ids: Sequence[int], all_logits: bool) -> np.ndarray:
        cfg, w = self.cfg, self.w
        T, p0 = len(ids), self._n_past
        self._grow(p0 + T)
        if T == 1 and w.lean:
            return self._decode_step(int(ids[0]))
        H, KV, hd = cfg.n_head, cfg.n_head_kv, cfg.head_dim
        q_dim, kv_dim = H * hd, KV * hd
        positions = np.arange(p0, p0 + T)  # (T,)
        rope = rope_tables(cfg, positions, cfg.rope_base, w.rope_freqs)  # (T, r/2) cos, sin
        rope_swa = rope_tables(cfg, positions, cfg.rope_base_swa, w.rope_freqs) if cfg.sliding_window else rope
        act = gelu_tanh if cfg.ffn_act == "gelu_tanh" else silu
        scale = f32(cfg.q_scale)
        # causal mask over the keys 0..p0+T-1: query t sees keys <= p0 + t; sliding-window
        # layers only the last `sliding_window` of them (llama.cpp: masked if p - p_key >= n_swa)
        keys = np.arange(p0 + T)  # (S,)
        ahead = keys[None, :] > positions[:, None]  # (T, S)
        mask = np.where(ahead, f32(-np.inf), f32(0))  # (T, S)
        too_old = positions[:, None] - keys[None, :] >= cfg.sliding_window  # (T, S)
        mask_swa = np.where(ahead | too_old, f32(-np.inf), f32(0)) if cfg.sliding_window else mask  # (T, S)

        x = w.embed(ids) * f32(cfg.embd_scale)  # (T, d)
        for li, lw in enumerate(w.layers):
            swa = cfg.is_swa(li)
            cos, sin = rope_swa if swa else rope  # (T, r/2) each
            # --- attention ---
            h = rms_norm(x, lw.attn_norm, cfg.rms_eps)  # (T, d)
            qkv = matmul(h, lw.wqkv)  # (T, q + 2kv)
            if lw.bqkv is not None:
                qkv = qkv + lw.bqkv  # (T, q + 2kv)
            q = qkv[:, :q_dim].reshape(T, H, hd)  # (T, H, hd)
            k = qkv[:, q_dim : q_dim + kv_dim].reshape(T, KV, hd)  # (T, KV, hd)
            v = qkv[:, q_dim + kv_dim :].reshape(T, KV, hd)  # (T, KV, hd)
            if lw.q_norm is not None and lw.k_norm is not None:  # gemma3: RMSNorm of each head
                q = rms_norm(q, lw.q_norm, cfg.rms_eps)  # (T, H, hd)
                k = rms_norm(k, lw.k_norm, cfg.rms_eps)  # (T, KV, hd)
            q = apply_rope(q, cos, sin, cfg.rope_dim, cfg.rope_neox)  # (T, H, hd)
            k = apply_rope(k, cos, sin, cfg.rope_dim, cfg.rope_neox)  # (T, KV, hd)
            self.k_cache[li, :, p0 : p0 + T] = k.transpose(1, 0, 2)  # (KV, T, hd)
            self.v_cache[li, :, p0 : p0 + T] = v.transpose(1, 0, 2)
            K = self.k_cache[li, :, : p0 + T]  # (KV, S, hd)
            V = self.v_cache[li, :, : p0 + T]  # (KV, S, hd)
            qg = q.reshape(T, KV, H // KV, hd).transpose(1, 2, 0, 3)  # (KV, G, T, hd) heads grouped by kv head
            scores = qg @ K.transpose(0, 2, 1)[:, None] * scale  # (KV, G, T, S)
            scores = scores + (mask_swa if swa else mask)  # (KV, G, T, S)
            scores = scores - scores.max(axis=-1, keepdims=True)  # (KV, G, T, S)
            probs = np.exp(scores)  # (KV, G, T, S)
            probs /= probs.sum(axis=-1, keepdims=True)
            att = probs @ V[:, None]  # (KV, G, T, hd)
            att = att.transpose(2, 0, 1, 3).reshape(T, q_dim)  # (T, H*hd) back to head order
            out = matmul(att, lw.wo)  # (T, d)
            if lw.post_attn_norm is not None:
                out = rms_norm(out, lw.post_attn_norm, cfg.rms_eps)  # (T, d)
            x = x + out  # (T, d)
            # --- feed-forward (SwiGLU, or GeGLU for gemma) ---
            h = rms_norm(x, lw.ffn_norm, cfg.rms_eps)  # (T, d)
            gu = matmul(h, lw.w_gate_up)  # (T, 2*ff)
            gate, up = gu[:, : cfg.n_ff], gu[:, cfg.n_ff :]  # (T, ff) each
            out = matmul(act(gate) * up, lw.w_down)  # (T, d)
            if lw.post_ffn_norm is not None:
                out = rms_norm(out, lw.post_ffn_norm, cfg.rms_eps)  # (T, d)
            x = x + out  # (T, d)
        self._n_past = p0 + T
        if not all_logits:
            x = x[-1:]  # (1, d)
        x = rms_norm(x, w.output_norm, cfg.rms_eps)  # (T|1, d)
        logits = matmul(x, w.output)  # (T|1, V)
        if cfg.logit_softcap:
            c = f32(cfg.logit_softcap)
            logits = c * np.tanh(logits / c)  # (T|1, V)
        assert logits.dtype == f32, logits.dtype
        return logits

    def _decode_step(self, token: int) -> np.ndarray:
        """One new position of a lean model: the products by the compiled kernels, everything
        between them by companion.engines._cpu_step (one compiled call per operation and layer
        instead of ~20 numpy calls), the same arithmetic as _forward for T = 1. Each layer's
        arguments and output buffers are prepared once (_DecodeLayer)."""
        from companion.engines import _cpu_step as cs

        cfg, w, pos = self.cfg, self.w, self._n_past
        if self._steps is None:
            self._steps = [_DecodeLayer(self, li) for li in range(cfg.n_layer)]
        rope = rope_tables(cfg, np.array([pos]), cfg.rope_base, w.rope_freqs)  # (1, r/2) cos, sin
        rope_swa = rope_tables(cfg, np.array([pos]), cfg.rope_base_swa, w.rope_freqs) if cfg.sliding_window else rope
        scale, eps, gelu = f32(cfg.q_scale), cfg.rms_eps, cfg.ffn_act == "gelu_tanh"
        x = (w.embed([token]) * f32(cfg.embd_scale))[0]  # (d,)
        h = np.empty((1, x.shape[0]), f32)  # (1, d) the normed input of the next product
        att = np.empty((1, cfg.n_head * cfg.head_dim), f32)  # (1, H*hd)
        act = np.empty((1, cfg.n_ff), f32)  # (1, ff)
        cs.rms_norm(x, w.layers[0].attn_norm, eps, h[0])
        for li, st in enumerate(self._steps):
            cos, sin = rope_swa if st.swa else rope  # (1, r/2) each
            qkv = st.qkv(h)[0]  # (q + 2kv,)
            cs.attend(
                qkv, st.bias, st.q_norm, st.k_norm, cos[0], sin[0], cfg.rope_dim, cfg.rope_neox, cfg.n_head,
                cfg.n_head_kv, eps, self.k_cache[li], self.v_cache[li], pos, st.window, scale, att[0],
            )  # fmt: skip
            cs.residual_norm(x, st.wo(att)[0], st.post_attn, eps, st.ffn_norm, h[0])
            cs.gated(st.gate_up(h)[0], gelu, act[0])
            cs.residual_norm(x, st.down(act)[0], st.post_ffn, eps, st.next_norm, h[0])
        self._n_past = pos + 1
        logits = matmul(h, w.output)  # (1, V)
        if cfg.logit_softcap:
            c = f32(cfg.logit_softcap)
            logits = c * np.tanh(logits / c)  # (1, V)
        return logits


class _DecodeLayer:
    """One layer's arguments for ReferenceEngine._decode_step: its four products as calls on a
    (1, cols) row that reuse one output buffer each (the compiled kernel called directly where
    the matrix is quantized), and its vectors, an empty array where the model has none."""

    def __init__(self, engine: ReferenceEngine, li: int):
        cfg, lw, layers = engine.cfg, engine.w.layers[li], engine.w.layers
        self.swa = cfg.is_swa(li)
        self.window = cfg.sliding_window if self.swa else 0
        self.bias, self.q_norm, self.k_norm = _or_empty(lw.bqkv), _or_empty(lw.q_norm), _or_empty(lw.k_norm)
        self.post_attn, self.post_ffn = _or_empty(lw.post_attn_norm), _or_empty(lw.post_ffn_norm)
        self.ffn_norm = lw.ffn_norm
        self.next_norm = layers[li + 1].attn_norm if li + 1 < len(layers) else engine.w.output_norm
        self.qkv, self.wo = _row_product(lw.wqkv), _row_product(lw.wo)
        self.gate_up, self.down = _row_product(lw.w_gate_up), _row_product(lw.w_down)


def _row_product(w: Weight) -> Any:
    """x (1, cols) -> x @ W.T (1, rows): a fused quantized matrix through its prepared kernel
    into one reused buffer (the caller uses the result before the next call), else matmul."""
    from companion.engines._cpu_kernels import F16_TABLE as table

    if isinstance(w, QuantMatrix):
        mv = _prepared([w], w)
    elif isinstance(w, Stacked) and w.fused:
        mv = _prepared(w.parts, w)  # type: ignore[arg-type]
    else:
        return lambda x: matmul(x, w)
    out = np.empty((1, mv.rows), f32)  # (1, rows)
    w0, w1, w2 = mv.w
    kernel, kind = mv.kernel, mv.kind

    def run(x: np.ndarray) -> np.ndarray:
        kernel(kind, w0, w1, w2, x, table, out)
        return out

    return run


def _or_empty(a: np.ndarray | None) -> np.ndarray:
    """a as float32, or an empty array where the model has none (the compiled step's 'absent')."""
    from companion.engines._cpu_step import EMPTY

    return EMPTY if a is None else a
