"""The model picker's data source: companion.model.catalog's rows as the bridge's ModelItem,
per-model settings through companion.model.registry, and the switch itself handed to the app
(which reloads the session on the chosen model while the conversation goes on)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from companion.bridge.messages import ModelItem
from companion.errors import CompanionError


def model_item(row: dict[str, Any]) -> ModelItem:
    """One catalog row as the picker shows it."""
    gpu, ref = row.get("gpu"), row.get("reference")
    return ModelItem(
        name=row["name"], arch=row["arch"], file_type=row["file_type"], parameters=int(row["parameters"]),
        size_bytes=int(row["size_bytes"]), can_chat=bool(row["can_chat"]) or row["chat_template"] != "auto",
        builtin=bool(row["builtin"]), in_use=bool(row["in_use"]), context_length=row["settings"]["context_length"],
        max_context=int(row["context_length"]), run_context=int(row["run_context"]), chat_template=row["chat_template"],
        runs=bool(row["runs"]), reason=str(row["reason"])[:1000],
        gpu_bytes=None if gpu is None else int(gpu["needs"]["total"]),
        cpu_bytes=0 if ref is None else int(ref["needs"]["total"]),
    )  # fmt: skip


class RegistryModelsHook:
    """list / use / configure for the page (BridgeServer.models). `settings` gives the app's
    current settings; `switch(name)` makes the app run that model (raises CompanionError)."""

    def __init__(self, settings: Callable[[], Any], switch: Callable[[str], None],
                 adapter: tuple[Any, Any] | None = None, free: int | None = None):
        """adapter: (limits, info) to judge GPU fit with (default: the adapter the native engine
        would use, looked up once); free: the memory available (default: read each time)."""
        self._settings = settings
        self._switch = switch
        self.switching: str | None = None  # the model being loaded, while it loads
        self._adapter = adapter
        self._free = free

    def list(self) -> list[ModelItem]:
        from companion.model.catalog import adapter_limits, catalog

        if self._adapter is None:  # the adapter does not change while the app runs
            self._adapter = adapter_limits(self._settings().adapter)
        limits, info = self._adapter
        return [model_item(r) for r in catalog(self._settings(), limits, info, probe=False, free=self._free)]

    def use(self, name: str) -> None:
        from companion.model.registry import resolve

        if resolve(name) is None:
            raise CompanionError(f"no model named {name!r}: add it with `companion model add PATH`")
        item = next((m for m in self.list() if m.name == name), None)
        if item is not None and not item.runs:
            raise CompanionError(f"{name} cannot run here: {item.reason}")
        self._switch(name)

    def configure(self, name: str, context_length: int | None, chat_template: str | None, reset: Sequence[str]) -> None:
        from companion.model.catalog import in_use
        from companion.model.registry import resolve, set_model_settings

        set_model_settings(name, context_length, chat_template, clear=tuple(reset))
        path = resolve(name)
        if path is not None and in_use(self._settings(), path):  # takes effect now: reload it
            self._switch(name)
