"""How the desktop window composites its page: on the GPU, or in software.

Qt WebEngine composites the page through OpenGL. Where that GL is a CPU emulation — Mesa's
llvmpipe under Xvfb, in VMs and remote desktops, or a machine whose GPU driver is broken —
GPU compositing fails ("dma_buf acquisition failure", "Compositor returned null texture")
and the window stays blank. Measured under Xvfb (PyQt6-WebEngine 6.11): the cause is
Chromium's `--ignore-gpu-blocklist` (asked for WebGPU), which overrides the blocklist entry
that would have sent llvmpipe to software compositing; Qt Quick's `software` scene graph
then paints correctly with any flags.

So before the window exists the shell asks Qt for the GL renderer it would use (one
offscreen context, ~0.2 s on llvmpipe) and chooses software compositing where that renderer
is a CPU emulation (companion.gpu.adapters.is_cpu_adapter: the same check the engines use)
or where no GL context can be made. A machine that passes that check and still fails to
composite is caught by `CompositorWatch`, which reads Qt's own messages; the shell then
starts again with software compositing and says so in the log.

The software_rendering setting overrides all of this: true = always software, false = always
the GPU (no probe, no restart).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

from companion.gpu.adapters import is_cpu_adapter

log = logging.getLogger(__name__)

# Qt WebEngine's messages when GPU compositing cannot show a frame (it repeats them per frame)
FAILURE_SIGNS = ("Compositor returned null texture", "dma_buf acquisition failure")
FAILURES_BEFORE_RESTART = 3  # one stray message is not a blank window
GL_RENDERER = 0x1F01  # glGetString names (Khronos gl.h)
GL_VENDOR = 0x1F00


@dataclass(frozen=True)
class Compositing:
    """The choice and why it was made (logged, shown by `companion doctor`)."""

    software: bool
    reason: str
    renderer: str | None = None  # the GL renderer string the probe read, when it ran


def gl_renderer() -> str | None:
    """'vendor renderer' of the OpenGL context Qt makes on this display, or None when it
    cannot make one. Needs a QGuiApplication (the shell's QApplication)."""
    from PyQt6.QtGui import QOffscreenSurface, QOpenGLContext
    from PyQt6.QtOpenGL import QOpenGLVersionFunctionsFactory, QOpenGLVersionProfile

    ctx = QOpenGLContext()
    if not ctx.create():
        return None
    surface = QOffscreenSurface()
    surface.setFormat(ctx.format())
    surface.create()
    try:
        if not ctx.makeCurrent(surface):
            return None
        profile = QOpenGLVersionProfile()
        profile.setVersion(2, 0)
        try:
            funcs = QOpenGLVersionFunctionsFactory.get(profile, ctx)
        except Exception:  # noqa: BLE001 - GLES or an odd driver: ask libGL directly
            funcs = None
        if funcs is not None:
            get = funcs.glGetString  # type: ignore[attr-defined]  # QOpenGLFunctions_2_0
            names = [get(GL_VENDOR), get(GL_RENDERER)]
        else:
            names = _gl_strings_ctypes()
        ctx.doneCurrent()
        return " ".join(str(n) for n in names if n) or "unknown"
    finally:
        surface.destroy()


def _gl_strings_ctypes() -> list[str]:
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("GL") or "libGL.so.1"
    lib = ctypes.CDLL(name)
    lib.glGetString.restype = ctypes.c_char_p
    return [(lib.glGetString(k) or b"").decode(errors="replace") for k in (GL_VENDOR, GL_RENDERER)]


def choose(setting: bool | None, probe: Callable[[], str | None] = gl_renderer) -> Compositing:
    """Software or GPU compositing for the Qt window. setting: Settings.software_rendering
    (None = decide from the GL renderer)."""
    if setting is True:
        return Compositing(True, "software compositing: asked for by the software_rendering setting")
    if setting is False:
        return Compositing(False, "GPU compositing: asked for by the software_rendering setting")
    try:
        renderer = probe()
    except Exception as exc:  # noqa: BLE001 - a probe that crashes means GL is not usable
        return Compositing(True, f"software compositing: probing OpenGL failed ({exc})")
    if renderer is None:
        return Compositing(True, "software compositing: no OpenGL context on this display")
    if is_cpu_adapter(renderer):
        return Compositing(
            True, f"software compositing: OpenGL is a CPU emulation ({renderer})", renderer
        )
    return Compositing(False, f"GPU compositing on {renderer}", renderer)


def apply(choice: Compositing, chromium_flags_var: str = "QTWEBENGINE_CHROMIUM_FLAGS") -> None:
    """Set the environment Qt Quick and Qt WebEngine read when the first window opens."""
    if not choice.software:
        return
    # Qt Quick's software scene graph paints the page's frames without GL.
    os.environ["QT_QUICK_BACKEND"] = "software"
    # Let Chromium's blocklist send this renderer to software raster and compositing.
    flags = [f for f in os.environ.get(chromium_flags_var, "").split() if f != "--ignore-gpu-blocklist"]
    os.environ[chromium_flags_var] = " ".join(flags)


class CompositorWatch:
    """Reads Qt's messages (qInstallMessageHandler): logs them, and calls on_failure once
    when GPU compositing keeps failing. Install it on the GUI thread before the window."""

    def __init__(self, on_failure: Callable[[str], None] | None = None) -> None:
        self.on_failure = on_failure
        self.failures = 0
        self.fired = False
        self._lock = threading.Lock()
        self._qt_log = logging.getLogger("qt")

    def feed(self, message: str) -> None:
        """One Qt message."""
        if not any(sign in message for sign in FAILURE_SIGNS):
            return
        with self._lock:
            self.failures += 1
            fire = self.failures >= FAILURES_BEFORE_RESTART and not self.fired
            if fire:
                self.fired = True
        if fire:
            log.warning("GPU compositing failed (%r): the window would stay blank", message)
            if self.on_failure is not None:
                self.on_failure(message)

    def install(self) -> None:
        from PyQt6.QtCore import QtMsgType, qInstallMessageHandler

        levels = {
            QtMsgType.QtDebugMsg: logging.DEBUG,
            QtMsgType.QtInfoMsg: logging.INFO,
            QtMsgType.QtWarningMsg: logging.WARNING,
            QtMsgType.QtCriticalMsg: logging.ERROR,
            QtMsgType.QtFatalMsg: logging.CRITICAL,
        }

        def handler(kind: QtMsgType, _context: object, message: str | None) -> None:
            text = message or ""
            self.feed(text)
            if self.failures <= 1 or not any(s in text for s in FAILURE_SIGNS):  # once, not per frame
                # the page's console and CSP reports arrive here too: keep them out of stderr
                level = min(levels.get(kind, logging.INFO), logging.INFO)
                self._qt_log.log(level, "%s", text)

        qInstallMessageHandler(handler)
