"""Will a model run here? Memory needs (weights + KV cache at the chosen context + activations)
checked against the adapter's limits and the machine's memory *before* anything is loaded, so a
model that cannot run gets a one-line reason (and, where the context length is what is too
much, the longest one that fits) instead of an out-of-memory error halfway through an upload.

What is checked:
- GPU engines (native, browser): every binding against `max-storage-buffer-binding-size` and
  every buffer against `max-buffer-size` (embedding tables and output heads are split across
  bindings, so only layer matrices and each layer's KV cache count whole); on a CPU-emulated
  adapter (lavapipe, SwiftShader) or an integrated GPU, whose memory is the system's, the total
  against the memory available now. WebGPU does not report a discrete GPU's memory, so there
  the total is only reported.
- The reference engine (CPU): its resident weights plus the KV cache against the memory
  available now."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from companion.errors import EngineUnavailable, UnsupportedModelError

MIB = 1 << 20
# Left for the app, the webview and the OS when a model shares the system's memory.
HEADROOM = 512 * MIB
MIN_CONTEXT = 64


class ModelDoesNotFit(UnsupportedModelError, EngineUnavailable):
    """The model (at this context length) needs more than this engine or adapter offers."""


@dataclass
class Fit:
    """The verdict for one engine: what the model needs and whether it fits."""

    engine: str
    needs: dict[str, int]  # bytes: weights, kv_cache, activations, total
    ok: bool = True
    reason: str = ""  # one line when not ok
    max_context: int | None = None  # the longest context that fits, where the context is the problem
    checked: list[str] = field(default_factory=list)  # what was compared with what

    def raise_unless_ok(self) -> None:
        if not self.ok:
            raise ModelDoesNotFit(self.reason)

    def as_dict(self) -> dict[str, Any]:
        return {"engine": self.engine, "needs": self.needs, "ok": self.ok, "reason": self.reason,
                "max_context": self.max_context, "checked": self.checked}  # fmt: skip


def available_memory() -> int | None:
    """Bytes of memory the system can give a new allocation now (MemAvailable on Linux), or
    None where it cannot be read."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    if sys.platform == "darwin" or hasattr(os, "sysconf"):
        try:
            return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            return None
    return None


def _mib(n: float) -> str:
    return f"{n / MIB:,.0f} MiB"


def _kv_per_token(model, kv_bytes: int) -> int:
    """KV cache bytes one token of context takes in one layer (keys and values together)."""
    cfg = model.config
    return 2 * cfg.n_head_kv * cfg.head_dim * kv_bytes


def _context(model, n_ctx: int) -> int:
    train = model.config.n_ctx_train
    return min(n_ctx, train) if train else n_ctx


def _label(model) -> str:
    """The model's name in `companion model list`, else its file name."""
    from companion.model.registry import name_of

    try:
        return name_of(model.path) or model.path.name
    except Exception:  # noqa: BLE001 - an unreadable models.json: the file name will do
        return str(model.path.name)


def _too_big(engine: str, model, what: str, n_ctx: int, max_ctx: int, needs: dict[str, int]) -> Fit:
    """A verdict for a context that is too long (or a model too big at any context)."""
    name = _label(model)
    if max_ctx >= MIN_CONTEXT:
        return Fit(engine, needs, False, f"{name} at {n_ctx:,} tokens of context needs {what}: set its context "
                   f"length to {max_ctx:,} or less (`companion model set {name} --context-length {max_ctx}`)", max_ctx)
    return Fit(engine, needs, False, f"{name} needs {what}, even at the shortest context: "
               f"it is too large for the {engine} engine here")


def gpu_fit(model, n_ctx: int, limits: Mapping[str, Any] | None, shares_system_memory: bool,
            engine: str = "native", f16_kv: bool = False, free: int | None = None) -> Fit:
    """The verdict for a GPU engine on an adapter with these limits (wgpu-py's or the page's,
    hyphenated names; None = WebGPU's defaults). shares_system_memory: a CPU-emulated adapter
    or an integrated GPU, whose total is compared with the memory available (free, default:
    available_memory())."""
    from companion.gpu.builder import MAX_BINDING, estimate_gpu_bytes

    n_ctx = _context(model, n_ctx)
    est = estimate_gpu_bytes(model, n_ctx, f16_kv=f16_kv)
    needs = {k: int(est[k]) for k in ("weights", "kv_cache", "activations", "total")}
    lim = dict(limits or {})
    binding = int(lim.get("max-storage-buffer-binding-size") or MAX_BINDING)
    buffer = int(lim.get("max-buffer-size") or 256 * MIB)
    one = min(binding, buffer)
    checked = [f"largest binding {_mib(est['largest_binding'])} <= {_mib(one)}"]
    if est["largest_binding"] > one:
        return Fit(engine, needs, False, f"{_label(model)} has a weight matrix of "
                   f"{_mib(est['largest_binding'])}, more than the {_mib(one)} this adapter binds at once", checked=checked)
    per_tok = _kv_per_token(model, 2 if f16_kv else 4) // 2  # keys and values are separate buffers
    layer_kv = n_ctx * per_tok
    checked.append(f"KV cache per layer {_mib(layer_kv)} <= {_mib(one)}")
    if layer_kv > one:
        fit = _too_big(engine, model, f"{_mib(layer_kv)} of KV cache per layer, more than the {_mib(one)} "
                       "this adapter binds at once", n_ctx, one // per_tok, needs)
        fit.checked = checked
        return fit
    if shares_system_memory:
        free = available_memory() if free is None else free
        if free is not None:
            room = free - HEADROOM
            checked.append(f"total {_mib(needs['total'])} <= available {_mib(room)}")
            if needs["total"] > room:
                fixed = needs["total"] - needs["kv_cache"]
                max_ctx = int(max(0, room - fixed) // (per_tok * 2 * model.config.n_layer))
                fit = _too_big(engine, model, f"{_mib(needs['total'])} (weights {_mib(needs['weights'])}, KV cache "
                               f"{_mib(needs['kv_cache'])}) and this machine has {_mib(room)} to spare",
                               n_ctx, min(max_ctx, n_ctx - 1), needs)
                fit.checked = checked
                return fit
    else:
        checked.append(f"total {_mib(needs['total'])}: WebGPU does not report a discrete GPU's memory")
    return Fit(engine, needs, checked=checked)


def reference_bytes(model) -> int:
    """Resident bytes of the reference engine's weights (companion.engines.reference keeps the
    types in LEAN_TYPES in their GGUF blocks, every other tensor as float32)."""
    from companion.engines import reference

    lean: frozenset[Any] = getattr(reference, "LEAN_TYPES", frozenset())
    total = 0
    for name, t in model.tensors.items():
        if name == "output.weight" and model.config.tied_output:
            continue
        n = int(np.prod(t.shape))
        total += int(t.raw.nbytes) if t.ggml_type in lean else 4 * n
    return total


def reference_fit(model, n_ctx: int, free: int | None = None) -> Fit:
    """The verdict for the reference engine: weights + float32 KV cache in the memory available."""
    cfg = model.config
    n_ctx = _context(model, n_ctx)
    per_ctx = _kv_per_token(model, 4) * cfg.n_layer
    weights = reference_bytes(model)
    act = 4 * 64 * (4 * cfg.n_embd + 2 * cfg.n_ff + cfg.n_vocab)
    needs = {"weights": weights, "kv_cache": n_ctx * per_ctx, "activations": act,
             "total": weights + n_ctx * per_ctx + act}  # fmt: skip
    free = available_memory() if free is None else free
    if free is None:
        return Fit("reference", needs, checked=["available memory unknown"])
    room = free - HEADROOM
    checked = [f"total {_mib(needs['total'])} <= available {_mib(room)}"]
    if needs["total"] <= room:
        return Fit("reference", needs, checked=checked)
    max_ctx = int(max(0, room - weights - act) // per_ctx)
    fit = _too_big("reference", model, f"{_mib(needs['total'])} of memory (weights {_mib(weights)}, KV cache "
                   f"{_mib(needs['kv_cache'])}) and this machine has {_mib(room)} to spare", n_ctx, min(max_ctx, n_ctx - 1), needs)
    fit.checked = checked
    return fit


def shares_system_memory(info: Mapping[str, Any] | None) -> bool:
    """True for a CPU-emulated adapter or an integrated GPU (wgpu-py info or a page's)."""
    from companion.gpu.adapters import is_cpu_adapter

    if not info:
        return False
    return is_cpu_adapter(dict(info)) or str(info.get("adapter_type", "")).lower() in ("integratedgpu", "integrated")
