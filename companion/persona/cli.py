"""`companion character ...`: import, export, list and choose characters."""

from __future__ import annotations

from pathlib import Path

import click


def _store():
    from companion.memory.store import Store

    return Store(embedder=None)


@click.group(name="character")
def character_group() -> None:
    """Manage characters (Character Card V2/V3, JSON or PNG)."""


@character_group.command("list")
def list_characters() -> None:
    """List stored characters; * marks the active one."""
    from companion.settings import Settings

    active = Settings.load().character
    with _store() as store:
        store.ensure_character()
        for rec in store.characters():
            mark = "*" if (active or "Mira").lower() == rec.name.lower() else " "
            click.echo(f"{mark} {rec.id:>3}  {rec.name}  {', '.join(rec.card.tags)}")


@character_group.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--replace", is_flag=True, help="Overwrite a character with the same name.")
def import_character(path: Path, replace: bool) -> None:
    """Import a character card from a .json or .png file."""
    from companion.persona.library import import_card_file

    with _store() as store:
        cid = import_card_file(store, path, replace=replace)
        click.echo(f"imported {store.character(cid).name} (id {cid})")


@character_group.command("export")
@click.argument("name")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--spec", type=click.Choice(["v2", "v3"]), default="v3", show_default=True,
              help="Card spec version to write.")
def export_character(name: str, path: Path, spec: str) -> None:
    """Export character NAME to PATH (.json or .png)."""
    from companion.persona.library import export_card_file

    with _store() as store:
        store.ensure_character()
        export_card_file(store, name, path, spec=spec)  # type: ignore[arg-type]
        click.echo(f"wrote {path}")


@character_group.command("use")
@click.argument("name")
def use_character(name: str) -> None:
    """Make NAME the active character (saved in settings)."""
    from companion.settings import Settings

    with _store() as store:
        store.ensure_character()
        rec = store.character(name)
    settings = Settings.load()
    settings.character = rec.name
    settings.save()
    click.echo(f"now talking with {rec.name}")
