"""Lip sync from text (companion.avatar.lipsync): phonemes (espeak-ng, or spelling rules) to
visemes with durations, pauses at punctuation, and tracks paced to the text as it streams."""

from __future__ import annotations

import shutil

import pytest

from companion.avatar import lipsync as ls
from companion.avatar.lipsync import (
    MAX_LAG_MS,
    PAUSE_MS,
    EspeakPhonemizer,
    RulePhonemizer,
    TextVisemes,
    VisemeSpan,
    ipa_visemes,
    merge,
    rule_visemes,
    text_spans,
)
from companion.avatar.pose import VISEMES

ESPEAK = shutil.which("espeak-ng")
PHONEMIZERS = ["rules"] + (["espeak-ng"] if ESPEAK else [])


def shapes(spans) -> list[str]:
    return [s.viseme for s in spans]


def make(name: str):
    return RulePhonemizer() if name == "rules" else EspeakPhonemizer(ESPEAK)


def test_ipa_to_visemes():
    assert shapes(ipa_visemes("mˈæp")) == ["closed", "aa", "closed"]
    hello = ipa_visemes("həlˈoʊ")
    assert shapes(hello)[-2:] == ["oh", "ou"]  # the diphthong glides
    assert shapes(ipa_visemes("wˈiː")) == ["ou", "ee"]
    stressed, plain = ipa_visemes("ˈɑ")[0].ms, ipa_visemes("ɑ")[0].ms
    assert stressed > plain and ipa_visemes("ɑː")[0].ms > plain  # stress and length lengthen


def test_spelling_rules():
    assert shapes(rule_visemes("map")) == ["closed", "aa", "closed"]
    assert shapes(rule_visemes("time")) == ["ih", "aa", "ee", "closed"]  # magic e: "ai"
    assert "ou" in shapes(rule_visemes("you")) and shapes(rule_visemes("see")) == ["ee", "ee"]
    assert all(s.viseme in VISEMES and s.ms > 0 for w in ("Hello", "rhythm", "x", "1999") for s in rule_visemes(w))


@pytest.mark.parametrize("name", PHONEMIZERS)
def test_a_sentence_moves_the_mouth_and_pauses_at_punctuation(name):
    spans = merge(text_spans("Hello there, my friend! How are you?", make(name)))
    assert len(set(shapes(spans)) - {"closed"}) >= 3
    pauses = [s.ms for s in spans if s.viseme == "closed" and s.ms >= PAUSE_MS[","]]
    assert len(pauses) == 3  # after "there,", "friend!" and "you?"
    total = sum(s.ms for s in spans)
    assert 1500 < total < 4500  # ~ natural speech for 7 words and 3 pauses
    assert all(a.viseme != b.viseme for a, b in zip(spans, spans[1:], strict=False))  # merged


@pytest.mark.skipif(ESPEAK is None, reason="espeak-ng is not installed")
def test_espeak_falls_back_to_the_rules_when_it_stops_answering():
    p = EspeakPhonemizer(ESPEAK)
    assert p.ipa(["hello"]).replace("ˈ", "") in ("həloʊ", "həloʊ")
    p.close()  # as if it crashed
    assert shapes(p(["map"])) == shapes(rule_visemes("map")) and p.failed


def test_default_phonemizer_without_espeak(monkeypatch):
    monkeypatch.setattr(ls, "_espeak", None)
    monkeypatch.setattr(ls.shutil, "which", lambda name: None)
    assert isinstance(ls.default_phonemizer(), RulePhonemizer)


def test_words_split_across_pieces_are_read_whole():
    whole = TextVisemes(RulePhonemizer())
    split = TextVisemes(RulePhonemizer())
    a = whole.text("Hello world ", 0)
    b = split.text("Hel", 0) + split.text("lo wor", 0) + split.text("ld ", 0)
    assert shapes(s for t in a for s in t.spans) == shapes(s for t in b for s in t.spans)
    assert split.text("Wh", 0) == []  # an unfinished word waits


def test_tracks_start_when_the_text_appears():
    src = TextVisemes(RulePhonemizer())
    (first,) = src.text("Hi there. ", 500)
    assert first.start_ms == 500
    assert first.spans[-1].viseme == "closed" and first.spans[-1].ms == PAUSE_MS["."]
    (second,) = src.text("Bye ", 600)  # the mouth is busy: it follows on
    assert second.start_ms == first.end_ms
    (third,) = src.text("now. ", 10_000)  # long after: starts at once, without the leading pause
    assert third.start_ms == 10_000 and third.spans[0].viseme != "closed"


def test_a_flood_of_text_never_trails_by_more_than_max_lag():
    src = TextVisemes(RulePhonemizer())
    words = ("so many words arrive at once from a fast engine " * 20).split(" ")
    tracks = [t for i, w in enumerate(words) for t in src.text(w + " ", i * 2.0)]  # 500 words/s
    last_text_ms = (len(words) - 1) * 2.0
    assert tracks and max(t.end_ms for t in tracks) <= last_text_ms + MAX_LAG_MS
    sped = [s.ms for t in tracks[3:] for s in t.spans if s.viseme != "closed"]
    assert min(sped) < 60  # caught up by talking faster


def test_end_of_reply():
    src = TextVisemes(RulePhonemizer())
    src.text("All done", 0)
    (last,) = src.end(100, stopped=False)  # the last word is spoken
    assert shapes(last.spans)[-1] != "closed" or len(last.spans) > 1
    src.start()
    src.text("Stop right ", 0)
    (cut,) = src.end(250, stopped=True)  # stopped: the mouth closes now
    assert cut.start_ms == 250 and cut.spans == ()
    assert TextVisemes(RulePhonemizer()).end(0, stopped=False) == []


def test_merge_keeps_spans_in_bounds():
    long = [VisemeSpan(viseme="closed", ms=2000)] * 4
    assert all(s.ms <= 5000 for s in merge(long)) and sum(s.ms for s in merge(long)) == 8000
    assert merge([VisemeSpan(viseme="aa", ms=80), VisemeSpan(viseme="ee", ms=10)]) == [VisemeSpan(viseme="aa", ms=90)]
