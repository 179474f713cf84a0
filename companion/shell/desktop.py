"""The desktop's windows and tray: the chat window, the pet window and what they do.

`Desktop` owns the GUI thread (pywebview's loop: Qt on Linux, WebView2 on Windows, Cocoa on
macOS). Everything else — the bridge server, the model, the second-launch listener — calls it
from other threads; Qt work is marshalled onto the GUI thread with `gui()`.

Closing the chat window hides it to the tray (where a tray exists); Quit closes every window,
after which `run()` returns and the caller shuts the model and the memory down.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from companion.settings import Settings
from companion.shell import icon, pet, rendering
from companion.shell.pet_outline import ChildOutlines
from companion.shell.window import (
    BACKGROUND,
    configure_webview_environment,
    software_setting,
    start_qt,
    uses_qt,
)

log = logging.getLogger(__name__)


class ShellHooks:
    """What the desktop asks of the app around it (companion.shell.app fills these in)."""

    def characters(self) -> list[str]:
        return []

    def set_character(self, name: str) -> None: ...

    def set_engine(self, name: str) -> None: ...

    def settings(self) -> Settings:
        return Settings()

    def save_settings(self, settings: Settings) -> None: ...


class Desktop:
    """The chat window, the pet window, the tray; `run()` blocks until Quit."""

    def __init__(
        self,
        launch_url: Callable[[str], str],
        settings: Settings,
        hooks: ShellHooks,
        *,
        debug: bool = False,
        on_page_ready: Callable[[Any], None] | None = None,
        ready: threading.Event | None = None,
    ) -> None:
        self.launch_url = launch_url  # a fresh single-use login link per window
        self.settings = settings
        self.hooks = hooks
        self.debug = debug
        self.on_page_ready = on_page_ready
        self.ready = ready
        self.main: Any = None
        self.pet: Any = None
        self.tray: Any = None
        self.quitting = False
        self.restart_software = False  # GPU compositing failed: start again in software
        self.compositing: rendering.Compositing | None = None
        self.state = pet.ShellState()
        self._pet_lock = threading.Lock()
        self._invoker: Any = None
        self._muted = settings.muted if hasattr(settings, "muted") else False
        self._pet_on = bool(getattr(settings, "pet_mode", False))
        self._chat_visible = True
        self._drag: Any = None  # the pet's Qt event filter (kept alive)
        self._outlines = ChildOutlines()  # the pet's input region per window size and avatar (a child draws it)

    # --- running ------------------------------------------------------------------------------

    def run(self) -> None:
        """Open the chat window (and the pet, if pet mode is on) and run the GUI loop."""
        gui = configure_webview_environment(self.settings)
        if uses_qt():
            watch = rendering.CompositorWatch(self._compositing_failed)
            watch.install()
            app, self.compositing = start_qt(self.settings)
            self._setup_qt(app)
        import webview

        self.main = webview.create_window(
            "Companion", self.launch_url("/"), width=1180, height=780, min_size=(380, 520),
            background_color=BACKGROUND, text_select=True,
            hidden=self._pet_on and self.tray is not None,
        )  # fmt: skip
        self.main.events.closing += self._on_main_closing
        if self._pet_on and self.tray is not None:
            self._chat_visible = False
        if self.tray is None and not uses_qt():
            self._start_pystray()
        previous = signal.getsignal(signal.SIGTERM)
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, lambda *_: self.quit())
        try:
            webview.start(self._started, gui=gui, debug=self.debug, private_mode=True)  # type: ignore[arg-type]
        finally:
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGTERM, previous)
            if self.tray is not None:
                self.gui_now(self.tray.hide)

    def _started(self) -> None:
        """On a helper thread once the GUI loop runs."""
        if self._pet_on:
            self.set_pet_mode(True)
        if self.on_page_ready is None or not self.main.events.loaded.wait(120):
            return
        if self.ready is None or self.ready.wait(120):
            self.on_page_ready(self.main)

    def _compositing_failed(self, message: str) -> None:
        if software_setting(self.settings) is False:
            log.warning("GPU compositing is failing but software_rendering is false: keeping it")
            return
        log.warning("restarting with software compositing: GPU compositing failed (%s)", message)
        self.restart_software = True
        threading.Thread(target=self.quit, name="companion-restart", daemon=True).start()

    # --- Qt ----------------------------------------------------------------------------------------

    def _setup_qt(self, app: Any) -> None:
        from PyQt6.QtCore import QObject, Qt, pyqtSignal
        from PyQt6.QtGui import QIcon, QPixmap

        class Invoker(QObject):
            call = pyqtSignal(object)

            def __init__(self) -> None:
                super().__init__()
                self.call.connect(self._run, Qt.ConnectionType.QueuedConnection)  # type: ignore[call-arg]

            def _run(self, fn: Callable[[], None]) -> None:
                try:
                    fn()
                except Exception:  # noqa: BLE001 - one failed UI action must not end the loop
                    log.exception("GUI action failed")

        self._invoker = Invoker()
        pixmap = QPixmap()
        pixmap.loadFromData(icon.png_bytes(256), "PNG")
        app.setWindowIcon(QIcon(pixmap))
        app.setQuitOnLastWindowClosed(False)  # hidden to the tray is not closed
        from companion.shell.tray import QtTray

        if QtTray.available():
            self.tray = QtTray(self, icon.png_bytes(64))
            self.tray.show()
            log.info("tray icon shown")
        else:
            log.info("no system tray on this desktop: closing the window quits")

    def _start_pystray(self) -> None:
        try:
            from companion.shell.tray import PystrayTray

            self.tray = PystrayTray(self, icon.png_bytes(64))
            self.tray.show()
        except Exception as exc:  # noqa: BLE001 - no tray is a degraded mode, not an error
            log.info("no tray icon (%s): closing the window quits", exc)
            self.tray = None

    def gui(self, fn: Callable[[], None]) -> None:
        """Run fn on the GUI thread, soon (Qt); directly where pywebview is thread-safe."""
        if self._invoker is not None:
            self._invoker.call.emit(fn)
        else:
            fn()

    def gui_now(self, fn: Callable[[], None]) -> None:
        if self._invoker is not None and threading.current_thread() is not threading.main_thread():
            done = threading.Event()

            def run() -> None:
                try:
                    fn()
                finally:
                    done.set()

            self._invoker.call.emit(run)
            done.wait(10)
        else:
            fn()

    # --- the chat window ----------------------------------------------------------------------

    def _on_main_closing(self) -> bool:
        """pywebview: False cancels the close."""
        if self.quitting:
            return True
        if self.tray is not None or self._pet_on:
            self.hide_chat()
            return False
        self.quit()
        return False  # quit() closes the windows itself

    def chat_visible(self) -> bool:
        return self._chat_visible

    def show_chat(self) -> None:
        if self.main is None:
            return
        self._chat_visible = True
        self.main.show()
        if self.main.native is not None and self._invoker is not None:

            def raise_() -> None:
                w = self.main.native
                w.showNormal() if w.isMinimized() else None
                w.raise_()
                w.activateWindow()

            self.gui(raise_)

    def hide_chat(self) -> None:
        if self.main is None:
            return
        self._chat_visible = False
        self.main.hide()

    def toggle_chat(self) -> None:
        self.hide_chat() if self._chat_visible else self.show_chat()

    def open_settings(self) -> None:
        """Show the chat window with its settings drawer open."""
        self.show_chat()
        script = "window.dispatchEvent(new CustomEvent('companion-shell', {detail: {action: 'settings'}}))"
        native = getattr(self.main, "native", None)
        if native is not None and self._invoker is not None:
            # Qt runs this as the embedder: not subject to the page's CSP (which blocks eval)
            self.gui(lambda: native.webview.page().runJavaScript(script))

    # --- tray state ----------------------------------------------------------------------------

    def characters(self) -> list[str]:
        return self.hooks.characters()

    def character(self) -> str | None:
        return self.hooks.settings().character

    def set_character(self, name: str) -> None:
        threading.Thread(target=self.hooks.set_character, args=(name,), name="companion-character", daemon=True).start()

    def engine(self) -> str:
        return self.hooks.settings().engine

    def set_engine(self, name: str) -> None:
        threading.Thread(target=self.hooks.set_engine, args=(name,), name="companion-engine", daemon=True).start()

    def muted(self) -> bool:
        return self._muted

    def set_muted(self, on: bool) -> None:
        """Mute every window's audio (Qt: QWebEnginePage.setAudioMuted)."""
        self._muted = on
        self._save(muted=on)
        for w in (self.main, self.pet):
            native = getattr(w, "native", None)
            if native is not None and self._invoker is not None:
                self.gui(lambda n=native: n.webview.page().setAudioMuted(on))  # type: ignore[misc]

    def _save(self, **changes: Any) -> None:
        current = self.hooks.settings()
        known = {k: v for k, v in changes.items() if k in type(current).model_fields}
        if known:
            self.hooks.save_settings(current.model_copy(update=known))

    # --- pet mode ------------------------------------------------------------------------------

    def pet_mode(self) -> bool:
        return self._pet_on

    def set_pet_mode(self, on: bool) -> None:
        """Show the avatar alone on the desktop (and hide the chat), or put it away."""
        with self._pet_lock:
            self._pet_on = on
            self._save(pet_mode=on)
            if on and self.pet is None:
                self.pet = self._open_pet()
                self.hide_chat()
            elif not on and self.pet is not None:
                window, self.pet = self.pet, None
                window.destroy()
                self.show_chat()

    def _open_pet(self) -> Any:
        import webview

        screens = self._screens()
        screen = pet.pick_screen(screens, self.state.last_pet_screen()) if screens else None
        x, y = self.state.pet_position(screen) if screen else (None, None)
        window: Any = webview.create_window(
            "Companion (pet)", self.launch_url("/pet.html"), width=pet.SIZE, height=pet.SIZE,
            x=x, y=y, resizable=False, frameless=True, transparent=True, on_top=True,
            focus=False, hidden=uses_qt(), easy_drag=not uses_qt(),
            background_color="#000000", js_api=None if uses_qt() else _PetApi(self),
        )  # fmt: skip
        if uses_qt():

            def adorn() -> None:
                if window.native is None:  # not created yet: try again shortly
                    threading.Timer(0.05, lambda: self.gui(adorn)).start()
                    return
                self._adorn_pet_qt(window)

            window.events.shown.wait(30)
            self.gui(adorn)
        return window

    def _screens(self) -> list[pet.Screen]:
        if not uses_qt():
            try:
                import webview

                return [pet.Screen(f"screen{i}", s.x, s.y, s.width, s.height) for i, s in enumerate(webview.screens)]
            except Exception:  # noqa: BLE001
                return []
        from PyQt6.QtWidgets import QApplication

        out = []
        for s in QApplication.screens():
            g = s.availableGeometry()
            out.append(pet.Screen(s.name() or "screen", g.x(), g.y(), g.width(), g.height()))
        return out

    def _adorn_pet_qt(self, window: Any) -> None:
        """No taskbar entry, the avatar's outline as the input region, drag to move, click to chat."""
        from PyQt6.QtCore import QEvent, QObject, Qt, QTimer

        w = window.native
        w.setWindowFlag(Qt.WindowType.Tool, True)  # no taskbar entry
        w.setAttribute(Qt.WidgetAttribute.WA_TranslucentBackground, True)
        w.show()
        if self._muted:
            w.webview.page().setAudioMuted(True)
        desktop = self

        class PetMouse(QObject):
            """Press + move = drag the window (the window manager's move where it has one);
            press + release in place = a click: show or hide the chat."""

            def __init__(self) -> None:
                super().__init__()
                self.press: Any = None
                self.origin: Any = None
                self.moved = False
                self.save_timer = QTimer()
                self.save_timer.setSingleShot(True)
                self.save_timer.timeout.connect(desktop._remember_pet_position)

            def eventFilter(self, obj: Any, event: Any) -> bool:  # noqa: N802 - Qt's name
                if not isinstance(obj, QObject) or not _inside(obj, w):
                    return False
                kind = event.type()
                presses = (QEvent.Type.MouseButtonPress, QEvent.Type.MouseButtonDblClick)
                if kind in presses and event.button() == Qt.MouseButton.LeftButton:
                    self.press = event.globalPosition().toPoint()
                    self.origin = w.pos()
                    self.moved = False
                    return True
                if kind == QEvent.Type.MouseMove and self.press is not None:
                    delta = event.globalPosition().toPoint() - self.press
                    if not self.moved and delta.manhattanLength() > 4:
                        self.moved = True
                        handle = w.windowHandle()
                        if handle is not None and handle.startSystemMove():
                            self.press = None  # the window manager moves it from here
                            return True
                    if self.moved:
                        w.move(self.origin + delta)
                        log.debug("pet dragged to %d,%d", w.x(), w.y())
                    return True
                if kind == QEvent.Type.MouseButtonRelease and event.button() == Qt.MouseButton.LeftButton:
                    clicked = self.press is not None and not self.moved
                    self.press = None
                    if clicked:
                        log.info("pet clicked: %s the chat", "hiding" if desktop.chat_visible() else "showing")
                        desktop.toggle_chat()
                    return True
                if kind == QEvent.Type.Move and obj is w:
                    self.save_timer.start(400)
                return False

        from PyQt6.QtWidgets import QApplication

        self._drag = PetMouse()
        app = QApplication.instance()
        if app is not None:
            app.installEventFilter(self._drag)
        self._shape_pet(window)
        handle = w.windowHandle()
        screen = handle.screen() if handle is not None else None
        log.info("pet window at %d,%d on %s", w.x(), w.y(), screen.name() if screen is not None else "?")

    def _shape_pet(self, window: Any) -> None:
        """Clicks on the pet's empty pixels go to the desktop below: a disc at once, then the
        avatar's outline once it is known (the first time, a child process draws it while a
        thread here waits for it; no wgpu device in this process)."""
        w = window.native
        ratio = w.devicePixelRatioF()
        width, height = round(w.width() * ratio), round(w.height() * ratio)
        self._set_pet_input(w, pet.disc_rows(width, height), ratio)
        settings = self.settings
        avatar_model = getattr(settings, "avatar_model", None)
        adapter = getattr(settings, "adapter", None)

        def find() -> None:
            rects, how = self._outlines.rows(width, height, ratio, adapter, avatar_model)
            if rects is None:
                log.info("pet input region: a disc around the avatar (%s)", how)
                return

            def apply() -> None:
                if not self._pet_on or self.pet not in (None, window) or window.native is not w:
                    return  # pet mode was left (or the window replaced) meanwhile
                if (round(w.width() * ratio), round(w.height() * ratio)) != (width, height):
                    return
                self._set_pet_input(w, rects, ratio)
                log.info("pet input region: the avatar's outline (%s)", how)

            self.gui(apply)

        threading.Thread(target=find, name="companion-pet-outline", daemon=True).start()

    def _set_pet_input(self, w: Any, rects: list[pet.Rect], ratio: float) -> None:
        """The pet's input region: device-pixel rectangles, as the X11 input shape (drawing
        stays whole; where no compositing manager runs, transparent pixels would show black,
        so the same region also shapes what is drawn) or else as Qt's mask (logical pixels)."""
        import os

        from PyQt6.QtCore import QRect
        from PyQt6.QtGui import QGuiApplication, QRegion

        if QGuiApplication.platformName() == "xcb":
            try:
                shape = pet.X11Shape(os.environ.get("DISPLAY"))
                try:
                    bounding = not shape.compositing()
                    shape.set_input(int(w.winId()), rects, bounding=bounding)
                    if bounding:
                        log.info("pet: no compositing manager on this screen: the window is cut to the avatar's outline")
                finally:
                    shape.close()
                return
            except OSError as exc:
                log.info("no X11 input shape (%s): using Qt's mask", exc)
        region = QRegion()
        for x, y, rw, rh in pet.logical_rows(rects, ratio):
            region = region.united(QRect(x, y, rw, rh))
        w.setMask(region)

    def _remember_pet_position(self) -> None:
        window = self.pet
        if window is None or window.native is None:
            return
        w = window.native
        screens = self._screens()
        if screens:
            screen = pet.screen_at(screens, w.x(), w.y(), pet.SIZE)
            self.state.remember_pet(screen, w.x(), w.y())
            log.info("pet left at %d,%d on %s", w.x(), w.y(), screen.key)

    # --- quitting ------------------------------------------------------------------------------

    def quit(self) -> None:
        """Close every window; run() returns once they are gone."""
        if self.quitting:
            return
        self.quitting = True
        log.info("quitting")
        self._outlines.stop()  # a child still drawing the pet's outline
        for window in (self.pet, self.main):
            if window is not None:
                try:
                    window.destroy()
                except Exception:  # noqa: BLE001 - already gone
                    log.debug("destroy failed", exc_info=True)
        if uses_qt() and self._invoker is not None:

            def exit_loop() -> None:
                from PyQt6.QtWidgets import QApplication

                app = QApplication.instance()
                if app is not None:
                    app.exit(0)

            self.gui(exit_loop)
        if sys.platform != "linux" and self.tray is not None:
            self.tray.hide()


class _PetApi:
    """What the pet page may call through pywebview where the shell is not Qt (a click)."""

    def __init__(self, desktop: Desktop) -> None:
        self._desktop = desktop

    def toggle_chat(self) -> None:
        self._desktop.toggle_chat()


def _inside(obj: Any, window: Any) -> bool:
    """obj is the window or one of its child widgets/windows (the webview's render widget)."""
    from PyQt6.QtWidgets import QWidget

    if obj is window:
        return True
    if isinstance(obj, QWidget):
        return obj.window() is window
    return False
