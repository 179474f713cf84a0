"""`companion --headless`: every engine on the golden prompts, one table, an exit code that
fails on any mismatch and on an unavailable engine only where it must run (CI)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest_browser import small_golden

from companion.errors import EngineUnavailable
from companion.headless import default_golden, run_engines, run_headless
from companion.settings import Settings


def _factory(reference_engine, broken: dict[str, Exception] | None = None, offset: float = 0.0):
    """Engines by name without a GPU: the reference under every name, shifted by `offset` for
    "native", or raising for the names in `broken`."""

    class Shifted:
        def __init__(self, inner, name):
            self.inner, self.name = inner, name
            self.adapter = "fake adapter"
            self.n_ctx = inner.n_ctx

        @property
        def n_past(self):
            return self.inner.n_past

        def reset(self, n_keep=0):
            self.inner.reset(n_keep)

        def eval(self, ids):
            out = self.inner.eval(ids).copy()
            if self.name == "native":
                out[7] += offset  # one logit off by `offset`
            return out

        def close(self):
            pass

    def make(name, model, n_ctx):
        if broken and name in broken:
            raise broken[name]
        return Shifted(reference_engine, name)

    return make


@pytest.fixture
def golden_small(golden, tmp_path):
    return small_golden(golden, tmp_path, prompts=1, steps=2)


def test_default_golden_exists():
    assert default_golden().is_file()


def test_unavailable_engine_is_reported_not_failed(reference_engine, model, golden_small, monkeypatch, capsys):
    monkeypatch.delenv("CI", raising=False)
    factory = _factory(reference_engine, broken={"browser": EngineUnavailable("no WebGPU adapter in this browser")})
    code = run_headless(Settings(), golden_small, True, factory=factory, model=model)
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["passed"]
    rows = {r["engine"]: r for r in out["engines"]}
    assert rows["browser"]["status"] == "unavailable" and "no WebGPU" in rows["browser"]["reason"]
    assert rows["native"]["status"] == "pass" and rows["native"]["max_abs_diff_reference"] == 0.0
    # under CI every engine must run
    monkeypatch.setenv("CI", "true")
    assert run_headless(Settings(), golden_small, True, factory=factory, model=model) == 1
    capsys.readouterr()
    # and so must the one the settings ask for
    monkeypatch.delenv("CI")
    assert run_headless(Settings(engine="browser"), golden_small, True, factory=factory, model=model) == 1


def test_logit_mismatch_fails(reference_engine, model, golden_small, monkeypatch, capsys):
    monkeypatch.delenv("CI", raising=False)
    results = run_engines(Settings(), golden_small, ("reference", "native"), _factory(reference_engine, offset=0.2), model=model)
    native = results[1]
    assert native.status == "fail" and native.max_abs_diff_reference == pytest.approx(0.2, abs=1e-4)
    assert "differ from the reference" in native.reason
    code = run_headless(Settings(), golden_small, False, engines=("reference", "native"), factory=_factory(reference_engine, offset=0.2), model=model)
    text = capsys.readouterr().out
    assert code == 1 and "FAIL" in text and "native" in text


def test_engine_error_fails(reference_engine, model, golden_small, monkeypatch, capsys):
    from companion.errors import CompanionError

    monkeypatch.delenv("CI", raising=False)
    factory = _factory(reference_engine, broken={"native": CompanionError("kernel exploded")})
    assert run_headless(Settings(), golden_small, True, engines=("reference", "native"), factory=factory, model=model) == 1
    rows = {r["engine"]: r for r in json.loads(capsys.readouterr().out)["engines"]}
    assert rows["native"]["status"] == "error"


@pytest.mark.browser
@pytest.mark.gpu
def test_all_three_engines_pass(chromium_required, gpu_adapter_info, golden, tmp_path, capsys):
    """The real thing on a cut golden file: reference, native (lavapipe in CI) and browser
    (headless Chromium on SwiftShader) all run and agree."""
    path = small_golden(golden, tmp_path, prompts=1, steps=2)
    code = run_headless(Settings(context_length=256), path, True)
    out = json.loads(capsys.readouterr().out)
    rows = {r["engine"]: r for r in out["engines"]}
    assert code == 0, out
    assert [r["status"] for r in out["engines"]] == ["pass", "pass", "pass"]
    assert "shader-f16" not in rows["browser"]["kernels"]  # SwiftShader: f32 paths
    for name in ("native", "browser"):
        assert rows[name]["max_abs_diff_reference"] <= rows[name]["tolerance"]
    assert rows["browser"]["max_abs_diff_reference"] <= 0.05
    assert "swiftshader" in rows["browser"]["adapter"].lower() or "webgpu" in rows["browser"]["adapter"].lower()
