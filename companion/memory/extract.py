"""Long-term memory extraction: facts about the user, the people and pets in their life, their
dates, health, plans and tastes, from what the user says (never from the companion's replies).

Per sentence: wording that cannot be a fact about the user's life is left out first
(questions, hypotheticals, fiction, hearsay: memory.disclosure.gate); the precise rules
(memory.rules) give canonical facts with slots; whatever they leave uncovered becomes a fact
in the user's own words, made third person ("I work night shifts as a nurse" -> "The user
works night shifts as a nurse."), when the self-disclosure classifier says it tells something
lasting, when it carries a date ("tomorrow" -> "on Wednesday 11 February 2026"), or when it
gives a known person a single-valued attribute ("my sister moved to Lima"). The local model,
when asked, proposes extra facts, kept only if one of the user's sentences supports them.

remember() then adds, keeps or updates: a slot ("user.location", "entity.3.location") or a
sentence worded as a change ("I drive a Skoda now") replaces the old value, which stays in
memory_history.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

import numpy as np

from companion.memory import disclosure
from companion.memory.dates import absolute, find_dates
from companion.memory.disclosure import RELATIONS as RELATION_WORDS
from companion.memory.entities import Mention, mentions, resolve
from companion.memory.facts import Candidate, Change, content_words, covers
from companion.memory.grammar import is_english, third_person
from companion.memory.passages import sentences
from companion.memory.rules import JOBS, rule_candidates, sentence_rules

if TYPE_CHECKING:
    from companion.memory.store import Store

__all__ = ["Candidate", "Change", "candidates", "extract_and_store_memories", "model_candidates", "remember",
           "rule_candidates", "supersede_said"]

log = logging.getLogger(__name__)
Generate = Callable[[list[dict[str, str]]], str]
DUPLICATE_COSINE = 0.9  # a free fact this close to a stored one is the same fact
# A sentence worded as a change ("now", "switched", "sold") replaces the closest stored fact if
# it is this close, or UPDATE_COSINE_SHARED close and sharing a distinctive word ("contract",
# "Vespa"): measured on pairs written for it, true updates sat at 0.41-0.78 and unrelated
# facts up to 0.60 ("likes jazz" / "now likes rock"), so cosine alone cannot decide.
UPDATE_COSINE = 0.65
UPDATE_COSINE_SHARED = 0.4
SAME_ENTITY_BONUS = 0.1  # both about the same person or pet: that much less is needed
_COMMON_VERBS = frozenset(
    "like love hate enjoy prefer live work go get got want need make take use call called named ride drive "
    "play keep think know start started stop stopped switch switched move moved sell sold quit leave left".split())
# "The user's running club has a new coach": a change of the club, so it can only replace a fact
# about the club ("The user's job is mostly tests these days" is no new value of "The user is a
# software tester"; "The user's club is Kirkstall Harriers" is one)
_POSSESSED = re.compile(r"(?i)^the user's\s+(?:[\w'-]+\s+){0,2}?([\w-]+)\s+(?:is|are|was|were|has|have|had)\b")
COVERED = 0.7  # share of a sentence's content words the rules' facts must hold to stand for it
UNCOVERED_WORDS = 3  # ... or at most this many content words left out of them

_HEALTH = re.compile(
    r"(?i)\b(?:allerg\w*|intoleran\w*|vegetarian|vegan|pescatarian|coeliac|celiac|gluten|lactose|diabet\w*|"
    r"pre-diabet\w*|asthma\w*|inhaler|epilep\w*|medication|medicine|pills?|tablets?|insulin|physio\w*|therap\w*|"
    r"migraines?|anxiety|depression|adhd|autis\w*|diagnos\w*|blood\s+pressure|cholesterol|pregnan\w*|sober|"
    r"alcohol|caffeine|short-sighted|long-sighted|contact\s+lenses|deaf|injur\w*|surgery|halal|kosher|diet|"
    r"thyroid|arthritis|rash)\b"
)
_PIN = re.compile(r"(?i)\b(?:allerg\w*|intoleran\w*|vegetarian|vegan|coeliac|celiac|halal|kosher|diabet\w*|epilep\w*)")
_PLAN = re.compile(
    r"(?i)\b(?:want(?:s)?\s+to|going\s+to|gonna|plan(?:s|ning)?\s+to|planning|hop(?:e|ing)\s+to|goal|aim|"
    r"would\s+like\s+to|'d\s+like\s+to|'d\s+love\s+to|determined\s+to|intend\w*|saving\s+(?:up\s+)?for|"
    r"training\s+for|signed\s+up|learning\s+to|trying\s+to|one\s+day)\b"
)
_PREFERENCE = re.compile(
    r"(?i)\b(?:love|loves|like|likes|enjoy|enjoys|hate|hates|prefer|prefers|favou?rite|can't\s+stand|"
    r"cannot\s+stand|into|fan\s+of|sucker\s+for|my\s+thing|boring|avoid)\b"
)
_UPDATE = re.compile(
    r"(?i)(?<!from\s)(?<!right\s)\bnow\b(?!\s+on\b)|\bany\s*more\b|\bno\s+longer\b|\bswitched\b|\bchanged\b|"
    r"\bmoved\b|\bnew\b|\bactually\b|\bcorrection\b|\binstead\b|\bthese\s+days\b|\bgave\s+up\b|\bsold\b|"
    r"\bleft\b|\bquit\b|\bstopped\b|\breplaced\b"
)
_NUMBER = (r"\d{1,3}|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|"
           r"sixteen|seventeen|eighteen|nineteen|(?:twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)(?:-\w+)?")
_ATTRIBUTES = [  # a single-valued attribute of a person or pet the sentence is about
    ("location", re.compile(r"(?i)\b(?:lives?|living|is\s+based|based|moved|has\s+moved|relocated|is\s+moving|"
                            r"resides?)\s+(?:in|to|at|near)\b")),
    ("workplace", re.compile(r"(?i)\b(?:works?|working)\s+(?:at|for)\b")),
    ("job", re.compile(rf"(?i)\b(?:works?|working)\s+as\b|\bis\s+(?:an?\s+)?(?:retired\s+)?(?:{JOBS})\b")),
    ("age", re.compile(rf"(?i)\b(?:is|turned|turns|'s)\s+(?:now\s+|actually\s+|just\s+|only\s+)?(?:{_NUMBER})\b"
                       r"(?!\s*(?:kg|kilos?|minutes?|hours?|%|pounds?|cm|miles?|km|pm|am|o'clock|times|stone))")),
]
_LEAD_IN = re.compile(  # what may come before the subject of a sentence
    r"(?i)(?:(?:so|oh|and|well|also|btw|anyway|ok|okay|yeah|hey|actually|update|news|guess\s+what|"
    r"quick\s+update|fun\s+fact|correction|ps|by\s+the\s+way)[,:!]?\s+)*"
)
_HEADLINE = re.compile(r"^[^:,.!?]{1,24}:\s+(?=\S)")  # "Big news: …", "Quick update: …"
# what a fact leaves out at its start: interjections ("ugh", "lol") always, a discourse word
# ("so", "well") where a comma, colon or "!" closes it or the user's own "I" / "my" follows
_OPENER = re.compile(
    r"(?i)^(?:(?:ugh+|lol|lmao|omg|oh\s+my\s+(?:god|gosh|goodness)|haha+|hah|hmm+|um+|uh+|wow|yay|oof|meh|sigh)"
    r"[,:!.]*\s+"
    r"|(?:so|oh|well|also|btw|fyi|ngl|imo|anyway|ok|okay|yeah|hey|actually|honestly|tbh|just\s+so\s+you\s+know)"
    r"(?:[,:!]+\s*|\s+(?=(?:i|i'm|i've|my|we|our|so|well|anyway|btw|actually)\b)(?!my\s+(?:god|gosh|goodness)\b)))+"
)
# a statement that leaves its "I" out, as chat does ("been learning spanish for 200 days",
# "just got back from japan", "finally passed my driving test"): the verbs it starts with
_IMPLICIT_I = re.compile(
    r"(?i)^(?:(been)|(?:just|finally|recently|also|still|literally|actually)\s+"
    r"(?=(?:[a-z]{2,}[^\We]ed|got|met|ran|won|began|left|lost|sent|spent|went|came|saw|did|had|made|bought|brought|"
    r"thought|caught|taught|found|told|sold|flew|drew|threw|grew|knew|took|gave|quit)\b)"
    r"|(?:got|started|finished|moved|bought|booked|passed|failed|quit|joined|adopted|visited|turned|"
    r"signed\s+up|graduated|landed|ran|met)\b)")
# "im a huge fan of ghibli", "ive been vegan since 2019": the user's I without its apostrophe
_APOSTROPHES = {"im": "I'm", "ive": "I've"}
_APOSTROPHE_LESS = re.compile(r"(?i)(?<![\w'])(?:im|ive)(?![\w'])")
# a fragment that finishes the fact before it ("Due in November.", "Back on Monday.")
_FRAGMENT = re.compile(r"(?i)^(?:due|born|expected|starting|back|home|arriving|landing|leaving|done|finished|ready)\s+"
                       r"(?:in|on|at|by|from|around|about|next|this|last|tomorrow|today|the|\d)")
# ...and the one it ends with ("my dog biscuit keeps eating my socks lol")
_CLOSER = re.compile(r"(?i)[\s,]+(?:lol+|lmao|rofl|haha+|hehe+|xd|omg|ugh+|smh|tbh|:\)|:\(|:d)\s*(?=[.!?]*\s*$)")
_PRONOUN = re.compile(r"^(?i:(he|she|it))(?:'s|\s+(?:is|has|was))?\b")
def _covered(sentence: str, facts: list[Candidate]) -> bool:
    """Whether the rules' facts stand for the sentence: they hold most of its content words,
    or all but a couple ("Big news: I moved to Lyon last month" is "The user lives in Lyon")."""
    return covers([c.text for c in facts], sentence, COVERED, UNCOVERED_WORDS)


def _kind(sentence: str, happens_on: str | None) -> str:
    if _HEALTH.search(sentence):
        return "health"
    if happens_on:
        return "event"
    if _PLAN.search(sentence):
        return "plan"
    if _PREFERENCE.search(sentence):
        return "preference"
    return "fact"


def _with_subject(sentence: str, who: Mention, ref: str | None = None) -> str:
    """"She keeps bees." about the user's sister Oriane -> "the user's sister Oriane keeps bees."
    (ref: another way to name who, e.g. "my sister" for the classifier, which reads first person)."""
    m = _PRONOUN.match(sentence)
    if m is None:
        return sentence
    rest = sentence[m.end():]
    verb = ""
    if m.group(0).lower().endswith("'s"):
        nxt = rest.split()[0].lower() if rest.split() else ""
        # "she's been", "he's moved": has; "she's called Luna", "he's married", "she's 3": is
        passive = nxt in ("called", "named", "married", "engaged", "divorced", "retired", "adopted", "based", "allergic",
                          "obsessed", "interested", "excited", "scared", "tired", "worried", "located", "related")
        verb = " has" if not passive and (nxt in ("been", "got", "had", "done", "gone", "made", "taken") or nxt.endswith("ed")) else " is"
    elif " " in m.group(0):
        verb = " " + m.group(0).split()[-1]
    return f"{ref or who.describe()}{verb}{rest}"


def _attribute(sentence: str) -> str | None:
    for name, pattern in _ATTRIBUTES:
        if pattern.search(sentence):
            return name
    return None


def _statement_clauses(sentence: str) -> list[str]:
    """A sentence, or the statements before the question it ends with ("I live in Oslo, do you know it?")."""
    if not sentence.rstrip(" )\"'").endswith("?") or ", " not in sentence:
        return [sentence]
    head = sentence.rsplit(", ", 1)[0]
    return [head] if disclosure.gate(head) != "question" else [sentence]


def candidates(
    text: str,
    *,
    today: dt.date,
    known: Collection[Mention] = (),
    embedder: Any = None,
    forced: bool = False,
) -> list[Candidate]:
    """Facts in what the user said; `known`: the people and pets already known. forced: the
    user asked to remember exactly this, so every sentence of it is kept (as a fact in their
    words if no rule covers it)."""
    names = {w.lower() for k in known if k.name for w in k.name.split()}
    known_names = frozenset(names)  # words of the names known before this message
    out: dict[str, Candidate] = {}
    pending: list[tuple[str, Candidate]] = []  # sentence facts waiting for the classifier
    last: Mention | None = None
    prev: Candidate | None = None  # the fact the sentence before made (a fragment may finish it)
    for raw in sentences(text):
        for sentence in _statement_clauses(_HEADLINE.sub("", raw)):
            sentence = _APOSTROPHE_LESS.sub(lambda m: _APOSTROPHES[m.group(0).lower()], _CLOSER.sub("", sentence))
            sentence = _OPENER.sub("", sentence) or sentence  # "ngl my job...": the classifier reads the statement
            if prev is not None and _FRAGMENT.match(sentence):  # "She's pregnant with her second! Due in November."
                tail, day = absolute(sentence.strip().rstrip(".!?"), today)
                prev.text = f"{prev.text.rstrip('.!? ')}, {tail[0].lower()}{tail[1:]}."
                prev.happens_on = prev.happens_on or (day.isoformat() if day else None)
                continue
            prev = None
            if _IMPLICIT_I.match(sentence):
                sentence = ("I've " if sentence[:4].lower() == "been" else "I ") + sentence[0].lower() + sentence[1:]
            found = mentions(sentence, known)
            names |= {w.lower() for m in found if m.name for w in m.name.split()}
            reason = None if forced else disclosure.gate(sentence, names)
            change = bool(_UPDATE.search(sentence))
            if reason == disclosure.NO_ONE and any(d.date > today for d in find_dates(sentence, today)):
                reason = None  # "The boiler engineer is coming tomorrow": a date in the user's life
            if reason == disclosure.NO_ONE and last is not None and _PRONOUN.match(sentence):
                reason = None  # "My brother lives in Paris. He's a chef.": he is the brother
            if reason == disclosure.NO_ONE and change and is_english(sentence):
                # "Yoga moved to Sundays now": kept only if it replaces a fact said before
                out[sentence.lower()] = Candidate(third_person(sentence), _kind(sentence, None), updates=True,
                                                  replaces_only=True, origin="classifier")
                continue
            if reason is not None:
                last = found[-1] if found else last
                continue
            subject = found[0] if found and _LEAD_IN.fullmatch(sentence[: found[0].start]) else None
            if subject is None and last is not None and _PRONOUN.match(sentence):
                subject = last
            rules = sentence_rules(sentence, today.isoformat())
            for c in rules:
                c.entity = c.entity or (found[0] if found and c.kind == "relationship" else None)
                c.updates = change
                out[c.slot or c.text.lower()] = c
            last = found[-1] if found else last
            ruled = " ".join(c.text for c in rules)
            if rules and _covered(sentence, rules) and all(m.name.split()[0] in ruled for m in found if m.relation and m.name):
                continue  # (not when the sentence names someone the rules' facts leave out: "... with my partner Sam")
            dated, day = absolute(_OPENER.sub("", _HEADLINE.sub("", sentence)) or sentence, today)
            said = _with_subject(dated, subject) if subject is not None and _PRONOUN.match(dated) else dated
            english = is_english(said)
            fact = third_person(said) if english else f'The user said: "{said.strip()}"'
            for m in found:  # a name written in lower case ("my cousin jonas just moved") as it is known,
                for w in (m.name or "").split():  # where it stands first ("... her rose garden" stays)
                    fact = re.sub(rf"\b{re.escape(w.lower())}\b", w, fact, count=1) if w[:1].isupper() else fact
            attribute = _attribute(sentence) if subject is not None and english else None
            c = Candidate(fact, _kind(sentence, day.isoformat() if day else None), entity=subject or (found[0] if found else None),
                          attribute=attribute, happens_on=day.isoformat() if day else None,
                          pinned=bool(_PIN.search(sentence)) and not subject, origin="request" if forced else "classifier",
                          updates=change and not rules)
            # "My sister Maya is visiting next week": who someone in the user's life is, whatever
            # the classifier makes of the rest of the sentence
            introduces = any(m.relation and m.name and m.name.split()[0].lower() not in known_names for m in found)
            prev = c if english else None
            if forced or (attribute and subject is not None) or (english and (day is not None or introduces)):
                out[c.text.lower()] = c
            elif english:
                read = sentence  # the classifier reads "He's a chef." as "my brother is a chef." (whom it is about)
                if subject is not None and _PRONOUN.match(sentence):
                    read = _with_subject(sentence, subject, f"my {subject.relation} {subject.name or ''}".strip()
                                         if subject.relation else subject.name)
                pending.append((read, c))
    if pending:
        probs = _disclosure_probabilities([s for s, _ in pending], embedder)
        for (_, c), p in zip(pending, probs, strict=True):
            if p >= disclosure.THRESHOLD:
                out[c.text.lower()] = c
    return list(out.values())


def _disclosure_probabilities(texts: list[str], embedder: Any) -> np.ndarray:
    if embedder is None:
        from companion.errors import ModelError
        from companion.memory.embed import get_embedder

        try:
            embedder = get_embedder()
        except ModelError:
            return np.zeros(len(texts))  # without the encoder only the rules and dates speak
    try:
        model = disclosure.classifier()
    except (OSError, ValueError, KeyError) as exc:  # a broken install: remember by rules, say why
        log.warning("memory: the self-disclosure classifier %s cannot be read (%s): reinstall Companion; "
                    "until then only rules and dates make facts", disclosure.MODEL_FILE, exc)
        return np.zeros(len(texts))
    return model.probabilities(embedder.encode(texts))  # (N,)


# --- the model --------------------------------------------------------------------------

EXTRACT_PROMPT = (
    "List the lasting facts the user states about themselves in their message: name, home, "
    "work, family, pets, likes and dislikes, plans, important events. One fact per line, each "
    "starting with '- The user', in the third person. If there are none, answer 'NONE'."
)
GROUNDED = 0.6  # share of a model fact's content words that one sentence of the user must hold
_STOP_FOR_GROUNDING = frozenset("is are was were has have their they them a an the of to in on at and or with for their's".split())


def model_candidates(user_text: str, generate: Generate) -> list[Candidate]:
    """Facts the model proposes, kept only when one sentence of the user's (one that may
    state a fact: not a question, hypothetical, fiction or hearsay) holds most of their words."""
    try:
        reply = generate([{"role": "system", "content": EXTRACT_PROMPT}, {"role": "user", "content": user_text}])
    except Exception:  # the model is an optional helper: never let it break remembering
        return []
    supports = [set(re.findall(r"[a-z0-9']+", s.lower())) for s in sentences(user_text)
                if disclosure.gate(s, {w.lower() for w in re.findall(r"[A-Z][a-z]+", s)}) is None]
    out = []
    for line in reply.splitlines()[:8]:
        line = line.strip().lstrip("-*• ").strip()
        if not line.lower().startswith("the user") or not (12 <= len(line) <= 200):
            continue
        words = [w for w in re.findall(r"[a-z0-9']+", line.lower()[len("the user"):])
                 if w not in _STOP_FOR_GROUNDING]
        if words and any(sum(w in s or w.rstrip("s") in s for w in words) / len(words) >= GROUNDED for s in supports):
            out.append(Candidate(line if line.endswith(".") else line + ".", "fact", origin="model"))
    return out


# --- deciding ---------------------------------------------------------------------------


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def remember(
    store: Store, character_id: int, candidates: list[Candidate], source_message_id: int | None = None
) -> list[Change]:
    """Add, update or keep each candidate against what the character already remembers."""
    changes: list[Change] = []
    for c in candidates:
        entity_id = resolve(store, character_id, c.entity) if c.entity is not None else None
        slot = c.slot or (f"entity.{entity_id}.{c.attribute}" if entity_id is not None and c.attribute else None)
        if slot:
            existing = store.memories(character_id, slot=slot)
            if not existing and c.updates and (old_id := _replaced(store, character_id, c.text, entity_id,
                                                                   source_message_id)) is not None:
                existing = [store.memory(old_id)]  # "now my favourite place is X" replaces "favourite restaurant"
                store.update_memory(old_id, slot=slot)
            if existing:
                old = existing[0]
                if _norm(old["text"]) == _norm(c.text):
                    changes.append(Change("keep", old["id"], old["text"]))
                else:
                    store.update_memory(old["id"], text=c.text, source_message_id=source_message_id,
                                        happens_on=c.happens_on)
                    changes.append(Change("update", old["id"], c.text, previous=old["text"]))
                continue
        else:
            dup = _nearest(store, character_id, c.text, DUPLICATE_COSINE)
            if dup is not None and _negated(dup[1]) != _negated(c.text):
                dup = None  # "not vegetarian anymore" is close to "vegetarian" in meaning space, and its opposite
            if dup is not None:
                changes.append(Change("keep", dup[0], dup[1]))
                continue
            if c.updates:
                old_id = _replaced(store, character_id, c.text, entity_id, source_message_id, same_attribute=True)
                if old_id is not None:
                    previous = store.memory(old_id)["text"]
                    store.update_memory(old_id, text=c.text, source_message_id=source_message_id,
                                        happens_on=c.happens_on)
                    changes.append(Change("update", old_id, c.text, previous=previous))
                    continue
            if c.replaces_only:
                continue
        mid = store.add_memory(character_id, c.text, kind=c.kind, slot=slot, pinned=c.pinned,
                               source_message_id=source_message_id, entity_id=entity_id,
                               happens_on=c.happens_on, origin=c.origin)
        changes.append(Change("add", mid, c.text))
    return changes


_NEGATION = re.compile(r"(?i)\b(?:not|no\s+longer|never|any\s*more|stopped|quit|gave\s+up|given\s+up)\b|n't\b")


def _negated(text: str) -> bool:
    """Whether a fact says something no longer or never holds."""
    return bool(_NEGATION.search(text))


def _similarities(store: Store, character_id: int, text: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(memory ids, cosine to text) over the character's facts, or None without embeddings."""
    from companion.memory._blas import one_blas_thread
    from companion.memory.embed import embedding_text
    from companion.memory.recall import vector_index

    index = vector_index(store, character_id)
    emb = store.embedder()
    if emb is None or index is None or not len(index.ids):
        return None
    with one_blas_thread():
        q = emb.encode([embedding_text(text)])[0]  # (384,)
        return index.ids, index.mat @ q  # (N,), (N,)


def _nearest(store: Store, character_id: int, text: str, threshold: float) -> tuple[int, str] | None:
    """A stored memory saying the same thing, if any (embedding cosine, else exact text)."""
    sims = _similarities(store, character_id, text)
    if sims is not None:
        ids, cos = sims
        best = int(np.argmax(cos))
        if cos[best] >= threshold:
            mid = int(ids[best])
            return mid, store.memory(mid)["text"]
        return None
    for m in store.memories(character_id):
        if _norm(m["text"]) == _norm(text):
            return m["id"], m["text"]
    return None


def _replaced(
    store: Store, character_id: int, text: str, entity_id: int | None, source_message_id: int | None,
    *, same_attribute: bool = False,
) -> int | None:
    """The stored fact a change replaces (see UPDATE_COSINE), said before this message. Pinned
    facts are only replaced through their slot, or by their own negation ("I'm not vegetarian
    anymore"). same_attribute: a change of something of the
    user's ("The user's job is ...") replaces only a fact that names it (_POSSESSED)."""
    sims = _similarities(store, character_id, text)
    if sims is None:
        return None
    ids, cos = sims
    floor = UPDATE_COSINE_SHARED - SAME_ENTITY_BONUS
    rows = store.memories_by_ids([int(i) for i in ids[cos >= floor]])
    words = {w for w in content_words(text) if w not in _COMMON_VERBS and len(w) > 2}
    entities = {int(e["id"]): e for e in store.entities(character_id)}
    owned = _POSSESSED.match(text) if same_attribute else None
    attribute = owned.group(1).lower().rstrip("s") if owned else None
    best, best_cos = None, 0.0
    for i, c in zip(ids.tolist(), cos.tolist(), strict=True):
        row = rows.get(int(i))
        if row is None or (source_message_id is not None and row["source_message_id"] == source_message_id):
            continue
        if row["pinned"] and not (_negated(text) != _negated(row["text"]) and words & content_words(row["text"])):
            continue  # a pinned fact ("vegetarian", an allergy) goes only when the user says it no longer holds
        if row["entity_id"] != entity_id and not _names_entity(text, entities.get(row["entity_id"] or -1)):
            continue  # about someone else: "I'm actually 34, had my birthday" is not Aoife's birthday
        if attribute is not None and attribute not in content_words(row["text"]):
            continue
        bonus = SAME_ENTITY_BONUS if entity_id is not None and row["entity_id"] == entity_id else 0.0
        shared = bool(words & content_words(row["text"]))
        if (c + bonus >= UPDATE_COSINE or (shared and c + bonus >= UPDATE_COSINE_SHARED)) and c > best_cos:
            best, best_cos = int(i), c
    return best


def _names_entity(text: str, entity: dict[str, Any] | None) -> bool:
    """Whether text names the person or pet (by name, or by relation: "dentists" for the dentist)."""
    if entity is None:
        return False
    low = text.lower()
    keys = [k for k in ((entity["name"] or "").split()[:1] + [(entity["relation"] or "").split(" ")[-1]]) if k]
    return any(re.search(rf"(?<!\w){re.escape(k.lower())}", low) for k in keys)


def supersede_said(store: Store, character_id: int, text: str, message_id: int) -> list[int]:
    """Mark the passages of earlier messages that a change in `text` outdates ("Standups moved
    to 10 o'clock" after "My team's standup is at 9:15"), by the rule facts use; returns them."""
    from companion.memory._blas import one_blas_thread
    from companion.memory.recall import episode_index

    emb = store.embedder()
    index = episode_index(store, character_id)
    changes = [s for s in sentences(text) if _UPDATE.search(s)
               and disclosure.gate(s, ()) in (None, disclosure.NO_ONE)]
    if emb is None or index is None or not index.n or not changes:
        return []
    names = {w.lower() for e in store.entities(character_id) for w in (e["name"] or "").split()}
    names |= {w for w in re.findall(r"[a-z'-]+", text.lower()) if re.fullmatch(RELATION_WORDS, w)}
    with one_blas_thread():
        vecs = emb.encode(changes)  # (S, 384)
        sims = index.mat @ vecs.T  # (N, S)
    done: list[int] = []
    for j, sentence in enumerate(changes):
        top = np.argsort(-sims[:, j])[:8]
        rows = store.episodes_by_ids([int(index.ids[t]) for t in top])
        words = {w for w in content_words(sentence) if w not in _COMMON_VERBS and len(w) > 2} - names
        for t in top:
            row, c = rows.get(int(index.ids[t])), float(sims[t, j])
            if row is None or row["message_id"] == message_id or row["role"] != "user" or row["superseded_by"]:
                continue
            if c >= UPDATE_COSINE or (c >= UPDATE_COSINE_SHARED and words & content_words(row["text"])):
                done.append(int(row["id"]))
                break
    if done:
        store.supersede_passages(done, message_id)
    return done


def extract_and_store_memories(
    store: Store,
    character_id: int,
    user_text: str,
    *,
    source_message_id: int | None = None,
    generate: Generate | None = None,
    today: str | dt.date | None = None,
    forced: bool = False,
) -> list[Change]:
    """After the user spoke: extract facts from their message and remember them."""
    from companion.memory.entities import known_entities

    day = dt.date.fromisoformat(today) if isinstance(today, str) else today or dt.date.today()
    found = candidates(user_text, today=day, known=known_entities(store, character_id),
                       embedder=store.embedder(), forced=forced)
    if generate is not None:
        covered = {c.slot for c in found if c.slot}
        for c in model_candidates(user_text, generate):
            if not any(_norm(c.text) == _norm(r.text) for r in found) and c.slot not in covered:
                found.append(c)
    return remember(store, character_id, found, source_message_id)
