"""End to end: the real page in headless Chromium, the real chat core, the real model. The
page is both the chat window and the WebGPU executor the ChatSession's BrowserEngine drives.
A user types, sees the reply stream, stops it; and with WebGPU taken away, the native engine
takes over mid-turn and the page shows the switch."""

from __future__ import annotations

import pytest
from conftest_browser import N_CTX, close_page_engine, open_page_engine

from companion.chat import ChatSession
from companion.sampling import SamplingParams

pytestmark = pytest.mark.browser

REPLY_TIMEOUT_MS = 240_000  # prefill + a few tokens on SwiftShader, on 2 shared cores


def _send(page, text: str) -> None:
    page.wait_for_selector("body[data-ready='1']")
    page.fill("#input", text)
    page.press("#input", "Enter")


def test_type_stream_and_stop(chromium_required, chromium, plan_assets, model):
    pe = open_page_engine(chromium, plan_assets, model, load=False)
    try:
        # the page shows the load: the core relays the executor's progress to every page
        pe.page.wait_for_selector("body[data-ready='1']")
        pe.page.evaluate(
            "() => { window.seen = []; window.companion.bridge.on('engine_status',"
            " (m) => window.seen.push([m.phase, m.progress, m.detail])); }"
        )
        pe.engine.load()
        pe.page.wait_for_function("() => window.seen.length && window.seen[window.seen.length - 1][0] === 'ready'")
        seen = pe.page.evaluate("() => window.seen")
        assert any(phase == "loading" and "uploading weights" in detail for phase, _, detail in seen), seen
        assert pe.page.text_content("#engine-name").strip().lower() == "browser"
        session = ChatSession(
            model, pe.engine, sampling=SamplingParams(temperature=0.7, seed=7), max_new_tokens=200,
            system_prompt="You are a friendly companion. Answer at length.",
        )  # fmt: skip
        pe.server.set_chat(session)
        page = pe.page
        _send(page, "Tell me a long story about a lighthouse keeper.")
        page.wait_for_selector(".msg-user >> text=lighthouse keeper")
        # streamed text shows up while the reply is still running
        page.wait_for_function(
            "() => { const b = document.querySelector('.msg-bot.is-streaming .bubble');"
            " return b && !b.querySelector('.typing') && b.textContent.trim().length > 0; }",
            timeout=REPLY_TIMEOUT_MS,
        )
        assert page.is_visible("#stop")
        page.click("#stop")
        page.wait_for_selector(".msg-bot.is-stopped", timeout=REPLY_TIMEOUT_MS)
        assert "stopped" in page.inner_text(".msg-bot.is-stopped .meta")
        assert page.is_visible("#send") and not page.is_visible("#stop")
        text = page.inner_text(".msg-bot.is-stopped .bubble").strip()
        assert text and session.history[-1] == {"role": "assistant", "content": session.history[-1]["content"]}
        assert session.engine.name == "browser"  # no fallback happened
        assert pe.errors == []
    finally:
        close_page_engine(pe)


@pytest.mark.gpu
def test_no_webgpu_native_takes_over(chromium_required, chromium, plan_assets, model, gpu_adapter_info):
    from companion.engines.native import NativeEngine

    pe = open_page_engine(chromium, plan_assets, model, init_script="delete Navigator.prototype.gpu;", load=False)
    try:
        session = ChatSession(
            model, pe.engine, sampling=SamplingParams.greedy_params(), max_new_tokens=12,
            fallback=lambda: NativeEngine(model, n_ctx=N_CTX),
        )  # fmt: skip
        pe.server.set_chat(session)
        page = pe.page
        _send(page, "Hello! Who are you?")
        page.wait_for_selector(".msg-bot.is-done", timeout=REPLY_TIMEOUT_MS)
        assert page.text_content("#engine-name").strip().lower() == "native"
        notices = page.inner_text("#messages")
        assert "Now running on the native engine" in notices and "navigator.gpu is missing" in notices
        reply = page.inner_text(".msg-bot.is-done .bubble").strip()
        assert reply and reply != "…"
        assert session.engine.name == "native"
        session.engine.close()
    finally:
        close_page_engine(pe)


def test_avatar_follows_a_real_reply(chromium_required, chromium, model, reference_weights):
    """The real page and the real ChatSession (reference engine, a few greedy tokens): over the
    bridge the avatar goes thinking -> speaking -> idle, the mouth takes three or more shapes
    while the text streams, and an emotion shows (read from the words if the model wrote no
    tag). A screenshot of the app mid-reply goes to test-artifacts/avatar-mid-reply.png."""
    from itertools import groupby

    from conftest_web import artifact

    from companion.avatar.infer import shared_reader
    from companion.bridge.server import BridgeServer
    from companion.engines.reference import ReferenceEngine
    from companion.settings import Settings

    assert shared_reader().load()  # the first sentence is read with the encoder, not the lexicon alone
    session = ChatSession(
        model, ReferenceEngine(reference_weights, n_ctx=256), SamplingParams.greedy_params(),
        max_new_tokens=20, system_prompt="You are a warm, caring friend.",
    )  # fmt: skip
    server = BridgeServer(session, settings=Settings(engine="reference"))
    page = chromium.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(server.start())
        page.wait_for_selector("body[data-ready='1']")
        page.evaluate(
            "() => { window.seen = []; window.companion.bridge.on('*', (m) => {"
            " if (['avatar_state', 'avatar_visemes', 'assistant_delta', 'reply_done'].includes(m.type))"
            " window.seen.push({...m, at: performance.now()}); }); }"
        )
        _send(page, "Hello! How are you today?")
        # mid-reply: text on screen, the mouth scheduled to move
        page.wait_for_function(
            "() => window.seen.some((m) => m.type === 'assistant_delta')"
            " && window.seen.some((m) => m.type === 'avatar_visemes' && m.visemes.length)",
            timeout=REPLY_TIMEOUT_MS,
        )
        page.wait_for_function("() => (window.companion.animator.pose?.talk || 0) > 0.3", timeout=REPLY_TIMEOUT_MS)
        page.screenshot(path=str(artifact("avatar-mid-reply.png")))
        page.wait_for_selector(".msg-bot.is-done", timeout=REPLY_TIMEOUT_MS)
        page.wait_for_function("() => window.seen.at(-1).type === 'avatar_state' && window.seen.at(-1).activity === 'idle'")
        seen = page.evaluate("window.seen")
    finally:
        page.close()
        server.stop()
    states = [m for m in seen if m["type"] == "avatar_state"]
    acts = [s["activity"] for s in states]  # (listening while the message was typed)
    assert [a for a, _ in groupby(acts[acts.index("thinking") :])] == ["thinking", "speaking", "idle"]
    kinds = [m["type"] for m in seen]
    first_text, done = kinds.index("assistant_delta"), kinds.index("reply_done")
    speaking = next(i for i, m in enumerate(seen) if m.get("activity") == "speaking")
    # speaking starts with the text: no second piece of text reaches the page before it (an
    # order, not a wall-clock bound: the bridge's messages may be late on a loaded machine)
    assert "assistant_delta" not in kinds[first_text + 1 : speaking], kinds[: speaking + 1]
    # while the text streams, the mouth takes at least three shapes (closed not counted)
    shapes = {v["viseme"] for m in seen[:done] if m["type"] == "avatar_visemes" for v in m["visemes"]}
    assert len(shapes - {"closed"}) >= 3, shapes
    emotions = [s for s in states if s["emotion"] != "neutral" and s["intensity"] > 0]
    assert emotions, states  # an emotion was set
    assert session.history[-1]["content"] and "[" not in session.history[-1]["content"]
    assert errors == []
