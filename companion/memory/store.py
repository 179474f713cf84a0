"""The local database: characters, conversations, messages, memories and summaries.

One SQLite file (`home_dir()/companion.db`) in WAL mode, schema by `migrations.py`.
Every public method is one short transaction, so a crash never leaves half an
operation behind; every sqlite3 failure surfaces as a StorageError.

Episodic memory: every finished user message and reply is also stored as passages
(`episodes`, with FTS5 and an embedding) so that recall finds what was said even when no
rule made a fact of it. Forgetting a fact removes the passages of the message it came from;
wiping removes every passage; the transcript itself (`messages`) stays until its
conversation is deleted.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np

from companion.errors import StorageError
from companion.memory import _db
from companion.memory._db import now, storage_errors
from companion.memory.embed import embedding_text
from companion.memory.migrations import migrate
from companion.memory.passages import passages
from companion.persona.card import Character, card_from_dict, card_to_dict
from companion.persona.default import default_character

DB_NAME = "companion.db"
# Keyword search ranks the newest FTS_SCAN matches of a query, not all of them: bm25() costs a
# read of each match's size, and a common word in 50k messages matched ~2,000 rows and took
# 30-160 ms on a busy 2-core laptop (6.5 ms with 1,000, 1.5 ms with 500 and the covering index
# in _fts). Older matches are still found by meaning.
FTS_SCAN = 500
ReplyStatus = Literal["done", "stopped", "error"]
T = TypeVar("T")
Clock = Callable[[], str]  # an ISO timestamp, sortable as text (default: now in UTC)


def default_db_path() -> Path:
    """`home_dir()/companion.db` (COMPANION_HOME redirects it)."""
    from companion.settings import home_dir

    return home_dir() / DB_NAME


@dataclass
class Removed:
    """Rows a forget took out of memory, whole (embeddings included), so Undo can put them back."""

    memories: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    episodes: list[dict[str, Any]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.memories or self.episodes)


@dataclass
class CharacterRecord:
    """A stored character: its row id, validated card and avatar PNG (or None)."""

    id: int
    card: Character
    avatar: bytes | None = None

    @property
    def name(self) -> str:
        return self.card.name


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class Store:
    """Companion's database. Thread-safe; open one per process and close() it when done.

    `embedder` turns texts into unit vectors for memory recall (default: the shared
    all-MiniLM-L6-v2, loaded lazily on first need); pass None for full-text recall only.
    `clock` stamps every row (the evaluation replays conversations on chosen dates).
    """

    def __init__(
        self, path: Path | str | None = None, *, embedder: Any = "default", timeout_s: float = _db.BUSY_TIMEOUT_S,
        clock: Clock = now,
    ) -> None:
        self.path = Path(path) if path is not None else default_db_path()
        self._lock = threading.RLock()
        self._embedder = embedder
        self.clock = clock
        self._generation = 0  # bumped on every memory change made through this Store
        self._episode_generation = 0  # bumped on every episode change made through this Store
        if not self.path.parent.is_dir():
            raise StorageError(f"database folder {self.path.parent} does not exist")
        self.db = _db.connect(self.path, timeout_s)
        try:
            with storage_errors(self.path):
                migrate(self.db, self.path)
            self.recover_interrupted()
        except BaseException:
            self.db.conn.close()
            raise

    # --- plumbing -----------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            try:
                self.db.conn.close()
            except sqlite3.Error:
                pass

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, fn: Callable[[], T]) -> T:
        """Run fn inside one transaction; sqlite3 errors become StorageError, nothing half-done."""
        with self._lock, storage_errors(self.path):
            with self.db.atomic():
                return fn()

    def _read(self, sql: str, params: tuple | list = ()) -> list[dict[str, Any]]:
        with self._lock, storage_errors(self.path):
            cur = self.db.execute(sql, params)
            cols = [c[0] for c in cur.description]
            return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]

    def _insert(self, table: str, row: dict[str, Any]) -> int:
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        cur = self.db.execute(f"INSERT INTO {table} ({cols}) VALUES ({marks})", list(row.values()))
        return int(cur.lastrowid or 0)

    def embedder(self) -> Any | None:
        """The sentence embedder, loading the default one on first use; None if unavailable."""
        if isinstance(self._embedder, str):
            from companion.errors import ModelError
            from companion.memory.embed import get_embedder

            try:
                self._embedder = get_embedder()
            except ModelError:
                self._embedder = None
        return self._embedder

    def data_version(self) -> int:
        """SQLite's PRAGMA data_version on this connection: it changes whenever *another*
        connection commits (another Store, `companion memory forget` in a shell), never for
        this Store's own writes (those bump `generation`)."""
        with self._lock, storage_errors(self.path):
            return int(self.db.execute("PRAGMA data_version").fetchone()[0])

    def integrity_check(self) -> str:
        """'ok' when SQLite finds no corruption, else its report."""
        return "\n".join(r["integrity_check"] for r in self._read("PRAGMA integrity_check"))

    def backup(self, dest: Path) -> Path:
        """Copy the whole database to one file, consistently, with SQLite's online backup API."""
        dest = Path(dest)
        if dest.exists():
            raise StorageError(f"{dest} already exists: choose another file name")
        with self._lock, storage_errors(dest):
            target = sqlite3.connect(str(dest))
            try:
                self.db.conn.backup(target)
                target.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
            finally:
                target.close()
        return dest

    # --- characters ---------------------------------------------------------------------

    def _character_row(self, row: dict[str, Any]) -> CharacterRecord:
        card, _ = card_from_dict(json.loads(row["card"]), f"stored card {row['id']}")
        return CharacterRecord(id=row["id"], card=card, avatar=row.get("avatar"))

    def import_character(self, card: Character, avatar: bytes | None = None, *, replace: bool = False) -> int:
        """Store a validated character; replace=True overwrites one with the same name."""
        blob = json.dumps(card_to_dict(card, "v3"), ensure_ascii=False)

        def op() -> int:
            existing = self.db.execute("SELECT id FROM characters WHERE name = ?", [card.name]).fetchone()
            if existing and not replace:
                raise StorageError(
                    f"a character named {card.name!r} already exists: use replace to overwrite it"
                )
            ts = self.clock()
            if existing:
                self.db.execute(
                    "UPDATE characters SET card = ?, avatar = ?, updated_at = ? WHERE id = ?",
                    [blob, avatar, ts, existing[0]],
                )
                return int(existing[0])
            return self._insert(
                "characters", {"name": card.name, "card": blob, "avatar": avatar, "created_at": ts, "updated_at": ts}
            )

        return self._write(op)

    def ensure_character(self, name: str | None = None) -> int:
        """Id of the character called `name` (None = the default one, created on first use)."""
        if name is not None:
            return self.character(name).id
        default = default_character()
        rows = self._read("SELECT id FROM characters WHERE name = ?", [default.name])
        if rows:
            return int(rows[0]["id"])
        return self.import_character(default)

    def character(self, ref: int | str) -> CharacterRecord:
        """A character by id or by name (case-insensitive)."""
        if isinstance(ref, int):
            rows = self._read("SELECT * FROM characters WHERE id = ?", [ref])
        else:
            rows = self._read("SELECT * FROM characters WHERE name = ? COLLATE NOCASE", [ref])
        if not rows:
            raise StorageError(f"no character {ref!r}: see `companion character list`")
        return self._character_row(rows[0])

    def characters(self) -> list[CharacterRecord]:
        """All stored characters, by name."""
        return [self._character_row(r) for r in self._read("SELECT * FROM characters ORDER BY name COLLATE NOCASE")]

    def delete_character(self, character_id: int) -> None:
        """Delete a character with its conversations and memories."""
        self._write(lambda: self.db.execute("DELETE FROM characters WHERE id = ?", [character_id]))
        self._memories_changed()
        self._episodes_changed()

    # --- conversations and messages -----------------------------------------------------

    def new_conversation(self, character_id: int, title: str | None = None) -> int:
        """Start a conversation with a character; returns its id."""
        ts = self.clock()
        return self._write(lambda: self._insert(
            "conversations", {"character_id": character_id, "title": title, "created_at": ts, "updated_at": ts}
        ))

    def conversation(self, conversation_id: int) -> dict[str, Any]:
        """One conversation row (id, character_id, title, created_at, updated_at)."""
        rows = self._read("SELECT * FROM conversations WHERE id = ?", [conversation_id])
        if not rows:
            raise StorageError(f"no conversation {conversation_id}")
        return rows[0]

    def conversations(self, character_id: int | None = None) -> list[dict[str, Any]]:
        """Conversations, most recent first, with message counts."""
        where = "WHERE c.character_id = ?" if character_id is not None else ""
        return self._read(
            f"""SELECT c.*, ch.name AS character_name, COUNT(m.id) AS message_count
                FROM conversations c JOIN characters ch ON ch.id = c.character_id
                LEFT JOIN messages m ON m.conversation_id = c.id
                {where} GROUP BY c.id ORDER BY c.updated_at DESC, c.id DESC""",
            [character_id] if character_id is not None else [],
        )

    def delete_conversation(self, conversation_id: int) -> None:
        """Delete a conversation, its messages (and their passages) and summaries (memories stay)."""
        self._write(lambda: self.db.execute("DELETE FROM conversations WHERE id = ?", [conversation_id]))
        self._episodes_changed()

    def messages(self, conversation_id: int, *, after_id: int = 0) -> list[dict[str, Any]]:
        """Messages of a conversation in order (optionally only those with id > after_id)."""
        rows = self._read(
            "SELECT * FROM messages WHERE conversation_id = ? AND id > ? ORDER BY id",
            [conversation_id, after_id],
        )
        for r in rows:
            r["stats"] = json.loads(r["stats"]) if r.get("stats") else None
        return rows

    def message(self, message_id: int) -> dict[str, Any]:
        """One message row."""
        rows = self._read("SELECT * FROM messages WHERE id = ?", [message_id])
        if not rows:
            raise StorageError(f"no message {message_id}")
        return rows[0]

    def add_message(
        self,
        conversation_id: int,
        role: Literal["system", "user", "assistant"],
        content: str,
        tokens: int | None = None,
        engine: str | None = None,
        stats: dict[str, Any] | None = None,
        *,
        recall_text: str | None = None,
    ) -> int:
        """Store a complete message now (a user message is committed the moment it is sent),
        and index it for recall: `recall_text` (default: the content; "" = not at all), e.g.
        without the sentence that asked to forget something."""
        ts = self.clock()
        indexed = content if recall_text is None else recall_text
        parts = passages(indexed) if role in ("user", "assistant") else []
        blobs = self._embed(parts, said=True) if parts else []

        def op() -> int:
            mid = self._insert("messages", {
                "conversation_id": conversation_id, "role": role, "content": content, "status": "done",
                "tokens": tokens, "engine": engine, "created_at": ts, "finished_at": ts,
                "stats": json.dumps(stats) if stats else None,
            })
            self._touch(conversation_id, ts)
            self._insert_episodes(mid, conversation_id, role, parts, blobs, ts)
            return mid

        mid = self._write(op)
        if parts:
            self._episodes_changed()
        return mid

    def _insert_episodes(
        self, message_id: int, conversation_id: int, role: str, parts: list[str], blobs: list[bytes | None], ts: str
    ) -> None:
        if not parts:
            return
        row = self.db.execute("SELECT character_id FROM conversations WHERE id = ?", [conversation_id]).fetchone()
        model = self._embedding_model() if any(blobs) else None
        self.db.conn.executemany(
            "INSERT INTO episodes (message_id, character_id, role, text, said_at, embedding, embedding_model) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(message_id, row[0], role, p, ts, b, model if b else None) for p, b in zip(parts, blobs, strict=True)],
        )

    def _touch(self, conversation_id: int, ts: str) -> None:
        self.db.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", [ts, conversation_id])

    def start_reply(self, conversation_id: int, engine: str | None = None) -> int:
        """Create the assistant message that is about to stream; returns its id."""
        ts = self.clock()

        def op() -> int:
            mid = self._insert("messages", {
                "conversation_id": conversation_id, "role": "assistant", "content": "", "status": "streaming",
                "engine": engine, "writer_pid": os.getpid(), "created_at": ts,
            })
            self._touch(conversation_id, ts)
            return mid

        return self._write(op)

    def checkpoint_reply(self, message_id: int, text: str) -> None:
        """Save the reply text streamed so far. Call it before (or as) text is shown:
        whatever was checkpointed survives a crash."""
        self._write(lambda: self.db.execute(
            "UPDATE messages SET content = ? WHERE id = ? AND status = 'streaming'", [text, message_id]
        ))

    def finish_reply(
        self,
        message_id: int,
        text: str,
        status: ReplyStatus = "done",
        stats: dict[str, Any] | None = None,
        tokens: int | None = None,
        engine: str | None = None,
        *,
        index: bool = True,
    ) -> None:
        """Finalize a streamed reply: full text, status (done / stopped / error), stats
        (e.g. prompt_tokens, tokens_per_s, engine details) and timing. A reply that was shown
        (done or stopped) is indexed for recall unless index=False."""
        if status not in ("done", "stopped", "error"):
            raise ValueError(f"status must be done, stopped or error, not {status!r}")
        ts = self.clock()
        parts = passages(text) if index and status in ("done", "stopped") else []
        blobs = self._embed(parts, said=True) if parts else []

        def op() -> None:
            self.db.execute(
                """UPDATE messages SET content = ?, status = ?, stats = ?, tokens = COALESCE(?, tokens),
                       engine = COALESCE(?, engine), finished_at = ?, writer_pid = NULL,
                       duration_ms = (julianday(?) - julianday(created_at)) * 86400000.0
                   WHERE id = ?""",
                [text, status, json.dumps(stats) if stats else None, tokens, engine, ts, ts, message_id],
            )
            row = self.db.execute("SELECT conversation_id, created_at FROM messages WHERE id = ?", [message_id]).fetchone()
            if row is not None:
                self.db.execute("DELETE FROM episodes WHERE message_id = ?", [message_id])
                self._insert_episodes(message_id, row[0], "assistant", parts, blobs, row[1])

        self._write(op)
        if parts:
            self._episodes_changed()

    def recover_interrupted(self) -> int:
        """Mark replies whose streaming process died (crash, kill -9) as 'interrupted';
        returns how many. Their checkpointed text is kept."""
        rows = self._read("SELECT id, writer_pid FROM messages WHERE status = 'streaming'")
        dead = [r["id"] for r in rows if not r["writer_pid"] or not _pid_alive(int(r["writer_pid"]))]
        if dead:
            ts = self.clock()
            try:
                self._write(lambda: self.db.execute(
                    f"UPDATE messages SET status = 'interrupted', writer_pid = NULL, finished_at = ? "
                    f"WHERE id IN ({','.join('?' * len(dead))})",
                    [ts, *dead],
                ))
            except StorageError:
                pass  # a read-only / locked database can still be read; retried next open
        return len(dead)

    # --- summaries ----------------------------------------------------------------------

    def summary(self, conversation_id: int) -> dict[str, Any] | None:
        """The latest rolling summary {text, upto_message_id, tokens} or None."""
        rows = self._read(
            "SELECT * FROM summaries WHERE conversation_id = ? ORDER BY id DESC LIMIT 1", [conversation_id]
        )
        return rows[0] if rows else None

    def set_summary(self, conversation_id: int, text: str, upto_message_id: int, tokens: int | None = None) -> int:
        """Store a new rolling summary covering messages up to upto_message_id."""
        return self._write(lambda: self._insert("summaries", {
            "conversation_id": conversation_id, "upto_message_id": upto_message_id, "text": text,
            "tokens": tokens, "created_at": self.clock(),
        }))

    # --- memories -----------------------------------------------------------------------

    @property
    def generation(self) -> int:
        """Counts memory changes made through this Store (add, edit, delete, wipe, deleting a
        character); with data_version() it tells a cache of memories when to rebuild."""
        return self._generation

    @property
    def episode_generation(self) -> int:
        """Counts episode changes made through this Store (new messages, forgetting, wiping)."""
        return self._episode_generation

    def _memories_changed(self) -> None:
        self._generation += 1

    def _episodes_changed(self) -> None:
        self._episode_generation += 1

    def _embed(self, texts: list[str], *, said: bool = False) -> list[bytes | None]:
        """Vectors of memories (as the user would say them: memory.embed.embedding_text) or,
        said=True, of passages of messages (as they were said)."""
        emb = self.embedder()
        if emb is None:
            return [None] * len(texts)
        vecs = emb.encode(texts if said else [embedding_text(t) for t in texts])  # (N, 384)
        return [np.asarray(v, np.float32).tobytes() for v in vecs]

    def _embedding_model(self) -> str | None:
        emb = self.embedder()
        return getattr(emb, "name", None) if emb is not None else None

    def add_memory(
        self,
        character_id: int,
        text: str,
        *,
        kind: str = "fact",
        slot: str | None = None,
        pinned: bool = False,
        source_message_id: int | None = None,
        entity_id: int | None = None,
        happens_on: str | None = None,
        origin: str | None = None,
    ) -> int:
        """Store one memory (no dedupe: see memory.extract.remember for that)."""
        text = text.strip()
        if not text:
            raise ValueError("a memory needs some text")
        (blob,) = self._embed([text])
        ts = self.clock()
        mid = self._write(lambda: self._insert("memories", {
            "character_id": character_id, "kind": kind, "slot": slot, "text": text, "pinned": int(pinned),
            "source_message_id": source_message_id, "created_at": ts, "updated_at": ts,
            "embedding": blob, "embedding_model": self._embedding_model() if blob else None,
            "entity_id": entity_id, "happens_on": happens_on, "origin": origin,
        }))
        self._memories_changed()
        return mid

    def add_embedded_memories(self, character_id: int, items: Sequence[tuple[str, bytes]], *, kind: str = "fact") -> int:
        """Store many memories whose vectors are already computed (float32 blobs from this
        store's embedder), in one transaction; returns how many. No dedupe, no re-embedding:
        the benchmark fills a store with synthetic memories this way."""
        ts = self.clock()
        model = self._embedding_model()
        rows = []
        for text, blob in items:
            text = text.strip()
            if not text:
                raise ValueError("a memory needs some text")
            rows.append((character_id, kind, text, ts, ts, blob, model))
        self._write(lambda: self.db.conn.executemany(
            "INSERT INTO memories (character_id, kind, text, created_at, updated_at, embedding, embedding_model) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)", rows))
        self._memories_changed()
        return len(rows)

    def add_embedded_messages(self, conversation_id: int, items: Sequence[tuple[str, str, bytes]]) -> int:
        """Store many one-passage messages (role, text, float32 blob) with their episodes, in one
        transaction; returns how many. The benchmark fills a store with synthetic turns this way."""
        ts = self.clock()
        model = self._embedding_model()

        def op() -> int:
            (character_id,) = self.db.execute(
                "SELECT character_id FROM conversations WHERE id = ?", [conversation_id]).fetchone()
            for role, text, blob in items:
                mid = self._insert("messages", {
                    "conversation_id": conversation_id, "role": role, "content": text, "status": "done",
                    "created_at": ts, "finished_at": ts})
                self.db.execute(
                    "INSERT INTO episodes (message_id, character_id, role, text, said_at, embedding, embedding_model) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)", [mid, character_id, role, text, ts, blob, model])
            return len(items)

        n = self._write(op)
        self._episodes_changed()
        return n

    def update_memory(
        self,
        memory_id: int,
        *,
        text: str | None = None,
        pinned: bool | None = None,
        source_message_id: int | None = None,
        slot: str | None = None,
        happens_on: str | None = None,
    ) -> None:
        """Edit a memory; a new text keeps the old one (previous_text, and a row of
        memory_history with who said it) and is re-embedded."""
        old = self.memory(memory_id)
        ts = self.clock()
        sets: dict[str, Any] = {"updated_at": ts}
        replaced = text is not None and bool(text.strip()) and text.strip() != old["text"]
        if text is not None and replaced:
            sets["text"] = text.strip()
            sets["previous_text"] = old["text"]
            (blob,) = self._embed([text.strip()])
            sets["embedding"] = blob
            sets["embedding_model"] = self._embedding_model() if blob else None
        if pinned is not None:
            sets["pinned"] = int(pinned)
        if source_message_id is not None:
            sets["source_message_id"] = source_message_id
        if slot is not None:
            sets["slot"] = slot
        if happens_on is not None:
            sets["happens_on"] = happens_on
        cols = ", ".join(f"{k} = ?" for k in sets)

        def op() -> None:
            if replaced:
                self._insert("memory_history", {"memory_id": memory_id, "text": old["text"],
                                                "source_message_id": old["source_message_id"], "replaced_at": ts})
            self.db.execute(f"UPDATE memories SET {cols} WHERE id = ?", [*sets.values(), memory_id])

        self._write(op)
        self._memories_changed()

    def memory(self, memory_id: int) -> dict[str, Any]:
        """One memory row (without the embedding blob)."""
        rows = self._read(f"SELECT {_MEMORY_COLS} FROM memories WHERE id = ?", [memory_id])
        if not rows:
            raise StorageError(f"no memory {memory_id}: see `companion memory list`")
        return rows[0]

    def memory_history(self, memory_id: int) -> list[dict[str, Any]]:
        """The values a memory had before, oldest first (text, source_message_id, replaced_at)."""
        return self._read("SELECT * FROM memory_history WHERE memory_id = ? ORDER BY id", [memory_id])

    def memories_by_ids(self, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        """Memory rows (as memory() gives them) by id; an id not stored is left out."""
        if not ids:
            return {}
        rows = self._read(
            f"SELECT {_MEMORY_COLS} FROM memories WHERE id IN ({','.join('?' * len(ids))})", list(ids)
        )
        return {int(r["id"]): r for r in rows}

    def fts_memories(self, character_id: int, match: str, limit: int, scan: int = FTS_SCAN) -> list[tuple[int, float]]:
        """(memory id, bm25) of a character's memories matching an FTS5 MATCH expression, best
        first; bm25 is negative, lower is better (SQLite's convention). Ranked among the
        FTS_SCAN newest matches (see FTS_SCAN)."""
        return self._fts("memories", character_id, match, limit, scan)

    def _fts(self, table: str, character_id: int, match: str, limit: int, scan: int = FTS_SCAN) -> list[tuple[int, float]]:
        # the passages' (character_id, id) index answers "whose is it" without reading the row
        # and its 1.5 kB vector (1,000 matches over 50k passages: 6.5 -> 4 ms)
        hint = " INDEXED BY episodes_by_character" if table == "episodes" else ""
        with self._lock, storage_errors(self.path):
            rows = self.db.execute(
                f"""SELECT t.id, s FROM (SELECT rowid AS r, bm25({table}_fts) AS s FROM {table}_fts
                        WHERE {table}_fts MATCH ? ORDER BY rowid DESC LIMIT ?)
                    JOIN {table} t{hint} ON t.id = r WHERE t.character_id = ? ORDER BY s LIMIT ?""",
                [match, scan, character_id, limit],
            ).fetchall()
        return [(int(i), float(score)) for i, score in rows]

    def memories(self, character_id: int | None = None, *, slot: str | None = None) -> list[dict[str, Any]]:
        """Memories (newest first), optionally of one character / one slot."""
        clause, params = _where(character_id=character_id, slot=slot)
        return self._read(
            f"SELECT {_MEMORY_COLS} FROM memories {clause} ORDER BY updated_at DESC, id DESC", params
        )

    def delete_memory(self, memory_id: int) -> Removed:
        """Forget one memory, with the passages of the message it came from (else recall would
        still find it there); returns what was removed (for an undo)."""
        self.memory(memory_id)
        return self.forget(memory_ids=[memory_id])

    def forget(self, *, memory_ids: Sequence[int] = (), episode_ids: Sequence[int] = (),
               message_ids: Sequence[int] = (), with_sources: bool = True) -> Removed:
        """Remove memories (and, with_sources, the passages of the messages they came from),
        passages, and all passages of messages, in one transaction; returns the rows, whole,
        for restore()."""
        def rows(table: str, col: str, ids: Sequence[int]) -> list[dict[str, Any]]:
            if not ids:
                return []
            cur = self.db.execute(f"SELECT * FROM {table} WHERE {col} IN ({','.join('?' * len(ids))})", list(ids))
            cols = [c[0] for c in cur.description]
            return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]

        def op() -> Removed:
            mems = rows("memories", "id", list(memory_ids))
            sources = {m["source_message_id"] for m in mems if m["source_message_id"] is not None and with_sources}
            episodes = {e["id"]: e for e in rows("episodes", "id", list(episode_ids))}
            for e in rows("episodes", "message_id", sorted(sources | set(message_ids))):
                episodes[e["id"]] = e
            removed = Removed(mems, rows("memory_history", "memory_id", [m["id"] for m in mems]), list(episodes.values()))
            for table, ids in (("memories", [m["id"] for m in mems]), ("episodes", list(episodes))):
                if ids:
                    self.db.execute(f"DELETE FROM {table} WHERE id IN ({','.join('?' * len(ids))})", ids)
            return removed

        removed = self._write(op)
        self._memories_changed()
        self._episodes_changed()
        return removed

    def restore(self, removed: Removed) -> dict[int, int]:
        """Put back what forget() removed (ids kept where still free); returns {old id: new id}
        of the memories."""
        def put(table: str, row: dict[str, Any]) -> int:
            taken = self.db.execute(f"SELECT 1 FROM {table} WHERE id = ?", [row["id"]]).fetchone()
            return self._insert(table, {k: v for k, v in row.items() if not (taken and k == "id")})

        def op() -> dict[int, int]:
            ids = {}
            for m in removed.memories:
                ids[m["id"]] = put("memories", m)
            for h in removed.history:
                if h["memory_id"] in ids:
                    put("memory_history", {**h, "memory_id": ids[h["memory_id"]]})
            for e in removed.episodes:
                if self.db.execute("SELECT 1 FROM messages WHERE id = ?", [e["message_id"]]).fetchone():
                    put("episodes", e)
            return ids

        ids = self._write(op)
        self._memories_changed()
        self._episodes_changed()
        return ids

    def wipe_memories(self, character_id: int | None = None) -> int:
        """Forget all memories (of one character, or everyone's), with every passage of episodic
        memory and the people and pets known; returns how many memories. Transcripts stay."""
        def op() -> int:
            where, params = ("", []) if character_id is None else (" WHERE character_id = ?", [character_id])
            n = self.db.execute("DELETE FROM memories" + where, params).rowcount
            self.db.execute("DELETE FROM episodes" + where, params)
            self.db.execute("DELETE FROM entities" + where, params)
            return n

        n = self._write(op)
        self._memories_changed()
        self._episodes_changed()
        return int(n)

    def iter_embeddings(self, character_id: int) -> Iterator[tuple[int, bytes | None, str]]:
        """(id, embedding blob or None, text) of a character's memories, for the vector index."""
        with self._lock, storage_errors(self.path):
            rows = self.db.execute(
                "SELECT id, embedding, text FROM memories WHERE character_id = ? ORDER BY id", [character_id]
            ).fetchall()
        yield from rows

    def set_embeddings(self, items: list[tuple[int, bytes]]) -> None:
        """Store embeddings computed lazily (e.g. for memories migrated from schema 1)."""
        model = self._embedding_model()
        self._write(lambda: self.db.conn.executemany(
            "UPDATE memories SET embedding = ?, embedding_model = ? WHERE id = ?",
            [(b, model, i) for i, b in items],
        ))

    def facts_from_messages(self, message_ids: Sequence[int]) -> list[int]:
        """Ids of the memories extracted from these messages."""
        if not message_ids:
            return []
        rows = self._read(f"SELECT id FROM memories WHERE source_message_id IN ({','.join('?' * len(message_ids))})",
                          list(message_ids))
        return [int(r["id"]) for r in rows]

    def reply_after(self, message_id: int) -> int | None:
        """The id of the assistant message that answered this user message, if any."""
        rows = self._read(
            """SELECT n.id, n.role FROM messages m JOIN messages n ON n.conversation_id = m.conversation_id
               AND n.id > m.id WHERE m.id = ? ORDER BY n.id LIMIT 1""", [message_id])
        return int(rows[0]["id"]) if rows and rows[0]["role"] == "assistant" else None

    def superseded_messages(self, character_id: int) -> set[int]:
        """Messages whose fact was since replaced ("my sister moved to Lima" after "...lives in
        Valparaiso"): recall ranks their passages lower."""
        rows = self._read(
            """SELECT DISTINCT h.source_message_id FROM memory_history h JOIN memories m ON m.id = h.memory_id
               WHERE m.character_id = ? AND h.source_message_id IS NOT NULL
                 AND h.source_message_id IS NOT m.source_message_id""", [character_id])
        return {int(r["source_message_id"]) for r in rows}

    def superseded_passages(self, character_id: int) -> set[int]:
        """Passages a later message changed ("standups moved to 10" after "standup is at 9:15")."""
        rows = self._read("SELECT id FROM episodes WHERE character_id = ? AND superseded_by IS NOT NULL",
                          [character_id])
        return {int(r["id"]) for r in rows}

    def supersede_passages(self, passage_ids: Sequence[int], by_message_id: int) -> None:
        """Mark passages as changed by a later message (recall ranks them lower; nothing is lost)."""
        self._write(lambda: self.db.conn.executemany(
            "UPDATE episodes SET superseded_by = ? WHERE id = ?", [(by_message_id, i) for i in passage_ids]))

    # --- episodes -----------------------------------------------------------------------

    def episode_counts(self, character_id: int) -> tuple[int, int]:
        """(number of passages, largest passage id) of a character: a cheap change check."""
        with self._lock, storage_errors(self.path):
            n, top = self.db.execute(
                "SELECT count(*), COALESCE(max(id), 0) FROM episodes WHERE character_id = ?", [character_id]
            ).fetchone()
        return int(n), int(top)

    def iter_episode_vectors(
        self, character_id: int, after_id: int = 0
    ) -> list[tuple[int, int, str, bytes | None]]:
        """(passage id, message id, role, embedding or None) of a character's passages with id >
        after_id, in id order, for the vector index."""
        with self._lock, storage_errors(self.path):
            return self.db.execute(
                "SELECT id, message_id, role, embedding FROM episodes WHERE character_id = ? AND id > ? ORDER BY id",
                [character_id, after_id],
            ).fetchall()

    def unembedded_episodes(self, character_id: int, limit: int) -> list[tuple[int, str]]:
        """(passage id, text) of passages stored without a vector (from a migration, or while
        the embedder was unavailable), oldest first."""
        with self._lock, storage_errors(self.path):
            return self.db.execute(
                "SELECT id, text FROM episodes WHERE character_id = ? AND embedding IS NULL ORDER BY id LIMIT ?",
                [character_id, limit],
            ).fetchall()

    def set_episode_embeddings(self, items: list[tuple[int, bytes]]) -> None:
        """Store passage vectors computed lazily."""
        model = self._embedding_model()
        self._write(lambda: self.db.conn.executemany(
            "UPDATE episodes SET embedding = ?, embedding_model = ? WHERE id = ?", [(b, model, i) for i, b in items]
        ))

    def fts_episodes(self, character_id: int, match: str, limit: int, scan: int = FTS_SCAN) -> list[tuple[int, float]]:
        """(passage id, bm25) of a character's passages matching an FTS5 MATCH expression, best
        first, ranked among the FTS_SCAN newest matches."""
        return self._fts("episodes", character_id, match, limit, scan)

    def episodes_by_ids(self, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        """Passage rows (id, message_id, conversation_id, role, text, said_at, superseded_by) by id."""
        if not ids:
            return {}
        rows = self._read(
            f"""SELECT e.id, e.message_id, m.conversation_id, e.role, e.text, e.said_at, e.superseded_by FROM episodes e
                JOIN messages m ON m.id = e.message_id WHERE e.id IN ({','.join('?' * len(ids))})""", list(ids))
        return {int(r["id"]): r for r in rows}

    def episodes(self, character_id: int | None = None, *, message_id: int | None = None) -> list[dict[str, Any]]:
        """Passages (id, message_id, role, text, said_at, has_embedding), oldest first."""
        clause, params = _where(character_id=character_id, message_id=message_id)
        return self._read(
            f"SELECT id, message_id, role, text, said_at, embedding IS NOT NULL AS has_embedding FROM episodes {clause} ORDER BY id",
            params)

    # --- people and pets ----------------------------------------------------------------

    def entities(self, character_id: int) -> list[dict[str, Any]]:
        """The people and pets in the user's life (id, kind, relation, name), oldest first."""
        return self._read("SELECT * FROM entities WHERE character_id = ? ORDER BY id", [character_id])

    def add_entity(self, character_id: int, kind: str, relation: str | None, name: str | None) -> int:
        """Record a person or pet in the user's life; returns its id."""
        ts = self.clock()
        return self._write(lambda: self._insert("entities", {
            "character_id": character_id, "kind": kind, "relation": relation, "name": name,
            "created_at": ts, "updated_at": ts}))

    def update_entity(self, entity_id: int, *, relation: str | None = None, name: str | None = None) -> None:
        """Fill in what was learnt later: a name for "my sister", a relation for "Oriane"."""
        sets = {k: v for k, v in {"relation": relation, "name": name}.items() if v is not None}
        if not sets:
            return
        sets["updated_at"] = self.clock()
        cols = ", ".join(f"{k} = ?" for k in sets)
        self._write(lambda: self.db.execute(f"UPDATE entities SET {cols} WHERE id = ?", [*sets.values(), entity_id]))


_MEMORY_COLS = (
    "id, character_id, kind, slot, text, pinned, source_message_id, created_at, updated_at, previous_text, "
    "entity_id, happens_on, origin"
)


def _where(**equal: Any) -> tuple[str, list[Any]]:
    """A WHERE clause requiring each column to equal its value (None: no condition)."""
    given = {col: v for col, v in equal.items() if v is not None}
    clause = ("WHERE " + " AND ".join(f"{col} = ?" for col in given)) if given else ""
    return clause, list(given.values())
