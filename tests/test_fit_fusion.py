"""recipes/fusion.py's fit: the weights it ships score at least as well as every single space on
the queries it fits, and better where the spaces know different things."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from recipes import fusion as fit_fusion


def _table(rng: np.random.Generator, n_queries: int = 40) -> list:
    """Two spaces over 30 candidates, 5 relevant each: space 0 knows the even queries (relevant
    items score high there, noise elsewhere), space 1 the odd ones, and both a little of all."""
    table = []
    for q in range(n_queries):
        relevant = set(rng.choice(30, 5, replace=False).tolist())
        z = rng.normal(size=(2, 30)).astype(np.float32)
        mask = np.isin(np.arange(30), list(relevant))
        z[q % 2, mask] += 3.0
        z[1 - q % 2, mask] += 0.8
        table.append((np.arange(30), z, relevant))
    return table


def test_the_fitted_weights_beat_every_single_space_they_could_have_picked():
    rng = np.random.default_rng(0)
    fit = fit_fusion.fit(_table(rng), 2)
    best = max(fit["results"][clip][i].mean() for clip, i in fit["best_by_clip"].items())
    # P@10 of 5 relevant is at most 0.5; each space alone misses some of half the queries
    assert best >= max(fit["singles"]) + 0.05
    assert 0 < fit["cv"] <= best + 1e-6  # folds held out of the choice score no higher
    picked = fit["combos"][fit["best_by_clip"][None]]
    assert picked[0] > 0 and picked[1] > 0


def test_one_space_that_knows_everything_keeps_the_others_from_lowering_it():
    rng = np.random.default_rng(1)
    table = [(c, np.stack([z[0], rng.normal(size=30).astype(np.float32)]), r) for c, z, r in _table(rng)]
    for _, z, relevant in table:  # space 0 now knows every query; space 1 is noise
        z[0, list(relevant)] += 3.0
    fit = fit_fusion.fit(table, 2)
    best = fit["results"][None][fit["best_by_clip"][None]].mean()
    assert best >= fit["singles"][0] and fit["singles"][0] > fit["singles"][1]
