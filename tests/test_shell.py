"""The desktop shell: a real pywebview (Qt WebEngine) window under Xvfb on the real page."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest_web import artifact

from companion.shell import window
from companion.shell.window import can_open_window, configure_webview_environment


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


def _measure(path) -> tuple[float, int]:
    """(largest channel stddev, count of strongly coloured pixels) of a screenshot."""
    from PIL import Image, ImageStat

    img = Image.open(path).convert("RGB")
    spread = max(ImageStat.Stat(img).stddev)
    hsv = img.convert("HSV")
    vivid = sum(
        1
        for s, v in zip(hsv.getchannel("S").tobytes(), hsv.getchannel("V").tobytes(), strict=True)
        if s > 120 and v > 80
    )
    return spread, vivid


@pytest.mark.desktop
def test_desktop_window_shows_the_page(xvfb, bridge_server, fake_chat):
    pytest.importorskip("webview")
    pytest.importorskip("PyQt6.QtWebEngineWidgets")
    env = dict(os.environ, DISPLAY=xvfb, COMPANION_XVFB="1", QT_QPA_PLATFORM="xcb")
    env.pop("WAYLAND_DISPLAY", None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "companion.shell.window",
            bridge_server.launch_url(),
            "--width",
            "1180",
            "--height",
            "760",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        connected = bridge_server.page_connected.wait(90)
        if not connected:
            proc.kill()
            pytest.fail(
                f"the window's page never connected:\n{proc.communicate(timeout=20)[0][-4000:]}"
            )
        page = next(c.hello for c in bridge_server.conversation.connections if c.hello is not None)
        assert "QtWebEngine" in page.user_agent  # the page really runs inside the Qt window
        # The page paints shortly after its handshake; grab until the avatar orb shows (the
        # only large vivid area), twice in a row, instead of sleeping a fixed time.
        path = artifact("desktop-window.png")
        spread, vivid, streak = 0.0, 0, 0
        for _ in range(120):
            window.screenshot(path)
            spread, vivid = _measure(path)
            streak = streak + 1 if vivid > 8000 else 0
            if streak == 2:
                break
            bridge_server.page_connected.wait(0.25)  # already set: just a short pause
        assert proc.poll() is None, proc.communicate()[0][-4000:]
        assert spread > 20 and vivid > 8000, (
            f"blank window: stddev {spread:.1f}, {vivid} vivid pixels"
        )
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
