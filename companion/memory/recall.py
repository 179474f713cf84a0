"""Hybrid recall over facts and everything said: FTS5 BM25 + cosine similarity, merged by
weighted reciprocal rank fusion.

Two kinds of items are searched together: facts (`memories`) and passages of past messages
(`episodes`, episodic memory). Each ranker (BM25 over both FTS tables; cosine for the whole
query and for each of its sentences) ranks them in one list, and an item scores
weight / (RRF_K + rank) per ranker. The weight says how much an item is to be believed: a
fact or the user's own words fully, the companion's replies much less (the 135M model often
invents things), and a message whose fact was since replaced less than a current one.
`companion memory search` and the prompt's memory section both call recall(), so what the
CLI finds is what the companion is reminded of.

Vectors: the 384-d unit embeddings are stored as float32 BLOBs (the layout sqlite-vec reads)
and searched with in-process numpy matrices per character, cached beside this module (one
cache per Store, dropped with it). The facts' matrix is rebuilt when memories change, through
this Store (`Store.generation`) or another connection (`Store.data_version()`); the passages'
matrix only grows as messages arrive (a rebuild happens only when passages were removed).
sqlite-vec is not used: the Python builds we ship may lack `enable_load_extension`, and
exact search over 60k x 384 floats is a few milliseconds of matmul anyway.
"""

from __future__ import annotations

import re
import threading
import weakref
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from companion.memory._blas import one_blas_thread
from companion.memory.embed import embedding_text
from companion.memory.entities import known_entities, named_in_query
from companion.memory.facts import covers
from companion.memory.lexicon import intent_words, related_words
from companion.memory.shortlist import MIN_ROWS, Reduced, maybe_reduced, nearest

if TYPE_CHECKING:
    from companion.memory.store import Store

RRF_K = 20  # reciprocal rank fusion constant; lower than the usual 60 so that rank, not the
#             source weight alone, separates a barely related fact from the best message
CANDIDATES = 50  # hits taken from each ranker before fusion
MIN_COSINE = 0.2  # a vector-only hit below this is noise, not a memory worth injecting
WEIGHTS = {"fact": 1.0, "user": 0.85, "assistant": 0.3}  # how far each source is believed
RELATED_WEIGHT = 0.5  # the keyword ranker over the query's related words (memory.lexicon)...
RELATED_WORDS = 24  # ... at most this many of them...
RELATED_SCAN = 200  # ... ranked among this many newest matches: an OR of a dozen common words
#                     ("job", "office", "team") matches thousands of messages (12 ms at 1,000)
INTENT_WEIGHT = 1.0  # the keyword ranker over the answer words of what the question asks for
#                     (lexicon.INTENTS: "how do I get to work?" -> train, bus, bike...); its hits
#                     are not off topic (COSINE_GAP) unless the question barely relates to them
INTENT_FLOOR = 0.1  # (cosine under this: "walk" in a message about the dog, for "how do I get in?")
BM25_WEIGHT = 0.5  # the keyword ranker counts half: a shared common word ("name", "work") is weak
#                    evidence next to meaning, but it still lifts an exact name or number
SUPERSEDED = 0.15  # weight factor of a message whose fact was replaced since (it stays findable)
QUESTION = 0.5  # weight factor of a question the user asked: it tells nothing
COSINE_GAP = 0.15  # an item this far below the best cosine is off topic, whatever its keywords...
OFF_TOPIC = 0.3  # ... and weighs this much
DATED = 1.5  # weight factor of an item that carries a date, when the question asks "when"
LAZY_EMBED = 32  # passages without a vector embedded per recall (an old database fills in)
SOURCES = ("fact", "message")

_STOPWORDS = frozenset(
    "a an and are as at be but by did do does for from had has have he her him his how i i'm im in "
    "is it its me my of on or our she so that the their them they this to too was we were what when "
    "where which who why will with you your yours do don't can could would should about just".split()
)
_WHEN = re.compile(r"(?i)^\W*(?:(?:and|so|ok|hey)\W+)?(?:when\b|what\s+(?:date|day|time|month|year)\b|which\s+(?:date|day|month)\b|"
                   r"quand\b|cu[aá]ndo\b|wann\b|wanneer\b)")
_DATE = re.compile(r"(?i)\b(?:\d{4}-\d\d-\d\d|(?:mon|tues|wednes|thurs|fri|satur|sun)days?|january|february|march|april|may|"
                   r"june|july|august|september|october|november|december|\d{1,2}(?:st|nd|rd|th)|\d{1,2}(?::\d\d|\s?[ap]m)|"
                   r"tomorrow|tonight|next\s+(?:week|month|year))\b")
# the fields of a recalled fact, before its score / bm25 / cosine (what recall has always returned)
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


# --- vector indexes ---------------------------------------------------------------------


@dataclass
class VectorIndex:
    """Unit embeddings of one character's memories."""

    ids: np.ndarray  # (N,) int64 memory ids
    mat: np.ndarray  # (N, 384) float32, rows L2-normalized
    reduced: Reduced | None = None  # low-dimensional copy for the shortlist (memory.shortlist)


@dataclass
class EpisodeIndex:
    """Unit embeddings of one character's passages, in buffers that grow without copying
    everything on each new message."""

    dim: int
    count: int = 0  # passages in the table when last checked (with or without a vector)
    top_id: int = 0  # largest passage id seen
    pending: int = 0  # passages stored without a vector, embedded LAZY_EMBED at a time
    key: tuple[int, int] | None = None  # (episode_generation, data_version) when last checked
    n: int = 0  # rows filled
    pos: dict[int, int] = field(default_factory=dict)  # passage id -> row
    _ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # (cap,) passage ids
    _mids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # (cap,) message ids
    _user: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # (cap,) said by the user
    _mat: np.ndarray | None = None  # (cap, dim) float32
    reduced: Reduced | None = None  # low-dimensional copy for the shortlist, once n >= MIN_ROWS

    @property
    def ids(self) -> np.ndarray:
        return self._ids[: self.n]  # (N,)

    @property
    def message_ids(self) -> np.ndarray:
        return self._mids[: self.n]  # (N,)

    @property
    def is_user(self) -> np.ndarray:
        return self._user[: self.n]  # (N,)

    @property
    def mat(self) -> np.ndarray:
        if self._mat is None:
            return np.zeros((0, self.dim), np.float32)
        return self._mat[: self.n]  # (N, dim)

    def append(self, rows: list[tuple[int, int, bool, bytes]]) -> None:
        """Add (passage id, message id, said by the user, vector blob) rows."""
        if not rows:
            return
        need = self.n + len(rows)
        if self._mat is None or need > len(self._ids):
            cap = max(need, 2 * len(self._ids), 1024)
            mat = np.zeros((cap, self.dim), np.float32)  # (cap, dim)
            if self._mat is not None:
                mat[: self.n] = self._mat[: self.n]
            self._mat = mat
            self._ids = np.resize(self._ids, cap)
            self._mids = np.resize(self._mids, cap)
            self._user = np.resize(self._user, cap)
        sl = slice(self.n, need)
        self.pos.update((r[0], self.n + i) for i, r in enumerate(rows))
        self._ids[sl] = [r[0] for r in rows]
        self._mids[sl] = [r[1] for r in rows]
        self._user[sl] = [r[2] for r in rows]
        self._mat[sl] = np.frombuffer(b"".join(r[3] for r in rows), np.float32).reshape(len(rows), self.dim)
        self.n = need
        if self.reduced is not None:
            self.reduced.extend(self._mat[sl])
        elif self.n >= MIN_ROWS:
            self.reduced = maybe_reduced(self.mat)


@dataclass
class _IndexCache:
    """One Store's vector indexes by character id. Facts: valid while `key` is the store's
    (generation, data_version). Passages: each index checks its own key."""

    key: tuple[int, int] | None = None
    indexes: dict[int, VectorIndex] = field(default_factory=dict)
    episodes: dict[int, EpisodeIndex] = field(default_factory=dict)
    stale: dict[int, tuple[tuple[int, int, int], set[int]]] = field(default_factory=dict)  # superseded messages
    axes: dict[int, np.ndarray] = field(default_factory=dict)  # facts' shortlist axes, kept across rebuilds
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
    """The cached index of a character's facts, embedding any stored without a vector."""
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
    reduced = maybe_reduced(mat, cache.axes.get(character_id))  # facts change often: fit the axes once
    if reduced is not None:
        cache.axes[character_id] = reduced.axes
    index = VectorIndex(np.asarray(ids, np.int64), mat, reduced)
    with cache.lock:
        if cache.key == key:  # not if memories changed while it was being built
            cache.indexes[character_id] = index
    return index


def episode_index(store: Store, character_id: int) -> EpisodeIndex | None:
    """The cached index of a character's passages: appended to as messages arrive, rebuilt
    only when some were removed; passages without a vector are embedded a few per call."""
    emb = store.embedder()
    if emb is None:
        return None
    cache = _cache_of(store)
    with cache.lock:  # one builder at a time; readers of a built index do not wait long
        key = (store.episode_generation, store.data_version())
        index = cache.episodes.get(character_id)
        if index is None or index.key != key:
            index = _refresh(store, character_id, index, emb.dim)
            index.key = key
            cache.episodes[character_id] = index
        if index.pending:
            _embed_pending(store, character_id, index, emb)
        return index


def _refresh(store: Store, character_id: int, index: EpisodeIndex | None, dim: int) -> EpisodeIndex:
    count, top = store.episode_counts(character_id)
    if index is not None and (count, top) == (index.count, index.top_id):
        return index
    if index is not None and count > index.count and top > index.top_id:
        new = store.iter_episode_vectors(character_id, after_id=index.top_id)
        if index.count + len(new) == count:  # only additions since the last look
            _add_rows(index, new, dim)
            index.count, index.top_id = count, top
            return index
    fresh = EpisodeIndex(dim)  # something was removed (forget, wipe, another process): rebuild
    _add_rows(fresh, store.iter_episode_vectors(character_id), dim)
    fresh.count, fresh.top_id = count, top
    return fresh


def _add_rows(index: EpisodeIndex, rows: list[tuple[int, int, str, bytes | None]], dim: int) -> None:
    good = [(eid, mid, role == "user", blob) for eid, mid, role, blob in rows if blob and len(blob) == dim * 4]
    index.pending += len(rows) - len(good)
    index.append(good)


def _embed_pending(store: Store, character_id: int, index: EpisodeIndex, emb: Any) -> None:
    todo = store.unembedded_episodes(character_id, LAZY_EMBED)
    if not todo:
        index.pending = 0
        return
    vecs = emb.encode([t for _, t in todo])  # (B, 384)
    blobs = [np.asarray(v, np.float32).tobytes() for v in vecs]
    store.set_episode_embeddings([(eid, b) for (eid, _), b in zip(todo, blobs, strict=True)])
    rows = store.episodes_by_ids([eid for eid, _ in todo])
    index.append([(eid, int(rows[eid]["message_id"]), rows[eid]["role"] == "user", b)
                  for (eid, _), b in zip(todo, blobs, strict=True) if eid in rows])
    index.pending = max(0, index.pending - len(todo))


# --- searching ----------------------------------------------------------------------------


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
    q = emb.encode([query]) if isinstance(query, str) else query[None, :]  # (1, 384)
    return _top(index.ids, *nearest(index.mat, q, limit, index.reduced)[0])


def _top(ids: np.ndarray, rows: np.ndarray, sims: np.ndarray) -> list[tuple[int, float]]:
    """(id, cosine) of nearest()'s rows, best first, cosine >= MIN_COSINE."""
    return [(int(ids[r]), float(c)) for r, c in zip(rows.tolist(), sims.tolist(), strict=True) if c >= MIN_COSINE]


def recall(
    store: Store,
    character_id: int,
    query: str,
    limit: int = 8,
    *,
    sources: Collection[str] = SOURCES,
    exclude_messages: Collection[int] = (),
) -> list[dict[str, Any]]:
    """Facts and passages of past messages most relevant to `query`, best first.

    A fact is its memory row (id, kind, slot, text, pinned, ...) with `source` "fact"; a
    message is {id: message id, source: "message", role, text: the passage, said_at,
    conversation_id, ...}, one per message. Each has `score`, `bm25` and `cosine`.
    exclude_messages: messages already in the prompt (the conversation's recent turns).
    """
    with one_blas_thread():
        return _recall(store, character_id, query, limit, set(sources), set(exclude_messages))


Key = tuple[str, int]  # ("f", memory id) | ("e", passage id)


def _recall(
    store: Store, character_id: int, query: str, limit: int, sources: set[str], exclude: set[int]
) -> list[dict[str, Any]]:
    if not query.strip():
        return []
    named = named_in_query(query, known_entities(store, character_id))
    # "my manager" in a question is "Helen" in what the user said: search for both
    match = fts_query(" ".join([query, *(name for _, name in named)]))
    use_facts, use_messages = "fact" in sources, "message" in sources
    def keyword_hits(match: str | None, scan: int | None = None) -> dict[Key, float]:
        """bm25 of the facts and/or passages matching an FTS5 expression (lower is better)."""
        if match is None:
            return {}
        more = () if scan is None else (scan,)
        found: dict[Key, float] = {}
        if use_facts:
            found.update({("f", i): s for i, s in store.fts_memories(character_id, match, CANDIDATES, *more)})
        if use_messages:
            found.update({("e", i): s for i, s in store.fts_episodes(character_id, match, CANDIDATES, *more)})
        return found

    def best(hits: dict[Key, float]) -> list[Key]:
        return sorted(hits, key=lambda k: hits[k])[:CANDIDATES]

    bm25 = keyword_hits(match)
    rankings: list[tuple[float, list[Key]]] = [(BM25_WEIGHT, best(bm25))]
    related = fts_query(" ".join(related_words(query, RELATED_WORDS))) if RELATED_WEIGHT else None
    if related is not None:
        rankings.append((RELATED_WEIGHT, best(keyword_hits(related, RELATED_SCAN))))
    intended: set[Key] = set()
    wanted = fts_query(" ".join(intent_words(query))) if INTENT_WEIGHT else None
    if wanted is not None:
        ranked = best(keyword_hits(wanted, RELATED_SCAN))
        rankings.append((INTENT_WEIGHT, ranked))
        intended = set(ranked)
    emb = store.embedder()
    facts = vector_index(store, character_id) if use_facts else None
    episodes = episode_index(store, character_id) if use_messages else None
    parts = query_parts(query)
    for phrase, name in named:
        parts.append(query.replace(phrase, name))
    queries = emb.encode(parts) if emb is not None else None  # (P, 384)
    if queries is not None and ((facts is not None and len(facts.ids)) or (episodes is not None and episodes.n)):
        # one pass over each matrix (or its reduced copy) for all query parts: the matrices'
        # bytes, not the flops, cost
        f_near = nearest(facts.mat, queries, CANDIDATES, facts.reduced) if facts is not None else None
        e_near = nearest(episodes.mat, queries, CANDIDATES, episodes.reduced) if episodes is not None else None
        for j in range(len(queries)):
            hits: list[tuple[Key, float]] = []
            if f_near is not None and facts is not None:
                hits += [(("f", i), c) for i, c in _top(facts.ids, *f_near[j])]
            if e_near is not None and episodes is not None:
                hits += [(("e", i), c) for i, c in _top(episodes.ids, *e_near[j])]
            hits.sort(key=lambda h: -h[1])
            rankings.append((1.0, [k for k, _ in hits[:CANDIDATES]]))
    candidates = {k for _, r in rankings for k in r}
    cos = _cosines(candidates, queries, facts, episodes)
    rows = store.memories_by_ids([i for s, i in candidates if s == "f"])
    passages = store.episodes_by_ids([i for s, i in candidates if s == "e"])
    stale = _superseded(store, character_id) if passages else set()

    def weight(k: Key) -> float:
        if k[0] == "f":
            return WEIGHTS["fact"] if k[1] in rows else 0.0
        p = passages.get(k[1])
        if p is None or p["message_id"] in exclude:
            return 0.0
        w = WEIGHTS[p["role"]] * (SUPERSEDED if p["message_id"] in stale or p["superseded_by"] else 1.0)
        return w * (QUESTION if p["role"] == "user" and p["text"].rstrip().endswith("?") else 1.0)

    weights = {k: weight(k) for k in candidates}
    if _WHEN.search(query):  # the answer to "when" is a date: items that hold one come first
        for k in candidates:
            item = rows.get(k[1]) if k[0] == "f" else passages.get(k[1])
            if item is not None and (item.get("happens_on") or _DATE.search(item["text"])):
                weights[k] *= DATED
    best_cos = max((c for k, c in cos.items() if weights[k] >= QUESTION * WEIGHTS["user"]), default=0.0)
    for k, c in cos.items():
        if c < best_cos - COSINE_GAP and (k not in intended or c < INTENT_FLOOR):
            weights[k] *= OFF_TOPIC
    fused: dict[Key, float] = {}
    for ranker_weight, ranking in rankings:
        for rank, k in enumerate(ranking):
            if weights[k] > 0:
                fused[k] = fused.get(k, 0.0) + ranker_weight * weights[k] / (RRF_K + rank + 1)
    _fold_into_facts(fused, rows, passages)
    out: list[dict[str, Any]] = []
    seen_messages: set[int] = set()
    for k in sorted(fused, key=lambda k: -fused[k]):
        if k[0] == "f":
            row: dict[str, Any] = {key: rows[k[1]][key] for key in _RESULT_KEYS}
            row.update(source="fact", entity_id=rows[k[1]]["entity_id"], happens_on=rows[k[1]]["happens_on"])
        else:
            p = passages[k[1]]
            if p["message_id"] in seen_messages:
                continue  # one passage per message: its best
            seen_messages.add(p["message_id"])
            row = {"id": p["message_id"], "source": "message", "role": p["role"], "kind": "said", "slot": None,
                   "text": p["text"], "pinned": 0, "source_message_id": p["message_id"],
                   "conversation_id": p["conversation_id"], "said_at": p["said_at"],
                   "created_at": p["said_at"], "updated_at": p["said_at"], "passage_id": k[1],
                   "superseded": p["message_id"] in stale or bool(p["superseded_by"])}
        row.update(score=fused[k], bm25=bm25.get(k), cosine=cos.get(k))
        out.append(row)
        if len(out) >= limit:
            break
    return out


def _superseded(store: Store, character_id: int) -> set[int]:
    """store.superseded_messages, cached until memories or messages change."""
    key = (store.generation, store.episode_generation, store.data_version())
    cache = _cache_of(store)
    with cache.lock:
        hit = cache.stale.get(character_id)
    if hit is not None and hit[0] == key:
        return hit[1]
    found = store.superseded_messages(character_id)
    with cache.lock:
        cache.stale[character_id] = (key, found)
    return found


def _cosines(
    keys: set[Key], queries: np.ndarray | None, facts: VectorIndex | None, episodes: EpisodeIndex | None
) -> dict[Key, float]:
    """Each candidate's best cosine over the query parts (keyword-only hits included)."""
    if queries is None:
        return {}
    out: dict[Key, float] = {}
    f_keys = [k for k in keys if k[0] == "f"]
    if facts is not None and len(facts.ids) and f_keys:
        at = np.searchsorted(facts.ids, [k[1] for k in f_keys])  # facts.ids ascending
        ok = [(k, j) for k, j in zip(f_keys, at.tolist(), strict=True) if j < len(facts.ids) and facts.ids[j] == k[1]]
        if ok:
            sims = facts.mat[[j for _, j in ok]] @ queries.T  # (F, P)
            out.update({k: float(v) for (k, _), v in zip(ok, sims.max(1), strict=True)})
    e_keys = [k for k in keys if k[0] == "e" and episodes is not None and k[1] in episodes.pos]
    if episodes is not None and e_keys:
        sims = episodes.mat[[episodes.pos[k[1]] for k in e_keys]] @ queries.T  # (E, P)
        out.update({k: float(v) for k, v in zip(e_keys, sims.max(1), strict=True)})
    return out


def _fold_into_facts(fused: dict[Key, float], rows: dict[int, dict[str, Any]], passages: dict[int, dict[str, Any]]) -> None:
    """A passage that the facts drawn from its message stand for (a sentence turned into a fact,
    a date resolved) is shown once, as the fact, ranked where the better of the two was."""
    by_message: dict[int, list[int]] = {}
    for fid, row in rows.items():
        if ("f", fid) in fused and row["source_message_id"] is not None:
            by_message.setdefault(int(row["source_message_id"]), []).append(fid)
    for k in [k for k in fused if k[0] == "e"]:
        p = passages.get(k[1])
        fids = by_message.get(int(p["message_id"])) if p else None
        if not fids or not covers([rows[f]["text"] for f in fids], p["text"] if p else "", left_out=2):
            continue
        best = max(fids, key=lambda f: fused[("f", f)])
        fused[("f", best)] = max(fused[("f", best)], fused.pop(k))
