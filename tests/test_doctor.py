"""`companion doctor`: the report, the self-test, and a non-zero exit naming the problem."""

from __future__ import annotations

import json

from companion.doctor import format_report, one_prompt_golden, run_doctor
from companion.settings import Settings


def test_one_prompt_golden_keeps_the_first_prompt(golden_path, tmp_path):
    path = one_prompt_golden(golden_path, tmp_path)
    data = json.loads(path.read_text())
    assert len(data["prompts"]) == 1 and data["raw_tokenization"]


def test_doctor_reports_and_self_tests_the_reference(companion_home):
    """The whole report with the reference engine's parity prompt (the page probe and the GPU
    engines are exercised by the desktop and GPU tests)."""
    found = run_doctor(Settings(), engines=("reference",), page=False)
    assert found.ok, found.problems
    report = json.loads(json.dumps({**found.sections, "problems": found.problems, "ok": found.ok}, default=str))
    assert report["versions"]["companion"] and report["versions"]["wgpu"] != "not installed"
    assert report["paths"]["data folder"] == str(companion_home)
    assert report["paths"]["log file"].startswith(str(companion_home))
    assert report["model"]["check"] == "size and sha256 verified"
    assert isinstance(report["native adapters"], list)
    for a in report["native adapters"]:
        assert {"device", "type", "backend", "features", "limits", "cpu_emulation"} <= set(a)
    (ref,) = report["self-test"]
    assert ref["engine"] == "reference" and ref["status"] == "pass"


def test_doctor_fails_naming_a_damaged_model(companion_home, tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 60)  # a header and nothing else
    report = run_doctor(Settings(model_path=bad), engines=(), page=False)
    assert not report.ok
    assert any(p.startswith("model:") for p in report.problems), report.problems
    text = format_report(report)
    assert "FAIL" in text and "✗ model:" in text

