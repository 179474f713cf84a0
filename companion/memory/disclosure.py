"""Is this sentence the user telling something lasting about their life?

Two stages. First, wording that rules a sentence out whatever it says: a question, a
hypothetical ("if I lived in Spain…", "imagine…", "I wish…"), fiction ("a film about a man
who…", "my character in the game…"), hearsay ("my friend said she…", "the guy in the podcast
says…"), a request to the companion, or no one from the user's life in it at all. Then a small
logistic-regression classifier over the sentence's all-MiniLM-L6-v2 embedding, trained on the
labelled sentences in companion/data/memory/disclosure_train.tsv (written for it, never from the evaluation
set); its weights are disclosure_model.json beside it, rebuilt with
`python -m companion.memory.train_disclosure`.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

DATA = Path(__file__).resolve().parent.parent / "data" / "memory"  # companion/data/memory: ships with the package
TRAIN_FILE = DATA / "disclosure_train.tsv"
MODEL_FILE = DATA / "disclosure_model.json"
THRESHOLD = 0.5  # P(disclosure) at which a sentence becomes a fact
L2 = 1e-3  # weight decay (5-fold cross-validation on the training file: 1e-3 89.8%, 1e-2 88.2%, 3e-2 82.5%)
STEPS = 3000
LEARNING_RATE = 0.5

RELATIONS = (
    "wife|husband|partner|girlfriend|boyfriend|fiancée|fiancee|fiancé|fiance|spouse|son|daughter|child|children|"
    "kids?|baby|babies|twins?|mother|mom|mum|mam|mummy|mama|father|dad|daddy|papa|parents?|sister|brother|siblings?|"
    "twin sister|twin brother|half-sister|half-brother|stepsister|stepbrother|stepmother|stepmum|stepmom|"
    "stepfather|stepdad|grandmother|grandma|granny|nan|nana|grandfather|grandad|granddad|grandpa|grandparents?|"
    "grandson|granddaughter|grandchildren|grandkids|aunt|auntie|aunty|uncle|cousin|niece|nephew|"
    "mother-in-law|father-in-law|sister-in-law|brother-in-law|son-in-law|daughter-in-law|in-laws|"
    "best friend|friend|mate|best mate|boss|manager|colleague|coworker|co-worker|roommate|flatmate|housemate|"
    "neighbour|neighbor|landlord|landlady|teacher|tutor|coach|therapist|doctor|dentist|vet|godmother|godfather|"
    "godson|goddaughter|ex|ex-wife|ex-husband|business partner|team|family"
)
PETS = (
    "dog|cat|puppy|kitten|pet|pets|bird|budgie|parrot|rabbit|bunny|hamster|guinea pig|gerbil|mouse|rat|ferret|"
    "tortoise|turtle|lizard|gecko|snake|fish|goldfish|horse|pony|chicken|chickens|hens|duck|goat|"
    "greyhound|collie|border collie|labrador|spaniel|terrier|poodle|retriever|beagle|dachshund|pug|husky|"
    "whippet|lurcher|alsatian|cockapoo|tomcat"
)
NO_ONE = "no one from the user's life"
_PERSON = re.compile(r"(?i)\b(?:i|i'm|i've|i'd|i'll|me|my|mine|myself|we|we're|we've|we'd|us|our|ours|home)\b")
_KIN = re.compile(rf"(?i)\b(?:{RELATIONS}|{PETS})\b")
_HYPOTHETICAL = re.compile(
    r"(?i)^\s*(?:if\b|what\s+if\b|imagine\b|suppose\b|supposing\b|hypothetically\b|pretend\b|let's\s+(?:say|pretend|play)\b|"
    r"lol\s+imagine\b|in\s+theory\b)|\b(?:i\s+wish|if\s+i\s+(?:were|was|had|could|lived|won)|i'd\s+probably|"
    r"would\s+you|imagine\s+if)\b"
)
_FICTION = re.compile(
    r"(?i)\b(?:film|movie|book|novel|story|show|series|documentary|game|podcast|episode|play|comic|cartoon|anime|song)s?\s+"
    r"(?:about|where|in\s+which)\b|\bin\s+(?:the|that|this|a)\s+(?:film|movie|book|novel|story|show|series|"
    r"documentary|game|podcast|episode|play|comic|cartoon|anime|dream)\b|\bmy\s+(?:character|avatar|hero)\b|"
    r"\b(?:the\s+)?(?:main\s+)?(?:character|protagonist|hero|heroine|villain|detective)\s+(?:is|was|has|lives)\b|"
    r"\btell\s+me\s+a\s+story\b"
)
_HEARSAY = re.compile(
    r"(?i)\b(?:said|says|say|told\s+me|tells\s+me|claims?|claimed|reckons?|thinks?|heard|posted|wrote)\b"
    r"(?:\s+that)?\s+(?:she|he|they|it|his|her|their|there|the|a|an|you)\b"
    r"|\b(?:apparently|supposedly|allegedly|rumou?r\s+has\s+it|on\s+reddit|online|the\s+news|they\s+say|people\s+say)\b"
)
_REQUEST = re.compile(
    r"(?i)^\s*(?:please\s+)?(?:can|could|would|will)\s+you\b|^\s*(?:please\s+)?(?:tell|give|write|show|explain|"
    r"describe|translate|summari[sz]e|recommend|suggest|play|set|list|help|find|make)\b"
)


def gate(sentence: str, known_names: Collection[str] = ()) -> str | None:
    """The reason this sentence is not about the user's life, or None if it may be."""
    s = sentence.strip()
    if not s:
        return "empty"
    if s.rstrip(" )\"'").endswith("?"):
        return "question"
    if _HYPOTHETICAL.search(s):
        return "hypothetical"
    if _FICTION.search(s):
        return "fiction"
    if _REQUEST.search(s):
        return "request"
    if _HEARSAY.search(s):  # "my friend said she…"; "my doctor says I'm…" is about the user
        return "hearsay"
    names = {n.lower() for n in known_names if n}
    words = {w.lower() for w in re.findall(r"[\w'-]+", s)}
    if not _PERSON.search(s) and not _KIN.search(s) and not (names & words):
        return NO_ONE
    return None


@dataclass
class Classifier:
    """Logistic regression over sentence embeddings: p = sigmoid(x . w + b)."""

    w: np.ndarray  # (384,) float32
    b: float

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        """P(disclosure) for each row of (N, 384) unit vectors."""
        z = vectors @ self.w + self.b  # (N,)
        return 1.0 / (1.0 + np.exp(-z))


def load_training(path: Path = TRAIN_FILE) -> tuple[list[str], np.ndarray]:
    """Sentences and 0/1 labels from the training file (comments start with #)."""
    texts, labels = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        label, text = line.split("\t", 1)
        texts.append(text.strip())
        labels.append(int(label))
    return texts, np.asarray(labels, np.float32)


def train(vectors: np.ndarray, labels: np.ndarray, l2: float = L2, steps: int = STEPS) -> Classifier:
    """Fit by full-batch gradient descent on the mean log loss + l2 * |w|^2 (deterministic)."""
    n, d = vectors.shape
    w = np.zeros(d, np.float64)  # (d,)
    b = 0.0
    x = vectors.astype(np.float64)  # (n, d)
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(x @ w + b)))  # (n,)
        g = p - labels  # (n,)
        w -= LEARNING_RATE * (x.T @ g / n + 2 * l2 * w)
        b -= LEARNING_RATE * float(g.mean())
    return Classifier(w.astype(np.float32), float(b))


@functools.cache
def classifier() -> Classifier:
    """The shipped classifier (companion/data/memory/disclosure_model.json)."""
    data = json.loads(MODEL_FILE.read_text())
    return Classifier(np.asarray(data["w"], np.float32), float(data["b"]))


def save(model: Classifier, path: Path = MODEL_FILE, **info: Any) -> None:
    """Write the weights as JSON (rounded: 6 decimals are plenty for a decision at 0.5)."""
    data = {"about": "logistic regression over all-MiniLM-L6-v2 sentence embeddings; "
                     "`python -m companion.memory.train_disclosure` rebuilds it from disclosure_train.tsv",
            **info, "b": round(model.b, 6), "w": [round(float(v), 6) for v in model.w]}
    path.write_text(json.dumps(data) + "\n")
