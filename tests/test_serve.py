"""`imgsearch serve`: the HTTP API on a small real index, through FastAPI's test client and a real process."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="serve needs fastapi (a runtime dependency)")
from conftest import make_catalog
from fastapi.testclient import TestClient

from imgsearch.embed.job import EmbedOptions
from imgsearch.errors import UserError
from imgsearch.indexing.build import index_folder
from imgsearch.search.batch import run_batch
from imgsearch.search.searcher import Searcher
from imgsearch.serve.app import MAX_BODY_BYTES, MAX_IMAGE_BYTES, create_app, run
from imgsearch.store import Store

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> Path:
    return make_catalog(tmp_path_factory.mktemp("serve") / "photos")


@pytest.fixture(scope="module")
def store(catalog) -> Store:
    return Store(catalog / ".imgsearch")


@pytest.fixture(scope="module")
def client(store):
    return TestClient(create_app(store), base_url="http://127.0.0.1")


def ids(store: Store) -> dict[str, str]:
    """file name → item id"""
    return {Path(i.path).name: i.id for i in store.require().items}


def names(answer: dict) -> list[str]:
    return [Path(r["path"]).name for r in answer["results"]]


def post(client, body) -> tuple[int, dict]:
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    r = client.post("/api/query", content=data, headers={"Content-Type": "application/json"})
    return r.status_code, r.json()


def test_health_names_generation_items_and_encoders(client, store):
    r = client.get("/api/health")
    assert r.status_code == 200
    body = r.json()
    assert body["generation"] == store.current_dir().name
    assert body["items"] == 8
    assert set(body["encoders"]) >= {"image", "text"}


def test_query_answers_exactly_the_batch_line(client, store):
    line = {"text": ["a cat"], "k": 3}
    status, answer = post(client, line)
    assert status == 200 and set(answer) == {"results"}
    assert names(answer)[0] == "chelsea.png"
    out = io.StringIO()
    run_batch(Searcher(store.require()), _write_tmp(json.dumps(line)), out)
    batch = json.loads(out.getvalue())
    assert batch == {"query": 1, **answer}


def _write_tmp(text: str) -> str:
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        f.write(text + "\n")
    return f.name


def test_image_by_indexed_id_and_by_upload(client, store, catalog):
    by_id = ids(store)
    status, answer = post(client, {"image": by_id["motorcycle_left.png"], "k": 2})
    assert status == 200 and names(answer) == ["motorcycle_left.png", "motorcycle_right.png"]
    raw = (catalog / "coffee.png").read_bytes()
    for value in (base64.b64encode(raw).decode(), "data:image/png;base64," + base64.b64encode(raw).decode()):
        status, answer = post(client, {"image": value, "k": 1})
        assert status == 200 and names(answer) == ["coffee.png"]


def test_feedback_moves_the_ranking(client, store):
    by_id = ids(store)
    _, plain = post(client, {"text": "a cat", "k": 8})
    before = names(plain).index("rocket.jpg")
    _, liked = post(client, {"text": "a cat", "k": 8, "like": [by_id["rocket.jpg"]]})
    assert names(liked).index("rocket.jpg") < before
    _, more = post(client, {"like": by_id["motorcycle_left.png"], "k": 2})
    assert set(names(more)) == {"motorcycle_left.png", "motorcycle_right.png"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not JSON"),
        (b"", "not JSON"),
        (b"[1, 2]", "one JSON object"),
        ({"txt": "typo"}, "unknown key"),
        ({"text": "x", "k": 0}, "from 1 to"),
        ({"text": "x", "k": "many"}, "whole number"),
        ({}, "empty query"),
        ({"text": "x", "like": "0123456789abcdef"}, "not an item of this index"),
        ({"image": base64.b64encode(b"not an image at all").decode()}, "not an image"),
        ({"image": "data:image/png;base64,!!!"}, "base64"),
        ({"image": "/etc/passwd"}, "base64"),
        ({"image": "/etc/hosts.allow"}, "base64"),
        ({"image": "../../../etc/passwd"}, "base64"),
    ],
)
def test_bad_requests_are_400_with_one_line(client, body, message):
    status, answer = post(client, body)
    assert status == 400, answer
    assert set(answer) == {"error"} and message in answer["error"] and "\n" not in answer["error"]
    assert client.get("/api/health").status_code == 200  # still serving


def test_a_path_in_the_request_is_never_read(client, tmp_path, catalog):
    # a real image outside the store, named by path: must not be opened (it would be found otherwise)
    outside = tmp_path / "outside.png"
    shutil.copy2(catalog / "coffee.png", outside)
    status, answer = post(client, {"image": str(outside), "k": 1})
    assert status == 400 and "base64" in answer["error"]


def test_oversized_body_is_refused(client):
    r = client.post(
        "/api/query",
        content=b"{}",
        headers={"Content-Type": "application/json", "Content-Length": str(MAX_BODY_BYTES + 1)},
    )
    assert r.status_code == 413 and "larger than" in r.json()["error"]
    huge = json.dumps({"image": base64.b64encode(b"\xff" * (MAX_IMAGE_BYTES + 1)).decode()}).encode()
    assert len(huge) < MAX_BODY_BYTES
    status, answer = post(client, huge)
    assert status == 400 and "larger than 20 MB" in answer["error"]


def test_item_and_thumbnail(client, store):
    item_id = ids(store)["astronaut.png"]
    r = client.get(f"/api/items/{item_id}")
    assert r.status_code == 200 and r.json()["path"].endswith("astronaut.png") and "tags" in r.json()
    r = client.get(f"/api/items/{item_id}/thumbnail")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert "max-age" in r.headers["cache-control"]
    img = Image.open(io.BytesIO(r.content))
    assert max(img.size) == 256 and img.format == "JPEG"  # astronaut.png is 512×512
    cached = list((store.root / "thumbs").rglob("*.jpg"))
    assert len(cached) == 1 and not list((store.root / "thumbs").rglob("*.tmp"))
    again = client.get(f"/api/items/{item_id}/thumbnail", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304


@pytest.mark.parametrize(
    "path",
    [
        "/api/items/0123456789abcdef",
        "/api/items/..%2F..%2F..%2Fetc%2Fpasswd/thumbnail",
        "/api/items/%2Fetc%2Fpasswd/thumbnail",
        "/api/items/%2Fetc%2Fpasswd",
        "/api/items/..%2Fthumbs/thumbnail",
        "/static/..%2F..%2Fserve.py",
        "/static/%2Fetc%2Fpasswd",
        "/api/nothing",
    ],
)
def test_files_only_by_item_id(client, path):
    r = client.get(path)
    assert r.status_code == 404, (path, r.text[:200])
    assert "root:" not in r.text and "import" not in r.text


def test_absolute_path_as_item_id_is_404(client, store):
    path = store.require().items[0].path  # even an indexed item's own path is not an id
    r = client.get("/api/items/" + path.replace("/", "%2F") + "/thumbnail")
    assert r.status_code == 404


def test_page_and_static_files(client):
    r = client.get("/")
    assert r.status_code == 200 and "/static/app.js" in r.text and "text/html" in r.headers["content-type"]
    for name in ("app.js", "style.css"):
        assert client.get(f"/static/{name}").status_code == 200
    assert "https://" not in r.text  # nothing from a CDN


def test_token_is_checked_on_every_api_call(store):
    client = TestClient(create_app(store, token="s3cret"), base_url="http://192.0.2.7")
    calls = [("get", "/api/health"), ("post", "/api/query"), ("get", "/api/items/x/thumbnail")]
    for method, path in calls:
        assert getattr(client, method)(path).status_code == 401, path
        wrong = getattr(client, method)(path, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
    good = {"Authorization": "Bearer s3cret"}
    assert client.get("/api/health", headers=good).status_code == 200
    assert client.get("/api/health", cookies={"imgsearch_token": "s3cret"}).status_code == 200
    assert client.get("/").status_code == 200  # the page holds no data; its API calls carry the token


def test_without_token_only_loopback_host_names_are_answered(store):
    rebinding = TestClient(create_app(store), base_url="http://evil.example")
    assert rebinding.get("/api/health").status_code == 400


def test_non_loopback_host_needs_a_token(store):
    with pytest.raises(UserError, match="--token"):
        run(store, "0.0.0.0", 0, None)


def test_live_switch_to_a_new_generation(catalog, tmp_path):
    folder = tmp_path / "live"
    shutil.copytree(catalog, folder, ignore=shutil.ignore_patterns(".imgsearch"))
    index_folder(folder, EmbedOptions())
    st = Store(folder / ".imgsearch")
    app = create_app(st)
    client = TestClient(app, base_url="http://127.0.0.1")
    first = client.get("/api/health").json()
    in_flight = app.state.live.current()  # a request that started before the switch
    (folder / "rocket.jpg").unlink()
    index_folder(folder, EmbedOptions())
    second = client.get("/api/health").json()
    assert second["generation"] != first["generation"] and second["generation"] == st.current_dir().name
    assert (first["items"], second["items"]) == (8, 7)
    _, answer = post(client, {"text": "a rocket", "k": 8})
    assert "rocket.jpg" not in names(answer)
    in_flight.index._searcher.check_files = False  # rocket.jpg is gone: a live search would leave it out
    old = in_flight.index.run(_query("a rocket"))
    assert any(h.item.path.endswith("rocket.jpg") for h in old)  # the old generation still answers
    assert app.state.live.current().index.encoder is in_flight.index.encoder  # models not reloaded


def _query(text: str):
    from imgsearch.search.query import build_query

    return build_query(texts=[text], k=8)


def start_server(index: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    """`imgsearch serve --port 0` as a real process; returns it and its base URL."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "imgsearch", "serve", "--index", str(index), "--port", "0", *extra],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if line.startswith("serving http://"):
            return proc, line.split()[1]
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"serve did not start (exit {proc.poll()}): {proc.stderr.read()}")


def test_serve_process_starts_answers_and_stops_on_ctrl_c(catalog):
    proc, url = start_server(catalog)
    try:
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url + "/api/health", timeout=10) as r:
            assert json.load(r)["items"] == 8
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
        rest = proc.stderr.read()
        assert "stopped" in rest and "Traceback" not in rest
    finally:
        if proc.poll() is None:
            proc.kill()


def test_serve_cli_refuses_open_host_without_token(catalog):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run(
        [sys.executable, "-m", "imgsearch", "serve", "--index", str(catalog), "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert p.returncode == 2 and "--token" in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_serving_never_imports_tensorflow(catalog):
    script = f"""
import base64, sys
from fastapi.testclient import TestClient
from imgsearch.serve.app import create_app
from imgsearch.store import Store
client = TestClient(create_app(Store({str(catalog / ".imgsearch")!r})), base_url="http://127.0.0.1")
image = base64.b64encode(open({str(catalog / "coffee.png")!r}, "rb").read()).decode()
assert client.post("/api/query", json={{"text": "a cat", "image": image}}).status_code == 200
print("tensorflow" in sys.modules)
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert p.stdout.strip() == "False", p.stderr[-500:]


def test_slow_and_vanishing_clients_are_cut_off_with_one_line(catalog):
    """A client that trickles its headers is disconnected; one that leaves mid-body costs a log
    line, not a traceback; the server answers the next request either way."""
    from imgsearch.serve.app import HEADER_TIMEOUT_S

    proc, url = start_server(catalog)
    host, port = url.removeprefix("http://").split(":")
    try:
        for partial in (b"", b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n"):
            with socket.create_connection((host, int(port)), timeout=HEADER_TIMEOUT_S + 20) as s:
                s.sendall(partial)
                assert s.recv(1024) == b""  # closed by the server, well before the socket timeout
        with socket.create_connection((host, int(port)), timeout=20) as s:
            s.sendall(
                b"POST /api/query HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100000\r\n\r\n" + b'{"text": "a ca'
            )
        with urllib.request.urlopen(url + "/api/health", timeout=20) as r:
            assert json.load(r)["items"] == 8
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
        rest = proc.stderr.read()
        assert "Traceback" not in rest, rest[-2000:]
        gone = [line for line in rest.splitlines() if "disconnected" in line]
        assert len(gone) == 1 and "before sending its whole request" in gone[0], rest[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
