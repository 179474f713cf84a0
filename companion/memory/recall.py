"""Hybrid memory recall: FTS5 BM25 + cosine similarity, merged by reciprocal rank fusion.

Vectors: the 384-d unit embeddings are stored as float32 BLOBs in `memories.embedding`
(the same layout sqlite-vec reads) and searched with an in-process numpy matrix per
character, cached beside this module (one cache per Store, dropped with it) until memories
change, through this Store (`Store.generation`) or any other connection
(`Store.data_version()`). sqlite-vec is not used: the Python builds we
ship (pyenv / python.org) may lack `enable_load_extension`, so the extension cannot be
relied upon, and exact search over 10k x 384 floats is one ~1 ms matmul anyway.
"""

from __future__ import annotations

import re
import threading
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from companion.memory._blas import one_blas_thread
from companion.memory.embed import embedding_text

if TYPE_CHECKING:
    from companion.memory.store import Store

RRF_K = 60  # reciprocal rank fusion constant (Cormack et al. 2009)
CANDIDATES = 50  # hits taken from each ranker before fusion
MIN_COSINE = 0.2  # a vector-only hit below this is noise, not a memory worth injecting

_STOPWORDS = frozenset(
    "a an and are as at be but by did do does for from had has have he her him his how i i'm im in "
    "is it its me my of on or our she so that the their them they this to too was we were what when "
    "where which who why will with you your yours do don't can could would should about just".split()
)
# the fields of a recalled memory, before its score / bm25 / cosine (what recall has always returned)
_RESULT_KEYS = ("id", "kind", "slot", "text", "pinned", "source_message_id", "created_at", "updated_at")


def query_parts(query: str) -> list[str]:
    """The query, plus each of its sentences when it asks several things at once."""
    parts = [p.strip() for p in re.split(r"(?<=[.!?])\s+|\n+", query) if len(p.strip()) > 3]
    return [query] + (parts[:4] if len(parts) > 1 else [])


def fts_query(text: str) -> str | None:
    """An FTS5 MATCH expression OR-ing the text's content words, quoted (no operators leak)."""
    words = []
    for w in re.findall(r"[^\W_]+", text.lower()):
        if len(w) > 1 and w not in _STOPWORDS and w not in words:
            words.append(w)
    return " OR ".join(f'"{w}"' for w in words[:32]) or None


@dataclass
class VectorIndex:
    """Unit embeddings of one character's memories."""

    ids: np.ndarray  # (N,) int64 memory ids
    mat: np.ndarray  # (N, 384) float32, rows L2-normalized


@dataclass
class _IndexCache:
    """One Store's vector indexes by character id, valid while `key` is the store's
    (generation, data_version)."""

    key: tuple[int, int] | None = None
    indexes: dict[int, VectorIndex] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


_caches: weakref.WeakKeyDictionary[Store, _IndexCache] = weakref.WeakKeyDictionary()
_caches_lock = threading.Lock()


def _cache_of(store: Store) -> _IndexCache:
    with _caches_lock:
        cache = _caches.get(store)
        if cache is None:
            cache = _caches[store] = _IndexCache()
        return cache


def vector_index(store: Store, character_id: int) -> VectorIndex | None:
    """The cached index for a character, embedding any memory stored without a vector."""
    emb = store.embedder()
    if emb is None:
        return None
    # generation: this Store changed memories; data_version: *another* connection committed
    # (e.g. `companion memory forget` while the app runs)
    key = (store.generation, store.data_version())
    cache = _cache_of(store)
    with cache.lock:
        if cache.key != key:
            cache.indexes.clear()
            cache.key = key
        cached = cache.indexes.get(character_id)
    if cached is not None:
        return cached
    ids: list[int] = []
    blobs: list[bytes] = []
    missing: list[tuple[int, int, str]] = []
    for mid, blob, text in store.iter_embeddings(character_id):
        ids.append(mid)
        blobs.append(blob or b"")
        if not blob or len(blob) != emb.dim * 4:
            missing.append((len(ids) - 1, mid, text))
    if missing:  # e.g. memories from schema 1, or written while the embedder was unavailable
        vecs = emb.encode([embedding_text(t) for _, _, t in missing])  # (M, 384)
        new = []
        for (pos, mid, _), v in zip(missing, vecs, strict=True):
            blobs[pos] = v.astype(np.float32).tobytes()
            new.append((mid, blobs[pos]))
        store.set_embeddings(new)
    mat = np.frombuffer(b"".join(blobs), np.float32).reshape(len(ids), emb.dim) if ids else np.zeros((0, emb.dim), np.float32)
    index = VectorIndex(np.asarray(ids, np.int64), mat)
    with cache.lock:
        if cache.key == key:  # not if memories changed while it was being built
            cache.indexes[character_id] = index
    return index


def fts_search(store: Store, character_id: int, query: str, limit: int = CANDIDATES) -> list[tuple[int, float]]:
    """(memory id, bm25) best first; bm25 is negative, lower is better (SQLite's convention)."""
    match = fts_query(query)
    if match is None:
        return []
    return store.fts_memories(character_id, match, limit)


def vector_search(
    store: Store, character_id: int, query: str | np.ndarray, limit: int = CANDIDATES
) -> list[tuple[int, float]]:
    """(memory id, cosine) best first, cosine >= MIN_COSINE."""
    index = vector_index(store, character_id)
    emb = store.embedder()
    if emb is None or index is None or len(index.ids) == 0:
        return []
    q = emb.encode([query])[0] if isinstance(query, str) else query  # (384,)
    sims = index.mat @ q  # (N,)
    k = min(limit, len(sims))
    top = np.argpartition(-sims, k - 1)[:k]
    top = top[np.argsort(-sims[top])]
    return [(int(index.ids[i]), float(sims[i])) for i in top if sims[i] >= MIN_COSINE]


def recall(store: Store, character_id: int, query: str, limit: int = 8) -> list[dict[str, Any]]:
    """Memories most relevant to `query`, best first, each with `score`, `bm25`, `cosine`.

    Rankings (BM25 and cosine, for the whole query and for each of its sentences) are
    merged by reciprocal rank fusion: score = sum of 1 / (RRF_K + rank).
    """
    with one_blas_thread():
        return _recall(store, character_id, query, limit)


def _recall(store: Store, character_id: int, query: str, limit: int) -> list[dict[str, Any]]:
    if not query.strip():
        return []
    parts = query_parts(query)
    rankings = [fts_search(store, character_id, query)]
    index = vector_index(store, character_id)
    emb = store.embedder()
    if emb is not None and index is not None and len(index.ids):
        for vec in emb.encode(parts):  # (P, 384), one batch
            rankings.append(vector_search(store, character_id, vec))
    fused: dict[int, float] = {}
    bm25 = dict(rankings[0])
    cos: dict[int, float] = {}
    for ranking in rankings:
        for rank, (mid, _) in enumerate(ranking):
            fused[mid] = fused.get(mid, 0.0) + 1.0 / (RRF_K + rank + 1)
    for ranking in rankings[1:]:
        for mid, c in ranking:
            cos[mid] = max(cos.get(mid, -1.0), c)
    best = sorted(fused, key=lambda m: -fused[m])[:limit]
    if not best:
        return []
    rows = store.memories_by_ids(best)
    out = []
    for mid in best:
        if mid in rows:
            row = {k: rows[mid][k] for k in _RESULT_KEYS}
            row.update(score=fused[mid], bm25=bm25.get(mid), cosine=cos.get(mid))
            out.append(row)
    return out
