"""Shared fixtures: real sample photos from scikit-image, real encoders loaded once."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _test_cache() -> Path:
    """A cache for this test session: the user's base-model conversions are linked in (so tests
    stay fast), and everything a test creates (fine-tuned exports, new conversions) lands here,
    never in the user's ~/.cache/imgsearch."""
    from imgsearch.cache import cache_dir

    real = cache_dir()
    tmp = Path(tempfile.mkdtemp(prefix="imgsearch-test-cache-"))
    for sub in ("weights", "litert"):
        (tmp / sub).mkdir()
        if (real / sub).is_dir():
            for entry in (real / sub).iterdir():
                if "-ft@" not in entry.name:
                    (tmp / sub / entry.name).symlink_to(entry)
    atexit.register(shutil.rmtree, tmp, True)
    return tmp


os.environ["IMGSEARCH_CACHE"] = str(_test_cache())

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
FASHION = SHARED / "fashion"
SAMPLE_NAMES = (
    "chelsea.png",
    "coffee.png",
    "astronaut.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "motorcycle_right.png",
)


def skimage_data() -> Path:
    skimage = pytest.importorskip("skimage", reason="scikit-image (dev extra) ships the sample photos")
    return Path(skimage.__file__).parent / "data"


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """A fresh folder of six real photos (a cat, a cup, a person, a rocket, two motorcycles)."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in SAMPLE_NAMES:
        shutil.copy2(skimage_data() / name, folder / name)
    return folder


@pytest.fixture(scope="session")
def fashion() -> Path:
    if not (FASHION / "products.csv").exists():
        pytest.skip("../shared/data/fashion is not present")
    return FASHION


@pytest.fixture(scope="session")
def lite0():
    from imgsearch.encoders import load_image_encoder

    return load_image_encoder("efficientnet-lite0")


@pytest.fixture(scope="session")
def minilm():
    from imgsearch.encoders import load_text_encoder

    return load_text_encoder("minilm")


@pytest.fixture
def tiny(monkeypatch):
    """``imgsearch`` in-process with the small encoders of fakes.py: a run takes milliseconds."""
    from fakes import use_tiny_models

    use_tiny_models(monkeypatch)


def help_in_fresh_process(args: list[str]) -> tuple[str, set[str]]:
    """``imgsearch ARGS --help`` in a new interpreter: (the help text, the top-level modules it
    imported), for tests that --help stays light (no TensorFlow, no OCR engine, no libheif)."""
    import json
    import subprocess
    import sys

    code = (
        "import json, sys; from typer.testing import CliRunner; from imgsearch.cli.app import app;"
        f"out = CliRunner().invoke(app, {[*args, '--help']!r}).output;"
        "print(json.dumps([out, sorted({m.split('.')[0] for m in sys.modules})]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    out, modules = json.loads(done.stdout.strip().splitlines()[-1])
    return out, set(modules)


def run_cli(args, capsys, monkeypatch, stdin: bytes | None = None) -> tuple[int, str, str]:
    """Run the real entry point in-process (models stay loaded): (exit code, stdout, stderr).

    With ``capsysbinary`` the output is decoded with surrogateescape, so file names that are
    not UTF-8 come back as Python's str for them.
    """
    import io
    import sys

    monkeypatch.setattr(sys, "argv", ["imgsearch", *map(str, args)])
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8"))
    from imgsearch.cli import app as cli

    with pytest.raises(SystemExit) as exc:
        cli.main()
    out = capsys.readouterr()
    if isinstance(out.out, bytes):
        return exc.value.code or 0, out.out.decode("utf-8", "surrogateescape"), out.err.decode()
    return exc.value.code or 0, out.out, out.err


def product_shot(path: Path, rgb: tuple[int, int, int]) -> None:
    """A product shot: a coloured bag-like shape on a white background."""
    import numpy as np
    from PIL import Image

    arr = np.full((224, 224, 3), 255, np.uint8)
    arr[60:190, 40:184] = rgb
    arr[30:60, 80:144] = rgb
    Image.fromarray(arr).save(path)


def make_catalog(folder: Path) -> Path:
    """Six sample photos and two product shots (a red and a blue bag), indexed with the real encoders."""
    from imgsearch.embed.job import EmbedOptions
    from imgsearch.indexing.build import index_folder

    folder.mkdir(parents=True, exist_ok=True)
    for name in SAMPLE_NAMES:
        shutil.copy2(skimage_data() / name, folder / name)
    product_shot(folder / "red_bag.png", (200, 20, 25))
    product_shot(folder / "blue_bag.png", (20, 40, 190))
    # eight unrelated pictures are far from the photo head's training photos, and the folder's
    # calibration would drop the head these tests exercise (tests/test_trust.py tests that)
    index_folder(folder, EmbedOptions(), calibrate=False)
    return folder
