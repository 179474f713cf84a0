"""Random GGUF files with a real model's shapes and quant mix: a 1B-class model that loads,
splits and decodes like the real one (same tensors, types, bytes moved and dispatches) but
answers nonsense. For speed and loading checks where the real file cannot travel
(scripts/make_random_gguf.py) and, scaled down, for CI.

Quantized matrices are written as random *valid* blocks, not quantized from floats: gguf-py
has no K-quant quantizer, and a random model's weights need not come from float data. Each
block's scales are chosen so that the dequantized elements have about the standard deviation
asked for (1/sqrt(K), as companion.testing's floats), centred on zero. Tensors are streamed to
the file one at a time (GGUFWriter.add_tensor_info + write_tensor_data), so memory stays at one
tensor however big the model.

The quant mix follows llama.cpp's Q4_K_M (llama-quant.cpp, llama_tensor_get_type): Q4_K for
every matrix except Q6_K for the output head (or the tied embedding, which doubles as the head),
and Q6_K for attn_v and ffn_down on the layers `use_more_bits` picks (the first and last
eighth, and every third in between); everything 1-D stays F32."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import gguf
import numpy as np
from gguf import GGMLQuantizationType as QT

QK_K = 256


@dataclass(frozen=True)
class Shape:
    """A model's hyper-parameters, as its GGUF metadata states them."""

    arch: str
    n_vocab: int
    n_embd: int
    n_layer: int
    n_head: int
    n_head_kv: int
    n_ff: int
    head_dim: int
    rope_base: float
    rms_eps: float
    context_length: int
    tied: bool = True
    # Llama 3 rope_scaling (factor, low_freq_factor, high_freq_factor, original context):
    # written as rope_freqs.weight, as llama.cpp's converter does
    rope_scaling: tuple[float, float, float, int] | None = None
    name: str = "random"


SHAPES: dict[str, Shape] = {
    # meta-llama/Llama-3.2-1B(-Instruct) config.json
    "llama-3.2-1b": Shape("llama", 128256, 2048, 16, 32, 8, 8192, 64, 500000.0, 1e-5, 131072, tied=True,
                          rope_scaling=(32.0, 1.0, 4.0, 8192), name="Llama-3.2-1B-shaped (random)"),
    # meta-llama/Llama-3.2-3B
    "llama-3.2-3b": Shape("llama", 128256, 3072, 28, 24, 8, 8192, 128, 500000.0, 1e-5, 131072, tied=True,
                          rope_scaling=(32.0, 1.0, 4.0, 8192), name="Llama-3.2-3B-shaped (random)"),
    # Qwen/Qwen2.5-1.5B
    "qwen2.5-1.5b": Shape("qwen2", 151936, 1536, 28, 12, 2, 8960, 128, 1000000.0, 1e-6, 32768, tied=True,
                          name="Qwen2.5-1.5B-shaped (random)"),
}  # fmt: skip


def scaled(shape: Shape, **changes) -> Shape:
    """`shape` with some fields changed (a CI-sized copy of a real shape)."""
    return replace(shape, **changes)


def use_more_bits(i: int, n: int) -> bool:
    """llama.cpp's choice of the layers that get more bits in Q4_K_M / Q5_K_M."""
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def q4_k_m_types(shape: Shape) -> dict[str, QT]:
    """GGUF tensor name -> type for the matrices of a Q4_K_M file of this shape."""
    types: dict[str, QT] = {"token_embd.weight": QT.Q6_K if shape.tied else QT.Q4_K}
    if not shape.tied:
        types["output.weight"] = QT.Q6_K
    for i in range(shape.n_layer):
        more = use_more_bits(i, shape.n_layer)
        p = f"blk.{i}."
        for n in ("attn_q", "attn_k", "attn_output", "ffn_gate", "ffn_up"):
            types[p + n + ".weight"] = QT.Q4_K
        types[p + "attn_v.weight"] = QT.Q6_K if more else QT.Q4_K
        types[p + "ffn_down.weight"] = QT.Q6_K if more else QT.Q4_K
    return types


def tensor_shapes(shape: Shape) -> dict[str, tuple[int, ...]]:
    """GGUF tensor name -> numpy-order shape, in file order."""
    s = shape
    nq, nk = s.n_head * s.head_dim, s.n_head_kv * s.head_dim
    out: dict[str, tuple[int, ...]] = {"token_embd.weight": (s.n_vocab, s.n_embd)}
    if s.rope_scaling is not None:
        out["rope_freqs.weight"] = (s.head_dim // 2,)
    for i in range(s.n_layer):
        p = f"blk.{i}."
        out |= {p + "attn_norm.weight": (s.n_embd,), p + "attn_q.weight": (nq, s.n_embd),
                p + "attn_k.weight": (nk, s.n_embd), p + "attn_v.weight": (nk, s.n_embd)}  # fmt: skip
        if s.arch == "qwen2":
            out |= {p + "attn_q.bias": (nq,), p + "attn_k.bias": (nk,), p + "attn_v.bias": (nk,)}
        out |= {p + "attn_output.weight": (s.n_embd, nq), p + "ffn_norm.weight": (s.n_embd,),
                p + "ffn_gate.weight": (s.n_ff, s.n_embd), p + "ffn_up.weight": (s.n_ff, s.n_embd),
                p + "ffn_down.weight": (s.n_embd, s.n_ff)}  # fmt: skip
    out["output_norm.weight"] = (s.n_embd,)
    if not s.tied:
        out["output.weight"] = (s.n_vocab, s.n_embd)
    return out


# ----------------------------------------------------------------------------- random blocks
# Block layouts: ggml-common.h (block_q4_K: f16 d, f16 dmin, 12 bytes of 6-bit scales and
# mins, 128 bytes of nibbles; block_q6_K: 128 bytes low nibbles, 64 bytes high 2-bit pairs,
# 16 int8 scales, f16 d).


def random_q4_k(rng: np.random.Generator, rows: int, cols: int, std: float) -> np.ndarray:
    """(rows, cols) random Q4_K rows as bytes (rows, cols / 256 * 144). Element = d*sc*q - dmin*m
    with q uniform in 0..15, sc in 24..63, dmin = 8 d and m = round(7.5 sc / 8): d*sc*(q - 7.5)
    up to a small per-sub-block offset, standard deviation ~ d * 43.5 * 4.6."""
    from companion.testing import _pack_k_scales  # one home for the 6-bit scale packing

    n = rows * cols // QK_K
    d = np.full(n, std / (43.5 * 4.61), np.float16)  # (n,)
    sc = rng.integers(24, 64, size=(n, 8), dtype=np.uint8)  # (n, 8)
    mn = np.round(sc * (7.5 / 8)).astype(np.uint8)  # (n, 8): <= 59
    head = np.concatenate([d.view(np.uint8).reshape(n, 2), (d * np.float16(8)).view(np.uint8).reshape(n, 2),
                           _pack_k_scales(sc, mn)], axis=1)  # (n, 16)  # fmt: skip
    qs = rng.integers(0, 256, size=(n, 128), dtype=np.uint8)  # (n, 128)
    return np.concatenate([head, qs], axis=1).reshape(rows, -1)  # (rows, bytes per row)


def random_q6_k(rng: np.random.Generator, rows: int, cols: int, std: float) -> np.ndarray:
    """(rows, cols) random Q6_K rows as bytes (rows, cols / 256 * 210). Element = d*sc*(q - 32)
    with q uniform in 0..63 and sc in 24..63: standard deviation ~ d * 43.5 * 18.5."""
    n = rows * cols // QK_K
    bits = rng.integers(0, 256, size=(n, 192), dtype=np.uint8)  # (n, 192): ql, qh
    sc = rng.integers(24, 64, size=(n, 16), dtype=np.uint8)  # (n, 16) int8 scales, positive
    d = np.full(n, std / (43.5 * 18.47), np.float16)  # (n,)
    return np.concatenate([bits, sc, d.view(np.uint8).reshape(n, 2)], axis=1).reshape(rows, -1)


RANDOM_BLOCKS: dict[QT, Callable[[np.random.Generator, int, int, float], np.ndarray]] = {
    QT.Q4_K: random_q4_k,
    QT.Q6_K: random_q6_k,
}


def _tensors(shape: Shape, types: dict[str, QT], seed: int) -> Iterator[tuple[str, np.ndarray, QT | None]]:
    """(name, data, raw type or None for plain float arrays) of every tensor, in file order;
    each made only when asked for."""
    from companion.testing import llama3_rope_freqs

    rng = np.random.default_rng(seed)
    for name, shp in tensor_shapes(shape).items():
        if name == "rope_freqs.weight":
            assert shape.rope_scaling is not None
            yield name, llama3_rope_freqs(shape.head_dim, shape.rope_base, *shape.rope_scaling), None
        elif len(shp) == 1:
            v = 0.5 * rng.standard_normal(shp) if name.endswith(".bias") else 1.0 + 0.1 * rng.standard_normal(shp)
            yield name, v.astype(np.float32), None
        else:
            t = types.get(name, QT.F32)
            std = 1.0 / np.sqrt(shp[1])
            if t == QT.F32:
                yield name, (rng.standard_normal(shp) * std).astype(np.float32), None
            else:
                if shp[1] % QK_K:
                    raise ValueError(f"{name}: {shp[1]} columns, not a multiple of {QK_K} ({t.name})")
                yield name, RANDOM_BLOCKS[t](rng, shp[0], shp[1], std), t


def write_random_gguf(path: str | Path, shape: Shape, quant: str = "q4_k_m", seed: int = 0,
                      progress: Callable[[str], None] | None = None) -> Path:  # fmt: skip
    """Write a random GGUF of `shape` in `quant` ("q4_k_m", or "f32" for small shapes) and
    return its path. Vocabulary: companion.testing's tiny byte-level BPE padded to n_vocab,
    with a ChatML template (so the chat loop and `companion bench` run)."""
    from companion.model.chat_template import CHATML
    from companion.testing import tiny_vocab

    path = Path(path)
    s = shape
    if quant == "q4_k_m":
        types = q4_k_m_types(s)
    elif quant == "f32":
        types = {}
    else:
        raise ValueError(f"quant {quant!r}: expected q4_k_m or f32")
    tokens, ttypes, merges = tiny_vocab()
    tokens = tokens + [f"<pad_{i}>" for i in range(s.n_vocab - len(tokens))]
    ttypes = ttypes + [1] * (s.n_vocab - len(ttypes))
    w = gguf.GGUFWriter(str(path), s.arch)
    w.add_name(s.name)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_K_M if quant == "q4_k_m" else gguf.LlamaFileType.ALL_F32)
    w.add_block_count(s.n_layer)
    w.add_context_length(s.context_length)
    w.add_embedding_length(s.n_embd)
    w.add_feed_forward_length(s.n_ff)
    w.add_head_count(s.n_head)
    w.add_head_count_kv(s.n_head_kv)
    w.add_key_length(s.head_dim)
    w.add_value_length(s.head_dim)
    w.add_rope_freq_base(s.rope_base)
    w.add_rope_dimension_count(s.head_dim)
    w.add_layer_norm_rms_eps(s.rms_eps)
    w.add_vocab_size(s.n_vocab)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types(ttypes)
    w.add_token_merges(merges)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(False)
    w.add_chat_template(CHATML)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    shapes = tensor_shapes(s)
    for name, shp in shapes.items():  # tensor table first: the data is streamed below
        t = types.get(name, QT.F32) if len(shp) == 2 else QT.F32
        if t == QT.F32:
            w.add_tensor_info(name, shp, np.dtype(np.float32), 4 * int(np.prod(shp)))
        else:
            size, nbytes = gguf.GGML_QUANT_SIZES[t]
            w.add_tensor_info(name, shp, np.dtype(np.float16), int(np.prod(shp)) // size * nbytes, raw_dtype=t)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    for k, (_name, data, _) in enumerate(_tensors(s, types, seed)):
        w.write_tensor_data(data)
        if progress and (k % 20 == 0 or k == len(shapes) - 1):
            progress(f"{k + 1}/{len(shapes)} tensors")
    w.close()
    return path
