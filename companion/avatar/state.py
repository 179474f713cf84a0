"""The avatar's state in the core: what it feels (emotion and intensity), what it is doing
(activity) and where its eyes should go (gaze hint). The conversation and the passing of time
change it; each change is one AvatarState bridge message, and the page animates between them
(ui/avatar/animator.js). Pure: every method takes the time, so tests need no clock.

    idle ──user types──► listening ──stops / sends──► idle
    any ──user_message──► thinking ──first text──► speaking ──reply ends──► idle
    idle ──REST_AFTER_S──► resting;  a reply's emotion fades to neutral CALM_AFTER_S after it
"""

from __future__ import annotations

from typing import Any

from companion.bridge.messages import AvatarState
from companion.emotion import Emotion

REST_AFTER_S = 120.0  # idle this long: resting (drowsy eyes, slow breath)
CALM_AFTER_S = 45.0  # this long after a reply, its emotion fades back to neutral
LISTEN_TIMEOUT_S = 8.0  # no user_typing(true) for this long: stop listening (the page went away)
CALM_TRANSITION_MS = 2500  # the slow fade back to neutral


class AvatarStateMachine:
    """The current AvatarState and the timed changes ahead of it."""

    def __init__(self, now: float) -> None:
        self.state = AvatarState()
        self._idle_since = now  # when it last became idle (or the user last did something)
        self._listen_until: float | None = None
        self._calm_at: float | None = None

    def _set(self, **changes: Any) -> AvatarState | None:
        """Apply changes; the new state if anything changed."""
        new = self.state.model_copy(update=changes)
        if new == self.state:
            return None
        self.state = new
        return new

    def _idle(self, now: float) -> AvatarState | None:
        self._idle_since = now
        self._listen_until = None
        return self._set(activity="idle", gaze="wander")

    # -- the conversation --

    def typing(self, on: bool, now: float) -> AvatarState | None:
        """The user types in the composer (on) or stopped; ignored while a reply runs."""
        if self.state.activity in ("thinking", "speaking"):
            return None
        if not on:
            return self._idle(now) if self.state.activity == "listening" else None
        self._idle_since = now
        self._listen_until = now + LISTEN_TIMEOUT_S
        return self._set(activity="listening", gaze="user")

    def reply_started(self, now: float) -> AvatarState | None:
        """The user sent a message: read it (eyes down at the text) and think."""
        self._listen_until = None
        self._calm_at = None
        return self._set(activity="thinking", gaze="text")

    def speaking(self, now: float) -> AvatarState | None:
        """The reply's first text appeared."""
        return self._set(activity="speaking", gaze="user")

    def feel(self, emotion: Emotion, intensity: float, transition_ms: int, now: float) -> AvatarState | None:
        """Show an emotion (neutral, or intensity 0, is the plain face)."""
        intensity = 0.0 if emotion == "neutral" else min(1.0, max(0.0, intensity))
        return self._set(emotion=emotion, intensity=round(intensity, 3), transition_ms=transition_ms)

    def reply_ended(self, now: float) -> AvatarState | None:
        """The reply is over (done, stopped or failed): back to idle; the emotion lingers."""
        self._calm_at = now + CALM_AFTER_S
        return self._idle(now)

    # -- time --

    def deadline(self) -> float | None:
        """When the next timed change is due (None: nothing is pending)."""
        a = self.state.activity
        due = []
        if a == "listening" and self._listen_until is not None:
            due.append(self._listen_until)
        if a == "idle":
            due.append(self._idle_since + REST_AFTER_S)
        if a in ("idle", "resting", "listening") and self._calm_at is not None and self.state.intensity > 0:
            due.append(self._calm_at)
        return min(due) if due else None

    def tick(self, now: float) -> AvatarState | None:
        """Apply every timed change due by `now`; the new state if it changed."""
        changes: dict[str, Any] = {}
        a = self.state.activity
        if a == "listening" and self._listen_until is not None and now >= self._listen_until:
            self._listen_until = None
            self._idle_since = now
            changes.update(activity="idle", gaze="wander")
        elif a == "idle" and now >= self._idle_since + REST_AFTER_S:
            changes.update(activity="resting", gaze="down")
        if self._calm_at is not None and now >= self._calm_at and a != "thinking" and a != "speaking":
            self._calm_at = None
            if self.state.intensity > 0:
                changes.update(emotion="neutral", intensity=0.0, transition_ms=CALM_TRANSITION_MS)
        return self._set(**changes) if changes else None
