"""The avatar's pose for one frame: what the WGSL avatar (shaders/avatar*.wgsl) draws. It is the
contract between the animator (which turns the core's avatar-state changes into a pose per
frame, in the page or natively) and the renderers (WebGPU in the page, wgpu-py natively): both
pack the same fields, in this order, into the shader's uniform block. Defined once here and
exported in the bridge schema, so the page never re-types it."""

from __future__ import annotations

import struct
from typing import Literal, get_args

from pydantic import BaseModel, Field

from companion.emotion import EMOTIONS, Emotion

Viseme = Literal["closed", "aa", "ee", "ih", "oh", "ou"]  # mouth shapes, in uniform order
VISEMES: tuple[Viseme, ...] = get_args(Viseme)
Activity = Literal["idle", "listening", "thinking", "speaking", "resting"]
ACTIVITIES: tuple[Activity, ...] = get_args(Activity)

# (field, number of f32 slots); the uniform block is these f32s in order, padded to 16 bytes.
POSE_LAYOUT: tuple[tuple[str, int], ...] = (
    ("time", 1),  # seconds since the avatar started (idle motion, hair)
    ("blink", 1),  # 0 eyes open .. 1 closed
    ("gaze_x", 1),  # -1 (avatar's right) .. 1 (left)
    ("gaze_y", 1),  # -1 (down) .. 1 (up)
    ("head_yaw", 1),  # radians, small (|x| < 0.35)
    ("head_pitch", 1),  # radians, small
    ("head_roll", 1),  # radians, small
    ("breath", 1),  # 0..1 chest/shoulder rise
    ("sway", 1),  # -1..1 body sway
    ("blush", 1),  # 0..1 extra blush on top of the emotion's own
    ("talk", 1),  # 0..1 how open the mouth is overall while speaking (scales the visemes)
    ("activity", 1),  # index into ACTIVITIES (thinking shows a thought cue, resting dims the eyes)
    ("emotion", len(EMOTIONS)),  # weight per emotion in EMOTIONS order, summing to <= 1
    ("viseme", len(VISEMES)),  # weight per viseme in VISEMES order, summing to <= 1
)
POSE_FLOATS = sum(n for _, n in POSE_LAYOUT)
POSE_BYTES = (POSE_FLOATS * 4 + 15) // 16 * 16


class Pose(BaseModel):
    """One frame of the avatar. Weights are blended by the animator; the shader only draws."""

    time: float = 0.0
    blink: float = Field(0.0, ge=0.0, le=1.0)
    gaze_x: float = Field(0.0, ge=-1.0, le=1.0)
    gaze_y: float = Field(0.0, ge=-1.0, le=1.0)
    head_yaw: float = 0.0
    head_pitch: float = 0.0
    head_roll: float = 0.0
    breath: float = Field(0.0, ge=0.0, le=1.0)
    sway: float = Field(0.0, ge=-1.0, le=1.0)
    blush: float = Field(0.0, ge=0.0, le=1.0)
    talk: float = Field(0.0, ge=0.0, le=1.0)
    activity: float = 0.0
    emotion: list[float] = Field(default_factory=lambda: [1.0] + [0.0] * (len(EMOTIONS) - 1))
    viseme: list[float] = Field(default_factory=lambda: [1.0] + [0.0] * (len(VISEMES) - 1))

    @classmethod
    def still(cls, emotion: Emotion = "neutral", viseme: str = "closed", intensity: float = 1.0) -> Pose:
        """A pose showing one emotion and one mouth shape (snapshots, the gallery)."""
        if emotion not in get_args(Emotion):
            raise ValueError(f"unknown emotion {emotion!r}: use one of {', '.join(EMOTIONS)}")
        if viseme not in VISEMES:
            raise ValueError(f"unknown viseme {viseme!r}: use one of {', '.join(VISEMES)}")
        emo = [0.0] * len(EMOTIONS)
        emo[EMOTIONS.index(emotion)] = intensity
        if emotion != "neutral":
            emo[0] = 1.0 - intensity
        vis = [0.0] * len(VISEMES)
        vis[VISEMES.index(viseme)] = 1.0
        return cls(emotion=emo, viseme=vis, talk=0.0 if viseme == "closed" else 1.0)

    def pack(self) -> bytes:
        """The uniform block's bytes (little-endian f32s in POSE_LAYOUT order, zero-padded)."""
        values: list[float] = []
        for name, n in POSE_LAYOUT:
            v = getattr(self, name)
            values += [float(x) for x in v] if n > 1 else [float(v)]
            if n > 1 and len(v) != n:
                raise ValueError(f"pose field {name} has {len(v)} values, expected {n}")
        raw = struct.pack(f"<{len(values)}f", *values)
        return raw + b"\0" * (POSE_BYTES - len(raw))
