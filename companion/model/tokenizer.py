"""Tokenizers built from a GGUF's vocabulary with the `tokenizers` library, reproducing
llama.cpp's (llama-vocab.cpp), plus an incremental detokenizer that never emits half a UTF-8
character.

Two vocabulary kinds (`tokenizer.ggml.model`):
- "gpt2": byte-level BPE from the tokens and `tokenizer.ggml.merges`, with the pre-tokenizer
  `tokenizer.ggml.pre` names.
- "llama": SentencePiece-style (Llama 2, Gemma): spaces become U+2581 "▁" (a "▁" in front of
  each text fragment with `add_space_prefix`), then llama.cpp's llm_tokenizer_spm merges the
  adjacent pair whose merged text is the vocabulary token of highest score, leftmost first,
  until none is left; characters without a token become their UTF-8 byte tokens <0xNN>. That is
  a BPE whose merge ranks follow the scores: every split (a, b) of a token into two tokens is a
  merge, ranked by the token's score (ties by id), with byte fallback.
In both, llama.cpp splits out control tokens (only when parsing specials) and user-defined
tokens (always) before anything else, longest first."""

from __future__ import annotations

import codecs
import threading
from collections.abc import Callable, Iterable
from functools import cache
from typing import Any

from tokenizers import AddedToken, Regex, decoders, models, normalizers, pre_tokenizers
from tokenizers import Tokenizer as HFTokenizer

from companion.errors import TokenizerError

Metadata = Callable[..., Any]  # a GGUF metadata lookup: meta(key, default=None) -> value


# llama.cpp token types (llama_token_type / gguf TokenType)
TOKEN_NORMAL, TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_USER_DEFINED, TOKEN_UNUSED, TOKEN_BYTE = 1, 2, 3, 4, 5, 6

# Split patterns of the pre-tokenizers named by tokenizer.ggml.pre (from llama.cpp's
# llama-vocab.cpp / the models' tokenizer.json). None = GPT-2's own ByteLevel regex.
_LLAMA3 = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2 = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def _pre_tokenizer(pre: str) -> pre_tokenizers.PreTokenizer:
    if pre in ("smollm", "starcoder", "refact", "default", "gpt2", "gpt-2"):
        # digits split one by one, then GPT-2's byte-level regex (SmolLM2 / StarCoder)
        digits = pre not in ("default", "gpt2", "gpt-2")
        parts: list[pre_tokenizers.PreTokenizer] = []
        if digits:
            parts.append(pre_tokenizers.Digits(individual_digits=True))
        parts.append(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True))
        return pre_tokenizers.Sequence(parts)
    pattern = {"llama3": _LLAMA3, "llama-bpe": _LLAMA3, "qwen2": _QWEN2}.get(pre)
    if pattern is None:
        raise TokenizerError(
            f"pre-tokenizer {pre!r} is not supported (supported: smollm, starcoder, gpt2, "
            "llama-bpe, qwen2); choose another model with --model"
        )
    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(pattern), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )


@cache
def _byte_decoder() -> dict[str, int]:
    """GPT-2's reversible byte <-> printable-character table, inverted (char -> byte)."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = list(keep)
    extra = 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(keep, chars, strict=True)}


SPACE = "\u2581"  # SentencePiece's space marker "▁"


def spm_merges(tokens: list[str], types: list[int], scores: list[float]) -> list[tuple[str, str]]:
    """Merge rules equivalent to llama.cpp's score-driven SPM merging: every split of a token
    into two tokens, the token of highest score first (ties by id; byte tokens never merge)."""
    vocab = set(tokens)
    ranked: list[tuple[float, int, str, str]] = []
    for i, t in enumerate(tokens):
        if types[i] == TOKEN_BYTE or len(t) < 2:
            continue
        for k in range(1, len(t)):
            a, b = t[:k], t[k:]
            if a in vocab and b in vocab:
                ranked.append((-float(scores[i]), i, a, b))
    ranked.sort()
    return [(a, b) for _, _, a, b in ranked]


class Tokenizer:
    """Text <-> token ids for one model."""

    def __init__(
        self,
        tokens: list[str],
        types: list[int],
        merges: Iterable[str] = (),
        pre: str = "default",
        *,
        model: str = "gpt2",
        scores: list[float] | None = None,
        add_bos: bool = False,
        bos_id: int | None = None,
        add_space_prefix: bool = False,
    ):
        if not tokens:
            raise TokenizerError("model has no tokenizer.ggml.tokens")
        if model not in ("gpt2", "llama"):
            raise TokenizerError(f"tokenizer type {model!r} is not supported")
        self.tokens = tokens
        self.types = types
        self.model = model
        self.add_bos = add_bos and bos_id is not None  # llama.cpp's add_special for a prompt
        self.bos_id = bos_id
        self.add_space_prefix = add_space_prefix
        # Control (and unknown) tokens are split out only when parsing specials, user-defined
        # ones always (llama_vocab::impl::tokenizer_st_partition): the former are the HF
        # tokenizer's special tokens (left as text with encode_special_tokens), the latter its
        # plain added tokens.
        self.special_ids = {i for i, ty in enumerate(types) if ty in (TOKEN_CONTROL, TOKEN_USER_DEFINED, TOKEN_UNKNOWN)}
        control = sorted(i for i in self.special_ids if types[i] != TOKEN_USER_DEFINED)
        user = sorted(i for i in self.special_ids if types[i] == TOKEN_USER_DEFINED)
        if model == "gpt2":
            self._hf = self._byte_level_bpe(tokens, list(merges), pre)
            self._hf.decoder = decoders.ByteLevel()
        else:
            if scores is None or len(scores) != len(tokens):
                raise TokenizerError("a SentencePiece-style vocabulary needs tokenizer.ggml.scores for every token")
            self._hf = self._spm(tokens, spm_merges(tokens, types, scores), add_space_prefix)
        self._hf.add_special_tokens([AddedToken(tokens[i], special=True, normalized=False) for i in control])
        if user:
            self._hf.add_tokens([AddedToken(tokens[i], special=False, normalized=False) for i in user])
        self._lock = threading.Lock()  # encode_special_tokens is per tokenizer, not per call
        self._bytes_cache: dict[int, bytes] = {}

    @staticmethod
    def _byte_level_bpe(tokens: list[str], merges: list[str], pre: str) -> HFTokenizer:
        vocab = {t: i for i, t in enumerate(tokens)}
        pairs = []
        for m in merges:
            a, sep, b = m.partition(" ")
            if not sep:
                raise TokenizerError(f"malformed merge rule {m!r} in tokenizer.ggml.merges")
            pairs.append((a, b))
        hf = HFTokenizer(models.BPE(vocab=vocab, merges=pairs, ignore_merges=False))
        hf.pre_tokenizer = _pre_tokenizer(pre)
        return hf

    @staticmethod
    def _spm(tokens: list[str], pairs: list[tuple[str, str]], add_space_prefix: bool) -> HFTokenizer:
        vocab: dict[str, int] = {}
        for i, t in enumerate(tokens):
            vocab.setdefault(t, i)  # a repeated text keeps its first id, as llama.cpp's token_to_id
        unk = "<unk>" if "<unk>" in vocab else None
        hf = HFTokenizer(models.BPE(vocab=vocab, merges=pairs, byte_fallback=True, unk_token=unk, ignore_merges=False))
        steps: list[normalizers.Normalizer] = [normalizers.Replace(" ", SPACE)]  # llama_escape_whitespace
        if add_space_prefix:
            steps.insert(0, normalizers.Prepend(SPACE))
        hf.normalizer = normalizers.Sequence(steps)
        return hf

    @classmethod
    def from_metadata(cls, meta: Metadata) -> Tokenizer:
        """The tokenizer a GGUF file describes: byte-level BPE from its tokens and merges
        ("gpt2"), or SentencePiece-style merging by score with byte fallback ("llama")."""
        kind = meta("tokenizer.ggml.model")
        if kind not in ("gpt2", "llama"):
            raise TokenizerError(
                f"tokenizer type {kind!r} is not supported yet (byte-level BPE 'gpt2' and "
                "SentencePiece-style 'llama' are); choose another model with --model"
            )
        tokens = list(meta("tokenizer.ggml.tokens") or [])
        types = list(meta("tokenizer.ggml.token_type") or [TOKEN_NORMAL] * len(tokens))
        if len(types) != len(tokens):
            raise TokenizerError(f"tokenizer has {len(tokens)} tokens but {len(types)} token types")
        bos = meta("tokenizer.ggml.bos_token_id")
        bos_id = int(bos) if bos is not None and 0 <= int(bos) < len(tokens) else None
        # llama.cpp's defaults when the file does not say: SPM adds BOS and a space prefix
        add_bos = bool(meta("tokenizer.ggml.add_bos_token", kind == "llama"))
        if kind == "gpt2":
            merges = list(meta("tokenizer.ggml.merges") or [])
            return cls(tokens, types, merges, str(meta("tokenizer.ggml.pre", "default")), add_bos=add_bos, bos_id=bos_id)
        scores = meta("tokenizer.ggml.scores")
        return cls(
            tokens, types, model="llama", scores=list(scores) if scores is not None else None,
            add_bos=add_bos, bos_id=bos_id, add_space_prefix=bool(meta("tokenizer.ggml.add_space_prefix", True)),
        )  # fmt: skip

    @property
    def n_vocab(self) -> int:
        return len(self.tokens)

    def encode(self, text: str, parse_special: bool = True, add_bos: bool = False) -> list[int]:
        """Token ids of text. With parse_special, control-token text (e.g. "<|im_start|>")
        becomes the control token, as llama.cpp's parse_special=true; with add_bos, the BOS id
        goes first where the model asks for one (llama.cpp's add_special=true)."""
        ids: list[int] = []
        if text:
            with self._lock:
                self._hf.encode_special_tokens = not parse_special
                ids = self._hf.encode(text, add_special_tokens=False).ids
        if add_bos and self.add_bos and self.bos_id is not None:
            ids.insert(0, self.bos_id)
        return ids

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes a token stands for (control tokens: their text)."""
        b = self._bytes_cache.get(token_id)
        if b is None:
            text = self.tokens[token_id]
            if token_id in self.special_ids:
                b = text.encode("utf-8")
            elif self.model == "llama":
                if self.types[token_id] == TOKEN_BYTE:  # <0xNN>
                    b = bytes([int(text[3:5], 16)])
                else:
                    b = text.replace(SPACE, " ").encode("utf-8")
            else:
                table = _byte_decoder()
                b = bytes(table[c] for c in text if c in table)
            self._bytes_cache[token_id] = b
        return b

    def decode(self, ids: Iterable[int], skip_special: bool = False) -> str:
        """Text of ids; invalid UTF-8 becomes U+FFFD."""
        data = b"".join(
            self.token_bytes(i) for i in ids if not (skip_special and i in self.special_ids)
        )
        return data.decode("utf-8", errors="replace")

    def incremental(self, skip_special: bool = True) -> IncrementalDecoder:
        return IncrementalDecoder(self, skip_special)


class IncrementalDecoder:
    """Feed token ids one at a time; get back only complete UTF-8 characters."""

    def __init__(self, tokenizer: Tokenizer, skip_special: bool = True):
        self.tokenizer = tokenizer
        self.skip_special = skip_special
        self._dec = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, token_id: int) -> str:
        if self.skip_special and token_id in self.tokenizer.special_ids:
            return ""
        return self._dec.decode(self.tokenizer.token_bytes(token_id))


    def flush(self) -> str:
        """End of stream: whatever bytes are left (an incomplete character becomes U+FFFD)."""
        return self._dec.decode(b"", final=True)
