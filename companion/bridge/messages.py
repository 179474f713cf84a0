"""Bridge messages between the Python core and the page, as pydantic models.

Every message is one JSON object with a `type` field that selects the model (a discriminated
union). The page opens with `hello`, the core answers `welcome`; both carry
`PROTOCOL_VERSION`, and a page speaking another version is refused. The JSON Schema of every
model is exported to ui/bridge-schema.json (companion.bridge.schema) so the page validates what
it receives with the same definitions.

Two directions, two unions: `PageMessage` (what the page may send) and `CoreMessage` (what the
core may send). `ping`, `pong` and `error` go both ways; `engine_status` too (the core reports
its native engine, the page its WebGPU executor while loading).

Executor requests (`engine_load`, `engine_reset`, `generate`) carry a `request_id`; the page
answers each with exactly one of `token`, `logits`, `engine_ack` or `engine_failed` carrying the
same id.
"""

from __future__ import annotations

import base64
import json
from typing import Annotated, Any, Literal, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from companion.avatar.lipsync import VisemeSpan
from companion.avatar.pose import Activity, Pose
from companion.emotion import Emotion
from companion.errors import BridgeError
from companion.sampling import SamplingParams

PROTOCOL_VERSION = 1  # bump on any incompatible change; the page refuses a different version
MAX_MESSAGE_BYTES = 2 * 1024 * 1024  # protocol limit; bigger messages get an `error` reply

Phase = Literal["idle", "probing", "loading", "ready", "generating", "failed"]
GazeHint = Literal["wander", "user", "text", "down"]  # where AvatarState sends the eyes
ErrorCode = Literal[
    "malformed",  # not JSON, or not an object
    "too_large",  # over MAX_MESSAGE_BYTES
    "unknown_type",  # a `type` this side does not know
    "not_allowed",  # a known type the sender may not send (wrong direction)
    "invalid",  # a known type with wrong or missing fields
    "handshake_required",  # anything but `hello` before the handshake
    "protocol_version",  # hello with an incompatible PROTOCOL_VERSION
    "busy",  # a user message while a reply is still streaming
    "unavailable",  # a hook (settings, memory, executor) is not provided by this app
    "internal",  # a bug on the receiving side; the message names it
]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- handshake --------------------------------------------------------------------------------


class Hello(_Message):
    """Page → core, first message: who is speaking and what it can do."""

    type: Literal["hello"] = "hello"
    protocol_version: int  # must equal the core's PROTOCOL_VERSION
    client: str = Field("page", max_length=200)  # "page", "bench", "test", ...
    user_agent: str = Field("", max_length=500)  # navigator.userAgent, for diagnostics
    webgpu: bool = False  # navigator.gpu exists (the adapter is probed later)
    executor: bool = False  # this page will answer engine_load / engine_reset / generate


class HistoryLine(BaseModel):
    """One stored message of the open conversation, for a page that (re)connects."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Literal["user", "assistant"]
    text: str
    status: str = "done"  # done | stopped | error | interrupted


class Welcome(_Message):
    """Core → page, answer to hello: the state the page needs to draw itself."""

    type: Literal["welcome"] = "welcome"
    protocol_version: int = PROTOCOL_VERSION
    app_version: str  # companion.__version__
    engine: str  # the active engine: "browser" | "native" | "reference" | "none"
    adapter: str  # where it runs, e.g. "llvmpipe (LLVM 15.0.7, 256 bits)"
    character: str = "Companion"  # display name of the active character
    busy: bool = False  # a reply is streaming right now (a reloaded page shows the stop button)
    history: list[HistoryLine] = []  # the open conversation so far (greeting included)


# --- conversation -----------------------------------------------------------------------------


class UserMessage(_Message):
    """Page → core: the user sent a chat message."""

    type: Literal["user_message"] = "user_message"
    text: str = Field(min_length=1, max_length=32_000)


class Stop(_Message):
    """Page → core: stop the reply being streamed; the conversation is kept."""

    type: Literal["stop"] = "stop"


class Reset(_Message):
    """Page → core: start a new conversation."""

    type: Literal["reset"] = "reset"


class ReplyStarted(_Message):
    """Core → page: a reply to the user's message `turn` begins."""

    type: Literal["reply_started"] = "reply_started"
    turn: int  # counts user messages since launch
    text: str = ""  # the user's text, so every open page shows it


class AssistantDelta(_Message):
    """Core → page: more text of the reply (already detokenized and stripped of tags)."""

    type: Literal["assistant_delta"] = "assistant_delta"
    turn: int
    text: str


Stats = dict[str, float | int | str]  # e.g. {"tokens": 42, "tok_per_s": 31.5, "engine": "native"}


class ReplyDone(_Message):
    """Core → page: the reply ended normally."""

    type: Literal["reply_done"] = "reply_done"
    turn: int
    stats: Stats = {}


class ReplyStopped(_Message):
    """Core → page: the reply ended because the user pressed stop."""

    type: Literal["reply_stopped"] = "reply_stopped"
    turn: int
    stats: Stats = {}


class ReplyError(_Message):
    """Core → page: the reply failed; `error` is text the user can act on."""

    type: Literal["reply_error"] = "reply_error"
    turn: int
    error: str
    stats: Stats = {}


class AvatarState(_Message):
    """Core → page: what the avatar shows from now on, sent when it changes (never per frame).
    The page's animator (ui/avatar/animator.js) eases into it and adds what is its own: blinks,
    saccades, breathing and sway, the cursor. Made by companion.avatar.state."""

    type: Literal["avatar_state"] = "avatar_state"
    emotion: Emotion = "neutral"  # companion.emotion.EMOTIONS; the page's avatar reads this enum
    intensity: float = Field(0.0, ge=0.0, le=1.0)  # how strongly it shows (0 = a neutral face)
    transition_ms: int = Field(400, ge=0, le=20_000)  # time to ease from the last face to this
    activity: Activity = "idle"  # companion.avatar.pose.ACTIVITIES
    gaze: GazeHint = "wander"  # where the eyes go: wander (idle saccades, the cursor when the
    # window has it), user (the person), text (down at the chat, reading), down (resting)


class AvatarVisemes(_Message):
    """Core → page: the mouth's shapes from `start_ms` on, in ms since this turn's
    reply_started. They replace whatever the page had scheduled from start_ms on; an empty list
    closes the mouth at start_ms (the reply was stopped). Made by companion.avatar.lipsync."""

    type: Literal["avatar_visemes"] = "avatar_visemes"
    turn: int
    start_ms: int = Field(ge=0)
    visemes: list[VisemeSpan] = Field([], max_length=4000)  # companion.avatar.lipsync


class UserTyping(_Message):
    """Page → core: the user is typing in the composer (true), or stopped or sent (false); the
    avatar listens meanwhile. Sent on the first keystroke, again every few seconds of typing."""

    type: Literal["user_typing"] = "user_typing"
    typing: bool


# --- engine -----------------------------------------------------------------------------------


class EngineStatus(_Message):
    """Either way: which engine runs the model, where, and how far loading got."""

    type: Literal["engine_status"] = "engine_status"
    engine: str = Field(max_length=40)  # "browser" | "native" | "reference" | "none"
    adapter: str = Field("", max_length=300)
    phase: Phase = "ready"
    progress: float = Field(1.0, ge=0.0, le=1.0)  # of the current phase (loading weights)
    detail: str = Field("", max_length=300)  # what is happening, e.g. "uploading blk.12 (40%)"
    error: str | None = Field(None, max_length=4000)  # why the engine failed or was replaced


class EngineLoad(_Message):
    """Core → page executor: load the plan and weights; answer engine_ack or engine_failed,
    with engine_status(phase="loading", progress) messages on the way."""

    type: Literal["engine_load"] = "engine_load"
    request_id: int
    plan_url: str = "/plan.json"  # same-origin URL of the plan (companion.bridge.server)
    model_url: str = "/model/file"  # same-origin URL of the GGUF (HTTP Range) or /model/blob
    n_ctx: int = Field(2048, ge=1)  # KV cache positions to allocate


class EngineReset(_Message):
    """Core → page executor: forget cached positions from n_keep on; answer engine_ack."""

    type: Literal["engine_reset"] = "engine_reset"
    request_id: int
    n_keep: int = Field(0, ge=0)


class Generate(_Message):
    """Core → page executor: append `ids` to the sequence, then answer `token` (sampled on the
    GPU with `sampling`) or `logits` (of the last position, for parity tests)."""

    type: Literal["generate"] = "generate"
    request_id: int
    ids: list[int] = Field(min_length=1)  # token ids to append (the prompt, or the last token)
    sampling: SamplingParams = SamplingParams()  # sampling.seed seeds the reply's random stream
    step: int = Field(0, ge=0)  # token index in the reply: with the seed, picks the draw
    history: list[int] = []  # recent ids for the repetition penalty (last repeat_last_n)
    want: Literal["token", "logits"] = "token"
    # with want "token" and one id: run this many decode steps in one submit, each feeding the
    # id the one before sampled (on the GPU), and answer them all (Token.ids); `history` then
    # ends with that one id, and step j draws with step + j
    steps: int = Field(1, ge=1, le=16)
    # the core's position count before `ids`: the page drops positions past it first (ids a
    # run of steps produced that the core did not use); None: the page's own count
    n_past: int | None = Field(None, ge=0)


class Token(_Message):
    """Page executor → core: the sampled id (or ids) for a generate request."""

    type: Literal["token"] = "token"
    request_id: int
    id: int = Field(ge=0)
    ids: list[int] | None = None  # all the ids of a request with steps > 1 (id is the first)
    n_past: int | None = None  # positions in the page's KV cache after this request
    ms: float | None = None  # GPU time the page measured, for stats


class Logits(_Message):
    """Page executor → core: (n_vocab,) f32 logits of the last position, little-endian,
    base64-encoded."""

    type: Literal["logits"] = "logits"
    request_id: int
    n_vocab: int = Field(ge=1)
    values: str  # base64 of n_vocab little-endian float32
    n_past: int | None = None

    @model_validator(mode="after")
    def _check_length(self) -> Logits:
        if len(self.values) != 4 * ((self.n_vocab * 4 + 2) // 3):
            raise ValueError(f"values must be base64 of {self.n_vocab} float32")
        return self

    @classmethod
    def from_array(cls, request_id: int, logits: np.ndarray, **kw: Any) -> Logits:
        """Encode a (n_vocab,) array."""
        arr = np.ascontiguousarray(logits, dtype="<f4")  # (V,) f32
        return cls(
            request_id=request_id,
            n_vocab=arr.size,
            values=base64.b64encode(arr.tobytes()).decode("ascii"),
            **kw,
        )

    def array(self) -> np.ndarray:
        """Decode to a (n_vocab,) float32 array."""
        return np.frombuffer(
            base64.b64decode(self.values, validate=True), dtype="<f4"
        ).copy()  # (V,) f32


class EngineAck(_Message):
    """Page executor → core: engine_load or engine_reset `request_id` is done."""

    type: Literal["engine_ack"] = "engine_ack"
    request_id: int
    n_past: int = 0
    adapter: str = Field("", max_length=300)  # filled by engine_load's answer


class EngineFailed(_Message):
    """Page executor → core: the request cannot be served (no adapter, lost device, a kernel
    failed). The core falls back to the native engine and keeps the turn."""

    type: Literal["engine_failed"] = "engine_failed"
    request_id: int | None = None  # None: the executor failed on its own (device lost)
    reason: str = Field(max_length=4000)


# --- settings and memory ----------------------------------------------------------------------


class SettingsGet(_Message):
    """Page → core: send me the settings."""

    type: Literal["settings_get"] = "settings_get"


class SettingsSet(_Message):
    """Page → core: change some settings; the core answers `settings` or `error`."""

    type: Literal["settings_set"] = "settings_set"
    values: dict[str, Any]


class SettingsValues(_Message):
    """Core → page: the current settings and which of them the page may edit."""

    type: Literal["settings"] = "settings"
    values: dict[str, Any]
    editable: list[str] = []


class SettingsFileGet(_Message):
    """Page → core: send me the settings file as text (the drawer's raw editor)."""

    type: Literal["settings_file_get"] = "settings_file_get"


class SettingsFileSet(_Message):
    """Page → core: replace the settings file with this JSON text; the core checks every value
    first and answers `settings_file` (and `settings`), or `error` naming what is wrong."""

    type: Literal["settings_file_set"] = "settings_file_set"
    text: str = Field(max_length=64 * 1024)


class SettingsFile(_Message):
    """Core → page: the settings file's text and where it lives."""

    type: Literal["settings_file"] = "settings_file"
    text: str = Field(max_length=64 * 1024)
    path: str = Field("", max_length=4096)


class MemoryList(_Message):
    """Page → core: send me the long-term memories (for the memory panel)."""

    type: Literal["memory_list"] = "memory_list"
    query: str = Field("", max_length=1000)


class MemoryForget(_Message):
    """Page → core: delete one long-term memory."""

    type: Literal["memory_forget"] = "memory_forget"
    id: int


class MemoryEdit(_Message):
    """Page → core: change one long-term memory's text and/or pin it into every prompt."""

    type: Literal["memory_edit"] = "memory_edit"
    id: int
    text: str | None = Field(None, min_length=1, max_length=2000)
    pinned: bool | None = None


class MemoryUndo(_Message):
    """Page → core: revert what the request behind a memory_note changed (its Undo button)."""

    type: Literal["memory_undo"] = "memory_undo"
    undo_id: int


class MemoryNoted(_Message):
    """Core → page: memory acted on an explicit request in the user's message ("remember…",
    "forget…"), or an undo of one; the chat shows a small marker, with Undo when undo_id > 0."""

    type: Literal["memory_note"] = "memory_note"
    turn: int  # the reply it belongs to (0: an undo, outside any reply)
    action: Literal["remembered", "forgot", "undone"]
    text: str = Field(max_length=4000)  # what was remembered or forgotten, as stored
    undo_id: int = 0


class MemoryItem(BaseModel):
    """One long-term memory as the panel shows it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: int
    text: str
    created: str = ""  # ISO 8601
    pinned: bool = False  # always in the prompt


class Memories(_Message):
    """Core → page: the memories for the panel."""

    type: Literal["memories"] = "memories"
    items: list[MemoryItem] = []
    enabled: bool = True


# --- the model picker -------------------------------------------------------------------------

MODEL_NAME = r"^[a-z0-9][a-z0-9._-]{0,63}$"  # companion.model.registry's names


class ModelList(_Message):
    """Page → core: send me the known models (for the model picker)."""

    type: Literal["model_list"] = "model_list"


class ModelItem(BaseModel):
    """One model as the picker shows it (companion.model.catalog)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    arch: str
    file_type: str
    parameters: int
    size_bytes: int
    can_chat: bool  # has a chat template (its own, or the user's)
    builtin: bool = False
    in_use: bool = False
    context_length: int | None = None  # this model's own setting (None: the general one)
    max_context: int  # what it was trained for
    run_context: int  # the context it runs at
    chat_template: Literal["auto", "chatml", "custom"] = "auto"
    runs: bool = True  # fits this machine (GPU adapter, else the reference engine)
    reason: str = Field("", max_length=1000)  # why not, or a note (base model)
    gpu_bytes: int | None = None  # weights + KV cache + activations on the GPU
    cpu_bytes: int = 0  # the same in the reference engine


class Models(_Message):
    """Core → page: the models for the picker; `switching` names the one being loaded."""

    type: Literal["models"] = "models"
    items: list[ModelItem] = []
    switching: str | None = None


class ModelUse(_Message):
    """Page → core: run this model (the conversation goes on; the core answers `models`)."""

    type: Literal["model_use"] = "model_use"
    name: str = Field(pattern=MODEL_NAME)


class ModelConfigure(_Message):
    """Page → core: one model's own settings. A value given replaces the old one; `reset`
    names those that go back to the general setting (context_length) or the file's template."""

    type: Literal["model_configure"] = "model_configure"
    name: str = Field(pattern=MODEL_NAME)
    context_length: int | None = Field(None, ge=64, le=1 << 20)
    chat_template: str | None = Field(None, max_length=64 * 1024)  # "auto", "chatml" or a jinja template
    reset: list[Literal["context_length", "chat_template"]] = []


# --- both ways --------------------------------------------------------------------------------


class Ping(_Message):
    """Either way: answer with pong carrying the same seq (round-trip measurement)."""

    type: Literal["ping"] = "ping"
    seq: int
    t: float = 0.0  # sender's clock, echoed back


class Pong(_Message):
    """Either way: the answer to ping."""

    type: Literal["pong"] = "pong"
    seq: int
    t: float = 0.0


class Error(_Message):
    """Either way: the message the other side sent could not be used. The connection stays up."""

    type: Literal["error"] = "error"
    code: ErrorCode
    message: str = Field(max_length=4000)
    ref_type: str | None = Field(None, max_length=100)  # the `type` of the offending message


# --- avatar frames ----------------------------------------------------------------------------


class AvatarFrame(_Message):
    """Page → core, from a page without WebGPU: draw this pose natively and answer with one binary
    WebSocket frame (companion.avatar.stream: a 20-byte header, then width x height premultiplied
    RGBA), or with `error` (unavailable) when the core cannot draw it either. The page asks for
    the next frame only once this one arrived, and no sooner than the frame's interval_ms."""

    type: Literal["avatar_frame"] = "avatar_frame"
    seq: int = Field(ge=0, le=2**32 - 1)  # echoed in the frame's header
    width: int = Field(ge=16, le=512)  # companion.avatar.stream.MIN_SIZE .. MAX_SIZE
    height: int = Field(ge=16, le=512)
    pose: Pose  # companion.avatar.pose: what the page's animator made for this frame


PAGE_MESSAGES: tuple[type[_Message], ...] = (
    Hello, UserMessage, UserTyping, Stop, Reset, SettingsGet, SettingsSet, SettingsFileGet, SettingsFileSet,
    MemoryList, MemoryForget, MemoryEdit,
    MemoryUndo, AvatarFrame, Token, Logits, EngineAck, EngineFailed, EngineStatus, ModelList, ModelUse,
    ModelConfigure, Ping, Pong, Error,
)  # fmt: skip
CORE_MESSAGES: tuple[type[_Message], ...] = (
    Welcome, ReplyStarted, AssistantDelta, ReplyDone, ReplyStopped, ReplyError, AvatarState,
    AvatarVisemes, EngineStatus, EngineLoad, EngineReset, Generate, SettingsValues, SettingsFile, Memories, MemoryNoted, Models,
    Ping, Pong, Error,
)  # fmt: skip

# The unions are built from the tuples above so each list is written once.
PageMessage = Annotated[Union[PAGE_MESSAGES], Field(discriminator="type")]  # type: ignore[valid-type]  # noqa: UP007
CoreMessage = Annotated[Union[CORE_MESSAGES], Field(discriminator="type")]  # type: ignore[valid-type]  # noqa: UP007
page_message_adapter: TypeAdapter[Any] = TypeAdapter(PageMessage)
core_message_adapter: TypeAdapter[Any] = TypeAdapter(CoreMessage)


def type_of(model: type[_Message]) -> str:
    """The `type` tag of a message class."""
    return model.model_fields["type"].default


PAGE_TYPES = frozenset(type_of(m) for m in PAGE_MESSAGES)
CORE_TYPES = frozenset(type_of(m) for m in CORE_MESSAGES)


class MessageRejected(BridgeError):
    """A bridge message was refused; `code` is the ErrorCode sent back to the other side."""

    def __init__(self, code: str, message: str, ref_type: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.ref_type = ref_type

    def to_error(self) -> Error:
        """The `error` message that tells the sender what was wrong."""
        return Error(code=self.code, message=str(self)[:4000], ref_type=self.ref_type)  # type: ignore[arg-type]


def decode(raw: str | bytes, sender: Literal["page", "core"]) -> Any:
    """Parse one message sent by `sender`; raise MessageRejected saying why it is unusable."""
    size = len(raw.encode("utf-8") if isinstance(raw, str) else raw)
    if size > MAX_MESSAGE_BYTES:
        raise MessageRejected(
            "too_large", f"message is {size} bytes; the limit is {MAX_MESSAGE_BYTES}"
        )
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MessageRejected("malformed", f"message is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise MessageRejected("malformed", "message must be a JSON object")
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise MessageRejected("malformed", "message has no string `type` field")
    allowed, other = (PAGE_TYPES, CORE_TYPES) if sender == "page" else (CORE_TYPES, PAGE_TYPES)
    ref = kind[:100]
    if kind not in allowed:
        if kind in other:
            raise MessageRejected("not_allowed", f"the {sender} may not send `{ref}`", ref)
        raise MessageRejected("unknown_type", f"unknown message type `{ref}`", ref)
    adapter = page_message_adapter if sender == "page" else core_message_adapter
    try:
        return adapter.validate_python(obj)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'][1:]) or '(message)'}: {e['msg']}"
            for e in exc.errors(include_url=False)[:5]
        )
        raise MessageRejected("invalid", f"invalid `{ref}` message: {problems}", ref) from None


def encode(message: BaseModel) -> str:
    """Serialise a message to the JSON text sent on the wire."""
    return message.model_dump_json()
