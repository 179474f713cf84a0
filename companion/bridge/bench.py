"""Measure the bridge's per-message round trip.

- client="python": a Python WebSocket client sends `ping`, the server answers `pong`
  (page -> core -> page transport cost).
- client="chromium": a headless Chromium page with a stand-in executor answers the core's
  `generate` with a `token` (core -> page -> core): the overhead the browser engine pays per
  token on top of its GPU time. Needs Debian's chromium and playwright.

`python -m companion.bridge.bench [n] [python|chromium]` prints the result as JSON.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from typing import Any, Literal

from companion._asyncrun import run_coroutine
from companion.bridge.messages import Generate, Token
from companion.bridge.server import BridgeServer
from companion.chromium import chromium_path, launch_context

# A stand-in executor: answers every generate with the last id + 1, at once.
_ECHO_EXECUTOR = """
window.companionExecutorFactory = async () => ({
  adapter: "echo (bench)",
  async load() { return { adapter: "echo (bench)" }; },
  async reset(req) { return { n_past: req.n_keep }; },
  async generate(req) { return { id: req.ids[req.ids.length - 1] + 1 }; },
});
"""


def _summary(samples_s: list[float], client: str) -> dict[str, Any]:
    ms = sorted(s * 1000.0 for s in samples_s)
    p99 = ms[min(len(ms) - 1, int(round(0.99 * (len(ms) - 1))))]
    return {
        "client": client,
        "n": len(ms),
        "median_ms": round(statistics.median(ms), 4),
        "p99_ms": round(p99, 4),
        "mean_ms": round(statistics.fmean(ms), 4),
        "min_ms": round(ms[0], 4),
        "max_ms": round(ms[-1], 4),
    }


async def _python_round_trips(server: BridgeServer, n: int) -> list[float]:
    import aiohttp

    headers = {"Authorization": f"Bearer {server.secret}", "Origin": server.origin}
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"{server.origin}/bridge", headers=headers) as ws:
            await ws.send_str(
                json.dumps({"type": "hello", "protocol_version": 1, "client": "bench"})
            )
            while (await ws.receive_json())["type"] != "engine_status":
                pass  # welcome, then engine_status
            samples = []
            for seq in range(n + 20):
                t0 = time.perf_counter()
                await ws.send_str(json.dumps({"type": "ping", "seq": seq}))
                reply = await ws.receive_json()
                dt = time.perf_counter() - t0
                assert reply == {"type": "pong", "seq": seq, "t": 0.0}, reply
                if seq >= 20:  # warm-up
                    samples.append(dt)
            return samples


def _chromium_round_trips(server: BridgeServer, n: int) -> list[float]:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="companion-bench-") as profile, sync_playwright() as pw:
        context = launch_context(pw, profile)
        try:
            page = context.new_page()
            page.add_init_script(_ECHO_EXECUTOR)
            page.goto(server.launch_url())
            if not server.executor.wait_for_page(30):
                raise RuntimeError("the page did not connect as an executor")
            samples = []
            for i in range(n + 20):
                t0 = time.perf_counter()
                reply = server.executor.request(Generate(request_id=0, ids=[i]), timeout=10)
                dt = time.perf_counter() - t0
                assert isinstance(reply, Token) and reply.id == i + 1, reply
                if i >= 20:
                    samples.append(dt)
            return samples
        finally:
            context.close()


def round_trip(n: int = 1000, client: Literal["python", "chromium"] = "python") -> dict[str, Any]:
    """Median / p99 milliseconds of n bridge round trips (after 20 warm-up ones)."""
    with BridgeServer(None) as server:
        if client == "python":
            samples = run_coroutine(lambda: _python_round_trips(server, n))
        elif client == "chromium":
            if not os.access(chromium_path(), os.X_OK):
                raise RuntimeError(f"{chromium_path()} is not installed")
            samples = _chromium_round_trips(server, n)
        else:
            raise ValueError(f"unknown client {client!r}: python or chromium")
    return _summary(samples, client)


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    kind = sys.argv[2] if len(sys.argv) > 2 else "python"
    print(json.dumps(round_trip(count, kind), indent=2))  # type: ignore[arg-type]
