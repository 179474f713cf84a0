"""The numpy reference agrees with llama.cpp (teacher-forced) and with itself across
batched prefill, token-by-token decoding and KV-cache reuse."""

from __future__ import annotations

import numpy as np
import pytest

from companion.engines.reference import ReferenceEngine, apply_rope, rope_tables
from companion.parity import CLEAR_MARGIN, MAX_LOGIT_DIFF, check_prompt, run_parity
from companion.testing import write_tiny_gguf


def test_parity_with_llama_cpp(reference_engine, model, golden_path):
    report = run_parity(reference_engine, model.tokenizer, golden_path, model.chat_template)
    assert report.raw_tokenization_mismatches == []
    for p in report.prompts:
        assert p.tokenization_match and p.template_match
        assert p.top1_agree_clear == p.clear_steps > 0
        assert p.max_abs_logit_diff <= MAX_LOGIT_DIFF
    assert report.passed


def test_parity_detects_a_broken_engine(reference_weights, model, golden):
    """Parity must fail when the model is wrong: zero one layer's output projection."""
    import copy

    broken = copy.copy(reference_weights)
    broken.layers = list(reference_weights.layers)
    lw = copy.copy(broken.layers[3])
    lw.w_down = np.zeros_like(lw.w_down)
    broken.layers[3] = lw
    rep = check_prompt(ReferenceEngine(broken, 256), model.tokenizer, None, 0, golden["prompts"][1])
    assert not rep.ok and rep.max_abs_logit_diff > MAX_LOGIT_DIFF


def test_clear_margin_rule(golden):
    first = golden["prompts"][0]["top5_each_generated_position"][0]
    assert first[0][1] - first[1][1] < CLEAR_MARGIN  # the documented near-tie is excused


def test_batched_prefill_equals_token_by_token(reference_weights):
    ids = [1, 9690, 198, 2683, 359, 253, 5356, 11173, 30, 2]
    a = ReferenceEngine(reference_weights, 64)
    batched = a.eval_all(ids)  # (T, V)
    b = ReferenceEngine(reference_weights, 64)
    stepwise = np.stack([b.eval([t]) for t in ids])  # (T, V)
    assert batched.dtype == np.float32
    np.testing.assert_allclose(batched, stepwise, atol=2e-3)


def test_reset_keeps_a_prefix(reference_weights):
    e = ReferenceEngine(reference_weights, 64)
    full = e.eval([1, 4093, 198, 1780, 314])
    e.reset(3)
    again = e.eval([1780, 314])
    np.testing.assert_allclose(full, again, atol=1e-3)
    with pytest.raises(ValueError, match="context full"):
        e.eval(list(range(70)))


@pytest.mark.parametrize("neox", [False, True])
def test_rope_rotates_pairs_and_preserves_norm(neox):
    from companion.model.gguf_model import ModelConfig

    cfg = ModelConfig(arch="llama", name="t", n_layer=1, n_embd=8, n_ff=8, n_head=1, n_head_kv=1, head_dim=8, n_vocab=8, n_ctx_train=8, rope_base=10000.0, rope_dim=8, rope_neox=neox, rms_eps=1e-5, tied_output=True, has_qkv_bias=False, file_type="F32")
    x = np.random.default_rng(0).standard_normal((3, 1, 8)).astype(np.float32)
    cos, sin = rope_tables(cfg, np.arange(3))
    y = apply_rope(x, cos, sin, 8, neox)
    np.testing.assert_allclose(y[0], x[0], atol=1e-6)  # position 0: no rotation
    np.testing.assert_allclose(np.linalg.norm(y, axis=-1), np.linalg.norm(x, axis=-1), rtol=1e-5)
    pair = (0, 4) if neox else (0, 1)
    angle = np.arctan2(y[1, 0, pair[1]], y[1, 0, pair[0]]) - np.arctan2(x[1, 0, pair[1]], x[1, 0, pair[0]])
    assert np.isclose(np.mod(angle, 2 * np.pi), 1.0, atol=1e-5)  # frequency 1 for pair 0 at position 1


def test_tiny_model_runs_every_quant_type(tmp_path):
    from gguf import GGMLQuantizationType as QT

    from companion.model import load_model

    outs = {}
    for q in (QT.F32, QT.F16, QT.Q8_0, QT.Q4_1, QT.Q4_0):
        m = load_model(write_tiny_gguf(tmp_path / f"{q.name}.gguf", qtype=q))
        outs[q] = ReferenceEngine(m, 32).eval([5, 6, 7, 8])
    # quantization noise only: every type stays close to the f32 model, 4-bit less so
    for q, lg in outs.items():
        corr = np.corrcoef(lg.ravel(), outs[QT.F32].ravel())[0, 1]
        assert corr > (0.9999 if q == QT.F16 else 0.99 if q == QT.Q8_0 else 0.9), (q, corr)
