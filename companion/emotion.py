"""Emotion cues in a streamed reply: `[happy]`-style tags are removed from the text and turned
into avatar cues; a reply without tags gets a cue from its wording."""

from __future__ import annotations

import re

EMOTIONS = ("neutral", "happy", "sad", "angry", "surprised", "relaxed", "thinking", "shy")
_ALIASES = {
    "joy": "happy", "smile": "happy", "smiles": "happy", "laugh": "happy", "laughs": "happy",
    "excited": "happy", "sorrow": "sad", "upset": "sad", "mad": "angry", "shocked": "surprised",
    "wow": "surprised", "calm": "relaxed", "hmm": "thinking", "blush": "shy", "blushes": "shy",
}  # fmt: skip
_TAG = re.compile(r"\[(\w{2,12})\]")
_MAX_TAG = 14  # longest possible "[word]" we wait for before releasing text

_WORDS = {
    "happy": ("glad", "happy", "great", "love", "wonderful", "awesome", "yay", "haha", "!"),
    "sad": ("sorry", "sad", "unfortunately", "miss you", "tough"),
    "surprised": ("wow", "really?", "no way", "amazing"),
    "thinking": ("hmm", "let me think", "perhaps", "i wonder"),
}


def emotion_name(word: str) -> str | None:
    w = word.lower()
    if w in EMOTIONS:
        return w
    return _ALIASES.get(w)


class EmotionFilter:
    """Feed streamed text; get (visible text, cues). Holds back a possible partial tag."""

    def __init__(self) -> None:
        self._pending = ""
        self.cues: list[str] = []

    def feed(self, text: str) -> tuple[str, list[str]]:
        buf = self._pending + text
        cues: list[str] = []

        def repl(m: re.Match[str]) -> str:
            e = emotion_name(m.group(1))
            if e is None:
                return m.group(0)
            cues.append(e)
            return ""

        buf = _TAG.sub(repl, buf)
        cut = buf.rfind("[")
        if cut != -1 and "]" not in buf[cut:] and len(buf) - cut < _MAX_TAG:
            self._pending, buf = buf[cut:], buf[:cut]
        else:
            self._pending = ""
        self.cues += cues
        return buf, cues

    def flush(self) -> str:
        out, self._pending = self._pending, ""
        return out


def infer_emotion(text: str) -> str:
    """A cue from the wording of a whole reply (used when the model gave no tag)."""
    low = text.lower()
    scores = {e: sum(low.count(w) for w in words) for e, words in _WORDS.items()}
    best = max(scores, key=lambda e: scores[e])
    return best if scores[best] > 0 else "neutral"
