"""The bridge WebSocket: the conversation between the core and the pages connected to it.

It owns the open connections and their send queues, the hello/welcome handshake, receiving,
validating and rejecting the page's messages, dispatching them (to the chat session, the
memory hook, the settings and the engine channel to the page's WebGPU executor), and
streaming a reply's events (companion.chat's TextDelta, AvatarCue, EngineSwitch, ReplyDone)
to every page, with the avatar's changes (companion.avatar.director) in order among them. The
HTTP layer (companion.bridge.http) has checked a connection before it arrives here.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import WSMsgType, web

import companion
from companion import chat as core
from companion.avatar.director import AvatarDirector
from companion.avatar.stream import FrameStream
from companion.bridge.engine_channel import ExecutorChannel
from companion.bridge.messages import (
    MAX_MESSAGE_BYTES,
    PROTOCOL_VERSION,
    AssistantDelta,
    AvatarFrame,
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
    MemoryNoted,
    MemoryUndo,
    MessageRejected,
    ModelConfigure,
    ModelItem,
    ModelList,
    Models,
    ModelUse,
    Ping,
    Pong,
    ReplyDone,
    ReplyError,
    ReplyStarted,
    ReplyStopped,
    Reset,
    SettingsFile,
    SettingsFileGet,
    SettingsFileSet,
    SettingsGet,
    SettingsSet,
    SettingsValues,
    Stop,
    Token,
    UserMessage,
    UserTyping,
    Welcome,
    decode,
    encode,
)
from companion.errors import CompanionError
from companion.memory.notes import MemoryNote
from companion.settings import Settings

log = logging.getLogger(__name__)

WS_HARD_LIMIT = 4 * MAX_MESSAGE_BYTES  # frames above this close the socket (1009); below: `error`
EDITABLE_SETTINGS = (
    "temperature", "top_k", "top_p", "min_p", "repeat_penalty", "repeat_last_n",
    "max_new_tokens", "seed", "memory_enabled", "engine", "pet_mode", "muted",
)  # fmt: skip


# --- what the app plugs in --------------------------------------------------------------------


class ChatSessionLike(Protocol):
    """What the conversation needs from the chat core (companion.chat.ChatSession)."""

    @property
    def engine_name(self) -> str:
        """The engine running the model: "browser" | "native" | "reference"."""
        ...

    @property
    def adapter(self) -> str:
        """Where the engine runs, shown in the page header."""
        ...

    def send(self, text: str) -> Iterator[core.Event]:
        """Answer the user's text, yielding events, the last a ReplyDone. Runs on the chat
        worker thread; may block on the engine."""
        ...

    def stop(self) -> None:
        """Stop the current reply soon (called from another thread); send() then yields a
        ReplyDone(status="stopped") and returns. The conversation is kept."""
        ...

    def reset(self) -> None:
        """Start a new conversation (never called while a reply streams)."""
        ...

    def undo_memory(self, undo_id: int) -> MemoryNote | None:
        """Revert what an explicit memory request changed (a memory_note's Undo); None if
        there is nothing to undo under that id."""
        ...


class MemoryHook(Protocol):
    """The memory panel's data source (companion.bridge.memory_hook)."""

    def list(self, query: str) -> list[MemoryItem]: ...

    def forget(self, memory_id: int) -> None: ...

    def edit(self, memory_id: int, text: str | None, pinned: bool | None) -> None: ...


HistoryHook = Callable[[], list[Any]]  # the open conversation's rows: role, content, status


class ModelsHook(Protocol):
    """The model picker's data source and actions (companion.bridge.models_hook)."""

    switching: str | None  # the model being loaded, while it loads

    def list(self) -> list[ModelItem]: ...

    def use(self, name: str) -> None: ...

    def configure(self, name: str, context_length: int | None, chat_template: str | None, reset: Sequence[str]) -> None: ...


class Plugged(Protocol):
    """What the conversation uses. BridgeServer holds it, so the app can set it while it runs."""

    chat: ChatSessionLike | None
    settings: Settings | None  # shown and edited in the settings drawer
    on_settings: Callable[[Settings], None] | None  # called after a valid change
    memory: MemoryHook | None
    character: str  # display name in the page header
    history: HistoryHook | None  # the open conversation, sent with welcome
    models: ModelsHook | None  # the model picker


# --- the conversation -------------------------------------------------------------------------


@dataclass(eq=False)
class Connection:
    """One page's WebSocket; what the core sends it goes through `queue` (text messages, and
    binary avatar frames)."""

    ws: web.WebSocketResponse
    queue: asyncio.Queue[str | bytes | None] = field(default_factory=asyncio.Queue)
    hello: Hello | None = None  # the page's handshake, once it sent one


class Conversation:
    """The pages' WebSocket connections and the replies streamed to them. Its handlers run on
    the server's event loop (`open(loop)`); `publish` may be called from any thread."""

    def __init__(self, app: Plugged) -> None:
        self.app = app
        self.connections: set[Connection] = set()
        self.page_connected = threading.Event()  # set when a page completes its hello
        self.executor: ExecutorChannel  # set by open()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._turn = 0
        self._busy = False
        self._replies: set[asyncio.Task[None]] = set()
        self.avatar = AvatarDirector()
        self._avatar_timer: asyncio.TimerHandle | None = None
        self._engine_status: EngineStatus | None = None
        self._worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="companion-chat")

    def open(self, loop: asyncio.AbstractEventLoop) -> None:
        """Serve on `loop`, the server's event loop."""
        self._loop = loop
        self.executor = ExecutorChannel(loop, self._send_to)
        self.frames = FrameStream(self._send_frame, self._frames_failed)  # renders on first use

    async def close_pages(self) -> None:
        """Close every page connection (on the loop, when the server shuts down, which has asked
        the chat to stop its reply)."""
        for task in list(self._replies):  # the worker thread ends the reply; stop waiting on it here
            task.cancel()
        await asyncio.gather(*self._replies, return_exceptions=True)
        for conn in list(self.connections):
            await conn.ws.close(code=1001, message=b"server shutting down")
        await self.frames.aclose()

    def stop_reply(self) -> None:
        """Ask the chat session to end the reply that is streaming, if one is."""
        if self._busy and self.app.chat is not None:
            self.app.chat.stop()

    def shutdown(self) -> None:
        """Let the chat worker go (once the loop has stopped)."""
        self._worker.shutdown(wait=False, cancel_futures=True)
        if self._loop is not None:
            self.frames.close()

    # --- publishing (any thread) --------------------------------------------------------------

    def publish(self, message: Any) -> None:
        """Send a core message to every connected page (thread-safe)."""
        if isinstance(message, EngineStatus):
            self._engine_status = message
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._broadcast, message)

    def session_changed(self) -> None:
        """The app swapped its chat session: tell the pages its engine (and, with a session,
        its character, greeting and stored turns)."""
        self._engine_status = None  # the session's engine is the truth from now on
        self.publish(self._status_now())
        if self.app.chat is not None:
            self.publish(self._welcome())

    def _status_now(self) -> EngineStatus:
        if self._engine_status is not None:
            return self._engine_status
        chat = self.app.chat
        if chat is None:
            return EngineStatus(engine="none", adapter="", phase="loading", progress=0.0)
        return EngineStatus(engine=chat.engine_name, adapter=chat.adapter)

    def _broadcast(self, message: Any) -> None:
        text = encode(message)
        for conn in self.connections:
            if conn.hello is not None:
                conn.queue.put_nowait(text)

    def _send_to(self, conn: Connection, message: Any) -> None:
        conn.queue.put_nowait(encode(message))

    # --- one page's socket --------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """The /bridge WebSocket of one page, until it closes."""
        ws = web.WebSocketResponse(max_msg_size=WS_HARD_LIMIT, compress=False, autoping=True)
        await ws.prepare(request)
        conn = Connection(ws)
        self.connections.add(conn)
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
            self.connections.discard(conn)
            self.executor.detach(conn)
            self.frames.forget(conn)
            conn.queue.put_nowait(None)
            await sender
            if not self._page_count():
                self.stop_reply()  # nobody is watching the reply any more
        return ws

    def _page_count(self) -> int:
        return sum(1 for c in self.connections if c.hello is not None)

    async def _sender(self, conn: Connection) -> None:
        while (item := await conn.queue.get()) is not None:
            if conn.ws.closed:
                continue
            with contextlib.suppress(ConnectionError, RuntimeError):
                if isinstance(item, bytes):
                    await conn.ws.send_bytes(item)
                else:
                    await conn.ws.send_str(item)

    def _send_frame(self, conn: Any, frame: bytes) -> None:
        if conn in self.connections:
            conn.queue.put_nowait(frame)

    def _frames_failed(self, conn: Any, reason: str) -> None:
        if conn in self.connections:
            why = f"the avatar cannot be drawn here either: {reason}"
            self._reject(conn, MessageRejected("unavailable", why[:4000], "avatar_frame"))

    def _reject(self, conn: Connection, exc: MessageRejected) -> None:
        log.debug("bridge: rejected a message: %s", exc)
        self._send_to(conn, exc.to_error())

    async def _receive(self, conn: Connection, raw: str) -> None:
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

    async def _dispatch(self, conn: Connection, message: Any) -> None:
        chat = self.app.chat
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
            self._send_to(conn, self.avatar.state)
            if message.executor:
                self.executor.attach(conn)
        elif isinstance(message, UserMessage):
            if chat is None:
                raise MessageRejected("unavailable", "the model is still loading", message.type)
            if self._busy:
                raise MessageRejected(
                    "busy", "a reply is still streaming: stop it first", message.type
                )
            self._busy = True
            self._turn += 1
            task = asyncio.get_running_loop().create_task(self._reply(chat, message.text, self._turn))
            self._replies.add(task)  # the loop holds tasks weakly: a reply must not vanish mid-way
            task.add_done_callback(self._replies.discard)
        elif isinstance(message, UserTyping):
            self._avatar(self.avatar.typing(message.typing))
        elif isinstance(message, Stop):
            self.stop_reply()
        elif isinstance(message, Reset):
            if self._busy:
                raise MessageRejected("busy", "stop the reply before starting over", message.type)
            if chat is not None:
                await asyncio.get_running_loop().run_in_executor(self._worker, chat.reset)
        elif isinstance(message, SettingsGet):
            self._send_to(conn, self._settings_message())
        elif isinstance(message, SettingsSet):
            await self._set_settings(message.values)
        elif isinstance(message, SettingsFileGet | SettingsFileSet):
            await self._settings_file(conn, message)
        elif isinstance(message, MemoryList | MemoryForget | MemoryEdit):
            await self._memory(conn, message)
        elif isinstance(message, MemoryUndo):
            await self._undo(message)
        elif isinstance(message, ModelList | ModelUse | ModelConfigure):
            await self._models(conn, message)
        elif isinstance(message, Token | Logits | EngineAck | EngineFailed | Pong):
            if not self.executor.resolve(message) and not isinstance(message, Pong):
                log.debug("bridge: unexpected %s for request %s", message.type, message.request_id)
        elif isinstance(message, EngineStatus):
            self.executor.status = message
        elif isinstance(message, AvatarFrame):  # a page without WebGPU: frames drawn here
            self.frames.request(conn, message.seq, message.width, message.height, message.pose, self._busy)
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
            character=self.app.character,
            busy=self._busy,
            history=self._history_lines(),
        )

    def _history_lines(self) -> list[HistoryLine]:
        if self.app.history is None:
            return []
        try:
            rows = self.app.history()
        except Exception:  # noqa: BLE001 - a broken store must not break the handshake
            log.exception("bridge: could not read the conversation history")
            return []
        lines = []
        for r in rows[-200:]:
            role = r.get("role")
            if role in ("user", "assistant"):
                lines.append(
                    HistoryLine(
                        role=role,
                        text=str(r.get("content") or ""),
                        status=str(r.get("status") or "done"),
                    )
                )
        return lines

    # --- the memory panel and the settings drawer ---------------------------------------------

    async def _memory(
        self, conn: Connection, message: MemoryList | MemoryForget | MemoryEdit
    ) -> None:
        memory = self.app.memory
        loop = asyncio.get_running_loop()
        if isinstance(message, MemoryList):
            if memory is None:
                self._send_to(conn, Memories(items=[], enabled=False))
                return
            items = await loop.run_in_executor(None, memory.list, message.query)
            self._send_to(conn, Memories(items=items))
            return
        if memory is None:
            raise MessageRejected("unavailable", "memory is not enabled", message.type)
        try:
            if isinstance(message, MemoryForget):
                await loop.run_in_executor(None, memory.forget, message.id)
            else:
                await loop.run_in_executor(
                    None, memory.edit, message.id, message.text, message.pinned
                )
        except (KeyError, LookupError, CompanionError) as exc:
            raise MessageRejected(
                "invalid", str(exc) or f"no memory {message.id}", message.type
            ) from exc
        items = await loop.run_in_executor(None, memory.list, "")
        self._send_to(conn, Memories(items=items))

    async def _undo(self, message: MemoryUndo) -> None:
        """Revert a remembered / forgotten note (on the chat worker, in turn with replies), then
        tell every page: an `undone` note and the panel's new list."""
        chat = self.app.chat
        if chat is None:
            raise MessageRejected("unavailable", "the model is still loading", message.type)
        loop = asyncio.get_running_loop()
        note = await loop.run_in_executor(self._worker, chat.undo_memory, message.undo_id)
        if note is None:
            raise MessageRejected(
                "invalid", f"nothing to undo under {message.undo_id}: already undone, or from an earlier session",
                message.type,
            )
        self._broadcast(MemoryNoted(turn=0, action=note.action, text=note.text[:4000]))
        if self.app.memory is not None:
            self._broadcast(Memories(items=await loop.run_in_executor(None, self.app.memory.list, "")))

    async def _models(self, conn: Connection, message: ModelList | ModelUse | ModelConfigure) -> None:
        """The model picker: list, switch (not while a reply streams), per-model settings."""
        hook = self.app.models
        if hook is None:
            raise MessageRejected("unavailable", "this app has no model picker", message.type)
        loop = asyncio.get_running_loop()
        try:
            if isinstance(message, ModelUse):
                if self._busy:
                    raise MessageRejected("busy", "stop the reply before switching models", message.type)
                await loop.run_in_executor(None, hook.use, message.name)
            elif isinstance(message, ModelConfigure):
                await loop.run_in_executor(None, hook.configure, message.name, message.context_length,
                                           message.chat_template, list(message.reset))
            items = await loop.run_in_executor(None, hook.list)
        except CompanionError as exc:
            raise MessageRejected("invalid", str(exc)[:4000], message.type) from None
        reply = Models(items=items, switching=hook.switching)
        if isinstance(message, ModelList):
            self._send_to(conn, reply)
        else:
            self._broadcast(reply)

    async def _settings_file(self, conn: Connection, message: SettingsFileGet | SettingsFileSet) -> None:
        """The drawer's raw editor of settings.json: read it, or check and replace it whole."""
        from companion.settings import SettingsError, file_path, read_file_text, replace_file_text

        if self.app.settings is None:
            raise MessageRejected("unavailable", "this app has no settings", message.type)
        loop = asyncio.get_running_loop()
        try:
            if isinstance(message, SettingsFileSet):
                new = await loop.run_in_executor(None, replace_file_text, message.text, self.app.settings)
                self.app.settings = new
                if self.app.on_settings is not None:
                    await loop.run_in_executor(None, self.app.on_settings, new)
                self._broadcast(self._settings_message())
            text = await loop.run_in_executor(None, read_file_text)
        except SettingsError as exc:
            raise MessageRejected("invalid", str(exc)[:4000], message.type) from None
        self._send_to(conn, SettingsFile(text=text[: 64 * 1024], path=str(file_path())))

    def _settings_message(self) -> SettingsValues:
        if self.app.settings is None:
            return SettingsValues(values={}, editable=[])
        values = self.app.settings.model_dump(mode="json")
        return SettingsValues(values=values, editable=list(EDITABLE_SETTINGS))

    async def _set_settings(self, values: dict[str, Any]) -> None:
        if self.app.settings is None:
            raise MessageRejected("unavailable", "this app has no settings", "settings_set")
        refused = sorted(set(values) - set(EDITABLE_SETTINGS))
        if refused:
            raise MessageRejected(
                "invalid", f"these settings cannot be changed here: {refused}", "settings_set"
            )
        try:
            new = Settings.model_validate({**self.app.settings.model_dump(), **values})
        except ValueError as exc:
            first = exc.errors()[0] if hasattr(exc, "errors") else {"loc": ["?"], "msg": str(exc)}
            where = ".".join(str(p) for p in first["loc"])
            raise MessageRejected("invalid", f"{where}: {first['msg']}", "settings_set") from None
        self.app.settings = new
        if self.app.on_settings is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.app.on_settings, new)
        self._broadcast(self._settings_message())

    # --- the avatar ---------------------------------------------------------------------------

    def _avatar(self, messages: list[Any]) -> None:
        """Send the avatar's changes (on the loop) and wake up for its next timed change."""
        for message in messages:
            self._broadcast(message)
        if self._avatar_timer is not None:
            self._avatar_timer.cancel()
            self._avatar_timer = None
        delay = self.avatar.seconds_to_deadline()
        if delay is not None and self._loop is not None:
            self._avatar_timer = self._loop.call_later(delay + 0.01, self._avatar_tick)

    def _avatar_tick(self) -> None:
        self._avatar_timer = None
        self._avatar(self.avatar.poll())

    # --- a reply ------------------------------------------------------------------------------

    async def _reply(self, chat: ChatSessionLike, text: str, turn: int) -> None:
        loop = asyncio.get_running_loop()
        self._broadcast(ReplyStarted(turn=turn, text=text))
        self._avatar(self.avatar.reply_started(turn))
        ended: list[bool] = []

        def on_event(event: core.Event, avatar: list[Any]) -> None:
            if isinstance(event, core.ReplyDone):
                ended.append(True)
                # the page may send the next message as soon as it sees the end: accept it
                # (its reply waits on the one chat worker for this one's bookkeeping)
                self._busy = False
                self._broadcast(_end_message(turn, event))
            elif isinstance(event, core.EngineSwitch):
                self._engine_status = EngineStatus(
                    engine=event.engine, adapter=event.adapter[:300], error=event.reason[:4000]
                )
                self._broadcast(self._engine_status)  # in order with the deltas around it
            elif isinstance(event, core.TextDelta):
                if event.text:
                    self._broadcast(AssistantDelta(turn=turn, text=event.text))
            elif isinstance(event, MemoryNote):  # shown beside the user's message, with Undo
                self._broadcast(MemoryNoted(turn=turn, action=event.action, text=event.text[:4000],
                                            undo_id=event.undo_id))
            self._avatar(avatar)  # after the text it belongs to

        def forward(event: core.Event) -> None:
            # the avatar's share (lip sync, emotion) is worked out here, on the chat worker
            loop.call_soon_threadsafe(on_event, event, self.avatar.on_event(event))

        def work() -> None:
            try:
                for event in chat.send(text):
                    forward(event)
            except CompanionError as exc:
                forward(core.ReplyDone("error", "", error=str(exc)))
            except Exception as exc:  # noqa: BLE001 - shown to the user, logged in full
                log.exception("chat reply failed")
                forward(core.ReplyDone("error", "", error=f"internal error: {exc}"))

        try:
            await loop.run_in_executor(self._worker, work)
            await asyncio.sleep(0)  # let the events queued by the worker run first
        finally:
            if not ended:
                self._broadcast(_end_message(turn, core.ReplyDone("done", "")))
            if self._turn == turn:  # not a newer reply accepted since this one's end was sent
                self._busy = False
                self._avatar(self.avatar.reply_ended())  # nothing when ReplyDone already ended it


def _end_message(turn: int, end: core.ReplyDone) -> ReplyDone | ReplyStopped | ReplyError:
    clean = {
        str(k): v if isinstance(v, int | float | str) else str(v)
        for k, v in (end.stats or {}).items()
    }
    if end.status == "stopped":
        return ReplyStopped(turn=turn, stats=clean)
    if end.status == "error" or end.error:
        return ReplyError(turn=turn, error=end.error or "the reply failed", stats=clean)
    return ReplyDone(turn=turn, stats=clean)
