"""The tokenizer reproduces llama.cpp's ids and detokenizes without splitting characters."""

from __future__ import annotations

import pytest


def test_every_golden_raw_tokenization(model, golden):
    tk = model.tokenizer
    assert len(golden["raw_tokenization"]) >= 10
    for r in golden["raw_tokenization"]:
        assert tk.encode(r["text"], parse_special=True) == r["ids_parse_special_true"], r["text"]
        assert tk.encode(r["text"], parse_special=False) == r["ids_parse_special_false"], r["text"]


def test_golden_prompts_tokenize_exactly(model, golden):
    for p in golden["prompts"]:
        assert model.tokenizer.encode(p["formatted_prompt"]) == p["prompt_token_ids"]


def test_special_tokens_split_before_bpe(model):
    tk = model.tokenizer
    ids = tk.encode("<|im_start|>user\nhi<|im_end|>")
    assert ids[0] == 1 and ids[-1] == 2
    plain = tk.encode("<|im_start|>", parse_special=False)
    assert 1 not in plain and len(plain) > 1


@pytest.mark.parametrize(
    "text",
    ["Hello, world!", "naïve café — 東京 🤖👍🏽", "  leading spaces\n\ttabs", "1234567890", "<|im_end|> literal", ""],
)
def test_decode_round_trip(model, text):
    tk = model.tokenizer
    assert tk.decode(tk.encode(text)) == text


def test_incremental_decoder_never_emits_half_a_character(model):
    tk = model.tokenizer
    text = "Emoji 🤖 and 東京 and ü"
    ids = tk.encode(text)
    # at least one multi-byte character must be split across tokens for this test to mean something
    assert any(tk.token_bytes(i) and not _valid_utf8(tk.token_bytes(i)) for i in ids)
    dec = tk.incremental()
    pieces = [dec.feed(i) for i in ids]
    pieces.append(dec.flush())
    assert all("\ufffd" not in p for p in pieces)
    assert "".join(pieces) == text


def test_incremental_decoder_flushes_a_truncated_character_as_replacement(model):
    tk = model.tokenizer
    ids = tk.encode("🤖")
    assert len(ids) > 1
    dec = tk.incremental()
    assert dec.feed(ids[0]) == ""
    assert dec.flush() == "\ufffd"


def test_incremental_decoder_skips_control_tokens(model):
    dec = model.tokenizer.incremental(skip_special=True)
    assert dec.feed(2) == ""
    assert model.tokenizer.decode([2]) == "<|im_end|>"


def _valid_utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


# ----------------------------------------------------------------------------- SentencePiece-style


def _spm(add_space_prefix: bool = False):
    """A tiny "llama"-type vocabulary: control, user-defined, byte and scored normal tokens."""
    from companion.model.tokenizer import (
        TOKEN_BYTE,
        TOKEN_CONTROL,
        TOKEN_NORMAL,
        TOKEN_USER_DEFINED,
        Tokenizer,
    )

    specials = [("<pad>", TOKEN_CONTROL), ("<eos>", TOKEN_CONTROL), ("<bos>", TOKEN_CONTROL), ("\n\n", TOKEN_USER_DEFINED)]
    byte_tokens = [(f"<0x{b:02X}>", TOKEN_BYTE) for b in range(256)]
    # merges by score: "▁t" + "he" would give "▁the" (score -3) only after "he" (-1) formed
    normal = ["h", "e", "t", "a", "b", "▁", "he", "▁t", "▁the", "ab", "ba", "aba", "\n"]
    scores = {"he": -1.0, "▁t": -2.0, "▁the": -3.0, "ab": -4.0, "ba": -5.0, "aba": -6.0}
    tokens = [t for t, _ in specials + byte_tokens] + normal
    types = [ty for _, ty in specials + byte_tokens] + [TOKEN_NORMAL] * len(normal)
    sc = [0.0] * (len(specials) + 256) + [scores.get(t, -100.0) for t in normal]
    return Tokenizer(tokens, types, model="llama", scores=sc, add_bos=True, bos_id=2, add_space_prefix=add_space_prefix)


def test_spm_merges_by_score_with_byte_fallback():
    tk = _spm()
    ids = tk.encode(" the ab")
    assert [tk.tokens[i] for i in ids] == ["▁the", "▁", "ab"]
    # "ab" (-4) merges before "ba" (-5), then "ab" + "a" into "aba" (-6)
    assert [tk.tokens[i] for i in tk.encode("aba")] == ["aba"]
    assert [tk.tokens[i] for i in tk.encode("bab")] == ["b", "ab"]  # the higher score wins over the leftmost pair
    ids = tk.encode("hé")  # é has no token: its UTF-8 bytes
    assert [tk.tokens[i] for i in ids] == ["h", "<0xC3>", "<0xA9>"]
    assert tk.decode(ids) == "hé"
    assert tk.encode("the", add_bos=True)[0] == 2


def test_spm_special_tokens_and_space_prefix():
    tk = _spm()
    assert [tk.tokens[i] for i in tk.encode("he<eos>he", parse_special=True)] == ["he", "<eos>", "he"]
    assert "<eos>" not in [tk.tokens[i] for i in tk.encode("he<eos>he", parse_special=False)]
    # user-defined tokens are split out even without parse_special (llama.cpp)
    assert [tk.tokens[i] for i in tk.encode("he\n\nhe", parse_special=False)] == ["he", "\n\n", "he"]
    pre = _spm(add_space_prefix=True)
    assert [pre.tokens[i] for i in pre.encode("the")] == ["▁the"]
