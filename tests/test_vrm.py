"""VRM models in the core: the test model made in tests/conftest_vrm.py passes the checks of
companion.avatar.vrm, hostile and broken variants each get one line saying what is wrong, `companion
avatar import` copies a good one into COMPANION_HOME and keeps it in settings, and the loopback
server serves it (and takes a dropped one) behind the same checks as everything else."""

from __future__ import annotations

import http.client
import json
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest_vrm import build_vrm, pack_glb, png_bytes, vrm_parts

from companion.avatar.vrm import MAX_COUNTS, VrmError, check_vrm, import_vrm
from companion.bridge.server import BridgeServer
from companion.cli import main
from companion.settings import Settings

# --- the checks --------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.0", "0.x"])
def test_the_generated_model_is_accepted(tmp_path, version):
    path = tmp_path / "box.vrm"
    path.write_bytes(build_vrm(version))
    info = check_vrm(path)
    assert (info.version, info.title, info.meshes, info.images) == (version, "Test Box", 1, 1)
    assert info.size == path.stat().st_size


def _json_edit(edit: Callable[[dict[str, Any]], None]) -> bytes:
    gltf, binary = vrm_parts()
    edit(gltf)
    return pack_glb(gltf, binary)


def _huge_png() -> bytes:
    """The model with its 2x2 PNG's header claiming 46341x46341 pixels (8 GiB decoded)."""
    data = bytearray(build_vrm())
    at = data.find(png_bytes(2, 2)[:24])
    struct.pack_into(">2I", data, at + 16, 46341, 46341)
    return bytes(data)


def _set_header(offset: int, value: int) -> bytes:
    data = bytearray(build_vrm())
    struct.pack_into("<I", data, offset, value)
    return bytes(data)


def _raw_json(raw: bytes) -> bytes:
    """A glTF binary whose JSON chunk is `raw` (length a multiple of 4)."""
    return struct.pack("<4sII", b"glTF", 2, 20 + len(raw)) + struct.pack("<II", len(raw), 0x4E4F534A) + raw


def _image_view(length: int) -> Callable[[dict[str, Any]], None]:
    def edit(g: dict[str, Any]) -> None:
        g["bufferViews"][g["images"][0]["bufferView"]]["byteLength"] = length

    return edit


HOSTILE: dict[str, tuple[Callable[[], bytes], str]] = {
    "empty": (lambda: b"", "is not a VRM file"),
    "wrong magic": (lambda: b"PK\x03\x04" + build_vrm()[4:], "does not start with 'glTF'"),
    "a GLB of glTF 1": (lambda: _set_header(4, 1), "is glTF version 1"),
    "truncated": (lambda: build_vrm()[:-100], "is truncated: its header says"),
    "cut inside the header": (lambda: build_vrm()[:15], "is truncated"),
    "trailing bytes": (lambda: _set_header(8, len(build_vrm()) - 8), "bytes after the end its header states"),
    "JSON chunk longer than the file": (lambda: _set_header(12, 1 << 30), "its JSON chunk claims"),
    "JSON that is not JSON": (lambda: _raw_json(b"{not json}  "), "JSON chunk cannot be read"),
    "JSON that is a list": (lambda: _raw_json(b"[1, 2, 3]   "), "is not a glTF object"),
    "no VRM extension": (lambda: _json_edit(lambda g: (g.pop("extensions"), g.pop("extensionsUsed"))), "without the VRM extension"),
    "a VRM without humanoid bones": (
        lambda: _json_edit(lambda g: g["extensions"]["VRMC_vrm"].pop("humanoid")), "has no humanoid bones"),
    "a million accessors": (
        lambda: _json_edit(lambda g: g.update(accessors=g["accessors"] * (MAX_COUNTS["accessors"] // len(g["accessors"]) + 1))),
        "accessors; at most 100000"),
    "absurd accessor count": (
        lambda: _json_edit(lambda g: g["accessors"][0].update(count=2**31)), "claims 2147483648 elements"),
    "a sparse accessor past its view": (
        lambda: _json_edit(lambda g: g["accessors"][3].update(sparse={
            "count": 24, "indices": {"bufferView": 0, "componentType": 5123, "byteOffset": 280},
            "values": {"bufferView": 1}})), "accessor 3's sparse part claims 24 elements beyond its bufferView"),
    "absurd morph targets": (
        lambda: _json_edit(lambda g: g["meshes"][0]["primitives"][0].update(targets=[{}] * 5000)), "morph targets"),
    "a 2 GB image bufferView": (lambda: _json_edit(_image_view(2**31)), "claims bytes 5160..2147488808 of a 5234-byte buffer"),
    "an image claiming 46341x46341 pixels": (_huge_png, "image 0 claims 46341x46341 pixels (8.0 GiB decoded)"),
    "buffer longer than the BIN chunk": (
        lambda: _json_edit(lambda g: g["buffers"][0].update(byteLength=2**31)), "buffer 0 claims 2147483648 bytes"),
    "an outside file": (
        lambda: _json_edit(lambda g: g["buffers"].append({"uri": "../../etc/passwd", "byteLength": 4})), "refers to a separate file"),
    "a node cycle": (lambda: _json_edit(lambda g: g["nodes"][4].setdefault("children", []).append(0)), "cycle"),
    "a node index out of range": (lambda: _json_edit(lambda g: g["scenes"][0]["nodes"].append(10**6)), "names node 1000000"),
}


@pytest.mark.parametrize("case", HOSTILE, ids=list(HOSTILE))
def test_hostile_and_broken_files_are_refused_in_one_line(tmp_path, case):
    make, words = HOSTILE[case]
    path = tmp_path / "evil.vrm"
    path.write_bytes(make())
    with pytest.raises(VrmError) as exc:
        check_vrm(path)
    message = str(exc.value)
    assert words in message
    assert message.startswith("evil.vrm") or "evil.vrm" in message
    assert "\n" not in message and len(message) < 300


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(VrmError, match="does not exist"):
        check_vrm(tmp_path / "nope.vrm")
    with pytest.raises(VrmError, match="is not a file"):
        check_vrm(tmp_path)


def test_a_huge_png_inside_a_data_uri_buffer_is_left_to_the_page(tmp_path):
    """Only the BIN chunk's images are sniffed; a data: buffer's length was checked."""
    gltf, binary = vrm_parts()
    gltf["buffers"].append({"uri": "data:application/octet-stream;base64,AAAA", "byteLength": 3})
    path = tmp_path / "ok.vrm"
    path.write_bytes(pack_glb(gltf, binary))
    assert check_vrm(path).version == "1.0"


# --- import ------------------------------------------------------------------------------------


def test_cli_import_copies_the_model_and_keeps_it_in_settings(companion_home, vrm_file):
    res = CliRunner().invoke(main, ["avatar", "import", str(vrm_file)])
    assert res.exit_code == 0, res.output
    kept = companion_home / "avatars" / "box.vrm"
    assert kept.read_bytes() == vrm_file.read_bytes()
    assert "imported VRM 1.0 model (Test Box)" in res.output
    assert Settings.load().avatar_model == kept
    saved = json.loads((companion_home / "settings.json").read_text())
    assert saved == {"avatar_model": str(kept)}
    # and back to the built-in avatar; the file stays
    res = CliRunner().invoke(main, ["avatar", "builtin"])
    assert res.exit_code == 0, res.output
    assert Settings.load().avatar_model is None and kept.is_file()


def test_cli_import_refuses_a_hostile_model_in_one_line(companion_home, tmp_path):
    evil = tmp_path / "evil.vrm"
    evil.write_bytes(_huge_png())
    res = CliRunner().invoke(main, ["avatar", "import", str(evil)])
    assert res.exit_code == 1
    lines = res.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("Error: evil.vrm: image 0 claims 46341x46341 pixels")
    assert lines[0].endswith("(the built-in avatar stays)")
    assert Settings.load().avatar_model is None
    assert not list((companion_home / "avatars").glob("*"))  # no half copy left behind


def test_import_twice_replaces_and_keeps_no_temporary_files(companion_home, vrm_file):
    import_vrm(vrm_file, companion_home)
    info = import_vrm(vrm_file, companion_home)
    assert [p.name for p in (companion_home / "avatars").iterdir()] == ["box.vrm"]
    assert info.path == companion_home / "avatars" / "box.vrm"


def test_the_setting_comes_from_the_environment(monkeypatch, vrm_file):
    monkeypatch.setenv("COMPANION_AVATAR_MODEL", str(vrm_file))
    assert Settings.load().avatar_model == vrm_file


# --- the loopback server -----------------------------------------------------------------------


@pytest.fixture
def vrm_server(fake_chat, vrm_file) -> Iterator[BridgeServer]:
    saved: list[Settings] = []
    server = BridgeServer(fake_chat, settings=Settings(avatar_model=vrm_file), on_settings=saved.append)
    server.saved_settings = saved  # type: ignore[attr-defined]
    server.start()
    try:
        yield server
    finally:
        server.stop()


def request(server: BridgeServer, path: str, *, method: str = "GET", body: bytes | None = None,
            auth: bool = True, **headers: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
    hdrs = {"Host": f"127.0.0.1:{server.port}"}
    if auth:
        hdrs["Cookie"] = f"{server.cookie_name}={server.secret}"
    hdrs.update({k.replace("_", "-"): v for k, v in headers.items()})
    conn.request(method, path, body=body, headers=hdrs)
    resp = conn.getresponse()
    out = resp.status, resp.read()
    conn.close()
    return out


def test_the_model_is_served_to_the_page_only(vrm_server, vrm_file):
    status, body = request(vrm_server, "/avatar/model.vrm")
    assert status == 200 and body == vrm_file.read_bytes()
    assert request(vrm_server, "/avatar/model.vrm", auth=False)[0] == 401
    assert request(vrm_server, "/avatar/model.vrm", Origin="http://evil.example")[0] == 403
    config = json.loads(request(vrm_server, "/config.json")[1])
    assert config["avatar_model"] == "/avatar/model.vrm"


def test_a_model_damaged_after_import_is_not_served(vrm_server, vrm_file):
    vrm_file.write_bytes(build_vrm()[:-64])
    status, body = request(vrm_server, "/avatar/model.vrm")
    assert status == 422
    assert body.decode().startswith("box.vrm is truncated")


def test_no_model_chosen(bridge_server):
    assert request(bridge_server, "/avatar/model.vrm")[0] == 404
    assert json.loads(request(bridge_server, "/config.json")[1])["avatar_model"] is None


def _upload(server: BridgeServer, data: bytes, name: str = "up.vrm", **headers: str) -> tuple[int, bytes]:
    hdrs = {"Origin": server.origin, "Content-Type": "application/octet-stream", **headers}
    return request(server, f"/avatar/model?name={name}", method="POST", body=data, **hdrs)


def test_an_upload_is_checked_then_kept(vrm_server, companion_home):
    status, body = _upload(vrm_server, build_vrm("0.x"), name="Dropped%20One.vrm")
    assert status == 200, body
    assert json.loads(body) == {"url": "/avatar/model.vrm", "title": "Test Box", "version": "0.x"}
    kept = companion_home / "avatars" / "Dropped_One.vrm"
    assert kept.read_bytes() == build_vrm("0.x")
    assert vrm_server.settings.avatar_model == kept
    assert vrm_server.saved_settings[-1].avatar_model == kept  # type: ignore[attr-defined]
    assert request(vrm_server, "/avatar/model.vrm")[1] == build_vrm("0.x")


def test_a_hostile_upload_is_refused_and_nothing_is_kept(vrm_server, companion_home, vrm_file):
    status, body = _upload(vrm_server, _huge_png(), name="huge.vrm")
    assert status == 422
    assert json.loads(body)["error"].startswith("huge.vrm: image 0 claims 46341x46341 pixels")
    assert not list((companion_home / "avatars").iterdir())
    assert vrm_server.settings.avatar_model == vrm_file
    assert vrm_server.saved_settings == []  # type: ignore[attr-defined]


def test_upload_needs_the_secret_our_origin_and_a_length(vrm_server):
    data = build_vrm()
    assert request(vrm_server, "/avatar/model", method="POST", body=data, auth=False, Origin=vrm_server.origin)[0] == 401
    assert _upload(vrm_server, data, Origin="http://evil.example")[0] == 403
    assert request(vrm_server, "/avatar/model", method="POST", body=data)[0] == 403  # no Origin
    assert _upload(vrm_server, data, Sec_Fetch_Site="cross-site")[0] == 403
    assert _upload(vrm_server, data, Content_Length=str(2**31))[0] == 413
    # POST stays refused everywhere else
    for path in ("/", "/avatar/model.vrm", "/config.json", "/avatar/model/x"):
        assert request(vrm_server, path, method="POST", body=b"x", Origin=vrm_server.origin)[0] in (404, 405)
