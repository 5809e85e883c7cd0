"""`index --watch`: a burst of changes is one re-index; reads and the store's own writes are not changes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import product_shot

from imgsearch.indexing.watch import Changes, watch_folder
from imgsearch.store import Store


class _Event:
    def __init__(self, kind: str, src: str, dest: str = "", is_directory: bool = False) -> None:
        self.event_type, self.src_path, self.dest_path = kind, src, dest
        self.is_directory = is_directory


def test_reads_and_store_writes_are_not_changes(tmp_path):
    changes = Changes(tmp_path / ".imgsearch")
    changes.dispatch(_Event("opened", str(tmp_path / "a.png")))
    changes.dispatch(_Event("closed_no_write", str(tmp_path / "a.png")))
    changes.dispatch(_Event("created", str(tmp_path / ".imgsearch" / "gen-000002" / "image.npy")))
    changes.dispatch(_Event("modified", str(tmp_path), is_directory=True))
    assert not changes.settled(0.0)
    changes.dispatch(_Event("moved", str(tmp_path / ".imgsearch" / "x"), str(tmp_path / "b.png")))
    assert changes.settled(0.0) and not changes.settled(0.0)  # once per burst


def test_a_burst_of_changes_is_one_reindex_after_it_settles(tmp_path):
    calls: list[float] = []
    stop = threading.Event()
    thread = threading.Thread(
        target=watch_folder, args=(tmp_path, tmp_path / ".imgsearch", lambda: calls.append(1), 1.5, stop)
    )
    thread.start()
    try:
        time.sleep(0.5)  # the observer is up
        for i in range(5):  # a burst, well within the settle time
            product_shot(tmp_path / f"p{i}.png", (40 * i, 80, 160))
        deadline = time.monotonic() + 20
        while not calls and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)
        assert len(calls) == 1
        (tmp_path / ".imgsearch").mkdir()
        (tmp_path / ".imgsearch" / "noise").write_text("the store's own write")
        (tmp_path / "p0.png").read_bytes()
        time.sleep(3.0)
        assert len(calls) == 1  # neither the store's writes nor a read re-index
    finally:
        stop.set()
        thread.join(10)


@pytest.mark.slow
def test_a_watched_folder_answers_for_a_new_photo_and_stops_on_ctrl_c(tmp_path, photos):
    # the real command, as a user runs it: index, watch, copy a photo in, query finds it, Ctrl-C
    folder = tmp_path / "pics"
    folder.mkdir()
    samples = sorted(photos.iterdir())
    for p in samples[:3]:
        shutil.copy(p, folder / p.name)
    exe = Path(sys.executable).parent / "imgsearch"
    proc = subprocess.Popen(
        [str(exe), "index", str(folder), "--watch", "--settle", "0.5"],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        st = Store(folder / ".imgsearch")
        deadline = time.monotonic() + 120
        while st.current_dir() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        first = st.current_dir()
        assert first is not None
        time.sleep(1.0)
        new = folder / ("new-" + samples[3].name)
        shutil.copy(samples[3], new)
        while st.current_dir() == first and time.monotonic() < deadline:
            time.sleep(0.2)
        assert st.current_dir() != first
        assert str(new) in {i.path for i in st.require().items}
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "stopped watching" in err


def test_serve_watch_answers_from_the_new_index_once_a_file_lands(tmp_path, tiny):
    from fastapi.testclient import TestClient

    from imgsearch import Index
    from imgsearch.serve.app import create_app, start_watch

    for i in range(3):
        product_shot(tmp_path / f"p{i}.png", (60 * i, 90, 150))
    Index.build(tmp_path)
    store = Store(tmp_path / ".imgsearch")
    client = TestClient(create_app(store), base_url="http://127.0.0.1")
    assert client.get("/api/health").json()["items"] == 3
    stop = threading.Event()
    thread = start_watch(store, 0.5, stop)
    try:
        time.sleep(0.5)  # the observer is up
        product_shot(tmp_path / "new.png", (200, 40, 40))
        deadline = time.monotonic() + 30
        while client.get("/api/health").json()["items"] != 4 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert client.get("/api/health").json()["items"] == 4
    finally:
        stop.set()
        thread.join(10)


def test_serve_watch_needs_an_index_of_one_folder(tmp_path, tiny):
    from imgsearch import Index, UserError
    from imgsearch.serve.app import start_watch

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        product_shot(tmp_path / name / "p.png", (90, 90, 90))
    Index.build(tmp_path / "a", out=tmp_path / "store")
    store = Store(tmp_path / "store")
    (tmp_path / "a").rename(tmp_path / "gone")
    with pytest.raises(UserError, match="serve --watch"):
        start_watch(store, 0.5, threading.Event())
