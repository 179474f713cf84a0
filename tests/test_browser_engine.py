"""The browser engine: the page's WebGPU executor (ui/engine/) in headless Chromium
(SwiftShader, f32 kernels) against the numpy reference, the native engine and llama.cpp's
golden logits; and the failures it must report instead of hanging (no WebGPU, a kernel that
does not compile)."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import break_step_helper, decode_ids
from conftest_browser import N_CTX, close_page_engine, open_page_engine

from companion.errors import EngineUnavailable
from companion.gpu.plan import PLAN_VERSION
from companion.headless import F32_TOLERANCE
from companion.parity import MAX_LOGIT_DIFF, check_prompt
from companion.sampling import Sampler, SamplingParams

pytestmark = pytest.mark.browser


def test_plan_json_names_every_gguf_offset(plan_assets, model):
    data = plan_assets.plan_json()
    gguf = [b["source"]["tensor"] for b in data["buffers"] if b["source"] and b["source"]["kind"] == "gguf"]
    assert gguf and set(gguf) == set(data["gguf_offsets"])
    for name in gguf:
        assert data["gguf_offsets"][name] == model.tensors[name].offset
    blobs = [b["source"]["name"] for b in data["buffers"] if b["source"] and b["source"]["kind"] == "blob"]
    assert all(plan_assets.blob(n) is not None for n in blobs)
    assert plan_assets.blob("no-such-blob") is None
    # the composed kernels the page compiles (tests/test_shaders.py checks their content)
    assert {p["module"] for p in data["pipelines"]} == set(data["modules"])


def test_logits_match_reference_and_golden(page_engine, reference_engine, model, golden):
    """Teacher-forced on the first golden prompt: f32 agreement with the reference over the
    whole vocabulary after the prompt (prefill program) and a step (decode program), and
    llama.cpp's top-1 and top-5 logits over three steps."""
    eng = page_engine.engine
    assert "swiftshader" in eng.adapter.lower() or "webgpu" in eng.adapter.lower()
    g = golden["prompts"][0]
    prompt = [int(i) for i in g["prompt_token_ids"]]
    steps = [int(i) for i in g["generated_token_ids"][:1]]
    eng.reset()
    reference_engine.reset()
    ours = [eng.eval(prompt)] + [eng.eval([t]) for t in steps]  # (V,) each
    ref = [reference_engine.eval(prompt)] + [reference_engine.eval([t]) for t in steps]
    assert eng.n_past == len(prompt) + len(steps)
    for a, b in zip(ours, ref, strict=True):
        assert a.shape == (model.config.n_vocab,) and a.dtype == np.float32
        assert float(np.abs(a - b).max()) <= F32_TOLERANCE
        assert int(a.argmax()) == int(b.argmax())
    short = {**g, "generated_token_ids": g["generated_token_ids"][:3], "top5_each_generated_position": g["top5_each_generated_position"][:3]}
    rep = check_prompt(eng, model.tokenizer, model.chat_template, 0, short)
    assert rep.ok and rep.max_abs_logit_diff <= MAX_LOGIT_DIFF


def test_reset_keeps_the_prefix(page_engine):
    eng = page_engine.engine
    ids = [1, 9690, 198, 2683, 359, 253, 5356]
    eng.reset()
    full = eng.eval(ids)
    eng.reset(len(ids) - 1)
    assert eng.n_past == len(ids) - 1
    again = eng.eval(ids[-1:])  # the decode program, on the kept KV rows
    assert float(np.abs(full - again).max()) < 1e-3


def test_gpu_sampling_greedy_and_seeded(page_engine, reference_engine):
    """Greedy ids equal the reference's argmax; a seeded stream replays identically."""
    eng = page_engine.engine
    prompt = [1, 9690, 198, 2683, 359, 253, 5356, 198]
    eng.reset()
    reference_engine.reset()
    greedy = Sampler(SamplingParams.greedy_params())
    tok = eng.next_token(prompt, greedy, list(prompt))
    want = int(reference_engine.eval(prompt).argmax())
    assert tok == want
    assert eng.last_ms is not None and eng.last_ms > 0

    def draw(n: int) -> list[int]:
        eng.reset(len(prompt))
        s = Sampler(SamplingParams(temperature=1.0, top_k=40, top_p=0.95, min_p=0.0, repeat_penalty=1.1, seed=1234))
        out, feed, hist = [], [want], list(prompt)
        for _ in range(n):
            t = eng.next_token(feed, s, hist)
            out.append(t)
            hist.append(t)
            feed = [t]
        return out

    first = draw(3)
    assert first == draw(3)
    assert all(0 <= t < 49152 for t in first)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny random model (decisive logits): what the page does in seconds, where the default
    model takes SwiftShader minutes for the same steps (a page load is mostly compiling)."""
    from companion.model import load_model
    from companion.testing import write_tiny_gguf

    return load_model(str(write_tiny_gguf(tmp_path_factory.mktemp("tiny") / "tiny.gguf", n_layer=2, weight_scale=4.0, context_length=512)))


@pytest.fixture(scope="module")
def tiny_page_engine(chromium_required, chromium, tiny):
    """A page engine on the tiny model, its kernels allowed the subgroup reductions (the only
    optional feature SwiftShader offers); `plan_requests` records the (features, adapter info)
    of each plan the page asked the core for."""
    from companion.engines.browser import PlanAssets

    assets = PlanAssets(tiny, 128, allow="subgroups")
    requests: list[tuple[list[str], dict]] = []
    real = assets.plan_json

    def plan_json(features=(), adapter_info=None):
        requests.append((list(features), dict(adapter_info or {})))
        return real(features, adapter_info)

    assets.plan_json = plan_json  # type: ignore[method-assign]
    pe = open_page_engine(chromium, assets, tiny)
    try:
        yield SimpleNamespace(server=pe.server, page=pe.page, engine=pe.engine, errors=pe.errors, assets=assets,
                              plan_requests=requests)  # fmt: skip
    finally:
        close_page_engine(pe)


def test_run_ahead_gives_the_ids_of_single_steps(tiny_page_engine, monkeypatch):
    """A decode loop with the page running 4 steps per request gives the same ids as one step
    per request (greedy, and sampled with the repetition penalty, whose window then lives on
    the GPU), in a quarter of the requests; positions run ahead and not used are dropped by
    the next request (an eval after an unfinished run of steps lands where the core counts)."""
    eng = tiny_page_engine.engine
    eng.eog_ids = frozenset()  # a random model: run through every step
    prompt = [1, 96, 198, 26, 35, 253, 56, 46, 111, 33, 37, 28, 2, 198, 1, 40, 198]
    sent: list[str] = []
    real_request = eng._request

    def request(message):
        sent.append(message.type)
        return real_request(message)

    monkeypatch.setattr(eng, "_request", request)

    def loop(ahead: int, params: SamplingParams, n: int) -> tuple[list[int], int]:
        eng.ahead = ahead
        before = sent.count("generate")
        out = decode_ids(eng, params, prompt, n)
        return out, sent.count("generate") - before

    try:
        for params in (SamplingParams.greedy_params(),
                       SamplingParams(temperature=0.9, top_k=40, top_p=0.95, min_p=0.0, repeat_penalty=1.3, repeat_last_n=8, seed=7)):
            one, one_requests = loop(1, params, 9)
            four, four_requests = loop(4, params, 9)
            assert four == one, params
            assert one_requests == 9 and four_requests == 1 + 2  # the prompt, then 8 ids in 2 requests
            assert eng.stats["tokens_per_request"] == 4.0
        # 1 + 4 + 2 ids handed out of 1 + 8 run: the next eval continues from the core's count
        loop(4, SamplingParams.greedy_params(), 7)
        assert eng.n_past == len(prompt) + 6
        eng.eval([198])
        assert eng.n_past == len(prompt) + 7
    finally:
        eng.ahead = 4


def test_no_webgpu_is_reported(chromium_required, chromium, plan_assets, model):
    pe = open_page_engine(chromium, plan_assets, model, init_script="delete Navigator.prototype.gpu;", load=False)
    try:
        with pytest.raises(EngineUnavailable, match="navigator.gpu is missing"):
            pe.engine.load()
        with pytest.raises(EngineUnavailable):  # and it stays failed: no second attempt
            pe.engine.eval([1])
    finally:
        close_page_engine(pe)


def test_compile_error_names_file_and_line(chromium_required, chromium, model, shader_dir):
    """A kernel that does not compile is reported with its .wgsl file and line (an included
    helper's own line, not the composed one): the page compiles the modules the plan JSON
    serves and maps Tint's line through the served line map."""
    from companion.engines.browser import PlanAssets

    line = break_step_helper(shader_dir(copy_real=True))  # what the plan is composed from
    pe = open_page_engine(chromium, PlanAssets(model, N_CTX), model, load=False)
    try:
        with pytest.raises(EngineUnavailable) as info:
            pe.engine.load()
        assert f"_step.wgsl:{line}:" in str(info.value)
        assert "undeclared_name" in str(info.value)
    finally:
        close_page_engine(pe)


def test_a_plan_without_modules_is_refused(chromium_required, chromium, plan_assets, model):
    """A plan the page cannot run (here: no composed kernels) fails the load naming the plan's
    version, before any device is opened."""

    def plan_json(features=(), adapter_info=None):
        data = dict(plan_assets.plan_json(features, adapter_info))
        del data["modules"]
        return data

    assets = SimpleNamespace(plan_json=plan_json, blob=plan_assets.blob, info=plan_assets.info, plan=None)
    pe = open_page_engine(chromium, assets, model, load=False)
    try:
        with pytest.raises(EngineUnavailable, match=rf"version {PLAN_VERSION}\).*no composed kernels"):
            pe.engine.load()
    finally:
        close_page_engine(pe)


def test_start_uses_an_attached_page_and_reports_its_lost_device(chromium_required, chromium, tiny):
    """With a server whose page has an executor (the desktop window), start_browser_engine
    runs the model there instead of launching a browser; a device that goes away after loading
    fails the next request (EngineUnavailable, so the chat falls back) instead of hanging, and
    closing the engine leaves the server it did not start running."""
    from companion.engines.browser import PlanAssets, start_browser_engine

    pe = open_page_engine(chromium, PlanAssets(tiny, N_CTX), tiny, load=False)
    try:
        eng = start_browser_engine(tiny, n_ctx=N_CTX, report=lambda m: None, server=pe.server)
        assert eng.channel is pe.server.executor and "webgpu" in eng.adapter.lower()
        assert eng.eval([1, 2, 3]).shape == (tiny.config.n_vocab,)
        pe.page.evaluate("() => window.companion.executor.device.destroy()")
        with pytest.raises(EngineUnavailable):
            eng.next_token([4], Sampler(SamplingParams.greedy_params()), [])
        eng.close()  # does not stop a server it did not start
        assert pe.server.executor.connected
    finally:
        close_page_engine(pe)


def test_page_probes_subgroups_and_its_plan_uses_them(tiny_page_engine, tiny):
    """The page measures its adapter's subgroup layout (probeSubgroups) and the plan it is
    served passes that size to the subgroup reductions (SG), as native does: a tiny model's
    logits through those kernels in the page match the reference engine's."""
    from companion.engines.reference import ReferenceEngine

    pe = tiny_page_engine
    features, info = pe.plan_requests[-1]
    if "subgroups" not in features:
        pytest.skip("this Chromium's adapter offers no subgroups")
    sg = int(info.get("subgroup-size", 0))
    assert sg in (4, 8, 16, 32, 64, 128), f"SwiftShader's subgroups are 4 wide and in order; the probe gave {info}"
    plan = pe.assets.build(features, info).plan  # the plan the page was served (cached)
    assert plan.features == ["subgroups"]
    assert {p.constants.get("SG") for p in plan.pipelines if "_reduce.wgsl" in p.includes} == {sg}
    ref = ReferenceEngine(tiny, 128)
    pe.engine.reset()
    steps = [[1, 96, 198, 26, 35, 253, 56, 46], [7], [19]]  # a prefill, then decode steps
    for ids in steps:
        got, want = pe.engine.eval(ids), ref.eval(ids)
        assert np.abs(got - want).max() <= 1e-3 * max(1.0, float(np.abs(want).max())), ids
