"""`serve`, `query --sheet` and `--preview` read only under the indexed roots, and a hostile client
gets one-line 4xx answers, never a 500 (issue 23, item 4 and the serve extras of the probe).

Small numpy encoders stand in for the models (``fakes.py``): the index is built once, then each
Hypothesis example copies the store and rewrites only what it crafts (items naming paths outside
the roots, CURRENT naming a generation outside the store), so 25 examples run on every ``make
test`` and ``HYPOTHESIS_PROFILE=ci`` runs 200.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import run_cli
from fakes import TinyImageEncoder, TinyTextEncoder, write_image
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

pytest.importorskip("fastapi", reason="serve needs fastapi (a runtime dependency)")
from fastapi.testclient import TestClient

from imgsearch.cli.preview import preview, write_sheet
from imgsearch.embed.job import EmbedOptions
from imgsearch.errors import UserError
from imgsearch.files.roots import Roots, covering_roots
from imgsearch.indexing.build import index_folder
from imgsearch.search.batch import KEYS
from imgsearch.search.searcher import QueryEncoder
from imgsearch.serve import app as serve
from imgsearch.store import Item, Store, read_generation

# 200 examples under HYPOTHESIS_PROFILE=ci (set by .ci/run), else 25: set per test rather than as a
# global profile, which would replace test_index_life's own (its stateful step counts)
EXAMPLES = 200 if os.environ.get("HYPOTHESIS_PROFILE") == "ci" else 25
examples = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

IMAGES = 8
NOT_FOUND = b'{"error":"not found"}'
SECRET_RGB = (255, 0, 255)


def tiny_encoder(store: Store) -> QueryEncoder:
    return QueryEncoder(store.require().manifest, TinyImageEncoder(), TinyTextEncoder())


def app_client(store: Store, **kw) -> TestClient:
    app = serve.create_app(store, encoder=tiny_encoder(store), **kw)
    return TestClient(app, base_url="http://127.0.0.1")


def post(client: TestClient, body, **headers) -> tuple[int, dict]:
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    r = client.post("/api/query", content=data, headers={"Content-Type": "application/json", **headers})
    return r.status_code, r.json()


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> SimpleNamespace:
    """A folder of small images indexed once; beside it (its name starts with the folder's, so a
    plain prefix test would let it in) a secret image and a generation that points at it."""
    base = tmp_path_factory.mktemp("confined")
    folder = base / "photos"
    folder.mkdir()
    for seed in range(IMAGES):
        write_image(folder / f"img-{seed}.png", seed, size=(32, 24))
    index_folder(folder, EmbedOptions(), image=TinyImageEncoder(), text=TinyTextEncoder())
    outside = base / "photos-outside"
    outside.mkdir()
    Image.new("RGB", (64, 64), SECRET_RGB).save(outside / "secret.png")
    gen = Store(folder / ".imgsearch").require()
    evil = outside / "gen-000007"  # a generation of its own, whose manifest lets the secret in
    shutil.copytree(gen.dir, evil)
    items = [Item(f"e{n:015d}", str(outside / "secret.png"), 1, 1.0) for n in range(gen.count)]
    write_items(evil, items, roots=[str(outside)])
    assert Roots.of(read_generation(evil)).exists(str(outside / "secret.png"))  # it would be served
    return SimpleNamespace(
        base=base, folder=folder, outside=outside, secret=outside / "secret.png", evil=evil
    )


def write_items(gen_dir: Path, items: list[Item], roots: list[str] | None = None) -> None:
    """Rewrite a generation's items (and their line offsets; the manifest's roots if given)."""
    lines = [(json.dumps(i.to_json()) + "\n").encode("ascii") for i in items]
    (gen_dir / "items.jsonl").write_bytes(b"".join(lines))
    np.save(gen_dir / "items.idx.npy", np.cumsum([0] + [len(line) for line in lines]).astype(np.int64))
    if roots is not None:
        manifest = json.loads((gen_dir / "manifest.json").read_text())
        manifest["roots"] = roots
        (gen_dir / "manifest.json").write_text(json.dumps(manifest))


# How an item can name the secret from inside a store: each way builds its path (and any link
# it needs inside the indexed folder, under ``links``).
def _absolute(w, links: Path, n: int) -> str:
    return str(w.secret)


def _dotdot(w, links: Path, n: int) -> str:
    return str(w.folder) + "/sub" * n + "/.." * (n + 1) + f"/{w.outside.name}/secret.png"


def _relative(w, links: Path, n: int) -> str:
    return os.path.relpath(w.secret)


def _link_to_file(w, links: Path, n: int) -> str:
    (links / f"link-{n}.png").symlink_to(w.secret)
    return str(links / f"link-{n}.png")


def _link_to_folder(w, links: Path, n: int) -> str:
    (links / f"dir-{n}").symlink_to(w.outside, target_is_directory=True)
    return str(links / f"dir-{n}" / "secret.png")


def _link_to_link(w, links: Path, n: int) -> str:
    (links / f"hop-{n}").symlink_to(w.secret)
    (links / f"chain-{n}.png").symlink_to(links / f"hop-{n}")
    return str(links / f"chain-{n}.png")


ESCAPES = [_absolute, _dotdot, _relative, _link_to_file, _link_to_folder, _link_to_link]


def _current_dotdot(w, store: Path) -> None:
    (store / "CURRENT").write_text(f"../../{w.outside.name}/{w.evil.name}\n")


def _current_absolute(w, store: Path) -> None:
    (store / "CURRENT").write_text(f"{w.evil}\n")


def _current_linked_generation(w, store: Path) -> None:
    (store / "gen-000009").symlink_to(w.evil, target_is_directory=True)
    (store / "CURRENT").write_text("gen-000009\n")


CURRENTS = [_current_dotdot, _current_absolute, _current_linked_generation]


@examples
@given(
    escapes=st.lists(st.tuples(st.sampled_from(ESCAPES), st.integers(0, 3)), min_size=1, max_size=3),
    current=st.sampled_from(CURRENTS),
)
def test_no_byte_outside_the_roots_is_served_or_drawn(world, escapes, current):
    work = Path(tempfile.mkdtemp(dir=world.base))
    links = Path(tempfile.mkdtemp(dir=world.folder, prefix="links-"))  # inside the indexed folder
    try:
        store_dir = work / "store"
        shutil.copytree(world.folder / ".imgsearch", store_dir, symlinks=True)
        store = Store(store_dir)
        gen = store.require()
        items = list(gen.items)
        crafted, twins = [], []
        for n, (escape, depth) in enumerate(escapes):
            path = escape(world, links, n * 4 + depth)
            # its twin: a file of the same name that is simply missing, inside the folder
            twin_path = str(links / "gone" / os.path.basename(path))
            crafted.append(Item(items[2 * n].id, path, 1, 1.0))
            twins.append(Item(items[2 * n + 1].id, twin_path, 1, 1.0))
            items[2 * n], items[2 * n + 1] = crafted[-1], twins[-1]
        write_items(gen.dir, items)
        legit = items[-1]
        client = app_client(store)
        served = []  # every answer body: none may hold a byte of the secret file

        for bad, twin in zip(crafted, twins, strict=True):
            got, want = (client.get(f"/api/items/{i.id}/thumbnail") for i in (bad, twin))
            assert (got.status_code, got.content) == (want.status_code, want.content) == (404, NOT_FOUND)
            served += [got.content, client.get(f"/api/items/{bad.id}").content]
            for key in ("image", "not_image"):
                got, want = (post(client, {key: i.id, "like": legit.id}) for i in (bad, twin))
                assert got == want == (400, {"error": f"{key}: not found"})
            status, answer = post(client, {"like": bad.id, "k": IMAGES})
            assert status == 200 and answer["results"]
            shown = {r["path"] for r in answer["results"]}
            assert not shown & {i.path for i in crafted + twins}  # left out, as deleted files are
        r = client.get(f"/api/items/{legit.id}/thumbnail")
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"  # the roots do let in

        roots = Roots.of(store.require())
        assert sheet_pixels(crafted, roots, work / "a.png") == sheet_pixels(twins, roots, work / "b.png")
        pictures = [preview(as_hits(found), "kitty", roots).splitlines()[0::2] for found in (crafted, twins)]
        assert pictures[0] == pictures[1] == ["[image unavailable]"] * len(crafted)

        current(world, store_dir)
        health = client.get("/api/health").json()
        assert health["generation"] == gen.dir.name  # the live index did not follow it
        r = client.get("/api/items/e000000000000000/thumbnail")
        assert (r.status_code, r.content) == (404, NOT_FOUND)
        with pytest.raises(UserError):
            serve.create_app(store, encoder=tiny_encoder(Store(world.folder / ".imgsearch")))
        secret = world.secret.read_bytes()
        assert not any(secret in body for body in [*served, r.content])
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(links, ignore_errors=True)


def as_hits(items: list[Item]) -> list:
    return [SimpleNamespace(rank=n + 1, score=1.0, item=item) for n, item in enumerate(items)]


def sheet_pixels(items: list[Item], roots: Roots, out: Path) -> bytes:
    write_sheet(as_hits(items), out, roots)
    with Image.open(out) as img:
        return img.convert("RGB").tobytes()


def test_sheet_and_preview_draw_files_inside_the_roots(world, tmp_path):
    gen = Store(world.folder / ".imgsearch").require()
    roots = Roots.of(gen)
    out = preview(as_hits(list(gen.items)[:2]), "kitty", roots)
    assert out.count("\x1b_Ga=T") == 2 and "unavailable" not in out
    drawn, refused = (sheet_pixels(list(gen.items)[:2], r, tmp_path / "s.png") for r in (roots, Roots([])))
    assert drawn != refused


def test_manifest_roots_cover_every_item_and_nest_none(tmp_path):
    folder = tmp_path / "photos"
    for n in range(25):  # more folders than the 20 the manifest used to keep
        (folder / f"album-{n:02d}").mkdir(parents=True)
        write_image(folder / f"album-{n:02d}" / "a.png", n)
    index_folder(folder, EmbedOptions(), image=TinyImageEncoder(), text=TinyTextEncoder())
    gen = Store(folder / ".imgsearch").require()
    roots = Roots.of(gen)
    assert all(roots.exists(item.path) for item in gen.items) and gen.count == 25
    paths = [f"/p/{'/'.join(map(str, range(n % 7)))}/f{n}.jpg" for n in range(60)] + [
        "/q-x/a.jpg",
        "/q/b/c.jpg",
    ]
    roots = covering_roots(paths)
    assert roots == ["/p", "/q-x", "/q/b"]  # more than 20 folders, none lost; /q-x is not inside /q


@pytest.fixture(scope="module")
def odd_world(tmp_path_factory) -> SimpleNamespace:
    """A folder whose file names are not all UTF-8, indexed with the small encoders."""
    folder = tmp_path_factory.mktemp("odd") / "photos"
    folder.mkdir()
    odd = os.fsdecode(os.fsencode(str(folder)) + b"/caf\xe9-\xff.png")
    write_image(Path(odd), 1)
    write_image(folder / "plain.png", 2)
    index_folder(folder, EmbedOptions(), image=TinyImageEncoder(), text=TinyTextEncoder())
    return SimpleNamespace(folder=folder, store=Store(folder / ".imgsearch"), odd=odd)


def test_a_file_name_that_is_not_utf8_is_served(odd_world):
    client = app_client(odd_world.store)
    item = next(i for i in odd_world.store.require().items if i.path == odd_world.odd)
    r = client.get(f"/api/items/{item.id}")
    assert r.status_code == 200 and os.fsencode(r.json()["path"]).endswith(b"/caf\xe9-\xff.png")
    assert client.get(f"/api/items/{item.id}/thumbnail").status_code == 200
    status, answer = post(client, {"like": item.id, "k": 2})
    assert status == 200 and odd_world.odd in [r["path"] for r in answer["results"]]
    status, answer = post(client, {"image": item.id, "k": 2})
    assert status == 200 and len(answer["results"]) == 2


def test_thumbnails_when_the_store_cannot_be_written(odd_world, tmp_path):
    # running as root, permission bits do not stop writes: a file where the cache folder would go does
    store_dir = tmp_path / "store"
    shutil.copytree(odd_world.store.root, store_dir)
    shutil.rmtree(store_dir / "thumbs", ignore_errors=True)
    (store_dir / "thumbs").write_bytes(b"")
    client = app_client(Store(store_dir))
    for item in Store(store_dir).require().items:
        for _ in range(2):  # made, then from memory
            r = client.get(f"/api/items/{item.id}/thumbnail")
            assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
            assert Image.open(io.BytesIO(r.content)).format == "JPEG"


@pytest.fixture(scope="module")
def client(world) -> TestClient:
    return app_client(Store(world.folder / ".imgsearch"))


@pytest.fixture(scope="module")
def item_id(world) -> str:
    return Store(world.folder / ".imgsearch").require().items[0].id


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
        "",
    ],
)
def test_only_json_bodies_are_queries(client, item_id, content_type):
    body = json.dumps({"like": item_id})
    r = client.post("/api/query", content=body, headers={"Content-Type": content_type})
    assert r.status_code == 415 and "application/json" in r.json()["error"]


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "http://127.0.0.1:9999"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "http://127.0.0.1", "Sec-Fetch-Site": "cross-site"},
    ],
)
def test_cross_site_requests_are_refused(client, item_id, headers):
    status, answer = post(client, {"like": item_id}, **headers)
    assert status == 403 and "cross-site" in answer["error"]
    r = client.get(f"/api/items/{item_id}/thumbnail", headers=headers)
    assert r.status_code == 403


def test_same_origin_json_is_answered(client, item_id):
    for headers in ({"Origin": "http://127.0.0.1", "Sec-Fetch-Site": "same-origin"}, {}):
        status, answer = post(client, {"like": item_id, "k": 3}, **headers)
        assert status == 200 and len(answer["results"]) == 3


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@examples
@given(spec=st.dictionaries(st.sampled_from(sorted(KEYS)) | st.text(max_size=8), json_values, max_size=5))
def test_any_json_object_gets_an_answer_or_one_line_400(client, spec):
    body = json.dumps(spec, allow_nan=True)
    status, answer = post(client, body)
    assert status in (200, 400), answer
    if status == 400:
        assert set(answer) == {"error"} and "\n" not in answer["error"] and answer["error"]


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000,
        b'{"text": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"weight": ' + b'{"a":' * 50_000 + b"1" + b"}" * 50_000 + b"}",
        b'{"k": 1e999}',
        b'{"text": "\\ud800"}',
        b'{"image": {"nested": true}}',
        '{"text": "caf\xe9"}'.encode("latin-1"),
    ],
)
def test_nested_or_odd_json_is_a_one_line_400(client, body):
    status, answer = post(client, body)
    assert status == 400, answer
    assert set(answer) == {"error"} and "\n" not in answer["error"] and len(answer["error"]) <= 500
    assert client.get("/api/health").status_code == 200


def _upload(world) -> str:
    return base64.b64encode((world.folder / "img-3.png").read_bytes()).decode()


def test_concurrent_decoding_is_bounded(world, monkeypatch):
    running, most, lock = [0], [0], threading.Lock()

    def counted(fn):
        def wrapper(*args):
            with lock:
                running[0] += 1
                most[0] = max(most[0], running[0])
            try:
                threading.Event().wait(0.05)  # long enough for the others to pile up behind it
                return fn(*args)
            finally:
                with lock:
                    running[0] -= 1

        return wrapper

    monkeypatch.setattr(serve, "query_spec", counted(serve.query_spec))
    monkeypatch.setattr(serve, "make_thumbnail", counted(serve.make_thumbnail))
    store = Store(world.folder / ".imgsearch")
    thumbs_dir = store.root / "thumbs"
    shutil.rmtree(thumbs_dir, ignore_errors=True)  # every thumbnail is made, not read from the cache
    ids = [i.id for i in store.require().items]
    image = _upload(world)
    with app_client(store) as client:
        calls = [lambda: post(client, {"image": image, "k": 2})[0] for _ in range(12)]
        calls += [lambda i=i: client.get(f"/api/items/{i}/thumbnail").status_code for i in ids]
        with ThreadPoolExecutor(len(calls)) as pool:
            statuses = list(pool.map(lambda call: call(), calls))
    shutil.rmtree(thumbs_dir, ignore_errors=True)
    assert statuses == [200] * len(calls)
    assert 1 <= most[0] <= serve.DECODE_SLOTS


def test_a_request_that_waits_too_long_for_a_slot_gets_503(world, monkeypatch):
    entered, release = threading.Event(), threading.Event()
    real = serve.query_spec

    def blocking(body, snap):
        entered.set()
        release.wait(30)
        return real(body, snap)

    monkeypatch.setattr(serve, "query_spec", blocking)
    store = Store(world.folder / ".imgsearch")
    item_id = store.require().items[0].id
    with (
        app_client(store, gate=serve.DecodeGate(slots=1, wait=0.05)) as client,
        ThreadPoolExecutor(1) as pool,
    ):
        first = pool.submit(post, client, {"like": item_id})
        assert entered.wait(30)
        status, answer = post(client, {"like": item_id})
        release.set()
        assert status == 503 and "busy" in answer["error"]
        assert first.result()[0] == 200


def test_query_sheet_never_draws_a_file_outside_the_roots(world, tmp_path, capsys, monkeypatch):
    store_dir = tmp_path / "store"
    shutil.copytree(world.folder / ".imgsearch", store_dir)
    gen = Store(store_dir).require()
    items = list(gen.items)
    link = Path(tempfile.mkdtemp(dir=world.folder, prefix="links-"))
    try:
        (link / "x.png").symlink_to(world.secret)
        # the secret's own size and mtime, so the freshness check lets it through to the sheet
        found = world.secret.stat()
        items[0] = Item(items[0].id, str(world.secret), found.st_size, found.st_mtime)
        items[1] = Item(items[1].id, str(link / "x.png"), found.st_size, found.st_mtime)
        write_items(gen.dir, items)
        out = tmp_path / "sheet.png"
        args = ["query", "--index", store_dir, "--like", items[2].id, "-k", IMAGES, "--sheet", out]
        code, stdout, _ = run_cli([*args, "--format", "paths"], capsys, monkeypatch)
        assert code == 0 and str(world.secret) in stdout.splitlines()  # listed, as the index says
    finally:
        shutil.rmtree(link, ignore_errors=True)
    with Image.open(out) as img:
        assert SECRET_RGB not in {c for _, c in img.convert("RGB").getcolors(1 << 20)}
