"""Explicit memory requests over the real bridge: the page gets a memory_note with the user's
turn, its Undo (memory_undo) reverts the change, and the panel's list follows."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from conftest_memory import count_words
from test_server_chat import Page

from companion.bridge.memory_hook import StoreMemoryHook
from companion.bridge.server import BridgeServer
from companion.chat import Event, ReplyDone, TextDelta
from companion.memory import ConversationMemory
from companion.memory.notes import MemoryNote


class MemoryChat:
    """A chat session without a model: ConversationMemory records the turn, the reply is fixed
    (and says nothing about memory: the note must not depend on it)."""

    engine_name = "reference"
    adapter = "CPU (no model)"

    def __init__(self, mem: ConversationMemory) -> None:
        self.mem = mem

    def send(self, text: str) -> Iterator[Event]:
        self.mem(self.mem.history(), text, 2048)
        yield from self.mem.user_message(text, count_words(text))
        self.mem.reply_started()
        yield TextDelta("Bananas!")
        self.mem.reply_finished("Bananas!", "done", {})
        yield ReplyDone("done", "Bananas!")

    def stop(self) -> None: ...

    def reset(self) -> None: ...

    def undo_memory(self, undo_id: int) -> MemoryNote | None:
        return self.mem.undo(undo_id)


@pytest.fixture
def served(store):
    mem = ConversationMemory(store, count_tokens=count_words)
    server = BridgeServer(MemoryChat(mem), memory=StoreMemoryHook(store, mem.character_id), character="Mira")
    server.start()
    page = Page(server)
    page.until("engine_status")
    yield page, store, mem
    page.close()
    server.stop()


def test_remembered_marker_arrives_with_the_turn_and_undo_reverts_it(served):
    page, store, mem = served
    page.send(type="user_message", text="Please remember that my bike lock code is 3141.")
    note, before = page.until("memory_note")
    assert any(m["type"] == "reply_started" for m in before)
    assert note["action"] == "remembered" and "3141" in note["text"] and note["undo_id"] > 0
    started = next(m for m in before if m["type"] == "reply_started")
    assert note["turn"] == started["turn"]
    page.until("reply_done")
    assert any("3141" in m["text"] for m in store.memories(mem.character_id))

    page.send(type="memory_undo", undo_id=note["undo_id"])
    undone, _ = page.until("memory_note")
    assert undone["action"] == "undone" and undone["turn"] == 0 and "3141" in undone["text"]
    listed, _ = page.until("memories")
    assert not any("3141" in i["text"] for i in listed["items"])
    assert not any("3141" in m["text"] for m in store.memories(mem.character_id))

    page.send(type="memory_undo", undo_id=note["undo_id"])  # twice: nothing left to undo
    error, _ = page.until("error")
    assert error["code"] == "invalid" and error["ref_type"] == "memory_undo"


def _say(page: Page, text: str) -> dict:
    """Send a user message (again while the core still reports the last reply as busy: it
    clears that just after sending reply_done); returns its first memory_note or reply_done."""
    for _ in range(50):
        page.send(type="user_message", text=text)
        msg, _ = page.until("memory_note", "reply_done", "error")
        if msg["type"] != "error" or msg["code"] != "busy":
            return msg
    raise AssertionError("the core stayed busy")


def test_forgot_marker(served):
    page, store, mem = served
    assert _say(page, "My gym locker is number 88.")["type"] == "reply_done"
    note = _say(page, "Actually, forget that.")
    assert note["action"] == "forgot" and "88" in note["text"]
    assert not any("88" in m["text"] for m in store.memories(mem.character_id))


@pytest.mark.browser
def test_the_page_shows_the_marker_before_the_reply_and_its_undo_works(page, served_page):
    from test_page import open_page

    server, store, mem = served_page
    errors = open_page(page, server)
    page.click("#input")
    page.keyboard.type("Please remember that my bike lock code is 3141.")
    page.keyboard.press("Enter")
    page.wait_for_selector(".msg-bot.is-done", timeout=15000)
    marker = page.locator(".memory-note.is-remembered")
    assert marker.inner_text().startswith("remembered: ") and "3141" in marker.inner_text()
    # in the conversation: after the user's message, before the reply of its turn
    order = page.eval_on_selector_all("#messages > *", "nodes => nodes.map(n => n.className)")
    assert [c.split()[0] for c in order if c.startswith(("msg ", "memory-note"))][-3:] == ["msg", "memory-note", "msg"]
    marker.get_by_role("button", name="Undo").click()
    page.wait_for_selector(".memory-note.is-undone")
    assert page.locator(".memory-note.is-reverted").count() == 1
    assert not any("3141" in m["text"] for m in store.memories(mem.character_id))
    assert errors == []


@pytest.fixture
def served_page(store):
    mem = ConversationMemory(store, count_tokens=count_words)
    server = BridgeServer(MemoryChat(mem), memory=StoreMemoryHook(store, mem.character_id), character="Mira")
    server.start()
    yield server, store, mem
    server.stop()
