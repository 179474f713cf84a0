"""Shared fixtures. Every test gets its own COMPANION_HOME, so none touches the real home."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
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


@pytest.fixture
def shader_dir(tmp_path, monkeypatch) -> Iterator[Callable[..., Path]]:
    """Point the shader loader at a folder of the test's own: `use({name: text})` writes those
    files, `use(copy_real=True)` starts from a copy of the shipped kernels; it returns the
    folder. The loader's caches are cleared before and after."""
    from companion.gpu import shaders
    from companion.resources import shaders_dir

    folder = tmp_path / "shaders"

    def use(files: dict[str, str] | None = None, *, copy_real: bool = False) -> Path:
        if copy_real:
            shutil.copytree(str(shaders_dir()), folder)
        folder.mkdir(exist_ok=True)
        for name, text in (files or {}).items():
            (folder / name).write_text(text)
        monkeypatch.setattr(shaders, "_shader_dir", lambda: folder)
        shaders.clear_cache()
        return folder

    yield use
    shaders.clear_cache()


def decode_ids(eng, params, prompt: list[int], n: int) -> list[int]:
    """n ids of a decode loop as the chat's generate_ids writes it (history grows with each id),
    from a fresh sequence."""
    from companion.sampling import Sampler

    eng.reset()
    sampler = Sampler(params)
    history = list(prompt)
    tok = eng.next_token(prompt, sampler, history)
    out = [tok]
    for _ in range(n - 1):
        history.append(tok)
        tok = eng.next_token([tok], sampler, history)
        out.append(tok)
    return out


def break_step_helper(folder: Path) -> int:
    """Append an undeclared name to the shared helper _step.wgsl (which every kernel includes);
    returns the broken line's number."""
    step = folder / "_step.wgsl"
    lines = step.read_text().splitlines() + ["fn broken() -> u32 { return undeclared_name; }"]
    step.write_text("\n".join(lines) + "\n")
    return len(lines)
