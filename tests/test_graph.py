from __future__ import annotations

import json

import numpy as np
import pytest

from kerasnas.graph import Graph, edit_distance, generators, morphism
from kerasnas.graph.distance import describe


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
    wide.invalidate()
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


# Written by kerasnas before layer specs existed: old run directories must still load.
OLD_RUN_GRAPH = (
    '{"format":"kerasnas.graph/1","history":[{"dst":"maxpool_4","op":"concat_skip","src":'
    '"relu_1"},{"kernel_size":1,"op":"deeper","tensor":"maxpool_4"},{"extra":[0,3],"layer'
    '":"conv_2","op":"wider"},{"dst":"relu_14","op":"add_skip","src":"relu_1"},{"extra":['
    '4,2,5,0,3,4],"layer":"conv_2","op":"wider"}],"input_shape":[8,8,1],"layers":[{"confi'
    'g":{"filters":4,"kernel_size":3},"inputs":["input"],"name":"conv_0","type":"conv"},{'
    '"config":{},"inputs":["conv_0"],"name":"relu_1","type":"relu"},{"config":{"filters":'
    '12,"kernel_size":3},"inputs":["relu_1"],"name":"conv_2","type":"conv"},{"config":{},'
    '"inputs":["conv_2"],"name":"relu_3","type":"relu"},{"config":{"pool_size":2},"inputs'
    '":["relu_3"],"name":"maxpool_4","type":"maxpool"},{"config":{"filters":4,"kernel_siz'
    'e":1},"inputs":["maxpool_4"],"name":"conv_12","type":"conv"},{"config":{},"inputs":['
    '"conv_12"],"name":"batchnorm_13","type":"batchnorm"},{"config":{},"inputs":["batchno'
    'rm_13"],"name":"relu_14","type":"relu"},{"config":{"pool_size":2},"inputs":["relu_1"'
    '],"name":"maxpool_15","type":"maxpool"},{"config":{"filters":4,"kernel_size":1},"inp'
    'uts":["maxpool_15"],"name":"conv_16","type":"conv"},{"config":{},"inputs":["relu_14"'
    ',"conv_16"],"name":"add_17","type":"add"},{"config":{"pool_size":2},"inputs":["relu_'
    '1"],"name":"maxpool_10","type":"maxpool"},{"config":{},"inputs":["add_17","maxpool_1'
    '0"],"name":"concat_11","type":"concat"},{"config":{},"inputs":["concat_11"],"name":"'
    'flatten_5","type":"flatten"},{"config":{"rate":0.25},"inputs":["flatten_5"],"name":"'
    'dropout_6","type":"dropout"},{"config":{"units":8},"inputs":["dropout_6"],"name":"de'
    'nse_7","type":"dense"},{"config":{},"inputs":["dense_7"],"name":"relu_8","type":"rel'
    'u"},{"config":{"rate":0.25},"inputs":["relu_8"],"name":"dropout_9","type":"dropout"}'
    ',{"config":{},"inputs":["dropout_9"],"name":"head","type":"head"}],"next_id":18,"num'
    '_outputs":3,"task":"classification"}'
)


def first_cnn_of_0_1_0():
    """The first CNN kerasnas 0.1.0 made for 8x8 images at 4 filters: two convolutions
    before its one pooling (today's pools after every convolution)."""
    g = Graph((8, 8, 1), 3)
    x = g.add_layer("relu", g.add_layer("conv", g.input, filters=4, kernel_size=3))
    x = g.add_layer("relu", g.add_layer("conv", x, filters=4, kernel_size=3))
    x = g.add_layer(
        "dropout", g.add_layer("flatten", g.add_layer("maxpool", x, pool_size=2)), rate=0.25
    )
    x = g.add_layer("relu", g.add_layer("dense", x, units=8))
    g.add_layer("head", g.add_layer("dropout", x, rate=0.25))
    return g


def test_a_graph_saved_by_an_earlier_version_loads_unchanged():
    g = Graph.from_json(OLD_RUN_GRAPH)
    assert g.to_json() == OLD_RUN_GRAPH
    assert (g.num_params(), g.flops(), g.depth()) == (1631, 67788, 5)
    assert g.summary() == (
        "conv3x3:4-conv3x3:12-maxpool2-conv1x1:4-maxpool2-conv1x1:4-add-maxpool2-concat"
        "-flatten-dense8-head3"
    )
    assert describe(g).layers == (
        ("conv", 4, 3),
        ("conv", 12, 3),
        ("conv", 4, 1),
        ("dense", 8, 0),
        ("head", 3, 0),
    )
    base = first_cnn_of_0_1_0()  # the graph that run grew from
    assert edit_distance(g, base) == 3.25
    replayed = base
    for record in g.history:  # the morphisms still replay to the same graph
        replayed = morphism.apply(replayed, record)
    assert replayed == g


def test_invalidate_forgets_derived_shapes():
    g = small_graph()
    g.layer("dense_9")["config"]["units"] = 6
    assert g.shape("dense_9") == (5,)  # cached
    g.invalidate()
    assert g.shape("dense_9") == (6,)


def test_insert_layer_checks_the_new_layer_against_its_place():
    g = small_graph()
    g.shapes()  # a valid cache: the insertion is checked incrementally
    with pytest.raises(ValueError, match="reads \\['relu_2'\\], which no earlier layer makes"):
        g.insert_layer(0, {"name": "x", "type": "relu", "inputs": ["relu_2"], "config": {}})
    with pytest.raises(ValueError, match="Duplicate layer name 'dense_9'"):
        g.insert_layer(0, {"name": "dense_9", "type": "relu", "inputs": ["input"], "config": {}})
    assert g == small_graph()
    g.insert_layer(1, {"name": "x", "type": "relu", "inputs": ["conv_0"], "config": {}})
    assert list(g.shapes())[:3] == ["input", "conv_0", "x"]
    assert g.shapes() == Graph.from_json(g.to_json()).shapes()


# ---------------------------------------------------------------- a graph read from a file


def edited(change):
    """The config of `small_graph()` after `change(config)`, as `from_config` gets it."""
    config = small_graph().get_config()
    change(config)
    return config


def set_layer(index, **fields):
    return lambda config: config["layers"][index].update(fields)


def reads(index, *inputs):
    return set_layer(index, inputs=list(inputs))


@pytest.mark.parametrize(
    "change, match",
    [
        (set_layer(0, type="Lambda"), r"'conv_0' has unknown type 'Lambda'; expected one of"),
        (
            set_layer(0, config={"filters": 10**9, "kernel_size": 3}),
            r"'conv_0' \(conv\) needs `filters` to be an int from 1 to 1,048,576\. "
            r"Received: filters=1000000000",
        ),
        (set_layer(0, config={"filters": 4.5, "kernel_size": 3}), r"Received: filters=4\.5"),
        (set_layer(0, config={"filters": 4, "kernel_size": True}), r"kernel_size=True"),
        (set_layer(8, config={"rate": 1.5}), r"'dropout_8' \(dropout\) needs `rate` .* \[0, 1\)"),
        (reads(1, "conv_99"), r"'batchnorm_1' reads 'conv_99', which no layer makes"),
        (reads(1, "batchnorm_1"), r"'batchnorm_1' reads itself: a graph has no cycles"),
        (reads(1, "relu_2"), r"'batchnorm_1' reads 'relu_2', which comes after it"),
        (set_layer(1, name="conv_0"), r"Duplicate layer name 'conv_0'"),
        (set_layer(1, inputs="conv_0"), r"Layer 1 of the graph is not a dict with a `name`"),
        (lambda c: c.update(input_shape=[8, 8, 10**9]), r"Received: input_shape=\[8, 8, 1000"),
        (lambda c: c.update(num_outputs="3"), r"Expected `num_outputs` to be an int"),
        (lambda c: c.update(history=[{}]), r"Expected `history` to be a list of morphism"),
        (lambda c: c.update(layers={}), r"Expected `layers` to be a list"),
        (lambda c: c.pop("next_id"), r"The graph config lacks \['next_id'\]"),
    ],
)
def test_a_graph_from_a_file_is_checked_before_anything_is_built(change, match):
    config = edited(change)
    with pytest.raises(ValueError, match=match):
        Graph.from_config(config)
    with pytest.raises(ValueError, match=match):
        Graph.from_json(json.dumps(config))


def test_too_many_layers_are_refused_before_their_shapes():
    layers = [
        {"name": f"relu_{i}", "type": "relu", "inputs": ["input"], "config": {}}
        for i in range(10**6)
    ]
    config = edited(lambda c: c.update(layers=layers))
    with pytest.raises(ValueError, match=r"1,000,000 layers, more than the 20,000 kerasnas"):
        Graph.from_config(config)


def test_parameters_over_the_cap_are_refused_from_the_shapes_alone():
    # Each size is allowed; together the dense layer would allocate 4e12 weights.
    g = Graph((2048, 2048, 1), 3)
    x = g.add_layer("conv", g.input, filters=1024, kernel_size=1)
    g.add_layer("head", g.add_layer("dense", g.add_layer("flatten", x), units=1000))
    with pytest.raises(
        ValueError, match=r"has 4,294,967,302,051 parameters, more than the 1,000,000,000 "
    ):
        Graph.from_json(g.to_json())
    with pytest.raises(ValueError, match=r"more than the 100 kerasnas builds"):
        Graph.from_config(small_graph().get_config(), max_params=100)


def test_deep_or_huge_graph_json_is_refused_unparsed():
    deep = '{"format": "kerasnas.graph/1", "history": ' + "[" * 100_000 + "]" * 100_000 + "}"
    with pytest.raises(
        ValueError, match="Graph: nested 100001 levels deep; kerasnas writes no JSON"
    ):
        Graph.from_json(deep)


def test_every_graph_the_search_grows_reads_back():
    rng = np.random.default_rng(0)
    for g in generators.initial_graphs((16, 16, 3), 10):
        for _ in range(40):
            g = morphism.random_morphism(g, rng)
            assert Graph.from_json(g.to_json()) == g


def test_a_child_lists_the_morphisms_since_its_parent():
    rng = np.random.default_rng(0)
    parent = morphism.random_morphism(generators.cnn((8, 8, 1), 3), rng)
    child = morphism.random_morphism(morphism.random_morphism(parent, rng), rng)
    assert child.morphisms_since(parent) == child.history[1:] and len(child.history) == 3
    assert parent.morphisms_since(parent) == []
    assert [r["op"] for r in child.morphisms_since(generators.cnn((8, 8, 1), 3))] == [
        r["op"] for r in child.history
    ]
