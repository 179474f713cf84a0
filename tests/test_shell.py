"""The desktop shell: compositing choice, tray menu, pet window geometry, and the real app
(pywebview + Qt WebEngine) under a plain Xvfb, started as a newcomer would start it."""

from __future__ import annotations

import ctypes
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest_web import artifact

from companion.shell import pet, rendering, window
from companion.shell.window import can_open_window, configure_webview_environment

# --- no window where none can open ------------------------------------------------------------


def test_no_display_means_no_window(monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert can_open_window() is False


def test_missing_webview_means_no_window(monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("DISPLAY", ":99")
    monkeypatch.setattr(window.importlib.util, "find_spec", lambda name: None)
    assert can_open_window() is False


def test_webgpu_flags_are_added_once(monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("QTWEBENGINE_CHROMIUM_FLAGS", "--foo")
    monkeypatch.setenv("COMPANION_XVFB", "1")
    monkeypatch.delenv("QTWEBENGINE_DISABLE_SANDBOX", raising=False)
    monkeypatch.delenv("QT_QUICK_BACKEND", raising=False)
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")  # restored afterwards, unlike a setdefault
    assert configure_webview_environment() == "qt"
    configure_webview_environment()
    flags = os.environ["QTWEBENGINE_CHROMIUM_FLAGS"].split()
    assert flags[0] == "--foo" and flags.count("--enable-unsafe-webgpu") == 1
    assert os.environ["QTWEBENGINE_DISABLE_SANDBOX"] == "1"
    assert os.environ["QT_QUICK_BACKEND"] == "software"
    assert "--ignore-gpu-blocklist" not in flags  # software compositing keeps Chromium's blocklist


# --- compositing: never a blank window ---------------------------------------------------------


@pytest.mark.parametrize(
    ("renderer", "software"),
    [
        ("Mesa/X.org llvmpipe (LLVM 15.0.6, 256 bits)", True),  # Xvfb, VMs without virgl
        ("Google Inc. Google SwiftShader", True),
        ("Microsoft Corporation GDI Generic", False),  # not a name we know: trust the GPU...
        ("NVIDIA Corporation NVIDIA GeForce RTX 4070/PCIe/SSE2", False),
        ("AMD Radeon Graphics (radeonsi, renoir, LLVM 15.0.7, DRM 3.49)", False),
        (None, True),  # no GL context at all
    ],
)
def test_compositing_follows_the_gl_renderer(renderer, software):
    choice = rendering.choose(None, probe=lambda: renderer)
    assert choice.software is software
    assert (renderer or "no OpenGL") in choice.reason or renderer is None


def test_compositing_setting_wins_and_a_crashing_probe_means_software():
    def boom() -> str:
        raise RuntimeError("driver exploded")

    assert rendering.choose(None, probe=boom).software is True
    assert rendering.choose(False, probe=lambda: "llvmpipe").software is False  # forced GPU
    assert rendering.choose(True, probe=lambda: "NVIDIA").software is True


def test_software_compositing_drops_the_blocklist_override(monkeypatch):
    monkeypatch.setenv("QTWEBENGINE_CHROMIUM_FLAGS", "--enable-unsafe-webgpu --ignore-gpu-blocklist")
    monkeypatch.delenv("QT_QUICK_BACKEND", raising=False)
    rendering.apply(rendering.Compositing(False, "gpu"))
    assert "--ignore-gpu-blocklist" in os.environ["QTWEBENGINE_CHROMIUM_FLAGS"]
    rendering.apply(rendering.Compositing(True, "software"))
    assert os.environ["QTWEBENGINE_CHROMIUM_FLAGS"] == "--enable-unsafe-webgpu"
    assert os.environ["QT_QUICK_BACKEND"] == "software"


def test_compositor_watch_fires_once_on_repeated_failures():
    fired: list[str] = []
    watch = rendering.CompositorWatch(fired.append)
    watch.feed("js: hello")
    for _ in range(rendering.FAILURES_BEFORE_RESTART - 1):
        watch.feed("Compositor returned null texture")
    assert fired == []
    for _ in range(10):
        watch.feed("Failed to get native pixmap due to dma_buf acquisition failure.")
    assert len(fired) == 1


def test_software_rendering_setting_is_tristate():
    from companion.settings import Settings

    assert window.software_setting(Settings()) is None  # not set: decide from the renderer
    assert window.software_setting(Settings(software_rendering=True)) is True
    assert window.software_setting(Settings(software_rendering=False)) is False


# --- tray menu -----------------------------------------------------------------------------------


class FakeActions:
    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self._pet = False

    def chat_visible(self) -> bool:
        return True

    def toggle_chat(self) -> None:
        self.calls.append(("toggle_chat",))

    def pet_mode(self) -> bool:
        return self._pet

    def set_pet_mode(self, on: bool) -> None:
        self.calls.append(("pet", on))

    def characters(self) -> list[str]:
        return ["Aiko", "Io"]

    def character(self) -> str | None:
        return "Io"

    def set_character(self, name: str) -> None:
        self.calls.append(("character", name))

    def engine(self) -> str:
        return "auto"

    def set_engine(self, name: str) -> None:
        self.calls.append(("engine", name))

    def muted(self) -> bool:
        return False

    def set_muted(self, on: bool) -> None:
        self.calls.append(("mute", on))

    def open_settings(self) -> None:
        self.calls.append(("settings",))

    def quit(self) -> None:
        self.calls.append(("quit",))


def test_tray_menu_lists_every_control():
    from companion.shell.tray import menu_items

    a = FakeActions()
    items = {i.text: i for i in menu_items(a)}
    assert list(items) == ["Hide chat", "Pet mode", "Character", "Engine", "Mute", "Settings…", "", "Quit Companion"]
    assert [(c.text, c.checked) for c in items["Character"].children] == [("Aiko", False), ("Io", True)]
    assert [c.text for c in items["Engine"].children] == ["Auto", "Reference", "Native", "Browser"]
    assert [c.checked for c in items["Engine"].children] == [True, False, False, False]
    items["Pet mode"].action()
    items["Engine"].children[2].action()
    items["Character"].children[0].action()
    items["Mute"].action()
    items["Quit Companion"].action()
    assert a.calls == [("pet", True), ("engine", "native"), ("character", "Aiko"), ("mute", True), ("quit",)]


_QT_TRAY_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from PyQt6.QtWidgets import QApplication
from test_shell import FakeActions
from companion.shell.tray import QtTray
from companion.shell.icon import png_bytes
app = QApplication([])
a = FakeActions()
tray = QtTray(a, png_bytes(32))
auto_checked = tray.find("Auto").isChecked()
for name in ("Pet mode", "Browser", "Aiko", "Mute", "Settings…", "Quit Companion"):
    tray.find(name).trigger()
tray._activated(tray.icon.ActivationReason.Trigger)
print(tray.find("Native").isCheckable(), auto_checked, a.calls)
"""


def test_qt_tray_menu_triggers_the_shell():
    pytest.importorskip("PyQt6.QtWidgets")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    script = _QT_TRAY_SCRIPT.format(tests=str(Path(__file__).parent))
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == (
        "True True [('pet', True), ('engine', 'browser'), ('character', 'Aiko'), ('mute', True), "
        "('settings',), ('quit',), ('toggle_chat',)]"
    )


# --- pet window geometry -----------------------------------------------------------------------


def test_pet_position_is_remembered_per_screen(companion_home):
    laptop = pet.Screen("eDP-1", 0, 0, 1920, 1080)
    monitor = pet.Screen("HDMI-1", 1920, 0, 2560, 1440)
    state = pet.ShellState()
    assert state.pet_position(laptop) == (1920 - pet.SIZE - pet.MARGIN, 1080 - pet.SIZE - pet.MARGIN)
    state.remember_pet(laptop, 100, 200)
    state.remember_pet(monitor, 3000, 300)
    again = pet.ShellState()  # read back from shell-state.json
    assert again.pet_position(laptop) == (100, 200)
    assert again.pet_position(monitor) == (3000, 300)
    assert pet.pick_screen([laptop, monitor], again.last_pet_screen()) == monitor
    assert pet.pick_screen([laptop], again.last_pet_screen()) == laptop  # monitor unplugged
    smaller = pet.Screen("eDP-1", 0, 0, 1280, 720)  # same name, other size: its own key
    assert again.pet_position(smaller) == (1280 - pet.SIZE - pet.MARGIN, 720 - pet.SIZE - pet.MARGIN)
    assert pet.screen_at([laptop, monitor], 2500, 100) == monitor
    assert pet.screen_at([laptop, monitor], -5000, 10) == laptop  # off-screen: the nearest


def test_pet_position_is_kept_on_screen(companion_home):
    screen = pet.Screen("eDP-1", 0, 0, 800, 600)
    state = pet.ShellState()
    state.data["pet_positions"] = {screen.key: [5000, -40]}
    assert state.pet_position(screen) == (800 - pet.SIZE, 0)


def test_pet_input_region_is_the_avatar_disc():
    rows = pet.disc_rows(220, 220)
    covered = {(x, y) for (x0, y, w, _h) in rows for x in range(x0, x0 + w)}
    assert (110, 110) in covered  # the avatar's centre takes clicks
    assert (2, 2) not in covered and (217, 217) not in covered  # empty corners do not
    r = 220 * pet.HIT_RADIUS
    assert abs(len(covered) - 3.14159 * r * r) < 0.03 * 3.14159 * r * r


# --- the real app under a plain Xvfb, as a newcomer starts it -----------------------------------


def _measure(path: Path) -> tuple[float, int]:
    """(largest channel stddev, distinct colours) of a screenshot: a blank window has a few."""
    from PIL import Image, ImageStat

    img = Image.open(path).convert("RGB")
    colours = img.getcolors(maxcolors=1 << 20) or []
    return max(ImageStat.Stat(img).stddev), len(colours)


def _newcomer_env(display: str, home: Path) -> dict[str, str]:
    """A login environment: no COMPANION_* knobs, no Qt variables; only where the display is
    and (for the test's sake) where state goes."""
    keep = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "TMPDIR", "PYTHONPATH")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update(DISPLAY=display, COMPANION_HOME=str(home))
    return env


@pytest.fixture
def plain_xvfb():
    """An Xvfb started by hand: nothing in this process's environment says so."""
    from companion.shell.xvfb import Xvfb

    if not can_open_window():
        os.environ.setdefault("DISPLAY", ":0")  # can_open_window also needs pywebview and Qt
        try:
            if not can_open_window():
                pytest.skip("pywebview with Qt WebEngine is not installed")
        finally:
            if os.environ.get("DISPLAY") == ":0":
                del os.environ["DISPLAY"]
    xvfb = Xvfb(width=1280, height=800)
    try:
        display = xvfb.start()
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"no Xvfb: {exc}")
    try:
        yield display
    finally:
        xvfb.stop()


def _log(home: Path) -> str:
    path = home / "logs" / "companion.log"
    return path.read_text(errors="replace") if path.exists() else ""


def _wait_for(pred, timeout: float, what: str, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the app exited ({proc.returncode}) while waiting for {what}")
        time.sleep(0.25)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def _start_app(display: str, home: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "companion", *args], env=_newcomer_env(display, home),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def _end(proc: subprocess.Popen[str]) -> str:
    if proc.poll() is None:
        proc.kill()
    out, _ = proc.communicate(timeout=30)
    return out or ""


def _ended(proc: subprocess.Popen[str], home: Path) -> str:
    """What an app that exited badly left: its output's end and any crash.log (faulthandler's
    stacks of every thread at a fatal signal)."""
    crash = home / "logs" / "crash.log"
    stacks = crash.read_text(errors="replace")[-6000:] if crash.exists() else "(no crash.log)"
    return f"{_end(proc)[-3000:]}\n--- crash.log ---\n{stacks}"


def _shot(display: str, name: str) -> Path:
    """A screenshot of `display` under test-artifacts/."""
    from PIL import ImageGrab

    path = artifact(name)
    ImageGrab.grab(xdisplay=display).save(path)
    return path


def _wait_painted(display: str, name: str, proc: subprocess.Popen[str]) -> tuple[float, int]:
    result = (0.0, 0)

    def painted() -> bool:
        nonlocal result
        result = _measure(_shot(display, name))
        return result[0] > 20 and result[1] > 150

    _wait_for(painted, 120, "a painted window", proc)
    return result


@pytest.mark.desktop
def test_newcomer_window_is_not_blank_and_one_instance_runs(plain_xvfb, companion_home):
    """`companion` under a plain Xvfb (llvmpipe, no variables set) shows the page: it chose
    software compositing by itself. A second launch brings the first forward and exits; SIGTERM
    quits cleanly and hands the lock on."""
    t0 = time.monotonic()
    proc = _start_app(plain_xvfb, companion_home)
    try:
        spread, colours = _wait_painted(plain_xvfb, "desktop-window.png", proc)
        painted_s = time.monotonic() - t0
        log = _log(companion_home)
        assert "software compositing: OpenGL is a CPU emulation" in log, log[-3000:]
        assert "llvmpipe" in log
        # a second launch: brought forward, exits 0 at once
        second = subprocess.run(
            [sys.executable, "-m", "companion"], env=_newcomer_env(plain_xvfb, companion_home),
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert second.returncode == 0, second.stderr[-2000:]
        assert "already running" in second.stderr
        _wait_for(lambda: "a later launch asked 'show'" in _log(companion_home), 30, "the show request", proc)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, _ended(proc, companion_home)
        assert "stopped cleanly" in _log(companion_home)
        assert not (companion_home / "instance.json").exists()
        print(f"painted after {painted_s:.1f} s; stddev {spread:.1f}, {colours} colours")
    finally:
        _end(proc)


FORCE_GPU = """
import sys

from companion.shell import rendering

_choose = rendering.choose


def choose(setting, *args, **kwargs):
    if setting is None:  # what the probe decides: here it takes the renderer for a GPU
        return rendering.Compositing(False, "GPU compositing on a renderer taken for a GPU (test)")
    return _choose(setting, *args, **kwargs)


rendering.choose = choose
from companion.cli import main

sys.argv = ["companion", *sys.argv[1:]]
main()
"""


@pytest.mark.desktop
def test_failing_gpu_compositing_restarts_in_software_and_paints(plain_xvfb, companion_home, tmp_path):
    """A machine whose OpenGL passes for a GPU but cannot composite (VMs, remote desktops, broken
    drivers): Qt WebEngine's compositing fails, the app notices, says so in the log, starts itself
    again in software compositing (the same process, exec'd) and the window shows the page."""
    script = tmp_path / "force_gpu.py"
    script.write_text(FORCE_GPU)
    proc = subprocess.Popen([sys.executable, str(script)], env=_newcomer_env(plain_xvfb, companion_home),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        _wait_for(lambda: "software compositing: asked for by the software_rendering setting" in _log(companion_home),
                  120, "the restart in software compositing", proc)  # fmt: skip
        log = _log(companion_home)
        assert "GPU compositing on a renderer taken for a GPU (test)" in log
        assert "restarting with software compositing: GPU compositing failed" in log
        assert f"WARNING {proc.pid} MainThread companion.shell.app: starting again:" in log  # exec: the same process
        spread, colours = _wait_painted(plain_xvfb, "desktop-after-compositing-restart.png", proc)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, _ended(proc, companion_home)
        print(f"painted after the restart: stddev {spread:.1f}, {colours} colours")
    finally:
        _end(proc)


# --- pet mode on a real X server ------------------------------------------------------------------


def _x_windows(display: str) -> dict[str, list[int]]:
    """Top-level window name -> ids on the display (xwininfo, from x11-utils)."""
    out = subprocess.run(
        ["xwininfo", "-root", "-children", "-display", display], capture_output=True, text=True, timeout=30
    ).stdout
    found: dict[str, list[int]] = {}
    for m in re.finditer(r"^\s+(0x[0-9a-f]+) \"([^\"]*)\"", out, re.M):
        found.setdefault(m.group(2), []).append(int(m.group(1), 16))
    return found


def _chat_shown(display: str) -> bool:
    """Some top-level window named Companion is mapped (Qt keeps more than one by that name)."""
    return any(_x_geometry(display, wid)[2] for wid in _x_windows(display).get("Companion", []))


def _x_geometry(display: str, wid: int) -> tuple[int, int, bool]:
    out = subprocess.run(
        ["xwininfo", "-id", hex(wid), "-display", display], capture_output=True, text=True, timeout=30
    ).stdout
    x = int(re.search(r"Absolute upper-left X:\s+(-?\d+)", out).group(1))  # type: ignore[union-attr]
    y = int(re.search(r"Absolute upper-left Y:\s+(-?\d+)", out).group(1))  # type: ignore[union-attr]
    return x, y, "IsViewable" in out


class _Pointer:
    """The X server's pointer through the XTEST extension (what a real mouse does)."""

    def __init__(self, display: str) -> None:
        self.x11 = ctypes.CDLL("libX11.so.6")
        self.xtst = ctypes.CDLL("libXtst.so.6")
        self.x11.XOpenDisplay.restype = ctypes.c_void_p
        self.x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
        self.dpy = self.x11.XOpenDisplay(display.encode())
        self.xtst.XTestFakeMotionEvent.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_ulong]
        self.xtst.XTestFakeButtonEvent.argtypes = [ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_ulong]
        self.x11.XFlush.argtypes = [ctypes.c_void_p]
        self.x11.XCloseDisplay.argtypes = [ctypes.c_void_p]

    def move(self, x: int, y: int) -> None:
        self.xtst.XTestFakeMotionEvent(self.dpy, -1, x, y, 0)
        self.x11.XFlush(self.dpy)
        time.sleep(0.03)

    def button(self, down: bool) -> None:
        self.xtst.XTestFakeButtonEvent(self.dpy, 1, int(down), 0)
        self.x11.XFlush(self.dpy)
        time.sleep(0.05)

    def close(self) -> None:
        self.x11.XCloseDisplay(self.dpy)


class _Backdrop:
    """A plain X window filling the screen under everything else, as a desktop would: it
    records the button presses that reach it."""

    BUTTON_PRESS_MASK = 1 << 2

    def __init__(self, display: str, width: int, height: int) -> None:
        c = ctypes
        self.x11 = x11 = c.CDLL("libX11.so.6")
        x11.XOpenDisplay.restype = c.c_void_p
        x11.XOpenDisplay.argtypes = [c.c_char_p]
        x11.XDefaultRootWindow.restype = c.c_ulong
        x11.XDefaultRootWindow.argtypes = [c.c_void_p]
        x11.XCreateSimpleWindow.restype = c.c_ulong
        x11.XCreateSimpleWindow.argtypes = [c.c_void_p, c.c_ulong, c.c_int, c.c_int, c.c_uint, c.c_uint, c.c_uint, c.c_ulong, c.c_ulong]
        for name in ("XMapWindow", "XLowerWindow"):
            getattr(x11, name).argtypes = [c.c_void_p, c.c_ulong]
        x11.XSelectInput.argtypes = [c.c_void_p, c.c_ulong, c.c_long]
        x11.XStoreName.argtypes = [c.c_void_p, c.c_ulong, c.c_char_p]
        x11.XCheckWindowEvent.argtypes = [c.c_void_p, c.c_ulong, c.c_long, c.c_void_p]
        x11.XFlush.argtypes = [c.c_void_p]
        x11.XCloseDisplay.argtypes = [c.c_void_p]
        self.dpy = x11.XOpenDisplay(display.encode())
        root = x11.XDefaultRootWindow(self.dpy)
        self.win = x11.XCreateSimpleWindow(self.dpy, root, 0, 0, width, height, 0, 0, 0x2E5E8C)
        x11.XStoreName(self.dpy, self.win, b"backdrop")
        x11.XSelectInput(self.dpy, self.win, self.BUTTON_PRESS_MASK)
        x11.XMapWindow(self.dpy, self.win)
        x11.XLowerWindow(self.dpy, self.win)
        x11.XFlush(self.dpy)

    def presses(self) -> list[tuple[int, int]]:
        """(x, y) of the presses that reached the backdrop since the last call."""
        event = (ctypes.c_long * 24)()  # XEvent: a union of 24 longs
        out = []
        while self.x11.XCheckWindowEvent(self.dpy, self.win, self.BUTTON_PRESS_MASK, event):
            x, y = ctypes.cast(event, ctypes.POINTER(ctypes.c_int))[16:18]  # XButtonEvent.x, .y
            out.append((x, y))
        return out

    def close(self) -> None:
        self.x11.XCloseDisplay(self.dpy)


@pytest.mark.desktop
def test_pet_window_click_through_drag_and_click(plain_xvfb, companion_home):
    """Pet mode: a frameless window with only the avatar; its input region (X11 input shape)
    is the avatar's outline, so a click on an empty pixel inside the window's rectangle reaches
    the desktop below; dragging moves it and the place is remembered; a click shows the chat."""
    from companion.shell.instance import SingleInstance

    backdrop = _Backdrop(plain_xvfb, 1280, 800)
    proc = _start_app(plain_xvfb, companion_home)
    pointer = _Pointer(plain_xvfb)
    try:
        _wait_painted(plain_xvfb, "desktop-before-pet.png", proc)
        SingleInstance(companion_home).send("pet")
        wins = _wait_for(lambda: (w := _x_windows(plain_xvfb)).get("Companion (pet)") and w, 60, "the pet window", proc)
        pet_id = wins["Companion (pet)"][0]
        _wait_for(lambda: not _chat_shown(plain_xvfb), 30, "the chat window to hide", proc)
        # the disc at once, then the avatar's outline (drawn natively by a child process, not in
        # the app's: the pipelines take seconds to build on llvmpipe)
        t_pet = time.monotonic()
        _wait_for(lambda: "pet input region: the avatar's outline" in _log(companion_home), 180, "the pet's outline", proc)
        outline_s = time.monotonic() - t_pet
        applied = next(line for line in _log(companion_home).splitlines() if "pet input region: the avatar's outline" in line)
        assert "pet outline: drawing it in a child process" in _log(companion_home) and "child process" in applied, applied
        assert (companion_home / pet.OUTLINE_FILE).exists()
        shape = pet.X11Shape(plain_xvfb)
        try:
            rects = shape.input_rects(pet_id)
            # plain Xvfb runs no compositing manager: transparent pixels would show black, so the
            # window is also cut to the outline (what is drawn), not left a black square
            assert not shape.compositing()
            assert shape.input_rects(pet_id, pet.X11Shape.SHAPE_BOUNDING) == rects
        finally:
            shape.close()
        assert "no compositing manager on this screen" in _log(companion_home)
        side = pet.SIZE
        covered = {(x, y) for (x0, y, w, h) in rects for y in range(y, y + h) for x in range(x0, x0 + w)}
        assert rects != pet.disc_rows(side, side) and len(rects) < 400
        for inside in ((side // 2, side // 2), (side // 2, side // 5), (side * 3 // 10, side * 2 // 5)):  # face, fringe, hair
            assert inside in covered, inside
        corner, beside_shoulder = (2, 2), (side // 12, side * 11 // 12)
        for outside in (corner, (side - 3, side - 3), (4, side // 2), beside_shoulder):
            assert outside not in covered, outside
        print(f"outline: {len(rects)} rectangles, applied {outline_s:.1f} s after the pet window appeared")
        x0, y0, _ = _x_geometry(plain_xvfb, pet_id)
        assert (x0, y0) == (1280 - side - pet.MARGIN, 800 - side - pet.MARGIN)  # bottom right at first
        from PIL import Image

        def avatar_drawn(x: int, y: int) -> bool:
            shot = Image.open(_shot(plain_xvfb, "desktop-pet.png")).convert("RGB")
            return len(shot.crop((x, y, x + side, y + side)).getcolors(1 << 20) or []) > 100

        _wait_for(lambda: avatar_drawn(x0, y0), 60, "the avatar drawn in the pet", proc)
        # a click on an empty corner of the pet's window, and one beside its shoulder, go
        # through to the desktop below; the chat stays hidden
        backdrop.presses()
        for dx, dy in (corner, beside_shoulder):
            pointer.move(x0 + dx, y0 + dy)
            pointer.button(True)
            pointer.button(False)
        through: list[tuple[int, int]] = []
        _wait_for(lambda: through.extend(backdrop.presses()) or len(through) >= 2, 10, "the clicks to reach the desktop", proc)
        assert through == [(x0 + corner[0], y0 + corner[1]), (x0 + beside_shoulder[0], y0 + beside_shoulder[1])]
        time.sleep(1)
        assert not _chat_shown(plain_xvfb)
        # drag from the avatar's centre by (-300, -200)
        cx, cy = x0 + side // 2, y0 + side // 2
        pointer.move(cx, cy)
        pointer.button(True)
        for i in range(1, 11):
            pointer.move(cx - 30 * i, cy - 20 * i)
        pointer.button(False)
        def arrived():  # the app may still be working through the motion events
            g = _x_geometry(plain_xvfb, pet_id)
            return g if abs(g[0] - (x0 - 300)) <= 4 and abs(g[1] - (y0 - 200)) <= 4 else None

        moved = _wait_for(arrived, 30, "the pet to follow the drag", proc)
        _wait_for(lambda: avatar_drawn(moved[0], moved[1]), 30, "the avatar drawn where the pet went", proc)
        state_file = companion_home / pet.STATE_FILE

        def saved():
            try:
                return list(json.loads(state_file.read_text())["pet_positions"].values())[0]
            except (OSError, ValueError, KeyError, IndexError):
                return None

        assert _wait_for(saved, 30, "the pet's position saved", proc) == [moved[0], moved[1]]
        # a click (press and release in place) on the avatar shows the chat window
        pointer.move(moved[0] + side // 2, moved[1] + side // 2)
        pointer.button(True)
        pointer.button(False)
        _wait_for(lambda: _chat_shown(plain_xvfb), 30, "the chat window to show", proc)
        assert backdrop.presses() == []  # the avatar took that click
        SingleInstance(companion_home).send("quit")
        status = proc.wait(60)
        print(f"the app's exit status on quit: {status}")
        assert status == 0, _ended(proc, companion_home)
    finally:
        pointer.close()
        backdrop.close()
        _end(proc)


# --- first run: a settings file that cannot be used ------------------------------------------------


@pytest.mark.desktop
def test_pet_quit_while_its_outline_is_drawn(plain_xvfb, companion_home):
    """Quit while the child process still draws the pet's outline: the app stops the child and
    exits 0; no child is left behind; the disc stays (and the log says why)."""
    from companion.shell.instance import SingleInstance

    proc = _start_app(plain_xvfb, companion_home, "--pet")
    child = 0
    try:
        line = _wait_for(lambda: re.search(r"drawing it in a child process \(pid (\d+)\)", _log(companion_home)), 120, "the outline's child", proc)
        child = int(line.group(1))
        assert Path(f"/proc/{child}").exists()
        SingleInstance(companion_home).send("quit")
        status = proc.wait(60)
        print(f"the app's exit status on quit: {status}")
        assert status == 0, _ended(proc, companion_home)
        log = _log(companion_home)
        if "pet input region: the avatar's outline" not in log:  # the child had not finished: stopped
            assert f"stopping its child process (pid {child})" in log, log[-3000:]
            assert "the app is quitting" in log
        _wait_for(lambda: not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text().split()[2], 10, "the child to end")
    finally:
        _end(proc)
        if child and Path(f"/proc/{child}").exists():
            os.kill(child, signal.SIGKILL)


def test_an_invalid_settings_file_is_kept_aside_and_defaults_used(companion_home, monkeypatch, caplog):
    from companion.settings import Settings, SettingsError

    bad = '{"temperature": "hot", "top_k": 3'
    (companion_home / "settings.json").write_text(bad)
    with pytest.raises(SettingsError, match="settings.json"):
        Settings.load()  # the terminal commands: an error naming the file
    assert Settings.load(recover=True) == Settings()  # the desktop app: defaults
    (aside,) = companion_home.glob("settings.json.invalid-*")
    assert aside.read_text() == bad and not (companion_home / "settings.json").exists()
    assert "kept as" in caplog.text
    # a bad value (valid JSON) is set aside the same way
    (companion_home / "settings.json").write_text('{"top_p": 7}')
    assert Settings.load(recover=True).top_p == Settings().top_p
    # a bad environment variable is not the file's fault: it stays an error and the file stays
    (companion_home / "settings.json").write_text('{"top_k": 5}')
    monkeypatch.setenv("COMPANION_TEMPERATURE", "very")
    with pytest.raises(SettingsError, match="COMPANION_TEMPERATURE"):
        Settings.load(recover=True)
    assert (companion_home / "settings.json").exists()
