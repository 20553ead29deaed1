from __future__ import annotations

import numpy as np

from kerasnas.oracle.annealing import anneal


def test_finds_the_peak_of_a_one_dimensional_objective():
    peak = 37
    value = lambda xs: np.array([-abs(x - peak) for x in xs], dtype=float)
    expand = lambda x, rng: [x + 1, x + 2, x - 1]
    best, best_value = anneal(
        [(0, value([0])[0])], expand, value, np.random.default_rng(0), alpha=0.95, t_min=0.01
    )
    assert best == peak and best_value == 0


def test_start_items_are_never_returned_and_no_children_means_none():
    best, value = anneal(
        [(5, 1.0)], lambda x, rng: [], lambda xs: np.ones(len(xs)), np.random.default_rng(0)
    )
    assert best is None and value == -np.inf


def test_seeded_runs_agree():
    value = lambda xs: np.array([np.sin(x / 3.0) for x in xs])
    expand = lambda x, rng: [x + int(rng.integers(1, 5)), x - int(rng.integers(1, 5))]
    runs = [anneal([(0, 0.0)], expand, value, np.random.default_rng(3)) for _ in range(2)]
    assert runs[0] == runs[1]
