"""The page's memory panel and conversation history over the real bridge and the real store."""

from __future__ import annotations

import pytest
from test_server_chat import Page

from companion.bridge.memory_hook import StoreMemoryHook
from companion.bridge.server import BridgeServer
from companion.memory import Store


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "companion.db", embedder=None)


@pytest.fixture
def served(store, fake_chat):
    cid = store.ensure_character()
    conv = store.new_conversation(cid)
    store.add_message(conv, "assistant", "Hi, I'm Mira.")
    store.add_message(conv, "user", "My cat is called Miso.")
    rid = store.start_reply(conv)
    store.checkpoint_reply(rid, "What a lovely")
    # the app was killed here: its process is gone, so reopening the store marks the reply
    store.db.execute("UPDATE messages SET writer_pid = NULL WHERE id = ?", [rid])
    store.db.conn.commit()
    store.add_memory(cid, "The user's cat is called Miso.")
    server = BridgeServer(
        fake_chat,
        memory=StoreMemoryHook(store, cid),
        history=lambda: Store(store.path, embedder=None).messages(conv),
        character="Mira",
    )
    server.start()
    page = Page(server)
    yield server, page, store, cid
    page.close()
    server.stop()


def test_welcome_carries_the_conversation_with_the_interrupted_reply(served):
    _, page, _, _ = served
    welcome = page.next()
    assert welcome["type"] == "welcome" and welcome["character"] == "Mira"
    lines = welcome["history"]
    assert [line["role"] for line in lines] == ["assistant", "user", "assistant"]
    assert lines[-1]["text"] == "What a lovely" and lines[-1]["status"] == "interrupted"


def test_edit_pin_and_forget_a_memory(served):
    _, page, store, cid = served
    page.until("engine_status")
    page.send(type="memory_list", query="")
    mems, _ = page.until("memories")
    (item,) = mems["items"]
    assert "Miso" in item["text"] and item["pinned"] is False
    page.send(type="memory_edit", id=item["id"], text="The user's cat is called Mochi.")
    mems, _ = page.until("memories")
    assert mems["items"][0]["text"] == "The user's cat is called Mochi."
    assert store.memory(item["id"])["text"] == "The user's cat is called Mochi."
    page.send(type="memory_edit", id=item["id"], pinned=True)
    mems, _ = page.until("memories")
    assert mems["items"][0]["pinned"] is True
    page.send(type="memory_edit", id=9999, text="nope")
    err, _ = page.until("error")
    assert err["code"] == "invalid" and "9999" in err["message"]
    page.send(type="memory_edit", id=item["id"], text="")
    err, _ = page.until("error")
    assert err["code"] == "invalid"
    page.send(type="memory_forget", id=item["id"])
    mems, _ = page.until("memories")
    assert mems["items"] == [] and store.memories(cid) == []
