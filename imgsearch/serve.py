"""``imgsearch serve``: one warm process answering queries over HTTP, and a page to use it.

The index and the LiteRT encoders load once; each request then costs only encoding and
search. ``POST /api/query`` takes exactly one ``query --batch`` line and answers exactly its
answer line (parsed by ``batch.parse_line``, so the two cannot drift apart), except that a
query image is never a path from the request: it is base64 bytes (or a ``data:`` URL) or an
indexed item, and files are only ever read for items of the store.

Live index: every request reads CURRENT (a few microseconds); when ``imgsearch index``
has published a new generation the next request gets a new ``Searcher`` (sharing the
loaded encoders), while requests in flight finish on the one they started with.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import ipaddress
import json
import logging
import socket
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

from imgsearch.batch import BAD_QUERY, parse_line
from imgsearch.errors import UserError
from imgsearch.images import ImageError
from imgsearch.render import hit_json
from imgsearch.search import Searcher
from imgsearch.store import CURRENT, Item, Store, read_generation

MAX_IMAGE_BYTES = 20 * 1024 * 1024  # an upload larger than this is refused before decoding
MAX_BODY_BYTES = MAX_IMAGE_BYTES * 4 // 3 + 64 * 1024  # the image as base64, plus the rest of the line
STATIC = Path(__file__).parent / "static"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")
TOKEN_COOKIE = "imgsearch_token"  # set by the page from its #token=... so <img> requests carry it too
log = logging.getLogger("imgsearch.serve")


@dataclass
class Snapshot:
    """What one request works with: one generation's searcher and its id lookups."""

    name: str
    searcher: Searcher
    by_id: dict[str, Item]  # ids only: the items endpoint never takes a path


class LiveIndex:
    """The store's current generation, re-opened between requests when CURRENT changes."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.search_lock = threading.Lock()  # LiteRT interpreters and the text cache are not thread-safe
        self._swap_lock = threading.Lock()
        self._snap: Snapshot | None = None
        self.current()

    def current(self) -> Snapshot:
        try:
            name = (self.store.root / CURRENT).read_text().strip()
        except OSError:
            name = None
        snap = self._snap
        if snap is not None and (name is None or name == snap.name):
            return snap
        with self._swap_lock:
            if self._snap is None or self._snap.name != name:
                self._snap = self._open(name)
            return self._snap

    def _open(self, name: str | None) -> Snapshot:
        old = self._snap
        try:
            gen = read_generation(self.store.root / name) if name else self.store.require()
        except (UserError, OSError):
            if old is None:
                raise
            return old  # caught mid-publish or removed meanwhile: keep answering from the old one
        encoder = None
        if old is not None and old.searcher.gen.manifest["encoders"] == gen.manifest["encoders"]:
            encoder = old.searcher.encoder  # same models: no reload
        searcher = Searcher(gen, encoder)
        return Snapshot(gen.dir.name, searcher, {i.id: i for i in gen.items})


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def query_line(body: bytes, snap: Snapshot) -> str:
    """The request body as a ``--batch`` line whose images name no path from the request."""
    try:
        spec = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"body is not JSON: {exc}") from None
    if not isinstance(spec, dict):
        raise UserError("the body must be one JSON object, like a --batch line")
    for key in ("image", "not_image"):
        if key in spec:
            values = spec[key] if isinstance(spec[key], list) else [spec[key]]
            spec[key] = [_image_source(str(v), snap, key) for v in values]
    return json.dumps(spec)


def _image_source(value: str, snap: Snapshot, key: str) -> str:
    """An indexed item (id or path) → its file; base64 or a data: URL → a checked data: URL."""
    if len(value) < 4096:
        row = snap.searcher.item_rows.get(value)
        if row is not None:
            return snap.searcher.gen.items[row].path
    payload = value.partition(",")[2] if value.startswith("data:") else value
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise UserError(f"{key}: give image bytes as base64 (or a data: URL) or an indexed item id") from None
    if not raw:
        raise UserError(f"{key}: empty image")
    if len(raw) > MAX_IMAGE_BYTES:
        raise UserError(f"{key}: image larger than {MAX_IMAGE_BYTES // 2**20} MB")
    return "data:;base64," + payload


def answer(live: LiveIndex, body: bytes) -> tuple[int, dict]:
    """(HTTP status, the --batch answer line without its line number) for one query body."""
    snap = live.current()
    try:
        q = parse_line(query_line(body, snap))
        with live.search_lock:
            hits = snap.searcher.search(q)
        return 200, {"results": [hit_json(h) for h in hits]}
    except (*BAD_QUERY, ImageError) as exc:
        return 400, {"error": _one_line(str(exc))}


def _one_line(message: str) -> str:
    return " ".join(message.split())[:500]


def create_app(store: Store, token: str | None = None, allowed_hosts: list[str] | None = None):
    """The FastAPI app. ``allowed_hosts``: Host headers accepted (default: loopback names without
    a token, which stops DNS-rebinding pages from reading a local server; any with one)."""
    live = LiveIndex(store)
    thumbs_dir = store.root / "thumbs"

    async def check_token(request: Request) -> None:
        if token is None:
            return
        given = request.headers.get("authorization", "")
        given = given[7:] if given.lower().startswith("bearer ") else request.cookies.get(TOKEN_COOKIE, "")
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise HTTPException(401, "missing or wrong token (Authorization: Bearer TOKEN)")

    app = FastAPI(title="imgsearch", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(
        TrustedHostMiddleware, allowed_hosts=allowed_hosts or (["*"] if token else list(LOOPBACK_NAMES))
    )
    api = APIRouter(prefix="/api", dependencies=[Depends(check_token)])

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("request %s failed", request.url.path)
        return JSONResponse({"error": f"internal error: {_one_line(str(exc)) or type(exc).__name__}"}, 500)

    @api.post("/query")
    async def query(request: Request) -> JSONResponse:
        status, body = await run_in_threadpool(answer, live, await _read_body(request))
        return JSONResponse(body, status)

    @api.get("/health")
    def health() -> dict:
        snap = live.current()
        gen = snap.searcher.gen
        encoders = {role: (spec or {}).get("id") for role, spec in gen.manifest["encoders"].items()}
        return {"status": "ok", "generation": snap.name, "items": gen.count, "encoders": encoders}

    @api.get("/items/{item_id}")
    def item(item_id: str) -> dict:
        return _item(live, item_id).to_json()

    @api.get("/items/{item_id}/thumbnail")
    def thumbnail(item_id: str, request: Request) -> Response:
        from imgsearch.thumbs import thumbnail

        found = _item(live, item_id)
        try:
            data, key = thumbnail(found, thumbs_dir)
        except ImageError as exc:
            raise HTTPException(404, f"no thumbnail for {item_id}: {exc}") from None
        headers = {"ETag": f'"{key}"', "Cache-Control": "private, max-age=3600"}
        if request.headers.get("if-none-match") == headers["ETag"]:
            return Response(status_code=304, headers=headers)
        return Response(data, media_type="image/jpeg", headers=headers)

    app.include_router(api)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/")
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.state.live = live
    return app


def _item(live: LiveIndex, item_id: str) -> Item:
    found = live.current().by_id.get(item_id)
    if found is None:
        raise HTTPException(404, f"no item {item_id[:80]!r} in this index")
    return found


async def _read_body(request: Request) -> bytes:
    too_large = HTTPException(413, f"request larger than {MAX_BODY_BYTES // 2**20} MB")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything is printed, so the address shown is real."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # inherited by accepted connections: without it a keep-alive answer written in two parts
    # waited for the client's delayed ACK, 40-60 ms a request (bench/serve_load.py)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def run(store: Store, host: str, port: int, token: str | None) -> None:
    """Serve until Ctrl-C. A host other than loopback needs a token: the index shows your files."""
    import uvicorn

    if not is_loopback(host) and not token:
        raise UserError(f"--host {host} is reachable from other machines: give --token too")
    app = create_app(store, token)
    snap = app.state.live.current()
    snap.searcher.encoder.text()  # load both encoders now, not on the first request
    snap.searcher.encoder.image()
    sock = bind(host, port)
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    print(f"serving http://{shown}:{sock.getsockname()[1]}", file=sys.stderr, flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=5)
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn shut down cleanly, then re-raised Ctrl-C
        uvicorn.Server(config).run(sockets=[sock])
    print("imgsearch: server stopped", file=sys.stderr)
