from __future__ import annotations

import numpy as np
import pytest

from kerasnas.graph import Graph, generators, keras_model, morphism, transfer, transfer_weights
from kerasnas.testing import randomize_batchnorm


def random_child(graph, rng, length):
    child = graph
    for _ in range(length):
        child = morphism.random_morphism(child, rng)
    return child


def test_transfer_across_generations(trained_parents, logits):
    """grandparent -> parent (trained further) -> child: each transfer is exact."""
    grandparent, grand_model, x = trained_parents("cnn", (8, 8, 1))
    rng = np.random.default_rng(7)
    parent = random_child(grandparent, rng, 3)
    parent_model = transfer(grandparent, grand_model, parent)
    parent_model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    parent_model.fit(x, np.arange(len(x)) % 3, batch_size=8, epochs=1, verbose=0)
    child = random_child(parent, rng, 4)
    model = transfer(parent, parent_model, child)
    np.testing.assert_allclose(logits(model, x), logits(parent_model, x), atol=1e-4, rtol=0)
    # The grandparent is an ancestor of the child too.
    far = transfer(grandparent, grand_model, child)
    assert far.count_params() == child.num_params()


def test_transfer_rejects_an_unrelated_child(trained_parents):
    parent, parent_model, _ = trained_parents("cnn", (8, 8, 1))
    stranger = morphism.wider(generators.resnet((8, 8, 1), 3), np.random.default_rng(0))
    with pytest.raises(morphism.MorphismError, match="does not descend"):
        transfer(parent, parent_model, stranger)


# ------------------------------------------------------------------ separable convolutions


def separable_graph():
    """conv - relu - sepconv - relu - sepconv - relu - gap - head, on 8x8x2 inputs."""
    g = Graph((8, 8, 2), 3)
    x = g.add_layer("relu", g.add_layer("conv", g.input, filters=4, kernel_size=3))
    x = g.add_layer("relu", g.add_layer("sepconv", x, filters=4, kernel_size=3))
    x = g.add_layer("relu", g.add_layer("sepconv", x, filters=6, kernel_size=3))
    g.add_layer("head", g.add_layer("gap", x))
    return g


def randomize(model, rng):
    """Random, clearly non-zero weights everywhere (positive batchnorm variances)."""
    for layer in model.layers:
        if layer.weights and layer.__class__.__name__ != "BatchNormalization":
            layer.set_weights(
                [rng.normal(0, 0.5, w.shape).astype("float32") for w in layer.weights]
            )
    randomize_batchnorm(model, rng)


@pytest.fixture(scope="module")
def separable_parent():
    rng = np.random.default_rng(0)
    graph = separable_graph()
    model = graph.to_keras()
    randomize(model, rng)
    x = rng.uniform(0, 1, (8, 8, 8, 2)).astype("float32")
    return graph, model, x


@pytest.mark.parametrize(
    "record",
    [
        {"op": "wider", "layer": "conv_0", "extra": [0, 3, 3]},  # sepconv_2 reads copies
        {"op": "wider", "layer": "sepconv_2", "extra": [1, 1, 2]},  # widens pointwise outputs
        {"op": "deeper", "tensor": "relu_3", "kernel_size": 3, "type": "sepconv"},
        {"op": "deeper", "tensor": "relu_3", "kernel_size": 5},
        {"op": "concat_skip", "src": "relu_1", "dst": "relu_3"},  # sepconv_4 reads new channels
        {"op": "add_skip", "src": "relu_1", "dst": "relu_5"},
    ],
    ids=lambda r: "-".join(str(v) for v in r.values()),
)
def test_separable_morphisms_preserve_the_function(record, separable_parent, logits):
    parent, parent_model, x = separable_parent
    child = morphism.apply(parent, record)
    model = transfer(parent, parent_model, child)
    assert model.count_params() == child.num_params()
    np.testing.assert_allclose(logits(model, x), logits(parent_model, x), atol=1e-5, rtol=0)


def test_separable_layers_are_widened_and_deepened(separable_parent):
    parent = separable_parent[0]
    wide = morphism.apply(parent, {"op": "wider", "layer": "sepconv_2", "extra": [0, 1]})
    assert wide.layer("sepconv_2")["config"]["filters"] == 6
    assert morphism.wider_group(parent, "sepconv_4") == ["sepconv_4"]
    # A graph with separable convolutions deepens with either kind.
    rng, names = np.random.default_rng(0), {layer["name"] for layer in parent.layers}
    inserted = set()
    for _ in range(40):
        child = morphism.deeper(parent, rng)
        inserted.add(next(la["type"] for la in child.layers if la["name"] not in names))
    assert inserted == {"conv", "sepconv", "dense"}


def test_new_input_channels_of_a_separable_conv_stay_trainable(separable_parent):
    parent, parent_model, _ = separable_parent
    weights = keras_model.get_weights(parent_model, parent)
    child = morphism.apply(parent, {"op": "concat_skip", "src": "relu_1", "dst": "relu_3"})
    depthwise, pointwise, _ = transfer_weights(parent, weights, child)["sepconv_4"]
    assert depthwise.shape == (3, 3, 8, 1) and pointwise.shape == (1, 1, 8, 6)
    np.testing.assert_array_equal(depthwise[:, :, :4], weights["sepconv_4"][0])
    # The 4 new channels: identity depthwise filters, zero pointwise weights.
    assert np.all(depthwise[1, 1, 4:] == 1) and np.abs(depthwise[:, :, 4:]).sum() == 4
    assert not pointwise[:, :, 4:].any()


def test_random_morphisms_of_a_separable_cnn_preserve_the_function(logits):
    rng = np.random.default_rng(1)
    # 16x16: two stages, the second separable (an 8x8 CNN has one convolution, a full one).
    parent = generators.cnn((16, 16, 1), 3, filters=4, dense_units=8, separable=True)
    parent_model = parent.to_keras()
    randomize(parent_model, rng)
    x = rng.uniform(0, 1, (8, 16, 16, 1)).astype("float32")
    expected = logits(parent_model, x)
    types = set()
    for _ in range(6):
        child = random_child(parent, rng, int(rng.integers(2, 6)))
        types |= {layer["type"] for layer in child.layers}
        assert Graph.from_json(child.to_json()) == child
        model = transfer(parent, parent_model, child)
        assert model.count_params() == child.num_params()
        np.testing.assert_allclose(logits(model, x), expected, atol=1e-4, rtol=0)
    assert "sepconv" in types
