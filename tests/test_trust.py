"""Per-folder self-calibration (``imgsearch.indexing.trust``): a folder unlike the photo head's training
photos gets text weights without the head, recorded in the manifest and shown by ``query -f json``.

The models are the small fakes: what is tested is the decision and where it goes, not a model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli
from fakes import IMAGE_ID, TinyImageEncoder, TinyTextEncoder, tiny_head, use_tiny_models, write_image

from imgsearch import encoders
from imgsearch.files.images import load_rgb_array
from imgsearch.indexing import build, trust
from imgsearch.search import fusion
from imgsearch.store import Store

THRESHOLD = 0.5


@pytest.fixture
def folder(tmp_path, monkeypatch) -> Path:
    """Twelve photos, indexed with the fake encoders and a fake shipped photo head."""
    use_tiny_models(monkeypatch)
    monkeypatch.setattr(encoders, "open_for_index", lambda role, spec, allowed: _encoder(role))
    monkeypatch.setattr(build, "shipped_heads", lambda enc, shots=False: {"photo": tiny_head("photo", 3)})
    photos = tmp_path / "photos"
    photos.mkdir()
    for seed in range(12):
        write_image(photos / f"p{seed:02d}.png", seed)
    return photos


def _encoder(role: str):
    return TinyImageEncoder() if role == "image" else TinyTextEncoder()


def features(folder: Path) -> np.ndarray:
    pixels = np.stack([load_rgb_array(p, 16) for p in sorted(folder.glob("*.png"))])
    return TinyImageEncoder().encode(pixels).features


def ship(monkeypatch, reference: np.ndarray, date: str) -> None:
    """A fitted file as ``recipes/trust.py`` writes it, with this head reference."""
    info = {
        "image_encoder": IMAGE_ID,
        "threshold": THRESHOLD,
        "references": {"photos": reference, "shots": reference},
        "provenance": {"date": date},
    }
    monkeypatch.setattr(trust, "load", lambda: info)


def index(folder: Path, capsys, monkeypatch, *args: str) -> dict:
    code, _, err = run_cli(["index", folder, "-q", *args], capsys, monkeypatch)
    assert code == 0, err
    return Store(folder / ".imgsearch").require().manifest.get("trust") or {}


def query_weights(folder: Path, capsys, monkeypatch) -> dict:
    code, out, err = run_cli(["query", "-t", "a red apple", "-f", "json", "-k", "3"], capsys, monkeypatch)
    assert code == 0, err
    hits = [json.loads(line) for line in out.splitlines()]
    assert len({json.dumps(h["weights"], sort_keys=True) for h in hits}) == 1  # one query, one set
    return hits[0]["weights"]


def test_familiarity_is_high_for_the_heads_own_photos_and_low_for_others():
    rng = np.random.default_rng(0)
    own = (1.0 + 0.3 * rng.standard_normal((50, 8))).astype(np.float32)  # one kind of photos
    other = own * np.array([1, -1] * 4, np.float32)  # another kind
    assert trust.familiarity(own, own) == pytest.approx(1.0, abs=1e-5)
    assert trust.familiarity(other, own) < 0.5 < trust.familiarity(own[:25], own[25:]) < 1.0


def test_a_folder_out_of_the_heads_domain_gets_no_head_weight(folder, capsys, monkeypatch):
    fitted = fusion.load().weights["text@photos"]
    assert fitted["photo"] > 0  # what the issue saw: the head weighed alone on any photo folder
    monkeypatch.chdir(folder)
    ship(monkeypatch, features(folder), "fit-1")  # the head trained on photos like these
    inside = index(folder, capsys, monkeypatch)
    assert inside["in_domain"] is True and inside["familiarity"] >= THRESHOLD
    assert inside["weights"] == fitted and inside["kind"] == "text@photos"
    assert query_weights(folder, capsys, monkeypatch)["photo"] == fitted["photo"]

    ship(monkeypatch, -features(folder), "fit-2")  # a newer fit: the record is re-derived
    outside = index(folder, capsys, monkeypatch)
    assert outside["in_domain"] is False and outside["familiarity"] < THRESHOLD
    assert outside["weights"]["photo"] < inside["weights"]["photo"]
    assert outside["weights"]["wordnet"] == outside["weights"]["text"] == 1.0
    assert "unlike" in outside["why"] and outside["fitted"] == "fit-2"
    shown = query_weights(folder, capsys, monkeypatch)
    assert "photo" not in shown and shown["text"] == 1.0  # a space at 0 is not fused


def test_the_record_is_the_same_on_every_index(folder, capsys, monkeypatch, tmp_path):
    ship(monkeypatch, -features(folder), "fit-1")
    first = index(folder, capsys, monkeypatch)
    again = index(folder, capsys, monkeypatch, "--rebuild")
    other = tmp_path / "other"
    run_cli(["index", folder, "-q", "--out", other], capsys, monkeypatch)
    assert first == again == Store(other).require().manifest["trust"]


def test_no_calibrate_keeps_the_fitted_weights(folder, capsys, monkeypatch):
    ship(monkeypatch, -features(folder), "fit-1")
    assert index(folder, capsys, monkeypatch, "--no-calibrate") == {}
    monkeypatch.chdir(folder)
    fitted = fusion.load().weights["text@photos"]
    assert query_weights(folder, capsys, monkeypatch)["photo"] == fitted["photo"]
