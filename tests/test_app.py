"""Engine choice in the desktop app: the window's WebGPU where it is a real GPU, else native or
the reference, always with a reason the user can read."""

from __future__ import annotations

import types

import pytest

from companion.app import build_session
from companion.engines.choice import try_page_engine
from companion.errors import EngineUnavailable
from companion.settings import Settings


class FakeEngine:
    def __init__(self, adapter):
        self.adapter, self.closed = adapter, False

    def close(self):
        self.closed = True


def server(page_ready: bool):
    return types.SimpleNamespace(executor=types.SimpleNamespace(wait_for_page=lambda t: page_ready))


@pytest.fixture
def reports():
    return []


def test_no_executor_page_means_another_engine(model, reports):
    assert try_page_engine(Settings(), model, server(False), reports.append, page_wait=0) is None
    assert "no WebGPU executor" in reports[-1]


def test_real_gpu_page_runs_the_model(model, reports, monkeypatch):
    monkeypatch.setattr("companion.engines.browser.start_browser_engine", lambda *a, **k: FakeEngine("NVIDIA RTX 4070 via WebGPU"))
    eng = try_page_engine(Settings(), model, server(True), reports.append)
    assert eng is not None and not eng.closed


def test_cpu_emulated_page_is_skipped_for_auto_but_kept_when_asked(model, reports, monkeypatch):
    made = []
    monkeypatch.setattr("companion.engines.browser.start_browser_engine", lambda *a, **k: made.append(FakeEngine("google (swiftshader) via WebGPU")) or made[-1])
    assert try_page_engine(Settings(engine="auto"), model, server(True), reports.append) is None
    assert made[-1].closed and "CPU emulation" in reports[-1]
    assert try_page_engine(Settings(engine="browser"), model, server(True), reports.append) is made[-1]


def test_failed_page_engine_falls_back_at_start(model, reports, monkeypatch):
    def fail(*a, **k):
        raise EngineUnavailable("sample.wgsl:79: cannot index type 'f32'")

    monkeypatch.setattr("companion.engines.browser.start_browser_engine", fail)
    monkeypatch.setattr("companion.engines.choice.choose_engine", lambda adapter=None: ("reference", "test"))
    session = build_session(Settings(engine="browser"), report=reports.append, page_server=server(True), memory=False)
    assert session.engine_name == "reference"
    assert any("sample.wgsl:79" in r for r in reports)
