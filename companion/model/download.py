"""Downloading a GGUF the user asks for (`companion model download URL`): with progress, resume
of an interrupted download, a SHA-256 check, a check that it is a GGUF Companion can read, and
room on the disk checked first. Nothing is fetched unless the user runs this command; the app
itself never touches the network.

`hf://OWNER/REPO/FILE.gguf` (optionally `hf://OWNER/REPO@REVISION/FILE.gguf`) is short for the
file on Hugging Face."""

from __future__ import annotations

import http.client
import os
import re
import shutil
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from companion.errors import ModelError
from companion.model.packaged import file_sha256

CHUNK = 1 << 20
TIMEOUT_S = 30.0
_HF = re.compile(r"^hf://(?P<owner>[\w.-]+)/(?P<repo>[\w.-]+)(?:@(?P<rev>[\w.-]+))?/(?P<file>.+)$")


class DownloadError(ModelError):
    """The download failed; the message says what to do (often: run it again to resume)."""


def resolve_url(url: str) -> str:
    """An http(s) URL for `url` (hf:// expanded); DownloadError for any other scheme."""
    m = _HF.match(url)
    if m:
        rev = m["rev"] or "main"
        path = "/".join(urllib.parse.quote(p) for p in m["file"].split("/"))
        return f"https://huggingface.co/{m['owner']}/{m['repo']}/resolve/{rev}/{path}"
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise DownloadError(f"cannot download {url!r}: give an http(s):// or hf://OWNER/REPO/FILE.gguf address")
    return url


def file_name(url: str) -> str:
    """A safe local file name from the URL's last path segment (ending in .gguf)."""
    last = urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", last).strip(".-") or "model"
    return name if name.lower().endswith(".gguf") else name + ".gguf"


def download(url: str, dest_dir: Path, sha256: str | None = None, progress: Callable[[int, int | None], None] | None = None,
             timeout: float = TIMEOUT_S) -> Path:
    """Fetch `url` into dest_dir (resuming a `.part` left by an interrupted run) and return the
    file. sha256: the expected hex digest (checked before the file gets its name; a mismatch
    removes it). progress(done_bytes, total_bytes_or_None) is called as it goes."""
    real = resolve_url(url)
    dest_dir.mkdir(parents=True, exist_ok=True)
    final = dest_dir / file_name(real)
    if final.exists():
        raise DownloadError(f"{final} exists already: add it with `companion model add {final}`, or delete it first")
    part = final.with_name(final.name + ".part")
    want = sha256.lower().strip() if sha256 else None
    if want is not None and not re.fullmatch(r"[0-9a-f]{64}", want):
        raise DownloadError(f"--sha256 {sha256!r} is not a SHA-256 digest (64 hex digits)")
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(real, headers={"User-Agent": "companion-model-download"})
    if have:
        req.add_header("Range", f"bytes={have}-")
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 - http(s) only, checked above
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the part is already whole
            resp = None
        else:
            raise DownloadError(f"the server refused {real}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(f"cannot reach {real}: {getattr(exc, 'reason', exc)}; check the address and the connection") from None
    if resp is not None:
        with resp:
            resumed = have and resp.status == 206
            if not resumed:
                have = 0  # the server sent the whole file: start over
            length = resp.headers.get("Content-Length")
            total = have + int(length) if length and length.isdigit() else None
            if total is not None:
                free = shutil.disk_usage(dest_dir).free
                if total - have > free:
                    raise DownloadError(f"{final.name} needs {(total - have) / 2**20:,.0f} MiB more and {dest_dir} has "
                                        f"{free / 2**20:,.0f} MiB free: make room, then run it again")
            done = have
            try:
                with open(part, "ab" if resumed else "wb") as out:
                    while block := resp.read(CHUNK):
                        out.write(block)
                        done += len(block)
                        if progress is not None:
                            progress(done, total)
            except (OSError, http.client.HTTPException) as exc:  # connection dropped, disk full
                raise DownloadError(f"the download of {final.name} stopped at {done:,} bytes ({exc}); "
                                    "run the same command again to resume") from None
            if total is not None and done < total:
                raise DownloadError(f"the download of {final.name} stopped at {done:,} of {total:,} bytes; "
                                    "run the same command again to resume")
    if want is not None and (digest := file_sha256(part)) != want:
        part.unlink(missing_ok=True)
        raise DownloadError(f"{final.name} has SHA-256 {digest}, not the expected {want}: the file was removed")
    _check_gguf(part)
    os.replace(part, final)
    return final


def _check_gguf(path: Path) -> None:
    """ModelError (and the file removed) unless it is a GGUF Companion can read."""
    from companion.model.gguf_model import GGUFModel

    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic != b"GGUF":
        path.unlink(missing_ok=True)
        raise DownloadError(f"what was downloaded is not a GGUF model (it starts with {magic!r}): the file was removed")
    try:
        GGUFModel(path)
    except ModelError:
        path.unlink(missing_ok=True)
        raise
