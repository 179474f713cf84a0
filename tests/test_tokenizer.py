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
