"""VRM models (VRM 0.x and 1.0: glTF 2.0 binaries with the `VRM` or `VRMC_vrm` extension): check a
file before the page is given it, and import it into the user's data folder.

The page parses the model with three.js and @pixiv/three-vrm (ui/avatar/vrm.js), which trust what
the file claims: a count or a length that is a lie becomes a huge allocation or a crash in the
page. So every claim the page would act on is checked here first, against the file's real size
and sane limits, and a file that fails gets one line saying what is wrong and what to do.

Layout (glTF 2.0 spec, "Binary glTF Layout"): a 12-byte header (magic "glTF", version 2, total
length), then chunks of (length, type, data): JSON first, then an optional BIN chunk that
buffer 0 (the one without a uri) refers to.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from companion.errors import CompanionError

GLB_MAGIC = b"glTF"
CHUNK_JSON = 0x4E4F534A  # "JSON"
CHUNK_BIN = 0x004E4942  # "BIN\0"
MAX_FILE_BYTES = 1024**3  # 1 GiB: real VRMs are 5-200 MB
MAX_JSON_BYTES = 32 * 1024**2  # the JSON chunk of a large VRM is ~1-3 MB
# The most of each top-level array a model may declare. Big avatars have ~1k nodes and ~3k
# accessors (each blend shape adds 2-3); these are ~20x that.
MAX_COUNTS = {
    "accessors": 100_000, "bufferViews": 100_000, "buffers": 16, "nodes": 50_000,
    "meshes": 10_000, "materials": 4096, "textures": 4096, "images": 4096, "samplers": 4096,
    "skins": 4096, "animations": 4096, "scenes": 64, "cameras": 256,
}
MAX_PRIMITIVES = 4096  # per mesh
MAX_TARGETS = 2048  # morph targets per primitive (blend shapes; big faces have a few hundred)
MAX_IMAGE_SIDE = 16_384  # the largest texture side WebGPU/WebGL devices take
MAX_IMAGE_PIXELS = 8192 * 8192  # decoded: 256 MiB of RGBA per image at most
_COMPONENT_BYTES = {5120: 1, 5121: 1, 5122: 2, 5123: 2, 5125: 4, 5126: 4}
_TYPE_COMPONENTS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}
_DATA_URI = re.compile(r"data:[\w/+.-]*(;[\w=-]+)*;base64,", re.ASCII)


class VrmError(CompanionError):
    """A VRM model file is missing, malformed or hostile and was not used."""


@dataclass(frozen=True)
class VrmInfo:
    """What a checked VRM file holds."""

    path: Path
    version: str  # "1.0" (VRMC_vrm) or "0.x" (VRM)
    title: str  # the model's name from its meta ("" when it has none)
    size: int  # bytes
    nodes: int
    meshes: int
    images: int


def check_vrm(path: Path | str, label: str | None = None) -> VrmInfo:
    """Check `path` is a VRM the page can load safely; raise VrmError (one line, naming the file
    as `label`, else by its name) if it is not."""
    path = Path(path)
    name = label or path.name
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise VrmError(f"{name} is not a file: give the path of a .vrm model")
        with path.open("rb") as f:
            return _check(f, size, path, name)
    except FileNotFoundError:
        raise VrmError(f"{path} does not exist: give the path of a .vrm model") from None
    except OSError as exc:
        raise VrmError(f"cannot read {path}: {exc.strerror or exc}") from None


def _check(f: BinaryIO, size: int, path: Path, name: str) -> VrmInfo:
    redo = "export it again as .vrm (VRM 0.x or 1.0)"
    if size > MAX_FILE_BYTES:
        raise VrmError(f"{name} is {size / 1024**3:.1f} GiB; the largest VRM accepted is {MAX_FILE_BYTES // 1024**3} GiB: reduce its textures")
    head = f.read(20)
    if len(head) < 4 or head[:4] != GLB_MAGIC:
        raise VrmError(f"{name} is not a VRM file: it does not start with 'glTF' (found {head[:4]!r}); {redo}")
    if len(head) < 20:
        raise VrmError(f"{name} is truncated: {size} bytes is shorter than a glTF header; {redo}")
    version, declared, json_len, json_type = struct.unpack_from("<4I", head, 4)
    if version != 2:
        raise VrmError(f"{name} is glTF version {version}; VRM models are glTF 2: {redo}")
    if declared > size:
        raise VrmError(f"{name} is truncated: its header says {declared} bytes, the file has {size}; copy or download it again")
    if declared < size:
        raise VrmError(f"{name} has {size - declared} bytes after the end its header states ({declared}); {redo}")
    if json_type != CHUNK_JSON:
        raise VrmError(f"{name}: the first chunk is not JSON (type {json_type:#x}); {redo}")
    if json_len > size - 20:
        raise VrmError(f"{name} is truncated: its JSON chunk claims {json_len} bytes, only {size - 20} follow; copy or download it again")
    if json_len > MAX_JSON_BYTES:
        raise VrmError(f"{name}: its JSON chunk is {json_len} bytes; at most {MAX_JSON_BYTES} are accepted")
    gltf = _parse_json(f.read(json_len), name)
    bin_len = _bin_chunk(f, 20 + json_len, size, name)
    _check_counts(gltf, name)
    _check_buffers(gltf, bin_len, name)
    _check_accessors(gltf, name)
    _check_images(gltf, f, 20 + json_len + 8, name)
    _check_nodes(gltf, name)
    version_name, ext = _vrm_extension(gltf, name)
    meta = ext.get("meta")
    meta = meta if isinstance(meta, dict) else {}
    title = meta.get("name") or meta.get("title") or ""
    return VrmInfo(
        path=path, version=version_name, title=str(title)[:200], size=size,
        nodes=len(gltf.get("nodes", [])), meshes=len(gltf.get("meshes", [])), images=len(gltf.get("images", [])),
    )


def _parse_json(raw: bytes, name: str) -> dict[str, Any]:
    try:
        gltf = json.loads(raw.decode("utf-8").rstrip(" \0"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise VrmError(f"{name}: its JSON chunk cannot be read ({str(exc).splitlines()[0][:120]}); the file is damaged") from None
    if not isinstance(gltf, dict):
        raise VrmError(f"{name}: its JSON chunk is not a glTF object; the file is damaged")
    asset = gltf.get("asset")
    if not isinstance(asset, dict) or not str(asset.get("version", "")).startswith("2."):
        raise VrmError(f"{name}: its asset.version is not 2.x; VRM models are glTF 2")
    return gltf


def _bin_chunk(f: BinaryIO, at: int, size: int, name: str) -> int:
    """The BIN chunk's length (0 when there is none); every chunk after JSON must fit the file."""
    bin_len = 0
    first = True
    while at < size:
        if size - at < 8:
            raise VrmError(f"{name} is truncated: {size - at} stray bytes where a chunk header should be; copy or download it again")
        f.seek(at)
        length, kind = struct.unpack("<2I", f.read(8))
        if length > size - at - 8:
            raise VrmError(f"{name} is truncated: a chunk claims {length} bytes, only {size - at - 8} follow; copy or download it again")
        if first and kind == CHUNK_BIN:
            bin_len = length
        first = False
        at += 8 + length
    return bin_len


def _check_counts(gltf: dict[str, Any], name: str) -> None:
    for key, most in MAX_COUNTS.items():
        items = gltf.get(key, [])
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise VrmError(f"{name}: its {key} is not a list of objects; the file is damaged")
        if len(items) > most:
            raise VrmError(f"{name} declares {len(items)} {key}; at most {most} are accepted (the file is damaged or hostile)")
    for m, mesh in enumerate(gltf.get("meshes", [])):
        prims = mesh.get("primitives", [])
        if not isinstance(prims, list) or len(prims) > MAX_PRIMITIVES:
            raise VrmError(f"{name}: mesh {m} has {len(prims) if isinstance(prims, list) else 'no list of'} primitives; at most {MAX_PRIMITIVES} are accepted")
        for prim in prims:
            targets = prim.get("targets", []) if isinstance(prim, dict) else None
            if not isinstance(targets, list) or len(targets) > MAX_TARGETS:
                raise VrmError(f"{name}: mesh {m} has a primitive with too many or malformed morph targets (at most {MAX_TARGETS})")


def _int(x: Any) -> int | None:
    return x if isinstance(x, int) and not isinstance(x, bool) and x >= 0 else None


def _index(x: Any, items: str, gltf: dict[str, Any]) -> int | None:
    i = _int(x)
    return i if i is not None and i < len(gltf.get(items, [])) else None


def _check_buffers(gltf: dict[str, Any], bin_len: int, name: str) -> None:
    lengths = []
    for b, buf in enumerate(gltf.get("buffers", [])):
        length = _int(buf.get("byteLength"))
        if length is None:
            raise VrmError(f"{name}: buffer {b} has no valid byteLength; the file is damaged")
        uri = buf.get("uri")
        if uri is None:
            if b != 0:
                raise VrmError(f"{name}: buffer {b} has no uri (only buffer 0 may use the file's BIN chunk)")
            if length > bin_len:
                raise VrmError(f"{name}: buffer 0 claims {length} bytes but the file's BIN chunk holds {bin_len}; the file is truncated or hostile")
        elif not isinstance(uri, str) or not _DATA_URI.match(uri):
            raise VrmError(f"{name}: buffer {b} refers to a separate file ({str(uri)[:60]!r}); a .vrm must hold all its data: export it again as .vrm")
        elif length > len(uri) * 3 // 4:
            raise VrmError(f"{name}: buffer {b} claims {length} bytes but its data holds at most {len(uri) * 3 // 4}; the file is damaged or hostile")
        lengths.append(length)
    for v, view in enumerate(gltf.get("bufferViews", [])):
        buf = _index(view.get("buffer"), "buffers", gltf)
        offset, length = _int(view.get("byteOffset", 0)), _int(view.get("byteLength"))
        if buf is None or offset is None or length is None:
            raise VrmError(f"{name}: bufferView {v} has no valid buffer, byteOffset or byteLength; the file is damaged")
        if offset + length > lengths[buf]:
            raise VrmError(f"{name}: bufferView {v} claims bytes {offset}..{offset + length} of a {lengths[buf]}-byte buffer; the file is truncated or hostile")
        stride = view.get("byteStride")
        if stride is not None and (_int(stride) is None or not 4 <= stride <= 252):
            raise VrmError(f"{name}: bufferView {v} has byteStride {stride!r} (glTF allows 4..252)")


def _check_accessors(gltf: dict[str, Any], name: str) -> None:
    views = gltf.get("bufferViews", [])
    for a, acc in enumerate(gltf.get("accessors", [])):
        count = _int(acc.get("count"))
        comp = _COMPONENT_BYTES.get(acc.get("componentType"))  # type: ignore[arg-type]
        n = _TYPE_COMPONENTS.get(acc.get("type"))  # type: ignore[arg-type]
        if count is None or comp is None or n is None:
            raise VrmError(f"{name}: accessor {a} has no valid count, componentType or type; the file is damaged")
        sparse = acc.get("sparse")
        if sparse is not None:
            _check_sparse(sparse, count, comp * n, a, gltf, name)
        if "bufferView" not in acc:
            if count > 16 * 1024**2:  # zeros (plus sparse values): still an allocation
                raise VrmError(f"{name}: accessor {a} claims {count} elements; the file is damaged or hostile")
            continue
        v = _index(acc.get("bufferView"), "bufferViews", gltf)
        offset = _int(acc.get("byteOffset", 0))
        if v is None or offset is None:
            raise VrmError(f"{name}: accessor {a} has no valid bufferView or byteOffset; the file is damaged")
        view = views[v]
        stride = view.get("byteStride") or comp * n
        need = offset + (stride * (count - 1) + comp * n if count else 0)
        if need > view["byteLength"]:
            raise VrmError(f"{name}: accessor {a} claims {count} elements ({need} bytes) in a {view['byteLength']}-byte bufferView; the file is truncated or hostile")


def _check_sparse(sparse: Any, count: int, element: int, a: int, gltf: dict[str, Any], name: str) -> None:
    """A sparse accessor's replaced elements: no more than the accessor holds, inside their views."""
    views = gltf.get("bufferViews", [])
    n = _int(sparse.get("count")) if isinstance(sparse, dict) else None
    idx, val = (sparse.get("indices"), sparse.get("values")) if isinstance(sparse, dict) else (None, None)
    if n is None or n > count or not isinstance(idx, dict) or not isinstance(val, dict):
        raise VrmError(f"{name}: accessor {a} has a malformed sparse part (count {n!r} of {count}); the file is damaged or hostile")
    for part, size in ((idx, _COMPONENT_BYTES.get(idx.get("componentType"), 0)), (val, element)):  # type: ignore[arg-type]
        v, offset = _index(part.get("bufferView"), "bufferViews", gltf), _int(part.get("byteOffset", 0))
        if v is None or offset is None or not size or offset + n * size > views[v]["byteLength"]:
            raise VrmError(f"{name}: accessor {a}'s sparse part claims {n} elements beyond its bufferView; the file is truncated or hostile")


def _check_images(gltf: dict[str, Any], f: BinaryIO, bin_at: int, name: str) -> None:
    """Images live in bufferViews (or data: URIs); their headers must not claim a huge picture."""
    views, buffers = gltf.get("bufferViews", []), gltf.get("buffers", [])
    for i, img in enumerate(gltf.get("images", [])):
        if "bufferView" in img:
            v = _index(img.get("bufferView"), "bufferViews", gltf)
            if v is None:
                raise VrmError(f"{name}: image {i} names bufferView {img.get('bufferView')!r}, which does not exist; the file is damaged")
            view = views[v]
            if view["buffer"] != 0 or "uri" in buffers[0]:
                continue  # a data: buffer: its length was checked; header sniffing is for the BIN chunk
            f.seek(bin_at + view.get("byteOffset", 0))
            head = f.read(min(view["byteLength"], 64 * 1024))
        elif isinstance(img.get("uri"), str) and _DATA_URI.match(img["uri"]):
            continue
        else:
            raise VrmError(f"{name}: image {i} refers to a separate file ({str(img.get('uri'))[:60]!r}); a .vrm must hold its textures: export it again as .vrm")
        dims = _image_size(head)
        if dims is None:
            continue  # a format we do not sniff (KTX2, WebP...): the page's decoder has its own limits
        w, h = dims
        if max(w, h) > MAX_IMAGE_SIDE or w * h > MAX_IMAGE_PIXELS:
            raise VrmError(
                f"{name}: image {i} claims {w}x{h} pixels ({w * h * 4 / 1024**3:.1f} GiB decoded); textures up to "
                f"{MAX_IMAGE_SIDE} pixels a side and {MAX_IMAGE_PIXELS // 1024**2}M pixels are accepted: shrink it"
            )


def _image_size(head: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR or a JPEG's SOF marker; None for other formats."""
    if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) >= 24 and head[12:16] == b"IHDR":
        w, h = struct.unpack(">2I", head[16:24])
        return w, h
    if head[:2] == b"\xff\xd8":
        at = 2
        while at + 4 <= len(head):
            if head[at] != 0xFF:
                return None
            marker = head[at + 1]
            seg = struct.unpack(">H", head[at + 2 : at + 4])[0]
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC) and at + 9 <= len(head):
                h, w = struct.unpack(">2H", head[at + 5 : at + 9])
                return w, h
            at += 2 + seg
    return None


def _check_nodes(gltf: dict[str, Any], name: str) -> None:
    """Node references in range, each node with at most one parent and no cycles (the loader
    walks the tree recursively)."""
    nodes = gltf.get("nodes", [])
    parent: dict[int, int] = {}
    for n, node in enumerate(nodes):
        for key, items in (("mesh", "meshes"), ("skin", "skins"), ("camera", "cameras")):
            if key in node and _index(node[key], items, gltf) is None:
                raise VrmError(f"{name}: node {n} names {key} {node[key]!r}, which does not exist; the file is damaged")
        children = node.get("children", [])
        if not isinstance(children, list):
            raise VrmError(f"{name}: node {n} has malformed children; the file is damaged")
        for c in children:
            if _index(c, "nodes", gltf) is None or c in parent or c == n:
                raise VrmError(f"{name}: node {n} has child {c!r}, which does not exist or has another parent; the file is damaged or hostile")
            parent[c] = n
    for n in range(len(nodes)):  # a cycle: walking up from some node comes back to it
        seen, at = 0, n
        while at in parent:
            at, seen = parent[at], seen + 1
            if at == n or seen > len(nodes):
                raise VrmError(f"{name}: its nodes form a cycle through node {n}; the file is damaged or hostile")
    for s, scene in enumerate(gltf.get("scenes", [])):
        for r in scene.get("nodes", []) if isinstance(scene.get("nodes", []), list) else [None]:
            if _index(r, "nodes", gltf) is None:
                raise VrmError(f"{name}: scene {s} names node {r!r}, which does not exist; the file is damaged")


def _vrm_extension(gltf: dict[str, Any], name: str) -> tuple[str, dict[str, Any]]:
    """("1.0", VRMC_vrm) or ("0.x", VRM), with a humanoid whose bones are nodes of the file."""
    ext = gltf.get("extensions")
    ext = ext if isinstance(ext, dict) else {}
    if isinstance(ext.get("VRMC_vrm"), dict):
        version, vrm = "1.0", ext["VRMC_vrm"]
        bones = (vrm.get("humanoid") or {}).get("humanBones") if isinstance(vrm.get("humanoid"), dict) else None
        refs = [b.get("node") if isinstance(b, dict) else None for b in bones.values()] if isinstance(bones, dict) else None
    elif isinstance(ext.get("VRM"), dict):
        version, vrm = "0.x", ext["VRM"]
        bones = (vrm.get("humanoid") or {}).get("humanBones") if isinstance(vrm.get("humanoid"), dict) else None
        refs = [b.get("node") if isinstance(b, dict) else None for b in bones] if isinstance(bones, list) else None
    else:
        raise VrmError(
            f"{name} is a glTF model without the VRM extension (neither VRMC_vrm nor VRM): "
            "export it as .vrm from VRoid Studio, UniVRM or Blender's VRM add-on"
        )
    if not refs:
        raise VrmError(f"{name}: its VRM {version} extension has no humanoid bones; the file is damaged")
    bad = [r for r in refs if _index(r, "nodes", gltf) is None]
    if bad:
        raise VrmError(f"{name}: its humanoid names node {bad[0]!r}, which does not exist; the file is damaged")
    return version, vrm


# --- import ------------------------------------------------------------------------------------

AVATARS_DIR = "avatars"  # under COMPANION_HOME


def import_vrm(source: Path | str, home: Path) -> VrmInfo:
    """Check `source` and copy it into `home`/avatars/ (atomically); the copy's info. The caller
    keeps the choice in settings (avatar_model)."""
    info = check_vrm(source)
    folder = home / AVATARS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^\w.-]+", "_", Path(source).stem, flags=re.ASCII).strip("._")[:80] or "model"
    dest = folder / f"{stem}.vrm"
    if dest.exists() and dest.resolve() == Path(source).resolve():
        return info
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".import-", suffix=".vrm")
    try:
        with os.fdopen(fd, "wb") as out, Path(source).open("rb") as src:
            shutil.copyfileobj(src, out, 4 * 1024**2)
        copied = check_vrm(tmp, Path(source).name)  # the copy is what will be served: check what was written
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return VrmInfo(dest, copied.version, copied.title, copied.size, copied.nodes, copied.meshes, copied.images)


def accept_upload(tmp: Path, filename: str, home: Path) -> VrmInfo:
    """A model the page uploaded (dropped onto it), already written to `tmp` inside
    `home`/avatars: check it and move it into place under `filename`'s stem."""
    try:
        info = check_vrm(tmp, filename)
        stem = re.sub(r"[^\w.-]+", "_", Path(filename).stem, flags=re.ASCII).strip("._")[:80] or "model"
        dest = home / AVATARS_DIR / f"{stem}.vrm"
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return VrmInfo(dest, info.version, info.title, info.size, info.nodes, info.meshes, info.images)
