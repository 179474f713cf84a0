"""`companion --headless`: every engine on the golden prompts, side by side.

Each engine (reference, native, browser) is run teacher-forced on the golden prompts
(companion.parity) and checked against llama.cpp's top-5 logits; the GPU engines are also
checked against the numpy reference over the whole vocabulary at every position, where f32
kernels must agree to F32_TOLERANCE (F16_TOLERANCE for a plan using shader-f16). An engine that cannot start here (no adapter, no
Chromium) is reported as unavailable: that fails the run only under CI=true (where lavapipe
and headless Chromium are installed and all three must run), when it is the reference, or
when it is the engine the settings name explicitly.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from companion._delegate import delegate
from companion.engines import ENGINE_NAMES
from companion.engines.base import Engine
from companion.errors import CompanionError, EngineUnavailable
from companion.settings import Settings

ENGINES = ENGINE_NAMES
F32_TOLERANCE = 0.05  # largest |engine - reference| logit allowed for an f32 GPU path
F16_TOLERANCE = 0.5  # the same for a plan with f16 inner products and an f16 KV cache
_BUNDLED = Path(__file__).resolve().parent / "data" / "smollm2_golden.json"
_GOLDEN_NAME = Path("shared") / "golden" / "smollm2_golden.json"


def default_golden(model=None) -> Path:
    """The golden file for `model` (None: the default model): for the default model,
    ../shared/golden/smollm2_golden.json (beside the checkout or the working directory) if
    present, else the copy bundled with the package; for another model, the bundled golden
    made on a file of its name and size (quantized weights first), else CompanionError."""
    if model is not None and Path(model.path).name != json.loads(_BUNDLED.read_text())["model_file"].split(" ")[0]:
        found = []
        for p in sorted(_BUNDLED.parent.glob("*_golden.json")):
            g = json.loads(p.read_text())
            if g.get("model_file") == Path(model.path).name and g.get("model_size_bytes") == model.size:
                found.append((g.get("weights", "quantized") != "quantized", p))
        if not found:
            raise CompanionError(f"no bundled golden file for {Path(model.path).name}: pass --golden (scripts/make_golden.py makes one)")
        return min(found)[1]
    for root in (Path(__file__).resolve().parents[2], Path.cwd().parent, Path.cwd()):
        candidate = root / _GOLDEN_NAME
        if candidate.is_file():
            return candidate
    return _BUNDLED


class EngineResult(BaseModel):
    """One engine's row of the table."""

    engine: str
    status: str  # "pass" | "fail" | "unavailable" | "error"
    adapter: str = ""
    load_s: float | None = None
    tokens_per_s: float | None = None  # teacher-forced positions per second
    max_abs_diff_golden: float | None = None  # vs llama.cpp's top-5 logits
    max_abs_diff_reference: float | None = None  # vs the numpy reference, whole vocabulary
    top1_golden_clear: str = ""  # "agree/steps" where llama.cpp's margin is clear
    top1_golden_all: str = ""  # "agree/steps" over every step
    top1_reference: str = ""  # "agree/positions" with the reference's argmax
    kernels: str = ""  # the plan's kernel variants: "f32", or its WebGPU features
    tolerance: float | None = None  # the max |Δ| reference allowed for those kernels
    reason: str = ""  # why it failed or could not run
    required: bool = False  # an unavailable engine fails the run

    @property
    def failed(self) -> bool:
        return self.status in ("fail", "error") or (self.status == "unavailable" and self.required)


class _Recorder(Engine):
    """Passes calls through to an engine and keeps every logits row eval() returned."""

    def __init__(self, inner: Engine):
        self.inner = inner
        self.name = inner.name
        self.rows: list[np.ndarray] = []

    adapter: str = delegate("inner", "adapter")
    n_ctx: int = delegate("inner", "n_ctx")
    n_past: int = delegate("inner", "n_past")

    def reset(self, n_keep: int = 0) -> None:
        self.inner.reset(n_keep)

    def eval(self, ids: Sequence[int]) -> np.ndarray:
        row = self.inner.eval(ids)  # (V,)
        self.rows.append(np.asarray(row, np.float32).copy())
        return row


EngineFactory = Callable[[str, Any, int], Engine]


def _create(name: str, model, n_ctx: int, settings: Settings) -> Engine:
    from companion.engines.choice import create_engine

    return create_engine(name, model, n_ctx, settings.adapter, report=lambda m: None)


def run_engines(
    settings: Settings,
    golden_path: Path,
    engines: Sequence[str] = ENGINES,
    factory: EngineFactory | None = None,
    model=None,
    progress: Callable[[str], None] = lambda m: None,
) -> list[EngineResult]:
    """Run each engine on the golden file; the first (the reference) is what the others'
    logits are compared with."""
    from companion.model import load_model
    from companion.parity import run_parity

    model = model if model is not None else load_model(settings.model_path)
    ci = os.environ.get("CI", "").lower() == "true"
    results: list[EngineResult] = []
    ref_rows: list[np.ndarray] | None = None
    for name in engines:
        required = ci or name == "reference" or settings.engine == name
        progress(f"{name}: starting")
        t0 = time.perf_counter()
        try:
            if factory is not None:
                eng = factory(name, model, settings.context_length)
            else:
                eng = _create(name, model, settings.context_length, settings)
        except (EngineUnavailable, ImportError) as exc:
            results.append(EngineResult(engine=name, status="unavailable", reason=str(exc), required=required))
            continue
        except CompanionError as exc:
            results.append(EngineResult(engine=name, status="error", reason=str(exc), required=required))
            continue
        load_s = time.perf_counter() - t0
        feats = _plan_features(eng)
        tol = F16_TOLERANCE if "shader-f16" in feats else F32_TOLERANCE
        rec = _Recorder(eng)
        progress(f"{name}: running the golden prompts on {eng.adapter}")
        try:
            report = run_parity(rec, model.tokenizer, golden_path, model.chat_template_or_none, f16="shader-f16" in feats)
        except CompanionError as exc:
            results.append(EngineResult(engine=name, status="error", adapter=eng.adapter, load_s=round(load_s, 2), reason=str(exc), required=required))
            continue
        finally:
            eng.close()
        ps = report.prompts
        res = EngineResult(
            engine=name,
            status="pass",
            adapter=report.adapter,
            load_s=round(load_s, 2),
            tokens_per_s=report.tokens_per_s,
            max_abs_diff_golden=max((p.max_abs_logit_diff for p in ps), default=0.0),
            top1_golden_clear=f"{sum(p.top1_agree_clear for p in ps)}/{sum(p.clear_steps for p in ps)}",
            top1_golden_all=f"{sum(p.top1_agree_all for p in ps)}/{sum(p.steps for p in ps)}",
            required=required,
            kernels=", ".join(feats) or ("f32" if name != "reference" else "numpy"),
            tolerance=None if name == "reference" else tol,
        )
        reasons = []
        if not report.passed:
            bad = [str(p.index) for p in ps if not p.ok]
            reasons.append(f"golden parity failed (prompts {', '.join(bad) or '-'}; tokenizer mismatches {len(report.raw_tokenization_mismatches)})")
        bad_rows = sum(int(not np.isfinite(r).all()) for r in rec.rows)
        if bad_rows:
            reasons.append(f"{bad_rows} of {len(rec.rows)} logits rows hold NaN or infinity")
        if ref_rows is None:
            ref_rows = rec.rows
        else:
            if len(ref_rows) != len(rec.rows):
                reasons.append(f"evaluated {len(rec.rows)} positions, the reference {len(ref_rows)}")
            else:
                diff = max((float(np.abs(a - b).max()) for a, b in zip(rec.rows, ref_rows, strict=True)), default=0.0)
                agree = sum(int(np.argmax(a) == np.argmax(b)) for a, b in zip(rec.rows, ref_rows, strict=True))
                res.max_abs_diff_reference = round(diff, 5)
                res.top1_reference = f"{agree}/{len(ref_rows)}"
                if not diff <= tol:  # NaN fails too
                    reasons.append(f"logits differ from the reference by {diff:.4f} > {tol} ({res.kernels} kernels)")
        if reasons:
            res.status = "fail"
            res.reason = "; ".join(reasons)
        results.append(res)
    return results


def _plan_features(engine: Engine) -> list[str]:
    """WebGPU features the engine's plan uses (its kernel variants); [] for f32 or numpy."""
    feats = getattr(engine, "features", None)
    if feats is None:
        plan = getattr(engine, "plan", None)
        feats = getattr(plan, "features", None)
    return sorted(str(f) for f in feats) if isinstance(feats, list | tuple) else []


def _print_table(results: list[EngineResult], golden: Path, passed: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"companion --headless · {golden}")
    t.add_column("engine")
    t.add_column("adapter", max_width=34, overflow="ellipsis", no_wrap=True)
    t.add_column("kernels")
    for col in ("load s", "tok/s", "max|Δ| llama.cpp", "max|Δ| ref (tol)", "top-1 clear", "top-1 ref", "result"):
        t.add_column(col, justify="right")

    def num(v: float | None, fmt: str) -> str:
        return "—" if v is None else format(v, fmt)

    marks = {"pass": "[green]pass[/]", "fail": "[red]FAIL[/]", "error": "[red]ERROR[/]"}
    for r in results:
        mark = marks.get(r.status) or ("[red]UNAVAILABLE[/]" if r.required else "[yellow]unavailable[/]")
        t.add_row(
            r.engine, r.adapter or "—", r.kernels or "—", num(r.load_s, ".1f"), num(r.tokens_per_s, ".1f"),
            num(r.max_abs_diff_golden, ".4f"),
            "—" if r.max_abs_diff_reference is None else f"{r.max_abs_diff_reference:.5f} ({r.tolerance:g})",
            r.top1_golden_clear or "—", r.top1_reference or "—", mark,
        )  # fmt: skip
    import sys

    console = Console() if sys.stdout.isatty() else Console(width=140)
    console.print(t)
    for r in results:
        if r.reason:
            console.print(f"{r.engine}: {r.reason}", markup=False, highlight=False)
    console.print("PASS" if passed else "FAIL")


def run_headless(
    settings: Settings,
    golden_path: Path | None,
    as_json: bool,
    *,
    engines: Sequence[str] = ENGINES,
    factory: EngineFactory | None = None,
    model=None,
) -> int:
    """Run every engine on the golden prompts, print a table (or JSON); 0 when all that must
    pass did, 1 otherwise."""
    if golden_path is None and model is None and settings.model_path is not None:
        from companion.model import load_model

        model = load_model(settings.model_path)
    golden = Path(golden_path) if golden_path is not None else default_golden(model)
    progress: Callable[[str], None] = (lambda m: None) if as_json else (lambda m: print(m, flush=True))
    results = run_engines(settings, golden, engines, factory, model=model, progress=progress)
    passed = not any(r.failed for r in results)
    if as_json:
        print(json.dumps({
            "golden": str(golden), "passed": passed, "f32_tolerance": F32_TOLERANCE, "f16_tolerance": F16_TOLERANCE,
            "engines": [r.model_dump() for r in results],
        }))  # fmt: skip
    else:
        _print_table(results, golden, passed)
    return 0 if passed else 1
