"""The architecture graph: a small, JSON-serializable description of a CNN.

A `Graph` is a DAG of layers kept in topological order. Every layer has a
unique, stable name and produces one tensor, also known by that name; the
model input is the tensor `"input"`. Layer names never change across
morphisms, which is what lets `morphism.transfer` map a trained parent's
weights onto a child by name.

Layer types and their `config` keys:

    conv        filters, kernel_size      Conv2D, stride 1, "same" padding
    batchnorm   -                         BatchNormalization (epsilon 1e-3)
    relu        -                         ReLU
    maxpool     pool_size                 MaxPooling2D, strides = pool_size, "same"
    avgpool     pool_size                 AveragePooling2D, strides = pool_size, "same"
    gap         -                         GlobalAveragePooling2D
    flatten     -                         Flatten
    dense       units                     Dense, linear
    dropout     rate                      Dropout
    add         -                         Add
    concat      -                         Concatenate on channels
    head        -                         Dense(num_outputs): the logits

This module is numpy-free and never imports TensorFlow; `to_keras` defers to
`kerasnas.graph.keras_model`.
"""

from __future__ import annotations

import copy
import json
import math

FORMAT = "kerasnas.graph/1"
INPUT = "input"
BN_EPSILON = 1e-3
TASKS = ("classification", "regression")

WEIGHTED = ("conv", "dense", "head")
CHANNELWISE = ("batchnorm", "relu", "maxpool", "avgpool", "dropout")
LAYER_TYPES = WEIGHTED + CHANNELWISE + ("gap", "flatten", "add", "concat")
_CONFIG_KEYS = {
    "conv": ("filters", "kernel_size"),
    "maxpool": ("pool_size",),
    "avgpool": ("pool_size",),
    "dense": ("units",),
    "dropout": ("rate",),
}


class Graph:
    """A CNN architecture as a DAG of named layers.

    Args:
        input_shape: `(height, width, channels)` of one image.
        num_outputs: number of classes (classification) or values (regression).
        task: `"classification"` (softmax output) or `"regression"` (linear).
            Defaults to `"classification"`.

    Example:

    >>> g = Graph((8, 8, 1), 3)
    >>> x = g.add_layer("conv", g.input, filters=8, kernel_size=3)
    >>> x = g.add_layer("relu", x)
    >>> x = g.add_layer("gap", x)
    >>> g.add_layer("head", x)
    'head'
    >>> g.num_params()
    107
    """

    def __init__(self, input_shape, num_outputs, task="classification"):
        input_shape = tuple(int(d) for d in input_shape)
        if len(input_shape) != 3 or min(input_shape) < 1:
            raise ValueError(
                "Expected `input_shape` to be (height, width, channels) of "
                f"positive ints. Received: input_shape={input_shape}"
            )
        if int(num_outputs) < 1:
            raise ValueError(f"Expected `num_outputs` >= 1. Received: num_outputs={num_outputs}")
        if task not in TASKS:
            raise ValueError(f"Expected `task` to be one of {TASKS}. Received: task={task!r}")
        self.input_shape = input_shape
        self.num_outputs = int(num_outputs)
        self.task = task
        self.layers = []  # dicts {"name", "type", "inputs", "config"}, topological order
        self.history = []  # morphism records applied since the initial architecture
        self.next_id = 0
        self._invalidate()

    # ------------------------------------------------------------------ building

    @property
    def input(self):
        return INPUT

    @property
    def output(self):
        """Name of the head layer, or None while the graph has none."""
        heads = [layer["name"] for layer in self.layers if layer["type"] == "head"]
        return heads[0] if heads else None

    def new_name(self, layer_type):
        """Returns a fresh layer name such as `conv_7`; names are never reused."""
        name = f"{layer_type}_{self.next_id}"
        self.next_id += 1
        return name

    def add_layer(self, layer_type, inputs, name=None, **config):
        """Appends a layer and returns the name of its output tensor.

        Args:
            layer_type: one of `LAYER_TYPES`.
            inputs: a tensor name, or a list of them for `add` and `concat`.
            name: the layer name. Defaults to a fresh one (`head` for the head).
            **config: the layer's settings, e.g. `filters=32, kernel_size=3`.

        Returns:
            The name of the new layer (and of its output tensor).
        """
        inputs = [inputs] if isinstance(inputs, str) else list(inputs)
        if name is None:
            name = "head" if layer_type == "head" else self.new_name(layer_type)
        layer = {"name": name, "type": layer_type, "inputs": inputs, "config": config}
        self.insert_layer(len(self.layers), layer)
        return name

    def insert_layer(self, index, layer):
        """Inserts a layer dict at position `index` and checks the graph."""
        self.layers.insert(index, layer)
        self._invalidate()
        try:
            self.shapes()
        except ValueError:
            del self.layers[index]
            self._invalidate()
            raise

    def _invalidate(self):
        """Forgets what is derived from `layers`; call after changing them."""
        self._shapes = None
        self._index = None
        self._consumers = None

    def index(self, name):
        """Position of layer `name` in the topological order (-1 for the input)."""
        if name == INPUT:
            return -1
        if self._index is None:
            self._index = {layer["name"]: i for i, layer in enumerate(self.layers)}
        if name not in self._index:
            raise KeyError(f"No layer named {name!r} in the graph.")
        return self._index[name]

    def layer(self, name):
        """The layer dict named `name`."""
        return self.layers[self.index(name)] if name != INPUT else None

    def consumers(self, tensor):
        """Layers (dicts) that take `tensor` as an input."""
        if self._consumers is None:
            self._consumers = {}
            for layer in self.layers:
                for t in dict.fromkeys(layer["inputs"]):
                    self._consumers.setdefault(t, []).append(layer)
        return self._consumers.get(tensor, [])

    def rewire(self, tensor, new_tensor, skip=()):
        """Makes every consumer of `tensor` (except those named in `skip`) read `new_tensor`."""
        for layer in self.layers:
            if layer["name"] not in skip:
                layer["inputs"] = [new_tensor if t == tensor else t for t in layer["inputs"]]
        self._invalidate()

    def copy(self):
        """An independent copy (history records, which are never modified, are shared)."""
        graph = Graph(self.input_shape, self.num_outputs, self.task)
        graph.layers = [
            {**layer, "inputs": list(layer["inputs"]), "config": dict(layer["config"])}
            for layer in self.layers
        ]
        graph.history = list(self.history)
        graph.next_id = self.next_id
        return graph

    # ------------------------------------------------------------------ shapes

    def shapes(self):
        """Maps each tensor name to its shape (without the batch dimension).

        Raises:
            ValueError: if a layer's inputs are missing, out of order or of
                incompatible shapes.
        """
        if self._shapes is not None:
            return self._shapes
        shapes = {INPUT: self.input_shape}
        for layer in self.layers:
            name, kind = layer["name"], layer["type"]
            if kind not in LAYER_TYPES:
                raise ValueError(
                    f"Layer {name!r} has unknown type {kind!r}; expected one of {LAYER_TYPES}."
                )
            if name in shapes:
                raise ValueError(f"Duplicate layer name {name!r}.")
            missing = [t for t in layer["inputs"] if t not in shapes]
            if missing:
                raise ValueError(f"Layer {name!r} reads {missing}, which no earlier layer makes.")
            shapes[name] = _output_shape(self, layer, [shapes[t] for t in layer["inputs"]])
        self._shapes = shapes
        return shapes

    def shape(self, tensor):
        return self.shapes()[tensor]

    # ------------------------------------------------------------------ size

    def num_params(self):
        """Number of weights, trainable or not; equals the Keras model's `count_params()`."""
        shapes = self.shapes()
        total = 0
        for layer in self.layers:
            in_shape = shapes[layer["inputs"][0]]
            out_shape = shapes[layer["name"]]
            if layer["type"] == "conv":
                k = layer["config"]["kernel_size"]
                total += k * k * in_shape[-1] * out_shape[-1] + out_shape[-1]
            elif layer["type"] in ("dense", "head"):
                total += in_shape[-1] * out_shape[-1] + out_shape[-1]
            elif layer["type"] == "batchnorm":
                total += 4 * out_shape[-1]
        return total

    def flops(self):
        """Floating-point operations of one forward pass of one image.

        A multiply-add counts as 2; element-wise layers count one per output
        value (batchnorm two); pooling one per value read.
        """
        shapes = self.shapes()
        total = 0
        for layer in self.layers:
            in_shape = shapes[layer["inputs"][0]]
            out_shape = shapes[layer["name"]]
            out_size = math.prod(out_shape)
            kind = layer["type"]
            if kind == "conv":
                k = layer["config"]["kernel_size"]
                total += out_size * (2 * k * k * in_shape[-1] + 1)
            elif kind in ("dense", "head"):
                total += out_size * (2 * in_shape[-1] + 1)
            elif kind == "batchnorm":
                total += 2 * out_size
            elif kind in ("relu", "add"):
                total += out_size * max(1, len(layer["inputs"]) - (kind == "add"))
            elif kind in ("maxpool", "avgpool", "gap"):
                total += math.prod(in_shape)
        if self.task == "classification":
            total += 3 * self.num_outputs  # softmax
        return total

    def depth(self):
        """Number of conv and dense layers on the longest path, head included."""
        longest = {INPUT: 0}
        for layer in self.layers:
            here = max(longest[t] for t in layer["inputs"])
            longest[layer["name"]] = here + (layer["type"] in WEIGHTED)
        return longest[self.output] if self.output else 0

    def summary(self):
        """One line describing the architecture, e.g. `conv32-relu-maxpool2-...-head10`."""
        parts = []
        for layer in self.layers:
            c = layer["config"]
            kind = layer["type"]
            if kind == "conv":
                parts.append(f"conv{c['kernel_size']}x{c['kernel_size']}:{c['filters']}")
            elif kind == "dense":
                parts.append(f"dense{c['units']}")
            elif kind in ("maxpool", "avgpool"):
                parts.append(f"{kind}{c['pool_size']}")
            elif kind == "head":
                parts.append(f"head{self.num_outputs}")
            elif kind in ("add", "concat", "gap", "flatten"):
                parts.append(kind)
        return "-".join(parts)

    # ------------------------------------------------------------------ Keras

    def to_keras(self, name=None):
        """Builds a functional `keras.Model` whose layers carry this graph's names.

        The head layer `head` outputs logits; for classification a softmax
        layer `predictions` follows it.

        Args:
            name: the model's name. Defaults to `"kerasnas_graph"`.

        Returns:
            An uncompiled `keras.Model`.
        """
        from kerasnas.graph import keras_model

        return keras_model.build(self, name=name)

    # ------------------------------------------------------------------ JSON

    def get_config(self):
        return {
            "format": FORMAT,
            "input_shape": list(self.input_shape),
            "num_outputs": self.num_outputs,
            "task": self.task,
            "layers": copy.deepcopy(self.layers),
            "next_id": self.next_id,
            "history": copy.deepcopy(self.history),
        }

    @classmethod
    def from_config(cls, config):
        if config.get("format") != FORMAT:
            raise ValueError(
                f"Expected a graph config with format {FORMAT!r}. "
                f"Received: format={config.get('format')!r}"
            )
        graph = cls(config["input_shape"], config["num_outputs"], config["task"])
        graph.layers = copy.deepcopy(config["layers"])
        graph.next_id = int(config["next_id"])
        graph.history = copy.deepcopy(config["history"])
        graph._invalidate()
        graph.shapes()
        return graph

    def to_json(self):
        """Returns the graph as a JSON string (keys sorted: equal graphs give equal text)."""
        return json.dumps(self.get_config(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text):
        """Reads a graph written by `to_json`.

        Raises:
            ValueError: if `text` is not a kerasnas graph.
        """
        try:
            config = json.loads(text)
        except (TypeError, json.JSONDecodeError) as e:
            raise ValueError(f"Expected the JSON text of a kerasnas Graph: {e}") from None
        if not isinstance(config, dict):
            raise ValueError(
                f"Expected a JSON object for a Graph. Received: {type(config).__name__}"
            )
        return cls.from_config(config)

    def architecture_key(self):
        """JSON of the layers alone (no history): equal for equal architectures."""
        return json.dumps(
            [self.input_shape, self.num_outputs, self.task, self.layers], sort_keys=True
        )

    def __eq__(self, other):
        return isinstance(other, Graph) and self.to_json() == other.to_json()

    def __repr__(self):
        return f"<Graph {self.summary()} params={self.num_params()} input_shape={self.input_shape}>"


def _output_shape(graph, layer, in_shapes):
    name, kind, config = layer["name"], layer["type"], layer["config"]
    expected = _CONFIG_KEYS.get(kind, ())
    bad = [k for k in expected if k not in config]
    if bad:
        raise ValueError(f"Layer {name!r} ({kind}) needs config keys {bad}. Received: {config}")
    n_in = len(in_shapes)
    if n_in != 1 and kind not in ("add", "concat") or n_in < 2 and kind in ("add", "concat"):
        wanted = "2 or more" if kind in ("add", "concat") else "1"
        raise ValueError(f"Layer {name!r} ({kind}) needs {wanted} inputs; got {n_in}.")
    first = in_shapes[0]
    if kind in ("conv", "maxpool", "avgpool", "gap", "flatten") and len(first) != 3:
        raise ValueError(f"Layer {name!r} ({kind}) needs an (H, W, C) input; got {first}.")
    if kind in ("dense", "head") and len(first) != 1:
        raise ValueError(f"Layer {name!r} ({kind}) needs a flat input; got {first}.")
    if kind == "conv":
        return (first[0], first[1], int(config["filters"]))
    if kind in ("maxpool", "avgpool"):
        p = int(config["pool_size"])
        return (-(-first[0] // p), -(-first[1] // p), first[2])
    if kind == "gap":
        return (first[2],)
    if kind == "flatten":
        return (math.prod(first),)
    if kind == "dense":
        return (int(config["units"]),)
    if kind == "head":
        return (graph.num_outputs,)
    if kind == "add":
        if any(s != first for s in in_shapes):
            raise ValueError(f"Layer {name!r} (add) needs equal input shapes; got {in_shapes}.")
        return first
    if kind == "concat":
        if any(len(s) != len(first) or s[:-1] != first[:-1] for s in in_shapes):
            raise ValueError(
                f"Layer {name!r} (concat) needs equal shapes but for channels; got {in_shapes}."
            )
        return first[:-1] + (sum(s[-1] for s in in_shapes),)
    return first  # batchnorm, relu, dropout
