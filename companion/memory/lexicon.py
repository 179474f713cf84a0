"""Words people use for the same part of their life, for keyword recall.

A question and the statement it asks about often share no word ("who do I report to?" /
"my manager Femke…", "how do I get to work?" / "my commute is a train ride"), and a small
sentence encoder does not always bridge the gap. Each group below is one everyday concept
(work, family roles, study, travel, health…); a query word in a group makes the group's
other words a second, weaker keyword search (recall.RELATED_WEIGHT). The groups are about
ordinary life in general, written from the concepts, not from any evaluation item.
"""

from __future__ import annotations

import re

GROUPS = [
    # work
    "job jobs work works worked working career profession occupation employer employers company firm office "
    "workplace living paid salary",
    "boss manager managers supervisor line-manager lead report reports",
    "colleague colleagues coworker coworkers co-worker team teammate",
    "commute commuting commutes train bus bike cycle cycles cycling drive drives driving ferry tram tube metro",
    "promotion promoted raise senior career",
    "client clients customer customers",
    # learning
    "study studies studying student course courses degree master's masters phd university uni college "
    "class classes lessons exam exams qualification certificate chartered",
    # goals and plans
    "goal goals target targets aim aims aiming ambition plan plans planning intend hope hoping resolution",
    "race races marathon half-marathon triathlon 5k 10k parkrun",
    "training train trains practising practicing",
    "travel travelling traveling trip trips holiday holidays vacation vacations abroad getaway journey",
    "flight flights fly flying plane airport lands landing",
    "save saving savings deposit mortgage budget",
    "money owe owes owed debt loan euros pounds dollars",
    # people
    "partner boyfriend girlfriend husband wife fiancé fiancée fiance fiancee spouse",
    "mother mum mom mam mama mummy ma",
    "father dad daddy papa da",
    "parents parent",
    "child children kid kids son sons daughter daughters boy girl baby babies twins",
    "sibling siblings brother brothers sister sisters",
    "grandmother grandma granny nan nana gran",
    "grandfather grandad granddad grandpa",
    "friend friends mate mates buddy pal bestie",
    "neighbour neighbours neighbor neighbors next-door",
    # animals
    "pet pets animal animals",
    "dog dogs puppy pup hound",
    "cat cats kitten kitty",
    "vet vets veterinary",
    # health
    "doctor doctors gp physician specialist consultant",
    "medicine medication medications pills tablets prescription dose",
    "allergy allergic allergies intolerant intolerance",
    "physio physiotherapy physiotherapist rehab",
    "therapist therapy counsellor counselor counselling",
    "dentist dental teeth tooth",
    "eyes eyesight glasses specs lenses contacts",
    "sleep sleeping insomnia bed",
    # home and things
    "eat eating food foods meal meals dish diet cook cooking",
    "drink drinks coffee tea",
    "film films movie movies cinema",
    "show shows series tv telly drama dramas",
    "book books novel novels reading read author",
    "music band bands song songs album singer",
    "house home flat apartment place",
    "car cars vehicle",
    "birthday birthdays born",
    "wedding married marry marriage anniversary",
    "sport sports football soccer rugby tennis basketball club",
    "hobby hobbies pastime",
    "appointment appointments check-up checkup",
]

_INDEX: dict[str, list[list[str]]] = {}
for _group in GROUPS:
    _words = _group.split()
    for _w in _words:
        _INDEX.setdefault(_w, []).append(_words)


def related_words(text: str, limit: int = 24) -> list[str]:
    """Words of the concept groups the text's words belong to, not already in it."""
    words = re.findall(r"[\w'-]+", text.lower())
    out: list[str] = []
    for w in words:
        for group in _INDEX.get(w, ()):
            for x in group:
                if x not in words and x not in out:
                    out.append(x)
    return out[:limit]


# --- what a question asks for ------------------------------------------------------------
#
# Some questions name the *kind* of answer they want without any word of it: "how do I get
# to work?" wants a means of travel ("a 40 minute train ride"), "how long have I been
# there?" a span of time ("six years", "since 2019"). The sentence encoder scores such a
# pair low (0.14-0.25) and recall's off-topic filter (recall.COSINE_GAP) then drops the
# answer under whatever shares the question's topic word ("I work from home on Mondays").
# Each intent below is a question form and the closed class of words its answer is made of;
# a question of that form searches those words too, and what they find is not treated as
# off topic. The forms are grammatical, not about any one life: getting somewhere, durations,
# studying, what someone is working on, when they work, what they earn.

_WHO = r"(?:i|we|you|he|she|they|my\s+\w+|\w+)"
INTENTS: list[tuple[re.Pattern[str], str]] = [
    # the means of travel: "how do I get to work", "how does she get into town", "my journey in"
    (re.compile(rf"\bhow\s+(?:do|does|did|will|would|should|can|could|might|am|is|are)\s+{_WHO}\s+(?:\w+\s+)?"
                r"(?:get|getting|go|going|travel|travelling|traveling|commute|commuting|come|coming|make\s+it|head)\s+"
                r"(?:in\b|into\b|to\b|there\b|home\b|back\b)"
                r"|\b(?:journey|commute|route|trip)\s+(?:in|into|to|home)\b"
                r"|\bway\s+(?:i|we|you|he|she|they)\s+(?:travel|get|go|commute)\b"
                r"|\bhow\s+(?:do|does|did)\s+\w+\s+(?:travel|commute)\b", re.I),
     "commute commuting train trains bus buses coach tram tube metro subway underground ferry boat bike "
     "bicycle cycle cycles cycling e-bike scooter moped motorbike car drive drives driving walk walks "
     "walking foot lift ride rides taxi carpool"),
    # a span of time: "how long have I been at ...", "since when ..."
    (re.compile(r"\bhow\s+long\b|\bsince\s+when\b|\bhow\s+many\s+(?:years|months|weeks)\b", re.I),
     "years year months month weeks decade decades since started joined ages minutes hours"),
    # what someone studies
    (re.compile(rf"\bwhat\s+(?:am|are|is|was|were|does|do)\s+{_WHO}\s+(?:\w+\s+)?(?:studying|learning|reading\s+for|training\s+(?:as|to|for))\b"
                r"|\b(?:which|what)\s+(?:course|degree|subject|qualification|diploma)s?\b", re.I),
     "study studies studying student course courses degree master's masters phd diploma certificate "
     "qualification part-time evening class classes module university uni college"),
    # what someone is working on: a project, a task under way
    (re.compile(rf"\b(?:what|which)\s+(?:project|projects|task|tasks|assignment|assignments)\b"
                rf"|\bwhat\s+(?:am|are|is)\s+{_WHO}\s+(?:\w+\s+)?(?:working\s+on|busy\s+with|building|making|designing|developing)\b"
                r"|\bon\s+(?:my|your|\w+'s)\s+plate\b", re.I),
     "project projects designing design building build making developing testing restoring "
     "renovating writing planning currently"),
    # when someone works: shifts, days, hours
    (re.compile(rf"\bwhen\s+(?:do|does|did)\s+{_WHO}\s+work\b|\bwhat\s+(?:time|days?|hours|shifts?)\s+(?:do|does)\s+{_WHO}\s+work\b"
                r"|\b(?:shift|shifts|working\s+day|workday)\s+(?:start|starts|begin|begins|end|ends|finish|finishes)\b", re.I),
     "shift shifts rota hours schedule earlies lates nights weekdays weekends mondays tuesdays wednesdays "
     "thursdays fridays saturdays sundays monday tuesday wednesday thursday friday saturday sunday mornings "
     "evenings am pm"),
    # what someone earns
    (re.compile(rf"\bhow\s+much\s+(?:do|does|did|am|is|are)\s+{_WHO}\s+(?:\w+\s+)?(?:earn|earning|make|making|paid|get\s+paid)\b"
                r"|\b(?:salary|wage|wages|income|pay\s+rise|payslip)\b", re.I),
     "salary pay paid wage wages income earn earns earning"),
]


def intent_words(text: str) -> list[str]:
    """The answer vocabulary of every question form (INTENTS) the text matches, not already in it."""
    words = set(re.findall(r"[\w'-]+", text.lower()))
    out: list[str] = []
    for pattern, vocabulary in INTENTS:
        if pattern.search(text):
            out += [w for w in vocabulary.split() if w not in words and w not in out]
    return out
