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

Only `average` imports Keras; the rest is numpy.
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
        key = trials.graph_of(trial).architecture_key()
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
        clock: the time function. Defaults to `time.time`.

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
