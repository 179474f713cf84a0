"""Acting on "forget …": which facts and which passages of what was said go.

A topic ("my first car", "Jordan", "what I said about my job") takes the facts and messages
recall finds for it that are close enough: every hit naming a name the topic names, and hits
whose cosine is at least FORGET_COSINE and within FORGET_MARGIN of the best one (so "my first
car" takes the Corsa, not the car the user drives now). "Forget that" / "that's no longer
true" takes the user's previous message. With a message go the facts drawn from it and the
reply that answered it (which likely repeated it); the transcript itself stays.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import TYPE_CHECKING

from companion.memory.facts import content_words
from companion.memory.recall import recall

if TYPE_CHECKING:
    from companion.memory.store import Removed, Store

FORGET_COSINE = 0.35  # a hit this close to the topic may be what the user meant ("my job" to
#                       "The user works as a pharmacist" is 0.39: short topics sit low)
FORGET_MARGIN = 0.1  # ... if it is also about as close as the best hit
_FILLER = frozenset("my the a an about what i said told you that this it all everything of".split())


def _names(topic: str) -> list[str]:
    """Capitalised words of the topic that are not its first word or "I"."""
    words = re.findall(r"[\w'-]+", topic)
    return [w for i, w in enumerate(words) if w[:1].isupper() and w != "I" and (i > 0 or w.lower() not in _FILLER)]


def _stems(words: set[str]) -> set[str]:
    """Crude stems ("owing", "owes" -> "ow"), enough to tell whether two texts share a topic word."""
    return {re.sub(r"(?:ing|ed|es|s|e)$", "", w)[:6] for w in words}


def forget_about(store: Store, character_id: int, topic: str, *, keep_messages: Collection[int] = ()) -> Removed:
    """Forget the facts and passages about `topic`; returns what went (for an undo)."""
    from companion.memory.store import Removed

    hits = recall(store, character_id, topic, limit=12)
    names = [n.lower() for n in _names(topic)]
    # "forget about Jordan": everything naming Jordan; "forget what I said about owing Declan
    # money": what names Declan *and* is about the rest of the topic (or is close to it)
    rest = content_words(" ".join(w for w in re.findall(r"[\w'-]+", topic) if w.lower() not in names)) - _FILLER
    def names_it(text: str) -> bool:
        return any(re.search(rf"(?i)(?<!\w){re.escape(n)}(?!\w)", text) for n in names)

    def on_topic(text: str) -> bool:
        return not rest or bool(_stems(rest) & _stems(content_words(text)))

    hits = [h for h in hits if not names_it(h["text"]) or on_topic(h["text"])]  # the same person, another topic
    best = max((h["cosine"] or 0.0 for h in hits), default=0.0)
    facts, messages = set(), set()
    for rank, h in enumerate(hits):
        cos = h["cosine"] or 0.0
        # a name of the topic; or close to it; or recall's best hit, sharing one of its words
        named = names_it(h["text"]) or (rank == 0 and bool(rest) and on_topic(h["text"]))
        if named or (cos >= FORGET_COSINE and cos >= best - FORGET_MARGIN):
            if h["source"] == "fact":
                facts.add(int(h["id"]))
            elif int(h["id"]) not in keep_messages:
                messages.add(int(h["id"]))
    if not facts and not messages:
        return Removed()
    return forget_messages(store, messages, extra_facts=facts)


def forget_messages(store: Store, message_ids: Collection[int], *, extra_facts: Collection[int] = ()) -> Removed:
    """Forget what these messages said: their passages, the facts drawn from them and the
    replies that answered them."""
    replies = {r for m in message_ids if (r := store.reply_after(m)) is not None}
    facts = set(extra_facts) | set(store.facts_from_messages(sorted(message_ids)))
    return store.forget(memory_ids=sorted(facts), message_ids=sorted(set(message_ids) | replies))
