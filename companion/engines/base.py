"""The interface every engine implements (reference, native, browser), with the bookkeeping
they share: the KV-cache room check and the GPU sampler's random stream. The core decides what
to compute; an engine only runs the model on token ids and returns logits or ids."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Self

import numpy as np

from companion.sampling import Sampler


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

