"""Rewriting what the user said about themselves as a fact about "the user".

"I work night shifts as a nurse" -> "The user works night shifts as a nurse";
"my sister keeps bees" -> "the user's sister keeps bees"; "we live in Leeds" -> "the user
and their family live in Leeds" (a plural subject keeps the verb as it was). Only the verb
right after "I" (past any adverbs) is conjugated; that is where English needs it.
"""

from __future__ import annotations

import re

_ADVERBS = (
    "really|also|just|still|usually|always|never|often|sometimes|finally|now|only|actually|honestly|"
    "absolutely|totally|mostly|rarely|definitely|already|currently|secretly|literally|generally|normally|"
    "truly|even|probably|basically|mainly|recently|genuinely|kind of|sort of|no longer|hardly|barely|ever|"
    "do not|don't"
)
_MODALS = {"can", "could", "will", "would", "should", "must", "might", "may", "shall", "can't", "cannot",
           "won't", "wouldn't", "shouldn't", "couldn't", "mustn't", "was", "wasn't", "did", "didn't",
           "had", "hadn't", "used"}
_IRREGULAR = {"have": "has", "do": "does", "go": "goes", "am": "is", "be": "is", "don't": "doesn't",
              "haven't": "hasn't", "am not": "is not", "'m": "is", "'ve": "has", "'ll": "will",
              "'d": "would", "say": "says"}
_PAST = {"went", "got", "made", "took", "saw", "ran", "came", "met", "bought", "sold", "left", "lost", "won",
         "gave", "found", "began", "broke", "drove", "flew", "grew", "knew", "read", "spent", "thought",
         "told", "wrote", "became", "chose", "fell", "felt", "forgot", "heard", "kept", "led", "paid",
         "quit", "sat", "sent", "slept", "stood", "swam", "taught", "threw", "understood", "woke", "wore",
         "put", "set", "cut", "hurt", "let", "shut", "moved", "did", "had", "was", "said", "fed", "hit"}
_FOREIGN = frozenset(  # function words of French, Spanish and German that English lacks (not "son",
    # "ma", "hat", "bin", "die", "den", "ton", "con", "er", "pas", "sus": English words too, and
    # "our son Leo starts kindergarten" read as French)
    "le la les est et je tu il elle nous vous ils elles une des du au aux que qui mon mes ta sa "
    "ses ce cette avec pour sur dans chez très el los las es y mi mis tu su por para del una "
    "muy pero que está estoy soy der das und ist ich du sie wir ihr mein meine nicht mit für auf "
    "ein eine einen dem sehr aber auch".split())


def is_english(text: str) -> bool:
    """Whether a sentence reads as English rather than French, Spanish or German."""
    words = re.findall(r"[^\W\d_]+", text.lower())
    return not words or sum(w in _FOREIGN for w in words) / len(words) < 0.1


def conjugate(verb: str) -> str:
    """The third-person singular present of a verb said after "I" (past forms unchanged)."""
    low = verb.lower()
    if low in _IRREGULAR:
        return _IRREGULAR[low]
    if low in _MODALS or low in _PAST or low.endswith("ed") or not low.isalpha():
        return verb
    if re.search(r"(?:s|sh|ch|x|z|o)$", low):
        return verb + "es"
    if re.search(r"[^aeiou]y$", low):
        return verb[:-1] + "ies"
    return verb + "s"


_SUBJECT_I = re.compile(
    rf"\bI(?:'m|'ve|'ll|'d|\s+am)?\b(?!')((?:\s+(?:{_ADVERBS})\b)*)(?:\s+([a-z][\w'-]*))?", re.IGNORECASE
)


_COMPOUND = re.compile(r"(?:\b[A-Z][\w'-]+|\b(?i:my|our)\s+[\w-]+|\b(?i:he|she|they|you))\s+(?i:and|or)$")


def _replace_i(m: re.Match[str], text: str) -> str:
    whole = m.group(0)
    # "Dev and I are", "my wife and I have": a plural subject; "..., and I help him": not
    compound = bool(_COMPOUND.search(text[: m.start()].rstrip()))
    contraction = re.match(r"(?i)I('m|'ve|'ll|'d|\s+am)", whole)
    adverbs, verb = m.group(1) or "", m.group(2)
    if contraction:
        aux = contraction.group(1).strip().lower()
        aux = "'m" if aux == "am" else aux
        word = ("are" if aux == "'m" else "have" if aux == "'ve" else _IRREGULAR[aux]) if compound else _IRREGULAR[aux]
        return f"the user {word}{adverbs}" + (f" {verb}" if verb else "")
    if compound:
        return f"the user{adverbs}" + (f" {verb}" if verb else "")
    if verb is None:
        return f"the user{adverbs}"
    adverbs_low = adverbs.lower()
    if "don't" in adverbs_low or "do not" in adverbs_low:
        adverbs = re.sub(r"(?i)\bdon't\b", "doesn't", re.sub(r"(?i)\bdo not\b", "does not", adverbs))
        return f"the user{adverbs} {verb}"
    return f"the user{adverbs} {conjugate(verb)}"


_POSSESSIVES = [
    (r"\bmyself\b", "themselves"), (r"\bmy\b", "the user's"), (r"\bmine\b", "the user's"),
    (r"\bwe're\b", "the user and their family are"), (r"\bwe've\b", "the user and their family have"),
    (r"\bwe'd\b", "the user and their family would"), (r"\bwe'll\b", "the user and their family will"),
    (r"\bwe\b", "the user and their family"), (r"\bour\b", "the user's"), (r"\bours\b", "the user's"),
    (r"\bourselves\b", "themselves"), (r"\bus\b", "the user"), (r"\bme\b", "the user"),
]


def third_person(text: str) -> str:
    """The sentence as a fact about the user, capitalised, ending with a full stop."""
    text = re.sub(r"\s+", " ", text).strip().strip(",;: -—")
    text = _SUBJECT_I.sub(lambda m: _replace_i(m, text), text)
    for pattern, repl in _POSSESSIVES:
        text = re.sub(pattern, repl, text, flags=re.IGNORECASE)
    text = re.sub(r"\bthe user's the user\b", "the user", text)
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?" else text + "."
