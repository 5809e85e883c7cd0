"""The command line as a user meets it: help, errors as one line, exit codes."""

import subprocess
import sys

import pytest
from conftest import help_in_fresh_process


def run(*args, stdin: str | None = None, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "imgsearch", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


def test_help_lists_commands_without_importing_tensorflow():
    out, modules = help_in_fresh_process([])
    assert "embed" in out
    assert not {"tensorflow", "keras"} & modules


def test_help_paragraphs_flow_to_the_terminal_width():
    """A docstring's line breaks are not kept (they cut lines short mid-sentence when the help
    was wrapped at 80 columns): on a wide terminal a paragraph is one line."""
    import os

    wide = subprocess.run(
        [sys.executable, "-m", "imgsearch", "query", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "250"},
    ).stdout
    assert "is standardised per query, then summed with weights fitted per kind of query" in wide


def test_meta_without_columns_is_one_line_error(tmp_path):
    result = run("embed", str(tmp_path), "--out", str(tmp_path / "v"), "--meta", "x.csv")
    assert result.returncode == 2
    assert result.stderr.strip().startswith("imgsearch: --meta needs --text-columns")
    assert "Traceback" not in result.stderr


def test_missing_input_is_one_line_error(tmp_path):
    result = run("embed", str(tmp_path / "nope"), "--out", str(tmp_path / "v"))
    assert result.returncode == 2
    assert "no such file or directory" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["query", "--bogus"], "No such option: --bogus"),
        (["index", ".", "--parts", "0"], "Invalid value for '--parts'"),
        (["index", ".", "--shards", "0"], "Invalid value for '--shards'"),  # the old name, hidden
        (["index", ".", "--trees", "0"], "Invalid value for '--trees'"),
    ],
)
def test_usage_errors_are_told_in_clicks_words_with_exit_2(args, says, tmp_path):
    result = run(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert says in result.stderr and "unexpected error" not in result.stderr
    assert "Traceback" not in result.stderr


def test_index_help_names_annoy_parts_not_beam_shards():
    shown = run("index", "--help").stdout
    assert "--parts" in shown and "--shards" not in shown


@pytest.mark.slow
def test_embed_from_stdin_paths(photos, tmp_path):
    paths = "\n".join(str(p) for p in sorted(photos.iterdir())[:2]) + "\n"
    result = run("embed", "-", "--out", str(tmp_path / "v"), stdin=paths)
    assert result.returncode == 0, result.stderr
    assert "2 items" in result.stderr and "2 added" in result.stderr
    assert "Traceback" not in result.stderr and "absl" not in result.stderr


@pytest.mark.slow
def test_a_weights_file_that_is_not_the_networks_is_one_line_exit_2(tmp_path):
    from PIL import Image

    (tmp_path / "photos").mkdir()
    Image.new("RGB", (32, 32), (200, 30, 30)).save(tmp_path / "photos" / "red.png")
    (tmp_path / "notes.pth").write_text("these are not weights\n")
    r = run(
        "embed",
        str(tmp_path / "photos"),
        "--out",
        str(tmp_path / "s"),
        "--weights",
        str(tmp_path / "notes.pth"),
    )
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "not usable as efficientnet-lite0 weights" in r.stderr
    assert not (tmp_path / "s" / "CURRENT").exists()
