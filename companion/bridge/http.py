"""The bridge server's HTTP side: who may ask, and what the page may fetch.

It owns the per-launch secret and its one-time launch codes, the checks every request passes
(the WebSocket handshake too), the hardened response headers, the static files of ui/ and
shaders/, /config.json, the plan and its blobs, byte ranges of the GGUF, and the user's VRM
avatar (/avatar/model.vrm; a model dropped onto the page arrives by POST /avatar/model, the one
request that is not a GET). /bridge is routed to the WebSocket handler it is given
(companion.bridge.conversation).

Security (the port is reachable by every local process and by any web page the user visits):
- a per-launch secret: the shell opens `launch_url()`, a one-time code swapped here for an
  HttpOnly SameSite=Strict cookie named after the port; every other request and the WebSocket
  handshake need that cookie (or `Authorization: Bearer <secret>` for Python clients);
- Host must be 127.0.0.1:<port> or localhost:<port> (DNS rebinding), a present Origin must be
  the same origin, and a cross-site Sec-Fetch-Site is refused;
- static paths are resolved inside their folder only; GET/HEAD only, except POST
  /avatar/model, which also needs an Origin of our own, a length and a valid VRM
  (companion.avatar.vrm checks it before it is kept);
- every response carries no-store, a strict CSP and nosniff.
"""

from __future__ import annotations

import asyncio
import hmac
import mimetypes
import os
import secrets
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from companion.avatar.vrm import AVATARS_DIR, MAX_FILE_BYTES, VrmError, accept_upload, check_vrm
from companion.bridge.messages import PROTOCOL_VERSION
from companion.gpu.fit import ModelDoesNotFit
from companion.settings import Settings, home_dir

MAX_BLOB_BYTES = 256 * 1024 * 1024  # one /model/blob answer (a storage binding is <= 128 MiB)
_CHUNK = 4 * 1024 * 1024
EXECUTOR_MODULE = "engine/index.js"  # the page's WebGPU executor, when ui/ ships one
VRM_MODULE = "vrm/three-vrm.js"  # three.js + three-vrm, built by scripts/build_vrm.sh
AVATAR_MODEL = "/avatar/model.vrm"  # the chosen VRM (settings.avatar_model)
AVATAR_UPLOAD = "/avatar/model"  # POST: a VRM dropped onto the page
_ADAPTER_KEYS = ("vendor", "architecture", "device", "description")
_LIMIT_KEYS = ("max-storage-buffer-binding-size", "max-buffer-size")


class PlanHook(Protocol):
    """Builds /plan.json for the page's adapter: its WebGPU `features` and its `adapter_info`
    (vendor, architecture, device, description); companion.engines.browser.PlanAssets.plan_json."""

    def __call__(
        self, features: Sequence[str], adapter_info: dict[str, str] | None
    ) -> dict[str, Any]: ...


BlobHook = Callable[[str], Any]  # blob name -> bytes-like (the plan's builder blobs), or None
ModelPath = Path | Callable[[], Path | None] | None  # the GGUF served by range
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Served(Protocol):
    """What the HTTP side serves. BridgeServer holds it, so the app can set it while it runs."""

    plan: PlanHook | None
    blobs: BlobHook | None
    model_path: ModelPath
    settings: Settings | None  # its `engine` says whether the page loads its executor
    on_settings: Callable[[Settings], None] | None  # keeps a changed avatar_model
    ui_root: Traversable
    shaders_root: Traversable


class HttpLayer:
    """The checks, headers and routes of the server on 127.0.0.1:`port`."""

    def __init__(self, served: Served) -> None:
        self.served = served
        self.port = 0  # set by the server once its socket is bound
        self.secret = secrets.token_urlsafe(32)
        self._launch_codes: set[str] = set()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def cookie_name(self) -> str:
        # Cookies ignore ports: name it after ours so two running apps do not collide.
        return f"companion-{self.port}"

    def launch_url(self, path: str = "/") -> str:
        """A URL that logs one browser in once (the code is single-use) and lands on `path`."""
        code = secrets.token_urlsafe(24)
        self._launch_codes.add(code)
        return f"{self.origin}/launch?code={code}&next={path}"

    def make_app(self, websocket: Handler) -> web.Application:
        """The aiohttp application; `websocket` answers /bridge once the checks passed."""
        app = web.Application(
            middlewares=[self._guard],
            client_max_size=64 * 1024,
            handler_args={"max_field_size": 8190},
        )
        app.on_response_prepare.append(self._on_prepare)
        app.router.add_get("/launch", self._launch)
        app.router.add_get("/bridge", websocket)
        app.router.add_get("/config.json", self._config)
        app.router.add_get("/plan.json", self._plan)
        app.router.add_get("/plan/blob/{name}", self._plan_blob)
        app.router.add_get("/model/file", self._model_file)
        app.router.add_get("/model/blob", self._model_blob)
        app.router.add_get("/shaders/{path:.*}", self._shader)
        app.router.add_get(AVATAR_MODEL, self._avatar_model)
        app.router.add_post(AVATAR_UPLOAD, self._avatar_upload)
        app.router.add_get("/{path:.*}", self._ui)
        return app

    # --- who may ask --------------------------------------------------------------------------

    def _allowed_hosts(self) -> tuple[str, str]:
        return (f"127.0.0.1:{self.port}", f"localhost:{self.port}")

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self._check(request)
        return await handler(request)

    async def _on_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        _harden(response, self.port)

    def _check(self, request: web.Request) -> None:
        upload = request.method == "POST" and request.path == AVATAR_UPLOAD
        if request.method not in ("GET", "HEAD") and not upload:
            raise web.HTTPMethodNotAllowed(request.method, ["GET", "HEAD"], text="GET only")
        if request.headers.get("Host", "") not in self._allowed_hosts():
            raise web.HTTPForbidden(text="wrong Host: open the address Companion printed")
        origin = request.headers.get("Origin")
        if origin is not None and origin not in (f"http://{h}" for h in self._allowed_hosts()):
            raise web.HTTPForbidden(text="cross-origin requests are refused")
        if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
            raise web.HTTPForbidden(text="cross-site requests are refused")
        if upload and origin is None:  # a browser always sends one with a POST
            raise web.HTTPForbidden(text="an upload needs the page's Origin")
        if request.path == "/launch":
            return
        if not self._authorized(request):
            raise web.HTTPUnauthorized(text="not logged in: open the app from Companion")

    def _authorized(self, request: web.Request) -> bool:
        token = request.cookies.get(self.cookie_name, "")
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            token = auth[7:]
        return hmac.compare_digest(token.encode(), self.secret.encode())

    async def _launch(self, request: web.Request) -> web.StreamResponse:
        code = request.query.get("code", "")
        if code not in self._launch_codes:
            raise web.HTTPUnauthorized(text="this launch link was already used or is invalid")
        self._launch_codes.discard(code)
        target = request.query.get("next", "/")
        if not target.startswith("/") or target.startswith("//") or "\\" in target:
            target = "/"
        response = web.Response(status=303, headers={"Location": target})
        response.set_cookie(
            self.cookie_name, self.secret, httponly=True, samesite="Strict", path="/"
        )
        return response

    # --- what the page may fetch --------------------------------------------------------------

    async def _ui(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"] or "index.html"
        return _file_response(self.served.ui_root, path)

    async def _shader(self, request: web.Request) -> web.StreamResponse:
        return _file_response(self.served.shaders_root, request.match_info["path"])

    async def _config(self, request: web.Request) -> web.StreamResponse:
        """What the page needs before its hello: whether to load an executor module."""
        settings = self.served.settings
        wanted = settings is None or settings.engine in ("auto", "browser")
        module = resolve_static(self.served.ui_root, EXECUTOR_MODULE)
        model = settings.avatar_model if settings is not None else None
        return web.json_response(
            {
                "protocol_version": PROTOCOL_VERSION,
                "executor_module": EXECUTOR_MODULE if wanted and module is not None else None,
                # the page draws this VRM instead of the built-in avatar, where it has the bundle
                "vrm_module": VRM_MODULE if resolve_static(self.served.ui_root, VRM_MODULE) else None,
                "avatar_model": AVATAR_MODEL if model is not None else None,
            }
        )

    async def _avatar_model(self, request: web.Request) -> web.StreamResponse:
        """The chosen VRM, checked again (the file may have changed since it was imported)."""
        settings = self.served.settings
        if settings is None or settings.avatar_model is None:
            raise web.HTTPNotFound(text="no VRM model is chosen: the built-in avatar is drawn")
        path = settings.avatar_model
        try:
            await asyncio.get_running_loop().run_in_executor(None, check_vrm, path)
        except VrmError as exc:
            raise web.HTTPUnprocessableEntity(text=str(exc)) from None
        return web.FileResponse(path, headers={"Content-Type": "model/gltf-binary"})

    async def _avatar_upload(self, request: web.Request) -> web.StreamResponse:
        """A VRM dropped onto the page: written under COMPANION_HOME/avatars, checked, then kept
        as settings.avatar_model. Answers JSON: the model's url, title and version, or `error`
        (one line) with 4xx."""
        settings = self.served.settings
        if settings is None:
            raise web.HTTPNotFound(text="this app has no settings to keep an avatar in")
        length = request.content_length
        if length is None:
            raise web.HTTPLengthRequired(text="give the model's Content-Length")
        if length > MAX_FILE_BYTES:
            return web.json_response({"error": f"the model is {length} bytes; at most {MAX_FILE_BYTES} are accepted"}, status=413)
        name = request.query.get("name", "model.vrm")[:200]
        loop = asyncio.get_running_loop()
        folder = home_dir() / AVATARS_DIR
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=".upload-", suffix=".vrm")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                done = 0
                async for chunk in request.content.iter_chunked(_CHUNK):
                    done += len(chunk)
                    if done > length:
                        raise web.HTTPRequestEntityTooLarge(MAX_FILE_BYTES, done, text="more bytes than the Content-Length")
                    await loop.run_in_executor(None, out.write, chunk)
            info = await loop.run_in_executor(None, accept_upload, tmp, name, home_dir())
        except VrmError as exc:
            return web.json_response({"error": str(exc)}, status=422)
        finally:
            tmp.unlink(missing_ok=True)  # accept_upload moved it, or it is not wanted
        new = settings.model_copy(update={"avatar_model": info.path})
        self.served.settings = new
        if self.served.on_settings is not None:
            await loop.run_in_executor(None, self.served.on_settings, new)
        return web.json_response({"url": AVATAR_MODEL, "title": info.title, "version": info.version})

    async def _plan(self, request: web.Request) -> web.StreamResponse:
        hook = self.served.plan
        if hook is None:
            raise web.HTTPNotFound(text="this app provides no plan (no browser engine)")
        # the page's adapter features and info (vendor, architecture, device, description)
        # pick the kernel variants and the matmul layouts
        features = [f for f in request.query.get("features", "").split(",") if f][:64]
        info = {k: request.query[k][:200] for k in _ADAPTER_KEYS if k in request.query}
        for k in _LIMIT_KEYS:  # the model is checked against them before the page loads anything
            if request.query.get(k, "").isdigit():
                info[k] = request.query[k][:20]
        if request.query.get("subgroup-size", "").isdigit():  # the page's subgroup probe
            info["subgroup-size"] = request.query["subgroup-size"][:4]
        try:
            plan = await asyncio.get_running_loop().run_in_executor(None, hook, features, info or None)
        except ModelDoesNotFit as exc:
            return web.json_response({"error": str(exc)}, status=422)
        return web.json_response(plan)

    async def _plan_blob(self, request: web.Request) -> web.StreamResponse:
        """One weight blob the plan names (repacked by the builder, not in the GGUF)."""
        blobs = self.served.blobs
        if blobs is None:
            raise web.HTTPNotFound(text="this app provides no plan blobs (no browser engine)")
        name = request.match_info["name"]
        data = await asyncio.get_running_loop().run_in_executor(None, blobs, name)
        if data is None:
            raise web.HTTPNotFound(text=f"the plan has no blob {name!r}")
        return web.Response(
            body=memoryview(data).cast("B"), content_type="application/octet-stream"
        )

    def _model(self) -> Path:
        model_path = self.served.model_path
        path = model_path() if callable(model_path) else model_path
        if path is None or not Path(path).is_file():
            raise web.HTTPNotFound(text="no model file is loaded")
        return Path(path)

    async def _model_file(self, request: web.Request) -> web.StreamResponse:
        # FileResponse answers `Range: bytes=a-b` with 206 and the exact slice.
        return web.FileResponse(self._model(), headers={"Content-Type": "application/octet-stream"})

    async def _model_blob(self, request: web.Request) -> web.StreamResponse:
        path = self._model()
        try:
            offset = int(request.query["offset"])
            length = int(request.query["length"])
        except (KeyError, ValueError):
            raise web.HTTPBadRequest(text="give integer offset= and length=") from None
        size = path.stat().st_size
        if offset < 0 or length < 1 or length > MAX_BLOB_BYTES or offset + length > size:
            raise web.HTTPRequestRangeNotSatisfiable(
                text=f"range {offset}+{length} is outside the {size}-byte model (max {MAX_BLOB_BYTES})"
            )
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        response.content_length = length
        await response.prepare(request)
        if request.method == "HEAD":
            return response
        loop = asyncio.get_running_loop()
        with path.open("rb") as f:
            done = 0
            while done < length:
                n = min(_CHUNK, length - done)
                chunk = await loop.run_in_executor(None, os.pread, f.fileno(), n, offset + done)
                if not chunk:
                    break
                await response.write(chunk)
                done += len(chunk)
        await response.write_eof()
        return response


# --- static files -----------------------------------------------------------------------------

_TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".html": "text/html",
    ".json": "application/json",
    ".wgsl": "text/plain",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".woff2": "font/woff2",
}


def resolve_static(root: Traversable, rel: str) -> Traversable | None:
    """The file `rel` inside `root`, or None when it is missing or escapes the folder."""
    if not rel or "\\" in rel or "\0" in rel or ":" in rel:
        return None
    parts = rel.split("/")
    if any(p in ("", ".", "..") or p.startswith(".") or p == "__pycache__" for p in parts):
        return None
    node = root.joinpath(*parts)
    if isinstance(node, Path) and isinstance(root, Path):
        try:  # a symlink must not lead out either
            if not node.resolve().is_relative_to(root.resolve()):
                return None
        except OSError:
            return None
    try:
        return node if node.is_file() else None
    except OSError:
        return None


def _file_response(root: Traversable, rel: str) -> web.Response:
    node = resolve_static(root, rel)
    suffix = os.path.splitext(rel)[1].lower()
    if node is None or suffix in (".py", ".pyc"):
        raise web.HTTPNotFound(text="not found")
    ctype = _TYPES.get(suffix) or mimetypes.guess_type(rel)[0] or "application/octet-stream"
    charset = "utf-8" if ctype.startswith("text/") or ctype == "application/json" else None
    return web.Response(body=node.read_bytes(), content_type=ctype, charset=charset)


def _harden(response: web.StreamResponse, port: int) -> None:
    h = response.headers
    h["Cache-Control"] = "no-store"
    h["X-Content-Type-Options"] = "nosniff"
    h["Referrer-Policy"] = "no-referrer"
    h["X-Frame-Options"] = "DENY"
    h["Cross-Origin-Opener-Policy"] = "same-origin"
    h["Cross-Origin-Resource-Policy"] = "same-origin"
    h["Content-Security-Policy"] = (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        f"connect-src 'self' ws://127.0.0.1:{port} ws://localhost:{port}; "
        "worker-src 'self' blob:; font-src 'self'; manifest-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
