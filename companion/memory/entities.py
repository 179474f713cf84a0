"""The people and pets in the user's life: finding them in a sentence, and matching a mention
to the one already known.

"my sister Oriane", "Oriane, my sister,", "Oriane is my sister", "my sister is called
Oriane", "Grandma", "Dev's mum Sunita", "a greyhound … named him Comet" are mentions; a
mention with a relation and no name ("my sister moved to Lima") is the one sister already
known (the latest, if several), one with a name only is the known entity of that name.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from companion.memory.disclosure import PETS, RELATIONS
from companion.memory.spans import Spans

if TYPE_CHECKING:
    from companion.memory.store import Store

_CANON = {
    "mum": "mother", "mom": "mother", "mam": "mother", "mummy": "mother", "mama": "mother", "dad": "father", "daddy": "father",
    "papa": "father", "grandma": "grandmother", "granny": "grandmother", "nan": "grandmother", "nana": "grandmother",
    "grandad": "grandfather", "granddad": "grandfather", "grandpa": "grandfather", "neighbor": "neighbour",
    "coworker": "colleague", "co-worker": "colleague", "stepmum": "stepmother", "stepmom": "stepmother",
    "stepdad": "stepfather", "mate": "friend", "best mate": "best friend", "auntie": "aunt", "aunty": "aunt",
    "fiance": "fiancé", "fiancee": "fiancée", "kid": "child", "manager": "boss", "flatmate": "roommate",
    "housemate": "roommate", "bunny": "rabbit", "puppy": "dog", "kitten": "cat", "tomcat": "cat",
}
_DOG_BREEDS = ("greyhound collie labrador spaniel terrier poodle retriever beagle dachshund pug husky whippet "
               "lurcher alsatian cockapoo").split()
# what a question may call someone known by a narrower relation: "the kid" is the son,
# "my partner" the husband, "my dog" the beagle, "my sister" the twin sister
_BROADER = {
    "son": "child", "daughter": "child", "mother": "parent", "father": "parent", "husband": "partner", "wife": "partner",
    "boyfriend": "partner", "girlfriend": "partner", "fiancé": "partner", "fiancée": "partner", "spouse": "partner",
    "twin sister": "sister", "twin brother": "brother", "older sister": "sister", "younger sister": "sister",
    "big sister": "sister", "little sister": "sister", "older brother": "brother", "younger brother": "brother",
    "big brother": "brother", "little brother": "brother", "best friend": "friend", "border collie": "dog",
    **dict.fromkeys(_DOG_BREEDS, "dog"),
}
_NOT_NAMES = frozenset(
    "i i'm i've the a an my our his her their he she it we they you this that there here and but so or if when "
    "then also just oh hey hi hello yes no ok okay well anyway honestly actually monday tuesday wednesday thursday "
    "friday saturday sunday january february march april may june july august september october november "
    "december christmas easter is was has had".split()
)
# a lower-case word after "my brother" is his name only when it is followed by what follows a
# subject (a verb, perhaps after an adverb: "my cousin jonas just moved"), and is none of the
# words that often sit there (nor such a verb or adverb itself: "my husband left and ...")
_LOWER_VERBS = (
    "is was has had lives lived works worked moved got turned says said rang called texted loves loved hates hated "
    "started starts bought lost won left joined finished passed became went goes came comes keeps kept wants wanted "
    "needs needed thinks thought told tells asked asks made makes gave gives took takes found met sent listens "
    "will can could would should does did doesn't didn't isn't wasn't won't can't")
_LOWER_ADVERBS = "just also still never always really finally actually recently now usually sometimes often"
_LOWER_NAME_NEXT = (rf"(?:(?:{'|'.join(_LOWER_ADVERBS.split())})\s+[a-z]+|'s|and|"  # an adverb, then any verb
                    rf"{'|'.join(re.escape(v) for v in _LOWER_VERBS.split())})")
_NOT_LOWER_NAMES = _NOT_NAMES | frozenset(
    "who which what whose where how probably apparently literally basically definitely totally only even both all".split()
    + _LOWER_ADVERBS.split() + _LOWER_VERBS.split())
_ADJ = r"(?:(?:[a-z][\w-]*)\s+){0,2}?"  # "grey", "old", "twin", "rescue", "little"
_REL_RAW = rf"(?:{RELATIONS}|{PETS})"
_REL = rf"{_REL_RAW}(?!'s)"
_NAME = r"((?:(?:Mr|Mrs|Ms|Dr|Miss)\.?\s+)?[A-Z][\w'-]*[a-z][\w-]*(?:\s+[A-Z][a-z][\w-]*)?)"
_POSS = r"(?<!')\b"

_PATTERNS = [
    # my uncle's wife Maria / Paulo is my husband's brother / my mum's sister
    (re.compile(rf"{_NAME}\s+(?i:(?:is|was|'s)\s+(?:my|our)\s+({_REL_RAW})'s\s+({_ADJ}{_REL}))\b(?!')"), "name_rel_rel"),
    (re.compile(rf"(?i:\b(?:my|our)\s+({_REL_RAW})'s\s+({_ADJ}{_REL}))\b(?!')(?:,?\s+(?!(?i:is|was|has|and|who|in|at|on)\b){_NAME})?"), "rel_rel_name"),
    # my sister Oriane / our grey cat Biscotti / my dog, Pepper / my brother-in-law Kiran
    (re.compile(rf"(?i:\b(?:my|our)\s+({_ADJ}{_REL}))\b,?\s+(?!(?i:is|was|has|and|who|in|at|on)\b){_NAME}"), "rel_name"),
    # my mum is called Patricia / my son's name is Theo / our dog is named Rex
    (re.compile(rf"(?i:\b(?:my|our)\s+({_ADJ}{_REL})(?:'s\s+name\s+is|\s+is\s+(?:called|named)|\s+(?:called|named)))\s+{_NAME}"), "rel_name"),
    # Dev, my husband, / Gus, our tortoise,
    (re.compile(rf"{_NAME},\s+(?i:(?:my|our)\s+({_ADJ}{_REL}))\b"), "name_rel"),
    # Leah is my twin sister / Ines has been my best friend / Pepper is our border collie
    (re.compile(rf"{_NAME}\s+(?i:(?:is|was|has\s+been|'s)\s+(?:my|our)\s+({_ADJ}{_REL}))\b"), "name_rel"),
    # Dev's mum Sunita / Leah's wife Carmen
    (re.compile(rf"{_NAME}'s\s+(?i:({_ADJ}{_REL}))\b,?\s+(?!(?i:is|was|has)\b){_NAME}"), "poss_rel_name"),
    # a hamster named Nibbles / a rescue greyhound ... named him Comet
    (re.compile(rf"(?i:\b(?:a|an|the|my|our)\s+({_ADJ}(?:{PETS})))\b[^.]*?(?i:\b(?:named|called)(?:\s+(?:him|her|it))?)\s+{_NAME}"), "rel_name"),
    # my brother declan is ... (written all in lower case: see _lowercase_names)
    (re.compile(rf"(?i:\b(?:my|our)\s+({_ADJ}{_REL}))\s+([a-z][a-z'-]+)(?=,|\s+{_LOWER_NAME_NEXT}\b)"), "rel_lower_name"),
    # I have a cat / we've got a new puppy / I adopted a rescue greyhound (no name yet: "She's called Luna" may follow)
    (re.compile(rf"(?i:\b(?:i|we)(?:\s+have|'ve\s+got|\s+have\s+got|\s+got|\s+adopted|\s+just\s+got|\s+just\s+adopted)\s+(?:an?|two|three)\s+(?:new\s+)?({_ADJ}(?:{PETS})))\b"), "rel"),
    # my sister / our dog (no name)
    (re.compile(rf"(?i:\b(?:my|our)\s+({_ADJ}{_REL}))\b"), "rel"),
    # Grandma turned 92 / uncle Bernard keeps sheep / Mum's birthday
    (re.compile(rf"(?:^|(?<=[,;:]\s))((?i:uncle|aunt|auntie|aunty|cousin|grandma|granny|nan|nana|grandad|grandpa|mum|mom|mam|dad))\b(?:\s+{_NAME})?"), "kin"),
]


@dataclass(frozen=True)
class Mention:
    """A person or pet of the user's life named in a sentence."""

    kind: str  # person | pet
    relation: str | None  # to the user: 'sister', 'dog', "Dev's mother"
    name: str | None
    start: int  # character offset in the sentence

    def describe(self) -> str:
        """How a fact names it: "the user's sister Oriane", "Oriane", "the user's sister"."""
        if self.relation and "'s " in self.relation and self.relation.split("'s ")[0] not in _RELATION_WORDS:
            return f"{self.relation} {self.name}" if self.name else self.relation
        if self.relation:
            return f"the user's {self.relation}" + (f" {self.name}" if self.name else "")
        return self.name or "someone"


_RELATION_WORDS = frozenset(RELATIONS.split("|")) | frozenset(_CANON.values())


def _relation(phrase: str) -> tuple[str, str]:
    """(canonical relation, kind) of "twin sister", "grey cat", "border collie"."""
    phrase = re.sub(r"\s+", " ", phrase.lower()).strip()
    words = phrase.split()
    for n in (3, 2, 1):
        tail = " ".join(words[-n:])
        if re.fullmatch(RELATIONS, tail):
            rel = _CANON.get(tail, tail)
            keep = " ".join(w for w in words[:-n] if w in ("twin", "best", "older", "younger", "big", "little", "step"))
            return (f"{keep} {rel}".strip() if keep else rel), "person"
        if re.fullmatch(PETS, tail):
            return _CANON.get(tail, tail), "pet"
    return phrase, "person"


_POSSESSIVE = re.compile(r"['\u2019]s?$")


def _name(text: str | None) -> str | None:
    if not text:
        return None
    words = text.split()
    while words and words[-1].lower().strip(".,") in _NOT_NAMES:
        words.pop()
    if not words or words[0].lower().strip(".") in _NOT_NAMES:
        return None
    return _POSSESSIVE.sub("", " ".join(words).strip(".,"))  # "Jonas's" -> "Jonas", "Jonas" stays


def mentions(sentence: str, known: Collection[Mention] = ()) -> list[Mention]:
    """The people and pets a sentence names, in order (overlapping forms counted once); a
    known one may be named alone ("Anselm moved to Linz")."""
    found: list[Mention] = []
    spans = Spans()
    for pattern, form in _PATTERNS:
        for m in spans.free_matches(pattern, sentence):
            if form == "rel_rel_name":
                first, _ = _relation(m.group(1))
                second, kind = _relation(m.group(2))
                rel, name = f"{first}'s {second}", _name(m.group(3))
            elif form == "name_rel_rel":
                first, _ = _relation(m.group(2))
                second, kind = _relation(m.group(3))
                rel, name = f"{first}'s {second}", _name(m.group(1))
            elif form == "rel_name":
                rel, kind = _relation(m.group(1))
                name = _name(m.group(2))
            elif form == "name_rel":
                rel, kind = _relation(m.group(2))
                name = _name(m.group(1))
            elif form == "poss_rel_name":
                owner = _name(m.group(1))
                rel, kind = _relation(m.group(2))
                rel = f"{owner}'s {rel}" if owner else rel
                name = _name(m.group(3))
            elif form == "rel_lower_name":
                if not _lowercase_names(sentence) or m.group(2) in _NOT_LOWER_NAMES or re.fullmatch(_REL_RAW, m.group(2)):
                    continue  # "my brother really is", or a writer who capitalises names
                rel, kind = _relation(m.group(1))
                name = m.group(2).capitalize()
            elif form == "kin":
                rel, kind = _relation(m.group(1))
                name = _name(m.group(2))
            else:
                rel, kind = _relation(m.group(1))
                name = None
            if name is None and form in ("name_rel",):
                continue
            found.append(Mention(kind, rel, name, m.start()))
            spans.take(m)
    for k in known:
        if not k.name:
            continue
        for m in spans.free_matches(re.compile(rf"(?<![\w'-]){re.escape(k.name.split()[0])}(?![\w-])"), sentence):
            found.append(Mention(k.kind, k.relation, k.name, m.start()))
            spans.take(m)
    return sorted(found, key=lambda x: x.start)


def _lowercase_names(sentence: str) -> bool:
    """Whether the writer does not capitalise names: no capital letter after the first word
    but for "I" ("my brother declan lives in boston")."""
    return not any(w[0].isupper() and not re.fullmatch(r"I(?:'\w+)?", w) for w in sentence.split()[1:])


def _called(asked: str, kind: str, known: Mention) -> bool:
    """Whether a question's relation names a known person or pet: the same relation, a broader
    one ("the kid": the son; "my dog": the beagle), or "my pet" for any pet."""
    rel = known.relation or ""
    return rel == asked or _BROADER.get(rel) == asked or (kind == "pet" and known.kind == "pet" and asked in ("pet", "pets"))


def named_in_query(query: str, known: Collection[Mention]) -> list[tuple[str, str]]:
    """(phrase, name) for each "my <relation>" (or "the <relation>") in a question whose person
    or pet has a known name: "What did my manager say?" -> [("my manager", "Helen")]; "the
    beagle" and "my puppy" are the dog Mango. Questions use the relation where the user's
    statements used the name."""
    out = []
    for m in re.finditer(rf"(?i)\b(?:my|our|the)\s+({_ADJ}{_REL_RAW})(?:'s)?\b", query):
        rel, kind = _relation(m.group(1))
        names = [k.name for k in known if k.name and _called(_BROADER.get(rel, rel) if kind == "pet" else rel, kind, k)]
        if names:
            out.append((m.group(0).removesuffix("'s"), names[-1]))
    return out


def known_entities(store: Store, character_id: int) -> list[Mention]:
    """The people and pets already known, as mentions (newest last)."""
    return [Mention(e["kind"], e["relation"], e["name"], -1) for e in store.entities(character_id)]


def by_name(store: Store, character_id: int, name: str) -> dict[str, Any] | None:
    """The known entity called `name` (its first word is enough: "Oriane" for "Oriane Dupont")."""
    low = name.lower()
    for e in reversed(store.entities(character_id)):
        if e["name"] and (e["name"].lower() == low or e["name"].lower().split()[0] == low):
            return e
    return None


def resolve(store: Store, character_id: int, mention: Mention) -> int:
    """The id of the entity a mention means, creating it or filling in what was missing."""
    known = store.entities(character_id)
    if mention.name:
        named = by_name(store, character_id, mention.name)
        if named is not None:
            if mention.relation and not named["relation"]:
                store.update_entity(named["id"], relation=mention.relation)
            return int(named["id"])
        unnamed = [e for e in known if e["relation"] == mention.relation and not e["name"]]
        if mention.relation and unnamed:
            store.update_entity(unnamed[-1]["id"], name=mention.name)
            return int(unnamed[-1]["id"])
        return store.add_entity(character_id, mention.kind, mention.relation, mention.name)
    same = [e for e in known if e["relation"] == mention.relation]
    if same:
        return int(same[-1]["id"])
    return store.add_entity(character_id, mention.kind, mention.relation, None)
