"""Character Card V1/V2/V3: validate, read and write as JSON or PNG, and render macros.

Specs: V2 https://github.com/malfoyslastname/character-card-spec-v2 (`spec: chara_card_v2`,
fields under `data`, PNG tEXt chunk `chara` = base64 JSON); V3
https://github.com/kwaroran/character-card-spec-v3 (`spec: chara_card_v3`, PNG tEXt chunk
`ccv3`; writers also keep a V2 `chara` chunk for older readers).

Everything from a file is untrusted: sizes are bounded before parsing, PNG chunks are
walked by hand with CRC checks, JSON types are checked strictly, and any failure is a
CardError raised before anything is stored.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
import struct
import zlib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from companion.errors import CardError

MAX_FILE_BYTES = 32 * 1024 * 1024  # a card PNG (avatar included) larger than this is refused
MAX_CARD_JSON_BYTES = 2 * 1024 * 1024  # the card's JSON text, lorebook included
MAX_FIELD_CHARS = 100_000  # one text field (descriptions run to a few thousand in practice)
MAX_NAME_CHARS = 200
MAX_LIST_ITEMS = 256  # greetings, tags
MAX_PNG_CHUNKS = 100_000
MAX_JSON_DEPTH = 64

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
Spec = Literal["v1", "v2", "v3"]

_TEXT_FIELDS = (
    "description", "personality", "scenario", "first_mes", "mes_example", "system_prompt",
    "post_history_instructions", "creator_notes", "creator", "character_version",
)


class Character(BaseModel):
    """One character, in the union of the V2 and V3 `data` fields we use."""

    model_config = ConfigDict(strict=True, extra="ignore", validate_assignment=True)

    name: str = Field(min_length=1, max_length=MAX_NAME_CHARS)
    description: str = Field("", max_length=MAX_FIELD_CHARS)
    personality: str = Field("", max_length=MAX_FIELD_CHARS)
    scenario: str = Field("", max_length=MAX_FIELD_CHARS)
    first_mes: str = Field("", max_length=MAX_FIELD_CHARS)
    mes_example: str = Field("", max_length=MAX_FIELD_CHARS)
    system_prompt: str = Field("", max_length=MAX_FIELD_CHARS)  # replaces the default system prompt
    post_history_instructions: str = Field("", max_length=MAX_FIELD_CHARS)  # sent after the history
    alternate_greetings: list[str] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    tags: list[str] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    creator: str = Field("", max_length=MAX_FIELD_CHARS)
    creator_notes: str = Field("", max_length=MAX_FIELD_CHARS)
    character_version: str = Field("", max_length=MAX_FIELD_CHARS)
    nickname: str = Field("", max_length=MAX_NAME_CHARS)  # V3: used for {{char}} when set
    group_only_greetings: list[str] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)  # V3
    character_book: dict[str, Any] | None = None  # lorebook, kept as-is for round trips
    extensions: dict[str, Any] = Field(default_factory=dict)

    @field_validator(*_TEXT_FIELDS, "nickname", mode="before")
    @classmethod
    def _null_is_empty(cls, v: object) -> object:
        # Many cards in the wild write null for an empty field; any other non-string is an error.
        return "" if v is None else v

    @field_validator("alternate_greetings", "tags", "group_only_greetings", mode="before")
    @classmethod
    def _null_is_empty_list(cls, v: object) -> object:
        return [] if v is None else v

    @field_validator("alternate_greetings", "tags", "group_only_greetings")
    @classmethod
    def _items_bounded(cls, v: list[str]) -> list[str]:
        for item in v:
            if len(item) > MAX_FIELD_CHARS:
                raise ValueError(f"an item is longer than {MAX_FIELD_CHARS} characters")
        return v

    @property
    def display_name(self) -> str:
        """What {{char}} expands to."""
        return self.nickname or self.name


# --- JSON -------------------------------------------------------------------------------


def _depth(obj: object, limit: int = MAX_JSON_DEPTH) -> int:
    """Nesting depth of parsed JSON, stopping once past `limit`."""
    stack = [(obj, 1)]
    deepest = 0
    while stack:
        item, d = stack.pop()
        deepest = max(deepest, d)
        if deepest > limit:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, d + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, d + 1) for v in item)
    return deepest


def _load_json(text: bytes | str, where: str) -> Any:
    size = len(text.encode() if isinstance(text, str) else text)
    if size > MAX_CARD_JSON_BYTES:
        raise CardError(f"{where}: card JSON is {size:,} bytes, more than the {MAX_CARD_JSON_BYTES:,} allowed")
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise CardError(f"{where}: not valid JSON ({exc})") from None
    if _depth(obj) > MAX_JSON_DEPTH:
        raise CardError(f"{where}: JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return obj


def card_from_dict(obj: Any, where: str = "card") -> tuple[Character, Spec]:
    """Validate a parsed card (V1 flat, V2 or V3) into a Character and its spec version."""
    if not isinstance(obj, dict):
        raise CardError(f"{where}: a card must be a JSON object, got {type(obj).__name__}")
    spec = obj.get("spec")
    if spec in ("chara_card_v2", "chara_card_v3"):
        data = obj.get("data")
        if not isinstance(data, dict):
            raise CardError(f"{where}: '{spec}' card has no 'data' object")
        version: Spec = "v2" if spec == "chara_card_v2" else "v3"
    elif spec is None and "name" in obj:
        data, version = obj, "v1"
    else:
        raise CardError(f"{where}: unknown card spec {spec!r} (expected chara_card_v2 or chara_card_v3)")
    try:
        char = Character.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'card'}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise CardError(f"{where}: invalid card ({problems})") from None
    return char, version


def parse_card_json(text: bytes | str, where: str = "card") -> tuple[Character, Spec]:
    """Parse a card JSON document."""
    return card_from_dict(_load_json(text, where), where)


def card_to_dict(char: Character, spec: Literal["v2", "v3"] = "v3") -> dict[str, Any]:
    """The card as a V2 or V3 document."""
    data = char.model_dump()
    if spec == "v2":
        for key in ("nickname", "group_only_greetings"):  # V3-only fields
            data.pop(key)
        if data["character_book"] is None:
            data.pop("character_book")
        return {"spec": "chara_card_v2", "spec_version": "2.0", "data": data}
    if data["character_book"] is None:
        data.pop("character_book")
    return {"spec": "chara_card_v3", "spec_version": "3.0", "data": data}


def card_to_json(char: Character, spec: Literal["v2", "v3"] = "v3") -> str:
    """The card as pretty JSON text."""
    return json.dumps(card_to_dict(char, spec), ensure_ascii=False, indent=2)


# --- PNG --------------------------------------------------------------------------------


def _chunks(png: bytes, where: str) -> list[tuple[bytes, bytes]]:
    """(type, data) of every chunk up to IEND, checking lengths and CRCs."""
    if not png.startswith(PNG_SIGNATURE):
        raise CardError(f"{where}: not a PNG file (bad signature)")
    out: list[tuple[bytes, bytes]] = []
    pos = len(PNG_SIGNATURE)
    while True:
        if len(out) >= MAX_PNG_CHUNKS:
            raise CardError(f"{where}: PNG has more than {MAX_PNG_CHUNKS} chunks")
        if pos + 8 > len(png):
            raise CardError(f"{where}: PNG is truncated (no IEND chunk)")
        length, ctype = struct.unpack(">I4s", png[pos:pos + 8])
        end = pos + 8 + length + 4
        if length > 2**31 - 1 or end > len(png):
            raise CardError(f"{where}: PNG chunk {ctype!r} claims {length:,} bytes but the file is truncated")
        data = png[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", png[pos + 8 + length:end])
        if zlib.crc32(ctype + data) & 0xFFFFFFFF != crc:
            raise CardError(f"{where}: PNG chunk {ctype!r} is corrupt (CRC mismatch)")
        out.append((ctype, data))
        pos = end
        if ctype == b"IEND":
            return out


def _chunk(ctype: bytes, data: bytes) -> bytes:
    return struct.pack(">I4s", len(data), ctype) + data + struct.pack(">I", zlib.crc32(ctype + data) & 0xFFFFFFFF)


def _text_chunk(keyword: str, payload: dict[str, Any]) -> bytes:
    b64 = base64.b64encode(json.dumps(payload, ensure_ascii=False).encode()).decode("ascii")
    return _chunk(b"tEXt", keyword.encode("latin-1") + b"\0" + b64.encode("ascii"))


def _verify_image(png: bytes, where: str) -> None:
    """Let Pillow decode the image so a broken IDAT is caught here, not in the UI."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(png)) as im:
            if im.width * im.height > 8192 * 8192:
                raise CardError(f"{where}: image is {im.width}x{im.height}, larger than 8192x8192")
            im.load()
    except CardError:
        raise
    except Exception as exc:  # Pillow raises many types for bad data
        raise CardError(f"{where}: the PNG image is broken ({exc})") from None


def read_png_card(png: bytes, where: str = "card.png") -> tuple[Character, Spec]:
    """The card embedded in a PNG: the `ccv3` chunk if present, else `chara`."""
    if len(png) > MAX_FILE_BYTES:
        raise CardError(f"{where}: {len(png):,} bytes is more than the {MAX_FILE_BYTES:,} allowed")
    texts: dict[str, bytes] = {}
    for ctype, data in _chunks(png, where):
        if ctype == b"tEXt":
            keyword, sep, value = data.partition(b"\0")
            key = keyword.decode("latin-1").lower()
            if sep and key in ("chara", "ccv3"):
                texts[key] = value
    _verify_image(png, where)
    for key in ("ccv3", "chara"):
        if key in texts:
            raw = texts[key]
            if len(raw) > MAX_CARD_JSON_BYTES * 4 // 3 + 4:
                raise CardError(f"{where}: '{key}' chunk is {len(raw):,} bytes, too large for a card")
            try:
                decoded = base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError):
                raise CardError(f"{where}: '{key}' chunk is not valid base64") from None
            char, spec = parse_card_json(decoded, f"{where} ({key})")
            if key == "ccv3" and spec != "v3":
                raise CardError(f"{where}: 'ccv3' chunk does not hold a chara_card_v3 card")
            return char, spec
    raise CardError(f"{where}: PNG holds no character card (no 'chara' or 'ccv3' text chunk)")


def default_avatar(char: Character, size: int = 256) -> bytes:
    """A plain generated avatar (a coloured disc with the initial) for cards that have none."""
    from PIL import Image, ImageDraw

    hue = zlib.crc32(char.name.encode()) % 360
    im = Image.new("RGB", (size, size), (245, 240, 235))
    draw = ImageDraw.Draw(im)
    colour = f"hsl({hue}, 55%, 60%)"
    draw.ellipse((size // 8, size // 8, size * 7 // 8, size * 7 // 8), fill=colour)
    draw.text((size // 2, size // 2), char.name[:1].upper(), fill="white", anchor="mm", font_size=size // 3)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def card_to_png(char: Character, avatar: bytes | None = None, spec: Literal["v2", "v3"] = "v3") -> bytes:
    """A PNG (the avatar, or a generated one) carrying the card in tEXt chunks.

    V3 writes both `ccv3` and a V2 `chara` chunk, as the V3 spec recommends; old card
    chunks in the avatar are dropped.
    """
    png = avatar if avatar is not None else default_avatar(char)
    kept = [
        (t, d) for t, d in _chunks(png, "avatar")
        if not (t == b"tEXt" and d.partition(b"\0")[0].lower() in (b"chara", b"ccv3"))
    ]
    cards = [_text_chunk("chara", card_to_dict(char, "v2"))]
    if spec == "v3":
        cards.append(_text_chunk("ccv3", card_to_dict(char, "v3")))
    body = b"".join(_chunk(t, d) for t, d in kept[:-1])
    return PNG_SIGNATURE + body + b"".join(cards) + _chunk(b"IEND", b"")


# --- files ------------------------------------------------------------------------------


def load_card_file(path: Path) -> tuple[Character, Spec, bytes | None]:
    """A card from a .json or .png file: (character, spec, avatar PNG or None)."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise CardError(f"{path}: {size:,} bytes is more than the {MAX_FILE_BYTES:,} allowed for a card")
        blob = path.read_bytes()
    except OSError as exc:
        raise CardError(f"{path}: cannot read the card ({exc.strerror or exc})") from None
    if blob.startswith(PNG_SIGNATURE):
        char, spec = read_png_card(blob, str(path))
        return char, spec, blob
    char, spec = parse_card_json(blob, str(path))
    return char, spec, None


# --- macros -----------------------------------------------------------------------------

_MACRO = re.compile(r"\{\{\s*(char|user)\s*\}\}|<(BOT|USER)>", re.IGNORECASE)


def render(text: str, char: Character, user: str = "User") -> str:
    """Replace {{char}} / {{user}} (any case, and the legacy <BOT> / <USER>)."""

    def sub(m: re.Match[str]) -> str:
        which = (m.group(1) or m.group(2)).lower()
        return char.display_name if which in ("char", "bot") else user

    return _MACRO.sub(sub, text)
