"""The avatar's state: the core's state machine and director (changes, never frames, over the
bridge), and the page's animator (ui/avatar/animator.js) turning them into a Pose per frame,
run in headless Chromium."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
from typing import Any

import aiohttp
import pytest
from conftest_web import FakeChatSession, artifact, converse

from companion import chat
from companion.avatar import state as st
from companion.avatar.director import TAG_TRANSITION_MS, TEXT_TRANSITION_MS, AvatarDirector
from companion.avatar.lipsync import RulePhonemizer, TextVisemes, VisemeSpan, VisemeTrack
from companion.avatar.pose import ACTIVITIES, VISEMES, Pose
from companion.avatar.state import AvatarStateMachine
from companion.bridge import messages as m
from companion.emotion import EMOTIONS

# --- the state machine --------------------------------------------------------------------------


def test_activity_follows_the_conversation():
    sm = AvatarStateMachine(now=0.0)
    assert (sm.state.activity, sm.state.gaze) == ("idle", "wander")
    assert sm.typing(True, 1.0).activity == "listening"
    assert sm.typing(True, 2.0) is None  # no change, nothing to send
    assert sm.typing(False, 3.0).activity == "idle"
    assert (sm.reply_started(4.0).activity, sm.state.gaze) == ("thinking", "text")
    assert sm.typing(True, 4.5) is None  # typing during a reply changes nothing
    assert (sm.speaking(5.0).activity, sm.state.gaze) == ("speaking", "user")
    assert sm.speaking(5.1) is None
    assert sm.feel("happy", 0.8, 300, 5.2).emotion == "happy"
    assert sm.feel("neutral", 0.9, 300, 5.3).intensity == 0.0  # neutral is the plain face
    sm.feel("sad", 0.7, 700, 5.4)
    assert (sm.reply_ended(6.0).activity, sm.state.emotion) == ("idle", "sad")  # it lingers


def test_timed_changes():
    sm = AvatarStateMachine(now=0.0)
    sm.reply_started(0.0)
    sm.feel("happy", 0.8, 300, 0.5)
    sm.reply_ended(1.0)
    assert sm.deadline() == 1.0 + st.CALM_AFTER_S
    assert sm.tick(10.0) is None
    calm = sm.tick(1.0 + st.CALM_AFTER_S)
    assert (calm.emotion, calm.intensity, calm.transition_ms) == ("neutral", 0.0, st.CALM_TRANSITION_MS)
    assert sm.deadline() == 1.0 + st.REST_AFTER_S
    rest = sm.tick(1.0 + st.REST_AFTER_S)
    assert (rest.activity, rest.gaze) == ("resting", "down") and sm.deadline() is None
    assert sm.typing(True, 500.0).activity == "listening"  # wakes up when the user types
    assert sm.deadline() == 500.0 + st.LISTEN_TIMEOUT_S  # ... and stops listening if the page went away
    assert sm.tick(500.0 + st.LISTEN_TIMEOUT_S).activity == "idle"


# --- the director -------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def director(clock: Clock, **kw: Any) -> AvatarDirector:
    return AvatarDirector(visemes=kw.pop("visemes", lambda: TextVisemes(RulePhonemizer())), clock=clock)


def test_director_turns_a_reply_into_changes():
    clock = Clock()
    d = director(clock)
    (thinking,) = d.reply_started(turn=3)
    assert thinking.activity == "thinking"
    clock.t += 0.8
    cue = d.on_event(chat.AvatarCue("happy"))
    assert [(s.emotion, s.intensity, s.transition_ms) for s in cue] == [("happy", 0.85, TAG_TRANSITION_MS)]
    clock.t += 0.2
    first = d.on_event(chat.TextDelta("Hello there, "))
    assert [type(x).__name__ for x in first] == ["AvatarState", "AvatarVisemes"]
    assert first[0].activity == "speaking"
    track = first[1]
    assert track.turn == 3 and track.start_ms == 1000  # ms since reply_started
    assert len({s.viseme for s in track.visemes}) >= 3
    inferred = d.on_event(chat.AvatarCue("sad", 0.6, "text"))
    assert (inferred[0].emotion, inferred[0].transition_ms) == ("sad", TEXT_TRANSITION_MS)
    assert d.on_event(chat.AvatarCue("furious"))[0].emotion == "neutral"  # unknown: no face for it
    clock.t += 0.1
    end = d.on_event(chat.ReplyDone("stopped", "Hello there,"))
    assert isinstance(end[0], m.AvatarVisemes) and end[0].visemes == [] and end[0].start_ms == 1100
    assert end[-1].activity == "idle"
    assert d.reply_ended() == []  # already ended
    for msg in first + end:  # every change is a valid core message
        assert m.decode(m.encode(msg), "core") == msg


class AudioVisemes:
    """A stand-in audio source: shapes come from analysing audio, in poll(), not from the text."""

    def __init__(self) -> None:
        self.ready: list[VisemeTrack] = []

    def start(self) -> None:
        self.ready.clear()

    def text(self, text: str, now_ms: float) -> list[VisemeTrack]:
        self.ready.append(VisemeTrack(int(now_ms) + 200, (VisemeSpan(viseme="oh", ms=120),)))
        return []

    def poll(self, now_ms: float) -> list[VisemeTrack]:
        out, self.ready = self.ready, []
        return out

    def end(self, now_ms: float, stopped: bool) -> list[VisemeTrack]:
        return []


def test_director_takes_an_audio_viseme_source():
    clock = Clock()
    d = director(clock, visemes=AudioVisemes)
    d.reply_started(turn=1)
    assert [type(x).__name__ for x in d.on_event(chat.TextDelta("Hi "))] == ["AvatarState"]
    (track,) = d.poll()
    assert track.start_ms == 200 and track.visemes[0].viseme == "oh"


def run_isolated(coro):
    """asyncio.run on a thread of its own: once a browser test ran, the session's sync
    playwright keeps an event loop on the main thread (as in test_server_security)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result(120)


# --- over the bridge ----------------------------------------------------------------------------




def test_the_bridge_carries_changes_in_order(bridge_server, fake_chat):
    fake_chat.reply = "Hello there, friend! It's lovely to see you again."
    seen = run_isolated(converse(bridge_server, [
        {"type": "user_typing", "typing": True},
        {"type": "user_typing", "typing": False},
        {"type": "user_message", "text": "hi"},
    ]))  # fmt: skip
    kinds = [x["type"] for x in seen]
    states = [x for x in seen if x["type"] == "avatar_state"]
    activities = [s["activity"] for s in states]
    assert activities[:3] == ["idle", "listening", "idle"]  # the state on hello, then typing
    assert list(dict.fromkeys(activities[3:])) == ["thinking", "speaking", "idle"]
    assert states[-1]["emotion"] == "happy" and states[-1]["intensity"] > 0
    # speaking begins with the first text; visemes follow the text they belong to
    first_delta = kinds.index("assistant_delta")
    assert kinds.index("avatar_visemes") > first_delta
    assert seen[kinds.index("reply_started")]["turn"] == 1
    tracks = [x for x in seen if x["type"] == "avatar_visemes"]
    assert all(t["turn"] == 1 for t in tracks)
    starts = [t["start_ms"] for t in tracks]
    assert starts == sorted(starts)
    assert len({v["viseme"] for t in tracks for v in t["visemes"]}) >= 3
    assert kinds.index("reply_done") < len(kinds) - 1 - kinds[::-1].index("avatar_state")  # idle after


# --- the page's animator, in Chromium -----------------------------------------------------------

def open_app(page: Any, server: Any) -> list[str]:
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server.launch_url())
    page.wait_for_selector("body[data-ready='1']", timeout=15000)
    return errors


# Drives a private Animator frame by frame (60 fps, seeded random), so results are exact.
SIMULATE = """
async ([script]) => {
  const { Animator, BLINK } = await import("/avatar/animator.js");
  const schema = await (await fetch("/bridge-schema.json")).json();
  let seed = 7;
  const random = () => { seed = (seed * 16807) % 2147483647; return (seed - 1) / 2147483646; };
  const poses = [];
  const view = { setPose: (p) => poses.push(p) };
  const a = new Animator(view, schema, { random, now: 0 });
  const out = {};
  const run = (from, to, every = 1000 / 60) => {
    const got = [];
    for (let t = from; t < to; t += every) got.push({ t, ...a.frame(t) });
    return got;
  };
  /*BODY*/
  out.count = poses.length;
  return out;
}
"""


def simulate(page: Any, body: str) -> dict[str, Any]:
    return page.evaluate(SIMULATE.replace("/*BODY*/", body), [None])


@pytest.mark.browser
def test_animator_blinks_naturally(page, bridge_server):
    open_app(page, bridge_server)
    out = simulate(page, """
      const frames = run(0, 600000);  // ten minutes
      const starts = [];
      let prev = 0;
      for (const f of frames) { if (f.blink > 0.5 && prev <= 0.5) starts.push(f.t); prev = f.blink; }
      out.starts = starts;
      out.maxBlink = Math.max(...frames.map((f) => f.blink));
      out.openShare = frames.filter((f) => f.blink < 0.05).length / frames.length;
    """)
    gaps = [b - a for a, b in zip(out["starts"], out["starts"][1:], strict=False)]
    doubles = [g for g in gaps if g < 500]
    singles = [g for g in gaps if g >= 500]
    assert 100 <= len(out["starts"]) <= 330  # one every 2-6 s, plus the doubles
    assert min(singles) >= 2000 - 200 and max(singles) <= 6000 + 100
    assert 0.05 <= len(doubles) / len(gaps) <= 0.3  # "occasional double blink"
    assert out["maxBlink"] > 0.95 and out["openShare"] > 0.9


@pytest.mark.browser
def test_animator_eases_emotions_and_follows_activity(page, bridge_server):
    open_app(page, bridge_server)
    out = simulate(page, """
      run(0, 1000);
      a.state({ emotion: "happy", intensity: 0.8, transition_ms: 400, activity: "speaking", gaze: "user" }, 1000);
      out.mid = a.frame(1200);
      out.end = a.frame(1450);
      a.state({ emotion: "sad", intensity: 0.5, transition_ms: 1000, activity: "idle", gaze: "wander" }, 1500);
      out.blend = a.frame(2000);
      out.sad = a.frame(2600);
      out.orders = a.orders;
    """)
    E = EMOTIONS.index
    assert out["orders"] == {"emotions": list(EMOTIONS), "activities": list(ACTIVITIES), "visemes": list(VISEMES)}
    assert 0.1 < out["mid"]["emotion"][E("happy")] < 0.7  # on its way
    assert out["end"]["emotion"][E("happy")] == pytest.approx(0.8)
    assert out["end"]["activity"] == ACTIVITIES.index("speaking")
    blend = out["blend"]["emotion"]
    assert blend[E("happy")] > 0 and blend[E("sad")] > 0 and sum(blend) == pytest.approx(1)
    assert out["sad"]["emotion"][E("sad")] == pytest.approx(0.5) and out["sad"]["emotion"][E("happy")] == 0
    for pose in (out["mid"], out["end"], out["blend"], out["sad"]):
        Pose.model_validate(pose).pack()  # the renderer's contract holds


@pytest.mark.browser
def test_animator_moves_the_eyes(page, bridge_server):
    open_app(page, bridge_server)
    out = simulate(page, """
      const frames = run(0, 20000);
      const xs = frames.map((f) => f.gaze_x), ys = frames.map((f) => f.gaze_y);
      // saccades: fast jumps between fixations
      let jumps = 0;
      for (let i = 1; i < frames.length; i++) if (Math.hypot(xs[i] - xs[i - 1], ys[i] - ys[i - 1]) > 0.05) jumps++;
      out.jumps = jumps;
      out.spread = Math.max(...xs) - Math.min(...xs);
      a.state({ activity: "thinking", gaze: "text" }, 20000);
      const reading = run(20000, 21200);
      out.readY = reading.slice(20).reduce((s, f) => s + f.gaze_y, 0) / (reading.length - 20);
      out.readX = reading.slice(20).map((f) => f.gaze_x);
      const pondering = run(21200, 23500);
      out.ponderY = pondering[pondering.length - 1].gaze_y;
      a.state({ activity: "idle", gaze: "wander" }, 23500);
      a.pointer(0.8, 0.5, 23500);
      const cursor = run(23500, 24500);
      out.cursor = [cursor[cursor.length - 1].gaze_x, cursor[cursor.length - 1].gaze_y];
      out.yaw = cursor[cursor.length - 1].head_yaw;
      out.breath = [Math.min(...frames.map((f) => f.breath)), Math.max(...frames.map((f) => f.breath))];
      out.sway = [Math.min(...frames.map((f) => f.sway)), Math.max(...frames.map((f) => f.sway))];
    """)
    assert 8 <= out["jumps"] and out["spread"] > 0.3  # idle saccades
    assert out["readY"] < -0.4  # reading the message: eyes down at the chat
    assert max(out["readX"]) - min(out["readX"]) > 0.15  # ... hopping along the line
    assert out["ponderY"] > 0.3  # then thinking: up and away
    assert out["cursor"][0] > 0.5 and out["cursor"][1] > 0.3 and out["yaw"] > 0.05  # the cursor
    assert out["breath"][0] < 0.05 and out["breath"][1] > 0.95
    assert -1 <= out["sway"][0] < -0.3 and 0.3 < out["sway"][1] <= 1


@pytest.mark.browser
def test_animator_plays_visemes_on_the_reply_clock(page, bridge_server):
    open_app(page, bridge_server)
    out = simulate(page, """
      a.replyStarted(5, 1000);
      a.visemes({ turn: 5, start_ms: 100, visemes: [
        { viseme: "aa", ms: 100 }, { viseme: "closed", ms: 60 }, { viseme: "oh", ms: 100 }, { viseme: "ee", ms: 100 } ] }, 1050);
      out.before = a.frame(1090);
      run(1090, 1160);
      out.aa = a.frame(1170);
      out.closed = a.frame(1240);
      out.oh = a.frame(1320);
      // stopped: an empty list at 1350 cuts what was scheduled from there on (the "ee")
      a.visemes({ turn: 5, start_ms: 350, visemes: [] }, 1352);
      run(1320, 1400);
      out.after = a.frame(1500);
      // a page that joins mid-reply counts from the first track it sees
      a.visemes({ turn: 6, start_ms: 2000, visemes: [{ viseme: "ou", ms: 200 }] }, 3000);
      out.joined = a.frame(3100);
    """)
    V = VISEMES.index
    assert out["before"]["viseme"][V("closed")] == 1 and out["before"]["talk"] < 0.05
    assert out["aa"]["viseme"][V("aa")] > 0.99 and out["aa"]["talk"] > 0.5
    assert out["closed"]["viseme"][V("closed")] > 0.99
    assert out["oh"]["viseme"][V("oh")] > 0.99
    assert out["after"]["viseme"][V("closed")] == 1 and out["after"]["talk"] < 0.1
    assert out["joined"]["viseme"][V("ou")] > 0.99
    for pose in (v for v in out.values() if isinstance(v, dict)):
        assert sum(pose["viseme"]) == pytest.approx(1)


@pytest.mark.browser
def test_the_page_shows_the_core_state(page, bridge_server, fake_chat):
    """The real page: typing makes the avatar listen, a reply makes it think, speak (the mouth
    moves with the text) and return to idle."""
    errors = open_app(page, bridge_server)
    page.evaluate("""() => {
      window.seen = [];
      window.companion.bridge.on("*", (m) => { if (m.type.startsWith("avatar")) window.seen.push(m); });
      window.talk = [];
      const tick = () => { const p = window.companion.animator.pose; if (p) window.talk.push(p.talk); requestAnimationFrame(tick); };
      tick();
    }""")
    page.click("#input")
    page.keyboard.type("Hel")
    page.wait_for_function("() => window.seen.some((m) => m.activity === 'listening')")
    assert page.inner_text("#avatar-mood") == "listening…"
    fake_chat.pace = 0.08
    page.keyboard.type("lo!")
    page.keyboard.press("Enter")
    page.wait_for_function("() => window.seen.some((m) => m.activity === 'speaking')")
    page.wait_for_function("() => window.talk.some((t) => t > 0.5)", timeout=10000)
    assert page.inner_text("#avatar-mood") == "speaking…"
    page.wait_for_selector(".msg-bot.is-done", timeout=20000)
    page.wait_for_function("() => window.seen.at(-1).activity === 'idle'")
    seen = page.evaluate("window.seen")
    acts = [s["activity"] for s in seen if s["type"] == "avatar_state"]
    assert list(dict.fromkeys(acts)) == ["listening", "thinking", "speaking", "idle"]
    assert acts[-1] == "idle"
    assert any(s["type"] == "avatar_visemes" for s in seen)
    pose = page.evaluate("window.companion.animator.pose")
    Pose.model_validate(pose).pack()  # what the view (the WGSL avatar, or the orb) was handed
    page.screenshot(path=str(artifact("avatar-page-idle.png")))
    assert errors == []
