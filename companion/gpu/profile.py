"""Where a decoded token's time goes on the native executor.

    python -m companion.gpu.profile --model M [--tokens 32] [--prompt 128] [--layout auto]
                                     [--features auto] [--prefill N] [--repeat N] [--json]

Four measurements, all at the same KV length (prompt + tokens / 2 positions):
- `token_ms`: wall time of one decode + sample (one submit, 4-byte readback), as `bench`;
- `encode_ms`: encoding that command buffer alone (no submit): `record_ms` for the ~3 calls
  per dispatch from Python, `finish_ms` for the pass's end() and the encoder's finish();
- per dispatch kind (the label without its `blk.N `): `gpu_us` from timestamp queries, one
  compute pass per dispatch (where the adapter has `timestamp-query`; values are the adapter's
  timestamp units, ns on Vulkan), summed over the token's dispatches of that kind;
- `alone_us`: wall time of a pass holding only that kind's dispatches (+ submit + readback)
  minus the same for an empty pass: what removing the kind would save, barriers included.
  With --repeat N the pass holds them N times over and the figure is divided by N, so the
  submit and readback stop dominating a kind of one or two dispatches (the head, the sampler).
With --prefill N, the same GPU figures per kind for a prefill chunk of N tokens (`prefill`).
Each figure is a median over --tokens runs. The profiled runs overwrite the activations (the
logits are meaningless afterwards): this is a tool, not an engine mode.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from collections import OrderedDict
from typing import Any

import numpy as np

_BLK = re.compile(r"^blk\.\d+ ")


def kind_of(label: str, pipeline: str) -> str:
    """The dispatch kind: its label without the layer prefix (else the pipeline's shader)."""
    return _BLK.sub("", label) if label else pipeline.split("|")[0]


def _items(ex, programs: list[str], n_tokens: int = 1) -> list[tuple[str, Any, Any, tuple[int, int, int]]]:
    """(kind, pipeline, bind group, counts) of every dispatch the programs record for n_tokens."""
    out = []
    for name in programs:
        prog = ex.plan.programs[name]
        for d, bg in zip(prog.dispatches, ex.bind_groups[name], strict=True):
            counts = d.counts({"n_tokens": n_tokens})
            if counts[0] * counts[1] * counts[2]:
                out.append((kind_of(d.label, d.pipeline), ex.pipelines[d.pipeline][0], bg, counts))
    return out


def _submit_read(ex, enc) -> None:
    wgpu = ex._w
    enc.copy_buffer_to_buffer(ex.buffers[ex.plan.io["token_out"]], 0, ex.readback, 0, 4)
    ex.device.queue.submit([enc.finish()])
    ex.readback.map_sync(wgpu.MapMode.READ, 0, 4)
    ex.readback.unmap()


def _record(cp, items) -> None:
    """Record dispatches as Executor.run does (wgpu-native's C calls where available)."""
    from companion.gpu.executor import _raw_pass_calls

    raw = _raw_pass_calls()
    if raw is None:
        for _, pipe, bg, (x, y, z) in items:
            cp.set_pipeline(pipe)
            cp.set_bind_group(0, bg)
            cp.dispatch_workgroups(x, y, z)
        return
    set_pipeline, set_bind_group, dispatch, null = raw
    c = cp._internal
    for _, pipe, bg, (x, y, z) in items:
        set_pipeline(c, pipe._internal)
        set_bind_group(c, 0, bg._internal, 0, null)
        dispatch(c, x, y, z)


def _one_pass(ex, items) -> float:
    t0 = time.perf_counter()
    enc = ex.device.create_command_encoder()
    cp = enc.begin_compute_pass()
    _record(cp, items)
    cp.end()
    _submit_read(ex, enc)
    return time.perf_counter() - t0


def _encode_only(ex, items) -> tuple[float, float]:
    """(seconds recording the dispatches, seconds in end() + finish())."""
    t0 = time.perf_counter()
    enc = ex.device.create_command_encoder()
    cp = enc.begin_compute_pass()
    _record(cp, items)
    t1 = time.perf_counter()
    cp.end()
    enc.finish()
    return t1 - t0, time.perf_counter() - t1


def _timestamps(ex, items) -> list[float]:
    """GPU time of each dispatch (one pass each, timestamp_writes), in timestamp units."""
    wgpu = ex._w
    dev = ex.device
    n = len(items)
    qs = dev.create_query_set(type=wgpu.QueryType.timestamp, count=2 * n)
    res = dev.create_buffer(size=16 * n, usage=wgpu.BufferUsage.QUERY_RESOLVE | wgpu.BufferUsage.COPY_SRC)
    enc = dev.create_command_encoder()
    for i, (_, pipe, bg, (x, y, z)) in enumerate(items):
        cp = enc.begin_compute_pass(
            timestamp_writes={"query_set": qs, "beginning_of_pass_write_index": 2 * i, "end_of_pass_write_index": 2 * i + 1}
        )
        cp.set_pipeline(pipe)
        cp.set_bind_group(0, bg)
        cp.dispatch_workgroups(x, y, z)
        cp.end()
    enc.resolve_query_set(qs, 0, 2 * n, res, 0)
    dev.queue.submit([enc.finish()])
    raw = np.frombuffer(dev.queue.read_buffer(res), np.uint64).reshape(n, 2)
    qs.destroy()
    res.destroy()
    return [float(b) - float(a) for a, b in raw]


def _kinds_gpu(ex, items, runs: int) -> dict[str, float]:
    """GPU us per kind (timestamps, one pass per dispatch), medians over runs."""
    kinds = list(OrderedDict.fromkeys(k for k, *_ in items))
    per_runs = [_timestamps(ex, items) for _ in range(runs)]
    per = [statistics.median(r[i] for r in per_runs) for i in range(len(items))]
    gpu = {k: 0.0 for k in kinds}
    for (k, *_), v in zip(items, per, strict=True):
        gpu[k] += v / 1000.0
    return gpu


def profile_prefill(ex, n_tokens: int, runs: int = 5) -> dict[str, Any]:
    """Where a prefill chunk of n_tokens goes: wall of the whole pass, GPU us per kind."""
    ex.set_uniforms(n_past=0, n_tokens=n_tokens)
    ex.write(ex.plan.uniform.buffer, bytes(ex._uniform))
    items = _items(ex, ["prefill"], n_tokens)
    wall = statistics.median(_one_pass(ex, items) for _ in range(runs))
    out: dict[str, Any] = {"n_tokens": n_tokens, "one_pass_ms": round(1e3 * wall, 3)}
    if "timestamp-query" in {str(f) for f in ex.device.features}:
        gpu = _kinds_gpu(ex, items, runs)
        out["gpu_total_us"] = round(sum(gpu.values()), 1)
        out["kinds"] = [{"kind": k, "dispatches": sum(1 for it in items if it[0] == k), "gpu_us": round(v, 1)} for k, v in gpu.items()]
    return out


def profiling_device():
    """A device of the best adapter with every optional feature a plan may use that it offers,
    and timestamp queries where it has them (the profiler's and scripts/head_lab.py's)."""
    from companion.gpu.adapters import adapter_features, request_adapter, request_device

    ad = request_adapter(None)
    have = adapter_features(ad)
    return request_device(ad, [f for f in ("shader-f16", "subgroups", "timestamp-query") if f in have])


def profile(model, tokens: int = 32, prompt: int = 128, layout: str | None = None, features: str | None = None,
            prefill: int = 0, repeat: int = 1) -> dict[str, Any]:  # fmt: skip
    from companion.bench import bench_prompt
    from companion.engines.native import NativeEngine
    from companion.sampling import Sampler, SamplingParams

    device = profiling_device()
    eng = NativeEngine(model, device=device, features=features, layout=layout, progress=False)
    ex = eng.executor
    ids = bench_prompt(model, prompt)
    sampler = Sampler(SamplingParams.greedy_params())
    hist = list(ids)
    tok = eng.next_token(ids, sampler, hist)
    token_s = []
    for _ in range(tokens):
        t0 = time.perf_counter()
        tok = eng.next_token([tok], sampler, hist)
        token_s.append(time.perf_counter() - t0)
        hist.append(tok)

    # the remaining runs all see the same KV length
    n_past = prompt + tokens // 2
    ex.set_uniforms(n_past=n_past, n_tokens=1)
    ex.write(ex.plan.uniform.buffer, bytes(ex._uniform))
    items = _items(ex, ["decode", "sample_decode"])
    kinds = list(OrderedDict.fromkeys(k for k, *_ in items))
    enc_s = [_encode_only(ex, items) for _ in range(tokens)]
    full_s = [_one_pass(ex, items) for _ in range(tokens)]
    empty_s = [_one_pass(ex, []) for _ in range(tokens)]
    alone: dict[str, float] = {}
    empty = statistics.median(empty_s)
    for k in kinds:
        sub = [it for it in items if it[0] == k]
        alone[k] = (statistics.median(_one_pass(ex, sub * repeat) for _ in range(tokens)) - empty) / repeat
    gpu: dict[str, float] | None = None
    ts_note = "adapter lacks timestamp-query"
    if "timestamp-query" in {str(f) for f in device.features}:
        try:
            runs = [_timestamps(ex, items) for _ in range(max(3, tokens // 4))]
            per = [statistics.median(r[i] for r in runs) for i in range(len(items))]
            gpu = {k: 0.0 for k in kinds}
            for (k, *_), v in zip(items, per, strict=True):
                gpu[k] += v / 1000.0
            ts_note = "one pass per dispatch, timestamp units / 1000 (us on Vulkan)"
        except Exception as exc:  # a driver without pass timestamps: keep the wall figures
            ts_note = f"timestamps failed: {exc}"
    counts = {k: sum(1 for it in items if it[0] == k) for k in kinds}
    rows = [
        {"kind": k, "dispatches": counts[k], "alone_us": round(1e6 * alone[k], 1),
         **({"gpu_us": round(gpu[k], 1)} if gpu is not None else {})}
        for k in kinds
    ]  # fmt: skip
    out: dict[str, Any] = {
        "adapter": eng.adapter,
        "layout": ex.plan.model.get("layout"),
        "features": ex.plan.features,
        "dispatches_per_token": len(items),
        "kv_length": n_past,
        "alone_repeat": repeat,
        "token_ms": round(1e3 * statistics.median(token_s), 3),
        "one_pass_ms": round(1e3 * statistics.median(full_s), 3),
        "empty_pass_ms": round(1e3 * empty, 3),
        "encode_ms": round(1e3 * statistics.median(a + b for a, b in enc_s), 3),
        "record_ms": round(1e3 * statistics.median(a for a, _ in enc_s), 3),
        "finish_ms": round(1e3 * statistics.median(b for _, b in enc_s), 3),
        "gpu_total_us": round(sum(gpu.values()), 1) if gpu is not None else None,
        "timestamps": ts_note,
        "kinds": rows,
    }
    if prefill:
        out["prefill"] = profile_prefill(ex, min(prefill, eng._max_batch))
    eng.close()
    return out


def _table(r: dict[str, Any]) -> str:
    lines = [
        f"adapter {r['adapter']}  layout {r['layout']}  features {r['features'] or 'none'}",
        f"decode+sample {r['token_ms']} ms/token ({r['dispatches_per_token']} dispatches, KV {r['kv_length']}); "
        f"one pass {r['one_pass_ms']} ms, empty pass {r['empty_pass_ms']} ms, encoding {r['encode_ms']} ms "
        f"(recording {r['record_ms']} + end/finish {r['finish_ms']})",
        f"GPU total {r['gpu_total_us']} us ({r['timestamps']})",
        f"{'kind':32} {'n':>4} {'alone us':>10} {'gpu us':>10}",
    ]
    for row in sorted(r["kinds"], key=lambda x: -x.get("gpu_us", x["alone_us"])):
        lines.append(f"{row['kind']:32} {row['dispatches']:>4} {row['alone_us']:>10} {row.get('gpu_us', '-'):>10}")
    pf = r.get("prefill")
    if pf:
        lines.append(f"prefill of {pf['n_tokens']} tokens: one pass {pf['one_pass_ms']} ms, GPU total {pf.get('gpu_total_us')} us")
        for row in sorted(pf.get("kinds", []), key=lambda x: -x["gpu_us"]):
            lines.append(f"  {row['kind']:30} {row['dispatches']:>4} {'':>10} {row['gpu_us']:>10}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m companion.gpu.profile", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--layout", default=None, help="auto | rows | splitk (default COMPANION_GPU_LAYOUT)")
    ap.add_argument("--features", default=None, help="auto | none | f16,subgroups (default COMPANION_GPU_FEATURES)")
    ap.add_argument("--prefill", type=int, default=0, help="also profile a prefill chunk of this many tokens")
    ap.add_argument("--repeat", type=int, default=1, help="time each kind's dispatches this many times over in one pass (alone_us per time)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    from companion.model import load_model

    if a.repeat < 1:
        ap.error("--repeat must be at least 1")
    r = profile(load_model(a.model), a.tokens, a.prompt, a.layout, a.features, a.prefill, a.repeat)
    print(json.dumps(r) if a.json else _table(r), flush=True)


if __name__ == "__main__":
    main()
