"""The bridge carries a conversation: user message -> streamed reply -> stop; settings,
memory and the page executor channel. A Python WebSocket client plays the page."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable
from typing import Any

import aiohttp
import numpy as np
import pytest
from conftest_web import FakeChatSession

from companion.bridge.engine_channel import PageExecutorError
from companion.bridge.messages import EngineLoad, EngineReset, EngineStatus, Generate, Logits
from companion.bridge.server import BridgeServer
from companion.chat import AvatarCue, EngineSwitch, ReplyDone, TextDelta
from companion.errors import EngineUnavailable, ModelError


class Page:
    """A scripted page on its own event loop thread, so blocking core calls can run here."""

    def __init__(self, server: BridgeServer, executor: bool = False) -> None:
        self.server = server
        self.executor = executor
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.inbox: asyncio.Queue[dict[str, Any]] | None = None
        self.auto: dict[str, Callable[[dict[str, Any]], dict[str, Any] | None]] = {
            "ping": lambda m: {"type": "pong", "seq": m["seq"], "t": m["t"]},  # as bridge.js does
        }
        self.run(self._open())

    def run(self, coro: Any, timeout: float = 20) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _open(self) -> None:
        self.inbox = asyncio.Queue()
        self.session = aiohttp.ClientSession()
        self.ws = await self.session.ws_connect(
            f"{self.server.origin}/bridge",
            headers={"Origin": self.server.origin, "Authorization": f"Bearer {self.server.secret}"},
        )
        self.reader = asyncio.create_task(self._read())
        await self.ws.send_str(
            json.dumps({"type": "hello", "protocol_version": 1, "executor": self.executor})
        )

    async def _read(self) -> None:
        async for frame in self.ws:
            msg = json.loads(frame.data)
            handler = self.auto.get(msg["type"])
            if handler is not None:
                answer = handler(msg)
                if answer is not None:
                    await self.ws.send_str(json.dumps(answer))
                continue
            await self.inbox.put(msg)

    def send(self, **msg: Any) -> None:
        self.run(self.ws.send_str(json.dumps(msg)))

    def next(self, timeout: float = 10) -> dict[str, Any]:
        return self.run(asyncio.wait_for(self.inbox.get(), timeout), timeout + 5)

    def until(
        self, *types: str, timeout: float = 10
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Messages until one of `types` arrives: (that one, the ones before)."""
        seen = []
        while True:
            msg = self.next(timeout)
            if msg["type"] in types:
                return msg, seen
            seen.append(msg)

    def close(self) -> None:
        if not self.thread.is_alive():
            return

        async def shut() -> None:
            await self.ws.close()
            await self.session.close()

        self.run(shut())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def page(bridge_server):
    p = Page(bridge_server)
    welcome = p.next()
    assert welcome["type"] == "welcome" and welcome["character"] == "Aiko"
    assert welcome["engine"] == "reference" and welcome["adapter"] == "CPU (fake)"
    assert p.next()["type"] == "engine_status"
    assert p.next()["type"] == "avatar_state"  # what the avatar shows now
    yield p
    p.close()


def test_a_reply_streams_and_ends(page, fake_chat):
    page.send(type="user_message", text="Hello there")
    end, before = page.until("reply_done", "reply_stopped", "reply_error")
    assert end["type"] == "reply_done" and end["turn"] == 1
    assert end["stats"] == {"tokens": len(fake_chat.reply.split(" ")), "tok_per_s": 100.0}
    assert before[0] == {"type": "reply_started", "turn": 1, "text": "Hello there"}
    text = "".join(m["text"] for m in before if m["type"] == "assistant_delta")
    assert text == fake_chat.reply
    avatar = [m for m in before if m["type"] == "avatar_state"]
    assert list(dict.fromkeys(a["activity"] for a in avatar)) == ["thinking", "speaking"]
    assert avatar[-1]["emotion"] == "happy"
    after, _ = page.until("avatar_state")  # after reply_done (a last avatar_visemes may come first)
    assert after["activity"] == "idle" and after["emotion"] == "happy"
    assert fake_chat.received == ["Hello there"]


def test_stop_ends_the_reply_and_keeps_the_session(page, fake_chat):
    fake_chat.pace = 0.05
    page.send(type="user_message", text="talk a lot")
    page.until("assistant_delta")
    page.send(type="user_message", text="me too")  # while streaming
    busy, _ = page.until("error")
    assert busy["code"] == "busy" and busy["ref_type"] == "user_message"
    page.send(type="stop")
    end, before = page.until("reply_done", "reply_stopped", "reply_error")
    assert end["type"] == "reply_stopped"
    assert 0 < end["stats"]["tokens"] < len(fake_chat.reply.split(" "))
    fake_chat.pace = 0.0
    page.send(type="user_message", text="again")
    assert page.until("reply_done", "reply_stopped")[0]["turn"] == 2


def test_the_next_message_is_taken_as_soon_as_the_reply_ends(page, fake_chat):
    """The page enables sending when it sees the reply's end; the session may still be saving
    that turn (ChatSession's bookkeeping after ReplyDone): the next message must not be refused
    as busy (it waits for the chat worker instead)."""
    fake_chat.after_end = 0.5
    page.send(type="user_message", text="hi")
    page.until("reply_done", "reply_stopped", "reply_error")
    page.send(type="user_message", text="and again")  # at once
    end, before = page.until("reply_done", "reply_stopped", "reply_error")
    assert not [m for m in before if m["type"] == "error"], before
    assert end["type"] == "reply_done" and end["turn"] == 2
    assert fake_chat.received == ["hi", "and again"]


def test_reset(page, fake_chat):
    page.send(type="reset")
    page.send(type="ping", seq=1)
    page.until("pong")
    assert fake_chat.resets == 1


def test_errors_from_the_session_reach_the_page(page, fake_chat):
    fake_chat.fail_with = ModelError("model file is truncated: expected 98362432 bytes, found 1200")
    page.send(type="user_message", text="hi")
    end, _ = page.until("reply_done", "reply_stopped", "reply_error")
    assert end["type"] == "reply_error" and "truncated" in end["error"]
    fake_chat.fail_with = RuntimeError("a bug")
    page.send(type="user_message", text="hi")
    end, _ = page.until("reply_done", "reply_stopped", "reply_error")
    assert end["type"] == "reply_error" and "a bug" in end["error"]


def test_engine_switch_is_announced(bridge_server, page):
    class Switching(FakeChatSession):
        def send(self, text):
            yield TextDelta("Hi")
            yield EngineSwitch("native", "llvmpipe", "browser engine failed: device lost")
            yield TextDelta(" there")
            yield ReplyDone("done", "Hi there", {"tokens": 2})

    bridge_server.set_chat(Switching())
    status, _ = page.until("engine_status")
    assert status["engine"] == "reference"
    page.send(type="user_message", text="hi")
    status, _ = page.until("engine_status")
    assert status["engine"] == "native" and "device lost" in status["error"]
    assert page.until("reply_done")[0]["turn"] == 1


def test_unknown_emotions_show_as_neutral(bridge_server, page):
    class Furious(FakeChatSession):
        def send(self, text):
            yield AvatarCue("furious")
            yield TextDelta("Grr")
            yield ReplyDone("done", "Grr")

    bridge_server.set_chat(Furious())
    page.send(type="user_message", text="hi")
    end, before = page.until("reply_done")
    assert {m["emotion"] for m in before if m["type"] == "avatar_state"} == {"neutral"}
    assert [m["text"] for m in before if m["type"] == "assistant_delta"] == ["Grr"]


def test_no_session_yet(bridge_server, page):
    bridge_server.set_chat(None)
    status, _ = page.until("engine_status")
    assert status["engine"] == "none" and status["phase"] == "loading"
    page.send(type="user_message", text="hi")
    assert page.until("error")[0]["code"] == "unavailable"
    bridge_server.publish(
        EngineStatus(engine="native", phase="loading", progress=0.5, detail="blk.12")
    )
    status, _ = page.until("engine_status")
    assert status["progress"] == 0.5 and status["detail"] == "blk.12"


def test_settings_get_and_set(bridge_server, page):
    page.send(type="settings_get")
    current, _ = page.until("settings")
    assert current["values"]["temperature"] == 0.7
    assert "temperature" in current["editable"] and "model_path" not in current["editable"]
    page.send(type="settings_set", values={"temperature": 0.2, "top_k": 10})
    changed, _ = page.until("settings")
    assert changed["values"]["temperature"] == 0.2 and changed["values"]["top_k"] == 10
    assert bridge_server.saved_settings[-1].temperature == 0.2
    page.send(type="settings_set", values={"temperature": -1})
    err, _ = page.until("error")
    assert err["code"] == "invalid" and "temperature" in err["message"]
    page.send(type="settings_set", values={"model_path": "/etc/passwd"})
    err, _ = page.until("error")
    assert err["code"] == "invalid" and "model_path" in err["message"]
    assert bridge_server.settings.temperature == 0.2


def test_memory_panel(page):
    page.send(type="memory_list", query="cat")
    mems, _ = page.until("memories")
    assert [m["text"] for m in mems["items"]] == ["The user's cat is called Miso."]
    page.send(type="memory_forget", id=1)
    mems, _ = page.until("memories")
    assert [m["id"] for m in mems["items"]] == [2]


def test_disconnect_stops_the_reply(bridge_server, fake_chat):
    fake_chat.pace = 0.2
    p = Page(bridge_server)
    p.until("engine_status")
    p.send(type="user_message", text="long one")
    p.until("assistant_delta")
    p.close()
    assert fake_chat._stop.wait(10)


def test_quitting_mid_reply_stops_it_and_leaves_no_task_behind(bridge_server, fake_chat, caplog):
    """The app quits (the server stops) while a reply streams: the chat is asked to stop and
    the reply's task ends with the server's loop, not left pending for the garbage collector
    ("Task was destroyed but it is pending!" on stderr, after the loop is gone)."""
    import gc

    fake_chat.pace = 0.2
    p = Page(bridge_server)
    p.until("engine_status")
    p.send(type="user_message", text="a long story please")
    p.until("assistant_delta")
    replies = bridge_server.conversation._replies
    assert len(replies) == 1  # the loop holds tasks weakly: the conversation keeps the reply's
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        bridge_server.stop()
        gc.collect()
    assert fake_chat._stop.wait(10)
    assert not replies
    assert not [r for r in caplog.records if "destroyed but it is pending" in r.getMessage()]
    p.close()


# --- the executor channel (what the browser engine will use) ------------------------------------


@pytest.fixture
def executor_page(bridge_server):
    p = Page(bridge_server, executor=True)
    p.until("engine_status")
    assert bridge_server.executor.wait_for_page(10)
    yield p
    p.close()


def test_executor_answers_generate_load_and_reset(bridge_server, executor_page):
    logits = np.linspace(-1, 1, 49152, dtype=np.float32)  # (V,) f32

    def generate(msg):
        if msg["want"] == "logits":
            return json.loads(
                Logits.from_array(msg["request_id"], logits, n_past=5).model_dump_json()
            )
        return {
            "type": "token",
            "request_id": msg["request_id"],
            "id": msg["ids"][-1] + msg["step"],
        }

    executor_page.auto["generate"] = generate
    executor_page.auto["engine_load"] = lambda m: {
        "type": "engine_ack",
        "request_id": m["request_id"],
        "adapter": "SwiftShader",
    }
    executor_page.auto["engine_reset"] = lambda m: {
        "type": "engine_ack",
        "request_id": m["request_id"],
        "n_past": m["n_keep"],
    }
    ch = bridge_server.executor
    assert ch.request(EngineLoad(request_id=0, n_ctx=512)).adapter == "SwiftShader"
    assert ch.request(EngineReset(request_id=0, n_keep=3)).n_past == 3
    assert ch.request(Generate(request_id=0, ids=[10, 11], step=2)).id == 13
    reply = ch.request(Generate(request_id=0, ids=[1], want="logits"))
    np.testing.assert_array_equal(reply.array(), logits)
    # pipelined requests are matched by id
    futures = [ch.submit(Generate(request_id=0, ids=[i])) for i in range(50)]
    assert [f.result(10).id for f in futures] == list(range(50))
    assert ch.ping() < 5


def test_executor_failure_lets_the_core_fall_back(bridge_server, executor_page):
    executor_page.auto["generate"] = lambda m: {
        "type": "engine_failed",
        "request_id": m["request_id"],
        "reason": "kernel matvec_q4_1 failed",
    }
    with pytest.raises(PageExecutorError, match="matvec_q4_1") as exc:
        bridge_server.executor.request(Generate(request_id=0, ids=[1]))
    assert isinstance(exc.value, EngineUnavailable)  # what the chat core falls back on


def test_executor_timeout_and_disconnect(bridge_server, executor_page):
    executor_page.auto["generate"] = lambda m: None  # never answers
    with pytest.raises(PageExecutorError, match="did not answer"):
        bridge_server.executor.request(Generate(request_id=0, ids=[1]), timeout=0.2)
    pending = bridge_server.executor.submit(Generate(request_id=0, ids=[1]))
    executor_page.close()
    with pytest.raises(PageExecutorError, match="disconnected"):
        pending.result(10)
    with pytest.raises(PageExecutorError, match="no page"):
        bridge_server.executor.request(Generate(request_id=0, ids=[1]))
