"""Shared fixtures: the one seed fixture, a fake clock, and small trained models built once.

Test doubles live in `kerasnas.testing`; tests import them from there, never from here.
Tests that train a search are marked `slow` where they are written.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest

from kerasnas.graph import generators
from kerasnas.testing import FakeClock, quadrant_images, randomize_batchnorm


@pytest.fixture(autouse=True)
def seed():
    """Every test starts from the same seeds (numpy, Python, Keras and TensorFlow)."""
    import keras

    keras.utils.set_random_seed(0)  # seeds numpy's global generator too


@pytest.fixture
def clock():
    """A `FakeClock`: budget logic under test sees only the time the test gives it."""
    return FakeClock()


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


@pytest.fixture(scope="session")
def fitted_classifier(tmp_path_factory):
    """An ImageClassifier fitted once on string labels: (classifier, directory)."""
    import kerasnas

    directory = tmp_path_factory.mktemp("runs")
    x, y = quadrant_images(240, 0)
    clf = kerasnas.ImageClassifier(directory=str(directory), seed=1, max_trials=4, verbose=False)
    # max_trials ends this search; the time limit only has to leave room for four trials
    # on the slowest machine.
    clf.fit(x, np.array(["left", "right", "bottom"])[y], time_limit=900, epochs=3)
    return clf, directory


@pytest.fixture
def keras_fits(monkeypatch):
    """Every `keras.Model.fit` call of the test, recorded before it trains:
    `(x, validation_data, callbacks)` each."""
    import keras

    fits = []
    keras_fit = keras.Model.fit

    def recording_fit(model, x=None, *args, **kwargs):
        fits.append((x, kwargs.get("validation_data"), kwargs.get("callbacks") or []))
        return keras_fit(model, x, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", recording_fit)
    return fits
