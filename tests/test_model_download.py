"""`companion model download` against a loopback server serving a small GGUF: progress, resume
after the connection drops, the SHA-256 check, a file that is no GGUF, and the CLI adding it."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from companion.cli import main
from companion.model.download import DownloadError, download, file_name, resolve_url
from companion.model.registry import list_models
from companion.testing import write_tiny_gguf


class _Server(http.server.ThreadingHTTPServer):
    files: dict[str, bytes]
    cut_once: set[str]  # paths whose first full request stops halfway
    requests: list[tuple[str, str | None]]


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        srv = self.server
        rng = self.headers.get("Range")
        srv.requests.append((self.path, rng))
        data = srv.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        start = 0
        if rng and rng.startswith("bytes="):
            start = int(rng[6:].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path in srv.cut_once and not rng:
            srv.cut_once.discard(self.path)
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(2)  # the connection drops halfway
            return
        self.wfile.write(body)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[_Server]:
    gguf = write_tiny_gguf(tmp_path / "src.gguf", name="served").read_bytes()
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.files = {"/models/tiny.gguf": gguf, "/models/flaky.gguf": gguf, "/page.gguf": b"<html>not a model</html>"}
    srv.cut_once = {"/models/flaky.gguf"}
    srv.requests = []
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _url(srv: _Server, path: str) -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}{path}"


def test_download_checks_the_digest_and_reports_progress(server, tmp_path):
    data = server.files["/models/tiny.gguf"]
    seen: list[tuple[int, int | None]] = []
    path = download(_url(server, "/models/tiny.gguf"), tmp_path / "dl", hashlib.sha256(data).hexdigest(),
                    lambda d, t: seen.append((d, t)))  # fmt: skip
    assert path == tmp_path / "dl" / "tiny.gguf" and path.read_bytes() == data
    assert seen[-1] == (len(data), len(data))
    assert not list((tmp_path / "dl").glob("*.part"))


def test_an_interrupted_download_resumes_where_it_stopped(server, tmp_path):
    data = server.files["/models/flaky.gguf"]
    with pytest.raises(DownloadError, match="run the same command again to resume"):
        download(_url(server, "/models/flaky.gguf"), tmp_path / "dl")
    part = tmp_path / "dl" / "flaky.gguf.part"
    assert 0 < part.stat().st_size < len(data)
    kept = part.stat().st_size
    path = download(_url(server, "/models/flaky.gguf"), tmp_path / "dl", hashlib.sha256(data).hexdigest())
    assert path.read_bytes() == data
    assert server.requests[-1] == ("/models/flaky.gguf", f"bytes={kept}-")  # only the rest was asked for


def test_a_wrong_digest_or_a_non_gguf_removes_the_file(server, tmp_path):
    with pytest.raises(DownloadError, match="not the expected"):
        download(_url(server, "/models/tiny.gguf"), tmp_path / "dl", "0" * 64)
    with pytest.raises(DownloadError, match="not a GGUF model"):
        download(_url(server, "/page.gguf"), tmp_path / "dl")
    assert list((tmp_path / "dl").iterdir()) == []
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(_url(server, "/nope.gguf"), tmp_path / "dl")
    with pytest.raises(DownloadError, match="64 hex digits"):
        download(_url(server, "/models/tiny.gguf"), tmp_path / "dl", "abc")


def test_addresses_and_names():
    assert resolve_url("hf://bartowski/Qwen2.5-0.5B-Instruct-GGUF/Qwen2.5-0.5B-Instruct-Q4_K_M.gguf") == (
        "https://huggingface.co/bartowski/Qwen2.5-0.5B-Instruct-GGUF/resolve/main/Qwen2.5-0.5B-Instruct-Q4_K_M.gguf"
    )
    assert "/resolve/v2/" in resolve_url("hf://a/b@v2/c.gguf")
    for bad in ("file:///etc/passwd", "ftp://x/y.gguf", "/tmp/x.gguf"):
        with pytest.raises(DownloadError, match="http"):
            resolve_url(bad)
    assert file_name("http://h/a/..%2F..%2Fevil name.gguf?x=1") == "evil-name.gguf"
    assert file_name("http://h/dl?id=3") == "dl.gguf"


def test_cli_downloads_and_adds_it(server):
    out = CliRunner().invoke(main, ["model", "download", _url(server, "/models/tiny.gguf"), "--name", "tiny-dl"])
    assert out.exit_code == 0, out.output
    assert "added tiny-dl" in out.output
    assert "tiny-dl" in {m.name for m in list_models()}
    again = CliRunner().invoke(main, ["model", "download", _url(server, "/models/tiny.gguf")])
    assert again.exit_code == 1 and "exists already" in again.output
