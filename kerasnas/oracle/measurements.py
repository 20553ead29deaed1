"""What the trials measured, read back from them: epoch costs, overheads, efforts.

The oracle plans from these figures; they live in the trial files (see
`kerasnas.trials`), so they survive a resume and serve distributed workers. Numpy
only: a trial here is anything with KerasTuner's `Trial` attributes (`trial_id`,
`status`, `metrics`, `hyperparameters`).
"""

from __future__ import annotations

import math

import numpy as np

from kerasnas import trials
from kerasnas.graph import Graph
from kerasnas.oracle.cost import EpochCost
from kerasnas.trials import EPOCH_SECONDS, EPOCHS, TRAIN_SECONDS

COMPLETED = "COMPLETED"  # KerasTuner's `TrialStatus.COMPLETED`

# The cost model is fitted to the timings of at most this many trials, the latest:
# they describe the machine as it runs now, and the fit parses each one's architecture.
TIMINGS_KEPT = 50


def observations(scored, failed, direction):
    """What the Gaussian process is fitted to: trial ids and maximised objective values,
    the `scored` trials' own and the `failed` trials' at the worst score.

    Args:
        scored: completed trials with a finite score (at least one).
        failed: failed trials with an architecture.
        direction: the objective's, `"max"` or `"min"`.

    Returns:
        `(ids, y)`: a list of n ids and an (n,) array.
    """
    sign = 1.0 if direction == "max" else -1.0
    y = [sign * t.score for t in scored]
    y += [min(y)] * len(failed)
    return [t.trial_id for t in scored] + [t.trial_id for t in failed], np.array(y)


def score_error(score, objective, validation_size):
    """One standard error of an accuracy measured on `validation_size` images,
    sqrt(p (1 - p) / n): how far two scores may lie apart by the draw of the images alone.

    Args:
        score: the accuracy p, from 0 to 1.
        objective: the objective's name; only one ending in `accuracy` has this error.
        validation_size: how many images scored it, or None when unknown.

    Returns:
        The error on the score's scale, or None when it is not an accuracy or the
        size is unknown.
    """
    if not validation_size or not str(objective).endswith("accuracy"):
        return None
    if score is None or not 0 <= score <= 1:
        return None
    return math.sqrt(score * (1 - score) / validation_size)


def search_progress(in_order, direction, error_of):
    """The search's incumbent, and how many children in a row have not displaced it.

    A morphism child displaces the incumbent only when it beats the incumbent's score
    by more than one standard error; any other trial (an initial architecture, a
    refinement) does when it scores higher. So the incumbent is the best trial the
    validation set can tell apart from the ones before it.

    Args:
        in_order: the completed trials with a finite score, oldest first.
        direction: the objective's, `"max"` or `"min"`.
        error_of: a function from a score to its standard error (see `score_error`),
            or to None when there is none: then every trial competes on its score
            alone and no child counts as without gain.

    Returns:
        `(incumbent, children_without_gain)`: a trial (None without any), and an int,
        0 after a child that displaced the incumbent and before any child.
    """
    sign = 1.0 if direction == "max" else -1.0
    incumbent, streak = None, 0
    for trial in in_order:
        score = sign * trial.score
        if incumbent is None:
            incumbent = trial
            continue
        bar = sign * incumbent.score
        error = error_of(bar) if trials.is_child(trial) else 0.0
        if error is None:
            streak, error = 0, 0.0
        elif trials.is_child(trial):
            streak = 0 if score > bar + error else streak + 1
        if score > bar + error:
            incumbent = trial
    return incumbent, streak


def overhead_seconds(searched, probe=None, child=False):
    """Seconds a trial spends besides its epochs (building, weight transfer, compiling,
    tracing): the median over the timed trials, else the probe's, else 0.

    Args:
        searched: the trials that carry an architecture.
        probe: the probe's timings (see `NetworkMorphismOracle.set_probe`), or None.
        child: the overhead of a morphism child: the median over the timed children
            once there are some (the first trial also pays one-time costs), else over
            the timed trials. Defaults to False.

    Returns:
        Seconds, at least 0.
    """
    timed = [
        t
        for t in searched
        if t.status == COMPLETED
        and all(t.metrics.exists(m) for m in (TRAIN_SECONDS, EPOCHS, EPOCH_SECONDS))
    ]
    children = [t for t in timed if trials.is_child(t)]
    spent = [
        trials.metric(t, TRAIN_SECONDS) - trials.metric(t, EPOCHS) * trials.metric(t, EPOCH_SECONDS)
        for t in (children if child and children else timed)
    ]
    if not spent:
        spent = [p["overhead_seconds"] for p in probe or []]
    return max(0.0, float(np.median(spent))) if spent else 0.0


def effort(trials_by_id, trial_id):
    """Epochs of training behind a trial's weights: its own and its ancestors'.

    A child starts from its parent's weights, so its score reflects their training
    too; the kernel compares scores at this effort.

    Args:
        trials_by_id: `{trial id: trial}`.
        trial_id: the trial's id.
    """
    total, seen = 0.0, set()
    while trial_id and trial_id in trials_by_id and trial_id not in seen:
        seen.add(trial_id)
        trial = trials_by_id[trial_id]
        total += float(trials.metric(trial, EPOCHS, 0.0) or 0.0)
        trial_id = trials.parent_of(trial)
    return total


def typical_epoch_seconds(trained):
    """The median measured epoch of the `trained` trials, or None before any."""
    timed = [trials.metric(t, EPOCH_SECONDS) for t in trained if t.metrics.exists(EPOCH_SECONDS)]
    return float(np.median(timed)) if timed else None


def usual_child_epochs(trained):
    """The median epochs the trained children ran (1 before any): without a deadline a
    child trains about as many as the children before it."""
    epochs = [trials.metric(t, EPOCHS, 0.0) for t in trained if trials.is_child(t)]
    return float(np.median(epochs)) if epochs else 1.0


class CostModel:
    """The `EpochCost` model of the search, refitted only when a timing comes or goes.

    Args:
        graph_of: a function from a trial to its `Graph` (the oracle's parsed cache).
    """

    def __init__(self, graph_of):
        self.graph_of = graph_of
        self._fitted = (None, EpochCost())  # (the timings it was fitted to, model)

    def fitted(self, searched, probe=None):
        """The `EpochCost` fitted to the latest `TIMINGS_KEPT` timed completed trials
        among `searched` (oldest first) and to the probe's timings."""
        timed = [
            (t, trials.metric(t, EPOCH_SECONDS))
            for t in searched
            if t.status == COMPLETED and t.metrics.exists(EPOCH_SECONDS)
        ][-TIMINGS_KEPT:]
        key = ([(t.trial_id, s) for t, s in timed], len(probe or []))
        if self._fitted[0] != key:
            measured = [(self.graph_of(t), s) for t, s in timed]
            measured += [
                (Graph.from_json(p["architecture"]), p["epoch_seconds"]) for p in probe or []
            ]
            self._fitted = (key, EpochCost().fit(measured))
        return self._fitted[1]
