"""The search `fit` runs: the oracle and the tuner built from the estimator's arguments
and `searcher_args`, the time kept back for the finish, and the best model chosen.

Its step of "data to Keras": the third, handing the feeds of `feeds.py` to the tuner,
whose trials train on them; the ensemble finish after it is `ensemble.py`'s.
"""

from __future__ import annotations

import os
import time

from kerasnas import segments, trials
from kerasnas.oracle import explain, schedule
from kerasnas.output import say
from kerasnas.tasks import ensemble, export, feeds, run_dir
from kerasnas.tasks.inputs import check_resize_shape


class SearchInterrupted(KeyboardInterrupt):
    """`fit` was interrupted (Ctrl-C), and the best model found so far is ready.

    A `KeyboardInterrupt`, so that a script still stops and `except KeyboardInterrupt`
    still catches it; the estimator it leaves predicts, evaluates and exports as after a
    finished search, and a later `fit` on the same directory resumes the search.
    """


DEFAULT_EPOCHS = 100  # most epochs per trial when `fit` is given none
MAX_BATCH_SIZE, MIN_BATCH_SIZE = 128, 16  # the default batch: N / 20 between the two


def oracle_args(task):
    """`searcher_args` as the oracle takes them, with `task.augment`'s rule applied.

    With `augment=True` every trial trains on augmented images already, so the search
    has none to turn to: `overfit_ratio` and `augment_epochs` are None, and giving
    either another value is a mistake. Otherwise they go to the oracle as given, which
    checks them (`check_overfit_ratio`, `check_augment_epochs`).

    Raises:
        ValueError: for `overfit_ratio` or `augment_epochs` in `searcher_args` with
            `augment=True`.
    """
    given = dict(task.searcher_args or {})
    if not task.augment:
        return given
    for name in ("overfit_ratio", "augment_epochs"):
        if given.get(name, "auto") not in ("auto", None):
            raise ValueError(
                f"Expected no `{name}` in `searcher_args` with `augment=True`: every "
                "trial trains on augmented images, so the search has none to turn to. "
                f"Received: searcher_args={task.searcher_args!r}. Pass augment=False "
                "to let the search decide when to augment."
            )
    return {**given, "overfit_ratio": None, "augment_epochs": None}


def build(task, search_shape, batch_size, epochs, verbose, overwrite):
    """`(oracle, tuner)` of `task`'s search in `task.project_dir`.

    Args:
        task: the estimator, its `directory_` set.
        search_shape: `(height, width, channels)` of the searched models' input.
        batch_size: the training batch size.
        epochs: most epochs per trial, or None (`DEFAULT_EPOCHS`).
        verbose: checked `verbose`.
        overwrite: start afresh (KerasTuner removes the run directory).
    """
    from kerasnas.oracle import NetworkMorphismOracle
    from kerasnas.tuner import MorphismTuner

    oracle = NetworkMorphismOracle(
        search_shape,
        task._num_outputs(),
        objective=task.objective_name,
        max_trials=task.max_trials,
        seed=task.seed,
        max_model_size=task.max_model_size,
        task=task.task,
        **oracle_args(task),
    )
    tuner = MorphismTuner(
        oracle,
        loss=task._loss(),
        metrics=task._metrics(),
        batch_size=batch_size,
        max_epochs=epochs or DEFAULT_EPOCHS,
        max_model_size=task.max_model_size,
        verbose=verbose,
        directory=task.directory_,
        project_name=task.project_name or task.default_project_name,
        overwrite=overwrite,
        distribution_strategy=task.distribution_strategy,
    )
    return oracle, tuner


def run(task, start, time_limit, overwrite, verbose, training, validation, epochs, batch_size,
        callbacks):  # fmt: skip
    """Searches, then sets `task`'s model and learned state; see `ImageTask.fit`.

    Args:
        task: the estimator, its `directory_`, targets and input set by `fit`.
        start: the `time.time()` at which `fit` began.
        time_limit: seconds all of `fit` may take.
        overwrite: start afresh instead of resuming.
        verbose: checked `verbose`.
        training: `(train, encoded, weights, per_class)` (see `reading.fit_data`).
        validation: `(val, val_encoded)`.
        epochs, batch_size, callbacks: as given to `fit`.

    Returns:
        `task`.

    Raises:
        RuntimeError: if no trial completed.
        SearchInterrupted: on Ctrl-C (a `KeyboardInterrupt` during the search or the
            ensemble's choice) once a trial has completed, after making the best model
            so far ready and saving it in the run directory; before that, the
            `KeyboardInterrupt` itself.
    """
    import keras

    train, encoded, weights, per_class = training
    val, val_encoded = validation
    if task.seed is not None:
        keras.utils.set_random_seed(task.seed)
    mean, variance, low, high = feeds.statistics(train.sample)
    resize_shape = check_resize_shape(task.resize_shape)
    task.preprocessor_ = feeds.preprocessor(task.input_shape_, resize_shape, mean, variance)
    task.preprocessing_ = {"mean": mean.tolist(), "variance": variance.tolist()}
    task.input_range_ = [low, high]
    search_shape = tuple(resize_shape or train.shape[:2]) + (train.shape[2],)
    batch_size = batch_size or int(min(MAX_BATCH_SIZE, max(MIN_BATCH_SIZE, train.count // 20)))
    oracle, tuner = build(task, search_shape, batch_size, epochs, verbose, overwrite)
    task.search_started_ = True
    if not os.path.exists(run_dir.metadata_path(task.project_dir)):
        # Written before any trial, so that a resumed search is checked against it.
        task.best_trial_id_, task.final_weights_, task.ensemble_ = None, None, []
        task._save_metadata()
    # The deadline covers all of fit: time is kept back to restore the best model and
    # to try the ensemble.
    reserve = schedule.reserve_seconds(time_limit, ensemble=task.ensemble_size > 1)
    oracle.set_deadline(start + time_limit - reserve)  # the oracle owns the time
    oracle.set_validation_size(val.count)  # to tell a gain from the noise of validation
    oracle.process_trials = segments.process_trials()  # a segment of a chain stops early
    fit_args, fit_kwargs = feeds.training_feed(task, train, encoded, weights, per_class, batch_size)
    validation_feed = feeds.validation_feed(task, val, val_encoded, batch_size)
    if verbose:
        left = max(0.0, start + time_limit - time.time())
        how = "streamed" if train.streamed else "in memory"
        say(
            f"kerasnas: searching in {task.project_dir} for {left:.0f} s "
            f"({train.count} training images {how}, {val.count} validation images)."
        )
    interrupted = None
    try:
        tuner.search(
            *fit_args,
            validation_data=feeds.keras_validation(validation_feed, batch_size),
            callbacks=callbacks,
            verbose=0,
            **fit_kwargs,
        )
    except KeyboardInterrupt as e:  # Ctrl-C: the best model so far is made ready first
        interrupted = e
    completed = trials.ranked(oracle.trials.values(), oracle.objective.direction)
    if not completed:
        if interrupted is not None:
            raise interrupted
        raise RuntimeError(
            f"No trial completed within time_limit={time_limit} s; see the trials in "
            f"{task.project_dir}. Give the search more time."
        )
    best, task.model_ = run_dir.first_loadable(task.project_dir, completed)
    task.tuner_ = tuner
    task.trials_ = oracle.trials
    task.best_trial_id_ = best.trial_id
    task.final_weights_ = None
    task.ensemble_ = []
    scores = None
    if interrupted is None:
        best_model = task.model_
        try:
            scores = ensemble.finish(
                task,
                completed[completed.index(best) :],
                validation_feed,
                (train.count, val.count),
                batch_size,
                start + time_limit,
            )
        except KeyboardInterrupt as e:
            interrupted = e
            task.model_, task.ensemble_ = best_model, []
    task.search_summary_, why = explain.summary(
        oracle.trials, oracle.objective.direction, task.objective_name, val.count
    )
    task.search_summary_["params"] = int(task.model_.count_params())
    task.search_summary_["cpu_seconds_per_image"] = export.cpu_latency(task.model_)
    task._save_metadata()
    if interrupted is not None:
        message = (
            f"kerasnas: fit was interrupted; the best model so far, trial "
            f"{task.best_trial_id_} ({task.objective_name} = {best.score:.4f}), is ready to "
            "predict, evaluate and export. Call fit again with the same directory to resume "
            "the search."
        )
        if verbose:
            say(message)
        raise SearchInterrupted(message) from interrupted
    if verbose:
        say(f"kerasnas: {why}.")
        line = f"kerasnas: best trial {task.best_trial_id_} with {task.objective_name} = "
        line += f"{best.score:.4f}"
        if task.ensemble_:
            line += (
                f"; ensemble of trials {', '.join(task.ensemble_)}: validation "
                f"{ensemble.METRIC[task.task]} {scores[0]:.4f} against {scores[1]:.4f} "
                f"for trial {task.best_trial_id_} alone"
            )
        summary = task.search_summary_
        line += (
            f"; {summary['params']:,} params, "
            f"{1000 * summary['cpu_seconds_per_image']:.1f} ms per image on the CPU"
        )
        say(f"{line}; after {time.time() - start:.0f} s.")
    return task
