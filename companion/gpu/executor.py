"""The native executor: runs a plan on wgpu-py. It knows buffers, pipelines and dispatches, not
transformers (the plan builder does); companion.engines.native drives it as an Engine."""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from companion.errors import EngineUnavailable
from companion.gpu import shaders
from companion.gpu.adapters import import_wgpu, request_adapter, request_device, wgpu_feature_name
from companion.gpu.plan import Buffer, Plan

log = logging.getLogger(__name__)


_RAW: list = []


def _raw_pass_calls():
    """(set_pipeline, set_bind_group, dispatch_workgroups, NULL) of
    wgpu-native's C API, straight from the cffi library, or None where this wgpu-py lacks them
    (then the Python methods are used). Encoding a decode step is ~150 dispatches x 3 calls:
    the Python wrappers' argument handling (a cffi array per set_bind_group) and wgpu-py's
    per-call error capture (`libf`, a Python proxy around every C function) cost 1.5 ms of
    the 1.8 ms recording a token took on lavapipe's host (0.33 ms without). Nothing is lost:
    the executor keeps every pipeline, bind group and buffer alive (the wrappers' bookkeeping),
    and wgpu-native reports an error recorded in a pass when the pass ends or the encoder
    finishes, both still called through wgpu-py, which raises it."""
    if not _RAW:
        try:
            from wgpu.backends.wgpu_native._api import ffi, lib

            _RAW.append((lib.wgpuComputePassEncoderSetPipeline, lib.wgpuComputePassEncoderSetBindGroup,
                         lib.wgpuComputePassEncoderDispatchWorkgroups, ffi.NULL))
        except Exception:  # another wgpu-py layout: the public methods still work
            _RAW.append(None)
    return _RAW[0]


def _lost(exc: BaseException) -> EngineUnavailable:
    return EngineUnavailable(f"the GPU device was lost or failed ({str(exc).strip().splitlines()[-1]}); switch engine or restart")


@dataclass(frozen=True)
class Copy:
    """A buffer-to-buffer copy recorded between compute passes (sizes and offsets: multiples of 4)."""

    src: str
    src_offset: int
    dst: str
    dst_offset: int
    size: int


class Pending:
    """A submitted command buffer's readback: result() waits for the GPU and returns the bytes."""

    def __init__(self, ex: Executor, staging, size: int, cb=None):
        self._ex, self._staging, self.size, self._cb = ex, staging, size, cb
        self._out: bytes | None = None if staging is not None else b""

    def submit(self) -> None:
        """Submit the recorded command buffer (once)."""
        cb, self._cb = self._cb, None
        if cb is not None:
            try:
                self._ex.device.queue.submit([cb])
            except self._ex._w.GPUError as exc:
                self._ex.usable = False
                raise _lost(exc) from exc

    def discard(self) -> None:
        """Drop a command buffer never submitted (its readback buffer goes back to the pool)."""
        if self._cb is not None:
            self._cb = None
            if self._staging is not None:
                self._ex._stagings.append(self._staging)
            self._out = b""

    def result(self) -> bytes:
        self.submit()
        if self._out is None:
            ex, wgpu = self._ex, self._ex._w
            try:
                self._staging.map_sync(wgpu.MapMode.READ, 0, self.size)
                self._out = bytes(self._staging.read_mapped(0, self.size))
                self._staging.unmap()
            except (wgpu.GPUError, RuntimeError) as exc:
                ex.usable = False
                raise _lost(exc) from exc
            ex.counters["readback_bytes"] += self.size
            ex._stagings.append(self._staging)
        return self._out


class Executor:
    """Runs a plan's programs. One call of run() = one command buffer, one compute pass, one
    submit, and (optionally) one mapped readback."""

    def __init__(
        self,
        plan: Plan,
        resolve: Callable[[Buffer], np.ndarray | None],
        device=None,
        adapter: str | None = None,
        progress: bool = False,
    ):
        wgpu = self._w = import_wgpu()
        self.plan = plan
        if device is None:
            ad = request_adapter(adapter)
            device = request_device(ad, plan.features)
        self.device = device
        self.adapter_info = dict(device.adapter.info) if getattr(device, "adapter", None) else {}
        self.usable = True
        self.counters: dict[str, float] = {"submits": 0, "passes": 0, "dispatches": 0, "readback_bytes": 0, "encode_s": 0.0}
        have = {str(f) for f in device.features}
        lacking = [f for f in plan.features if wgpu_feature_name(f) not in have]
        if lacking:
            raise EngineUnavailable(f"this plan needs device features {lacking}: build it for this adapter")
        for name, need in plan.limits.items():
            have = device.limits.get(name)
            if have is not None and have < need:
                raise EngineUnavailable(f"this plan needs {name} >= {need}, the device offers {have}")
        try:
            self._create(resolve, progress)
        except EngineUnavailable:
            raise
        except shaders.ShaderError:
            raise
        except wgpu.GPUError as exc:
            raise EngineUnavailable(f"creating GPU resources failed: {exc}") from exc

    # -- setup
    def _create(self, resolve, progress: bool) -> None:
        wgpu, dev, plan = self._w, self.device, self.plan
        BU = wgpu.BufferUsage
        self.buffers: dict[str, Any] = {}
        total = sum(b.size for b in plan.buffers if b.source is not None)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=total, unit="B", unit_scale=True, desc="uploading weights", leave=False)
        for b in plan.buffers:
            usage = BU.COPY_DST | BU.COPY_SRC
            usage |= BU.UNIFORM if b.usage == "uniform" else BU.STORAGE
            buf = dev.create_buffer(label=b.name, size=b.size, usage=usage)
            data = resolve(b)
            if data is not None:
                data = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
                step = 16 << 20
                for o in range(0, data.nbytes, step):  # chunks keep peak memory low
                    part = data[o : o + step]
                    if part.nbytes % 4:
                        part = np.concatenate([part, np.zeros(4 - part.nbytes % 4, np.uint8)])
                    dev.queue.write_buffer(buf, o, part)
                    if bar is not None:
                        bar.update(part.nbytes)
            self.buffers[b.name] = buf
        if bar is not None:
            bar.close()
        self.readback = dev.create_buffer(label="readback", size=256, usage=BU.MAP_READ | BU.COPY_DST)

        kinds = {
            "uniform": wgpu.BufferBindingType.uniform,
            "read-only-storage": wgpu.BufferBindingType.read_only_storage,
            "storage": wgpu.BufferBindingType.storage,
        }
        self.pipelines: dict[str, tuple[Any, Any]] = {}
        modules: dict[str, tuple[Any, shaders.ShaderSource]] = {}  # one per variant, as the page's
        for p in plan.pipelines:
            mkey, src = shaders.pipeline_module(p)
            if mkey not in modules:
                modules[mkey] = (shaders.compile_module(dev, src), src)
            module, src = modules[mkey]
            bgl = dev.create_bind_group_layout(
                label=p.name,
                entries=[
                    {"binding": e.binding, "visibility": wgpu.ShaderStage.COMPUTE, "buffer": {"type": kinds[e.type]}}
                    for e in p.bindings
                ],
            )
            layout = dev.create_pipeline_layout(label=p.name, bind_group_layouts=[bgl])
            try:
                pipe = dev.create_compute_pipeline(
                    label=p.name,
                    layout=layout,
                    compute={"module": module, "entry_point": p.entry_point, "constants": dict(p.constants)},
                )
            except wgpu.GPUError as exc:
                raise shaders.ShaderError(shaders.describe_error(src, exc)) from exc
            self.pipelines[p.name] = (pipe, bgl)

        # bind groups are static: create every dispatch's once
        self.bind_groups: dict[str, list[Any]] = {name: [self._bind_group(d) for d in prog.dispatches] for name, prog in plan.programs.items()}
        self._fast: dict[tuple, list[tuple[Any, Any, tuple[int, int, int]]]] = {}
        self._fast_raw: dict[tuple, list[tuple[Any, Any, int, int, int]]] = {}  # C handles
        self._uniform = bytearray(plan.uniform.size)
        self._fields = {f.name: f for f in plan.uniform.fields}
        self._stagings: list[Any] = []  # free mappable buffers for submit_pass' readbacks
        self._alias: dict[str, str] = {}  # alias() name -> its program

    # -- per step
    def _check(self) -> None:
        if not self.usable:
            raise EngineUnavailable("the GPU device was lost earlier; switch engine or restart")

    def set_uniforms(self, **values: float | int) -> None:
        """Pack named fields into the uniform block (written with the next run)."""
        self._pack(self._uniform, values)

    def _pack(self, block: bytearray, values: dict[str, float | int]) -> None:
        for k, v in values.items():
            f = self._fields[k]
            struct.pack_into("<I" if f.type == "u32" else "<f", block, f.offset, int(v) if f.type == "u32" else float(v))

    def uniform_bytes(self, **values: float | int) -> bytes:
        """The uniform block as set_uniforms left it, with `values` changed in this copy only
        (one decode step's block, bound through alias())."""
        block = bytearray(self._uniform)
        self._pack(block, values)
        return bytes(block)

    def scratch(self, name: str, size: int, uniform: bool = False) -> str:
        """A buffer of the executor's own (not in the plan) that copies may read and write,
        created on first use with at least `size` bytes; returns its name for write() and
        Copy. uniform: it can also stand in for the step uniform in alias()."""
        buf = self.buffers.get(name)
        if buf is None or buf.size < size:
            BU = self._w.BufferUsage
            usage = BU.COPY_DST | BU.COPY_SRC | (BU.UNIFORM if uniform else 0)
            self.buffers[name] = self.device.create_buffer(label=name, size=max(256, -(-size // 256) * 256), usage=usage)
            stale = [a for a in self._alias if f"={name}+" in a]  # aliases bound to the old buffer
            for a in stale:
                del self._alias[a], self.bind_groups[a]
            for cache in (self._fast, self._fast_raw):
                for key in [k for k in cache if k[0] in stale]:
                    del cache[key]
        return name

    def alias(self, program: str, swap: dict[str, tuple[str, int]]) -> str:
        """A name for `program` whose dispatches bind other buffers: swap maps a plan buffer to
        (buffer, byte offset), bound from that offset to its end (a step uniform block of a
        scratch buffer, say). Its bind groups are made on first use and kept; use the name
        like a program's in run() and submit_pass()."""
        name = program + "@" + ",".join(f"{k}={b}+{o}" for k, (b, o) in sorted(swap.items()))
        if name not in self._alias:
            self.bind_groups[name] = [self._bind_group(d, swap) for d in self.plan.programs[program].dispatches]
            self._alias[name] = program
        return name

    def _bind_group(self, d, swap: dict[str, tuple[str, int]] | None = None):
        """Dispatch d's bind group: its plan bindings, or where swap names a binding's buffer,
        that (buffer, offset) from the offset on (a uniform no longer than the plan's)."""
        _, bgl = self.pipelines[d.pipeline]
        entries = []
        for bb in d.bindings:
            if swap and bb.buffer in swap:
                buf_name, offset = swap[bb.buffer]
                buf = self.buffers[buf_name]
                size = buf.size - offset
                if bb.buffer == self.plan.uniform.buffer:
                    size = min(size, self.buffers[bb.buffer].size)
            else:
                buf, offset = self.buffers[bb.buffer], bb.offset
                size = bb.size if bb.size is not None else buf.size - bb.offset
            entries.append({"binding": bb.binding, "resource": {"buffer": buf, "offset": offset, "size": size}})
        return self.device.create_bind_group(label=d.label or d.pipeline, layout=bgl, entries=entries)

    def write(self, buffer: str, data: np.ndarray | bytes, offset: int = 0) -> None:
        """Queue a write of host data into a buffer (no submit)."""
        self._check()
        arr = np.frombuffer(bytes(data), np.uint8) if isinstance(data, bytes | bytearray) else np.ascontiguousarray(data).view(np.uint8).reshape(-1)
        try:
            self.device.queue.write_buffer(self.buffers[buffer], offset, arr)
        except self._w.GPUError as exc:
            self.usable = False
            raise _lost(exc) from exc

    def run(self, programs: Sequence[tuple[str, dict[str, int]]], read: tuple[str, int, int] | None = None) -> bytes | None:
        """Record the programs into one compute pass, submit once, and return the bytes of
        `read` (buffer, offset, size) or of the last program's readback, if any."""
        self._check()
        wgpu, dev = self._w, self.device
        try:
            dev.queue.write_buffer(self.buffers[self.plan.uniform.buffer], 0, bytes(self._uniform))
            t0 = time.perf_counter()
            enc = dev.create_command_encoder()
            cp = enc.begin_compute_pass()
            n = 0
            for name, vars in programs:
                n += self._record(cp, name, vars)
            cp.end()
            if read is None and programs:
                rb = self.plan.programs[self._alias.get(programs[-1][0], programs[-1][0])].readback
                if rb is not None:
                    read = (rb.buffer, rb.offset, rb.size)
            staging = None
            if read is not None:
                buf, off, size = read
                staging = self.readback if size <= self.readback.size else dev.create_buffer(size=size, usage=wgpu.BufferUsage.MAP_READ | wgpu.BufferUsage.COPY_DST)
                enc.copy_buffer_to_buffer(self.buffers[buf], off, staging, 0, size)
            cb = enc.finish()
            self.counters["encode_s"] += time.perf_counter() - t0
            dev.queue.submit([cb])
            self.counters["submits"] += 1
            self.counters["passes"] += 1
            self.counters["dispatches"] += n
            if staging is None:
                return None
            # mapping waits for the GPU (on_submitted_work_done_sync is broken in wgpu 0.32)
            staging.map_sync(wgpu.MapMode.READ, 0, size)
            out = bytes(staging.read_mapped(0, size))
            staging.unmap()
            self.counters["readback_bytes"] += size
            return out
        except wgpu.GPUError as exc:
            self.usable = False
            raise _lost(exc) from exc
        except RuntimeError as exc:  # map failures after a loss surface as RuntimeError
            self.usable = False
            raise _lost(exc) from exc

    def submit_pass(self, programs: Sequence[tuple[str, dict[str, int]]], read: Sequence[Copy], submit: bool = True) -> Pending:
        """Record programs (plan or alias() names) into one compute pass and submit it without
        waiting. `read` lists copies (destination offsets ignored) packed in order into one
        mappable buffer, returned by Pending.result(), the only wait. Programs depend on each
        other only through buffers, so several decode steps fit in one pass (a sampled id
        feeding the next step's embedding in place): the host learns the ids of k tokens with
        one submit and one map, and encodes the next command buffer while the GPU runs this
        one. submit=False: only record it; Pending.submit() submits it (record the next command
        buffer while the GPU runs the last one, wait for that one, then submit: wgpu-py's map
        waits for every submitted command buffer, so one submitted early would be waited for
        too)."""
        self._check()
        wgpu, dev = self._w, self.device
        t0 = time.perf_counter()
        try:
            enc = dev.create_command_encoder()
            n = 0
            cp = enc.begin_compute_pass()
            for name, vars in programs:
                n += self._record(cp, name, vars)
            cp.end()
            size = sum(c.size for c in read)
            staging = None
            if size:
                staging = self._take_staging(size)
                o = 0
                for c in read:
                    enc.copy_buffer_to_buffer(self.buffers[c.src], c.src_offset, staging, o, c.size)
                    o += c.size
            cb = enc.finish()
            self.counters["encode_s"] += time.perf_counter() - t0
        except wgpu.GPUError as exc:
            self.usable = False
            raise _lost(exc) from exc
        self.counters["submits"] += 1
        self.counters["passes"] += 1
        self.counters["dispatches"] += n
        pend = Pending(self, staging, size, cb)
        if submit:
            pend.submit()
        return pend

    def _take_staging(self, size: int):
        for i, b in enumerate(self._stagings):
            if b.size >= size:
                return self._stagings.pop(i)
        BU = self._w.BufferUsage
        return self.device.create_buffer(label="readback", size=max(256, -(-size // 256) * 256), usage=BU.MAP_READ | BU.COPY_DST)

    def _record(self, cp, name: str, vars: dict[str, int]) -> int:
        """Record one program's dispatches into the pass; returns how many were recorded."""
        key = (name, *sorted(vars.items()))
        fast = self._fast.get(key)
        if fast is None:  # per-dispatch handles and counts, resolved once per (program, vars)
            prog = self.plan.programs[self._alias.get(name, name)]
            fast = self._fast[key] = [
                (self.pipelines[d.pipeline][0], bg, d.counts(vars))
                for d, bg in zip(prog.dispatches, self.bind_groups[name], strict=True)
                if d.counts(vars)[0] * d.counts(vars)[1] * d.counts(vars)[2]
            ]
        raw = _raw_pass_calls()
        if raw is not None:  # wgpu-native's C entry points: no per-call argument handling
            set_pipeline, set_bind_group, dispatch, null = raw
            c = cp._internal
            raws = self._fast_raw.get(key)
            if raws is None:
                raws = self._fast_raw[key] = [(p._internal, b._internal, x, y, z) for p, b, (x, y, z) in fast]
            for pi, bi, x, y, z in raws:
                set_pipeline(c, pi)
                set_bind_group(c, 0, bi, 0, null)
                dispatch(c, x, y, z)
            return len(raws)
        for pipe, bg, (x, y, z) in fast:
            cp.set_pipeline(pipe)
            cp.set_bind_group(0, bg)
            cp.dispatch_workgroups(x, y, z)
        return len(fast)

    def wait(self) -> None:
        """Block until submitted work is done (maps a tiny buffer)."""
        self.run([], read=(self.plan.uniform.buffer, 0, 4))

    def destroy(self) -> None:
        self.usable = False
        try:
            self.device.destroy()
        except Exception:  # already gone
            pass
