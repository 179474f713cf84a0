"""What `companion model list` and the page's model picker show: every known model with its own
settings, the context it would run at, its memory needs and whether it fits here (on this
machine's GPU adapter, else in the reference engine), with a one-line reason when it does not."""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from companion.errors import CompanionError

log = logging.getLogger(__name__)


def adapter_limits(adapter: str | None) -> tuple[dict[str, int] | None, dict[str, Any] | None]:
    """(limits, info) of the adapter the native engine would use, or (None, None) without one."""
    try:
        from companion.gpu.adapters import request_adapter

        ad = request_adapter(adapter)
        return {k: int(v) for k, v in dict(ad.limits).items()}, dict(ad.info)
    except Exception as exc:  # noqa: BLE001 - no loader, no adapter: the reference still counts
        log.debug("no GPU adapter for the model list: %s", exc)
        return None, None


def in_use(settings, path: str | Path) -> bool:
    """True when `path` is the model the settings run."""
    from companion.model.registry import DEFAULT_NAME, name_of

    if settings.model_path is None:
        return name_of(path) == DEFAULT_NAME
    try:
        return Path(settings.model_path).expanduser().resolve() == Path(path).resolve() or str(settings.model_path) == name_of(path)
    except OSError:
        return False


def catalog(settings, limits: dict[str, int] | None = None, info: dict[str, Any] | None = None,
            probe: bool = True, free: int | None = None) -> list[dict[str, Any]]:
    """One row per known model (built in first). limits/info: the GPU adapter to judge with
    (probe: look the default one up when not given); free: the memory available (default: read
    from the system)."""
    from companion.gpu.builder import estimate_gpu_bytes
    from companion.gpu.fit import gpu_fit, reference_fit, shares_system_memory
    from companion.model.gguf_model import GGUFModel
    from companion.model.registry import list_models, model_settings

    if limits is None and probe:
        limits, info = adapter_limits(settings.adapter)
    rows = []
    for e in list_models():
        own = model_settings(e.name)
        ctx = min(own.context_length or settings.context_length, e.context_length or 1 << 30)
        row: dict[str, Any] = {**asdict(e), "in_use": in_use(settings, e.path), "settings": asdict(own),
                               "chat_template": "auto" if own.chat_template is None else
                               ("chatml" if own.chat_template == "chatml" else "custom"),
                               "run_context": ctx}  # fmt: skip
        try:
            model = GGUFModel(e.path)
        except CompanionError as exc:  # moved, deleted or damaged since it was added
            row.update(runs=False, reason=str(exc), gpu=None, reference=None, gpu_bytes=None)
            rows.append(row)
            continue
        gpu = gpu_fit(model, ctx, limits, shares_system_memory(info), "native", free=free) if limits is not None else None
        ref = reference_fit(model, ctx, free=free)
        runs = (gpu is not None and gpu.ok) or ref.ok
        # not running anywhere: the reason whose fix lets one engine run (the longest context)
        failed = [f for f in (gpu, ref) if f is not None and not f.ok]
        reason = "" if runs else max(failed, key=lambda f: f.max_context or 0).reason
        if not own.chat_template and not e.can_chat:
            reason = reason or "a base model (no chat template): it completes text but cannot chat; choose a template for it"
        row.update(runs=runs, reason=reason, gpu=None if gpu is None else gpu.as_dict(), reference=ref.as_dict(),
                   gpu_bytes=estimate_gpu_bytes(model, ctx))  # what a GPU plan takes, with or without an adapter
        rows.append(row)
    return rows
