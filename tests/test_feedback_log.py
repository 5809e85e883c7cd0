"""The feedback log (imgsearch/store/log.py), what writes it (serve, query --batch --log), what
reads it (`imgsearch log`, `train --from-log`)."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli
from fakes import write_model
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from imgsearch import Index, UserError
from imgsearch.store import FeedbackLog, Record, Store

COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 200, 40),
    "blue": (30, 40, 220),
    "yellow": (230, 220, 30),
    "purple": (140, 30, 160),
    "orange": (240, 140, 20),
}
CODE = dict(zip(COLOURS, ["zorp", "quix", "blen", "yarv", "plim", "trok"], strict=True))
NOUNS = ["shoe", "bag", "hat", "cup", "coat", "lamp", "ball", "box"]


@pytest.fixture
def colours(tmp_path) -> Path:
    """Six images of each colour, told apart by a little noise."""
    folder = tmp_path / "colours"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, rgb in COLOURS.items():
        for i in range(6):
            pixels = np.clip(np.array(rgb) + rng.normal(0, 12, (16, 16, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{name}-{i}.png")
    return folder


def _record(n: int = 0, **kw) -> Record:
    return Record("batch", "gen-000001", texts=[f"query {n}"], like=[f"id{n}"], **kw)


def test_records_round_trip_after_a_header(tmp_path):
    log = FeedbackLog(Store(tmp_path))
    written = log.append(_record(1)) + log.append(_record(2, unlike=["x"]))
    assert written == log.path.stat().st_size
    assert log.path.read_text().splitlines()[0] == '{"format": "imgsearch-feedback-log", "version": 1}'
    records = list(log.records())
    assert [r["like"] for r in records] == [["id1"], ["id2"]] and records[1]["unlike"] == ["x"]


@settings(max_examples=25, deadline=None)
@given(texts=st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=5))
def test_any_words_round_trip_one_line_each(tmp_path_factory, texts):
    log = FeedbackLog(Store(tmp_path_factory.mktemp("log")))
    for n, text in enumerate(texts):
        log.append(Record("serve", "gen-000001", texts=[text], like=[str(n)]))
    assert [r["texts"] for r in log.records()] == [[t] for t in texts] and log.skipped == 0


def test_a_torn_last_line_is_skipped_and_the_next_append_starts_clean(tmp_path):
    log = FeedbackLog(Store(tmp_path))
    log.append(_record(1))
    with open(log.path, "ab") as f:
        f.write(b'{"via": "serve", "texts": ["half')  # killed mid-write
    assert [r["like"] for r in log.records()] == [["id1"]] and log.skipped == 1


def test_a_file_the_store_did_not_write_is_never_appended_to(tmp_path):
    target = tmp_path / "notes.txt"
    target.write_text("my notes\n")
    log = FeedbackLog(Store(tmp_path / "store"))
    log.path.parent.mkdir()
    log.path.symlink_to(target)  # a store from someone else pointing the log elsewhere
    with pytest.raises(UserError):
        log.append(_record())
    assert target.read_text() == "my notes\n"
    log.path.unlink()
    log.path.write_text("someone's own jsonl\n")
    with pytest.raises(UserError, match="not a feedback log"):
        log.append(_record())
    with pytest.raises(UserError):
        log.clear()
    assert log.path.read_text() == "someone's own jsonl\n"


def _append_many(root: str, worker: int) -> None:
    log = FeedbackLog(Store(Path(root)))
    for n in range(200):
        log.append(Record("serve", "gen", texts=[f"w{worker} " + "x" * 3000], like=[f"{worker}-{n}"]))


def test_two_writers_never_interleave(tmp_path):
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_append_many, args=(str(tmp_path), w)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    records = list(FeedbackLog(Store(tmp_path)).records())
    assert len(records) == 400 and FeedbackLog(Store(tmp_path)).skipped == 0


def test_batch_lines_with_likes_are_logged_by_id_and_log_summarises(
    colours, tiny, capsys, monkeypatch, tmp_path
):
    index = Index.build(colours)
    ids = {Path(i.path).name: i.id for i in index.generation.items}
    lines = tmp_path / "q.jsonl"
    like = [ids["red-0.png"], str(colours / "red-1.png")]
    lines.write_text(
        json.dumps({"text": "red shoe", "like": like, "unlike": [ids["blue-0.png"]]})
        + "\n"
        + json.dumps({"text": "no likes here"})
        + "\n"
    )
    code, out, _ = run_cli(["query", "--batch", lines, "--log", "--index", colours], capsys, monkeypatch)
    assert code == 0 and len(out.splitlines()) == 2
    (record,) = FeedbackLog(Store(colours / ".imgsearch")).records()
    assert record["texts"] == ["red shoe"] and record["like"] == [ids["red-0.png"], ids["red-1.png"]]
    assert record["unlike"] == [ids["blue-0.png"]]
    assert record["via"] == "batch" and len(record["shown"]) == 10
    assert str(colours) not in json.dumps(record["like"])  # ids, not paths

    code, out, _ = run_cli(["log", "--index", colours, "-f", "json"], capsys, monkeypatch)
    summary = json.loads(out)
    assert code == 0 and (summary["queries"], summary["likes"], summary["items_touched"]) == (1, 2, 3)
    code, _, err = run_cli(["log", "--index", colours, "--clear"], capsys, monkeypatch)
    assert code == 0 and "deleted" in err and not (colours / ".imgsearch" / "feedback.jsonl").exists()

    code, _, err = run_cli(["query", "--text", "red", "--log", "--index", colours], capsys, monkeypatch)
    assert code == 2 and "--log goes with --batch" in err


def test_serve_logs_every_query_unless_told_not_to(colours, tiny):
    from fastapi.testclient import TestClient

    from imgsearch.serve.app import create_app

    Index.build(colours)
    store = Store(colours / ".imgsearch")
    client = TestClient(create_app(store), base_url="http://127.0.0.1")
    liked = client.post("/api/query", json={"text": "blue"}).json()["results"][0]["id"]
    client.post("/api/query", json={"text": "blue", "like": [liked]})
    records = list(FeedbackLog(store).records())
    assert [r["like"] for r in records] == [[], [liked]] and all(r["via"] == "serve" for r in records)

    quiet = TestClient(create_app(store, feedback_log=False), base_url="http://127.0.0.1")
    quiet.post("/api/query", json={"text": "blue"})
    assert len(list(FeedbackLog(store).records())) == 2


def test_serve_answers_when_the_log_cannot_be_written(colours, tiny):
    from fastapi.testclient import TestClient

    from imgsearch.serve.app import create_app

    Index.build(colours)
    store = Store(colours / ".imgsearch")
    (store.root / "feedback.jsonl").write_text("not ours\n")
    client = TestClient(create_app(store), base_url="http://127.0.0.1")
    for _ in range(2):
        assert client.post("/api/query", json={"text": "blue"}).status_code == 200
    assert (store.root / "feedback.jsonl").read_text() == "not ours\n"


def _liked_log(index: Index, queries: list[tuple[str, str]]) -> None:
    """Each "<colour> <noun>" query likes half the photos of its colour (which half: by the noun),
    so queries with other words share the colour without sharing liked items."""
    log = index.feedback_log
    for colour, noun in queries:
        which = NOUNS.index(noun) % 2
        word = CODE[colour]  # not a colour word: only a learned head can tell what it means
        like = [
            i.id
            for i in index.generation.items
            if Path(i.path).stem in {f"{colour}-{n}" for n in range(which, 6, 2)}
        ]
        log.append(Record("batch", index.generation.dir.name, texts=[f"{word} {noun}"], like=like))


def test_train_from_log_learns_what_users_liked_and_guards_the_index(
    colours, tiny, capsys, monkeypatch, tmp_path
):
    model = write_model(tmp_path / "start")
    code, _, err = run_cli(["index", colours, "--model", model, "-q"], capsys, monkeypatch)
    assert code == 0, err
    index = Index.open(colours)
    out = tmp_path / "learned"
    _liked_log(index, [("red", "shoe")] * 3)
    code, _, err = run_cli(["train", "--from-log", "--out", out, "--index", colours], capsys, monkeypatch)
    assert code == 2 and "learning needs at least 10" in err and not out.exists()

    _liked_log(index, [(c, n) for c in COLOURS for n in NOUNS])
    args = [
        "train",
        "--from-log",
        "--out",
        out,
        "--index",
        colours,
        "--epochs",
        "30",
        "--learning-rate",
        "0.01",
    ]
    code, _, err = run_cli(args, capsys, monkeypatch)
    assert code == 0, err
    head = json.loads((out / "aligned.json").read_text())
    scores = head["from_log"]["held_out_liked_recall@10"]  # as the index searches them
    assert scores["after"] > scores["before"], scores
    code, _, err = run_cli(["index", colours, "--model", out, "-q"], capsys, monkeypatch)
    assert code == 0, err
    assert Index.open(colours).generation.vectors["aligned"].shape[0] == len(index)


def test_train_needs_a_catalog_or_the_log(colours, capsys, monkeypatch, tmp_path):
    code, _, err = run_cli(["train", "--out", tmp_path / "m"], capsys, monkeypatch)
    assert code == 2 and "--meta" in err and "--from-log" in err
    assert not os.path.exists(tmp_path / "m")
