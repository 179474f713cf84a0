"""The memory evaluation (companion.memory.evaluation): a fast subset in the suite, with the
targets asserted on it; the whole set runs with `companion bench memory --eval`."""

from __future__ import annotations

import pytest

from companion.memory.evaluation import (
    HELDOUT_FILE,
    EvalItem,
    judge,
    load_items,
    run_evaluation,
    subset,
)

TARGET_AT_3 = 0.9  # overall recall@3
TARGET_CATEGORY = 0.75  # no category under this


def test_the_set_is_large_varied_and_well_formed():
    items = load_items()
    said = sum(len(i.say) for i in items)
    categories = {i.category for i in items}
    assert said >= 150 and len(categories) >= 13
    assert {"people", "pets", "work", "health", "dates", "plans", "preferences", "places", "remember",
            "corrections", "multi", "non-english", "distractor"} <= categories
    assert len({i.id for i in items}) == len(items)
    for i in items:
        assert bool(i.ask) != bool(i.forbid), i.id  # a question, or a distractor
        assert i.ask is None or bool(i.expect) != bool(i.absent), i.id


def test_judging_a_hit():
    item = EvalItem("x", "c", ["s"], ask="q", expect=["lima", "2|two"], stale=["valparaiso"])
    assert judge(item, ["Moved to Lima two weeks ago"], 1)
    assert not judge(item, ["Moved to Lima 12 weeks ago"], 1)  # whole words: "12" is not "2"
    assert not judge(item, ["Lives in Valparaiso", "Moved to Lima, two weeks"], 3)  # the stale value ranks first
    assert judge(item, ["My sister", "Moved to Lima, 2 weeks"], 3) and not judge(item, ["My sister", "Lima 2"], 1)
    gone = EvalItem("y", "c", ["s"], ask="q", absent=["corsa"])
    assert judge(gone, ["a Fiat", "no car"], 3) and not judge(gone, ["x", "y", "my Corsa"], 3)


@pytest.fixture(scope="module")
def fast_report(embedder):
    # The first 4 items of each category (~30 s). With 3, one miss already puts a category
    # under 75%; items lose some context too (multi-01's "my manager" is Helen, from people-11).
    return run_evaluation(subset(load_items(), per_category=4), embedder=embedder)


def test_fast_subset_meets_the_targets(fast_report):
    r = fast_report
    assert r["questions"] >= 45
    assert r["recall_at_3"] >= TARGET_AT_3, r["misses"]
    low = {c: v["recall_at_3"] for c, v in r["by_category"].items() if v["recall_at_3"] < TARGET_CATEGORY}
    assert not low, (low, r["misses"])


def test_distractors_make_no_false_facts_and_replies_do_not_lead(fast_report):
    assert fast_report["distractors"] >= 3
    assert fast_report["false_facts"] == 0, fast_report["false_fact_list"]
    assert fast_report["reply_ranked_first"] == 0


def test_the_held_out_set_is_separate_and_well_formed():
    held, main = load_items(HELDOUT_FILE), load_items()
    assert len([i for i in held if i.ask]) >= 60 and sum(1 for i in held if i.forbid) >= 5
    assert {"people", "pets", "work", "health", "dates", "plans", "preferences", "remember", "forget",
            "projects", "corrections", "non-english", "distractor"} <= {i.category for i in held}
    said = {s.lower() for i in main for s in i.say} | {i.ask.lower() for i in main if i.ask}
    assert not said & ({s.lower() for i in held for s in i.say} | {i.ask.lower() for i in held if i.ask})
    assert not {i.id for i in held} & {i.id for i in main}
    for i in held:
        assert bool(i.ask) != bool(i.forbid), i.id
        assert i.ask is None or bool(i.expect) != bool(i.absent), i.id


def test_fast_held_out_subset(embedder):
    # 2 items per category (~15 s): a regression guard, not a target to tune against; the whole
    # set runs with `companion bench memory --eval` (recall@3 90.9% when this test was written)
    r = run_evaluation(subset(load_items(HELDOUT_FILE), per_category=2), embedder=embedder)
    assert r["questions"] >= 20
    assert r["recall_at_3"] >= 0.75, r["misses"]
    assert r["false_facts"] == 0, r["false_fact_list"]


def test_the_work_probe_set_is_separate_and_well_formed():
    # work_probe.jsonl: work, commute, schedule, tools and colleague questions in a third voice,
    # written before the ranking change it was meant to check (so that it is not fitted to the
    # evaluation's wording); measured by hand (run_evaluation(load_items(path))), not asserted
    probe = load_items(HELDOUT_FILE.parent / "work_probe.jsonl")
    others = load_items() + load_items(HELDOUT_FILE) + load_items(HELDOUT_FILE.parent / "dev_set.jsonl")
    assert len([i for i in probe if i.ask]) >= 25 and any(i.forbid for i in probe)
    assert len({i.id for i in probe}) == len(probe) and not {i.id for i in probe} & {i.id for i in others}
    said = {s.lower() for i in others for s in i.say} | {i.ask.lower() for i in others if i.ask}
    assert not said & ({s.lower() for i in probe for s in i.say} | {i.ask.lower() for i in probe if i.ask})
    for i in probe:
        assert bool(i.ask) != bool(i.forbid), i.id
        assert i.ask is None or bool(i.expect) != bool(i.absent), i.id
