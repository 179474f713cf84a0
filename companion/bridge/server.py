"""The loopback server the page talks to: `BridgeServer`, the app's one entry to the bridge.

It owns the socket (127.0.0.1 on a free port, never another interface), the event loop and
the thread it runs on, so the desktop shell can own the main thread, and what the app plugs
in (chat session, plan, model file, settings, memory, ...), which the app may set while it
runs. It composes the two sides the page sees: companion.bridge.http (secret, checks,
headers, static files, plan and model bytes) and companion.bridge.conversation (the bridge
WebSocket and the replies streamed over it).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import threading
from collections.abc import Callable
from importlib.resources.abc import Traversable
from typing import Any

from aiohttp import web

from companion._delegate import delegate
from companion.bridge.conversation import (
    ChatSessionLike,
    Conversation,
    HistoryHook,
    MemoryHook,
    ModelsHook,
)
from companion.bridge.engine_channel import ExecutorChannel
from companion.bridge.http import BlobHook, HttpLayer, ModelPath, PlanHook
from companion.errors import BridgeError
from companion.resources import shaders_dir, ui_dir
from companion.settings import Settings


class BridgeServer:
    """The page's server and the core's end of the bridge. `start()`, then open `launch_url()`."""

    def __init__(
        self,
        chat: ChatSessionLike | None = None,
        *,
        plan: PlanHook | None = None,  # builds /plan.json for the page executor
        blobs: BlobHook | None = None,  # the plan's builder blobs, /plan/blob/<name>
        model_path: ModelPath = None,  # GGUF served by range
        settings: Settings | None = None,  # shown and edited in the settings drawer
        on_settings: Callable[[Settings], None] | None = None,  # called after a valid change
        memory: MemoryHook | None = None,  # the memory panel's data
        character: str = "Companion",  # display name in the page header
        history: HistoryHook | None = None,  # the open conversation, for welcome
        models: ModelsHook | None = None,  # the model picker
        ui_root: Traversable | None = None,  # default: package companion.ui
        shaders_root: Traversable | None = None,  # default: package companion.shaders
    ) -> None:
        self.chat = chat
        self.plan = plan
        self.blobs = blobs
        self.model_path = model_path
        self.settings = settings
        self.on_settings = on_settings
        self.memory = memory
        self.character = character
        self.history = history
        self.models = models
        self.ui_root = ui_root or ui_dir()
        self.shaders_root = shaders_root or shaders_dir()
        self.http = HttpLayer(self)
        self.conversation = Conversation(self)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    # --- the HTTP side ------------------------------------------------------------------------

    port: int = delegate("http", "port")
    origin: str = delegate("http", "origin")
    secret: str = delegate("http", "secret", "The per-launch secret (`Authorization: Bearer <secret>` for Python clients).")
    cookie_name: str = delegate("http", "cookie_name")

    def launch_url(self, path: str = "/") -> str:
        """A URL that logs one browser in once (the code is single-use) and lands on `path`."""
        return self.http.launch_url(path)

    # --- the conversation ---------------------------------------------------------------------

    executor: ExecutorChannel = delegate(
        "conversation", "executor", "The core's request channel to the page's WebGPU executor (after start())."
    )
    page_connected: threading.Event = delegate("conversation", "page_connected", "Set when a page completes its hello.")

    def publish(self, message: Any) -> None:
        """Send a core message to every connected page (thread-safe)."""
        self.conversation.publish(message)

    def set_chat(self, chat: ChatSessionLike | None) -> None:
        """Swap the chat session (after loading or an engine fallback) and tell the pages."""
        self.chat = chat
        self.conversation.session_changed()

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> str:
        """Bind 127.0.0.1 on a free port, serve on a background thread; return launch_url()."""
        if self._thread is not None:
            raise BridgeError("the bridge server is already running")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        self.http.port = sock.getsockname()[1]
        loop = asyncio.new_event_loop()
        self._loop = loop
        self.conversation.open(loop)
        ready = concurrent.futures.Future[None]()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop._companion_thread = threading.current_thread()  # type: ignore[attr-defined]
            try:
                loop.run_until_complete(self._serve(sock))
            except BaseException as exc:  # noqa: BLE001 - reported to start()
                ready.set_exception(exc)
                return
            ready.set_result(None)
            loop.run_forever()
            loop.run_until_complete(self._shutdown())
            loop.close()

        self._thread = threading.Thread(target=run, name="companion-bridge", daemon=True)
        self._thread.start()
        ready.result(30)
        return self.launch_url()

    def stop(self) -> None:
        """Close every page connection and stop serving."""
        if self._loop is None or self._thread is None:
            return
        self.conversation.stop_reply()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        self.conversation.shutdown()
        self._thread = None

    def __enter__(self) -> BridgeServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _serve(self, sock: socket.socket) -> None:
        app = self.http.make_app(self.conversation.handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()

    async def _shutdown(self) -> None:
        await self.conversation.close_pages()
        if self._runner is not None:
            await self._runner.cleanup()
