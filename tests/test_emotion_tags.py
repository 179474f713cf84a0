"""Emotion tags in a streamed reply: removed from the shown and stored text however the tokens
split them, unknown tags dropped, ordinary brackets kept; a reply without tags gets its emotion
from its words (companion.avatar.infer), sentence by sentence while it streams."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from companion.avatar.infer import shared_reader
from companion.chat import AvatarCue, ChatSession, ReplyDone, TextDelta
from companion.emotion import EmotionFilter
from companion.engines.base import Engine
from companion.sampling import SamplingParams


def stream(pieces: Sequence[str]) -> tuple[str, list[str], list[str]]:
    """(text shown, cues, the pieces released) for text fed in these pieces."""
    f = EmotionFilter()
    shown = [f.feed(p)[0] for p in pieces]
    shown.append(f.flush())
    return "".join(shown), list(f.cues), shown


TAGGED = "[happy] Oh, hello! It's [Excited]great to see you [wink] again. [thinking]Hmm."


def test_every_split_gives_the_same_text_and_cues():
    whole = stream([TAGGED])
    assert whole[:2] == ("Oh, hello! It's great to see you again. Hmm.", ["happy", "excited", "thinking"])
    for cut in range(1, len(TAGGED)):
        assert stream([TAGGED[:cut], TAGGED[cut:]])[:2] == whole[:2], cut
    assert stream(list(TAGGED))[:2] == whole[:2]  # one character at a time


def test_a_tag_split_across_pieces_never_shows():
    _, cues, shown = stream(["Oh ", "[hap", "py] that's ", "gr", "eat [", "not", "atag] ok"])
    assert cues == ["happy"]
    assert not any("[" in s or "]" in s for s in shown), shown  # no half tag was released


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("Sure [wink] thing.", "Sure thing."),  # unknown: dropped
        ("[Laughing] ok", "ok"),
        ("See [link] please", "See please"),  # a one-word placeholder reads as a tag: dropped
        ("Nice! [grin]", "Nice!"),
        ("[big-grin] yes [soft_smile]", "yes"),
        ("Line one.\n[sad]\nLine two.", "Line one.\n\nLine two."),
    ],
)
def test_unknown_tags_are_dropped(text, want):
    got, cues, _ = stream([text])
    assert got == want and "[" not in got
    assert all(c in ("sad",) for c in cues)


@pytest.mark.parametrize(
    "text",
    [
        "As shown in [1], and [2].",  # citations
        "Read [the docs](https://example.org) or [docs](https://x.y).",  # markdown links
        "Use list[int] or d[key] in code.",  # glued to the word before: code, even "Nice[grin]"
        "Options: [see below] and [a b].",  # several words
        "Empty [] and [x] and a lone [ bracket.",
    ],
)
def test_ordinary_brackets_stay(text):
    got, cues, _ = stream([text])
    assert got == text and cues == []
    # and however the stream cuts them
    for cut in range(1, len(text)):
        assert stream([text[:cut], text[cut:]])[0] == text, cut


def test_a_tag_at_the_very_end():
    got, cues, shown = stream(["Sure thing! [hap", "py]"])
    assert got == "Sure thing!" and cues == ["happy"]
    assert shown[-1] == ""  # the trailing space before the tag is not left behind
    f = EmotionFilter()
    assert f.feed("Bye. [sleepy]") == ("Bye.", [])  # held: a "(" could still follow
    assert f.feed("", final=True) == ("", ["sleepy"])


def test_no_tags_pass_through():
    text = "Plain text, with (parentheses) and a question? Yes!\nNew line."
    assert stream([text])[:2] == (text, [])
    assert stream(list(text))[:2] == (text, [])


# --- the chat core, with a scripted model ------------------------------------------------------


class ScriptedEngine(Engine):
    """Answers with the token ids of a fixed reply, then the end-of-turn id."""

    name = "reference"

    def __init__(self, ids: Sequence[int], eos: int) -> None:
        self.ids, self.eos = list(ids), eos
        self._n_ctx = 4096
        self._i = 0

    def eval(self, ids):  # pragma: no cover - next_token is overridden
        raise NotImplementedError

    def next_token(self, ids, sampler, history) -> int:
        self._n_past += len(ids)
        self._i += 1
        return self.ids[self._i - 1] if self._i <= len(self.ids) else self.eos


@pytest.fixture(scope="module")
def reader():
    r = shared_reader()
    assert r.load(), r.error  # the streamed reply reads with the encoder, not the lexicon alone
    return r


def reply(model, text: str) -> tuple[list, ChatSession]:
    eos = 2 if 2 in model.chat_template.eog_ids else min(model.chat_template.eog_ids)
    ids = model.tokenizer.encode(text, parse_special=False)
    s = ChatSession(model, ScriptedEngine(ids, eos), SamplingParams.greedy_params(), max_new_tokens=len(ids) + 4)
    events = list(s.send("hi"))
    assert isinstance(events[-1], ReplyDone) and events[-1].status == "done"
    return events, s


def test_chat_strips_tags_split_by_the_tokenizer(model, reader):
    events, s = reply(model, "[happy] That's wonderful news! [unknowntag]I'm [exc" "ited] for you.")
    shown = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert shown == "That's wonderful news! I'm for you." == events[-1].text
    assert s.history[-1]["content"] == shown  # stored without tags
    cues = [e for e in events if isinstance(e, AvatarCue)]
    assert [(c.emotion, c.source) for c in cues] == [("happy", "tag"), ("excited", "tag")]


def test_chat_tag_at_the_very_end(model, reader):
    events, _ = reply(model, "See you tomorrow! [sleepy]")
    assert events[-1].text == "See you tomorrow!"
    assert [(c.emotion, c.source) for c in events if isinstance(c, AvatarCue)] == [("sleepy", "tag")]


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("Oh no, I'm so sorry about your dog. That's heartbreaking.", "sad"),
        ("Yay! That's the best news ever, I can't wait to celebrate with you!", "excited"),
        ("How dare they treat you like that! It's outrageous.", "angry"),
        ("Hmm, let me think about that for a moment.", "thinking"),
    ],
)
def test_chat_without_tags_infers_the_emotion(model, reader, text, want):
    events, _ = reply(model, text)
    cues = [e for e in events if isinstance(e, AvatarCue)]
    assert cues and all(c.source == "text" for c in cues)
    assert cues[0].emotion == want and cues[0].intensity > 0.3
    assert "neutral" not in [c.emotion for c in cues]


def test_chat_infers_per_sentence_while_streaming(model, reader):
    """The face changes during the reply: a cue follows the sentence that carries it, before
    the rest of the text has streamed."""
    events, _ = reply(model, "I'm so sorry to hear that, it must hurt. But wow, you won the lottery?! No way!")
    order = [(type(e).__name__, getattr(e, "emotion", getattr(e, "text", ""))) for e in events]
    cues = [i for i, (kind, _) in enumerate(order) if kind == "AvatarCue"]
    assert [order[i][1] for i in cues][:2] == ["sad", "surprised"]
    first_text_after = [i for i, (kind, _) in enumerate(order) if kind == "TextDelta" and i > cues[0]]
    assert first_text_after, "the first cue came only after the whole text"


def test_chat_plain_reply_stays_neutral(model, reader):
    events, _ = reply(model, "The train leaves at 9:15 from platform two.")
    cues = [e for e in events if isinstance(e, AvatarCue)]
    assert [(c.emotion, c.intensity) for c in cues] == [("neutral", 0.0)]  # every reply ends with a cue
