"""Emotion cues in a streamed reply: `[happy]`-style tags are removed from the text and turned
into avatar cues (a reply without tags gets its cues from its wording: companion.avatar.infer).

`Emotion` is the one list of emotions: the chat core's AvatarCue, the bridge's AvatarState (and
so ui/bridge-schema.json, from which the page's avatar reads it) all use this Literal."""

from __future__ import annotations

import re
from typing import Literal, get_args

Emotion = Literal[
    "neutral", "happy", "sad", "angry", "surprised", "thinking", "embarrassed", "sleepy",
    "relaxed", "excited",
]  # fmt: skip
EMOTIONS: tuple[Emotion, ...] = get_args(Emotion)
# Other words a model writes in a tag, and the emotion each means.
_ALIASES: dict[str, Emotion] = {
    "joy": "happy", "smile": "happy", "smiles": "happy", "laugh": "happy", "laughs": "happy",
    "sorrow": "sad", "upset": "sad", "mad": "angry", "shocked": "surprised", "wow": "surprised",
    "calm": "relaxed", "hmm": "thinking", "shy": "embarrassed", "blush": "embarrassed",
    "blushes": "embarrassed",
}  # fmt: skip
TAG_WORDS: dict[str, Emotion] = {**{e: e for e in EMOTIONS}, **_ALIASES}  # every word a tag may hold
# A tag: one word of 2-20 letters in brackets ("[happy]", "[ Shy ]", "[big-grin]"). Brackets
# holding digits or several words ("[1]", "[see below]") are ordinary text and stay.
_TAG = re.compile(r"\[\s*(?=[A-Za-z_-]{2,20}\s*\])([A-Za-z]+(?:[-_][A-Za-z]+)*)\s*\]")
# The end of the text may be a tag still arriving ("[hap", "[happy" or a whole "[happy]" whose
# next character, "(" for a markdown link, is not known yet): held back until it is decided.
_OPEN_TAG = re.compile(r"\[\s*[A-Za-z_-]{0,20}\s*\]?")
_DROPPED = "\0"  # stands for a removed tag while the spaces around it are tidied


def emotion_name(word: str) -> Emotion | None:
    """The emotion a tag word names (an emotion or one of its aliases), else None."""
    return TAG_WORDS.get(word.lower())


class EmotionFilter:
    """Feed streamed text; get (visible text, cues). Tags are removed even when split across
    pieces: a known one (an emotion or alias, any case) becomes a cue, an unknown `[word]` is
    dropped. Kept as text: brackets holding digits or several words ("[1]", "[see below]"), a
    markdown link ("[docs](https://...)"), and an unknown word glued to the word before it
    ("list[int]", code). The space a tag leaves is not doubled, and trailing spaces are held
    until text follows them (a reply ending in a tag does not end in a space)."""

    def __init__(self) -> None:
        self._pending = ""  # text not yet decided: a possible tag, trailing spaces
        self._prev = ""  # the last character released ("" before any)
        self.cues: list[Emotion] = []

    def feed(self, text: str, final: bool = False) -> tuple[str, list[Emotion]]:
        """Visible text ready to show, and the cues found. `final`: no more text follows."""
        buf = self._pending + text
        hold = len(buf)
        if not final:
            hold = len(buf.rstrip())
            cut = buf.rfind("[", 0, hold)
            if cut != -1 and _OPEN_TAG.fullmatch(buf, cut, hold):
                hold = len(buf[:cut].rstrip())
        ready, self._pending = buf[:hold], buf[hold:]
        cues: list[Emotion] = []

        def repl(m: re.Match[str]) -> str:
            e = emotion_name(m.group(1))
            start, end = m.span()
            before = m.string[start - 1] if start else " "
            if e is None and (before.isalnum() or before in "_])" or m.string[end : end + 1] == "("):
                return m.group(0)  # code (list[int]) or a markdown link: text, not a tag
            if e is not None:
                cues.append(e)
            return _DROPPED

        # the last released character gives the context of the first tag ("" = start: a space)
        ctx = self._prev or " "
        out = _TAG.sub(repl, ctx + ready)
        if _DROPPED in out:
            out = re.sub(rf"(\s){_DROPPED}+[ \t]*", r"\1", out).replace(_DROPPED, "")
        out = out[1:]
        if final:
            out = out.rstrip()
        if out:
            self._prev = out[-1]
        self.cues += cues
        return out, cues

    def flush(self) -> str:
        """The rest of the text, once the reply ended (cues found in it join `cues`)."""
        return self.feed("", final=True)[0]
