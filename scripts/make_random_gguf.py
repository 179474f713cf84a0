#!/usr/bin/env python3
"""Write a random GGUF with a real model's shapes and quant mix (companion.model.synthetic):
it loads, splits its big tables and decodes like the real model, and answers nonsense.

    python scripts/make_random_gguf.py --shape llama-3.2-1b /tmp/llama-3.2-1b-random.gguf
    python scripts/make_random_gguf.py --arch llama --shape llama-3.2-1b --untied OUT.gguf
    python scripts/make_random_gguf.py --list

Then e.g. `companion --model OUT.gguf bench --engine native --json`.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    from companion.model.synthetic import (
        SHAPES,
        q4_k_m_types,
        scaled,
        tensor_shapes,
        write_random_gguf,
    )

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", nargs="?", help="the GGUF file to write (keep big ones out of the repository)")
    ap.add_argument("--shape", default="llama-3.2-1b", choices=sorted(SHAPES), help="real model whose shapes to copy")
    ap.add_argument("--arch", help="check that the shape has this architecture (llama, qwen2)")
    ap.add_argument("--quant", default="q4_k_m", choices=["q4_k_m", "f32"], help="tensor types (llama.cpp's mix)")
    ap.add_argument("--untied", action="store_true", help="a separate output.weight (Q6_K) instead of the tied embedding")
    ap.add_argument("--layers", type=int, help="fewer blocks (same widths)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--list", action="store_true", help="list the shapes and exit")
    a = ap.parse_args()
    if a.list:
        for k, s in SHAPES.items():
            print(f"{k:14} {s.arch:6} vocab {s.n_vocab} d {s.n_embd} layers {s.n_layer} heads {s.n_head}/{s.n_head_kv}x{s.head_dim} ffn {s.n_ff}"
                  f"{' tied' if s.tied else ''}{' rope_freqs' if s.rope_scaling else ''}")  # fmt: skip
        return 0
    if not a.out:
        ap.error("give the output path")
    shape = SHAPES[a.shape]
    if a.arch and a.arch != shape.arch:
        ap.error(f"--shape {a.shape} is a {shape.arch} model, not {a.arch}")
    if a.untied:
        shape = scaled(shape, tied=False)
    if a.layers:
        shape = scaled(shape, n_layer=a.layers)
    types = q4_k_m_types(shape) if a.quant == "q4_k_m" else {}
    n_params = sum(math.prod(s) for s in tensor_shapes(shape).values())
    mix: dict[str, int] = {}
    for t in types.values():
        mix[t.name] = mix.get(t.name, 0) + 1
    print(f"{a.shape}: {n_params / 1e9:.2f}B parameters, {a.quant} ({mix or 'all F32'})", file=sys.stderr)
    t0 = time.perf_counter()
    path = write_random_gguf(a.out, shape, a.quant, a.seed, progress=lambda m: print(f"  {m}", file=sys.stderr))
    print(f"wrote {path} ({path.stat().st_size:,} bytes) in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
