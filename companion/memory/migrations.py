"""Schema changes, applied once each, in order (sqlite-utils `Migrations`).

Never edit a migration that has shipped: add a new one. `PRAGMA user_version` mirrors
the number of applied migrations so that an older Companion can refuse a newer file
instead of writing to a schema it does not understand.
"""

from __future__ import annotations

import sqlite_utils
from sqlite_utils.migrations import Migrations

from companion.errors import StorageError

migrations = Migrations("companion")


def _run(db: sqlite_utils.Database, *statements: str) -> None:
    """Execute statements one by one: executescript() would COMMIT the migration's transaction."""
    for sql in statements:
        db.execute(sql)


def _external_fts(table: str) -> list[str]:
    """An external-content FTS5 index over `table`.text, kept in sync by triggers (the layout
    sqlite-utils' enable_fts makes, written out because enable_fts would COMMIT)."""
    fts = f"{table}_fts"
    return [
        f"""CREATE VIRTUAL TABLE {fts} USING fts5(
            text, content='{table}', content_rowid='id', tokenize='porter unicode61')""",
        f"""CREATE TRIGGER {table}_ai AFTER INSERT ON {table} BEGIN
            INSERT INTO {fts}(rowid, text) VALUES (new.id, new.text);
        END""",
        f"""CREATE TRIGGER {table}_ad AFTER DELETE ON {table} BEGIN
            INSERT INTO {fts}({fts}, rowid, text) VALUES ('delete', old.id, old.text);
        END""",
        f"""CREATE TRIGGER {table}_au AFTER UPDATE OF text ON {table} BEGIN
            INSERT INTO {fts}({fts}, rowid, text) VALUES ('delete', old.id, old.text);
            INSERT INTO {fts}(rowid, text) VALUES (new.id, new.text);
        END""",
    ]


@migrations()
def m001_initial(db: sqlite_utils.Database) -> None:
    """Characters, conversations, messages, memories and rolling summaries."""
    _run(
        db,
        """
        CREATE TABLE characters (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            card TEXT NOT NULL,            -- validated card JSON (V3 layout)
            avatar BLOB,                   -- PNG bytes, or NULL
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )""",
        """
        CREATE TABLE conversations (
            id INTEGER PRIMARY KEY,
            character_id INTEGER NOT NULL REFERENCES characters(id) ON DELETE CASCADE,
            title TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )""",
        """
        CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
            content TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'done',  -- done | streaming | stopped | error | interrupted
            tokens INTEGER,                -- tokens of content under the chat model's tokenizer
            engine TEXT,                   -- which executor produced it (assistant only)
            writer_pid INTEGER,            -- process streaming it, while status = 'streaming'
            created_at TEXT NOT NULL,
            finished_at TEXT,
            duration_ms REAL
        )""",
        """
        CREATE INDEX messages_by_conversation ON messages(conversation_id, id)""",
        """
        CREATE TABLE memories (
            id INTEGER PRIMARY KEY,
            character_id INTEGER NOT NULL REFERENCES characters(id) ON DELETE CASCADE,
            kind TEXT NOT NULL DEFAULT 'fact',    -- fact | preference | plan | event | relationship
            slot TEXT,                     -- single-valued key ('user.location'); NULL = free fact
            text TEXT NOT NULL,
            pinned INTEGER NOT NULL DEFAULT 0,
            source_message_id INTEGER REFERENCES messages(id) ON DELETE SET NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )""",
        """
        CREATE INDEX memories_by_character ON memories(character_id, slot)""",
        """
        CREATE TABLE summaries (
            id INTEGER PRIMARY KEY,
            conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            upto_message_id INTEGER NOT NULL,  -- last message folded into this summary
            text TEXT NOT NULL,
            tokens INTEGER,
            created_at TEXT NOT NULL
        )""",
        """
        CREATE INDEX summaries_by_conversation ON summaries(conversation_id, id)
        """,
        "PRAGMA user_version = 1",
    )


@migrations()
def m002_recall(db: sqlite_utils.Database) -> None:
    """Embeddings and an FTS5 index for hybrid recall; per-message generation stats."""
    _run(
        db,
        "ALTER TABLE memories ADD COLUMN embedding BLOB",  # float32[384], L2-normalized
        "ALTER TABLE memories ADD COLUMN embedding_model TEXT",
        "ALTER TABLE memories ADD COLUMN previous_text TEXT",  # what an update replaced
        "ALTER TABLE messages ADD COLUMN stats TEXT",  # JSON: prompt_tokens, tokens_per_s...
        *_external_fts("memories"),
        "INSERT INTO memories_fts(memories_fts) VALUES ('rebuild')",
        "PRAGMA user_version = 2",
    )


@migrations()
def m003_episodes_entities(db: sqlite_utils.Database) -> None:
    """Episodic memory (every message, searchable by words and meaning), the people, pets and
    places in the user's life, dated facts, and the history of every replaced value."""
    _run(
        db,
        # One row per passage of a stored message (a long message has several); the message
        # itself stays in `messages`. Forgetting removes passages, never the transcript.
        """
        CREATE TABLE episodes (
            id INTEGER PRIMARY KEY,
            message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
            character_id INTEGER NOT NULL REFERENCES characters(id) ON DELETE CASCADE,
            role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
            text TEXT NOT NULL,
            said_at TEXT NOT NULL,         -- the message's created_at
            embedding BLOB,                -- float32[384], L2-normalized; NULL until embedded
            embedding_model TEXT,
            superseded_by INTEGER REFERENCES messages(id) ON DELETE SET NULL  -- a later message changed it
        )""",
        "CREATE INDEX episodes_by_character ON episodes(character_id, id)",
        "CREATE INDEX episodes_by_message ON episodes(message_id)",
        *_external_fts("episodes"),
        """
        CREATE TABLE entities (
            id INTEGER PRIMARY KEY,
            character_id INTEGER NOT NULL REFERENCES characters(id) ON DELETE CASCADE,
            kind TEXT NOT NULL,            -- person | pet
            relation TEXT,                 -- to the user: 'sister', 'dog', "Dev's mum"; NULL if unknown
            name TEXT,                     -- 'Oriane'; NULL until the user says it
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )""",
        "CREATE INDEX entities_by_character ON entities(character_id)",
        "ALTER TABLE memories ADD COLUMN entity_id INTEGER REFERENCES entities(id) ON DELETE SET NULL",
        "ALTER TABLE memories ADD COLUMN happens_on TEXT",  # ISO date of a dated fact (appointment, birthday)
        "ALTER TABLE memories ADD COLUMN origin TEXT",  # rule | classifier | request | model | user
        """
        CREATE TABLE memory_history (
            id INTEGER PRIMARY KEY,
            memory_id INTEGER NOT NULL REFERENCES memories(id) ON DELETE CASCADE,
            text TEXT NOT NULL,            -- the value that was replaced
            source_message_id INTEGER REFERENCES messages(id) ON DELETE SET NULL,  -- who said it
            replaced_at TEXT NOT NULL
        )""",
        "CREATE INDEX memory_history_by_memory ON memory_history(memory_id)",
        """INSERT INTO memory_history (memory_id, text, replaced_at)
           SELECT id, previous_text, updated_at FROM memories WHERE previous_text IS NOT NULL""",
    )
    _backfill_episodes(db)
    _run(db, "PRAGMA user_version = 3")


def _backfill_episodes(db: sqlite_utils.Database) -> None:
    """Passages of every finished message already stored; recall embeds them lazily."""
    from companion.memory.passages import passages

    rows = db.execute(
        """SELECT m.id, c.character_id, m.role, m.content, m.created_at FROM messages m
           JOIN conversations c ON c.id = m.conversation_id
           WHERE m.role IN ('user', 'assistant') AND m.status != 'streaming' ORDER BY m.id"""
    ).fetchall()
    db.conn.executemany(
        "INSERT INTO episodes (message_id, character_id, role, text, said_at) VALUES (?, ?, ?, ?, ?)",
        [(mid, cid, role, p, ts) for mid, cid, role, content, ts in rows for p in passages(content)],
    )


SCHEMA_VERSION = 3  # == number of migrations above


def check_version(db: sqlite_utils.Database, path: object) -> None:
    """Refuse a database written by a newer Companion, before touching it."""
    user_version = db.execute("PRAGMA user_version").fetchone()[0]
    known = {m.name for m in migrations._migrations}
    unknown = [m.name for m in migrations.applied(db) if m.name not in known]
    if user_version > SCHEMA_VERSION or unknown:
        raise StorageError(
            f"database {path} was written by a newer Companion (schema {user_version}, "
            f"this version knows {SCHEMA_VERSION}"
            + (f"; unknown migrations {', '.join(unknown)}" if unknown else "")
            + "): upgrade Companion, or move the file away to start fresh"
        )


def migrate(db: sqlite_utils.Database, path: object) -> None:
    """Apply pending migrations after checking that the file is not from the future."""
    check_version(db, path)
    migrations.apply(db)
