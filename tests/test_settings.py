"""Settings: every COMPANION_* variable is a Settings field (COMPANION_HOME aside), and a bad
value, in the environment or settings.json, is a one-line error naming it and what is allowed."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from companion.errors import CompanionError
from companion.settings import Settings, SettingsError, env_name

REPO = Path(__file__).resolve().parents[1]

BAD_VALUES = [
    ("COMPANION_GPU_LAYOUT", "banana", "auto, rows, splitk"),
    ("COMPANION_ENGINE", "warp", "auto, reference, native, browser"),
    ("COMPANION_CONTEXT_LENGTH", "abc", "whole number >= 64"),
    ("COMPANION_GPU_FEATURES", "f64", "auto, none, f16, subgroups"),
    ("COMPANION_TEMPERATURE", "-1", "number >= 0"),
    ("COMPANION_TOP_P", "1.5", "number > 0.0 and <= 1.0"),
    ("COMPANION_MEMORY_ENABLED", "perhaps", "true or false"),
    ("COMPANION_XVFB", "maybe", "true or false"),
]


def _cli(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("COMPANION_")}
    return subprocess.run(
        [sys.executable, "-m", "companion", *args],
        env={**clean, "COMPANION_HOME": str(home), **env},
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip


@pytest.mark.parametrize(("var", "value", "allowed"), BAD_VALUES[:5])
def test_a_bad_variable_is_one_line_from_the_cli(companion_home, var, value, allowed):
    # `chat --help` loads the settings (the group's callback runs first) but no model
    out = _cli(companion_home, "chat", "--help", **{var: value})
    assert out.returncode != 0 and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "Traceback" not in out.stderr and "ValidationError" not in out.stderr
    assert f"{var}={value!r} is not valid" in lines[0] and allowed in lines[0]


def test_a_bad_settings_file_is_one_line_from_the_cli(companion_home):
    (companion_home / "settings.json").write_text(json.dumps({"temperature": 0.5, "gpu_layout": "banana"}))
    out = _cli(companion_home, "chat", "--help")
    lines = out.stderr.strip().splitlines()
    assert out.returncode != 0 and len(lines) == 1 and "Traceback" not in out.stderr
    assert str(companion_home / "settings.json") in lines[0]
    assert "gpu_layout='banana' is not valid: use one of auto, rows, splitk" in lines[0]
    # the environment wins over the file, and then the file is fine
    assert _cli(companion_home, "chat", "--help", COMPANION_GPU_LAYOUT="rows").returncode == 0


@pytest.mark.parametrize(("var", "value", "allowed"), BAD_VALUES)
def test_bad_variables_raise_one_line_settings_errors(monkeypatch, var, value, allowed):
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError) as exc:
        Settings.load()
    assert isinstance(exc.value, CompanionError) and exc.value.__cause__ is None
    text = str(exc.value)
    assert "\n" not in text and f"{var}={value!r} is not valid" in text and allowed in text


def test_bad_settings_files(companion_home):
    path = companion_home / "settings.json"
    for content, expected in [
        ('{"temperature": ', "cannot be read"),
        ("[1, 2]", "must hold a JSON object"),
        ('{"engine": "warp", "top_k": -3}', "engine='warp' is not valid: use one of auto, reference, native, browser; top_k=-3 is not valid: use a whole number >= 0"),
    ]:  # fmt: skip
        path.write_text(content)
        with pytest.raises(SettingsError) as exc:
            Settings.load()
        assert str(path) in str(exc.value) and expected in str(exc.value)
        assert "\n" not in str(exc.value) and "fix or delete" in str(exc.value)


def test_file_then_environment(companion_home, monkeypatch):
    (companion_home / "settings.json").write_text(json.dumps({"gpu_layout": "rows", "temperature": 0.2}))
    s = Settings.load()
    assert s.gpu_layout == "rows" and s.temperature == 0.2 and s.xvfb is False
    monkeypatch.setenv("COMPANION_GPU_LAYOUT", "splitk")
    monkeypatch.setenv("COMPANION_XVFB", "1")
    monkeypatch.setenv("COMPANION_SEED", "")  # empty: unset, as click treats it
    s = Settings.load()
    assert s.gpu_layout == "splitk" and s.temperature == 0.2 and s.xvfb is True and s.seed is None
    # xvfb describes this process: never saved
    s.save()
    assert "xvfb" not in json.loads((companion_home / "settings.json").read_text())


def test_library_defaults_come_from_settings(companion_home, monkeypatch):
    """Where a GPU or Chromium choice is not given, it is the setting (file or environment)."""
    from companion.chromium import chromium_path
    from companion.gpu.adapters import choose_features, choose_layout, is_auto_features

    h100 = {"device": "NVIDIA H100", "adapter_type": "DiscreteGPU"}
    (companion_home / "settings.json").write_text(json.dumps({"gpu_layout": "rows", "gpu_features": "none"}))
    assert choose_layout(h100)[0] == "rows"
    assert choose_layout(h100, "auto")[0] == "splitk"  # an explicit argument wins
    assert choose_features(["shader-f16", "subgroups"])[0] == [] and not is_auto_features(None)
    monkeypatch.setenv("COMPANION_GPU_FEATURES", "subgroups")
    assert choose_features(["shader-f16", "subgroups"])[0] == ["subgroups"]
    monkeypatch.setenv("COMPANION_CHROMIUM", "/opt/my/chromium")
    assert chromium_path() == "/opt/my/chromium"


def test_window_environment_follows_settings(monkeypatch):
    from companion.shell import window

    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(window.os, "geteuid", lambda: 1000, raising=False)
    for var in ("QTWEBENGINE_DISABLE_SANDBOX", "QT_QUICK_BACKEND", "QTWEBENGINE_CHROMIUM_FLAGS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    window.configure_webview_environment(Settings(software_rendering=True))
    assert os.environ["QT_QUICK_BACKEND"] == "software" and "QTWEBENGINE_DISABLE_SANDBOX" not in os.environ
    monkeypatch.delenv("QT_QUICK_BACKEND")
    monkeypatch.setenv("COMPANION_XVFB", "yes")  # None: Settings.load()
    window.configure_webview_environment()
    assert os.environ["QT_QUICK_BACKEND"] == "software" and os.environ["QTWEBENGINE_DISABLE_SANDBOX"] == "1"


def test_memory_character_comes_from_the_environment_only(companion_home, monkeypatch):
    """`companion memory --character` defaults to COMPANION_CHARACTER, not the saved active
    character: without either, the memory commands cover every character."""
    from companion.memory.cli import _character_from_environment

    Settings(character="Aiko").save()
    assert _character_from_environment() is None
    monkeypatch.setenv("COMPANION_CHARACTER", "Io")
    assert _character_from_environment() == "Io"


def test_every_companion_variable_is_a_setting():
    """The library reads no COMPANION_* variable itself: each one it names is a Settings field
    (COMPANION_HOME, which locates settings.json, aside)."""
    fields = {env_name(f) for f in Settings.model_fields}
    named: dict[str, set[str]] = {}
    direct = []
    for path in sorted((REPO / "companion").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for var in re.findall(r"\bCOMPANION_[A-Z_]*[A-Z]\b", text):
            named.setdefault(var, set()).add(path.name)
        if path.name != "settings.py" and re.search(r"(environ|getenv|envvar)\W+[\"']COMPANION_", text):
            direct.append(path.relative_to(REPO).as_posix())
    assert not {v: p for v, p in named.items() if v not in fields | {"COMPANION_HOME"}}
    assert direct == []


def test_gpu_words_match_the_kernel_variants():
    """The feature words settings accepts (companion.gpu) are the kernel variants' names."""
    from companion.gpu import FEATURE_ALIASES, FEATURE_WORDS
    from companion.gpu.adapters import VARIANTS

    assert [short for short, _, _ in VARIANTS.values()] == list(FEATURE_WORDS[2:])
    assert set(FEATURE_ALIASES.values()) == set(VARIANTS)
