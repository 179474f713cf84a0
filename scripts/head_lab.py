"""Time the split-K decode head alone under other shapes (research tool, not part of the app).

    python scripts/head_lab.py MODEL.gguf [--variants JSON] [--repeat 50] [--runs 9] [--floor]

Each variant builds the native engine with builder knobs changed, decodes a few greedy tokens
(checking its logits against the first variant's), then times the head's dispatch repeated
--repeat times in one compute pass minus an empty pass (as `python -m companion.gpu.profile
--repeat N`), and one dispatch by timestamp queries where the adapter has them. A variant is a
JSON object: {"name": ..., "units": HEAD_UNITS, "wg": HEAD_WG, "rp": HEAD_RP, "cand": bool,
"lanes": fixed invocations a row pair (0: builder.head_lanes)}. --floor adds a plain grid-stride
read of the head's size: the memory floor of the device.

Used for commit d77db9e (README, Performance: "The decode head streams")."""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

KIND = "output_norm+output"
DEFAULT = [{"name": "now"}, {"name": "before", "lanes": 64, "rp": 4}, {"name": "units16", "units": 16}, {"name": "wg128", "wg": 128}]


def variant(model, spec: dict, ref: list, repeat: int, runs: int) -> dict:
    from companion.bench import bench_prompt
    from companion.engines.native import NativeEngine
    from companion.gpu import builder
    from companion.gpu import profile as P
    from companion.sampling import Sampler, SamplingParams

    saved = (builder.HEAD_UNITS, builder.HEAD_WG, builder.HEAD_RP, builder.HEAD_CANDIDATES, builder.head_lanes)
    builder.HEAD_UNITS = int(spec.get("units", saved[0]))
    builder.HEAD_WG = int(spec.get("wg", saved[1]))
    builder.HEAD_RP = int(spec.get("rp", saved[2]))
    builder.HEAD_CANDIDATES = bool(spec.get("cand", saved[3]))
    if spec.get("lanes"):
        fixed = int(spec["lanes"])
        builder.head_lanes = lambda qtype, K: fixed  # type: ignore[assignment]
    try:
        dev = P.profiling_device()
        eng = NativeEngine(model, device=dev, progress=False)
    finally:
        builder.HEAD_UNITS, builder.HEAD_WG, builder.HEAD_RP, builder.HEAD_CANDIDATES, builder.head_lanes = saved
    try:
        ex = eng.executor
        ids = bench_prompt(model, 64)
        sampler = Sampler(SamplingParams.greedy_params())
        hist = list(ids)
        tok = eng.next_token(ids, sampler, hist)
        for _ in range(6):
            hist.append(tok)
            tok = eng.next_token([tok], sampler, hist)
        V = model.config.n_vocab
        logits = np.frombuffer(dev.queue.read_buffer(ex.buffers["logits"]), np.float32)[:V].copy()
        if not ref:
            ref.append(logits)
        items = [it for it in P._items(ex, ["decode"]) if it[0] == KIND]
        empty = statistics.median(P._one_pass(ex, []) for _ in range(runs))
        wall = statistics.median(P._one_pass(ex, items * repeat) for _ in range(runs))
        out = {"variant": spec.get("name", str(spec)), "alone_us": round(1e6 * (wall - empty) / repeat, 2),
               "max_logit_diff_vs_first": float(np.abs(logits - ref[0]).max())}  # fmt: skip
        if "timestamp-query" in {str(f) for f in dev.features}:
            out["gpu_us"] = round(statistics.median(P._timestamps(ex, items[:1])[0] for _ in range(runs)) / 1000, 2)
        head = [d for d in ex.plan.programs["decode"].dispatches if P.kind_of(d.label, d.pipeline) == KIND][0]
        consts = {p.name: p.constants for p in ex.plan.pipelines}[head.pipeline]
        out["workgroups"] = head.workgroups[0]
        out["constants"] = {k: consts[k] for k in ("WG", "PAIRS", "RP", "SG", "CAND") if k in consts}
        return out
    finally:
        eng.close()


def floor(nbytes: int, repeat: int, runs: int) -> dict:
    """A grid-stride read of nbytes at several grid sizes: (us, TB/s) each."""
    import wgpu

    from companion.gpu.profile import profiling_device

    dev = profiling_device()
    n = nbytes // 16
    buf = dev.create_buffer(size=n * 16, usage=wgpu.BufferUsage.STORAGE)
    sink = dev.create_buffer(size=256, usage=wgpu.BufferUsage.STORAGE | wgpu.BufferUsage.COPY_SRC)
    code = """
@group(0) @binding(0) var<storage, read> w: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read_write> o: array<u32>;
override N: u32;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    var acc = vec4<u32>(0u);
    for (var i = g.x; i < N; i += nw.x * 256u) { acc ^= w[i]; }
    if (all(acc == vec4<u32>(12345u))) { o[0] = g.x; }
}"""
    pl = dev.create_compute_pipeline(layout="auto", compute={"module": dev.create_shader_module(code=code), "entry_point": "main", "constants": {"N": n}})
    bg = dev.create_bind_group(layout=pl.get_bind_group_layout(0), entries=[{"binding": 0, "resource": {"buffer": buf}}, {"binding": 1, "resource": {"buffer": sink}}])
    res = {}
    for groups in (264, 528, 1056, 2112, 4224, n // 256 + 1):

        def one(k: int, groups: int = groups) -> float:
            t0 = time.perf_counter()
            enc = dev.create_command_encoder()
            cp = enc.begin_compute_pass()
            for _ in range(k):
                cp.set_pipeline(pl)
                cp.set_bind_group(0, bg)
                cp.dispatch_workgroups(groups, 1, 1)
            cp.end()
            dev.queue.submit([enc.finish()])
            dev.queue.read_buffer(sink, 0, 4)
            return time.perf_counter() - t0

        us = 1e6 * (statistics.median(one(repeat) for _ in range(runs)) - statistics.median(one(0) for _ in range(runs))) / repeat
        res[str(groups)] = {"us": round(us, 2), "TB/s": round(nbytes / us / 1e6, 2)}
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("--variants", default=json.dumps(DEFAULT))
    ap.add_argument("--repeat", type=int, default=50)
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--floor", action="store_true")
    a = ap.parse_args()
    from companion.model import load_model

    model = load_model(a.model)
    if a.floor:
        print(json.dumps({"floor": floor(35_000_000, a.repeat, a.runs)}), flush=True)
    ref: list = []
    for spec in json.loads(a.variants):
        print(json.dumps(variant(model, spec, ref, a.repeat, a.runs)), flush=True)


if __name__ == "__main__":
    main()
