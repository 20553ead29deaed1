"""EpochCost: seconds per epoch from FLOPs and activations, fitted to measured epochs."""

from __future__ import annotations

import numpy as np
import pytest

from kerasnas.graph import Graph, generators
from kerasnas.oracle.cost import EpochCost, features

SHAPE = (28, 28, 1)


def measured_cnn(filters, dense_units):
    """The first CNN as it was when the times below were measured: two convolutions
    before the first pooling."""
    graph = Graph(SHAPE, 10)
    x = graph.input
    for width in (filters, filters, None, 2 * filters, None):
        if width is None:
            x = graph.add_layer("maxpool", x, pool_size=2)
        else:
            x = graph.add_layer("relu", graph.add_layer("conv", x, filters=width, kernel_size=3))
    x = graph.add_layer("dropout", graph.add_layer("flatten", x), rate=0.25)
    x = graph.add_layer("relu", graph.add_layer("dense", x, units=dense_units))
    graph.add_layer("head", graph.add_layer("dropout", x, rate=0.25))
    return graph


# Seconds of one epoch over 12,000 MNIST images at batch 128, measured on a 2-core CPU
# (2026-11): the DenseNet-like graph has the CNN's FLOPs and trains three times slower.
MEASURED = {
    "cnn8": (measured_cnn(8, 32), 2.54),
    "cnn16": (measured_cnn(16, 64), 3.50),
    "cnn32": (measured_cnn(32, 128), 11.08),
    "cnn64": (measured_cnn(64, 256), 21.15),
    "resnet16": (generators.resnet(SHAPE, 10), 24.19),
    "densenet16": (generators.densenet(SHAPE, 10), 36.06),
}


def test_nothing_measured_predicts_nothing():
    assert EpochCost().fit([]).predict(generators.cnn(SHAPE, 10)) is None


def test_one_measurement_scales_with_flops():
    small, large = generators.cnn(SHAPE, 10, filters=16), generators.cnn(SHAPE, 10)
    cost = EpochCost().fit([(small, 2.0)])
    assert cost.predict(small) == pytest.approx(2.0)
    assert cost.predict(large) == pytest.approx(2.0 * large.flops() / small.flops())


def test_recovers_a_cost_made_of_flops_and_activations():
    graphs = [g for g, _ in MEASURED.values()]
    truth = lambda g: 2e-7 * g.flops() + 5e-5 * g.activations() + 0.3  # noqa: E731
    cost = EpochCost().fit([(g, truth(g)) for g in graphs])
    other = generators.densenet(SHAPE, 10, filters=8, growth_rate=6)
    assert cost.predict(other) == pytest.approx(truth(other), rel=1e-3)
    assert np.allclose(cost.predict(graphs), [truth(g) for g in graphs], rtol=1e-3)


def test_activations_predict_the_densenet_where_flops_alone_miss_it():
    """Fitted to the CNNs and the ResNet, the model predicts the DenseNet's measured epoch
    within 1.6x; seconds per FLOP alone (the median rate) predicts under half of it."""
    graph, seconds = MEASURED["densenet16"]
    rest = [m for name, m in MEASURED.items() if name != "densenet16"]
    predicted = EpochCost().fit(rest).predict(graph)
    flops_only = np.median([s / g.flops() for g, s in rest]) * graph.flops()
    assert seconds / 1.6 < predicted < seconds * 1.6
    assert flops_only < seconds / 2


def test_ignores_unusable_times_and_gives_arrays_for_lists():
    graph = generators.cnn(SHAPE, 10)
    cost = EpochCost().fit([(graph, 0.0), (graph, float("nan")), (graph, 4.0)])
    assert cost.predict([graph, graph]) == pytest.approx([4.0, 4.0])
    assert features(graph) == (float(graph.flops()), float(graph.activations()))
