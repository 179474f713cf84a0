"""Tiny, deterministic GGUF models for tests: same layout as a real llama GGUF, a few KB,
with knobs to make them broken in one specific way."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import gguf
import numpy as np
from gguf import GGMLQuantizationType as QT

from companion.model.chat_template import CHATML
from companion.model.tokenizer import _byte_decoder

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def tiny_vocab() -> tuple[list[str], list[int], list[str]]:
    """3 control tokens, the 256 byte-level symbols and a few merges."""
    byte_chars = sorted(_byte_decoder(), key=lambda c: _byte_decoder()[c])
    merges = ["Ġ t", "h e", "Ġt he", "i n", "Ġ a"]
    merged = ["Ġt", "he", "Ġthe", "in", "Ġa"]
    tokens = SPECIALS + byte_chars + merged
    types = [3] * len(SPECIALS) + [1] * (len(tokens) - len(SPECIALS))
    return tokens, types, merges


def write_tiny_gguf(
    path: str | Path,
    *,
    arch: str = "llama",
    n_layer: int = 2,
    n_embd: int = 64,
    n_head: int = 4,
    n_head_kv: int = 2,
    n_ff: int = 96,
    qtype: QT = QT.Q8_0,
    seed: int = 0,
    chat_template: str | None = CHATML,
    drop: str | None = None,
    shape_override: dict[str, tuple[int, ...]] | None = None,
    type_override: dict[str, QT] | None = None,
    tied: bool = True,
    n_vocab: int | None = None,
    embd_qtype: QT | None = None,
    rope_base: float = 10000.0,
    edit: Callable[[gguf.GGUFWriter], None] | None = None,
    head_dim: int | None = None,
    rms_eps: float = 1e-5,
    context_length: int = 256,
    sliding_window: int = 0,
    swa_pattern: int | None = None,
    rope_freqs: np.ndarray | None = None,
    logit_softcap: float = 0.0,
    weight_scale: float = 1.0,
    name: str = "tiny-test",
) -> Path:
    """Write a random GGUF of architecture `arch` (llama, qwen2: with q/k/v biases, gemma3: with
    q/k head norms, post-norms and `sliding_window` / `swa_pattern`). `drop` omits a tensor;
    `shape_override` writes a tensor with another (numpy-order) shape; `type_override` stores a
    tensor in another type; `rope_freqs` writes Llama 3's frequency factors; `weight_scale`
    multiplies the matrices (a larger spread of logits). With real dimensions (see
    `smollm2_shaped`, `llama32_1b_shaped`) it stands in for a model that is too big to ship,
    e.g. for speed measurements on another machine. The bytes depend only on the arguments."""
    path = Path(path)
    rng = np.random.default_rng(seed)
    tokens, types, merges = tiny_vocab()
    if n_vocab is not None and n_vocab > len(tokens):  # pad to a real model's vocabulary size
        tokens = tokens + [f"<pad_{i}>" for i in range(n_vocab - len(tokens))]
        types = types + [1] * (n_vocab - len(types))
    n_vocab = len(tokens)
    custom_hd = head_dim is not None
    head_dim = head_dim or n_embd // n_head
    w = gguf.GGUFWriter(str(path), arch)
    w.add_name(name)
    w.add_block_count(n_layer)
    w.add_context_length(context_length)
    w.add_embedding_length(n_embd)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    w.add_rope_freq_base(rope_base)
    w.add_rope_dimension_count(head_dim)
    w.add_layer_norm_rms_eps(rms_eps)
    if custom_hd or arch == "gemma3":
        w.add_key_length(head_dim)
        w.add_value_length(head_dim)
    if sliding_window:
        w.add_sliding_window(sliding_window)
    if swa_pattern is not None:
        w.add_uint32(f"{arch}.attention.sliding_window_pattern", swa_pattern)
    if logit_softcap:
        w.add_final_logit_softcapping(logit_softcap)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(False)
    if chat_template is not None:
        w.add_chat_template(chat_template)
    if edit is not None:
        edit(w)

    shapes: dict[str, tuple[int, ...]] = {"token_embd.weight": (n_vocab, n_embd), "output_norm.weight": (n_embd,)}
    if not tied:
        shapes["output.weight"] = (n_vocab, n_embd)
    for i in range(n_layer):
        b = f"blk.{i}."
        shapes |= {
            b + "attn_norm.weight": (n_embd,),
            b + "attn_q.weight": (n_head * head_dim, n_embd),
            b + "attn_k.weight": (n_head_kv * head_dim, n_embd),
            b + "attn_v.weight": (n_head_kv * head_dim, n_embd),
            b + "attn_output.weight": (n_embd, n_head * head_dim),
            b + "ffn_norm.weight": (n_embd,),
            b + "ffn_gate.weight": (n_ff, n_embd),
            b + "ffn_up.weight": (n_ff, n_embd),
            b + "ffn_down.weight": (n_embd, n_ff),
        }
        if arch == "qwen2":
            shapes |= {b + "attn_q.bias": (n_head * head_dim,), b + "attn_k.bias": (n_head_kv * head_dim,),
                       b + "attn_v.bias": (n_head_kv * head_dim,)}  # fmt: skip
        if arch == "gemma3":
            shapes |= {b + "attn_q_norm.weight": (head_dim,), b + "attn_k_norm.weight": (head_dim,),
                       b + "post_attention_norm.weight": (n_embd,), b + "post_ffw_norm.weight": (n_embd,)}  # fmt: skip
    shapes |= shape_override or {}
    for name, shape in shapes.items():
        if name == drop:
            continue
        if len(shape) == 1:
            if name.endswith(".bias"):
                arr = (0.5 * rng.standard_normal(shape)).astype(np.float32)
            else:
                arr = (1.0 + 0.1 * rng.standard_normal(shape)).astype(np.float32)  # norm weights near 1
            w.add_tensor(name, arr)
            continue
        arr = (rng.standard_normal(shape) * (weight_scale / np.sqrt(shape[-1]))).astype(np.float32)
        t = (type_override or {}).get(name, embd_qtype if name == "token_embd.weight" and embd_qtype else qtype)
        if t == QT.F32:
            w.add_tensor(name, arr)
        elif t == QT.F16:
            w.add_tensor(name, arr.astype(np.float16))
        elif t in (QT.I8, QT.I32, QT.F64):
            w.add_tensor(name, arr.astype({QT.I8: np.int8, QT.I32: np.int32, QT.F64: np.float64}[t]))
        else:
            w.add_tensor(name, quantize(arr, t), raw_dtype=t)
    if rope_freqs is not None and drop != "rope_freqs.weight":
        w.add_tensor("rope_freqs.weight", np.asarray(rope_freqs, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def smollm2_shaped(path: str | Path, seed: int = 0) -> Path:
    """A random model with SmolLM2-135M's exact shapes and quant types (Q4_1 blocks, Q8_0
    tied embedding): same bytes moved and dispatches as the real one, different answers."""
    return write_tiny_gguf(
        path, n_layer=30, n_embd=576, n_head=9, n_head_kv=3, n_ff=1536, qtype=QT.Q4_1,
        embd_qtype=QT.Q8_0, n_vocab=49152, rope_base=100000.0, seed=seed,
    )


def llama3_rope_freqs(head_dim: int, base: float, factor: float = 8.0, low: float = 1.0, high: float = 4.0,
                      original_ctx: int = 8192) -> np.ndarray:
    """Llama 3's RoPE frequency factors (what llama.cpp's converter writes as rope_freqs.weight
    from rope_scaling: factor, low_freq_factor, high_freq_factor, original_max_position)."""
    freqs = 1.0 / base ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)  # (hd/2,)
    low_wavelen, high_wavelen = original_ctx / low, original_ctx / high
    out = []
    for f in freqs:
        wavelen = 2 * np.pi / f
        if wavelen < high_wavelen:
            out.append(1.0)
        elif wavelen > low_wavelen:
            out.append(factor)
        else:
            smooth = (original_ctx / wavelen - low) / (high - low)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(out, np.float32)  # (hd/2,)


# Small random models of each architecture, for parity tests against llama.cpp golden files
# (tests/golden/, made once by scripts/make_golden.py). Written from a fixed seed: the same
# bytes on every machine (the golden files record their sha256).
TINY_ARCHS: dict[str, dict] = {
    "llama3": dict(arch="llama", n_layer=2, n_embd=128, n_head=4, n_head_kv=2, n_ff=256, qtype=QT.F32,
                   rope_base=500000.0, rope_freqs=llama3_rope_freqs(32, 500000.0, original_ctx=64),
                   weight_scale=2.0, tied=False, name="tiny-llama3"),
    "qwen2": dict(arch="qwen2", n_layer=2, n_embd=128, n_head=4, n_head_kv=2, n_ff=256, qtype=QT.F32,
                  rope_base=1000000.0, rms_eps=1e-6, weight_scale=2.0, name="tiny-qwen2"),
    "gemma3": dict(arch="gemma3", n_layer=4, n_embd=128, n_head=4, n_head_kv=1, head_dim=64, n_ff=256,
                   qtype=QT.F32, rope_base=1000000.0, rms_eps=1e-6, sliding_window=8, swa_pattern=2,
                   weight_scale=2.0, name="tiny-gemma3"),
    # Gemma 3 270M's mix of quant types (Q5_0 q/k/gate/up, Q8_0 v and embeddings, Q4_K
    # attn_output, Q6_K ffn_down) at K-quant-sized widths
    "gemma3-q": dict(arch="gemma3", n_layer=4, n_embd=256, n_head=4, n_head_kv=1, head_dim=64, n_ff=512,
                     qtype=QT.Q5_0, embd_qtype=QT.Q8_0, rope_base=1000000.0, rms_eps=1e-6, sliding_window=8,
                     swa_pattern=2, weight_scale=2.0, name="tiny-gemma3-q",
                     type_override={f"blk.{i}.{n}": t for i in range(4) for n, t in
                                    (("attn_v.weight", QT.Q8_0), ("attn_output.weight", QT.Q4_K),
                                     ("ffn_down.weight", QT.Q6_K))}),
}  # fmt: skip


def write_tiny_arch(path: str | Path, kind: str) -> Path:
    """The TINY_ARCHS model `kind` ("llama3", "qwen2", "gemma3", "gemma3-q"), without a chat template."""
    return write_tiny_gguf(path, chat_template=None, seed=12, **TINY_ARCHS[kind])


def llama32_1b_shaped(path: str | Path, seed: int = 0) -> Path:
    """A random model with Llama 3.2 1B's shapes in Q4_K_M's types (Q4_K blocks, Q6_K attn_v,
    ffn_down and the tied embedding of 128,256 rows, which is over one 128 MiB binding once
    repacked): the loading and speed of a 1B-class model, different answers. ~0.8 GB."""
    layers = 16
    over = {f"blk.{i}.{n}": QT.Q6_K for i in range(layers) for n in ("attn_v.weight", "ffn_down.weight")}
    return write_tiny_gguf(
        path, n_layer=layers, n_embd=2048, n_head=32, n_head_kv=8, n_ff=8192, qtype=QT.Q4_K, embd_qtype=QT.Q6_K,
        n_vocab=128256, rope_base=500000.0, rope_freqs=llama3_rope_freqs(64, 500000.0), type_override=over,
        context_length=131072, seed=seed, name="llama-3.2-1b-shaped",
    )  # fmt: skip


# ----------------------------------------------------------------------------- K-quants
# gguf-py dequantizes every type but quantizes only the simple ones. These quantizers write
# ggml's K-quant block formats (ggml-common.h: block_q4_K, block_q5_K, block_q6_K) with plain
# min/max scales: not llama.cpp's optimised search, but bytes that gguf.quants.dequantize (the
# authority the tests compare with) reads as a close copy of the input.

QK_K = 256


def _f16(a: np.ndarray) -> np.ndarray:
    """Round to f16 and back: the scales as the file stores them."""
    return a.astype(np.float16).astype(np.float32)


def _pack_k_scales(sc: np.ndarray, mn: np.ndarray) -> np.ndarray:
    """(n, 8) 6-bit scales and mins -> (n, 12) bytes (inverse of gguf.quants.Q4_K.get_scale_min)."""
    sc, mn = sc.astype(np.uint8), mn.astype(np.uint8)  # (n, 8) each
    d = sc[:, :4] | ((sc[:, 4:] >> 4) << 6)  # (n, 4)
    m = mn[:, :4] | ((mn[:, 4:] >> 4) << 6)  # (n, 4)
    md = (sc[:, 4:] & 15) | ((mn[:, 4:] & 15) << 4)  # (n, 4)
    return np.concatenate([d, m, md], axis=-1)  # (n, 12)


def _quantize_affine_k(x: np.ndarray, levels: int) -> tuple[np.ndarray, ...]:
    """Sub-blocks of 32 as d*sc*q - dmin*m; returns (d, dmin, sc, m, q) of (n, 256) input."""
    n = x.shape[0]
    sub = x.reshape(n, 8, 32)  # (n, 8, 32)
    lo = np.minimum(sub.min(-1), 0.0)  # (n, 8)
    hi = sub.max(-1)  # (n, 8)
    scale = (hi - lo) / levels  # (n, 8)
    d = _f16(scale.max(-1) / 63)  # (n,)
    dmin = _f16((-lo).max(-1) / 63)  # (n,)
    with np.errstate(divide="ignore", invalid="ignore"):
        sc = np.where(d[:, None] > 0, np.round(scale / d[:, None]), 0).clip(0, 63)  # (n, 8)
        m = np.where(dmin[:, None] > 0, np.round(-lo / dmin[:, None]), 0).clip(0, 63)  # (n, 8)
        step = (d[:, None] * sc)[..., None]  # (n, 8, 1)
        off = (dmin[:, None] * m)[..., None]  # (n, 8, 1)
        q = np.where(step > 0, np.round((sub + off) / step), 0).clip(0, levels)  # (n, 8, 32)
    return d, dmin, sc, m, q.astype(np.uint8)


def quantize_k(x: np.ndarray, qtype: QT) -> np.ndarray:
    """(rows, K) float32 -> (rows, bytes per row) uint8 in Q4_K, Q5_K or Q6_K (K % 256 == 0)."""
    rows, K = x.shape
    if K % QK_K:
        raise ValueError(f"K-quants need rows of a multiple of {QK_K} values, got {K}")
    blocks = x.reshape(-1, QK_K).astype(np.float32)  # (n, 256)
    n = blocks.shape[0]
    if qtype in (QT.Q4_K, QT.Q5_K):
        d, dmin, sc, m, q = _quantize_affine_k(blocks, 15 if qtype == QT.Q4_K else 31)  # q: (n, 8, 32)
        lo = (q & 15).reshape(n, 4, 2, 32)  # (n, chunk, sub-block in chunk, 32)
        qs = (lo[:, :, 0] | (lo[:, :, 1] << 4)).reshape(n, 128)  # (n, 128)
        head = [d.astype(np.float16).view(np.uint8).reshape(n, 2), dmin.astype(np.float16).view(np.uint8).reshape(n, 2),
                _pack_k_scales(sc, m)]  # fmt: skip
        if qtype == QT.Q5_K:
            hi = (q >> 4).astype(np.uint8)  # (n, 8, 32)
            qh = np.zeros((n, 32), np.uint8)
            for s in range(8):
                qh |= hi[:, s] << s
            head.append(qh)
        out = np.concatenate([*head, qs], axis=-1)  # (n, 144 | 176)
    elif qtype == QT.Q6_K:
        sub = blocks.reshape(n, 16, 16)  # (n, 16, 16)
        amax = np.abs(sub).max(-1)  # (n, 16)
        scale = amax / 31  # (n, 16)
        d = _f16(scale.max(-1) / 127)  # (n,)
        with np.errstate(divide="ignore", invalid="ignore"):
            sc = np.where(d[:, None] > 0, np.round(scale / d[:, None]), 0).clip(-128, 127)  # (n, 16)
            step = (d[:, None] * sc)[..., None]  # (n, 16, 1)
            q = np.where(step > 0, np.round(sub / step), 0).clip(-32, 31)  # (n, 16, 16)
        u = (q + 32).astype(np.uint8).reshape(n, 2, 4, 32)  # (n, half, quarter, 32): element 128h + 32s + i
        lo = (u & 15).reshape(n, 2, 2, 64)  # (n, half, nibble, 64): element 128h + 64k + i
        ql = (lo[:, :, 0] | (lo[:, :, 1] << 4)).reshape(n, 128)  # (n, 128)
        top = u >> 4  # (n, 2, 4, 32)
        qh6 = (top[:, :, 0] | (top[:, :, 1] << 2) | (top[:, :, 2] << 4) | (top[:, :, 3] << 6)).reshape(n, 64)  # (n, 64)
        out = np.concatenate(
            [ql, qh6, sc.astype(np.int8).view(np.uint8), d.astype(np.float16).view(np.uint8).reshape(n, 2)], axis=-1
        )  # (n, 210)
    else:
        raise ValueError(f"quantize_k does not write {qtype.name}")
    return np.ascontiguousarray(out).reshape(rows, -1)


def quantize(x: np.ndarray, qtype: QT) -> np.ndarray:
    """(rows, K) float32 in any type the kernels read: gguf.quants, or quantize_k for K-quants."""
    if qtype in (QT.Q4_K, QT.Q5_K, QT.Q6_K):
        return quantize_k(x, qtype)
    return gguf.quants.quantize(x, qtype)
