"""Test doubles: a clock that moves only when told, callbacks that move it, and tiny images."""

from __future__ import annotations

import numpy as np


class FakeClock:
    """A `time.time` stand-in: `clock()` returns the time, `advance(s)` moves it on."""

    def __init__(self, start=1_000_000.0):
        self.now = float(start)

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += float(seconds)


def ticking(clock, train_batch=0.0, test_batch=0.0, train_begin=0.0):
    """A Keras callback that advances `clock` by the given seconds per training/validation
    batch, and by `train_begin` when training begins (as building and tracing take).

    Place it before the callbacks under test, so they see the batch's time.
    """
    import keras

    class Tick(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            clock.advance(train_begin)

        def on_train_batch_end(self, batch, logs=None):
            clock.advance(train_batch)

        def on_test_batch_end(self, batch, logs=None):
            clock.advance(test_batch)

    return Tick()


def quadrant_images(n, seed, dtype="uint8"):
    """(n, 8, 8) images whose class (0-2) is the brightest of three quadrants, and the classes."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.uniform(0, 0.3, (n, 8, 8))
    for i, label in enumerate(y):
        r, c = divmod(int(label), 2)
        x[i, r * 4 : r * 4 + 4, c * 4 : c * 4 + 4] += 0.7
    return ((x * 255).astype("uint8") if dtype == "uint8" else x.astype(dtype)), y
