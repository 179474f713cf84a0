"""The native engine: the model on wgpu-py in this process. It builds the plan for the model
and the adapter (companion.gpu.builder) and drives the executor's programs through the
Engine interface."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from companion.engines.base import Engine, RunAhead
from companion.errors import EngineUnavailable
from companion.gpu.adapters import (
    VARIANTS,
    adapter_features,
    probe_subgroups,
    request_adapter,
    request_device,
)
from companion.gpu.executor import Copy, Executor, Pending
from companion.sampling import Sampler, SamplingParams
from companion.settings import Settings

AHEAD = 8  # at most this many decode steps per command buffer when the engine runs ahead of the caller
BURST_S = 1 / 60  # ...and at most about a display frame of them, so tokens still stream on slow GPUs
START_AHEAD = 2  # steps per submit until the chain has timed one
GPU_BATCH = 512  # prompt tokens per prefill submit on GPUs: the tiled matmuls fill the GPU from a few hundred on
CPU_BATCH = 64  # on CPU rasterizers (the rows layout), where a bigger batch gains nothing


def default_max_batch(model, adapter_info: dict | None, layout: str | None) -> int:
    """Prompt tokens per prefill submit: GPU_BATCH where the plan uses the split-K layout (its
    batched matmuls are tiled), else CPU_BATCH; at most what keeps the (batch, n_vocab) f32
    logits of eval_all within one 128 MiB binding."""
    from companion.gpu.adapters import choose_layout
    from companion.gpu.builder import MAX_BINDING

    lay, _ = choose_layout(adapter_info, layout)
    want = GPU_BATCH if lay == "splitk" else CPU_BATCH
    return max(8, min(want, MAX_BINDING // (4 * int(model.config.n_vocab))))


@dataclass(kw_only=True)
class _Chain(RunAhead):
    """The native engine's run-ahead (RunAhead): AHEAD steps per submit, one submit in flight
    while the host waits for the one before."""

    gpu_past: int  # positions fed once every submitted step has run
    rng: int  # rng_step of the next step to record
    n_spec: int = 0  # ids sampled by submitted steps (their index in the penalty buffer)
    hist_l: int = 0  # ids of the caller's history at the chain's start in the penalty buffer
    inflight: deque = field(default_factory=deque)  # (Pending, steps) submitted, not read back
    stopped: bool = False  # an end-of-generation id was read back: submit no more
    slot: int = 0  # which half of the step-uniform scratch buffer the next submit writes
    step_s: float = 0.0  # seconds a step takes, as the readbacks arrive (0: not timed yet)
    t_read: float = 0.0  # perf_counter of the last readback (or of the first submit)


class NativeEngine(Engine):
    """The model on wgpu-py: prefill as one batch per chunk of max_batch tokens, decode and
    sampling on the GPU with one submit and a 4-byte readback per token."""

    name = "native"

    def __init__(
        self,
        model,
        n_ctx: int = 2048,
        adapter: str | None = None,
        max_batch: int | None = None,
        progress: bool | None = None,
        device=None,
        features: str | Sequence[str] | None = None,
        layout: str | None = None,
        ahead: int | None = None,
        burst_s: float | None = None,
    ):
        """adapter: substring of the adapter's name; None = the adapter setting
        (COMPANION_ADAPTER, default the best adapter). features: what the plan may use, "auto" |
        "none" | "f16,subgroups" or a list; None = the gpu_features setting
        (COMPANION_GPU_FEATURES, default auto). layout: the matmul layout "auto" | "rows" |
        "splitk"; None = the gpu_layout setting (COMPANION_GPU_LAYOUT, default auto: splitk on
        GPUs, rows on CPU rasterizers). ahead: decode steps recorded per submit when the caller
        keeps feeding back the ids it is given (1 = one submit and wait per token, as a plain
        loop). burst_s: if set, a submit holds only as many of those steps as take about this
        long, timed as their ids come back. Default: up to AHEAD steps in about BURST_S; an
        explicit `ahead` alone is a fixed count."""
        from companion.gpu.builder import build_plan

        ad = None
        if device is None:
            ad = request_adapter(adapter or Settings.load().adapter)
            feats = adapter_features(ad)
            info = dict(ad.info)
        else:  # a given device offers what it was created with
            feats = adapter_features(device)
            info = dict(device.adapter.info) if getattr(device, "adapter", None) else {}
        from companion.gpu.fit import gpu_fit, shares_system_memory

        limits = dict(ad.limits if ad is not None else getattr(device, "limits", {}) or {})
        gpu_fit(model, n_ctx, limits, shares_system_memory(info), "native").raise_unless_ok()  # before any upload
        if max_batch is None:
            max_batch = default_max_batch(model, info, layout)
        t0 = time.perf_counter()
        if device is None:  # every optional feature a plan may use, so the probe below can run
            try:
                device = request_device(ad, [f for f in feats if f in VARIANTS])
            except EngineUnavailable:  # a driver that lists a feature it cannot open: the f32 path
                device = request_device(ad)
            feats = adapter_features(device)
        sg = probe_subgroups(device) if "subgroups" in feats else None
        self.built = build_plan(model, n_ctx=n_ctx, max_batch=max_batch, features=feats, allow=features,
                                layout=layout, adapter_info=info, subgroup_size=sg)
        self.plan = self.built.plan
        if progress is None:  # a bar only where someone watches
            import sys

            progress = sys.stderr.isatty()
        self.executor = Executor(self.plan, self.built.resolve, device=device, progress=progress)
        self.load_seconds = time.perf_counter() - t0
        self._n_ctx = int(self.plan.model["n_ctx"])
        self._max_batch = int(self.plan.model["max_batch"])
        self._n_vocab = int(self.plan.model["n_vocab"])
        self._n_past = 0
        self.ahead = max(1, int(ahead if ahead is not None else AHEAD))
        self.burst_s: float | None = burst_s if burst_s is not None or ahead is not None else BURST_S
        tmpl = getattr(model, "chat_template", None)
        self.eog_ids: frozenset[int] = frozenset(getattr(tmpl, "eog_ids", ()) or ())  # no steps past these
        self._chain: _Chain | None = None
        self.stats: dict[str, float] = {"dispatches_per_token": 0, "submits_per_token": 0, "readback_bytes_per_token": 0,
                                        "encode_ms_per_token": 0.0}

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
    def reset(self, n_keep: int = 0) -> None:
        self._end_chain()
        super().reset(n_keep)

    def eval(self, ids: Sequence[int]) -> np.ndarray:
        self._end_chain()
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
        self._end_chain()
        self._check_room(len(ids))
        rows = []
        for c in self._chunks(ids):
            raw = self._feed(c, "prefill_all", read=self._logits_row(0, len(c)))
            assert raw is not None
            rows.append(np.frombuffer(raw, np.float32).reshape(len(c), self._n_vocab))
        return np.concatenate(rows)  # (T, V)

    def next_token(self, ids: Sequence[int], sampler: Sampler, history: Sequence[int]) -> int:
        """Forward pass and sampling in one submit; only the 4-byte id is read back. When the
        caller feeds back the id it was just given (a decode loop), the GPU runs `ahead` steps
        per submit ahead of it (see _Chain) and the ids come from there."""
        ch = self._chain
        if ch is not None and self.executor.usable and ch.continues(ids, sampler, history, self._n_past):
            return self._chain_next(ch, sampler, history)
        self._end_chain()
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
        one = len(last) == 1  # a decode step's head leaves candidates for the greedy sampler
        raw = self._feed(last, "decode" if one else "prefill", tail=["sample_decode" if one else "sample"])
        assert raw is not None
        if len(ids) == 1:
            self._set_stats(before, 1)
        tok = int(np.frombuffer(raw, np.uint32)[0])
        if self.ahead > 1 and tok not in self.eog_ids:
            n_hist = RunAhead.window(p, int(self.plan.model["max_hist"]))
            self._chain = _Chain(
                sampler=sampler, params=p.model_copy(), last=tok, draws=sampler.gpu_draws, n_past=self._n_past,
                hist_len=len(history) + 1, gpu_past=self._n_past, rng=sampler.gpu_draws, hist_n=n_hist,
            )  # fmt: skip
        return tok

    def _set_stats(self, before: dict[str, float], n_tokens: int) -> None:
        c = self.executor.counters
        self.stats = {
            "dispatches_per_token": (c["dispatches"] - before["dispatches"]) / n_tokens,
            "submits_per_token": (c["submits"] - before["submits"]) / n_tokens,
            "passes_per_token": (c["passes"] - before["passes"]) / n_tokens,  # compute passes
            "readback_bytes_per_token": (c["readback_bytes"] - before["readback_bytes"]) / n_tokens,
            "encode_ms_per_token": round(1e3 * (c["encode_s"] - before["encode_s"]) / n_tokens, 4),
        }

    # -- running ahead (_Chain)
    def _chain_next(self, ch: _Chain, sampler: Sampler, history: Sequence[int]) -> int:
        if ch.last in self.eog_ids:
            ch.stopped = False  # the caller goes on past an end-of-generation id (a benchmark)
        if not ch.ready:
            if not ch.inflight and not self._submit(ch, history):
                self._end_chain()  # no room left: the plain path reports a full context
                return self.next_token([ch.last], sampler, history)
            if len(ch.inflight) < 2 and not ch.stopped:
                # recorded while the GPU runs the previous one, submitted once that one is read
                # back (wgpu-py's map waits for all submitted work, a later submit included)
                self._submit(ch, history, now=False)
            pend, n = ch.inflight.popleft()
            got = [int(t) for t in np.frombuffer(pend.result(), np.uint32)[:n]]
            now = time.perf_counter()
            step = (now - ch.t_read) / n  # the GPU's step, or the caller's where it is slower
            ch.step_s, ch.t_read = (step if not ch.step_s else (ch.step_s + step) / 2), now
            if ch.inflight:
                ch.inflight[0][0].submit()
            ch.ready.extend(got)
            if any(t in self.eog_ids for t in got):
                ch.stopped = True
        self._n_past += 1
        return ch.hand_out(ch.ready.popleft(), self._n_past)

    def _submit(self, ch: _Chain, history: Sequence[int], now: bool = True) -> bool:
        """Record and submit up to `ahead` decode steps continuing the chain (now=False: record
        only; the caller submits it); False if no room.

        The steps share one compute pass and copy nothing between them: the plan's "chain"
        buffer holds the penalty history (or just the chain's first input id) at 0 .. L-1 and
        step g's id at L + g, so step g embeds chain[L - 1 + g], samples into chain[L + g] and
        reads its penalty window from there too (sample_chain); each step's uniform block is its
        own 256-byte slot of a scratch buffer, bound in place of "step" (Executor.alias). One
        copy at the end brings the k ids back."""
        k = min(self._steps_per_submit(ch), self._n_ctx - ch.gpu_past)
        if k <= 0:
            return False
        if not ch.t_read:
            ch.t_read = time.perf_counter()
        ex, io = self.executor, self.plan.io
        before = dict(ex.counters)
        slot = 256  # uniform blocks at the binding offset alignment WebGPU guarantees
        blocks_buf = ex.scratch("chain_steps", 2 * self.ahead * slot, uniform=True)
        if ch.n_spec == 0:
            base = ch.penalty_base(history)
            ch.hist_l = len(base)
            ex.write(io["chain"], np.asarray(base, dtype=np.uint32))
        p, L = ch.params, ch.hist_l
        blocks: list[bytes] = []
        programs: list[tuple[str, dict[str, int]]] = []
        s0 = ch.slot * self.ahead
        for j in range(k):
            g = ch.n_spec + j
            n_hist = min(L + g, ch.hist_n)
            block = ex.uniform_bytes(
                n_past=ch.gpu_past + j, n_tokens=1, seed=p.seed & 0xFFFFFFFF, rng_step=ch.rng + j,
                temperature=p.temperature, top_k=p.top_k, top_p=p.top_p, min_p=p.min_p,
                repeat_penalty=p.repeat_penalty, n_hist=n_hist, tok_in=L - 1 + g, tok_out=L + g, hist_at=L + g - n_hist,
            )  # fmt: skip
            blocks.append(block + bytes(slot - len(block)))
            step = {self.plan.uniform.buffer: (blocks_buf, (s0 + j) * slot)}
            programs.append((ex.alias("decode", {**step, io["tokens"]: (io["chain"], 0)}), {}))
            programs.append((ex.alias("sample_chain", step), {}))
        ex.write(blocks_buf, b"".join(blocks), offset=s0 * slot)
        pend: Pending = ex.submit_pass(programs, [Copy(io["chain"], 4 * (L + ch.n_spec), "", 0, 4 * k)], submit=now)
        ch.inflight.append((pend, k))
        ch.n_spec += k
        ch.gpu_past += k
        ch.rng += k
        ch.slot ^= 1
        self._set_stats(before, k)
        self.stats["readback_bytes_per_token"] = 4.0  # one 4k-byte readback per k tokens
        return True

    def _steps_per_submit(self, ch: _Chain) -> int:
        """`ahead`, or under burst_s as many steps as take about burst_s at the timed pace
        (START_AHEAD until a readback has timed them): a fast GPU gets few submits, a slow one
        still streams its tokens a frame or so apart rather than in long bursts."""
        if self.burst_s is None:
            return self.ahead
        if not ch.step_s:
            return min(self.ahead, START_AHEAD)
        return max(1, min(self.ahead, int(self.burst_s / ch.step_s)))

    def _end_chain(self) -> None:
        """Stop running ahead: wait for submitted steps (their ids are dropped)."""
        ch, self._chain = self._chain, None
        if ch is not None and self.executor.usable:
            for pend, _ in ch.inflight:
                try:
                    pend.discard()  # recorded, never submitted: dropped
                    pend.result()
                except Exception:  # a lost device shows on the next call
                    break

    def close(self) -> None:
        self._chain = None
        self.executor.destroy()
