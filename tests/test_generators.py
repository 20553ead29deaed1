from __future__ import annotations

import pytest

from kerasnas.graph import generators

ALL_SHAPES = [(28, 28, 1), (8, 8, 1), (32, 32, 3), (64, 64, 3)]


@pytest.mark.parametrize("shape", ALL_SHAPES)
@pytest.mark.parametrize("name", sorted(generators.GENERATORS))
def test_generators_build_models_sized_to_the_input(name, shape):
    graph = generators.GENERATORS[name](shape, 10)
    model = graph.to_keras()
    assert model.input_shape == (None, *shape)
    assert model.output_shape == (None, 10)
    assert model.count_params() == graph.num_params()
    # Pooling stops while the feature maps are still at least 4 pixels across.
    smallest = min(s[0] for s in graph.shapes().values() if len(s) == 3)
    assert 4 <= smallest <= 8
    assert graph.history == []


def test_regression_generators_have_linear_heads():
    for make in generators.GENERATORS.values():
        graph = make((8, 8, 1), 2, task="regression")
        assert graph.to_keras().layers[-1].name == "head"


def test_initial_graphs_are_cheapest_first():
    graphs = generators.initial_graphs((28, 28, 1), 10)
    flops = [g.flops() for g in graphs]
    assert flops == sorted(flops)
    assert len({g.architecture_key() for g in graphs}) == 3


def test_resnet_has_residual_adds_and_densenet_concats():
    resnet = generators.resnet((28, 28, 1), 10)
    densenet = generators.densenet((28, 28, 1), 10)
    assert sum(layer["type"] == "add" for layer in resnet.layers) == 3
    assert sum(layer["type"] == "concat" for layer in densenet.layers) == 9
    assert len(resnet.layers) >= 20


@pytest.mark.parametrize("shape", ALL_SHAPES)
def test_the_cnn_pools_after_every_convolution_as_the_textbook_convnet_does(shape):
    graph = generators.cnn(shape, 10)
    convs = [layer["name"] for layer in graph.layers if layer["type"] == "conv"]
    full_resolution = [n for n in convs if graph.shape(n)[:2] == tuple(shape[:2])]
    assert full_resolution == convs[:1]  # only the first sees the whole image
    pools = [layer["name"] for layer in graph.layers if layer["type"] == "maxpool"]
    assert len(pools) == len(convs)


def test_cnn_can_use_separable_convolutions():
    plain = generators.cnn((28, 28, 1), 10)
    separable = generators.cnn((28, 28, 1), 10, separable=True)
    types = [layer["type"] for layer in separable.layers]
    assert (types.count("conv"), types.count("sepconv")) == (1, 1)  # the stem stays a conv
    assert "sepconv" not in {layer["type"] for layer in plain.layers}
    assert separable.flops() < plain.flops() / 3
    assert separable.to_keras().count_params() == separable.num_params()
    assert separable.depth() == plain.depth()
