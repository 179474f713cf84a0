"""Pet mode's window, platform-neutral parts: where it sits (remembered per screen), how big
it is, and which of its pixels take clicks.

The pet is a frameless, transparent, always-on-top window showing only the page's avatar
(ui/pet.html). Clicks on its empty pixels fall through to the desktop below: the window's input
region is the built-in avatar's outline, measured once per window size and avatar version by
drawing the avatar natively (companion.avatar.render) in the poses that reach furthest (head
turned and tilted, swaying, breathing in, every emotion's cue) and taking their union, grown by
a few pixels; it is kept in the data folder (pet-outline.json). The drawing happens in a
short-lived child process at a lower priority (companion.shell.pet_outline), never in the app's
own process. Until it is ready, and where nothing can draw it (no adapter, the child failed) or
a VRM model is chosen (its outline is the page's, not known here), the input region is a disc
around the avatar. On X11 the region is the SHAPE extension's
input shape (drawing stays whole), set here through libXext; elsewhere under Qt (Wayland) it is
Qt's mask, which Qt's Wayland plugin turns into the surface's input region. Windows and macOS
(pywebview without Qt) get the frameless, transparent, on-top window and pywebview's drag, but
no input region.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from companion.settings import home_dir

if TYPE_CHECKING:
    import numpy as np

    from companion.avatar.pose import Pose

log = logging.getLogger(__name__)

STATE_FILE = "shell-state.json"
SIZE = 220  # the pet window's side, in logical pixels
# The avatar's disc, as a fraction of the window's side: ui/avatar.js draws the orb with a
# radius of 0.30-0.32 of the canvas (breathing, talking) centred; clicks count a bit beyond.
HIT_RADIUS = 0.36
MARGIN = 24  # default distance from the screen's bottom-right corner
OUTLINE_FILE = "pet-outline.json"
OUTLINE_GROW = 3  # logical pixels the union of the extreme poses is grown by (edges, poses between)
ALPHA_MIN = 8  # of 255: a pixel this opaque is part of the avatar

Rect = tuple[int, int, int, int]  # x, y, w, h in device pixels


@dataclass(frozen=True)
class Screen:
    """A monitor's name and available area (logical pixels)."""

    name: str
    x: int
    y: int
    width: int
    height: int

    @property
    def key(self) -> str:
        """Names are not unique across docks and resolutions: the key includes the size."""
        return f"{self.name}@{self.width}x{self.height}"

    def contains(self, px: int, py: int) -> bool:
        return self.x <= px < self.x + self.width and self.y <= py < self.y + self.height


class ShellState:
    """Window state that is not a setting: the pet's position per screen (shell-state.json in
    the data folder, written atomically)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or home_dir() / STATE_FILE
        self.data: dict = {}
        try:
            loaded = json.loads(self.path.read_text(encoding="utf-8"))
            if isinstance(loaded, dict):
                self.data = loaded
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable %s (%s)", self.path, exc)

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2), encoding="utf-8")
        os.replace(tmp, self.path)

    def pet_position(self, screen: Screen, size: int = SIZE) -> tuple[int, int]:
        """Where the pet goes on `screen`: where it was last left there, else bottom right;
        always kept inside the screen (the screen may have shrunk since)."""
        saved = self.data.get("pet_positions", {}).get(screen.key)
        if isinstance(saved, list) and len(saved) == 2 and all(isinstance(v, int) for v in saved):
            x, y = saved
        else:
            x = screen.x + screen.width - size - MARGIN
            y = screen.y + screen.height - size - MARGIN
        x = min(max(x, screen.x), screen.x + max(0, screen.width - size))
        y = min(max(y, screen.y), screen.y + max(0, screen.height - size))
        return x, y

    def remember_pet(self, screen: Screen, x: int, y: int) -> None:
        self.data.setdefault("pet_positions", {})[screen.key] = [int(x), int(y)]
        self.data["pet_screen"] = screen.key
        self.save()

    def last_pet_screen(self) -> str | None:
        value = self.data.get("pet_screen")
        return value if isinstance(value, str) else None


def pick_screen(screens: list[Screen], last_key: str | None) -> Screen:
    """The screen the pet was last on, if still attached; else the first (primary)."""
    for s in screens:
        if s.key == last_key:
            return s
    return screens[0]


def screen_at(screens: list[Screen], x: int, y: int, size: int = SIZE) -> Screen:
    """The screen holding the pet's centre (the nearest one when it is off every screen)."""
    cx, cy = x + size // 2, y + size // 2
    for s in screens:
        if s.contains(cx, cy):
            return s

    def distance(s: Screen) -> int:
        dx = max(s.x - cx, 0, cx - (s.x + s.width))
        dy = max(s.y - cy, 0, cy - (s.y + s.height))
        return dx * dx + dy * dy

    return min(screens, key=distance)


def disc_rows(width: int, height: int, radius: float = HIT_RADIUS) -> list[tuple[int, int, int, int]]:
    """The avatar's disc as (x, y, w, h) rows of device pixels: the input region."""
    side = min(width, height)
    r = side * radius
    cx, cy = width / 2, height / 2
    rows = []
    top, bottom = max(0, int(cy - r)), min(height, int(cy + r) + 1)
    for y in range(top, bottom):
        dy = y + 0.5 - cy
        if abs(dy) >= r:
            continue
        half = (r * r - dy * dy) ** 0.5
        x0, x1 = max(0, round(cx - half)), min(width, round(cx + half))
        if x1 > x0:
            rows.append((x0, y, x1 - x0, 1))
    return rows


def logical_rows(rects: list[Rect], ratio: float) -> list[Rect]:
    """Device-pixel rectangles in logical pixels (Qt's mask), each rounded outwards."""
    if ratio == 1:
        return list(rects)
    out = []
    for x, y, w, h in rects:
        x0, y0 = math.floor(x / ratio), math.floor(y / ratio)
        x1, y1 = math.ceil((x + w) / ratio), math.ceil((y + h) / ratio)
        out.append((x0, y0, x1 - x0, y1 - y0))
    return out


# --- the built-in avatar's outline ----------------------------------------------------------------


def mask_rows(mask: np.ndarray) -> list[Rect]:
    """An (H, W) mask as YX-banded rectangles: each row's runs of set pixels, and consecutive rows
    with the same runs folded into one band (one rectangle per run, as tall as the band)."""
    import numpy as np

    m = np.asarray(mask, dtype=bool)  # (H, W)
    h, w = m.shape
    padded = np.zeros((h, w + 2), np.int8)  # (H, W+2): a clear pixel either side of every row
    padded[:, 1:-1] = m
    steps = np.diff(padded, axis=1)  # (H, W+1): +1 where a run starts, -1 one past its end
    out: list[Rect] = []
    band: tuple[tuple[int, int], ...] = ()
    top = 0
    for y in range(h + 1):
        if y < h:
            row = steps[y]
            runs = tuple(zip(np.flatnonzero(row == 1).tolist(), np.flatnonzero(row == -1).tolist(), strict=True))
        else:
            runs = ()  # past the last row: close the open band
        if runs != band:
            out.extend((x0, top, x1 - x0, y - top) for x0, x1 in band)
            band, top = runs, y
    return out


def grow(mask: np.ndarray, radius: int) -> np.ndarray:
    """The mask grown by a disc of `radius` pixels (binary dilation)."""
    import numpy as np

    m = np.asarray(mask, dtype=bool)  # (H, W)
    if radius <= 0:
        return m.copy()
    h, w = m.shape
    r = radius
    padded = np.zeros((h + 2 * r, w + 2 * r), bool)  # (H+2r, W+2r)
    padded[r : r + h, r : r + w] = m
    out = np.zeros_like(m)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            if dx * dx + dy * dy <= r * r + r:  # a rounder disc than r*r for small radii
                out |= padded[r + dy : r + dy + h, r + dx : r + dx + w]
    return out


def extreme_poses() -> list[Pose]:
    """Poses that together reach as far as the avatar ever does: the head turned and tilted
    to the animator's limits (|yaw|, |pitch| <= 0.3, roll with the sway), swaying both ways
    with the hair's swing at its peak, breathing in and out, every emotion (some tilt the head
    and draw a cue beside it), thinking (the bubble) and resting (the z's)."""
    from companion.avatar.pose import ACTIVITIES, Pose
    from companion.emotion import EMOTIONS

    swing_peak = math.pi / 2 / 1.3  # avatar.wgsl: hair swing = sway + 0.3 sin(1.3 t)
    poses = [Pose(), Pose(breath=1.0)]
    for yaw in (-0.3, 0.3):
        for pitch in (-0.3, 0.3):
            for sway in (-1.0, 1.0):
                t = swing_peak if sway > 0 else 3 * swing_peak
                poses.append(Pose(time=t, head_yaw=yaw, head_pitch=pitch, head_roll=0.035 * sway, sway=sway, breath=1.0))
    for emotion in EMOTIONS[1:]:
        for sway in (-1.0, 1.0):
            poses.append(Pose.still(emotion).model_copy(update={"sway": sway, "time": swing_peak if sway > 0 else 3 * swing_peak}))
    for activity in ("thinking", "resting"):
        for t in (0.0, 1.0, 2.0, 3.0):
            poses.append(Pose(time=t, activity=float(ACTIVITIES.index(activity))))
    return poses


def outline_mask(render: Callable[[Pose, int, int], np.ndarray], width: int, height: int, grow_px: int) -> np.ndarray:
    """(H, W) bool: where any extreme pose draws (alpha >= ALPHA_MIN), grown by grow_px."""
    union: np.ndarray | None = None
    for pose in extreme_poses():
        drawn = render(pose, width, height)[..., 3] >= ALPHA_MIN  # (H, W)
        union = drawn if union is None else union | drawn
    assert union is not None
    return grow(union, grow_px)


def builtin_avatar_key() -> str:
    """Names the built-in avatar's current drawing: its shader's text, includes resolved."""
    from companion.avatar.render import SHADER
    from companion.gpu.shaders import load

    return "builtin-" + hashlib.sha256(load(SHADER).code.encode()).hexdigest()[:16]


class Outlines:
    """The pet's input region per (window size in device pixels, avatar): drawn once, then kept
    in memory and in the data folder (pet-outline.json). The app itself only reads it (`cached`);
    the drawing (`rows`) runs in the child process of companion.shell.pet_outline."""

    def __init__(self, path: Path | None = None, renderer: Callable[[], Any] | None = None) -> None:
        self.path = path
        self.renderer = renderer  # makes an AvatarRenderer (tests hand in the shared one)
        self._memory: dict[str, list[Rect]] = {}
        self._lock = threading.Lock()

    def file(self) -> Path:
        return self.path or home_dir() / OUTLINE_FILE

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.file().read_text(encoding="utf-8"))
            return data if isinstance(data, dict) else {}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable %s (%s)", self.file(), exc)
            return {}

    def key(self, width: int, height: int) -> str:
        """The cache's key: the built-in avatar's drawing and the window's size in device pixels
        (raises where the avatar's shader cannot be read)."""
        return f"{builtin_avatar_key()}@{width}x{height}"

    def cached(self, key: str) -> list[Rect] | None:
        if key in self._memory:
            return self._memory[key]
        entry = self._load().get(key)
        rects = entry.get("rects") if isinstance(entry, dict) else None
        if isinstance(rects, list) and rects and all(
            isinstance(r, list) and len(r) == 4 and all(isinstance(v, int) for v in r) for r in rects
        ):
            self._memory[key] = [(r[0], r[1], r[2], r[3]) for r in rects]
            return self._memory[key]
        return None

    def _store(self, key: str, rects: list[Rect], seconds: float) -> None:
        self._memory[key] = rects
        data = self._load()
        data[key] = {"rects": [list(r) for r in rects], "seconds": round(seconds, 3)}
        path = self.file()
        try:
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data), encoding="utf-8")
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("cannot keep the pet's outline in %s (%s)", path, exc)

    def rows(self, width: int, height: int, ratio: float = 1.0, adapter: str | None = None,
             avatar_model: Path | None = None) -> tuple[list[Rect] | None, str]:  # fmt: skip
        """(the outline's rectangles, how they were found), or (None, why the disc stays).
        Blocks while it draws (seconds on a CPU adapter) and makes a wgpu device: the app runs it
        in a child process (companion.shell.pet_outline), not in its own."""
        if avatar_model is not None:
            return None, f"the VRM model {avatar_model.name} is drawn by the page; its outline is not known here"
        with self._lock:
            try:
                key = self.key(width, height)
            except Exception as exc:  # noqa: BLE001 - the shader is missing: the page cannot draw it either
                return None, f"the avatar's shader cannot be read ({exc})"
            found = self.cached(key)
            if found is not None:
                return found, f"{len(found)} rectangles, kept in {self.file().name}"
            t0 = time.perf_counter()
            try:
                if self.renderer is not None:
                    renderer = self.renderer()
                else:
                    from companion.avatar.render import AvatarRenderer

                    renderer = AvatarRenderer(adapter=adapter)
                mask = outline_mask(renderer.render, width, height, round(OUTLINE_GROW * ratio))
            except Exception as exc:  # noqa: BLE001 - no adapter, a lost device: keep the disc
                return None, f"no adapter could draw the avatar ({exc})"
            rects = mask_rows(mask)
            seconds = time.perf_counter() - t0
            self._store(key, rects, seconds)
            return rects, f"{len(rects)} rectangles, drawn on {renderer.adapter} in {seconds:.1f} s"


# --- X11: the input shape (libXext), independent of Qt ------------------------------------------


class X11Shape:
    """Set and read a window's SHAPE input region on an X display (its own connection)."""

    SHAPE_BOUNDING = 0  # X11/extensions/shape.h: ShapeBounding (what is drawn)
    SHAPE_INPUT = 2  # ShapeInput (what takes clicks)
    SHAPE_SET = 0  # ShapeSet
    YX_BANDED = 3  # YXBanded: rows sorted top to bottom

    def __init__(self, display: str | None = None) -> None:
        import ctypes

        self._c = ctypes
        self.x11 = ctypes.CDLL("libX11.so.6")
        self.xext = ctypes.CDLL("libXext.so.6")
        self.x11.XOpenDisplay.restype = ctypes.c_void_p
        self.x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
        self.x11.XFlush.argtypes = [ctypes.c_void_p]
        self.x11.XSync.argtypes = [ctypes.c_void_p, ctypes.c_int]
        self.x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
        self.x11.XFree.argtypes = [ctypes.c_void_p]
        self.dpy = self.x11.XOpenDisplay(display.encode() if display else None)
        if not self.dpy:
            raise OSError(f"cannot open X display {display or os.environ.get('DISPLAY')}")

    def _rect_type(self):
        c = self._c

        class XRectangle(c.Structure):
            _fields_ = [("x", c.c_short), ("y", c.c_short), ("width", c.c_ushort), ("height", c.c_ushort)]

        return XRectangle

    def set_input(self, window: int, rects: list[tuple[int, int, int, int]], bounding: bool = False) -> None:
        """The window's input region; with bounding, also its drawn shape (for a screen with no
        compositing manager, where a transparent window shows black instead of the desktop)."""
        c = self._c
        xrect = self._rect_type()
        array = (xrect * max(1, len(rects)))(*[xrect(*r) for r in rects])
        fn = self.xext.XShapeCombineRectangles
        fn.argtypes = [c.c_void_p, c.c_ulong, c.c_int, c.c_int, c.c_int, c.c_void_p, c.c_int, c.c_int, c.c_int]
        for kind in (self.SHAPE_INPUT, self.SHAPE_BOUNDING) if bounding else (self.SHAPE_INPUT,):
            fn(self.dpy, window, kind, 0, 0, array, len(rects), self.SHAPE_SET, self.YX_BANDED)
        self.x11.XSync(self.dpy, 0)

    def compositing(self) -> bool:
        """True when a compositing manager runs on the default screen (it owns the selection
        _NET_WM_CM_S<screen>), so a window's transparent pixels show what is below."""
        c = self._c
        self.x11.XDefaultScreen.argtypes = [c.c_void_p]
        self.x11.XInternAtom.argtypes = [c.c_void_p, c.c_char_p, c.c_int]
        self.x11.XInternAtom.restype = c.c_ulong
        self.x11.XGetSelectionOwner.argtypes = [c.c_void_p, c.c_ulong]
        self.x11.XGetSelectionOwner.restype = c.c_ulong
        atom = self.x11.XInternAtom(self.dpy, f"_NET_WM_CM_S{self.x11.XDefaultScreen(self.dpy)}".encode(), 0)
        return bool(self.x11.XGetSelectionOwner(self.dpy, atom))

    def input_rects(self, window: int, kind: int = SHAPE_INPUT) -> list[tuple[int, int, int, int]]:
        """The window's input region (or, with kind=SHAPE_BOUNDING, its drawn shape)."""
        c = self._c
        xrect = self._rect_type()
        fn = self.xext.XShapeGetRectangles
        fn.argtypes = [c.c_void_p, c.c_ulong, c.c_int, c.POINTER(c.c_int), c.POINTER(c.c_int)]
        fn.restype = c.POINTER(xrect)
        count, ordering = c.c_int(0), c.c_int(0)
        ptr = fn(self.dpy, window, kind, c.byref(count), c.byref(ordering))
        out = [(ptr[i].x, ptr[i].y, ptr[i].width, ptr[i].height) for i in range(count.value)]
        if ptr:
            self.x11.XFree(ptr)
        return out

    def close(self) -> None:
        if self.dpy:
            self.x11.XCloseDisplay(self.dpy)
            self.dpy = None
