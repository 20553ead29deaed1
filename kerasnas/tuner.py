"""`MorphismTuner`: trains the architectures a `NetworkMorphismOracle` proposes."""

from __future__ import annotations

import contextlib
import copy
import gc
import math
import os
import time

import keras
import keras_tuner
import numpy as np
import tensorflow as tf
from keras_tuner import errors

from kerasnas.callbacks import EpochTimer, TimeBudget, TimeCosineDecay
from kerasnas.graph import Graph, morphism
from kerasnas.oracle.network_morphism import (
    ARCHITECTURE,
    EPOCH_SECONDS,
    PARENT_TRIAL_ID,
    REFINE,
    TRAIN_SECONDS,
)

SETUP_SECONDS = "setup_seconds"
EPOCHS = "epochs"


class _SaveBestWeights(keras.callbacks.Callback):
    """Writes the weights of the best epoch so far to `path` (`.weights.h5`)."""

    def __init__(self, objective, path):
        super().__init__()
        self.objective = objective
        self.path = path
        self.best = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        value, loss = logs.get(self.objective.name), logs.get("loss", 0.0)
        if value is None or not math.isfinite(value) or not math.isfinite(loss):
            return  # an epoch whose loss diverged is never kept
        if self.best is None or self.objective.better_than(value, self.best):
            self.best = value
            self.model.save_weights(self.path)


class MorphismTuner(keras_tuner.Tuner):
    """A KerasTuner `Tuner` that trains each trial's architecture, warm-started from its parent.

    `run_trial` builds the trial's `Graph` (from the `"architecture"`
    hyperparameter); when the trial has a parent it loads the parent's best
    weights from the shared directory and maps them onto the child with
    `morphism.transfer`, so the child starts computing what its parent did.
    Training uses `EarlyStopping` on the objective, `TimeBudget` and
    `TimeCosineDecay` for the trial's share of the time left, and keeps the
    best epoch's weights as `checkpoint.weights.h5` in the trial's folder.
    A refinement trial (`"refine": True`, the best architecture proposed
    again at the end of the search) trains on from its parent's weights at
    half the learning rate, for all the time left, without early stopping.

    A candidate that fails (NaN loss, out of memory, too many parameters)
    fails its trial and the search goes on.

    Args:
        oracle: a `NetworkMorphismOracle`.
        loss: the Keras loss.
        metrics: Keras metrics; the objective's metric must be among them.
            Defaults to None.
        learning_rate: initial Adam learning rate. Defaults to 1e-3.
        batch_size: training batch size. Defaults to 128.
        max_epochs: most epochs a trial trains. Defaults to 100.
        patience: most `EarlyStopping` patience in epochs; under a deadline a
            trial with room for few epochs gets less (a quarter of the epochs
            that fit, at least 1). Defaults to 3.
        trial_share: fraction of the time left that one trial may use (a
            trial always gets room for at least one epoch). Defaults to 0.3.
        max_model_size: trials whose graph has more parameters fail. Defaults to None.
        verbose: print a line per trial and Keras' progress bar. Defaults to True.
        **kwargs: passed on to `keras_tuner.Tuner` (`directory`,
            `project_name`, `overwrite`, `distribution_strategy`).
    """

    def __init__(
        self,
        oracle,
        loss,
        metrics=None,
        learning_rate=1e-3,
        batch_size=128,
        max_epochs=100,
        patience=3,
        trial_share=0.3,
        max_model_size=None,
        verbose=True,
        **kwargs,
    ):
        super().__init__(
            oracle,
            hypermodel=None,
            loss=loss,
            metrics=metrics,
            max_model_size=max_model_size,
            **kwargs,
        )
        self.learning_rate = float(learning_rate)
        self.batch_size = int(batch_size)
        self.max_epochs = int(max_epochs)
        self.patience = int(patience)
        self.trial_share = float(trial_share)
        self.verbose = verbose
        self.deadline = None
        self._seconds_per_flop = []  # measured epoch seconds / FLOPs of this tuner's trials
        self._trials_started = 0
        self._last_seen_started = -1

    # ------------------------------------------------------------------ building

    def trial_graph(self, trial):
        return Graph.from_json(trial.hyperparameters.values[ARCHITECTURE])

    def checkpoint_path(self, trial_id):
        """Where the best weights of trial `trial_id` are kept."""
        return os.path.join(self.get_trial_dir(trial_id), "checkpoint.weights.h5")

    def build_model(self, trial):
        """The trial's model: its parent's weights mapped onto it, else fresh ones."""
        graph = self.trial_graph(trial)
        parent_id = trial.hyperparameters.values.get(PARENT_TRIAL_ID, "")
        if parent_id:
            path = self.checkpoint_path(parent_id)
            if os.path.exists(path):
                parent_graph = self.trial_graph(self.oracle.get_trial(parent_id))
                parent_model = parent_graph.to_keras()
                parent_model.load_weights(path)
                return morphism.transfer(parent_graph, parent_model, graph)
            print(
                f"kerasnas: parent {parent_id} of trial {trial.trial_id} has no weights "
                f"at {path}; training from scratch."
            )
        return graph.to_keras()

    def load_model(self, trial):
        """The trained model of a trial, from its best weights."""
        model = self.trial_graph(trial).to_keras()
        model.load_weights(self.checkpoint_path(trial.trial_id))
        return model

    # ------------------------------------------------------------------ time

    def _trial_deadline(self, graph, refine=False):
        """When this trial must stop: its share of the time left, at least one epoch."""
        if self.deadline is None:
            return None
        remaining = self.deadline - time.time()
        epoch = self.estimate_epoch_seconds(graph)
        share = remaining if refine else remaining * self.trial_share
        if epoch is not None:
            share = max(share, 1.5 * epoch)
        return time.time() + min(remaining, share)

    def _patience(self, graph, trial_deadline, refine=False):
        if refine:
            return self.max_epochs  # the time-cosine schedule, not early stopping, ends it
        epoch = self.estimate_epoch_seconds(graph)
        if trial_deadline is None or epoch is None:
            return self.patience
        fitting = (trial_deadline - time.time()) / max(epoch, 1e-9)
        return int(min(self.patience, max(1, fitting // 4)))

    def estimate_epoch_seconds(self, graph):
        """Seconds one epoch of `graph` should take, from this tuner's trials (None before any)."""
        if not self._seconds_per_flop:
            return None
        return float(np.median(self._seconds_per_flop)) * graph.flops()

    # ------------------------------------------------------------------ trials

    def run_trial(self, trial, x, y=None, validation_data=None, callbacks=None, **fit_kwargs):
        """Trains the trial's architecture and returns its metrics.

        Returns:
            A dict with the objective's best value, `train_seconds`,
            `epoch_seconds`, `setup_seconds` and `epochs`.
        """
        start = time.time()
        objective = self.oracle.objective
        graph = self.trial_graph(trial)
        if self.max_model_size and graph.num_params() > self.max_model_size:
            raise errors.FailedTrialError(
                f"The architecture has {graph.num_params():,} parameters, more than "
                f"max_model_size={self.max_model_size:,}."
            )
        refine = bool(trial.hyperparameters.values.get(REFINE))
        trial_deadline = self._trial_deadline(graph, refine)
        try:
            model = self._build_and_compile(trial)
            timer = EpochTimer()
            saver = _SaveBestWeights(objective, self.checkpoint_path(trial.trial_id))
            all_callbacks = [
                keras.callbacks.TerminateOnNaN(),
                keras.callbacks.EarlyStopping(
                    monitor=objective.name,
                    mode=objective.direction,
                    patience=self._patience(graph, trial_deadline, refine),
                ),
                timer,
                saver,
            ]
            if trial_deadline is not None:
                all_callbacks += [TimeBudget(trial_deadline), TimeCosineDecay(trial_deadline)]
            all_callbacks += [copy.copy(c) for c in callbacks or []]
            setup_seconds = time.time() - start
            fit_kwargs.pop("verbose", None)  # `search(verbose=...)` is KerasTuner's own display
            if isinstance(x, tf.data.Dataset):
                fit_kwargs.setdefault("shuffle", False)  # the dataset shuffles itself
            else:
                fit_kwargs.setdefault("batch_size", self.batch_size)
            fit_kwargs.setdefault("epochs", self.max_epochs)
            model.fit(
                x,
                y,
                validation_data=validation_data,
                callbacks=all_callbacks,
                verbose=1 if self.verbose else 0,
                **fit_kwargs,
            )
        except (MemoryError, tf.errors.ResourceExhaustedError) as e:
            raise errors.FailedTrialError(f"Out of memory: {e}") from e
        except (TypeError, ValueError) as e:
            # Not the candidate's fault (the data or the arguments are wrong):
            # every trial would fail alike, so stop the search and say why.
            raise errors.FatalError(f"Training trial {trial.trial_id} failed: {e}") from e
        if saver.best is None:
            raise errors.FailedTrialError(
                f"No epoch produced a finite `{objective.name}` (the loss may have become NaN)."
            )
        epoch_seconds = float(np.mean(timer.epoch_seconds))
        self._seconds_per_flop.append(epoch_seconds / max(graph.flops(), 1))
        return {
            objective.name: saver.best,
            TRAIN_SECONDS: time.time() - start,
            EPOCH_SECONDS: epoch_seconds,
            SETUP_SECONDS: setup_seconds,
            EPOCHS: len(timer.epoch_seconds),
        }

    def _build_and_compile(self, trial):
        strategy = self.distribution_strategy
        # A refinement resumes annealed weights: a full-rate restart would spend
        # part of its few epochs relearning what it knew.
        learning_rate = self.learning_rate
        if trial.hyperparameters.values.get(REFINE):
            learning_rate *= 0.5
        # As KerasTuner's own trials do: free earlier trials' models and traced functions.
        keras.backend.clear_session()
        gc.collect()
        with strategy.scope() if strategy else contextlib.nullcontext():
            model = self.build_model(trial)
            model.compile(
                optimizer=keras.optimizers.Adam(learning_rate),
                loss=self.loss,
                metrics=self.metrics,
            )
        return model

    # ------------------------------------------------------------------ search loop

    def pre_create_trial(self):
        # KerasTuner asks again at once after an IDLE answer (the chief waits
        # for a trial to finish before it can morph one); pause instead of spinning.
        if self._last_seen_started == self._trials_started:
            time.sleep(1.0)
        self._last_seen_started = self._trials_started

    def on_trial_begin(self, trial):
        self._trials_started += 1
        super().on_trial_begin(trial)
        if self.verbose:
            graph = self.trial_graph(trial)
            parent = trial.hyperparameters.values.get(PARENT_TRIAL_ID) or "-"
            if trial.hyperparameters.values.get(REFINE):
                parent += ", refining it"
            left = ""
            if self.deadline is not None:
                left = f", {max(0.0, self.deadline - time.time()):.0f} s left"
            print(
                f"\nTrial {trial.trial_id}: {graph.summary()} "
                f"({graph.num_params():,} params, parent {parent}{left})"
            )

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        if self.verbose:
            done = self.oracle.get_trial(trial.trial_id)
            score = "failed" if done.score is None else f"{done.score:.4f}"
            print(
                f"Trial {trial.trial_id} {done.status.lower()}: "
                f"{self.oracle.objective.name} = {score}"
            )
