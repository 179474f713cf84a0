"""Two-stage vector search (memory.shortlist) and the encoder's cache of recent texts."""

from __future__ import annotations

import numpy as np

from companion.memory import shortlist
from companion.memory.recall import EpisodeIndex
from companion.memory.shortlist import Reduced, nearest


def _unit_rows(n: int, seed: int) -> np.ndarray:
    """Rows shaped like sentence embeddings: most variance in a few dozen directions."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((384, 384)))[0]  # (384, 384) orthonormal
    scale = np.r_[np.linspace(3.0, 1.0, 48), np.full(336, 0.15)]  # (384,)
    x = (rng.standard_normal((n, 384)) * scale) @ basis.T  # (n, 384)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_the_shortlist_finds_what_exact_search_finds():
    rows = _unit_rows(6000, 0)
    queries = rows[:40] + 0.05 * _unit_rows(40, 1)  # (40, 384) near stored rows
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    exact = nearest(rows, queries, 10)
    fast = nearest(rows, queries, 10, Reduced(rows), shortlist=300)
    agree = np.mean([len(set(e[0]) & set(f[0])) / 10 for e, f in zip(exact, fast, strict=True)])
    assert agree >= 0.95
    for q, (er, _), (fr, fs) in zip(queries, exact, fast, strict=True):
        assert fr[0] == er[0]
        assert np.allclose(fs, rows[fr] @ q, atol=1e-5) and np.all(np.diff(fs) <= 0)  # exact cosines, best first


def test_the_episode_index_keeps_its_reduced_copy_in_step(monkeypatch):
    monkeypatch.setattr(shortlist, "MIN_ROWS", 100)
    monkeypatch.setattr("companion.memory.recall.MIN_ROWS", 100)
    rows = _unit_rows(160, 2)
    index = EpisodeIndex(384)
    index.append([(i, i, True, rows[i].tobytes()) for i in range(90)])
    assert index.reduced is None  # exact search under MIN_ROWS
    index.append([(i, i, True, rows[i].tobytes()) for i in range(90, 120)])
    index.append([(i, i, True, rows[i].tobytes()) for i in range(120, 160)])
    assert index.reduced is not None and index.reduced.n == index.n == 160
    assert np.allclose(index.reduced.rows, rows @ index.reduced.axes, atol=1e-5)


def test_recently_encoded_texts_are_not_encoded_again(embedder, monkeypatch):
    embedder.cache_clear()
    first = embedder.encode(["my sister lives in Lima", "I keep bees"])
    calls = []
    real = embedder._encode
    monkeypatch.setattr(embedder, "_encode", lambda texts, bs: calls.append(list(texts)) or real(texts, bs))
    again = embedder.encode(["I keep bees", "a new sentence", "my sister lives in Lima"])
    assert calls == [["a new sentence"]]
    assert np.array_equal(again[[0, 2]], first[[1, 0]])


def test_a_rebuilt_facts_index_keeps_its_axes(store, monkeypatch):
    from companion.memory.recall import vector_index

    monkeypatch.setattr(shortlist, "MIN_ROWS", 50)
    cid = store.ensure_character()
    rows = _unit_rows(61, 3)
    store.add_embedded_memories(cid, [(f"fact {i}", rows[i].tobytes()) for i in range(60)])
    first = vector_index(store, cid)
    store.add_embedded_memories(cid, [("one more", rows[60].tobytes())])
    again = vector_index(store, cid)
    assert again is not first and first.reduced is not None and again.reduced is not None
    assert again.reduced.axes is first.reduced.axes and again.reduced.n == 61
