"""The native engine: the model on wgpu-py in this process. It builds the plan for the model
and the adapter (companion.gpu.builder) and drives the executor's programs through the
Engine interface."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from companion.engines.base import Engine
from companion.gpu.adapters import adapter_features, request_adapter, request_device
from companion.gpu.executor import Executor
from companion.sampling import Sampler, SamplingParams
from companion.settings import Settings


class NativeEngine(Engine):
    """The model on wgpu-py: prefill as one batch per chunk of max_batch tokens, decode and
    sampling on the GPU with one submit and a 4-byte readback per token."""

    name = "native"

    def __init__(
        self,
        model,
        n_ctx: int = 2048,
        adapter: str | None = None,
        max_batch: int = 64,
        progress: bool | None = None,
        device=None,
        features: str | Sequence[str] | None = None,
        layout: str | None = None,
    ):
        """adapter: substring of the adapter's name; None = the adapter setting
        (COMPANION_ADAPTER, default the best adapter). features: what the plan may use, "auto" |
        "none" | "f16,subgroups" or a list; None = the gpu_features setting
        (COMPANION_GPU_FEATURES, default auto). layout: the matmul layout "auto" | "rows" |
        "splitk"; None = the gpu_layout setting (COMPANION_GPU_LAYOUT, default auto: splitk on
        GPUs, rows on CPU rasterizers)."""
        from companion.gpu.builder import build_plan

        ad = None
        if device is None:
            ad = request_adapter(adapter or Settings.load().adapter)
            feats = adapter_features(ad)
            info = dict(ad.info)
        else:  # a given device offers what it was created with
            feats = adapter_features(device)
            info = dict(device.adapter.info) if getattr(device, "adapter", None) else {}
        t0 = time.perf_counter()
        self.built = build_plan(model, n_ctx=n_ctx, max_batch=max_batch, features=feats, allow=features,
                                layout=layout, adapter_info=info)
        self.plan = self.built.plan
        if device is None:
            device = request_device(ad, self.plan.features)
        if progress is None:  # a bar only where someone watches
            import sys

            progress = sys.stderr.isatty()
        self.executor = Executor(self.plan, self.built.resolve, device=device, progress=progress)
        self.load_seconds = time.perf_counter() - t0
        self._n_ctx = int(self.plan.model["n_ctx"])
        self._max_batch = int(self.plan.model["max_batch"])
        self._n_vocab = int(self.plan.model["n_vocab"])
        self._n_past = 0
        self.stats: dict[str, float] = {"dispatches_per_token": 0, "submits_per_token": 0, "readback_bytes_per_token": 0}

    @property
    def adapter(self) -> str:
        info = self.executor.adapter_info
        return f"{info.get('device', '?')} ({info.get('adapter_type', '?')}, {info.get('backend_type', '?')}) via wgpu-py"

    # -- internals
    def _chunks(self, ids: Sequence[int]) -> list[list[int]]:
        ids = [int(i) for i in ids]
        return [ids[i : i + self._max_batch] for i in range(0, len(ids), self._max_batch)]

    def _feed(self, chunk: list[int], program: str, tail: Sequence[str] = (), read=None) -> bytes | None:
        ex = self.executor
        ex.write(self.plan.io["tokens"], np.asarray(chunk, dtype=np.uint32))
        ex.set_uniforms(n_past=self._n_past, n_tokens=len(chunk))
        vars = {"n_tokens": len(chunk)}
        out = ex.run([(program, vars), *[(t, vars) for t in tail]], read=read)
        self._n_past += len(chunk)
        return out

    def _logits_row(self, row: int = 0, n: int = 1) -> tuple[str, int, int]:
        return (self.plan.io["logits"], row * self._n_vocab * 4, n * self._n_vocab * 4)

    # -- Engine
    def eval(self, ids: Sequence[int]) -> np.ndarray:
        self._check_room(len(ids))
        chunks = self._chunks(ids)
        for c in chunks[:-1]:
            self._feed(c, "prefill")
        last = chunks[-1]
        prog = "decode" if len(last) == 1 else "prefill"
        raw = self._feed(last, prog, read=self._logits_row())
        assert raw is not None
        return np.frombuffer(raw, np.float32).copy()  # (V,)

    def eval_all(self, ids: Sequence[int]) -> np.ndarray:
        self._check_room(len(ids))
        rows = []
        for c in self._chunks(ids):
            raw = self._feed(c, "prefill_all", read=self._logits_row(0, len(c)))
            assert raw is not None
            rows.append(np.frombuffer(raw, np.float32).reshape(len(c), self._n_vocab))
        return np.concatenate(rows)  # (T, V)

    def next_token(self, ids: Sequence[int], sampler: Sampler, history: Sequence[int]) -> int:
        """Forward pass and sampling in one submit; only the 4-byte id is read back."""
        self._check_room(len(ids))
        p: SamplingParams = sampler.params
        ex = self.executor
        seed, step, hist = sampler.gpu_draw(history, int(self.plan.model["max_hist"]))
        if hist:
            ex.write(self.plan.io["history"], np.asarray(hist, dtype=np.uint32))
        ex.set_uniforms(
            seed=seed, rng_step=step, temperature=p.temperature, top_k=p.top_k, top_p=p.top_p,
            min_p=p.min_p, repeat_penalty=p.repeat_penalty, n_hist=len(hist),
        )  # fmt: skip
        before = dict(ex.counters)
        chunks = self._chunks(ids)
        for c in chunks[:-1]:
            self._feed(c, "prefill")
        last = chunks[-1]
        raw = self._feed(last, "decode" if len(last) == 1 else "prefill", tail=["sample"])
        assert raw is not None
        if len(ids) == 1:
            self.stats = {
                "dispatches_per_token": ex.counters["dispatches"] - before["dispatches"],
                "submits_per_token": ex.counters["submits"] - before["submits"],
                "readback_bytes_per_token": ex.counters["readback_bytes"] - before["readback_bytes"],
            }
        return int(np.frombuffer(raw, np.uint32)[0])

    def close(self) -> None:
        self.executor.destroy()


def bench_counters(engine: NativeEngine) -> dict[str, float]:
    """Per-token counters of the last decoded token (dispatches, submits, bytes read back)."""
    return dict(engine.stats)
