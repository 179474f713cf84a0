"""The core's side of the page's WebGPU executor: send engine_load / engine_reset / generate to
the page that said `executor: true` in its hello, and wait for the answer with the same
request_id. companion.engines.browser.BrowserEngine drives the model through it.

`request` blocks the calling thread (the chat worker thread, never the server's event loop) and
raises `PageExecutorError` -- an `EngineUnavailable`, so the core falls back to the native
engine and keeps the turn -- when no executor page is connected, the page answers
`engine_failed`, disconnects, or does not answer in time.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

from companion.bridge.messages import (
    EngineAck,
    EngineFailed,
    EngineLoad,
    EngineReset,
    EngineStatus,
    Generate,
    Logits,
    Ping,
    Pong,
    Token,
)
from companion.errors import EngineUnavailable

ExecutorRequest = EngineLoad | EngineReset | Generate
ExecutorReply = Token | Logits | EngineAck


class PageExecutorError(EngineUnavailable):
    """The page's WebGPU executor could not serve a request; fall back to the native engine."""


class ExecutorChannel:
    """Request/answer over the bridge to the page's executor. Thread-safe."""

    def __init__(self, loop: asyncio.AbstractEventLoop, send: Callable[[Any, Any], None]) -> None:
        self._loop = loop
        self._send = send  # (connection, message) -> None, called on the loop thread
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[Any, concurrent.futures.Future[Any]]] = {}
        self._lock = threading.Lock()
        self._page: Any = None  # the connection that answers; the latest with executor=True
        self._page_ready = threading.Event()
        self.status: EngineStatus | None = None  # the page's latest engine_status

    # --- called by the server on its loop thread ----------------------------------------------

    def attach(self, connection: Any) -> None:
        """A page with `executor: true` connected; it answers from now on."""
        with self._lock:
            self._page = connection
        self._page_ready.set()

    def detach(self, connection: Any) -> None:
        """A page went away: fail what it still owed."""
        with self._lock:
            if self._page is not connection:
                owed = [f for c, f in self._pending.values() if c is connection]
            else:
                self._page = None
                self._page_ready.clear()
                owed = [f for _, f in self._pending.values()]
        for fut in owed:
            if not fut.done():
                fut.set_exception(PageExecutorError("the page executor disconnected"))

    def resolve(self, message: Token | Logits | EngineAck | EngineFailed | Pong) -> bool:
        """Deliver an answer; False when nobody waits for its id (late or unsolicited)."""
        rid = message.seq if isinstance(message, Pong) else message.request_id
        if rid is None:  # engine_failed on its own: the device is gone
            self.fail_all(
                message.reason if isinstance(message, EngineFailed) else "executor failed"
            )
            return True
        with self._lock:
            entry = self._pending.pop(rid, None)
        if entry is None:
            return False
        fut = entry[1]
        if fut.done():
            return False
        if isinstance(message, EngineFailed):
            fut.set_exception(PageExecutorError(f"the page executor failed: {message.reason}"))
        else:
            fut.set_result(message)
        return True

    def fail_all(self, reason: str) -> None:
        """Fail every pending request (the executor reported a lost device)."""
        with self._lock:
            owed = list(self._pending.values())
            self._pending.clear()
        for _, fut in owed:
            if not fut.done():
                fut.set_exception(PageExecutorError(f"the page executor failed: {reason}"))

    # --- called by the core, from any thread but the loop's -----------------------------------

    @property
    def connected(self) -> bool:
        """A page that answers executor requests is connected."""
        return self._page is not None

    def wait_for_page(self, timeout: float) -> bool:
        """Block until an executor page is connected; False on timeout."""
        return self._page_ready.wait(timeout)

    def request(self, message: ExecutorRequest, timeout: float | None = 60.0) -> ExecutorReply:
        """Send a request (its request_id is replaced) and block for the page's answer."""
        fut = self.submit(message)
        try:
            return fut.result(timeout)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise PageExecutorError(
                f"the page executor did not answer `{message.type}` within {timeout} s"
            ) from None

    def submit(self, message: ExecutorRequest | Ping) -> concurrent.futures.Future[Any]:
        """Send a request and return a future for the answer (for pipelining)."""
        if threading.current_thread() is getattr(self._loop, "_companion_thread", None):
            raise RuntimeError("ExecutorChannel.request would block the bridge event loop")
        rid = next(self._ids)
        if isinstance(message, Ping):
            message = message.model_copy(update={"seq": rid})
        else:
            message = message.model_copy(update={"request_id": rid})
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._lock:
            page = self._page
            if page is None:
                fut.set_exception(PageExecutorError("no page with a WebGPU executor is connected"))
                return fut
            self._pending[rid] = (page, fut)
        fut.add_done_callback(lambda _f: self._forget(rid))
        self._loop.call_soon_threadsafe(self._send, page, message)
        return fut

    def ping(self, timeout: float = 10.0) -> float:
        """Seconds for one core -> page -> core round trip."""
        t0 = time.perf_counter()
        self.submit(Ping(seq=0, t=t0)).result(timeout)
        return time.perf_counter() - t0

    def _forget(self, rid: int) -> None:
        with self._lock:
            self._pending.pop(rid, None)
