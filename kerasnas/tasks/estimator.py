"""The estimator behind `ImageClassifier` and `ImageRegressor`: arguments, fit, predict.

It keeps scikit-learn's contract: `__init__` only stores its (keyword-only)
arguments, `get_params`/`set_params` read and change them, `fit` checks them
and returns `self`, and what `fit` learns lives in attributes ending in `_`.
Reading data is `data.py`'s job, turning it into what Keras trains on
`feeds.py`'s, the run directory's files and lock `run_dir.py`'s, averaging
the best architectures after the search `ensemble.py`'s, and models for
users `export.py`'s.
"""

from __future__ import annotations

import errno
import inspect
import os
import sys
import tempfile
import time
import warnings

import numpy as np

from kerasnas import files, pipelines, trials
from kerasnas.arguments import check_int
from kerasnas.output import check_verbose, keras_fit_verbose, logger, quiet_retracing, say
from kerasnas.tasks import data as datalib
from kerasnas.tasks import ensemble, export, feeds, run_dir
from kerasnas.tasks.inputs import (
    check_images,
    check_lengths,
    check_resize_shape,
    check_time_limit,
    check_validation_split,
)
from kerasnas.tasks.run_dir import METADATA, DirectoryLock

DEFAULT_TIME_LIMIT = 24 * 60 * 60
RANGE_RATIO = 8  # predict warns when its images' value range differs from fit's by more
ENSEMBLE_SHARE = 0.01  # of the time limit, kept back for choosing an ensemble after the search


class NotFittedError(ValueError, AttributeError):
    """Raised when a task is used for prediction before `fit`."""


class ImageTask:
    """What `ImageClassifier` and `ImageRegressor` share (see their docstrings)."""

    task = None
    default_objective = None
    default_project_name = None

    def __init__(
        self,
        *,
        directory=None,
        project_name=None,
        overwrite=False,
        max_trials=None,
        objective=None,
        seed=None,
        verbose=1,
        augment=False,
        resize_shape=None,
        max_model_size=None,
        distribution_strategy=None,
        searcher_args=None,
        ensemble_size=3,
        path=None,
    ):
        self.directory = directory
        self.project_name = project_name
        self.overwrite = overwrite
        self.max_trials = max_trials
        self.objective = objective
        self.seed = seed
        self.verbose = verbose
        self.augment = augment
        self.resize_shape = resize_shape
        self.max_model_size = max_model_size
        self.distribution_strategy = distribution_strategy
        self.searcher_args = searcher_args
        self.ensemble_size = ensemble_size
        self.path = path

    # ------------------------------------------------------------------ parameters

    @classmethod
    def _param_names(cls):
        signature = inspect.signature(ImageTask.__init__)
        return [p for p in signature.parameters if p != "self"]

    def get_params(self, deep=True):
        """The constructor's arguments, as a dict (scikit-learn's contract)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params):
        """Changes constructor arguments; returns self.

        Raises:
            ValueError: for a name that is not an argument of the constructor.
        """
        names = self._param_names()
        for name, value in params.items():
            if name not in names:
                raise ValueError(
                    f"{type(self).__name__} has no parameter {name!r}; valid parameters: "
                    f"{', '.join(names)}."
                )
            setattr(self, name, value)
        return self

    def __repr__(self):
        changed = {
            k: v
            for k, v in self.get_params().items()
            if v != inspect.signature(ImageTask.__init__).parameters[k].default
        }
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in changed.items())})"

    # ------------------------------------------------------------------ places

    @property
    def objective_name(self):
        return self.objective or self.default_objective

    def _root(self):
        """The folder for runs: `directory`, or its AutoKeras 0.4 name `path`, or None."""
        if self.directory is not None and self.path is not None:
            raise ValueError(
                "Pass `directory` or its AutoKeras 0.4 name `path`, not both. "
                f"Received: directory={self.directory!r}, path={self.path!r}"
            )
        return self.directory if self.directory is not None else self.path

    @property
    def project_dir(self):
        """The run directory, `directory/project_name` (None before `fit` makes a temporary one)."""
        root = getattr(self, "directory_", None) or self._root()
        if root is None:
            return None
        return os.path.join(str(root), self.project_name or self.default_project_name)

    # ------------------------------------------------------------------ data in

    def _read(self, x, y, name, labelled, size=None, channels=None):
        """`ImageData` of `x` (numpy, Dataset or folder) and `y`."""
        resize_shape = check_resize_shape(self.resize_shape)
        if datalib.is_dataset(x) or datalib.is_folder(x):
            if y is not None:
                kind = "a tf.data.Dataset" if datalib.is_dataset(x) else "a folder"
                raise ValueError(
                    f"Expected `y` to be None when `{name}` is {kind}; the labels come from it. "
                    f"Received: y of type {type(y).__name__}."
                )
            if datalib.is_folder(x):
                return datalib.from_folder(
                    x, name, size=size or resize_shape, channels=channels, need_labels=labelled
                )
            return datalib.from_dataset(x, name, labelled=labelled, resize_shape=resize_shape)
        if labelled and y is None:
            raise ValueError(
                f"Expected labels `y` for the images in `{name}` (or pass a tf.data.Dataset of "
                "(image, label), or a folder of class subfolders, as `x`)."
            )
        images = check_images(x, name, resize_shape)
        if labelled:
            check_lengths(images, y, name, "y")
        raw_shape = tuple(int(d) for d in np.shape(x)[1:])
        labels = y if labelled else None
        return datalib.ImageData(
            images, labels, None, raw_shape, str(images.dtype), images, len(images), name
        )

    def _read_like_fit(self, x, y, name, labelled):
        """`ImageData` of `x` shaped like the images `fit` saw, or a clear `ValueError`."""
        shape = tuple(self.input_shape_)
        full = (*shape, 1) if len(shape) == 2 else shape
        if not (datalib.is_dataset(x) or datalib.is_folder(x)):
            given = np.shape(x) if hasattr(x, "shape") or isinstance(x, (list, tuple)) else ()
            if tuple(given) in (shape, full):
                raise ValueError(
                    f"`{name}` looks like one image of shape {tuple(given)} without its batch "
                    f"axis; pass a batch of one: {name}[None] (or np.expand_dims({name}, 0))."
                )
        data = self._read(x, y, name, labelled, size=full[:2], channels=full[2])
        if tuple(data.shape) != full:
            got = data.shape if full[-1] != 1 or data.shape[-1] != 1 else data.shape[:2]
            raise ValueError(
                f"Expected `{name}` to hold images shaped {shape}, like those given to `fit`; "
                f"got images shaped {tuple(got)}. Resize or crop them to {shape[:2]} first."
            )
        self._check_range(data, name)
        return data

    def _check_range(self, data, name):
        low_high = getattr(self, "input_range_", None)
        if low_high is None or data.sample.size == 0:
            return
        low, high = low_high
        sample = data.sample[:: max(1, len(data.sample) // 1000)]
        got_low, got_high = float(sample.min()), float(sample.max())
        span, got = high - low, got_high - got_low
        if span > 0 and got > 0 and (got * RANGE_RATIO < span or got > RANGE_RATIO * span):
            warnings.warn(
                f"The images in `{name}` ({data.dtype}) range over [{got_low:.4g}, "
                f"{got_high:.4g}], but those given to `fit` ({self.input_dtype_}) ranged over "
                f"[{low:.4g}, {high:.4g}]. The model expects images scaled as in `fit` (e.g. "
                "not divided by 255): its answers on these are likely wrong.",
                UserWarning,
                stacklevel=_user_stacklevel(),
            )

    def _targets(self, data):
        """`(state, encoded labels)` for `data.labels`."""
        return self._learn_targets(data.labels)

    # ------------------------------------------------------------------ fit

    def fit(
        self,
        x,
        y=None,
        time_limit=None,
        validation_split=0.1,
        validation_data=None,
        epochs=None,
        batch_size=None,
        callbacks=None,
        class_weight=None,
        sample_weight=None,
    ):
        """Searches for the best architecture within `time_limit` seconds.

        Everything is checked, and the run directory locked, before the
        estimator changes: a `fit` that raises leaves a fitted estimator as
        it was.

        Args:
            x: images: numpy (N, H, W) or (N, H, W, C), uint8 or float; a
                `tf.data.Dataset` of (image, label), batched or not; or a
                folder with one subfolder of images per class (see
                `kerasnas.tasks.data` for the size and colour policy). With
                a Dataset or a folder, leave `y` None.
            y: labels (see the class docstring).
            time_limit: seconds the whole call may take, choosing and restoring
                the best model (and the ensemble) included. Defaults to 24 hours.
            validation_split: fraction of the training images held out to score
                architectures, when `validation_data` is None. Defaults to 0.1.
            validation_data: `(x_val, y_val)`, a Dataset of (image, label) or a
                folder, to score architectures on. Defaults to None.
            epochs: most epochs per trial. Defaults to None (100, bounded by
                early stopping and the time budget).
            batch_size: training batch size. Defaults to None (128, fewer for tiny data).
            callbacks: Keras callbacks; each trial gets its own deep copy.
                Defaults to None.
            class_weight: `{label: weight}` in the labels given to `fit`, or
                `"balanced"` (N / (classes * N_class) per class). Classifier only.
                Defaults to None.
            sample_weight: a weight per image of `x` (numpy `x` only). Defaults to None.

        Returns:
            self.

        Raises:
            ValueError: for bad input, before any training; also for a run
                directory that holds a search made for other data, or a
                damaged file in it (the message names the file).
            RuntimeError: if another process is fitting into the same directory.
            OSError: if the disk is full (the run stays resumable) or the
                directory cannot be written.
        """
        start = time.time()
        time_limit = DEFAULT_TIME_LIMIT if time_limit is None else check_time_limit(time_limit)
        check_int("max_trials", self.max_trials, minimum=1, allow_none=True)
        check_int("ensemble_size", self.ensemble_size, minimum=1)
        epochs = check_int("epochs", epochs, minimum=1, allow_none=True)
        batch_size = check_int("batch_size", batch_size, minimum=1, allow_none=True)
        verbose = check_verbose(self.verbose)
        resize_shape = check_resize_shape(self.resize_shape)
        root = self._root()
        if validation_data is None:
            validation_split = check_validation_split(validation_split)
        if class_weight is not None and self.task != "classification":
            raise ValueError(
                "`class_weight` is for classifiers; for a regressor pass `sample_weight`. "
                f"Received: class_weight={class_weight!r}"
            )
        train = self._read(x, y, "x", labelled=True)
        if sample_weight is not None and train.streamed:
            raise ValueError(
                "Expected `sample_weight` only with numpy images `x`; for a Dataset or a "
                "folder, pass `class_weight`."
            )
        if sample_weight is not None and not isinstance(x, np.ndarray | list | tuple):
            raise ValueError(
                "Expected `sample_weight` only with numpy images `x` (a Dataset's or a folder's "
                "order is not yours to align weights with); pass `class_weight` instead."
            )
        targets, encoded = self._targets(train)
        classes = targets["encoder_"].classes_ if "encoder_" in targets else None
        per_class = feeds.class_weights(class_weight, encoded, classes)
        weights = None
        if not train.streamed:
            weights = feeds.sample_weights(sample_weight, train.count, per_class, encoded)
        if validation_data is not None:
            val, val_encoded = self._validation(validation_data, train, targets)
        elif train.streamed and train.files is None:
            raise ValueError(
                f"`x` is a tf.data.Dataset larger than {datalib.in_memory_bytes() >> 20} MB, "
                "so it is streamed, and kerasnas cannot hold out a random validation split "
                "from a stream. Pass `validation_data` (a Dataset or a folder), e.g. from "
                "keras.utils.image_dataset_from_directory(..., validation_split=0.1, "
                "subset='both')."
            )
        else:
            train, encoded, weights, val, val_encoded = _split(
                train, encoded, weights, validation_split, self.seed
            )

        directory = root if root is not None else tempfile.mkdtemp(prefix="kerasnas_")
        project_dir = os.path.join(str(directory), self.project_name or self.default_project_name)
        overwrite = bool(self.overwrite) and not getattr(self, "searched_", False)
        expected = {
            "task": self.task,
            "input_shape": list(train.raw_shape),
            "resize_shape": None if resize_shape is None else list(resize_shape),
            "targets": self._targets_config(targets),
        }
        before = dict(self.__dict__)
        try:
            with DirectoryLock(project_dir + ".lock"):
                if not overwrite:
                    run_dir.check_resumable(project_dir, expected)
                # Nothing has changed yet; from here on, a failure restores `before`.
                self.directory_ = str(directory)
                self.__dict__.update(targets)
                self.input_shape_ = train.raw_shape
                self.input_dtype_ = _raw_dtype(train.dtype)
                with quiet_retracing():  # every trial and ensemble member traces anew
                    return self._search(
                        start,
                        time_limit,
                        overwrite,
                        verbose,
                        (train, encoded, weights, per_class),
                        (val, val_encoded),
                        epochs,
                        batch_size,
                        callbacks,
                    )
        except BaseException as e:
            self.__dict__.clear()
            self.__dict__.update(before)
            if isinstance(e, Exception) and files.is_disk_full(e):
                raise OSError(
                    errno.ENOSPC,
                    f"No space left on the device of {project_dir} (while the search wrote to "
                    "it). Free some space and call `fit` again with the same directory: it "
                    "resumes, keeping every finished trial",
                ) from e
            raise

    def _validation(self, validation_data, train, targets):
        """`(ImageData, encoded labels)` of `validation_data`, shaped like `train`."""
        if datalib.is_dataset(validation_data) or datalib.is_folder(validation_data):
            x_val, y_val = validation_data, None
        elif isinstance(validation_data, (tuple, list)) and len(validation_data) == 2:
            x_val, y_val = validation_data
        else:
            raise ValueError(
                "Expected `validation_data` to be a pair (x_val, y_val), a tf.data.Dataset of "
                "(image, label) or a folder of class subfolders; got "
                f"{type(validation_data).__name__}."
            )
        name = "validation_data" if y_val is None else "validation_data[0]"
        val = self._read(
            x_val, y_val, name, labelled=True, size=train.shape[:2], channels=train.shape[2]
        )
        if tuple(val.shape) != tuple(train.shape):
            raise ValueError(
                f"Expected validation images of shape {train.shape} like `x`; got {val.shape}."
            )
        label_name = "validation_data" if y_val is None else "validation_data[1]"
        return val, self._encode(val.labels, label_name, targets)

    def _search(self, start, time_limit, overwrite, verbose, training, validation, epochs,
                batch_size, callbacks):  # fmt: skip
        import keras

        from kerasnas.oracle import NetworkMorphismOracle
        from kerasnas.tuner import MorphismTuner

        train, encoded, weights, per_class = training
        val, val_encoded = validation
        if self.seed is not None:
            keras.utils.set_random_seed(self.seed)
        mean, variance, low, high = feeds.statistics(train.sample)
        resize_shape = check_resize_shape(self.resize_shape)
        self.preprocessor_ = feeds.preprocessor(self.input_shape_, resize_shape, mean, variance)
        self.preprocessing_ = {"mean": mean.tolist(), "variance": variance.tolist()}
        self.input_range_ = [low, high]
        search_shape = tuple(resize_shape or train.shape[:2]) + (train.shape[2],)
        batch_size = batch_size or int(min(128, max(16, train.count // 20)))

        searcher_args = dict(self.searcher_args or {})
        searcher_args.update(self._augmentation_args())
        oracle = NetworkMorphismOracle(
            search_shape,
            self._num_outputs(),
            objective=self.objective_name,
            max_trials=self.max_trials,
            seed=self.seed,
            max_model_size=self.max_model_size,
            task=self.task,
            **searcher_args,
        )
        tuner = MorphismTuner(
            oracle,
            loss=self._loss(),
            metrics=self._metrics(),
            batch_size=batch_size,
            max_epochs=epochs or 100,
            max_model_size=self.max_model_size,
            verbose=verbose,
            directory=self.directory_,
            project_name=self.project_name or self.default_project_name,
            overwrite=overwrite,
            distribution_strategy=self.distribution_strategy,
        )
        self.searched_ = True
        if not os.path.exists(run_dir.metadata_path(self.project_dir)):
            # Written before any trial, so that a resumed search is checked against it.
            self.best_trial_id_, self.final_weights_, self.ensemble_ = None, None, []
            self._save_metadata()
        # Keep back time to restore the best model and try the ensemble (a few validation
        # passes: ENSEMBLE_SHARE of the budget): the deadline covers all of fit.
        reserve = min(3.0, 0.03 * time_limit)
        if self.ensemble_size > 1:
            reserve += ENSEMBLE_SHARE * time_limit
        oracle.set_deadline(start + time_limit - reserve)  # the oracle owns the time
        fit_args, fit_kwargs = self._training_feed(train, encoded, weights, per_class, batch_size)
        validation_feed = self._validation_feed(val, val_encoded, batch_size)
        if verbose:
            left = start + time_limit - time.time()
            how = "streamed" if train.streamed else "in memory"
            say(
                f"kerasnas: searching in {self.project_dir} for {left:.0f} s "
                f"({train.count} training images {how}, {val.count} validation images)."
            )
        tuner.search(
            *fit_args,
            validation_data=_keras_validation(validation_feed, batch_size),
            callbacks=callbacks,
            verbose=0,
            **fit_kwargs,
        )
        completed = [
            t for t in oracle.get_best_trials(max(1, len(oracle.trials))) if t.status == "COMPLETED"
        ]
        if not completed:
            raise RuntimeError(
                f"No trial completed within time_limit={time_limit} s; see the trials in "
                f"{self.project_dir}. Give the search more time."
            )
        best, self.model_ = self._first_loadable(completed)
        self.tuner_ = tuner
        self.trials_ = oracle.trials
        self.best_trial_id_ = best.trial_id
        self.final_weights_ = None
        self.ensemble_ = []
        scores = self._try_ensemble(
            completed[completed.index(best) :],
            validation_feed,
            (train.count, val.count),
            batch_size,
            start + time_limit,
        )
        self._save_metadata()
        if verbose:
            line = f"kerasnas: best trial {self.best_trial_id_} with {self.objective_name} = "
            line += f"{best.score:.4f}"
            if self.ensemble_:
                line += (
                    f"; ensemble of trials {', '.join(self.ensemble_)}: validation "
                    f"{ensemble.METRIC[self.task]} {scores[0]:.4f} against {scores[1]:.4f} "
                    f"for trial {self.best_trial_id_} alone"
                )
            say(f"{line}, after {time.time() - start:.0f} s.")
        return self

    def _try_ensemble(self, ranked, feed, counts, batch_size, deadline):
        """Averages the best distinct architectures into `model_` if that scores better.

        The best trial's model (`model_`, the first of `ranked`) and the next
        ones with other architectures predict on the validation data while
        the time before `deadline` allows (see `ensemble.gather`); if the
        average of the first few beats the best alone (`ensemble.choose`), it
        becomes `model_` and their trial ids `ensemble_`.

        Args:
            ranked: COMPLETED trials, best first, the first one that of `model_`.
            feed: the validation data as `_validation_feed` gives it.
            counts: `(training images, validation images)`, to estimate the
                first validation pass from the best trial's epoch time.
            batch_size: batch size for predicting.
            deadline: the time by which `fit` must return.

        Returns:
            `(the ensemble's score, the best model's score)` on the validation
            data (see `ensemble.score`) when an ensemble was chosen, else None.
        """
        if self.ensemble_size <= 1 or time.time() >= deadline:
            return None
        candidates = ensemble.members(ranked, self.ensemble_size)
        if len(candidates) < 2:
            return None
        best, best_model = ranked[0], self.model_
        epoch_seconds = trials.metric(best, trials.EPOCH_SECONDS) or 0.0
        passes = _ValidationPasses(feed, max(batch_size, 256))
        try:
            gathered = ensemble.gather(
                candidates,
                lambda trial: best_model if trial is best else self._load_trial(trial),
                passes,
                deadline,
                flops=lambda trial: trials.graph_of(trial).flops(),
                first_seconds=epoch_seconds * counts[1] / max(1, sum(counts)),
            )
        except _ReorderedError as e:
            logger.warning("%s", e)
            return None
        if len(gathered) < 2:
            return None
        outputs = [found[2] for found in gathered]
        count = ensemble.choose(outputs, passes.labels, self.task)
        if count < 2:
            return None
        chosen = gathered[:count]
        self.model_ = ensemble.average([model for _, model, _ in chosen])
        self.ensemble_ = [trial.trial_id for trial, _, _ in chosen]
        mean = np.mean(outputs[:count], axis=0)
        return (
            ensemble.score(mean, passes.labels, self.task),
            ensemble.score(outputs[0], passes.labels, self.task),
        )

    def _training_feed(self, train, encoded, weights, per_class, batch_size, augment=None):
        """`(args, kwargs)` for Keras' `fit` (through the tuner) on `train`."""
        augment = self.augment if augment is None else augment
        if train.streamed:
            make = train.make_stream
            if train.files is not None:  # a folder: shuffle its file names every epoch
                make = datalib.folder_stream(
                    train.files, train.labels, *train.folder, shuffle_seed=self.seed or 0
                )
            dataset = feeds.stream(
                make,
                self.preprocessor_,
                feeds.label_encoder_fn(self._targets_config(), self.task),
                batch_size,
                per_class=per_class,
                augment=augment,
            )
            return (dataset,), {}
        x = feeds.prepare(self.preprocessor_, train.images)
        dataset = pipelines.array_dataset(
            x, encoded, weights, batch_size, shuffle=True, seed=self.seed, augment=augment
        )
        return (dataset,), {}

    def _validation_feed(self, val, val_encoded, batch_size):
        """The validation data: a Dataset of batches if streamed, else `(images, labels)`
        arrays (see `_keras_validation` for `fit`)."""
        if val.streamed:
            return feeds.stream(
                val.make_stream,
                self.preprocessor_,
                feeds.label_encoder_fn(self._targets_config(), self.task),
                batch_size,
            )
        return feeds.prepare(self.preprocessor_, val.images), val_encoded

    def _first_loadable(self, ranked):
        """`(trial, model)` of the best trial in `ranked` whose weights load, saying so if it
        is not the first."""
        failures = []
        for trial in ranked:
            try:
                model = self._load_trial(trial)
            except files.RunFileError as e:
                failures.append(e)
                continue
            if failures:
                warnings.warn(
                    f"kerasnas: {' '.join(str(f).strip() for f in failures)} Using trial "
                    f"{trial.trial_id}, the best trial whose weights load.",
                    RuntimeWarning,
                    stacklevel=4,
                )
            return trial, model
        raise files.RunFileError(
            f"No finished trial of {self.project_dir} has readable weights: "
            f"{' '.join(str(f).strip() for f in failures)} Pass overwrite=True to start afresh.",
            failures[0].path,
        )

    def _load_trial(self, trial, fix=""):
        """The trial's model, named `trial_<id>`, with its best weights (or a `RunFileError`)."""
        model = trials.graph_of(trial).to_keras(name=f"trial_{trial.trial_id}")
        return run_dir.load_weights(
            model, run_dir.checkpoint_path(self.project_dir, trial.trial_id), fix
        )

    def _augmentation_args(self):
        """The oracle's `overfit_ratio` (also `final_fit`'s) and `augment_epochs` (see
        `NetworkMorphismOracle`); None both with `augment=True`, whose every epoch is
        augmented already."""
        from kerasnas.oracle.network_morphism import check_augment_epochs, check_overfit_ratio

        given = self.searcher_args or {}
        if not self.augment:
            return {
                "overfit_ratio": check_overfit_ratio(given.get("overfit_ratio", "auto"), self.task),
                "augment_epochs": check_augment_epochs(
                    given.get("augment_epochs", "auto"), self.task
                ),
            }
        for name in ("overfit_ratio", "augment_epochs"):
            if given.get(name, "auto") not in ("auto", None):
                raise ValueError(
                    f"Expected no `{name}` in `searcher_args` with `augment=True`: every "
                    "trial trains on augmented images, so the search has none to turn to. "
                    f"Received: searcher_args={self.searcher_args!r}. Pass augment=False "
                    "to let the search decide when to augment."
                )
        return {"overfit_ratio": None, "augment_epochs": None}

    def _searched_augmented(self):
        """Whether the chosen model's trial trained on augmented images from its start
        (the search's choice, see `augment_epochs`)."""
        trial = (getattr(self, "trials_", None) or {}).get(self.best_trial_id_)
        plan = trials.plan_of(trial) if trial is not None else None
        return bool(plan is not None and plan.augment)

    def _fresh_model(self):
        """The chosen model's architecture (the ensemble's, if any) with fresh weights."""
        ids = getattr(self, "ensemble_", None) or [self.best_trial_id_]
        models = [trials.graph_of(self.trials_[i]).to_keras(name=f"trial_{i}") for i in ids]
        return models[0] if len(models) == 1 else ensemble.average(models)

    # ------------------------------------------------------------------ metadata

    def _save_metadata(self):
        resize_shape = check_resize_shape(self.resize_shape)
        run_dir.write_metadata(
            self.project_dir,
            {
                "task": self.task,
                "project_name": self.project_name or self.default_project_name,
                "objective": self.objective_name,
                "input_shape": list(self.input_shape_),
                "input_dtype": self.input_dtype_,
                "input_range": getattr(self, "input_range_", None),
                "resize_shape": None if resize_shape is None else list(resize_shape),
                "preprocessing": self.preprocessing_,
                "targets": self._targets_config(),
                "best_trial_id": self.best_trial_id_,
                "final_weights": self.final_weights_,
                "ensemble": list(getattr(self, "ensemble_", None) or []),
            },
        )

    @classmethod
    def load(cls, directory):
        """Reopens a finished search, ready to predict or to resume; writes nothing.

        The run is opened where it is found: a renamed or copied run folder
        loads as well. Names in `kerasnas.json` never lead outside it.

        Args:
            directory: the folder given to `fit` (holding one search), or the
                search's own folder `directory/project_name`.

        Returns:
            A fitted `ImageClassifier` or `ImageRegressor` (called on one of
            these classes: an instance of it).

        Raises:
            FileNotFoundError: if no finished search is there.
            ValueError: if a file of the search is damaged (the message names
                it), or the search is of another task than `cls`.
        """
        project_dir = _find_run(directory)
        fix = "Rerun `fit` on this directory with overwrite=True to start afresh."
        metadata = run_dir.read_metadata(project_dir, fix)
        if metadata.get("best_trial_id") is None:
            raise FileNotFoundError(
                f"The search in {project_dir} has not finished a `fit` yet. Call `fit` on this "
                "directory again to resume it."
            )
        task_class = _TASKS[metadata["task"]]
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
        task._restore(metadata)
        return task

    def _restore(self, metadata):
        """Reads the trials and the best model of a saved search, writing nothing."""
        fix = "Rerun `fit` on this directory: it falls back to the next best trial that loads."
        self.directory_ = os.path.dirname(self.project_dir)
        self.trials_ = run_dir.read_trials(self.project_dir)
        self.tuner_ = None
        self.searched_ = True
        self.best_trial_id_ = metadata["best_trial_id"]
        self.final_weights_ = metadata.get("final_weights")
        best = self.trials_.get(self.best_trial_id_)
        if best is None or not trials.has_architecture(best):
            raise files.RunFileError(
                f"The best trial {self.best_trial_id_} of {self.project_dir} has no readable "
                f"trial_{self.best_trial_id_}/{trials.TRIAL_FILE}. {fix}"
            )
        ids = metadata.get("ensemble") or []  # absent in a run of an older kerasnas
        self.ensemble_ = list(ids) if len(ids) > 1 else []
        if self.ensemble_:
            fix += f" Or empty the `ensemble` list of {METADATA} to use the best trial alone."
        models = []
        for trial_id in self.ensemble_ or [self.best_trial_id_]:
            trial = self.trials_.get(trial_id)
            if trial is None or not trials.has_architecture(trial):
                raise files.RunFileError(
                    f"Trial {trial_id} of the ensemble in "
                    f"{run_dir.metadata_path(self.project_dir)} has no readable "
                    f"trial_{trial_id}/{trials.TRIAL_FILE}. {fix}"
                )
            models.append(self._load_trial(trial, fix))
        self.model_ = models[0] if len(models) == 1 else ensemble.average(models)
        if self.final_weights_:
            path = os.path.join(self.project_dir, self.final_weights_)
            run_dir.load_weights(
                self.model_,
                path,
                f"Rerun `final_fit`, or delete it and its final_weights entry in {METADATA}.",
            )

    # ------------------------------------------------------------------ after fit

    def _check_fitted(self):
        if getattr(self, "model_", None) is None:
            raise NotFittedError(
                f"This {type(self).__name__} is not fitted yet. Call `fit` first, or "
                "`kerasnas.load(directory)` for a finished search."
            )

    def final_fit(
        self,
        x_train,
        y_train=None,
        x_test=None,
        y_test=None,
        retrain=False,
        time_limit=None,
        epochs=None,
        batch_size=128,
        class_weight=None,
    ):
        """Trains the best architecture longer, on all the training data.

        With `augment=True`, or when the search trained on augmented images
        (its budget held `augment_epochs` epochs of the first architecture),
        every epoch trains on randomly shifted and zoomed images, as the
        search's trials did. Otherwise, as in `fit`'s refinement,
        the epochs after the first one whose validation loss exceeds
        `overfit_ratio` times its training loss do (if that comes in the first
        half of the training; `searcher_args={"overfit_ratio": None}` never,
        and never for regression). When `fit` chose an ensemble, the ensemble
        trains, as one model.

        Args:
            x_train: training images (numpy, a Dataset or a folder, as for `fit`).
            y_train: training labels (None for a Dataset or a folder).
            x_test: images to monitor (early stopping keeps the best epoch on
                them). Defaults to None (hold out 10% of the training data).
            y_test: their labels. Defaults to None.
            retrain: start from fresh weights instead of the search's. Defaults to False.
            time_limit: seconds this call may take. Defaults to None (no limit).
            epochs: most epochs. Defaults to None (100 under a time limit, else 20).
            batch_size: batch size. Defaults to 128.
            class_weight: as for `fit`. Defaults to None.

        Returns:
            self.

        Raises:
            ValueError: for bad input, before any training.
        """
        import keras

        from kerasnas.callbacks import (
            BatchNormMomentum,
            TimeBudget,
            TimeCosineDecay,
            augment_when_overfitting,
        )

        start = time.time()
        self._check_fitted()
        if time_limit is not None:
            time_limit = check_time_limit(time_limit)
        epochs = check_int("epochs", epochs, minimum=1, allow_none=True)
        batch_size = check_int("batch_size", batch_size, minimum=1)
        verbose = check_verbose(self.verbose)
        train = self._read_like_fit(x_train, y_train, "x_train", labelled=True)
        encoded = self._encode(train.labels, "y_train")
        per_class = None
        if class_weight is not None:
            per_class = feeds.class_weights(class_weight, encoded, self.classes_)
        weights = None if train.streamed else feeds.sample_weights(None, 0, per_class, encoded)
        if x_test is not None:
            val = self._read_like_fit(x_test, y_test, "x_test", labelled=True)
            val_encoded = self._encode(val.labels, "y_test")
        elif train.streamed and train.files is None:
            raise ValueError(
                "Expected `x_test` for a streamed tf.data.Dataset `x_train`: kerasnas cannot "
                "hold out images from a stream."
            )
        else:
            if train.count < 2:
                raise ValueError(
                    f"Expected at least 2 images in `x_train` to hold some out; got {train.count}."
                )
            train, encoded, weights, val, val_encoded = _split(train, encoded, weights, 0.1, None)
        model = self._fresh_model()
        if not retrain:
            model.set_weights(self.model_.get_weights())
        model.compile(
            optimizer=keras.optimizers.Adam(1e-3 if retrain else 3e-4),
            loss=self._loss(),
            metrics=self._metrics(),
        )
        monitor = "val_" + self._metrics()[0]
        mode = "max" if self.task == "classification" else "min"
        callbacks = [
            BatchNormMomentum(),
            keras.callbacks.EarlyStopping(
                monitor=monitor, mode=mode, patience=5, restore_best_weights=True
            ),
        ]
        deadline = None
        if time_limit is not None:
            deadline = start + time_limit - min(3.0, 0.05 * time_limit)
        augment = self.augment or self._searched_augmented()
        args, kwargs = self._training_feed(
            train, encoded, weights, per_class, batch_size, augment=augment
        )
        ratio = None if augment else self._augmentation_args()["overfit_ratio"]
        if ratio is not None:
            found = augment_when_overfitting(args[0], ratio=ratio, deadline=deadline)
            if found is not None:  # (a Dataset of image batches always)
                args = (found[0], *args[1:])
                callbacks.append(found[1])
        if deadline is not None:
            steps = datalib.count_batches(val.count, batch_size)  # TimeBudget's room to validate
            callbacks += [
                TimeCosineDecay(deadline),
                TimeBudget(deadline, validation_steps=steps),  # last: it times the tail
            ]
        model.fit(
            *args,
            validation_data=_keras_validation(
                self._validation_feed(val, val_encoded, batch_size), batch_size
            ),
            epochs=epochs or (100 if time_limit else 20),
            shuffle=False,  # the Dataset shuffles itself
            callbacks=callbacks,
            verbose={0: 0, 1: keras_fit_verbose(1), 2: 2}[verbose],
            **kwargs,
        )
        path = os.path.join(self.project_dir, run_dir.FINAL_WEIGHTS)
        try:
            files.save_weights(model, path)
            self.final_weights_, old = run_dir.FINAL_WEIGHTS, self.final_weights_
            try:
                self._save_metadata()
            except BaseException:
                self.final_weights_ = old
                raise
        except Exception as e:
            if files.is_disk_full(e):
                raise OSError(
                    errno.ENOSPC,
                    f"No space left on the device of {self.project_dir} to save the final "
                    "weights; the search's model is kept. Free some space and call `final_fit` "
                    "again",
                ) from e
            raise
        self.model_ = model
        return self

    def _outputs(self, x, batch_size=None, name="x"):
        """The model's outputs for the images `x` (numpy, a Dataset or a folder)."""
        self._check_fitted()
        batch_size = check_int("batch_size", batch_size, minimum=1, allow_none=True) or 256
        data = self._read_like_fit(x, None, name, labelled=False)
        if data.streamed:
            dataset = feeds.stream(
                data.make_stream, self.preprocessor_, None, batch_size, labelled=False
            )
            return np.concatenate(
                [np.asarray(self.model_(images, training=False)) for images in dataset]
            )
        prepared = feeds.prepare(self.preprocessor_, data.images, batch_size=max(batch_size, 256))
        return feeds.predict(self.model_, prepared, batch_size)

    def _labelled_outputs(self, x, y, batch_size):
        """`(outputs, encoded labels)` for evaluation, in one pass over the images."""
        self._check_fitted()
        batch_size = check_int("batch_size", batch_size, minimum=1, allow_none=True) or 256
        data = self._read_like_fit(x, y, "x", labelled=True)
        if not data.streamed:
            encoded = self._encode(data.labels, "y")
            prepared = feeds.prepare(self.preprocessor_, data.images)
            return feeds.predict(self.model_, prepared, batch_size), encoded
        encode = feeds.label_encoder_fn(self._targets_config(), self.task)
        dataset = feeds.stream(data.make_stream, self.preprocessor_, encode, batch_size)
        outputs, labels = [], []
        for images, encoded in dataset:
            outputs.append(np.asarray(self.model_(images, training=False)))
            labels.append(np.asarray(encoded))
        return np.concatenate(outputs), np.concatenate(labels)

    # ------------------------------------------------------------------ models for users

    def export_model(self, trial_id=None):
        """A `keras.Model` from raw images (as given to `fit`) to probabilities or values.

        It holds the preprocessing (casting, resizing, normalisation) and
        loads back with plain `keras.models.load_model`, no kerasnas needed.

        Args:
            trial_id: the trial whose model to export (its best epoch's weights).
                Defaults to None (the chosen model: the ensemble if `fit` chose
                one, after `final_fit` if called).
        """
        self._check_fitted()
        model = self.model_ if trial_id is None else self._trial_model(trial_id)
        return export.with_preprocessing(self, model)

    def get_best_models(self, num_models=1):
        """The `num_models` best trials' models, best first, preprocessing included.

        Unlike `tuner_.get_best_models()`, whose models take preprocessed
        images, these take raw images as given to `fit`.
        """
        self._check_fitted()
        num_models = check_int("num_models", num_models, minimum=1)
        ranked = sorted(
            (t for t in self.trials_.values() if t.status == "COMPLETED" and t.score is not None),
            key=lambda t: t.score,
            reverse=not self.objective_name.endswith(("loss", "error", "mae", "mse")),
        )
        return [self.export_model(t.trial_id) for t in ranked[:num_models]]

    def _trial_model(self, trial_id):
        trial = self.trials_.get(str(trial_id))
        if trial is None or not trials.has_architecture(trial):
            raise ValueError(
                f"Expected `trial_id` to be one of the search's trials {sorted(self.trials_)}. "
                f"Received: trial_id={trial_id!r}"
            )
        return self._load_trial(trial)

    def export(self, path):
        """Writes a TensorFlow SavedModel for serving, and the labels beside it.

        The `serving_default` signature takes raw images as given to `fit`
        (same dtype, (N, H, W) or (N, H, W, C)) and returns probabilities
        (classifier) or values (regressor). `path/kerasnas_labels.json` holds
        the class names in output order, for servers to map indices to labels.

        Args:
            path: the SavedModel folder to write.

        Returns:
            `path`.
        """
        self._check_fitted()
        return export.saved_model(self, path)

    @property
    def history(self):
        """One row per trial: ids, morphisms (or `refine`: the parent trained on), size,
        epochs, seconds, `augmented_after` (see `fit`'s refinement), score and status."""
        self._check_fitted()
        return export.history_frame(self.trials_, self.objective_name)


_TASKS = {}


def register(cls):
    """Makes `load` know a task class (by its `task`)."""
    _TASKS[cls.task] = cls
    return cls


def _find_run(directory):
    directory = os.path.abspath(str(directory))
    candidates = (
        [directory]
        + sorted(
            os.path.join(directory, d)
            for d in os.listdir(directory)
            if os.path.isdir(os.path.join(directory, d))
        )
        if os.path.isdir(directory)
        else []
    )
    found = [d for d in candidates if os.path.exists(os.path.join(d, METADATA))]
    if not found:
        raise FileNotFoundError(
            f"No finished kerasnas search in {directory} (no {METADATA} there or in its "
            "subfolders). Call `fit` first."
        )
    if len(found) > 1:
        raise ValueError(f"{directory} holds several searches; pass one of {found}.")
    return found[0]


def _keras_validation(feed, batch_size):
    """A `_validation_feed` as `fit` gets it: arrays become an untuned Dataset of batches."""
    if isinstance(feed, tuple):
        return pipelines.array_dataset(*feed, batch_size=batch_size)
    return feed


class _ReorderedError(ValueError):
    """Raised when a streamed validation set yields its images in another order on a new pass."""


class _ValidationPasses:
    """`model -> (N, C) outputs` on the validation data, as `_validation_feed` gives it.

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
            raise _ReorderedError(
                "kerasnas: `validation_data` yields its images in another order on each pass "
                "(a Dataset shuffled on every iteration?), so the best models' outputs cannot "
                "be averaged; keeping the best model alone. For an ensemble, pass validation "
                "data in a fixed order (shuffle(..., reshuffle_each_iteration=False), or none)."
            )
        return np.concatenate(outputs)


def _split(train, encoded, weights, fraction, seed):
    """Holds out `fraction` of `train` at random: `(train, encoded, weights, val, val_encoded)`."""
    n = train.count
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(round(n * fraction)))
    if n_val >= n:
        raise ValueError(
            f"Expected more than {n_val} images to hold out {fraction:.0%} for validation; got {n}."
        )
    held, kept = order[:n_val], order[n_val:]
    encoded = np.asarray(encoded)
    if train.streamed:  # a folder: split its files
        files = np.asarray(train.files)
        labels = np.asarray(train.labels)

        def part(index):
            make = datalib.folder_stream(files[index], labels[index], *train.folder)
            return datalib.ImageData(
                None,
                labels[index],
                make,
                train.raw_shape,
                train.dtype,
                train.sample,
                len(index),
                train.source,
                files[index].tolist(),
                train.folder,
            )

        return part(kept), encoded[kept], None, part(held), encoded[held]

    def part(index):
        images = train.images[index]
        labels = np.asarray(train.labels)[index]
        return datalib.ImageData(
            images, labels, None, train.raw_shape, train.dtype, images, len(index), train.source
        )

    return (
        part(kept),
        encoded[kept],
        None if weights is None else weights[kept],
        part(held),
        encoded[held],
    )


def _user_stacklevel():
    """The `stacklevel` for `warnings.warn` that points at the first caller outside kerasnas."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame, level = frame.f_back, level + 1
    return level


def _raw_dtype(dtype):
    """The dtype exported models take: the user's integer type, else float32."""
    return str(dtype) if np.issubdtype(np.dtype(dtype), np.integer) else "float32"
