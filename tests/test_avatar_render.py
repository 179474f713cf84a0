"""The built-in avatar (shaders/avatar.wgsl): its uniform layout against the Pose contract; the
native renderer (wgpu-py; lavapipe here); the page's renderer (WebGPU in headless Chromium,
SwiftShader here) drawing the same picture within a measured tolerance; golden images; the
snapshot CLI; and the native frame stream reaching a page that has no navigator.gpu.

Native vs page, measured on 30 states at 128 px (lavapipe vs SwiftShader, 2026-11-30): mean
|difference| 0.15 of 255, 99.9th percentile 6, 0.26% of channel values off by more than 4 (worst
state 0.51%), largest single difference 42 (a mouth corner, where the lip curve turns vertical).
TOLERANCE allows about twice each of those, per state."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest_web import artifact

from companion.avatar.pose import POSE_BYTES, POSE_LAYOUT, VISEMES, Pose
from companion.avatar.render import (
    contact_sheet,
    layers,
    png_bytes,
    premultiply,
    read_png,
    unpremultiply,
)
from companion.avatar.stream import (
    MAX_SIZE,
    MIN_SIZE,
    FrameStream,
    decode_frame,
    encode_frame,
    interval_ms,
)
from companion.emotion import EMOTIONS
from companion.errors import EngineUnavailable
from companion.gpu.shaders import read_text

SOURCE = read_text("avatar.wgsl")
GOLDEN_DIR = Path(__file__).parent / "golden" / "avatar"
GOLDEN_SIZE = 128
GALLERY_VISEMES = ("closed", "aa", "oh")
STATES = [(e, v) for e in EMOTIONS for v in GALLERY_VISEMES]
# per state: mean |difference| (of 255), share of channel values off by more than 4, largest
TOLERANCE = {"mean": 0.5, "over4": 0.01, "max": 64}


def differences(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    d = np.abs(a.astype(np.int16) - b.astype(np.int16))  # (H, W, 4)
    return {"mean": float(d.mean()), "over4": float((d > 4).mean()), "max": int(d.max())}


def within_tolerance(diff: dict[str, float]) -> bool:
    return all(diff[k] <= TOLERANCE[k] for k in TOLERANCE)


# --- the shader's contract (no GPU) ------------------------------------------------------------


def test_shader_pose_struct_is_the_pose_layout():
    """The uniform the shader reads is Pose.pack()'s block: the scalars in POSE_LAYOUT order, then
    the emotion and viseme weights (the page packs from this struct, the core with pack())."""
    body = re.search(r"struct Pose \{(.*?)\n\}", SOURCE, re.S).group(1)
    scalars = re.findall(r"^\s*(\w+): f32,", body, re.M)
    assert scalars == [name for name, n in POSE_LAYOUT if n == 1]
    assert [name for name, n in POSE_LAYOUT if n > 1] == ["emotion", "viseme"]
    n_emo = int(re.search(r"const N_EMOTIONS: u32 = (\d+)u;", SOURCE).group(1))
    n_vis = int(re.search(r"const N_VISEMES: u32 = (\d+)u;", SOURCE).group(1))
    assert (n_emo, n_vis) == (len(EMOTIONS), len(VISEMES))
    vec4s = int(re.search(r"weights: array<vec4f, (\d+)>", body).group(1))
    assert 4 * vec4s >= n_emo + n_vis
    assert POSE_BYTES == 4 * len(scalars) + 16 * vec4s == len(Pose().pack())


def test_emotion_and_viseme_tables_follow_the_contract():
    """The per-emotion faces and per-viseme mouths are in EMOTIONS / VISEMES order."""
    faces = SOURCE[SOURCE.index("var<private> FACES") :]
    faces = faces[: faces.index(");")]
    assert re.findall(r"// (\w+)\n", faces) == list(EMOTIONS)
    assert len(re.findall(r"vec4f\(", faces)) == 7 * len(EMOTIONS)
    mouths = SOURCE[SOURCE.index("var<private> VISEME_MOUTHS") :]
    mouths = mouths[: mouths.index(");")]
    assert re.findall(r"// (\w+)", mouths) == list(VISEMES)


def test_layers_are_fragment_entry_points_with_quads():
    found = layers(SOURCE)
    entries = set(re.findall(r"@fragment\nfn (\w+)\(", SOURCE))
    assert [e for e, _ in found] and {e for e, _ in found} == entries
    assert all(1 <= quads <= 8 for _, quads in found)  # the vs decodes instance = 8 * layer + quad
    cases = re.findall(r"case (\d+)u: \{\s*(?:return|//)", SOURCE[SOURCE.index("fn layer_quad") :])
    assert {int(c) for c in cases} >= set(range(len(found)))


def test_frame_header_round_trips_and_paces():
    rgba = np.arange(3 * 5 * 4, dtype=np.uint8).reshape(3, 5, 4)
    head, px = decode_frame(encode_frame(7, rgba, 33.3, 4.5))
    assert head["seq"] == 7 and (head["width"], head["height"]) == (5, 3) and head["interval_ms"] == 33
    assert head["flags"] & 1 and abs(head["render_ms"] - 4.5) < 1e-6
    assert (px == rgba).all()
    assert interval_ms(False, 5.0) == pytest.approx(1000 / 30)
    assert interval_ms(True, 5.0) == pytest.approx(100.0)  # the model decodes: 10 fps
    assert interval_ms(False, 40.0) == 80.0  # a slow render slows the stream (<= half a core)


def test_frame_request_limits_match_the_stream():
    from companion.bridge.messages import AvatarFrame

    for side in ("width", "height"):
        meta = {type(m).__name__: m for m in AvatarFrame.model_fields[side].metadata}
        assert (meta["Ge"].ge, meta["Le"].le) == (MIN_SIZE, MAX_SIZE)


def test_premultiplied_alpha_round_trip():
    rng = np.random.default_rng(0)
    straight = rng.integers(0, 256, (16, 16, 4), dtype=np.uint8)
    straight[0, :, 3] = 0
    straight[1, :, 3] = 255
    pm = premultiply(straight)
    assert (pm[..., :3] <= pm[..., 3:4]).all()
    back = unpremultiply(pm)
    a = straight[..., 3:4].astype(int)
    err = np.abs(back[..., :3].astype(int) - straight[..., :3]) * a  # color error weighted by alpha
    assert err.max() <= 255 and (back[0] == 0).all() and (back[1] == straight[1]).all()


# --- the frame stream's pacing (a stand-in renderer, no GPU) ----------------------------------


def _run(coro_fn) -> None:
    """asyncio.run on a thread of its own (the session's sync playwright holds this thread's loop)."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(coro_fn())
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    worker = threading.Thread(target=target)
    worker.start()
    worker.join()
    if errors:
        raise errors[0]


class _SlowRenderer:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[int, int, float]] = []
        self.fail = fail

    def render(self, pose: Pose, width: int, height: int | None = None) -> np.ndarray:
        if self.fail:
            raise EngineUnavailable("no adapter here")
        self.calls.append((width, height or width, pose.time))
        img = np.zeros((height or width, width, 4), np.uint8)
        img[..., 3] = 255
        return img


def test_frame_stream_answers_once_and_keeps_only_the_newest_request():
    """One frame per request; requests arriving while one renders collapse to the newest."""
    sent: list[tuple[str, bytes]] = []
    failed: list[str] = []
    renderer = _SlowRenderer()

    async def run() -> None:
        stream = FrameStream(lambda k, f: sent.append((k, f)), lambda k, why: failed.append(why), renderer=lambda: renderer)
        for i in range(5):  # a page that (wrongly) did not wait
            stream.request("page", i, 32, 16, Pose(time=float(i)), busy=False)
        for _ in range(200):
            await asyncio.sleep(0.01)
            if not stream._running:
                break
        stream.close()

    _run(run)
    assert not failed
    seqs = [decode_frame(f)[0]["seq"] for _, f in sent]
    assert seqs[-1] == 4 and len(seqs) <= 2 and seqs == sorted(seqs)  # the newest wins
    assert renderer.calls[-1] == (32, 16, 4.0) and len(renderer.calls) == len(seqs)


def test_frame_stream_reports_a_renderer_that_cannot_draw():
    failed: list[tuple[str, str]] = []

    async def run() -> None:
        stream = FrameStream(lambda k, f: None, lambda k, why: failed.append((k, why)), renderer=lambda: _SlowRenderer(fail=True))
        stream.request("a", 1, 32, 32, Pose(), busy=False)
        await asyncio.sleep(0.3)
        stream.request("b", 1, 32, 32, Pose(), busy=False)  # known broken: refused at once
        stream.close()

    _run(run)
    assert [k for k, _ in failed] == ["a", "b"] and "no adapter here" in failed[0][1]


# --- native (wgpu-py) -------------------------------------------------------------------------


def _coverage(img: np.ndarray) -> float:
    return float((img[..., 3] > 0).mean())


@pytest.mark.gpu
def test_native_render_is_premultiplied_on_a_transparent_background(avatar_renderer):
    img = avatar_renderer.render(Pose(), 96)
    assert img.shape == (96, 96, 4) and img.dtype == np.uint8
    assert (img[0, 0] == 0).all() and (img[0, -1] == 0).all()  # corners: no background
    assert 0.35 < _coverage(img) < 0.9
    assert (img[..., :3] <= img[..., 3:4]).all()  # premultiplied
    wide = avatar_renderer.render(Pose(), 160, 96)  # any aspect: the bust stays centred
    assert wide.shape == (96, 160, 4) and (wide[:, :20, 3] == 0).all()


def _region(img: np.ndarray, x0: float, x1: float, y0: float, y1: float) -> np.ndarray:
    h, w = img.shape[:2]
    return img[int(y0 * h) : int(y1 * h), int(x0 * w) : int(x1 * w)].astype(int)


def _changed(a: np.ndarray, b: np.ndarray) -> float:
    return float((np.abs(a - b).max(axis=-1) > 24).mean())


@pytest.mark.gpu
def test_every_emotion_and_viseme_shows(avatar_renderer):
    """Each emotion changes the face (eyes, brows, mouth or its cue) and each viseme the mouth."""
    size = 128
    neutral = avatar_renderer.render(Pose.still("neutral"), size)
    face = (0.15, 1.0, 0.0, 0.75)  # head and what floats around it
    for e in EMOTIONS[1:]:
        img = avatar_renderer.render(Pose.still(e), size)
        assert _changed(_region(img, *face), _region(neutral, *face)) > 0.01, e
    mouth = (0.4, 0.6, 0.6, 0.8)
    closed = avatar_renderer.render(Pose.still("neutral", "closed"), size)
    shapes = {}
    for v in VISEMES[1:]:
        shapes[v] = _region(avatar_renderer.render(Pose.still("neutral", v), size), *mouth)
        assert _changed(shapes[v], _region(closed, *mouth)) > 0.02, v
    assert _changed(shapes["aa"], shapes["oh"]) > 0.01 and _changed(shapes["ee"], shapes["ou"]) > 0.01


@pytest.mark.gpu
def test_the_pose_moves_the_face(avatar_renderer):
    """Blink closes the eyes, gaze moves the irises, time and sway move the hair, breath the body."""
    size = 128
    base = Pose()
    ref = avatar_renderer.render(base, size)
    eyes = (0.25, 0.75, 0.38, 0.6)
    cases = {
        "blink": ({"blink": 1.0}, eyes),
        "gaze": ({"gaze_x": 1.0, "gaze_y": 0.6}, eyes),
        "sway": ({"sway": 1.0, "time": 1.0}, (0.0, 1.0, 0.0, 1.0)),
        "breath": ({"breath": 1.0}, (0.0, 1.0, 0.75, 1.0)),
        "head": ({"head_yaw": 0.3, "head_roll": 0.2}, (0.0, 1.0, 0.0, 1.0)),
        "blush": ({"blush": 1.0}, (0.2, 0.8, 0.5, 0.7)),
    }
    for name, (change, box) in cases.items():
        img = avatar_renderer.render(base.model_copy(update=change), size)
        assert _changed(_region(img, *box), _region(ref, *box)) > 0.005, name


@pytest.mark.gpu
def test_resolution_independent(avatar_renderer):
    """The same drawing at any size: a 384 px render box-filtered to 96 px has the silhouette of a
    96 px render, and the same colours at a coarse scale (small renders keep every line at least
    0.8 px wide, so their lines are a little heavier: colours differ by ~3 of 255 on average)."""
    for pose in (Pose.still("happy", "aa"), Pose.still("thinking")):
        small = avatar_renderer.render(pose, 96).astype(np.float32)  # (96, 96, 4)
        big = avatar_renderer.render(pose, 384).astype(np.float32).reshape(96, 4, 96, 4, 4).mean(axis=(1, 3))
        alpha = np.abs(small[..., 3] - big[..., 3])
        assert alpha.mean() < 1.0 and (alpha > 64).mean() < 0.005
        coarse = np.abs(small.reshape(24, 4, 24, 4, 4).mean(axis=(1, 3)) - big.reshape(24, 4, 24, 4, 4).mean(axis=(1, 3)))
        assert coarse.mean() < 4.0


@pytest.fixture(scope="module")
def native_gallery(avatar_renderer) -> dict[tuple[str, str], np.ndarray]:
    """Every emotion x (closed, aa, oh) at the golden size, premultiplied."""
    return {(e, v): avatar_renderer.render(Pose.still(e, v), GOLDEN_SIZE) for e, v in STATES}


@pytest.mark.gpu
def test_goldens(native_gallery, request, gpu_adapter_info):
    """The look does not drift: each state against its golden PNG (made on lavapipe; rewrite them
    with --regen-avatar-goldens after a deliberate change, and look at them)."""
    if request.config.getoption("--regen-avatar-goldens"):
        GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
        for (e, v), img in native_gallery.items():
            (GOLDEN_DIR / f"{e}_{v}.png").write_bytes(png_bytes(img))
        pytest.skip(f"rewrote {len(native_gallery)} goldens in {GOLDEN_DIR}")
    missing = [f"{e}_{v}" for e, v in STATES if not (GOLDEN_DIR / f"{e}_{v}.png").exists()]
    assert not missing, f"no goldens for {missing}: run pytest --regen-avatar-goldens"
    bad = {}
    for (e, v), img in native_gallery.items():
        golden = premultiply(read_png(GOLDEN_DIR / f"{e}_{v}.png"))
        diff = differences(img, golden)
        if not within_tolerance(diff):
            bad[f"{e}_{v}"] = diff
    assert not bad, f"the avatar drifted from its goldens ({gpu_adapter_info.get('device')}): {bad}"


@pytest.mark.gpu
def test_snapshot_cli(tmp_path, gpu_adapter_info):
    from click.testing import CliRunner

    from companion.cli import main

    out = tmp_path / "face.png"
    r = CliRunner().invoke(main, ["avatar", "snapshot", "--emotion", "happy", "--viseme", "aa", "--size", "64", "--out", str(out)])
    assert r.exit_code == 0, r.output
    img = read_png(out.read_bytes())
    assert img.shape == (64, 64, 4) and img[0, 0, 3] == 0 and 0.35 < _coverage(img) < 0.9
    r = CliRunner().invoke(main, ["avatar", "snapshot", "--emotion", "smug", "--out", str(out)])
    assert r.exit_code != 0 and "smug" in r.output


# --- the page (WebGPU in headless Chromium) ----------------------------------------------------

PAGE_RENDER = """async ([poses, size]) => {
  const { openRenderer } = await import("/avatar/renderer.js");
  const opened = await openRenderer();
  if (!opened) return null;
  const out = [];
  for (const pose of poses) {
    const px = await opened.renderer.readPixels(pose, size, size);
    let s = "";
    for (let i = 0; i < px.length; i += 8192) s += String.fromCharCode(...px.subarray(i, i + 8192));
    out.push(btoa(s));
  }
  opened.renderer.destroy();
  opened.device.destroy();
  return out;
}"""


@pytest.mark.gpu
@pytest.mark.browser
def test_gallery_native_and_page_agree(native_gallery, avatar_renderer, page, bridge_server):
    """Every state drawn by wgpu-py and by the page from the same WGSL and Pose agrees within
    TOLERANCE; the gallery is written to test-artifacts/ for a person to look at."""
    page.goto(bridge_server.launch_url("/shaders/avatar.wgsl"))  # any same-origin document
    poses = [Pose.still(e, v).model_dump() for e, v in STATES]
    encoded = page.evaluate(PAGE_RENDER, [poses, GOLDEN_SIZE])
    if encoded is None:
        pytest.skip("this Chromium offers no WebGPU adapter")
    page_imgs = {
        s: np.frombuffer(base64.b64decode(b), np.uint8).reshape(GOLDEN_SIZE, GOLDEN_SIZE, 4) for s, b in zip(STATES, encoded, strict=True)
    }
    diffs = {f"{e}_{v}": differences(native_gallery[(e, v)], page_imgs[(e, v)]) for e, v in STATES}
    from PIL import Image

    big = {(e, v): avatar_renderer.render(Pose.still(e, v), 192) for e, v in STATES}
    Image.fromarray(contact_sheet(big, list(EMOTIONS), list(GALLERY_VISEMES))).save(artifact("avatar-gallery.png"))
    Image.fromarray(contact_sheet(page_imgs, list(EMOTIONS), list(GALLERY_VISEMES))).save(artifact("avatar-gallery-page.png"))
    worst = {k: max(d[k] for d in diffs.values()) for k in TOLERANCE}
    summary = {"size": GOLDEN_SIZE, "tolerance": TOLERANCE, "worst": worst, "per_state": diffs}
    artifact("avatar-native-vs-page.json").write_text(json.dumps(summary, indent=1))
    bad = {k: d for k, d in diffs.items() if not within_tolerance(d)}
    assert not bad, f"native and page renders differ beyond {TOLERANCE}: {bad}"


CANVAS_PIXELS = """() => {
  const c = document.getElementById("avatar-gpu");
  const copy = document.createElement("canvas");
  copy.width = c.width; copy.height = c.height;
  const ctx = copy.getContext("2d");
  ctx.drawImage(c, 0, 0);
  return { w: c.width, h: c.height, px: Array.from(ctx.getImageData(0, 0, c.width, c.height).data) };
}"""


def _canvas(page) -> np.ndarray:
    got = page.evaluate(CANVAS_PIXELS)
    return np.array(got["px"], np.uint8).reshape(got["h"], got["w"], 4)


def _wait_for_frames(page, n: int) -> dict:
    page.wait_for_function("() => window.companion && window.companion.avatarView", timeout=60_000)
    # the first frame waits for the shaders to compile (seconds on a CPU rasterizer)
    page.wait_for_function(f"() => window.companion.avatarView.stats().frames >= {n}", timeout=180_000)
    return page.evaluate("window.companion.avatarView.stats()")


def _assert_alive(page, stats: dict) -> None:
    first = _canvas(page)
    assert 0.3 < _coverage(first) < 0.95, stats
    page.wait_for_function(f"() => window.companion.avatarView.stats().frames >= {stats['frames'] + 5}", timeout=60_000)
    page.wait_for_timeout(400)
    second = _canvas(page)
    assert first.shape == second.shape
    assert (np.abs(first.astype(int) - second.astype(int)).max(axis=-1) > 8).mean() > 0.001, "the avatar is not moving"
    assert page.evaluate("getComputedStyle(document.getElementById('avatar')).display") == "none"  # the orb gave way


@pytest.mark.gpu
@pytest.mark.browser
def test_page_draws_the_avatar_with_webgpu(page, bridge_server):
    """The app page draws the WGSL avatar itself: into its canvas on a GPU, or (headless Chromium,
    whose WebGPU canvases cannot present) offscreen with a copy into the canvas."""
    page.goto(bridge_server.launch_url())
    if not page.evaluate("!!navigator.gpu"):
        pytest.skip("this Chromium has no navigator.gpu")
    stats = _wait_for_frames(page, 3)
    assert stats["mode"] == "webgpu", stats
    _assert_alive(page, stats)
    page.screenshot(path=str(artifact("avatar-page-webgpu.png")))


@pytest.mark.gpu
@pytest.mark.browser
def test_native_frames_reach_a_page_without_webgpu(page, bridge_server):
    """With navigator.gpu deleted (as in Qt WebEngine on Linux) the core draws the frames from the
    poses the page sends, and the canvas shows non-blank frames that change over time."""
    page.add_init_script("delete Navigator.prototype.gpu;")
    page.goto(bridge_server.launch_url())
    assert page.evaluate("'gpu' in navigator") is False
    stats = _wait_for_frames(page, 3)
    assert stats["mode"] == "native" and stats["renderMs"] > 0, stats
    _assert_alive(page, stats)
    assert bridge_server.conversation.frames.frames >= stats["frames"]
    page.screenshot(path=str(artifact("avatar-page-native.png")))
