"""Initial architectures, sized from the input shape.

Each generator halves the resolution with 2x2 max pooling until the feature
maps are about 4 to 8 pixels across (at most three times), doubling the
filters at each stage, so the same call suits 8x8 digits, 28x28 MNIST and
64x64 photos.
"""

from __future__ import annotations

import math

from kerasnas.graph.graph import Graph


def _num_stages(input_shape, max_stages=3):
    """Number of 2x pooling stages that keep the smaller side at 4 pixels or more."""
    side = min(input_shape[0], input_shape[1])
    return int(max(1, min(max_stages, math.floor(math.log2(max(side, 2) / 4)))))


def _conv_block(graph, x, filters, kernel_size=3, batchnorm=True, kind="conv"):
    x = graph.add_layer(kind, x, filters=int(filters), kernel_size=int(kernel_size))
    if batchnorm:
        x = graph.add_layer("batchnorm", x)
    return graph.add_layer("relu", x)


def cnn(
    input_shape,
    num_outputs,
    task="classification",
    filters=32,
    dense_units=128,
    dropout=0.25,
    separable=False,
):
    """A plain CNN: conv-relu-maxpool stages, then a dense head.

    Like the textbook Keras MNIST convnet, it pools after every convolution, so that
    only the first works at full resolution. Small final maps are flattened, larger
    ones globally averaged.

    Args:
        input_shape: `(height, width, channels)`.
        num_outputs: classes or regression targets.
        task: `"classification"` or `"regression"`. Defaults to `"classification"`.
        filters: filters of the first stage, doubled each stage. Defaults to 32.
        dense_units: width of the hidden dense layer. Defaults to 128.
        dropout: dropout rate before the dense layers. Defaults to 0.25.
        separable: use separable convolutions (`sepconv`, far fewer FLOPs) after
            the first, which stays a full convolution of the input image.
            Defaults to False.

    Returns:
        A `Graph`.
    """
    graph = Graph(input_shape, num_outputs, task)
    stages = _num_stages(graph.input_shape)
    kind = "sepconv" if separable else "conv"
    x = graph.input
    for stage in range(stages):
        first = stage == 0  # a full convolution of the image, even when `separable`
        stage_filters = filters * 2**stage
        x = _conv_block(graph, x, stage_filters, batchnorm=False, kind="conv" if first else kind)
        x = graph.add_layer("maxpool", x, pool_size=2)
    height, width, _ = graph.shape(x)
    x = graph.add_layer("flatten" if height * width <= 64 else "gap", x)
    x = graph.add_layer("dropout", x, rate=float(dropout))
    x = graph.add_layer("dense", x, units=int(dense_units))
    x = graph.add_layer("relu", x)
    x = graph.add_layer("dropout", x, rate=float(dropout))
    graph.add_layer("head", x)
    return graph


def resnet(input_shape, num_outputs, task="classification", filters=16, blocks_per_stage=1):
    """A ResNet-like graph: per stage a conv-bn-relu transition and residual blocks.

    A residual block is conv-bn-relu-conv-bn, added to its input, then relu.
    Stages are joined by 2x2 max pooling; the head reads global average pooling.

    Args:
        input_shape: `(height, width, channels)`.
        num_outputs: classes or regression targets.
        task: `"classification"` or `"regression"`. Defaults to `"classification"`.
        filters: filters of the first stage, doubled each stage. Defaults to 16.
        blocks_per_stage: residual blocks in each stage. Defaults to 1.

    Returns:
        A `Graph`.
    """
    graph = Graph(input_shape, num_outputs, task)
    x = graph.input
    for stage in range(_num_stages(graph.input_shape) + 1):
        if stage:
            x = graph.add_layer("maxpool", x, pool_size=2)
        width = filters * 2**stage
        x = _conv_block(graph, x, width)
        for _ in range(blocks_per_stage):
            y = _conv_block(graph, x, width)
            y = graph.add_layer("conv", y, filters=width, kernel_size=3)
            y = graph.add_layer("batchnorm", y)
            x = graph.add_layer("relu", graph.add_layer("add", [x, y]))
    x = graph.add_layer("gap", x)
    graph.add_layer("head", x)
    return graph


def densenet(
    input_shape, num_outputs, task="classification", filters=16, growth_rate=12, layers_per_block=3
):
    """A DenseNet-like graph: dense blocks of concatenated conv-bn-relu layers.

    Blocks are joined by transitions (1x1 conv-bn-relu, then 2x2 average
    pooling); the head reads global average pooling.

    Args:
        input_shape: `(height, width, channels)`.
        num_outputs: classes or regression targets.
        task: `"classification"` or `"regression"`. Defaults to `"classification"`.
        filters: filters of the stem convolution. Defaults to 16.
        growth_rate: filters of each layer in a dense block. Defaults to 12.
        layers_per_block: layers in each dense block. Defaults to 3.

    Returns:
        A `Graph`.
    """
    graph = Graph(input_shape, num_outputs, task)
    x = _conv_block(graph, graph.input, filters)
    stages = _num_stages(graph.input_shape)
    for stage in range(stages + 1):
        for _ in range(layers_per_block):
            y = _conv_block(graph, x, growth_rate)
            x = graph.add_layer("concat", [x, y])
        if stage < stages:
            channels = graph.shape(x)[-1]
            x = _conv_block(graph, x, channels // 2, kernel_size=1)
            x = graph.add_layer("avgpool", x, pool_size=2)
    x = graph.add_layer("gap", x)
    graph.add_layer("head", x)
    return graph


GENERATORS = {"cnn": cnn, "resnet": resnet, "densenet": densenet}


def initial_graphs(input_shape, num_outputs, task="classification", width=1.0):
    """The initial architectures, cheapest first: `[cnn, resnet, densenet]` graphs.

    Args:
        input_shape: `(height, width, channels)`.
        num_outputs: classes or regression targets.
        task: `"classification"` or `"regression"`. Defaults to `"classification"`.
        width: factor on every generator's default filters and units (at
            least 4 each). Defaults to 1.0.

    Returns:
        A list of `Graph`s.
    """

    def scaled(units):
        return max(4, int(round(units * width)))

    graphs = [
        cnn(input_shape, num_outputs, task, filters=scaled(32), dense_units=scaled(128)),
        resnet(input_shape, num_outputs, task, filters=scaled(16)),
        densenet(input_shape, num_outputs, task, filters=scaled(16), growth_rate=scaled(12)),
    ]
    return sorted(graphs, key=lambda g: g.flops())
