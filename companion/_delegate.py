"""Read-only attributes answered by one of the object's parts (a façade over its parts)."""

from __future__ import annotations

from typing import Any


def delegate(part: str, name: str, doc: str | None = None) -> Any:
    """A property that answers self.<part>.<name>. Annotate the attribute with its type:
    `port: int = delegate("http", "port")`."""

    def get(self: Any) -> Any:
        return getattr(getattr(self, part), name)

    return property(get, doc=doc)
