"""Each architecture against llama.cpp: small random GGUFs (companion.testing.TINY_ARCHS: Llama 3
with rope_freqs, qwen2 with q/k/v biases, gemma3 with q/k norms, post-norms, GeGLU and sliding
windows, and gemma3 in Gemma 3 270M's quant mix), teacher-forced against golden files made once
with llama.cpp (scripts/make_golden.py tiny + golden --prompts tiny; tests/golden/tiny-*.json).
The F32 models are held to |dlogit| <= 0.05 (companion.parity, weights "f32"); the quantized
one to top-1 and the top-5 KL bound. The writer is deterministic: each golden records the sha256
of the file it was made on, and the test checks that it wrote the same bytes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from companion.parity import F16_LOGIT_LIMIT, run_parity
from companion.testing import TINY_ARCHS, write_tiny_arch

GOLDEN = Path(__file__).parent / "golden"
KINDS = list(TINY_ARCHS)


@pytest.fixture(scope="module", params=KINDS)
def tiny(request, tmp_path_factory):
    """(kind, model, golden path) of one architecture, its file checked against the golden's hash."""
    from companion.model import load_model

    kind = request.param
    path = write_tiny_arch(tmp_path_factory.mktemp(kind) / f"tiny-{kind}.gguf", kind)
    golden = GOLDEN / f"tiny-{kind}.json"
    want = json.loads(golden.read_text())["model_sha256"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == want, "companion.testing wrote other bytes than the golden's model"
    return kind, load_model(path), golden


def _check(report, kind: str) -> None:
    assert report.weights == ("quantized" if kind.endswith("-q") else "f32")
    for p in report.prompts:
        assert p.top1_agree_clear == p.clear_steps and p.steps > 0, (kind, p)
        assert p.ok, (kind, p)
    assert report.passed


def test_reference_matches_llama_cpp(tiny):
    from companion.engines.reference import ReferenceEngine

    kind, model, golden = tiny
    _check(run_parity(ReferenceEngine(model, 256), model.tokenizer, golden), kind)


@pytest.mark.gpu
@pytest.mark.parametrize("features,layout", [("none", "rows"), ("f16,subgroups", "splitk")])
def test_native_matches_llama_cpp(tiny, gpu_adapter_info, features, layout):
    """f32 kernels in the CPU rasterizers' layout, and f16 + subgroups kernels in the GPUs'
    split-K layout (bounded by F16_LOGIT_LIMIT on the F32 goldens)."""
    from companion.engines.native import NativeEngine

    kind, model, golden = tiny
    eng = NativeEngine(model, n_ctx=256, max_batch=16, features=features, layout=layout, progress=False)
    try:
        f16 = "shader-f16" in eng.plan.features
        report = run_parity(eng, model.tokenizer, golden, f16=f16)
    finally:
        eng.close()
    _check(report, kind)
    if f16 and report.weights == "f32":
        assert max(p.max_abs_logit_diff for p in report.prompts) <= F16_LOGIT_LIMIT
