"""Locate the ui/ and shaders/ folders: packages companion.ui / companion.shaders when
installed (wheel, editable install, frozen app), else the folders of a source checkout."""

from __future__ import annotations

import importlib.resources
import importlib.util
from importlib.resources.abc import Traversable
from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]  # source checkout: companion/ -> repo root


def _package_or_folder(package: str, folder: str) -> Traversable:
    try:
        spec = importlib.util.find_spec(package)
    except ModuleNotFoundError:
        spec = None
    if spec is not None and spec.submodule_search_locations:
        # A real folder, also where the package has no __init__.py (a wheel, the frozen app):
        # importlib.resources.files() gives a MultiplexedPath there, which is no file path.
        return Path(next(iter(spec.submodule_search_locations)))
    if spec is not None:
        return importlib.resources.files(package)
    return _REPO / folder


def ui_dir() -> Traversable:
    """The page's files (index.html, *.js, style.css, bridge-schema.json)."""
    return _package_or_folder("companion.ui", "ui")


def shaders_dir() -> Traversable:
    """The WGSL kernels shared by both executors."""
    return _package_or_folder("companion.shaders", "shaders")
