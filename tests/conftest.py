"""Shared fixtures. Every test gets its own COMPANION_HOME, so none touches the real home."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")

REPO = Path(__file__).resolve().parents[1]
_SHARED_GOLDEN = REPO.parent / "shared" / "golden" / "smollm2_golden.json"
GOLDEN_PATH = _SHARED_GOLDEN if _SHARED_GOLDEN.exists() else REPO / "companion" / "data" / "smollm2_golden.json"

# Fixtures owned by each area live beside this file (tests/ is on sys.path in prepend mode).
pytest_plugins = [
    m for m in ("conftest_gpu", "conftest_memory", "conftest_web", "conftest_browser", "conftest_avatar", "conftest_vrm") if (Path(__file__).parent / f"{m}.py").exists()
]


@pytest.fixture(autouse=True)
def companion_home(tmp_path_factory, monkeypatch) -> Path:
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("COMPANION_HOME", str(home))
    for var in list(os.environ):
        if var.startswith("COMPANION_") and var != "COMPANION_HOME":
            monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture(scope="session")
def golden_path() -> Path:
    return GOLDEN_PATH


@pytest.fixture(scope="session")
def golden() -> dict:
    return json.loads(GOLDEN_PATH.read_text())


@pytest.fixture(scope="session")
def model():
    """The default model (SmolLM2-135M Q4_1), loaded once."""
    from companion.model import load_model

    return load_model(None, verify=False)


@pytest.fixture(scope="session")
def reference_weights(model):
    from companion.engines.reference import ReferenceModel

    return ReferenceModel(model)


@pytest.fixture
def reference_engine(reference_weights):
    from companion.engines.reference import ReferenceEngine

    return ReferenceEngine(reference_weights, n_ctx=512)
