"""The finish of a search: the best distinct architectures averaged into one model.

After the search, the top `k` trials with distinct architectures (`members`)
predict on the validation data, as many as the time left allows (`gather`);
the averaged outputs of the best `n` of them replace the best model only when
they score strictly better on the validation data than it does alone
(`choose`). The ensemble is one plain functional `keras.Model` (`average`):
each member a nested model named `trial_<id>`, their outputs averaged by a
`keras.layers.Average` layer, so it saves, loads and exports as any Keras model.

Glossary:
    N: validation images; C: outputs per image (classes, or regression targets).
    outputs: a member's (N, C) predictions: probabilities or values.
    labels: the encoded validation labels: class indices (N,), or targets (N, C).

Its step of "data to Keras": after the search, the validation feed of `feeds.py`
once more, through the best models (`ValidationPasses`); `finish` runs it all for
an estimator. Only `average` imports Keras (and `finish` through the models it
loads); the rest is numpy.
"""

from __future__ import annotations

import time

import numpy as np

from kerasnas import files, trials
from kerasnas.output import logger

METRIC = {"classification": "accuracy", "regression": "mean squared error"}


def members(ranked_trials, k):
    """The best trials with distinct architectures, at most `k`, best first.

    A trial that trains its parent on (`refine`) shares its parent's
    architecture: of the trials of one architecture only the best is kept.

    Args:
        ranked_trials: KerasTuner trials, best first.
        k: the most members.

    Returns:
        A list of at most `k` COMPLETED trials, best first.
    """
    chosen, seen = [], set()
    for trial in ranked_trials:
        if len(chosen) >= k:
            break
        if trial.status != "COMPLETED" or not trials.has_architecture(trial):
            continue
        key = trials.key_of(trial)
        if key not in seen:
            seen.add(key)
            chosen.append(trial)
    return chosen


def score(outputs, labels, task):
    """How good `outputs` are: accuracy (classification) or mean squared error (regression).

    Args:
        outputs: (N, C) probabilities or values.
        labels: class indices (N,), or targets (N, C).
        task: `"classification"` or `"regression"`.

    Returns:
        The score as a float; see `better` for its direction.
    """
    outputs = np.asarray(outputs, dtype="float64")
    if task == "classification":
        return float(np.mean(outputs.argmax(axis=1) == np.asarray(labels).reshape(-1)))
    labels = np.asarray(labels, dtype="float64").reshape(outputs.shape)
    return float(np.mean((outputs - labels) ** 2))


def better(new, old, task):
    """Whether score `new` is strictly better than `old` (higher accuracy, lower error)."""
    return new > old if task == "classification" else new < old


def gains(candidate, single, labels, task):
    """Per-image improvement of `candidate` outputs over `single` ones, (N,): correctness
    gained (1, 0 or -1), or squared error saved."""
    candidate = np.asarray(candidate, dtype="float64")
    single = np.asarray(single, dtype="float64")
    if task == "classification":
        labels = np.asarray(labels).reshape(-1)
        right = lambda outputs: (outputs.argmax(axis=1) == labels).astype("float64")  # noqa: E731
        return right(candidate) - right(single)
    labels = np.asarray(labels, dtype="float64").reshape(single.shape)
    error = lambda outputs: ((outputs - labels) ** 2).reshape(len(labels), -1).mean(axis=1)  # noqa: E731
    return error(single) - error(candidate)


def significant(gained):
    """Whether the mean of per-image gains exceeds its standard error (about one sigma):
    on a small validation set one image more right is noise, not a better model."""
    if len(gained) < 2 or gained.mean() <= 0:
        return False
    return gained.mean() > gained.std(ddof=1) / np.sqrt(len(gained))


def choose(outputs, labels, task):
    """How many leading members to average: the best prefix, if it beats the best member.

    Prefixes of 2 to k members are tried; the best of them is kept only if
    it scores strictly better than the first member alone, by more than the
    standard error of the per-image difference (`significant`; a tie keeps
    the single model), and of equally good prefixes the shortest.

    Args:
        outputs: the members' (N, C) outputs on the validation data, best member first.
        labels: the encoded validation labels: class indices (N,) or targets (N, C).
        task: `"classification"` (accuracy of the argmax, higher is better) or
            `"regression"` (mean squared error, lower is better).

    Returns:
        The number of members to average; 1 means no ensemble.

    Raises:
        ValueError: for an unknown task, no outputs, or outputs of different shapes.
    """
    if task not in METRIC:
        raise ValueError(
            f"Expected `task` to be 'classification' or 'regression'. Received: task={task!r}"
        )
    if len(outputs) == 0:
        raise ValueError("Expected the outputs of at least one member; got none.")
    stacked = np.stack([np.asarray(o, dtype="float64") for o in outputs])  # (k, N, C)
    count, best = 1, score(stacked[0], labels, task)
    for n in range(2, len(stacked) + 1):
        averaged = stacked[:n].mean(axis=0)
        candidate = score(averaged, labels, task)
        gained = gains(averaged, stacked[0], labels, task)
        if better(candidate, best, task) and significant(gained):
            count, best = n, candidate
    return count


def gather(candidates, load, predict, deadline, flops, first_seconds=0.0, clock=time.time):
    """The candidates' models and validation outputs, in order, while the time allows.

    A candidate starts only if the time it is expected to take still ends by
    `deadline`: the most seconds a candidate took so far, scaled up for one
    with more FLOPs (`first_seconds` before any was timed). A candidate whose
    weights do not load is skipped with a warning.

    Args:
        candidates: trials, best first (see `members`).
        load: `trial -> keras.Model`; raises `files.RunFileError` when the
            trial's weights do not load.
        predict: `model -> (N, C) numpy outputs` on the validation data.
        deadline: the `clock` time by which all of it must end.
        flops: `trial -> FLOPs` of its architecture, to scale the expected time.
        first_seconds: expected seconds of the first candidate. Defaults to 0.0.
        clock: the time function. Defaults to None (`time.time`).

    Returns:
        A list of `(trial, model, outputs)`, best first.
    """
    gathered, timed = [], []  # timed: (seconds, FLOPs) of each candidate done
    for trial in candidates:
        size = max(float(flops(trial)), 1.0)
        expected = max((s * max(1.0, size / f) for s, f in timed), default=first_seconds)
        if clock() + expected > deadline:
            break
        began = clock()
        try:
            model = load(trial)
        except files.RunFileError as e:
            logger.warning("%s The ensemble goes on without trial %s.", e, trial.trial_id)
            continue
        outputs = np.asarray(predict(model))
        timed.append((clock() - began, size))
        gathered.append((trial, model, outputs))
    return gathered


def average(models, name="kerasnas_ensemble"):
    """One functional `keras.Model` whose output is the mean of the models' outputs.

    Each model becomes a nested model of the ensemble, so their names must
    differ (e.g. `trial_<id>`). Only Keras' own layers are used: the
    ensemble saves as `.keras` and loads back with plain
    `keras.models.load_model` in safe mode.

    Args:
        models: two or more `keras.Model`s with one input of the same shape
            and outputs of the same shape.
        name: the ensemble's name. Defaults to `"kerasnas_ensemble"`.

    Returns:
        A `keras.Model`.

    Raises:
        ValueError: for fewer than two models, repeated names, or models
            whose input or output shapes differ.
    """
    import keras

    models = list(models)
    if len(models) < 2:
        raise ValueError(f"Expected at least 2 models to average; got {len(models)}.")
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise ValueError(
            f"Expected models with distinct names (e.g. trial_<id>) to nest in one ensemble. "
            f"Received: names={names}"
        )
    for what in ("input_shape", "output_shape"):
        shapes = [tuple(getattr(m, what)) for m in models]
        if len(set(shapes)) != 1:
            raise ValueError(f"Expected models of one {what} to average. Received: {shapes}")
    inputs = keras.Input(shape=tuple(models[0].input_shape[1:]), name="ensemble_input")
    outputs = keras.layers.Average(name="average")([m(inputs) for m in models])
    return keras.Model(inputs, outputs, name=name)


def finish(task, ranked, feed, counts, batch_size, deadline):
    """Averages the best distinct architectures into `task.model_` if that scores better.

    The best trial's model (`task.model_`, the first of `ranked`) and the next
    ones with other architectures predict on the validation data while the
    time before `deadline` allows (see `gather`); if the average of the first
    few beats the best alone (`choose`), it becomes `task.model_` and their
    trial ids `task.ensemble_`.

    Args:
        task: the estimator, its `model_` the best trial's model.
        ranked: COMPLETED trials, best first, the first one that of `task.model_`.
        feed: the validation data as `feeds.validation_feed` gives it.
        counts: `(training images, validation images)`, to estimate the
            first validation pass from the best trial's epoch time.
        batch_size: batch size for predicting.
        deadline: the time by which `fit` must return.

    Returns:
        `(the ensemble's score, the best model's score)` on the validation
        data (see `score`) when an ensemble was chosen, else None.
    """
    if task.ensemble_size <= 1 or time.time() >= deadline:
        return None
    candidates = members(ranked, task.ensemble_size)
    if len(candidates) < 2:
        return None
    best, best_model = ranked[0], task.model_
    epoch_seconds = trials.metric(best, trials.EPOCH_SECONDS) or 0.0
    passes = ValidationPasses(feed, max(batch_size, 256))

    def load(trial):
        return best_model if trial is best else trials.load_trial_model(task.project_dir, trial)

    try:
        gathered = gather(
            candidates,
            load,
            passes,
            deadline,
            flops=lambda trial: trials.graph_of(trial).flops(),
            first_seconds=epoch_seconds * counts[1] / max(1, sum(counts)),
        )
    except ReorderedError as e:
        logger.warning("%s", e)
        return None
    if len(gathered) < 2:
        return None
    outputs = [found[2] for found in gathered]
    count = choose(outputs, passes.labels, task.task)
    if count < 2:
        return None
    chosen = gathered[:count]
    task.model_ = average([model for _, model, _ in chosen])
    task.ensemble_ = [trial.trial_id for trial, _, _ in chosen]
    mean = np.mean(outputs[:count], axis=0)
    return (
        score(mean, passes.labels, task.task),
        score(outputs[0], passes.labels, task.task),
    )


class ReorderedError(ValueError):
    """Raised when a streamed validation set yields its images in another order on a new pass."""


class ValidationPasses:
    """`model -> (N, C) outputs` on the validation data, as `feeds.validation_feed` gives it.

    `labels` holds the encoded labels after the first pass. A streamed feed
    is read again for every model, so each pass is checked to yield the
    same images in the same order as the first (a Dataset reshuffled on
    every iteration does not); otherwise the outputs could not be averaged.

    Args:
        feed: `(images, encoded labels)` arrays, or a Dataset of such batches.
        batch_size: images per call of a model on arrays.
    """

    def __init__(self, feed, batch_size):
        self.feed = feed
        self.batch_size = batch_size
        self.labels = None
        self._fingerprint = None  # (N,) sum of each preprocessed image, of the first pass

    def __call__(self, model):
        if isinstance(self.feed, tuple):  # called batch by batch: no predict function to trace
            images, self.labels = self.feed[0], np.asarray(self.feed[1])
            return np.concatenate(
                [
                    np.asarray(model(images[i : i + self.batch_size], training=False))
                    for i in range(0, len(images), self.batch_size)
                ]
            )
        outputs, labels, sums = [], [], []
        for images, encoded in self.feed:
            outputs.append(np.asarray(model(images, training=False)))
            labels.append(np.asarray(encoded))
            images = np.asarray(images, dtype="float64")
            sums.append(images.reshape(len(images), -1).sum(axis=1))
        labels, sums = np.concatenate(labels), np.concatenate(sums)
        if self._fingerprint is None:
            self.labels, self._fingerprint = labels, sums
        elif not (
            labels.shape == self.labels.shape
            and np.array_equal(labels, self.labels)
            and np.allclose(sums, self._fingerprint, rtol=1e-6, atol=1e-6)
        ):
            raise ReorderedError(
                "kerasnas: `validation_data` yields its images in another order on each pass "
                "(a Dataset shuffled on every iteration?), so the best models' outputs cannot "
                "be averaged; keeping the best model alone. For an ensemble, pass validation "
                "data in a fixed order (shuffle(..., reshuffle_each_iteration=False), or none)."
            )
        return np.concatenate(outputs)
