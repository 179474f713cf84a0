"""Choosing and creating an engine: browser (WebGPU in the page), native (wgpu-py) or the
numpy reference. `auto` picks native on a real GPU and the reference when the only adapter is
a CPU emulation (llvmpipe, SwiftShader), where the reference is faster."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from companion.engines import ENGINE_CHOICES
from companion.engines.base import Engine
from companion.errors import CompanionError, EngineUnavailable
from companion.gpu.adapters import is_cpu_adapter
from companion.model.gguf_model import GGUFModel

log = logging.getLogger(__name__)


def choose_engine(adapter: str | None = None) -> tuple[str, str]:
    """(engine, reason) for --engine auto."""
    try:
        from companion.gpu.adapters import is_cpu_adapter, list_adapters
    except ImportError as exc:  # pragma: no cover - the GPU package ships with the app
        return "reference", f"native engine unavailable ({exc})"
    try:
        adapters = list_adapters()
    except Exception as exc:  # no Vulkan/Metal/D3D12 loader at all
        return "reference", f"no GPU adapter ({exc.__class__.__name__}: {exc})"
    if adapter:
        adapters = [a for a in adapters if adapter.lower() in _adapter_name(a).lower()]
    real = [a for a in adapters if not is_cpu_adapter(a)]
    if real:
        return "native", f"GPU adapter {_adapter_name(real[0])}"
    if adapters:
        return "reference", f"only a CPU-emulated adapter ({_adapter_name(adapters[0])}): the CPU engine is faster"
    return "reference", "no GPU adapter found"


def _adapter_name(info: object) -> str:
    if isinstance(info, dict):
        return str(info.get("device") or info.get("description") or info)
    return str(getattr(info, "device", info))


def create_engine(
    name: str,
    model: GGUFModel,
    n_ctx: int = 2048,
    adapter: str | None = None,
    report: Callable[[str], None] = log.info,
    features: str | None = None,
) -> Engine:
    """An engine by name; `auto` decides and reports its choice. `features` limits the
    optional GPU features the native kernels may use (None: the gpu_features setting, i.e.
    settings.json or COMPANION_GPU_FEATURES, default auto)."""
    if name == "auto":
        name, reason = choose_engine(adapter)
        report(f"engine: {name} ({reason})")
        if name == "native":
            try:
                return create_engine("native", model, n_ctx, adapter, report, features)
            except EngineUnavailable as exc:
                report(f"native engine unavailable ({exc}); using the reference")
                name = "reference"
    if name == "reference":
        from companion.engines.reference import ReferenceEngine
        from companion.gpu.fit import reference_fit

        reference_fit(model, n_ctx).raise_unless_ok()  # before the weights are read
        try:
            from companion.engines import _cpu_kernels

            if not _cpu_kernels.compiled_before():
                report("engine: reference: compiling its CPU kernels (once on this machine, a minute or two)")
        except ImportError:  # no numba: the reference keeps float32 weights
            pass
        return ReferenceEngine(model, n_ctx=n_ctx)
    if name == "native":
        from companion.engines.native import NativeEngine

        eng = NativeEngine(model, n_ctx=n_ctx, adapter=adapter, features=features)
        report(f"engine: native on {eng.adapter}")
        return eng
    if name == "browser":
        from companion.engines.browser import start_browser_engine

        return start_browser_engine(model, n_ctx=n_ctx, report=report)
    raise CompanionError(f"unknown engine {name!r}: choose one of {', '.join(ENGINE_CHOICES)}")


def fallback_factory(
    model: GGUFModel, n_ctx: int, adapter: str | None, report: Callable[[str], None], features: str | None = None
) -> Callable[[], Engine]:
    """What takes over when an engine fails: native if it can run, else the reference."""

    def make() -> Engine:
        try:
            return create_engine("native", model, n_ctx, adapter, report, features)
        except (EngineUnavailable, CompanionError, ImportError) as exc:
            report(f"native engine unavailable ({exc}); using the reference")
            try:
                return create_engine("reference", model, n_ctx, adapter, report)
            except CompanionError as ref_exc:  # nothing here can run it: both reasons, one line
                raise EngineUnavailable(f"no engine can run this model here: native: {exc}; reference: {ref_exc}") from ref_exc

    return make


def try_page_engine(settings: Any, model: GGUFModel, server: Any, report: Callable[[str], None], page_wait: float = 8.0) -> Engine | None:
    """The browser engine on the desktop window's page, or None (with the reason reported)
    when the page has no WebGPU executor, fails to load, or — for `auto` — only a CPU-emulated
    adapter, where native or the reference is faster."""
    from companion.engines.browser import start_browser_engine

    if not server.executor.wait_for_page(page_wait):
        report("the window's page offers no WebGPU executor; using another engine")
        return None
    try:
        engine = start_browser_engine(model, settings.context_length, report, server=server)
    except EngineUnavailable as exc:
        report(f"the window's WebGPU could not run the model ({exc}); using another engine")
        return None
    if settings.engine == "auto" and is_cpu_adapter(engine.adapter):
        report(f"the window's WebGPU adapter is a CPU emulation ({engine.adapter}); using another engine")
        engine.close()
        return None
    return engine
