"""The native executor: runs a plan on wgpu-py. It knows buffers, pipelines and dispatches, not
transformers; NativeEngine at the bottom is the thin glue that builds the plan for a model and
drives the programs through the Engine interface."""

from __future__ import annotations

import logging
import os
import struct
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from companion.engine import Engine
from companion.errors import EngineUnavailable
from companion.gpu import shaders
from companion.gpu.plan import Buffer, Plan
from companion.sampling import Sampler, SamplingParams

log = logging.getLogger(__name__)

_ADAPTER_RANK = {"DiscreteGPU": 0, "IntegratedGPU": 1, "VirtualGPU": 2, "Unknown": 3, "CPU": 4}
# limits worth raising from the WebGPU defaults to what the adapter offers
_WANTED_LIMITS = (
    "max-storage-buffer-binding-size",
    "max-buffer-size",
    "max-storage-buffers-per-shader-stage",
    "max-compute-workgroup-storage-size",
    "max-compute-invocations-per-workgroup",
    "max-compute-workgroup-size-x",
    "max-compute-workgroups-per-dimension",
)


def _wgpu():
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")  # silences a harmless warning under CI
    try:
        import wgpu
    except Exception as exc:  # pragma: no cover - wgpu is a hard dependency
        raise EngineUnavailable(f"wgpu-py cannot be imported ({exc}): reinstall companion") from exc
    return wgpu


def is_cpu_adapter(info: dict[str, Any]) -> bool:
    """True for software rasterizers (lavapipe/llvmpipe, SwiftShader, WARP)."""
    kind = str(info.get("adapter_type", ""))
    name = f"{info.get('device', '')} {info.get('description', '')} {info.get('vendor', '')}".lower()
    return kind == "CPU" or any(s in name for s in ("llvmpipe", "lavapipe", "swiftshader", "warp"))


def _describe(info: dict[str, Any]) -> str:
    return f"{info.get('device') or info.get('vendor')} ({info.get('adapter_type')}, {info.get('backend_type')})"


def list_adapters() -> list[dict[str, Any]]:
    """Every adapter wgpu-py sees, best first, as info dicts (device, adapter_type, backend_type...)."""
    wgpu = _wgpu()
    found = [dict(a.info) for a in wgpu.gpu.enumerate_adapters_sync()]
    return sorted(found, key=lambda i: (_ADAPTER_RANK.get(str(i.get("adapter_type")), 3), is_cpu_adapter(i)))


def request_adapter(prefer: str | None = None):
    """The adapter to use: one whose name contains `prefer` (case-insensitive), else the best
    by kind (discrete > integrated > virtual > CPU). Raises EngineUnavailable if none fits."""
    wgpu = _wgpu()
    try:
        adapters = list(wgpu.gpu.enumerate_adapters_sync())
    except Exception as exc:
        raise EngineUnavailable(f"no WebGPU adapter: {exc}") from exc
    if not adapters:
        raise EngineUnavailable("no WebGPU adapter found: install a Vulkan/Metal/D3D12 driver (or mesa-vulkan-drivers)")
    if prefer:
        match = [a for a in adapters if prefer.lower() in _describe(dict(a.info)).lower()]
        if not match:
            names = ", ".join(_describe(dict(a.info)) for a in adapters)
            raise EngineUnavailable(f"no adapter matches {prefer!r}; available: {names}")
        adapters = match
    adapters.sort(key=lambda a: (_ADAPTER_RANK.get(str(a.info.get("adapter_type")), 3), is_cpu_adapter(dict(a.info))))
    return adapters[0]


# WebGPU feature names (as plans spell them) -> wgpu-py 0.32 names, where they differ
_WGPU_NAMES = {"subgroups": "subgroup"}


def adapter_features(adapter) -> list[str]:
    """The adapter's features by WebGPU name ("subgroups", not wgpu-py's "subgroup")."""
    back = {v: k for k, v in _WGPU_NAMES.items()}
    return sorted(back.get(str(f), str(f)) for f in adapter.features)


def request_device(adapter, features: Sequence[str] = ()):
    """A device with the adapter's real limits (the defaults are WebGPU's minimums) and the
    given features (WebGPU or wgpu-py names)."""
    limits = {k: adapter.limits[k] for k in _WANTED_LIMITS if k in adapter.limits}
    wanted = [_WGPU_NAMES.get(f, f) for f in features]
    missing = [f for f in wanted if f not in adapter.features]
    if missing:
        raise EngineUnavailable(f"adapter {_describe(dict(adapter.info))} lacks features {missing}")
    try:
        return adapter.request_device_sync(required_features=wanted, required_limits=limits)
    except Exception as exc:
        raise EngineUnavailable(f"cannot open a device on {_describe(dict(adapter.info))}: {exc}") from exc


_RAW: list = []


def _raw_pass_calls():
    """(set_pipeline, set_bind_group, dispatch_workgroups, NULL) of wgpu-native's C API for
    compute passes, or None where this wgpu-py lacks them (then the Python methods are used).
    Encoding a decode step is ~150 dispatches x 3 calls: the Python wrappers' argument
    handling (a cffi array per set_bind_group) is a quarter of it. The executor keeps every
    pipeline and bind group alive, which is all the wrappers' bookkeeping adds."""
    if not _RAW:
        try:
            from wgpu.backends.wgpu_native._api import ffi, libf

            _RAW.append((libf.wgpuComputePassEncoderSetPipeline, libf.wgpuComputePassEncoderSetBindGroup,
                         libf.wgpuComputePassEncoderDispatchWorkgroups, ffi.NULL))
        except Exception:  # another wgpu-py layout: the public methods still work
            _RAW.append(None)
    return _RAW[0]


def _lost(exc: BaseException) -> EngineUnavailable:
    return EngineUnavailable(f"the GPU device was lost or failed ({str(exc).strip().splitlines()[-1]}); switch engine or restart")


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
        wgpu = self._w = _wgpu()
        self.plan = plan
        if device is None:
            ad = request_adapter(adapter)
            device = request_device(ad, plan.features)
        self.device = device
        self.adapter_info = dict(device.adapter.info) if getattr(device, "adapter", None) else {}
        self.usable = True
        self.counters = {"submits": 0, "dispatches": 0, "readback_bytes": 0}
        have = {str(f) for f in device.features}
        lacking = [f for f in plan.features if _WGPU_NAMES.get(f, f) not in have]
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
        modules: dict[tuple, Any] = {}  # one module per (shader, variant)
        for p in plan.pipelines:
            mkey = (p.shader, tuple(sorted(p.includes.items())), tuple(p.enable))
            if mkey not in modules:
                modules[mkey] = shaders.create_module(dev, p.shader, p.includes, p.enable)
            module = modules[mkey]
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
                raise shaders.ShaderError(shaders.describe_error(shaders.load(p.shader, p.includes, p.enable), exc)) from exc
            self.pipelines[p.name] = (pipe, bgl)

        # bind groups are static: create every dispatch's once
        self.bind_groups: dict[str, list[Any]] = {}
        for name, prog in plan.programs.items():
            groups = []
            for d in prog.dispatches:
                _, bgl = self.pipelines[d.pipeline]
                entries = []
                for bb in d.bindings:
                    buf = self.buffers[bb.buffer]
                    size = bb.size if bb.size is not None else buf.size - bb.offset
                    entries.append({"binding": bb.binding, "resource": {"buffer": buf, "offset": bb.offset, "size": size}})
                groups.append(dev.create_bind_group(label=d.label or d.pipeline, layout=bgl, entries=entries))
            self.bind_groups[name] = groups
        self._fast: dict[str, list[tuple[Any, Any, Any]]] = {}
        self._uniform = bytearray(plan.uniform.size)
        self._fields = {f.name: f for f in plan.uniform.fields}

    # -- per step
    def _check(self) -> None:
        if not self.usable:
            raise EngineUnavailable("the GPU device was lost earlier; switch engine or restart")

    def set_uniforms(self, **values: float | int) -> None:
        """Pack named fields into the uniform block (written with the next run)."""
        for k, v in values.items():
            f = self._fields[k]
            struct.pack_into("<I" if f.type == "u32" else "<f", self._uniform, f.offset, int(v) if f.type == "u32" else float(v))

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
            enc = dev.create_command_encoder()
            cp = enc.begin_compute_pass()
            n = 0
            for name, vars in programs:
                n += self._record(cp, name, vars)
            cp.end()
            if read is None and programs:
                rb = self.plan.programs[programs[-1][0]].readback
                if rb is not None:
                    read = (rb.buffer, rb.offset, rb.size)
            staging = None
            if read is not None:
                buf, off, size = read
                staging = self.readback if size <= self.readback.size else dev.create_buffer(size=size, usage=wgpu.BufferUsage.MAP_READ | wgpu.BufferUsage.COPY_DST)
                enc.copy_buffer_to_buffer(self.buffers[buf], off, staging, 0, size)
            dev.queue.submit([enc.finish()])
            self.counters["submits"] += 1
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

    def _record(self, cp, name: str, vars: dict[str, int]) -> int:
        """Record one program's dispatches into the pass; returns how many were recorded."""
        prog = self.plan.programs[name]
        fast = self._fast.get(name)
        if fast is None:  # per-dispatch handles, resolved once per program
            fast = self._fast[name] = [
                (self.pipelines[d.pipeline][0], bg, d) for d, bg in zip(prog.dispatches, self.bind_groups[name], strict=True)
            ]
        n = 0
        raw = _raw_pass_calls()
        if raw is not None:  # wgpu-native's C entry points: no per-call argument handling
            set_pipeline, set_bind_group, dispatch, null = raw
            c = cp._internal
            for pipe, bg, d in fast:
                x, y, z = d.counts(vars)
                if x * y * z == 0:
                    continue
                set_pipeline(c, pipe._internal)
                set_bind_group(c, 0, bg._internal, 0, null)
                dispatch(c, x, y, z)
                n += 1
            return n
        for pipe, bg, d in fast:
            x, y, z = d.counts(vars)
            if x * y * z == 0:
                continue
            cp.set_pipeline(pipe)
            cp.set_bind_group(0, bg)
            cp.dispatch_workgroups(x, y, z)
            n += 1
        return n

    def wait(self) -> None:
        """Block until submitted work is done (maps a tiny buffer)."""
        self.run([], read=(self.plan.uniform.buffer, 0, 4))

    def destroy(self) -> None:
        self.usable = False
        try:
            self.device.destroy()
        except Exception:  # already gone
            pass


class NativeEngine(Engine):
    """The model on wgpu-py: prefill as one batch per chunk of max_batch tokens, decode and
    sampling on the GPU with one submit and a 4-byte readback per token."""

    name = "native"

    def __init__(
        self,
        model,
        n_ctx: int = 2048,
        adapter: str | None = None,
        max_batch: int = 64,
        progress: bool | None = None,
        device=None,
        features: str | Sequence[str] | None = None,
        layout: str | None = None,
    ):
        """features: what the plan may use, "auto" | "none" | "f16,subgroups" or a list; None =
        COMPANION_GPU_FEATURES (default auto: whatever the adapter offers). layout: the matmul
        layout "auto" | "rows" | "splitk"; None = COMPANION_GPU_LAYOUT (default auto: splitk on
        GPUs, rows on CPU rasterizers)."""
        from companion.gpu.builder import build_plan

        ad = None
        if device is None:
            ad = request_adapter(adapter or os.environ.get("COMPANION_ADAPTER"))
            feats = adapter_features(ad)
            info = dict(ad.info)
        else:  # a given device offers what it was created with
            back = {v: k for k, v in _WGPU_NAMES.items()}
            feats = sorted(back.get(str(f), str(f)) for f in device.features)
            info = dict(device.adapter.info) if getattr(device, "adapter", None) else {}
        t0 = time.perf_counter()
        self.built = build_plan(model, n_ctx=n_ctx, max_batch=max_batch, features=feats, allow=features,
                                layout=layout, adapter_info=info)
        self.plan = self.built.plan
        if device is None:
            device = request_device(ad, self.plan.features)
        if progress is None:  # a bar only where someone watches
            import sys

            progress = sys.stderr.isatty()
        self.executor = Executor(self.plan, self.built.resolve, device=device, progress=progress)
        self.load_seconds = time.perf_counter() - t0
        self._n_ctx = int(self.plan.model["n_ctx"])
        self._max_batch = int(self.plan.model["max_batch"])
        self._n_vocab = int(self.plan.model["n_vocab"])
        self._n_past = 0
        self._rng_step = 0
        self.stats: dict[str, float] = {"dispatches_per_token": 0, "submits_per_token": 0, "readback_bytes_per_token": 0}

    @property
    def adapter(self) -> str:
        info = self.executor.adapter_info
        return f"{info.get('device', '?')} ({info.get('adapter_type', '?')}, {info.get('backend_type', '?')}) via wgpu-py"

    # -- internals
    def _check_room(self, n: int) -> None:
        if n == 0:
            raise ValueError("eval() needs at least one token")
        if self._n_past + n > self._n_ctx:
            raise ValueError(f"context full: {self._n_past} + {n} tokens > n_ctx {self._n_ctx}")

    def _chunks(self, ids: Sequence[int]) -> list[list[int]]:
        ids = [int(i) for i in ids]
        return [ids[i : i + self._max_batch] for i in range(0, len(ids), self._max_batch)]

    def _feed(self, chunk: list[int], program: str, tail: Sequence[str] = (), read=None) -> bytes | None:
        ex = self.executor
        ex.write(self.plan.io["tokens"], np.asarray(chunk, dtype=np.uint32))
        ex.set_uniforms(n_past=self._n_past, n_tokens=len(chunk))
        vars = {"n_tokens": len(chunk)}
        out = ex.run([(program, vars), *[(t, vars) for t in tail]], read=read)
        self._n_past += len(chunk)
        return out

    def _logits_row(self, row: int = 0, n: int = 1) -> tuple[str, int, int]:
        return (self.plan.io["logits"], row * self._n_vocab * 4, n * self._n_vocab * 4)

    # -- Engine
    def eval(self, ids: Sequence[int]) -> np.ndarray:
        self._check_room(len(ids))
        chunks = self._chunks(ids)
        for c in chunks[:-1]:
            self._feed(c, "prefill")
        last = chunks[-1]
        prog = "decode" if len(last) == 1 else "prefill"
        raw = self._feed(last, prog, read=self._logits_row())
        assert raw is not None
        return np.frombuffer(raw, np.float32).copy()  # (V,)

    def eval_all(self, ids: Sequence[int]) -> np.ndarray:
        self._check_room(len(ids))
        rows = []
        for c in self._chunks(ids):
            raw = self._feed(c, "prefill_all", read=self._logits_row(0, len(c)))
            assert raw is not None
            rows.append(np.frombuffer(raw, np.float32).reshape(len(c), self._n_vocab))
        return np.concatenate(rows)  # (T, V)

    def next_token(self, ids: Sequence[int], sampler: Sampler, history: Sequence[int]) -> int:
        """Forward pass and sampling in one submit; only the 4-byte id is read back."""
        self._check_room(len(ids))
        p: SamplingParams = sampler.params
        ex = self.executor
        hist = [int(h) for h in history[-p.repeat_last_n :]] if p.repeat_last_n and p.repeat_penalty != 1.0 else []
        hist = hist[-int(self.plan.model["max_hist"]) :]
        if hist:
            ex.write(self.plan.io["history"], np.asarray(hist, dtype=np.uint32))
        # a stable per-sampler stream: the Sampler's seed, and a draw counter kept here
        if getattr(sampler, "_gpu_seed", None) is None:
            sampler._gpu_seed = p.seed & 0xFFFFFFFF  # type: ignore[attr-defined]
            sampler._gpu_step = 0  # type: ignore[attr-defined]
        ex.set_uniforms(
            seed=sampler._gpu_seed, rng_step=sampler._gpu_step, temperature=p.temperature,  # type: ignore[attr-defined]
            top_k=p.top_k, top_p=p.top_p, min_p=p.min_p, repeat_penalty=p.repeat_penalty, n_hist=len(hist),
        )  # fmt: skip
        sampler._gpu_step += 1  # type: ignore[attr-defined]
        before = dict(ex.counters)
        chunks = self._chunks(ids)
        for c in chunks[:-1]:
            self._feed(c, "prefill")
        last = chunks[-1]
        raw = self._feed(last, "decode" if len(last) == 1 else "prefill", tail=["sample"])
        assert raw is not None
        if len(ids) == 1:
            self.stats = {
                "dispatches_per_token": ex.counters["dispatches"] - before["dispatches"],
                "submits_per_token": ex.counters["submits"] - before["submits"],
                "readback_bytes_per_token": ex.counters["readback_bytes"] - before["readback_bytes"],
            }
        return int(np.frombuffer(raw, np.uint32)[0])

    def close(self) -> None:
        self.executor.destroy()


def bench_counters(engine: NativeEngine) -> dict[str, float]:
    """Per-token counters of the last decoded token (dispatches, submits, bytes read back)."""
    return dict(engine.stats)
