"""The local database: characters, conversations, messages, memories and summaries.

One SQLite file (`home_dir()/companion.db`) in WAL mode, schema by `migrations.py`.
Every public method is one short transaction, so a crash never leaves half an
operation behind; every sqlite3 failure surfaces as a StorageError.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np

from companion.errors import StorageError
from companion.memory import _db
from companion.memory._db import now, storage_errors
from companion.memory.embed import embedding_text
from companion.memory.migrations import migrate
from companion.persona.card import Character, card_from_dict, card_to_dict
from companion.persona.default import default_character

DB_NAME = "companion.db"
ReplyStatus = Literal["done", "stopped", "error"]
T = TypeVar("T")


def default_db_path() -> Path:
    """`home_dir()/companion.db` (COMPANION_HOME redirects it)."""
    from companion.settings import home_dir

    return home_dir() / DB_NAME


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
    """

    def __init__(
        self, path: Path | str | None = None, *, embedder: Any = "default", timeout_s: float = _db.BUSY_TIMEOUT_S
    ) -> None:
        self.path = Path(path) if path is not None else default_db_path()
        self._lock = threading.RLock()
        self._embedder = embedder
        self._generation = 0  # bumped on every memory change made through this Store
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
            ts = now()
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

    # --- conversations and messages -----------------------------------------------------

    def new_conversation(self, character_id: int, title: str | None = None) -> int:
        """Start a conversation with a character; returns its id."""
        ts = now()
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
        """Delete a conversation, its messages and summaries (memories stay)."""
        self._write(lambda: self.db.execute("DELETE FROM conversations WHERE id = ?", [conversation_id]))

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
    ) -> int:
        """Store a complete message now (a user message is committed the moment it is sent)."""
        ts = now()

        def op() -> int:
            mid = self._insert("messages", {
                "conversation_id": conversation_id, "role": role, "content": content, "status": "done",
                "tokens": tokens, "engine": engine, "created_at": ts, "finished_at": ts,
                "stats": json.dumps(stats) if stats else None,
            })
            self._touch(conversation_id, ts)
            return mid

        return self._write(op)

    def _touch(self, conversation_id: int, ts: str) -> None:
        self.db.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", [ts, conversation_id])

    def start_reply(self, conversation_id: int, engine: str | None = None) -> int:
        """Create the assistant message that is about to stream; returns its id."""
        ts = now()

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
    ) -> None:
        """Finalize a streamed reply: full text, status (done / stopped / error), stats
        (e.g. prompt_tokens, tokens_per_s, engine details) and timing."""
        if status not in ("done", "stopped", "error"):
            raise ValueError(f"status must be done, stopped or error, not {status!r}")
        ts = now()

        def op() -> None:
            self.db.execute(
                """UPDATE messages SET content = ?, status = ?, stats = ?, tokens = COALESCE(?, tokens),
                       engine = COALESCE(?, engine), finished_at = ?, writer_pid = NULL,
                       duration_ms = (julianday(?) - julianday(created_at)) * 86400000.0
                   WHERE id = ?""",
                [text, status, json.dumps(stats) if stats else None, tokens, engine, ts, ts, message_id],
            )

        self._write(op)

    def recover_interrupted(self) -> int:
        """Mark replies whose streaming process died (crash, kill -9) as 'interrupted';
        returns how many. Their checkpointed text is kept."""
        rows = self._read("SELECT id, writer_pid FROM messages WHERE status = 'streaming'")
        dead = [r["id"] for r in rows if not r["writer_pid"] or not _pid_alive(int(r["writer_pid"]))]
        if dead:
            ts = now()
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
            "tokens": tokens, "created_at": now(),
        }))

    # --- memories -----------------------------------------------------------------------

    @property
    def generation(self) -> int:
        """Counts memory changes made through this Store (add, edit, delete, wipe, deleting a
        character); with data_version() it tells a cache of memories when to rebuild."""
        return self._generation

    def _memories_changed(self) -> None:
        self._generation += 1

    def _embed(self, texts: list[str]) -> list[bytes | None]:
        emb = self.embedder()
        if emb is None:
            return [None] * len(texts)
        vecs = emb.encode([embedding_text(t) for t in texts])  # (N, 384)
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
    ) -> int:
        """Store one memory (no dedupe: see memory.extract.remember for that)."""
        text = text.strip()
        if not text:
            raise ValueError("a memory needs some text")
        (blob,) = self._embed([text])
        ts = now()
        mid = self._write(lambda: self._insert("memories", {
            "character_id": character_id, "kind": kind, "slot": slot, "text": text, "pinned": int(pinned),
            "source_message_id": source_message_id, "created_at": ts, "updated_at": ts,
            "embedding": blob, "embedding_model": self._embedding_model() if blob else None,
        }))
        self._memories_changed()
        return mid

    def add_embedded_memories(self, character_id: int, items: Sequence[tuple[str, bytes]], *, kind: str = "fact") -> int:
        """Store many memories whose vectors are already computed (float32 blobs from this
        store's embedder), in one transaction; returns how many. No dedupe, no re-embedding:
        the benchmark fills a store with synthetic memories this way."""
        ts = now()
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

    def update_memory(
        self,
        memory_id: int,
        *,
        text: str | None = None,
        pinned: bool | None = None,
        source_message_id: int | None = None,
        slot: str | None = None,
    ) -> None:
        """Edit a memory; a new text keeps the old one in previous_text and is re-embedded."""
        old = self.memory(memory_id)
        sets: dict[str, Any] = {"updated_at": now()}
        if text is not None and text.strip() and text.strip() != old["text"]:
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
        cols = ", ".join(f"{k} = ?" for k in sets)
        self._write(lambda: self.db.execute(f"UPDATE memories SET {cols} WHERE id = ?", [*sets.values(), memory_id]))
        self._memories_changed()

    def memory(self, memory_id: int) -> dict[str, Any]:
        """One memory row (without the embedding blob)."""
        rows = self._read(f"SELECT {_MEMORY_COLS} FROM memories WHERE id = ?", [memory_id])
        if not rows:
            raise StorageError(f"no memory {memory_id}: see `companion memory list`")
        return rows[0]

    def memories_by_ids(self, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        """Memory rows (as memory() gives them) by id; an id not stored is left out."""
        if not ids:
            return {}
        rows = self._read(
            f"SELECT {_MEMORY_COLS} FROM memories WHERE id IN ({','.join('?' * len(ids))})", list(ids)
        )
        return {int(r["id"]): r for r in rows}

    def fts_memories(self, character_id: int, match: str, limit: int) -> list[tuple[int, float]]:
        """(memory id, bm25) of a character's memories matching an FTS5 MATCH expression, best
        first; bm25 is negative, lower is better (SQLite's convention)."""
        with self._lock, storage_errors(self.path):
            rows = self.db.execute(
                """SELECT m.id, bm25(memories_fts) AS score FROM memories_fts
                   JOIN memories m ON m.id = memories_fts.rowid
                   WHERE memories_fts MATCH ? AND m.character_id = ?
                   ORDER BY score LIMIT ?""",
                [match, character_id, limit],
            ).fetchall()
        return [(int(mid), float(score)) for mid, score in rows]

    def memories(self, character_id: int | None = None, *, slot: str | None = None) -> list[dict[str, Any]]:
        """Memories (newest first), optionally of one character / one slot."""
        where: list[str] = []
        params: list[Any] = []
        if character_id is not None:
            where.append("character_id = ?")
            params.append(character_id)
        if slot is not None:
            where.append("slot = ?")
            params.append(slot)
        clause = ("WHERE " + " AND ".join(where)) if where else ""
        return self._read(
            f"SELECT {_MEMORY_COLS} FROM memories {clause} ORDER BY updated_at DESC, id DESC", params
        )

    def delete_memory(self, memory_id: int) -> None:
        """Forget one memory."""
        self.memory(memory_id)
        self._write(lambda: self.db.execute("DELETE FROM memories WHERE id = ?", [memory_id]))
        self._memories_changed()

    def wipe_memories(self, character_id: int | None = None) -> int:
        """Forget all memories (of one character, or everyone's); returns how many."""
        def op() -> int:
            if character_id is None:
                return self.db.execute("DELETE FROM memories").rowcount
            return self.db.execute("DELETE FROM memories WHERE character_id = ?", [character_id]).rowcount

        n = self._write(op)
        self._memories_changed()
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


_MEMORY_COLS = (
    "id, character_id, kind, slot, text, pinned, source_message_id, created_at, updated_at, previous_text"
)
