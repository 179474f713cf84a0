"""`companion avatar bench`: what the avatar costs where it renders, alone and while the model
decodes on the same device.

Native (wgpu-py, companion.avatar.render):
- `alone`: frames drawn back to back: wall ms per frame (p50, p95: draw and read back) and this
  process's CPU ms per frame (a CPU rasterizer such as lavapipe draws on this process's threads).
- `stream_idle` / `stream_busy`: the frames a page without WebGPU gets, through
  companion.avatar.stream.FrameStream, paced as the page paces them (ui/avatar/view.js: the next
  request no sooner than the frame's interval after the last one was sent): the rate the stream
  settles at, and the intervals it asked for, with no reply streaming (30 fps) and during one
  (10 fps; never sooner than twice the render time).
- with a decode time: the native engine decodes greedily on a thread of this process: alone,
  with the stream paced as during a reply (`busy`: what the app does), alone, with the stream as
  if it were not adapted (`unadapted`, 30 fps), alone; each case gives the decode rate, the
  slowdown the avatar causes against the mean of the windows alone around it, the render
  thread's CPU per frame and this process's CPU beyond what decoding alone used.
- `adaptation`: whether the stream slowed down during the decode as it should.

The page path (headless Chromium, WebGPU on SwiftShader here) is companion.avatar.bench_page.
"""

from __future__ import annotations

import asyncio
import math
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from companion._asyncrun import run_coroutine
from companion.avatar.pose import VISEMES, Pose
from companion.avatar.render import AvatarRenderer
from companion.avatar.stream import BUSY_FPS, TARGET_FPS, FrameStream, decode_frame
from companion.emotion import EMOTIONS
from companion.errors import EngineUnavailable

MIN_TOKENS = 20  # fewer in a decode window: no slowdown is computed from it


def animated_pose(t: float) -> Pose:
    """A pose moving like the animator's at time t (s): breath, sway, a blink every 3 s, talking."""
    emo = [0.0] * len(EMOTIONS)
    emo[0], emo[EMOTIONS.index("happy")] = 0.4, 0.6
    vis = [0.0] * len(VISEMES)
    vis[int(t * 8) % len(VISEMES)] = 1.0
    blink = max(0.0, 1.0 - abs((t % 3.0) - 0.1) / 0.08)
    return Pose(
        time=t, blink=min(blink, 1.0), breath=0.5 - 0.5 * math.cos(t * 1.5), sway=math.sin(t * 0.9),
        gaze_x=0.3 * math.sin(t * 0.7), talk=1.0, emotion=emo, viseme=vis,
    )


def percentiles(ms: list[float], prefix: str) -> dict[str, float]:
    """{prefix_p50, prefix_p95} of a list of milliseconds (empty: nothing)."""
    if not ms:
        return {}
    return {f"{prefix}_p50": round(float(np.percentile(ms, 50)), 2), f"{prefix}_p95": round(float(np.percentile(ms, 95)), 2)}


def frame_times(renderer: AvatarRenderer, size: int, frames: int) -> dict[str, float]:
    """Draw `frames` animated frames back to back: wall ms per frame (p50, p95) and this
    process's CPU ms per frame."""
    renderer.render(animated_pose(0.0), size)  # compile and allocate first
    walls = []
    cpu0 = time.process_time()
    for i in range(frames):
        t0 = time.perf_counter()
        renderer.render(animated_pose(i / 30.0), size)
        walls.append((time.perf_counter() - t0) * 1000)
    cpu = (time.process_time() - cpu0) / frames
    return {"frames": frames, **percentiles(walls, "frame_ms"), "cpu_ms_per_frame": round(cpu * 1000, 2)}


def stream_paced(renderer: AvatarRenderer, size: int, seconds: float, busy: bool) -> dict[str, Any]:
    """Frames through FrameStream for `seconds`, requested as the page requests them: one in
    flight, the next sent no sooner than max(the frame's interval, the page's own 1/30 s or, busy,
    1/10 s) after the last was sent. The rate it settles at, render and round-trip ms, the
    interval the stream asked for, and this process's CPU per frame (all of it: a decode thread's
    too)."""

    tids: list[int] = []  # the stream's render thread (it calls the factory on its first frame)
    thread_cpu: list[float] = []  # that thread's CPU s after the first frame and after the last

    def on_thread() -> AvatarRenderer:
        tids.append(threading.get_native_id())
        return renderer

    async def run() -> list[tuple[float, float, float, float]]:
        got: asyncio.Queue[bytes | str] = asyncio.Queue()
        stream = FrameStream(lambda _k, frame: got.put_nowait(frame), lambda _k, why: got.put_nowait(why), renderer=on_thread)
        page_ms = 1000.0 / (BUSY_FPS if busy else TARGET_FPS)
        records: list[tuple[float, float, float, float]] = []  # (sent, arrived, render_ms, interval_ms)
        t0 = time.perf_counter()
        try:
            while (sent := time.perf_counter()) - t0 < seconds:
                stream.request("bench", len(records) + 1, size, size, animated_pose(sent - t0), busy)
                frame = await got.get()
                if isinstance(frame, str):
                    raise EngineUnavailable(frame)
                head, _ = decode_frame(frame)
                records.append((sent, time.perf_counter(), head["render_ms"], float(head["interval_ms"])))
                if len(records) == 1 and tids:
                    thread_cpu.append(thread_cpu_s(tids[0]))
                wait = sent + max(head["interval_ms"], page_ms) / 1000.0 - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
        finally:
            if tids:
                thread_cpu.append(thread_cpu_s(tids[0]))
            stream.close()
        return records

    renderer.render(animated_pose(0.0), size)  # compiled before timing
    cpu0, wall0 = time.process_time(), time.perf_counter()
    records = run_coroutine(run)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    n = len(records)
    span = records[-1][0] - records[0][0] if n > 1 else 0.0
    return {
        "busy": busy,
        "frames": n,
        "fps": round((n - 1) / span, 2) if span > 0 else 0.0,
        **percentiles([r[2] for r in records], "render_ms"),
        **percentiles([(r[1] - r[0]) * 1000 for r in records], "round_trip_ms"),
        "interval_ms_median": float(np.median([r[3] for r in records])) if records else 0.0,
        "cpu_ms_per_frame": round(cpu * 1000 / max(n, 1), 2),
        "cpu_core_share": round(cpu / wall, 3),
        # the render thread alone: encoding, submitting, waiting for and copying out the pixels
        # (a CPU rasterizer's own worker threads are not in it)
        "render_thread_cpu_ms_per_frame": round((thread_cpu[1] - thread_cpu[0]) * 1000 / (n - 1), 2)
        if len(thread_cpu) == 2 and n > 1 and thread_cpu[0] >= 0
        else None,
    }


def thread_cpu_s(tid: int) -> float:
    """CPU seconds (user + system) of this process's thread `tid` so far; -1 where /proc has no
    per-thread figures (not Linux)."""
    try:
        stat = Path(f"/proc/self/task/{tid}/stat").read_text()
    except OSError:
        return -1.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def greedy_tokens(engine: Any, model: Any, stop: threading.Event, run: int = 64) -> Iterator[int]:
    """Greedy tokens after a 16-token prompt, again and again from a fresh cache (`run` tokens
    at a time), until `stop` is set: decoding load for the benches."""
    from companion.bench import bench_prompt
    from companion.sampling import Sampler, SamplingParams

    prompt = bench_prompt(model, 16)
    while not stop.is_set():
        engine.reset()
        sampler = Sampler(SamplingParams.greedy_params())
        history = list(prompt)
        tok = engine.next_token(prompt, sampler, history)
        for _ in range(run):
            if stop.is_set():
                return
            history.append(tok)
            tok = engine.next_token([tok], sampler, history)
            yield tok


class Decoder:
    """Greedy native decoding on a thread, over and over (a 16-token prompt, then 64 tokens),
    counting tokens, until stopped."""

    def __init__(self, engine: Any, model: Any) -> None:
        self.engine, self.model = engine, model
        self.tokens = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="avatar-bench-decode", daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            for _ in greedy_tokens(self.engine, self.model, self._stop):
                self.tokens += 1
        except BaseException as exc:  # noqa: BLE001 - reported by stop()
            self.error = exc

    def start(self, first: int = 1) -> Decoder:
        """Start, and return once `first` tokens were decoded (past the prompt and compiling)."""
        self._thread.start()
        while self.tokens < first and self._thread.is_alive():
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        if self.error is not None:
            raise self.error


def decode_window(decoder: Decoder, seconds: float, work: Any = None) -> dict[str, Any]:
    """Tokens a second that `decoder` makes over `seconds` (while `work()` runs, if given: it
    should take about that long; its result is returned under "avatar"), and this process's CPU
    share over the window."""
    n0, t0, c0 = decoder.tokens, time.perf_counter(), time.process_time()
    avatar = None
    if work is not None:
        avatar = work()
    else:
        time.sleep(seconds)
    wall = time.perf_counter() - t0
    out: dict[str, Any] = {
        "tokens": decoder.tokens - n0,
        "decode_tok_s": round((decoder.tokens - n0) / wall, 2),
        "cpu_core_share": round((time.process_time() - c0) / wall, 3),
    }
    if avatar is not None:
        out["avatar"] = avatar
    return out


def adaptation(idle: dict[str, Any], busy: dict[str, Any]) -> dict[str, Any]:
    """Did the stream pace itself as companion.avatar.stream says: at most BUSY_FPS (and no
    sooner than twice the render time) while busy, faster when idle unless the render is the
    limit. `expected_*_fps` come from the measured render p50."""

    def expected(fps: float, r: dict[str, Any]) -> float:
        return round(min(fps, 1000.0 / max(2.0 * r.get("render_ms_p50", 0.0), 1e-3)), 2)

    exp_idle, exp_busy = expected(TARGET_FPS, idle), expected(BUSY_FPS, busy)
    return {
        "idle_fps": idle["fps"], "expected_idle_fps": exp_idle,
        "busy_fps": busy["fps"], "expected_busy_fps": exp_busy,
        "busy_interval_ms": busy["interval_ms_median"],
        # a frame is late when the machine is loaded, never early: the busy rate stays at or under
        # 10 fps (5% slack for timer rounding) and under the idle rate
        "adapts": busy["fps"] <= BUSY_FPS * 1.05 and busy["interval_ms_median"] >= 1000.0 / BUSY_FPS - 1 and busy["fps"] < idle["fps"],
    }


def bench_native(size: int = 256, frames: int = 60, decode_s: float = 0.0, model_path: Path | None = None,
                 adapter: str | None = None, stream_s: float = 3.0) -> dict[str, Any]:  # fmt: skip
    """Native avatar frames alone, through the stream idle and busy and, with decode_s > 0, while
    the native engine decodes in this process (see the module's docstring)."""
    t0 = time.perf_counter()
    renderer = AvatarRenderer(adapter=adapter)
    result: dict[str, Any] = {"size": size, "adapter": renderer.adapter, "startup_s": round(time.perf_counter() - t0, 2)}
    alone = frame_times(renderer, size, frames)
    alone["core_share_at_30fps"] = round(alone["cpu_ms_per_frame"] * TARGET_FPS / 1000, 3)
    alone["core_share_at_10fps"] = round(alone["cpu_ms_per_frame"] * BUSY_FPS / 1000, 3)
    result["alone"] = alone
    if stream_s > 0:
        result["stream_idle"] = stream_paced(renderer, size, stream_s, busy=False)
        result["stream_busy"] = stream_paced(renderer, size, stream_s, busy=True)
    if decode_s > 0:
        from companion.engines.choice import create_engine
        from companion.model import load_model

        model = load_model(model_path)
        engine = create_engine("native", model, 512, adapter, lambda m: None)
        decoder = Decoder(engine, model)
        try:
            decoder.start(first=4)  # the first tokens compile the engine's pipelines
            result["model"] = model.config.name
            result["engine_adapter"] = engine.adapter
            # decode alone before and after each case: the case is compared with the mean of the
            # two, so a machine whose load drifts (other processes) biases it less
            before = decode_window(decoder, decode_s)
            dec: dict[str, Any] = {"seconds": decode_s, "alone": before}
            for name, busy, after_name in (("busy", True, "alone_between"), ("unadapted", False, "alone_again")):
                case = decode_window(decoder, decode_s, lambda b=busy: stream_paced(renderer, size, decode_s, busy=b))
                after = dec[after_name] = decode_window(decoder, decode_s)
                ref_rate = (before["decode_tok_s"] + after["decode_tok_s"]) / 2
                ref_cpu = (before["cpu_core_share"] + after["cpu_core_share"]) / 2
                av = case["avatar"]
                # this process's CPU beyond decoding alone, per frame (noisy: includes the drift)
                av["avatar_cpu_ms_per_frame"] = round((case["cpu_core_share"] - ref_cpu) * decode_s * 1000 / max(av["frames"], 1), 2)
                case["decode_tok_s_alone"] = round(ref_rate, 2)
                # the share of decode speed the avatar takes; None when a window holds too few
                # tokens to say (a CPU rasterizer on a loaded machine)
                enough = min(before["tokens"], case["tokens"], after["tokens"]) >= MIN_TOKENS
                case["decode_slowdown"] = round(1.0 - case["decode_tok_s"] / ref_rate, 3) if enough else None
                dec[name] = case
                before = after
            result["while_decoding"] = dec
            result["adaptation"] = adaptation(result.get("stream_idle") or dec["unadapted"]["avatar"], dec["busy"]["avatar"])
            result["adaptation_while_decoding"] = adaptation(dec["unadapted"]["avatar"], dec["busy"]["avatar"])
        finally:
            decoder.stop()
            engine.close()
    elif "stream_idle" in result:
        result["adaptation"] = adaptation(result["stream_idle"], result["stream_busy"])
    result["machine"] = machine()
    return result


def machine() -> dict[str, Any]:
    """Where it ran: CPU count, load average, platform, date."""
    import platform

    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {"cpu_count": os.cpu_count(), "load_avg_1m": round(load[0], 2), "platform": platform.platform(), "date": time.strftime("%Y-%m-%d")}
