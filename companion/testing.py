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
) -> Path:
    """Write a random llama-shaped GGUF. `drop` omits a tensor; `shape_override` writes a
    tensor with another (numpy-order) shape; `type_override` stores a tensor in another type.
    With real dimensions (see `smollm2_shaped`) it stands in for a model that is too big to
    ship, e.g. for speed measurements on another machine."""
    path = Path(path)
    rng = np.random.default_rng(seed)
    tokens, types, merges = tiny_vocab()
    if n_vocab is not None and n_vocab > len(tokens):  # pad to a real model's vocabulary size
        tokens = tokens + [f"<pad_{i}>" for i in range(n_vocab - len(tokens))]
        types = types + [1] * (n_vocab - len(types))
    n_vocab = len(tokens)
    head_dim = n_embd // n_head
    w = gguf.GGUFWriter(str(path), arch)
    w.add_name("tiny-test")
    w.add_block_count(n_layer)
    w.add_context_length(256)
    w.add_embedding_length(n_embd)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    w.add_rope_freq_base(rope_base)
    w.add_rope_dimension_count(head_dim)
    w.add_layer_norm_rms_eps(1e-5)
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
    shapes |= shape_override or {}
    for name, shape in shapes.items():
        if name == drop:
            continue
        if len(shape) == 1:
            arr = (1.0 + 0.1 * rng.standard_normal(shape)).astype(np.float32)  # norm weights near 1
            w.add_tensor(name, arr)
            continue
        arr = (rng.standard_normal(shape) / np.sqrt(shape[-1])).astype(np.float32)
        t = (type_override or {}).get(name, embd_qtype if name == "token_embd.weight" and embd_qtype else qtype)
        if t == QT.F32:
            w.add_tensor(name, arr)
        elif t == QT.F16:
            w.add_tensor(name, arr.astype(np.float16))
        elif t in (QT.I8, QT.I32, QT.F64):
            w.add_tensor(name, arr.astype({QT.I8: np.int8, QT.I32: np.int32, QT.F64: np.float64}[t]))
        else:
            w.add_tensor(name, gguf.quants.quantize(arr, t), raw_dtype=t)
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
