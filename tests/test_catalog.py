import io

import pytest

from imgsearch.errors import UserError
from imgsearch.files.catalog import item_id, read_metadata, scan


def _touch(path, data=b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_scan_recurses_skips_hidden_and_non_images(tmp_path):
    _touch(tmp_path / "a.jpg")
    _touch(tmp_path / "sub" / "b.PNG")
    _touch(tmp_path / "notes.txt")
    _touch(tmp_path / ".imgsearch" / "c.jpg")
    _touch(tmp_path / ".hidden.jpg")
    found = scan([str(tmp_path)])
    entries, missing = found.entries, found.skipped
    assert [e.path.rsplit("/", 1)[1] for e in entries] == ["a.jpg", "b.PNG"]
    assert missing == []


def test_scan_explicit_files_stdin_and_missing(tmp_path):
    a = _touch(tmp_path / "a.jpg")
    odd = _touch(tmp_path / "photo.data")
    stdin = io.StringIO(f"{odd}\n\n{a}\n")
    found = scan(["-", str(tmp_path / "gone.jpg")], stdin=stdin)
    entries, missing = found.entries, found.skipped
    assert sorted(e.path for e in entries) == sorted([str(a), str(odd)])  # duplicates collapse
    assert missing == [(str(tmp_path / "gone.jpg"), "no such file or directory")]
    assert entries[0].id == item_id(entries[0].path) and len(entries[0].id) == 16


def test_metadata_joins_by_filename_path_or_id(tmp_path):
    csv_path = tmp_path / "products.csv"
    csv_path.write_text("id,filename,title,colour\n7,images/7.jpg,Red Bag,Red\n8,,Blue Jeans,Blue\n")
    meta = read_metadata(csv_path, ["title", "colour"])
    assert meta.text(str(tmp_path / "images" / "7.jpg"), ["title", "colour"]) == "Red Bag Red"
    assert meta.text("/elsewhere/8.png", ["title"]) == "Blue Jeans"  # id = file stem
    assert meta.text("/elsewhere/9.png", ["title"]) is None


def test_metadata_jsonl(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"path": "a.jpg", "caption": "a cat"}\n\n{"path": "b.jpg", "caption": null}\n')
    meta = read_metadata(path, ["caption"])
    assert meta.text(str(tmp_path / "a.jpg"), ["caption"]) == "a cat"
    assert meta.text(str(tmp_path / "b.jpg"), ["caption"]) is None


@pytest.mark.parametrize(
    ("content", "columns", "message"),
    [
        ("id,title\n1,x\n", ["nope"], "no column nope"),
        ("title\nx\n", ["title"], "needs one of the columns"),
        ("", ["title"], "no rows"),
    ],
)
def test_metadata_errors_are_one_line(tmp_path, content, columns, message):
    path = tmp_path / "m.csv"
    path.write_text(content)
    with pytest.raises(UserError, match=message):
        read_metadata(path, columns)
