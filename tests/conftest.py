"""Shared fixtures: fixed seeds and small trained models, built once per session."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest

from kerasnas.graph import generators

# Input shapes the property tests cover: digits, MNIST, CIFAR-like.
SHAPES = [(8, 8, 1), (28, 28, 1), (32, 32, 3)]


@pytest.fixture(autouse=True)
def seed():
    np.random.seed(0)
    import keras

    keras.utils.set_random_seed(0)


def randomize_batchnorm(model, rng):
    """Gives every BatchNormalization layer clearly non-trivial parameters and statistics."""
    for layer in model.layers:
        if layer.__class__.__name__ == "BatchNormalization":
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, gamma.shape).astype("float32"),
                    rng.normal(0, 0.5, beta.shape).astype("float32"),
                    rng.normal(0, 0.5, mean.shape).astype("float32"),
                    rng.uniform(0.5, 2.0, var.shape).astype("float32"),
                ]
            )


@pytest.fixture(scope="session")
def trained_parents():
    """`{(generator, shape): (graph, model, x)}`: each initial graph trained for a few steps."""
    import keras

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    cache = {}

    def get(generator, shape):
        key = (generator, shape)
        if key not in cache:
            graph = generators.GENERATORS[generator](shape, 3)
            model = graph.to_keras()
            model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
            x = rng.uniform(0, 1, (32, *shape)).astype("float32")
            y = rng.integers(0, 3, 32)
            model.fit(x, y, batch_size=8, epochs=1, verbose=0)
            randomize_batchnorm(model, rng)
            cache[key] = (graph, model, x)
        return cache[key]

    return get


@pytest.fixture(scope="session")
def logits():
    """`logits(model, x)`: the model's outputs before the final softmax, in inference mode."""
    import keras

    def compute(model, x):
        head = keras.Model(model.input, model.get_layer("head").output)
        return np.asarray(head(x, training=False))

    return compute
