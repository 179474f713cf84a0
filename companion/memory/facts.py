"""What extraction proposes (Candidate), what remembering did with it (Change), and when a
fact stands for a sentence (covers)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from companion.memory.entities import Mention


@dataclass
class Candidate:
    """A fact proposed for long-term memory."""

    text: str
    kind: str = "fact"  # fact | preference | plan | event | relationship | health | note
    slot: str | None = None  # single-valued key; None = free fact
    pinned: bool = False  # always in the prompt (e.g. the user's name, an allergy)
    entity: Mention | None = None  # the person or pet it is about, besides the user
    attribute: str | None = None  # with entity: its single-valued attribute (location, job, age...)
    happens_on: str | None = None  # ISO date of a dated fact
    origin: str = "rule"  # rule | classifier | request | model
    updates: bool = False  # worded as a change ("now", "switched", "moved"): may replace a similar fact
    replaces_only: bool = False  # kept only if it replaces one ("Yoga moved to Sundays now")


@dataclass
class Change:
    """What remember() did with a candidate."""

    action: Literal["add", "update", "keep"]
    memory_id: int
    text: str
    previous: str | None = None


_STOP = frozenset(
    "a an the and or but so of to in on at for with by from is are was were be been am i i'm i've my me we our "
    "us you it its this that these those he she they them his her their has have had do does did just really "
    "very also too now then there here user user's the user's family".split()
)
_TIME = frozenset("last next month week year day today yesterday tomorrow ago big new news update morning "
                  "evening night afternoon tonight".split())


def content_words(text: str) -> set[str]:
    """The words that carry a text's meaning (lower case, plural 's' dropped; dates' words out)."""
    return {w.rstrip("s") for w in re.findall(r"[^\W_][\w'-]*", text.lower())
            if w not in _STOP and w not in _TIME and len(w) > 1 and not w.isdigit()} - _WEEKDAYS_MONTHS


def covers(facts: list[str], text: str, share: float = 0.7, left_out: int = 0) -> bool:
    """Whether facts stand for text: they hold `share` of its content words, or leave out at most
    `left_out` of them."""
    words = content_words(text)
    if not words:
        return True
    held = set().union(*(content_words(f) for f in facts)) if facts else set()
    return len(words & held) / len(words) >= share or (bool(facts) and len(words - held) <= left_out)


_WEEKDAYS_MONTHS = frozenset(
    "monday tuesday wednesday thursday friday saturday sunday january february march april may june july "
    "august september october november december".split())
