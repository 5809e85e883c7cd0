"""Metrics on hand-checked cases, and the evaluation runs on tiny labelled sets."""

import numpy as np
import pytest

from imgsearch.train.evaluate import (
    average_precision_at,
    f1_at,
    image_to_image,
    mean_metrics,
    precision_at,
    read_text_queries,
    recall_at,
)
from imgsearch.train.splits import is_test_item

RANKED = [7, 3, 9, 1, 5]  # relevant items 3, 1 and 8 (8 never retrieved)
RELEVANT = {3, 1, 8}


def test_precision_recall_f1_by_hand():
    assert precision_at(RANKED, RELEVANT, 1) == 0.0
    assert precision_at(RANKED, RELEVANT, 2) == 0.5
    assert precision_at(RANKED, RELEVANT, 5) == 2 / 5
    assert recall_at(RANKED, RELEVANT, 2) == pytest.approx(1 / 3)
    assert recall_at(RANKED, RELEVANT, 5) == pytest.approx(2 / 3)
    # P@5 = 0.4, R@5 = 2/3 → F1 = 2·0.4·(2/3) / (0.4 + 2/3) = 0.5
    assert f1_at(RANKED, RELEVANT, 5) == pytest.approx(0.5)
    assert f1_at([7], RELEVANT, 1) == 0.0


def test_average_precision_by_hand():
    # hits at ranks 2 and 4: (1/2 + 2/4) / min(5, 3) = 1/3
    assert average_precision_at(RANKED, RELEVANT, 5) == pytest.approx(1 / 3)
    # k = 2: one hit at rank 2 → (1/2) / min(2, 3) = 0.25
    assert average_precision_at(RANKED, RELEVANT, 2) == pytest.approx(0.25)
    assert average_precision_at([1, 3, 8], RELEVANT, 3) == 1.0
    assert average_precision_at([1, 2], set(), 2) == 0.0


def test_mean_skips_queries_without_relevant_items():
    m = mean_metrics([([1, 2], {1}), ([1, 2], {2}), ([1, 2], set())], ks=(1, 2))
    assert m.queries == 2
    assert m.values["precision"][1] == 0.5
    assert m.values["recall"][2] == 1.0
    assert m.values["mAP"][2] == pytest.approx((1 + 0.5) / 2)


def test_image_to_image_excludes_the_query_and_uses_labels():
    # two tight clusters of 3 in 2-D; labels follow the clusters except one outlier
    vecs = np.array([[1, 0], [0.99, 0.1], [0.98, -0.1], [0, 1], [0.1, 0.99], [-0.1, 0.98]], np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    labels = ["a", "a", "a", "b", "b", None]
    m = image_to_image(vecs, labels, sample=None, ks=(1, 2))
    assert m.queries == 5
    # a-queries find their 2 cluster mates first; b-queries have 1 relevant (the unlabelled row is
    # not in the gallery) and find it first
    assert m.values["precision"][1] == 1.0
    assert m.values["recall"][2] == 1.0
    assert m.values["precision"][2] == pytest.approx((3 * 1.0 + 2 * 0.5) / 5)


def test_split_by_product_id():
    assert is_test_item("/x/10000.jpg") and not is_test_item("/x/10001.jpg")
    names = [f"/p/photo_{i}.jpg" for i in range(1000)]
    share = sum(map(is_test_item, names)) / len(names)
    assert 0.15 < share < 0.25


def test_queries_file_formats(tmp_path):
    csv_path = tmp_path / "q.csv"
    csv_path.write_text('query,relevant\nred handbags,"articleType=Handbags,baseColour=Red"\ncat,1;2\n')
    q = read_text_queries(csv_path)
    assert q[0].filters == {"articleType": "Handbags", "baseColour": "Red"}
    assert q[1].ids == {"1", "2"}
    jl = tmp_path / "q.jsonl"
    jl.write_text('{"query": "dog", "relevant": ["a", "b"]}\n')
    assert read_text_queries(jl)[0].ids == {"a", "b"}


def test_hit_rate():
    from imgsearch.train.evaluate import hit_at

    assert hit_at(RANKED, RELEVANT, 1) == 0.0
    assert hit_at(RANKED, RELEVANT, 2) == 1.0
