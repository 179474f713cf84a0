"""The desktop window: a pywebview window on the page served by the bridge server.

Backends: Qt WebEngine on Linux (`pywebview[qt]`: PyQt6 + PyQt6-WebEngine; PySide6 crashed),
WebView2 on Windows, WKWebView on macOS. We ask each for WebGPU where it can be asked: Qt
WebEngine and WebView2 are Chromium and take command-line flags through environment
variables. Whether an adapter really appears is probed by the page at run time (Qt WebEngine
without a real GPU gives none) and the core falls back to its native engine.

On Linux the shell creates Qt's application object itself, before pywebview does, so it can
choose GPU or software compositing from the GL renderer first (companion.shell.rendering: a
blank window otherwise on software GL) and own the tray icon.

`python -m companion.shell.window URL` opens a window on any URL (tests, debugging).
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from companion.errors import CompanionError
from companion.settings import Settings
from companion.shell import rendering

log = logging.getLogger(__name__)

# Chromium switches asking for WebGPU (also where the GPU is on a blocklist).
WEBGPU_FLAGS = ("--enable-unsafe-webgpu", "--enable-features=Vulkan", "--ignore-gpu-blocklist")
BACKGROUND = "#0f1016"  # the page's dark background, shown before the first paint


def can_open_window() -> bool:
    """A window can open here: a display exists and pywebview with its backend is installed."""
    if sys.platform.startswith("linux"):
        if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            return False
        modules = ("webview", "PyQt6.QtWebEngineWidgets")
    else:
        modules = ("webview",)
    try:
        return all(importlib.util.find_spec(m) is not None for m in modules)
    except (ImportError, ValueError):
        return False


def uses_qt() -> bool:
    """The window is Qt's (Linux): the shell may use Qt directly (tray, pet mask, GL probe)."""
    return sys.platform.startswith("linux")


def _add_flags(var: str, flags: tuple[str, ...]) -> None:
    current = os.environ.get(var, "").split()
    os.environ[var] = " ".join(current + [f for f in flags if f not in current])


def software_setting(settings: Settings) -> bool | None:
    """Settings.software_rendering where the user set it (file or environment), else None:
    decide from the GL renderer."""
    value = settings.software_rendering
    if value is None or "software_rendering" not in settings.model_fields_set:
        return None
    return bool(value)


def configure_webview_environment(settings: Settings | None = None) -> str | None:
    """Set the environment the platform's webview reads at start; return pywebview's gui name.
    settings: the app's (xvfb, software_rendering); None = Settings.load()."""
    if sys.platform.startswith("linux"):
        if settings is None:
            settings = Settings.load()
        _add_flags("QTWEBENGINE_CHROMIUM_FLAGS", WEBGPU_FLAGS)
        # Chromium's sandbox refuses to run as root, and under Xvfb (CI, containers) it
        # cannot set up its namespaces; a desktop session keeps it.
        if settings.xvfb or (hasattr(os, "geteuid") and os.geteuid() == 0):
            os.environ.setdefault("QTWEBENGINE_DISABLE_SANDBOX", "1")
        # Software compositing where it is asked for, or the display is a private Xvfb (always
        # llvmpipe); elsewhere start_qt() decides from the GL renderer.
        if settings.xvfb or software_setting(settings):
            rendering.apply(rendering.Compositing(True, "software compositing: asked for"))
        os.environ.setdefault("QT_QPA_PLATFORM", "xcb" if os.environ.get("DISPLAY") else "wayland")
        return "qt"
    if sys.platform == "win32":
        _add_flags("WEBVIEW2_ADDITIONAL_BROWSER_ARGUMENTS", WEBGPU_FLAGS)
        return "edgechromium"
    return None  # macOS: WKWebView, WebGPU as Safari ships it


def start_qt(settings: Settings) -> tuple[Any, rendering.Compositing]:
    """Linux: create the QApplication pywebview will use, and choose (and apply) GPU or
    software compositing before any window exists. Call on the main thread, after
    configure_webview_environment()."""
    import PyQt6.QtWebEngineWidgets  # noqa: F401 - must load before the QApplication exists
    from PyQt6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([sys.argv[0] or "companion"])
    app.setApplicationName("Companion")
    app.setDesktopFileName("companion")  # type: ignore[attr-defined]  # match companion.desktop
    if settings.xvfb and software_setting(settings) is None:
        choice = rendering.Compositing(True, "software compositing: the display is a private Xvfb")
    else:
        choice = rendering.choose(software_setting(settings))
    rendering.apply(choice)
    log.info("%s", choice.reason)
    return app, choice


def run_desktop(
    app_url: str,
    *,
    title: str = "Companion",
    width: int = 1180,
    height: int = 780,
    debug: bool = False,
    ready: threading.Event | None = None,
    on_ready: Callable[[Any], None] | None = None,
    settings: Settings | None = None,
) -> None:
    """Open one window on app_url and run the GUI loop on this (the main) thread until it
    closes. on_ready(window) runs on a helper thread once the page loaded and, when given,
    `ready` is set (BridgeServer.page_connected: the page finished its handshake)."""
    if not can_open_window():
        raise CompanionError(
            "cannot open a window here: no display, or pywebview is missing "
            "(pip install 'companion[desktop]')"
        )
    settings = settings if settings is not None else Settings.load()
    gui = configure_webview_environment(settings)
    if uses_qt():
        rendering.CompositorWatch().install()
        start_qt(settings)
    import webview

    window = webview.create_window(
        title,
        app_url,
        width=width,
        height=height,
        min_size=(380, 520),
        background_color=BACKGROUND,
        text_select=True,
    )
    assert window is not None

    def started() -> None:
        if on_ready is None or not window.events.loaded.wait(120):
            return
        if ready is None or ready.wait(120):
            on_ready(window)

    # The page's CSP forbids eval, so pywebview's evaluate_js cannot be used on it: the page
    # talks to the core over the bridge only.
    webview.start(started, gui=gui, debug=debug, private_mode=True)  # type: ignore[arg-type]


def screenshot(path: Path) -> Path:
    """Save the whole screen (the X display on Linux) as a PNG."""
    from PIL import ImageGrab

    display = os.environ.get("DISPLAY") if sys.platform.startswith("linux") else None
    image = ImageGrab.grab(xdisplay=display) if display else ImageGrab.grab()
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def main(argv: list[str] | None = None) -> int:
    """Open a Companion window on URL (a launch URL printed by the app, or any page)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("url")
    parser.add_argument("--width", type=int, default=1180)
    parser.add_argument("--height", type=int, default=780)
    parser.add_argument("--debug", action="store_true", help="open the web inspector")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    run_desktop(args.url, width=args.width, height=args.height, debug=args.debug)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
