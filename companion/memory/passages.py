"""Splitting a message into sentences, and into the passages episodic memory indexes.

A message of one or two sentences is one passage. A longer one becomes overlapping pairs of
sentences, so that each passage has one topic (a sharper vector than the whole message: "Long
day. The fan broke. Anyway, pasta tonight." is three things) and still carries the sentence
before it ("My running club has a new coach. Her name's Bea.").
"""

from __future__ import annotations

import re

_SPLIT = re.compile(r"(?<=[.!?…])[\"')\]]*\s+(?=[\"'(\[]?[^\s])|\n+|;\s+|\s+[—–]\s+(?=[A-Z])")
_ABBREV = re.compile(r"(?i)\b(?:mr|mrs|ms|dr|st|prof|sr|jr|vs|etc|e\.g|i\.e|approx|no)\.$")


def sentences(text: str) -> list[str]:
    """The sentences of a message, in order (abbreviations such as "Dr." do not end one)."""
    out: list[str] = []
    for part in _SPLIT.split(text.strip()):
        part = part.strip()
        if not part:
            continue
        if out and (_ABBREV.search(out[-1]) or re.fullmatch(r"\d+\.", out[-1].split()[-1])):
            out[-1] = f"{out[-1]} {part}"  # "Dr. Alvarez", "am 5. Mai"
        else:
            out.append(part)
    return out


def passages(text: str) -> list[str]:
    """What episodic memory indexes for a message: itself, or overlapping sentence pairs."""
    text = text.strip()
    if not text:
        return []
    parts = sentences(text)
    if len(parts) <= 2:
        return [text]
    return [f"{a} {b}" for a, b in zip(parts, parts[1:], strict=False)]
