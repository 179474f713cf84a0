"""`companion bench`: prefill and decode speed, time to first token and peak memory of an
engine, as JSON, with the engine's own counters (dispatches/submits/readback/encode time per
token) when it has them, decode at several context lengths, and the rate a user sees through
the chat loop. Optionally a llama.cpp peer measured in the same run (companion.bench_peer) and a
PNG plot of both."""

from __future__ import annotations

import platform
import resource
import sys
import time
from collections.abc import Sequence
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
CHAT_PROMPT = "Write a long story about a robot who learns to paint, in at least five paragraphs."
CONTEXTS = (0, 512, 2048)  # decode is measured after a prompt of this many tokens (0: one token)
PREFILL_SIZES = (128, 512)
WARMUP_S = 1.0  # the headline figures' warm-up runs last at least this long...
WARMUP_RUNS = 10  # ...and are at most this many


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


def _med(xs: Sequence[float]) -> float:
    return float(np.median(xs))


def _decode(engine: Engine, prompt: list[int], n: int) -> tuple[float, float]:
    """(seconds to the first id, seconds for n more) of a greedy decode loop after prompt."""
    engine.reset()
    sampler = Sampler(SamplingParams.greedy_params())
    history = list(prompt)
    t0 = time.perf_counter()
    tok = engine.next_token(prompt, sampler, history)
    t1 = time.perf_counter()
    for _ in range(n):
        history.append(tok)
        tok = engine.next_token([tok], sampler, history)
    return t1 - t0, time.perf_counter() - t1


def bench_chat(engine: Engine, model: GGUFModel, decode_tokens: int, repeats: int, sampling: SamplingParams | None = None) -> dict[str, Any]:
    """The reply rate through the chat loop (ChatSession: template, detokenizer, emotion tags
    and the per-sentence emotion reading), greedy unless `sampling` says otherwise, a fresh
    conversation each run; medians of the session's own stats after one warm-up."""
    from companion.chat import ChatSession

    rates, ttfts, counts = [], [], []
    for r in range(repeats + 1):
        session = ChatSession(model, engine, sampling=sampling or SamplingParams.greedy_params(), max_new_tokens=decode_tokens)
        done = None
        for ev in session.send(CHAT_PROMPT):
            done = ev
        stats = getattr(done, "stats", {}) or {}
        if r > 0 and stats.get("generated_tokens", 0) > 1:
            rates.append(float(stats["decode_tok_per_s"]))
            ttfts.append(float(stats["time_to_first_token_s"]))
            counts.append(int(stats["generated_tokens"]))
    if not rates:
        return {"error": "the chat replies ended before a second token"}
    return {
        "decode_tok_per_s": round(_med(rates), 2),
        "time_to_first_token_s": round(_med(ttfts), 4),
        "generated_tokens": int(_med(counts)),
        "prompt": CHAT_PROMPT,
    }


def bench_engine(
    engine: Engine,
    model: GGUFModel,
    prompt_tokens: int = 128,
    decode_tokens: int = 128,
    repeats: int = 3,
    contexts: Sequence[int] = (),
    prefill_sizes: Sequence[int] = (),
    chat: bool = False,
) -> dict[str, Any]:
    """Measure one engine; each figure is the median of `repeats` runs after a warm-up (the first
    figures' after at least one run and WARMUP_S seconds of them, at most WARMUP_RUNS; the others'
    after one run).
    Top level: prefill at prompt_tokens, decode after that prompt, time to first token (the
    prompt through sampling, one id back). `contexts`: decode after prompts of these lengths
    ("decode"); `prefill_sizes`: prefill and time to first token at these lengths ("prefill");
    `chat`: the same decode through ChatSession ("chat")."""
    prompt = bench_prompt(model, prompt_tokens)
    prefill_s, ttft_s, decode_s = [], [], []
    # warm-up: caches, pipelines, and a GPU that idled before the bench up to its clocks (one
    # 128-token run is 0.13 s on an H200, and all three repeats of one such headline ran 20% slow)
    warm, t_warm = 0, time.perf_counter()
    while warm < WARMUP_RUNS and (warm == 0 or time.perf_counter() - t_warm < WARMUP_S):
        engine.reset()
        engine.eval(prompt)
        _decode(engine, prompt, decode_tokens)
        warm += 1
    for _ in range(repeats):
        engine.reset()
        t0 = time.perf_counter()
        engine.eval(prompt)
        t1 = time.perf_counter()
        ttft, dec = _decode(engine, prompt, decode_tokens)
        prefill_s.append(t1 - t0)
        ttft_s.append(ttft)
        decode_s.append(dec)
    out: dict[str, Any] = {
        "engine": engine.name,
        "adapter": engine.adapter,
        "model": model.config.name,
        "model_file_type": model.config.file_type,
        "prompt_tokens": prompt_tokens,
        "decode_tokens": decode_tokens,
        "repeats": repeats,
        "prefill_tok_per_s": round(prompt_tokens / _med(prefill_s), 2),
        "decode_tok_per_s": round(decode_tokens / _med(decode_s), 2),
        "decode_ms_per_token": round(1000 * _med(decode_s) / decode_tokens, 3),
        "time_to_first_token_s": round(_med(ttft_s), 4),
    }
    stats = getattr(engine, "stats", None)
    if isinstance(stats, dict):  # the engine's counters of its last decoded token(s)
        out.update({k: v for k, v in stats.items() if isinstance(v, int | float | str)})
    if prefill_sizes:
        out["prefill"] = {}
        for n in prefill_sizes:
            if n + 1 > engine.n_ctx:
                continue
            p = bench_prompt(model, n)
            evals, firsts = [], []
            for r in range(repeats + 1):
                engine.reset()
                t0 = time.perf_counter()
                engine.eval(p)
                t1 = time.perf_counter()
                first, _ = _decode(engine, p, 0)
                if r > 0:
                    evals.append(t1 - t0)
                    firsts.append(first)
            out["prefill"][str(n)] = {"tok_per_s": round(n / _med(evals), 1), "ms": round(1000 * _med(evals), 2),
                                      "time_to_first_token_ms": round(1000 * _med(firsts), 2)}  # fmt: skip
    if contexts:
        out["decode"] = {}
        for c in contexts:
            if max(1, c) + decode_tokens + 1 > engine.n_ctx:
                continue
            p = bench_prompt(model, max(1, c))
            runs = [_decode(engine, p, decode_tokens)[1] for _ in range(repeats + 1)][1:]
            out["decode"][str(c)] = {"tok_per_s": round(decode_tokens / _med(runs), 2),
                                     "ms_per_token": round(1000 * _med(runs) / decode_tokens, 3)}  # fmt: skip
        longest = max((int(c) for c in out["decode"]), default=0)
        if "0" in out["decode"] and longest > 0:  # decode at the longest measured context / at 0
            out["decode_long_vs_short"] = round(out["decode"][str(longest)]["tok_per_s"] / out["decode"]["0"]["tok_per_s"], 3)
    if chat:
        out["chat"] = bench_chat(engine, model, decode_tokens, repeats)
        # what a user gets: the app's default sampling (temperature, top-k/p, min-p, penalty), seeded
        from companion.settings import Settings

        app = SamplingParams.from_settings(Settings(), seed=1)
        out["chat_app_sampling"] = bench_chat(engine, model, decode_tokens, repeats, app)
        out["chat_app_sampling"]["sampling"] = app.model_dump(include={"temperature", "top_k", "top_p", "min_p", "repeat_penalty"})
    notes = getattr(engine, "notes", None) or getattr(getattr(engine, "plan", None), "notes", None)
    if notes:  # how the plan laid the model out (kernel variants, layout, tables split in row chunks)
        out["plan_notes"] = list(notes)
    out["peak_rss_mb"] = peak_rss_mb()
    out["machine"] = {"python": platform.python_version(), "cpu_count": __import__("os").cpu_count(), "platform": platform.platform(),
                      "date": time.strftime("%Y-%m-%d")}  # fmt: skip
    return out


def peer_ratios(result: dict[str, Any], peer: dict[str, Any]) -> dict[str, Any]:
    """Our figures over a peer's (measured in the same run): top level, and per prefill size and
    decode context where both measured them; {} for a peer that failed."""
    if "error" in peer:
        return {}
    out: dict[str, Any] = {}
    if peer.get("prefill_tok_per_s"):
        out["ratio_prefill_vs_peer"] = round(result["prefill_tok_per_s"] / peer["prefill_tok_per_s"], 3)
    if peer.get("decode_tok_per_s"):
        out["ratio_decode_vs_peer"] = round(result["decode_tok_per_s"] / peer["decode_tok_per_s"], 3)
    for part in ("prefill", "decode"):  # per size / context, where both measured it
        mine, theirs = result.get(part) or {}, peer.get(part) or {}
        both = {k: round(mine[k]["tok_per_s"] / theirs[k], 3) for k in mine if theirs.get(k)}
        if both:
            out[f"ratio_{part}_vs_peer_by_size" if part == "prefill" else "ratio_decode_vs_peer_by_context"] = both
    return out


def with_peer(result: dict[str, Any], peer: dict[str, Any]) -> dict[str, Any]:
    """The engine's result with the peer's (measured in the same run) and our/peer ratios."""
    return {**result, "peer": peer, **peer_ratios(result, peer)}


def with_peers(result: dict[str, Any], peers: list[dict[str, Any]], absent: dict[str, str] | None = None) -> dict[str, Any]:
    """The result with every peer measured in the same run under "peers" (each with its own
    ratios), the peers that are not installed under "peers_absent" (with how to get them), and
    the first llama.cpp peer that ran also as "peer" with the top-level ratio keys."""
    out = {**result, "peers": [{**p, **peer_ratios(result, p)} for p in peers]}
    if absent:
        out["peers_absent"] = dict(absent)
    ran = [p for p in peers if "error" not in p]
    primary = next((p for p in ran if str(p.get("peer", "")).startswith("llama.cpp")), ran[0] if ran else None)
    if primary is not None:
        out = with_peer(out, primary)
    elif peers:
        out["peer"] = peers[0]
    return out


def plot(result: dict[str, Any], path: str) -> str | None:
    """A PNG of decode tok/s by context and prefill tok/s by prompt length, each peer's beside
    ours where measured (the ratio over the first peer on our bars); None (nothing written)
    without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    peers = [p for p in result.get("peers") or ([result["peer"]] if result.get("peer") else []) if "error" not in p]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, part, title, xlabel in ((axes[0], "decode", "decode", "context (tokens)"), (axes[1], "prefill", "prefill", "prompt (tokens)")):
        mine = result.get(part) or {}
        keys = list(mine)
        xs = np.arange(len(keys))
        shown = [p for p in peers if p.get(part)]
        width = 0.8 / (1 + len(shown))
        left = -0.4 + width / 2
        ours = [mine[k]["tok_per_s"] for k in keys]
        ax.bar(xs + left, ours, width, label=f"companion {result.get('engine', '')}")
        for i, peer in enumerate(shown, 1):
            theirs = peer[part]
            ax.bar(xs + left + i * width, [theirs.get(k, 0) for k in keys], width, label=peer.get("peer", "peer"))
        if shown:  # our figure over the first peer's, on our bar
            theirs = shown[0][part]
            for x, k, v in zip(xs, keys, ours, strict=True):
                if theirs.get(k):
                    ax.annotate(f"{v / theirs[k]:.2f}x", (x + left, v), ha="center", va="bottom", fontsize=7)
        ax.set_xticks(xs, keys)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("tokens / s")
        ax.set_title(title)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=1 if len(shown) > 1 else 2, frameon=False)
    fig.suptitle(f"{result.get('model', '')} on {result.get('adapter', '')} ({result.get('machine', {}).get('date', '')})", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
