"""Explicit requests ("remember…", "forget…") act at once, say so in a note, and can be undone."""

from __future__ import annotations

import pytest
from conftest_memory import count_words

from companion.memory import ConversationMemory
from companion.memory.recall import recall
from companion.memory.requests import find_requests


@pytest.mark.parametrize("text, action, content", [
    ("Please remember this: my sister Oriane lives in Valparaiso and keeps bees.", "remember", "my sister Oriane lives in Valparaiso and keeps bees"),
    ("Oh and please remember my dentist appointment is on Friday", "remember", "my dentist appointment is on Friday"),
    ("I told you to keep in mind that I'm vegan", "remember", "I'm vegan"),
    ("Could you please note that the boiler code is 7734?", "remember", "the boiler code is 7734"),
    ("Don't forget, the bins go out on Thursday nights.", "remember", "the bins go out on Thursday nights"),
    ("Work was long. Anyway, remember that Tilda starts school in September!", "remember", "Tilda starts school in September"),
    ("can you forget what I said about my job?", "forget", "my job"),
    ("Please forget that I told you about the surprise party.", "forget", "the surprise party"),
    ("Forget my old address, it's wrong now.", "forget", "my old address"),
    ("That's no longer true.", "forget", ""),
    ("Forget that.", "forget", ""),
])
def test_requests_anywhere_in_any_tense(text, action, content):
    (req,) = find_requests(text)
    assert (req.action, req.content) == (action, content)


@pytest.mark.parametrize("text", [
    "Do you remember my sister?", "Remember when we went to Rome?", "I forgot my keys again.",
    "I'll never forget that day.", "Forget it, let's talk about something else.", "I left a note on the fridge.",
    "I can't remember where I parked.",
])
def test_what_is_not_a_request(text):
    assert find_requests(text) == []


def _turn(mem: ConversationMemory, text: str, reply: str = "Okay."):
    mem(mem.history(), text, 2048)
    notes = mem.user_message(text, count_words(text))
    mem.reply_started()
    mem.reply_finished(reply, "done", {})
    return notes


def test_remember_acts_and_notes_it_whatever_the_model_replies(store):
    mem = ConversationMemory(store, count_tokens=count_words)
    store.clock = lambda: "2026-03-02T10:00:00.000"  # a Monday
    (note,) = _turn(mem, "Oh and please remember my dentist appointment is on Friday", reply="Sure, bananas!")
    assert note.action == "remembered" and note.undo_id > 0
    assert note.text == "The user's dentist appointment is on Friday 6 March 2026."
    (fact,) = [m for m in store.memories(mem.character_id) if "dentist" in m["text"]]
    assert fact["happens_on"] == "2026-03-06" and fact["origin"] == "request"
    undone = mem.undo(note.undo_id)
    assert undone is not None and undone.action == "undone" and undone.text.startswith("remembered: ")
    assert not any("dentist" in m["text"] for m in store.memories(mem.character_id))
    assert mem.undo(note.undo_id) is None  # once
    assert any("dentist" in h["text"] for h in recall(store, mem.character_id, "dentist"))  # still said


def test_forget_a_topic_removes_its_facts_and_messages_and_undo_restores_them(store):
    mem = ConversationMemory(store, count_tokens=count_words)
    _turn(mem, "I work as a pharmacist at the Boots on King Street.", reply="A pharmacist at Boots, nice!")
    _turn(mem, "My brother Emil is a pilot.")
    mem = ConversationMemory(store, count_tokens=count_words)
    (note,) = _turn(mem, "can you forget what I said about my job?", reply="Of course, the Boots job is forgotten.")
    assert note.action == "forgot" and "pharmacist" in note.text
    cid = mem.character_id
    assert not any("pharmacist" in m["text"] or "Boots" in m["text"] for m in store.memories(cid))
    assert not any("Boots" in h["text"] or "pharmacist" in h["text"] for h in recall(store, cid, "where do I work?"))
    assert any("Emil" in m["text"] for m in store.memories(cid))  # the rest stays
    mem.undo(note.undo_id)
    assert any("pharmacist" in m["text"] for m in store.memories(cid))
    assert any("Boots" in h["text"] for h in recall(store, cid, "where do I work?"))


def test_thats_no_longer_true_forgets_the_previous_statement(store):
    mem = ConversationMemory(store, count_tokens=count_words)
    _turn(mem, "I'm training for the Berlin marathon.")
    (note,) = _turn(mem, "Actually that's no longer true, I hurt my knee.")
    assert note.action == "forgot" and "Berlin" in note.text
    assert all("Berlin" not in h["text"] for h in recall(store, mem.character_id, "What race am I training for?"))


def test_forgetting_with_nothing_to_forget_says_nothing(store):
    mem = ConversationMemory(store, count_tokens=count_words)
    assert _turn(mem, "Forget that.") == []


def test_a_forget_request_is_not_itself_remembered(store):
    mem = ConversationMemory(store, count_tokens=count_words)
    _turn(mem, "My ex is called Jordan.")
    mem = ConversationMemory(store, count_tokens=count_words)
    _turn(mem, "Can you forget about Jordan? I'd rather not talk about him.", reply="Okay, Jordan is forgotten.")
    assert all("Jordan" not in h["text"] for h in recall(store, mem.character_id, "Who is Jordan?"))
    assert any("Jordan" in m["content"] for m in store.messages(mem.conversation_id))  # the transcript keeps it
