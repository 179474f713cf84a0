"""`companion avatar bench`: what a native avatar frame costs (wall time to draw and read back one
frame, and process CPU time per frame: lavapipe rasterizes on this process's threads), alone and
while the native engine decodes on the same device, and what the decoding loses to the avatar."""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from companion.avatar.pose import VISEMES, Pose
from companion.avatar.render import AvatarRenderer
from companion.avatar.stream import BUSY_FPS, TARGET_FPS
from companion.emotion import EMOTIONS


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


def frame_times(renderer: AvatarRenderer, size: int, frames: int, fps: float | None = None) -> dict[str, float]:
    """Draw `frames` animated frames back to back (or paced at `fps`): wall ms per frame (median,
    p90) and this process's CPU ms per frame."""
    renderer.render(animated_pose(0.0), size)  # compile and allocate first
    walls = []
    cpu0 = time.process_time()
    for i in range(frames):
        t0 = time.perf_counter()
        renderer.render(animated_pose(i / 30.0), size)
        walls.append(time.perf_counter() - t0)
        if fps:
            time.sleep(max(0.0, 1.0 / fps - (time.perf_counter() - t0)))
    cpu = (time.process_time() - cpu0) / frames
    return {
        "frame_ms_median": round(float(np.median(walls)) * 1000, 2),
        "frame_ms_p90": round(float(np.percentile(walls, 90)) * 1000, 2),
        "cpu_ms_per_frame": round(cpu * 1000, 2),
    }


def _decode(engine: Any, model: Any, stop: threading.Event, counts: list[int]) -> None:
    from companion.bench import bench_prompt
    from companion.sampling import Sampler, SamplingParams

    while not stop.is_set():
        engine.reset()
        prompt = bench_prompt(model, 16)
        sampler = Sampler(SamplingParams.greedy_params())
        history = list(prompt)
        tok = engine.next_token(prompt, sampler, history)
        for _ in range(64):
            if stop.is_set():
                return
            tok = engine.next_token([tok], sampler, history)
            history.append(tok)
            counts[0] += 1


def warm_up(engine: Any, model: Any) -> None:
    """Run a short decode first: the engine's first tokens compile its pipelines."""
    stop, counts = threading.Event(), [0]
    worker = threading.Thread(target=_decode, args=(engine, model, stop, counts), daemon=True)
    worker.start()
    while counts[0] < 4 and worker.is_alive():
        time.sleep(0.05)
    stop.set()
    worker.join()


def _tok_per_s(engine: Any, model: Any, seconds: float, render: tuple[AvatarRenderer, int, float] | None) -> tuple[float, dict[str, float] | None]:
    """Decode for `seconds` on a thread, drawing avatar frames meanwhile when `render` =
    (renderer, size, fps) is given: (tok/s, frame_times while decoding)."""
    stop, counts = threading.Event(), [0]
    worker = threading.Thread(target=_decode, args=(engine, model, stop, counts), daemon=True)
    worker.start()
    while counts[0] == 0 and worker.is_alive():  # past the prompt: time decoding only
        time.sleep(0.05)
    n0, t0 = counts[0], time.perf_counter()
    frames = None
    if render is None:
        time.sleep(seconds)
    else:
        renderer, size, fps = render
        frames = frame_times(renderer, size, max(1, int(seconds * fps)), fps)
    rate = (counts[0] - n0) / (time.perf_counter() - t0)
    stop.set()
    worker.join()
    return round(rate, 2), frames


def bench_native(size: int = 256, frames: int = 60, decode_s: float = 0.0, model_path: Path | None = None, adapter: str | None = None) -> dict[str, Any]:
    """Native avatar frames alone and, with decode_s > 0, while the native engine decodes."""
    t0 = time.perf_counter()
    renderer = AvatarRenderer(adapter=adapter)
    result: dict[str, Any] = {"size": size, "adapter": renderer.adapter}
    result["startup_s"] = round(time.perf_counter() - t0, 2)
    alone = frame_times(renderer, size, frames)
    alone["core_share_at_30fps"] = round(alone["cpu_ms_per_frame"] * TARGET_FPS / 1000, 3)
    alone["core_share_at_10fps"] = round(alone["cpu_ms_per_frame"] * BUSY_FPS / 1000, 3)
    result["alone"] = alone
    if decode_s > 0:
        from companion.engines.choice import create_engine
        from companion.model import load_model

        model = load_model(model_path)
        engine = create_engine("native", model, 512, adapter, lambda m: None)
        try:
            warm_up(engine, model)
            result["decode_tok_s_alone"], _ = _tok_per_s(engine, model, decode_s, None)
            for fps in (BUSY_FPS, TARGET_FPS):
                rate, times = _tok_per_s(engine, model, decode_s, (renderer, size, fps))
                result[f"while_decoding_{int(fps)}fps"] = {**(times or {}), "decode_tok_s": rate}
        finally:
            engine.close()
    return result
