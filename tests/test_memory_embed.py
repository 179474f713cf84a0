"""all-MiniLM-L6-v2 in numpy against the published model's behaviour."""

from __future__ import annotations

import numpy as np
import pytest

# The similarity matrix printed by the sentence-transformers README / quickstart for
# SentenceTransformer("all-MiniLM-L6-v2") on these three sentences (cosine similarity).
PUBLISHED_SENTENCES = ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]
PUBLISHED_SIMILARITY = [[1.0000, 0.6660, 0.1046], [0.6660, 1.0000, 0.1411], [0.1046, 0.1411, 1.0000]]


def test_reproduces_published_similarity_matrix(embedder):
    v = embedder.encode(PUBLISHED_SENTENCES)  # (3, 384)
    assert v.shape == (3, 384) and v.dtype == np.float32
    np.testing.assert_allclose(v @ v.T, PUBLISHED_SIMILARITY, atol=1e-3)


def test_unit_length_and_identical_sentences(embedder):
    v = embedder.encode(["I moved to Lyon last spring.", "I moved to Lyon last spring."])
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert float(v[0] @ v[1]) == pytest.approx(1.0, abs=1e-5)


def test_close_pair_is_closer_than_unrelated(embedder):
    a, b, c, d = embedder.encode([
        "My sister is called Ana.", "What is my sister's name?",
        "I prefer tea to coffee.", "The stock market fell sharply on Monday.",
    ])
    assert a @ b > 0.5 > a @ d
    assert a @ b > a @ c and c @ d < 0.2


def test_batching_and_padding_do_not_change_vectors(embedder):
    texts = ["short", "a somewhat longer sentence about hiking in the Alps with friends", "mid length text here"]
    together = embedder.encode(texts, batch_size=3)
    alone = np.stack([embedder.encode([t])[0] for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_long_text_is_truncated_not_rejected(embedder):
    v = embedder.encode(["word " * 2000, ""])
    assert np.isfinite(v).all()
    assert embedder.encode([]).shape == (0, 384)
