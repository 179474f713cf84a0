"""GPU adapters: finding and opening one with wgpu-py, telling a real GPU from a CPU emulation,
and choosing what a plan may use on it (optional kernel features, the matmul layout). Both the
native executor and the plan builder read this; it imports neither."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any, get_args

from companion.errors import EngineUnavailable
from companion.gpu import FEATURE_ALIASES as _ALIASES
from companion.gpu import FEATURES_ENV, LAYOUTS, GpuLayout, parse_allowed
from companion.settings import Settings


def import_wgpu():
    """The wgpu module (EngineUnavailable if it cannot be imported)."""
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")  # silences a harmless warning under CI
    try:
        import wgpu
    except Exception as exc:  # pragma: no cover - wgpu is a hard dependency
        raise EngineUnavailable(f"wgpu-py cannot be imported ({exc}): reinstall companion") from exc
    return wgpu


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


# Names software rasterizers give themselves: Mesa lavapipe (llvmpipe), Chromium's SwiftShader
# (in GPUAdapterInfo.architecture), Windows' WARP / Basic Render Driver.
CPU_EMULATIONS = ("llvmpipe", "lavapipe", "swiftshader", "warp", "software", "basic render")


def is_cpu_adapter(info: dict[str, Any] | str) -> bool:
    """True for a software rasterizer, given wgpu-py adapter info, a page's GPUAdapterInfo
    (as page_adapter_info returns it) or an engine's adapter description."""
    if isinstance(info, str):
        return any(s in info.lower() for s in CPU_EMULATIONS)
    if str(info.get("adapter_type", "")) == "CPU":
        return True
    keys = ("device", "description", "vendor", "architecture")
    return is_cpu_adapter(" ".join(str(info.get(k, "")) for k in keys))


def page_adapter_info(info: dict[str, str] | None) -> dict[str, str] | None:
    """A page's GPUAdapterInfo (vendor, architecture, device, description) in the shape of
    wgpu-py's adapter info, which the builder reads: SwiftShader names itself in
    `architecture`, not in `device`."""
    if not info:
        return None
    arch = info.get("architecture", "")
    out = {
        "vendor": info.get("vendor", ""),
        "device": info.get("device") or arch,
        "description": " ".join(x for x in (info.get("description", ""), arch) if x),
    }
    out["adapter_type"] = "CPU" if is_cpu_adapter(out) else ""
    return out


def describe(info: dict[str, Any]) -> str:
    return f"{info.get('device') or info.get('vendor')} ({info.get('adapter_type')}, {info.get('backend_type')})"


def list_adapters() -> list[dict[str, Any]]:
    """Every adapter wgpu-py sees, best first, as info dicts (device, adapter_type, backend_type...)."""
    wgpu = import_wgpu()
    found = [dict(a.info) for a in wgpu.gpu.enumerate_adapters_sync()]
    return sorted(found, key=lambda i: (_ADAPTER_RANK.get(str(i.get("adapter_type")), 3), is_cpu_adapter(i)))


def request_adapter(prefer: str | None = None):
    """The adapter to use: one whose name contains `prefer` (case-insensitive), else the best
    by kind (discrete > integrated > virtual > CPU). Raises EngineUnavailable if none fits."""
    wgpu = import_wgpu()
    try:
        adapters = list(wgpu.gpu.enumerate_adapters_sync())
    except Exception as exc:
        raise EngineUnavailable(f"no WebGPU adapter: {exc}") from exc
    if not adapters:
        raise EngineUnavailable("no WebGPU adapter found: install a Vulkan/Metal/D3D12 driver (or mesa-vulkan-drivers)")
    if prefer:
        match = [a for a in adapters if prefer.lower() in describe(dict(a.info)).lower()]
        if not match:
            names = ", ".join(describe(dict(a.info)) for a in adapters)
            raise EngineUnavailable(f"no adapter matches {prefer!r}; available: {names}")
        adapters = match
    adapters.sort(key=lambda a: (_ADAPTER_RANK.get(str(a.info.get("adapter_type")), 3), is_cpu_adapter(dict(a.info))))
    return adapters[0]


# WebGPU feature names (as plans spell them) -> wgpu-py 0.32 names, where they differ
_WGPU_NAMES = {"subgroups": "subgroup"}


def adapter_features(adapter) -> list[str]:
    """The features of an adapter (or a device) by WebGPU name ("subgroups", not wgpu-py's
    "subgroup")."""
    back = {v: k for k, v in _WGPU_NAMES.items()}
    return sorted(back.get(str(f), str(f)) for f in adapter.features)


def wgpu_feature_name(feature: str) -> str:
    """wgpu-py's name of a WebGPU feature."""
    return _WGPU_NAMES.get(feature, feature)


def request_device(adapter, features: Sequence[str] = ()):
    """A device with the adapter's real limits (the defaults are WebGPU's minimums) and the
    given features (WebGPU or wgpu-py names)."""
    limits = {k: adapter.limits[k] for k in _WANTED_LIMITS if k in adapter.limits}
    wanted = [_WGPU_NAMES.get(f, f) for f in features]
    missing = [f for f in wanted if f not in adapter.features]
    if missing:
        raise EngineUnavailable(f"adapter {describe(dict(adapter.info))} lacks features {missing}")
    try:
        return adapter.request_device_sync(required_features=wanted, required_limits=limits)
    except Exception as exc:
        raise EngineUnavailable(f"cannot open a device on {describe(dict(adapter.info))}: {exc}") from exc


# ----------------------------------------------------------------------------- optional features

# What _reduce_sg.wgsl's fast path assumes, checked on the device: every invocation reports its
# subgroup's size and its lane, for the largest workgroup the kernels use and a small one.
_SUBGROUP_PROBE = """
@group(0) @binding(0) var<storage, read_write> out: array<u32>;
@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(subgroup_size) n: u32,
        @builtin(subgroup_invocation_id) lane: u32) {
    out[OFF + lid] = (n << 16u) | lane;
}
"""


def usable_subgroup_size(n: int) -> bool:
    """Whether _reduce_sg.wgsl's SG can be n: a power of two from 4 to 128 (what a probe, native
    or the page's, must find before a plan uses it)."""
    return 4 <= n <= 128 and n & (n - 1) == 0


def probe_subgroups(device) -> int | None:
    """The subgroup size where the device's compute subgroups are all one size (a power of two,
    4..128) and laid out in order of local_invocation_index (invocation i is lane i % n of
    subgroup i / n) in workgroups of 256 and 64 invocations, else None: the layout the
    subgroup kernels' fast path (_reduce_sg.wgsl SG) relies on, which WebGPU does not promise.
    The device must have the subgroups feature."""
    import numpy as np

    wgpu = import_wgpu()
    sizes = (256, 64)
    try:
        buf = device.create_buffer(size=4 * sum(sizes), usage=wgpu.BufferUsage.STORAGE | wgpu.BufferUsage.COPY_SRC)
        enc = device.create_command_encoder()
        cp = enc.begin_compute_pass()
        off = 0
        for wg in sizes:
            code = _SUBGROUP_PROBE.replace("WG)", f"{wg})").replace("OFF", f"{off}u")
            pl = device.create_compute_pipeline(layout="auto", compute={"module": device.create_shader_module(code=code), "entry_point": "main"})
            bg = device.create_bind_group(layout=pl.get_bind_group_layout(0), entries=[{"binding": 0, "resource": {"buffer": buf}}])
            cp.set_pipeline(pl)
            cp.set_bind_group(0, bg)
            cp.dispatch_workgroups(1)
            off += wg
        cp.end()
        device.queue.submit([enc.finish()])
        got = np.frombuffer(device.queue.read_buffer(buf), np.uint32)
    except Exception:  # no subgroups feature, or a compiler without the builtins
        return None
    n = int(got[0] >> 16)
    if not usable_subgroup_size(n) or not (got >> 16 == n).all():
        return None
    lanes = np.concatenate([np.arange(wg) % n for wg in sizes])
    return n if bool(((got & 0xFFFF) == lanes).all()) else None


# Kernel variants: WebGPU feature -> (short name users type, helper swaps, WGSL extension).
# Every kernel's default helpers are the f32 / workgroup-memory path that needs no feature.
VARIANTS: dict[str, tuple[str, dict[str, str], str]] = {
    "shader-f16": ("f16", {"_prec.wgsl": "_prec_f16.wgsl"}, "f16"),
    "subgroups": ("subgroups", {"_reduce.wgsl": "_reduce_sg.wgsl"}, "subgroups"),
}
# The words users type (auto, none, f16, subgroups: companion.gpu) and parse_allowed live in
# companion.gpu, below companion.settings, which validates gpu_features with them.


# Measured on an H100 (Vulkan, SmolLM2-135M shapes, split-K layout): f32 kernels 344 tok/s
# decode and 5,456 tok/s prefill, subgroups 288 / 4,006, f16 + subgroups 273 / 3,737.
# On lavapipe (rows layout, 2 cores): f32 9.5 tok/s decode, subgroups 7.7, f16 + subgroups 7.1.
# The f32 kernels are also the closest to the reference (f16 adds ~0.2 to the logit error), so
# auto uses them; the variants stay available (and tested) for adapters where they pay off.
AUTO_F32_NOTE = (
    "kernel variants off under auto: the f32 kernels measured fastest (H100 split-K, lavapipe rows) "
    f"and closest to the reference; {FEATURES_ENV}=f16,subgroups turns them on"
)


# Measured on an H200 (2026-12-01, random SmolLM2-shaped model, alternating rounds, decode tok/s
# at contexts 0 / 512 / 2048): f32 832 / 809 / 713, 838 / 778 / 704, 834 / 806 / 714 and
# 831 / 817 / 701; subgroups with the probed 32-wide linear layout (_reduce_sg.wgsl SG) 875 / 840 /
# 748, 871 / 790 / 726, 876 / 852 / 761 and 877 / 844 / 750 (+4-6%); logits within 6e-6 of the
# f32 plan's over 40 steps. So auto turns subgroups on for GPUs whose layout the device probe
# confirmed (not f16: less exact). Capping a row pair at one subgroup's 32 lanes (ffn_down's
# reduction in shuffles alone) was slower: 837 / 808 / 718.
def auto_subgroups_note(size: int) -> str:
    return (f"kernel variants under auto: subgroups (the device's subgroups are {size} wide in invocation "
            "order, so the reductions fold in registers: +4-6% decode on an H200); f16 off (less exact); "
            f"{FEATURES_ENV}=none turns them off")


def is_auto_features(allowed: str | Iterable[str] | None) -> bool:
    """True where the user left the feature choice to us (auto, explicitly or by default);
    None = the gpu_features setting (COMPANION_GPU_FEATURES)."""
    if allowed is None:
        allowed = Settings.load().gpu_features
    return isinstance(allowed, str | None) and parse_allowed(allowed) is None


def choose_features(offered: Iterable[str], allowed: str | Iterable[str] | None = None) -> tuple[list[str], list[str]]:
    """(features the plan uses, one note per feature left out saying why). `offered`: the
    adapter's features (WebGPU or wgpu-py names); `allowed`: a COMPANION_GPU_FEATURES-style
    string or a list of names, None = the gpu_features setting (settings.json or
    COMPANION_GPU_FEATURES, default "auto")."""
    have = {_ALIASES.get(str(f), str(f)) for f in offered}
    if allowed is None or isinstance(allowed, str):
        src = Settings.load().gpu_features if allowed is None else allowed
        allow = parse_allowed(src)
        how = f"{FEATURES_ENV}={src}" if allowed is None else f"allowed features {src!r}"
    else:
        allow = {_ALIASES.get(str(f), str(f)) for f in allowed}
        how = f"allowed features {sorted(allow)}"
    used, notes = [], []
    for feat, (short, _, _) in VARIANTS.items():
        if feat not in have:
            notes.append(f"{short} kernels off: the adapter lacks {feat}; using the f32 path")
        elif allow is not None and feat not in allow:
            notes.append(f"{short} kernels off: {feat} not allowed by {how}; using the f32 path")
        else:
            used.append(feat)
    return used, notes


# ----------------------------------------------------------------------------- matmul layout

# "rows": each invocation walks whole rows along K (interleaved blob): right for CPU rasterizers
# (lavapipe, SwiftShader). "splitk": a workgroup per row pair, its invocations striding over K
# (row-major blob, shaders/_matvec.wgsl): right for GPUs. "auto": splitk unless the adapter is
# a CPU rasterizer (rows where the adapter is unknown).
# The choices (GpuLayout, LAYOUTS) are defined in companion.gpu.
LAYOUT_ENV = "COMPANION_GPU_LAYOUT"  # Settings.gpu_layout


def choose_layout(adapter_info: dict | None, layout: str | None = None) -> tuple[str, str]:
    """(layout the matmuls use, why). layout: "rows" | "splitk" | "auto"; None = the
    gpu_layout setting (settings.json or COMPANION_GPU_LAYOUT, default auto)."""
    src = Settings.load().gpu_layout if layout is None else layout
    how = f"{LAYOUT_ENV}={src}" if layout is None else f"layout={src!r}"
    choice = (src or "auto").strip().lower()
    if choice in LAYOUTS:
        return choice, f"matmul layout {choice}: forced by {how}"
    if choice != "auto":
        raise ValueError(f"{LAYOUT_ENV}: unknown matmul layout {src!r} (use {', '.join(get_args(GpuLayout))})")
    if not adapter_info:
        return "rows", "matmul layout rows: adapter unknown"
    name = adapter_info.get("device") or adapter_info.get("description") or adapter_info.get("adapter_type") or "?"
    if is_cpu_adapter(adapter_info):
        return "rows", f"matmul layout rows: {name} is a CPU rasterizer"
    return "splitk", f"matmul layout splitk: {name} is a GPU"
