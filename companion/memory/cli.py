"""`companion memory ...`: see, search, forget and export what Companion remembers."""

from __future__ import annotations

import json
from pathlib import Path

import click

from companion.errors import CompanionError
from companion.settings import Settings


def _character_from_environment() -> str | None:
    """The default of --character: COMPANION_CHARACTER, read through Settings. Not the saved
    active character: with neither option nor variable these commands cover every character."""
    return Settings.from_environment("character")


character_option = click.option(
    "--character", "-c", default=_character_from_environment,
    help="Character name or id (default: all characters, or the default one for search).",
)


def _store():
    from companion.memory.store import Store

    return Store(embedder=None)


def _ref(character: str | None) -> int | str | None:
    return int(character) if character and character.isdigit() else character


def _echo_memories(rows: list[dict], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2, default=str))
        return
    if not rows:
        click.echo("no memories")
    for m in rows:
        if m.get("source") == "message":  # a past message found by recall: who said it, when
            from companion.memory.dates import describe, said_on

            who = "you said" if m["role"] == "user" else "the companion said"
            note = ", since changed" if m.get("superseded") else ""
            click.echo(f"{'m' + str(m['id']):>6}    \"{m['text']}\"  [{who} on {describe(said_on(m['said_at']))}{note}]")
            continue
        pin = "📌" if m.get("pinned") else "  "
        what = f"fact · {m.get('kind', '')}" if m.get("source") == "fact" else m.get("kind", "")
        click.echo(f"{m['id']:>6} {pin} {m['text']}  [{what}, {str(m.get('updated_at', ''))[:10]}]")


@click.group(name="memory")
def memory_group() -> None:
    """See, search, forget and export what Companion remembers."""


@memory_group.command("list")
@character_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_cmd(character: str | None, as_json: bool) -> None:
    """List remembered facts, newest first."""
    from companion.memory import manage

    with _store() as store:
        _echo_memories(manage.list_memories(store, _ref(character)), as_json)


@memory_group.command("search")
@click.argument("query")
@character_option
@click.option("--limit", default=10, show_default=True, help="How many results.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def search_cmd(query: str, character: str | None, limit: int, as_json: bool) -> None:
    """Search what Companion remembers (facts and everything said, by words and meaning) for
    QUERY: the same recall that reminds the companion. Past messages show as m<id>."""
    from companion.memory import manage
    from companion.memory.store import Store

    with Store() as store:  # with embeddings, when the model is installed
        _echo_memories(manage.search_memories(store, query, _ref(character), limit), as_json)


@memory_group.command("forget")
@click.argument("ids", nargs=-1, required=True)
def forget_cmd(ids: tuple[str, ...]) -> None:
    """Forget the memories with these IDS (see `memory list`), with what was said where they
    came from; m<id> (from `memory search`) forgets a past message (its transcript stays)."""
    from companion.memory import manage

    with _store() as store:
        for ref in ids:
            if ref.lower().startswith("m") and ref[1:].isdigit():
                manage.forget_message(store, int(ref[1:]))
            elif ref.isdigit():
                manage.delete_memory(store, int(ref))
            else:
                raise CompanionError(f"{ref!r} is not a memory id: use the numbers `memory list` or `memory search` show")
            click.echo(f"forgot {ref}")


@memory_group.command("wipe")
@character_option
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def wipe_cmd(character: str | None, yes: bool) -> None:
    """Forget all memories (of one character, or of all)."""
    from companion.memory import manage

    who = f"of {character}" if character else "of every character"
    if not yes:
        click.confirm(f"Forget all memories {who}?", abort=True)
    with _store() as store:
        n = manage.wipe_memories(store, _ref(character))
    click.echo(f"forgot {n} memories and everything said (the transcripts stay: `memory conversations`)")


@memory_group.command("reindex")
@character_option
def reindex_cmd(character: str | None) -> None:
    """Embed now every past message still waiting for a vector (a database from an older
    Companion; recall otherwise does a few at a time)."""
    from companion.memory import manage
    from companion.memory.store import Store

    with Store() as store:
        n = manage.reindex(store, _ref(character), progress=lambda done: click.echo(f"embedded {done}", err=True))
    click.echo(f"embedded {n} passages")


@memory_group.command("export")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--conversation", "conversation_id", type=int, default=None,
              help="Export this conversation (.md or .json); without it, the whole store (.db).")
def export_cmd(path: Path, conversation_id: int | None) -> None:
    """Export a conversation as Markdown/JSON, or everything as one SQLite file."""
    from companion.memory import manage

    with _store() as store:
        if conversation_id is None:
            manage.export_store(store, path)
        else:
            manage.export_conversation(store, conversation_id, path)
    click.echo(f"wrote {path}")


@memory_group.command("conversations")
@character_option
def conversations_cmd(character: str | None) -> None:
    """List conversations (ids for `memory export --conversation`)."""
    with _store() as store:
        cid = store.character(_ref(character)).id if character else None
        for c in store.conversations(cid):
            click.echo(f"{c['id']:>5}  {c['character_name']}  {c['message_count']} messages  {c['updated_at'][:16]}")
