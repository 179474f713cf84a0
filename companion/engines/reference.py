"""The numpy reference: a readable forward pass of a llama-style decoder with a KV cache.

Slow and clear on purpose. Both GPU executors are checked against it, and it is checked
against llama.cpp's outputs (shared/golden). Everything stays float32: a float64 scalar
would silently promote the whole pass (NumPy 2 rules) and make it ~20x slower.
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


def rms_norm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    """x / sqrt(mean(x^2) + eps) * weight over the last axis."""
    ms = np.mean(x * x, axis=-1, keepdims=True)  # (T, 1)
    return x / np.sqrt(ms + f32(eps)) * weight  # (T, d)


def rope_tables(cfg: ModelConfig, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cos/sin of position * base^(-2i/rope_dim) for each rotated pair i."""
    i = np.arange(cfg.rope_dim // 2, dtype=f32)  # (r/2,)
    inv_freq = f32(cfg.rope_base) ** (-2.0 * i / f32(cfg.rope_dim))  # (r/2,)
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


class ReferenceModel:
    """Weights of the whole model, dequantized once."""

    def __init__(self, model: GGUFModel):
        self.cfg = cfg = model.config
        dq = model.dequantize
        self.tok_embd = dq("token_embd.weight")  # (V, d)
        self.output_norm = dq("output_norm.weight")  # (d,)
        self.output = self.tok_embd if cfg.tied_output else dq("output.weight")  # (V, d)
        self.layers: list[LayerWeights] = []
        for i in range(cfg.n_layer):
            b = f"blk.{i}."
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
        cos, sin = rope_tables(cfg, positions)  # (T, r/2) each
        scale = f32(1.0 / np.sqrt(hd))
        # causal mask over the keys 0..p0+T-1: query t sees keys <= p0 + t
        keys = np.arange(p0 + T)  # (S,)
        mask = np.where(keys[None, :] <= positions[:, None], f32(0), f32(-np.inf))  # (T, S)

        x = w.tok_embd[np.asarray(ids)]  # (T, d)
        for li, lw in enumerate(w.layers):
            # --- attention ---
            h = rms_norm(x, lw.attn_norm, cfg.rms_eps)  # (T, d)
            qkv = h @ lw.wqkv.T  # (T, q + 2kv)
            if lw.bqkv is not None:
                qkv = qkv + lw.bqkv  # (T, q + 2kv)
            q = qkv[:, :q_dim].reshape(T, H, hd)  # (T, H, hd)
            k = qkv[:, q_dim : q_dim + kv_dim].reshape(T, KV, hd)  # (T, KV, hd)
            v = qkv[:, q_dim + kv_dim :].reshape(T, KV, hd)  # (T, KV, hd)
            q = apply_rope(q, cos, sin, cfg.rope_dim, cfg.rope_neox)  # (T, H, hd)
            k = apply_rope(k, cos, sin, cfg.rope_dim, cfg.rope_neox)  # (T, KV, hd)
            self.k_cache[li, p0 : p0 + T] = k
            self.v_cache[li, p0 : p0 + T] = v
            K = self.k_cache[li, : p0 + T]  # (S, KV, hd)
            V = self.v_cache[li, : p0 + T]  # (S, KV, hd)
            qg = q.reshape(T, KV, H // KV, hd).transpose(1, 2, 0, 3)  # (KV, G, T, hd) heads grouped by kv head
            scores = qg @ K.transpose(1, 2, 0)[:, None] * scale  # (KV, G, T, S)
            scores = scores + mask  # (KV, G, T, S)
            scores = scores - scores.max(axis=-1, keepdims=True)  # (KV, G, T, S)
            probs = np.exp(scores)  # (KV, G, T, S)
            probs /= probs.sum(axis=-1, keepdims=True)
            att = probs @ V.transpose(1, 0, 2)[:, None]  # (KV, G, T, hd)
            att = att.transpose(2, 0, 1, 3).reshape(T, q_dim)  # (T, H*hd) back to head order
            x = x + att @ lw.wo.T  # (T, d)
            # --- feed-forward (SwiGLU) ---
            h = rms_norm(x, lw.ffn_norm, cfg.rms_eps)  # (T, d)
            gu = h @ lw.w_gate_up.T  # (T, 2*ff)
            gate, up = gu[:, : cfg.n_ff], gu[:, cfg.n_ff :]  # (T, ff) each
            x = x + (silu(gate) * up) @ lw.w_down.T  # (T, d)
        self._n_past = p0 + T
        if not all_logits:
            x = x[-1:]  # (1, d)
        x = rms_norm(x, w.output_norm, cfg.rms_eps)  # (T|1, d)
        logits = x @ w.output.T  # (T|1, V)
        assert logits.dtype == f32, logits.dtype
        return logits
