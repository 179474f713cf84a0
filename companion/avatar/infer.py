"""Emotion from the words of a reply, for when the model wrote no `[tag]` (a 135M model often
doesn't): each finished sentence is compared with a few prototype sentences per emotion in
all-MiniLM-L6-v2's embedding space (the memory's shared encoder, companion.memory.embed), and
a small lexicon adds what embeddings blur: cue words, negation ("not happy") and intensifiers.

Why both: the embedding generalises to wordings no list holds ("that really brightened my
day"), but MiniLM places "I'm not sad" next to "I'm sad" and ranks short exclamations
("Woohoo!") poorly; the lexicon is sharp on exactly those and blind to everything else. The
measured accuracy of each alone and together is in tests/test_emotion_infer.py (held-out set
tests/fixtures/emotion_labelled.tsv, never used as prototypes).

Cost: one embedding per finished sentence (~25-45 ms on one CPU core), on the chat worker
thread. Until the encoder and the prototype vectors are loaded (a background thread, started
by `warm_up`), the lexicon alone answers."""

from __future__ import annotations

import argparse
import functools
import re
import sys
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np

from companion.emotion import EMOTIONS, Emotion

# Prototype sentences: what a companion says when it feels each emotion. Kept apart from the
# held-out test set; neutral's are plain statements, so "no feeling" has a place to land.
PROTOTYPES: dict[Emotion, tuple[str, ...]] = {
    "neutral": (
        "The library opens at ten and closes at six.",
        "Here is the list of ingredients you asked for.",
        "The report has three sections and an appendix.",
        "You can change that in the settings menu.",
        "The capital of Japan is Tokyo.",
        "That command prints the current directory.",
        "It takes about twenty minutes by bus.",
        "The recipe needs two eggs and a cup of flour.",
    ),
    "happy": (
        "I'm really happy for you!",
        "That's wonderful, it made me smile.",
        "I'm so pleased everything worked out.",
        "Thank you, you're so sweet.",
        "It's lovely to talk with you again.",
        "What great news, I'm glad to hear it.",
        "You always cheer me up.",
        "That sounds like a perfect day.",
    ),
    "sad": (
        "I'm sorry, that must be really hard for you.",
        "That's so sad, I feel for you.",
        "It breaks my heart to hear that.",
        "I'm feeling a little blue today.",
        "I wish things had turned out differently.",
        "It's painful to lose someone you love.",
        "I'll miss you when you're gone.",
        "That's a shame, I know how much it meant to you.",
    ),
    "angry": (
        "That makes me so angry!",
        "They had no right to do that to you.",
        "That's unfair and I'm really upset about it.",
        "I can't stand people who treat others like that.",
        "Enough! That behaviour is not okay.",
        "It's ridiculous that they keep ignoring your complaints.",
        "I'm fed up with their excuses.",
        "How could they be so rude?",
    ),
    "surprised": (
        "Wow, really? I had no idea!",
        "Oh my, that's unexpected!",
        "No way, you actually did that?",
        "I'm shocked, I never would have guessed.",
        "What? Since when?",
        "That's incredible, I can hardly believe it!",
        "Huh, that caught me off guard.",
        "Seriously? That's amazing news out of nowhere!",
    ),
    "thinking": (
        "Let me think about that.",
        "Hmm, that's an interesting question.",
        "I'm trying to figure out the best answer.",
        "Maybe, but I'd have to think it over.",
        "Let's see, there are a few ways to look at this.",
        "I wonder what would happen if we tried something else.",
        "Good question, give me a second to work it out.",
        "Perhaps the answer is somewhere in between.",
    ),
    "embarrassed": (
        "Oh no, that's so embarrassing!",
        "You're making me blush.",
        "Oops, my mistake, sorry!",
        "I feel a bit awkward about that.",
        "Um, I'm kind of shy about it.",
        "Stop it, you're flattering me too much!",
        "I can't believe I got that wrong, how silly of me.",
        "I'm turning red just thinking about it.",
    ),
    "sleepy": (
        "I'm so sleepy right now.",
        "Yawn, it's getting really late.",
        "I think I need a nap.",
        "I'm exhausted, let's call it a night.",
        "Goodnight, sleep well.",
        "I can hardly stay awake.",
        "I'm tired, it's past my bedtime.",
        "Let's get some rest and talk tomorrow.",
    ),
    "relaxed": (
        "Let's relax and enjoy the moment.",
        "I feel so calm right now.",
        "Take your time, there's no hurry.",
        "It's a peaceful, quiet afternoon.",
        "Just breathe and let it go.",
        "A cozy blanket and some music sound nice.",
        "Everything's okay, we can take it slow.",
        "It's nice and easy, nothing to worry about.",
    ),
    "excited": (
        "I'm so excited!",
        "This is going to be so much fun, I can't wait!",
        "Yay, let's go!",
        "That's awesome, let's start right away!",
        "I'm thrilled about the trip!",
        "Oh, oh, I have the best idea!",
        "Hooray, it's finally happening!",
        "Let's party, this is fantastic!",
    ),
}

# Cue words and phrases, with weights. A cue preceded by a negation within three words counts
# for nothing ("not happy" is not happy; what it is instead, the embedding decides).
LEXICON: dict[Emotion, dict[str, float]] = {
    "happy": {
        "happy": 1, "glad": 1, "delighted": 1, "pleased": 1, "lovely": 0.7, "wonderful": 0.8,
        "love": 0.6, "smile": 0.7, "smiling": 0.7, "joy": 1, "thank you": 0.5, "thanks": 0.4,
        "cheer": 0.6, "nice": 0.4, "great": 0.4, "congratulations": 1, "sweet": 0.5, "haha": 0.7,
        "beautiful": 0.4, "brighten": 0.7,
    },
    "sad": {
        "sad": 1, "sorry": 0.8, "unfortunately": 0.8, "miss": 0.8, "lonely": 1, "heartbreaking": 1,
        "heartbroken": 1, "hurts": 0.8, "cry": 0.9, "tears": 0.9, "loss": 0.7, "losing": 0.6,
        "grief": 1, "down": 0.3, "blue": 0.3, "depressed": 1, "painful": 0.8, "shame": 0.5,
        "hardest": 0.4, "wish": 0.3,
    },
    "angry": {
        "angry": 1, "mad": 1, "furious": 1.2, "annoyed": 1, "annoying": 0.9, "outrageous": 1,
        "unacceptable": 1, "infuriating": 1.2, "rude": 0.8, "hate": 0.9, "how dare": 1.2,
        "ugh": 0.7, "ridiculous": 0.8, "unfair": 0.8, "fed up": 1, "no right": 0.9,
        "won't tolerate": 1, "stop it": 0.5,
    },
    "surprised": {
        "wow": 1, "whoa": 1, "no way": 1, "can't believe": 0.8, "unbelievable": 1, "surprise": 1,
        "surprised": 1, "surprising": 1, "unexpected": 1, "didn't expect": 1, "did not expect": 1,
        "never saw": 0.7, "goodness": 0.6, "really?": 0.7, "shocked": 1, "what?": 0.6,
        "no idea": 0.5, "oh!": 0.6,
    },
    "thinking": {
        "hmm": 1.2, "think": 0.5, "wonder": 0.8, "perhaps": 0.6, "maybe": 0.5, "consider": 0.7,
        "not sure": 0.8, "let me": 0.4, "tricky": 0.7, "puzzle": 0.8, "figure out": 0.7,
        "step by step": 0.6, "let's see": 0.8, "interesting": 0.5, "depends": 0.5,
    },
    "embarrassed": {
        "blush": 1.2, "embarrassing": 1.2, "embarrassed": 1.2, "oops": 1, "awkward": 1, "shy": 1,
        "eek": 0.8, "flustered": 1, "silly": 0.5, "red": 0.4, "too kind": 0.8, "my mistake": 0.8,
        "didn't mean": 0.5, "flattering": 0.8,
    },
    "sleepy": {
        "sleepy": 1.2, "tired": 1, "yawn": 1.2, "bed": 0.7, "goodnight": 1, "good night": 1,
        "drowsy": 1.2, "sleep": 0.8, "exhausted": 1, "nap": 1, "bedtime": 1, "late": 0.4,
        "eyelids": 0.8, "awake": 0.5, "sweet dreams": 1, "eyes open": 0.6, "energy": 0.3,
    },
    "relaxed": {
        "calm": 1, "relax": 1, "relaxed": 1, "relaxing": 1, "peaceful": 1, "take it easy": 1,
        "no rush": 1, "no hurry": 1, "breathe": 0.8, "breath": 0.6, "soothing": 1, "cozy": 0.9,
        "quiet": 0.5, "lazy": 0.6, "slow down": 0.8, "gentle": 0.6, "chill": 0.8, "tea": 0.3,
        "no need to worry": 0.8,
    },
    "excited": {
        "excited": 1.2, "excitement": 1.2, "can't wait": 1.2, "cannot wait": 1.2, "awesome": 0.8,
        "amazing": 0.6, "woohoo": 1.2, "yay": 1, "hooray": 1, "thrilled": 1.2, "pumped": 1.2,
        "celebrate": 0.9, "let's go": 0.8, "adventure": 0.6, "fantastic": 0.7, "best": 0.3,
        "yes!": 0.7, "oh my gosh": 0.8, "hardly wait": 1,
    },
}  # fmt: skip
NEGATIONS = frozenset(
    "not no never don't doesn't didn't isn't wasn't aren't won't can't cannot hardly without nothing".split()
)
INTENSIFIERS = frozenset("so really very extremely super totally truly absolutely incredibly such".split())

# Scoring, chosen by leave-one-out over the prototypes (never on the held-out set):
TOP_K = 2  # an emotion's similarity: mean of its K closest prototypes (one odd match counts less)
LEX_WEIGHT = 0.12  # one full-weight cue word is worth this much cosine similarity
LEX_CAP = 2.0  # cue weight beyond this adds nothing (a list of synonyms is not more emotion)
NEUTRAL_BIAS = 0.06  # added to neutral's similarity: plain statements stay neutral (LOO plateau 0.05-0.12)
OBVIOUS = 1.0  # an unnegated cue weight this large never leaves the face neutral


@dataclass(frozen=True)
class Reading:
    """What one sentence expresses: an emotion and how strongly (0..1)."""

    emotion: Emotion
    intensity: float
    scores: tuple[float, ...] = ()  # per emotion, EMOTIONS order (for diagnostics)


# --- the lexicon ------------------------------------------------------------------------------

_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?[?!]?|[!?,;:.]")
_CLAUSE_END = frozenset(",;:.!?")  # a negation reaches no further than its clause


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("’", "'"))


def _plain(word: str) -> str:
    return word.rstrip("?!")


def lexicon_scores(text: str) -> tuple[np.ndarray, int]:
    """(cue weight per emotion in EMOTIONS order, intensifier count) of one sentence."""
    words = _words(text)
    plain = [_plain(w) for w in words]
    scores = np.zeros(len(EMOTIONS), np.float32)  # (E,)
    for e, cues in LEXICON.items():
        i_e = EMOTIONS.index(e)
        for cue, weight in cues.items():
            parts = cue.split(" ")
            n = len(parts)
            punct = cue[-1] in "?!"
            seq = words if punct else plain
            for i in range(len(seq) - n + 1):
                if seq[i : i + n] != parts and not (n == 1 and not punct and _stem_match(seq[i], cue)):
                    continue
                if _negated(words, i) and cue not in _SELF_NEGATING:
                    continue
                scores[i_e] += weight
    boost = sum(1 for w in plain if w in INTENSIFIERS) + text.count("!")
    return np.minimum(scores, LEX_CAP), boost


# Cues that contain their own negation: "no way" must not be cancelled by its own "no".
_SELF_NEGATING = frozenset(
    c for cues in LEXICON.values() for c in cues if any(p in NEGATIONS for p in c.split(" "))
)


def _negated(words: list[str], i: int) -> bool:
    """A negation among the three words before words[i], in the same clause."""
    for w in reversed(words[max(0, i - 3) : i]):
        if w[-1] in _CLAUSE_END:
            return False
        if w in NEGATIONS:
            return True
    return False


def _stem_match(word: str, cue: str) -> bool:
    """'smiled', 'smiles' match 'smile'; 'loved' matches 'love' (a cue of 4+ letters)."""
    if len(cue) < 4 or not word.startswith(cue):
        return False
    return word[len(cue) :] in ("s", "d", "ed", "es", "ing", "ly", "y")


# --- the embedding side -----------------------------------------------------------------------


class EmotionReader:
    """Reads the emotion of sentences. `embedder` is the shared MiniLM encoder (or None for the
    lexicon alone); `load()` embeds the prototypes (blocking), `warm_up()` does it in the
    background."""

    def __init__(self, embedder: Any | None = None, *, use_lexicon: bool = True, use_embedding: bool = True) -> None:
        self._embedder = embedder
        self.use_lexicon = use_lexicon
        self.use_embedding = use_embedding
        self._protos: np.ndarray | None = None  # (E, P, C) unit vectors
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.error: str | None = None  # why the embedding side is unavailable, if it is

    # -- loading --

    @property
    def ready(self) -> bool:
        """The embedding side can answer (else the lexicon answers alone)."""
        return self._protos is not None

    def load(self) -> bool:
        """Load the encoder (the shared one) and embed the prototypes; False if unavailable."""
        with self._lock:
            if self._protos is not None or not self.use_embedding:
                return self._protos is not None
            try:
                if self._embedder is None:
                    from companion.memory.embed import get_embedder

                    self._embedder = get_embedder()
                per = len(next(iter(PROTOTYPES.values())))
                flat = [s for e in EMOTIONS for s in PROTOTYPES[e]]
                vecs = self._embedder.encode(flat)  # (E*P, C)
                self._protos = vecs.reshape(len(EMOTIONS), per, -1)  # (E, P, C)
            except Exception as exc:  # noqa: BLE001 - no encoder: the lexicon still works
                self.error = f"{type(exc).__name__}: {exc}"
                self.use_embedding = False
            return self._protos is not None

    def warm_up(self) -> None:
        """Start loading in a background thread (once)."""
        with self._lock:
            if self._thread is not None or self._protos is not None or not self.use_embedding:
                return
            self._thread = threading.Thread(target=self.load, name="companion-emotion", daemon=True)
            self._thread.start()

    # -- reading --

    def similarities(self, texts: Sequence[str]) -> np.ndarray:
        """(N, E) similarity of each text to each emotion's prototypes (mean of the top K)."""
        assert self._protos is not None and self._embedder is not None
        vecs = self._embedder.encode(list(texts))  # (N, C)
        sims = np.einsum("nc,epc->nep", vecs, self._protos)  # (N, E, P)
        top = -np.sort(-sims, axis=2)[:, :, :TOP_K]  # (N, E, K)
        return top.mean(axis=2)  # (N, E)

    def read(self, text: str) -> Reading:
        """The emotion of one sentence."""
        return self.read_many([text])[0]

    def read_many(self, texts: Sequence[str]) -> list[Reading]:
        """The emotion of each sentence (one batched embedding)."""
        if not texts:
            return []
        use_emb = self.use_embedding and self.ready
        sims = self.similarities(texts) if use_emb else np.zeros((len(texts), len(EMOTIONS)), np.float32)
        return [self._decide(t, sims[i], use_emb) for i, t in enumerate(texts)]

    def _decide(self, text: str, sim: np.ndarray, use_emb: bool) -> Reading:
        lex, boost = lexicon_scores(text) if self.use_lexicon else (np.zeros(len(EMOTIONS), np.float32), 0)
        score = sim.astype(np.float32).copy()  # (E,)
        score[0] += NEUTRAL_BIAS
        score += LEX_WEIGHT * lex
        if not use_emb:
            score[0] = LEX_WEIGHT * 0.5  # the lexicon alone: neutral unless half a cue speaks
        order = np.argsort(-score)
        best = int(order[0])
        if best == 0 and lex.max() >= OBVIOUS:
            best = int(np.argmax(np.where(np.arange(len(EMOTIONS)) == 0, -np.inf, score)))
        runner = max(float(score[i]) for i in range(len(EMOTIONS)) if i != best)
        margin = float(score[best]) - runner
        intensity = 0.0 if best == 0 else float(np.clip(0.45 + 2.5 * margin + 0.08 * min(boost, 3), 0.35, 1.0))
        return Reading(cast(Emotion, EMOTIONS[best]), round(intensity, 3), tuple(float(x) for x in score))


@functools.cache
def shared_reader() -> EmotionReader:
    """The process-wide reader (the memory's encoder; its prototypes are embedded on first use,
    under the reader's own lock)."""
    return EmotionReader()


# --- a streamed reply -------------------------------------------------------------------------

_SENTENCE_END = re.compile(r"[.!?…]+[\"')\]*]*(?=\s)|\n+")


class ReplyEmotion:
    """Feed the visible text of a reply as it streams; each finished sentence is read once, and
    a Reading comes out when the face should change. Neutral sentences never undo an emotion
    shown earlier in the reply. `finish()` reads the last fragment and, if nothing was shown,
    says neutral (every reply ends with a cue)."""

    def __init__(self, reader: EmotionReader | None = None) -> None:
        self.reader = reader or shared_reader()
        self._buf = ""
        self.shown: Reading | None = None
        self.readings: list[Reading] = []

    def feed(self, text: str) -> list[Reading]:
        self._buf += text
        out: list[Reading] = []
        while (m := _SENTENCE_END.search(self._buf)) is not None:
            sentence, self._buf = self._buf[: m.end()], self._buf[m.end() :]
            out += self._sentence(sentence)
        return out

    def finish(self) -> list[Reading]:
        tail, self._buf = self._buf, ""
        out = self._sentence(tail)
        if self.shown is None and not out:
            self.shown = Reading("neutral", 0.0)
            out.append(self.shown)
        return out

    def _sentence(self, sentence: str) -> list[Reading]:
        if not re.search(r"\w", sentence):
            return []
        r = self.reader.read(sentence.strip())
        self.readings.append(r)
        if r.emotion == "neutral":
            return []
        if self.shown is not None and self.shown.emotion == r.emotion and abs(self.shown.intensity - r.intensity) < 0.15:
            return []
        self.shown = r
        return [r]


def infer_emotion(text: str, reader: EmotionReader | None = None) -> Emotion:
    """The emotion of a whole text: its sentences read one by one, the strongest wins. Waits
    for the encoder (unlike a streamed reply, which reads with the lexicon until it is loaded)."""
    reader = reader or shared_reader()
    reader.load()
    stream = ReplyEmotion(reader)
    readings = stream.feed(text) + stream.finish()
    best = max(readings, key=lambda r: r.intensity, default=None)
    return best.emotion if best is not None else "neutral"


# --- evaluation -------------------------------------------------------------------------------


def load_labelled(path: Path) -> list[tuple[Emotion, str]]:
    """`emotion<TAB>sentence` lines (# comments and blank lines skipped)."""
    rows: list[tuple[Emotion, str]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        label, text = line.split("\t", 1)
        if label not in EMOTIONS:
            raise ValueError(f"{path}: unknown emotion {label!r}")
        rows.append((cast(Emotion, label), text))
    return rows


@dataclass
class Score:
    """Accuracy on a labelled set: overall and per emotion (correct, total)."""

    correct: int
    total: int
    per_emotion: dict[str, tuple[int, int]]
    mistakes: list[tuple[str, str, str]]  # (sentence, expected, got)

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    def table(self) -> str:
        lines = [f"{'emotion':<12} {'correct':>7}  accuracy"]
        for e, (c, n) in self.per_emotion.items():
            lines.append(f"{e:<12} {c:>3}/{n:<3}  {c / n:6.0%}" if n else f"{e:<12}   -")
        lines.append(f"{'overall':<12} {self.correct:>3}/{self.total:<3}  {self.accuracy:6.1%}")
        return "\n".join(lines)


def evaluate(reader: EmotionReader, rows: Iterable[tuple[Emotion, str]]) -> Score:
    """Read every sentence as one reply's sentence and compare with its label."""
    rows = list(rows)
    got = reader.read_many([t for _, t in rows])
    per = {e: [0, 0] for e in EMOTIONS}
    mistakes: list[tuple[str, str, str]] = []
    for (want, text), r in zip(rows, got, strict=True):
        per[want][1] += 1
        if r.emotion == want:
            per[want][0] += 1
        else:
            mistakes.append((text, want, r.emotion))
    correct = sum(c for c, _ in per.values())
    return Score(correct, len(rows), {e: (c, n) for e, (c, n) in per.items()}, mistakes)


def main(argv: list[str] | None = None) -> int:
    """python -m companion.avatar.infer tests/fixtures/emotion_labelled.tsv: the accuracy table
    of the embedding alone, the lexicon alone, and both (the shipped method)."""
    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("labelled", type=Path)
    ap.add_argument("--mistakes", action="store_true", help="list the sentences read wrong")
    args = ap.parse_args(argv)
    rows = load_labelled(args.labelled)
    full = EmotionReader()
    if not full.load():
        print(f"embedding unavailable: {full.error}", file=sys.stderr)
    for name, reader in (
        ("embedding only", EmotionReader(full._embedder, use_lexicon=False)),
        ("lexicon only", EmotionReader(use_embedding=False)),
        ("embedding + lexicon (shipped)", full),
    ):
        if reader is not full:
            reader.load()
        score = evaluate(reader, rows)
        print(f"== {name}\n{score.table()}\n")
        if args.mistakes and reader is full:
            for text, want, got in score.mistakes:
                print(f"  {want:>11} -> {got:<11} {text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
