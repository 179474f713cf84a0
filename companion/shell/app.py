"""The desktop app: one instance per user, the bridge server, the chat session (loaded in the
background while the window already shows progress), the windows and the tray; and a clean
stop: the reply is stopped, the engine closed and the memory database closed."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from companion.bridge.messages import EngineStatus
from companion.bridge.server import BridgeServer
from companion.errors import CompanionError
from companion.settings import Settings, env_name, home_dir
from companion.shell.desktop import Desktop, ShellHooks
from companion.shell.instance import SingleInstance
from companion.shell.window import screenshot

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


class App(ShellHooks):
    """The bridge server and the chat session behind the windows."""

    def __init__(self, settings: Settings) -> None:
        self.current = settings
        self.server = BridgeServer(None, settings=settings, model_path=settings.model_path)
        self.server.on_settings = self.save_settings
        from companion.bridge.models_hook import RegistryModelsHook

        self.server.models = RegistryModelsHook(lambda: self.current, self.use_model)
        self.desktop: Desktop | None = None  # set by run(): pet mode and mute follow the settings
        self._before_switch: Settings | None = None
        self._switch = threading.Lock()

    # --- ShellHooks ---------------------------------------------------------------------------

    def settings(self) -> Settings:
        return self.current

    def save_settings(self, new: Settings) -> None:
        """A change from the page's settings drawer or the tray: save it and apply it."""
        old, self.current = self.current, new
        self.server.settings = new
        new.save()
        apply_settings(self.server.chat, new)
        if new.engine != old.engine and self.server.chat is not None:
            self._reload_engine()
        desktop = self.desktop
        if desktop is not None:  # the drawer may switch pet mode and mute too
            pet_mode, muted = getattr(new, "pet_mode", False), getattr(new, "muted", False)
            if pet_mode != desktop.pet_mode():
                desktop.set_pet_mode(pet_mode)
            if muted != desktop.muted():
                desktop.set_muted(muted)

    def characters(self) -> list[str]:
        mem = getattr(self.server.chat, "memory", None)
        if mem is None:
            return [self.current.character] if self.current.character else []
        return [c.name for c in mem.store.characters()]

    def set_character(self, name: str) -> None:
        """Talk with another character: a fresh conversation with its persona and memories."""
        from companion.app import attach_memory

        chat: Any = self.server.chat
        self.save_settings(self.current.model_copy(update={"character": name}))
        if chat is None or getattr(chat, "memory", None) is None:
            return
        with self._switch:
            old_store = chat.memory.store
            attach_memory(chat, self.current)
            chat.history.clear()
            self._wire_memory(chat)
            old_store.close()
        self.server.set_chat(chat)
        log.info("now talking with %s", name)

    def set_engine(self, name: str) -> None:
        self.save_settings(self.current.model_copy(update={"engine": name}))

    def use_model(self, name: str) -> None:
        """Run another model from the list (the page's picker): saved as the model_path setting,
        then the session is rebuilt on it in the background and the conversation goes on."""
        from companion.model.registry import DEFAULT_NAME, resolve

        path = resolve(name)
        if path is None:
            raise CompanionError(f"no model named {name!r}: see `companion model list`")
        self._before_switch = self.current  # restored if the new model cannot be loaded
        self.current = self.current.model_copy(update={"model_path": None if name == DEFAULT_NAME else Path(path)})
        self.server.settings = self.current
        self.current.save()
        models = self.server.models
        if models is not None:
            models.switching = name
        self._reload_engine(f"Loading {name}", new_model=True)

    # --- loading --------------------------------------------------------------------------------

    def report(self, text: str, progress: float = 0.0) -> None:
        self.server.publish(EngineStatus(engine="none", phase="loading", progress=progress, detail=text[:300]))

    def load(self) -> None:
        """Build the chat session (model check, engine, memory) and hand it to the pages."""
        from companion.app import build_session

        aside = _settings_set_aside()
        if aside is not None:
            self.report(f"Your settings file could not be read: kept as {aside.name}; using the defaults", 0.02)
            threading.Event().wait(3.0)  # long enough to be read
        self.report("Checking the model", 0.05)
        try:
            chat = build_session(self.current, report=self._report_step, page_server=self.server)
        except CompanionError as exc:
            log.error("loading the model failed: %s", exc)
            self.server.publish(EngineStatus(engine="none", phase="failed", progress=0.0, error=str(exc)))
            return
        except Exception as exc:  # noqa: BLE001 - shown in the window, logged in full
            log.exception("loading the model failed")
            self.server.publish(
                EngineStatus(engine="none", phase="failed", progress=0.0, error=f"internal error: {exc}")
            )
            return
        apply_settings(chat, self.current)
        if getattr(chat, "memory", None) is not None:
            chat.memory.greet()
            self._wire_memory(chat)
        self.server.set_chat(chat)
        log.info("ready: engine %s on %s", chat.engine_name, chat.adapter)

    def _report_step(self, text: str) -> None:
        """The engines' progress lines, placed on the bar by what they say."""
        log.info("%s", text)
        lower = text.lower()
        step = 0.15
        for words, value in (
            (("adapter", "gpu", "probing"), 0.2), (("shader", "compil", "pipeline"), 0.45),
            (("upload", "weights", "tensor"), 0.7), (("memory", "embedding"), 0.9),
        ):  # fmt: skip
            if any(w in lower for w in words):
                step = value
        self.report(text, step)

    def _wire_memory(self, chat: Any) -> None:
        from companion.bridge.memory_hook import StoreMemoryHook

        mem = chat.memory
        self.server.memory = StoreMemoryHook(mem.store, mem.character_id)
        self.server.history = mem.history
        self.server.character = mem.store.character(mem.character_id).name

    def _reload_engine(self, label: str | None = None, new_model: bool = False) -> None:
        """Run the same conversation on the engine (or model) the settings now name."""
        threading.Thread(target=self._swap_engine, args=(label, new_model), name="companion-engine", daemon=True).start()

    def _swap_engine(self, label: str | None = None, new_model: bool = False) -> None:
        from companion.app import attach_memory, build_session

        with self._switch:
            old = self.server.chat
            self.report(label or f"Switching to the {self.current.engine} engine", 0.1)
            served = (self.server.plan, self.server.blobs, self.server.model_path)
            if new_model:  # the page's plan, blobs and file are the new model's
                self.server.plan = self.server.blobs = self.server.model_path = None
            try:
                new = build_session(self.current, report=self._report_step, page_server=self.server, memory=False)
            except CompanionError as exc:
                log.error("switching %s failed: %s", "model" if new_model else "engine", exc)
                self.server.plan, self.server.blobs, self.server.model_path = served  # the old model's, again
                if new_model and self._before_switch is not None:  # keep running, and starting, the old one
                    self.current = self.server.settings = self._before_switch
                    self.current.save()
                self.server.publish(EngineStatus(engine="none", phase="failed", progress=0.0, error=str(exc)))
                self.server.set_chat(old)
                self._switched()
                return
            mem = getattr(old, "memory", None)
            if mem is not None:
                attach_memory(new, self.current, conversation_id=mem.conversation_id)
                mem.store.close()
                self._wire_memory(new)
            apply_settings(new, self.current)
            self.server.set_chat(new)
            _close_engine(old)
            log.info("now running %s on the %s engine (%s)", new.model.path.name, new.engine_name, new.adapter)
            self._switched()

    def _switched(self) -> None:
        """Tell the pages' model pickers that the switch is over."""
        models = self.server.models
        if models is None or models.switching is None:
            return
        models.switching = None
        from companion.bridge.messages import Models

        try:
            self.server.publish(Models(items=models.list()))
        except CompanionError as exc:
            log.warning("the model list could not be read: %s", exc)

    # --- stopping -------------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop the reply (its text so far is stored), stop serving, close engine and database."""
        chat = self.server.chat
        if chat is not None:
            chat.stop()
        self.server.stop()
        for t in threading.enumerate():  # the bridge's chat worker finishing its turn
            if t.name.startswith("companion-chat") and t is not threading.current_thread():
                t.join(30)
        _close_engine(chat)
        mem = getattr(chat, "memory", None)
        if mem is not None:
            mem.store.close()
        log.info("stopped cleanly")


def _settings_set_aside() -> Path | None:
    """The settings file Settings.load(recover=True) moved aside at this start, if it did."""
    started = time.time() - 120
    found = sorted(home_dir().glob("settings.json.invalid-*"), key=lambda p: p.stat().st_ctime)
    return found[-1] if found and found[-1].stat().st_ctime >= started else None


def _close_engine(chat: Any) -> None:
    engine = getattr(chat, "engine", None)
    if engine is not None:
        try:
            engine.close()
        except Exception:  # noqa: BLE001 - closing is best effort at exit
            log.debug("closing the engine failed", exc_info=True)


def run(settings: Settings, *, screenshot_path: Path | None = None, debug: bool = False) -> int:
    """The desktop app; returns the exit status. A second launch brings the first one's window
    forward and returns at once. With screenshot_path, save the screen once the page is
    connected and quit (smoke test)."""
    from companion.logs import record_crashes

    record_crashes()
    instance = SingleInstance(home_dir())
    if not instance.acquire():
        instance.send("pet" if "--pet" in sys.argv[1:] else "show", sys.argv[1:])
        log.warning("Companion is already running: brought its window to the front")
        return 0
    app = App(settings)
    app.server.start()
    log.info("bridge on %s", app.server.origin)
    threading.Thread(target=app.load, name="companion-load", daemon=True).start()

    def shoot(window: Any) -> None:
        try:
            threading.Event().wait(1.0)  # let the page paint its first frames
            screenshot(screenshot_path)  # type: ignore[arg-type]
        finally:
            desktop.quit()

    desktop = app.desktop = Desktop(
        app.server.launch_url, settings, app, debug=debug,
        on_page_ready=shoot if screenshot_path is not None else None, ready=app.server.page_connected,
    )  # fmt: skip

    def on_instance(command: str, argv: list[str]) -> None:
        if command == "show":
            desktop.show_chat()
        elif command == "pet":
            desktop.set_pet_mode(True)
        elif command == "quit":
            desktop.quit()

    instance.serve(on_instance)
    try:
        desktop.run()
    finally:
        app.shutdown()
        instance.release()
    if desktop.restart_software:
        _restart_in_software()
    return 0


def end_process(status: int) -> None:
    """Exit with `status` once run() has returned (windows closed, stores and log flushed).
    Where Qt ran, skip the interpreter's teardown: it destroys the web engine's objects in
    whatever order the garbage collector picks, after the QApplication, which can crash
    (a rare SIGSEGV at quit, seen in CI) and would turn a clean quit into a crash report."""
    if "PyQt6.QtWidgets" not in sys.modules:
        sys.exit(status)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):  # closed or absent (a windowed build)
            pass
    logging.shutdown()
    os._exit(status)


def _restart_in_software() -> None:
    """Start this program again with software compositing (the GPU's failed)."""
    env = dict(os.environ, **{env_name("software_rendering"): "1"})
    if getattr(sys, "frozen", False):
        argv = [sys.executable, *sys.argv[1:]]
    else:
        argv = [sys.executable, "-m", "companion", *sys.argv[1:]]
    log.warning("starting again: %s", " ".join(argv))
    logging.shutdown()
    os.execve(argv[0], argv, env)
