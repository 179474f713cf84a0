"""One emotion vocabulary: companion.emotion.Emotion is what the tag filter produces, what the
bridge allows (and exports to ui/bridge-schema.json) and what the page's avatar draws."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import shutil
import subprocess
import typing
from pathlib import Path

import aiohttp
import pytest
from conftest_web import FakeChatSession, converse

from companion import chat
from companion.bridge import messages as m
from companion.bridge.schema import schema_path
from companion.emotion import EMOTIONS, TAG_WORDS, Emotion, EmotionFilter

REPO = Path(__file__).resolve().parents[1]


def _schema_emotions() -> list[str]:
    """The enum the page's avatar reads (ui/avatar.js schemaEmotions)."""
    schema = json.loads(schema_path().read_text(encoding="utf-8"))
    return schema["messages"]["avatar_state"]["schema"]["properties"]["emotion"]["enum"]


def test_one_emotion_vocabulary():
    assert len(set(EMOTIONS)) == len(EMOTIONS) and "neutral" in EMOTIONS
    # the bridge types AvatarState.emotion with the same Literal, and the schema exports it
    assert m.Emotion is Emotion
    assert typing.get_args(m.AvatarState.model_fields["emotion"].annotation) == EMOTIONS
    assert _schema_emotions() == list(EMOTIONS)
    # the chat core's cue is typed with it
    assert typing.get_type_hints(chat.AvatarCue)["emotion"] == Emotion
    # every tag word (name or alias) maps into it, every emotion is its own tag, and the filter
    # turns each word's tag into that emotion
    assert set(TAG_WORDS.values()) == set(EMOTIONS)
    assert all(TAG_WORDS[e] == e for e in EMOTIONS)
    for word in TAG_WORDS:
        _, cues = EmotionFilter().feed(f"a [{word}] b")
        assert cues == [TAG_WORDS[word]] and cues[0] in EMOTIONS


@pytest.mark.parametrize(
    ("tag", "want"),
    [("calm", "relaxed"), ("excited", "excited"), ("shy", "embarrassed"), ("blush", "embarrassed"),
     ("sleepy", "sleepy"), ("joy", "happy")],
)  # fmt: skip
def test_tags_reach_the_page_unchanged(tag, want):
    _, cues = EmotionFilter().feed(f"Fine. [{tag}] Really.")
    assert cues == [want]
    sent = m.decode(m.encode(m.AvatarState(emotion=cues[0], activity="speaking")), "core")
    assert sent.emotion == want


def run_isolated(coro):
    """asyncio.run on a thread of its own: once a browser test ran, the session's sync
    playwright keeps an event loop on the main thread (as in test_server_security)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result(120)


class _TaggedChat(FakeChatSession):
    """A reply with [calm] and [excited] tags, split across pieces, through the real filter."""

    def send(self, text: str):  # type: ignore[override]
        self.received.append(text)
        emo, shown = EmotionFilter(), []
        for piece in ["[ca", "lm] All good. [exc", "ited] Yay!"]:
            visible, cues = emo.feed(piece)
            for c in cues:
                yield chat.AvatarCue(c)
            if visible:
                shown.append(visible)
                yield chat.TextDelta(visible)
        yield chat.ReplyDone("done", "".join(shown) + emo.flush(), {"tokens": 3})


@pytest.fixture
def fake_chat() -> FakeChatSession:
    return _TaggedChat()


def test_server_sends_the_tagged_emotions(bridge_server):
    """The server passes every emotion of the vocabulary to the page: none becomes neutral."""

    seen = run_isolated(converse(bridge_server, [{"type": "user_message", "text": "hi"}]))
    seen = seen[: [x["type"] for x in seen].index("reply_done")]
    emotions = [x["emotion"] for x in seen if x["type"] == "avatar_state"]
    cued = [e for e in dict.fromkeys(emotions) if e != "neutral"]  # a state is resent per activity
    assert cued[:2] == ["relaxed", "excited"] and set(cued) == {"relaxed", "excited"}
    assert emotions.index("relaxed") < emotions.index("excited")
    assert "neutral" not in emotions[emotions.index("relaxed"):]


NODE_CHECK = """
import fs from "node:fs";
import { pathToFileURL } from "node:url";
const avatar = await import(pathToFileURL(process.argv[1]).href);
const schema = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const emotions = avatar.schemaEmotions(schema);
const table = avatar.moodTable([...emotions, "zany"]);
console.log(JSON.stringify({
  emotions, looks: Object.keys(avatar.LOOKS), table,
  bare: Object.keys(avatar.moodTable(avatar.schemaEmotions({}))),
}));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_avatar_reads_the_emotions_from_the_schema():
    """ui/avatar.js takes its emotion list from the schema's avatar_state enum, has a look for
    each (and no other), and gives an unknown one neutral's look under its own name."""
    out = subprocess.run(
        ["node", "--input-type=module", "-e", NODE_CHECK, str(REPO / "ui" / "avatar.js"), str(schema_path())],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    got = json.loads(out.stdout)
    assert got["emotions"] == list(EMOTIONS)
    assert sorted(got["looks"]) == sorted(EMOTIONS)
    table = got["table"]
    assert set(table) == {*EMOTIONS, "zany"}
    assert table["zany"]["hue"] == table["neutral"]["hue"] and table["zany"]["label"] == "zany"
    assert got["bare"] == ["neutral"]
