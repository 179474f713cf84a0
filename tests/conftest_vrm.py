"""A small VRM made in code for the VRM tests (imported by tests/conftest.py): a glTF 2.0 binary
with a humanoid skeleton of nodes, a box of a head whose morph targets are bound to the VRM
expressions, and one tiny PNG texture. `vrm_parts` gives the JSON and the binary chunk so a test
can break either before `pack_glb` puts them together."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

# VRM 1.0 preset expressions the page drives (emotions, blink, mouth) and the expression-type
# look-at, each bound to its own morph target of the head.
EXPRESSIONS = ("happy", "angry", "sad", "relaxed", "surprised", "blink", "aa", "ih", "ou", "ee", "oh",
               "lookUp", "lookDown", "lookLeft", "lookRight")
# VRM 0.x names for the same presets (three-vrm maps them onto the 1.0 names)
V0_PRESETS = {"happy": "joy", "angry": "angry", "sad": "sorrow", "relaxed": "fun", "surprised": "surprised",
              "blink": "blink", "aa": "a", "ih": "i", "ou": "u", "ee": "e", "oh": "o",
              "lookUp": "lookup", "lookDown": "lookdown", "lookLeft": "lookleft", "lookRight": "lookright"}
# (bone, parent bone, offset from the parent in metres): the bones three-vrm requires
BONES = (
    ("hips", None, (0, 0.9, 0)), ("spine", "hips", (0, 0.12, 0)), ("chest", "spine", (0, 0.15, 0)),
    ("neck", "chest", (0, 0.2, 0)), ("head", "neck", (0, 0.08, 0)),
    ("leftUpperArm", "chest", (0.18, 0.15, 0)), ("leftLowerArm", "leftUpperArm", (0.25, 0, 0)),
    ("leftHand", "leftLowerArm", (0.22, 0, 0)),
    ("rightUpperArm", "chest", (-0.18, 0.15, 0)), ("rightLowerArm", "rightUpperArm", (-0.25, 0, 0)),
    ("rightHand", "rightLowerArm", (-0.22, 0, 0)),
    ("leftUpperLeg", "hips", (0.09, -0.05, 0)), ("leftLowerLeg", "leftUpperLeg", (0, -0.4, 0)),
    ("leftFoot", "leftLowerLeg", (0, -0.4, 0)),
    ("rightUpperLeg", "hips", (-0.09, -0.05, 0)), ("rightLowerLeg", "rightUpperLeg", (0, -0.4, 0)),
    ("rightFoot", "rightLowerLeg", (0, -0.4, 0)),
)


def png_bytes(width: int, height: int, rgba: tuple[int, int, int, int] = (240, 190, 170, 255)) -> bytes:
    """A PNG of one colour, written with zlib and struct."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\0" + bytes(rgba) * width for _ in range(height))
    ihdr = struct.pack(">2I5B", width, height, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def pack_glb(gltf: dict[str, Any], binary: bytes) -> bytes:
    """A glTF binary: header, JSON chunk (space-padded), BIN chunk (zero-padded)."""
    js = json.dumps(gltf, separators=(",", ":")).encode()
    js += b" " * (-len(js) % 4)
    binary += b"\0" * (-len(binary) % 4)
    total = 12 + 8 + len(js) + (8 + len(binary) if binary else 0)
    out = struct.pack("<4sII", b"glTF", 2, total) + struct.pack("<II", len(js), 0x4E4F534A) + js
    if binary:
        out += struct.pack("<II", len(binary), 0x004E4942) + binary
    return out


def vrm_parts(version: str = "1.0") -> tuple[dict[str, Any], bytes]:
    """The JSON and the BIN chunk of the test model (VRM "1.0" or "0.x")."""
    blobs: list[bytes] = []
    views: list[dict[str, Any]] = []
    accessors: list[dict[str, Any]] = []

    def add_view(data: bytes, target: int | None = None) -> int:
        offset = sum(len(b) for b in blobs)
        pad = -offset % 4
        if pad:
            blobs.append(b"\0" * pad)
            offset += pad
        blobs.append(data)
        views.append({"buffer": 0, "byteOffset": offset, "byteLength": len(data), **({"target": target} if target else {})})
        return len(views) - 1

    def add_accessor(arr: np.ndarray, kind: str, ctype: int, minmax: bool = False) -> int:
        assert arr.dtype == {5126: np.float32, 5123: np.uint16}[ctype]
        view = add_view(arr.tobytes(), 34962 if kind != "SCALAR" else 34963)
        acc: dict[str, Any] = {"bufferView": view, "componentType": ctype, "count": int(arr.shape[0]), "type": kind}
        if minmax:
            acc["min"] = arr.min(axis=0).tolist()
            acc["max"] = arr.max(axis=0).tolist()
        accessors.append(acc)
        return len(accessors) - 1

    # the head: a 0.2 m box around the head bone, 24 vertices (flat faces), 12 triangles
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], np.float32)  # (8, 3)
    faces = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    pos = (np.array([corners[i] for f in faces for i in f], np.float32) * 0.1 + [0, 1.55, 0]).astype(np.float32)  # (24, 3)
    normal = np.repeat(np.array([[-1, 0, 0], [1, 0, 0], [0, -1, 0], [0, 1, 0], [0, 0, -1], [0, 0, 1]], np.float32), 4, axis=0)  # (24, 3)
    uv = np.tile(np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float32), (6, 1))  # (24, 2)
    idx = np.array([[4 * f, 4 * f + 1, 4 * f + 2, 4 * f, 4 * f + 2, 4 * f + 3] for f in range(6)], np.uint16).reshape(-1)  # (36,)
    rng = np.random.default_rng(7)
    attrs = {
        "POSITION": add_accessor(pos, "VEC3", 5126, minmax=True),
        "NORMAL": add_accessor(normal, "VEC3", 5126),
        "TEXCOORD_0": add_accessor(uv, "VEC2", 5126),
    }
    targets = []
    for _ in EXPRESSIONS:
        delta = (rng.standard_normal(pos.shape) * 0.01).astype(np.float32)  # (24, 3)
        targets.append({"POSITION": add_accessor(delta, "VEC3", 5126, minmax=True)})
    indices = add_accessor(idx, "SCALAR", 5123)
    image_view = add_view(png_bytes(2, 2))

    nodes: list[dict[str, Any]] = []
    bone_node: dict[str, int] = {}
    for name, parent, offset in BONES:
        bone_node[name] = len(nodes)
        nodes.append({"name": name, "translation": list(offset)})
        if parent is not None:
            nodes[bone_node[parent]].setdefault("children", []).append(bone_node[name])
    face = len(nodes)
    nodes.append({"name": "Face", "mesh": 0})
    gltf: dict[str, Any] = {
        "asset": {"version": "2.0", "generator": "companion tests"},
        "scene": 0,
        "scenes": [{"nodes": [bone_node["hips"], face]}],
        "nodes": nodes,
        "meshes": [{
            "name": "Face",
            "primitives": [{"attributes": attrs, "indices": indices, "material": 0, "targets": targets}],
            "weights": [0.0] * len(EXPRESSIONS),
            "extras": {"targetNames": list(EXPRESSIONS)},
        }],
        "materials": [{"name": "Skin", "pbrMetallicRoughness": {"baseColorTexture": {"index": 0}, "metallicFactor": 0.0}}],
        "textures": [{"source": 0, "sampler": 0}],
        "samplers": [{"magFilter": 9729, "minFilter": 9729}],
        "images": [{"bufferView": image_view, "mimeType": "image/png"}],
        "accessors": accessors,
        "bufferViews": views,
        "buffers": [{"byteLength": sum(len(b) for b in blobs)}],
    }
    if version == "1.0":
        gltf["extensionsUsed"] = ["VRMC_vrm", "VRMC_materials_mtoon"]
        # MToon, the toon material nearly every VRM uses (three-vrm's MToonNodeMaterial on the page)
        gltf["materials"][0]["extensions"] = {"VRMC_materials_mtoon": {
            "specVersion": "1.0", "shadeColorFactor": [0.8, 0.55, 0.55], "shadingToonyFactor": 0.9,
            "rimLightingMixFactor": 1.0, "outlineWidthMode": "none",
        }}
        gltf["extensions"] = {"VRMC_vrm": {
            "specVersion": "1.0",
            "meta": {"name": "Test Box", "version": "1", "authors": ["companion tests"],
                     "licenseUrl": "https://vrm.dev/licenses/1.0/"},
            "humanoid": {"humanBones": {name: {"node": n} for name, n in bone_node.items()}},
            "lookAt": {"type": "expression", "offsetFromHeadBone": [0, 0.06, 0], **{
                f"rangeMap{k}": {"inputMaxValue": 30.0, "outputScale": 1.0}
                for k in ("HorizontalInner", "HorizontalOuter", "VerticalDown", "VerticalUp")
            }},
            "expressions": {"preset": {
                name: {"morphTargetBinds": [{"node": face, "index": i, "weight": 1.0}]}
                for i, name in enumerate(EXPRESSIONS)
            }},
        }}
    else:
        gltf["extensionsUsed"] = ["VRM"]
        gltf["extensions"] = {"VRM": {
            "specVersion": "0.0",
            "meta": {"title": "Test Box", "version": "1", "author": "companion tests",
                     "allowedUserName": "Everyone", "licenseName": "CC0"},
            "humanoid": {"humanBones": [{"bone": name, "node": n, "useDefaultValues": True} for name, n in bone_node.items()]},
            "firstPerson": {"firstPersonBone": bone_node["head"], "lookAtTypeName": "BlendShape"},
            "blendShapeMaster": {"blendShapeGroups": [
                {"name": V0_PRESETS[name], "presetName": V0_PRESETS[name], "binds": [{"mesh": 0, "index": i, "weight": 100}]}
                for i, name in enumerate(EXPRESSIONS)
            ]},
        }}
    return gltf, b"".join(blobs)


def build_vrm(version: str = "1.0") -> bytes:
    """The test model as a .vrm file's bytes."""
    return pack_glb(*vrm_parts(version))


@pytest.fixture
def vrm_file(tmp_path: Path) -> Path:
    """The VRM 1.0 test model on disk."""
    path = tmp_path / "box.vrm"
    path.write_bytes(build_vrm("1.0"))
    return path
