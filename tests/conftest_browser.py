"""Fixtures for the browser engine (imported by tests/conftest.py): the plan assets of the
default model, and pages of the shared headless Chromium (tests/conftest_web.py) running the
WebGPU executor against a private loopback server."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from companion.bridge.server import BridgeServer

N_CTX = 256  # enough for the test prompts; keeps SwiftShader's buffers small


def require_chromium() -> None:
    """Skip without Debian's Chromium, except under CI=true where it must be installed."""
    from companion.chromium import chromium_path

    chromium = chromium_path()
    if not os.access(chromium, os.X_OK):
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI must run the browser tests, but there is no Chromium at {chromium}")
        pytest.skip(f"no Chromium at {chromium} (apt-get install chromium)")


@pytest.fixture(scope="session")
def chromium_required() -> None:
    """Request before `chromium`: under CI=true a missing Chromium or playwright fails the
    browser tests instead of skipping them."""
    require_chromium()
    if os.environ.get("CI", "").lower() == "true":
        import playwright.sync_api  # noqa: F401 - must be installed in CI


@pytest.fixture(scope="session")
def plan_assets(model):
    """The default model's plan, built once for every browser test."""
    from companion.engines.browser import PlanAssets

    return PlanAssets(model, N_CTX)


@dataclass
class PageEngine:
    """A loopback server, a Chromium page on it and a BrowserEngine driving its executor."""

    server: BridgeServer
    page: Any
    engine: Any
    errors: list[str]


def open_page_engine(chromium: Any, assets: Any, model: Any, *, init_script: str | None = None, shaders_root: Path | None = None, chat: Any = None, load: bool = True) -> PageEngine:
    """Serve the real page; load it in a new tab; attach a BrowserEngine to its executor."""
    from companion.engines.browser import BrowserEngine

    server = BridgeServer(chat, plan=assets.plan_json, blobs=assets.blob, model_path=Path(model.path), shaders_root=shaders_root)
    url = server.start()
    page = chromium.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    if init_script:
        page.add_init_script(init_script)
    page.goto(url)
    assert server.executor.wait_for_page(60), f"the page did not connect its executor: {errors}"
    engine = BrowserEngine(server.executor, assets, report=lambda m: None, publish=server.publish)
    if load:
        engine.load()
    return PageEngine(server, page, engine, errors)


def close_page_engine(pe: PageEngine) -> None:
    pe.engine.close()
    pe.page.close()
    pe.server.stop()


@pytest.fixture(scope="module")
def page_engine(chromium_required, chromium, plan_assets, model) -> Iterator[PageEngine]:
    """A loaded browser engine in a page of the shared Chromium (one load per test module)."""
    pe = open_page_engine(chromium, plan_assets, model)
    try:
        yield pe
    finally:
        close_page_engine(pe)


def small_golden(golden: dict, tmp: Path, prompts: int = 1, steps: int = 3) -> Path:
    """A copy of the golden file cut to a few prompts and steps (test time on SwiftShader)."""
    cut = dict(golden)
    cut["prompts"] = [
        {**p, "generated_token_ids": p["generated_token_ids"][:steps], "top5_each_generated_position": p["top5_each_generated_position"][:steps]}
        for p in golden["prompts"][:prompts]
    ]
    cut["raw_tokenization"] = golden.get("raw_tokenization", [])[:2]
    path = tmp / "golden_small.json"
    path.write_text(json.dumps(cut))
    return path
