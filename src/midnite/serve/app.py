"""The Starlette application of ``midnite serve``: the folder's files, the live page and the API.

Routes: ``GET /api/layers``, ``POST /api/render``, ``GET|DELETE /api/jobs/ID``,
``GET /api/jobs/ID/events`` (server-sent events), ``POST /api/fires``, ``GET /live``, and every
other ``GET`` a file of the folder (``serve.files.resolve``). Renders run in the job manager's
threads and uploads are checked in worker threads, so the event loop only serves.
Every request passes :class:`Guard` first (token, Host and Origin checks).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import html
import json
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import parse_qs, urlencode

import anyio.to_thread
import torch
from starlette.applications import Starlette
from starlette.requests import Request as HTTPRequest
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from midnite.engine import recipes
from midnite.errors import UsageError
from midnite.images import load, shrink
from midnite.jobs import layer_folder, view_names
from midnite.jobs.concepts import RECIPES
from midnite.pages.templating import render as render_page
from midnite.serve.files import content_type, resolve
from midnite.serve.fires import concept_fires, fires
from midnite.serve.jobs import TERMINAL, JobManager, QueueFull
from midnite.serve.requests import BadRequest, layer_name, parse_render

__all__ = ["COOKIE", "MAX_UPLOAD", "Guard", "Live", "create_app"]

COOKIE = "midnite_token"
MAX_UPLOAD = 8 * 2**20  # bytes of one uploaded photo
UPLOADS = 16  # uploaded photos kept for feature accentuation (the oldest dropped first)
UPLOAD_SIDE = 512  # uploads are kept at most this many pixels a side
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": " ".join(message.split())}, status_code=status)


class Live:
    """What the live routes share: the model, its layers, the job manager and the uploads."""

    def __init__(self, manager: JobManager, model: torch.nn.Module, size: int, channels: int):
        self.manager, self.size, self.channels = manager, size, channels
        self.shapes = manager.shapes
        self.fires_model = model  # the manager's threads render on copies of their own
        self.fires_lock = threading.Lock()
        self.uploads: OrderedDict[str, torch.Tensor] = OrderedDict()
        self.folders = {layer_folder(name): name for name in self.shapes}

    def link(self, url_path: str) -> bytes:
        """The live link put into a served page: a unit page's (``<layer>/<unit>.html``) or a
        layer page's link opens the live panel on that layer and unit."""
        parts = [p for p in url_path.split("/") if p]
        query = {}
        if parts and parts[0] in self.folders:
            query["layer"] = self.folders[parts[0]]
            stem = parts[1].removesuffix(".html") if len(parts) == 2 else ""
            if stem.isdigit():
                query["unit"] = str(int(stem))
            concept = stem.removeprefix("concept_")
            views = self._concepts(query["layer"])
            if stem.startswith("concept_") and concept.isdigit() and views:
                query.update(view=views[0]["view"], unit=str(int(concept)))
        href = html.escape("/live" + ("?" + urlencode(query) if query else ""))
        return f'<p class="live-link"><a href="{href}">live renders &#9656;</a></p>\n'.encode()

    def layers(self) -> dict:
        return {
            "model": self.manager.name,
            "size": self.size,
            "views": [v for v in view_names() if v not in self.manager.concepts],
            "recipes": sorted(recipes.RECIPES),
            "limits": {
                "max_steps": self.manager.limits.max_steps,
                "max_size": self.manager.limits.max_size,
                "max_upload": MAX_UPLOAD,
            },
            "layers": [
                {
                    "name": n,
                    "display": n or "(output)",
                    "shape": list(s),
                    "units": s[0],
                    "concepts": self._concepts(n),
                }
                for n, s in self.shapes.items()
            ],
        }

    def _concepts(self, layer: str) -> list[dict]:
        """The concept views of ``layer``: ``[{"view", "recipe", "n"}]``."""
        return [
            {"view": name, "recipe": v.recipe, "n": v.n}
            for name, v in self.manager.concepts.items()
            if v.layer == layer
        ]

    def keep(self, image: torch.Tensor) -> str:
        """Keep an uploaded image for renders started from it; its id."""
        import uuid

        ident = uuid.uuid4().hex[:16]
        self.uploads[ident] = shrink(image, UPLOAD_SIDE)[0]
        while len(self.uploads) > UPLOADS:
            self.uploads.popitem(last=False)
        return ident


async def _body(request: HTTPRequest, cap: int) -> bytes:
    """The request's body, refused (``BadRequest``) past ``cap`` bytes, read or declared."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > cap:
        raise _TooBig(f"the upload must be at most {cap} bytes, got {declared}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise _TooBig(f"the upload must be at most {cap} bytes, got more")
        chunks.append(chunk)
    return b"".join(chunks)


class _TooBig(BadRequest):
    """A body over its cap (HTTP 413)."""


async def api_layers(request: HTTPRequest) -> Response:
    live: Live | None = request.app.state.live
    if live is None:
        return _error(404, "no model: start midnite serve with --model MODEL for live work")
    return JSONResponse(live.layers())


async def api_render(request: HTTPRequest) -> Response:
    live: Live | None = request.app.state.live
    if live is None:
        return _error(404, "no model: start midnite serve with --model MODEL for live work")
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        return _error(415, "POST /api/render needs Content-Type: application/json")
    try:
        raw = await _body(request, 64 * 1024)
        job_request, init = parse_render(
            raw, live.shapes, live.manager.limits, live.size, live.manager.concepts
        )
        if init is not None:
            image = live.uploads.get(init)
            if image is None:
                raise BadRequest(f"init {init!r} is no upload of this server (POST /api/fires)")
            start = await anyio.to_thread.run_sync(_fit, image, job_request.size)
            job_request = _with_init(job_request, start)
        job = live.manager.submit(job_request)
    except QueueFull as err:
        return _error(429, str(err))
    except BadRequest as err:
        return _error(413 if isinstance(err, _TooBig) else 400, str(err))
    return JSONResponse({"job": job.id}, status_code=202)


def _fit(image: torch.Tensor, size: int) -> torch.Tensor:
    from midnite.images import fit

    return fit(image, (size, size))


def _with_init(r, start: torch.Tensor):
    import dataclasses

    return dataclasses.replace(r, init=start, init_penalty=r.init_penalty)


def _job(request: HTTPRequest):
    live: Live | None = request.app.state.live
    if live is None:
        return None, _error(404, "no model: start midnite serve with --model MODEL")
    job = live.manager.get(request.path_params["ident"])
    if job is None:
        return None, _error(404, f"no job {request.path_params['ident']!r}")
    return job, None


async def api_job(request: HTTPRequest) -> Response:
    job, missing = _job(request)
    if missing is not None:
        return missing
    if request.method == "DELETE":
        request.app.state.live.manager.cancel(job.id)
    return JSONResponse(job.to_json())


async def api_events(request: HTTPRequest) -> Response:
    job, missing = _job(request)
    if missing is not None:
        return missing

    async def stream() -> AsyncIterator[str]:
        sent, idle = 0, 0.0
        while True:
            events = job.events
            while sent < len(events):
                kind, data = events[sent]
                sent += 1
                yield f"event: {kind}\ndata: {json.dumps(data)}\n\n"
                idle = 0.0
            if job.state in TERMINAL and sent >= len(job.events):
                return
            await asyncio.sleep(0.1)
            idle += 0.1
            if idle >= 15:  # a comment keeps proxies from closing a quiet stream
                yield ": waiting\n\n"
                idle = 0.0

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


def _check_upload(live: Live, data: bytes, layer: str, top: int) -> dict:
    """The upload decoded and checked (``images.load``), then what fires on it."""
    image = load(data, channels=live.channels)
    shown = _fit(image, live.size)
    views = [(name, v) for name, v in live.manager.concepts.items()
             if v.layer == layer and v.recipe == RECIPES[0]]  # fmt: skip
    with live.fires_lock:
        found = fires(live.fires_model, layer, shown, top)
        concepts = concept_fires(views[0][1].concepts, shown, top) if views else []
    return {
        "upload": live.keep(image),
        "layer": layer,
        "units": found,
        "concepts": concepts,
        "concept_view": views[0][0] if views else None,
    }


async def api_fires(request: HTTPRequest) -> Response:
    live: Live | None = request.app.state.live
    if live is None:
        return _error(404, "no model: start midnite serve with --model MODEL for live work")
    try:
        raw = await _body(request, MAX_UPLOAD + 64 * 1024)
        form = await _form(request, raw)
        upload = form.get("image")
        if upload is None or isinstance(upload, str):
            raise BadRequest("POST /api/fires needs a file field 'image' (a JPEG or PNG photo)")
        data = await upload.read(MAX_UPLOAD + 1)
        if len(data) > MAX_UPLOAD:
            raise _TooBig(f"the photo must be at most {MAX_UPLOAD} bytes, got more")
        layer = layer_name(form.get("layer"), live.shapes)
        top = str(form.get("top") or "12")
        if not top.isdigit() or not 1 <= int(top) <= 64:
            raise BadRequest(f"top must be an integer from 1 to 64, got {top[:20]!r}")
        found = await anyio.to_thread.run_sync(_check_upload, live, data, layer, int(top))
    except BadRequest as err:
        return _error(413 if isinstance(err, _TooBig) else 400, str(err))
    except UsageError as err:  # not an image (UnreadableImageError), a wrong shape
        return _error(400, str(err))
    return JSONResponse(found)


async def _form(request: HTTPRequest, raw: bytes):
    """The multipart form of a body already read (so its size was capped first)."""

    async def receive() -> dict:
        nonlocal raw
        chunk, raw = raw, b""
        return {"type": "http.request", "body": chunk, "more_body": False}

    again = HTTPRequest(request.scope, receive)
    try:
        return await again.form(max_files=1, max_fields=4, max_part_size=1024)
    except Exception as err:  # malformed multipart: Starlette's own error kinds
        raise BadRequest(f"the body must be a multipart form ({type(err).__name__})") from None


async def live_page(request: HTTPRequest) -> Response:
    if request.app.state.live is None:
        return _error(404, "no model: start midnite serve with --model MODEL for live work")
    html = render_page("serve_live.html", title=f"live: {request.app.state.live.manager.name}")
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


async def files(request: HTTPRequest) -> Response:
    root: Path = request.app.state.folder
    path = await anyio.to_thread.run_sync(resolve, root, request.url.path)
    if path is None:
        if request.url.path == "/" and request.app.state.live is not None:
            return await live_page(request)
        return _error(404, f"no file {request.url.path[:200]!r} in the served folder")
    kind = content_type(path)
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}
    if kind.startswith("text/html") and request.app.state.live is not None:
        data = await anyio.to_thread.run_sync(path.read_bytes)
        cut = data.rfind(b"</body>")
        if cut >= 0:
            data = data[:cut] + request.app.state.live.link(request.url.path) + data[cut:]
        return Response(data, media_type=kind, headers=headers)
    return FileResponse(path, media_type=kind, headers=headers)


class Guard:
    """ASGI middleware: the token (when set), the Host (loopback only, against DNS
    rebinding) and the Origin of a non-GET request (against other sites' forms)."""

    def __init__(self, app, token: str | None, loopback: bool):
        self.app, self.token, self.loopback = app, token, loopback

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        refused = self._refused(scope, headers)
        if refused is not None:
            await refused(scope, receive, send)
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        given = (query.get("token") or [""])[0]
        if self.token is None or not given:
            await self.app(scope, receive, send)
            return

        async def with_cookie(message) -> None:  # ?token= once: the page keeps it in a cookie
            if message["type"] == "http.response.start":
                cookie = f"{COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict"
                message["headers"] = [*message["headers"], (b"set-cookie", cookie.encode())]
            await send(message)

        await self.app(scope, receive, with_cookie)

    def _refused(self, scope, headers: dict[str, str]) -> Response | None:
        host = headers.get("host", "")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if self.loopback and name not in LOOPBACK_NAMES:
            return _error(421, f"this server answers only for the loopback address, not {host!r}")
        origin = headers.get("origin")
        same = origin is None or origin in (f"http://{host}", f"https://{host}")
        if scope["method"] not in ("GET", "HEAD") and not same:
            return _error(403, f"requests from another site ({origin!r}) are refused")
        if self.token is not None and not self._authorized(scope, headers):
            return _error(401, "a token is needed: Authorization: Bearer TOKEN, or ?token=TOKEN")
        return None

    def _authorized(self, scope, headers: dict[str, str]) -> bool:
        assert self.token is not None
        given = []
        auth = headers.get("authorization", "")
        if auth.startswith("Bearer "):
            given.append(auth[len("Bearer ") :].strip())
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        given.extend(query.get("token", []))
        cookie = SimpleCookie()
        with contextlib.suppress(Exception):
            cookie.load(headers.get("cookie", ""))
        if COOKIE in cookie:
            given.append(cookie[COOKIE].value)
        want = self.token.encode()
        return any(hmac.compare_digest(g.encode(), want) for g in given)


def create_app(
    folder: str | Path,
    *,
    manager: JobManager | None = None,
    model: torch.nn.Module | None = None,
    size: int = 224,
    channels: int = 3,
    token: str | None = None,
    loopback: bool = True,
) -> Guard:
    """The application serving ``folder`` (live work with ``manager`` and its ``model``).

    ``token``: every request must carry it; ``loopback``: answer only for loopback host
    names. The manager is closed (its jobs cancelled, its threads joined) at shutdown.
    """
    if (manager is None) != (model is None):
        raise UsageError("create_app needs both manager and model for live work, or neither")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if manager is not None:
                await anyio.to_thread.run_sync(manager.close)

    routes = [
        Route("/api/layers", api_layers),
        Route("/api/render", api_render, methods=["POST"]),
        Route("/api/jobs/{ident}", api_job, methods=["GET", "DELETE"]),
        Route("/api/jobs/{ident}/events", api_events),
        Route("/api/fires", api_fires, methods=["POST"]),
        Route("/live", live_page),
        Route("/{path:path}", files, methods=["GET", "HEAD"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.folder = Path(folder)
    app.state.live = None
    if manager is not None and model is not None:
        app.state.live = Live(manager, model, size, channels)
    return Guard(app, token, loopback)
