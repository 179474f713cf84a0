"""The tray icon and its menu: show/hide the chat, pet mode, character, engine, mute,
settings, quit.

One menu description (`menu_items`) and two toolkits: Qt's QSystemTrayIcon where the window
is Qt's (Linux: StatusNotifierItem over D-Bus on KDE, GNOME with the AppIndicator extension,
XFCE...; XEmbed elsewhere), and pystray on Windows (the notification area) and macOS (an
NSStatusItem in the menu bar). Where no tray exists (plain GNOME, a bare X server) the shell
has none, and closing the chat window quits instead of hiding it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from companion.engines import ENGINE_CHOICES

log = logging.getLogger(__name__)


class TrayActions(Protocol):
    """What the tray asks of the shell (called on the GUI thread)."""

    def chat_visible(self) -> bool: ...
    def toggle_chat(self) -> None: ...
    def pet_mode(self) -> bool: ...
    def set_pet_mode(self, on: bool) -> None: ...
    def characters(self) -> list[str]: ...
    def character(self) -> str | None: ...
    def set_character(self, name: str) -> None: ...
    def engine(self) -> str: ...
    def set_engine(self, name: str) -> None: ...
    def muted(self) -> bool: ...
    def set_muted(self, on: bool) -> None: ...
    def open_settings(self) -> None: ...
    def quit(self) -> None: ...


@dataclass
class Item:
    """One menu entry: a command, a check box (checked), a radio choice (group) or a submenu."""

    text: str
    action: Callable[[], None] | None = None
    checked: bool | None = None  # a check box or radio entry when not None
    group: str | None = None  # radio entries of one submenu share a group
    children: list[Item] = field(default_factory=list)
    separator: bool = False


def menu_items(a: TrayActions) -> list[Item]:
    """The tray menu for the shell's current state (rebuilt each time the menu opens)."""
    current = a.character()
    chars = a.characters() or ([current] if current else [])
    engines = [
        Item(name.capitalize(), _bind(a.set_engine, name), a.engine() == name, "engine")
        for name in ENGINE_CHOICES
    ]
    characters = [
        Item(name, _bind(a.set_character, name), name == current or (current is None and i == 0), "character")
        for i, name in enumerate(chars)
    ]
    return [
        Item("Hide chat" if a.chat_visible() else "Show chat", a.toggle_chat),
        Item("Pet mode", lambda: a.set_pet_mode(not a.pet_mode()), a.pet_mode()),
        Item("Character", children=characters or [Item("(loading…)")]),
        Item("Engine", children=engines),
        Item("Mute", lambda: a.set_muted(not a.muted()), a.muted()),
        Item("Settings…", a.open_settings),
        Item("", separator=True),
        Item("Quit Companion", a.quit),
    ]


def _bind(fn: Callable[[str], None], value: str) -> Callable[[], None]:
    return lambda: fn(value)


class QtTray:
    """QSystemTrayIcon with the menu; a click on the icon shows or hides the chat."""

    def __init__(self, actions: TrayActions, icon_png: bytes) -> None:
        from PyQt6.QtGui import QIcon, QPixmap
        from PyQt6.QtWidgets import QMenu, QSystemTrayIcon

        self.actions = actions
        pixmap = QPixmap()
        pixmap.loadFromData(icon_png, "PNG")
        self.icon = QSystemTrayIcon(QIcon(pixmap))
        self.icon.setToolTip("Companion")
        self.menu = QMenu()
        self.menu.aboutToShow.connect(self.rebuild)
        self.icon.setContextMenu(self.menu)
        self.icon.activated.connect(self._activated)
        self.rebuild()

    @staticmethod
    def available() -> bool:
        from PyQt6.QtWidgets import QSystemTrayIcon

        return QSystemTrayIcon.isSystemTrayAvailable()

    def show(self) -> None:
        self.icon.show()

    def hide(self) -> None:
        self.icon.hide()

    def _activated(self, reason: Any) -> None:
        from PyQt6.QtWidgets import QSystemTrayIcon

        if reason == QSystemTrayIcon.ActivationReason.Trigger:
            self.actions.toggle_chat()

    def rebuild(self) -> None:
        self.menu.clear()
        self._fill(self.menu, menu_items(self.actions))

    def _fill(self, menu: Any, items: list[Item]) -> None:
        from PyQt6.QtGui import QActionGroup

        groups: dict[str, Any] = {}
        for item in items:
            if item.separator:
                menu.addSeparator()
                continue
            if item.children:
                self._fill(menu.addMenu(item.text), item.children)
                continue
            act = menu.addAction(item.text)
            if item.action is None:
                act.setEnabled(False)
            else:
                act.triggered.connect(lambda _=False, f=item.action: f())
            if item.checked is not None:
                act.setCheckable(True)
                act.setChecked(item.checked)
            if item.group is not None:
                group = groups.get(item.group) or groups.setdefault(item.group, QActionGroup(menu))
                group.addAction(act)

    def find(self, text: str, menu: Any = None) -> Any:
        """The action named `text` anywhere in the menu (tests)."""
        for act in (menu or self.menu).actions():
            if act.text() == text:
                return act
            if act.menu() is not None:
                found = self.find(text, act.menu())
                if found is not None:
                    return found
        return None


class PystrayTray:
    """The same menu through pystray (Windows, macOS). Written against pystray 0.19; not run
    on this project's Linux CI, where Qt's tray serves."""

    def __init__(self, actions: TrayActions, icon_png: bytes) -> None:
        import io

        import pystray  # type: ignore[import-not-found]
        from PIL import Image

        self.actions = actions
        self._pystray = pystray
        self.icon = pystray.Icon(
            "companion", Image.open(io.BytesIO(icon_png)), "Companion", menu=pystray.Menu(self._items)
        )

    def _items(self) -> Any:
        return [self._convert(i) for i in menu_items(self.actions)]

    def _convert(self, item: Item) -> Any:
        ps = self._pystray
        if item.separator:
            return ps.Menu.SEPARATOR
        if item.children:
            return ps.MenuItem(item.text, ps.Menu(*[self._convert(c) for c in item.children]))
        checked = None if item.checked is None else (lambda _i, v=item.checked: v)
        action = item.action or (lambda: None)
        return ps.MenuItem(
            item.text, lambda _icon, _item, f=action: f(), checked=checked,
            radio=item.group is not None, enabled=item.action is not None,
            default=item.text in ("Show chat", "Hide chat"),
        )  # fmt: skip

    def show(self) -> None:
        self.icon.run_detached()  # its own thread on Windows; the app's loop on macOS

    def hide(self) -> None:
        self.icon.stop()

    def rebuild(self) -> None:
        self.icon.update_menu()
