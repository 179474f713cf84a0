"""The model on the GPU: WGSL kernels (shaders/, composed by shaders.py), the plan that wires
them (plan.py, builder.py), the adapters they run on (adapters.py) and the wgpu-py executor
(executor.py). The page's executor (ui/engine/) runs the same plan and composed shaders.

The words a user may choose the GPU options with are defined here, once: settings validates
with them and adapters.py acts on them (as companion.engines does for engine names)."""

from __future__ import annotations

from typing import Literal, get_args

# The matmul layout (adapters.choose_layout): "rows" for CPU rasterizers, "splitk" for GPUs.
GpuLayout = Literal["auto", "rows", "splitk"]
LAYOUTS: tuple[str, ...] = tuple(x for x in get_args(GpuLayout) if x != "auto")

# Optional kernel features a user may allow: the word typed -> the WebGPU feature name.
FEATURES_ENV = "COMPANION_GPU_FEATURES"  # Settings.gpu_features
FEATURE_ALIASES = {"f16": "shader-f16", "shader-f16": "shader-f16", "subgroups": "subgroups", "subgroup": "subgroups"}
FEATURE_WORDS = ("auto", "none", "f16", "subgroups")  # as help and errors spell them


def parse_allowed(text: str | None) -> set[str] | None:
    """Features a user allows (WebGPU names) from "auto" | "none" | "f16,subgroups"; None = all."""
    text = (text or "auto").strip().lower()
    if text in ("auto", "all", ""):
        return None
    if text in ("none", "f32", "off"):
        return set()
    out = set()
    for part in text.replace(" ", "").split(","):
        if part not in FEATURE_ALIASES:
            raise ValueError(f"{FEATURES_ENV}: unknown GPU feature {part!r} (use {', '.join(FEATURE_WORDS)})")
        out.add(FEATURE_ALIASES[part])
    return out
