"""GPU fixtures (imported by tests/conftest.py): probe for a WebGPU adapter once, in a
subprocess with a timeout (a broken driver can hang or crash the interpreter), skip cleanly
where there is none, and under CI=true insist on lavapipe instead of skipping."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

_PROBE = """
import json, os
os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
import wgpu
a = wgpu.gpu.request_adapter_sync(power_preference="high-performance")
print(json.dumps(dict(a.info) if a is not None else None))
"""


def _probe() -> tuple[dict | None, str]:
    try:
        r = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return None, "adapter probe timed out after 60 s"
    if r.returncode != 0:
        return None, f"adapter probe failed: {r.stderr.strip().splitlines()[-1:] or r.returncode}"
    try:
        info = json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None, f"adapter probe printed no info: {r.stdout!r}"
    return info, "" if info else "no WebGPU adapter"


@pytest.fixture(scope="session")
def gpu_adapter_info() -> dict:
    """The adapter's info dict; skips without an adapter (asserts lavapipe under CI=true)."""
    info, why = _probe()
    if os.environ.get("CI", "").lower() == "true":
        assert info is not None, f"CI must run the GPU tests on lavapipe, but: {why}"
        name = f"{info.get('device', '')} {info.get('description', '')}".lower()
        assert "llvmpipe" in name or "lavapipe" in name, f"CI expected lavapipe, got {info}"
    if info is None:
        pytest.skip(why)
    return info


@pytest.fixture(scope="session")
def gpu_adapter(gpu_adapter_info):
    """A wgpu adapter (the same kind the probe found)."""
    from companion.gpu.adapters import request_adapter

    return request_adapter(os.environ.get("COMPANION_ADAPTER"))


OPTIONAL_FEATURES = ("shader-f16", "subgroups")  # what kernel variants may use


@pytest.fixture(scope="session")
def gpu_features(gpu_adapter) -> list[str]:
    """The optional features (WebGPU names) the adapter offers; lavapipe offers both."""
    from companion.gpu.adapters import adapter_features

    return [f for f in adapter_features(gpu_adapter) if f in OPTIONAL_FEATURES]


@pytest.fixture(scope="session")
def gpu_device(gpu_adapter, gpu_features):
    """A device with the adapter's real limits and optional features, shared by the kernel tests."""
    from companion.gpu.adapters import request_device

    dev = request_device(gpu_adapter, gpu_features)
    yield dev


# --- kernel tests -------------------------------------------------------------------------------


@pytest.fixture
def variant(request, gpu_features) -> tuple[str, ...]:
    """The features of the variant named by the (indirect) parameter, from the test module's
    VARIANTS (name -> features); skips if the adapter does not offer them."""
    feats = request.module.VARIANTS[request.param]
    lacking = [f for f in feats if f not in gpu_features]
    if lacking:
        pytest.skip(f"adapter lacks {lacking}")
    return feats


def make_weight(rng, M: int, K: int, qtype, rowmajor: bool = False):
    """(blob u32, dequantized f32 (M, K)) of a random matrix stored as qtype, in the column
    layout or (rowmajor) the split-K layout's."""
    import numpy as np
    from gguf import GGMLQuantizationType as QT
    from gguf import quants

    from companion.gpu.builder import repack
    from companion.testing import quantize

    w = rng.standard_normal((M, K)).astype(np.float32)  # (M, K)
    if qtype == QT.F32:
        raw = w.view(np.uint8)
    elif qtype == QT.F16:
        raw = w.astype(np.float16).view(np.uint8)
    else:
        raw = quantize(w, qtype)  # (M, bytes per row) uint8
    deq = quants.dequantize(raw, qtype).reshape(M, K).astype(np.float32)  # (M, K)
    return repack(raw.reshape(M, -1), qtype, K, rowmajor=rowmajor), deq


def make_weight_rowmajor(rng, M: int, K: int, qtype):
    return make_weight(rng, M, K, qtype, rowmajor=True)


def rope_ref(x, pos, base, neox):
    """x: (T, H, hd) rotated at positions pos (T,)."""
    from companion.gpu.builder import rope_table

    hd = x.shape[-1]
    tab = rope_table(int(pos.max()) + 1, hd, base)[pos]  # (T, hd/2, 2)
    c, s = tab[:, None, :, 0], tab[:, None, :, 1]  # (T, 1, hd/2)
    out = x.copy()
    if neox:
        a, b = x[..., : hd // 2], x[..., hd // 2 :]
        out[..., : hd // 2], out[..., hd // 2 :] = a * c - b * s, a * s + b * c
    else:
        a, b = x[..., 0::2], x[..., 1::2]
        out[..., 0::2], out[..., 1::2] = a * c - b * s, a * s + b * c
    return out


_SUBGROUP_SIZES: dict[int, int | None] = {}


def subgroup_size_for(device, features) -> int:
    """The SG a plan passes to the subgroup kernels on this device: the probed size for the
    "subgroups" variant (what both executors use once their probe passed), 0 (size and layout
    not probed) for "f16+subgroups", so that the kernel tests cover both paths of _reduce_sg.wgsl."""
    from companion.gpu.adapters import probe_subgroups

    if "subgroups" not in features or "shader-f16" in features:
        return 0
    if id(device) not in _SUBGROUP_SIZES:
        _SUBGROUP_SIZES[id(device)] = probe_subgroups(device)
    return _SUBGROUP_SIZES[id(device)] or 0


def run_program(device, data: dict, dispatches: list, step: dict, out: str, features=(), out_dtype=None):
    """Run dispatches [(shader, constants, buffers, workgroups)] in one pass; data: name ->
    array (uploaded) or int (zeroed bytes). Returns the `out` buffer."""
    import numpy as np

    from companion.gpu.builder import STEP_SIZE, BuiltPlan, PlanWriter, uniform_block
    from companion.gpu.executor import Executor
    from companion.gpu.plan import Plan, Program

    w = PlanWriter(features=list(features), subgroup_size=subgroup_size_for(device, features))
    w.buffer("step", STEP_SIZE, usage="uniform")
    for name, v in data.items():
        if isinstance(v, int):
            w.buffer(name, v)
        else:
            w.blob(name, np.ascontiguousarray(v), "test")
    ds = [w.dispatch(w.pipeline(sh, **c), ["step", *b], wg, sh) for sh, c, b, wg in dispatches]
    plan = Plan(uniform=uniform_block(), buffers=list(w.buffers.values()), pipelines=list(w.pipelines.values()),
                programs={"p": Program(name="p", dispatches=ds)}, features=sorted(features))
    ex = Executor(plan, BuiltPlan(plan, w.blobs).resolve, device=device)
    ex.set_uniforms(**step)
    size = data[out] if isinstance(data[out], int) else data[out].nbytes
    return np.frombuffer(ex.run([("p", {})], read=(out, 0, size)), out_dtype or np.float32).copy()
