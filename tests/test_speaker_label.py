"""A reply's leading speaker label ("Mira: ...", "**Mira:** ...", "Assistant: ...") is not shown
or stored: the small default model sometimes writes one in its character's name."""

from __future__ import annotations

import pytest
from test_emotion_tags import ScriptedEngine

from companion.chat import ReplyDone, SpeakerPrefixFilter, TextDelta
from companion.sampling import SamplingParams

NAMES = ("Mira", "assistant")


def shown(pieces, names=NAMES) -> str:
    f = SpeakerPrefixFilter(names)
    return "".join(f.feed(p) for p in pieces) + f.feed("", final=True)


@pytest.mark.parametrize(
    ("pieces", "want"),
    [
        (["Mira: Hey, how was your day?"], "Hey, how was your day?"),
        (["Mi", "ra", ":", " ", "Hey", " you"], "Hey you"),  # split the way a tokenizer splits it
        (["**Mira:** Good morning!"], "Good morning!"),
        (["**Mira**: Good morning!"], "Good morning!"),
        (["  mira :   oh, hi"], "oh, hi"),
        (["Assistant: Sure, here it is."], "Sure, here it is."),
        (["MIRA: loud hello"], "loud hello"),
    ],
)
def test_a_leading_label_is_dropped(pieces, want):
    assert shown(pieces) == want


@pytest.mark.parametrize(
    "text",
    [
        "Mirabelle plums are in season.",  # the name as the start of another word
        "Mira was my grandmother's name too.",  # the name as a word, no colon
        "Hello! Mira: that's me.",  # a label later in the reply is text
        "Note: tea first.",  # some other word with a colon
        "Mira",  # the whole reply is the name
        "",
        "**Bold** start",
        "Assistants are helpful.",
    ],
)
def test_other_openings_pass_unchanged(text):
    assert shown([text]) == text
    assert shown(list(text)) == text  # character by character: held, then released whole


def test_names_are_the_ones_given():
    assert shown(["Al: hi"], ("Al",)) == "hi"
    assert shown(["Also: hi"], ("Al",)) == "Also: hi"
    assert shown(["Mira: hi"], ()) == "Mira: hi"  # no names: nothing held


def test_a_long_undecided_start_is_not_held_forever():
    f = SpeakerPrefixFilter(["Mira" + "a" * 100])
    assert f.feed("Mira" + "a" * 70) == "Mira" + "a" * 70  # past HOLD characters: released


def test_chat_drops_the_label_from_the_shown_and_stored_reply(model):
    eos = 2 if 2 in model.chat_template.eog_ids else min(model.chat_template.eog_ids)
    text = "Mira: Hey! I'm glad you came back."
    ids = model.tokenizer.encode(text, parse_special=False)
    from companion.chat import ChatSession

    s = ChatSession(model, ScriptedEngine(ids, eos), SamplingParams.greedy_params(), max_new_tokens=len(ids) + 4)
    s.speaker_names = ("Mira", "assistant")
    events = list(s.send("hi"))
    done = events[-1]
    assert isinstance(done, ReplyDone) and done.status == "done"
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Hey! I'm glad you came back." == done.text
    assert s.history[-1]["content"] == done.text


def test_the_app_session_knows_its_characters_name(tmp_path, monkeypatch, model):
    """attach_memory gives the session the character card's names (the default character)."""
    monkeypatch.setenv("COMPANION_HOME", str(tmp_path))
    from companion.app import attach_memory
    from companion.chat import ChatSession
    from companion.settings import Settings

    s = ChatSession(model, ScriptedEngine([], 2), SamplingParams.greedy_params())
    attach_memory(s, Settings.load())
    card = s.memory.store.character(s.memory.character_id).card
    assert card.name and card.name in s.speaker_names and "assistant" in s.speaker_names
