"""The one Chromium launcher: Debian's `/usr/bin/chromium`, headless, with WebGPU and nothing
reaching the network. The browser engine, the bridge bench and the tests all start it here."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
import time
from typing import Any

from companion._proc import stop_process
from companion.errors import EngineUnavailable
from companion.settings import Settings

log = logging.getLogger(__name__)

# Measured in DESIGN.md: WebGPU on SwiftShader in headless Chromium, nothing reaching the network.
CHROMIUM_ARGS = (
    "--headless=new",
    "--no-sandbox",
    "--enable-unsafe-webgpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium_path() -> str:
    """The Chromium binary: the chromium setting (COMPANION_CHROMIUM), else `chromium` on PATH,
    else Debian's path."""
    return Settings.load().chromium or shutil.which("chromium") or "/usr/bin/chromium"


def launch_context(pw: Any, profile: str, chromium: str | None = None, **options: Any) -> Any:
    """A playwright persistent context of headless Chromium with the app's flags, on a fresh
    profile folder; `options` go to playwright (viewport, bypass_csp...)."""
    return pw.chromium.launch_persistent_context(
        profile, executable_path=chromium or chromium_path(), args=list(CHROMIUM_ARGS), headless=True, **options
    )


class HeadlessChromium:
    """Debian's Chromium, headless, with WebGPU, on one URL. Driven by playwright when it is
    installed (it reports page errors), else started as a plain subprocess."""

    def __init__(self, url: str, chromium: str | None = None):
        chromium = chromium or chromium_path()
        if not os.access(chromium, os.X_OK):
            raise EngineUnavailable(f"no Chromium at {chromium}: install it (apt-get install chromium) or use --engine native")
        self.profile = tempfile.TemporaryDirectory(prefix="companion-chromium-")
        self.errors: list[str] = []
        self._pw: Any = None
        self._context: Any = None
        self._proc: subprocess.Popen[bytes] | None = None
        try:
            from playwright.sync_api import sync_playwright
        except ImportError:
            sync_playwright = None  # type: ignore[assignment]
        if sync_playwright is not None:
            try:
                self._pw = sync_playwright().start()
                self._context = launch_context(self._pw, self.profile.name, chromium=chromium)
                page = self._context.pages[0] if self._context.pages else self._context.new_page()
                page.on("pageerror", lambda e: self.errors.append(str(e)))
                page.goto(url, wait_until="domcontentloaded")
                return
            except Exception as exc:  # noqa: BLE001 - e.g. playwright inside a running event loop
                log.info("playwright could not start Chromium (%s); starting it directly", exc)
                self.close()
                self.profile = tempfile.TemporaryDirectory(prefix="companion-chromium-")
        self._proc = subprocess.Popen(
            [chromium, *CHROMIUM_ARGS, f"--user-data-dir={self.profile.name}", url],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def close(self) -> None:
        for step in (
            lambda: self._context and self._context.close(),
            lambda: self._pw and self._pw.stop(),
        ):
            try:
                step()
            except Exception:  # noqa: BLE001 - already gone
                pass
        self._context = self._pw = None
        stop_process(self._proc)
        self._proc = None
        # a helper process of Chromium's can still be writing into the profile as it exits
        # ("Directory not empty" from the removal, seen once in CI): try again briefly, and
        # leave a stray temporary folder rather than fail the caller's close
        for _ in range(20):
            try:
                self.profile.cleanup()
                return
            except OSError:
                time.sleep(0.1)
        log.info("Chromium's profile %s could not be removed; it stays in the temporary folder", self.profile.name)
