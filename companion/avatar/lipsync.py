"""Lip sync: the mouth shapes (visemes, companion.avatar.pose.VISEMES) of a reply, each with a
duration, timed on the reply's clock (ms since its reply_started) so the page plays them while
the text appears.

`VisemeSource` is where they come from. `TextVisemes` reads the streamed text: English words
become phonemes through espeak-ng (`espeak-ng -q --ipa`, one long-lived process) where it is
installed, else through letter-to-sound rules; punctuation becomes a pause with the mouth
closed. An audio source (speech synthesis) would implement the same Protocol and time the
shapes from its audio instead.

Pacing: a chunk of text starts speaking when it appears, or when the mouth finishes the chunk
before. When the text streams faster than speech, the mouth speeds up (up to MAX_SPEEDUP) and
never trails the text by more than MAX_LAG_MS: what would fall further behind is skipped.
"""

from __future__ import annotations

import functools
import queue
import re
import shutil
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from companion.avatar.pose import Viseme

# Durations (ms), from conversational English at ~13 phones/s (vowels ~100 ms, stressed
# longer; consonants ~60 ms), and pause lengths at punctuation.
VOWEL_MS = 95
STRESSED_MS = 130
CONSONANT_MS = 60
PAUSE_MS = {",": 170, ";": 220, ":": 220, "-": 120, ".": 330, "!": 330, "?": 330, "…": 420, "\n": 380}
MAX_SPEEDUP = 1.8  # the mouth talks at most this much faster than natural to catch up
CATCH_UP_AFTER_MS = 250  # behind the text by more than this: speed up
MAX_LAG_MS = 1200  # never behind the text by more: the rest of the chunk is skipped
MIN_SPAN_MS = 30  # shorter spans are merged into their neighbour (a frame is ~16 ms)


class VisemeSpan(BaseModel):
    """One mouth shape, held for `ms` (also a field of the bridge's avatar_visemes message)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    viseme: Viseme  # companion.avatar.pose.VISEMES
    ms: int = Field(ge=1, le=5000)


@dataclass(frozen=True)
class VisemeTrack:
    """Mouth shapes from start_ms on (reply clock). It replaces whatever was scheduled from
    start_ms on; no spans means: close the mouth at start_ms."""

    start_ms: int
    spans: tuple[VisemeSpan, ...]

    @property
    def end_ms(self) -> int:
        return self.start_ms + sum(s.ms for s in self.spans)


class VisemeSource(Protocol):
    """Where the mouth's shapes come from during one reply. Times are ms on the reply's clock
    (0 = reply_started). Each method returns the tracks to send now."""

    def start(self) -> None:
        """A new reply begins (the clock restarts at 0)."""
        ...

    def text(self, text: str, now_ms: float) -> list[VisemeTrack]:
        """More reply text appeared on the page."""
        ...

    def poll(self, now_ms: float) -> list[VisemeTrack]:
        """Tracks that became ready without new text (audio analysis); text sources have none."""
        ...

    def end(self, now_ms: float, stopped: bool) -> list[VisemeTrack]:
        """The reply ended; `stopped`: cut short by the user (the mouth closes at once)."""
        ...


# --- phonemes -> visemes ------------------------------------------------------------------------

# espeak-ng's IPA for English, two-symbol units first. Diphthongs glide between two shapes.
_IPA_UNITS: dict[str, tuple[Viseme, ...]] = {
    "aɪ": ("aa", "ee"), "aʊ": ("aa", "ou"), "eɪ": ("ee", "ih"), "oʊ": ("oh", "ou"),
    "əʊ": ("oh", "ou"), "ɔɪ": ("oh", "ee"), "eə": ("ee", "ih"), "ɛə": ("ee", "ih"),
    "ɪə": ("ih", "ih"), "ʊə": ("ou", "ih"), "tʃ": ("ou",), "dʒ": ("ou",),
    # vowels
    "a": ("aa",), "ɑ": ("aa",), "æ": ("aa",), "ʌ": ("aa",), "ɐ": ("aa",),
    "i": ("ee",), "e": ("ee",), "ɛ": ("ee",),
    "ɪ": ("ih",), "ᵻ": ("ih",), "ə": ("ih",), "ɚ": ("ih",), "ɜ": ("ih",), "ɝ": ("ih",),
    "o": ("oh",), "ɔ": ("oh",), "ɒ": ("oh",),
    "u": ("ou",), "ʊ": ("ou",), "ɵ": ("ou",),
    # consonants: lips closed (p b m, and f v against the teeth), rounded (w, r, sh), spread
    # (s z), and the rest a small opening
    "p": ("closed",), "b": ("closed",), "m": ("closed",), "f": ("closed",), "v": ("closed",),
    "w": ("ou",), "ɹ": ("ou",), "r": ("ou",), "ʃ": ("ou",), "ʒ": ("ou",),
    "s": ("ee",), "z": ("ee",),
    "t": ("ih",), "d": ("ih",), "n": ("ih",), "l": ("ih",), "θ": ("ih",), "ð": ("ih",),
    "k": ("ih",), "g": ("ih",), "ɡ": ("ih",), "ŋ": ("ih",), "h": ("ih",), "j": ("ih",),
    "ɾ": ("ih",), "x": ("ih",), "ʔ": ("ih",), "ɬ": ("ih",),
}  # fmt: skip
_VOWELS = frozenset("aɑæʌɐieɛɪᵻəɚɜɝoɔɒuʊɵ")


def ipa_visemes(ipa: str) -> list[VisemeSpan]:
    """Visemes of espeak-ng IPA (stress ˈˌ lengthens the next vowel, ː lengthens the last)."""
    out: list[VisemeSpan] = []
    stressed = False
    i = 0
    while i < len(ipa):
        ch = ipa[i]
        if ch in "ˈˌ":
            stressed = ch == "ˈ"
            i += 1
            continue
        if ch == "ː" and out:
            last = out[-1]
            out[-1] = VisemeSpan(viseme=last.viseme, ms=last.ms + 40)
            i += 1
            continue
        unit = ipa[i : i + 2] if ipa[i : i + 2] in _IPA_UNITS else ch
        shapes = _IPA_UNITS.get(unit)
        i += len(unit)
        if shapes is None:
            continue  # tie bars, syllable marks, anything unknown: no shape of its own
        if unit[0] in _VOWELS:
            total = STRESSED_MS if stressed else VOWEL_MS
            total += 40 if len(shapes) > 1 else 0
            stressed = False
            out += [VisemeSpan(viseme=v, ms=total // len(shapes)) for v in shapes]
        else:
            out += [VisemeSpan(viseme=v, ms=CONSONANT_MS) for v in shapes]
    return out


# Letter-to-sound rules, longest spelling first: a rough English reading, good enough for a
# mouth (vowel teams, magic e, digraphs), used where espeak-ng is not installed.
_SPELLINGS: dict[str, tuple[Viseme, ...]] = {
    "igh": ("aa", "ee"), "tch": ("ou",), "augh": ("oh",), "ough": ("oh", "ou"),
    "th": ("ih",), "sh": ("ou",), "ch": ("ou",), "ph": ("closed",), "wh": ("ou",),
    "ck": ("ih",), "ng": ("ih",), "qu": ("ih", "ou"),
    "ee": ("ee",), "ea": ("ee",), "ie": ("ee",), "ey": ("ee", "ih"), "ei": ("ee", "ih"),
    "oo": ("ou",), "ou": ("aa", "ou"), "ow": ("oh", "ou"), "ai": ("ee", "ih"),
    "ay": ("ee", "ih"), "oa": ("oh", "ou"), "oe": ("oh", "ou"), "au": ("oh",),
    "aw": ("oh",), "oi": ("oh", "ee"), "oy": ("oh", "ee"), "ue": ("ou",), "ew": ("ou",),
    "ar": ("aa", "ou"), "or": ("oh", "ou"), "er": ("ih",), "ir": ("ih",), "ur": ("ih",),
    "a": ("aa",), "e": ("ee",), "i": ("ih",), "o": ("oh",), "u": ("aa",),
    "b": ("closed",), "m": ("closed",), "p": ("closed",), "f": ("closed",), "v": ("closed",),
    "w": ("ou",), "r": ("ou",), "j": ("ou",), "s": ("ee",), "z": ("ee",), "c": ("ih",),
    "x": ("ih", "ee"), "d": ("ih",), "g": ("ih",), "h": ("ih",), "k": ("ih",),
    "l": ("ih",), "n": ("ih",), "t": ("ih",), "q": ("ih",),
}  # fmt: skip
_LETTER_RULES = sorted(_SPELLINGS.items(), key=lambda kv: -len(kv[0]))  # longest spelling first
_MAGIC_E: dict[str, tuple[Viseme, ...]] = {"a": ("ee", "ih"), "i": ("aa", "ee"), "o": ("oh", "ou"), "u": ("ou",)}


@functools.lru_cache(maxsize=4096)
def rule_visemes(word: str) -> tuple[VisemeSpan, ...]:
    """Visemes of one English word by spelling rules."""
    w = re.sub(r"[^a-z]", "", word.lower())
    w = re.sub(r"(.)\1", r"\1", w)  # double letters are one sound
    magic: dict[int, tuple[Viseme, ...]] = {}
    m = re.search(r"([aiou])[^aeiouy]e$", w)
    if m and len(w) > 3:
        magic[m.start(1)] = _MAGIC_E[m.group(1)]  # "make", "time", "home", "tune"
        w = w[:-1]
    elif len(w) > 3 and w.endswith("e"):
        w = w[:-1]  # silent final e
    out: list[VisemeSpan] = []
    i = 0
    while i < len(w):
        if w[i] == "y":
            shapes: tuple[Viseme, ...] = ("ih",) if i == 0 else ("aa", "ee") if len(w) <= 3 else ("ee",)
            step = 1
        elif i in magic:
            shapes, step = magic[i], 1
        else:
            spelling, shapes = next(((s, v) for s, v in _LETTER_RULES if w.startswith(s, i)), ("", ()))
            step = max(1, len(spelling))
        vowel = w[i] in "aeiouy"
        ms = (VOWEL_MS + (40 if len(shapes) > 1 else 0)) // max(1, len(shapes)) if vowel else CONSONANT_MS
        out += [VisemeSpan(viseme=v, ms=ms) for v in shapes]
        i += step
    return tuple(out)


class Phonemizer(Protocol):
    """Words to mouth shapes."""

    def __call__(self, words: Sequence[str]) -> list[VisemeSpan]: ...


class RulePhonemizer:
    """Letter-to-sound rules (no dependencies)."""

    name = "rules"

    def __call__(self, words: Sequence[str]) -> list[VisemeSpan]:
        return [span for w in words for span in rule_visemes(w)]


class EspeakPhonemizer:
    """espeak-ng's English phonemes, from one long-lived `espeak-ng -q --ipa` process fed a
    line at a time (a process per call costs ~50-90 ms; a line costs ~1-3 ms). Falls back to
    the rules for good if espeak-ng stops answering."""

    name = "espeak-ng"
    TIMEOUT_S = 0.5

    def __init__(self, exe: str, voice: str = "en-us") -> None:
        self._proc = subprocess.Popen(
            [exe, "-q", "--ipa", "-v", voice],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, encoding="utf-8", bufsize=1,
        )  # fmt: skip
        self._lines: queue.Queue[str] = queue.Queue()
        self._lock = threading.Lock()
        self._rules = RulePhonemizer()
        self.failed = False
        threading.Thread(target=self._read, name="companion-espeak", daemon=True).start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self._lines.put(line)

    def ipa(self, words: Sequence[str]) -> str | None:
        """The IPA of some words, or None when espeak-ng failed."""
        line = " ".join(re.sub(r"[^\w']", "", w) for w in words).strip()
        if not line:
            return ""
        with self._lock:
            if self.failed:
                return None
            while not self._lines.empty():  # a stale answer must not be taken for this one
                self._lines.get_nowait()
            try:
                assert self._proc.stdin is not None
                self._proc.stdin.write(line + "\n")
                self._proc.stdin.flush()
                return self._lines.get(timeout=self.TIMEOUT_S).strip()
            except (OSError, ValueError, queue.Empty):
                self.failed = True
                self.close()
                return None

    def __call__(self, words: Sequence[str]) -> list[VisemeSpan]:
        ipa = self.ipa(words)
        return self._rules(words) if ipa is None else ipa_visemes(ipa)

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(5)


_espeak: EspeakPhonemizer | None = None
_espeak_lock = threading.Lock()


def default_phonemizer() -> Phonemizer:
    """espeak-ng where installed (one process for the app), else the spelling rules."""
    global _espeak
    with _espeak_lock:
        if _espeak is not None and not _espeak.failed:
            return _espeak
        exe = shutil.which("espeak-ng")
        if exe is None:
            return RulePhonemizer()
        try:
            _espeak = EspeakPhonemizer(exe)
        except OSError:
            return RulePhonemizer()
        return _espeak


# --- the text source --------------------------------------------------------------------------

# A token of text: a word (letters, digits, inner apostrophes), or punctuation that pauses.
_TOKEN = re.compile(r"[\w']+|[,;:.!?…\n]|(?<=\s)-(?=\s)")


def text_spans(text: str, phonemizer: Phonemizer) -> list[VisemeSpan]:
    """The mouth shapes of finished text: words spoken, punctuation paused (mouth closed)."""
    spans: list[VisemeSpan] = []
    words: list[str] = []

    def say() -> None:
        if words:
            spans.extend(phonemizer(words))
            words.clear()

    for tok in _TOKEN.findall(text):
        if tok in PAUSE_MS:
            say()
            spans.append(VisemeSpan(viseme="closed", ms=PAUSE_MS[tok]))
        else:
            words.append(tok)
    say()
    return spans


def merge(spans: Sequence[VisemeSpan]) -> list[VisemeSpan]:
    """Neighbouring equal shapes joined; spans shorter than MIN_SPAN_MS folded into the last."""
    out: list[VisemeSpan] = []
    for s in spans:
        if s.ms <= 0:
            continue
        if out and (out[-1].viseme == s.viseme or s.ms < MIN_SPAN_MS) and out[-1].ms + s.ms <= 5000:
            out[-1] = VisemeSpan(viseme=out[-1].viseme, ms=out[-1].ms + s.ms)
        else:
            out.append(s)
    return out


class TextVisemes:
    """VisemeSource for streamed reply text. A word is spoken once it is complete (the text
    after it shows a space or punctuation), so a word split across tokens is read whole."""

    def __init__(self, phonemizer: Phonemizer | None = None) -> None:
        self.phonemizer = phonemizer or default_phonemizer()
        self.start()

    def start(self) -> None:
        self._buf = ""
        self._cursor = 0.0  # reply-clock ms where the scheduled shapes end

    def text(self, text: str, now_ms: float) -> list[VisemeTrack]:
        self._buf += text
        cut = max(self._buf.rfind(c) for c in " \n\t,;:.!?…")
        if cut < 0:
            return []
        done, self._buf = self._buf[: cut + 1], self._buf[cut + 1 :]
        return self._schedule(text_spans(done, self.phonemizer), now_ms)

    def poll(self, now_ms: float) -> list[VisemeTrack]:
        return []

    def end(self, now_ms: float, stopped: bool) -> list[VisemeTrack]:
        rest, self._buf = self._buf, ""
        if stopped:
            self._cursor = now_ms
            return [VisemeTrack(round(now_ms), ())]
        return self._schedule(text_spans(rest, self.phonemizer), now_ms)

    def _schedule(self, spans: list[VisemeSpan], now_ms: float) -> list[VisemeTrack]:
        """Place spans on the clock: after what is already scheduled, sped up when behind."""
        # a pause at the start of a chunk is dropped when the mouth is idle anyway
        start = max(now_ms, self._cursor)
        if start == now_ms:
            while spans and spans[0].viseme == "closed":
                spans = spans[1:]
        if not spans:
            return []
        lag = start - now_ms
        speed = 1.0
        if lag > CATCH_UP_AFTER_MS:
            speed = min(MAX_SPEEDUP, 1.0 + (lag - CATCH_UP_AFTER_MS) / 500.0)
        room = now_ms + MAX_LAG_MS - start  # ms the chunk may take before it trails too far
        out: list[VisemeSpan] = []
        used = 0.0
        for s in spans:
            ms = s.ms / speed
            if used + ms > room:
                break
            out.append(VisemeSpan(viseme=s.viseme, ms=min(5000, max(1, round(ms)))))
            used += ms
        out = merge(out)
        if not out:
            return []
        track = VisemeTrack(int(round(start)), tuple(out))
        self._cursor = track.end_ms
        return [track]
