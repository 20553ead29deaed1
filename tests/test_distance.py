from __future__ import annotations

import numpy as np
import pytest

from kerasnas.graph import Graph, edit_distance, generators, morphism
from kerasnas.graph.distance import describe, edit_distances


def chain(graph, rng, length):
    graphs = [graph]
    for _ in range(length):
        graphs.append(morphism.random_morphism(graphs[-1], rng))
    return graphs


@pytest.mark.parametrize("name", sorted(generators.GENERATORS))
def test_zero_for_equal_and_symmetric(name):
    g = generators.GENERATORS[name]((28, 28, 1), 10)
    assert edit_distance(g, Graph.from_json(g.to_json())) == 0
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = chain(g, rng, int(rng.integers(0, 4)))[-1]
        b = chain(g, rng, int(rng.integers(0, 4)))[-1]
        assert edit_distance(a, b) == pytest.approx(edit_distance(b, a))
        assert edit_distance(a, b) >= 0


@pytest.mark.parametrize("name", sorted(generators.GENERATORS))
def test_grows_as_morphisms_accumulate(name):
    rng = np.random.default_rng(1)
    root = generators.GENERATORS[name]((32, 32, 3), 10)
    for _ in range(10):
        graphs = chain(root, rng, 6)
        distances = [edit_distance(root, g) for g in graphs]
        assert distances[0] == 0
        assert all(later >= earlier for earlier, later in zip(distances, distances[1:]))
        assert distances[-1] > 0


def test_known_values():
    g = generators.cnn((28, 28, 1), 10)
    layers = describe(g).layers
    assert [kind for kind, _, _ in layers] == ["conv", "conv", "dense", "head"]
    # Doubling one conv layer's width costs |32 - 64| / 64.
    wide = g.copy()
    wide.layer(g.layers[0]["name"])["config"]["filters"] = 64
    wide.invalidate()
    assert edit_distance(g, wide) == pytest.approx(0.5)
    # An inserted layer costs 1; a new skip connection costs 1.
    deeper = morphism.apply(g, {"op": "deeper", "tensor": g.layers[1]["name"], "kernel_size": 3})
    assert edit_distance(g, deeper) == pytest.approx(1.0)
    assert len(describe(generators.resnet((28, 28, 1), 10)).skips) == 3


def test_different_generators_are_far_apart():
    cnn = generators.cnn((28, 28, 1), 10)
    resnet = generators.resnet((28, 28, 1), 10)
    near = morphism.wider(cnn, np.random.default_rng(0))
    assert edit_distance(cnn, resnet) > edit_distance(cnn, near)


def reference_layers_distance(la, lb):
    """The textbook O(n m) dynamic programme, one cell at a time."""

    family = {"sepconv": "conv"}

    def cost(a, b):
        if family.get(a[0], a[0]) != family.get(b[0], b[0]):
            return 1.0
        return min(
            1.0, abs(a[1] - b[1]) / max(a[1], b[1]) + 0.25 * ((a[2] != b[2]) + (a[0] != b[0]))
        )

    table = np.zeros((len(la) + 1, len(lb) + 1))
    table[:, 0] = np.arange(len(la) + 1)
    table[0, :] = np.arange(len(lb) + 1)
    for i in range(1, len(la) + 1):
        for j in range(1, len(lb) + 1):
            table[i, j] = min(
                table[i - 1, j] + 1,
                table[i, j - 1] + 1,
                table[i - 1, j - 1] + cost(la[i - 1], lb[j - 1]),
            )
    return table[-1, -1]


def test_batched_distances_match_the_textbook_programme():
    rng = np.random.default_rng(2)
    graphs = chain(generators.cnn((28, 28, 1), 10, separable=True), rng, 5)
    for name in sorted(generators.GENERATORS):
        graphs += chain(generators.GENERATORS[name]((28, 28, 1), 10), rng, 5)
    matrix = edit_distances(graphs[::3], graphs)
    assert matrix.shape == (len(graphs[::3]), len(graphs))
    for a, batched in zip(graphs[::3], matrix):
        for b, got in zip(graphs, batched):
            expected = reference_layers_distance(describe(a).layers, describe(b).layers)
            skips = edit_distance(describe(a)._replace(layers=()), describe(b)._replace(layers=()))
            assert got == pytest.approx(expected + skips)


def test_separable_convs_are_near_convs():
    plain = generators.cnn((28, 28, 1), 10)
    separable = generators.cnn((28, 28, 1), 10, separable=True)
    assert [kind for kind, _, _ in describe(separable).layers][:2] == ["conv", "sepconv"]
    # One layer of the conv family with another type: 0.25.
    assert edit_distance(plain, separable) == pytest.approx(0.25)
    dense = separable.copy()
    dense.layers = [layer for layer in dense.layers if layer["type"] != "sepconv"]
    for layer in dense.layers:
        layer["inputs"] = ["conv_0" if t.startswith("sepconv") else t for t in layer["inputs"]]
    dense.invalidate()
    assert edit_distance(separable, dense) == pytest.approx(1.0)  # one layer fewer


def test_few_skips_are_matched_as_the_assignment_would(monkeypatch):
    from kerasnas.graph import distance

    rng = np.random.default_rng(5)

    def skips():
        found = [(int(rng.integers(7)), int(rng.integers(6)), str(rng.choice(["add", "concat"])))
                 for _ in range(int(rng.integers(1, 5)))]  # fmt: skip
        return tuple(sorted(found))

    pairs = [(skips(), skips()) for _ in range(300)]
    by_trying = [distance._skips_distance.__wrapped__(a, b) for a, b in pairs]
    monkeypatch.setattr(distance, "_FEW_SKIPS", 0)  # every pair by linear_sum_assignment
    by_assignment = [distance._skips_distance.__wrapped__(a, b) for a, b in pairs]
    assert by_trying == pytest.approx(by_assignment)
    assert any(0 < d < 1 for d in by_trying)  # partial matches, not only whole ones
