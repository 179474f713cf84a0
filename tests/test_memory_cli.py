"""`companion memory ...` and the bridge-facing functions; exports; the benchmark's shape."""

from __future__ import annotations

import json
import sqlite3

from click.testing import CliRunner

from companion.cli import main
from companion.memory import manage
from companion.memory.cli import memory_group
from companion.memory.store import Store


def _seed() -> tuple[int, int]:
    with Store(embedder=None) as s:
        cid = s.ensure_character()
        conv = s.new_conversation(cid)
        s.add_message(conv, "user", "I live in Lyon.")
        rid = s.start_reply(conv)
        s.finish_reply(rid, "Lovely city!", status="stopped")
        s.add_memory(cid, "The user lives in Lyon.", slot="user.location")
        s.add_memory(cid, "The user likes tea.")
        return cid, conv


def test_list_search_forget_wipe(companion_home):
    _seed()
    runner = CliRunner()
    r = runner.invoke(main, ["memory", "list", "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert {m["text"] for m in rows} == {"The user lives in Lyon.", "The user likes tea."}
    r = runner.invoke(main, ["memory", "search", "Lyon"])
    assert r.exit_code == 0 and "lives in Lyon" in r.output.splitlines()[0]
    tea = next(m["id"] for m in rows if "tea" in m["text"])
    assert runner.invoke(main, ["memory", "forget", str(tea)]).exit_code == 0
    r = runner.invoke(main, ["memory", "forget", "9999"])
    assert r.exit_code == 1 and "no memory 9999" in r.output
    assert runner.invoke(main, ["memory", "wipe"], input="n\n").exit_code == 1  # asks first
    r = runner.invoke(main, ["memory", "wipe", "--character", "Mira", "--yes"])
    assert r.exit_code == 0 and "forgot 1 memories" in r.output
    assert "no memories" in runner.invoke(main, ["memory", "list"]).output


def test_exports(companion_home, tmp_path):
    _, conv = _seed()
    runner = CliRunner()
    md, js, db = tmp_path / "c.md", tmp_path / "c.json", tmp_path / "all.db"
    for args in (["export", str(md), "--conversation", str(conv)], ["export", str(js), "--conversation", str(conv)],
                 ["export", str(db)]):
        r = runner.invoke(main, ["memory", *args])
        assert r.exit_code == 0, r.output
    text = md.read_text()
    assert text.startswith("# Conversation with Mira") and "I live in Lyon." in text and "_(stopped)_" in text
    data = json.loads(js.read_text())
    assert [m["content"] for m in data["messages"]] == ["I live in Lyon.", "Lovely city!"]
    raw = sqlite3.connect(db)
    assert raw.execute("SELECT count(*) FROM memories").fetchone()[0] == 2
    assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    raw.close()
    r = runner.invoke(main, ["memory", "export", str(db)])
    assert r.exit_code == 1 and "already exists" in r.output
    assert "Mira" in runner.invoke(main, ["memory", "conversations"]).output


def test_bridge_functions(companion_home):
    cid, _ = _seed()
    with Store(embedder=None) as s:
        m = manage.add_memory(s, "The user's birthday is March 3.", pinned=True)
        assert m["pinned"] == 1
        edited = manage.edit_memory(s, m["id"], text="The user's birthday is March 4.", pinned=False)
        assert edited["text"].endswith("March 4.") and edited["previous_text"].endswith("March 3.")
        assert edited["pinned"] == 0
        assert len(manage.list_memories(s, "Mira")) == 3
        manage.delete_memory(s, m["id"])
        assert [r["text"] for r in manage.search_memories(s, "tea")] == ["The user likes tea."]
        assert manage.wipe_memories(s) == 2
        json.dumps(manage.conversation_data(s, 1))  # JSON-ready


def test_every_command_has_help():
    for name, cmd in memory_group.commands.items():
        assert cmd.help, name


def test_bench_reports_latency_and_throughput(monkeypatch):
    from companion.memory import bench

    monkeypatch.setattr(bench, "QUERIES", bench.QUERIES[:2])
    out = bench.run_memory_bench(sizes=((200, 300),), repeats=4)
    assert set(out["recall"]["200+300"]) == {"memories", "messages", "p50_ms", "p95_ms", "cpu", "index_build_ms"}
    assert out["recall"]["200+300"]["messages"] == 300 and out["recall"]["200+300"]["p95_ms"] > 0
    assert out["embedding"]["sentences_per_s"] > 0


def test_what_was_told_in_one_chat_is_found_from_another_process(companion_home):
    """The issue's example, through the real CLI in separate processes."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "COMPANION_HOME": str(companion_home)}

    def companion(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "companion", *args], env=env, capture_output=True,
                              text=True, timeout=600)

    told = companion("chat", "--engine", "reference", "--max-tokens", "8",
                     "Please remember this: my sister Oriane lives in Valparaiso and keeps bees.")
    assert told.returncode == 0, told.stderr
    assert "[remembered: The user's sister Oriane lives in Valparaiso and keeps bees.]" in told.stderr
    found = companion("memory", "search", "where does my sister live")
    assert found.returncode == 0, found.stderr
    first = found.stdout.splitlines()[0]
    assert "Oriane lives in Valparaiso" in first and "[fact" in first
    as_json = json.loads(companion("memory", "search", "where does my sister live", "--json").stdout)
    assert as_json[0]["source"] == "fact" and as_json[0]["text"].startswith("The user's sister Oriane")


def test_search_shows_where_each_hit_came_from_and_forgets_a_message(companion_home, embedder):
    from companion.memory import ConversationMemory

    with Store(embedder=embedder) as s:
        s.clock = lambda: "2026-03-02T12:00:00.000+00:00"
        mem = ConversationMemory(s, count_tokens=len)
        mem.user_message("Do you think the bakery on Elm Street is any good?", 9)
        mem.reply_started()
        mem.reply_finished("It has great croissants!", "done", {})
    runner = CliRunner()
    out = runner.invoke(main, ["memory", "search", "bakery Elm Street"]).output.splitlines()
    said = next(line for line in out if "Elm Street" in line)
    assert said.split()[0].startswith("m") and "[you said on Monday 2 March 2026]" in said
    r = runner.invoke(main, ["memory", "forget", said.split()[0]])
    assert r.exit_code == 0, r.output
    assert "Elm Street" not in runner.invoke(main, ["memory", "search", "bakery Elm Street"]).output
    assert runner.invoke(main, ["memory", "forget", "x1"]).exit_code == 1
