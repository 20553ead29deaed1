"""Compiles a `Graph` into a functional `keras.Model` (the only Keras code in `graph/`)."""

from __future__ import annotations

import keras

from kerasnas.graph.graph import BN_EPSILON, INPUT


def _make_layer(graph, layer):
    name, kind, c = layer["name"], layer["type"], layer["config"]
    if kind == "conv":
        k = int(c["kernel_size"])
        return keras.layers.Conv2D(int(c["filters"]), (k, k), padding="same", name=name)
    if kind == "batchnorm":
        return keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=name)
    if kind == "relu":
        return keras.layers.ReLU(name=name)
    if kind in ("maxpool", "avgpool"):
        p = int(c["pool_size"])
        cls = keras.layers.MaxPooling2D if kind == "maxpool" else keras.layers.AveragePooling2D
        return cls(pool_size=p, strides=p, padding="same", name=name)
    if kind == "gap":
        return keras.layers.GlobalAveragePooling2D(name=name)
    if kind == "flatten":
        return keras.layers.Flatten(name=name)
    if kind == "dense":
        return keras.layers.Dense(int(c["units"]), name=name)
    if kind == "head":
        return keras.layers.Dense(graph.num_outputs, name=name)
    if kind == "dropout":
        return keras.layers.Dropout(float(c["rate"]), name=name)
    if kind == "add":
        return keras.layers.Add(name=name)
    if kind == "concat":
        return keras.layers.Concatenate(axis=-1, name=name)
    raise ValueError(f"Layer {name!r} has unknown type {kind!r}.")


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
        keras_layer = _make_layer(graph, layer)
        tensors[layer["name"]] = keras_layer(args if len(args) > 1 else args[0])
    outputs = tensors[graph.output]
    if graph.task == "classification":
        outputs = keras.layers.Activation("softmax", name="predictions")(outputs)
    return keras.Model(inputs, outputs, name=name or "kerasnas_graph")


def get_weights(model, graph):
    """Returns `{layer name: [numpy arrays]}` for the graph's weighted layers in `model`."""
    weights = {}
    for layer in graph.layers:
        if layer["type"] in ("conv", "dense", "head", "batchnorm"):
            values = model.get_layer(layer["name"]).get_weights()
            weights[layer["name"]] = [w.copy() for w in values]
    return weights


def set_weights(model, weights):
    """Loads `{layer name: [numpy arrays]}` into the layers of `model` of those names."""
    for name, values in weights.items():
        model.get_layer(name).set_weights(values)
