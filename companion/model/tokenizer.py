"""BPE tokenizer built from a GGUF's vocabulary and merges with the `tokenizers` library,
plus an incremental detokenizer that never emits half a UTF-8 character."""

from __future__ import annotations

import codecs
from collections.abc import Callable, Iterable
from functools import cache
from typing import Any

from tokenizers import AddedToken, Regex, decoders, models, pre_tokenizers
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


class Tokenizer:
    """Text <-> token ids for one model."""

    def __init__(self, tokens: list[str], types: list[int], merges: list[str], pre: str):
        if not tokens:
            raise TokenizerError("model has no tokenizer.ggml.tokens")
        self.tokens = tokens
        self.types = types
        vocab = {t: i for i, t in enumerate(tokens)}
        pairs = []
        for m in merges:
            a, sep, b = m.partition(" ")
            if not sep:
                raise TokenizerError(f"malformed merge rule {m!r} in tokenizer.ggml.merges")
            pairs.append((a, b))
        hf = HFTokenizer(models.BPE(vocab=vocab, merges=pairs, ignore_merges=False))
        hf.pre_tokenizer = _pre_tokenizer(pre)
        hf.decoder = decoders.ByteLevel()
        self.special_ids = {i for i, ty in enumerate(types) if ty in (TOKEN_CONTROL, TOKEN_USER_DEFINED)}
        hf.add_special_tokens(
            [AddedToken(tokens[i], special=True, normalized=False) for i in sorted(self.special_ids)]
        )
        self._hf = hf
        # A copy that does not know the special tokens: for parse_special=False.
        plain = HFTokenizer(models.BPE(vocab=vocab, merges=pairs, ignore_merges=False))
        plain.pre_tokenizer = _pre_tokenizer(pre)
        self._plain = plain
        self._bytes_cache: dict[int, bytes] = {}

    @classmethod
    def from_metadata(cls, meta: Metadata) -> Tokenizer:
        """The tokenizer a GGUF file describes (byte-level BPE from its tokens and merges)."""
        kind = meta("tokenizer.ggml.model")
        if kind != "gpt2":
            raise TokenizerError(
                f"tokenizer type {kind!r} is not supported yet (only byte-level BPE, 'gpt2'); "
                "choose another model with --model"
            )
        tokens = list(meta("tokenizer.ggml.tokens") or [])
        types = list(meta("tokenizer.ggml.token_type") or [TOKEN_NORMAL] * len(tokens))
        merges = list(meta("tokenizer.ggml.merges") or [])
        if len(types) != len(tokens):
            raise TokenizerError(f"tokenizer has {len(tokens)} tokens but {len(types)} token types")
        return cls(tokens, types, merges, str(meta("tokenizer.ggml.pre", "default")))

    @property
    def n_vocab(self) -> int:
        return len(self.tokens)

    def encode(self, text: str, parse_special: bool = True) -> list[int]:
        """Token ids of text. With parse_special, control-token text (e.g. "<|im_start|>")
        becomes the control token, as llama.cpp's parse_special=true."""
        tok = self._hf if parse_special else self._plain
        return tok.encode(text, add_special_tokens=False).ids

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes a token stands for (control tokens: their text)."""
        b = self._bytes_cache.get(token_id)
        if b is None:
            text = self.tokens[token_id]
            if token_id in self.special_ids:
                b = text.encode("utf-8")
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
