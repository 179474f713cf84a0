"""Pet mode's window, platform-neutral parts: where it sits (remembered per screen), how big
it is, and which of its pixels take clicks.

The pet is a frameless, transparent, always-on-top window showing only the page's avatar
(ui/pet.html). Clicks on its empty corners fall through to the desktop below: the window's
input region is the avatar's disc. On X11 that is the SHAPE extension's input shape (drawing
stays whole: the halo is still painted), set here through libXext; elsewhere under Qt (Wayland)
Qt's mask, which becomes the surface's input region. Windows and macOS (pywebview without Qt)
get the frameless, transparent, on-top window and pywebview's drag, but no input region yet.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from companion.settings import home_dir

log = logging.getLogger(__name__)

STATE_FILE = "shell-state.json"
SIZE = 220  # the pet window's side, in logical pixels
# The avatar's disc, as a fraction of the window's side: ui/avatar.js draws the orb with a
# radius of 0.30-0.32 of the canvas (breathing, talking) centred; clicks count a bit beyond.
HIT_RADIUS = 0.36
MARGIN = 24  # default distance from the screen's bottom-right corner


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


# --- X11: the input shape (libXext), independent of Qt ------------------------------------------


class X11Shape:
    """Set and read a window's SHAPE input region on an X display (its own connection)."""

    SHAPE_INPUT = 2  # X11/extensions/shape.h: ShapeInput
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

    def set_input(self, window: int, rects: list[tuple[int, int, int, int]]) -> None:
        c = self._c
        xrect = self._rect_type()
        array = (xrect * max(1, len(rects)))(*[xrect(*r) for r in rects])
        fn = self.xext.XShapeCombineRectangles
        fn.argtypes = [c.c_void_p, c.c_ulong, c.c_int, c.c_int, c.c_int, c.c_void_p, c.c_int, c.c_int, c.c_int]
        fn(self.dpy, window, self.SHAPE_INPUT, 0, 0, array, len(rects), self.SHAPE_SET, self.YX_BANDED)
        self.x11.XSync(self.dpy, 0)

    def input_rects(self, window: int) -> list[tuple[int, int, int, int]]:
        c = self._c
        xrect = self._rect_type()
        fn = self.xext.XShapeGetRectangles
        fn.argtypes = [c.c_void_p, c.c_ulong, c.c_int, c.POINTER(c.c_int), c.POINTER(c.c_int)]
        fn.restype = c.POINTER(xrect)
        count, ordering = c.c_int(0), c.c_int(0)
        ptr = fn(self.dpy, window, self.SHAPE_INPUT, c.byref(count), c.byref(ordering))
        out = [(ptr[i].x, ptr[i].y, ptr[i].width, ptr[i].height) for i in range(count.value)]
        if ptr:
            self.x11.XFree(ptr)
        return out

    def close(self) -> None:
        if self.dpy:
            self.x11.XCloseDisplay(self.dpy)
            self.dpy = None
