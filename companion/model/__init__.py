"""Model loading: GGUF file, config, tensors, tokenizer, chat template."""

from __future__ import annotations

from pathlib import Path

from companion.model.gguf_model import GGUFModel, ModelConfig, TensorInfo


def load_model(path: str | Path | None = None, *, verify: bool = True) -> GGUFModel:
    """Load a GGUF from disk; None loads the default model (verified by size and sha256). A
    `path` that is no file but a name from `companion model list` loads that model."""
    if path is None:
        from companion.model.default import default_model_path, verify_default_model

        p = default_model_path()
        if verify:
            verify_default_model(p)
        return GGUFModel(p)
    if not Path(path).exists() and "/" not in str(path) and not str(path).endswith(".gguf"):
        from companion.model.registry import resolve

        named = resolve(str(path))
        if named is not None:
            return GGUFModel(named)
    return GGUFModel(path)


__all__ = ["GGUFModel", "ModelConfig", "TensorInfo", "load_model"]
