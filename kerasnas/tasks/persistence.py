"""A fitted estimator's state in its run directory: saved to `kerasnas.json`, read back.

Its step of "data to Keras": after training, what an estimator needs to take raw images
again (the input, the preprocessing, the label encoding, the chosen trials and final
weights); the files themselves, their checks, the trials and weights, are `run_dir.py`'s.
Nothing is pickled: `kerasnas.json` is JSON, the models are rebuilt from the trials'
architectures and load their `.weights.h5`.
"""

from __future__ import annotations

import os

import numpy as np

from kerasnas import files, trials
from kerasnas.tasks import ensemble, feeds, run_dir
from kerasnas.tasks.inputs import check_resize_shape
from kerasnas.tasks.run_dir import METADATA


def save(task):
    """Writes `task`'s state to `kerasnas.json` in `task.project_dir`."""
    resize_shape = check_resize_shape(task.resize_shape)
    run_dir.write_metadata(
        task.project_dir,
        {
            "task": task.task,
            "project_name": task.project_name or task.default_project_name,
            "objective": task.objective_name,
            "input_shape": list(task.input_shape_),
            "input_dtype": task.input_dtype_,
            "input_range": getattr(task, "input_range_", None),
            "resize_shape": None if resize_shape is None else list(resize_shape),
            "preprocessing": task.preprocessing_,
            "targets": task._targets_config(),
            "best_trial_id": task.best_trial_id_,
            "final_weights": task.final_weights_,
            "ensemble": list(getattr(task, "ensemble_", None) or []),
            "max_model_size": task.max_model_size,
            "search_summary": getattr(task, "search_summary_", None),
        },
    )


def load(cls, directory, task_classes):
    """Reopens a finished search; see `ImageTask.load`.

    Args:
        cls: the class `load` was called on (`ImageTask` for any task).
        directory: the folder given to `fit`, or the run directory itself.
        task_classes: `{task: class}` of the registered task classes.
    """
    project_dir = run_dir.find_run(directory)
    fix = "Rerun `fit` on this directory with overwrite=True to start afresh."
    metadata = run_dir.read_metadata(project_dir, fix)
    if metadata.get("best_trial_id") is None:
        raise FileNotFoundError(
            f"The search in {project_dir} has not finished a `fit` yet. Call `fit` on this "
            "directory again to resume it."
        )
    task_class = task_classes[metadata["task"]]
    if cls.task is not None and cls is not task_class:
        raise ValueError(
            f"{project_dir} holds a {metadata['task']} search; load it with "
            f"{task_class.__name__}.load or kerasnas.load."
        )
    path = run_dir.metadata_path(project_dir)
    try:
        task = task_class(
            directory=os.path.dirname(project_dir),
            project_name=os.path.basename(project_dir),  # where it is, whatever it was called
            objective=metadata["objective"],
            resize_shape=check_resize_shape(metadata.get("resize_shape")),
            verbose=0,
        )
        task._load_targets(metadata["targets"])
        task.input_shape_ = tuple(int(d) for d in metadata["input_shape"])
        task.input_dtype_ = str(np.dtype(metadata["input_dtype"]))
        low_high = metadata.get("input_range")
        task.input_range_ = None if low_high is None else [float(v) for v in low_high]
        prep = metadata["preprocessing"]
        mean = np.asarray(prep["mean"], dtype="float64")
        variance = np.asarray(prep["variance"], dtype="float64")
        channels = 1 if len(task.input_shape_) == 2 else task.input_shape_[-1]
        if mean.shape != (channels,) or variance.shape != (channels,):
            raise ValueError("mean and variance do not match the image channels")
    except (KeyError, TypeError, ValueError) as e:
        raise files.RunFileError(
            f"{path} has malformed contents ({type(e).__name__}: {e}). {fix}", path
        ) from None
    task.preprocessing_ = prep
    task.preprocessor_ = feeds.preprocessor(
        task.input_shape_, check_resize_shape(task.resize_shape), mean, variance
    )
    restore(task, metadata)
    return task


def restore(task, metadata):
    """Reads the trials and the chosen model of `task`'s saved search, writing nothing."""
    fix = "Rerun `fit` on this directory: it falls back to the next best trial that loads."
    project_dir = task.project_dir
    task.directory_ = os.path.dirname(project_dir)
    task.trials_ = run_dir.read_trials(project_dir)
    task.tuner_ = None
    task.search_started_ = True
    task.best_trial_id_ = metadata["best_trial_id"]
    task.final_weights_ = metadata.get("final_weights")
    summary = metadata.get("search_summary")  # absent in a run of an older kerasnas
    task.search_summary_ = summary if isinstance(summary, dict) else None
    best = task.trials_.get(task.best_trial_id_)
    if best is None or not trials.has_architecture(best):
        raise _unreadable(project_dir, best, task.best_trial_id_, "The best trial", fix)
    ids = metadata.get("ensemble") or []  # absent in a run of an older kerasnas
    task.ensemble_ = list(ids) if len(ids) > 1 else []
    if task.ensemble_:
        fix += f" Or empty the `ensemble` list of {METADATA} to use the best trial alone."
    models = []
    for trial_id in task.ensemble_ or [task.best_trial_id_]:
        trial = task.trials_.get(trial_id)
        if trial is None or not trials.has_architecture(trial):
            raise _unreadable(project_dir, trial, trial_id, "Trial", fix, " of the ensemble")
        _check_model_size(project_dir, trial, metadata.get("max_model_size"), fix)
        models.append(trials.load_trial_model(project_dir, trial, fix))
    task.model_ = models[0] if len(models) == 1 else ensemble.average(models)
    if task.final_weights_:
        trials.load_weights(
            task.model_,
            os.path.join(project_dir, task.final_weights_),
            f"Rerun `final_fit`, or delete it and its final_weights entry in {METADATA}.",
        )


def _unreadable(project_dir, trial, trial_id, what, fix, role=""):
    """The `RunFileError` for a chosen trial without a readable architecture."""
    path = trials.trial_path(project_dir, trial_id)
    why = trial.message if trial is not None and trial.message else f"{path} is missing."
    return files.RunFileError(
        f"{what} {trial_id}{role} of {project_dir} cannot be used: {why.strip()} {fix}", path
    )


def _check_model_size(project_dir, trial, max_model_size, fix):
    """Refuses `trial` if its graph has more parameters than the `max_model_size` the run
    recorded (its search never trained such a trial), before any Keras layer is built."""
    if type(max_model_size) is not int:  # not recorded (or not by this version)
        return
    params = trials.graph_of(trial).num_params()  # read_trial has checked the graph
    if params > max_model_size:
        path = trials.trial_path(project_dir, trial.trial_id)
        raise files.RunFileError(
            f"{path} holds an architecture of {params:,} parameters, more than the run's "
            f"max_model_size={max_model_size:,}; its search never trained one. {fix}",
            path,
        )
