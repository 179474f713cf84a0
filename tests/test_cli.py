"""The CLI, in-process: every command has help, errors are one clean line, chat and parity work."""

from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner

from companion.cli import main
from companion.testing import write_tiny_gguf


@pytest.fixture
def runner():
    return CliRunner()


def _commands(group: click.Group, prefix=()):
    for name, cmd in group.commands.items():
        yield (*prefix, name), cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*prefix, name))


def test_every_command_has_help(runner):
    assert main.help
    for path, cmd in _commands(main):
        assert cmd.help, f"companion {' '.join(path)} has no help text"
        res = runner.invoke(main, [*path, "--help"])
        assert res.exit_code == 0, res.output


def test_one_prompt_prints_answer_and_exits(runner):
    res = runner.invoke(main, ["chat", "--engine", "reference", "--temperature", "0", "--max-tokens", "12", "What is the capital of France?"])
    assert res.exit_code == 0, res.output
    assert "Paris" in res.output


def test_seeded_chat_is_reproducible(runner):
    # --no-memory: with memory on, the first run's turn is recalled into the second's prompt
    args = ["chat", "--no-memory", "--engine", "reference", "--seed", "5", "--temperature", "1.0", "--max-tokens", "10", "Say something."]
    a, b = runner.invoke(main, args), runner.invoke(main, args)
    assert a.exit_code == 0 and a.output == b.output


def test_interactive_repl_commands(runner):
    stdin = "Hi!\n/system You are a pirate.\n/engine\n/reset\nWho are you?\n/quit\n"
    res = runner.invoke(main, ["chat", "--engine", "reference", "--temperature", "0", "--max-tokens", "8"], input=stdin)
    assert res.exit_code == 0, res.output
    assert res.output.count("companion> ") == 3  # the character's greeting, then two replies
    assert "I'm Mira" in res.output  # the default character greets first
    assert "system prompt set" in res.output and "engine reference" in res.output


def test_chat_is_stored_and_remembered(runner):
    res = runner.invoke(main, ["chat", "--engine", "reference", "--temperature", "0", "--max-tokens", "6", "My name is Alex and I live in Lyon."])
    assert res.exit_code == 0, res.output
    listed = runner.invoke(main, ["memory", "list"])
    assert "Alex" in listed.output and "Lyon" in listed.output
    res = runner.invoke(main, ["chat", "--no-memory", "--engine", "reference", "--temperature", "0", "--max-tokens", "6", "I live in Paris."])
    assert "Paris" not in runner.invoke(main, ["memory", "list"]).output


def test_no_terminal_answers_one_greeting(runner, monkeypatch):
    monkeypatch.setenv("COMPANION_MAX_NEW_TOKENS", "8")
    monkeypatch.setenv("COMPANION_ENGINE", "reference")
    monkeypatch.setattr("companion.cli._can_open_window", lambda: False)
    res = runner.invoke(main, [], input="")
    assert res.exit_code == 0, res.output
    assert "answering one greeting" in res.output
    assert len(res.output.strip().splitlines()) >= 2


def test_parity_json(runner, golden_path):
    res = runner.invoke(main, ["parity", "--engine", "reference", "--golden", str(golden_path), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["passed"] and data["engine"] == "reference"
    assert all(p["max_abs_logit_diff"] <= 1.0 for p in data["prompts"])


def test_parity_fails_on_a_wrong_golden(runner, golden_path, tmp_path):
    g = json.loads(golden_path.read_text())
    g["prompts"] = g["prompts"][:1]
    step = g["prompts"][0]["top5_each_generated_position"][2]
    step[0][0], step[4][0] = step[4][0], step[0][0]  # llama.cpp "said" another token first
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(g))
    res = runner.invoke(main, ["parity", "--engine", "reference", "--golden", str(bad), "--json"])
    assert res.exit_code == 1
    assert json.loads(res.stdout)["passed"] is False


def test_model_info(runner, tmp_path):
    res = runner.invoke(main, ["model", "info"])
    assert res.exit_code == 0 and "llama · 30 blocks" in res.output and "Q4_1×210" in res.output
    p = write_tiny_gguf(tmp_path / "tiny.gguf")
    res = runner.invoke(main, ["model", "info", str(p), "--json"])
    assert json.loads(res.stdout)["config"]["n_layer"] == 2


def test_bad_model_is_one_line_error(runner, tmp_path):
    bad = tmp_path / "x.gguf"
    bad.write_bytes(b"nope")
    res = runner.invoke(main, ["--model", str(bad), "chat", "hi"])
    assert res.exit_code == 1
    assert "is not a GGUF file" in res.output and "Traceback" not in res.output


def test_other_model_from_disk_chats(runner, tmp_path):
    p = write_tiny_gguf(tmp_path / "tiny.gguf")
    res = runner.invoke(main, ["--model", str(p), "chat", "--engine", "reference", "--max-tokens", "5", "--temperature", "0", "hi"])
    assert res.exit_code == 0, res.output


def test_bench_reference_json(runner):
    # the per-context, per-size and chat-loop figures at small sizes: the reference is slow at 2048
    res = runner.invoke(main, ["bench", "--engine", "reference", "--json", "--prompt-tokens", "16", "--decode-tokens", "4", "--repeats", "1",
                               "--contexts", "0,32", "--prefill-sizes", "16,32", "--no-chat"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    for key in ("prefill_tok_per_s", "decode_tok_per_s", "time_to_first_token_s", "peak_rss_mb"):
        assert data[key] > 0
