"""index + query end to end on real photos with the real encoders, through the CLI entry point."""

import json
import shutil
import sys

import pytest
from conftest import make_catalog, run_cli
from PIL import Image

from imgsearch.cli import app as cli
from imgsearch.embed.job import EmbedOptions
from imgsearch.errors import UserError
from imgsearch.indexing.build import index_folder
from imgsearch.search.query import build_query, parse_space_weights, parse_weighted
from imgsearch.search.searcher import Searcher
from imgsearch.store import Store, find_store

pytestmark = pytest.mark.slow


def run(args, capsys, monkeypatch, stdin=None):
    return run_cli(args, capsys, monkeypatch, None if stdin is None else bytes(stdin))


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    return make_catalog(tmp_path_factory.mktemp("catalog"))


def names(out: str) -> list[str]:
    return [line.rsplit("/", 1)[-1] for line in out.splitlines()]


def test_parsing():
    assert parse_weighted("2:red bag") == ("red bag", 2.0)
    assert parse_weighted("-0.5:leather") == ("leather", -0.5)
    assert parse_weighted("time: 10:30") == ("time: 10:30", 1.0)
    assert parse_space_weights("image=0.3, text=0.7") == {"image": 0.3, "text": 0.7}
    with pytest.raises(UserError, match="unknown space"):
        parse_space_weights("sound=1")
    with pytest.raises(UserError, match="empty query"):
        build_query()


def test_index_is_found_like_git(catalog, monkeypatch):
    sub = catalog / "deeper"
    sub.mkdir(exist_ok=True)
    assert find_store(None, cwd=sub).root == catalog / ".imgsearch"
    assert find_store(catalog).root == catalog / ".imgsearch"
    with pytest.raises(UserError, match="imgsearch index DIR"):
        find_store(None, cwd=catalog.parent)


def test_text_query_finds_the_cat(catalog, capsys, monkeypatch):
    code, out, _ = run(["query", "--text", "a cat", "--index", catalog, "-k", "3"], capsys, monkeypatch)
    assert code == 0
    assert names(out)[0] == "chelsea.png"


def test_image_query_finds_the_twin(catalog, capsys, monkeypatch):
    code, out, _ = run(
        ["query", catalog / "motorcycle_left.png", "--index", catalog, "-k", "2"], capsys, monkeypatch
    )
    assert code == 0
    assert names(out) == ["motorcycle_left.png", "motorcycle_right.png"]


def test_colour_words_rank_the_right_product(catalog, capsys, monkeypatch):
    for colour, expected in (("red", "red_bag.png"), ("blue", "blue_bag.png")):
        code, out, _ = run(
            ["query", catalog / "blue_bag.png", "--text", colour, "--index", catalog, "-k", "1"],
            capsys,
            monkeypatch,
        )
        assert code == 0
        assert names(out) == [expected], colour


def test_image_from_stdin(catalog, capsys, monkeypatch):
    data = (catalog / "coffee.png").read_bytes()
    monkeypatch.setattr(sys, "argv", ["imgsearch", "query", "-", "--index", str(catalog), "-k", "1"])
    import io

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    with pytest.raises(SystemExit) as exc:
        cli.main()
    assert exc.value.code in (0, None)
    assert names(capsys.readouterr().out) == ["coffee.png"]


def test_negatives_and_weights_change_the_ranking(catalog):
    searcher = Searcher(Store(catalog / ".imgsearch").require())
    plain = searcher.search(build_query(texts=["a cat"], k=3))
    assert plain[0].item.path.endswith("chelsea.png")
    pushed = searcher.search(build_query(texts=["a cat"], not_texts=["3:cat"], k=8))
    assert not pushed[0].item.path.endswith("chelsea.png")
    # weight 0 on the image space: an image + text query ranks by the text alone
    both = searcher.search(
        build_query([str(catalog / "rocket.jpg")], ["a cat"], k=3, weights="image=0,classes=0")
    )
    assert [h.item.path for h in both] == [h.item.path for h in plain]
    assert not {"image", "classes"} & set(both[0].z)


def test_formats(catalog, capsys, monkeypatch):
    base = ["query", "--text", "a cat", "--index", catalog, "-k", "2"]
    _, out, _ = run([*base, "--format", "json"], capsys, monkeypatch)
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["rank"] for r in rows] == [1, 2]
    assert {"rank", "score", "path", "id", "text", "scores", "z", "weights", "tags"} <= set(rows[0])
    assert set(rows[0]["weights"]) == set(rows[0]["z"])  # the weight each fused space had
    assert "photo" in rows[0]["scores"] and rows[0]["tags"]["classes"]  # the shipped photo head answered
    _, out, _ = run([*base, "--format", "tsv"], capsys, monkeypatch)
    first = out.splitlines()[0].split("\t")
    assert first[0] == "1" and first[2].endswith("chelsea.png") and len(first) == 4
    monkeypatch.setenv("COLUMNS", "200")  # a wide terminal: long temporary paths are not folded
    _, out, _ = run([*base, "--format", "table"], capsys, monkeypatch)
    assert "chelsea.png" in out and "score" in out


def test_batch_mode(catalog, capsys, monkeypatch, tmp_path):
    lines = [
        json.dumps({"text": ["a cat"], "k": 1}),
        json.dumps({"image": [str(catalog / "motorcycle_left.png")], "k": 2}),
        json.dumps({"txt": "typo"}),
        "",
    ]
    code, out, _ = run(
        ["query", "--batch", "-", "--index", catalog], capsys, monkeypatch, stdin="\n".join(lines).encode()
    )
    answers = [json.loads(x) for x in out.splitlines()]
    assert [a["query"] for a in answers] == [1, 2, 3]
    assert answers[0]["results"][0]["path"].endswith("chelsea.png")
    assert answers[1]["results"][1]["path"].endswith("motorcycle_right.png")
    assert "unknown key" in answers[2]["error"]
    assert code == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["query", "missing.jpg"], "query image missing.jpg: file not found"),
        (["query"], "empty query"),
        (["query", "--text", "x", "--format", "xml"], "--format must be one of"),
        (["query", "--text", "x", "-k", "0"], "from 1 to"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(catalog, capsys, monkeypatch, args, message):
    code, out, err = run([*args, "--index", catalog], capsys, monkeypatch)
    assert code == 2 and out == ""
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_no_index_is_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(["query", "--text", "x"], capsys, monkeypatch)
    assert code == 2 and "imgsearch index DIR" in err


def test_stale_index_is_refused(catalog, tmp_path, capsys, monkeypatch):
    copy = tmp_path / "copy"
    shutil.copytree(catalog / ".imgsearch", copy)
    gen = Store(copy).current_dir()
    manifest = json.loads((gen / "manifest.json").read_text())
    manifest["encoders"]["text"]["id"] = "minilm@some-other-weights"
    (gen / "manifest.json").write_text(json.dumps(manifest))
    code, _, err = run(["query", "--text", "a cat", "--index", copy], capsys, monkeypatch)
    assert code == 2 and "rebuild" in err


def test_no_results_is_exit_1(catalog, capsys, monkeypatch):
    code, out, _ = run(
        [
            "query",
            "--text",
            "a cat",
            "--weight",
            "text=0,colour=0,photo=0,lexical=0,wordnet=0",
            "--index",
            catalog,
        ],
        capsys,
        monkeypatch,
    )
    assert code == 1 and out == ""


def test_reindex_replaces_atomically_while_a_reader_holds_the_old_one(catalog, tmp_path):
    folder = tmp_path / "cat"
    shutil.copytree(catalog, folder, ignore=shutil.ignore_patterns(".imgsearch"))
    index_folder(folder, EmbedOptions())
    st = Store(folder / ".imgsearch")
    reader = Searcher(st.require())  # a query in flight, on the old generation
    (folder / "rocket.jpg").unlink()
    report = index_folder(folder, EmbedOptions())
    assert report.embed.removed == 1 and report.rebuilt
    assert st.require().count == reader.gen.count - 1
    hits = reader.search(build_query(texts=["a cat"], k=2))  # the old generation still answers
    assert hits[0].item.path.endswith("chelsea.png")
    again = index_folder(folder, EmbedOptions())
    assert again.embed.unchanged == st.require().count and not again.rebuilt


def test_two_writers_cannot_both_index(catalog, tmp_path):
    st = Store(tmp_path / "store")
    with st.lock(), pytest.raises(UserError, match="being written"):
        index_folder(catalog, EmbedOptions(), out=tmp_path / "store")


def test_sheet_and_preview_outside_a_picture_terminal(catalog, capsys, monkeypatch, tmp_path):
    sheet = tmp_path / "results.png"
    args = ["query", "--text", "a cat", "--index", catalog, "-k", "3", "--sheet", sheet, "--preview"]
    code, out, err = run(args, capsys, monkeypatch)
    assert code == 0 and len(out.splitlines()) == 3  # a pipe: the paths, as without --preview
    assert f"wrote {sheet}" in err and "no inline images here" in err
    with Image.open(sheet) as img:
        assert img.format == "PNG" and img.width > 3 * 160
