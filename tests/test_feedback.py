"""Relevance feedback: the Rocchio arithmetic on its own, then --like/--unlike through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from imgsearch.errors import UserError
from imgsearch.search.feedback import FILE, ItemRows, Rocchio, apply_feedback, rocchio
from imgsearch.search.query import build_query
from imgsearch.store import Item


def unit(*xs: float) -> np.ndarray:
    v = np.asarray(xs, np.float32)
    return v / np.linalg.norm(v)


def test_rocchio_moves_towards_likes_and_away_from_unlikes():
    params = Rocchio(beta=1.0, gamma=0.5)
    q, liked, unliked = unit(1, 0, 0), unit(0, 1, 0), unit(0, 0, 1)
    moved = rocchio(q * 7, liked, unliked, params)  # the query's scale does not matter
    np.testing.assert_allclose(moved, [1, 1, -0.5], atol=1e-6)
    assert rocchio(None, liked, None, params) is liked  # "more like these"
    np.testing.assert_allclose(rocchio(None, liked, unliked, params), unit(0, 1, -0.5), atol=1e-6)
    assert rocchio(None, None, unliked, params) is None  # unlikes alone name nothing to find
    np.testing.assert_allclose(rocchio(q, None, None, params), q)


def test_feedback_uses_stored_vectors_in_every_space_and_skips_empty_rows():
    stored = {
        "image": np.eye(4, dtype=np.float32),
        "text": np.array([[1, 0], [0, 0], [0, 1], [1, 0]], np.float32),  # row 1 has no text
    }
    out = apply_feedback({"text": unit(1, 1)}, stored, liked=[0, 1], unliked=[2], params=Rocchio(1.0, 0.5))
    np.testing.assert_allclose(out["image"], unit(1, 1, -0.5 * np.sqrt(2), 0), atol=1e-6)
    # text: the query, plus row 0 (row 1 is empty), minus 0.5 · row 2
    np.testing.assert_allclose(out["text"], unit(1, 1) + np.array([1, -0.5]), atol=1e-6)


def test_items_are_found_by_id_or_path_and_unknown_ones_are_one_line_errors(tmp_path):
    items = [Item("abc123", str(tmp_path / "a.jpg"), 1, 1.0), Item("def456", str(tmp_path / "b.jpg"), 1, 1.0)]
    rows = ItemRows(items)
    assert rows.resolve(["def456", str(tmp_path / "a.jpg")], "--like") == [1, 0]
    with pytest.raises(UserError, match=r"^--unlike nope: not an item of this index"):
        rows.resolve(["nope"], "--unlike")


def test_params_from_the_environment(monkeypatch):
    monkeypatch.setenv("IMGSEARCH_FEEDBACK", "beta=2,gamma=0.1")
    assert Rocchio.from_env() == Rocchio(2.0, 0.1)
    monkeypatch.setenv("IMGSEARCH_FEEDBACK", "gamma=0.1")  # the other part is the shipped one
    assert Rocchio.from_env() == Rocchio(Rocchio.shipped().beta, 0.1)
    monkeypatch.setenv("IMGSEARCH_FEEDBACK", "beta=lots")
    with pytest.raises(UserError, match="beta=B,gamma=G"):
        Rocchio.from_env()
    monkeypatch.delenv("IMGSEARCH_FEEDBACK")
    assert Rocchio.from_env() == Rocchio.shipped()


def test_the_shipped_setting_names_its_choice():
    data = json.loads(FILE.read_text())
    assert data["beta"] > 0 and data["gamma"] >= 0
    chosen = data["provenance"]["development"][f"{data['beta']},{data['gamma']}"]
    assert chosen["gain"] == max(v["gain"] for v in data["provenance"]["development"].values())


def test_like_alone_is_a_query_but_unlike_alone_is_not():
    assert build_query(like=["x"]).like == ["x"]
    with pytest.raises(UserError, match="empty query"):
        build_query(unlike=["x"])


@pytest.mark.slow
class TestThroughTheCli:
    @pytest.fixture(scope="class")
    def catalog(self, tmp_path_factory):
        from conftest import make_catalog

        return make_catalog(tmp_path_factory.mktemp("feedback") / "photos")

    def query(self, capsys, monkeypatch, catalog, *args: str) -> tuple[int, list[dict], str]:
        from test_query import run

        code, out, err = run(["query", *args, "--index", catalog, "--format", "json"], capsys, monkeypatch)
        return code, [json.loads(line) for line in out.splitlines()], err

    def test_like_by_path_or_id_moves_an_item_up(self, capsys, monkeypatch, catalog):
        _, plain, _ = self.query(capsys, monkeypatch, catalog, "--text", "a cat", "-k", "8")
        names = [r["path"].rsplit("/", 1)[1] for r in plain]
        rocket = plain[names.index("rocket.jpg")]
        _, by_path, _ = self.query(
            capsys, monkeypatch, catalog, "--text", "a cat", "-k", "8", "--like", rocket["path"]
        )
        _, by_id, _ = self.query(
            capsys, monkeypatch, catalog, "--text", "a cat", "-k", "8", "--like", rocket["id"]
        )
        assert by_path == by_id
        assert [r["id"] for r in by_id].index(rocket["id"]) < names.index("rocket.jpg")

    def test_more_like_these_and_unlike(self, capsys, monkeypatch, catalog):
        left = str(catalog / "motorcycle_left.png")
        code, hits, _ = self.query(capsys, monkeypatch, catalog, "--like", left, "-k", "2")
        assert code == 0
        assert {h["path"].rsplit("/", 1)[1] for h in hits} == {"motorcycle_left.png", "motorcycle_right.png"}
        _, plain, _ = self.query(capsys, monkeypatch, catalog, "--like", left, "-k", "8")
        middle = plain[3]["path"]
        _, pushed, _ = self.query(capsys, monkeypatch, catalog, "--like", left, "--unlike", middle, "-k", "8")
        assert next(h["rank"] for h in pushed if h["path"] == middle) > 4

    def test_unknown_item_is_one_line_exit_2(self, capsys, monkeypatch, catalog):
        code, out, err = self.query(capsys, monkeypatch, catalog, "--text", "a cat", "--like", "no/such.jpg")
        assert code == 2 and out == []
        assert "--like no/such.jpg: not an item of this index" in err and len(err.strip().splitlines()) == 1

    def test_batch_keys_like_and_unlike(self, capsys, monkeypatch, catalog):
        from test_query import run

        left, right = str(catalog / "motorcycle_left.png"), str(catalog / "motorcycle_right.png")
        cup = str(catalog / "coffee.png")
        lines = [
            {"like": [left], "k": 2},
            {"text": "a motorcycle", "k": 8},
            {"text": "a motorcycle", "unlike": cup, "k": 8},
            {"text": "x", "like": ["missing"]},
        ]
        stdin = "".join(json.dumps(x) + "\n" for x in lines).encode()
        code, out, _ = run(["query", "--batch", "-", "--index", catalog], capsys, monkeypatch, stdin=stdin)
        answers = [json.loads(line) for line in out.splitlines()]
        assert code == 2 and [a["query"] for a in answers] == [1, 2, 3, 4]
        assert {r["path"] for r in answers[0]["results"]} == {left, right}
        plain, pushed = ([r["path"] for r in a["results"]] for a in answers[1:3])
        assert pushed.index(cup) > plain.index(cup)
        assert "not an item of this index" in answers[3]["error"]
