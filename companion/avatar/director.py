"""The avatar director: turns the conversation into avatar bridge messages. Reply events
(companion.chat's TextDelta, AvatarCue, ReplyDone), the user typing and the passing of time go
in; AvatarState changes (companion.avatar.state) and AvatarVisemes tracks (companion.avatar.
lipsync) come out, for the bridge to send. It never sends per-frame values: the page animates.

Thread-safe: reply events arrive on the chat worker thread (where the lip sync's phonemizer
runs, off the event loop), the user's typing and the timers on the bridge's event loop."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, cast, get_args

from companion import chat
from companion.avatar.lipsync import TextVisemes, VisemeSource, VisemeTrack
from companion.avatar.state import AvatarStateMachine
from companion.bridge.messages import AvatarState, AvatarVisemes
from companion.emotion import Emotion

TAG_TRANSITION_MS = 300  # the model said how it feels: show it promptly
TEXT_TRANSITION_MS = 700  # read from the words: ease in, it may be revised next sentence
_EMOTIONS = frozenset(get_args(Emotion))

AvatarMessage = AvatarState | AvatarVisemes


class AvatarDirector:
    """One avatar, shared by every page: the state machine, the reply clock and the lip sync."""

    def __init__(
        self,
        visemes: Callable[[], VisemeSource] = TextVisemes,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._make_visemes = visemes
        self._visemes: VisemeSource | None = None  # made on the first reply (it may start espeak-ng)
        self._lock = threading.Lock()
        self.machine = AvatarStateMachine(clock())
        self._turn = 0
        self._t0 = 0.0  # the reply clock's zero (seconds, clock())
        self._in_reply = False

    @property
    def state(self) -> AvatarState:
        """What the avatar shows now (sent to a page that connects)."""
        return self.machine.state

    def _now_ms(self, now: float) -> float:
        return (now - self._t0) * 1000.0

    def _tracks(self, tracks: list[VisemeTrack]) -> list[AvatarMessage]:
        return [
            AvatarVisemes(turn=self._turn, start_ms=max(0, t.start_ms), visemes=list(t.spans))
            for t in tracks
        ]

    # -- the user --

    def typing(self, on: bool) -> list[AvatarMessage]:
        with self._lock:
            return _some(self.machine.typing(on, self._clock()))

    # -- a reply --

    def reply_started(self, turn: int) -> list[AvatarMessage]:
        """Call right after sending reply_started: the reply clock starts now."""
        with self._lock:
            now = self._clock()
            self._turn, self._t0, self._in_reply = turn, now, True
            if self._visemes is None:
                self._visemes = self._make_visemes()
            self._visemes.start()
            return _some(self.machine.reply_started(now))

    def on_event(self, event: chat.Event) -> list[AvatarMessage]:
        """The avatar messages that go out right after this reply event."""
        with self._lock:
            now = self._clock()
            if isinstance(event, chat.TextDelta):
                out = _some(self.machine.speaking(now)) if event.text.strip() else []
                if self._visemes is not None and self._in_reply:
                    out += self._tracks(self._visemes.text(event.text, self._now_ms(now)))
                return out
            if isinstance(event, chat.AvatarCue):
                emotion = cast(Emotion, event.emotion) if event.emotion in _EMOTIONS else "neutral"
                ms = TAG_TRANSITION_MS if event.source == "tag" else TEXT_TRANSITION_MS
                return _some(self.machine.feel(emotion, event.intensity, ms, now))
            if isinstance(event, chat.ReplyDone):
                return self._end(event.status != "done", now)
            return []

    def reply_ended(self, stopped: bool = False) -> list[AvatarMessage]:
        """The reply ended without a ReplyDone event (a crash): close the mouth, go idle."""
        with self._lock:
            return self._end(stopped, self._clock())

    def _end(self, stopped: bool, now: float) -> list[AvatarMessage]:
        if not self._in_reply:
            return []
        self._in_reply = False
        out: list[AvatarMessage] = []
        if self._visemes is not None:
            out += self._tracks(self._visemes.end(self._now_ms(now), stopped))
        return out + _some(self.machine.reply_ended(now))

    # -- time --

    def poll(self) -> list[AvatarMessage]:
        """Timed changes due now (resting, calming down) and tracks an audio source finished."""
        with self._lock:
            now = self._clock()
            out = _some(self.machine.tick(now))
            if self._visemes is not None and self._in_reply:
                out += self._tracks(self._visemes.poll(self._now_ms(now)))
            return out

    def seconds_to_deadline(self) -> float | None:
        """How long until poll() has something to do (None: nothing is pending)."""
        with self._lock:
            due = self.machine.deadline()
            return None if due is None else max(0.0, due - self._clock())


def _some(state: Any) -> list[AvatarMessage]:
    return [] if state is None else [state]
