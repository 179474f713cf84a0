"""The browser engine: the model runs in a page's WebGPU executor (ui/engine/), driven over the
bridge. Python builds the plan (companion.gpu.builder) and serves it, its weight blobs and the
GGUF byte ranges from the loopback server; the page only executes.

`start_browser_engine()` uses the desktop page when one with an executor is attached to the
given server, and otherwise starts its own loopback server and a headless Chromium (Debian's
`/usr/bin/chromium`, driven by playwright when it is installed) with the WebGPU flags.
Every failure (no WebGPU, no adapter, a kernel that does not compile, a lost device, a page
that went away) surfaces as `EngineUnavailable`, so ChatSession falls back to native.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from companion.bridge.engine_channel import ExecutorChannel, PageExecutorError
from companion.bridge.messages import EngineLoad, EngineReset, EngineStatus, Generate, Logits, Token
from companion.chromium import HeadlessChromium
from companion.engines.base import Engine, RunAhead
from companion.errors import EngineUnavailable
from companion.sampling import Sampler

log = logging.getLogger(__name__)

PAGE_TIMEOUT = 60.0  # s for a launched page to connect its executor
LOAD_TIMEOUT = 900.0  # s for engine_load (compiling kernels on SwiftShader is slow)
STEP_TIMEOUT = 600.0  # s for one generate (a long prompt prefilled on a CPU adapter)
MAX_BATCH = 64  # token rows per prefill chunk, as NativeEngine
_Answer = TypeVar("_Answer", Logits, Token)  # what the page answers a generate request with
AHEAD = 4  # decode steps per request when the page runs ahead of the caller (native times its steps: native.AHEAD, BURST_S)
EXECUTOR_PAGE = "/engine/host.html"  # the executor alone (no chat view, no avatar animation)


def probed_subgroup_size(adapter_info: dict[str, str] | None) -> int | None:
    """The subgroup size the page's probe found (`subgroup-size`: every subgroup that size and
    in invocation order, ui/engine/webgpu-executor.js probeSubgroups), if it is one a plan can
    use: a power of two from 4 to 128."""
    from companion.gpu.adapters import usable_subgroup_size

    raw = str((adapter_info or {}).get("subgroup-size", ""))
    n = int(raw) if raw.isdigit() and len(raw) <= 3 else 0
    return n if usable_subgroup_size(n) else None


class PlanAssets:
    """The plan for one model and the bytes it refers to, served by the loopback server:
    /plan.json?features=... (built for the page's adapter, plus each GGUF tensor's file offset)
    and /plan/blob/<name> (the blobs of the plan built last)."""

    def __init__(self, model, n_ctx: int, max_batch: int = MAX_BATCH, allow: str | Sequence[str] | None = None):
        from companion.gpu.builder import MAX_HIST

        self.model = model
        cfg = model.config
        self.n_ctx = min(n_ctx, cfg.n_ctx_train) if cfg.n_ctx_train else n_ctx  # as build_plan
        self.max_batch = max_batch
        self.allow = allow  # features the user permits (None: COMPANION_GPU_FEATURES, default all)
        self.info = {"n_ctx": self.n_ctx, "n_vocab": cfg.n_vocab, "max_hist": MAX_HIST}
        self._lock = threading.Lock()
        self._key: tuple[tuple[str, ...], str, int | None] | None = None  # (kernel variants, matmul layout, subgroup size)
        self._built: Any = None  # companion.gpu.builder.BuiltPlan of the last request
        self._json: dict[str, Any] | None = None

    def build(self, features: Sequence[str] = (), adapter_info: dict[str, str] | None = None):  # -> BuiltPlan
        """The plan for an adapter offering `features` (WebGPU names), described by
        `adapter_info` (vendor, architecture, device, description: picks the matmul layout);
        the last one is kept."""
        from companion.gpu.adapters import choose_features, choose_layout, page_adapter_info
        from companion.gpu.builder import build_plan
        from companion.gpu.fit import gpu_fit, shares_system_memory

        info = page_adapter_info(adapter_info)
        limits = {k: int(v) for k, v in (adapter_info or {}).items() if k.startswith("max-") and str(v).isdigit()}
        if limits:  # before any weight is read: a one-line reason if the model cannot fit
            gpu_fit(self.model, self.n_ctx, limits, shares_system_memory(info), "browser").raise_unless_ok()
        sg = probed_subgroup_size(adapter_info)
        used = tuple(sorted(choose_features(features, self.allow)[0]))  # the variants it picks
        key = (used, choose_layout(info)[0], sg)
        with self._lock:
            if self._built is None or key != self._key:
                self._built, self._json = None, None  # one set of blobs in memory at a time
                self._built = build_plan(self.model, n_ctx=self.n_ctx, max_batch=self.max_batch, features=used, allow=self.allow,
                                         adapter_info=info, subgroup_size=sg)  # fmt: skip
                self._key = key
            return self._built

    def plan_json(self, features: Sequence[str] = (), adapter_info: dict[str, str] | None = None) -> dict[str, Any]:
        """The plan as JSON data, with `gguf_offsets`: absolute file offsets of the tensors its
        GGUF sources name (the page fetches those byte ranges from /model/blob), and the
        composed kernels: `modules` maps each variant's companion.gpu.shaders.module_key to
        {name, code, line_map} (or {name, error} where composing failed), and each pipeline
        names its variant in `module`. The page compiles these as they are."""
        from companion.gpu import shaders

        built = self.build(features, adapter_info)
        with self._lock:
            if self._json is None:
                plan = built.plan
                data = plan.model_dump(mode="json")
                names = {b.source.tensor for b in plan.buffers if b.source is not None and b.source.kind == "gguf"}
                data["gguf_offsets"] = {n: int(self.model.tensors[n].offset) for n in sorted(names)}
                modules: dict[str, dict[str, Any]] = {}
                for p, pj in zip(plan.pipelines, data["pipelines"], strict=True):
                    key = pj["module"] = shaders.module_key(p.shader, p.includes, p.enable)
                    if key not in modules:
                        try:  # a kernel that does not compose fails the page's load with this message
                            modules[key] = shaders.pipeline_module(p)[1].to_json()
                        except shaders.ShaderError as exc:
                            modules[key] = {"name": p.shader, "error": str(exc)}
                data["modules"] = modules
                self._json = data
            return self._json

    @property
    def plan(self):  # -> companion.gpu.plan.Plan | None
        """The plan built last (None before the page asked for one)."""
        return None if self._built is None else self._built.plan

    def blob(self, name: str) -> memoryview | None:
        built = self._built
        arr = None if built is None else built.blobs.get(name)
        if arr is None:
            return None
        return memoryview(np.ascontiguousarray(arr).reshape(-1).view(np.uint8).data)


class BrowserEngine(Engine):
    """The model in a page's WebGPU executor. eval() asks for logits (parity); next_token()
    asks for a GPU-sampled id, so only 4 bytes cross the bridge per token; in a decode loop the
    page runs `ahead` steps per request, each feeding the id the one before sampled (RunAhead),
    so a round trip over the bridge and a GPU readback serve `ahead` tokens."""

    name = "browser"

    def __init__(
        self,
        channel: ExecutorChannel,
        assets: PlanAssets,
        report: Callable[[str], None] = log.info,
        publish: Callable[[EngineStatus], None] | None = None,
        on_close: Callable[[], None] | None = None,
        ahead: int | None = None,
    ):
        self.channel = channel
        self.ahead = max(1, min(16, int(ahead if ahead is not None else AHEAD)))
        self._chain: RunAhead | None = None
        self.assets = assets
        self.report = report
        self.publish = publish  # relays the page's load progress to every page (the load bar)
        self._on_close = on_close
        info = assets.info
        self._n_ctx = int(info["n_ctx"])
        self._n_vocab = int(info["n_vocab"])
        self._max_hist = int(info["max_hist"])
        self._n_past = 0
        self._adapter = "WebGPU (not loaded yet)"
        self._loaded = False
        self._failed: str | None = None
        self.load_seconds = 0.0
        self.last_ms: float | None = None  # time the page measured for the last request
        self.stats: dict[str, float] = {}  # for `companion bench`: the page's own timings
        self.features: list[str] = []  # WebGPU features the loaded plan uses
        self.notes: list[str] = []  # the plan's notes (why a variant fell back to f32)

    # -- Engine
    @property
    def adapter(self) -> str:
        return self._adapter

    def load(self, timeout: float = LOAD_TIMEOUT) -> None:
        """Have the page fetch the plan and weights and build its pipelines."""
        self._check()
        t0 = time.perf_counter()
        fut = self.channel.submit(EngineLoad(request_id=0, n_ctx=self._n_ctx))
        last: EngineStatus | None = None
        deadline = time.monotonic() + timeout
        while True:
            try:
                reply = fut.result(0.25)
                break
            except concurrent.futures.TimeoutError:
                status = self.channel.status
                if status is not None and status is not last:
                    last = status
                    if self.publish is not None:
                        self.publish(status)
                if time.monotonic() > deadline:
                    fut.cancel()
                    self._fail(f"the page executor did not finish loading within {timeout:.0f} s")
            except PageExecutorError as exc:
                self._fail(str(exc))
        self._adapter = getattr(reply, "adapter", "") or "WebGPU"
        plan = self.assets.plan
        if plan is not None:
            self.notes = list(plan.notes)
            self.features = list(plan.features)
            for n in plan.notes:
                log.info("browser plan: %s", n)
        self._loaded = True
        self._n_past = 0
        self.load_seconds = time.perf_counter() - t0
        if self.publish is not None:
            self.publish(EngineStatus(engine="browser", adapter=self._adapter[:300], phase="ready"))
        self.report(f"engine: browser on {self._adapter} (loaded in {self.load_seconds:.1f} s)")

    def reset(self, n_keep: int = 0) -> None:
        self._chain = None
        self._n_past = max(0, min(n_keep, self._n_past))
        if self._loaded:
            self._request(EngineReset(request_id=0, n_keep=self._n_past))

    def eval(self, ids: Sequence[int]) -> np.ndarray:
        self._chain = None
        self._check_room(len(ids))
        self._ensure_loaded()
        reply = self._generate(Generate(request_id=0, ids=[int(i) for i in ids], want="logits", n_past=self._n_past), Logits)
        self._advance(len(ids), reply.n_past)
        logits = reply.array()  # (V,) f32
        if logits.shape != (self._n_vocab,):
            self._fail(f"the page sent {logits.size} logits, the model has {self._n_vocab}")
        return logits

    def next_token(self, ids: Sequence[int], sampler: Sampler, history: Sequence[int]) -> int:
        """Forward pass and sampling in one submit in the page; only the id comes back. When
        the caller feeds back the id it was just given, the ids come from steps the page ran
        ahead (`ahead` per request)."""
        ch = self._chain
        if ch is not None and ch.continues(ids, sampler, history, self._n_past):
            return self._chain_next(ch, history)
        self._chain = None
        self._check_room(len(ids))
        self._ensure_loaded()
        seed, step, hist = sampler.gpu_draw(history, self._max_hist)
        params = sampler.params.model_copy(update={"seed": seed})
        msg = Generate(request_id=0, ids=[int(i) for i in ids], sampling=params, step=step, history=hist, want="token", n_past=self._n_past)
        reply = self._generate(msg, Token)
        self._advance(len(ids), reply.n_past)
        self.last_ms = reply.ms
        if len(ids) == 1 and reply.ms is not None:
            self.stats = {"page_ms_per_token": round(reply.ms, 3), "load_s": round(self.load_seconds, 2)}
        tok = int(reply.id)
        if self.ahead > 1:  # nothing is asked of the page until the caller feeds tok back
            self._chain = RunAhead(
                sampler=sampler, params=sampler.params.model_copy(), last=tok, draws=sampler.gpu_draws, n_past=self._n_past,
                hist_len=len(history) + 1, hist_n=RunAhead.window(sampler.params, self._max_hist),
            )  # fmt: skip
        return tok

    def _chain_next(self, ch: RunAhead, history: Sequence[int]) -> int:
        """The next id of a run-ahead; a request for `ahead` more when none is left."""
        if not ch.ready:
            k = min(self.ahead, self._n_ctx - self._n_past)
            if k <= 0:  # no room left: the plain path reports a full context
                self._chain = None
                return self.next_token([ch.last], ch.sampler, history)
            params = ch.params.model_copy(update={"seed": ch.params.seed & 0xFFFFFFFF})
            msg = Generate(request_id=0, ids=[ch.last], sampling=params, step=ch.draws, history=ch.penalty_base(history),
                           want="token", steps=k, n_past=self._n_past)  # fmt: skip
            reply = self._generate(msg, Token)
            got = [int(t) for t in (reply.ids or [reply.id])]
            if len(got) != k or reply.n_past != self._n_past + k:
                self._fail(f"the page ran {len(got)} steps to position {reply.n_past}; asked for {k} from {self._n_past}")
            if reply.ms is not None:
                self.last_ms = reply.ms / k
                self.stats = {"page_ms_per_token": round(reply.ms / k, 3), "load_s": round(self.load_seconds, 2), "tokens_per_request": float(k)}
            ch.ready.extend(got)
        self._n_past += 1
        return ch.hand_out(ch.ready.popleft(), self._n_past)

    def close(self) -> None:
        self._failed = self._failed or "the browser engine was closed"
        if self._on_close is not None:
            on_close, self._on_close = self._on_close, None
            on_close()

    # -- internals
    def _check(self) -> None:
        if self._failed is not None:
            raise EngineUnavailable(self._failed)

    def _fail(self, reason: str) -> None:
        self._failed = reason
        raise EngineUnavailable(reason)

    def _ensure_loaded(self) -> None:
        if not self._loaded:
            self.load()

    def _request(self, message: Any) -> Any:
        self._check()
        try:
            return self.channel.request(message, timeout=STEP_TIMEOUT)
        except PageExecutorError as exc:
            self._fail(str(exc))

    def _generate(self, message: Generate, answer: type[_Answer]) -> _Answer:
        """The page's answer to a generate request, which must be `answer` (logits or token)."""
        reply = self._request(message)
        if not isinstance(reply, answer):
            self._fail(f"the page answered `{reply.type}` to a {message.want} request")
        return reply

    def _advance(self, n: int, page_n_past: int | None) -> None:
        self._n_past += n
        if page_n_past is not None and page_n_past != self._n_past:
            self._fail(f"the page's KV cache holds {page_n_past} positions, expected {self._n_past} (was the page reloaded?)")


def start_browser_engine(
    model,
    n_ctx: int = 2048,
    report: Callable[[str], None] = log.info,
    server=None,
    page_wait: float = 2.0,
    load: bool = True,
) -> BrowserEngine:
    """A loaded BrowserEngine. With `server` (a running BridgeServer whose page has an
    executor, e.g. the desktop window) the model runs in that page; otherwise a private
    loopback server and a headless Chromium are started and stopped by engine.close().
    Raises EngineUnavailable when no page can run it."""
    from companion.bridge.server import BridgeServer

    assets = PlanAssets(model, n_ctx)
    own_server = None
    browser: HeadlessChromium | None = None
    if server is not None and server.executor.wait_for_page(page_wait):
        if server.plan is None:
            server.plan = assets.plan_json
        if getattr(server, "blobs", None) is None:
            server.blobs = assets.blob
        if server.model_path is None:
            server.model_path = Path(model.path)
        target = server
    else:
        own_server = BridgeServer(None, plan=assets.plan_json, blobs=assets.blob, model_path=Path(model.path))
        own_server.start()
        url = own_server.launch_url(EXECUTOR_PAGE)
        target = own_server
        report("engine: starting headless Chromium for the browser engine")
        try:
            browser = HeadlessChromium(url)
        except BaseException:
            own_server.stop()
            raise
        if not own_server.executor.wait_for_page(PAGE_TIMEOUT):
            why = "; ".join(browser.errors[-3:]) or "no page error was reported"
            browser.close()
            own_server.stop()
            raise EngineUnavailable(f"the headless Chromium page did not connect its executor within {PAGE_TIMEOUT:.0f} s ({why})")

    def on_close() -> None:
        if browser is not None:
            browser.close()
        if own_server is not None:
            own_server.stop()

    engine = BrowserEngine(target.executor, assets, report=report, publish=target.publish, on_close=on_close)
    if load:
        try:
            engine.load()
        except BaseException:
            engine.close()
            raise
    return engine


__all__ = ["BrowserEngine", "PlanAssets", "start_browser_engine"]
