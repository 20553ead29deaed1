"""One spec per layer type: everything kerasnas knows about a kind of layer.

A layer of a `Graph` is a dict `{"name", "type", "inputs", "config"}`. Its
`type` names a `LayerSpec` in `SPECS`, and every other module asks that spec
instead of branching on the type: `Graph` for shapes, size and summaries,
`keras_model` for the Keras layer, `morphism` for which layers can be widened
or deepened, `transfer` for carrying weights through a morphism, and
`distance` for matching layers. A new layer type is one more spec: a subclass of
`LayerSpec`, its instance added to `SPECS` under its `type` (see `LayerSpec`).

Layer types and their `config` keys:

    conv        filters, kernel_size      Conv2D, stride 1, "same" padding
    sepconv     filters, kernel_size      SeparableConv2D, depth multiplier 1, stride 1, "same"
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

Glossary for the weight transfer: a *channel map* `m` of a tensor is an int
array, one entry per channel of the child's tensor, giving the channel of the
parent's tensor it copies, or -1 for a new channel that starts at zero
influence. A tensor's map travels as `(m, parent_channels)`, or `None` for the
identity. `units` is the map of a widened layer's own output units.

This module uses numpy only. `LayerSpec.build` receives the `keras` module
from `kerasnas.graph.keras_model`, the one module of `graph/` that imports
Keras, so importing a `Graph` never loads TensorFlow.
"""

from __future__ import annotations

import math

import numpy as np

BN_EPSILON = 1e-3


class LayerSpec:
    """How kerasnas treats one layer type; subclasses override what differs.

    Attributes:
        type: the value of `layer["type"]` for layers of this kind.
        config_keys: keys the layer's `config` must hold.
        min_inputs: fewest input tensors.
        max_inputs: most input tensors, or None for any number.
        input_rank: 3 if the (first) input must be `(H, W, C)`, 1 if flat, None
            for either.
        weighted: a learned map across channels or units (conv, dense, head):
            the layers `Graph.depth` and the edit distance count.
        width_key: the config key `morphism.wider` increases, or None if the
            layer cannot be widened.
        identity_rank: the input rank `morphism.deeper` may insert this layer
            at as an identity, or None if it cannot be.
        channels: how the output channels follow the input's: `"mix"` (each
            output reads every input channel), `"pass"` (one to one, so new
            input channels become new output channels), `"sum"` (add) or
            `"stack"` (concatenate).
        keeps_sign: the output is >= 0 wherever all inputs are.
        weights: names of the Keras layer's weight arrays, in Keras' order;
            empty if it has none to carry.
        family: layers of one family can be matched by the edit distance.
            Defaults to `type`.
        in_summary: whether `Graph.summary` lists the layer.
        is_output: the graph's output layer, always named after its type.

    The methods' arguments: `layer` is the layer's dict, `config` its `config`,
    `graph` the `Graph` it belongs to, `in_shapes` the shapes of its inputs and
    `out_shape` that of its output (without the batch dimension).

    Example:
        A sigmoid layer: its output is never negative, so `morphism.deeper` may
        insert an identity block after it.

        ```python
        import math

        from kerasnas.graph import Graph, layers


        class Sigmoid(layers.LayerSpec):
            type = "sigmoid"

            def nonnegative(self, inputs):
                return True

            def flops(self, config, in_shapes, out_shape):
                return 4 * math.prod(out_shape)

            def build(self, keras, layer, graph):
                return keras.layers.Activation("sigmoid", name=layer["name"])


        layers.SPECS["sigmoid"] = Sigmoid()
        g = Graph((8, 8, 1), 3)
        x = g.add_layer("sigmoid", g.add_layer("conv", g.input, filters=4, kernel_size=3))
        g.add_layer("head", g.add_layer("gap", x))
        model = g.to_keras()
        ```
    """

    type = ""
    config_keys = ()
    min_inputs, max_inputs = 1, 1
    input_rank = None
    weighted = False
    width_key = None
    identity_rank = None
    channels = "pass"
    keeps_sign = False
    weights = ()
    family = None
    in_summary = False
    is_output = False

    def __init__(self):
        self.family = self.family or self.type

    @property
    def merges(self):
        """Whether the layer joins several tensors (an add or a concatenation)."""
        return self.max_inputs is None or self.max_inputs > 1

    def infer_shape(self, layer, in_shapes, graph):
        """Checks `layer` against this spec and returns its output shape.

        Args:
            layer: the layer's dict.
            in_shapes: the shapes of its input tensors.
            graph: the `Graph`.

        Returns:
            The output shape, a tuple without the batch dimension.

        Raises:
            ValueError: if the config lacks a key, or the inputs are too few,
                too many or of the wrong rank.
        """
        config = layer["config"]
        for key in self.config_keys:
            if key not in config:
                bad = [k for k in self.config_keys if k not in config]
                raise ValueError(
                    f"Layer {layer['name']!r} ({self.type}) needs config keys {bad}. "
                    f"Received: {config}"
                )
        n_in = len(in_shapes)
        if n_in < self.min_inputs or self.max_inputs is not None and n_in > self.max_inputs:
            wanted = f"{self.min_inputs} or more" if self.merges else str(self.min_inputs)
            raise ValueError(
                f"Layer {layer['name']!r} ({self.type}) needs {wanted} inputs; got {n_in}."
            )
        if self.input_rank is not None and len(in_shapes[0]) != self.input_rank:
            wanted = "an (H, W, C)" if self.input_rank == 3 else "a flat"
            raise ValueError(
                f"Layer {layer['name']!r} ({self.type}) needs {wanted} input; got {in_shapes[0]}."
            )
        return self.output_shape(layer, in_shapes, graph)

    def check_config(self, layer, max_size):
        """Checks the values of `layer`'s config, as read from a file (see `Graph.from_config`).

        Every config key is a size (filters, units, a kernel or pool size) unless a
        subclass says otherwise: an int from 1 to `max_size`.

        Args:
            layer: the layer's dict.
            max_size: the largest size allowed (`kerasnas.graph.graph.MAX_SIZE`).

        Raises:
            ValueError: naming the layer and the key, if a value is not such an int.
        """
        for key in self.config_keys:
            value = layer["config"].get(key)
            if type(value) is not int or not 1 <= value <= max_size:
                raise ValueError(
                    f"Layer {layer['name']!r} ({self.type}) needs `{key}` to be an int from 1 "
                    f"to {max_size:,}. Received: {key}={_short(value)}"
                )

    def output_shape(self, layer, in_shapes, graph):
        """The output shape (no batch dimension) for inputs already checked.

        Args:
            layer: the layer's dict.
            in_shapes: the shapes of its inputs.
            graph: the `Graph`.
        """
        return in_shapes[0]

    def nonnegative(self, inputs):
        """Whether the output is always >= 0, given that flag for each input.

        Args:
            inputs: a bool per input tensor: whether it is always >= 0.
        """
        return self.keeps_sign and all(inputs)

    def num_params(self, config, in_shapes, out_shape):
        """Number of weights, as Keras' `count_params()` counts them.

        Args:
            config: the layer's config.
            in_shapes: the shapes of its inputs.
            out_shape: the shape of its output.
        """
        return 0

    def flops(self, config, in_shapes, out_shape):
        """Floating-point operations for one image (a multiply-add counts 2).

        Args:
            config: the layer's config.
            in_shapes: the shapes of its inputs.
            out_shape: the shape of its output.
        """
        return 0

    def summary(self, config, graph):
        """The layer's part of `Graph.summary`, or None to leave it out.

        Args:
            config: the layer's config.
            graph: the `Graph`.
        """
        return self.type if self.in_summary else None

    def build(self, keras, layer, graph):
        """Returns the Keras layer, named `layer["name"]`.

        Args:
            keras: the `keras` module, passed in by `kerasnas.graph.keras_model` (so
                that specs never import Keras themselves).
            layer: the layer's dict.
            graph: the `Graph`.
        """
        raise NotImplementedError(self.type)

    def initial_weights(self, config, in_shape, out_shape, identity):
        """Weights for a layer a morphism inserts.

        Args:
            config: the new layer's config.
            in_shape: the shape of its (first) input.
            out_shape: the shape of its output.
            identity: True for the identity (`deeper`); False for zero output
                (the 1x1 convolution of `add_skip`).

        Returns:
            The weight arrays, in the order of `weights`.
        """
        raise NotImplementedError(f"Morphisms do not insert {self.type} layers.")

    def carry_weights(self, weights, in_map, units):
        """The parent's weights rewritten for new input channels and output units.

        Args:
            weights: the parent layer's weight arrays, in Keras' order.
            in_map: channel map of the input, or None if unchanged.
            units: for a widened layer, the parent unit each output unit copies;
                else None.

        Returns:
            The child layer's weight arrays, in the same order.
        """
        return weights

    def channel_map(self, layer, in_maps, in_shapes):
        """The channel map of the output, given those of the inputs (see the glossary).

        Args:
            layer: the layer's dict.
            in_maps: the channel map of each input, or None where unchanged.
            in_shapes: the shapes of its inputs.

        Returns:
            `(map, parent_channels)`, or None if the output's channels are unchanged.
        """
        return None if self.channels == "mix" else in_maps[0]


def _short(value, limit=40):
    """`repr(value)`, cut to `limit` characters (a value read from a file may be huge)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _remap_inputs(kernel, m, axis):
    """Rows of `kernel` along `axis` for input map `m`: copies split by count, new ones 0."""
    m = np.asarray(m)
    counts = np.bincount(m[m >= 0], minlength=kernel.shape[axis]).astype(kernel.dtype)
    taken = np.take(kernel, np.maximum(m, 0), axis=axis)
    scale = np.where(m >= 0, 1.0 / np.maximum(counts[np.maximum(m, 0)], 1), 0.0)
    shape = [1] * kernel.ndim
    shape[axis] = len(m)
    return (taken * scale.reshape(shape)).astype(kernel.dtype)


class _Kernel(LayerSpec):
    """A layer computing `inputs @ kernel + bias` (a dense layer, or a convolution)."""

    weighted = True
    channels = "mix"
    weights = ("kernel", "bias")

    def carry_weights(self, weights, in_map, units):
        kernel, bias = weights
        if in_map is not None:
            kernel = _remap_inputs(kernel, in_map, axis=kernel.ndim - 2)
        if units is not None:
            kernel, bias = kernel[..., units], bias[units]
        return [kernel, bias]


class Conv(_Kernel):
    """Conv2D with stride 1 and "same" padding."""

    type = "conv"
    config_keys = ("filters", "kernel_size")
    input_rank = 3
    width_key = "filters"
    identity_rank = 3
    in_summary = True

    def output_shape(self, layer, in_shapes, graph):
        first = in_shapes[0]
        return (first[0], first[1], int(layer["config"]["filters"]))

    def num_params(self, config, in_shapes, out_shape):
        k = config["kernel_size"]
        return k * k * in_shapes[0][-1] * out_shape[-1] + out_shape[-1]

    def flops(self, config, in_shapes, out_shape):
        k = config["kernel_size"]
        return math.prod(out_shape) * (2 * k * k * in_shapes[0][-1] + 1)

    def summary(self, config, graph):
        k = config["kernel_size"]
        return f"{self.type}{k}x{k}:{config['filters']}"

    def build(self, keras, layer, graph):
        c, k = layer["config"], int(layer["config"]["kernel_size"])
        return keras.layers.Conv2D(int(c["filters"]), (k, k), padding="same", name=layer["name"])

    def initial_weights(self, config, in_shape, out_shape, identity):
        k, channels = config["kernel_size"], out_shape[-1]
        kernel = np.zeros((k, k, in_shape[-1], channels), np.float32)
        if identity:
            kernel[k // 2, k // 2] = np.eye(channels, dtype=np.float32)
        return [kernel, np.zeros(channels, np.float32)]


class SeparableConv(Conv):
    """SeparableConv2D: a per-channel k x k filter, then a 1x1 convolution (pointwise).

    Widening adds pointwise output channels; new input channels get a
    depthwise identity filter (and zero pointwise weights), which keeps their
    gradient alive where an all-zero filter would not.
    """

    type = "sepconv"
    weights = ("depthwise_kernel", "pointwise_kernel", "bias")
    family = "conv"

    def num_params(self, config, in_shapes, out_shape):
        k, c_in = config["kernel_size"], in_shapes[0][-1]
        return k * k * c_in + c_in * out_shape[-1] + out_shape[-1]

    def flops(self, config, in_shapes, out_shape):
        k, c_in = config["kernel_size"], in_shapes[0][-1]
        depthwise = out_shape[0] * out_shape[1] * c_in * 2 * k * k
        return depthwise + math.prod(out_shape) * (2 * c_in + 1)

    def build(self, keras, layer, graph):
        c, k = layer["config"], int(layer["config"]["kernel_size"])
        return keras.layers.SeparableConv2D(
            int(c["filters"]), (k, k), padding="same", depth_multiplier=1, name=layer["name"]
        )

    def initial_weights(self, config, in_shape, out_shape, identity):
        k, c_in, channels = config["kernel_size"], in_shape[-1], out_shape[-1]
        depthwise = np.zeros((k, k, c_in, 1), np.float32)
        depthwise[k // 2, k // 2] = 1.0
        pointwise = np.zeros((1, 1, c_in, channels), np.float32)
        if identity:
            pointwise[0, 0] = np.eye(channels, dtype=np.float32)
        return [depthwise, pointwise, np.zeros(channels, np.float32)]

    def carry_weights(self, weights, in_map, units):
        depthwise, pointwise, bias = weights
        if in_map is not None:
            m = np.asarray(in_map)
            k = depthwise.shape[0]
            identity = np.zeros((k, k, 1, 1), depthwise.dtype)
            identity[k // 2, k // 2] = 1.0
            depthwise = np.where(m[:, None] >= 0, depthwise[:, :, np.maximum(m, 0)], identity)
            pointwise = _remap_inputs(pointwise, m, axis=2)
        if units is not None:
            pointwise, bias = pointwise[..., units], bias[units]
        return [depthwise, pointwise, bias]


class Dense(_Kernel):
    """Dense, linear."""

    type = "dense"
    config_keys = ("units",)
    input_rank = 1
    width_key = "units"
    identity_rank = 1

    def output_shape(self, layer, in_shapes, graph):
        return (int(layer["config"]["units"]),)

    def num_params(self, config, in_shapes, out_shape):
        return in_shapes[0][-1] * out_shape[-1] + out_shape[-1]

    def flops(self, config, in_shapes, out_shape):
        return math.prod(out_shape) * (2 * in_shapes[0][-1] + 1)

    def summary(self, config, graph):
        return f"{self.type}{config['units']}"

    def build(self, keras, layer, graph):
        return keras.layers.Dense(int(layer["config"]["units"]), name=layer["name"])

    def initial_weights(self, config, in_shape, out_shape, identity):
        shape = (in_shape[-1], out_shape[-1])
        kernel = np.eye(*shape, dtype=np.float32) if identity else np.zeros(shape, np.float32)
        return [kernel, np.zeros(out_shape[-1], np.float32)]


class Head(Dense):
    """The logits: Dense(num_outputs). A graph has one, named `head`."""

    type = "head"
    config_keys = ()
    width_key = None
    identity_rank = None
    is_output = True

    def output_shape(self, layer, in_shapes, graph):
        return (graph.num_outputs,)

    def summary(self, config, graph):
        return f"{self.type}{graph.num_outputs}"

    def build(self, keras, layer, graph):
        return keras.layers.Dense(graph.num_outputs, name=layer["name"])


class BatchNorm(LayerSpec):
    """BatchNormalization over channels, epsilon `BN_EPSILON`."""

    type = "batchnorm"
    weights = ("gamma", "beta", "moving_mean", "moving_variance")

    def num_params(self, config, in_shapes, out_shape):
        return 4 * out_shape[-1]

    def flops(self, config, in_shapes, out_shape):
        return 2 * math.prod(out_shape)

    def build(self, keras, layer, graph):
        return keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=layer["name"])

    def initial_weights(self, config, in_shape, out_shape, identity):
        channels = out_shape[-1]
        # gamma * (x - 0) / sqrt((1 - eps) + eps) + 0 == x
        return [
            np.ones(channels, np.float32),
            np.zeros(channels, np.float32),
            np.zeros(channels, np.float32),
            np.full(channels, 1.0 - BN_EPSILON, np.float32),
        ]

    def carry_weights(self, weights, in_map, units):
        if in_map is None:
            return weights
        m = np.asarray(in_map)
        defaults = (1.0, 0.0, 0.0, 1.0)
        return [
            np.where(m >= 0, w[np.maximum(m, 0)], d).astype(w.dtype)
            for w, d in zip(weights, defaults)
        ]


class ReLU(LayerSpec):
    """ReLU: its output is never negative, which `deeper` relies on."""

    type = "relu"

    def nonnegative(self, inputs):
        return True

    def flops(self, config, in_shapes, out_shape):
        return math.prod(out_shape)

    def build(self, keras, layer, graph):
        return keras.layers.ReLU(name=layer["name"])


class Pooling(LayerSpec):
    """Max or average pooling with strides equal to the pool size and "same" padding."""

    config_keys = ("pool_size",)
    input_rank = 3
    keeps_sign = True
    in_summary = True

    def __init__(self, type, keras_class):
        self.type, self.keras_class = type, keras_class
        super().__init__()

    def output_shape(self, layer, in_shapes, graph):
        first, p = in_shapes[0], int(layer["config"]["pool_size"])
        return (-(-first[0] // p), -(-first[1] // p), first[2])

    def flops(self, config, in_shapes, out_shape):
        return math.prod(in_shapes[0])

    def summary(self, config, graph):
        return f"{self.type}{config['pool_size']}"

    def build(self, keras, layer, graph):
        p = int(layer["config"]["pool_size"])
        cls = getattr(keras.layers, self.keras_class)
        return cls(pool_size=p, strides=p, padding="same", name=layer["name"])


class GlobalAveragePooling(LayerSpec):
    """GlobalAveragePooling2D: (H, W, C) to (C,)."""

    type = "gap"
    input_rank = 3
    keeps_sign = True
    in_summary = True

    def output_shape(self, layer, in_shapes, graph):
        return (in_shapes[0][2],)

    def flops(self, config, in_shapes, out_shape):
        return math.prod(in_shapes[0])

    def build(self, keras, layer, graph):
        return keras.layers.GlobalAveragePooling2D(name=layer["name"])


class Flatten(LayerSpec):
    """Flatten: (H, W, C) to (H * W * C,), channels last."""

    type = "flatten"
    input_rank = 3
    keeps_sign = True
    in_summary = True

    def output_shape(self, layer, in_shapes, graph):
        return (math.prod(in_shapes[0]),)

    def build(self, keras, layer, graph):
        return keras.layers.Flatten(name=layer["name"])

    def channel_map(self, layer, in_maps, in_shapes):
        if in_maps[0] is None:
            return None
        m, c_old = in_maps[0]
        h, w = in_shapes[0][:2]
        pos = np.arange(h * w)[:, None] * c_old
        flat = np.where(m[None, :] >= 0, pos + m[None, :], -1).reshape(-1)
        return (flat, h * w * c_old)


class Dropout(LayerSpec):
    """Dropout: the identity in inference mode."""

    type = "dropout"
    config_keys = ("rate",)
    keeps_sign = True

    def check_config(self, layer, max_size):
        rate = layer["config"].get("rate")
        if type(rate) not in (int, float) or not 0 <= rate < 1:
            raise ValueError(
                f"Layer {layer['name']!r} (dropout) needs `rate` to be a number in [0, 1). "
                f"Received: rate={_short(rate)}"
            )

    def build(self, keras, layer, graph):
        return keras.layers.Dropout(float(layer["config"]["rate"]), name=layer["name"])


class Add(LayerSpec):
    """Add: two or more tensors of one shape."""

    type = "add"
    min_inputs, max_inputs = 2, None
    channels = "sum"
    keeps_sign = True
    in_summary = True

    def output_shape(self, layer, in_shapes, graph):
        first = in_shapes[0]
        if any(s != first for s in in_shapes):
            raise ValueError(
                f"Layer {layer['name']!r} (add) needs equal input shapes; got {in_shapes}."
            )
        return first

    def flops(self, config, in_shapes, out_shape):
        return math.prod(out_shape) * max(1, len(in_shapes) - 1)

    def build(self, keras, layer, graph):
        return keras.layers.Add(name=layer["name"])

    def channel_map(self, layer, in_maps, in_shapes):
        first = in_maps[0]
        for other in in_maps:
            same = (
                first is None and other is None
                if first is None or other is None
                else first[1] == other[1] and np.array_equal(first[0], other[0])
            )
            if not same:
                raise ValueError(f"Inputs of {layer['name']!r} carry different channel maps.")
        return first


class Concatenate(LayerSpec):
    """Concatenate on channels: two or more tensors equal but for channels."""

    type = "concat"
    min_inputs, max_inputs = 2, None
    channels = "stack"
    keeps_sign = True
    in_summary = True

    def output_shape(self, layer, in_shapes, graph):
        first = in_shapes[0]
        if any(len(s) != len(first) or s[:-1] != first[:-1] for s in in_shapes):
            raise ValueError(
                f"Layer {layer['name']!r} (concat) needs equal shapes but for channels; "
                f"got {in_shapes}."
            )
        return first[:-1] + (sum(s[-1] for s in in_shapes),)

    def build(self, keras, layer, graph):
        return keras.layers.Concatenate(axis=-1, name=layer["name"])

    def channel_map(self, layer, in_maps, in_shapes):
        if all(i is None for i in in_maps):
            return None
        parts, offset = [], 0
        for shape, i in zip(in_shapes, in_maps):
            m, c_old = i if i is not None else (np.arange(shape[-1]), shape[-1])
            parts.append(np.where(m >= 0, m + offset, -1))
            offset += c_old
        return (np.concatenate(parts), offset)


SPECS = {
    spec.type: spec
    for spec in (
        Conv(),
        SeparableConv(),
        BatchNorm(),
        ReLU(),
        Pooling("maxpool", "MaxPooling2D"),
        Pooling("avgpool", "AveragePooling2D"),
        GlobalAveragePooling(),
        Flatten(),
        Dense(),
        Dropout(),
        Add(),
        Concatenate(),
        Head(),
    )
}
"""`{type: LayerSpec}` of every layer type a `Graph` may hold; a new type is registered
here, `SPECS[spec.type] = spec` (`LAYER_TYPES` and `OUTPUT_TYPES` list the built-in ones)."""
LAYER_TYPES = tuple(SPECS)
OUTPUT_TYPES = frozenset(t for t, spec in SPECS.items() if spec.is_output)
