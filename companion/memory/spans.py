"""Matches that do not overlap: the date and the people finders try their patterns in order of
preference, and a stretch of text taken by one is not matched again by a later one."""

from __future__ import annotations

import re
from collections.abc import Iterator


class Spans:
    """The stretches of a text taken so far."""

    def __init__(self) -> None:
        self._taken: list[tuple[int, int]] = []

    def free_matches(self, pattern: re.Pattern[str], text: str) -> Iterator[re.Match[str]]:
        """pattern's matches in text that overlap nothing taken (checked as each is reached, so
        one taken in between counts)."""
        for m in pattern.finditer(text):
            if not any(m.start() < e and s < m.end() for s, e in self._taken):
                yield m

    def take(self, m: re.Match[str]) -> None:
        self._taken.append((m.start(), m.end()))
