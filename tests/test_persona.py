"""Character cards: V2/V3 round trips (JSON and PNG), macros, and hostile cards."""

from __future__ import annotations

import base64
import io
import json
import struct
import zlib
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from companion.errors import CardError
from companion.persona import (
    Character,
    card_to_dict,
    card_to_json,
    card_to_png,
    default_character,
    greetings,
    parse_card_json,
    persona_prompt,
    read_png_card,
    render,
)
from companion.persona.card import MAX_CARD_JSON_BYTES, PNG_SIGNATURE, _chunk
from companion.persona.library import export_card_file, import_card_file

V2_CARD = {
    "spec": "chara_card_v2",
    "spec_version": "2.0",
    "data": {
        "name": "Captain Vela",
        "description": "{{char}} pilots a salvage ship and trusts {{user}} with the helm.",
        "personality": "gruff, loyal, dry humour",
        "scenario": "Docked at a quiet station.",
        "first_mes": "Took you long enough, {{user}}.",
        "mes_example": "<START>\n{{user}}: Hi\n{{char}}: Hm.",
        "creator_notes": "test card",
        "system_prompt": "Write as {{char}}.",
        "post_history_instructions": "Stay terse.",
        "alternate_greetings": ["Back again, {{user}}?"],
        "character_book": {"entries": [{"keys": ["ship"], "content": "The ship is the Gull."}]},
        "tags": ["space", "captain"],
        "creator": "tests",
        "character_version": "1",
        "extensions": {"talkativeness": 0.3},
    },
}
V3_CARD = {
    "spec": "chara_card_v3",
    "spec_version": "3.0",
    "data": {**V2_CARD["data"], "name": "Archivist Io", "nickname": "Io",
             "group_only_greetings": ["Io nods to the group."], "tags": ["library"]},
}


def _avatar(color=(10, 120, 200)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 24), color).save(buf, format="PNG")
    return buf.getvalue()


def _png_with_text(keyword: str, payload: bytes) -> bytes:
    """A valid avatar PNG with one extra tEXt chunk inserted before IEND."""
    png = _avatar()
    return png[:-12] + _chunk(b"tEXt", keyword.encode() + b"\0" + payload) + png[-12:]


@pytest.mark.parametrize("doc", [V2_CARD, V3_CARD], ids=["v2", "v3"])
def test_json_round_trip(doc):
    char, spec = parse_card_json(json.dumps(doc))
    assert spec == doc["spec"][-2:]
    again = card_to_dict(char, spec)
    assert again["spec"] == doc["spec"]
    for key, value in doc["data"].items():
        assert again["data"][key] == value
    assert parse_card_json(card_to_json(char, spec))[0] == char


@pytest.mark.parametrize("doc", [V2_CARD, V3_CARD], ids=["v2", "v3"])
def test_png_round_trip_keeps_card_and_image(doc):
    char, spec = parse_card_json(json.dumps(doc))
    avatar = _avatar()
    png = card_to_png(char, avatar, spec)
    back, back_spec = read_png_card(png)
    assert back == char and back_spec == spec
    with Image.open(io.BytesIO(png)) as a, Image.open(io.BytesIO(avatar)) as b:
        assert a.size == b.size and a.tobytes() == b.tobytes()
    # a V3 PNG also carries a V2 'chara' chunk for older apps
    texts = {}
    pos = 8
    while pos < len(png):
        n, t = struct.unpack(">I4s", png[pos:pos + 8])
        if t == b"tEXt":
            k, _, v = png[pos + 8:pos + 8 + n].partition(b"\0")
            texts[k.decode()] = json.loads(base64.b64decode(v))
        pos += 12 + n
    assert texts["chara"]["spec"] == "chara_card_v2"
    assert ("ccv3" in texts) == (spec == "v3")
    # re-exporting replaces, not duplicates, the card chunks
    png2 = card_to_png(back, png, spec)
    assert png2.count(b"tEXtchara") == 1


def test_v1_card_and_nulls_are_accepted():
    char, spec = parse_card_json(json.dumps({"name": "Old", "description": None, "first_mes": "hi", "tags": None}))
    assert spec == "v1" and char.description == "" and char.tags == []


def test_macros_and_persona_prompt():
    char, _ = parse_card_json(json.dumps(V3_CARD))
    assert render("{{char}} & {{ USER }} / <BOT> <USER> {{Char}}", char, "Sam") == "Io & Sam / Io Sam Io"
    prompt = persona_prompt(char, "Sam")
    assert prompt.startswith("Write as Io.") and "{{" not in prompt and "trusts Sam" in prompt
    assert greetings(char, "Sam") == ["Took you long enough, Sam.", "Back again, Sam?"]


def test_default_character_is_mira():
    mira = default_character()
    assert mira.name == "Mira" and "warm" in mira.personality and "curious" in mira.personality
    assert greetings(mira, "Sam")[0].startswith("Hi Sam, I'm Mira.")


def test_store_import_export_round_trip(plain_store, tmp_path):
    src = tmp_path / "vela.png"
    src.write_bytes(card_to_png(parse_card_json(json.dumps(V2_CARD))[0], _avatar(), "v2"))
    cid = import_card_file(plain_store, src)
    rec = plain_store.character(cid)
    assert rec.name == "Captain Vela" and rec.avatar == src.read_bytes()
    with pytest.raises(Exception, match="already exists"):
        import_card_file(plain_store, src)
    assert import_card_file(plain_store, src, replace=True) == cid
    out_json = export_card_file(plain_store, "captain vela", tmp_path / "out.json", spec="v3")
    out_png = export_card_file(plain_store, cid, tmp_path / "out.png", spec="v3")
    assert parse_card_json(out_json.read_text())[0] == rec.card
    assert read_png_card(out_png.read_bytes())[0] == rec.card
    # its own conversations
    assert plain_store.conversations(cid) == []


def _hostile_cases(tmp_path: Path) -> dict[str, Path]:
    good = json.dumps(V2_CARD).encode()
    cases = {
        "huge_description.json": json.dumps({**V2_CARD, "data": {**V2_CARD["data"], "description": "x" * 50_000_000}}).encode(),
        "long_field.json": json.dumps({**V2_CARD, "data": {**V2_CARD["data"], "personality": "y" * 200_000}}).encode(),
        "name_is_number.json": json.dumps({**V2_CARD, "data": {**V2_CARD["data"], "name": 5}}).encode(),
        "tags_is_string.json": json.dumps({**V2_CARD, "data": {**V2_CARD["data"], "tags": "a,b"}}).encode(),
        "greeting_not_str.json": json.dumps({**V2_CARD, "data": {**V2_CARD["data"], "alternate_greetings": [1]}}).encode(),
        "empty_name.json": json.dumps({**V2_CARD, "data": {**V2_CARD["data"], "name": ""}}).encode(),
        "data_is_list.json": json.dumps({"spec": "chara_card_v2", "data": []}).encode(),
        "unknown_spec.json": json.dumps({"spec": "chara_card_v9", "data": {"name": "x"}}).encode(),
        "not_an_object.json": b"[1, 2, 3]",
        "not_json.json": b"{name: nope",
        "deep.json": json.dumps({**V2_CARD, "data": {**V2_CARD["data"], "extensions": {"a": json.loads("[" * 500 + "]" * 500)}}}).encode(),
        "broken.png": _png_with_text("chara", base64.b64encode(good))[:-40],
        "bad_crc.png": (lambda p: p[:40] + bytes([p[40] ^ 0xFF]) + p[41:])(_png_with_text("chara", base64.b64encode(good))),
        "not_base64.png": _png_with_text("chara", b"!!!not base64!!!"),
        "oversized_chunk.png": _png_with_text("chara", b"A" * (MAX_CARD_JSON_BYTES * 2)),
        "lying_length.png": PNG_SIGNATURE + struct.pack(">I4s", 0xFFFFFFF0, b"tEXt") + b"chara\0",
        "no_card.png": _avatar(),
        "ccv3_holds_v2.png": _png_with_text("ccv3", base64.b64encode(good)),
        "garbage_idat.png": (lambda p: p[:8] + _chunk(b"IHDR", struct.pack(">IIBBBBB", 64, 64, 8, 2, 0, 0, 0))
                             + _chunk(b"IDAT", zlib.compress(b"\0" * 10)[:5])
                             + _chunk(b"tEXt", b"chara\0" + base64.b64encode(good)) + _chunk(b"IEND", b""))(PNG_SIGNATURE),
        "wrong_types_in_png.png": _png_with_text("chara", base64.b64encode(json.dumps({"spec": "chara_card_v2", "data": {"name": ["x"]}}).encode())),
    }
    paths = {}
    for name, blob in cases.items():
        p = tmp_path / name
        p.write_bytes(blob)
        paths[name] = p
    return paths


def test_hostile_cards_are_rejected_and_nothing_is_stored(plain_store, tmp_path):
    plain_store.ensure_character()
    before = [c.name for c in plain_store.characters()]
    for name, path in _hostile_cases(tmp_path).items():
        with pytest.raises(CardError) as info:
            import_card_file(plain_store, path)
        msg = str(info.value)
        assert str(path) in msg, (name, msg)
        assert len(msg) < 600, (name, msg)  # a clear sentence, not a dump of the input
    assert [c.name for c in plain_store.characters()] == before
    assert plain_store.integrity_check() == "ok"


def test_character_cli(tmp_path):
    from companion.cli import main

    card = tmp_path / "io.json"
    card.write_text(json.dumps(V3_CARD))
    runner = CliRunner()
    r = runner.invoke(main, ["character", "import", str(card)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["character", "list"])
    assert "Archivist Io" in r.output and "* " in r.output and "Mira" in r.output
    r = runner.invoke(main, ["character", "use", "archivist io"])
    assert r.exit_code == 0 and "Archivist Io" in r.output
    from companion.settings import Settings

    assert Settings.load().character == "Archivist Io"
    out = tmp_path / "io.png"
    assert runner.invoke(main, ["character", "export", "Archivist Io", str(out)]).exit_code == 0
    assert read_png_card(out.read_bytes())[0].name == "Archivist Io"
    bad = tmp_path / "bad.json"
    bad.write_text('{"spec": "chara_card_v2", "data": {"name": 3}}')
    r = runner.invoke(main, ["character", "import", str(bad)])
    assert r.exit_code == 1 and "invalid card" in r.output and "Traceback" not in r.output


def test_every_command_has_help():
    from companion.persona.cli import character_group

    for name, cmd in character_group.commands.items():
        assert cmd.help, name
