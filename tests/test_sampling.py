"""Sampling: seeded and reproducible, and each option has its effect."""

from __future__ import annotations

import numpy as np
import pytest

from companion.sampling import Sampler, SamplingParams, apply_repetition_penalty, filter_probs


def logits_fixture(seed: int = 0, v: int = 1000) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(v).astype(np.float32) * 3


def draw(params: SamplingParams, logits: np.ndarray, n: int = 200) -> list[int]:
    s = Sampler(params)
    return [s(logits) for _ in range(n)]


def test_greedy_is_argmax():
    lg = logits_fixture()
    assert Sampler(SamplingParams.greedy_params())(lg) == int(np.argmax(lg))


def test_same_seed_same_tokens_different_seed_different_tokens():
    lg = logits_fixture()
    p = SamplingParams(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, seed=7)
    assert draw(p, lg) == draw(p, lg)
    assert draw(p, lg) != draw(p.model_copy(update={"seed": 8}), lg)


def test_top_k_limits_candidates():
    lg = logits_fixture()
    p = SamplingParams(temperature=5.0, top_k=3, top_p=1.0, min_p=0.0, seed=1)
    assert set(draw(p, lg, 500)) <= set(np.argsort(-lg)[:3].tolist())
    assert len(set(draw(p, lg, 500))) == 3


def test_top_p_keeps_the_smallest_nucleus():
    lg = np.log(np.array([0.5, 0.3, 0.15, 0.05], dtype=np.float32))
    ids, probs = filter_probs(lg, SamplingParams(temperature=1.0, top_k=0, top_p=0.7, min_p=0.0))
    assert ids.tolist() == [0, 1]
    assert probs.sum() == pytest.approx(1.0)


def test_min_p_drops_unlikely_tokens():
    lg = np.log(np.array([0.5, 0.3, 0.15, 0.05], dtype=np.float32))
    ids, _ = filter_probs(lg, SamplingParams(temperature=1.0, top_k=0, top_p=1.0, min_p=0.2))
    assert ids.tolist() == [0, 1, 2]  # 0.05 < 0.2 * 0.5


def test_temperature_sharpens_and_flattens():
    lg = logits_fixture(v=50)
    best = int(np.argmax(lg))
    cold = draw(SamplingParams(temperature=0.1, top_k=0, top_p=1.0, min_p=0.0, seed=3), lg, 300)
    hot = draw(SamplingParams(temperature=3.0, top_k=0, top_p=1.0, min_p=0.0, seed=3), lg, 300)
    assert cold.count(best) > hot.count(best)
    assert len(set(hot)) > len(set(cold))


def test_repetition_penalty_discourages_recent_tokens():
    lg = np.array([2.0, 1.9, -1.0, 0.5], dtype=np.float32)
    out = apply_repetition_penalty(lg, [0, 2], penalty=1.5, last_n=64)
    assert out[0] == pytest.approx(2.0 / 1.5) and out[2] == pytest.approx(-1.5)
    assert out[1] == lg[1] and out[3] == lg[3]
    assert Sampler(SamplingParams(temperature=0, repeat_penalty=1.5))(lg, [0]) == 1
    # only the last n tokens count
    assert apply_repetition_penalty(lg, [0, 3, 3], penalty=1.5, last_n=2)[0] == lg[0]


def test_sampling_stays_float32_free_of_nan():
    lg = np.full(100, -1e30, dtype=np.float32)
    lg[5] = 0.0
    assert Sampler(SamplingParams(temperature=0.8, seed=1))(lg) == 5
