from __future__ import annotations

import json

import numpy as np
import pytest

from kerasnas.graph import Graph


def small_graph(task="classification"):
    g = Graph((8, 8, 1), 3, task)
    x = g.add_layer("conv", g.input, filters=4, kernel_size=3)
    x = g.add_layer("batchnorm", x)
    a = g.add_layer("relu", x)
    b = g.add_layer("conv", a, filters=4, kernel_size=1)
    x = g.add_layer("add", [a, b])
    c = g.add_layer("concat", [x, a])
    x = g.add_layer("maxpool", c, pool_size=3)
    x = g.add_layer("flatten", x)
    x = g.add_layer("dropout", x, rate=0.5)
    x = g.add_layer("dense", x, units=5)
    g.add_layer("head", x)
    return g


def test_shapes_follow_the_layers():
    g = small_graph()
    assert g.shape("concat_5") == (8, 8, 8)
    assert g.shape("maxpool_6") == (3, 3, 8)  # "same" pooling rounds up
    assert g.shape("flatten_7") == (72,)
    assert g.shape("head") == (3,)
    assert g.output == "head"


def test_num_params_matches_keras_and_names_are_stable():
    g = small_graph()
    model = g.to_keras()
    assert model.count_params() == g.num_params()
    names = {layer.name for layer in model.layers}
    assert {layer["name"] for layer in g.layers} <= names
    assert "predictions" in names
    assert model.output_shape == (None, 3)


def test_regression_head_is_linear():
    model = small_graph("regression").to_keras()
    assert model.layers[-1].name == "head"
    x = np.random.default_rng(0).normal(size=(4, 8, 8, 1)).astype("float32")
    out = np.asarray(model(x))
    assert not np.allclose(out.sum(axis=1), 1.0)


def test_json_round_trip_is_exact():
    g = small_graph()
    g.history.append({"op": "wider", "layer": "conv_0", "extra": [1, 2]})
    text = g.to_json()
    again = Graph.from_json(text)
    assert again.to_json() == text
    assert again == g
    assert again.num_params() == g.num_params()


def test_flops_grow_with_width():
    narrow = small_graph()
    wide = small_graph()
    wide.layer("dense_9")["config"]["units"] = 50
    wide._shapes = None
    assert 0 < narrow.flops() < wide.flops()


def test_copy_is_independent():
    g = small_graph()
    c = g.copy()
    c.layer("conv_0")["config"]["filters"] = 99
    assert g.layer("conv_0")["config"]["filters"] == 4


@pytest.mark.parametrize(
    "text, match",
    [
        ("not json", "Expected the JSON text of a kerasnas Graph"),
        ("[1, 2]", "Expected a JSON object"),
        (json.dumps({"format": "other"}), "format='other'"),
    ],
)
def test_from_json_rejects_what_is_not_a_graph(text, match):
    with pytest.raises(ValueError, match=match):
        Graph.from_json(text)


def test_bad_layers_are_rejected_with_reasons():
    g = Graph((8, 8, 1), 2)
    with pytest.raises(ValueError, match="reads \\['nowhere'\\]"):
        g.add_layer("relu", "nowhere")
    a = g.add_layer("conv", g.input, filters=4, kernel_size=3)
    b = g.add_layer("conv", g.input, filters=5, kernel_size=3)
    with pytest.raises(ValueError, match="needs equal input shapes"):
        g.add_layer("add", [a, b])
    with pytest.raises(ValueError, match="needs config keys \\['filters'\\]"):
        g.add_layer("conv", a, kernel_size=3)
    with pytest.raises(ValueError, match="needs a flat input"):
        g.add_layer("dense", a, units=3)
    with pytest.raises(ValueError, match="unknown type 'lstm'"):
        g.add_layer("lstm", a)
    assert [layer["name"] for layer in g.layers] == [a, b]  # failed additions left nothing


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"input_shape": (8, 8), "num_outputs": 2}, "input_shape"),
        ({"input_shape": (8, 8, 1), "num_outputs": 0}, "num_outputs"),
        ({"input_shape": (8, 8, 1), "num_outputs": 2, "task": "ranking"}, "task"),
    ],
)
def test_constructor_checks_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Graph(**kwargs)


def test_model_without_head_is_an_error():
    g = Graph((8, 8, 1), 2)
    g.add_layer("conv", g.input, filters=4, kernel_size=3)
    with pytest.raises(ValueError, match="no `head` layer"):
        g.to_keras()


def test_numpy_ints_in_config_still_build():
    g = Graph((np.int64(8), 8, 1), np.int64(2))
    x = g.add_layer("conv", g.input, filters=np.int64(4), kernel_size=np.int64(3))
    g.add_layer("head", g.add_layer("gap", x))
    assert g.to_keras().count_params() == g.num_params()
