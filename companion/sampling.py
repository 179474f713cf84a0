"""Choosing the next token from logits: greedy, temperature, top-k, top-p, min-p and a
repetition penalty, reproducible from a seed (llama.cpp's sampler chain order)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, Field


class SamplingParams(BaseModel):
    """How to pick each token. temperature == 0 means greedy (argmax)."""

    temperature: float = Field(0.7, ge=0.0)  # softmax temperature; 0 = greedy
    top_k: int = Field(40, ge=0)  # keep the k most likely tokens; 0 = off
    top_p: float = Field(0.95, gt=0.0, le=1.0)  # keep the smallest set with this much mass; 1 = off
    min_p: float = Field(0.05, ge=0.0, le=1.0)  # drop tokens below min_p * p(best); 0 = off
    repeat_penalty: float = Field(1.0, ge=0.0)  # divide positive / multiply negative logits of recent tokens
    repeat_last_n: int = Field(64, ge=0)  # how many recent tokens the penalty considers
    seed: int = 0  # seeds the random stream; same seed + same logits = same tokens

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0

    @classmethod
    def from_settings(cls, settings: Any, seed: int | None = None) -> SamplingParams:
        """The sampling knobs of a companion.settings.Settings (seed 0 = fresh per reply)."""
        return cls(
            temperature=settings.temperature,
            top_k=settings.top_k,
            top_p=settings.top_p,
            min_p=settings.min_p,
            repeat_penalty=settings.repeat_penalty,
            repeat_last_n=settings.repeat_last_n,
            seed=seed if seed is not None else (settings.seed or 0),
        )

    @classmethod
    def greedy_params(cls) -> SamplingParams:
        return cls(temperature=0.0, top_k=0, top_p=1.0, min_p=0.0, repeat_penalty=1.0)


def apply_repetition_penalty(
    logits: np.ndarray, history: Sequence[int], penalty: float, last_n: int
) -> np.ndarray:
    """Penalise tokens seen in the last `last_n` ids (CTRL paper rule, as llama.cpp)."""
    if penalty == 1.0 or last_n == 0 or not history:
        return logits
    recent = np.unique(np.asarray(history[-last_n:], dtype=np.int64))  # (r,)
    out = logits.copy()  # (V,) f32
    vals = out[recent]  # (r,)
    out[recent] = np.where(vals > 0, vals / np.float32(penalty), vals * np.float32(penalty))
    return out


def filter_probs(logits: np.ndarray, p: SamplingParams) -> tuple[np.ndarray, np.ndarray]:
    """Candidate ids and their renormalised probabilities after top-k, top-p and min-p."""
    order = np.argsort(-logits, kind="stable")  # (V,) ids, best first
    if p.top_k > 0:
        order = order[: p.top_k]  # (k,)
    scaled = logits[order].astype(np.float64) / p.temperature  # (k,) f64 for a stable softmax
    probs = np.exp(scaled - scaled[0])  # (k,)
    probs /= probs.sum()
    if p.top_p < 1.0:
        cum = np.cumsum(probs)  # (k,)
        keep = int(np.searchsorted(cum, p.top_p) + 1)  # smallest prefix with mass >= top_p
        order, probs = order[:keep], probs[:keep]
    if p.min_p > 0.0:
        mask = probs >= p.min_p * probs[0]  # (k,) the best token always survives
        order, probs = order[mask], probs[mask]
    return order, probs / probs.sum()


class Sampler:
    """Stateful sampler: owns the seeded random stream for one reply."""

    def __init__(self, params: SamplingParams):
        self.params = params
        self.rng = np.random.default_rng(params.seed)
        self.gpu_draws = 0  # tokens drawn on a GPU so far: the step of its (seed, step) stream

    def gpu_draw(self, history: Sequence[int], max_hist: int) -> tuple[int, int, list[int]]:
        """(seed, step, penalty history) for one token sampled on a GPU (native or page). The
        GPU sampler draws from a stream keyed by (seed, step): the seed is this Sampler's, the
        step counts its GPU draws, so every GPU engine gives the same ids for the same seed."""
        p = self.params
        hist = [int(h) for h in history[-p.repeat_last_n :]] if p.repeat_last_n and p.repeat_penalty != 1.0 else []
        step, self.gpu_draws = self.gpu_draws, self.gpu_draws + 1
        return p.seed & 0xFFFFFFFF, step, hist[-max_hist:] if max_hist else []

    def __call__(self, logits: np.ndarray, history: Sequence[int] = ()) -> int:
        """Pick the next token id from (V,) logits given the ids so far."""
        p = self.params
        logits = apply_repetition_penalty(logits, history, p.repeat_penalty, p.repeat_last_n)
        if p.greedy:
            return int(np.argmax(logits))
        ids, probs = filter_probs(logits, p)
        return int(ids[self.rng.choice(len(ids), p=probs)])
