"""The native engine running decode steps ahead of the caller (NativeEngine(ahead=k)): the same
ids as one submit per token, for greedy and seeded sampling with the repetition penalty, one
submit per k tokens, nothing visible past an end-of-generation id, and every other call
(a new prompt, reset, eval) ending the run-ahead cleanly."""

from __future__ import annotations

import pytest
from conftest import decode_ids

from companion.sampling import Sampler, SamplingParams

pytestmark = pytest.mark.gpu

SAMPLED = SamplingParams(temperature=1.0, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.3, repeat_last_n=6, seed=7)
# a penalty that decides: the last two ids are (nearly) never chosen again
GREEDY_PENALTY = SamplingParams(temperature=0.0, top_k=0, top_p=1.0, min_p=0.0, repeat_penalty=1e4, repeat_last_n=2)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from companion.model import load_model
    from companion.testing import write_tiny_gguf

    path = write_tiny_gguf(tmp_path_factory.mktemp("ahead") / "tiny.gguf", n_layer=2, weight_scale=4.0, context_length=512)
    return load_model(str(path))


def _engine(model, ahead: int | None, layout: str = "rows", burst_s: float | None = None):
    from companion.engines.native import NativeEngine

    return NativeEngine(model, n_ctx=256, max_batch=16, features="none", layout=layout, ahead=ahead, burst_s=burst_s,
                        progress=False)  # fmt: skip


@pytest.mark.parametrize("params", [SamplingParams.greedy_params(), SAMPLED, GREEDY_PENALTY], ids=["greedy", "sampled+penalty", "greedy+penalty"])
def test_same_ids_as_one_submit_per_token(gpu_adapter_info, tiny, params):
    prompt = [5, 9, 40, 41, 7]
    with _engine(tiny, 1) as one, _engine(tiny, 4) as ahead:
        ahead.eog_ids = frozenset()  # run through the whole sequence
        a = decode_ids(one, params, prompt, 19)
        b = decode_ids(ahead, params, prompt, 19)
        assert a == b
        assert ahead.n_past == one.n_past == len(prompt) + 18
        assert ahead.stats["submits_per_token"] == pytest.approx(0.25)
        assert ahead.stats["passes_per_token"] == pytest.approx(0.25)  # k steps in one compute pass
        assert ahead.stats["readback_bytes_per_token"] == 4
        assert one.stats["submits_per_token"] == 1
        if params.repeat_penalty != 1.0:  # the penalty really acted: without it the ids differ
            plain = decode_ids(one, params.model_copy(update={"repeat_penalty": 1.0}), prompt, 19)
            assert plain != a


def test_steps_per_submit_follow_the_timed_pace(gpu_adapter_info, tiny):
    """By default a submit holds at most AHEAD steps and about BURST_S of them: two steps
    until a readback has timed them, then as many as fit the burst. A tiny burst comes down to
    one step per submit, a long one to the cap; the ids are those of one submit per token."""
    from companion.engines import native

    prompt = [5, 9, 40, 41, 7]
    with _engine(tiny, 1) as one, _engine(tiny, None) as auto:
        assert auto.ahead == native.AHEAD and auto.burst_s == native.BURST_S
        ref = decode_ids(one, SAMPLED, prompt, 30)
        for burst, per_token in ((1e-9, 1.0), (60.0, 1 / native.AHEAD)):
            auto.reset()
            auto.burst_s = burst
            auto.eog_ids = frozenset()
            assert decode_ids(auto, SAMPLED, prompt, 30) == ref
            assert auto.stats["submits_per_token"] == pytest.approx(per_token)
            assert auto._chain is not None and auto._chain.step_s > 0
        auto.reset()
        auto.burst_s = 60.0
        decode_ids(auto, SAMPLED, prompt, 2)  # untimed: the first submits hold START_AHEAD steps
        assert auto.stats["submits_per_token"] == pytest.approx(1 / native.START_AHEAD)


def test_other_calls_end_the_run_ahead(gpu_adapter_info, tiny):
    """A new prompt mid-run, reset and eval see exactly the caller's positions."""
    prompt = [5, 9, 40, 41, 7]
    with _engine(tiny, 1) as one, _engine(tiny, 3) as eng:
        eng.eog_ids = frozenset()
        greedy = SamplingParams.greedy_params()
        ref = decode_ids(one, greedy, prompt, 8)
        got = decode_ids(eng, greedy, prompt, 5)  # stops inside the second submit
        assert got == ref[:5]
        assert eng.n_past == len(prompt) + 4
        # continue with a different id than the one handed out: the chain ends, positions follow
        s = Sampler(greedy)
        t = eng.next_token([ref[4]], s, prompt + ref[:5])
        assert t == ref[5] and eng.n_past == len(prompt) + 5
        logits_a = eng.eval([3])
        eng.reset(len(prompt) + 5)
        logits_b = eng.eval([3])
        assert abs(logits_a - logits_b).max() < 1e-4
        assert eng.n_past == len(prompt) + 6


def test_stops_running_ahead_at_end_of_generation(gpu_adapter_info, tiny):
    prompt = [5, 9, 40, 41, 7]
    with _engine(tiny, 2) as eng:
        eng.eog_ids = frozenset()
        ids = decode_ids(eng, SamplingParams.greedy_params(), prompt, 12)
        stop = ids[5]  # pretend the sixth id ends the reply
        eng.eog_ids = frozenset({stop})
        first = ids.index(stop)
        submits = eng.executor.counters["submits"]
        again = decode_ids(eng, SamplingParams.greedy_params(), prompt, first + 1)
        assert again == ids[: first + 1]
        # the prompt, then submits of 2 steps: none after the one that read the stop id back,
        # beyond the one already in flight
        assert eng.executor.counters["submits"] - submits <= 1 + first // 2 + 2


def test_context_limit_while_running_ahead(gpu_adapter_info, tiny):
    from companion.engines.native import NativeEngine

    eng = NativeEngine(tiny, n_ctx=16, max_batch=8, features="none", layout="rows", ahead=4, progress=False)
    try:
        eng.eog_ids = frozenset()
        prompt = [5, 9, 40, 41, 7]
        out = decode_ids(eng, SamplingParams.greedy_params(), prompt, 12)  # fills the 16 positions
        assert len(out) == 12 and eng.n_past == 16
        with pytest.raises(ValueError, match="context full"):
            eng.next_token([out[-1]], Sampler(SamplingParams.greedy_params()), prompt + out)
    finally:
        eng.close()


@pytest.mark.slow
def test_splitk_layout_runs_ahead(gpu_adapter_info, tiny):
    with _engine(tiny, 1, "splitk") as one, _engine(tiny, 4, "splitk") as eng:
        eng.eog_ids = frozenset()
        assert decode_ids(one, SAMPLED, [5, 9, 40], 10) == decode_ids(eng, SAMPLED, [5, 9, 40], 10)


@pytest.mark.slow
def test_splitk_greedy_is_the_argmax_of_the_logits(gpu_adapter_info, tiny):
    """Greedy on the split-K layout samples from the head's per-workgroup candidates
    (sample_decode): the ids are the argmax of the very logits eval returns, one submit per
    token and running ahead."""
    import numpy as np

    with _engine(tiny, 4, "splitk") as eng, _engine(tiny, 1, "splitk") as one:
        pipes = {p.name: p for p in eng.plan.pipelines}
        assert pipes[eng.plan.programs["sample_decode"].dispatches[0].pipeline].constants["NC"] > 1
        eng.eog_ids = frozenset()
        prompt = [5, 9, 40]
        got = decode_ids(eng, SamplingParams.greedy_params(), prompt, 12)
        assert decode_ids(one, SamplingParams.greedy_params(), prompt, 12) == got
        one.reset()
        logits, want = one.eval(prompt), []
        for _ in range(12):
            want.append(int(np.argmax(logits.reshape(-1, logits.shape[-1])[-1])))
            logits = one.eval([want[-1]])
        assert got == want
