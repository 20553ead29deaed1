"""`MorphismTuner`: trains the architectures a `NetworkMorphismOracle` proposes."""

from __future__ import annotations

import contextlib
import copy
import gc
import logging
import math
import time

import keras
import keras_tuner
import numpy as np
import tensorflow as tf
from keras_tuner import errors
from keras_tuner.src import config as keras_tuner_config

from kerasnas import distributed, files, pipelines, trials
from kerasnas.arguments import check_int, check_number
from kerasnas.callbacks import (
    EpochLine,
    EpochTimer,
    SaveBestWeights,
    augment_when_overfitting,
    training_callbacks,
)
from kerasnas.graph import transfer
from kerasnas.oracle import NetworkMorphismOracle, schedule
from kerasnas.output import check_verbose, keras_fit_verbose, quiet_retracing, say
from kerasnas.trials import (
    AUGMENTED_AFTER,
    EPOCH_SECONDS,
    EPOCHS,
    SETUP_SECONDS,
    TIE_VAL_LOSS,
    TRAIN_SECONDS,
)

logger = logging.getLogger("kerasnas")


def clear_session():
    """`keras.backend.clear_session()`, keeping the user's interactive-logging setting.

    Keras 3.15's `clear_session` turns interactive logging back on, which would send
    the trial lines of a user who called `keras.utils.disable_interactive_logging()`
    to standard output instead of the `kerasnas` logger.
    """
    interactive = keras.config.is_interactive_logging_enabled()
    keras.backend.clear_session()
    if not interactive:
        keras.utils.disable_interactive_logging()


class MorphismTuner(keras_tuner.Tuner):
    """A KerasTuner `Tuner` that trains each trial's architecture, warm-started from its parent.

    `run_trial` builds the trial's `Graph` (see `kerasnas.trials`); when the
    trial has a parent it loads the parent's best weights from the shared
    directory and maps them onto the child with `transfer`, so the child
    starts computing what its parent did. It keeps the best epoch's weights
    as `checkpoint.weights.h5` in the trial's folder.

    The oracle owns the time: it sets the search's deadline
    (`NetworkMorphismOracle.set_deadline`) and gives each trial a
    `kerasnas.trials.TrialPlan` (its time allowance, `EarlyStopping`
    patience and learning-rate scale) that travels in the trial's values, so
    a resumed search and distributed workers follow it. The tuner executes
    the plan: `TimeBudget` ends the trial early enough for its last
    validation pass and weight save to finish by the trial's deadline, and
    `TimeCosineDecay` anneals the learning rate towards that deadline. A
    refinement (the best architecture proposed again at the end of the
    search) trains on from its parent's weights, at the full rate, for all the
    time left, without early stopping.
    A trial whose plan says `augment` (the oracle's choice for a budget of
    many epochs) trains on randomly shifted and zoomed images throughout. A
    trial whose plan has an `overfit_ratio` (the oracle gives it to the
    refinement otherwise) trains on such images from the first
    epoch after which its validation loss exceeds that many times its
    training loss, if that comes in the first half of its training
    (`kerasnas.callbacks.AugmentWhenOverfitting`); that needs
    arrays (without `validation_split`) or a Dataset of image batches (alone
    or first in a tuple), else it trains without, with a warning.

    A candidate that fails (NaN loss, out of memory, too many parameters)
    fails its trial and the search goes on. numpy arrays reach Keras as
    untuned Datasets of batches (`kerasnas.pipelines`), reshuffled every
    epoch unless `shuffle=False` is passed to `search`; with
    `validation_split`, which needs arrays, they go to Keras as they are.

    Args:
        oracle: a `NetworkMorphismOracle` (or, on a distributed worker,
            KerasTuner's client for one).
        loss: the Keras loss.
        metrics: Keras metrics; the objective's metric must be among them.
            Defaults to None.
        learning_rate: initial Adam learning rate. Defaults to 1e-3.
        batch_size: training batch size. Defaults to 128.
        max_epochs: most epochs a trial trains. Defaults to 100.
        max_model_size: trials whose graph has more parameters fail. Defaults to None.
        verbose: 0 silent; 1 (or True) a line when each trial starts and ends, and
            Keras' progress bars when the output is interactive; 2 those lines and
            one line per epoch, no bars (see `kerasnas.output`). Defaults to True.
        clock: the time function. Defaults to None (the oracle's `clock`, else `time.time`).
        chief_timeout: on a distributed worker, the most seconds a request waits for
            the chief to answer; then the worker stops with a
            `kerasnas.distributed.ChiefUnreachableError`. Defaults to 300.
        worker_grace: on a distributed chief with a deadline, the most seconds it waits
            past the deadline for trials still out (their workers may be gone) before
            its `search` returns. Defaults to 30.
        **kwargs: passed on to `keras_tuner.Tuner` (`directory`,
            `project_name`, `overwrite`, `distribution_strategy`).

    Raises:
        ValueError: if an argument is out of range (the message names it).

    Example:
        ```python
        import time

        import numpy as np
        from kerasnas.oracle.network_morphism import NetworkMorphismOracle
        from kerasnas.tuner import MorphismTuner

        x = np.random.default_rng(0).random((64, 8, 8, 1), dtype="float32")
        y = np.arange(64) % 2
        oracle = NetworkMorphismOracle((8, 8, 1), 2, max_trials=2, seed=1)
        tuner = MorphismTuner(
            oracle,
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
            max_epochs=1,
            directory="runs",
            project_name="tuner_example",
        )
        oracle.set_deadline(time.time() + 60)  # the search's time limit
        tuner.search(x, y, validation_data=(x[:16], y[:16]))
        ```
    """

    def __init__(
        self,
        oracle,
        loss,
        metrics=None,
        learning_rate=1e-3,
        batch_size=128,
        max_epochs=100,
        max_model_size=None,
        verbose=True,
        clock=None,
        chief_timeout=distributed.CHIEF_TIMEOUT,
        worker_grace=distributed.WORKER_GRACE,
        **kwargs,
    ):
        self.chief_timeout = check_number("chief_timeout", chief_timeout, low=0, low_open=True)
        self.worker_grace = check_number("worker_grace", worker_grace, low=0)
        super().__init__(
            oracle,
            hypermodel=None,
            loss=loss,
            metrics=metrics,
            max_model_size=check_int("max_model_size", max_model_size, 1, allow_none=True),
            **kwargs,
        )
        self.learning_rate = check_number("learning_rate", learning_rate, low=0, low_open=True)
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        self.max_epochs = check_int("max_epochs", max_epochs, minimum=1)
        self.verbose = check_verbose(0 if verbose is None else verbose)
        self.clock = clock or getattr(oracle, "clock", None) or time.time
        self._trials_started = 0
        self._last_seen_started = -1
        if distributed.is_worker():
            distributed.bound_worker(self.oracle, self.chief_timeout)

    # ------------------------------------------------------------------ building

    @property
    def _local_oracle(self):
        """The oracle itself when it runs in this process, else None (a distributed worker)."""
        return self.oracle if isinstance(self.oracle, NetworkMorphismOracle) else None

    def trial_graph(self, trial):
        """The `Graph` a trial trains (parsed once, by the oracle, in the chief's process).

        Args:
            trial: a KerasTuner `Trial`.
        """
        if self._local_oracle is not None:
            return self._local_oracle.trial_graph(trial)
        return trials.graph_of(trial)

    def checkpoint_path(self, trial_id):
        """Where the best weights of trial `trial_id` are kept (`trials.checkpoint_path`);
        the trial's folder is made if need be.

        Args:
            trial_id: the trial's id.
        """
        self.get_trial_dir(trial_id)  # KerasTuner makes the folder
        return trials.checkpoint_path(self.project_dir, trial_id)

    def build_model(self, trial):
        """The trial's model: its parent's weights mapped onto it, else fresh ones.

        A parent whose weights cannot be read (missing or damaged) gives a warning,
        and the trial trains from fresh weights.

        Args:
            trial: a KerasTuner `Trial` that carries an architecture.

        Returns:
            An uncompiled `keras.Model`.
        """
        graph = self.trial_graph(trial)
        parent_id = trials.parent_of(trial)
        if parent_id:
            parent = self.oracle.get_trial(parent_id)
            try:
                parent_model = trials.load_trial_model(self.project_dir, parent)
            except files.RunFileError as e:  # missing, or damaged
                logger.warning(
                    "Parent %s of trial %s has no readable weights (%s); training from scratch.",
                    parent_id,
                    trial.trial_id,
                    e,
                )
            else:
                return transfer(self.trial_graph(parent), parent_model, graph)
        return graph.to_keras()

    def load_model(self, trial):
        """The trained model of a trial, from its best weights (KerasTuner's API).

        Args:
            trial: a KerasTuner `Trial` that carries an architecture.

        Returns:
            A `keras.Model`, uncompiled, on preprocessed images.

        Raises:
            kerasnas.files.RunFileError: if its weights are missing or do not load.
        """
        return trials.load_trial_model(self.project_dir, trial)

    # ------------------------------------------------------------------ time

    @property
    def deadline(self):
        """When the search must end (seconds since the epoch): the oracle's in this
        process; None on a distributed worker, where each trial's plan carries it."""
        if self._local_oracle is not None:
            return self._local_oracle.deadline
        return None

    def _plan(self, trial):
        """The trial's `TrialPlan`, with the search's deadline as this process knows it.

        The oracle in this process knows the deadline of the current `fit` (a trial run
        again after a resume carries an earlier one); a worker takes its plan's. A trial
        of a run older than plans gets `schedule.legacy_plan`.
        """
        plan = trials.plan_of(trial) or schedule.legacy_plan(trials.is_refinement(trial))
        if self._local_oracle is not None:
            plan.deadline = self.deadline
        return plan

    # ------------------------------------------------------------------ trials

    def run_trial(self, trial, x, y=None, validation_data=None, callbacks=None, **fit_kwargs):
        """Trains the trial's architecture and returns its metrics.

        Args:
            trial: the KerasTuner `Trial`, its plan in its values.
            x: the training data, as given to `search`: arrays or a `tf.data.Dataset`.
            y: the training labels, for arrays. Defaults to None.
            validation_data: as for `keras.Model.fit`. Defaults to None.
            callbacks: the user's Keras callbacks; the trial gets its own deep copies.
                Defaults to None.
            **fit_kwargs: passed on to `keras.Model.fit` (e.g. `epochs`, `batch_size`,
                `class_weight`).

        Returns:
            A dict with the objective's best value, `train_seconds`,
            `epoch_seconds`, `setup_seconds`, `epochs`, the best epoch's
            `val_loss` as `tie_val_loss` (when the objective is another metric),
            and `augmented_after` when augmentation was switched on.

        Raises:
            keras_tuner.errors.FailedTrialError: for a bad candidate (too many
                parameters, out of memory, no finite score, a model Keras cannot
                build): the trial fails and the search goes on.
            keras_tuner.errors.FatalError: for a mistake every trial would repeat (bad
                data or arguments, a full disk): the search stops.
        """
        start = self.clock()
        objective = self.oracle.objective
        graph = self.trial_graph(trial)
        if self.max_model_size and graph.num_params() > self.max_model_size:
            raise errors.FailedTrialError(
                f"The architecture has {graph.num_params():,} parameters, more than "
                f"max_model_size={self.max_model_size:,}."
            )
        plan = self._plan(trial)
        trial_deadline = schedule.trial_deadline(plan, start)
        fit_kwargs.pop("verbose", None)  # `search(verbose=...)` is KerasTuner's own display
        if isinstance(x, np.ndarray) and "validation_split" not in fit_kwargs:
            x, y, validation_data = self._as_datasets(x, y, validation_data, fit_kwargs)
        if isinstance(x, tf.data.Dataset):
            fit_kwargs.setdefault("shuffle", False)  # the dataset shuffles itself
        else:
            fit_kwargs.setdefault("batch_size", self.batch_size)
        fit_kwargs.setdefault("epochs", self.max_epochs)
        try:
            model = self._build_and_compile(trial, plan)
        except (MemoryError, tf.errors.ResourceExhaustedError) as e:
            raise errors.FailedTrialError(f"Out of memory: {e}") from e
        except errors.FatalError:
            raise  # e.g. a worker that lost its chief while asking for the parent
        except Exception as e:
            # The candidate's own fault (a morphism or a layer Keras cannot build):
            # it fails its trial, and the search goes on.
            raise errors.FailedTrialError(
                f"Building trial {trial.trial_id}'s model failed: {e.__class__.__name__}: {e}"
            ) from e
        # After the build: it clears the Keras session, and the switch is a new variable.
        x, augmenting, from_start = self._augmented(trial, x, plan, trial_deadline)
        try:
            timer = EpochTimer(clock=self.clock)
            saver = SaveBestWeights(objective, self.checkpoint_path(trial.trial_id))
            lines = [EpochLine(trial.trial_id, fit_kwargs["epochs"], self.clock)]
            all_callbacks = training_callbacks(
                monitor=objective.name,
                mode=objective.direction,
                # No patience: the time-annealed schedule, not early stopping, ends it.
                patience=self.max_epochs if plan.patience is None else plan.patience,
                deadline=trial_deadline,
                validation_steps=_validation_steps(validation_data, fit_kwargs.get("batch_size")),
                clock=self.clock,
                middle=[
                    timer,
                    saver,
                    *([augmenting] if augmenting else []),
                    *(lines if self.verbose == 2 else []),
                    # As KerasTuner does: each trial gets its own copies of the user's.
                    *copy.deepcopy(list(callbacks or [])),
                ],
            )
            setup_seconds = self.clock() - start
            model.fit(
                x,
                y,
                validation_data=validation_data,
                callbacks=all_callbacks,
                verbose=keras_fit_verbose(self.verbose),
                **fit_kwargs,
            )
        except (MemoryError, tf.errors.ResourceExhaustedError) as e:
            raise errors.FailedTrialError(f"Out of memory: {e}") from e
        except OSError as e:
            if files.is_disk_full(e):  # every trial would fail alike: stop, say why
                raise errors.FatalError(f"No space left on the device: {e}") from e
            raise
        except (TypeError, ValueError) as e:
            # Not the candidate's fault (the data or the arguments are wrong):
            # every trial would fail alike, so stop the search and say why.
            raise errors.FatalError(f"Training trial {trial.trial_id} failed: {e}") from e
        if saver.best is None:
            raise errors.FailedTrialError(
                f"No epoch produced a finite `{objective.name}` (the loss may have become NaN)."
            )
        found = {
            objective.name: saver.best,
            TRAIN_SECONDS: self.clock() - start,
            EPOCH_SECONDS: timer.full_epoch_seconds(),
            SETUP_SECONDS: setup_seconds,
            EPOCHS: timer.epochs_trained(),
        }
        if saver.best_val_loss is not None:
            found[TIE_VAL_LOSS] = saver.best_val_loss
        if from_start:
            found[AUGMENTED_AFTER] = 0
        elif augmenting and augmenting.augmented_after is not None:
            found[AUGMENTED_AFTER] = augmenting.augmented_after
        return found

    def _augmented(self, trial, x, plan, deadline):
        """`(x, callback, from_start)`: the training Dataset, augmented from the first epoch
        (the plan's `augment`), or once the callback sees overfitting (its `overfit_ratio`)
        in the first half of the trial (to `deadline`, or by epochs); else `(x, None, False)`."""
        if not plan.augment and plan.overfit_ratio is None:
            return x, None, False
        if plan.augment:
            if isinstance(x, tf.data.Dataset):
                augmented = pipelines.augmented_while(x, tf.constant(True))
                if augmented is not None:
                    return augmented, None, True
        else:
            found = augment_when_overfitting(
                x, ratio=plan.overfit_ratio, deadline=deadline, clock=self.clock
            )
            if found is not None:
                return (*found, False)
        logger.warning(
            "Trial %s will not train on augmented images: that needs the training data "
            "as arrays (without `validation_split`) or as a Dataset of (N, H, W, C) "
            "image batches, alone or first in a tuple; got %s.",
            trial.trial_id,
            getattr(x, "element_spec", type(x).__name__),
        )
        return x, None, False

    def _as_datasets(self, x, y, validation_data, fit_kwargs):
        """numpy arrays as untuned Datasets of batches, as Keras would batch them (see
        `kerasnas.pipelines`; `validation_split` needs arrays, so it keeps them). Takes
        `batch_size`, `shuffle` and `sample_weight` out of `fit_kwargs`.

        Returns:
            `(x, y, validation_data)` to hand to `fit`.
        """
        batch_size = fit_kwargs.pop("batch_size", None) or self.batch_size
        x = pipelines.array_dataset(
            x,
            y,
            fit_kwargs.pop("sample_weight", None),
            batch_size=batch_size,
            shuffle=bool(fit_kwargs.pop("shuffle", True)),
        )
        if isinstance(validation_data, (tuple, list)) and isinstance(
            validation_data[0], np.ndarray
        ):
            validation_data = pipelines.array_dataset(
                *validation_data,
                batch_size=fit_kwargs.pop("validation_batch_size", None) or batch_size,
            )
        return x, None, validation_data

    def _build_and_compile(self, trial, plan):
        strategy = self.distribution_strategy
        learning_rate = self.learning_rate * plan.learning_rate_scale
        # As KerasTuner's own trials do: free earlier trials' models and traced functions.
        clear_session()
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

    def save(self):
        """KerasTuner's `save`, with the tuner's own file written whole (atomically)."""
        if not self._is_worker():
            self.oracle.save()
        files.write_json(self._get_tuner_fname(), self.get_state())

    def reload(self):
        """KerasTuner's `reload`; a damaged tuner file is read as the empty state it holds.

        The tuner keeps no state of its own (its file is `{}`), so a torn one loses
        nothing: it gets a warning instead of stopping the resume.
        """
        if not self._is_worker():
            self.oracle.reload()
        try:
            state = files.read_json(
                self._get_tuner_fname(),
                fix="The tuner keeps no state of its own: the search resumes without it.",
            )
        except files.RunFileError as error:
            logger.warning("%s", error)
            state = {}
        self.set_state(state)

    def search(self, *fit_args, **fit_kwargs):
        """KerasTuner's `search`, after timing a few batches for the oracle when it asks.

        Under a deadline the oracle sizes its first architecture to the
        machine: before the first trial, `probe` times the architectures it
        names (`probe_graphs`) on the first batches of the training data.

        With `validation_data` as arrays, it tells the oracle their size
        (`NetworkMorphismOracle.set_validation_size`) unless told already.

        On the chief of a distributed search, it then serves the oracle to the
        workers (`kerasnas.distributed.serve`) and returns once they are done, or
        `worker_grace` seconds past the deadline at the latest.

        Args:
            *fit_args: the training data, as for `keras.Model.fit`.
            **fit_kwargs: as for `keras.Model.fit`, e.g. `validation_data`, and
                `callbacks`, which each trial gets its own deep copy of.
        """
        with quiet_retracing():  # a new model every trial: its retracing is expected
            oracle = self._local_oracle
            if oracle is not None and oracle.validation_size is None:
                oracle.set_validation_size(_validation_size(fit_kwargs.get("validation_data")))
            if oracle is not None and oracle.needs_probe():
                start = self.clock()
                for graph in oracle.probe_graphs():
                    timing = self.probe(graph, *fit_args, **fit_kwargs)
                    if timing is not None:
                        oracle.set_probe(graph, *timing)
                    if self.clock() - start > schedule.PROBE_SHARE * (self.deadline - self.clock()):
                        break  # a short budget: one timing must do
            if distributed.is_chief():
                # KerasTuner's chief, with an end: it gives up on lost workers.
                if "verbose" in fit_kwargs:
                    self.oracle.verbose = fit_kwargs["verbose"]
                self.save()
                distributed.serve(self.oracle, worker_grace=self.worker_grace)
                return None
            return super().search(*fit_args, **fit_kwargs)

    def probe(self, graph, x, y=None, batch_size=None, **_):
        """Times `graph` on the first `schedule.PROBE_BATCHES` batches of the training data.

        Args:
            graph: the `Graph` to time.
            x: the training data, as given to `search`: arrays, or a batched
                `tf.data.Dataset`.
            y: the training labels, for arrays. Defaults to None.
            batch_size: the batch size of array data. Defaults to None (the tuner's).
            **_: the rest of `search`'s arguments, ignored.

        Returns:
            `(epoch_seconds, overhead_seconds)`: the median step (batch end to batch
            end) times the batches in an epoch,
            and the rest of the time (building, compiling, tracing the
            training and validation steps); None if the epoch's length is
            unknown or the clock did not move.
        """
        start = self.clock()
        clear_session()
        model = graph.to_keras()
        model.compile(optimizer=keras.optimizers.Adam(self.learning_rate), loss=self.loss)
        timer = EpochTimer(clock=self.clock)
        if isinstance(x, tf.data.Dataset):
            steps = int(x.cardinality())
            data = x.take(schedule.PROBE_BATCHES)
            kwargs = {"validation_data": x.take(1), "shuffle": False}
        else:
            batch_size = batch_size or self.batch_size
            count = schedule.PROBE_BATCHES * batch_size
            steps = math.ceil(len(x) / batch_size)
            data = pipelines.array_dataset(x[:count], y[:count], batch_size=batch_size)
            validation = pipelines.array_dataset(
                x[:batch_size], y[:batch_size], batch_size=batch_size
            )
            kwargs = {"validation_data": validation, "shuffle": False}
        if steps <= 0:
            return None
        model.fit(data, epochs=1, callbacks=[timer], verbose=0, **kwargs)
        if not timer.step_seconds:
            return None
        # The median: one stalled step of a shared machine would inflate a mean of a few.
        step = float(np.median(timer.step_seconds))
        overhead = self.clock() - start - step * timer.batches
        if step <= 0:
            return None
        return step * steps, max(0.0, overhead)

    def pre_create_trial(self):
        # KerasTuner asks again at once after an IDLE answer (the chief waits
        # for a trial to finish before it can morph one); pause instead of spinning.
        if self._last_seen_started == self._trials_started:
            time.sleep(1.0)
        self._last_seen_started = self._trials_started

    def _try_run_and_update_trial(self, trial, *fit_args, **fit_kwargs):
        # KerasTuner prints the traceback of every failed trial (its config.DEBUG);
        # the trial keeps it in `trial.message`, and one line here says why it failed.
        debug, keras_tuner_config.DEBUG = keras_tuner_config.DEBUG, False
        try:
            super()._try_run_and_update_trial(trial, *fit_args, **fit_kwargs)
        finally:
            keras_tuner_config.DEBUG = debug
        if trial.status in ("FAILED", "INVALID") and trial.message:
            reason = trial.message.strip().splitlines()[-1]
            logger.warning("Trial %s failed: %s", trial.trial_id, reason)

    def on_trial_begin(self, trial):
        self._trials_started += 1
        super().on_trial_begin(trial)
        if self.verbose:
            graph = self.trial_graph(trial)
            parent = trials.parent_of(trial) or "-"
            if trials.is_refinement(trial):
                parent += ", refining it"
            say(
                f"Trial {trial.trial_id}: {graph.summary()} "
                f"({graph.num_params():,} params, parent {parent}{self._time_left()})"
            )
            reason = trials.reason_of(trial)
            if reason:
                say(f"  why: {reason}.")

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        if self.verbose:
            done = self.oracle.get_trial(trial.trial_id)
            score = "failed" if done.score is None else f"{done.score:.4f}"
            best = [t for t in self.oracle.get_best_trials(1) if t.score is not None]
            best = f", best {best[0].score:.4f} (trial {best[0].trial_id})" if best else ""
            say(
                f"Trial {trial.trial_id} {done.status.lower()}: "
                f"{self.oracle.objective.name} = {score}{best}{self._time_left()}"
            )

    def _time_left(self):
        if self.deadline is None:
            return ""
        return f", {max(0.0, self.deadline - self.clock()):.0f} s left"


def _validation_size(validation_data):
    """Images in `validation_data` given as arrays, or None (a Dataset does not say)."""
    first = validation_data[0] if isinstance(validation_data, (tuple, list)) else None
    return len(first) if isinstance(first, np.ndarray) and len(first) else None


def _validation_steps(validation_data, batch_size):
    """Batches in one validation pass, or 0 if unknown."""
    if validation_data is None:
        return 0
    if isinstance(validation_data, tf.data.Dataset):
        cardinality = int(validation_data.cardinality())
        return max(cardinality, 0)
    first = validation_data[0] if isinstance(validation_data, (tuple, list)) else None
    if first is None or not hasattr(first, "__len__") or not batch_size:
        return 0
    return math.ceil(len(first) / batch_size)
