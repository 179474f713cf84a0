"""Fixtures for the bridge, the page and the desktop shell. tests/conftest.py imports them:
`from tests.conftest_web import *` (or `pytest_plugins = ["tests.conftest_web"]`)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from companion.bridge.messages import PROTOCOL_VERSION, MemoryItem
from companion.bridge.server import BridgeServer
from companion.chat import AvatarCue, Event, ReplyDone, TextDelta
from companion.chromium import chromium_path, launch_context
from companion.settings import Settings

CHROMIUM = chromium_path()
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


# --- a chat session that needs no model ------------------------------------------------------


@dataclass
class FakeChatSession:
    """Streams `reply` word by word, one word per `pace` seconds, honouring stop()."""

    reply: str = (
        "Hello! I am a fake companion streaming a reply word by word, so the page can be "
        "tested without a model. " * 3
    ).strip()
    pace: float = 0.01  # seconds between words; the wait ends early on stop()
    engine_name: str = "reference"
    adapter: str = "CPU (fake)"
    received: list[str] = field(default_factory=list)
    resets: int = 0
    fail_with: Exception | None = None  # raise this from send() instead of answering
    after_end: float = 0.0  # seconds send() goes on after its ReplyDone (ChatSession saves the turn)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self.started = threading.Event()  # set when the first word went out

    def send(self, text: str) -> Iterator[Event]:
        self.received.append(text)
        self._stop.clear()
        if self.fail_with is not None:
            raise self.fail_with
        yield AvatarCue("happy")
        words = self.reply.split(" ")
        for i, word in enumerate(words):
            if self._stop.is_set():
                yield ReplyDone("stopped", " ".join(words[:i]), {"tokens": i})
                time.sleep(self.after_end)
                return
            yield TextDelta(word if i == 0 else " " + word)
            self.started.set()
            self._stop.wait(self.pace)
        yield ReplyDone("done", self.reply, {"tokens": len(words), "tok_per_s": 100.0})
        time.sleep(self.after_end)

    def stop(self) -> None:
        self._stop.set()

    def reset(self) -> None:
        self.resets += 1


class FakeMemory:
    def __init__(self) -> None:
        self.items = [
            MemoryItem(id=1, text="The user's cat is called Miso.", created="2025-11-20T10:00:00Z"),
            MemoryItem(id=2, text="The user is learning Japanese.", created="2025-11-21T18:30:00Z"),
        ]

    def list(self, query: str) -> list[MemoryItem]:
        return [m for m in self.items if query.lower() in m.text.lower()]

    def forget(self, memory_id: int) -> None:
        self.items = [m for m in self.items if m.id != memory_id]

    def edit(self, memory_id: int, text: str | None, pinned: bool | None) -> None:
        changes = {k: v for k, v in (("text", text), ("pinned", pinned)) if v is not None}
        self.items = [m.model_copy(update=changes) if m.id == memory_id else m for m in self.items]


@pytest.fixture
def fake_chat() -> FakeChatSession:
    return FakeChatSession()


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.gguf"
    path.write_bytes(bytes(range(256)) * 64)  # 16 KiB of known bytes
    return path


@pytest.fixture
def bridge_server(fake_chat: FakeChatSession, model_file: Path) -> Iterator[BridgeServer]:
    """A running server with a fake chat session, settings, memory, plan and model file."""
    saved: list[Settings] = []
    server = BridgeServer(
        fake_chat,
        plan=lambda features, adapter_info: {"version": 1, "programs": {}},
        model_path=model_file,
        settings=Settings(),
        on_settings=saved.append,
        memory=FakeMemory(),
        character="Aiko",
    )
    server.saved_settings = saved  # type: ignore[attr-defined]
    with server:
        yield server


# --- headless Chromium -------------------------------------------------------------------------


def _have_chromium() -> bool:
    return os.access(CHROMIUM, os.X_OK)


@pytest.fixture(scope="session")
def playwright() -> Iterator[Any]:
    """One playwright driver for the session (its sync API cannot nest)."""
    if not _have_chromium():
        pytest.skip("chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        yield pw


@contextlib.contextmanager
def _context(pw: Any, **kw: Any) -> Iterator[Any]:
    """A headless Chromium context in a throwaway profile."""
    with tempfile.TemporaryDirectory(prefix="companion-chromium-") as profile:
        context = launch_context(pw, profile, viewport={"width": 1180, "height": 760}, **kw)
        try:
            yield context
        finally:
            context.close()


@pytest.fixture(scope="session")
def chromium(playwright: Any) -> Iterator[Any]:
    """A headless Chromium (Debian's, never a downloaded one). Its pages bypass the page's
    CSP so playwright can evaluate its helper scripts; `chromium_strict` enforces it."""
    with _context(playwright, bypass_csp=True) as context:
        yield context


@pytest.fixture
def chromium_strict(playwright: Any) -> Iterator[Any]:
    """A headless Chromium that enforces the page's Content-Security-Policy."""
    with _context(playwright) as context:
        yield context


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    p = chromium.new_page()
    try:
        yield p
    finally:
        p.close()


# --- a virtual display ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def xvfb() -> Iterator[str]:
    """A private X display for desktop tests; yields its DISPLAY name."""
    from companion.shell.xvfb import Xvfb

    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb)")
    with Xvfb(width=1280, height=800) as display:
        yield display


def artifact(name: str) -> Path:
    """A path under test-artifacts/ (created) for screenshots a person may want to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / name


def run_quiet(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)


async def converse(server: BridgeServer, actions: list[dict[str, Any]], until: str = "reply_done") -> list[dict]:
    """Connect as a page, send `actions` one by one (each after the previous one's answer came
    in, as a person would), collect every message until `until` and the avatar's idle state."""
    import aiohttp

    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(
            f"{server.origin}/bridge",
            headers={"Origin": server.origin, "Authorization": f"Bearer {server.secret}"},
        )
        await ws.send_str(json.dumps({"type": "hello", "protocol_version": PROTOCOL_VERSION}))
        seen: list[dict] = []
        pending = list(actions)
        done = False
        while True:
            msg = json.loads((await ws.receive(timeout=15)).data)
            seen.append(msg)
            if msg["type"] in ("welcome", "avatar_state") and pending:
                await ws.send_str(json.dumps(pending.pop(0)))
            done = done or msg["type"] == until
            if done and msg["type"] == "avatar_state" and msg["activity"] == "idle":
                await ws.close()
                return seen
