"""The native executor on the whole model: teacher-forced parity with the numpy reference on
the golden prompts, GPU sampling, per-token counters, device loss and shader error reports."""

from __future__ import annotations

import json

import numpy as np
import pytest

from companion.errors import EngineUnavailable
from companion.sampling import Sampler, SamplingParams

pytestmark = pytest.mark.gpu

F32_TOL = 0.05  # max |logit difference| on the f32 path
F16_TOL = 0.5  # max |logit difference| on the f16 paths (same top-1 where the margin is clear)
STEPS = 6  # generated positions checked per prompt (lavapipe on 2 cores is slow)
VARIANT_STEPS = 3  # per prompt and feature set
# feature sets of the whole-model parity test: COMPANION_GPU_FEATURES value, features the plan uses
FEATURE_SETS = {
    "f32": ("none", []),
    "subgroups": ("subgroups", ["subgroups"]),
    "f16": ("f16", ["shader-f16"]),
    "f16+subgroups": ("f16,subgroups", ["shader-f16", "subgroups"]),
}


@pytest.fixture(scope="module")
def golden():
    from conftest import GOLDEN_PATH

    return json.loads(GOLDEN_PATH.read_text())


@pytest.fixture(scope="module")
def model():
    from companion.model import load_model

    return load_model(None)


@pytest.fixture(scope="module")
def engine(gpu_adapter_info, model):
    from companion.engines.native import NativeEngine

    eng = NativeEngine(model, n_ctx=256, max_batch=32, features="none")  # the f32 path
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def reference(model):
    from companion.engines.reference import ReferenceEngine

    return ReferenceEngine(model, n_ctx=256)


def test_adapters_listed(gpu_adapter_info):
    from companion.gpu.adapters import is_cpu_adapter, list_adapters

    found = list_adapters()
    assert found and all("device" in a for a in found)
    assert is_cpu_adapter({"adapter_type": "CPU", "device": "llvmpipe (LLVM 15)"})
    assert not is_cpu_adapter({"adapter_type": "DiscreteGPU", "device": "NVIDIA H100"})


def test_a_device_that_refuses_optional_features_gets_the_f32_plan(gpu_adapter_info, model, monkeypatch):
    """The engine opens its device with the optional features so it can probe subgroups; a
    driver that lists a feature but cannot open a device with it still gets an engine, on the
    f32 kernels."""
    from companion.engines import native
    from companion.gpu.adapters import request_device as real

    asked = []

    def refusing(adapter, features=()):
        asked.append(list(features))
        if features:
            raise EngineUnavailable("cannot open a device with those features")
        return real(adapter, features)

    monkeypatch.setattr(native, "request_device", refusing)
    eng = native.NativeEngine(model, n_ctx=64, max_batch=8, features="subgroups")
    try:
        assert asked[0] and asked[-1] == [] and eng.plan.features == []
        assert np.isfinite(eng.eval([1, 2, 3])).all()
    finally:
        eng.close()


def test_forcing_an_unknown_adapter_fails(gpu_adapter_info):
    from companion.gpu.adapters import request_adapter

    with pytest.raises(EngineUnavailable, match="no adapter matches"):
        request_adapter("no-such-gpu-xyz")


@pytest.mark.slow
@pytest.mark.parametrize("i", [0, 1, 2])
def test_teacher_forced_parity(engine, reference, golden, i):
    """Prefill as one batch, then single-token decode steps, against the reference."""
    p = golden["prompts"][i]
    prompt, gen = p["prompt_token_ids"], p["generated_token_ids"][:STEPS]
    engine.reset()
    reference.reset()
    got = [engine.eval(prompt)]  # (V,) batched prefill
    want = [reference.eval(prompt)]
    for t in gen[:-1]:
        got.append(engine.eval([t]))  # decode program
        want.append(reference.eval([t]))
    got, want = np.stack(got), np.stack(want)  # (S, V)
    assert np.abs(got - want).max() <= F32_TOL
    top2 = np.sort(want, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] >= 0.25
    assert (got.argmax(1) == want.argmax(1))[clear].all()
    # the golden greedy ids are what both engines pick where the margin is clear
    assert (got.argmax(1)[clear] == np.array(gen)[clear]).all()


@pytest.fixture(scope="module")
def reference_steps(reference, golden) -> list[np.ndarray]:
    """Reference logits (S, V) per golden prompt: after the prompt, then teacher-forced steps."""
    out = []
    for p in golden["prompts"]:
        reference.reset()
        rows = [reference.eval(p["prompt_token_ids"])]
        for t in p["generated_token_ids"][: VARIANT_STEPS - 1]:
            rows.append(reference.eval([t]))
        out.append(np.stack(rows))  # (S, V)
    return out


# the golden prompt each kernel variant set runs on (one each, every prompt by one of them: a
# prompt takes ~30 CPU-seconds a set on lavapipe, and each kernel has its own test in test_kernels)
VARIANT_PROMPT = {"f16+subgroups": 0, "f32": 1, "subgroups": 2}


def _teacher_forced_worst(eng, golden, reference_steps, label) -> float:
    """Largest |logit difference| from the reference over the teacher-forced steps of the
    variant's golden prompt (VARIANT_PROMPT; prefill program, then the decode program); top-1
    must agree wherever the reference's own top-1/top-2 margin is >= 0.25."""
    i = VARIANT_PROMPT[label]
    p, want = golden["prompts"][i], reference_steps[i]
    eng.reset()
    got = [eng.eval(p["prompt_token_ids"])]  # batched prefill program
    for t in p["generated_token_ids"][: VARIANT_STEPS - 1]:
        got.append(eng.eval([t]))  # decode program
    g = np.stack(got)  # (S, V)
    top2 = np.sort(want, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] >= 0.25
    assert (g.argmax(1) == want.argmax(1))[clear].all(), label
    return float(np.abs(g - want).max())


@pytest.mark.slow
# f32 (the default engine's own set, rows layout) is test_teacher_forced_parity's engine, checked
# there on every prompt at more steps; each variant alone: test_kernels, per kernel
@pytest.mark.parametrize("fs", ["f16+subgroups"])
def test_feature_set_parity(gpu_features, model, reference_steps, golden, fs):
    """Whole-model logits of each kernel variant set at teacher-forced steps of a golden
    prompt: f32 paths within F32_TOL, f16 paths within F16_TOL and the same top-1 where the
    reference margin is >= 0.25."""
    from companion.engines.native import NativeEngine

    allow, feats = FEATURE_SETS[fs]
    if any(f not in gpu_features for f in feats):
        pytest.skip(f"adapter lacks {feats}")
    eng = NativeEngine(model, n_ctx=256, max_batch=32, features=allow)
    try:
        assert eng.plan.features == feats
        worst = _teacher_forced_worst(eng, golden, reference_steps, fs)
        print(f"\n{fs}: max |logit difference| {worst:.4f}")
        assert worst <= (F16_TOL if "shader-f16" in feats else F32_TOL), (fs, worst)
    finally:
        eng.close()


@pytest.mark.slow
def test_eval_all_matches_reference(engine, reference, golden):
    ids = golden["prompts"][1]["prompt_token_ids"][:40]
    engine.reset()
    reference.reset()
    got = engine.eval_all(ids)  # (T, V)
    want = reference.eval_all(ids)  # (T, V)
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= F32_TOL
    assert engine.n_past == len(ids)


@pytest.mark.slow
def test_prefill_in_chunks(engine, reference, golden):
    """Prompts longer than max_batch are prefilled chunk by chunk."""
    p = golden["prompts"][0]
    ids = (p["prompt_token_ids"] * 3)[:45]  # 2 chunks of 32, the second partial
    engine.reset()
    reference.reset()
    assert np.abs(engine.eval(ids) - reference.eval(ids)).max() <= F32_TOL
    assert engine.n_past == 45


@pytest.mark.slow
def test_greedy_next_token_counters(engine, golden):
    p = golden["prompts"][0]
    engine.reset()
    sampler = Sampler(SamplingParams.greedy_params())
    ids = list(p["prompt_token_ids"])
    out = [engine.next_token(ids, sampler, ids)]
    for _ in range(3):
        out.append(engine.next_token([out[-1]], sampler, ids + out))
        k = 1 / engine.stats["submits_per_token"]  # steps run ahead, as many as fit the burst (test_native_ahead.py)
        assert k == round(k) and 1 <= k <= engine.ahead
        assert engine.stats["readback_bytes_per_token"] == 4
        assert engine.stats["dispatches_per_token"] == engine.plan.dispatch_count("decode") + 1
    assert out == p["generated_token_ids"][:4]


@pytest.mark.slow
def test_gpu_sampling_is_seeded(engine, golden):
    ids = golden["prompts"][2]["prompt_token_ids"][:10]

    def run(seed: int) -> list[int]:
        engine.reset()
        s = Sampler(SamplingParams(temperature=1.0, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.1, seed=seed))
        out = [engine.next_token(ids, s, ids)]
        for _ in range(4):
            out.append(engine.next_token([out[-1]], s, ids + out))
        return out

    a = run(3)
    assert a == run(3)
    assert all(0 <= t < int(engine.plan.model["n_vocab"]) for t in a)


def test_context_full_is_reported(engine):
    engine.reset()
    with pytest.raises(ValueError, match="context full"):
        engine.eval([1] * (engine.n_ctx + 1))


@pytest.mark.slow
def test_device_loss_raises_engine_unavailable(gpu_adapter_info, model):
    from companion.engines.native import NativeEngine

    eng = NativeEngine(model, n_ctx=64, max_batch=8)
    eng.eval([1, 2, 3])
    eng.executor.device.destroy()  # what a driver reset looks like from here
    with pytest.raises(EngineUnavailable):
        eng.eval([4])
    with pytest.raises(EngineUnavailable):  # and it stays unusable
        eng.next_token([5], Sampler(SamplingParams.greedy_params()), [])


def test_broken_shader_names_file_and_line(gpu_device, shader_dir):
    from companion.gpu import shaders

    shader_dir({
        "broken.wgsl": "// header\n//!include _inc.wgsl\nfn main() {\n  let x: u32 = 1.5;\n}\n",
        "_inc.wgsl": "fn ok() {}\n",
        "broken_inc.wgsl": "// header\n//!include _bad.wgsl\n",
        "_bad.wgsl": "fn ok() {}\nfn bad() -> u32 { return 1.5; }\n",
    })
    with pytest.raises(shaders.ShaderError, match=r"^broken\.wgsl:4:"):
        shaders.create_module(gpu_device, "broken.wgsl")
    with pytest.raises(shaders.ShaderError, match=r"^_bad\.wgsl:2:"):
        shaders.create_module(gpu_device, "broken_inc.wgsl")


@pytest.mark.slow
# f32 and subgroups (with the probed subgroup size): the layout and kernels real GPUs run; the
# f16 variants of each split-K kernel are checked per kernel in test_kernels (both layouts) and
# whole-model in the rows layout above
@pytest.mark.parametrize("fs", ["f32", "subgroups"])
def test_splitk_layout_parity(gpu_features, model, reference_steps, golden, fs):
    """The GPU matmul layout (forced on lavapipe): whole-model logits at teacher-forced steps
    of a golden prompt within the variant's tolerance, same top-1 where the margin is clear."""
    from companion.engines.native import NativeEngine

    allow, feats = FEATURE_SETS[fs]
    if any(f not in gpu_features for f in feats):
        pytest.skip(f"adapter lacks {feats}")
    eng = NativeEngine(model, n_ctx=256, max_batch=32, features=allow, layout="splitk")
    try:
        assert eng.plan.model["layout"] == "splitk"
        assert any(p.constants.get("SPLITK") for p in eng.plan.pipelines)
        if "subgroups" in feats:  # the engine probed the device: its reductions know the size
            from companion.gpu.adapters import probe_subgroups

            want = probe_subgroups(eng.executor.device)  # lavapipe: 8 wide, in order
            assert {p.constants.get("SG") for p in eng.plan.pipelines if "_reduce.wgsl" in p.includes} == {want}
        worst = _teacher_forced_worst(eng, golden, reference_steps, fs)
        print(f"\nsplitk {fs}: max |logit difference| {worst:.4f}")
        assert worst <= (F16_TOL if "shader-f16" in feats else F32_TOL), (fs, worst)
    finally:
        eng.close()
