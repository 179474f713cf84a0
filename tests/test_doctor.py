"""`companion doctor`: the report, the self-test, and a non-zero exit naming the problem."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

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


def test_page_probe_reports_the_webview(companion_home):
    """The probe subprocess answers with the webview's view of WebGPU (offscreen, no display)."""
    pytest.importorskip("PyQt6.QtWebEngineCore")
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    proc = subprocess.run(
        [sys.executable, "-m", "companion.doctor", "--probe-page"], env=env,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["webview"].startswith("Qt WebEngine (Chromium ")
    assert "webgpu" in result, result  # the page answered: an adapter, or why there is none
    assert "adapter" in result or "error" in result


def _can_unshare_net() -> bool:
    import shutil

    if not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _can_unshare_net(), reason="needs root and network namespaces (unshare -n)")
def test_no_network_parity_prompt_and_chat_turn(companion_home):
    """Inside a network namespace with no interfaces at all (not even loopback), the installed
    app checks its model, passes a golden parity prompt and answers a chat turn: nothing it
    needs is fetched at run time."""
    env = dict(os.environ, COMPANION_HOME=str(companion_home))
    doctor = subprocess.run(
        ["unshare", "-n", sys.executable, "-m", "companion", "doctor", "--engines", "reference", "--no-page", "--json"],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert doctor.returncode == 0, doctor.stdout[-2000:] + doctor.stderr[-2000:]
    report = json.loads(doctor.stdout.strip().splitlines()[-1])
    assert report["ok"] and report["self-test"][0]["status"] == "pass"
    chat = subprocess.run(
        ["unshare", "-n", sys.executable, "-m", "companion", "chat", "--engine", "reference",
         "--max-tokens", "8", "--seed", "1", "Hello!"],
        env=env, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert chat.returncode == 0, chat.stderr[-2000:]
    assert chat.stdout.strip()  # some words came back
    ip = subprocess.run(["unshare", "-n", "cat", "/proc/net/dev"], capture_output=True, text=True).stdout
    assert "eth" not in ip and "ens" not in ip  # really no network interface there


def test_a_crash_leaves_its_stacks_in_crash_log_and_the_doctor_points_at_it(companion_home):
    """A segfault in a native library (Qt, a driver) kills the desktop app without a Python
    traceback; record_crashes() (the app's start) makes it leave every thread's stack in
    logs/crash.log, and `companion doctor` lists that file for a bug report."""
    import os
    import subprocess
    import sys

    from companion.doctor import paths

    assert "crash log" not in paths(Settings())
    code = "from companion.logs import record_crashes; record_crashes(); import faulthandler; faulthandler._sigsegv()"
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, "COMPANION_HOME": str(companion_home)},
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode != 0
    crash = companion_home / "logs" / "crash.log"
    text = crash.read_text()
    assert "Fatal Python error: Segmentation fault" in text and 'File "<string>", line 1' in text
    assert paths(Settings())["crash log"].startswith(str(crash))
