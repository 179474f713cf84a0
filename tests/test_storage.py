"""Storage: schema, migrations, crash safety and clear errors on a bad database."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest_memory import FIXTURES

from companion.errors import StorageError
from companion.memory.migrations import SCHEMA_VERSION, migrations
from companion.memory.recall import recall
from companion.memory.store import Store


def test_schema_and_wal(plain_store):
    assert plain_store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert plain_store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    tables = set(plain_store.db.table_names())
    assert {"characters", "conversations", "messages", "memories", "summaries", "memories_fts"} <= tables
    assert plain_store.path.parent == Path(os.environ["COMPANION_HOME"])


def test_message_lifecycle(plain_store):
    s = plain_store
    conv = s.new_conversation(s.ensure_character())
    s.add_message(conv, "user", "hello", tokens=1)
    mid = s.start_reply(conv, engine="reference")
    assert s.message(mid)["status"] == "streaming"
    s.checkpoint_reply(mid, "Hi")
    s.finish_reply(mid, "Hi there", status="stopped", stats={"tokens_per_s": 12.5}, tokens=3)
    m = s.messages(conv)[-1]
    assert (m["content"], m["status"], m["tokens"], m["engine"]) == ("Hi there", "stopped", 3, "reference")
    assert m["stats"] == {"tokens_per_s": 12.5} and m["duration_ms"] >= 0
    s.checkpoint_reply(mid, "late")  # a finished reply is never overwritten by a stray checkpoint
    assert s.message(mid)["content"] == "Hi there"


CHILD = textwrap.dedent(
    """
    import sys
    from companion.memory.store import Store
    s = Store(sys.argv[1], embedder=None)
    conv = s.new_conversation(s.ensure_character())
    s.add_message(conv, "user", "Tell me a long story.")
    mid = s.start_reply(conv, engine="fake")
    print("START", conv, mid, flush=True)
    text = ""
    i = 0
    while True:
        text += f"word{i} "
        i += 1
        s.checkpoint_reply(mid, text)
        print("SHOWN", len(text), flush=True)  # shown to the user only after the checkpoint
    """
)


def test_sigkill_mid_reply_loses_nothing_shown(companion_home):
    db = companion_home / "kill.db"
    Store(db, embedder=None).close()  # migrate first so the child only streams
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(db)], stdout=subprocess.PIPE, text=True)
    try:
        _, conv, mid = child.stdout.readline().split()
        shown = 0
        for _ in range(50):
            line = child.stdout.readline()
            assert line.startswith("SHOWN"), line
            shown = int(line.split()[1])
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL
    raw = sqlite3.connect(db)
    assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    raw.close()
    with Store(db, embedder=None) as s:
        assert s.integrity_check() == "ok"
        msgs = s.messages(int(conv))
        assert [m["role"] for m in msgs] == ["user", "assistant"]
        assert msgs[0]["content"] == "Tell me a long story."
        reply = msgs[1]
        assert reply["id"] == int(mid) and reply["status"] == "interrupted"
        assert len(reply["content"]) >= shown and reply["content"].startswith("word0 word1 ")


def test_live_reply_of_another_process_is_not_marked_interrupted(plain_store):
    conv = plain_store.new_conversation(plain_store.ensure_character())
    mid = plain_store.start_reply(conv)
    with Store(plain_store.path, embedder=None) as other:  # e.g. the CLI while the app streams
        assert other.message(mid)["status"] == "streaming"


def test_migrates_schema_1_fixture(companion_home):
    db = companion_home / "old.db"
    shutil.copy(FIXTURES / "companion_schema1.db", db)
    raw = sqlite3.connect(db)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == 1
    raw.close()
    with Store(db, embedder=None) as s:
        assert s.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert [m.name for m in migrations.applied(s.db)] == [m.name for m in migrations._migrations]
        (char,) = s.characters()
        assert char.name == "Mira"
        conv = s.conversations()[0]
        assert [m["content"] for m in s.messages(conv["id"])] == ["Hi, I'm Sam and I live in Paris.", "Nice to meet you, Sam!"]
        mems = s.memories(char.id)
        assert {m["text"] for m in mems} == {"The user's name is Sam.", "The user lives in Paris."}
        # the old messages were back-filled into episodic memory: the fact first, then what was said
        assert [(r["source"], r["text"]) for r in recall(s, char.id, "Sam")] == [
            ("fact", "The user's name is Sam."), ("message", "Hi, I'm Sam and I live in Paris."),
            ("message", "Nice to meet you, Sam!")]
        assert [e["has_embedding"] for e in s.episodes(char.id)] == [0, 0]  # embedded lazily, by recall
        assert s.summary(conv["id"])["text"] == "Sam introduced himself."
        assert s.integrity_check() == "ok"


def test_newer_schema_is_refused_untouched(companion_home):
    db = companion_home / "future.db"
    Store(db, embedder=None).close()
    raw = sqlite3.connect(db)
    raw.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at) VALUES ('companion', 'm099_future', 'x')")
    raw.execute("PRAGMA user_version = 99")
    raw.commit()
    raw.close()
    before = db.read_bytes()
    with pytest.raises(StorageError, match="newer Companion"):
        Store(db, embedder=None)
    assert db.read_bytes() == before


def test_locked_database_is_a_clear_error(plain_store):
    conv = plain_store.new_conversation(plain_store.ensure_character())
    other = sqlite3.connect(plain_store.path)
    other.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
    try:
        with Store(plain_store.path, embedder=None, timeout_s=0.05) as s:
            with pytest.raises(StorageError, match="locked by another process"):
                s.add_message(conv, "user", "hello")
    finally:
        other.rollback()
        other.close()
    assert plain_store.messages(conv) == [] and plain_store.integrity_check() == "ok"
    plain_store.add_message(conv, "user", "hello")  # fine once the lock is gone


def test_read_only_database_is_a_clear_error(plain_store):
    conv = plain_store.new_conversation(plain_store.ensure_character())
    # Root ignores file modes, so make the connection read-only the way SQLite reports it.
    plain_store.db.execute("PRAGMA query_only = ON")
    with pytest.raises(StorageError, match="read-only"):
        plain_store.add_message(conv, "user", "hello")
    assert plain_store.messages(conv) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write read-only files")
def test_read_only_file_is_a_clear_error(plain_store):
    conv = plain_store.new_conversation(plain_store.ensure_character())
    plain_store.close()
    os.chmod(plain_store.path, 0o444)
    with pytest.raises(StorageError):
        s = Store(plain_store.path, embedder=None)
        s.add_message(conv, "user", "hello")


def test_full_disk_is_a_clear_error_without_corruption(plain_store):
    s = plain_store
    conv = s.new_conversation(s.ensure_character())
    kept = s.add_message(conv, "user", "before the disk filled up")
    pages = s.db.execute("PRAGMA page_count").fetchone()[0]
    s.db.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(StorageError, match="full"):
        for _ in range(100):
            s.add_message(conv, "user", "x" * 20_000)
    s.db.execute("PRAGMA max_page_count = 1073741823")
    assert [m["id"] for m in s.messages(conv)] == [kept]
    assert s.integrity_check() == "ok"
    s.add_message(conv, "user", "space again")  # still usable afterwards


def test_not_a_database_is_a_clear_error(companion_home):
    bad = companion_home / "junk.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StorageError, match="damaged or not a Companion database"):
        Store(bad, embedder=None)


def test_backup_is_one_consistent_file(plain_store, tmp_path):
    conv = plain_store.new_conversation(plain_store.ensure_character())
    plain_store.add_message(conv, "user", "remember this")
    out = plain_store.backup(tmp_path / "backup.db")
    with Store(out, embedder=None) as copy:
        assert copy.messages(conv)[0]["content"] == "remember this"
    with pytest.raises(StorageError, match="already exists"):
        plain_store.backup(out)
