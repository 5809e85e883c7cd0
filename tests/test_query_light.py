"""A cold query runs on LiteRT: TensorFlow and Keras are never imported (they cost ~6 s to import)."""

import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

PROBE = """
import sys
from imgsearch.cli.app import main
sys.argv = ["imgsearch", "query", *sys.argv[1:]]
try:
    main()
except SystemExit as exc:
    code = exc.code or 0
heavy = sorted(m for m in ("tensorflow", "keras", "keras_hub") if m in sys.modules)
print("HEAVY:" + ",".join(heavy), "CODE:" + str(code), file=sys.stderr)
"""


def _query(args, index):
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args, "--index", str(index), "-k", "2"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result


def test_text_and_image_queries_leave_tensorflow_out(photos):
    from imgsearch.embed.job import EmbedOptions
    from imgsearch.indexing.build import index_folder

    index_folder(photos, EmbedOptions())  # exports the LiteRT files (cached) as a side effect
    for args in (
        ["--text", "a cat"],
        [str(photos / "motorcycle_left.png")],
        [str(photos / "coffee.png"), "-t", "red"],
    ):
        result = _query(args, photos)
        assert "HEAVY: CODE:0" in result.stderr, (args, result.stderr)
        assert result.stdout.strip(), args
    first = _query([str(photos / "motorcycle_left.png")], photos).stdout.split()
    assert first[1].endswith("motorcycle_right.png")
    assert "XNNPACK" not in _query(["--text", "a cat"], photos).stderr
