"""Test doubles: a clock that moves only when told, and callbacks that move it."""

from __future__ import annotations


class FakeClock:
    """A `time.time` stand-in: `clock()` returns the time, `advance(s)` moves it on."""

    def __init__(self, start=1_000_000.0):
        self.now = float(start)

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += float(seconds)


def ticking(clock, train_batch=0.0, test_batch=0.0):
    """A Keras callback that advances `clock` by the given seconds per training/validation batch.

    Place it before the callbacks under test, so they see the batch's time.
    """
    import keras

    class Tick(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            clock.advance(train_batch)

        def on_test_batch_end(self, batch, logs=None):
            clock.advance(test_batch)

    return Tick()
