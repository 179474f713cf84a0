"""Explicit requests in what the user says: "remember…", "don't forget…", "note that…",
"keep in mind…" and "forget…", "that's no longer true", anywhere in a message, in any tense
("I told you to keep in mind that I'm vegan", "can you forget what I said about my job?").

Only the wording is read here (no model, no store): memory.session acts on what is found.
Questions about memory are not requests: "do you remember my sister?", "remember when we
went to Rome?", "I forgot my keys", "I'll never forget that day".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from companion.memory.passages import sentences

# what may stand before a request word for it to be a request addressed to the companion
_LEAD = (
    r"(?:^|[,;:.!?—–-]\s*|\b(?:please|pls|oh|and|also|just|hey|so|ok|okay|now|but|well|then|actually|"
    r"and\s+please|oh\s+and|also\s+please|(?:can|could|would|will)\s+you(?:\s+please)?(?:\s+(?:also|just))?|"
    r"you\s+(?:should|must|can|could|need\s+to|have\s+to)(?:\s+also)?|"
    r"i\s+(?:want|need|would\s+like|'d\s+like|'d\s+love)\s+you\s+to(?:\s+(?:also|please))?|"
    r"i(?:'ve)?\s+(?:told|asked)\s+you(?:\s+(?:before|already|earlier|last\s+time))?\s+to|"
    r"if\s+you\s+could|you\s+could|try\s+to|make\s+sure\s+(?:to|you)|be\s+sure\s+to|do)\s+)"
)
_REMEMBER_VERB = (
    r"(?:remember|memori[sz]e|don'?t\s+forget|do\s+not\s+forget|never\s+forget|keep\s+in\s+mind|"
    r"bear\s+in\s+mind|(?:make|take)\s+(?:a\s+)?note(?:\s+of)?|note\s+down|write\s+down|jot\s+down|note)"
)
_FORGET_VERB = (
    r"(?:forget|delete|erase|remove|unlearn|scratch|disregard|stop\s+remembering|don'?t\s+remember|"
    r"do\s+not\s+remember)"
)
_REMEMBER = re.compile(rf"(?i){_LEAD}({_REMEMBER_VERB})\b(.*)$")
_FORGET = re.compile(rf"(?i){_LEAD}({_FORGET_VERB})\b(.*)$")
_NO_LONGER = re.compile(
    r"(?i)\b(?:that(?:'s|\s+is|\s+was)|it(?:'s|\s+is)|this\s+is)\s+(?:no\s+longer\s+(?:true|the\s+case|right|correct)|"
    r"not\s+(?:true|the\s+case|right|correct)\s+any\s*more|out\s*(?:of\s+)?dated?|wrong\s+now)\b"
)
_NOTE_TO_SELF = re.compile(r"(?i)^\s*note\s+to\s+self\b[^:]*:\s*(.+)$")
_RECALL_QUESTION = re.compile(r"(?i)^\s*(?:when|what|where|who|how|if|whether|the\s+time|me\b|us\b|him\b|her\b)")
_CONTENT_LEAD = re.compile(
    r"(?i)^\s*(?:for\s+me\b|this\b|that\b(?!'s\b|\s+is\b|\s+was\b)|the\s+following\b|about\b|of\b|it\b)?"
    r"\s*(?:for\s+me\b)?\s*(?:that\b)?\s*[:,—–-]?\s*"
)
_SAID_ABOUT = re.compile(
    r"(?i)^\s*(?:(?:all\s+|everything\s+)?(?:what|that|the\s+things?|the\s+stuff)\s+i\s+(?:said|told\s+you|mentioned|wrote)"
    r"(?:\s+(?:earlier|before|just\s+now|yesterday))?|everything|all|the\s+(?:bit|part|thing)|anything)\s*"
    r"(?:about|regarding|on|of)?\s*"
)
_I_SAID = re.compile(r"(?i)^\s*i\s+(?:said|told\s+you|mentioned)\s+(?:that\s+)?")


@dataclass
class Request:
    """Something the user explicitly asked memory to do."""

    action: Literal["remember", "forget"]
    content: str  # what to remember / what to forget ("" = the user's previous statement)
    sentence: str  # the sentence that carried it


def _clean_content(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text.strip(" ,;:—–-\"'").rstrip(".!?").strip()


def _remember(sentence: str) -> Request | None:
    if m := _NOTE_TO_SELF.match(sentence):
        return Request("remember", _clean_content(m.group(1)), sentence)
    m = _REMEMBER.search(sentence)
    if m is None:
        return None
    verb, rest = m.group(1).lower(), m.group(2)
    if verb == "note" and not re.match(r"(?i)\s*(?:that\b|:|down\b|this\b|,)", rest):
        return None  # "note" as a noun, or "note how ..."
    if verb.startswith(("remember", "memori")) and rest.strip().endswith("?") and _RECALL_QUESTION.match(rest):
        return None  # "could you remember when ...?" asks about the past
    if verb.startswith(("remember", "memori")) and _RECALL_QUESTION.match(rest) and not re.match(
            r"(?i)\s*(?:for\s+me|that|this)", rest):
        return None  # "remember when we ...", "remember me?"
    content = _CONTENT_LEAD.sub("", rest, count=1)
    content = re.sub(r"(?i)^(?:for\s+me|please)\s*[:,]?\s*", "", content)
    return Request("remember", _clean_content(content), sentence)


def _forget(sentence: str) -> Request | None:
    m = _FORGET.search(sentence)
    if m is not None:
        before = sentence[: m.start(1)].lower()
        if re.search(r"\b(?:don'?t|do\s+not|never|not|i'?ll|i\s+will|i\s+might|i\s+always|i\s+often|to)\s*$", before) \
                and not re.search(r"\b(?:want|need|like|told|asked)\s+you\s+to\s*$", before):
            return None  # "don't forget" (a request to remember), "I'll never forget"
        rest = m.group(2)
        if re.match(r"(?i)\s*(?:it|about\s+it)\s*(?:[,.!]|$)", rest) and not re.search(r"(?i)\bsaid|told", rest):
            return None  # "forget it, let's talk about something else"
        content = re.split(r"[,;.!?]\s|[.!?]$|\s+(?:—|–|-)\s+", rest.strip(), maxsplit=1)[0]
        content = _SAID_ABOUT.sub("", content, count=1)
        content = re.sub(r"(?i)^\s*(?:about|that|this|the\s+fact\s+that)\b\s*", "", content)
        content = _I_SAID.sub("", content)
        content = _clean_content(content)
        if content.lower() in ("that", "this", "it", "what i said", "what i just said", "everything"):
            content = ""
        return Request("forget", content, sentence)
    if _NO_LONGER.search(sentence):
        return Request("forget", "", sentence)
    return None


def find_requests(text: str) -> list[Request]:
    """The explicit remember / forget requests in a message, in order (one per sentence)."""
    found = []
    for sentence in sentences(text):
        req = _forget(sentence) or _remember(sentence)
        if req is not None:
            found.append(req)
    return found
