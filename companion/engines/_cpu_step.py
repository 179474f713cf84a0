"""Compiled glue of one decode step (numba) for the lean reference engine.

A decode step of a small model is mostly small operations between the matrix products:
RMSNorm, the q/k/v bias, per-head norms, RoPE, the KV-cache write, attention over the cached
positions, the gated activation, the residual add. As numpy calls they cost ~20 of them per
layer at a few microseconds each (SmolLM2: 30 layers, ~10 ms a token on a 2-core machine,
as much as the products themselves); here each is one compiled call per layer on float32
arrays, the same operations as ReferenceEngine._forward's for one position, only the order
of the sums may differ. Used for one new position at a time (decode); prompts keep the
batched numpy path."""

from __future__ import annotations

import numpy as np
from numba import njit

from companion.engines._cpu_kernels import CACHE_DIR  # noqa: F401  (sets numba's cache folder first)


@njit(inline="always")
def _norm(x, w, eps, out):  # pragma: no cover - compiled
    """out = x / sqrt(mean(x^2) + eps) * w (x, w, out: (n,) float32; out may be x)."""
    s = np.float32(0)
    for i in range(x.shape[0]):
        s += x[i] * x[i]
    r = np.float32(1) / np.sqrt(s / np.float32(x.shape[0]) + eps)
    for i in range(x.shape[0]):
        out[i] = x[i] * r * w[i]


@njit(cache=True)
def rms_norm(x, w, eps, out):  # pragma: no cover - compiled
    """out (d,) = RMSNorm of x (d,) with weight w."""
    _norm(x, w, np.float32(eps), out)


@njit(cache=True)
def residual_norm(x, y, post, eps, w, out):  # pragma: no cover - compiled
    """x += y (first RMSNorm'd with post where post is not empty: gemma's post-norms), then
    out = RMSNorm of the new x with weight w (the next block's input norm)."""
    e = np.float32(eps)
    if post.shape[0]:
        _norm(y, post, e, y)
    for i in range(x.shape[0]):
        x[i] += y[i]
    _norm(x, w, e, out)


@njit(inline="always")
def _rotate(v, cos, sin, rope_dim, neox):  # pragma: no cover - compiled
    """RoPE of one head v (hd,) in place: pairs (2i, 2i+1), or (i, i + rope_dim/2) for neox."""
    half = rope_dim // 2
    for i in range(half):
        a_i, b_i = (i, i + half) if neox else (2 * i, 2 * i + 1)
        a, b = v[a_i], v[b_i]
        v[a_i] = a * cos[i] - b * sin[i]
        v[b_i] = a * sin[i] + b * cos[i]


# reassociation lets LLVM vectorise the dot products and sums (the order of a sum is all that
# changes, as in the kernels); no nnan/ninf, so the -inf start of the running max stays exact
_FAST = {"reassoc", "contract", "nsz"}


@njit(cache=True, fastmath=_FAST)
def attend(qkv, bias, q_norm, k_norm, cos, sin, rope_dim, neox, n_head, n_kv, eps, k_cache, v_cache, pos, window, scale, out):  # pragma: no cover - compiled
    """One position's attention: qkv (q + 2kv,) from the projection; bias added where not
    empty (qwen2), each q and k head RMSNorm'd where q_norm/k_norm are not empty (gemma3),
    RoPE (cos, sin: (rope_dim/2,)), k and v written to row pos of the layer's cache
    (n_kv, capacity, hd), then softmax(q.k * scale) over the keys max(0, pos - window + 1)..pos
    (window 0: all) times v, into out (n_head * hd,). qkv is changed in place."""
    hd = k_cache.shape[2]
    q_dim, kv_dim = n_head * hd, n_kv * hd
    e = np.float32(eps)
    if bias.shape[0]:
        for i in range(qkv.shape[0]):
            qkv[i] += bias[i]
    for h in range(n_head + n_kv):  # q heads, then k heads
        v = qkv[h * hd : (h + 1) * hd]
        if q_norm.shape[0]:
            _norm(v, q_norm if h < n_head else k_norm, e, v)
        _rotate(v, cos, sin, rope_dim, neox)
    for g in range(n_kv):
        for j in range(hd):
            k_cache[g, pos, j] = qkv[q_dim + g * hd + j]
            v_cache[g, pos, j] = qkv[q_dim + kv_dim + g * hd + j]
    lo = 0 if window == 0 else max(0, pos - window + 1)
    n = pos + 1 - lo
    group = n_head // n_kv
    s = np.empty(n, np.float32)  # one head's scores, then its probabilities
    acc = np.empty(hd, np.float32)
    # one query head at a time, on 1-D views: LLVM vectorises each loop over the head dimension
    # (a (group, n) score table indexed in 2-D inside the key loop ran at half the speed or less)
    for h in range(n_head):
        g = h // group
        q = qkv[h * hd : (h + 1) * hd]  # (hd,)
        for i in range(n):
            k = k_cache[g, lo + i]  # (hd,)
            d = np.float32(0)
            for j in range(hd):
                d += q[j] * k[j]
            s[i] = d * scale
        top = np.float32(-np.inf)
        for i in range(n):
            top = max(top, s[i])
        total = np.float32(0)
        for i in range(n):
            e = np.exp(s[i] - top)
            s[i] = e
            total += e
        inv = np.float32(1) / total
        acc[:] = 0
        for i in range(n):
            p = s[i] * inv
            v = v_cache[g, lo + i]  # (hd,)
            for j in range(hd):
                acc[j] += p * v[j]
        out[h * hd : (h + 1) * hd] = acc


@njit(cache=True)
def gated(gu, gelu, out):  # pragma: no cover - compiled
    """out (ff,) = act(gate) * up for gu = [gate; up] (2ff,): SiLU, or tanh GELU (gemma)."""
    ff = out.shape[0]
    c = np.float32(np.sqrt(2.0 / np.pi))
    for i in range(ff):
        g = gu[i]
        if gelu:
            a = np.float32(0.5) * g * (np.float32(1) + np.tanh(c * (g + np.float32(0.044715) * g * g * g)))
        else:
            a = g / (np.float32(1) + np.exp(-g))
        out[i] = a * gu[ff + i]


EMPTY = np.zeros(0, np.float32)


def warm_up() -> None:
    """Compile (first run on this machine) or load each function from numba's cache."""
    x = np.ones(64, np.float32)
    out = np.empty(64, np.float32)
    rms_norm(x, x, 1e-5, out)
    residual_norm(x.copy(), x.copy(), EMPTY, 1e-5, x, out)
    residual_norm(x.copy(), x.copy(), x, 1e-5, x, out)
    cache = np.zeros((4, 1, 16), np.float32)
    half = np.ones(8, np.float32)
    for bias, norm in ((EMPTY, EMPTY), (np.ones(48, np.float32), EMPTY), (EMPTY, np.ones(16, np.float32))):
        attend(np.ones(48, np.float32), bias, norm, norm, half, half, 16, False, 1, 1, 1e-5, cache, cache.copy(), 0, 0, np.float32(0.25), np.empty(16, np.float32))
    gated(np.ones(128, np.float32), False, out)
    gated(np.ones(128, np.float32), True, out)
