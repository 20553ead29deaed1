"""Compiles a `Graph` into a functional `keras.Model` (the only Keras code in `graph/`).

Each layer's spec (`kerasnas.graph.layers`) builds its Keras layer from the
`keras` module this file passes in, so the specs themselves never import Keras.
"""

from __future__ import annotations

import keras

from kerasnas.graph.graph import INPUT
from kerasnas.graph.layers import SPECS


def build(graph, name=None):
    """Returns an uncompiled functional `keras.Model` for `graph`.

    Layer names are the graph's; classification graphs end in a softmax layer
    named `predictions` after the logits of `head`.
    """
    if graph.output is None:
        raise ValueError("The graph has no `head` layer; add one before building a model.")
    inputs = keras.Input(shape=graph.input_shape, name=INPUT)
    tensors = {INPUT: inputs}
    for layer in graph.layers:
        args = [tensors[t] for t in layer["inputs"]]
        keras_layer = SPECS[layer["type"]].build(keras, layer, graph)
        tensors[layer["name"]] = keras_layer(args if len(args) > 1 else args[0])
    outputs = tensors[graph.output]
    if graph.task == "classification":
        outputs = keras.layers.Activation("softmax", name="predictions")(outputs)
    return keras.Model(inputs, outputs, name=name or "kerasnas_graph")


def get_weights(model, graph):
    """Returns `{layer name: [numpy arrays]}` for the graph's layers that carry weights."""
    weights = {}
    for layer in graph.layers:
        if SPECS[layer["type"]].weights:
            values = model.get_layer(layer["name"]).get_weights()
            weights[layer["name"]] = [w.copy() for w in values]
    return weights


def set_weights(model, weights):
    """Loads `{layer name: [numpy arrays]}` into the layers of `model` of those names."""
    for name, values in weights.items():
        model.get_layer(name).set_weights(values)
