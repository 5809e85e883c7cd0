"""When, where, which camera: EXIF read at index time, places named offline, query filters.

Real JPEGs with EXIF (date taken, make, model, lens, GPS) written by Pillow, indexed with the
small encoders of fakes.py through the real command line.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli
from fakes import TinyImageEncoder, TinyTextEncoder, write_image
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from imgsearch.files import exif
from imgsearch.store import Store

LISBON, PORTO, TOKYO = (38.72, -9.14), (41.15, -8.61), (35.68, 139.69)
# name: (date taken, make, model, gps)
PHOTOS = {
    "lisbon_2019_07.jpg": ("2019:07:14 10:22:01", "Google", "Pixel 7", LISBON),
    "porto_2019_05.jpg": ("2019:05:02 08:00:00", "Google", "Pixel 7", PORTO),
    "tokyo_2020_01.jpg": ("2020:01:03 12:00:00", "Canon", "Canon EOS 80D", TOKYO),
    "lisbon_2018_12.jpg": ("2018:12:31 23:59:59", "SONY", "ILCE-7M3", LISBON),
    "nogps_2019_08.jpg": ("2019:08:31 23:00:00", "Google", "Pixel 7", None),
}
PLAIN = ("plain.png", "plain.jpg")  # no EXIF at all


def _dms(value: float) -> tuple[float, float, float]:
    value = abs(value)
    d = int(value)
    m = int((value - d) * 60)
    return (d, m, round(((value - d) * 60 - m) * 60, 2))


def write_exif_jpeg(path: Path, seed: int, taken: str, make: str, model: str, gps) -> None:
    e = Image.Exif()
    e[exif.MAKE], e[exif.MODEL] = make, model
    sub = e.get_ifd(exif.EXIF_IFD)
    sub[exif.DATE_TIME_ORIGINAL] = taken
    sub[exif.LENS_MODEL] = f"{model} lens"
    if gps:
        g = e.get_ifd(exif.GPS_IFD)
        g[1], g[2] = ("N" if gps[0] >= 0 else "S"), _dms(gps[0])
        g[3], g[4] = ("E" if gps[1] >= 0 else "W"), _dms(gps[1])
    pixels = np.random.default_rng(seed).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, exif=e)


def make_folder(folder: Path) -> Path:
    folder.mkdir()
    for seed, (name, spec) in enumerate(PHOTOS.items()):
        write_exif_jpeg(folder / name, seed, *spec)
    write_image(folder / PLAIN[0], 10)
    Image.fromarray(np.full((20, 24, 3), 90, np.uint8)).save(folder / PLAIN[1])
    return folder


@pytest.fixture
def album(tmp_path, tiny, capsys, monkeypatch) -> Path:
    """The photos, indexed; queries encode with the small encoders too."""
    from imgsearch import encoders

    tiny_encoders = {"image": TinyImageEncoder(), "text": TinyTextEncoder()}
    monkeypatch.setattr(encoders, "open_for_index", lambda role, *args: tiny_encoders[role])
    folder = make_folder(tmp_path / "album")
    code, _, err = run_cli(["index", folder], capsys, monkeypatch)
    assert code == 0, err
    monkeypatch.chdir(folder)
    return folder


def query(args, capsys, monkeypatch) -> tuple[int, list[str], str]:
    code, out, err = run_cli(["query", "-f", "paths", *args], capsys, monkeypatch)
    return code, [Path(p).name for p in out.splitlines()], err


def test_read_file_and_places(tmp_path):
    path = tmp_path / "a.jpg"
    write_exif_jpeg(path, 0, "2019:07:14 10:22:01", "Canon", "Canon EOS 80D", LISBON)
    record = exif.read_file(str(path))
    assert record == {
        "taken": "2019-07-14T10:22:01",
        "camera": "Canon EOS 80D",  # the make is not repeated
        "lens": "Canon EOS 80D lens",
        "gps": [pytest.approx(38.72, abs=1e-4), pytest.approx(-9.14, abs=1e-4)],
    }
    lisbon, porto, sea = exif.places([list(LISBON), list(PORTO), [0.0, -30.0]])
    assert "Lisbon" in lisbon.split(", ") and lisbon.endswith("Portugal")
    assert porto.endswith("Portugal") and "Lisbon" not in porto
    assert sea is None  # the nearest town is thousands of km away
    write_image(tmp_path / "b.png", 1)
    assert exif.read_file(str(tmp_path / "b.png")) == {}
    assert exif.read_file(str(tmp_path / "missing.jpg")) == {}


def test_place_filters_list_by_date(album, capsys, monkeypatch):
    code, paths, err = query(["--place", "Lisbon"], capsys, monkeypatch)
    assert code == 0 and paths == ["lisbon_2018_12.jpg", "lisbon_2019_07.jpg"]
    assert "left out 3 photo(s) without the EXIF data the filter needs" in err  # 2 plain, 1 no GPS
    _, paths, _ = query(["--place", "portugal"], capsys, monkeypatch)
    assert paths == ["lisbon_2018_12.jpg", "porto_2019_05.jpg", "lisbon_2019_07.jpg"]
    _, paths, _ = query(["--place", "LISBON, Portugal"], capsys, monkeypatch)
    assert paths == ["lisbon_2018_12.jpg", "lisbon_2019_07.jpg"]
    code, paths, _ = query(["--place", "Portu"], capsys, monkeypatch)  # whole names only
    assert code == 1 and paths == []


def test_date_and_camera_filters(album, capsys, monkeypatch):
    code, paths, err = query(["--taken-after", "2019-06", "--taken-before", "2019-09"], capsys, monkeypatch)
    assert code == 0 and paths == ["lisbon_2019_07.jpg", "nogps_2019_08.jpg"]
    assert "left out 2 photo(s)" in err
    _, paths, _ = query(["--taken-after", "2019"], capsys, monkeypatch)
    assert paths == ["porto_2019_05.jpg", "lisbon_2019_07.jpg", "nogps_2019_08.jpg", "tokyo_2020_01.jpg"]
    _, paths, _ = query(["--taken-before", "2019-01-01"], capsys, monkeypatch)
    assert paths == ["lisbon_2018_12.jpg"]  # 23:59:59 on the last day before
    _, paths, _ = query(["--taken-after", "2019-08-31", "--taken-before", "2019-09"], capsys, monkeypatch)
    assert paths == ["nogps_2019_08.jpg"]
    _, paths, _ = query(["--camera", "pixel 7"], capsys, monkeypatch)
    assert paths == ["porto_2019_05.jpg", "lisbon_2019_07.jpg", "nogps_2019_08.jpg"]
    _, paths, _ = query(["--camera", "Canon", "--place", "Japan", "-k", "5"], capsys, monkeypatch)
    assert paths == ["tokyo_2020_01.jpg"]


def test_filters_combine_with_a_search_before_the_cut(album, capsys, monkeypatch):
    # the plain photo is its own best match, but the filter keeps only Tokyo: k=1 still finds it
    code, paths, err = query([str(album / "plain.png"), "--place", "Tokyo", "-k", "1"], capsys, monkeypatch)
    assert code == 0 and paths == ["tokyo_2020_01.jpg"], err
    args = ["--text", "beach", "--place", "Portugal", "--taken-after", "2019", "-k", "10"]
    code, paths, err = query(args, capsys, monkeypatch)
    assert code == 0 and sorted(paths) == ["lisbon_2019_07.jpg", "porto_2019_05.jpg"]
    assert "left out 3 photo(s)" in err
    unfiltered = query(["--text", "beach", "-k", "10"], capsys, monkeypatch)[1]
    assert len(unfiltered) == 7  # without a filter every photo counts, EXIF or not


def test_json_shows_exif(album, capsys, monkeypatch):
    code, out, _ = run_cli(["query", "-f", "json", "--place", "Tokyo"], capsys, monkeypatch)
    assert code == 0
    hit = json.loads(out.splitlines()[0])
    assert hit["exif"]["taken"] == "2020-01-03T12:00:00"
    assert hit["exif"]["camera"] == "Canon EOS 80D"
    assert hit["exif"]["gps"] == [pytest.approx(35.68, abs=1e-4), pytest.approx(139.69, abs=1e-4)]
    assert hit["exif"]["place"].endswith("Tokyo, Japan")
    out = run_cli(["query", "-f", "json", "--text", "beach", "-k", "10"], capsys, monkeypatch)[1]
    plain = [json.loads(line) for line in out.splitlines() if "plain" in line]
    assert len(plain) == 2 and all(h["exif"] is None for h in plain)


@pytest.mark.parametrize("bad", ["2019-13", "19", "2019-02-30", "2019/06", "June 2019", ""])
def test_bad_dates_are_one_line(album, capsys, monkeypatch, bad):
    code, out, err = run_cli(["query", "--taken-after", bad], capsys, monkeypatch)
    assert code == 2 and out == ""
    assert "--taken-after" in err and "YYYY, YYYY-MM or YYYY-MM-DD" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_batch_keys(album, capsys, monkeypatch):
    lines = [
        {"taken_after": "2019-06", "taken_before": "2019-09"},
        {"text": "beach", "place": "Lisbon", "camera": "Pixel"},
        {"taken_before": "2019-99"},
        {"place": 7},
        {"text": "beach", "k": 2},
    ]
    stdin = "".join(json.dumps(line) + "\n" for line in lines).encode()
    code, out, _ = run_cli(["query", "--batch", "-"], capsys, monkeypatch, stdin=stdin)
    answers = [json.loads(line) for line in out.splitlines()]
    names = [[Path(h["path"]).name for h in a.get("results", [])] for a in answers]
    assert code == 2
    assert names[0] == ["lisbon_2019_07.jpg", "nogps_2019_08.jpg"]
    assert names[1] == ["lisbon_2019_07.jpg"]
    assert "YYYY-MM" in answers[2]["error"] and "--place" in answers[3]["error"]
    assert answers[0]["no_exif"] == 2 and answers[1]["no_exif"] == 3
    assert len(names[4]) == 2 and "no_exif" not in answers[4]  # no filter, nothing left out


def test_serve_accepts_the_filters(album):
    from fastapi.testclient import TestClient

    from imgsearch.search.searcher import QueryEncoder
    from imgsearch.serve.app import create_app

    store = Store(album / ".imgsearch")
    encoder = QueryEncoder(store.require().manifest, TinyImageEncoder(), TinyTextEncoder())
    client = TestClient(create_app(store, encoder=encoder), base_url="http://127.0.0.1")
    r = client.post("/api/query", json={"text": "beach", "place": "Portugal", "taken_before": "2019-06"})
    assert r.status_code == 200
    names = sorted(Path(h["path"]).name for h in r.json()["results"])
    assert names == ["lisbon_2018_12.jpg", "porto_2019_05.jpg"]
    assert r.json()["no_exif"] == 3
    r = client.post("/api/query", json={"taken_after": "2019-1"})
    assert r.status_code == 400 and "YYYY-MM" in r.json()["error"]


def test_reindex_reads_only_changed_files(album, tiny, capsys, monkeypatch):
    read = []
    real = exif.read_file
    monkeypatch.setattr(exif, "read_file", lambda path: read.append(Path(path).name) or real(path))
    assert run_cli(["index", album], capsys, monkeypatch)[0] == 0
    assert read == []
    write_exif_jpeg(album / "porto_2019_05.jpg", 99, "2021:03:04 05:06:07", "Apple", "iPhone 12", TOKYO)
    assert run_cli(["index", album], capsys, monkeypatch)[0] == 0
    assert read == ["porto_2019_05.jpg"]
    _, paths, _ = query(["--camera", "iphone", "--place", "Japan"], capsys, monkeypatch)
    assert paths == ["porto_2019_05.jpg"]


def _strip_exif(store_dir: Path) -> None:
    """Rewrite the live generation's items as a store from before EXIF was kept would have them."""
    gen = Store(store_dir).require().dir
    lines = []
    for line in (gen / "items.jsonl").read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        del item["exif"]
        lines.append(json.dumps(item, ensure_ascii=True) + "\n")
    data = "".join(lines).encode("ascii")
    (gen / "items.jsonl").write_bytes(data)
    offsets = np.cumsum([0] + [len(line.encode("ascii")) for line in lines]).astype(np.int64)
    np.save(gen / "items.idx.npy", offsets)
    assert len(data) == offsets[-1]


def test_old_store_without_exif(album, tiny, capsys, monkeypatch):
    _strip_exif(album / ".imgsearch")
    code, paths, _ = query(["--text", "beach", "-k", "3"], capsys, monkeypatch)
    assert code == 0 and len(paths) == 3
    code, paths, err = query(["--place", "Lisbon"], capsys, monkeypatch)
    assert code == 1 and paths == [] and "left out 7 photo(s)" in err
    # the next index reads the EXIF it lacks, without embedding anything again
    code, _, err = run_cli(["index", album], capsys, monkeypatch)
    assert code == 0 and "0 added" in err and "7 unchanged" in err
    _, paths, _ = query(["--place", "Lisbon"], capsys, monkeypatch)
    assert paths == ["lisbon_2018_12.jpg", "lisbon_2019_07.jpg"]


def _start(period: str) -> datetime:
    parts = [int(p) for p in period.split("-")] + [1, 1]
    return datetime(parts[0], parts[1], parts[2])


periods = st.builds(
    lambda y, m, d, n: [f"{y}", f"{y}-{m:02d}", f"{y}-{m:02d}-{d:02d}"][n],
    st.integers(2018, 2021),
    st.integers(1, 12),
    st.integers(1, 28),
    st.integers(0, 2),
)


def test_filters_agree_with_a_direct_filter(album, capsys, monkeypatch):
    """Random filters: the CLI's listing is exactly the items a plain reading of the rules keeps."""
    items = list(Store(album / ".imgsearch").require().items)

    def expected(after, before, place, camera) -> list[str]:
        kept = []
        for item in items:
            record = item.exif or {}
            needed = {"taken": after or before, "place": place, "camera": camera}
            if any(wanted and key not in record for key, wanted in needed.items()):
                continue
            taken = datetime.fromisoformat(record["taken"]) if "taken" in record else None
            if (after and taken < _start(after)) or (before and taken >= _start(before)):
                continue
            names = [n.casefold() for n in record.get("place", "").split(", ")]
            if place and place.casefold() not in names:
                continue
            if camera and camera.casefold() not in record["camera"].casefold():
                continue
            kept.append((record.get("taken"), os.path.basename(item.path)))
        return [name for _, name in sorted(kept)]

    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        st.one_of(st.none(), periods),
        st.one_of(st.none(), periods),
        st.sampled_from([None, "Lisbon", "portugal", "Japan", "Tokyo"]),
        st.sampled_from([None, "Pixel 7", "canon", "ILCE", "Nikon"]),
    )
    def check(after, before, place, camera):
        if not (after or before or place or camera):
            return
        args = [f"--{k}={v}" for k, v in (("taken-after", after), ("taken-before", before)) if v]
        args += [f"--{k}={v}" for k, v in (("place", place), ("camera", camera)) if v]
        code, paths, _ = query([*args, "-k", "20"], capsys, monkeypatch)
        want = expected(after, before, place, camera)
        assert paths == want and code == (0 if want else 1)

    check()
