"""Dates in what the user says, resolved against when they said it.

"tomorrow", "in two weeks", "next Friday", "on the 21st" mean nothing a month later, so a
fact keeps the calendar date instead: "on Thursday 26 February 2026". Rules (said on day D):
"this <weekday>" is the next such day from D on; "<weekday>" / "on <weekday>" the next such
day after D, or the last one before D where the clause is told in the past tense ("I turned 30
on Saturday"); "last <weekday>" the last such day before D; "next <weekday>" that day in the
week after D's (weeks start on Monday);
"the 21st" the next 21st from D on. A day and month without a year ("14 June", "le 3 avril")
is kept as said (a birthday recurs) and dated to its next occurrence.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from companion.memory.spans import Spans

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_MONTHS = {
    **{m: i + 1 for i, m in enumerate(("january", "february", "march", "april", "may", "june", "july",
                                        "august", "september", "october", "november", "december"))},
    **{m: i + 1 for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct",
                                        "nov", "dec"))},
    "sept": 9,
    # French, Spanish, German
    **{m: i + 1 for i, m in enumerate(("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
                                        "septembre", "octobre", "novembre", "décembre"))},
    **{m: i + 1 for i, m in enumerate(("enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto",
                                        "septiembre", "octubre", "noviembre", "diciembre"))},
    **{m: i + 1 for i, m in enumerate(("januar", "februar", "märz", "april", "mai", "juni", "juli", "august",
                                        "september", "oktober", "november", "dezember"))},
}
_NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
            "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "a couple of": 2, "couple of": 2}
_MONTH = "|".join(sorted(_MONTHS, key=len, reverse=True))
_WD = "|".join(WEEKDAYS)
_COUNT = r"\d{1,3}|a couple of|couple of|" + "|".join(k for k in _NUMBERS if " " not in k)
_ORD = r"(?:st|nd|rd|th|er)?"

# (pattern, kind); patterns are matched case-insensitively, longest forms first
_PATTERNS: list[tuple[str, str]] = [
    (r"\b(?:on\s+)?(?:the\s+)?day\s+after\s+tomorrow\b", "after_tomorrow"),
    (r"\b(?:on\s+)?tomorrow\b", "tomorrow"),
    (r"\byesterday\b", "yesterday"),
    (r"\b(?:today|tonight|this\s+(?:morning|afternoon|evening))\b", "today"),
    (rf"\bin\s+({_COUNT})\s+(days?|weeks?|fortnights?|months?)(?:'?\s*time)?\b", "in"),
    (r"\bin\s+a\s+fortnight\b", "fortnight"),
    (rf"\b(?:on\s+)?last\s+({_WD})\b", "last_weekday"),
    (rf"\b(?:on\s+)?next\s+({_WD})\b", "next_weekday"),
    (rf"\b(?:on\s+)?this\s+(?:coming\s+)?({_WD})\b", "this_weekday"),
    (rf"\b(?:on\s+)?(?:the\s+)?coming\s+({_WD})\b", "this_weekday"),
    (rf"\b(?:on\s+)?({_WD})(?!\s*,?\s*\d)(?!\s+(?:the\s+)?\d)\b", "weekday"),
    (rf"\b(?:on\s+)?(?:(?:{_WD})\s+)?(?:the\s+)?(\d{{1,2}}){_ORD}\s+(?:of\s+|de\s+)?({_MONTH})\b(?:,?\s+(\d{{4}}))?", "day_month"),
    (rf"\b(\d{{1,2}})\.\s*({_MONTH})\b(?:\s+(\d{{4}}))?", "day_month"),
    (rf"\b(?:on\s+)?({_MONTH})\s+(?:the\s+)?(\d{{1,2}}){_ORD}\b(?:,?\s+(\d{{4}}))?", "month_day"),
    (r"\bon\s+the\s+(\d{1,2})(?:st|nd|rd|th)\b(?!\s+of)", "day_of_month"),
]
_COMPILED = [(re.compile(p, re.IGNORECASE), kind) for p, kind in _PATTERNS]
_RECURRING_BEFORE = re.compile(
    rf"(?i)\b(?:every|each|other|most|all|some|on\s+a|usually|normally|always|the\s+(?:first|last|second|third|fourth)|"
    rf"(?:{_WD})\s+(?:to|till|until|through|and|or|-|–))\s+$")
_RECURRING_AFTER = re.compile(
    rf"(?i)\s*(?:s\b|\s+(?:mornings|afternoons|evenings|nights)\b|\s+of\s+(?:the|each|every)\s+month|"
    rf"\s*(?:to|till|until|through|-|–)\s+(?:{_WD}))")
_HABIT = re.compile(r"(?i)\b(?:usually|normally|always|every|each|generally|typically)\b")
# a weekday told in the past tense ("I turned 30 on Saturday", "on sunday we went hiking") is the
# one before the day it was said, not the one after: a past verb in its clause and no future one
# ("got my theory test on thursday, so nervous" is still to come)
_PAST = re.compile(
    r"(?i)\b(?:was|were|had|did|went|got\s+(?:promoted|married|engaged|fired|hired|back|home|sick|dumped|accepted|rejected)|turned|met|saw|bought|moved|started|finished|passed|ran|came|left|took|"
    r"made|told|said|spent|visited|celebrated|adopted|graduated|lost|won|broke|fell|died|married|watched|played|"
    r"cooked|tried|hiked|called|texted|ate|drank|slept|wrote|read\s+(?:it|a|the)|flew|drove|rode|"
    r"(?:i|we|he|she|they|you)\s+(?:\w+\s+)?\w+[^\We]ed)\b")  # "I stayed", not "I need"
_FUTURE = re.compile(r"(?i)\b(?:will|'ll|going\s+to|gonna|plan|planning|hope|want|wanna|can't\s+wait|looking\s+forward|"
                     r"excited|nervous|worried|dreading|scared|booked|is|are|am|'m|'re)\b")
_CLAUSE_BREAK = re.compile(r"[.;!?]|,\s+(?:but|and|so)\b")  # a date's clause ends at these
_PREPOSITION_BEFORE = re.compile(r"(?i)\b(?:about|for|until|till|before|after|by|since|from|to|of|than|like)\s+$")


@dataclass
class DateMention:
    """A date expression found in a text."""

    start: int
    end: int
    text: str  # as written
    date: dt.date  # the day it means (for a recurring date: its next occurrence)
    relative: bool  # meaningless without the day it was said ("tomorrow", "next Friday")


def said_on(timestamp: str) -> dt.date:
    """The user's local calendar day of a stored timestamp (UTC in the database)."""
    when = dt.datetime.fromisoformat(timestamp)
    return when.astimezone().date() if when.tzinfo else when.date()


def describe(day: dt.date) -> str:
    """'Thursday 26 February 2026'."""
    return f"{WEEKDAYS[day.weekday()].capitalize()} {day.day} {day.strftime('%B')} {day.year}"


def _next_weekday(today: dt.date, weekday: int, *, include_today: bool) -> dt.date:
    ahead = (weekday - today.weekday()) % 7
    if ahead == 0 and not include_today:
        ahead = 7
    return today + dt.timedelta(days=ahead)


def _last_weekday(today: dt.date, weekday: int) -> dt.date:
    """The latest such day before today ("last Saturday" said on a Saturday: a week ago)."""
    return today - dt.timedelta(days=(today.weekday() - weekday) % 7 or 7)


def _add_months(day: dt.date, months: int) -> dt.date:
    y, m = divmod(day.month - 1 + months, 12)
    year, month = day.year + y, m + 1
    for d in (day.day, 30, 29, 28):
        try:
            return dt.date(year, month, d)
        except ValueError:
            continue
    raise AssertionError("unreachable")


def _day_month(today: dt.date, day: int, month: int, year: str | None) -> dt.date | None:
    try:
        if year:
            return dt.date(int(year), month, day)
        candidate = dt.date(today.year, month, day)
        return candidate if candidate >= today else dt.date(today.year + 1, month, day)
    except ValueError:
        return None


def _resolve(m: re.Match[str], kind: str, today: dt.date) -> tuple[dt.date | None, bool]:
    g = [x.lower() if x else x for x in m.groups()]
    if kind == "tomorrow":
        return today + dt.timedelta(days=1), True
    if kind == "after_tomorrow":
        return today + dt.timedelta(days=2), True
    if kind == "yesterday":
        return today - dt.timedelta(days=1), True
    if kind == "today":
        return today, True
    if kind == "fortnight":
        return today + dt.timedelta(days=14), True
    if kind == "in":
        n = int(g[0]) if g[0].isdigit() else _NUMBERS[g[0]]
        unit = g[1].rstrip("s")
        if unit == "month":
            return _add_months(today, n), True
        return today + dt.timedelta(days=n * {"day": 1, "week": 7, "fortnight": 14}[unit]), True
    if kind == "this_weekday":
        return _next_weekday(today, WEEKDAYS.index(g[0]), include_today=True), True
    if kind == "weekday":
        return _next_weekday(today, WEEKDAYS.index(g[0]), include_today=False), True
    if kind == "last_weekday":
        return _last_weekday(today, WEEKDAYS.index(g[0])), True
    if kind == "next_weekday":
        monday_next = today + dt.timedelta(days=7 - today.weekday())
        return monday_next + dt.timedelta(days=WEEKDAYS.index(g[0])), True
    if kind == "day_of_month":
        day = int(g[0])
        for months in range(3):
            base = _add_months(today.replace(day=1), months)
            try:
                candidate = base.replace(day=day)
            except ValueError:
                continue
            if candidate >= today:
                return candidate, True
        return None, True
    if kind == "day_month":
        return _day_month(today, int(g[0]), _MONTHS[g[1]], g[2]), False
    if kind == "month_day":
        return _day_month(today, int(g[1]), _MONTHS[g[0]], g[2]), False
    return None, False


def find_dates(text: str, today: dt.date) -> list[DateMention]:
    """Date expressions in text, in order, without overlaps (the first, longest pattern wins)."""
    found: list[DateMention] = []
    spans = Spans()
    for pattern, kind in _COMPILED:
        for m in spans.free_matches(pattern, text):
            if kind.endswith("weekday") and (_RECURRING_BEFORE.search(text[:m.start()]) or _HABIT.search(text)
                                             or _RECURRING_AFTER.match(text[m.end():])):
                continue  # "every other Wednesday", "Sunday mornings", "usually Wednesday to Sunday": habits
            day, relative = _resolve(m, kind, today)
            if day is None:
                continue
            clause = _CLAUSE_BREAK.split(text[:m.start()])[-1] + " " + _CLAUSE_BREAK.split(text[m.end():])[0]
            if kind == "weekday" and _PAST.search(clause) and not _FUTURE.search(clause):
                day = _last_weekday(today, day.weekday())
            found.append(DateMention(m.start(), m.end(), m.group(0), day, relative))
            spans.take(m)
    return sorted(found, key=lambda d: d.start)


def absolute(text: str, today: dt.date) -> tuple[str, dt.date | None]:
    """text with each relative date written out ("tomorrow" -> "on Wednesday 11 February 2026"),
    and the first date it mentions (None if none)."""
    mentions = find_dates(text, today)
    out, pos = [], 0
    for d in mentions:
        out.append(text[pos:d.start])
        on = "" if _PREPOSITION_BEFORE.search(text[:d.start]) and not d.text.lower().startswith("on ") else "on "
        out.append(f"{on}{describe(d.date)}" if d.relative else d.text)
        pos = d.end
    out.append(text[pos:])
    return "".join(out), (mentions[0].date if mentions else None)
