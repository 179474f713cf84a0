"""The new architectures and quant types in the page's WebGPU executor (headless Chromium,
SwiftShader, f32 kernels): the tiny random models of companion.testing.TINY_ARCHS against the
numpy reference, teacher-forced. The executor is the same for every model; what is new is
the plan (qkv_rope, add_norm, GeGLU, sliding windows, K-quants) it runs."""

from __future__ import annotations

import numpy as np
import pytest
from conftest_browser import close_page_engine, open_page_engine

from companion.headless import F32_TOLERANCE

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("kind", ["gemma3-q"])  # biases, q/k norms, post-norms, GeGLU, windows, K-quants
def test_tiny_architecture_in_the_page(kind, chromium_required, chromium, tmp_path):
    from companion.engines.browser import PlanAssets
    from companion.engines.reference import ReferenceEngine
    from companion.model import load_model
    from companion.testing import write_tiny_arch

    model = load_model(write_tiny_arch(tmp_path / f"{kind}.gguf", kind))
    pe = open_page_engine(chromium, PlanAssets(model, 64), model)
    try:
        eng = pe.engine
        ids = list(range(3, 23))  # longer than gemma3's sliding window of 8
        ref = ReferenceEngine(model, 64)
        ours = [eng.eval(ids)] + [eng.eval([t]) for t in (40, 41)]  # (V,) each
        want = [ref.eval(ids)] + [ref.eval([t]) for t in (40, 41)]
        for a, b in zip(ours, want, strict=True):
            assert float(np.abs(a - b).max()) <= F32_TOLERANCE
            assert int(a.argmax()) == int(b.argmax())
        assert pe.errors == []
    finally:
        close_page_engine(pe)
