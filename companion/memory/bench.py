"""Memory benchmark: recall latency at 1k and 10k memories, and at 10k memories plus 50k
past messages (episodic memory), and embedding throughput.

Stored memories and messages are synthetic sentences with random unit vectors (embedding
60k real sentences would take an hour on a laptop and measures the encoder, which the
throughput figure already covers); each timed recall embeds its query with the real model
and runs the full hybrid search over facts and passages (FTS5 BM25 + vectors + fusion + row
fetch), exactly what `companion memory search` and the prompt use. `--eval` runs the quality
evaluation instead (memory.evaluation).
"""

from __future__ import annotations

import random
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

_WORDS = (
    "tea coffee jazz hiking Lyon Paris sister brother dog cat nurse engineer ramen pizza guitar cello "
    "marathon thesis garden bicycle novel chess piano beach mountain train holiday birthday friend "
    "school office project meeting movie painting cooking running swimming allergy peanuts winter "
    "summer spring autumn museum concert festival recipe camera photography podcast"
).split()
_TEMPLATES = [
    "The user likes {a} and {b}.", "The user's favorite {a} is {b}.", "The user plans to try {a} with their {b}.",
    "On a weekend the user went to a {a} {b} event.", "The user dislikes {a} but tolerates {b}.",
]
QUERIES = [
    "What music do I like?", "Where do I live these days?", "What is my sister's name?",
    "Do you remember my dog?", "What should I cook tonight?", "Any plans for the weekend?",
    "What do I do for work?", "Tell me about my hobbies.",
]


_SAID = [
    "I went to the {a} with my {b} yesterday.", "Do you think {a} is better than {b}?", "My {a} loves {b}.",
    "We talked about {a} and {b} for hours.", "I'm not sure about the {a}, maybe {b} instead.",
]


def _fill_messages(store: Any, character_id: int, n: int, seed: int = 1) -> None:
    """n messages (alternating user / assistant), one passage each, in conversations of 100."""
    rng = random.Random(seed)
    vecs = np.random.default_rng(seed).standard_normal((n, store.embedder().dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)  # (n, 384) unit vectors
    for start in range(0, n, 100):
        conv = store.new_conversation(character_id)
        store.add_embedded_messages(conv, [
            ("user" if i % 2 == 0 else "assistant",
             rng.choice(_SAID).format(a=rng.choice(_WORDS), b=rng.choice(_WORDS)), vecs[i].tobytes())
            for i in range(start, min(n, start + 100))
        ])


def _fill(store: Any, character_id: int, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    vecs = np.random.default_rng(seed).standard_normal((n, store.embedder().dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)  # (n, 384) unit vectors
    store.add_embedded_memories(character_id, [
        (rng.choice(_TEMPLATES).format(a=rng.choice(_WORDS), b=rng.choice(_WORDS)), vecs[i].tobytes())
        for i in range(n)
    ])


def _percentiles(samples_ms: list[float]) -> dict[str, float]:
    a = np.asarray(samples_ms)
    return {"p50_ms": round(float(np.percentile(a, 50)), 2), "p95_ms": round(float(np.percentile(a, 95)), 2)}


def _loadavg() -> float | None:
    """1-minute load average: timings on a busy machine are not comparable."""
    try:
        import os

        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


SIZES = ((1000, 0), (10000, 0), (10000, 50000))  # (memories, messages)


def run_memory_bench(sizes: tuple[tuple[int, int], ...] = SIZES, repeats: int = 100) -> dict[str, Any]:
    """{'recall': {"<memories>+<messages>": {p50_ms, p95_ms, index_build_ms}}, 'embedding': {...},
    'query_embedding_ms', 'sqlite', 'load_average'}."""
    from companion.memory.embed import get_embedder
    from companion.memory.recall import recall
    from companion.memory.store import Store

    emb = get_embedder()
    emb.encode(["warm up the BLAS threads"])
    result: dict[str, Any] = {"recall": {}, "sqlite": sqlite3.sqlite_version, "load_average": _loadavg()}

    sentences = [f"{random.Random(i).choice(_TEMPLATES).format(a=_WORDS[i % len(_WORDS)], b=_WORDS[(i * 7) % len(_WORDS)])}"
                 for i in range(256)]
    t0 = time.perf_counter()
    emb.encode(sentences)  # one BLAS thread, as Embedder always runs
    dt = time.perf_counter() - t0
    result["embedding"] = {"sentences": len(sentences), "sentences_per_s": round(len(sentences) / dt, 1),
                           "batch_size": 32}
    q_ms = []
    for q in QUERIES * 3:
        emb.cache_clear()  # the encoder itself, not its cache of recent texts
        t0 = time.perf_counter()
        emb.encode([q])
        q_ms.append((time.perf_counter() - t0) * 1000)
    result["query_embedding_ms"] = _percentiles(q_ms)

    with tempfile.TemporaryDirectory() as tmp:
        for n, m in sizes:
            with Store(Path(tmp) / f"bench{n}_{m}.db", embedder=emb) as store:
                cid = store.ensure_character()
                _fill(store, cid, n)
                _fill_messages(store, cid, m)
                t0 = time.perf_counter()
                recall(store, cid, "cold start")  # builds the vector indexes once
                build_ms = (time.perf_counter() - t0) * 1000
                samples, cpu = [], []
                for i in range(repeats):
                    q = QUERIES[i % len(QUERIES)]
                    emb.cache_clear()  # as `companion memory search` would, not a chat turn (its
                    #                    message was embedded when stored: memory.embed's cache)
                    t0, c0 = time.perf_counter(), time.thread_time()
                    hits = recall(store, cid, q, limit=8)
                    samples.append((time.perf_counter() - t0) * 1000)
                    cpu.append((time.thread_time() - c0) * 1000)
                    assert hits is not None
                # cpu: this thread's CPU time, what the wall time would be on an idle machine
                # (recall runs on one thread); the wall time includes waiting for other processes
                result["recall"][f"{n}+{m}"] = {"memories": n, "messages": m, **_percentiles(samples),
                                                 "cpu": _percentiles(cpu), "index_build_ms": round(build_ms, 1)}
    result["load_average_after"] = _loadavg()
    return result


if __name__ == "__main__":
    import json

    print(json.dumps(run_memory_bench(), indent=2))
