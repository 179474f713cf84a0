"""Long-term memory extraction: facts about the user and the relationship, from each exchange.

Rules catch the common, high-value statements (name, home, job, family and pets,
preferences, plans, events, how the user addresses the companion). Each rule maps to a
*slot* when the fact is single-valued ("user.location"), so a later statement updates
the stored one instead of contradicting it ("I moved to Lyon" replaces "lives in Paris").
The local model, when given, proposes extra facts; they are kept only if they stay close
to the user's own words (a small model invents things).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    from companion.memory.store import Store

Generate = Callable[[list[dict[str, str]]], str]
DUPLICATE_COSINE = 0.9  # a free fact this close to a stored one is the same fact


@dataclass
class Candidate:
    """A fact proposed for long-term memory."""

    text: str
    kind: str = "fact"  # fact | preference | plan | event | relationship
    slot: str | None = None  # single-valued key; None = free fact
    pinned: bool = False  # always in the prompt (e.g. the user's name)


@dataclass
class Change:
    """What remember() did with a candidate."""

    action: Literal["add", "update", "keep"]
    memory_id: int
    text: str
    previous: str | None = None


# --- rules ------------------------------------------------------------------------------

_PLACE = r"([A-Z][\w'.-]*(?:(?:\s+|,\s*|\s+(?:de|del|la|le|upon|on|am)\s+)[A-Z][\w'.-]*)*)"
_NAME = r"([A-Z][\w'-]+(?:\s+[A-Z][\w'-]+)?)"
_CLAUSE = r"([^.!?;,\n]{2,120}?)(?=$|[.!?;,\n]|\s+(?i:but|and\s+i|because|so|although)\b)"
_WHEN = (r"(?i)\b(tomorrow|tonight|today|next\s+(?:week|weekend|month|year|\w+day)|this\s+(?:weekend|evening|week)|"
         r"on\s+\w+day|in\s+(?:january|february|march|april|may|june|july|august|september|october|november|december))\b")
_RELATIONS = (
    "wife|husband|partner|girlfriend|boyfriend|fiancée|fiancee|fiancé|fiance|son|daughter|mother|mom|mum|"
    "father|dad|sister|brother|best friend|friend|boss|roommate|grandmother|grandma|grandfather|grandpa|"
    "dog|cat|puppy|kitten|pet|bird|rabbit|hamster|horse"
)
_JOBS = (
    "engineer|developer|programmer|teacher|nurse|doctor|student|designer|writer|artist|lawyer|manager|"
    "scientist|chef|cook|researcher|accountant|musician|photographer|journalist|pharmacist|architect|"
    "electrician|plumber|mechanic|farmer|translator|librarian|dentist|therapist|consultant|analyst|baker"
)
_PRONOUNS = {"my": "their", "me": "them", "i": "they", "myself": "themselves", "mine": "theirs",
             "i'm": "they're", "i've": "they've", "i'll": "they'll", "i'd": "they'd", "am": "are"}
_VAGUE = {"it", "that", "this", "you", "them", "him", "her", "to", "so", "too", "the", "a", "an", "what", "how"}


def _third_person(text: str) -> str:
    return re.sub(r"\b(my|me|i|myself|mine|i'm|i've|i'll|i'd|am)\b",
                  lambda m: _PRONOUNS[m.group(1).lower()], text.strip(), flags=re.IGNORECASE)


def _clean(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip(" ,;:-'\"")
    text = re.sub(r"\s+(?:and|but|so|because|which|though|although|lol|haha)$", "", text, flags=re.IGNORECASE)
    return text


def _slug(text: str) -> str:
    words = [w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in ("the", "a", "an", "my", "some")]
    return "_".join(words[:4]) or "thing"


_I = r"(?i:\bi)"
_IM = r"(?i:\bi'm|\bi am|\bim)"


def _rules(sentence: str, today: str) -> list[Candidate]:
    s = sentence.strip()
    out: list[Candidate] = []

    def find(pattern: str) -> re.Match[str] | None:
        return re.search(pattern, s)

    if m := find(r"(?i:\bmy name is|\bmy name's|\bcall me|\bpeople call me)\s+" + _NAME) or \
            find(r"^(?i:hi|hello|hey)[,!]?\s+(?i:i'm|i am)\s+" + _NAME):
        out.append(Candidate(f"The user's name is {m.group(1)}.", "fact", "user.name", pinned=True))
    if m := find(_I + r"(?i:\s+(?:now\s+|currently\s+)?(?:live|am living|'m living|reside)\s+in|"
                 r"(?:'ve|\s+have)?\s+(?:just\s+)?(?:moved|relocated)\s+to|'m based in|\s+am based in)\s+" + _PLACE):
        out.append(Candidate(f"The user lives in {m.group(1).rstrip('.')}.", "fact", "user.location"))
    if m := find(_IM + r"(?i:\s+(?:originally\s+)?from)\s+" + _PLACE):
        out.append(Candidate(f"The user is from {m.group(1).rstrip('.')}.", "fact", "user.hometown"))
    if m := find(_I + r"(?i:\s+work\s+as\s+(?:an?\s+)?)" + r"([\w -]{2,40}?)(?=$|[.,!?;]|\s+(?i:at|for|in|and)\b)"):
        out.append(Candidate(f"The user works as {_article(m.group(1))}.", "fact", "user.job"))
    elif m := find(_IM + r"\s+(?i:an?)\s+((?:[a-z-]+\s+)?(?:" + _JOBS + r"))\b"):
        out.append(Candidate(f"The user is {_article(m.group(1))}.", "fact", "user.job"))
    if m := find(_I + r"(?i:\s+work\s+(?:at|for))\s+" + _PLACE):
        out.append(Candidate(f"The user works at {m.group(1).rstrip('.')}.", "fact", "user.workplace"))
    if m := find(_IM + r"\s+(\d{1,3})(?i:\s+years?\s+old|\s+yo)\b"):
        out.append(Candidate(f"The user is {m.group(1)} years old (as of {today}).", "fact", "user.age"))
    if m := find(r"(?i:\bmy birthday is\s+(?:on\s+)?)([\w ,]{3,30}?)(?=$|[.!?;])"):
        out.append(Candidate(f"The user's birthday is {m.group(1).strip()}.", "fact", "user.birthday"))
    if m := find(r"(?i:\bmy fav(?:ou?rite)?)\s+([a-z ]{2,30}?)\s+(?i:is|are)\s+" + _CLAUSE):
        thing, value = m.group(1).strip(), _clean(m.group(2))
        out.append(Candidate(f"The user's favorite {thing} is {_third_person(value)}.", "preference",
                             f"user.favorite.{_slug(thing)}"))
    for m in re.finditer(r"(?i:\bmy)\s+(" + _RELATIONS + r")(?i:'s name is|\s+is called|\s+is named|\s+named|\s+called|,)\s+"
                         + _NAME, s):
        rel = m.group(1).lower()
        out.append(Candidate(f"The user's {rel} is called {m.group(2)}.", "relationship", f"user.{_slug(rel)}.name"))
    for m in re.finditer(_I + r"(?i:\s+have\s+an?)\s+(" + _RELATIONS + r")(?i:\s+(?:named|called))\s+" + _NAME, s):
        rel = m.group(1).lower()
        out.append(Candidate(f"The user's {rel} is called {m.group(2)}.", "relationship", f"user.{_slug(rel)}.name"))
    if m := find(_IM + r"(?i:\s+allergic\s+to)\s+" + _CLAUSE):
        what = _clean(m.group(1))
        out.append(Candidate(f"The user is allergic to {what}.", "fact", f"user.allergy.{_slug(what)}", pinned=True))
    for m in re.finditer(r"(?i:\b(?:i|we)\s+(?:really\s+|absolutely\s+|just\s+|also\s+)?"
                         r"(love|like|enjoy|adore|hate|dislike|can't stand|don't like|do not like)\s+)" + _CLAUSE, s):
        verb, obj = m.group(1).lower(), _clean(m.group(2))
        words = obj.lower().split()
        if words and words[0] not in _VAGUE or (len(words) > 1 and words[0] == "to" and words[1] not in _VAGUE):
            negative = verb in ("hate", "dislike", "can't stand", "don't like", "do not like")
            obj3 = _third_person(obj)
            text = f"The user {'dislikes' if negative else 'likes'} {obj3}."
            if verb in ("love", "adore"):
                text = f"The user loves {obj3}."
            out.append(Candidate(text, "preference", f"user.likes.{_slug(obj)}"))
    if (m := find(r"(?i:\b(?:i'm|i am|im)\s+(?:going|planning)\s+to|\bi\s+plan\s+to|\bi'm\s+gonna|\bi\s+will|\bi'll)\s+"
                  + _CLAUSE)) and not re.match(r"(?i)call\s+you\b", m.group(1)):
        what = _clean(m.group(1))
        when = re.search(_WHEN, s)
        if what.split()[0].lower() not in _VAGUE | {"be", "try", "think", "see", "let", "have", "go"} or when:
            if when and when.group(1).lower() not in what.lower():
                what = f"{what} {when.group(1).lower()}"
            out.append(Candidate(f"The user plans to {_third_person(what)} (said on {today}).", "plan"))
    if m := find(r"(?i:\b(?:yesterday|last\s+(?:night|week|weekend|month|year)|this\s+morning|today)\b,?\s+i\s+|"
                 r"\bi\s+(?:just|finally)\s+)" + _CLAUSE):
        what = _clean(m.group(1))
        if what.split()[0].lower() not in _VAGUE | {"think", "feel", "want", "wanted", "wonder", "don't", "can't"}:
            out.append(Candidate(f"On {today} the user said they {_third_person(what)}.", "event"))
    if m := find(r"(?i:\b(?:i'll|i will|let me|can i|i'm going to|i want to)\s+call\s+you)\s+" + _NAME):
        out.append(Candidate(f"The user calls the companion {m.group(1)}.", "relationship", "relationship.nickname"))
    if m := find(r"(?i:\byou(?:'re|\s+are)\s+my\s+)(best friend|friend|favorite|confidant)\b"):
        out.append(Candidate(f"The user calls the companion their {m.group(1).lower()}.", "relationship",
                             "relationship.status"))
    return out


def _article(noun: str) -> str:
    noun = _clean(noun)
    if re.match(r"(?i)(a|an|the)\s", noun):
        return noun
    return ("an " if noun[:1].lower() in "aeiou" else "a ") + noun


def _sentences(text: str) -> list[str]:
    return [p for p in re.split(r"(?<=[.!?])\s+|\n+|;\s*", text) if p.strip()]


def rule_candidates(user_text: str, today: str | None = None) -> list[Candidate]:
    """Facts the rules find in what the user said."""
    today = today or dt.date.today().isoformat()
    seen: dict[str, Candidate] = {}
    for sentence in _sentences(user_text):
        for c in _rules(sentence, today):
            seen[c.slot or c.text.lower()] = c  # the last statement of a slot wins
    return list(seen.values())


# --- the model --------------------------------------------------------------------------

EXTRACT_PROMPT = (
    "List the lasting facts the user states about themselves in their message: name, home, "
    "work, family, pets, likes and dislikes, plans, important events. One fact per line, each "
    "starting with '- The user', in the third person. If there are none, answer 'NONE'."
)


def model_candidates(user_text: str, generate: Generate) -> list[Candidate]:
    """Facts the model proposes, kept only when most of their content words are the user's."""
    try:
        reply = generate([{"role": "system", "content": EXTRACT_PROMPT}, {"role": "user", "content": user_text}])
    except Exception:  # the model is an optional helper: never let it break remembering
        return []
    user_words = set(re.findall(r"[a-z0-9']+", user_text.lower()))
    out = []
    for line in reply.splitlines()[:8]:
        line = line.strip().lstrip("-*• ").strip()
        if not line.lower().startswith("the user") or not (12 <= len(line) <= 200):
            continue
        words = [w for w in re.findall(r"[a-z0-9']+", line.lower()[len("the user"):])
                 if w not in _STOP_FOR_GROUNDING]
        if words and sum(w in user_words or w.rstrip("s") in user_words for w in words) / len(words) >= 0.6:
            out.append(Candidate(line if line.endswith(".") else line + ".", "fact"))
    return out


_STOP_FOR_GROUNDING = frozenset("is are was were has have their they them a an the of to in on at and or with for their's".split())


# --- deciding ---------------------------------------------------------------------------


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def remember(
    store: Store, character_id: int, candidates: list[Candidate], source_message_id: int | None = None
) -> list[Change]:
    """Add, update or keep each candidate against what the character already remembers."""
    changes: list[Change] = []
    for c in candidates:
        if c.slot:
            existing = store.memories(character_id, slot=c.slot)
            if existing:
                old = existing[0]
                if _norm(old["text"]) == _norm(c.text):
                    changes.append(Change("keep", old["id"], old["text"]))
                else:
                    store.update_memory(old["id"], text=c.text, source_message_id=source_message_id)
                    changes.append(Change("update", old["id"], c.text, previous=old["text"]))
                continue
        else:
            dup = _near_duplicate(store, character_id, c.text)
            if dup is not None:
                changes.append(Change("keep", dup[0], dup[1]))
                continue
        mid = store.add_memory(character_id, c.text, kind=c.kind, slot=c.slot, pinned=c.pinned,
                               source_message_id=source_message_id)
        changes.append(Change("add", mid, c.text))
    return changes


def _near_duplicate(store: Store, character_id: int, text: str) -> tuple[int, str] | None:
    """A stored memory saying the same thing, if any (embedding cosine, else exact text)."""
    from companion.memory._blas import one_blas_thread
    from companion.memory.embed import embedding_text
    from companion.memory.recall import vector_index

    index = vector_index(store, character_id)
    emb = store.embedder()
    if emb is not None and index is not None and len(index.ids):
        with one_blas_thread():
            q = emb.encode([embedding_text(text)])[0]  # (384,)
        sims = index.mat @ q  # (N,)
        best = int(np.argmax(sims))
        if sims[best] >= DUPLICATE_COSINE:
            mid = int(index.ids[best])
            return mid, store.memory(mid)["text"]
        return None
    for m in store.memories(character_id):
        if _norm(m["text"]) == _norm(text):
            return m["id"], m["text"]
    return None


def extract_and_store_memories(
    store: Store,
    character_id: int,
    user_text: str,
    *,
    source_message_id: int | None = None,
    generate: Generate | None = None,
    today: str | None = None,
) -> list[Change]:
    """After an exchange: extract facts from the user's message and remember them."""
    candidates = rule_candidates(user_text, today)
    if generate is not None:
        covered = {c.slot for c in candidates if c.slot}
        for c in model_candidates(user_text, generate):
            if not any(_norm(c.text) == _norm(r.text) for r in candidates) and c.slot not in covered:
                candidates.append(c)
    return remember(store, character_id, candidates, source_message_id)
