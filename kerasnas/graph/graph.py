"""The architecture graph: a small, JSON-serializable description of a CNN.

A `Graph` is a DAG of layers kept in topological order. Every layer has a
unique, stable name and produces one tensor, also known by that name; the
model input is the tensor `"input"`. Layer names never change across
morphisms, which is what lets `kerasnas.graph.transfer` map a trained parent's
weights onto a child by name.

Each layer's `type` names a spec in `kerasnas.graph.layers`, which knows
its config keys, shapes, size and Keras layer; this module asks the spec.

This module never imports TensorFlow; `to_keras` defers to
`kerasnas.graph.keras_model`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math

from kerasnas import files
from kerasnas.graph.layers import LAYER_TYPES, OUTPUT_TYPES, SPECS

FORMAT = "kerasnas.graph/1"
INPUT = "input"
TASKS = ("classification", "regression")

# What a graph read from JSON (`from_config`, `from_json`) may hold. A graph in a file may
# come from a stranger's run directory, so it is checked before anything is built from it:
# beyond these it was not written by a kerasnas search (far above what long random
# descents reach; the figures are in docs/design-notes.md).
MAX_LAYERS = 20_000
MAX_SIZE = 2**20  # filters, units, channels, outputs, kernel and pool sizes
MAX_SIDE = 2**15  # the input's height and width
MAX_PARAMS = 10**9  # 4 GB of float32 weights; the first thing `to_keras` would allocate


class Graph:
    """A CNN architecture as a DAG of named layers.

    Args:
        input_shape: `(height, width, channels)` of one image.
        num_outputs: number of classes (classification) or values (regression).
        task: `"classification"` (softmax output) or `"regression"` (linear).
            Defaults to `"classification"`.

    Layers are dicts `{"name", "type", "inputs", "config"}` in `layers`, in
    topological order; each `type` names a spec in `kerasnas.graph.layers`. A
    graph records the morphisms that made it from its initial architecture in
    `history`, so `kerasnas.graph.transfer` can carry a parent's weights onto
    it. It round-trips through `to_json`/`from_json` (plain JSON, no pickle).

    Args:
        input_shape: `(height, width, channels)` of one image.
        num_outputs: number of classes (classification) or values (regression).
        task: `"classification"` (softmax output) or `"regression"` (linear).
            Defaults to `"classification"`.

    Raises:
        ValueError: if `input_shape` is not three positive ints, `num_outputs` is
            below 1 or `task` is unknown.

    Example:
        ```pycon
        >>> g = Graph((8, 8, 1), 3)
        >>> x = g.add_layer("conv", g.input, filters=8, kernel_size=3)
        >>> x = g.add_layer("relu", x)
        >>> x = g.add_layer("gap", x)
        >>> g.add_layer("head", x)
        'head'
        >>> g.num_params()
        107
        >>> g.summary()
        'conv3x3:8-gap-head3'
        ```
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
        self.invalidate()

    # ------------------------------------------------------------------ building

    @property
    def input(self):
        """Name of the model input tensor, `"input"`."""
        return INPUT

    @property
    def output(self):
        """Name of the head layer, or None while the graph has none."""
        heads = [layer["name"] for layer in self.layers if layer["type"] in OUTPUT_TYPES]
        return heads[0] if heads else None

    def new_name(self, layer_type):
        """Returns a fresh layer name such as `conv_7`; names are never reused.

        Args:
            layer_type: the type the name starts with.
        """
        name = f"{layer_type}_{self.next_id}"
        self.next_id += 1
        return name

    def add_layer(self, layer_type, inputs, name=None, **config):
        """Appends a layer and returns the name of its output tensor.

        Args:
            layer_type: a type of `kerasnas.graph.layers.SPECS`, e.g. `"conv"`.
            inputs: a tensor name, or a list of them for `add` and `concat`.
            name: the layer name. Defaults to a fresh one (the type, `head`, for the head).
            **config: the layer's settings, e.g. `filters=32, kernel_size=3`.

        Returns:
            The name of the new layer (and of its output tensor).
        """
        inputs = [inputs] if isinstance(inputs, str) else list(inputs)
        if name is None:
            name = layer_type if layer_type in OUTPUT_TYPES else self.new_name(layer_type)
        layer = {"name": name, "type": layer_type, "inputs": inputs, "config": config}
        self.insert_layer(len(self.layers), layer)
        return name

    def insert_layer(self, index, layer):
        """Inserts a layer dict at position `index` and checks the graph.

        Args:
            index: the position in `layers`; the layer may read only tensors made
                before it.
            layer: a dict `{"name", "type", "inputs", "config"}`.

        Raises:
            ValueError: if the layer does not fit there; the graph is left as it was.
        """
        before = self._shapes
        self.layers.insert(index, layer)
        self.invalidate()
        try:
            if before is None:
                self.shapes()
            else:
                # The layers around it were valid and nothing reads the new layer yet,
                # so checking it alone is checking the whole graph.
                earlier = {INPUT: before[INPUT]}
                earlier.update((la["name"], before[la["name"]]) for la in self.layers[:index])
                shape = self._check_layer(layer, earlier)
                if layer["name"] in before:
                    raise ValueError(f"Duplicate layer name {layer['name']!r}.")
                shapes = dict(earlier)
                shapes[layer["name"]] = shape
                shapes.update((la["name"], before[la["name"]]) for la in self.layers[index + 1 :])
                self._shapes = shapes
        except ValueError:
            del self.layers[index]
            self.invalidate()
            raise

    def invalidate(self):
        """Forgets what is derived from `layers` (shapes, size, positions, consumers).

        The methods that change the graph call it; call it yourself after
        editing `layers` or a layer's `config` directly.

        Example:
            ```pycon
            >>> g = Graph((8, 8, 1), 3)
            >>> x = g.add_layer("dense", g.add_layer("flatten", g.input), units=4)
            >>> g.layer(x)["config"]["units"] = 5
            >>> g.invalidate()
            >>> g.shape(x)
            (5,)
            ```
        """
        self._shapes = None
        self._size = None  # (num_params, flops, activations)
        self._index = None
        self._consumers = None

    def index(self, name):
        """Position of layer `name` in the topological order (-1 for the input).

        Args:
            name: a layer name, or `"input"`.

        Raises:
            KeyError: if the graph has no layer `name`.
        """
        if name == INPUT:
            return -1
        if self._index is None:
            self._index = {layer["name"]: i for i, layer in enumerate(self.layers)}
        if name not in self._index:
            raise KeyError(f"No layer named {name!r} in the graph.")
        return self._index[name]

    def layer(self, name):
        """The layer dict named `name` (None for the input).

        Args:
            name: a layer name, or `"input"`.

        Raises:
            KeyError: if the graph has no layer `name`.
        """
        return self.layers[self.index(name)] if name != INPUT else None

    def consumers(self, tensor):
        """Layers (dicts) that take `tensor` as an input.

        Args:
            tensor: a layer name, or `"input"`.

        Returns:
            A list of layer dicts, in topological order.
        """
        if self._consumers is None:
            self._consumers = {}
            for layer in self.layers:
                for t in dict.fromkeys(layer["inputs"]):
                    self._consumers.setdefault(t, []).append(layer)
        return self._consumers.get(tensor, [])

    def rewire(self, tensor, new_tensor, skip=()):
        """Makes every consumer of `tensor` (except those named in `skip`) read `new_tensor`.

        Args:
            tensor: the tensor to stop reading.
            new_tensor: the tensor to read instead.
            skip: names of layers that keep reading `tensor`. Defaults to none.
        """
        for layer in self.layers:
            if layer["name"] not in skip:
                layer["inputs"] = [new_tensor if t == tensor else t for t in layer["inputs"]]
        self.invalidate()

    def copy(self):
        """An independent copy (history records, which are never modified, are shared)."""
        graph = Graph(self.input_shape, self.num_outputs, self.task)
        graph.layers = [
            {**layer, "inputs": list(layer["inputs"]), "config": dict(layer["config"])}
            for layer in self.layers
        ]
        graph.history = list(self.history)
        graph.next_id = self.next_id
        graph._shapes = self._shapes  # never changed in place, so it can be shared
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
            shapes[layer["name"]] = self._check_layer(layer, shapes)
        self._shapes = shapes
        return shapes

    def _check_layer(self, layer, shapes):
        """The output shape of `layer`, given `shapes` of the tensors made before it."""
        name, kind = layer["name"], layer["type"]
        spec = SPECS.get(kind)
        if spec is None:
            raise ValueError(
                f"Layer {name!r} has unknown type {kind!r}; expected one of {LAYER_TYPES}."
            )
        if name in shapes:
            raise ValueError(f"Duplicate layer name {name!r}.")
        try:
            in_shapes = [shapes[t] for t in layer["inputs"]]
        except KeyError:
            missing = [t for t in layer["inputs"] if t not in shapes]
            raise ValueError(
                f"Layer {name!r} reads {missing}, which no earlier layer makes."
            ) from None
        return spec.infer_shape(layer, in_shapes, self)

    def shape(self, tensor):
        """The shape of a tensor, without the batch dimension.

        Args:
            tensor: a layer name, or `"input"`.

        Raises:
            KeyError: if no layer makes `tensor`.
            ValueError: if the graph is not valid (see `shapes`).
        """
        return self.shapes()[tensor]

    # ------------------------------------------------------------------ size

    def num_params(self):
        """Number of weights, trainable or not; equals the Keras model's `count_params()`."""
        if self._size is None:
            self._size = self._count()
        return self._size[0]

    def flops(self):
        """Floating-point operations of one forward pass of one image.

        A multiply-add counts as 2; element-wise layers count one per output
        value (batchnorm two); pooling one per value read.
        """
        if self._size is None:
            self._size = self._count()
        return self._size[1]

    def activations(self):
        """Values all layers output for one image: what training writes and reads back.

        Where FLOPs miss an epoch's cost (many thin layers, concatenations,
        batchnorm), the memory traffic this measures accounts for much of it.
        """
        if self._size is None:
            self._size = self._count()
        return self._size[2]

    def _count(self):
        shapes = self.shapes()
        params = flops = activations = 0
        for layer in self.layers:
            spec, config = SPECS[layer["type"]], layer["config"]
            in_shapes = [shapes[t] for t in layer["inputs"]]
            out_shape = shapes[layer["name"]]
            params += spec.num_params(config, in_shapes, out_shape)
            flops += spec.flops(config, in_shapes, out_shape)
            activations += math.prod(out_shape)
        if self.task == "classification":
            flops += 3 * self.num_outputs  # softmax
        return params, flops, activations

    def morphisms_since(self, ancestor):
        """The morphism records applied to this graph since `ancestor`, oldest first.

        Args:
            ancestor: a `Graph` whose history this one's extends (its parent's).

        Returns:
            A list of records (dicts with `"op"`), empty for the same history.
        """
        return self.history[len(ancestor.history) :]

    def depth(self):
        """Number of weighted layers (conv, dense, ...) on the longest path, head included."""
        longest = {INPUT: 0}
        for layer in self.layers:
            here = max(longest[t] for t in layer["inputs"])
            longest[layer["name"]] = here + SPECS[layer["type"]].weighted
        return longest[self.output] if self.output else 0

    def summary(self):
        """One line describing the architecture, e.g. `conv3x3:32-maxpool2-...-head10`."""
        parts = (SPECS[layer["type"]].summary(layer["config"], self) for layer in self.layers)
        return "-".join(part for part in parts if part is not None)

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
        """The graph as a dict of plain JSON values, for `from_config` (Keras' convention)."""
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
    def from_config(cls, config, max_params=MAX_PARAMS):
        """Reads a graph written by `get_config`, checked as data from a stranger.

        Before anything is built from it, the config must describe a graph the search
        could have made: known layer types only (nothing from the file is ever run as
        code), at most `MAX_LAYERS` layers, sizes (filters, units, kernel and pool sizes,
        outputs, channels) from 1 to `MAX_SIZE`, an input at most `MAX_SIDE` high and
        wide, inputs read only from layers listed before (so no cycle), and at most
        `max_params` parameters, counted from the shapes alone.

        Args:
            config: a dict from `get_config`.
            max_params: most parameters the graph may have. Defaults to `MAX_PARAMS`.

        Returns:
            The `Graph`.

        Raises:
            ValueError: naming what is wrong, if `config` is not such a graph.
        """
        return cls._from_checked_config(config, max_params, copy.deepcopy)

    @classmethod
    def _from_checked_config(cls, config, max_params, take):
        """`from_config`, with `take` applied to the layers and history it keeps (a copy,
        unless the config is the caller's to give away, freshly parsed)."""
        _check_config(config)
        graph = cls(config["input_shape"], config["num_outputs"], config["task"])
        graph.layers = take(config["layers"])
        graph.next_id = config["next_id"]
        graph.history = take(config["history"])
        graph.invalidate()
        graph.shapes()
        if graph.num_params() > max_params:
            raise ValueError(
                f"The graph has {graph.num_params():,} parameters, more than the "
                f"{max_params:,} kerasnas builds from a file ({graph.summary()[:80]})."
            )
        return graph

    def to_json(self):
        """Returns the graph as a JSON string (keys sorted: equal graphs give equal text)."""
        return json.dumps(self.get_config(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text):
        """Reads a graph written by `to_json`, checked as `from_config` checks it.

        Args:
            text: the JSON text.

        Returns:
            The `Graph`.

        Raises:
            ValueError: if `text` is not a kerasnas graph.
        """
        if isinstance(text, str) and len(text) > files.MAX_JSON_BYTES:
            raise ValueError(
                f"Expected the JSON text of a kerasnas Graph of at most "
                f"{files.MAX_JSON_BYTES:,} characters. Received: {len(text):,} characters."
            )
        try:
            config = files.loads(text)
        except (TypeError, ValueError) as e:
            raise ValueError(f"Expected the JSON text of a kerasnas Graph: {e}") from None
        if not isinstance(config, dict):
            raise ValueError(
                f"Expected a JSON object for a Graph. Received: {type(config).__name__}"
            )
        return cls._from_checked_config(config, MAX_PARAMS, lambda parsed: parsed)

    def architecture_key(self):
        """A digest of the layers alone (no history): equal for equal architectures."""
        layers = json.dumps(
            [self.input_shape, self.num_outputs, self.task, self.layers], sort_keys=True
        )
        return hashlib.sha256(layers.encode()).hexdigest()

    def __eq__(self, other):
        return isinstance(other, Graph) and self.to_json() == other.to_json()

    def __repr__(self):
        return f"<Graph {self.summary()} params={self.num_params()} input_shape={self.input_shape}>"


def _check_config(config):
    """Raises a ValueError unless `config` describes a graph the search could have made
    (see `Graph.from_config`); cheap checks first, and nothing built."""
    if not isinstance(config, dict):
        raise ValueError(f"Expected a dict for a Graph config. Received: {type(config).__name__}")
    if config.get("format") != FORMAT:
        raise ValueError(
            f"Expected a graph config with format {FORMAT!r}. "
            f"Received: format={_short(config.get('format'))}"
        )
    missing = [
        k
        for k in ("input_shape", "num_outputs", "task", "layers", "next_id", "history")
        if k not in config
    ]
    if missing:
        raise ValueError(f"The graph config lacks {missing}.")
    shape = config["input_shape"]
    limits = (MAX_SIDE, MAX_SIDE, MAX_SIZE)
    if not (
        isinstance(shape, list)
        and len(shape) == 3
        and all(type(d) is int and 1 <= d <= most for d, most in zip(shape, limits))
    ):
        raise ValueError(
            f"Expected `input_shape` to be [height, width, channels], ints from 1 to "
            f"{MAX_SIDE:,} (channels to {MAX_SIZE:,}). Received: input_shape={_short(shape)}"
        )
    for key, low in (("num_outputs", 1), ("next_id", 0)):
        value = config[key]
        if type(value) is not int or not low <= value <= (MAX_SIZE if low else 2**63):
            raise ValueError(f"Expected `{key}` to be an int. Received: {key}={_short(value)}")
    history = config["history"]
    if not isinstance(history, list) or not all(
        isinstance(r, dict) and isinstance(r.get("op"), str) for r in history
    ):
        raise ValueError("Expected `history` to be a list of morphism records (dicts with `op`).")
    layers = config["layers"]
    if not isinstance(layers, list):
        raise ValueError(f"Expected `layers` to be a list. Received: {type(layers).__name__}")
    if len(layers) > MAX_LAYERS:
        raise ValueError(
            f"The graph has {len(layers):,} layers, more than the {MAX_LAYERS:,} kerasnas "
            "reads from a file."
        )
    names = {layer.get("name") for layer in layers if isinstance(layer, dict)}
    made = {INPUT}
    for i, layer in enumerate(layers):
        if not (
            isinstance(layer, dict)
            and isinstance(layer.get("name"), str)
            and layer["name"]
            and isinstance(layer.get("type"), str)
            and isinstance(layer.get("inputs"), list)
            and all(isinstance(t, str) for t in layer["inputs"])
            and isinstance(layer.get("config"), dict)
        ):
            raise ValueError(
                f"Layer {i} of the graph is not a dict with a `name`, a `type`, `inputs` (a "
                f"list of names) and a `config` dict. Received: {_short(layer)}"
            )
        name, kind = layer["name"], layer["type"]
        spec = SPECS.get(kind)
        if spec is None:
            raise ValueError(
                f"Layer {name!r} has unknown type {_short(kind)}; expected one of "
                f"{LAYER_TYPES}. Only these are ever built: nothing in a file is run as code."
            )
        spec.check_config(layer, MAX_SIZE)
        for t in layer["inputs"]:
            if t in made:
                continue
            if t == name:
                raise ValueError(f"Layer {name!r} reads itself: a graph has no cycles.")
            if t in names:
                raise ValueError(
                    f"Layer {name!r} reads {t!r}, which comes after it: a graph lists its "
                    "layers in order, each after those it reads, so it has no cycles."
                )
            raise ValueError(f"Layer {name!r} reads {_short(t)}, which no layer makes.")
        if name in made:
            raise ValueError(f"Duplicate layer name {name!r}.")
        made.add(name)


def _short(value, limit=60):
    """`repr(value)`, cut to `limit` characters (a value read from a file may be huge)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
