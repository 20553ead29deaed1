"""Proposals on hand-made observations: the kernel's distances and the candidate search."""

from __future__ import annotations

import numpy as np
import pytest

from kerasnas.graph import generators
from kerasnas.graph.distance import describe
from kerasnas.oracle.cost import EpochCost
from kerasnas.oracle.proposals import (
    CandidateSearch,
    EditDistances,
    fit_gp,
    graph_features,
    kernel_distances,
)
from kerasnas.oracle.schedule import BudgetSchedule

GRAPHS = generators.initial_graphs((8, 8, 1), 3)


def test_kernel_distances_have_four_channels_and_are_zero_on_the_diagonal():
    edit = EditDistances(lambda i: describe(GRAPHS[int(i)]))
    ids = [str(i) for i in range(len(GRAPHS))]
    matrix = edit.matrix(ids)
    features = graph_features(GRAPHS)
    distances = kernel_distances(matrix, features, features, [0, 1, 3], [0, 1, 3])
    assert distances.shape == (4, 3, 3)
    assert np.all(np.diagonal(distances, axis1=1, axis2=2) == 0)
    np.testing.assert_allclose(distances, np.swapaxes(distances, 1, 2))
    assert distances[3, 0, 2] == pytest.approx(2.0)  # |log2(1) - log2(4)|
    assert matrix[0, 1] > 0


def test_each_pair_of_trials_is_compared_once():
    asked = []
    edit = EditDistances(lambda i: asked.append(i) or describe(GRAPHS[int(i)]))
    edit.matrix(["0", "1"])
    before = len(asked)
    edit.matrix(["0", "1"])
    assert len(asked) == before
    edit.matrix(["0", "1", "2"])
    assert len(asked) > before


def make_search(remaining=None, fits=lambda g: True, **kwargs):
    observed = GRAPHS[:2]
    efforts = np.array([2.0, 2.0])
    y = np.array([0.8, 0.7])
    ids = ["0", "1"]
    edit = EditDistances(lambda i: describe(observed[int(i)])).matrix(ids)
    features = graph_features(observed)
    gp = fit_gp(kernel_distances(edit, features, features, efforts, efforts), y)
    parents = [(i, g, 2.0, s) for i, g, s in zip(ids, observed, y)]
    cost = EpochCost().fit([(g, 10.0 + i) for i, g in enumerate(observed)])
    search = CandidateSearch(
        gp,
        observed,
        [describe(g) for g in observed],
        efforts,
        y,
        schedule=BudgetSchedule(),
        fits=fits,
        tried={g.architecture_key() for g in observed},
        cost=cost,
        typical_epoch=10.0,
        remaining=remaining,
        budget=remaining,
        overhead=1.0,
        pool_size=8,
        **kwargs,
    )
    return search, parents


@pytest.mark.parametrize("remaining", [None, 1000.0])
def test_a_proposal_is_a_new_child_of_a_trained_parent_that_fits(remaining):
    limit = max(g.num_params() for g in GRAPHS[:2]) * 4
    search, parents = make_search(remaining, fits=lambda g: g.num_params() <= limit)
    graph, parent = search.propose(parents, np.random.default_rng(0))
    assert parent in {"0", "1"}
    assert graph.num_params() <= limit
    assert graph.architecture_key() not in {g.architecture_key() for g in GRAPHS[:2]}


def test_the_same_seed_gives_the_same_proposal():
    found = []
    for _ in range(2):
        search, parents = make_search(1000.0)
        graph, parent = search.propose(parents, np.random.default_rng(3))
        found.append((graph.architecture_key(), parent))
    assert found[0] == found[1]


def test_a_candidate_that_cannot_finish_an_epoch_in_the_time_left_is_never_proposed():
    search, parents = make_search(remaining=5.0)  # epochs take 10 s or more
    assert search.propose(parents, np.random.default_rng(0)) is None
    search, parents = make_search(remaining=5.0)
    search.parent_effort = {"0": 2.0, "1": 2.0}
    values = search.acquire([(GRAPHS[2], "0", 1)])
    assert values.shape == (1,) and values[0] == -np.inf


def test_the_random_ablation_draws_from_the_pool_the_search_scores():
    search, parents = make_search(1000.0)
    starts = [((g, i, 0), 0.0) for i, g, _, _ in parents]
    pool = {g.architecture_key() for g, _, _ in search.pool(starts, np.random.default_rng(4))}
    search, parents = make_search(1000.0)
    graph, parent = search.draw(parents, np.random.default_rng(4))
    assert graph.architecture_key() in pool and parent in {"0", "1"}
    drawn = set()
    for seed in range(6):
        search, parents = make_search(1000.0)
        drawn.add(search.draw(parents, np.random.default_rng(seed))[0].architecture_key())
    assert len(drawn) > 1  # not one candidate the acquisition would always pick


def test_the_random_ablation_draws_nothing_that_cannot_finish_an_epoch():
    search, parents = make_search(remaining=5.0)  # epochs take 10 s or more
    assert search.draw(parents, np.random.default_rng(0)) is None


def test_a_candidate_is_at_most_max_morphisms_from_its_parent():
    search, parents = make_search(max_morphisms=1)
    assert search.expand((GRAPHS[0], "0", 1), np.random.default_rng(0)) == []
    children = search.expand((GRAPHS[0], "0", 0), np.random.default_rng(0))
    assert children and all(steps == 1 and parent == "0" for _, parent, steps in children)


def test_a_long_search_fits_the_gp_to_its_best_half_and_its_latest_trials():
    from kerasnas.oracle.proposals import window

    ids = [f"{i:04d}" for i in range(10)]
    y = np.array([0.5, 0.9, 0.1, 0.8, 0.2, 0.3, 0.4, 0.0, 0.6, 0.7])
    kept, values = window(ids, y, limit=4)
    assert kept == ["0001", "0003", "0008", "0009"]  # the best two, then the latest two
    np.testing.assert_allclose(values, [0.9, 0.8, 0.6, 0.7])
    kept, values = window(ids, y, limit=5)  # the best two and the latest three
    assert kept == ["0001", "0003", "0007", "0008", "0009"]
    assert window(ids, y, limit=10)[0] == ids
