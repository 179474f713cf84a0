"""Opening the SQLite file and turning sqlite3 failures into StorageError."""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import sqlite_utils

from companion.errors import StorageError

BUSY_TIMEOUT_S = 5.0  # how long a write waits for another process's lock before failing


def now() -> str:
    """UTC timestamp with milliseconds, sortable as text."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def explain(exc: sqlite3.Error, path: Path | str) -> str:
    """A sentence a user can act on for a sqlite3 failure."""
    msg = str(exc).lower()
    if "locked" in msg or "busy" in msg:
        return f"database {path} is locked by another process: close other Companion windows and retry"
    if "readonly" in msg or "read-only" in msg or "query_only" in msg:
        return f"database {path} is read-only: check the file's permissions or free the folder"
    if "full" in msg:
        return f"database {path} is full (disk full or size limit reached): free some disk space and retry"
    if "not a database" in msg or "malformed" in msg or "corrupt" in msg:
        return (f"database {path} is damaged or not a Companion database ({exc}): "
                "restore a backup or move the file away")
    if "unable to open" in msg:
        return f"database {path} cannot be opened ({exc}): check that its folder exists and is writable"
    return f"database {path} failed: {exc}"


@contextlib.contextmanager
def storage_errors(path: Path | str) -> Iterator[None]:
    """Re-raise any sqlite3.Error as a StorageError with an actionable message."""
    try:
        yield
    except sqlite3.Error as exc:
        raise StorageError(explain(exc, path)) from exc


def connect(path: Path | str, timeout_s: float = BUSY_TIMEOUT_S) -> sqlite_utils.Database:
    """A sqlite-utils Database on `path` in WAL mode with foreign keys on."""
    with storage_errors(path):
        conn = sqlite3.connect(str(path), timeout=timeout_s, check_same_thread=False)
        db = sqlite_utils.Database(conn, execute_plugins=False)
        conn.execute("PRAGMA foreign_keys = ON")
        # WAL: readers never block the writer, and a commit is one append to the log,
        # so checkpointing a streaming reply many times a second stays cheap.
        # synchronous=NORMAL keeps every commit across a process crash (kill -9);
        # only an OS crash / power cut can lose the last few.
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal" and str(path) != ":memory:":
            raise StorageError(f"database {path} cannot switch to WAL mode (got {mode!r})")
        conn.execute("PRAGMA synchronous = NORMAL")
    return db
