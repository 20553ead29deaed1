"""The trial contract: what every kerasnas trial carries and reports, and how to read it.

A trial's hyperparameter values hold its architecture as JSON (`ARCHITECTURE`),
the id of the trained trial whose weights it starts from (`PARENT_TRIAL_ID`,
`""` for an initial architecture), whether it refines that parent
(`REFINE`) and its `TrialPlan` (`PLAN`). The tuner reports, besides the
objective, the metrics in `TIMING_METRICS`, `TIE_VAL_LOSS`, and
`AUGMENTED_AFTER` when the trial turned to augmented images. Everything that
reads trials (the oracle, the tuner, the estimators, the diagrams) goes through
this module, never through literal keys.
"""

from __future__ import annotations

import json
import logging
import math
import os

from kerasnas import files
from kerasnas.graph import Graph

logger = logging.getLogger("kerasnas")

# Hyperparameter values.
ARCHITECTURE = "architecture"
"""Hyperparameter value: the trial's `Graph`, as JSON (`Graph.to_json`)."""
PARENT_TRIAL_ID = "parent_trial_id"
"""Hyperparameter value: the trained trial whose weights it starts from, `""` for none."""
REFINE = "refine"
"""Hyperparameter value: whether the trial trains its parent's architecture on."""
PLAN = "plan"
"""Hyperparameter value: how the trial trains, a `TrialPlan` as JSON."""
REASON = "reason"
"""Hyperparameter value: why the oracle proposed the trial, one sentence (`oracle.explain`)."""
ARCHITECTURE_KEY = "architecture_key"
"""Hyperparameter value: the architecture's `Graph.architecture_key`, so that the
architectures tried can be told apart without parsing each."""

# Metrics the tuner reports besides the objective.
TRAIN_SECONDS = "train_seconds"
"""Metric: seconds of the whole trial, setup and training."""
EPOCH_SECONDS = "epoch_seconds"
"""Metric: seconds a whole epoch takes, validation included."""
SETUP_SECONDS = "setup_seconds"
"""Metric: seconds of building, weight transfer and compiling."""
EPOCHS = "epochs"
"""Metric: epochs trained, a cut-short epoch's part included."""
TIMING_METRICS = (TRAIN_SECONDS, EPOCH_SECONDS, SETUP_SECONDS, EPOCHS)
"""The timing metrics every trial reports."""
TIE_VAL_LOSS = "tie_val_loss"
"""Metric: the best epoch's validation loss, when the objective is another metric; of
trials that tie on the objective, the one with the lower loss ranks first."""
AUGMENTED_AFTER = "augmented_after"
"""Metric: whole epochs trained before augmentation began, reported only by a trial that
trained on augmented images (see `TrialPlan`)."""

TRIAL_FILE = "trial.json"
"""KerasTuner's record of a trial, in its folder `trial_<id>`."""
CHECKPOINT = "checkpoint.weights.h5"
"""A trial's best weights, in its folder `trial_<id>`."""


class TrialPlan:
    """How a trial trains: decided by the oracle, carried in the trial, executed by the tuner.

    `from_config` ignores keys it does not know (added by a later kerasnas: a
    worker can then still run the plans of a newer chief, without what they add).

    Args:
        seconds: training time allowed from the trial's start, or None without a deadline.
        patience: `EarlyStopping` patience in epochs, or None for no early stopping.
        learning_rate_scale: factor on the tuner's learning rate. Defaults to 1.0.
        overfit_ratio: the trial trains on augmented images (random shifts and zooms) from
            the first epoch after which its validation loss exceeds `overfit_ratio` times
            its training loss; None never. Defaults to None.
        augment: the trial trains on augmented images from its first epoch. Defaults
            to False.
        deadline: when the whole search must end, in seconds since the epoch (the
            chief's clock), or None. A worker stops the trial by then. Defaults to None.
    """

    def __init__(
        self,
        seconds=None,
        patience=None,
        learning_rate_scale=1.0,
        overfit_ratio=None,
        augment=False,
        deadline=None,
    ):
        self.seconds = None if seconds is None else float(seconds)
        self.patience = None if patience is None else int(patience)
        self.learning_rate_scale = float(learning_rate_scale)
        self.overfit_ratio = None if overfit_ratio is None else float(overfit_ratio)
        self.augment = bool(augment)
        self.deadline = None if deadline is None else float(deadline)

    def get_config(self):
        """The plan as a dict of plain values (it travels as JSON in the trial)."""
        return {
            "seconds": self.seconds,
            "patience": self.patience,
            "learning_rate_scale": self.learning_rate_scale,
            "overfit_ratio": self.overfit_ratio,
            "augment": self.augment,
            "deadline": self.deadline,
        }

    @classmethod
    def from_config(cls, config):
        """The plan of a `get_config` dict; keys this version does not know are ignored.

        Args:
            config: a dict from `get_config`.

        Returns:
            A `TrialPlan`.
        """
        known = cls().get_config()
        return cls(**{k: v for k, v in config.items() if k in known})

    def __eq__(self, other):
        return isinstance(other, TrialPlan) and self.get_config() == other.get_config()

    def __repr__(self):
        return f"TrialPlan({self.get_config()})"


def values(graph, parent_trial_id="", refine=False, plan=None, reason=""):
    """The hyperparameter values of a trial that trains `graph`.

    Args:
        graph: the `Graph` to train.
        parent_trial_id: the trained trial whose weights it starts from. Defaults to `""`.
        refine: whether the trial trains its parent on. Defaults to False.
        plan: its `TrialPlan`. Defaults to None (the tuner's defaults).
        reason: why the trial is proposed, one sentence. Defaults to `""` (none given).

    Returns:
        A dict for `Oracle.populate_space`'s `"values"`.
    """
    found = {
        ARCHITECTURE: graph.to_json(),
        ARCHITECTURE_KEY: graph.architecture_key(),
        PARENT_TRIAL_ID: parent_trial_id,
        REFINE: refine,
    }
    if plan is not None:
        found[PLAN] = json.dumps(plan.get_config())
    if reason:
        found[REASON] = reason
    return found


def is_child(trial):
    """Whether the trial is a morphism child: grown from a parent, not a refinement of it."""
    return bool(parent_of(trial)) and not is_refinement(trial)


def reason_of(trial):
    """Why the oracle proposed the trial, or `""` (a run from an older version)."""
    text = trial.hyperparameters.values.get(REASON)
    return text if isinstance(text, str) else ""


def plan_of(trial):
    """The trial's `TrialPlan`, or None if it carries none (a run from an older version).

    Args:
        trial: a KerasTuner `Trial`.

    Raises:
        ValueError: if its plan is not valid JSON, or holds a value of the wrong kind.
        TypeError: if its plan is not a JSON object of plan values.
    """
    text = trial.hyperparameters.values.get(PLAN)
    return None if not text else TrialPlan.from_config(files.loads(text))


def checkpoint_path(project_dir, trial_id):
    """Where the best weights of trial `trial_id` of the search in `project_dir` are kept.

    Args:
        project_dir: the search's folder, `directory/project_name`.
        trial_id: the trial's id.

    Returns:
        The path of its `checkpoint.weights.h5`.
    """
    return os.path.join(project_dir, f"trial_{trial_id}", CHECKPOINT)


def load_weights(model, path, fix=""):
    """Loads `path` into `model` and returns it.

    Args:
        model: a `keras.Model` of the architecture the weights were saved from.
        path: a `.weights.h5` file.
        fix: what the error message tells the user to do. Defaults to `""`.

    Returns:
        `model`, its weights loaded.

    Raises:
        kerasnas.files.RunFileError: naming `path`, if it is missing or does not load
            (`fix` says what to do).
    """
    if not os.path.isfile(path):
        raise files.MissingRunFileError(f"The weights file {path} is missing. {fix}", path)
    try:
        model.load_weights(path)
    except Exception as e:  # h5py raises OSError, Keras ValueError for a mismatched file
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise files.RunFileError(
            f"The weights file {path} cannot be read ({first}). {fix}", path
        ) from e
    return model


def load_trial_model(project_dir, trial, fix=""):
    """The trained model of `trial`, named `trial_<id>`, with its best weights.

    Args:
        project_dir: the search's folder.
        trial: a KerasTuner `Trial` that carries an architecture.
        fix: what the error message tells the user to do. Defaults to `""`.

    Returns:
        An uncompiled `keras.Model`.

    Raises:
        kerasnas.files.RunFileError: if its architecture is not one kerasnas builds (see
            `Graph.from_config`), naming its `trial.json`, or if its weights are missing
            or do not load.
    """
    path = trial_path(project_dir, trial.trial_id)
    try:
        graph = graph_of(trial)
    except ValueError as e:
        raise files.RunFileError(
            f"{path} holds an architecture kerasnas does not build: {e} {fix}", path
        ) from None
    model = graph.to_keras(name=f"trial_{trial.trial_id}")
    return load_weights(model, checkpoint_path(project_dir, trial.trial_id), fix)


def trial_path(project_dir, trial_id):
    """The `trial.json` of trial `trial_id` of the search in `project_dir`.

    Args:
        project_dir: the search's folder.
        trial_id: the trial's id.
    """
    return os.path.join(project_dir, f"trial_{trial_id}", TRIAL_FILE)


def has_architecture(trial):
    """Whether `trial` carries an architecture (one read from a damaged file does not).

    Args:
        trial: a KerasTuner `Trial`.
    """
    return ARCHITECTURE in trial.hyperparameters.values


def graph_of(trial):
    """The `Graph` a trial trains, parsed from its values.

    Args:
        trial: a KerasTuner `Trial` that carries an architecture.

    Raises:
        KeyError: if it carries none (see `has_architecture`).
        ValueError: if its architecture is not one kerasnas builds.
    """
    return Graph.from_json(trial.hyperparameters.values[ARCHITECTURE])


def architecture_key_of(trial):
    """The `Graph.architecture_key` recorded with a trial, or None (a trial of an older
    kerasnas: parse its architecture with `graph_of`).

    Args:
        trial: a KerasTuner `Trial`.
    """
    key = trial.hyperparameters.values.get(ARCHITECTURE_KEY)
    return key if isinstance(key, str) and key else None


def key_of(trial):
    """A trial's architecture key: the one recorded with it, else (a trial of an older
    kerasnas) its parsed graph's.

    Args:
        trial: a KerasTuner `Trial` that carries an architecture.
    """
    return architecture_key_of(trial) or graph_of(trial).architecture_key()


def parent_of(trial):
    """The id of the trial whose weights `trial` starts from, or None.

    Args:
        trial: a KerasTuner `Trial`.
    """
    return trial.hyperparameters.values.get(PARENT_TRIAL_ID) or None


def is_refinement(trial):
    """Whether `trial` trains its parent's architecture on from its weights.

    Args:
        trial: a KerasTuner `Trial`.
    """
    return bool(trial.hyperparameters.values.get(REFINE))


def metric(trial, name, default=None):
    """The last value of metric `name` of `trial`, or `default` if it reported none.

    Args:
        trial: a KerasTuner `Trial`.
        name: the metric, e.g. `EPOCHS`.
        default: what to return if the trial reported none. Defaults to None.
    """
    if not trial.metrics.exists(name):
        return default
    # KerasTuner's `get_last_value` averages with numpy, which a long search's proposal
    # pays tens of thousands of times; one execution's value needs no average.
    history = trial.metrics.metrics[name].get_history()
    if not history:
        return None
    values = history[-1].value
    return float(values[0]) if len(values) == 1 else float(sum(values) / len(values))


def ranking_key(trial, direction):
    """Sorts trials best first: by the objective in `direction` (`"max"` or `"min"`), then,
    on a tie, by the lower `TIE_VAL_LOSS` (on a small validation set trials often tie;
    the finer measure on the same images decides). Trials without a score come last.

    Args:
        trial: a KerasTuner `Trial`.
        direction: the objective's direction, `"max"` or `"min"`.

    Returns:
        A tuple for `sorted(..., key=...)`.
    """
    sign = -1.0 if direction == "max" else 1.0
    score = trial.score if trial.score is not None and math.isfinite(trial.score) else None
    return (
        math.inf if score is None else sign * score,
        metric(trial, TIE_VAL_LOSS, math.inf),
    )


def ranked(found, direction):
    """The completed trials among `found`, best first (see `ranking_key`).

    Args:
        found: KerasTuner `Trial`s.
        direction: the objective's direction, `"max"` or `"min"`.

    Returns:
        A list of the completed trials.
    """
    done = [t for t in found if t.status == "COMPLETED"]
    return sorted(done, key=lambda t: ranking_key(t, direction))


def in_order(found):
    """`found` in the order the trials were created (KerasTuner numbers them from 0).

    Args:
        found: KerasTuner `Trial`s.

    Returns:
        A list, ids that are not numbers first, in their given order.
    """
    return sorted(found, key=lambda t: int(t.trial_id) if str(t.trial_id).isdigit() else -1)


def better(value, tie_loss, best, best_tie_loss, direction):
    """Whether an epoch or trial beats the best so far, by the rule of `ranking_key`.

    Args:
        value: its objective value.
        tie_loss: its validation loss, or None.
        best: the best objective value so far, or None when there is none yet.
        best_tie_loss: the best's validation loss, or None.
        direction: the objective's direction, `"max"` or `"min"`.
    """
    if best is None:
        return True
    if value != best:
        return value > best if direction == "max" else value < best
    return tie_loss is not None and (best_tie_loss is None or tie_loss < best_tie_loss)


def read_trials(project_dir):
    """Every trial of the search in `project_dir`, read with `read_trial`, in folder order.

    Args:
        project_dir: the search's folder, holding `trial_<id>/trial.json` files.

    Returns:
        A list of KerasTuner `Trial`s (empty when there are none).
    """
    import glob

    pattern = os.path.join(glob.escape(str(project_dir)), "trial_*", TRIAL_FILE)
    return [read_trial(path) for path in sorted(glob.glob(pattern))]


# The hyperparameter classes a `trial.json` may name: KerasTuner's own, nothing else.
HYPERPARAMETER_CLASSES = frozenset({"Boolean", "Choice", "Fixed", "Float", "Int"})


def read_trial(path):
    """Reads a KerasTuner `trial.json`, checked as data from a stranger.

    An empty or truncated file (a crash while it was written) is read as a
    failed trial without an architecture, with a warning, so that its id
    stays taken and the rest of the run can still be read and resumed. So is a
    file the search could not have written: too large or deeply nested JSON (see
    `files.read_json`), a hyperparameter class other than KerasTuner's own, or an
    architecture `Graph.from_json` refuses (an unknown layer type, too many layers,
    too wide or too large, a dangling or cyclic reference).

    Args:
        path: `.../trial_<id>/trial.json`.

    Returns:
        A `keras_tuner` `Trial`; a failed one without an architecture whose `message`
        names `path` and what is wrong with it, if it cannot be read.
    """
    import keras_tuner
    from keras_tuner.engine import trial as trial_module

    try:
        state = files.read_json(path)
        space = state["hyperparameters"]["space"]
        strange = [
            p.get("class_name") if isinstance(p, dict) else p
            for p in space
            if not isinstance(p, dict) or p.get("class_name") not in HYPERPARAMETER_CLASSES
        ]
        if strange:
            raise files.RunFileError(
                f"{path} names hyperparameter classes {strange!r:.80}; only KerasTuner's "
                f"{sorted(HYPERPARAMETER_CLASSES)} are read.",
                path,
            )
        trial = trial_module.Trial.from_state(state)
        found = trial.hyperparameters.values
        if not isinstance(found.get(PARENT_TRIAL_ID, ""), str):
            raise files.RunFileError(
                f"{path} holds {PARENT_TRIAL_ID}={found[PARENT_TRIAL_ID]!r:.40}, not a trial id.",
                path,
            )
        plan_of(trial)  # a ValueError or TypeError if its plan is bad
        if has_architecture(trial):
            try:
                graph_of(trial)
            except ValueError as e:
                raise files.RunFileError(
                    f"{path} holds an architecture kerasnas does not build: {e}", path
                ) from None
        return trial
    except (files.RunFileError, KeyError, TypeError, ValueError, AttributeError) as e:
        trial_id = os.path.basename(os.path.dirname(path)).removeprefix("trial_")
        reason = str(e) if isinstance(e, files.RunFileError) else e.__class__.__name__
        logger.warning(
            "%s is unreadable (%s); trial %s counts as failed and the search goes on.",
            path,
            reason,
            trial_id,
        )
        trial = trial_module.Trial(keras_tuner.HyperParameters(), trial_id, status="FAILED")
        trial.message = (
            str(e) if isinstance(e, files.RunFileError) else f"{path} was unreadable ({reason})."
        )
        return trial
