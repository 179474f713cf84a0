"""The loopback server the page talks to: static files of ui/ and shaders/, the plan, byte
ranges of the GGUF, and the bridge WebSocket. It runs on its own thread with its own event
loop, so the desktop shell can own the main thread.

Security (the port is reachable by every local process and by any web page the user visits):
- binds 127.0.0.1 on a free port; never another interface;
- a per-launch secret: the shell opens `launch_url()`, a one-time code the server swaps for an
  HttpOnly SameSite=Strict cookie named after the port; every other request and the WebSocket
  handshake need that cookie (or `Authorization: Bearer <secret>` for Python clients);
- Host must be 127.0.0.1:<port> or localhost:<port> (DNS rebinding), a present Origin must be
  the same origin, and a cross-site Sec-Fetch-Site is refused;
- static paths are resolved inside their folder only; GET/HEAD only;
- every response carries no-store, a strict CSP and nosniff.

The chat core plugs in through `ChatSessionLike` below (companion.chat.ChatSession implements
it). Events from `send()` are recognised by their fields, so the core need not import this
module:
    reply end   -- has `status` ("done" | "stopped" | "error"), `stats` (dict), `error` (str|None)
    engine swap -- has `engine`, `adapter`, `reason` (the old engine failed mid-reply)
    avatar cue  -- has `emotion` (str)
    text delta  -- has `text` (str)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import hmac
import inspect
import logging
import mimetypes
import os
import secrets
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Protocol, get_args, runtime_checkable

from aiohttp import WSMsgType, web

import companion
from companion.bridge.engine_channel import ExecutorChannel
from companion.bridge.messages import (
    MAX_MESSAGE_BYTES,
    PROTOCOL_VERSION,
    AssistantDelta,
    AvatarState,
    EngineAck,
    EngineFailed,
    EngineStatus,
    Error,
    Hello,
    HistoryLine,
    Logits,
    Memories,
    MemoryEdit,
    MemoryForget,
    MemoryItem,
    MemoryList,
    MessageRejected,
    Ping,
    Pong,
    ReplyDone,
    ReplyError,
    ReplyStarted,
    ReplyStopped,
    Reset,
    SettingsGet,
    SettingsSet,
    SettingsValues,
    Stop,
    Token,
    UserMessage,
    Welcome,
    decode,
    encode,
)
from companion.bridge.messages import Emotion as _Emotion
from companion.errors import BridgeError, CompanionError
from companion.resources import shaders_dir, ui_dir
from companion.settings import Settings

log = logging.getLogger(__name__)

WS_HARD_LIMIT = 4 * MAX_MESSAGE_BYTES  # frames above this close the socket (1009); below: `error`
MAX_BLOB_BYTES = 256 * 1024 * 1024  # one /model/blob answer (a storage binding is <= 128 MiB)
_CHUNK = 4 * 1024 * 1024
EDITABLE_SETTINGS = (
    "temperature", "top_k", "top_p", "min_p", "repeat_penalty", "repeat_last_n",
    "max_new_tokens", "seed", "memory_enabled", "engine",
)  # fmt: skip
EXECUTOR_MODULE = "engine/index.js"  # the page's WebGPU executor, when ui/ ships one
_EMOTIONS = frozenset(get_args(_Emotion))


# --- what the app plugs in --------------------------------------------------------------------


class ChatSessionLike(Protocol):
    """What the server needs from the chat core (companion.chat.ChatSession)."""

    @property
    def engine_name(self) -> str:
        """The engine running the model: "browser" | "native" | "reference"."""
        ...

    @property
    def adapter(self) -> str:
        """Where the engine runs, shown in the page header."""
        ...

    def send(self, text: str) -> Iterator[object]:
        """Answer the user's text, yielding events (TextDelta, AvatarCue, ReplyDone). Runs on
        the server's chat worker thread; may block on the engine."""
        ...

    def stop(self) -> None:
        """Stop the current reply soon (called from another thread); send() then yields a
        ReplyDone(status="stopped") and returns. The conversation is kept."""
        ...

    def reset(self) -> None:
        """Start a new conversation (never called while a reply streams)."""
        ...


@runtime_checkable
class _ReplyEnd(Protocol):
    status: str
    stats: dict[str, Any]
    error: str | None


@runtime_checkable
class _EngineSwitch(Protocol):
    engine: str
    adapter: str
    reason: str


@runtime_checkable
class _AvatarCue(Protocol):
    emotion: str


@runtime_checkable
class _TextDelta(Protocol):
    text: str


class MemoryHook(Protocol):
    """The memory panel's data source (companion.memory)."""

    def list(self, query: str) -> list[MemoryItem]: ...

    def forget(self, memory_id: int) -> None: ...

    def edit(self, memory_id: int, text: str | None, pinned: bool | None) -> None: ...


PlanHook = Callable[..., dict[str, Any]]  # () -> plan; may take features=[...], adapter_info={...}
BlobHook = Callable[[str], Any]  # blob name -> bytes-like (the plan's builder blobs), or None


# --- the server -------------------------------------------------------------------------------


@dataclass(eq=False)
class _Connection:
    ws: web.WebSocketResponse
    queue: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    hello: Hello | None = None


class BridgeServer:
    """The page's server and the core's end of the bridge. `start()`, then open `launch_url()`."""

    def __init__(
        self,
        chat: ChatSessionLike | None = None,
        *,
        plan: PlanHook | None = None,  # builds /plan.json for the page executor
        blobs: BlobHook | None = None,  # the plan's builder blobs, /plan/blob/<name>
        model_path: Path | Callable[[], Path | None] | None = None,  # GGUF served by range
        settings: Settings | None = None,  # shown and edited in the settings drawer
        on_settings: Callable[[Settings], None] | None = None,  # called after a valid change
        memory: MemoryHook | None = None,  # the memory panel's data
        character: str = "Companion",  # display name in the page header
        history: Callable[[], list[Any]] | None = None,  # the open conversation, for welcome
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
        self.ui_root = ui_root or ui_dir()
        self.shaders_root = shaders_root or shaders_dir()
        self.secret = secrets.token_urlsafe(32)
        self.port = 0
        self.executor: ExecutorChannel  # set by start()
        self._launch_codes: set[str] = set()
        self._connections: set[_Connection] = set()
        self._turn = 0
        self._busy = False
        self._emotion = "neutral"
        self._engine_status: EngineStatus | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.page_connected = threading.Event()  # set when a page completes its hello
        self._worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="companion-chat")

    # --- lifecycle ----------------------------------------------------------------------------

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def cookie_name(self) -> str:
        # Cookies ignore ports: name it after ours so two running apps do not collide.
        return f"companion-{self.port}"

    def launch_url(self, path: str = "/") -> str:
        """A URL that logs one browser in once (the code is single-use) and lands on `path`."""
        code = secrets.token_urlsafe(24)
        self._launch_codes.add(code)
        return f"{self.origin}/launch?code={code}&next={path}"

    def start(self) -> str:
        """Bind 127.0.0.1 on a free port, serve on a background thread; return launch_url()."""
        if self._thread is not None:
            raise BridgeError("the bridge server is already running")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        self.port = sock.getsockname()[1]
        loop = asyncio.new_event_loop()
        self._loop = loop
        self.executor = ExecutorChannel(loop, self._send_to)
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
        if self.chat is not None and self._busy:
            self.chat.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        self._worker.shutdown(wait=False, cancel_futures=True)
        self._thread = None

    def __enter__(self) -> BridgeServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _serve(self, sock: socket.socket) -> None:
        self._runner = web.AppRunner(self.make_app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()

    async def _shutdown(self) -> None:
        for conn in list(self._connections):
            await conn.ws.close(code=1001, message=b"server shutting down")
        if self._runner is not None:
            await self._runner.cleanup()

    # --- publishing (any thread) --------------------------------------------------------------

    def publish(self, message: Any) -> None:
        """Send a core message to every connected page (thread-safe)."""
        if isinstance(message, EngineStatus):
            self._engine_status = message
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._broadcast, message)

    def set_chat(self, chat: ChatSessionLike | None) -> None:
        """Swap the chat session (after loading or an engine fallback) and tell the pages."""
        self.chat = chat
        self._engine_status = None  # the session's engine is the truth from now on
        self.publish(self._status_now())
        if chat is not None:  # the character, greeting and stored turns arrive with the session
            self.publish(self._welcome())

    def _status_now(self) -> EngineStatus:
        if self._engine_status is not None:
            return self._engine_status
        if self.chat is None:
            return EngineStatus(engine="none", adapter="", phase="loading", progress=0.0)
        return EngineStatus(engine=self.chat.engine_name, adapter=self.chat.adapter)

    def _broadcast(self, message: Any) -> None:
        text = encode(message)
        for conn in self._connections:
            if conn.hello is not None:
                conn.queue.put_nowait(text)

    def _send_to(self, conn: _Connection, message: Any) -> None:
        conn.queue.put_nowait(encode(message))

    # --- HTTP ---------------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        app = web.Application(
            middlewares=[self._guard],
            client_max_size=64 * 1024,
            handler_args={"max_field_size": 8190},
        )
        app.on_response_prepare.append(self._on_prepare)
        app.router.add_get("/launch", self._launch)
        app.router.add_get("/bridge", self._bridge)
        app.router.add_get("/config.json", self._config)
        app.router.add_get("/plan.json", self._plan)
        app.router.add_get("/plan/blob/{name}", self._plan_blob)
        app.router.add_get("/model/file", self._model_file)
        app.router.add_get("/model/blob", self._model_blob)
        app.router.add_get("/shaders/{path:.*}", self._shader)
        app.router.add_get("/{path:.*}", self._ui)
        return app

    def _allowed_hosts(self) -> tuple[str, str]:
        return (f"127.0.0.1:{self.port}", f"localhost:{self.port}")

    @web.middleware
    async def _guard(self, request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
        self._check(request)
        return await handler(request)

    async def _on_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        _harden(response, self.port)

    def _check(self, request: web.Request) -> None:
        if request.method not in ("GET", "HEAD"):
            raise web.HTTPMethodNotAllowed(request.method, ["GET", "HEAD"], text="GET only")
        if request.headers.get("Host", "") not in self._allowed_hosts():
            raise web.HTTPForbidden(text="wrong Host: open the address Companion printed")
        origin = request.headers.get("Origin")
        if origin is not None and origin not in (f"http://{h}" for h in self._allowed_hosts()):
            raise web.HTTPForbidden(text="cross-origin requests are refused")
        if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
            raise web.HTTPForbidden(text="cross-site requests are refused")
        if request.path == "/launch":
            return
        if not self._authorized(request):
            raise web.HTTPUnauthorized(text="not logged in: open the app from Companion")

    def _authorized(self, request: web.Request) -> bool:
        token = request.cookies.get(self.cookie_name, "")
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            token = auth[7:]
        return hmac.compare_digest(token.encode(), self.secret.encode())

    async def _launch(self, request: web.Request) -> web.StreamResponse:
        code = request.query.get("code", "")
        if code not in self._launch_codes:
            raise web.HTTPUnauthorized(text="this launch link was already used or is invalid")
        self._launch_codes.discard(code)
        target = request.query.get("next", "/")
        if not target.startswith("/") or target.startswith("//") or "\\" in target:
            target = "/"
        response = web.Response(status=303, headers={"Location": target})
        response.set_cookie(
            self.cookie_name, self.secret, httponly=True, samesite="Strict", path="/"
        )
        return response

    async def _ui(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"] or "index.html"
        return _file_response(self.ui_root, path)

    async def _shader(self, request: web.Request) -> web.StreamResponse:
        return _file_response(self.shaders_root, request.match_info["path"])

    async def _config(self, request: web.Request) -> web.StreamResponse:
        """What the page needs before its hello: whether to load an executor module."""
        wanted = self.settings is None or self.settings.engine in ("auto", "browser")
        module = resolve_static(self.ui_root, EXECUTOR_MODULE)
        return web.json_response(
            {
                "protocol_version": PROTOCOL_VERSION,
                "executor_module": EXECUTOR_MODULE if wanted and module is not None else None,
            }
        )

    async def _plan(self, request: web.Request) -> web.StreamResponse:
        if self.plan is None:
            raise web.HTTPNotFound(text="this app provides no plan (no browser engine)")
        hook = self.plan
        offered = request.query.get("features")  # the page's adapter features: build for them
        if offered is not None and _takes(self.plan, "features"):
            names = [f for f in offered.split(",") if f][:64]
            hook = functools.partial(hook, features=names)
        # the page's adapter info (vendor, architecture, device, description) picks layouts
        info = {k: request.query[k][:200] for k in _ADAPTER_KEYS if k in request.query}
        if info and _takes(self.plan, "adapter_info"):
            hook = functools.partial(hook, adapter_info=info)
        plan = await asyncio.get_running_loop().run_in_executor(None, hook)
        return web.json_response(plan)

    async def _plan_blob(self, request: web.Request) -> web.StreamResponse:
        """One weight blob the plan names (repacked by the builder, not in the GGUF)."""
        if self.blobs is None:
            raise web.HTTPNotFound(text="this app provides no plan blobs (no browser engine)")
        name = request.match_info["name"]
        data = await asyncio.get_running_loop().run_in_executor(None, self.blobs, name)
        if data is None:
            raise web.HTTPNotFound(text=f"the plan has no blob {name!r}")
        return web.Response(
            body=memoryview(data).cast("B"), content_type="application/octet-stream"
        )

    def _model(self) -> Path:
        path = self.model_path() if callable(self.model_path) else self.model_path
        if path is None or not Path(path).is_file():
            raise web.HTTPNotFound(text="no model file is loaded")
        return Path(path)

    async def _model_file(self, request: web.Request) -> web.StreamResponse:
        # FileResponse answers `Range: bytes=a-b` with 206 and the exact slice.
        return web.FileResponse(self._model(), headers={"Content-Type": "application/octet-stream"})

    async def _model_blob(self, request: web.Request) -> web.StreamResponse:
        path = self._model()
        try:
            offset = int(request.query["offset"])
            length = int(request.query["length"])
        except (KeyError, ValueError):
            raise web.HTTPBadRequest(text="give integer offset= and length=") from None
        size = path.stat().st_size
        if offset < 0 or length < 1 or length > MAX_BLOB_BYTES or offset + length > size:
            raise web.HTTPRequestRangeNotSatisfiable(
                text=f"range {offset}+{length} is outside the {size}-byte model (max {MAX_BLOB_BYTES})"
            )
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        response.content_length = length
        await response.prepare(request)
        if request.method == "HEAD":
            return response
        loop = asyncio.get_running_loop()
        with path.open("rb") as f:
            done = 0
            while done < length:
                n = min(_CHUNK, length - done)
                chunk = await loop.run_in_executor(None, os.pread, f.fileno(), n, offset + done)
                if not chunk:
                    break
                await response.write(chunk)
                done += len(chunk)
        await response.write_eof()
        return response

    # --- WebSocket ----------------------------------------------------------------------------

    async def _bridge(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=WS_HARD_LIMIT, compress=False, autoping=True)
        await ws.prepare(request)
        conn = _Connection(ws)
        self._connections.add(conn)
        sender = asyncio.create_task(self._sender(conn))
        try:
            async for frame in ws:
                if frame.type == WSMsgType.TEXT:
                    await self._receive(conn, frame.data)
                elif frame.type == WSMsgType.BINARY:
                    self._reject(conn, MessageRejected("malformed", "binary frames are not used"))
                elif frame.type == WSMsgType.ERROR:
                    break
        finally:
            self._connections.discard(conn)
            self.executor.detach(conn)
            conn.queue.put_nowait(None)
            await sender
            if self._busy and self.chat is not None and not self._page_count():
                self.chat.stop()  # nobody is watching the reply any more
        return ws

    def _page_count(self) -> int:
        return sum(1 for c in self._connections if c.hello is not None)

    async def _sender(self, conn: _Connection) -> None:
        while (text := await conn.queue.get()) is not None:
            if conn.ws.closed:
                continue
            with contextlib.suppress(ConnectionError, RuntimeError):
                await conn.ws.send_str(text)

    def _reject(self, conn: _Connection, exc: MessageRejected) -> None:
        log.debug("bridge: rejected a message: %s", exc)
        self._send_to(conn, exc.to_error())

    async def _receive(self, conn: _Connection, raw: str) -> None:
        try:
            message = decode(raw, "page")
        except MessageRejected as exc:
            self._reject(conn, exc)
            return
        if conn.hello is None and not isinstance(message, Hello):
            self._reject(
                conn, MessageRejected("handshake_required", "send `hello` first", message.type)
            )
            return
        try:
            await self._dispatch(conn, message)
        except MessageRejected as exc:
            self._reject(conn, exc)
        except Exception as exc:  # noqa: BLE001 - a bug here must not drop the page
            log.exception("bridge: handling %s failed", message.type)
            self._reject(
                conn, MessageRejected("internal", f"{type(exc).__name__}: {exc}", message.type)
            )

    async def _dispatch(self, conn: _Connection, message: Any) -> None:
        if isinstance(message, Hello):
            if message.protocol_version != PROTOCOL_VERSION:
                self._reject(conn, MessageRejected(
                    "protocol_version",
                    f"the page speaks bridge protocol {message.protocol_version}, the core "
                    f"{PROTOCOL_VERSION}: reload the page or reinstall Companion",
                    "hello",
                ))  # fmt: skip
                return
            conn.hello = message
            self.page_connected.set()
            self._send_to(conn, self._welcome())
            self._send_to(conn, self._status_now())
            if message.executor:
                self.executor.attach(conn)
        elif isinstance(message, UserMessage):
            if self.chat is None:
                raise MessageRejected("unavailable", "the model is still loading", message.type)
            if self._busy:
                raise MessageRejected(
                    "busy", "a reply is still streaming: stop it first", message.type
                )
            self._busy = True
            self._turn += 1
            asyncio.get_running_loop().create_task(self._reply(self.chat, message.text, self._turn))
        elif isinstance(message, Stop):
            if self._busy and self.chat is not None:
                self.chat.stop()
        elif isinstance(message, Reset):
            if self._busy:
                raise MessageRejected("busy", "stop the reply before starting over", message.type)
            if self.chat is not None:
                await asyncio.get_running_loop().run_in_executor(self._worker, self.chat.reset)
        elif isinstance(message, SettingsGet):
            self._send_to(conn, self._settings_message())
        elif isinstance(message, SettingsSet):
            await self._set_settings(message.values)
        elif isinstance(message, MemoryList):
            if self.memory is None:
                self._send_to(conn, Memories(items=[], enabled=False))
                return
            items = await asyncio.get_running_loop().run_in_executor(
                None, self.memory.list, message.query
            )
            self._send_to(conn, Memories(items=items))
        elif isinstance(message, MemoryForget | MemoryEdit):
            if self.memory is None:
                raise MessageRejected("unavailable", "memory is not enabled", message.type)
            loop = asyncio.get_running_loop()
            try:
                if isinstance(message, MemoryForget):
                    await loop.run_in_executor(None, self.memory.forget, message.id)
                else:
                    await loop.run_in_executor(None, self.memory.edit, message.id, message.text, message.pinned)
            except (KeyError, LookupError, CompanionError) as exc:
                raise MessageRejected("invalid", str(exc) or f"no memory {message.id}", message.type) from exc
            items = await loop.run_in_executor(None, self.memory.list, "")
            self._send_to(conn, Memories(items=items))
        elif isinstance(message, Token | Logits | EngineAck | EngineFailed | Pong):
            if not self.executor.resolve(message) and not isinstance(message, Pong):
                log.debug("bridge: unexpected %s for request %s", message.type, message.request_id)
        elif isinstance(message, EngineStatus):
            self.executor.status = message
        elif isinstance(message, Ping):
            self._send_to(conn, Pong(seq=message.seq, t=message.t))
        elif isinstance(message, Error):
            log.warning(
                "bridge: the page refused a message: %s (%s)", message.message, message.code
            )

    def _welcome(self) -> Welcome:
        status = self._status_now()
        return Welcome(
            app_version=companion.__version__,
            engine=status.engine,
            adapter=status.adapter,
            character=self.character,
            busy=self._busy,
            history=self._history_lines(),
        )

    def _history_lines(self) -> list[HistoryLine]:
        if self.history is None:
            return []
        try:
            rows = self.history()
        except Exception:  # noqa: BLE001 - a broken store must not break the handshake
            log.exception("bridge: could not read the conversation history")
            return []
        lines = []
        for r in rows[-200:]:
            role = r.get("role")
            if role in ("user", "assistant"):
                lines.append(HistoryLine(role=role, text=str(r.get("content") or ""), status=str(r.get("status") or "done")))
        return lines

    def _settings_message(self) -> SettingsValues:
        if self.settings is None:
            return SettingsValues(values={}, editable=[])
        values = self.settings.model_dump(mode="json")
        return SettingsValues(values=values, editable=list(EDITABLE_SETTINGS))

    async def _set_settings(self, values: dict[str, Any]) -> None:
        if self.settings is None:
            raise MessageRejected("unavailable", "this app has no settings", "settings_set")
        refused = sorted(set(values) - set(EDITABLE_SETTINGS))
        if refused:
            raise MessageRejected(
                "invalid", f"these settings cannot be changed here: {refused}", "settings_set"
            )
        try:
            new = Settings.model_validate({**self.settings.model_dump(), **values})
        except ValueError as exc:
            first = exc.errors()[0] if hasattr(exc, "errors") else {"loc": ["?"], "msg": str(exc)}
            where = ".".join(str(p) for p in first["loc"])
            raise MessageRejected("invalid", f"{where}: {first['msg']}", "settings_set") from None
        self.settings = new
        if self.on_settings is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.on_settings, new)
        self._broadcast(self._settings_message())

    # --- a reply ------------------------------------------------------------------------------

    async def _reply(self, chat: ChatSessionLike, text: str, turn: int) -> None:
        loop = asyncio.get_running_loop()
        self._broadcast(ReplyStarted(turn=turn, text=text))
        self._broadcast(AvatarState(emotion=self._emotion, speaking=True))  # type: ignore[arg-type]
        ended: list[bool] = []

        def on_event(event: object) -> None:
            if isinstance(event, _ReplyEnd):
                ended.append(True)
                self._broadcast(_end_message(turn, event.status, event.stats, event.error))
            elif isinstance(event, _EngineSwitch):
                self._engine_status = EngineStatus(
                    engine=event.engine, adapter=event.adapter[:300], error=event.reason[:4000]
                )
                self._broadcast(self._engine_status)  # in order with the deltas around it
            elif isinstance(event, _AvatarCue):
                self._emotion = event.emotion if event.emotion in _EMOTIONS else "neutral"
                self._broadcast(AvatarState(emotion=self._emotion, speaking=True))  # type: ignore[arg-type]
            elif isinstance(event, _TextDelta):
                if event.text:
                    self._broadcast(AssistantDelta(turn=turn, text=event.text))

        def work() -> None:
            try:
                for event in chat.send(text):
                    loop.call_soon_threadsafe(on_event, event)
            except CompanionError as exc:
                loop.call_soon_threadsafe(on_event, _End("error", {}, str(exc)))
            except Exception as exc:  # noqa: BLE001 - shown to the user, logged in full
                log.exception("chat reply failed")
                loop.call_soon_threadsafe(on_event, _End("error", {}, f"internal error: {exc}"))

        try:
            await loop.run_in_executor(self._worker, work)
            await asyncio.sleep(0)  # let the events queued by the worker run first
        finally:
            if not ended:
                self._broadcast(_end_message(turn, "done", {}, None))
            self._busy = False
            self._broadcast(AvatarState(emotion=self._emotion, speaking=False))  # type: ignore[arg-type]


@dataclass
class _End:
    status: str
    stats: dict[str, Any]
    error: str | None


_ADAPTER_KEYS = ("vendor", "architecture", "device", "description")


def _takes(hook: Callable[..., Any], name: str) -> bool:
    """The plan hook accepts keyword `name` (older hooks take no arguments)."""
    try:
        params = inspect.signature(hook).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == name or p.kind is p.VAR_KEYWORD for p in params)


def _end_message(turn: int, status: str, stats: dict[str, Any], error: str | None) -> Any:
    clean = {
        str(k): v if isinstance(v, int | float | str) else str(v) for k, v in (stats or {}).items()
    }
    if status == "stopped":
        return ReplyStopped(turn=turn, stats=clean)
    if status == "error" or error:
        return ReplyError(turn=turn, error=error or "the reply failed", stats=clean)
    return ReplyDone(turn=turn, stats=clean)


# --- static files -----------------------------------------------------------------------------

_TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".html": "text/html",
    ".json": "application/json",
    ".wgsl": "text/plain",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".woff2": "font/woff2",
}


def resolve_static(root: Traversable, rel: str) -> Traversable | None:
    """The file `rel` inside `root`, or None when it is missing or escapes the folder."""
    if not rel or "\\" in rel or "\0" in rel or ":" in rel:
        return None
    parts = rel.split("/")
    if any(p in ("", ".", "..") or p.startswith(".") or p == "__pycache__" for p in parts):
        return None
    node = root.joinpath(*parts)
    if isinstance(node, Path) and isinstance(root, Path):
        try:  # a symlink must not lead out either
            if not node.resolve().is_relative_to(root.resolve()):
                return None
        except OSError:
            return None
    try:
        return node if node.is_file() else None
    except OSError:
        return None


def _file_response(root: Traversable, rel: str) -> web.Response:
    node = resolve_static(root, rel)
    suffix = os.path.splitext(rel)[1].lower()
    if node is None or suffix in (".py", ".pyc"):
        raise web.HTTPNotFound(text="not found")
    ctype = _TYPES.get(suffix) or mimetypes.guess_type(rel)[0] or "application/octet-stream"
    charset = "utf-8" if ctype.startswith("text/") or ctype == "application/json" else None
    return web.Response(body=node.read_bytes(), content_type=ctype, charset=charset)


def _harden(response: web.StreamResponse, port: int) -> None:
    h = response.headers
    h["Cache-Control"] = "no-store"
    h["X-Content-Type-Options"] = "nosniff"
    h["Referrer-Policy"] = "no-referrer"
    h["X-Frame-Options"] = "DENY"
    h["Cross-Origin-Opener-Policy"] = "same-origin"
    h["Cross-Origin-Resource-Policy"] = "same-origin"
    h["Content-Security-Policy"] = (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        f"connect-src 'self' ws://127.0.0.1:{port} ws://localhost:{port}; "
        "worker-src 'self' blob:; font-src 'self'; manifest-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
