"""A GGUF model file: typed config from metadata, a memory-mapped tensor table, and the
tokenizer / chat-template metadata. The header is read by _gguf_file (gguf.GGUFReader
takes tens of seconds on a 262k-token vocabulary); quant types and dequantization are the
`gguf` package's. This module turns the file into checked, typed data and into errors a user
can act on."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import gguf
import numpy as np
from gguf import GGMLQuantizationType as QT
from pydantic import BaseModel

from companion.errors import ModelError, UnsupportedModelError
from companion.model._gguf_file import GGUFFile
from companion.model.chat_template import ChatTemplate, has_chatml_tokens
from companion.model.tokenizer import TOKEN_CONTROL, TOKEN_USER_DEFINED, Tokenizer

# architecture -> RoPE pairing (llama.cpp's llama_model_rope_type). llama's converter permutes
# Q/K rows so that "normal" RoPE (adjacent pairs) applies; qwen2 and gemma3 keep HF's
# rotate-half layout ("neox").
ARCHITECTURES: dict[str, bool] = {"llama": False, "mistral": False, "qwen2": True, "gemma3": True}

# Gemma 3: every 6th layer is global, the others slide (llama.cpp gemma3 load_swa_pattern(6)),
# and the sliding layers' RoPE base is 10000 unless the file says otherwise
# (llama_hparams::rope_freq_base_train_swa).
GEMMA3_SWA_PATTERN = 6
DEFAULT_ROPE_BASE_SWA = 10000.0

# Tensor types the reference can dequantize (gguf.quants) and the GPU kernels may run.
SUPPORTED_TYPES = {
    QT.F32, QT.F16, QT.BF16, QT.Q4_0, QT.Q4_1, QT.Q5_0, QT.Q5_1, QT.Q8_0,
    QT.Q2_K, QT.Q3_K, QT.Q4_K, QT.Q5_K, QT.Q6_K,
}  # fmt: skip

GGUF_MAGIC = b"GGUF"


class ModelConfig(BaseModel):
    """Hyper-parameters of a decoder-only transformer, named as in GGUF / llama.cpp."""

    arch: str  # general.architecture, e.g. "llama"
    name: str  # general.name
    n_layer: int  # {arch}.block_count
    n_embd: int  # {arch}.embedding_length (d_model)
    n_ff: int  # {arch}.feed_forward_length
    n_head: int  # {arch}.attention.head_count
    n_head_kv: int  # {arch}.attention.head_count_kv (GQA groups)
    head_dim: int  # {arch}.attention.key_length, else n_embd // n_head
    n_vocab: int  # rows of token_embd
    n_ctx_train: int  # {arch}.context_length
    rope_base: float  # {arch}.rope.freq_base
    rope_dim: int  # {arch}.rope.dimension_count (dims of each head that rotate)
    rope_neox: bool  # True: rotate halves (neox); False: rotate adjacent pairs (normal)
    rms_eps: float  # {arch}.attention.layer_norm_rms_epsilon
    tied_output: bool  # no output.weight: the output head reuses token_embd
    has_qkv_bias: bool  # attn_q/k/v carry biases (qwen2)
    file_type: str  # dominant quantization of the block matrices, e.g. "Q4_1"
    ffn_act: str = "silu"  # gated FFN activation: "silu" (SwiGLU) or "gelu_tanh" (GeGLU, gemma)
    embd_scale: float = 1.0  # token embeddings times this (gemma: sqrt(n_embd))
    attn_scale: float = 0.0  # scores = q.k * attn_scale; 0 = 1 / sqrt(head_dim)
    qk_norm: bool = False  # RMSNorm over each q and k head (attn_q_norm, attn_k_norm), gemma3
    post_norms: bool = False  # RMSNorm of attention and FFN outputs before the residual add (gemma)
    sliding_window: int = 0  # {arch}.attention.sliding_window: keys a sliding layer sees (0 = none)
    swa_layers: list[bool] = []  # per layer: True = sliding-window attention (gemma3: 5 of every 6)
    rope_base_swa: float = DEFAULT_ROPE_BASE_SWA  # {arch}.rope.freq_base_swa: sliding layers' RoPE base
    rope_freq_scale: float = 1.0  # 1 / {arch}.rope.scaling.factor (linear scaling); 1 = none
    rope_freqs: bool = False  # rope_freqs.weight divides each pair's frequency (Llama 3 scaling)
    logit_softcap: float = 0.0  # {arch}.final_logit_softcapping: logits = c tanh(logits / c); 0 = off

    @property
    def q_scale(self) -> float:
        """The factor on q.k before the softmax."""
        return self.attn_scale or 1.0 / float(self.head_dim) ** 0.5

    def is_swa(self, layer: int) -> bool:
        """True where layer `layer` attends through the sliding window."""
        return bool(self.sliding_window) and bool(self.swa_layers) and self.swa_layers[layer]


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of the file; `raw` is a zero-copy view into the memory map."""

    name: str  # GGUF name, e.g. "blk.0.attn_q.weight"
    ggml_type: QT  # storage type
    shape: tuple[int, ...]  # numpy order: (rows, cols) for matrices
    offset: int  # absolute byte offset of the data in the file
    n_bytes: int  # bytes of data
    raw: np.ndarray  # (n_bytes,) uint8 memmap view
    data: np.ndarray  # gguf's typed view: f32/f16 values, or (rows, bytes per row) uint8


class GGUFModel:
    """A loaded (memory-mapped) GGUF model."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.template_override: str | None = None  # the user's chat template (use_chat_template)
        self.size = _check_file(self.path)
        try:
            self.file = GGUFFile(self.path)
        except Exception as exc:  # ValueError/IndexError/struct errors alike
            raise ModelError(
                f"model file {self.path} is corrupt or truncated ({self.size} bytes): "
                f"{exc.__class__.__name__}: {exc}. Re-download or re-convert it."
            ) from exc
        self.tensors = self._read_tensors()
        self.config = self._read_config()
        self._check_tensors()

    # -- metadata ---------------------------------------------------------------------

    def meta(self, key: str, default: Any = None) -> Any:
        """A metadata value by GGUF key (e.g. "tokenizer.chat_template")."""
        return self.file.metadata.get(key, default)

    @cached_property
    def metadata(self) -> dict[str, Any]:
        """All scalar metadata, for display (large arrays are summarised)."""
        out: dict[str, Any] = {}
        for key, v in self.file.metadata.items():
            out[key] = f"[{len(v)} items]" if isinstance(v, list) and len(v) > 16 else v
        return out

    def _read_tensors(self) -> dict[str, TensorInfo]:
        tensors: dict[str, TensorInfo] = {}
        for t in self.file.tensors:
            if t.offset + t.n_bytes > self.size:
                raise ModelError(
                    f"model file is truncated: tensor {t.name} needs bytes up to "
                    f"{t.offset + t.n_bytes}, file has {self.size} ({self.path}). Re-download it."
                )
            raw = self.file.data[t.offset : t.offset + t.n_bytes]
            tensors[t.name] = TensorInfo(t.name, t.ggml_type, t.shape, t.offset, t.n_bytes, raw, self.file.typed(t))
        return tensors

    def _read_config(self) -> ModelConfig:
        arch = self.meta("general.architecture")
        if arch is None:
            raise ModelError(f"{self.path} has no general.architecture: not a model GGUF")
        if arch not in ARCHITECTURES:
            raise UnsupportedModelError(
                f"architecture {arch!r} is not supported (supported: "
                f"{', '.join(sorted(ARCHITECTURES))}); choose another model with --model"
            )

        def need(key: str) -> Any:
            v = self.meta(f"{arch}.{key}")
            if v is None:
                raise ModelError(f"model metadata is missing {arch}.{key} ({self.path})")
            return v

        n_embd = int(need("embedding_length"))
        n_head = int(need("attention.head_count"))
        n_head_kv = int(self.meta(f"{arch}.attention.head_count_kv", n_head))
        head_dim = int(self.meta(f"{arch}.attention.key_length", n_embd // n_head))
        embd = self.tensors.get("token_embd.weight")
        if embd is None:
            raise ModelError(f"model is missing tensor token_embd.weight ({self.path})")
        block_types = [t.ggml_type.name for n, t in self.tensors.items() if n.endswith("attn_q.weight")]
        n_layer = int(need("block_count"))
        gemma = arch == "gemma3"
        window = int(self.meta(f"{arch}.attention.sliding_window", 0) or 0)
        swa: list[bool] = []
        if window and gemma:
            pattern = self.meta(f"{arch}.attention.sliding_window_pattern", GEMMA3_SWA_PATTERN)
            if isinstance(pattern, list):  # one flag per layer
                swa = [bool(v) for v in pattern][:n_layer]
            else:  # every n-th layer is global (llama_hparams::set_swa_pattern)
                n = int(pattern)
                swa = [n == 0 or i % n < n - 1 for i in range(n_layer)]
        elif window:
            raise UnsupportedModelError(
                f"sliding-window attention in {arch!r} models is not supported; choose another model with --model"
            )
        scaling = self.meta(f"{arch}.rope.scaling.type")
        factor = float(self.meta(f"{arch}.rope.scaling.factor", 0.0) or 0.0)
        if scaling not in (None, "none", "linear") and factor not in (0.0, 1.0):
            raise UnsupportedModelError(
                f"RoPE scaling {scaling!r} is not supported (linear and Llama 3 frequency factors are); "
                "choose another model with --model"
            )
        # gemma3 27B scales queries by 1 / sqrt(n_embd / n_head), the others by 1 / sqrt(head_dim)
        # (llama.cpp gemma3 f_attention_scale)
        attn_scale = 1.0 / (n_embd / n_head) ** 0.5 if gemma and n_layer == 62 else 0.0
        return ModelConfig(
            arch=arch,
            name=str(self.meta("general.name", self.path.stem)),
            n_layer=int(need("block_count")),
            n_embd=n_embd,
            n_ff=int(need("feed_forward_length")),
            n_head=n_head,
            n_head_kv=n_head_kv,
            head_dim=head_dim,
            n_vocab=embd.shape[0],
            n_ctx_train=int(self.meta(f"{arch}.context_length", 2048)),
            rope_base=float(self.meta(f"{arch}.rope.freq_base", 10000.0)),
            rope_dim=int(self.meta(f"{arch}.rope.dimension_count", head_dim)),
            rope_neox=ARCHITECTURES[arch],
            rms_eps=float(self.meta(f"{arch}.attention.layer_norm_rms_epsilon", 1e-5)),
            tied_output="output.weight" not in self.tensors,
            has_qkv_bias="blk.0.attn_q.bias" in self.tensors,
            file_type=max(set(block_types), key=block_types.count) if block_types else "?",
            ffn_act="gelu_tanh" if gemma else "silu",
            embd_scale=float(n_embd) ** 0.5 if gemma else 1.0,
            attn_scale=attn_scale,
            qk_norm=gemma,
            post_norms=gemma,
            sliding_window=window if swa else 0,
            swa_layers=swa,
            rope_base_swa=float(self.meta(f"{arch}.rope.freq_base_swa", DEFAULT_ROPE_BASE_SWA)),
            rope_freq_scale=1.0 / factor if factor else 1.0,
            rope_freqs="rope_freqs.weight" in self.tensors,
            logit_softcap=float(self.meta(f"{arch}.final_logit_softcapping", 0.0) or 0.0),
        )

    def _check_tensors(self) -> None:
        c = self.config
        d, q, kv = c.n_embd, c.n_head * c.head_dim, c.n_head_kv * c.head_dim
        expect: dict[str, tuple[int, ...]] = {"token_embd.weight": (c.n_vocab, d), "output_norm.weight": (d,)}
        if not c.tied_output:
            expect["output.weight"] = (c.n_vocab, d)
        for i in range(c.n_layer):
            b = f"blk.{i}."
            expect |= {
                b + "attn_norm.weight": (d,),
                b + "attn_q.weight": (q, d),
                b + "attn_k.weight": (kv, d),
                b + "attn_v.weight": (kv, d),
                b + "attn_output.weight": (d, q),
                b + "ffn_norm.weight": (d,),
                b + "ffn_gate.weight": (c.n_ff, d),
                b + "ffn_up.weight": (c.n_ff, d),
                b + "ffn_down.weight": (d, c.n_ff),
            }
            if c.has_qkv_bias:
                expect |= {b + "attn_q.bias": (q,), b + "attn_k.bias": (kv,), b + "attn_v.bias": (kv,)}
            if c.qk_norm:
                expect |= {b + "attn_q_norm.weight": (c.head_dim,), b + "attn_k_norm.weight": (c.head_dim,)}
            if c.post_norms:
                expect |= {b + "post_attention_norm.weight": (d,), b + "post_ffw_norm.weight": (d,)}
        if c.rope_freqs:
            expect["rope_freqs.weight"] = (c.rope_dim // 2,)
        for name, shape in expect.items():
            t = self.tensors.get(name)
            if t is None:
                raise ModelError(f"model is missing tensor {name} ({self.path}); the file is incomplete")
            if t.shape != shape:
                raise ModelError(
                    f"tensor {name} has shape {t.shape}, expected {shape} from the metadata "
                    f"(n_embd={d}, n_head={c.n_head}, n_head_kv={c.n_head_kv}, n_ff={c.n_ff}); "
                    "the file is inconsistent"
                )
            if t.ggml_type not in SUPPORTED_TYPES:
                raise UnsupportedModelError(
                    f"tensor {name} uses type {t.ggml_type.name}, which Companion does not support "
                    f"(supported: {', '.join(sorted(s.name for s in SUPPORTED_TYPES))})"
                )

    # -- tensors ----------------------------------------------------------------------

    @property
    def output_name(self) -> str:
        """The output head's tensor ("token_embd.weight" when the head is tied)."""
        return "token_embd.weight" if self.config.tied_output else "output.weight"

    def dequantize(self, name: str) -> np.ndarray:
        """A tensor as float32 in numpy order (rows, cols), via gguf.quants."""
        t = self.tensors[name]
        if t.ggml_type == QT.F32:
            return np.asarray(t.data, dtype=np.float32).reshape(t.shape)
        return gguf.quants.dequantize(t.data, t.ggml_type).astype(np.float32).reshape(t.shape)

    @cached_property
    def tokenizer(self) -> Tokenizer:
        """The model's tokenizer, built from its vocabulary and merges."""
        return Tokenizer.from_metadata(self.meta)

    @cached_property
    def chat_template(self) -> ChatTemplate:
        """The model's chat template (sandboxed) with its end-of-generation ids; a base model's
        refuses to render with a one-line explanation (see can_chat)."""
        return ChatTemplate.from_metadata(self.meta, self.tokenizer, self.template_override)

    def use_chat_template(self, source: str | None) -> None:
        """Chat with the user's template for this model ("chatml" or a jinja template's text)
        instead of the file's; None goes back to the file's."""
        self.template_override = source or None
        for cached in ("chat_template", "can_chat"):
            self.__dict__.pop(cached, None)

    @cached_property
    def can_chat(self) -> bool:
        """False for a base model: no chat template, and no ChatML control tokens to fall back
        on (read from the vocabulary, without building the tokenizer)."""
        if self.template_override or self.meta("tokenizer.chat_template"):
            return True
        if "tokenizer" in self.__dict__:
            return has_chatml_tokens(self.tokenizer)
        tokens, types = self.meta("tokenizer.ggml.tokens") or [], self.meta("tokenizer.ggml.token_type") or []
        control = {t for t, ty in zip(tokens, types, strict=False) if ty in (TOKEN_CONTROL, TOKEN_USER_DEFINED)}
        return {"<|im_start|>", "<|im_end|>"} <= control

    @property
    def chat_template_or_none(self) -> ChatTemplate | None:
        """The chat template, or None for a base model (raw completion: parity, headless)."""
        return self.chat_template if self.can_chat else None

    def summary(self) -> dict[str, Any]:
        """What `companion model info` prints."""
        types: dict[str, int] = {}
        for t in self.tensors.values():
            types[t.ggml_type.name] = types.get(t.ggml_type.name, 0) + 1
        n_params = sum(int(np.prod(t.shape)) for t in self.tensors.values())
        tmpl = self.meta("tokenizer.chat_template")
        if not tmpl:
            tmpl = "(none: ChatML fallback)" if self.can_chat else "(none: a base model, raw completion only)"
        return {
            "path": str(self.path),
            "size_bytes": self.size,
            "architecture": self.config.arch,
            "name": self.config.name,
            "parameters": n_params,
            "tensor_types": types,
            "context_length": self.config.n_ctx_train,
            "config": self.config.model_dump(),
            "chat_template": tmpl,
        }


def _check_file(path: Path) -> int:
    if not path.exists():
        raise ModelError(f"model file not found: {path}")
    if not path.is_file():
        raise ModelError(f"model path is not a file: {path}")
    size = path.stat().st_size
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic != GGUF_MAGIC:
        raise ModelError(
            f"{path} is not a GGUF file (starts with {magic!r}, expected b'GGUF'); "
            "convert the model with llama.cpp's convert_hf_to_gguf.py"
        )
    return size
