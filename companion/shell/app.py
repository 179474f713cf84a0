"""The desktop app: bridge server + chat session (loaded in the background) + window."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from companion.bridge.messages import EngineStatus
from companion.bridge.server import BridgeServer
from companion.errors import CompanionError
from companion.settings import Settings
from companion.shell.window import run_desktop, screenshot

log = logging.getLogger(__name__)


def apply_settings(chat: Any, settings: Settings) -> None:
    """Give a running chat session the sampling knobs the user just changed."""
    from companion.sampling import SamplingParams

    if chat is None:
        return
    if hasattr(chat, "sampling"):
        chat.sampling = SamplingParams.from_settings(settings)  # seed 0: fresh per reply
    if hasattr(chat, "max_new_tokens"):
        chat.max_new_tokens = settings.max_new_tokens


def run(settings: Settings, *, screenshot_path: Path | None = None, debug: bool = False) -> None:
    """Serve the page, open the window, load the model meanwhile; return when it closes.
    With screenshot_path, save the screen once the page is connected and close (smoke test)."""
    from companion.app import build_session

    server = BridgeServer(None, settings=settings, model_path=settings.model_path)

    def on_settings(new: Settings) -> None:
        new.save()
        apply_settings(server.chat, new)

    server.on_settings = on_settings
    url = server.start()

    def load() -> None:
        def report(text: str) -> None:
            server.publish(
                EngineStatus(engine="none", phase="loading", progress=0.0, detail=text[:300])
            )

        report("Loading model")
        try:
            chat = build_session(settings, report=report, page_server=server)
        except CompanionError as exc:
            server.publish(
                EngineStatus(engine="none", phase="failed", progress=0.0, error=str(exc))
            )
            return
        except Exception as exc:  # noqa: BLE001 - shown in the window, logged in full
            log.exception("loading the model failed")
            server.publish(
                EngineStatus(
                    engine="none", phase="failed", progress=0.0, error=f"internal error: {exc}"
                )
            )
            return
        apply_settings(chat, settings)
        mem = getattr(chat, "memory", None)
        if mem is not None:
            from companion.bridge.memory_hook import StoreMemoryHook

            mem.greet()
            server.memory = StoreMemoryHook(mem.store, mem.character_id)
            server.history = mem.history
            server.character = mem.store.character(mem.character_id).name
        server.set_chat(chat)

    threading.Thread(target=load, name="companion-load", daemon=True).start()

    def shoot(window: Any) -> None:
        try:
            threading.Event().wait(1.0)  # let the page paint its first frames
            screenshot(screenshot_path)  # type: ignore[arg-type]
        finally:
            window.destroy()

    try:
        run_desktop(
            url,
            debug=debug,
            ready=server.page_connected,
            on_ready=shoot if screenshot_path is not None else None,
        )
    finally:
        server.stop()
