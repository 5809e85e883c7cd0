import json
import threading

import numpy as np
import pytest

from imgsearch import store
from imgsearch.errors import UserError
from imgsearch.store import Item, Store


def _write(st: Store, n: int, image_id: str = "img@1") -> None:
    items = [Item(f"id{i}", f"/p/{i}.jpg", 10, 1.0, f"text {i}") for i in range(n)]
    vecs = {"image": np.eye(n, 4, dtype=np.float32), "text": np.ones((n, 3), np.float32)}
    encoders = {"image": {"id": image_id}, "text": {"id": "txt@1"}}
    store.write_generation(st, encoders, items, vecs, skipped=[("/p/bad.jpg", "corrupt")])


def test_roundtrip_and_atomic_publish(tmp_path):
    st = Store(tmp_path / "s")
    _write(st, 3)
    gen = st.require()
    assert gen.count == 3 and gen.items[1].text == "text 1"
    assert gen.vectors["image"].shape == (3, 4)
    assert (gen.dir / "skipped.tsv").read_text() == "/p/bad.jpg\tcorrupt\n"
    first = gen.dir
    _write(st, 2)
    _write(st, 4)
    gens = sorted(p.name for p in (tmp_path / "s").glob("gen-*"))
    assert len(gens) == 2  # the live one and the previous one, for readers in flight
    assert first.name not in gens
    assert st.require().count == 4
    assert not list((tmp_path / "s").glob(".*tmp"))


def test_stale_version_and_foreign_encoders_are_refused(tmp_path):
    st = Store(tmp_path / "s")
    _write(st, 2)
    gen = st.require()
    with pytest.raises(UserError, match="built with image encoder img@1, not img@2"):
        store.check_encoders(gen.manifest, {"image": "img@2", "text": None}, st.root)
    manifest = json.loads((gen.dir / "manifest.json").read_text())
    manifest["version"] = 99
    (gen.dir / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="format version 99"):
        st.require()


def test_mismatched_arrays_are_refused(tmp_path):
    st = Store(tmp_path / "s")
    _write(st, 3)
    np.save(st.current_dir() / "image.npy", np.zeros((2, 4), np.float32))
    with pytest.raises(UserError, match="damaged index"):
        st.require()


def test_missing_store_says_how_to_make_one(tmp_path):
    with pytest.raises(UserError, match="imgsearch index"):
        Store(tmp_path / "nothing").require()


def test_second_writer_is_refused(tmp_path):
    st = Store(tmp_path / "s")
    entered, release = threading.Event(), threading.Event()

    def hold():
        with st.lock():
            entered.set()
            release.wait(5)

    t = threading.Thread(target=hold)
    t.start()
    entered.wait(5)
    try:
        with pytest.raises(UserError, match="being written by imgsearch"), Store(tmp_path / "s").lock():
            pass
    finally:
        release.set()
        t.join()
    with st.lock():  # free again
        pass


def test_chunks_roundtrip_and_ignore_other_encoders(tmp_path):
    st = Store(tmp_path / "s")
    items = [Item("a", "/a.jpg", 1, 1.0, None, {"colours": [["red", 0.9]]})]
    store.save_chunk(st, 0, {"image": "x"}, items, {"image": np.ones((1, 2), np.float32)})
    store.save_chunk(st, 1, {"image": "other"}, items, {"image": np.ones((1, 2), np.float32)})
    (st.partial_dir / "chunk-000002.npz").write_bytes(b"cut short by a kill")
    got, vecs = store.load_chunks(st, {"image": "x"})
    assert [i.path for i in got] == ["/a.jpg"] and got[0].tags["colours"] == [["red", 0.9]]
    assert len(vecs["image"]) == 1


def test_queries_parse_only_the_items_they_touch(tmp_path):
    st = Store(tmp_path / "s")
    _write(st, 50)
    lazy = st.require()  # memory-mapped, as a query opens it
    assert isinstance(lazy.items, store.LazyItems) and len(lazy.items) == 50
    assert lazy.items[7].text == "text 7" and lazy.items[-1].path == "/p/49.jpg"
    assert len(lazy.items._parsed) == 2  # nothing else was read
    eager = st.load(mmap=False)  # as `index` opens it: every line checked
    assert [i.path for i in lazy.items] == [i.path for i in eager.items]


def test_a_damaged_item_line_is_one_error_and_never_half_read(tmp_path):
    st = Store(tmp_path / "s")
    _write(st, 5)
    path = st.current_dir() / "items.jsonl"
    data = path.read_bytes()
    start = data.index(b'"/p/2.jpg"')
    path.write_bytes(data[:start] + b"X" * 10 + data[start + 10 :])  # same size, line 3 garbled
    gen = st.require()
    assert gen.items[1].path == "/p/1.jpg"
    with pytest.raises(store.DamagedStore, match="imgsearch index"):
        gen.items[2]
    with pytest.raises(store.DamagedStore):
        st.load(mmap=False)  # index time reads every line: the damage is found and repaired


def test_spaces_with_empty_rows_store_which_rows_hold_a_vector(tmp_path):
    from imgsearch.indexing.ann import VectorIndex

    st = Store(tmp_path / "s")
    items = [Item(f"id{i}", f"/p/{i}.jpg", 10, 1.0) for i in range(4)]
    text = np.array([[1, 0, 0], [0, 0, 0], [0, 1, 0], [0, 0, 0]], np.float32)
    store.write_generation(
        st,
        {"image": {"id": "i"}, "text": {"id": "t"}},
        items,
        {"image": np.eye(4, 4, dtype=np.float32), "text": text},
    )
    gen = st.require()
    assert gen.present("image") is None  # every row has a vector: nothing stored
    np.testing.assert_array_equal(gen.present("text"), [True, False, True, False])
    index = VectorIndex.load(gen.vectors["text"], None, {"method": "exact"}, gen.present("text"))
    assert len(index) == 2 and index.search(np.array([0, 1, 0], np.float32), 5)[0].tolist() == [2, 0]


@pytest.mark.parametrize(
    "parts", [[{"file": "../../etc/passwd", "start": 0, "stop": 3}], {"file": "image.ann"}, ["image.ann"]]
)
def test_index_parts_must_name_files_inside_the_store(tmp_path, parts):
    st = Store(tmp_path / "s")
    _write(st, 3)
    path = st.current_dir() / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["spaces"]["image"]["index"] = {"method": "annoy", "file": "image.ann", "parts": parts}
    path.write_text(json.dumps(manifest))
    with pytest.raises(store.DamagedStore, match="index"):
        st.require()


def test_the_calibration_sample_is_stored_and_a_damaged_one_refused(tmp_path):
    st = Store(tmp_path / "s")
    _write(st, 3)
    gen = st.require()
    sample = gen.calibration()
    assert sample.rows.tolist() == [0, 1, 2]
    np.testing.assert_array_equal(sample.get("image"), gen.vectors["image"])
    assert sample.get("classes") is None  # this store has no class rows
    (gen.dir / "calibration.npz").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(store.DamagedStore, match="calibration"):
        gen.calibration()
