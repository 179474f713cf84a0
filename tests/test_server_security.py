"""The loopback server refuses everything but its own page: secret, Host, Origin, paths,
methods, message floods."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket

import aiohttp
import pytest

from companion.bridge.conversation import WS_HARD_LIMIT
from companion.bridge.http import EXECUTOR_MODULE, resolve_static
from companion.bridge.messages import MAX_MESSAGE_BYTES
from companion.bridge.server import BridgeServer


def run_isolated(coro):
    """asyncio.run on a thread of its own: the session's sync playwright keeps an event loop
    running on the main thread once a browser test has run."""
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result(120)


def request(
    server: BridgeServer, path: str, *, auth: bool = True, method: str = "GET", **headers: str
):
    """A raw request (http.client leaves the path exactly as given). Returns (status, headers, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    hdrs = {"Host": f"127.0.0.1:{server.port}"}
    if auth:
        hdrs["Cookie"] = f"{server.cookie_name}={server.secret}"
    hdrs.update({k.replace("_", "-"): v for k, v in headers.items()})
    conn.request(method, path, headers=hdrs)
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, resp.headers, body


def test_binds_loopback_only(bridge_server):
    assert bridge_server.origin.startswith("http://127.0.0.1:")
    with socket.create_connection(("127.0.0.1", bridge_server.port), timeout=5):
        pass


def test_page_is_served_with_the_secret(bridge_server):
    status, headers, body = request(bridge_server, "/")
    assert status == 200
    assert b'<script type="module" src="app.js">' in body
    assert headers["Cache-Control"] == "no-store"
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert request(bridge_server, "/app.js")[1]["Content-Type"].startswith("text/javascript")


@pytest.mark.parametrize(
    "path",
    ["/", "/app.js", "/bridge-schema.json", "/plan.json", "/config.json", "/model/file", "/bridge"],
)
def test_missing_secret_is_refused(bridge_server, path):
    status, headers, _ = request(bridge_server, path, auth=False)
    assert status == 401
    assert headers["Cache-Control"] == "no-store"  # error answers are hardened too


def test_wrong_secret_is_refused(bridge_server):
    status, _, _ = request(
        bridge_server, "/", auth=False, Cookie=f"{bridge_server.cookie_name}=guess"
    )
    assert status == 401
    status, _, _ = request(bridge_server, "/", auth=False, Authorization="Bearer guess")
    assert status == 401
    # the secret under another port's cookie name does not count either
    status, _, _ = request(
        bridge_server, "/", auth=False, Cookie=f"companion-1={bridge_server.secret}"
    )
    assert status == 401


def test_launch_code_sets_the_cookie_once(bridge_server):
    url = bridge_server.launch_url()
    path = url[len(bridge_server.origin) :]
    status, headers, _ = request(bridge_server, path, auth=False)
    assert status == 303 and headers["Location"] == "/"
    cookie = headers["Set-Cookie"]
    assert cookie.startswith(f"{bridge_server.cookie_name}={bridge_server.secret}")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert request(bridge_server, path, auth=False)[0] == 401  # single use
    assert request(bridge_server, "/launch?code=nope", auth=False)[0] == 401


def test_launch_redirect_stays_on_this_origin(bridge_server):
    code_url = bridge_server.launch_url("//evil.example/")
    status, headers, _ = request(bridge_server, code_url[len(bridge_server.origin) :], auth=False)
    assert status == 303 and headers["Location"] == "/"


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",
        "evil.example:{port}",
        "127.0.0.1",
        "127.0.0.1:1",
        "localhost.evil:{port}",
        "",
    ],
)
def test_foreign_host_is_refused(bridge_server, host):
    # DNS rebinding: a hostile name resolving to 127.0.0.1 still sends its own Host header.
    status, _, _ = request(bridge_server, "/", Host=host.format(port=bridge_server.port))
    assert status == 403


def test_localhost_host_is_accepted(bridge_server):
    assert request(bridge_server, "/", Host=f"localhost:{bridge_server.port}")[0] == 200


@pytest.mark.parametrize(
    "origin", ["http://evil.example", "null", "http://127.0.0.1:1", "https://127.0.0.1:{port}"]
)
def test_foreign_origin_is_refused(bridge_server, origin):
    status, _, _ = request(
        bridge_server, "/bridge-schema.json", Origin=origin.format(port=bridge_server.port)
    )
    assert status == 403


def test_cross_site_fetch_metadata_is_refused(bridge_server):
    assert request(bridge_server, "/", Sec_Fetch_Site="cross-site")[0] == 403
    assert request(bridge_server, "/", Sec_Fetch_Site="same-origin")[0] == 200


@pytest.mark.parametrize(
    "path",
    [
        "/../pyproject.toml",
        "/%2e%2e/pyproject.toml",
        "/..%2fpyproject.toml",
        "/%2e%2e%2f%2e%2e%2fetc/passwd",
        "/shaders/../ui/index.html",
        "/shaders/..%2f..%2fpyproject.toml",
        "/..\\pyproject.toml",
        "/%5c..%5cpyproject.toml",
        "//etc/passwd",
        "/.git/config",
        "/%00index.html",
        "/C:/Windows/win.ini",
        "/__init__.py",
    ],
)
def test_path_traversal_is_refused(bridge_server, path):
    status, _, body = request(bridge_server, path)
    assert status in (400, 403, 404)
    assert b"[build-system]" not in body and b"root:" not in body


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_only_get_is_served(bridge_server, method):
    assert request(bridge_server, "/", method=method)[0] == 405


def test_plan_and_config(bridge_server):
    status, _, body = request(bridge_server, "/plan.json")
    assert status == 200 and json.loads(body) == {"version": 1, "programs": {}}
    config = json.loads(request(bridge_server, "/config.json")[2])
    assert config["protocol_version"] == 1
    has_engine = resolve_static(bridge_server.ui_root, EXECUTOR_MODULE) is not None
    assert config["executor_module"] == (EXECUTOR_MODULE if has_engine else None)
    bridge_server.settings = bridge_server.settings.model_copy(update={"engine": "native"})
    assert json.loads(request(bridge_server, "/config.json")[2])["executor_module"] is None


def test_plan_is_built_for_the_page_adapter(bridge_server):
    asked = []
    bridge_server.plan = lambda features, adapter_info: asked.append((features, adapter_info)) or {}
    assert request(bridge_server, "/plan.json")[0] == 200
    query = "features=shader-f16,subgroups,&vendor=nvidia&architecture=hopper&other=x"
    assert request(bridge_server, f"/plan.json?{query}")[0] == 200
    # the page's subgroup probe: digits only, a few of them
    assert request(bridge_server, "/plan.json?features=subgroups&subgroup-size=32")[0] == 200
    assert request(bridge_server, "/plan.json?features=subgroups&subgroup-size=32;drop")[0] == 200
    assert request(bridge_server, "/plan.json?subgroup-size=1234567")[0] == 200
    assert asked == [
        ([], None),
        (["shader-f16", "subgroups"], {"vendor": "nvidia", "architecture": "hopper"}),
        (["subgroups"], {"subgroup-size": "32"}),
        (["subgroups"], None),
        ([], {"subgroup-size": "1234"}),
    ]


@pytest.mark.parametrize(("value", "want"), [("32", 32), ("4", 4), ("128", 128), ("24", None), ("2", None), ("256", None),
                                             ("1234", None), ("", None), ("x", None), (None, None)])
def test_page_subgroup_size_is_used_only_when_plausible(value, want):
    """What the page reports goes to the plan only as a power of two from 4 to 128."""
    from companion.engines.browser import probed_subgroup_size

    assert probed_subgroup_size(None if value is None else {"subgroup-size": value}) == want


def test_plan_blobs(bridge_server):
    bridge_server.blobs = {"token_embd.repacked": memoryview(b"\x01\x02\x03")}.get
    status, headers, body = request(bridge_server, "/plan/blob/token_embd.repacked")
    assert status == 200 and body == b"\x01\x02\x03"
    assert request(bridge_server, "/plan/blob/nope")[0] == 404
    assert request(bridge_server, "/plan/blob/nope", auth=False)[0] == 401


def test_model_blob_serves_exact_ranges(bridge_server, model_file):
    data = model_file.read_bytes()
    status, headers, body = request(bridge_server, "/model/blob?offset=1000&length=300")
    assert status == 200 and body == data[1000:1300]
    assert headers["Content-Type"] == "application/octet-stream"
    for bad in (
        "offset=-1&length=2",
        f"offset={len(data) - 1}&length=2",
        "offset=0&length=0",
        "offset=x&length=1",
        "length=4",
    ):
        assert request(bridge_server, f"/model/blob?{bad}")[0] in (400, 416)


def test_model_file_honours_http_range(bridge_server, model_file):
    data = model_file.read_bytes()
    status, headers, body = request(bridge_server, "/model/file", Range="bytes=256-511")
    assert status == 206 and body == data[256:512]
    assert headers["Content-Range"] == f"bytes 256-511/{len(data)}"


async def _ws(
    server: BridgeServer, **headers: str
) -> tuple[aiohttp.ClientSession, aiohttp.ClientWebSocketResponse]:
    session = aiohttp.ClientSession()
    hdrs = {"Origin": server.origin, "Cookie": f"{server.cookie_name}={server.secret}"}
    hdrs.update(headers)
    try:
        ws = await session.ws_connect(f"{server.origin}/bridge", headers=hdrs, max_msg_size=0)
    except BaseException:
        await session.close()
        raise
    return session, ws


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Cookie": "companion-0=nope"},
        {"Host": "evil.example"},
    ],
)
def test_websocket_handshake_is_refused(bridge_server, headers):
    async def go():
        with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
            await _ws(bridge_server, **headers)
        return exc.value.status

    assert run_isolated(go()) in (401, 403)


async def _reply(ws: aiohttp.ClientWebSocketResponse) -> dict:
    """The next message that answers one of ours: the avatar's timed changes (blinks, idling,
    getting sleepy) may come in between on a slow machine, and nothing else may."""
    while True:
        message = await ws.receive_json(timeout=10)
        if message["type"] != "avatar_state":
            return message


def test_flood_of_bad_messages_is_answered_and_the_server_keeps_serving(bridge_server):
    bad = [
        "not json", "[]", "{}", '{"type": 1}', '{"type": "nope"}', '{"type": "welcome"}',
        '{"type": "user_message", "text": 5}', "\x00\x01", '{"type": "user_message"' * 50,
    ]  # fmt: skip
    rounds = 60

    async def go():
        session, ws = await _ws(bridge_server)
        async with session:
            await ws.send_str(json.dumps({"type": "hello", "protocol_version": 1}))
            assert (await ws.receive_json())["type"] == "welcome"
            assert (await ws.receive_json())["type"] == "engine_status"
            for _ in range(rounds):
                for raw in bad:
                    await ws.send_str(raw)
                await ws.send_bytes(b"\x00binary")
            # every bad message gets its error back; the avatar's timed changes (idle, sleepy)
            # may arrive among them on a slow machine, and nothing else may
            codes = [
                (await _reply(ws))["code"] for _ in range(rounds * (len(bad) + 1))
            ]
            assert set(codes) <= {"malformed", "unknown_type", "not_allowed", "invalid"}
            # oversized (over the protocol limit, under the socket limit): an error, not a hang-up
            await ws.send_str(
                json.dumps({"type": "user_message", "text": "x" * (MAX_MESSAGE_BYTES + 10)})
            )
            assert (await _reply(ws))["code"] == "too_large"
            await ws.send_str(json.dumps({"type": "ping", "seq": 42}))
            assert await _reply(ws) == {"type": "pong", "seq": 42, "t": 0.0}
            # over the socket limit, the connection closes (1009) ...
            try:
                await ws.send_str("x" * (WS_HARD_LIMIT + 1))
            except ConnectionError:
                pass  # the server hung up before the frame was fully written
            msg = await ws.receive(timeout=10)
            assert msg.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.CLOSING,
                aiohttp.WSMsgType.ERROR,
            )
        # ... and the server still serves new connections and pages
        session, ws = await _ws(bridge_server)
        async with session:
            await ws.send_str(json.dumps({"type": "hello", "protocol_version": 1}))
            assert (await ws.receive_json())["type"] == "welcome"

    run_isolated(go())
    assert request(bridge_server, "/")[0] == 200


def test_messages_before_hello_and_wrong_versions(bridge_server):
    async def go():
        session, ws = await _ws(bridge_server)
        async with session:
            await ws.send_str(json.dumps({"type": "user_message", "text": "hi"}))
            reply = await ws.receive_json()
            assert reply["code"] == "handshake_required" and reply["ref_type"] == "user_message"
            await ws.send_str(json.dumps({"type": "hello", "protocol_version": 99}))
            assert (await ws.receive_json())["code"] == "protocol_version"
            await ws.send_str(json.dumps({"type": "hello", "protocol_version": 1}))
            assert (await ws.receive_json())["type"] == "welcome"

    run_isolated(go())
