"""Precise rules for the common, high-value statements: name, home, job, family and pets,
preferences, plans, how the user addresses the companion (events, with their dates resolved,
are memory.extract's general path).

Each rule maps to a *slot* when the fact is single-valued ("user.location"), so a later
statement updates the stored one instead of contradicting it ("I moved to Lyon" replaces
"lives in Paris"). What no rule covers goes through memory.extract's general path.
"""

from __future__ import annotations

import datetime as dt
import re

from companion.memory.facts import Candidate
from companion.memory.grammar import third_person
from companion.memory.passages import sentences

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
JOBS = (
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


def sentence_rules(sentence: str, today: str) -> list[Candidate]:
    """Facts the rules find in one sentence."""
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
    elif m := find(_IM + r"\s+(?i:an?)\s+((?:[a-z-]+\s+)?(?:" + JOBS + r"))\b"):
        out.append(Candidate(f"The user is {_article(m.group(1))}.", "fact", "user.job"))
    if m := find(_I + r"(?i:\s+work\s+(?:at|for))\s+" + _PLACE):
        out.append(Candidate(f"The user works at {m.group(1).rstrip('.')}.", "fact", "user.workplace"))
    if m := find(_IM + r"\s+(\d{1,3})(?i:\s+years?\s+old|\s+yo)\b") or find(
            _IM + r"(?i:\s+(?:actually|now|only|just))?\s+(\d{1,2})(?=\s*(?:$|[.,!;]|\s+(?:now|lol|haha|btw)\b))") or find(
            _I + r"(?i:\s+(?:just|finally|officially))?(?i:\s+turned)\s+(\d{1,3})\b(?!\s*(?:%|percent|degrees|minutes|hours|km|miles|pages))"):
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
    for m in re.finditer(_IM + r"(?i:\s+(?:a\s+|an\s+)?(?:(?:huge|big|massive|great|real|total|die-hard|long-time)\s+)?"
                         r"(fan|lover)\s+of\s+)" + _CLAUSE, s):  # "I'm a huge fan of Studio Ghibli films"
        obj = _clean(m.group(2))
        if obj.split() and obj.split()[0].lower() not in _VAGUE:
            text = f"The user is a big fan of {_third_person(obj)}." if m.group(1).lower() == "fan" else f"The user loves {_third_person(obj)}."
            out.append(Candidate(text, "preference", f"user.likes.{_slug(obj)}"))
    # "Emma and I broke up last week", "my partner and I got engaged!": a change in who someone is
    # to the user, said the way people say it (the classifier passes these by)
    if m := find(r"(?i:\b(?:((?:my\s+)?[\w'-]+(?:\s+[\w'-]+)?)\s+and\s+(?:i|me)|we)\s+(?:just\s+|finally\s+|recently\s+|officially\s+)?"
                 r"(broke\s+up|split\s+up|separated|got\s+divorced|divorced|got\s+engaged|got\s+married|got\s+back\s+together|"
                 r"moved\s+in\s+together)\b)"):
        said = s[m.start():]
        if not m.group(1):  # "we got married": the user and their partner, not their family
            said = re.sub(r"(?i)^we\b", "the user and their partner", said)
        out.append(Candidate(third_person(said), "relationship"))
    if (m := find(r"(?i:\b(?:i'm|i am|im)\s+(?:going|planning)\s+to|\bi\s+plan\s+to|\bi'm\s+gonna|\bi\s+will|\bi'll)\s+"
                  + _CLAUSE)) and not re.match(r"(?i)call\s+you\b", m.group(1)):
        what = _clean(m.group(1))
        when = re.search(_WHEN, s)
        if what.split()[0].lower() not in _VAGUE | {"be", "try", "think", "see", "let", "have", "go"} or when:
            if when and when.group(1).lower() not in what.lower():
                what = f"{what} {when.group(1).lower()}"
            out.append(Candidate(f"The user plans to {_third_person(what)} (said on {today}).", "plan"))
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


def rule_candidates(user_text: str, today: str | None = None) -> list[Candidate]:
    """Facts the rules find in what the user said."""
    today = today or dt.date.today().isoformat()
    seen: dict[str, Candidate] = {}
    for sentence in sentences(user_text):
        for c in sentence_rules(sentence, today):
            seen[c.slot or c.text.lower()] = c  # the last statement of a slot wins
    return list(seen.values())

