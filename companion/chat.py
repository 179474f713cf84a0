"""The conversation core: turns a user message into a streamed reply.

It owns the message history, renders the chat template, reuses the engine's KV cache for the
shared prompt prefix, samples until an end-of-generation id, detokenizes incrementally,
turns emotion tags into avatar cues, and falls back to another engine if one fails mid-reply
(re-feeding the context so the turn is not lost). Memory and persona plug in through
`PromptBuilder` and `ReplyRecorder` hooks."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from companion._delegate import delegate
from companion.avatar.infer import ReplyEmotion, shared_reader
from companion.emotion import Emotion, EmotionFilter
from companion.engines.base import Engine
from companion.errors import CompanionError, EngineError
from companion.memory.notes import MemoryNote
from companion.model.gguf_model import GGUFModel
from companion.sampling import Sampler, SamplingParams

DEFAULT_SYSTEM = "You are a helpful assistant."
ASSISTANT_NAMES = ("assistant",)  # speaker labels a reply may open with, besides the character's


class SpeakerPrefixFilter:
    """Drops the speaker label a small model sometimes opens its reply with ("Mira: Hey!",
    "**Mira:** Hey!", "Assistant: Sure"): the character speaks in its own voice, the window
    already says who it is. Feed streamed text, get what to show: the reply's first characters
    are held until they either complete `name:` (dropped with the spaces after it) or cannot
    become one (released unchanged). Names match case-insensitively; a label later in the reply
    is text."""

    HOLD = 64  # characters held at most while undecided

    def __init__(self, names: Sequence[str]) -> None:
        self._names = sorted({n.strip().lower() for n in names if n and n.strip()}, key=len, reverse=True)
        self._buf = ""
        self._done = not self._names

    def feed(self, text: str, final: bool = False) -> str:
        if self._done:
            return text
        self._buf += text
        start, undecided = self._judge(self._buf)
        if start is None and undecided and not final and len(self._buf) < self.HOLD:
            return ""
        self._done = True
        out, self._buf = self._buf, ""
        return out[start:] if start is not None else out

    def _judge(self, buf: str) -> tuple[int | None, bool]:
        """(where the reply starts after a complete label, or None; whether more text could
        still complete one)."""
        head = buf.lstrip().lstrip("*")
        undecided = False
        for name in self._names:
            if len(head) < len(name):
                undecided |= name.startswith(head.lower())
                continue
            if head[: len(name)].lower() != name:
                continue
            after = head[len(name) :].lstrip("* ")
            if not after:
                undecided = True  # "Mira" or "Mira**": the colon may follow
            elif after[0] == ":":
                tail = after[1:].lstrip("* ")
                if tail.strip():
                    return len(buf) - len(tail), False
                undecided = True  # "Mira:" so far: the spaces after it go too
        return None, undecided


@dataclass
class TextDelta:
    """Visible reply text, as it streams."""

    text: str


@dataclass
class AvatarCue:
    """The reply expressed an emotion: a `[tag]` the model wrote, or read from its wording
    (companion.avatar.infer, per finished sentence) when it wrote none."""

    emotion: Emotion
    intensity: float = 0.85  # 0..1; a tag shows clearly, an inferred cue as strongly as it reads
    source: Literal["tag", "text"] = "tag"


@dataclass
class EngineSwitch:
    """The engine failed and another one took over mid-reply."""

    engine: str
    adapter: str
    reason: str


@dataclass
class ReplyDone:
    """The reply ended: done (end of generation or token limit), stopped by the user, or error."""

    status: Literal["done", "stopped", "error"]
    text: str
    stats: dict[str, float | int | str] = field(default_factory=dict)
    error: str | None = None


Event = TextDelta | AvatarCue | EngineSwitch | MemoryNote | ReplyDone  # MemoryNote: an explicit
#   "remember…" / "forget…" was acted on (from the recorder, before the reply streams)


class PromptBuilder(Protocol):
    """Assembles the chat messages for the next reply (persona, memories, summary, turns)."""

    def __call__(self, history: Sequence[dict[str, str]], user_text: str, budget_tokens: int) -> list[dict[str, str]]: ...


class ReplyRecorder(Protocol):
    """Persists a turn: user message at send, reply checkpoints while streaming, final reply."""

    def user_message(self, text: str, n_tokens: int) -> Sequence[MemoryNote] | None:
        """Store the message; returns a note for each explicit memory request it acted on."""
        ...

    def reply_started(self) -> None: ...
    def reply_checkpoint(self, text: str) -> None: ...
    def reply_finished(self, text: str, status: str, stats: dict) -> None: ...


def generate_ids(
    engine: Engine,
    new_ids: Sequence[int],
    sampler: Sampler,
    history: list[int],
    eog_ids: frozenset[int],
    max_new_tokens: int,
    should_stop: Callable[[], bool] = lambda: False,
) -> Iterator[int]:
    """Feed new_ids, then sample token after token until an end-of-generation id, the limit,
    a full context or should_stop(). Yields each sampled id (the final EOG id too)."""
    feed = list(new_ids)
    for _ in range(max_new_tokens):
        if should_stop() or engine.n_past + len(feed) >= engine.n_ctx:
            return
        tok = engine.next_token(feed, sampler, history)
        history.append(tok)
        yield tok
        if tok in eog_ids:
            return
        feed = [tok]


class ChatSession:
    """One conversation with one model."""

    def __init__(
        self,
        model: GGUFModel,
        engine: Engine,
        sampling: SamplingParams | None = None,
        system_prompt: str = DEFAULT_SYSTEM,
        max_new_tokens: int = 512,
        fallback: Callable[[], Engine] | None = None,
        prompt_builder: PromptBuilder | None = None,
        recorder: ReplyRecorder | None = None,
    ):
        self.model = model
        self.tokenizer = model.tokenizer
        self.template = model.chat_template
        self.engine = engine
        self.sampling = sampling or SamplingParams()
        self.system_prompt = system_prompt
        self.max_new_tokens = max_new_tokens
        self.fallback = fallback
        self.prompt_builder = prompt_builder
        self.recorder = recorder
        self.history: list[dict[str, str]] = []
        self.memory: Any = None  # the ConversationMemory when one is attached
        self._cached: list[int] = []  # token ids currently in the engine's KV cache
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.replies = 0
        self.speaker_names: Sequence[str] = ASSISTANT_NAMES  # labels dropped from a reply's start

    # -- controls (thread-safe) ---------------------------------------------------------

    def stop(self) -> None:
        """Stop the reply being generated; the session stays usable."""
        self._stop.set()

    def reset(self) -> None:
        """Start a new conversation (the old one stays in the database, if any)."""
        with self._lock:
            self.history.clear()
            if self.memory is not None:
                self.memory.new_conversation()

    def undo_memory(self, undo_id: int) -> MemoryNote | None:
        """Revert what an explicit memory request changed (a note's Undo); None if unknown."""
        return self.memory.undo(undo_id) if self.memory is not None else None

    def set_system(self, text: str) -> None:
        """Use this system prompt instead of the character's persona (and memory) from now on."""
        with self._lock:
            self.system_prompt = text
            self.prompt_builder = None

    engine_name: str = delegate("engine", "name")
    adapter: str = delegate("engine", "adapter")

    # -- prompt -------------------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, parse_special=False))

    def prompt_messages(self, user_text: str) -> list[dict[str, str]]:
        """System prompt + history + the new user message, fitted to the context."""
        budget = self.engine.n_ctx - self.max_new_tokens
        if self.prompt_builder is not None:
            return self.prompt_builder(self.history, user_text, budget)
        msgs = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        turns = [*self.history, {"role": "user", "content": user_text}]
        # drop the oldest whole turns until it fits; never the system prompt or the new message
        while len(turns) > 1 and len(self._encode_messages(msgs + turns)) > budget:
            turns = turns[2:] if len(turns) > 2 else turns[1:]
        return msgs + turns

    def _encode_messages(self, messages: Sequence[dict[str, str]]) -> list[int]:
        return self.tokenizer.encode(self.template.render(messages, add_generation_prompt=True))

    def complete(self, messages: list[dict[str, str]], max_tokens: int = 128) -> str:
        """A one-off greedy completion on the same engine (summaries, memory extraction).
        It does not touch the history; the KV-cache bookkeeping is reset so the next turn
        re-feeds its prompt."""
        ids = self._encode_messages(messages)
        room = self.engine.n_ctx - max_tokens
        if len(ids) > room:
            ids = ids[-room:]
        self._cached = []
        self.engine.reset()
        out: list[int] = []
        sampler = Sampler(SamplingParams.greedy_params())
        for tok in generate_ids(self.engine, ids, sampler, list(ids), self.template.eog_ids, max_tokens, self._stop.is_set):
            if tok in self.template.eog_ids:
                break
            out.append(tok)
        self.engine.reset()
        return self.tokenizer.decode(out, skip_special=True).strip()

    # -- a turn -------------------------------------------------------------------------

    def send(self, user_text: str, sampling: SamplingParams | None = None) -> Iterator[Event]:
        """Generate the reply to user_text, yielding events; the last one is ReplyDone."""
        with self._lock:
            self._stop.clear()
            params = sampling or self.sampling
            if sampling is None and self.sampling.seed == 0 and not params.greedy:
                params = params.model_copy(update={"seed": int(time.time_ns() % 2**31) + self.replies})
            self.replies += 1
            yield from self._turn(user_text, params)

    def _turn(self, user_text: str, params: SamplingParams) -> Iterator[Event]:
        t0 = time.perf_counter()
        try:
            prompt_ids = self._encode_messages(self.prompt_messages(user_text))
        except CompanionError as exc:
            yield ReplyDone("error", "", error=str(exc))
            return
        if len(prompt_ids) >= self.engine.n_ctx:
            yield ReplyDone("error", "", error=f"prompt of {len(prompt_ids)} tokens does not fit the {self.engine.n_ctx}-token context")
            return
        notes: Sequence[MemoryNote] = ()
        if self.recorder:
            notes = self.recorder.user_message(user_text, self.count_tokens(user_text)) or ()
            self.recorder.reply_started()
        self.history.append({"role": "user", "content": user_text})
        yield from notes  # shown whatever the model replies: it need not obey anything

        sampler = Sampler(params)
        eog = self.template.eog_ids
        out_ids: list[int] = []
        text_parts: list[str] = []
        decoder = self.tokenizer.incremental()
        emo = EmotionFilter()
        label = SpeakerPrefixFilter(self.speaker_names)
        reader = shared_reader()
        reader.warm_up()  # the first reply's first sentences may be read by the lexicon alone
        feeling = ReplyEmotion(reader)  # the wording's emotion, sentence by sentence, until a tag
        t_first: float | None = None
        status: Literal["done", "stopped", "error"] = "done"
        error: str | None = None
        n_prompt_new = 0

        def show(visible: str, cues: Sequence[Emotion], final: bool = False) -> Generator[Event, None, str]:
            """The filter's cues, then its visible text less a leading speaker label, stored
            before it is shown (a crash can lose nothing the user saw); returns the text."""
            for c in cues:
                yield AvatarCue(c)
            visible = label.feed(visible, final)
            if visible:
                text_parts.append(visible)
                if self.recorder:
                    self.recorder.reply_checkpoint("".join(text_parts))
                yield TextDelta(visible)
            return visible

        while True:
            # reuse the KV cache for the longest shared prefix of what it holds and what we need
            context = prompt_ids + out_ids
            keep = _common_prefix(self._cached, context[:-1] if out_ids else context)
            keep = min(keep, len(context) - 1)
            try:
                self.engine.reset(keep)
                self._cached = context[:keep]
                n_prompt_new = max(n_prompt_new, len(prompt_ids) - keep)
                history = list(context)
                for tok in generate_ids(
                    self.engine, context[keep:], sampler, history, eog,
                    self.max_new_tokens - len(out_ids), self._stop.is_set,
                ):  # fmt: skip
                    if t_first is None:
                        t_first = time.perf_counter()
                    self._cached = history[:-1]
                    out_ids.append(tok)
                    if tok in eog:
                        break
                    visible = yield from show(*emo.feed(decoder.feed(tok)))
                    if visible and not emo.cues:
                        for r in feeling.feed(visible):
                            yield AvatarCue(r.emotion, r.intensity, "text")
                break
            except EngineError as exc:
                if self.fallback is None:
                    status, error = "error", str(exc)
                    break
                failed = self.engine.name
                try:
                    self.engine = self.fallback()
                    self.fallback = None
                except CompanionError as exc2:
                    status, error = "error", f"{exc}; fallback failed too: {exc2}"
                    break
                self._cached = []
                yield EngineSwitch(self.engine.name, self.engine.adapter, f"{failed} engine failed: {exc}")
        tail = yield from show(*emo.feed(decoder.flush(), final=True), final=True)
        if self._stop.is_set() and status == "done":
            status = "stopped"
        text = "".join(text_parts)
        if not emo.cues and text:
            feeling.feed(tail)
            for r in feeling.finish():
                yield AvatarCue(r.emotion, r.intensity, "text")
        self.history.append({"role": "assistant", "content": text})
        t_end = time.perf_counter()
        n_gen = len(out_ids)
        stats: dict[str, float | int | str] = {
            "engine": self.engine.name,
            "prompt_tokens": len(prompt_ids),
            "prompt_tokens_evaluated": n_prompt_new,
            "generated_tokens": n_gen,
            "time_to_first_token_s": round((t_first or t_end) - t0, 4),
            "decode_tok_per_s": round((n_gen - 1) / (t_end - t_first), 2) if t_first and n_gen > 1 and t_end > t_first else 0.0,
        }
        if self.recorder:
            self.recorder.reply_finished(text, status, stats)
        yield ReplyDone(status, text, stats, error)


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i
