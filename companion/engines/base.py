"""The interface every engine implements (reference, native, browser), with the bookkeeping
they share: the KV-cache room check and the GPU sampler's random stream. The core decides what
to compute; an engine only runs the model on token ids and returns logits or ids."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Self

import numpy as np

from companion.sampling import Sampler, SamplingParams


class Engine(ABC):
    """A model executor with its own KV cache. Positions are implicit: each call appends."""

    name: str = "engine"  # "reference" | "native" | "browser"

    @property
    def adapter(self) -> str:
        """Human-readable description of where it runs (adapter name, "CPU (numpy)")."""
        return "CPU (numpy)"

    _n_ctx: int = 0  # set by each engine: capacity of its KV cache
    _n_past: int = 0  # positions already in its KV cache

    @property
    def n_ctx(self) -> int:
        """Capacity of the KV cache in tokens."""
        return self._n_ctx

    @property
    def n_past(self) -> int:
        """Tokens already in the KV cache."""
        return self._n_past

    def reset(self, n_keep: int = 0) -> None:
        """Forget cached positions from n_keep on (0 = start a new sequence); later writes
        simply overwrite the rows past n_keep."""
        self._n_past = max(0, min(n_keep, self._n_past))

    def _check_room(self, n: int) -> None:
        """Raise ValueError unless n more tokens fit in the KV cache."""
        if n == 0:
            raise ValueError("eval() needs at least one token")
        if self._n_past + n > self._n_ctx:
            raise ValueError(f"context full: {self._n_past} + {n} tokens > n_ctx {self._n_ctx}")

    @abstractmethod
    def eval(self, ids: Sequence[int]) -> np.ndarray:
        """Append ids to the sequence (prefill as one batch); return (n_vocab,) f32 logits
        of the last position."""

    def eval_all(self, ids: Sequence[int]) -> np.ndarray:
        """Like eval, but return (len(ids), n_vocab) logits of every position. Slow path for
        parity checks; engines may override with a batched version."""
        return np.stack([self.eval([t]) for t in ids])

    def next_token(self, ids: Sequence[int], sampler: Sampler, history: Sequence[int]) -> int:
        """Append ids and choose the next token. GPU engines override this to sample on the
        device and read back only the id; the default samples the logits on the CPU."""
        return sampler(self.eval(ids), history)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release device resources."""


@dataclass(kw_only=True)
class RunAhead:
    """Decode steps a GPU engine runs ahead of its caller: each step feeds the id the one
    before sampled (it never leaves the GPU), several steps per submit, and the caller is handed
    the ids one by one. Any call that is not "the id you just gave me, same sampler, nothing in
    between" ends it (the positions written past the caller's are simply overwritten later)."""

    sampler: Sampler
    params: SamplingParams
    last: int  # the id the caller was given last (the input of the next step)
    draws: int  # sampler.gpu_draws the next call must find
    n_past: int  # the engine's n_past the next call must find
    hist_len: int  # len(history) the next call must find (with the repetition penalty)
    hist_n: int = 0  # penalty window (0: no penalty)
    ready: deque = field(default_factory=deque)  # ids sampled, not handed out yet

    @staticmethod
    def window(params: SamplingParams, max_hist: int) -> int:
        """The repetition penalty's window on the GPU (0: no penalty)."""
        return min(params.repeat_last_n, max_hist) if params.repeat_last_n and params.repeat_penalty != 1.0 else 0

    def continues(self, ids: Sequence[int], sampler: Sampler, history: Sequence[int], n_past: int) -> bool:
        """Is this call the next step: the last id back, same sampler, nothing between?"""
        if len(ids) != 1 or int(ids[0]) != self.last or sampler is not self.sampler or sampler.params != self.params:
            return False
        if sampler.gpu_draws != self.draws or n_past != self.n_past:
            return False
        return not self.hist_n or (len(history) == self.hist_len and int(history[-1]) == self.last)

    def penalty_base(self, history: Sequence[int]) -> list[int]:
        """The ids the first chained step starts from: the penalty window of the caller's
        history, ending with the input id (just that id without a penalty)."""
        base = [int(h) for h in history[-self.hist_n :]] if self.hist_n else []
        if not base or base[-1] != self.last:
            base = (base + [self.last])[-max(1, self.hist_n) :]
        return base

    def hand_out(self, tok: int, n_past: int) -> int:
        """Record that the caller gets `tok` (its engine now at n_past); returns tok."""
        self.sampler.gpu_draws += 1
        self.last, self.draws, self.n_past, self.hist_len = tok, self.sampler.gpu_draws, n_past, self.hist_len + 1
        return tok
