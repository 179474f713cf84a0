#!/usr/bin/env python3
"""Before/after figures of the native engine's speed work on one machine, in one process:
each variant switches one change off (run-ahead decode, flash-decoding attention, tiled prefill)
or a knob (steps per submit, kernel features), and `companion.bench.bench_engine` measures it.
Not shipped; prints one JSON object per variant, as it goes, then a table.

    python scripts/bench_variants.py MODEL.gguf [--variants A,B,C] [--decode 128] [--repeats 2]

A speed-alike random model (companion.testing.write_tiny_gguf with SmolLM2-135M's shapes and a
long context) measures the same as the real one: `--make-random PATH` writes one first.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

# name: (what it shows, engine kwargs, flash on, tiled on, prefill sizes measured)
VARIANTS: dict[str, tuple[str, dict, bool, bool, bool]] = {
    "A": ("before: one submit per token, attention_split, split-K prefill of 64", {"ahead": 1, "max_batch": 64}, False, False, True),
    "B": ("+ run-ahead (4 steps per submit)", {"ahead": 4, "max_batch": 64}, False, False, False),
    "C": ("+ flash-decoding attention", {"ahead": 4, "max_batch": 64}, True, False, False),
    "D": ("+ tiled prefill, 512 per submit (all changes)", {"ahead": 4}, True, True, True),
    "D256": ("D with 256 prompt tokens per submit", {"ahead": 4, "max_batch": 256}, True, True, True),
    "E": ("D with 8 steps per submit", {"ahead": 8}, True, True, False),
    "F": ("D with subgroups", {"ahead": 4, "features": "subgroups"}, True, True, False),
    "G": ("D with f16 + subgroups", {"ahead": 4, "features": "f16,subgroups"}, True, True, True),
}


def make_random(path: str) -> None:
    from gguf import GGMLQuantizationType as QT

    from companion.testing import write_tiny_gguf

    write_tiny_gguf(path, n_layer=30, n_embd=576, n_head=9, n_head_kv=3, n_ff=1536, qtype=QT.Q4_1, embd_qtype=QT.Q8_0,
                    n_vocab=49152, rope_base=100000.0, context_length=8192, name="SmolLM2-135M-shaped (random)")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--decode", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--contexts", default="0,512,2048")
    ap.add_argument("--make-random", action="store_true", help="write a random SmolLM2-shaped model at MODEL first")
    a = ap.parse_args(argv)
    if a.make_random:
        make_random(a.model)
    from companion.bench import bench_engine
    from companion.engines.native import NativeEngine
    from companion.gpu import _flash, _tiled
    from companion.model import load_model

    model = load_model(a.model)
    contexts = [int(c) for c in a.contexts.split(",") if c]
    rows = []
    for name in a.variants.split(","):
        what, kwargs, flash, tiled, prefill = VARIANTS[name]
        _flash.ENABLED, _tiled.ENABLED = flash, tiled
        t0 = time.perf_counter()
        eng = NativeEngine(model, n_ctx=max([*contexts, 512]) + a.decode + 8, progress=False, layout="splitk", **kwargs)
        load_s = time.perf_counter() - t0
        try:
            r = bench_engine(eng, model, 128, a.decode, a.repeats, contexts, (128, 512) if prefill else (), chat=False)
        finally:
            eng.close()
        r.update(variant=name, what=what, load_s=round(load_s, 1), max_batch=eng._max_batch, ahead=eng.ahead)
        print(json.dumps(r), flush=True)
        rows.append(r)
    print(f"{'':4} {'decode tok/s at ctx ' + '/'.join(map(str, contexts)):36} {'pp128':>8} {'pp512':>8} {'ttft512 ms':>10} {'enc ms/tok':>10}  what", file=sys.stderr)
    for r in rows:
        dec = "/".join(f"{r['decode'][str(c)]['tok_per_s']:.0f}" if str(c) in r.get("decode", {}) else "-" for c in contexts)
        pf = r.get("prefill", {})
        print(f"{r['variant']:4} {dec:36} {pf.get('128', {}).get('tok_per_s', '-'):>8} {pf.get('512', {}).get('tok_per_s', '-'):>8} "
              f"{pf.get('512', {}).get('time_to_first_token_ms', '-'):>10} {r.get('encode_ms_per_token', '-'):>10}  {r['what']}", file=sys.stderr)  # fmt: skip


if __name__ == "__main__":
    main()
