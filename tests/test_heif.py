"""HEIC/HEIF (pillow-heif) and AVIF (Pillow) photos: indexed like JPEG, found by a query, drawn as
thumbnails in `serve`, sheets and previews; a broken one is skipped with a reason.

The files are real, written in the test: HEIC by pillow-heif's own encoder (``from_pillow``, which
registers nothing with Pillow, so reading them proves imgsearch registers its opener), AVIF by
Pillow. Small numpy encoders stand in for the models except in the one test about the model.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pillow_heif
import pytest
from conftest import help_in_fresh_process, run_cli, skimage_data
from fakes import TinyImageEncoder, TinyTextEncoder, write_image
from fastapi.testclient import TestClient
from PIL import Image

from imgsearch.cli.sheet import Cell, contact_sheet, thumbnail
from imgsearch.embed.job import EmbedOptions
from imgsearch.files.images import ImageError, open_image
from imgsearch.files.roots import Roots
from imgsearch.indexing.build import index_folder
from imgsearch.search.query import Query
from imgsearch.search.searcher import QueryEncoder, Searcher
from imgsearch.serve import app as serve
from imgsearch.store import Store

ORIENTATION = 0x0112


def write_heic(img: Image.Image, path: Path, exif: bytes | None = None) -> Path:
    pillow_heif.from_pillow(img).save(path, quality=95, **({"exif": exif} if exif else {}))
    return path


def write_avif(img: Image.Image, path: Path, exif: bytes | None = None) -> Path:
    img.save(path, "AVIF", quality=95, **({"exif": exif} if exif else {}))
    return path


WRITERS = {".heic": write_heic, ".avif": write_avif}


def picture(seed: int = 3, size: tuple[int, int] = (96, 64)) -> Image.Image:
    """Flat colour blocks: lossy codecs keep them, so the decoded pixels can be compared."""
    blocks = np.random.default_rng(seed).integers(0, 256, (4, 6, 3), dtype=np.uint8)
    return Image.fromarray(blocks).resize(size, Image.Resampling.NEAREST)


@pytest.mark.parametrize("suffix", sorted(WRITERS))
def test_decodes_to_the_pixels_of_the_picture(tmp_path, suffix):
    img = picture()
    path = WRITERS[suffix](img, tmp_path / f"p{suffix}")
    out = open_image(path)
    assert out.mode == "RGB" and out.size == img.size
    assert np.abs(np.asarray(out, np.int16) - np.asarray(img, np.int16)).mean() < 8


@pytest.mark.parametrize("suffix", sorted(WRITERS))
def test_a_rotated_phone_photo_is_turned_upright_once(tmp_path, suffix):
    """EXIF orientation 6 (the phone held upright): the file stores the picture on its side and it
    is turned exactly once, whether the codec applies the rotation or leaves it to the EXIF tag."""
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    path = WRITERS[suffix](picture(size=(96, 64)), tmp_path / f"r{suffix}", exif.tobytes())
    assert open_image(path).size == (64, 96)


def test_a_heic_with_several_images_gives_its_primary_one(tmp_path):
    """Bursts and edited photos hold several images; the one marked primary is the photo."""
    heif = pillow_heif.from_pillow(Image.new("RGB", (64, 48), (255, 0, 0)))
    heif.add_from_pillow(Image.new("RGB", (32, 48), (0, 0, 255)))
    heif.save(tmp_path / "two.heic", quality=90, primary_index=1)
    out = open_image(tmp_path / "two.heic")
    assert out.size == (32, 48) and _near(out.getpixel((16, 24)), (0, 0, 255))


def test_a_small_decode_of_a_heic_uses_its_embedded_thumbnail(tmp_path):
    """Phones store a ~320 px copy in each HEIC: enough for the model's 224 px, not for 256 px."""
    img = picture(size=(1024, 768))
    pillow_heif.from_pillow(img).save(tmp_path / "t.heic", quality=90, thumbnails=[320])
    small = open_image(tmp_path / "t.heic", min_size=224)
    assert small.size == (320, 240)
    expected = np.asarray(img.resize((320, 240), Image.Resampling.BOX), np.int16)
    assert np.abs(np.asarray(small, np.int16) - expected).mean() < 12
    assert open_image(tmp_path / "t.heic", min_size=256).size == (1024, 768)


def test_broken_files_are_refused_with_a_reason(tmp_path):
    junk = tmp_path / "junk.heic"
    junk.write_bytes(b"\0\0\0\x18ftypheic\0\0\0\0mif1heic" + b"not an image" * 20)
    with pytest.raises(ImageError, match="not an image Pillow can read"):
        open_image(junk)
    whole = write_heic(picture(size=(512, 384)), tmp_path / "whole.heic").read_bytes()
    cut = tmp_path / "cut.heic"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ImageError) as exc:
        open_image(cut)
    assert "\n" not in str(exc.value)  # one line in skipped.tsv and on stderr


def test_index_takes_heic_and_avif_beside_png_and_skips_a_broken_one(tmp_path, tiny, capsys, monkeypatch):
    folder = tmp_path / "photos"
    folder.mkdir()
    write_image(folder / "plain.png", 1, size=(48, 40))
    write_heic(picture(4), folder / "iphone.heic")
    write_heic(picture(5), folder / "camera.HEIF")
    write_avif(picture(6), folder / "web.avif")
    (folder / "broken.heic").write_bytes(b"\0\0\0\x18ftypheic" + b"\xff" * 300)
    code, _, err = run_cli(["index", folder], capsys, monkeypatch)
    assert code == 0, err
    gen = Store(folder / ".imgsearch").require()
    assert sorted(Path(i.path).name for i in gen.items) == [
        "camera.HEIF",
        "iphone.heic",
        "plain.png",
        "web.avif",
    ]
    skipped = {Path(p).name: reason for p, reason in gen.skipped()}
    assert list(skipped) == ["broken.heic"] and skipped["broken.heic"]
    assert "broken.heic" in err and "Traceback" not in err


def test_serve_sheet_and_preview_draw_heic_and_avif_thumbnails(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    colours = {"iphone.heic": (200, 30, 30), "web.avif": (30, 30, 200)}
    for name, rgb in colours.items():
        WRITERS[Path(name).suffix](Image.new("RGB", (640, 480), rgb), folder / name)
    write_image(folder / "plain.png", 2)
    index_folder(folder, EmbedOptions(), image=TinyImageEncoder(), text=TinyTextEncoder())
    store = Store(folder / ".imgsearch")
    gen = store.require()
    encoder = QueryEncoder(gen.manifest, TinyImageEncoder(), TinyTextEncoder())
    client = TestClient(serve.create_app(store, encoder=encoder), base_url="http://127.0.0.1")
    roots = Roots.of(gen)
    items = {Path(item.path).name: item for item in gen.items}
    assert set(colours) <= set(items)
    for name, item in ((name, items[name]) for name in colours):
        r = client.get(f"/api/items/{item.id}/thumbnail")
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
        thumb = Image.open(io.BytesIO(r.content))
        assert thumb.format == "JPEG" and thumb.size == (256, 192)
        assert _near(thumb.getpixel((128, 96)), colours[name])
        # --sheet and --preview draw through sheet.thumbnail from the same bytes
        assert thumbnail(roots.read(item.path), 160).size == (160, 120)
        out = contact_sheet([[Cell(item.path, name)]], tmp_path / f"{name}.png", roots=roots)
        assert _near(Image.open(out).convert("RGB").getpixel((8 + 80, 8 + 80)), colours[name])


def _near(pixel, rgb, tolerance: int = 12) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, rgb, strict=True))


@pytest.mark.slow
def test_a_heic_query_finds_its_png_twin_with_the_real_encoder(tmp_path, lite0):
    """EfficientNet-Lite0 on real photos: the HEIC and AVIF copies of a photo and the PNG are
    each other's nearest neighbours, both ways (query by the file, and the indexed vector)."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg", "motorcycle_left.png"):
        shutil.copy2(skimage_data() / name, folder / name)
    twins = {"chelsea.heic": "chelsea.png", "coffee.avif": "coffee.png"}
    for name, source in twins.items():
        with Image.open(folder / source) as img:
            WRITERS[Path(name).suffix](img.convert("RGB"), folder / name)
    index_folder(folder, EmbedOptions(), image=lite0, text=TinyTextEncoder())
    gen = Store(folder / ".imgsearch").require()
    searcher = Searcher(gen, QueryEncoder(gen.manifest, lite0, TinyTextEncoder()))
    row = {Path(item.path).name: n for n, item in enumerate(gen.items)}
    for a, b in [*twins.items(), *((b, a) for a, b in twins.items())]:
        hits = searcher.search(Query(images=[(str(folder / a), 1.0)], k=3), exclude={row[a]})
        assert Path(hits[0].item.path).name == b, (a, [Path(h.item.path).name for h in hits])


def test_help_does_not_load_libheif():
    _, modules = help_in_fresh_process(["index"])
    assert "pillow_heif" not in modules
