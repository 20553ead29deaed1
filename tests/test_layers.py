from __future__ import annotations

import subprocess
import sys

import pytest

from kerasnas.graph import Graph, layers


def every_type_graph():
    """A tiny graph that uses every registered layer type at least once."""
    g = Graph((8, 8, 2), 3)
    a = g.add_layer("conv", g.input, filters=4, kernel_size=3)
    x = g.add_layer("batchnorm", a)
    x = g.add_layer("relu", x)
    b = g.add_layer("sepconv", x, filters=4, kernel_size=3)
    x = g.add_layer("add", [a, b])
    x = g.add_layer("concat", [x, b])
    p = g.add_layer("maxpool", x, pool_size=2)
    q = g.add_layer("avgpool", x, pool_size=2)
    x = g.add_layer("flatten", p)
    x = g.add_layer("dropout", x, rate=0.5)
    x = g.add_layer("dense", x, units=5)
    y = g.add_layer("gap", q)
    x = g.add_layer("concat", [x, y])
    g.add_layer("head", x)
    return g


def test_the_test_graph_covers_the_registry():
    assert {layer["type"] for layer in every_type_graph().layers} == set(layers.SPECS)
    assert all(spec.type == name for name, spec in layers.SPECS.items())


def test_each_spec_agrees_with_its_keras_layer():
    g = every_type_graph()
    model = g.to_keras()
    shapes = g.shapes()
    for layer in g.layers:
        spec = layers.SPECS[layer["type"]]
        keras_layer = model.get_layer(layer["name"])
        in_shapes = [shapes[t] for t in layer["inputs"]]
        assert tuple(keras_layer.output.shape[1:]) == shapes[layer["name"]], layer["name"]
        params = spec.num_params(layer["config"], in_shapes, shapes[layer["name"]])
        assert keras_layer.count_params() == params, layer["name"]
        names = [w.path.split("/")[-1] for w in keras_layer.weights]
        assert names == list(spec.weights), layer["name"]
    assert model.count_params() == g.num_params()


def test_separable_conv_size_flops_summary_and_json():
    g = Graph((8, 8, 2), 3)
    x = g.add_layer("sepconv", g.input, filters=5, kernel_size=3)
    g.add_layer("head", g.add_layer("gap", x))
    # depthwise 3*3*2, pointwise 2*5, bias 5; head 5*3 + 3
    assert g.num_params() == 18 + 10 + 5 + 18
    depthwise = 8 * 8 * 2 * 2 * 9
    pointwise = 8 * 8 * 5 * (2 * 2 + 1)
    head = 3 * (2 * 5 + 1)
    assert g.flops() == depthwise + pointwise + 8 * 8 * 5 + head + 3 * 3
    assert g.summary() == "sepconv3x3:5-gap-head3"
    assert g.depth() == 2
    assert Graph.from_json(g.to_json()) == g
    assert g.to_keras().count_params() == g.num_params()


def test_unknown_and_malformed_layers_name_the_problem():
    g = Graph((8, 8, 1), 2)
    with pytest.raises(ValueError, match="unknown type 'lstm'; expected one of"):
        g.add_layer("lstm", g.input)
    with pytest.raises(ValueError, match="\\(sepconv\\) needs config keys \\['kernel_size'\\]"):
        g.add_layer("sepconv", g.input, filters=4)
    with pytest.raises(ValueError, match="\\(concat\\) needs 2 or more inputs; got 1"):
        g.add_layer("concat", [g.input])
    with pytest.raises(ValueError, match="\\(gap\\) needs an \\(H, W, C\\) input"):
        g.add_layer("gap", g.add_layer("flatten", g.input))


def test_the_graph_package_never_imports_tensorflow():
    code = (
        "import sys, numpy as np\n"
        "from kerasnas.graph import edit_distance, generators, morphism, transfer_weights\n"
        "g = generators.cnn((8, 8, 1), 3, separable=True)\n"
        "c = morphism.random_morphism(g, np.random.default_rng(0))\n"
        "c.num_params(), c.flops(), c.summary(), edit_distance(g, c)\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('keras', 'tensorflow')]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
