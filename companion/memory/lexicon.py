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
