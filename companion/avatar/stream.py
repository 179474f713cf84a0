"""Avatar frames for a page without WebGPU (Qt WebEngine on Linux, or no navigator.gpu): the page's
animator still makes the Pose of every frame and sends it (bridge message `avatar_frame`); this
renders it natively (companion.avatar.render) and the bridge answers with one binary WebSocket
frame, which the page draws with putImageData (ui/avatar/view.js).

Pacing: the page asks for the next frame only once the last one arrived, so at most one is in
flight per page; a request arriving while one renders replaces the waiting one (the newest pose
wins). Each frame says how long the page should wait before asking again: 1/30 s, 1/10 s while
the model is decoding (the avatar shares its device), and never less than twice the last
render, so on a CPU rasterizer the avatar takes at most about half of one core.

Binary frame (little-endian): a 20-byte header, then height rows of width premultiplied RGBA
pixels, as the shader wrote them (the page turns the partly transparent ones to straight alpha
for ImageData: cheaper there than here):
  0  magic        4 bytes  b"AVF1"
  4  seq          u32      the request's seq
  8  width        u16
  10 height       u16
  12 interval_ms  u16      ask for the next frame no sooner than this
  14 flags        u16      bit 0: premultiplied alpha (always set)
  16 render_ms    f32      how long the render took (diagnostics)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import struct
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np

from companion.avatar.pose import Pose
from companion.avatar.render import AvatarRenderer
from companion.errors import EngineUnavailable

log = logging.getLogger(__name__)

MAGIC = b"AVF1"
HEADER = struct.Struct("<4sIHHHHf")  # magic, seq, width, height, interval_ms, flags, render_ms
FLAG_PREMULTIPLIED = 1
TARGET_FPS = 30.0
BUSY_FPS = 10.0  # while the model decodes on the same device
MIN_SIZE, MAX_SIZE = 16, 512  # frame sides the page may ask for (bytes per frame <= 1 MiB)


def encode_frame(seq: int, rgba: np.ndarray, interval_ms: float, render_ms: float) -> bytes:
    """One binary frame: the header, then the (H, W, 4) premultiplied pixels."""
    h, w = rgba.shape[:2]
    head = HEADER.pack(MAGIC, seq & 0xFFFFFFFF, w, h, min(int(round(interval_ms)), 0xFFFF), FLAG_PREMULTIPLIED, render_ms)
    return head + np.ascontiguousarray(rgba, dtype=np.uint8).tobytes()


def decode_frame(data: bytes) -> tuple[dict[str, Any], np.ndarray]:
    """The header fields and (H, W, 4) pixels of a binary frame (tests, diagnostics)."""
    magic, seq, w, h, interval_ms, flags, render_ms = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise ValueError(f"not an avatar frame (magic {magic!r})")
    pixels = np.frombuffer(data, np.uint8, w * h * 4, HEADER.size).reshape(h, w, 4)  # (H, W, 4) u8
    head = {"seq": seq, "width": w, "height": h, "interval_ms": interval_ms, "flags": flags, "render_ms": render_ms}
    return head, pixels


def interval_ms(busy: bool, render_ms: float) -> float:
    """How long the page should wait before asking for the next frame."""
    return max(1000.0 / (BUSY_FPS if busy else TARGET_FPS), 2.0 * render_ms)


@dataclass
class _Request:
    seq: int
    width: int
    height: int
    pose: Pose
    busy: bool


class FrameStream:
    """Renders the frames pages ask for, on a thread of its own, one request at a time per page.
    Methods are called on the bridge's event loop; `send(key, frame)` and `fail(key, reason)`
    are called there too."""

    def __init__(
        self,
        send: Callable[[Hashable, bytes], None],
        fail: Callable[[Hashable, str], None],
        renderer: Callable[[], AvatarRenderer] = AvatarRenderer,
    ) -> None:
        self._send = send
        self._fail = fail
        self._make = renderer
        self._renderer: AvatarRenderer | None = None
        self._broken: str | None = None  # why frames cannot be drawn here, once known
        self._pending: dict[Hashable, _Request] = {}
        self._running: set[Hashable] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="companion-avatar")
        self.frames = 0  # rendered so far (diagnostics)
        self.render_ms = 0.0  # the last render

    def request(self, key: Hashable, seq: int, width: int, height: int, pose: Pose, busy: bool) -> None:
        """A page (`key`) asks for `pose` drawn at width x height; it gets one frame back."""
        if self._broken is not None:
            self._fail(key, self._broken)
            return
        self._pending[key] = _Request(seq, width, height, pose, busy)
        if key not in self._running:
            self._running.add(key)
            task = asyncio.get_running_loop().create_task(self._drain(key))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def forget(self, key: Hashable) -> None:
        """The page went away."""
        self._pending.pop(key, None)

    async def _drain(self, key: Hashable) -> None:
        loop = asyncio.get_running_loop()
        try:
            while (req := self._pending.pop(key, None)) is not None:
                try:
                    frame = await loop.run_in_executor(self._thread, self._render, req)
                except EngineUnavailable as exc:
                    self._broken = str(exc)
                    log.warning("avatar: native frames unavailable: %s", exc)
                    self._fail(key, self._broken)
                    return
                self._send(key, frame)
        finally:
            self._running.discard(key)

    def _render(self, req: _Request) -> bytes:
        if self._renderer is None:
            self._renderer = self._make()
        t0 = time.perf_counter()
        rgba = self._renderer.render(req.pose, req.width, req.height)  # (H, W, 4) u8 premultiplied
        ms = (time.perf_counter() - t0) * 1000.0
        self.frames += 1
        self.render_ms = ms
        return encode_frame(req.seq, rgba, interval_ms(req.busy, ms), ms)

    async def aclose(self) -> None:
        """Drop pending requests and stop waiting for renders (on the loop, before it stops; a
        render already under way finishes on its thread)."""
        self._pending.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def close(self) -> None:
        """Stop rendering (pending requests are dropped)."""
        self._pending.clear()
        self._thread.shutdown(wait=False, cancel_futures=True)
