"""``imgsearch serve``: one warm process answering queries over HTTP, and a page to use it.

The index and the LiteRT encoders load once; each request then costs only encoding and
search. ``POST /api/query`` takes exactly one ``query --batch`` line and answers exactly its
answer line (parsed by ``batch.parse_spec``, so the two cannot drift apart), except that a
query image is never a path from the request: it is base64 bytes (or a ``data:`` URL) or an
indexed item, and files are only ever read for items of the store, and only under the folders
it was made from (``imgsearch.files.roots``).

Live index: every request reads CURRENT (a few microseconds); when ``imgsearch index``
has published a new generation the next request gets a new ``Index`` (sharing the
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
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import anyio
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import ClientDisconnect
from uvicorn.protocols.http.h11_impl import H11Protocol

from imgsearch.api import Index
from imgsearch.errors import UserError
from imgsearch.files.images import ImageError
from imgsearch.files.roots import Roots
from imgsearch.search.batch import BAD_QUERY, parse_spec
from imgsearch.search.searcher import QueryEncoder
from imgsearch.serve.thumbs import Thumbnails, thumb_key
from imgsearch.serve.thumbs import make as make_thumbnail
from imgsearch.store import FeedbackLog, Item, Store

MAX_IMAGE_BYTES = 20 * 1024 * 1024  # an upload larger than this is refused before decoding
MAX_BODY_BYTES = MAX_IMAGE_BYTES * 4 // 3 + 64 * 1024  # the image as base64, plus the rest of the line
# Requests that decode (a query body and its images, a thumbnail) run at most this many at once:
# 30 parallel 26 MB uploads took the server from 0.44 to 3.3 GB. The rest wait their turn, up to
# DECODE_WAIT_S, then get 503. Searching is one at a time anyway (search_lock).
DECODE_SLOTS = 4
DECODE_WAIT_S = 30.0
HEADER_TIMEOUT_S = 5.0  # a client has this long to send its request line and headers
KEEP_ALIVE_S = 5  # an idle keep-alive connection is closed after this
BODY_TIMEOUT_S = 60.0  # the whole body of a request: 20 MB at ~3 Mbit/s
STATIC = Path(__file__).parent / "static"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")
TOKEN_COOKIE = "imgsearch_token"  # set by the page from its #token=... so <img> requests carry it too
SAME_ORIGIN_FETCH = ("same-origin", "none")  # Sec-Fetch-Site values of the page itself, or a typed URL
log = logging.getLogger("imgsearch.serve")


class AsciiJSON(JSONResponse):
    """JSON with every non-ASCII character escaped, as the store writes items.jsonl: a file name
    that is not UTF-8 (its bytes kept as surrogates) is answered as ``\\udcXX``, not a 500."""

    def render(self, content: object) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


@dataclass
class Snapshot:
    """What one request works with: one generation's index, its id lookups and its roots."""

    name: str
    index: Index
    by_id: dict[str, Item]  # ids only: the items endpoint never takes a path
    roots: Roots  # the only folders its files are read from


class LiveIndex:
    """The store's current generation, re-opened between requests when CURRENT changes.

    Opened only through the store's own checks (``Store.current_dir``, ``Store.require``), so a
    CURRENT that names something outside the store is refused here as by every command."""

    def __init__(self, store: Store, encoder: QueryEncoder | None = None, *, log: bool = True) -> None:
        self.store = store
        self.log = FeedbackLog(store) if log else None  # every answered query, for `train --from-log`
        self.search_lock = threading.Lock()  # LiteRT interpreters and the text cache are not thread-safe
        self._swap_lock = threading.Lock()
        self._encoder = encoder  # the first generation's (tests give small ones); then shared
        self._snap: Snapshot | None = None
        self.current()

    def current(self) -> Snapshot:
        name = self._pointer()
        snap = self._snap
        if snap is not None and (name is None or name == snap.name):
            return snap
        with self._swap_lock:
            if self._snap is None or self._snap.name != name:
                self._snap = self._open()
            return self._snap

    def _pointer(self) -> str | None:
        """The generation CURRENT names (None: missing or damaged: keep answering from the old one)."""
        try:
            gen_dir = self.store.current_dir()
        except UserError:
            return None
        return gen_dir.name if gen_dir else None

    def _open(self) -> Snapshot:
        old = self._snap
        try:
            gen = self.store.require()
        except (UserError, OSError):
            if old is None:
                raise
            return old  # caught mid-publish, removed or damaged meanwhile: keep answering from the old one
        encoder = self._encoder if old is None else None
        if old is not None and old.index.generation.manifest["encoders"] == gen.manifest["encoders"]:
            encoder = old.index.encoder  # same models: no reload
        index = Index(gen, encoder)
        roots = Roots.of(gen)
        index.confine(roots.exists)  # a result outside the roots is left out, as a deleted file is
        return Snapshot(gen.dir.name, index, {i.id: i for i in gen.items}, roots)


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def query_spec(body: bytes, snap: Snapshot) -> dict:
    """The request body as a ``--batch`` query whose images name no path from the request."""
    try:
        spec = json.loads(body)
    except RecursionError:
        raise UserError("body is not JSON: nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"body is not JSON: {exc}") from None
    if not isinstance(spec, dict):
        raise UserError("the body must be one JSON object, like a --batch line")
    for key in ("image", "not_image"):
        if key in spec:
            values = spec[key] if isinstance(spec[key], list) else [spec[key]]
            if not all(isinstance(v, str) for v in values):
                raise UserError(f'"{key}" must be a string or a list of strings')
            spec[key] = [_image_source(v, snap, key) for v in values]
    return spec


def _image_source(value: str, snap: Snapshot, key: str) -> str:
    """An indexed item (id or path) → its file; base64 or a data: URL → a checked data: URL."""
    if len(value) < 4096:
        row = snap.index.row_of(value)
        if row is not None:
            path = snap.index.generation.items[row].path
            if not snap.roots.exists(path):  # gone, or outside the roots: the same words for both
                raise UserError(f"{key}: not found")
            return snap.roots.resolve(path)
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
        q = parse_spec(query_spec(body, snap))
        with live.search_lock:
            hits = snap.index.run(q)
            no_exif = snap.index.no_exif  # photos a filter left out for lacking EXIF
        _log(live, snap.index.record(q, hits, "serve"))
        return 200, {"results": [h.to_json() for h in hits], **({"no_exif": no_exif} if no_exif else {})}
    except (*BAD_QUERY, ImageError) as exc:
        return 400, {"error": _one_line(str(exc))}
    except RecursionError:  # a value nested deep enough to pass json.loads but not what reads it
        return 400, {"error": "body is not JSON: nested too deeply"}


def _log(live: LiveIndex, record) -> None:
    """Append to the feedback log; a store that cannot take it (read-only, full disk, a file
    there that is not our log) stops the logging with one warning, never the answers."""
    if live.log is None:
        return
    try:
        live.log.append(record)
    except (UserError, OSError) as exc:
        log.warning("feedback log off: %s", exc)
        live.log = None


def _one_line(message: str) -> str:
    return " ".join(message.split())[:500]


class DecodeGate:
    """At most ``slots`` decoding requests at once (see DECODE_SLOTS); the rest wait, then get 503."""

    def __init__(self, slots: int = DECODE_SLOTS, wait: float = DECODE_WAIT_S) -> None:
        self.limiter = anyio.CapacityLimiter(slots)
        self.wait = wait

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        try:
            with anyio.fail_after(self.wait):
                await self.limiter.acquire()
        except TimeoutError:
            raise HTTPException(503, "server busy: try again in a moment", {"Retry-After": "5"}) from None
        try:
            yield
        finally:
            self.limiter.release()


def create_app(
    store: Store,
    token: str | None = None,
    allowed_hosts: list[str] | None = None,
    *,
    encoder: QueryEncoder | None = None,
    gate: DecodeGate | None = None,
    feedback_log: bool = True,
):
    """The FastAPI app. ``allowed_hosts``: Host headers accepted (default: loopback names without
    a token, which stops DNS-rebinding pages from reading a local server; any with one).
    ``encoder``: the query encoders to use (default: the index's, loaded on first use).
    ``feedback_log``: append every answered query to the store's feedback log (``serve --no-log``)."""
    live = LiveIndex(store, encoder, log=feedback_log)
    thumbs = Thumbnails(store.root / "thumbs")
    gate = gate or DecodeGate()

    async def check_token(request: Request) -> None:
        if token is None:
            return
        given = request.headers.get("authorization", "")
        given = given[7:] if given.lower().startswith("bearer ") else request.cookies.get(TOKEN_COOKIE, "")
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise HTTPException(401, "missing or wrong token (Authorization: Bearer TOKEN)")

    app = FastAPI(
        title="imgsearch", docs_url=None, redoc_url=None, openapi_url=None, default_response_class=AsciiJSON
    )
    app.add_middleware(
        TrustedHostMiddleware, allowed_hosts=allowed_hosts or (["*"] if token else list(LOOPBACK_NAMES))
    )
    api = APIRouter(prefix="/api", dependencies=[Depends(same_origin), Depends(check_token)])

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        # one answer for every missing thing: an unknown id, a gone file, a path outside the roots
        message = "not found" if exc.status_code == 404 else str(exc.detail)
        return AsciiJSON({"error": message}, exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("request %s failed", request.url.path)
        return AsciiJSON({"error": f"internal error: {_one_line(str(exc)) or type(exc).__name__}"}, 500)

    @api.post("/query")
    async def query(request: Request) -> JSONResponse:
        require_json(request)
        async with gate.slot():  # the body too: it is most of the memory an upload costs
            body = await _read_body(request)
            status, answered = await run_in_threadpool(answer, live, body)
        return AsciiJSON(answered, status)

    @api.get("/health")
    def health() -> dict:
        snap = live.current()
        gen = snap.index.generation
        encoders = {role: (spec or {}).get("id") for role, spec in gen.manifest["encoders"].items()}
        return {"status": "ok", "generation": snap.name, "items": gen.count, "encoders": encoders}

    @api.get("/items/{item_id}")
    def item(item_id: str) -> dict:
        return _item(live.current(), item_id).to_json()

    @api.get("/items/{item_id}/thumbnail")
    async def thumbnail(item_id: str, request: Request) -> Response:
        snap = live.current()
        found = _item(snap, item_id)
        if not await run_in_threadpool(snap.roots.exists, found.path):
            raise HTTPException(404)
        key = thumb_key(found)
        headers = {"ETag": f'"{key}"', "Cache-Control": "private, max-age=3600"}
        if request.headers.get("if-none-match") == headers["ETag"]:
            return Response(status_code=304, headers=headers)
        data = await run_in_threadpool(thumbs.get, key)
        if data is None:
            async with gate.slot():
                data = await run_in_threadpool(_make_thumbnail, found, snap.roots)
            await run_in_threadpool(thumbs.put, key, data)
        return Response(data, media_type="image/jpeg", headers=headers)

    app.include_router(api)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/")
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.state.live = live
    return app


async def same_origin(request: Request) -> None:
    """Refuse what another site's page makes a browser send here (form posts, text/plain fetches,
    <img> probes of ids): browsers say where a request comes from in Sec-Fetch-Site and Origin.
    Tools that send neither (curl, scripts) are not browsers driven by a page, and pass."""
    site = request.headers.get("sec-fetch-site")
    origin = request.headers.get("origin")
    if site is not None and site.lower() not in SAME_ORIGIN_FETCH:
        raise HTTPException(403, "cross-site request refused: use the page this server serves")
    if origin is not None and urlsplit(origin).netloc.lower() != request.headers.get("host", "").lower():
        raise HTTPException(403, "cross-site request refused: use the page this server serves")


def require_json(request: Request) -> None:
    """A query is JSON: form and text/plain bodies are what a cross-site page can post without asking."""
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media != "application/json":
        raise HTTPException(415, "send the query as JSON (Content-Type: application/json)")


def _make_thumbnail(found: Item, roots: Roots) -> bytes:
    try:
        return make_thumbnail(found, roots)
    except ImageError:  # not an image, or gone meanwhile: the same answer as any missing thing
        raise HTTPException(404) from None


def _item(snap: Snapshot, item_id: str) -> Item:
    found = snap.by_id.get(item_id)
    if found is None:
        raise HTTPException(404)
    return found


async def _read_body(request: Request) -> bytes:
    too_large = HTTPException(413, f"request larger than {MAX_BODY_BYTES // 2**20} MB")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise too_large
    chunks, size = [], 0
    try:
        with anyio.fail_after(BODY_TIMEOUT_S):
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise too_large
                chunks.append(chunk)
    except TimeoutError:
        raise HTTPException(408, f"request body not received within {BODY_TIMEOUT_S:.0f} s") from None
    except ClientDisconnect:
        client = f"{request.client.host}:{request.client.port}" if request.client else "a client"
        log.warning("imgsearch: %s disconnected before sending its whole request", client)
        raise HTTPException(400, "client disconnected") from None  # nobody reads this answer
    return b"".join(chunks)


class TimedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, plus what it lacks: a client must send its request line and
    headers within HEADER_TIMEOUT_S of connecting or of its previous answer, so connections that
    open and then trickle (or send nothing) are closed instead of held forever."""

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def on_response_complete(self) -> None:
        self._arm_header_timer()  # before the next request can begin (pipelining)
        super().on_response_complete()

    def _arm_header_timer(self) -> None:
        waiting_for = self.cycle  # a new request replaces the cycle
        self.loop.call_later(HEADER_TIMEOUT_S, self._headers_late, waiting_for)

    def _headers_late(self, waiting_for) -> None:
        if self.cycle is waiting_for and not self.transport.is_closing():
            self.transport.close()


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


def start_watch(store: Store, settle: float, stop: threading.Event) -> threading.Thread:
    """``serve --watch``: re-index the index's folder after its changes settle, in a thread beside
    the server, with the encoders the index was made with; each new generation is published as
    by ``imgsearch index`` and answers the next request. A failed round is one warning line."""
    from imgsearch.indexing.watch import watch_folder

    gen = store.require()
    roots = [Path(r) for r in gen.manifest.get("roots") or []]
    if len(roots) != 1 or not roots[0].is_dir():
        raise UserError(
            f"serve --watch: the index was made from {len(roots)} folders, not one; "
            "run `imgsearch index DIR --watch` beside `serve` instead"
        )
    image, text = gen.manifest["encoders"]["image"], gen.manifest["encoders"]["text"]
    options = {"image_encoder": image["name"], "text_encoder": text["name"]}
    options |= {k: image[k] for k in ("runtime", "precision") if image.get(k)}

    def reindex() -> None:
        try:
            Index.build(roots[0], out=store.root, **options)
        except (UserError, OSError) as exc:
            log.warning("serve --watch: %s", exc)

    thread = threading.Thread(
        target=watch_folder, args=(roots[0], store.root, reindex, settle, stop), name="watch", daemon=True
    )
    thread.start()
    return thread


def run(
    store: Store,
    host: str,
    port: int,
    token: str | None,
    *,
    feedback_log: bool = True,
    watch: float | None = None,
) -> None:
    """Serve until Ctrl-C. A host other than loopback needs a token: the index shows your files."""
    import uvicorn

    if not is_loopback(host) and not token:
        raise UserError(f"--host {host} is reachable from other machines: give --token too")
    app = create_app(store, token, feedback_log=feedback_log)
    if watch is not None:
        start_watch(store, watch, threading.Event())
    snap = app.state.live.current()
    snap.index.load_models()  # both encoders now, not on the first request
    sock = bind(host, port)
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    print(f"serving http://{shown}:{sock.getsockname()[1]}", file=sys.stderr, flush=True)
    config = uvicorn.Config(
        app,
        http=TimedH11Protocol,
        log_level="warning",
        access_log=False,
        timeout_keep_alive=KEEP_ALIVE_S,
        timeout_graceful_shutdown=5,
    )
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn shut down cleanly, then re-raised Ctrl-C
        uvicorn.Server(config).run(sockets=[sock])
    print("imgsearch: server stopped", file=sys.stderr)
