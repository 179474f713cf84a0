"""The VRM avatar in the real page (headless Chromium): the model made in tests/conftest_vrm.py
loads with three.js and three-vrm, the core's avatar state reaches its expression weights, the
eyes follow the gaze, and a broken or refused model leaves the built-in avatar in place. Reads
the page through window.__companionAvatar (a read-only debug hook of ui/avatar/vrm.js)."""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest_vrm import build_vrm, pack_glb, png_bytes, vrm_parts
from conftest_web import artifact

from companion.bridge.http import VRM_MODULE
from companion.bridge.messages import AvatarState, AvatarVisemes, VisemeSpan
from companion.bridge.server import BridgeServer
from companion.resources import ui_dir
from companion.settings import Settings

pytestmark = pytest.mark.browser

if not Path(str(ui_dir().joinpath(*VRM_MODULE.split("/")))).is_file():
    pytest.skip(
        f"ui/{VRM_MODULE} is not built (bash scripts/build_vrm.sh; it needs nodejs and npm)",
        allow_module_level=True,
    )


@pytest.fixture
def serve(fake_chat) -> Iterator[Any]:
    """Start a bridge server whose settings choose `model` (a path or None)."""
    servers: list[BridgeServer] = []

    def start(model: Path | None) -> BridgeServer:
        saved: list[Settings] = []
        server = BridgeServer(fake_chat, settings=Settings(avatar_model=model), on_settings=saved.append)
        server.saved_settings = saved  # type: ignore[attr-defined]
        server.start()
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.stop()


def open_page(page: Any, server: BridgeServer) -> tuple[list[str], dict[str, Any]]:
    """Open the page, wait for the bridge and the avatar's first load; (page errors, state)."""
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server.launch_url())
    page.wait_for_selector("body[data-ready='1']", timeout=20000)
    page.evaluate("window.__companionAvatar.ready")
    return errors, page.evaluate("window.__companionAvatar.state()")


def weights(page: Any) -> dict[str, float]:
    return page.evaluate("window.__companionAvatar.expressionWeights()")


def wait_for(page: Any, js: str, timeout: float = 15000) -> None:
    page.wait_for_function(js, timeout=timeout, polling=50)


def test_the_generated_vrm_loads_and_takes_the_emotion(page, serve, vrm_file):
    server = serve(vrm_file)
    errors, state = open_page(page, server)
    assert errors == []
    assert state["mode"] == "vrm", state
    assert state["model"] == "Test Box"
    assert state["materials"] == ["MToon"]  # three-vrm's MToonNodeMaterial, for the WebGPU/WebGL2 renderer
    assert state["renderer"] in ("webgpu", "webgl2")
    if "CPU rasterizer" in state["reason"]:  # SwiftShader in CI: WebGL2 (README, "VRM models")
        assert state["renderer"] == "webgl2"
    wait_for(page, "window.__companionAvatar.state().frames > 2")
    assert page.locator("#avatar-vrm").is_visible()
    assert page.locator("#avatar").evaluate("c => getComputedStyle(c).visibility") == "hidden"
    assert set(weights(page)) >= {"happy", "angry", "sad", "relaxed", "surprised", "blink", "aa", "ih", "ou", "ee", "oh"}

    server.publish(AvatarState(emotion="happy", intensity=1.0, transition_ms=0))
    wait_for(page, "window.__companionAvatar.expressionWeights().happy > 0.9")
    w = weights(page)
    assert w["sad"] < 0.05 and w["angry"] < 0.05
    server.publish(AvatarState(emotion="sad", intensity=0.6, transition_ms=0))
    wait_for(page, "(w => w.sad > 0.5 && w.happy < 0.05)(window.__companionAvatar.expressionWeights())")
    print("VRM renderer in headless Chromium:", page.evaluate("window.__companionAvatar.state()"))
    page.screenshot(path=artifact("vrm-page.png"))


def test_visemes_and_gaze_reach_the_model(page, serve, vrm_file):
    server = serve(vrm_file)
    open_page(page, server)
    page.evaluate("window.companion.animator.replyStarted(1)")
    spans = [VisemeSpan(viseme=v, ms=300) for v in ["aa", "oh", "ee"] * 10]
    server.publish(AvatarVisemes(turn=1, start_ms=0, visemes=spans))
    seen: set[str] = set()
    for _ in range(160):
        w = weights(page)
        seen |= {n for n in ("aa", "oh", "ee") if w[n] > 0.3}
        if len(seen) == 3:
            break
        page.wait_for_timeout(50)
    assert seen == {"aa", "oh", "ee"}
    # the eyes follow the cursor over the avatar: the viewer's right is the model's left, which
    # three-vrm's expression-type look-at shows as lookLeft
    y = page.locator(".avatar-frame").bounding_box()["y"]
    page.mouse.move(1170, y)
    wait_for(page, "(w => w.lookLeft > 0.3 && w.lookRight < 0.01)(window.__companionAvatar.expressionWeights())")
    page.mouse.move(1, y)  # the avatar is near the left edge: a smaller turn
    wait_for(page, "(w => w.lookRight > 0.1 && w.lookLeft < 0.01)(window.__companionAvatar.expressionWeights())")


@pytest.mark.parametrize("version", ["0.x"])
def test_a_vrm0_model_maps_its_presets(page, serve, tmp_path, version):
    path = tmp_path / "box0.vrm"
    path.write_bytes(build_vrm(version))
    server = serve(path)
    _, state = open_page(page, server)
    assert state["mode"] == "vrm", state
    server.publish(AvatarState(emotion="happy", intensity=1.0, transition_ms=0))
    wait_for(page, "window.__companionAvatar.expressionWeights().happy > 0.9")  # VRM 0.x "joy"


def test_a_broken_model_leaves_the_builtin_avatar(page, serve, tmp_path):
    """A saved model that was damaged since its import: the core refuses to serve it."""
    broken = tmp_path / "broken.vrm"
    broken.write_bytes(build_vrm()[:-200])
    server = serve(broken)
    errors, state = open_page(page, server)
    assert state["mode"] == "builtin"
    assert "truncated" in state["message"] and "built-in avatar" in state["message"]
    assert "\n" not in state["message"]
    assert not page.locator("#avatar-vrm").is_visible()
    assert page.locator("#avatar").evaluate("c => getComputedStyle(c).visibility") != "hidden"
    assert "VRM" in (page.locator(".msg-notice").last.text_content() or "")


def test_a_model_three_cannot_parse_leaves_the_builtin_avatar(page, serve, tmp_path):
    """The core's checks pass but three.js's GLTFLoader fails: the page's own validation."""
    gltf, binary = vrm_parts()
    gltf["meshes"][0]["primitives"][0]["material"] = 7  # no such material: GLTFLoader throws
    path = tmp_path / "bad.vrm"
    path.write_bytes(pack_glb(gltf, binary))
    server = serve(path)
    _, state = open_page(page, server)
    assert state["mode"] == "builtin", state
    assert state["message"].startswith("The VRM model could not be shown")


NO_WEBGPU = "Object.defineProperty(Navigator.prototype, 'gpu', { get: () => undefined });"
NO_WEBGL2 = """
const getContext = HTMLCanvasElement.prototype.getContext;
HTMLCanvasElement.prototype.getContext = function (kind, ...rest) {
  return kind === "webgl2" ? null : getContext.call(this, kind, ...rest);
};"""


def test_without_webgpu_the_model_draws_with_webgl2(page, serve, vrm_file):
    """The page as Qt WebEngine on Linux has it: no navigator.gpu."""
    page.add_init_script(NO_WEBGPU)
    _, state = open_page(page, serve(vrm_file))
    assert (state["mode"], state["renderer"], state["reason"]) == ("vrm", "webgl2", "no navigator.gpu")
    wait_for(page, "window.__companionAvatar.state().frames > 2")


def test_with_neither_webgpu_nor_webgl2_the_builtin_avatar_stays(page, serve, vrm_file):
    """Qt WebEngine compositing in software (a CPU OpenGL: VMs, Xvfb) has neither."""
    page.add_init_script(NO_WEBGPU + NO_WEBGL2)
    _, state = open_page(page, serve(vrm_file))
    assert state["mode"] == "builtin"
    assert state["message"] == (
        "The VRM model could not be shown (this page has no WebGL2 and no navigator.gpu (Qt WebEngine "
        "compositing in software has neither)); drawing the built-in avatar."
    )
    assert not page.locator("#avatar-vrm").is_visible()


def drop(page: Any, data: bytes, name: str) -> None:
    """Drop a file with `data` onto the page, as a person dragging it from a file manager."""
    page.evaluate(
        """async ([b64, name]) => {
          const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
          const dt = new DataTransfer();
          dt.items.add(new File([bytes], name, { type: "application/octet-stream" }));
          const at = document.querySelector(".avatar-frame");
          for (const type of ["dragenter", "dragover", "drop"])
            at.dispatchEvent(new DragEvent(type, { dataTransfer: dt, bubbles: true, cancelable: true }));
        }""",
        [base64.b64encode(data).decode(), name],
    )


def test_dropping_a_vrm_imports_and_shows_it(page, serve, companion_home):
    server = serve(None)
    _, state = open_page(page, server)
    assert state["mode"] == "builtin"
    drop(page, build_vrm(), "My Model.vrm")
    wait_for(page, "window.__companionAvatar.state().mode === 'vrm'")
    kept = companion_home / "avatars" / "My_Model.vrm"
    assert kept.is_file()
    assert server.saved_settings[-1].avatar_model == kept  # type: ignore[attr-defined]
    assert server.settings is not None and server.settings.avatar_model == kept


def test_dropping_a_hostile_vrm_is_refused_in_one_line(page, serve, companion_home):
    server = serve(None)
    open_page(page, server)
    hostile = bytearray(build_vrm())
    at = hostile.find(png_bytes(2, 2)[:24])
    struct.pack_into(">2I", hostile, at + 16, 46341, 46341)  # a 2x2 PNG claiming 46341x46341 (8 GiB)
    drop(page, bytes(hostile), "huge.vrm")
    notice = page.locator(".msg-notice").last
    notice.wait_for(timeout=10000)
    text = notice.text_content() or ""
    assert "huge.vrm: image 0 claims 46341x46341 pixels" in text and "built-in avatar stays" in text
    assert page.evaluate("window.__companionAvatar.state().mode") == "builtin"
    assert not list((companion_home / "avatars").glob("*.vrm"))
    assert server.saved_settings == []  # type: ignore[attr-defined]


def test_the_pet_window_draws_the_model_too(page, serve, vrm_file):
    server = serve(vrm_file)
    page.goto(server.launch_url("/pet.html"))
    page.wait_for_selector("body[data-ready='1']", timeout=20000)
    page.evaluate("window.__companionAvatar.ready")
    assert page.evaluate("window.__companionAvatar.state().mode") == "vrm"
    server.publish(AvatarState(emotion="angry", intensity=1.0, transition_ms=0))
    wait_for(page, "window.__companionAvatar.expressionWeights().angry > 0.9")
    page.screenshot(path=artifact("vrm-pet.png"))
