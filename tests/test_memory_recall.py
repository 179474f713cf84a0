"""Episodic memory: every message searchable, ranked with the facts; what forget, wipe and
export do with it; the migration that back-fills it; the prompt it reaches."""

from __future__ import annotations

import sqlite3

from conftest_memory import count_words

from companion.memory import ConversationMemory, Store, build_prompt
from companion.memory.context import memory_line
from companion.memory.entities import Mention, named_in_query
from companion.memory.manage import export_store, search_memories
from companion.memory.recall import episode_index, recall


def _turn(mem: ConversationMemory, text: str, reply: str = "Okay.") -> None:
    """What ChatSession does for one turn, with a canned reply (the model never runs)."""
    mem(mem.history(), text, 2048)
    mem.user_message(text, count_words(text))
    mem.reply_started()
    mem.reply_finished(reply, "done", {"engine": "test", "generated_tokens": 2})


def test_a_sentence_no_rule_knows_is_found_by_meaning_and_by_words(store):
    mem = ConversationMemory(store, count_tokens=count_words)
    _turn(mem, "Honestly the thing I miss most is the smell of my grandmother's bakery in Gdynia.")
    _turn(mem, "What's the weather like?", "It is sunny.")
    for query in ("Where was my grandma's bakery?", "Gdynia"):
        hits = search_memories(store, query, limit=3)
        assert "Gdynia" in hits[0]["text"], query
    assert {h["source"] for h in search_memories(store, "bakery", limit=5)} <= {"fact", "message"}


def test_the_users_words_rank_above_a_reply_that_invented_something(store):
    mem = ConversationMemory(store, count_tokens=count_words)
    _turn(mem, "My sister Oriane lives in Valparaiso and keeps bees.",
          reply="How lovely that your sister Oriane lives in Santiago and keeps bees!")
    hits = recall(store, mem.character_id, "Where does my sister live?", limit=3)
    assert "Valparaiso" in hits[0]["text"] and hits[0]["source"] == "fact"
    replies = [h for h in hits if h.get("role") == "assistant"]
    assert all(h["score"] < hits[0]["score"] / 2 for h in replies)
    assert not any("Santiago" in m["text"] for m in store.memories(mem.character_id))  # a reply is never a fact


def test_results_say_where_they_came_from(store):
    mem = ConversationMemory(store, count_tokens=count_words)
    store.clock = lambda: "2026-03-02T12:00:00.000+00:00"
    _turn(mem, "I've been learning the bagpipes for a year, don't laugh.")
    _turn(mem, "Have you ever heard bagpipes at a wedding?", "Yes, they are loud!")
    hits = search_memories(store, "bagpipes", limit=5)
    lines = [memory_line(h) for h in hits]
    assert lines[0] == "The user has been learning the bagpipes for a year, don't laugh."  # a fact, as stored
    assert 'On Monday 2 March 2026 the user said: "Have you ever heard bagpipes at a wedding?"' in lines
    assert 'On Monday 2 March 2026 you said: "Yes, they are loud!"' not in lines[:1]


def test_a_changed_value_ranks_above_the_old_one_and_keeps_history(store):
    mem = ConversationMemory(store, count_tokens=count_words)
    _turn(mem, "My sister Oriane lives in Valparaiso.")
    mem = ConversationMemory(store, count_tokens=count_words)
    _turn(mem, "My sister moved to Lima last month.")
    hits = recall(store, mem.character_id, "Where does my sister live now?", limit=3)
    assert "Lima" in hits[0]["text"] and "Valparaiso" not in hits[0]["text"]
    (entity,) = store.entities(mem.character_id)
    assert (entity["relation"], entity["name"]) == ("sister", "Oriane")
    (fact,) = [m for m in store.memories(mem.character_id) if m["entity_id"] == entity["id"]]
    assert "Lima" in fact["text"] and "Valparaiso" in store.memory_history(fact["id"])[0]["text"]
    old = [h for h in recall(store, mem.character_id, "Valparaiso", limit=5) if h["source"] == "message"]
    assert old and old[0]["superseded"]  # still findable, marked as changed since


def test_prompt_for_a_question_contains_the_recalled_fact(store):
    mem = ConversationMemory(store, count_tokens=count_words)
    _turn(mem, "My sister Oriane lives in Valparaiso and keeps bees.")
    conv = store.new_conversation(mem.character_id)
    prompt = build_prompt(store, conv, count_tokens=count_words, budget_tokens=1024,
                          user_text="where does my sister live?")
    system = prompt.messages[0]["content"]
    assert "The user's sister Oriane lives in Valparaiso and keeps bees." in system
    assert system.index("What you remember about the user:") < system.index("Valparaiso")
    assert prompt.messages[-1] == {"role": "user", "content": "where does my sister live?"}


def test_messages_already_in_the_prompt_are_not_recalled_twice(store):
    mem = ConversationMemory(store, count_tokens=count_words)
    _turn(mem, "The spare key is under the third flowerpot.")
    prompt = mem(mem.history(), "Where is the spare key?", 2048)
    assert prompt[0]["content"].count("flowerpot") <= 1  # the fact, not also the message in the turns


def test_wipe_and_forget_remove_the_messages_vectors_and_export_keeps_them(store, tmp_path):
    mem = ConversationMemory(store, count_tokens=count_words)
    _turn(mem, "My locker code at the climbing gym is 5521.")
    _turn(mem, "I cycle to work along the canal.")
    cid = mem.character_id
    passages = store.episodes(cid)
    assert passages and all(p["has_embedding"] for p in passages)
    out = export_store(store, tmp_path / "all.db")
    raw = sqlite3.connect(out)
    n, blobs = raw.execute("SELECT count(*), sum(length(embedding)) FROM episodes").fetchone()
    raw.close()
    assert n == len(passages) and blobs == n * 384 * 4

    (locker,) = [m for m in store.memories(cid) if "5521" in m["text"]]
    store.delete_memory(locker["id"])  # `companion memory forget <id>`
    assert not any("5521" in p["text"] for p in store.episodes(cid))
    assert all("5521" not in h["text"] for h in recall(store, cid, "locker code"))
    assert any("5521" in m["content"] for m in store.messages(mem.conversation_id))  # the transcript stays

    assert store.wipe_memories(cid) >= 1
    assert store.episodes(cid) == [] and store.entities(cid) == []
    assert recall(store, cid, "canal") == [] and episode_index(store, cid).n == 0


def test_old_databases_are_back_filled_and_embedded_lazily(companion_home, embedder):
    with Store(embedder=None) as plain:  # written without the encoder: passages have no vectors
        conv = plain.new_conversation(plain.ensure_character())
        plain.add_message(conv, "user", "The plumber said the boiler is fourteen years old.")
        assert [p["has_embedding"] for p in plain.episodes()] == [0]
    with Store(embedder=embedder) as store:
        cid = store.ensure_character()
        hits = recall(store, cid, "how old is the heating system?", limit=1)
        assert hits and "boiler" in hits[0]["text"] and hits[0]["cosine"] is not None
        assert [p["has_embedding"] for p in store.episodes(cid)] == [1]


def test_the_episode_index_grows_without_rebuilding(store):
    mem = ConversationMemory(store, count_tokens=count_words)
    _turn(mem, "I play the oboe in a community orchestra.")
    first = episode_index(store, mem.character_id)
    buffer = first._mat
    _turn(mem, "My favourite composer is Dvořák.")
    again = episode_index(store, mem.character_id)
    assert again is first and again._mat is buffer and again.n == 4  # two turns, user + reply each
    store.forget(message_ids=[mem.history()[0]["id"]])
    assert episode_index(store, mem.character_id) is not first  # a removal rebuilds


def test_a_question_names_someone_by_a_broader_relation_or_the_species():
    known = [Mention("pet", "beagle", "Mango", -1), Mention("person", "son", "Teo", -1),
             Mention("person", "husband", "Dev", -1), Mention("person", "twin sister", "Leah", -1)]
    asked = {q: named_in_query(q, known) for q in [
        "what does my puppy keep chewing?", "which days is the beagle at daycare?", "where are we taking the kid?",
        "what does my partner do?", "where does my sister live?", "how is my daughter?"]}
    assert asked == {
        "what does my puppy keep chewing?": [("my puppy", "Mango")], "which days is the beagle at daycare?": [("the beagle", "Mango")],
        "where are we taking the kid?": [("the kid", "Teo")], "what does my partner do?": [("my partner", "Dev")],
        "where does my sister live?": [("my sister", "Leah")], "how is my daughter?": []}


def test_a_question_of_a_known_form_also_searches_the_words_its_answer_is_made_of(store, monkeypatch):
    from companion.memory.lexicon import intent_words

    assert {"train", "bus", "cycle"} <= set(intent_words("how does my wife get into town?"))
    assert {"years", "since"} <= set(intent_words("How long has Ana lived there?"))
    assert intent_words("I get to work at nine.") == [] and intent_words("What's my dog called?") == []
    mem = ConversationMemory(store, count_tokens=count_words)
    for said in ("I ride the ferry over every morning, 25 minutes", "I work from home on Tuesdays.",
                 "My boss Imke works from Berlin.", "We walk the dog before work."):
        _turn(mem, said)
    # MiniLM puts "how do I get in to work" nearer every sentence saying "work" than the ferry
    # (0.18, under MIN_COSINE): without the answer's words it is not found at all; with them it
    # still ranks under the two "works from" facts (and the dog walk, which says "walk" and "work")
    hits = recall(store, mem.character_id, "how do I get in to work?", limit=4)
    assert any("ferry" in h["text"] for h in hits), [h["text"] for h in hits]
    monkeypatch.setattr("companion.memory.recall.INTENT_WEIGHT", 0.0)
    hits = recall(store, mem.character_id, "how do I get in to work?", limit=8)
    assert not any("ferry" in h["text"] for h in hits), [h["text"] for h in hits]
