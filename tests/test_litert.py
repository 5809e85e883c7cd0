"""LiteRT exports reproduce the Keras encoders, and a query-time load never imports TensorFlow.

The exports (~20 s each) are made once per session into a temporary cache; the
Keras encoders are the session's shared ``lite0``/``minilm`` fixtures.
"""

from __future__ import annotations

import csv
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from imgsearch.encoders import litert
from imgsearch.encoders.litert import (
    LiteRTImageEncoder,
    LiteRTTextEncoder,
    cached_path,
    load_litert_image,
    load_litert_text,
    split_words,
)
from imgsearch.files.images import load_rgb_array

ROOT = Path(__file__).resolve().parents[1]
FASHION = ROOT.parent / "shared" / "data" / "fashion"
FASHION_IMAGES = 24
TITLES = 200
MIN_COSINE = 0.999

SENTENCES = [
    "a red leather handbag with a gold clasp",
    "Men's blue running shoes",
    "black sunglasses for the beach",
    "a cat sleeping on a sofa",
    "cup of espresso on a wooden table",
    "astronaut in a white space suit holding a helmet",
    "rocket launch at night",
    "vintage motorcycle parked by the road",
    "women's floral summer dress",
    "Kids' striped T-shirt, 100% cotton",
    "stainless steel analog watch with leather strap",
    "backpack for school and travel (30 L)",
    "silver earrings & matching necklace",
    "flip flops — size 9/10",
    "wool scarf in dark green",
]
EDGE_TEXTS = [
    "",
    " ",
    "Café crème brûlée",
    "naïve résumé à la mode",
    "Straße ß GROSS",
    "ﬁnance ｆｕｌｌｗｉｄｔｈ",
    "red\u00a0bag",  # NBSP: not a separator for keras-hub
    "日本語のテキスト and 中文 mixed",
    "emoji 👜👠 bag",
    "tab\there\nnew line\r\n",
    "soft\u00adhyphen zero\u200bwidth \ufeffbom",
    "Ελληνικά ΣΊΣΥΦΟΣ ς",
    "[CLS] [SEP] [UNK] [PAD] [MASK]",
    "a" * 150,
    "é" * 60,
    "İstanbul ǅ ǈ ½ ² ℃ ™ Ⅻ ⑳ ｱｲｳ",
    "a\u034fb \u034f",
    "don't stop-believing... $5.99 @home #1 ~x^y`z|",
    "\x00\x01control\x7f",
    "\u2028line\u2029sep \u3000ideographic",
    "عربى हिन्दी",
    "Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǫ̗̻̊",
    "long " * 300,
    "Antidisestablishmentarianism " * 120,
]


def skimage_photos() -> list[Path]:
    skimage = pytest.importorskip("skimage", reason="scikit-image (dev extra) ships the sample photos")
    folder = Path(skimage.__file__).parent / "data"
    return sorted(p for p in folder.iterdir() if p.suffix in (".png", ".jpg"))


def real_images() -> list[Path]:
    """~30 scikit-image samples (photos, greyscale, RGBA) plus fashion photos when present."""
    paths = skimage_photos()
    if (FASHION / "images").is_dir():
        paths += sorted((FASHION / "images").glob("*.jpg"))[:FASHION_IMAGES]
    return paths


def real_texts() -> list[str]:
    if not (FASHION / "products.csv").exists():
        return SENTENCES
    with open(FASHION / "products.csv", encoding="utf-8") as f:
        titles = [r["productDisplayName"] for r in csv.DictReader(f)]
    return random.Random(0).sample(titles, TITLES) + SENTENCES


@pytest.fixture(scope="session")
def exported(tmp_path_factory, lite0, minilm) -> SimpleNamespace:
    """fp32 exports of both Keras encoders into a temporary cache, made once per session."""
    from imgsearch.encoders.litert_export import ensure_exported

    root = tmp_path_factory.mktemp("litert-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("IMGSEARCH_CACHE", str(root))
        image, text = ensure_exported(lite0, minilm)
    return SimpleNamespace(root=root, image=image, text=text)


@pytest.fixture
def in_export_cache(exported, monkeypatch) -> SimpleNamespace:
    monkeypatch.setenv("IMGSEARCH_CACHE", str(exported.root))
    return exported


# --- fast: no TensorFlow ------------------------------------------------------------------------------------


def test_cache_names_carry_spec_precision_and_converter(tmp_path, monkeypatch):
    monkeypatch.setenv("IMGSEARCH_CACHE", str(tmp_path))
    path = cached_path("efficientnet-lite0@579344248a93", "fp32")
    assert path == tmp_path / "litert" / f"efficientnet-lite0@579344248a93.fp32.{litert.CONVERTER_TAG}.tflite"
    assert "/" not in cached_path("hub:https://example.org/m/1", "int8").name
    with pytest.raises(ValueError, match="precision"):
        cached_path("x", "fp8")


def test_loaders_return_none_when_never_exported(tmp_path, monkeypatch):
    monkeypatch.setenv("IMGSEARCH_CACHE", str(tmp_path))
    assert load_litert_image("efficientnet-lite0@0") is None
    assert load_litert_text("minilm@0") is None


def test_split_words_follows_keras_hub_not_hf():
    assert split_words("Men's T-shirt") == ["Men", "'", "s", "T", "-", "shirt"]
    assert split_words("red\u00a0bag") == ["red\u00a0bag"]  # NBSP is not RE2 \s
    assert split_words("中文 bag") == ["中", "文", "bag"]
    assert split_words("zero\u200bwidth") == ["zero", "width"]  # Cf separates
    assert split_words("") == []


def test_runtime_module_imports_no_tensorflow():
    code = (
        "import sys, imgsearch.encoders.litert; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


# --- slow: real exports against the Keras encoders ----------------------------------------------------------


@pytest.mark.slow
def test_image_fp32_matches_keras(lite0, exported):
    paths = real_images()
    pixels = np.stack([load_rgb_array(p, lite0.image_size) for p in paths])
    want = lite0.encode(pixels)
    got = LiteRTImageEncoder(exported.image, lite0.spec).encode(pixels)
    cosine = np.sum(want.features * got.features, axis=1)
    print(f"image fp32: {len(paths)} images, min cosine {cosine.min():.6f}")
    assert got.features.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got.features, axis=1), 1.0, rtol=1e-5)
    assert cosine.min() >= MIN_COSINE
    np.testing.assert_array_equal(got.class_probs.argmax(1), want.class_probs.argmax(1))
    np.testing.assert_allclose(got.class_probs, want.class_probs, atol=1e-3)


@pytest.mark.slow
def test_image_batches_and_empty_input(lite0, exported):
    """Resizing the input between batch sizes gives the same vectors as one image at a time."""
    pixels = np.stack([load_rgb_array(p, lite0.image_size) for p in skimage_photos()[:5]])
    one = LiteRTImageEncoder(exported.image, lite0.spec, batch_size=1).encode(pixels).features
    three = LiteRTImageEncoder(exported.image, lite0.spec, batch_size=3).encode(pixels).features
    np.testing.assert_allclose(one, three, atol=1e-5)
    empty = LiteRTImageEncoder(exported.image, lite0.spec).encode(pixels[:0])
    assert empty.features.shape == (0, lite0.spec.dim)


@pytest.mark.slow
def test_text_fp32_matches_keras(minilm, in_export_cache):
    texts = real_texts() + EDGE_TEXTS
    encoder = load_litert_text(minilm.spec.id)
    assert encoder is not None and encoder.spec == minilm.spec
    got, want = encoder.encode(texts), minilm.encode(texts)
    cosine = np.sum(want * got, axis=1)
    print(f"text fp32: {len(texts)} texts, min cosine {cosine.min():.6f}")
    assert got.shape == (len(texts), minilm.spec.dim) and got.dtype == np.float32
    assert cosine.min() >= MIN_COSINE
    assert encoder.encode([]).shape == (0, minilm.spec.dim)


@pytest.mark.slow
def test_token_ids_match_keras_hub(minilm, in_export_cache):
    texts = real_texts() + EDGE_TEXTS
    encoder = load_litert_text(minilm.spec.id)
    want = minilm.token_ids(texts)
    got = encoder.token_ids(texts)
    for text, a, b in zip(texts, want, got, strict=True):
        assert b == a, text
    longest = max(len(x) for x in got)
    assert longest == litert.MAX_TOKENS  # the >256-token texts are truncated to [CLS] 254 [SEP]
    assert got[texts.index("")] == [minilm.tokenizer.cls_token_id, minilm.tokenizer.sep_token_id]


@pytest.mark.slow
def test_int8_full_needs_representative_images(lite0, tmp_path, monkeypatch):
    from imgsearch.encoders.litert_export import export_image

    monkeypatch.setenv("IMGSEARCH_CACHE", str(tmp_path))
    with pytest.raises(ValueError, match="representative"):
        export_image(lite0, "int8-full")


QUERY_SCRIPT = """
import json, sys
import numpy as np
from imgsearch.encoders.litert import load_litert_image, load_litert_text
from imgsearch.files.images import load_rgb_array

image = load_litert_image({image_id!r})
text = load_litert_text({text_id!r})
pixels = load_rgb_array({photo!r}, image.image_size)[None]
np.save({out!r} + "/image.npy", image.encode(pixels).features)
np.save({out!r} + "/text.npy", text.encode(["red bag"]))
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras"))))
"""


@pytest.mark.slow
def test_query_path_loads_from_cache_without_tensorflow(lite0, minilm, exported, tmp_path):
    photo = str(skimage_photos()[0])
    script = QUERY_SCRIPT.format(
        image_id=lite0.spec.id, text_id=minilm.spec.id, photo=photo, out=str(tmp_path)
    )
    env = os.environ | {"IMGSEARCH_CACHE": str(exported.root)}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT, check=False
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
    image = np.load(tmp_path / "image.npy")
    text = np.load(tmp_path / "text.npy")
    want_image = lite0.encode(load_rgb_array(photo, lite0.image_size)[None]).features
    assert float(np.sum(image * want_image)) >= MIN_COSINE
    assert float(np.sum(text * minilm.encode(["red bag"]))) >= MIN_COSINE


@pytest.mark.slow
def test_export_is_cached_and_described(lite0, minilm, in_export_cache):
    from imgsearch.encoders.litert_export import export_image, export_text

    before = in_export_cache.image.stat().st_mtime_ns
    assert export_image(lite0, "fp32") == in_export_cache.image
    assert in_export_cache.image.stat().st_mtime_ns == before
    assert export_text(minilm, "fp32") == in_export_cache.text
    meta = json.loads(litert.meta_path(in_export_cache.text).read_text())
    assert meta["spec"]["id"] == minilm.spec.id and meta["precision"] == "fp32"
    assert in_export_cache.image.stat().st_size > 10_000_000  # weights are in the file, not variables
    assert isinstance(load_litert_image(lite0.spec.id), LiteRTImageEncoder)
    assert isinstance(load_litert_text(minilm.spec.id), LiteRTTextEncoder)


@pytest.mark.slow
def test_token_ids_match_keras_hub_on_every_title_and_caption(minilm, in_export_cache):
    """The whole promise, on real data: every fashion title and every Flickr8k caption."""
    texts = []
    if (FASHION / "products.csv").exists():
        with open(FASHION / "products.csv", encoding="utf-8") as f:
            texts += [r["productDisplayName"] for r in csv.DictReader(f)]
    captions = FASHION.parent / "flickr8k" / "captions.csv"
    if captions.exists():
        with open(captions, encoding="utf-8") as f:
            texts += [r["caption"] for r in csv.DictReader(f)]
    if not texts:
        pytest.skip("../shared/data (fashion titles, flickr8k captions) is not present")
    encoder = load_litert_text(minilm.spec.id)
    mismatches = [
        t for t, a, b in zip(texts, minilm.token_ids(texts), encoder.token_ids(texts), strict=True) if a != b
    ]
    assert not mismatches, (len(mismatches), mismatches[:3])
    print(f"{len(texts)} texts, identical token ids")


@pytest.mark.slow
def test_accents_are_stripped_as_minilm_was_trained(minilm, in_export_cache):
    """MiniLM is uncased with accents stripped: "Café crème" must be "cafe creme", never [UNK]."""
    encoder = load_litert_text(minilm.spec.id)
    unk = minilm.tokenizer.token_to_id("[UNK]")
    accented = ["Café crème brûlée", "Señora Müller's naïve façade", "Ångström ÉCLAIR"]
    plain = ["Cafe creme brulee", "Senora Muller's naive facade", "Angstrom ECLAIR"]
    assert encoder.token_ids(accented) == encoder.token_ids(plain) == minilm.token_ids(accented)
    assert all(unk not in ids for ids in encoder.token_ids(accented))
    np.testing.assert_allclose(encoder.encode(accented), encoder.encode(plain), atol=1e-6)
    assert minilm.spec.id.endswith("+noaccents")  # stores made before are re-indexed, not misread
