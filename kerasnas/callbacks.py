"""Keras callbacks kerasnas trains with, and the one stack that trials and `final_fit` share.

Those that read time take a `clock` (a function returning seconds since the epoch,
`time.time` by default), so that budget logic can be tested with a fake clock. Each works
in any `keras.Model.fit`, not only in a search.
"""

from __future__ import annotations

import math
import time

import keras

from kerasnas import files, trials
from kerasnas.arguments import check_number
from kerasnas.output import say


def training_callbacks(
    *,
    monitor,
    mode,
    patience,
    deadline=None,
    validation_steps=0,
    clock=None,
    restore_best_weights=False,
    middle=(),
):
    """The callbacks every kerasnas training runs with, in their order.

    `TerminateOnNaN`, `BatchNormMomentum`, `EarlyStopping`, then `middle` (the
    caller's own: timers, savers, augmentation, user callbacks), then, under a
    deadline, `TimeCosineDecay` and `TimeBudget` last, so that the tail it measures
    covers the other callbacks' epoch ends.

    Args:
        monitor: the metric early stopping watches (e.g. `"val_accuracy"`).
        mode: `"max"` or `"min"`.
        patience: `EarlyStopping` patience in epochs.
        deadline: when training must end (seconds since the epoch), or None.
        validation_steps: batches of one validation pass (`TimeBudget` keeps room
            for it). Defaults to 0.
        clock: the time function. Defaults to None (`time.time`).
        restore_best_weights: `EarlyStopping` restores the best epoch's weights at
            the end. Defaults to False.
        middle: callbacks placed between early stopping and the time budget.
            Defaults to none.

    Returns:
        A list of Keras callbacks.
    """
    found = [
        keras.callbacks.TerminateOnNaN(),
        BatchNormMomentum(),
        keras.callbacks.EarlyStopping(
            monitor=monitor,
            mode=mode,
            patience=patience,
            restore_best_weights=restore_best_weights,
        ),
        *middle,
    ]
    if deadline is not None:
        found += [
            TimeCosineDecay(deadline, clock=clock),
            TimeBudget(deadline, validation_steps=validation_steps, clock=clock),
        ]
    return found


class SaveBestWeights(keras.callbacks.Callback):
    """Writes the weights of the best epoch so far to `path` (a `.weights.h5` file).

    Epochs are ranked as trials are (`kerasnas.trials.better`): an epoch that ties the
    best on the objective (common with a small validation set, where one image is a
    whole step of accuracy) is better when its validation loss is lower. An epoch whose
    loss diverged is never kept. The write is atomic (`kerasnas.files.save_weights`).

    Args:
        objective: a `keras_tuner.Objective` (its `name` and `direction`).
        path: the `.weights.h5` file to write.

    Attributes:
        best: the best epoch's objective value, or None before one.
        best_val_loss: its validation loss when the objective is another metric.
    """

    def __init__(self, objective, path):
        super().__init__()
        self.objective = objective
        self.path = path
        self.best = None
        self.best_val_loss = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        value, loss = logs.get(self.objective.name), logs.get("loss", 0.0)
        if value is None or not math.isfinite(value) or not math.isfinite(loss):
            return
        val_loss = logs.get("val_loss") if self.objective.name != "val_loss" else None
        if val_loss is not None and not math.isfinite(val_loss):
            val_loss = None
        direction = self.objective.direction
        if trials.better(value, val_loss, self.best, self.best_val_loss, direction):
            self.best, self.best_val_loss = value, val_loss
            files.save_weights(self.model, self.path)


class EpochLine(keras.callbacks.Callback):
    """One line per epoch through `kerasnas.output.say` (`verbose=2`: no progress bar).

    Args:
        trial_id: the trial the epochs belong to.
        epochs: the most epochs it may train (shown as "epoch 3/100").
        clock: the time function. Defaults to None (`time.time`).
    """

    def __init__(self, trial_id, epochs, clock=None):
        super().__init__()
        self.trial_id = trial_id
        self.epochs = epochs
        self.clock = clock or time.time
        self._start = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = self.clock()

    def on_epoch_end(self, epoch, logs=None):
        now = self.clock()
        values = ", ".join(f"{k} {float(v):.4f}" for k, v in sorted((logs or {}).items()))
        seconds = now - (now if self._start is None else self._start)
        say(f"Trial {self.trial_id} epoch {epoch + 1}/{self.epochs}: {values} ({seconds:.1f} s)")


class TimeBudget(keras.callbacks.Callback):
    """Stops training in time for the run to end by a wall-clock deadline.

    It checks after every batch whether one more batch would still end in
    time, leaving room for what follows the last batch: Keras validates the
    interrupted epoch (so its score counts, and callbacks such as
    `EarlyStopping(restore_best_weights=True)` or a best-weights checkpoint
    can keep the best epoch), then the epoch-end
    callbacks run. That tail is measured on every epoch; before the first one
    has been timed it is estimated from the training steps' time:
    `validation_steps` batches at half a training step each.

    Place it last among the callbacks, so that the tail it measures includes
    the other callbacks' epoch-end work.

    Args:
        deadline: when training must be over, in seconds since the epoch (as `clock()`).
        validation_steps: batches in a validation pass, to estimate the tail
            before it is measured. Defaults to 0.
        verbose: print a line when it stops training. Defaults to 0.
        clock: the time function. Defaults to None (`time.time`).

    Example:
        ```python
        import time

        from kerasnas.callbacks import TimeBudget

        budget = TimeBudget(time.time() + 60)  # done within a minute
        model.fit(x, y, epochs=100, callbacks=[budget])
        budget.stopped  # True if the deadline, not the epochs, ended training
        ```
    """

    def __init__(self, deadline, validation_steps=0, verbose=0, clock=None):
        super().__init__()
        self.deadline = float(deadline)
        self.validation_steps = int(validation_steps or 0)
        self.verbose = verbose
        self.clock = clock or time.time
        self.stopped = False
        self.tail_seconds = None  # measured: last batch's end to the epoch's end

    def on_train_begin(self, logs=None):
        self.stopped = False
        self._step_times = _StepTimes()

    def expected_step(self):
        """Seconds one more training batch is expected to take (0 before one was timed)."""
        return float(_median(self._step_times.seconds)) if self._step_times.seconds else 0.0

    def expected_tail(self):
        """Seconds expected from the end of the last batch to the end of its epoch."""
        if self.tail_seconds is not None:
            return self.tail_seconds
        return 0.5 * self.expected_step() * self.validation_steps

    def _check(self, now):
        # Stop unless one more batch and the epoch's tail still end by the deadline.
        late = now + self.expected_step() + self.expected_tail() >= self.deadline
        if not self.stopped and late:
            self.stopped = True
            self.model.stop_training = True
            if self.verbose:
                print("TimeBudget: the time budget is spent; stopping training.")

    def on_epoch_begin(self, epoch, logs=None):
        self._step_times.epoch_begin()
        self._check(self.clock())

    def on_train_batch_end(self, batch, logs=None):
        now = self.clock()
        self._step_times.batch_end(now)
        self._check(now)

    def on_epoch_end(self, epoch, logs=None):
        now = self.clock()
        tail = self._step_times.since_last_batch(now)
        if tail is not None:
            self.tail_seconds = max(tail, self.tail_seconds or 0.0)
        self._check(now)


class TimeCosineDecay(keras.callbacks.Callback):
    """Anneals the learning rate along a cosine over wall-clock time, not epochs.

    At every batch the rate is set to
    `initial * (floor + (1 - floor) * (1 + cos(pi * progress)) / 2)`, where
    `progress` is the fraction of the time from the start of training to
    `deadline` that has passed. A run cut off by the clock therefore ends
    annealed, where an epoch-based schedule would stop halfway. When `fit`'s
    `epochs` would end training before the deadline, `progress` is the fraction
    of those epochs' batches trained instead, whichever is further along, so
    that such a run ends annealed too.

    Args:
        deadline: time (seconds since the epoch, as `clock()`) at which the rate
            reaches its floor.
        floor: final rate as a fraction of the initial one. Defaults to 0.02.
        clock: the time function. Defaults to None (`time.time`).
    """

    def __init__(self, deadline, floor=0.02, clock=None):
        super().__init__()
        self.deadline = float(deadline)
        self.floor = float(floor)
        self.clock = clock or time.time
        self._total_batches = None
        self._batches = 0

    def on_train_begin(self, logs=None):
        self._start = self.clock()
        self._initial = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        params = self.params or {}
        self._steps, epochs = params.get("steps"), params.get("epochs")
        # So that a run `epochs` ends before the deadline still ends annealed.
        self._total_batches = self._steps * epochs if self._steps and epochs else None
        self._batches = 0
        self._epoch = 0

    def factor(self, now, batches=0):
        """The fraction of the initial rate in force at time `now`, after `batches` batches.

        Args:
            now: the time, as `clock()` gives it.
            batches: batches trained so far. Defaults to 0.
        """
        progress = _progress(self._start, now, self.deadline, batches, self._total_batches)
        progress = min(1.0, max(0.0, progress))
        return self.floor + (1 - self.floor) * 0.5 * (1 + math.cos(math.pi * progress))

    def on_train_batch_begin(self, batch, logs=None):
        rate = self._initial * self.factor(self.clock(), self._batches)
        self.model.optimizer.learning_rate.assign(rate)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        # From the batch's index: with `steps_per_execution`, one call ends several.
        if self._steps:
            self._batches = self._epoch * self._steps + batch + 1


class EpochTimer(keras.callbacks.Callback):
    """Times training: each epoch, each step, and what follows an epoch's last batch.

    From these it estimates what a whole epoch costs even when training was
    cut short in the middle of one (`full_epoch_seconds`), and how many epochs
    were trained, fractions included (`epochs_trained`).

    Args:
        clock: the time function. Defaults to None (`time.time`).
    """

    def __init__(self, clock=None):
        super().__init__()
        self.clock = clock or time.time

    def on_train_begin(self, logs=None):
        self.epoch_seconds = []
        self.tail_seconds = []  # last batch's end to the epoch's end: validation and callbacks
        self.batches = 0
        self._step_times = _StepTimes()

    @property
    def step_seconds(self):
        """The timed steps, batch end to batch end within an epoch (see `_StepTimes`)."""
        return self._step_times.seconds

    def on_epoch_begin(self, epoch, logs=None):
        self._start = self.clock()
        self._step_times.epoch_begin()

    def on_train_batch_end(self, batch, logs=None):
        self._step_times.batch_end(self.clock())
        self.batches += 1

    def on_epoch_end(self, epoch, logs=None):
        now = self.clock()
        self.epoch_seconds.append(now - self._start)
        tail = self._step_times.since_last_batch(now)
        if tail is not None:
            self.tail_seconds.append(tail)

    def _steps(self):
        steps = (self.params or {}).get("steps")
        return int(steps) if steps else None

    def full_epoch_seconds(self):
        """Seconds a whole epoch takes: the mean step times the batches per epoch, plus
        the shortest tail; the mean epoch when Keras does not know the batches per
        epoch. None before any epoch ended."""
        steps = self._steps()
        if steps is None or not self.step_seconds or not self.tail_seconds:
            if not self.epoch_seconds:
                return None
            return float(sum(self.epoch_seconds) / len(self.epoch_seconds))
        step = sum(self.step_seconds) / len(self.step_seconds)
        return float(step * steps + min(self.tail_seconds))

    def epochs_trained(self):
        """Epochs trained, counting a cut-short epoch's part."""
        steps = self._steps()
        return self.batches / steps if steps else float(len(self.epoch_seconds))


class BatchNormMomentum(keras.callbacks.Callback):
    """Lowers BatchNormalization layers' momentum when an epoch has few batches, so that
    their moving statistics forget their initial values within one epoch.

    Keras' default momentum, 0.99, averages over about a hundred batches. With eleven
    batches per epoch (1,400 images), the moving statistics that validation and
    prediction use would still be 64% initial values after four epochs, and a model
    would validate far worse than it trains. At the start of training this sets each
    BatchNormalization layer's momentum to `min(momentum, stale ** (1 / steps))`,
    `steps` being the batches per epoch, so that after one epoch the initial values
    weigh at most `stale`. It changes nothing when Keras does not know the batches per
    epoch, nor from about 300 batches per epoch on (at the default `stale`).

    It takes effect when the training step is traced: use it in a model's first `fit`.
    At the end of training the layers get their own momentum back, so a model saved or
    exported afterwards has the configuration it was built with.

    Args:
        stale: the weight the initial statistics may keep after one epoch. Defaults to 0.05.
    """

    def __init__(self, stale=0.05):
        super().__init__()
        if not 0.0 < stale < 1.0:
            raise ValueError(f"Expected `stale` between 0 and 1 (exclusive); got {stale}.")
        self.stale = float(stale)
        self.momentum = None  # the momentum set for this training, if any

    def on_train_begin(self, logs=None):
        self._own = {}
        steps = (self.params or {}).get("steps")
        if not steps:
            return
        self.momentum = self.stale ** (1.0 / steps)
        for layer in _sublayers(self.model):
            if isinstance(layer, keras.layers.BatchNormalization):
                self._own[layer] = layer.momentum
                layer.momentum = min(layer.momentum, self.momentum)

    def on_train_end(self, logs=None):
        for layer, momentum in self._own.items():
            layer.momentum = momentum


class AugmentWhenOverfitting(keras.callbacks.Callback):
    """Turns image augmentation on once validation shows the model overfitting.

    After the first epoch whose validation loss exceeds `ratio` times its
    training loss, `switch` (a boolean `tf.Variable` that the training
    pipeline reads, see `kerasnas.pipelines.augmented_while`) is set, and the
    epochs after it train on augmented images. Only in the first half of the
    training (by the time to `deadline`, or by `epochs`, whichever is further
    along): augmentation pays over many epochs, and late in a run it would only
    change the images the annealed model ends on. It stays on: augmented images
    raise the training loss, which would otherwise turn it off again.

    Args:
        switch: the boolean `tf.Variable`; set to False when training begins.
        ratio: the ratio of validation to training loss from which to augment (above 1).
        deadline: when training must be over (seconds since the epoch, as `clock()`),
            or None. Defaults to None.
        clock: the time function. Defaults to None (`time.time`).

    Attributes:
        augmented_after: whole epochs trained before the first augmented epoch
            began, or None while none has.
    """

    def __init__(self, switch, *, ratio, deadline=None, clock=None):
        super().__init__()
        self.switch = switch
        self.ratio = check_number("ratio", ratio, low=1, low_open=True)
        self.deadline = deadline
        self.clock = clock or time.time
        self.augmented_after = None

    def on_train_begin(self, logs=None):
        self.switch.assign(False)
        self.augmented_after = None
        self._start = self.clock()

    def on_epoch_begin(self, epoch, logs=None):
        if self.augmented_after is None and bool(self.switch.numpy()):
            self.augmented_after = epoch

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        loss, val_loss = logs.get("loss"), logs.get("val_loss")
        if loss is None or val_loss is None or not val_loss > self.ratio * loss:
            return
        epochs = (self.params or {}).get("epochs")
        if _progress(self._start, self.clock(), self.deadline, epoch + 1, epochs) <= 0.5:
            self.switch.assign(True)


def augment_when_overfitting(dataset, *, ratio, deadline=None, clock=None):
    """Sets up `AugmentWhenOverfitting` for a training Dataset.

    Args:
        dataset: the training data.
        ratio: the ratio of validation to training loss from which to augment (above 1).
        deadline: when training must be over (seconds since the epoch), or None.
            Defaults to None.
        clock: the time function. Defaults to None (`time.time`).

    Returns:
        `(augmented, callback)`: the Dataset to train on, its images augmented once
        the callback switches on; or None if `dataset` is not a `tf.data.Dataset` of
        (N, H, W, C) image batches, alone or first in a tuple.
    """
    import tensorflow as tf

    from kerasnas import pipelines

    if not isinstance(dataset, tf.data.Dataset):
        return None
    with tf.device("CPU:0"):  # tf.data reads it on the host, whatever runs the model
        switch = tf.Variable(False, trainable=False, name="augment")
    augmented = pipelines.augmented_while(dataset, switch)
    if augmented is None:
        return None
    return augmented, AugmentWhenOverfitting(switch, ratio=ratio, deadline=deadline, clock=clock)


def _progress(start, now, deadline, done, total):
    """How far a training run is along: the further of the time from `start` to `deadline`
    and of `done` out of `total` steps, each when known (None or 0 when not); 0 if neither."""
    fractions = [done / total] if total else []
    if deadline is not None:
        fractions.append((now - start) / max(deadline - start, 1e-9))
    return max(fractions, default=0.0)


def _sublayers(layer):
    for sublayer in getattr(layer, "layers", []):
        yield sublayer
        yield from _sublayers(sublayer)


class _StepTimes:
    """Training steps, each timed from one batch's end to the next's, so that what happens
    between batches (feeding data, other callbacks) counts too. The first batch of an
    epoch is left out: it follows the epoch's start, and in the first epoch it traces
    the graph. Shared by `TimeBudget` and `EpochTimer`, so both mean the same step."""

    def __init__(self):
        self.seconds = []
        self.last_end = None  # when the epoch's last batch so far ended

    def epoch_begin(self):
        self.last_end = None

    def batch_end(self, now):
        if self.last_end is not None:
            self.seconds.append(now - self.last_end)
        self.last_end = now

    def since_last_batch(self, now):
        """Seconds from the epoch's last batch to `now` (the epoch's tail), or None."""
        return None if self.last_end is None else now - self.last_end


def _median(values):
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else 0.5 * (ordered[middle - 1] + ordered[middle])
