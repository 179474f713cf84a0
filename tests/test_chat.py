"""The conversation core: streaming, stopping, KV-cache reuse, fallback, emotion cues."""

from __future__ import annotations

import numpy as np

from companion.avatar.infer import infer_emotion
from companion.chat import AvatarCue, ChatSession, EngineSwitch, ReplyDone, TextDelta
from companion.emotion import EmotionFilter
from companion.engines.base import Engine
from companion.errors import EngineError
from companion.sampling import SamplingParams


def run(session, text):
    events = list(session.send(text))
    assert isinstance(events[-1], ReplyDone)
    return events


def test_greedy_reply_matches_golden(model, reference_engine, golden):
    g = golden["prompts"][0]
    s = ChatSession(model, reference_engine, SamplingParams.greedy_params(), system_prompt=g["system"])
    events = run(s, g["user"])
    done = events[-1]
    assert done.status == "done" and done.text == g["generated_text"]
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == g["generated_text"]
    assert done.stats["generated_tokens"] == len(g["generated_token_ids"])


def test_second_turn_reuses_kv_cache(model, reference_engine):
    s = ChatSession(model, reference_engine, SamplingParams.greedy_params(), max_new_tokens=12)
    first = run(s, "Name a colour.")[-1]
    second = run(s, "Another one?")[-1]
    assert second.stats["prompt_tokens"] > first.stats["prompt_tokens"]
    assert second.stats["prompt_tokens_evaluated"] < second.stats["prompt_tokens"] - first.stats["prompt_tokens"] + 10


def test_stop_mid_reply_keeps_session(model, reference_engine):
    s = ChatSession(model, reference_engine, SamplingParams(temperature=0.8, seed=3), max_new_tokens=200)
    seen = 0
    done = None
    for ev in s.send("Write a long story about a dragon."):
        if isinstance(ev, TextDelta):
            seen += 1
            if seen == 3:
                s.stop()
        if isinstance(ev, ReplyDone):
            done = ev
    assert done is not None and done.status == "stopped"
    assert done.stats["generated_tokens"] <= 5
    s.max_new_tokens = 4  # the session goes on: a short second reply is enough to show it
    assert run(s, "Thanks!")[-1].status == "done"
    assert [m["role"] for m in s.history] == ["user", "assistant", "user", "assistant"]


def test_max_new_tokens_limits_reply(model, reference_engine):
    s = ChatSession(model, reference_engine, SamplingParams.greedy_params(), max_new_tokens=4)
    assert run(s, "Count from one to one hundred.")[-1].stats["generated_tokens"] == 4


def test_seeded_sampling_is_reproducible(model, reference_weights):
    from companion.engines.reference import ReferenceEngine

    p = SamplingParams(temperature=0.9, top_k=40, top_p=0.95, min_p=0.05, seed=42)
    a = run(ChatSession(model, ReferenceEngine(reference_weights, 256), p, max_new_tokens=16), "Tell me a fact.")[-1]
    b = run(ChatSession(model, ReferenceEngine(reference_weights, 256), p, max_new_tokens=16), "Tell me a fact.")[-1]
    assert a.text == b.text and a.text


class FailingEngine(Engine):
    """Fails after a few tokens, like a browser tab whose GPU device was lost."""

    name = "browser"

    def __init__(self, inner: Engine, fail_after: int):
        self.inner, self.left = inner, fail_after

    n_ctx = property(lambda self: self.inner.n_ctx)
    n_past = property(lambda self: self.inner.n_past)

    def reset(self, n_keep: int = 0) -> None:
        self.inner.reset(n_keep)

    def eval(self, ids):
        if self.left <= 0:
            raise EngineError("GPU device lost")
        self.left -= 1
        return self.inner.eval(ids)


def test_engine_failure_falls_back_without_losing_the_turn(model, reference_weights, golden):
    from companion.engines.reference import ReferenceEngine

    g = golden["prompts"][1]
    s = ChatSession(
        model,
        FailingEngine(ReferenceEngine(reference_weights, 256), fail_after=4),
        SamplingParams.greedy_params(),
        system_prompt=g["system"],
        fallback=lambda: ReferenceEngine(reference_weights, 256),
    )
    events = run(s, g["user"])
    switches = [e for e in events if isinstance(e, EngineSwitch)]
    assert len(switches) == 1 and "device lost" in switches[0].reason
    assert events[-1].status == "done" and events[-1].text == g["generated_text"]


def test_engine_failure_without_fallback_is_an_error(model, reference_weights):
    from companion.engines.reference import ReferenceEngine

    s = ChatSession(model, FailingEngine(ReferenceEngine(reference_weights, 64), 0), SamplingParams.greedy_params())
    done = run(s, "hi")[-1]
    assert done.status == "error" and "device lost" in done.error


def test_long_history_is_trimmed_to_fit_context(model, reference_weights):
    from companion.engines.reference import ReferenceEngine

    s = ChatSession(model, ReferenceEngine(reference_weights, 160), SamplingParams.greedy_params(), max_new_tokens=8)
    for i in range(6):
        s.history += [{"role": "user", "content": f"message number {i} " * 5}, {"role": "assistant", "content": "ok " * 10}]
    msgs = s.prompt_messages("final question?")
    assert msgs[0]["role"] == "system" and msgs[-1]["content"] == "final question?"
    assert len(model.tokenizer.encode(model.chat_template.render(msgs))) <= 160 - 8
    assert run(s, "final question?")[-1].status == "done"


def test_emotion_tags_become_cues_even_when_split():
    f = EmotionFilter()
    out, cues = [], []
    for piece in ["Oh ", "[hap", "py] that's ", "great", " [notatag] ok"]:
        text, c = f.feed(piece)
        out.append(text)
        cues += c
    out.append(f.flush())
    assert "".join(out) == "Oh that's great ok"  # an unknown tag is dropped too
    assert cues == ["happy"]
    assert infer_emotion("I'm so sorry to hear that.") == "sad"
    assert infer_emotion("The train leaves at noon.") == "neutral"


def test_every_reply_emits_an_avatar_cue(model, reference_engine):
    s = ChatSession(model, reference_engine, SamplingParams.greedy_params(), max_new_tokens=10)
    assert any(isinstance(e, AvatarCue) for e in run(s, "Hello!"))


def test_logits_are_float32(reference_engine):
    assert reference_engine.eval([1, 2]).dtype == np.float32


def test_complete_is_a_side_channel_that_keeps_history(model, reference_engine):
    s = ChatSession(model, reference_engine, SamplingParams.greedy_params(), max_new_tokens=10)
    run(s, "What is the capital of France?")
    n = len(s.history)
    out = s.complete([{"role": "user", "content": "Summarize: the user asked about France."}], max_tokens=16)
    assert isinstance(out, str) and out
    assert len(s.history) == n
    assert run(s, "And of Italy?")[-1].status == "done"
