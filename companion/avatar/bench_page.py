"""The page's avatar in headless Chromium (`companion avatar bench --page SECONDS`): the app page
served by a BridgeServer of this process, in two modes:

- `webgpu`: the page draws shaders/avatar.wgsl itself (WebGPU on SwiftShader in headless Chromium:
  offscreen, copied into a 2D canvas; ui/avatar/view.js);
- `native`: navigator.gpu removed (as in Qt WebEngine on Linux): this process draws the frames
  with wgpu-py and streams them (companion.avatar.stream).

For each: the page's own frame times (view.js's per-frame ms: GPU submit to pixels shown, or
request to native frame shown; p50, p95), the rate it draws at, and CPU per frame of Chromium's
processes by kind (renderer, gpu-process, browser...; read from /proc, Linux only) and of this
process. With `decode`, the same while a reply streams: a chat session that decodes greedily with
the native engine in this process (the page sees reply_started and paces itself to 10 fps, the
core's stream too), with the decode rate beside the rate of the same engine with no page.
Needs Debian's chromium and playwright.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from companion.avatar.bench import Decoder, decode_window, greedy_tokens, machine, percentiles
from companion.errors import EngineUnavailable

# what the page's view knows: frames drawn, its last 30 frame times (ms), busy, stats()
_SAMPLE = """() => {
  const v = window.companion && window.companion.avatarView;
  if (!v || !v.stats) return null;
  return { frames: v.frames, times: Array.from(v.times || []), busy: !!v.busy, stats: v.stats() };
}"""
_VIEWPORT = {"width": 1000, "height": 760}


class DecodingChat:
    """A chat session (the bridge's ChatSessionLike) whose replies are the native engine decoding
    greedily until stopped: a 16-token prompt, then 64 tokens, over and over, one TextDelta each."""

    engine_name = "native"

    def __init__(self, engine: Any, model: Any, limit_s: float = 600.0) -> None:
        self.engine, self.model, self.limit_s = engine, model, limit_s
        self.adapter = getattr(engine, "adapter", "")
        self.tokens = 0
        self._stop = threading.Event()

    def send(self, text: str) -> Iterator[Any]:
        from companion.chat import AvatarCue, ReplyDone, TextDelta

        self._stop.clear()
        n, t0 = 0, time.perf_counter()
        yield AvatarCue("happy")
        for tok in greedy_tokens(self.engine, self.model, self._stop):
            if time.perf_counter() - t0 >= self.limit_s:
                break
            self.tokens += 1
            n += 1
            yield TextDelta(self.model.tokenizer.decode([tok]) or " ")
        yield ReplyDone("stopped" if self._stop.is_set() else "done", "", {"tokens": n})

    def stop(self) -> None:
        self._stop.set()

    def reset(self) -> None:
        pass

    def undo_memory(self, undo_id: int) -> None:
        return None  # this session keeps no memory: nothing to undo


def chromium_cpu(profile: str) -> dict[str, float]:
    """CPU seconds so far of the Chromium started on `profile` and its descendants, by process
    kind (its --type=, "browser" for the browser itself); {} where /proc is not readable."""
    procs: dict[int, tuple[int, str, float]] = {}  # pid -> (ppid, cmdline, cpu s)
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return {}
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
        procs[pid] = (int(fields[1]), cmd, (int(fields[11]) + int(fields[12])) / tick)
    roots = {pid for pid, (_, cmd, _) in procs.items() if f"--user-data-dir={profile}" in cmd and "--type=" not in cmd}
    tree, grew = set(roots), True
    while grew:
        more = {pid for pid, (ppid, _, _) in procs.items() if ppid in tree and pid not in tree}
        tree |= more
        grew = bool(more)
    out: dict[str, float] = {}
    for pid in tree:
        _, cmd, cpu = procs[pid]
        kind = next((a.split("=", 1)[1] for a in cmd.split() if a.startswith("--type=")), "browser")
        out[kind] = out.get(kind, 0.0) + cpu
    return out


def _window(page: Any, seconds: float, profile: str, tokens: Any = None) -> dict[str, Any]:
    """Watch the page's view for `seconds`: its frame times, rate, and CPU per frame."""
    first = page.evaluate(_SAMPLE)
    cpu0, me0, t0, n0 = chromium_cpu(profile), time.process_time(), time.perf_counter(), tokens() if tokens else 0
    seen, times, busy = first["frames"], [], []
    while time.perf_counter() - t0 < seconds:
        time.sleep(0.25)
        s = page.evaluate(_SAMPLE)
        new = s["frames"] - seen
        if new > 0:
            times += s["times"][-min(new, len(s["times"])) :]
        seen = s["frames"]
        busy.append(s["busy"])
    wall = time.perf_counter() - t0
    cpu1, me = chromium_cpu(profile), time.process_time() - me0
    frames = seen - first["frames"]
    per = max(frames, 1)
    cpu = {k: round((cpu1.get(k, 0.0) - cpu0.get(k, 0.0)) * 1000 / per, 2) for k in sorted(cpu1)}
    out: dict[str, Any] = {
        "seconds": round(wall, 2),
        "frames": frames,
        "fps": round(frames / wall, 2),
        **percentiles(times, "frame_ms"),
        "chromium_cpu_ms_per_frame": cpu,
        "chromium_cpu_core_share": round(sum(cpu1.get(k, 0.0) - cpu0.get(k, 0.0) for k in cpu1) / wall, 3),
        "core_process_cpu_ms_per_frame": round(me * 1000 / per, 2),
        "page_busy_share": round(sum(busy) / max(len(busy), 1), 2),
    }
    if tokens is not None:
        out["tokens"] = tokens() - n0
        out["decode_tok_s"] = round((tokens() - n0) / wall, 2)
    return out


def _wait(what: Any, timeout: float, why: str) -> None:
    end = time.monotonic() + timeout
    while not what():
        if time.monotonic() > end:
            raise EngineUnavailable(f"avatar page bench: {why} within {timeout:.0f} s")
        time.sleep(0.1)


def bench_page(seconds: float, decode: bool, model_path: Path | None = None, adapter: str | None = None,
               modes: tuple[str, ...] = ("webgpu", "native"), first_frame_s: float = 240.0) -> dict[str, Any]:  # fmt: skip
    """The page's avatar in headless Chromium, alone and (decode) while the native engine decodes
    in this process; see the module's docstring."""
    from companion.bridge.server import BridgeServer
    from companion.chromium import chromium_path, launch_context

    if not os.access(chromium_path(), os.X_OK):
        raise EngineUnavailable(f"no Chromium at {chromium_path()}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        raise EngineUnavailable("the page bench needs playwright") from exc
    result: dict[str, Any] = {"seconds": seconds}
    chat = engine = None
    if decode:
        from companion.engines.choice import create_engine
        from companion.model import load_model

        model = load_model(model_path)
        engine = create_engine("native", model, 512, adapter, lambda m: None)
        decoder = Decoder(engine, model).start(first=4)  # compiles the engine's pipelines
        try:
            result["decode_alone"] = decode_window(decoder, seconds)  # the same engine, no page
        finally:
            decoder.stop()
        chat = DecodingChat(engine, model)
        result["model"] = model.config.name
        result["engine_adapter"] = engine.adapter
    try:
        with BridgeServer(chat) as server, sync_playwright() as pw:
            for mode in modes:
                with tempfile.TemporaryDirectory(prefix="companion-avatar-bench-") as profile:
                    context = launch_context(pw, profile, viewport=_VIEWPORT)
                    try:
                        result[mode] = _one_mode(context, server, chat, mode, seconds, profile, first_frame_s)
                    finally:
                        context.close()
    finally:
        if engine is not None:
            engine.close()
    result["machine"] = machine()
    return result


def _one_mode(context: Any, server: Any, chat: DecodingChat | None, mode: str, seconds: float, profile: str, first_frame_s: float) -> dict[str, Any]:
    page = context.new_page()
    if mode == "native":
        page.add_init_script("delete Navigator.prototype.gpu;")
    page.goto(server.launch_url())
    t0 = time.perf_counter()
    _wait(lambda: (page.evaluate(_SAMPLE) or {}).get("frames", 0) >= 3, first_frame_s, "the page drew no avatar frames")
    stats = page.evaluate(_SAMPLE)["stats"]
    out: dict[str, Any] = {"first_frames_s": round(time.perf_counter() - t0, 1), "view": {k: stats.get(k) for k in ("mode", "present", "adapter", "width", "height", "reason")}}
    if stats["mode"] != mode:
        out["skipped"] = f"the page draws in mode {stats['mode']!r}: {stats.get('reason') or ''}".strip()
        return out
    frames0 = server.conversation.frames.frames
    out["alone"] = _window(page, seconds, profile)
    if mode == "native":
        out["alone"]["core_frames"] = server.conversation.frames.frames - frames0
    if chat is not None:
        before = chat.tokens
        page.fill("#input", "Tell me a long story about a lighthouse.")
        page.press("#input", "Enter")
        _wait(lambda: chat.tokens > before and page.evaluate(_SAMPLE)["busy"], 120, "the reply did not start")
        time.sleep(0.5)  # the page's pacing switches at reply_started; let a frame or two go by
        frames0 = server.conversation.frames.frames
        out["while_decoding"] = _window(page, seconds, profile, tokens=lambda: chat.tokens)
        if mode == "native":
            out["while_decoding"]["core_frames"] = server.conversation.frames.frames - frames0
        chat.stop()
        _wait(lambda: not page.evaluate(_SAMPLE)["busy"], 30, "the reply did not stop")
        a, b = out["alone"], out["while_decoding"]
        # the page asks for at most 10 fps while a reply streams (view.js), never sooner than twice
        # the last frame's time; 5% slack for timer rounding
        out["adapts"] = b["fps"] <= 10 * 1.05 and b["page_busy_share"] >= 0.9
        out["fps_alone_vs_decoding"] = [a["fps"], b["fps"]]
    page.close()
    return out
