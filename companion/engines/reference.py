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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from companion.engines.base import Engine
from companion.model.gguf_model import GGUFModel, ModelConfig

f32 = np.float32


@dataclass
class LayerWeights:
    """One transformer block, dequantized to float32 (numpy order: out_features, in_features)."""

    attn_norm: np.ndarray  # (d,)
    wqkv: np.ndarray  # (q + 2*kv, d)  attn_q, attn_k, attn_v stacked
    bqkv: np.ndarray | None  # (q + 2*kv,)  qwen2 biases, else None
    wo: np.ndarray  # (d, q)  attn_output
    ffn_norm: np.ndarray  # (d,)
    w_gate_up: np.ndarray  # (2*ff, d)  ffn_gate, ffn_up stacked
    w_down: np.ndarray  # (d, ff)  ffn_down
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
    """Weights of the whole model, dequantized once."""

    def __init__(self, model: GGUFModel):
        self.cfg = cfg = model.config
        dq = model.dequantize
        self.tok_embd = dq("token_embd.weight")  # (V, d)
        self.output_norm = dq("output_norm.weight")  # (d,)
        self.output = self.tok_embd if cfg.tied_output else dq("output.weight")  # (V, d)
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
                    wqkv=np.ascontiguousarray(np.concatenate([dq(b + f"attn_{n}.weight") for n in "qkv"])),
                    bqkv=bias,
                    wo=dq(b + "attn_output.weight"),
                    ffn_norm=dq(b + "ffn_norm.weight"),
                    w_gate_up=np.ascontiguousarray(
                        np.concatenate([dq(b + "ffn_gate.weight"), dq(b + "ffn_up.weight")])
                    ),
                    w_down=dq(b + "ffn_down.weight"),
                    q_norm=opt("attn_q_norm.weight", cfg.qk_norm),
                    k_norm=opt("attn_k_norm.weight", cfg.qk_norm),
                    post_attn_norm=opt("post_attention_norm.weight", cfg.post_norms),
                    post_ffn_norm=opt("post_ffw_norm.weight", cfg.post_norms),
                )
            )


class ReferenceEngine(Engine):
    """Runs ReferenceModel on the CPU with a float32 KV cache."""

    name = "reference"

    def __init__(self, model: GGUFModel | ReferenceModel, n_ctx: int = 2048):
        self.w = model if isinstance(model, ReferenceModel) else ReferenceModel(model)
        cfg = self.cfg = self.w.cfg
        self._n_ctx = min(n_ctx, cfg.n_ctx_train)
        shape = (cfg.n_layer, self._n_ctx, cfg.n_head_kv, cfg.head_dim)
        self.k_cache = np.zeros(shape, dtype=f32)  # (L, n_ctx, n_kv, hd)
        self.v_cache = np.zeros(shape, dtype=f32)  # (L, n_ctx, n_kv, hd)
        self._n_past = 0

    def eval(self, ids: Sequence[int]) -> np.ndarray:
        return self.forward(ids)[-1]

    def eval_all(self, ids: Sequence[int]) -> np.ndarray:
        return self.forward(ids, all_logits=True)

    def forward(self, ids: Sequence[int], all_logits: bool = False) -> np.ndarray:
        """Append ids at positions n_past.. and return logits (T or 1, V)."""
        cfg, w = self.cfg, self.w
        T, p0 = len(ids), self._n_past
        if T == 0:
            raise ValueError("forward() needs at least one token")
        if p0 + T > self._n_ctx:
            raise ValueError(f"context full: {p0} + {T} tokens > n_ctx {self._n_ctx}")
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

        x = w.tok_embd[np.asarray(ids)] * f32(cfg.embd_scale)  # (T, d)
        for li, lw in enumerate(w.layers):
            swa = cfg.is_swa(li)
            cos, sin = rope_swa if swa else rope  # (T, r/2) each
            # --- attention ---
            h = rms_norm(x, lw.attn_norm, cfg.rms_eps)  # (T, d)
            qkv = h @ lw.wqkv.T  # (T, q + 2kv)
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
            self.k_cache[li, p0 : p0 + T] = k
            self.v_cache[li, p0 : p0 + T] = v
            K = self.k_cache[li, : p0 + T]  # (S, KV, hd)
            V = self.v_cache[li, : p0 + T]  # (S, KV, hd)
            qg = q.reshape(T, KV, H // KV, hd).transpose(1, 2, 0, 3)  # (KV, G, T, hd) heads grouped by kv head
            scores = qg @ K.transpose(1, 2, 0)[:, None] * scale  # (KV, G, T, S)
            scores = scores + (mask_swa if swa else mask)  # (KV, G, T, S)
            scores = scores - scores.max(axis=-1, keepdims=True)  # (KV, G, T, S)
            probs = np.exp(scores)  # (KV, G, T, S)
            probs /= probs.sum(axis=-1, keepdims=True)
            att = probs @ V.transpose(1, 0, 2)[:, None]  # (KV, G, T, hd)
            att = att.transpose(2, 0, 1, 3).reshape(T, q_dim)  # (T, H*hd) back to head order
            out = att @ lw.wo.T  # (T, d)
            if lw.post_attn_norm is not None:
                out = rms_norm(out, lw.post_attn_norm, cfg.rms_eps)  # (T, d)
            x = x + out  # (T, d)
            # --- feed-forward (SwiGLU, or GeGLU for gemma) ---
            h = rms_norm(x, lw.ffn_norm, cfg.rms_eps)  # (T, d)
            gu = h @ lw.w_gate_up.T  # (T, 2*ff)
            gate, up = gu[:, : cfg.n_ff], gu[:, cfg.n_ff :]  # (T, ff) each
            out = (act(gate) * up) @ lw.w_down.T  # (T, d)
            if lw.post_ffn_norm is not None:
                out = rms_norm(out, lw.post_ffn_norm, cfg.rms_eps)  # (T, d)
            x = x + out  # (T, d)
        self._n_past = p0 + T
        if not all_logits:
            x = x[-1:]  # (1, d)
        x = rms_norm(x, w.output_norm, cfg.rms_eps)  # (T|1, d)
        logits = x @ w.output.T  # (T|1, V)
        if cfg.logit_softcap:
            c = f32(cfg.logit_softcap)
            logits = c * np.tanh(logits / c)  # (T|1, V)
        assert logits.dtype == f32, logits.dtype
        return logits
