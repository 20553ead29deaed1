"""Keras callbacks that make training keep a wall-clock budget."""

from __future__ import annotations

import math
import time

import keras


class TimeBudget(keras.callbacks.Callback):
    """Stops training at a wall-clock deadline, checked after every batch.

    Keras still validates the interrupted epoch, so the epoch's score counts
    and callbacks such as `EarlyStopping(restore_best_weights=True)` can keep
    the best epoch.

    Args:
        deadline: time (seconds since the epoch, as `time.time()`) to stop at.
        verbose: print a line when it stops training. Defaults to 0.

    Example:

    >>> model.fit(x, y, epochs=100, callbacks=[TimeBudget(time.time() + 60)])
    """

    def __init__(self, deadline, verbose=0):
        super().__init__()
        self.deadline = float(deadline)
        self.verbose = verbose
        self.stopped = False

    def on_train_begin(self, logs=None):
        self.stopped = False

    def _check(self):
        if time.time() >= self.deadline and not self.stopped:
            self.stopped = True
            self.model.stop_training = True
            if self.verbose:
                print("TimeBudget: the time budget is spent; stopping training.")

    def on_train_batch_end(self, batch, logs=None):
        self._check()

    def on_epoch_begin(self, epoch, logs=None):
        self._check()


class TimeCosineDecay(keras.callbacks.Callback):
    """Anneals the learning rate along a cosine over wall-clock time, not epochs.

    At every batch the rate is set to
    `initial * (floor + (1 - floor) * (1 + cos(pi * progress)) / 2)`, where
    `progress` is the fraction of the time from the start of training to
    `deadline` that has passed. A run cut off by the clock therefore ends
    annealed, where an epoch-based schedule would stop halfway.

    Args:
        deadline: time (seconds since the epoch) at which the rate reaches its floor.
        floor: final rate as a fraction of the initial one. Defaults to 0.02.
    """

    def __init__(self, deadline, floor=0.02):
        super().__init__()
        self.deadline = float(deadline)
        self.floor = float(floor)

    def on_train_begin(self, logs=None):
        self._start = time.time()
        self._initial = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def on_train_batch_begin(self, batch, logs=None):
        span = max(self.deadline - self._start, 1e-9)
        progress = min(1.0, (time.time() - self._start) / span)
        factor = self.floor + (1 - self.floor) * 0.5 * (1 + math.cos(math.pi * progress))
        self.model.optimizer.learning_rate.assign(self._initial * factor)


class EpochTimer(keras.callbacks.Callback):
    """Records the wall-clock seconds of each epoch, validation included."""

    def on_train_begin(self, logs=None):
        self.epoch_seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.time()

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_seconds.append(time.time() - self._start)
