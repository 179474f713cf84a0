"""`companion bench`: prefill and decode speed, time to first token and peak memory of an
engine, as JSON, with the engine's own counters (dispatches/submits/readback) when it has them."""

from __future__ import annotations

import platform
import resource
import sys
import time
from typing import Any

import numpy as np

from companion.engines.base import Engine
from companion.model.gguf_model import GGUFModel
from companion.sampling import Sampler, SamplingParams

BENCH_TEXT = (
    "Companion is a desktop AI companion whose language model runs on the user's own GPU. "
    "It remembers what matters, speaks with a persona the user chooses, and never sends a "
    "word over the network. "
)


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB."""
    if sys.platform.startswith("linux"):
        from companion.bench_peer import vm_hwm_mb

        return vm_hwm_mb()
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(ru / (1024 * 1024) if sys.platform == "darwin" else ru / 1024, 1)


def bench_prompt(model: GGUFModel, n_tokens: int) -> list[int]:
    """A deterministic prompt of exactly n_tokens real-text tokens."""
    ids: list[int] = []
    while len(ids) < n_tokens:
        ids += model.tokenizer.encode(BENCH_TEXT, parse_special=False)
    return ids[:n_tokens]


def bench_engine(
    engine: Engine, model: GGUFModel, prompt_tokens: int = 128, decode_tokens: int = 128, repeats: int = 3
) -> dict[str, Any]:
    """Measure one engine; each figure is the median of `repeats` runs after one warm-up."""
    prompt = bench_prompt(model, prompt_tokens)
    greedy = SamplingParams.greedy_params()
    prefill_s, ttft_s, decode_s = [], [], []
    for r in range(repeats + 1):
        engine.reset()
        t0 = time.perf_counter()
        engine.eval(prompt)
        t1 = time.perf_counter()
        engine.reset()
        sampler = Sampler(greedy)
        history = list(prompt)
        t2 = time.perf_counter()
        tok = engine.next_token(prompt, sampler, history)
        t3 = time.perf_counter()
        history.append(tok)
        for _ in range(decode_tokens):
            tok = engine.next_token([tok], sampler, history)
            history.append(tok)
        t4 = time.perf_counter()
        if r > 0:  # the first run warms caches and compiles pipelines
            prefill_s.append(t1 - t0)
            ttft_s.append(t3 - t2)
            decode_s.append(t4 - t3)
    med = lambda xs: float(np.median(xs))  # noqa: E731
    out: dict[str, Any] = {
        "engine": engine.name,
        "adapter": engine.adapter,
        "model": model.config.name,
        "model_file_type": model.config.file_type,
        "prompt_tokens": prompt_tokens,
        "decode_tokens": decode_tokens,
        "repeats": repeats,
        "prefill_tok_per_s": round(prompt_tokens / med(prefill_s), 2),
        "decode_tok_per_s": round(decode_tokens / med(decode_s), 2),
        "decode_ms_per_token": round(1000 * med(decode_s) / decode_tokens, 3),
        "time_to_first_token_s": round(med(ttft_s), 4),
        "peak_rss_mb": peak_rss_mb(),
        "machine": {"python": platform.python_version(), "cpu_count": __import__("os").cpu_count(), "platform": platform.platform()},
    }
    stats = getattr(engine, "stats", None)
    if isinstance(stats, dict):
        out.update({k: v for k, v in stats.items() if isinstance(v, int | float | str)})
    return out


def with_peer(result: dict[str, Any], peer: dict[str, Any]) -> dict[str, Any]:
    """The engine's result with the peer's (measured in the same run) and our/peer ratios."""
    out = {**result, "peer": peer}
    if "error" not in peer:
        out["ratio_prefill_vs_peer"] = round(result["prefill_tok_per_s"] / peer["prefill_tok_per_s"], 3)
        out["ratio_decode_vs_peer"] = round(result["decode_tok_per_s"] / peer["decode_tok_per_s"], 3)
    return out
