"""What a dependency costs on a GPU through wgpu-py: dependent dispatches against grid barriers.

    python scripts/dispatch_floor.py [--phases 150] [--groups 33,66,132,264]

Prints one JSON object (microseconds per dependency, medians of 30 submits):
- `dispatches`: PHASES dependent dispatches of a tiny kernel in one compute pass, with one
  pipeline, and with five pipelines and a bind group per dispatch (as a layer's kernels are);
- `grid`: one dispatch of G workgroups crossing PHASES grid barriers (a device-scope
  storageBarrier, then one atomic counter that every workgroup bumps and polls), each phase's
  writes checked by another workgroup after the barrier. `errors` counts reads that saw an old
  value: with `--reuse` the phases write two slots in turn, so a workgroup re-reads addresses it
  read two phases before (on the H200 those reads are stale: its L1 keeps the old line);
  `timeouts` counts barriers given up after a bounded spin (workgroups not all resident).

The grid barrier needs every workgroup resident at once; WebGPU promises nothing of the kind,
so G must stay within what the GPU holds (the spin is bounded, so too many only time out).
README's Performance section has the H200 figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np

KERNELS = """
@group(0) @binding(0) var<storage, read_write> ctr: array<atomic<u32>>;
@group(0) @binding(1) var<storage, read_write> data: array<u32>;
override G: u32 = 128u;
override PHASES: u32 = 150u;
override SLOTS: u32 = 150u;  // phase p writes slot p % SLOTS
override BOUND: u32 = 4000000u;  // polls before a barrier gives up

@compute @workgroup_size(256)
fn grid(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
    for (var p = 0u; p < PHASES; p++) {
        let slot = (p % SLOTS) * G * 256u;
        data[slot + wg.x * 256u + li] = p * 100000u + wg.x * 256u + li;
        storageBarrier();
        if (li == 0u) {
            atomicAdd(&ctr[0], 1u);
            let goal = (p + 1u) * G;
            var n = 0u;
            loop {
                if (atomicLoad(&ctr[0]) >= goal) { break; }
                n++;
                if (n > BOUND) { atomicAdd(&ctr[1], 1u); break; }
            }
        }
        storageBarrier();
        let o = (wg.x + 1u) % G;
        if (data[slot + o * 256u + li] != p * 100000u + o * 256u + li) { atomicAdd(&ctr[2], 1u); }
    }
}

@compute @workgroup_size(256)
fn tiny(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
    let p = atomicLoad(&ctr[3]);
    data[wg.x * 256u + li] = p + li + KIND;
    if (wg.x == 0u && li == 0u) { atomicAdd(&ctr[3], 1u); }
}
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--phases", type=int, default=150)
    ap.add_argument("--groups", default="33,66,132,264", help="workgroup counts of the grid barrier")
    ap.add_argument("--reuse", action="store_true", help="phases write two slots in turn (stale-read check)")
    ap.add_argument("--reps", type=int, default=30)
    args = ap.parse_args(argv)
    import wgpu

    adapter = wgpu.gpu.request_adapter_sync(power_preference="high-performance")
    groups = [int(g) for g in args.groups.split(",")]
    slots = 2 if args.reuse else args.phases
    data_bytes = max(slots * max(groups), 1024) * 256 * 4
    dev = adapter.request_device_sync(required_limits={
        "max-storage-buffer-binding-size": adapter.limits["max-storage-buffer-binding-size"],
        "max-buffer-size": adapter.limits["max-buffer-size"]})  # fmt: skip
    usage = wgpu.BufferUsage
    ctr = dev.create_buffer(size=64, usage=usage.STORAGE | usage.COPY_SRC | usage.COPY_DST)
    data = dev.create_buffer(size=data_bytes, usage=usage.STORAGE)
    rb = dev.create_buffer(size=64, usage=usage.MAP_READ | usage.COPY_DST)
    bgl = dev.create_bind_group_layout(entries=[
        {"binding": i, "visibility": wgpu.ShaderStage.COMPUTE, "buffer": {"type": "storage"}} for i in range(2)])  # fmt: skip
    layout = dev.create_pipeline_layout(bind_group_layouts=[bgl])

    def bind(offset: int = 0):
        return dev.create_bind_group(layout=bgl, entries=[
            {"binding": 0, "resource": {"buffer": ctr}},
            {"binding": 1, "resource": {"buffer": data, "offset": offset, "size": data_bytes - offset}}])  # fmt: skip

    def pipeline(entry: str, kind: int = 0, **constants):
        module = dev.create_shader_module(code=KERNELS.replace("KIND", f"{kind}u"))
        return dev.create_compute_pipeline(layout=layout, compute={"module": module, "entry_point": entry, "constants": constants})

    def timed(record) -> tuple[float, np.ndarray]:
        times = []
        for _ in range(args.reps):
            dev.queue.write_buffer(ctr, 0, np.zeros(16, np.uint32))
            enc = dev.create_command_encoder()
            cp = enc.begin_compute_pass()
            record(cp)
            cp.end()
            enc.copy_buffer_to_buffer(ctr, 0, rb, 0, 64)
            cb = enc.finish()
            t = time.perf_counter()
            dev.queue.submit([cb])
            rb.map_sync(wgpu.MapMode.READ)
            times.append(time.perf_counter() - t)
            got = np.frombuffer(rb.read_mapped(), np.uint32).copy()
            rb.unmap()
        return statistics.median(times[3:]) * 1e6 / args.phases, got

    out: dict = {"adapter": adapter.info["device"], "phases": args.phases, "dispatches": {}, "grid": {}}
    one, bg = pipeline("tiny"), bind()
    five = [pipeline("tiny", k) for k in range(5)]
    bgs = [bind(256 * (i % 64)) for i in range(args.phases)]
    for g in (66, 132, 264):
        def same(cp, g=g):
            for _ in range(args.phases):
                cp.set_pipeline(one)
                cp.set_bind_group(0, bg)
                cp.dispatch_workgroups(g)

        def mixed(cp, g=g):
            for i in range(args.phases):
                cp.set_pipeline(five[i % 5])
                cp.set_bind_group(0, bgs[i])
                cp.dispatch_workgroups(g)

        out["dispatches"][f"g{g}"] = {"one_pipeline_us": round(timed(same)[0], 2), "five_pipelines_us": round(timed(mixed)[0], 2)}
    for g in groups:
        grid = pipeline("grid", G=g, PHASES=args.phases, SLOTS=slots)

        def barrier(cp, g=g, grid=grid):
            cp.set_pipeline(grid)
            cp.set_bind_group(0, bg)
            cp.dispatch_workgroups(g)

        us, got = timed(barrier)
        out["grid"][f"g{g}"] = {"barrier_us": round(us, 2), "timeouts": int(got[1]), "errors": int(got[2])}
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
