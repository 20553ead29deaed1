"""`ImageClassifier` and `ImageRegressor`: what users call."""

from __future__ import annotations

import errno
import os
import tempfile
import time
import warnings

import numpy as np

from kerasnas import files, trials
from kerasnas.arguments import check_int
from kerasnas.tasks import run_dir
from kerasnas.tasks.inputs import (
    LabelEncoder,
    check_images,
    check_lengths,
    check_resize_shape,
    check_targets,
    check_time_limit,
    check_validation_split,
)
from kerasnas.tasks.run_dir import METADATA, DirectoryLock

DEFAULT_TIME_LIMIT = 24 * 60 * 60

__all__ = ["ImageClassifier", "ImageRegressor", "NotFittedError", "load", "METADATA"]


class NotFittedError(ValueError, AttributeError):
    """Raised when a task is used for prediction before `fit`."""


class _ImageTask:
    """What `ImageClassifier` and `ImageRegressor` share (see their docstrings)."""

    task = None
    default_objective = None
    default_project_name = None

    def __init__(
        self,
        directory=None,
        project_name=None,
        overwrite=False,
        max_trials=None,
        objective=None,
        seed=None,
        verbose=True,
        augment=False,
        resize_shape=None,
        max_model_size=None,
        distribution_strategy=None,
        searcher_args=None,
        path=None,
    ):
        if directory is not None and path is not None:
            raise ValueError(
                "Pass `directory` or its AutoKeras 0.4 name `path`, not both. "
                f"Received: directory={directory!r}, path={path!r}"
            )
        self.directory = directory
        self.project_name = project_name or self.default_project_name
        self.overwrite = overwrite
        self.max_trials = max_trials
        self.objective = objective or self.default_objective
        self.seed = seed
        self.verbose = verbose
        self.augment = augment
        self.resize_shape = resize_shape
        self.max_model_size = max_model_size
        self.distribution_strategy = distribution_strategy
        self.searcher_args = searcher_args
        self.path = path
        self._directory = directory if directory is not None else path  # None: fit makes one

    # ------------------------------------------------------------------ places

    @property
    def project_dir(self):
        """The run directory, `directory/project_name` (None before `fit` makes a temporary one)."""
        if self._directory is None:
            return None
        return os.path.join(str(self._directory), self.project_name)

    # ------------------------------------------------------------------ data

    def _check_x(self, x, name="x"):
        return check_images(x, name, check_resize_shape(self.resize_shape))

    def _check_like_fit(self, x, name="x"):
        """`x` checked, (N, H, W, C), and shaped like the images `fit` saw."""
        x = self._check_x(x, name)
        shape = tuple(self.input_shape_)
        expected = (*shape, 1) if len(shape) == 2 else shape
        if tuple(x.shape[1:]) != expected:
            got = tuple(x.shape[1:]) if expected[-1] != 1 or x.shape[-1] != 1 else x.shape[1:3]
            raise ValueError(
                f"Expected `{name}` to hold images shaped {shape}, like those given to `fit`; "
                f"got images shaped {tuple(got)}. Resize or crop them to {shape[:2]} first."
            )
        return x

    def _from_dataset(self, dataset, name="x"):
        """Materialises a `tf.data.Dataset` of (image, label), batched or not, into numpy."""
        spec = dataset.element_spec
        if not isinstance(spec, tuple) or len(spec) != 2:
            raise ValueError(
                f"Expected `{name}` to be a tf.data.Dataset of (image, label) pairs; got elements "
                f"{spec}."
            )
        pairs = list(dataset.as_numpy_iterator())
        if not pairs:
            raise ValueError(f"Expected `{name}` to hold at least one image; the dataset is empty.")
        xs, ys = zip(*pairs)
        join = np.concatenate if _is_batched(spec[0].shape, xs[0], ys[0]) else np.stack
        try:
            return join(xs), join(ys)
        except ValueError as e:
            raise ValueError(
                f"The images or labels of the dataset `{name}` differ in shape ({e}); make them "
                "one shape (e.g. with keras.layers.Resizing in a .map)."
            ) from None

    def _preprocessor(self, input_shape, mean=None, variance=None):
        """Layers from (H, W, C) images to the searched models' input: cast, resize, normalise."""
        import keras

        if len(input_shape) == 2:
            input_shape = (*input_shape, 1)
        raw = keras.Input(shape=input_shape, name="image")
        x = keras.layers.Rescaling(1.0, name="to_float")(raw)  # casts integer images to float32
        if self.resize_shape is not None:
            height, width = (int(d) for d in self.resize_shape)
            x = keras.layers.Resizing(height, width, name="resize")(x)
        if mean is not None:
            x = keras.layers.Normalization(mean=mean, variance=variance, name="normalize")(x)
        return keras.Model(raw, x, name="preprocessing")

    def _prepare(self, x, batch_size=2048):
        """Raw images, as given, to the float32 arrays the searched models take."""
        return self.preprocessor_.predict(np.asarray(x), batch_size=batch_size, verbose=0)

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
    ):
        """Searches for the best architecture within `time_limit` seconds.

        Everything is checked, and the run directory locked, before the
        estimator changes: a `fit` that raises leaves a fitted estimator as
        it was.

        Args:
            x: images, numpy (N, H, W) or (N, H, W, C), uint8 or float; or a
                `tf.data.Dataset` of (image, label) (then leave `y` None).
            y: labels (see the class docstring).
            time_limit: seconds the whole call may take, choosing and restoring
                the best model included. Defaults to 24 hours.
            validation_split: fraction of (x, y) held out to score
                architectures, when `validation_data` is None. Defaults to 0.1.
            validation_data: `(x_val, y_val)` to score architectures on. Defaults to None.
            epochs: most epochs per trial. Defaults to None (100, bounded by
                early stopping and the time budget).
            batch_size: training batch size. Defaults to None (128, fewer for tiny data).
            callbacks: extra Keras callbacks for every trial. Defaults to None.

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
        epochs = check_int("epochs", epochs, minimum=1, allow_none=True)
        batch_size = check_int("batch_size", batch_size, minimum=1, allow_none=True)
        resize_shape = check_resize_shape(self.resize_shape)
        if validation_data is None:
            validation_split = check_validation_split(validation_split)
        if _is_dataset(x):
            if y is not None:
                raise ValueError(
                    "Expected `y` to be None when `x` is a tf.data.Dataset of (image, label); "
                    "the labels come from the dataset."
                )
            x, y = self._from_dataset(x)
        images = self._check_x(x)
        raw_shape = tuple(
            int(d) for d in (images.shape[1:] if np.ndim(x) == 4 else images.shape[1:3])
        )
        input_dtype = _raw_dtype(images)
        if y is None:
            raise ValueError("Expected labels `y` (or a tf.data.Dataset of (image, label) as `x`).")
        check_lengths(images, y)
        targets, y = self._learn_targets(y)
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError(
                    "Expected `validation_data` to be a pair (x_val, y_val); got "
                    f"{type(validation_data).__name__}."
                )
            x_val, y_val = validation_data
            x_val = self._check_x(x_val, "validation_data[0]")
            check_lengths(x_val, y_val, "validation_data[0]", "validation_data[1]")
            y_val = self._encode(y_val, "validation_data[1]", targets)
            if x_val.shape[1:] != images.shape[1:]:
                raise ValueError(
                    f"Expected validation images of shape {images.shape[1:]} like `x`; "
                    f"got {x_val.shape[1:]}."
                )
        else:
            order = np.random.default_rng(self.seed).permutation(len(images))
            n_val = max(1, int(round(len(images) * validation_split)))
            if n_val >= len(images):
                raise ValueError(
                    f"Expected more than {n_val} images to hold out {validation_split:.0%} for "
                    f"validation; got {len(images)}."
                )
            x_val, y_val = images[order[:n_val]], y[order[:n_val]]
            images, y = images[order[n_val:]], y[order[n_val:]]

        directory = self._directory
        if directory is None:
            directory = tempfile.mkdtemp(prefix="kerasnas_")
        project_dir = os.path.join(str(directory), self.project_name)
        overwrite = bool(self.overwrite) and not getattr(self, "_fitted_once", False)
        expected = {
            "task": self.task,
            "input_shape": list(raw_shape),
            "resize_shape": None if resize_shape is None else list(resize_shape),
            "targets": self._targets_config(targets),
        }
        before = dict(self.__dict__)
        try:
            with DirectoryLock(project_dir + ".lock"):
                if not overwrite:
                    run_dir.check_resumable(project_dir, expected)
                # Nothing has changed yet; from here on, a failure restores `before`.
                self._directory = directory
                self.__dict__.update(targets)
                self.input_shape_ = raw_shape
                self.input_dtype_ = input_dtype
                return self._search(
                    start,
                    time_limit,
                    overwrite,
                    images,
                    y,
                    x_val,
                    y_val,
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

    def _search(
        self, start, time_limit, overwrite, x, y, x_val, y_val, epochs, batch_size, callbacks
    ):
        import keras

        from kerasnas.oracle import NetworkMorphismOracle
        from kerasnas.tuner import MorphismTuner

        if self.seed is not None:
            keras.utils.set_random_seed(self.seed)
        raw_shape = self.input_shape_
        sample = x[:: max(1, len(x) // 5000)].astype("float64")
        flat = sample.reshape(-1, sample.shape[-1])
        mean, variance = flat.mean(axis=0), np.maximum(flat.var(axis=0), 1e-12)
        self.preprocessor_ = self._preprocessor(raw_shape, mean, variance)
        self._preprocessing = {"mean": mean.tolist(), "variance": variance.tolist()}
        x_search, x_val_search = self._prepare(x), self._prepare(x_val)
        search_shape = x_search.shape[1:]

        oracle = NetworkMorphismOracle(
            search_shape,
            self._num_outputs(),
            objective=self.objective,
            max_trials=self.max_trials,
            seed=self.seed,
            max_model_size=self.max_model_size,
            task=self.task,
            **(self.searcher_args or {}),
        )
        batch_size = batch_size or int(min(128, max(16, len(x_search) // 20)))
        tuner = MorphismTuner(
            oracle,
            loss=self._loss(),
            metrics=self._metrics(),
            batch_size=batch_size,
            max_epochs=epochs or 100,
            max_model_size=self.max_model_size,
            verbose=self.verbose,
            directory=str(self._directory),
            project_name=self.project_name,
            overwrite=overwrite,
            distribution_strategy=self.distribution_strategy,
        )
        self._fitted_once = True
        if not os.path.exists(run_dir.metadata_path(self.project_dir)):
            # Written before any trial, so that a resumed search is checked against it.
            self.best_trial_id_, self._final_weights = None, None
            self._save_metadata()
        # Keep back time to choose and restore the best model: the deadline covers all of fit.
        reserve = min(5.0, 0.05 * time_limit)
        oracle.set_deadline(start + time_limit - reserve)  # the oracle owns the time
        train = x_search, y
        if self.augment:
            train = (self._augmented(x_search, y, batch_size, search_shape), None)
        if self.verbose:
            left = start + time_limit - time.time()
            print(
                f"kerasnas: searching in {self.project_dir} for {left:.0f} s "
                f"({len(x_search)} training and {len(x_val_search)} validation images)."
            )
        tuner.search(*train, validation_data=(x_val_search, y_val), callbacks=callbacks, verbose=0)
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
        self._trials = oracle.trials
        self.best_trial_id_ = best.trial_id
        self._final_weights = None
        self._save_metadata()
        if self.verbose:
            print(
                f"kerasnas: best trial {self.best_trial_id_} with {self.objective} = "
                f"{best.score:.4f}, after {time.time() - start:.0f} s."
            )
        return self

    def _first_loadable(self, ranked):
        """`(trial, model)` of the best trial in `ranked` whose weights load, saying so if it
        is not the first."""
        failures = []
        for trial in ranked:
            path = run_dir.checkpoint_path(self.project_dir, trial.trial_id)
            try:
                model = run_dir.load_weights(trials.graph_of(trial).to_keras(), path, "")
            except files.RunFileError as e:
                failures.append(e)
                continue
            if failures:
                warnings.warn(
                    f"kerasnas: {' '.join(str(f).strip() for f in failures)} Using trial "
                    f"{trial.trial_id}, the best trial whose weights load.",
                    RuntimeWarning,
                    stacklevel=3,
                )
            return trial, model
        raise files.RunFileError(
            f"No finished trial of {self.project_dir} has readable weights: "
            f"{' '.join(str(f).strip() for f in failures)} Pass overwrite=True to start afresh.",
            failures[0].path,
        )

    def _augmented(self, x, y, batch_size, shape):
        import keras
        import tensorflow as tf

        augment = keras.Sequential(
            [
                keras.layers.RandomTranslation(0.1, 0.1, fill_mode="constant"),
                keras.layers.RandomZoom(0.1, fill_mode="constant"),
            ]
        )
        dataset = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=self.seed)
        dataset = dataset.batch(batch_size).map(lambda a, b: (augment(a, training=True), b))
        return dataset.prefetch(2)

    # ------------------------------------------------------------------ metadata

    def _save_metadata(self):
        resize_shape = check_resize_shape(self.resize_shape)
        run_dir.write_metadata(
            self.project_dir,
            {
                "task": self.task,
                "project_name": self.project_name,
                "objective": self.objective,
                "input_shape": list(self.input_shape_),
                "input_dtype": self.input_dtype_,
                "resize_shape": None if resize_shape is None else list(resize_shape),
                "preprocessing": self._preprocessing,
                "targets": self._targets_config(),
                "best_trial_id": self.best_trial_id_,
                "final_weights": self._final_weights,
            },
        )

    def _restore(self, metadata):
        """Reads the trials and the best model of a saved search, writing nothing."""
        fix = "Rerun `fit` on this directory: it falls back to the next best trial that loads."
        self._trials = run_dir.read_trials(self.project_dir)
        self.tuner_ = None
        self._fitted_once = True
        self.best_trial_id_ = metadata["best_trial_id"]
        self._final_weights = metadata.get("final_weights")
        best = self._trials.get(self.best_trial_id_)
        if best is None or not trials.has_architecture(best):
            raise files.RunFileError(
                f"The best trial {self.best_trial_id_} of {self.project_dir} has no readable "
                f"trial_{self.best_trial_id_}/{trials.TRIAL_FILE}. {fix}"
            )
        path = run_dir.checkpoint_path(self.project_dir, self.best_trial_id_)
        self.model_ = run_dir.load_weights(trials.graph_of(best).to_keras(), path, fix)
        if self._final_weights:
            path = os.path.join(self.project_dir, self._final_weights)
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
        y_train,
        x_test=None,
        y_test=None,
        retrain=False,
        time_limit=None,
        epochs=None,
        batch_size=128,
    ):
        """Trains the best architecture longer, on all the training data.

        Args:
            x_train: training images.
            y_train: training labels.
            x_test: images to monitor (early stopping keeps the best epoch on
                them). Defaults to None (hold out 10% of the training data).
            y_test: their labels. Defaults to None.
            retrain: start from fresh weights instead of the search's. Defaults to False.
            time_limit: seconds this call may take. Defaults to None (no limit).
            epochs: most epochs. Defaults to None (100 under a time limit, else 20).
            batch_size: batch size. Defaults to 128.

        Returns:
            self.

        Raises:
            ValueError: for bad input, before any training.
        """
        import keras

        from kerasnas.callbacks import TimeBudget, TimeCosineDecay

        start = time.time()
        self._check_fitted()
        if time_limit is not None:
            time_limit = check_time_limit(time_limit)
        epochs = check_int("epochs", epochs, minimum=1, allow_none=True)
        batch_size = check_int("batch_size", batch_size, minimum=1)
        x = self._prepare(self._check_like_fit(x_train, "x_train"))
        check_lengths(x, y_train, "x_train", "y_train")
        y = self._encode(y_train, "y_train")
        if x_test is not None:
            x_val = self._prepare(self._check_like_fit(x_test, "x_test"))
            check_lengths(x_val, y_test, "x_test", "y_test")
            y_val = self._encode(y_test, "y_test")
        else:
            cut = max(1, len(x) // 10)
            if cut >= len(x):
                raise ValueError(
                    f"Expected at least 2 images in `x_train` to hold some out; got {len(x)}."
                )
            x_val, y_val, x, y = x[:cut], y[:cut], x[cut:], y[cut:]
        graph = trials.graph_of(self._trials[self.best_trial_id_])
        model = graph.to_keras()
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
            keras.callbacks.EarlyStopping(
                monitor=monitor, mode=mode, patience=5, restore_best_weights=True
            )
        ]
        if time_limit is not None:
            deadline = start + time_limit - min(3.0, 0.05 * time_limit)
            steps = -(-len(x_val) // batch_size)  # for TimeBudget's room to validate
            callbacks += [
                TimeCosineDecay(deadline),
                TimeBudget(deadline, validation_steps=steps),  # last: it times the tail
            ]
        model.fit(
            x,
            y,
            validation_data=(x_val, y_val),
            batch_size=batch_size,
            epochs=epochs or (100 if time_limit else 20),
            callbacks=callbacks,
            verbose=1 if self.verbose else 0,
        )
        path = os.path.join(self.project_dir, run_dir.FINAL_WEIGHTS)
        try:
            files.save_weights(model, path)
            self._final_weights, old = run_dir.FINAL_WEIGHTS, self._final_weights
            try:
                self._save_metadata()
            except BaseException:
                self._final_weights = old
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

    def _outputs(self, x):
        self._check_fitted()
        x = self._prepare(self._check_like_fit(x))
        return self.model_.predict(x, verbose=0)

    def export_model(self):
        """A `keras.Model` from raw images (as given to `fit`) to probabilities or values.

        It holds the preprocessing (casting, resizing, normalisation) and
        loads back with plain `keras.models.load_model`, no kerasnas needed.
        """
        import keras

        self._check_fitted()
        raw = keras.Input(shape=self.input_shape_, dtype=self.input_dtype_, name="image")
        x = raw
        if len(self.input_shape_) == 2:
            x = keras.layers.Reshape((*self.input_shape_, 1), name="add_channel")(x)
        outputs = self.model_(self.preprocessor_(x))
        return keras.Model(raw, outputs, name=f"kerasnas_{self.task}")

    def export(self, path):
        """Writes a TensorFlow SavedModel for serving, and the labels beside it.

        The `serving_default` signature takes raw images as given to `fit`
        (same dtype, (N, H, W) or (N, H, W, C)) and returns probabilities
        (classifier) or values (regressor). `path/kerasnas_labels.json` holds
        the class names in output order, for servers to map indices to labels.

        The signature calls the model in inference mode explicitly
        (`training=False`): Keras' default export leaves Dropout on when the
        model holds a `Resizing` layer, which made served outputs random.

        Args:
            path: the SavedModel folder to write.

        Returns:
            `path`.
        """
        import keras
        import tensorflow as tf

        model = self.export_model()
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint(
            "serve",
            lambda image: model(image, training=False),
            input_signature=[
                tf.TensorSpec((None, *self.input_shape_), self.input_dtype_, name="image")
            ],
        )
        archive.write_out(str(path), verbose=False)
        labels = {
            "task": self.task,
            "input_shape": list(self.input_shape_),
            "input_dtype": self.input_dtype_,
            "classes": self._targets_config().get("classes"),
        }
        files.write_json(os.path.join(str(path), "kerasnas_labels.json"), labels)
        return path

    @property
    def history(self):
        """One row per trial: ids, morphisms (or `refine`: the parent trained on), size,
        epochs, seconds, score and status."""
        import pandas as pd

        self._check_fitted()
        rows = []
        for trial_id in sorted(self._trials):
            trial = self._trials[trial_id]
            row = {"trial_id": trial_id, self.objective: trial.score, "status": trial.status}
            if not trials.has_architecture(trial):  # read from a damaged file
                rows.append(row)
                continue
            graph = trials.graph_of(trial)
            parent_id = trials.parent_of(trial)
            done = 0
            if parent_id and trials.has_architecture(self._trials.get(parent_id, trial)):
                done = len(trials.graph_of(self._trials.get(parent_id, trial)).history)
            row.update(
                {
                    trials.PARENT_TRIAL_ID: parent_id,
                    "morphisms": [r["op"] for r in graph.history[done:]],
                    trials.REFINE: trials.is_refinement(trial),
                    "architecture": graph.summary(),
                    "params": graph.num_params(),
                    "flops": graph.flops(),
                    trials.EPOCHS: trials.metric(trial, trials.EPOCHS, np.nan),
                    trials.TRAIN_SECONDS: trials.metric(trial, trials.TRAIN_SECONDS, np.nan),
                }
            )
            rows.append(row)
        columns = [
            "trial_id",
            trials.PARENT_TRIAL_ID,
            "morphisms",
            trials.REFINE,
            "architecture",
            "params",
            "flops",
            trials.EPOCHS,
            trials.TRAIN_SECONDS,
            self.objective,
            "status",
        ]
        return pd.DataFrame(rows, columns=columns)


class ImageClassifier(_ImageTask):
    """Finds a CNN that classifies images, by network morphism search.

    Labels may be ints, strings or one-hot rows; `predict` answers in the
    same encoding. The search, its trials and the best weights live in
    `directory/project_name`; rerunning `fit` there resumes the search.

    Args:
        directory: folder for runs. Defaults to None (a new temporary folder).
        project_name: subfolder of this search. Defaults to `"image_classifier"`.
        overwrite: start afresh instead of resuming. Defaults to False.
        max_trials: most architectures to train. Defaults to None (no limit).
        objective: the metric to maximise. Defaults to `"val_accuracy"`.
        seed: random seed. Defaults to None.
        verbose: print a line per trial and Keras' progress bars. Defaults to True.
        augment: random shifts and zooms while training. Defaults to False.
        resize_shape: `(height, width)` to resize images to. Defaults to None.
        max_model_size: most parameters an architecture may have. Defaults to None.
        distribution_strategy: a `tf.distribute.Strategy` for each trial. Defaults to None.
        searcher_args: keyword arguments for `NetworkMorphismOracle`. Defaults to None.
        path: AutoKeras 0.4's name for `directory`. Defaults to None.

    Example:

    >>> clf = kerasnas.ImageClassifier(directory="runs/mnist", seed=1)
    >>> clf.fit(x_train, y_train, time_limit=600)
    >>> clf.evaluate(x_test, y_test)
    """

    task = "classification"
    default_objective = "val_accuracy"
    default_project_name = "image_classifier"

    def _learn_targets(self, y):
        """`(state, encoded y)`: the estimator's label state for `y`, not yet set on it."""
        encoder = LabelEncoder.fit(y)
        return {"encoder_": encoder}, encoder.encode(y)

    def _encode(self, y, name="y", state=None):
        return (state or self.__dict__)["encoder_"].encode(y, name)

    def _num_outputs(self):
        return len(self.encoder_.classes_)

    def _targets_config(self, state=None):
        return (state or self.__dict__)["encoder_"].get_config()

    def _load_targets(self, config):
        self.encoder_ = LabelEncoder.from_config(config)

    def _loss(self):
        return "sparse_categorical_crossentropy"

    def _metrics(self):
        return ["accuracy"]

    def predict_proba(self, x):
        """Class probabilities, shape (N, classes), columns in the order of `classes_`."""
        return self._outputs(x)

    def predict(self, x):
        """Labels of `x`, in the encoding given to `fit` (one-hot in, class index out)."""
        probabilities = self.predict_proba(x)
        return self.encoder_.decode(probabilities.argmax(axis=1))

    @property
    def classes_(self):
        self._check_fitted()
        return self.encoder_.classes_

    def evaluate(self, x, y):
        """Accuracy on `(x, y)`."""
        self._check_fitted()
        check_lengths(x, y)
        expected = self._encode(y)
        return float(np.mean(self.predict_proba(x).argmax(axis=1) == expected))


class ImageRegressor(_ImageTask):
    """Finds a CNN that predicts numbers from images, by network morphism search.

    Same arguments as `ImageClassifier`, except `objective` (defaults to
    `"val_loss"`, the mean squared error) and `project_name` (defaults to
    `"image_regressor"`). Targets: floats of shape (N,) or (N, k).
    """

    task = "regression"
    default_objective = "val_loss"
    default_project_name = "image_regressor"

    def _learn_targets(self, y):
        y = check_targets(y)
        return {"num_targets_": int(y.shape[1])}, y

    def _encode(self, y, name="y", state=None):
        y = check_targets(y, name)
        expected = (state or self.__dict__)["num_targets_"]
        if y.shape[1] != expected:
            raise ValueError(f"Expected `{name}` with {expected} targets per image; got {y.shape}.")
        return y

    def _num_outputs(self):
        return self.num_targets_

    def _targets_config(self, state=None):
        return {"num_targets": (state or self.__dict__)["num_targets_"]}

    def _load_targets(self, config):
        self.num_targets_ = int(config["num_targets"])

    def _loss(self):
        return "mse"

    def _metrics(self):
        return ["mae"]

    def predict(self, x):
        """Predicted targets, shape (N,) for one target, else (N, k)."""
        out = self._outputs(x)
        return out[:, 0] if self.num_targets_ == 1 else out

    def evaluate(self, x, y):
        """Mean squared error on `(x, y)`."""
        self._check_fitted()
        check_lengths(x, y)
        y = self._encode(y)
        return float(np.mean((self._outputs(x) - y) ** 2))


def load(directory):
    """Reopens a finished search, ready to predict or to resume; writes nothing.

    The run is opened where it is found: a renamed or copied run folder
    loads as well. Names in `kerasnas.json` never lead outside it.

    Args:
        directory: the folder given to `fit` (holding one search), or the
            search's own folder `directory/project_name`.

    Returns:
        A fitted `ImageClassifier` or `ImageRegressor`.

    Raises:
        FileNotFoundError: if no finished search is there.
        ValueError: if a file of the search is damaged (the message names it).
    """
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
    project_dir = found[0]
    fix = "Rerun `fit` on this directory with overwrite=True to start afresh."
    metadata = run_dir.read_metadata(project_dir, fix)
    if metadata.get("best_trial_id") is None:
        raise FileNotFoundError(
            f"The search in {project_dir} has not finished a `fit` yet. Call `fit` on this "
            "directory again to resume it."
        )
    cls = ImageClassifier if metadata["task"] == "classification" else ImageRegressor
    path = run_dir.metadata_path(project_dir)
    try:
        task = cls(
            directory=os.path.dirname(project_dir),
            project_name=os.path.basename(project_dir),  # where it is, whatever it was called
            objective=metadata["objective"],
            resize_shape=check_resize_shape(metadata.get("resize_shape")),
            verbose=False,
        )
        task._load_targets(metadata["targets"])
        task.input_shape_ = tuple(int(d) for d in metadata["input_shape"])
        task.input_dtype_ = str(np.dtype(metadata["input_dtype"]))
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
    task._preprocessing = prep
    task.preprocessor_ = task._preprocessor(task.input_shape_, mean, variance)
    task._restore(metadata)
    return task


def _raw_dtype(x):
    """The dtype exported models take: the user's integer type, else float32."""
    return str(x.dtype) if np.issubdtype(x.dtype, np.integer) else "float32"


def _is_dataset(x):
    return type(x).__module__.startswith("tensorflow") and hasattr(x, "as_numpy_iterator")


def _is_batched(spec_shape, image, label):
    """Whether a dataset's elements are batches, from its spec and its first element.

    A batch of grayscale images (B, H, W) and one RGB image (H, W, C) have the
    same rank; a batch made with `drop_remainder=True` has a fixed B in its
    spec. The labels tell: a batch has one per image.
    """
    if spec_shape.rank is not None and spec_shape.rank > 0 and spec_shape[0] is None:
        return True
    if image.ndim != 3:
        return image.ndim == 4
    label = np.asarray(label)
    if label.ndim == 0 or label.shape[0] != image.shape[0]:
        return False
    one_hot_row = label.ndim == 1 and np.isin(label, (0, 1)).all() and label.sum() == 1
    return label.ndim == 2 or image.shape[-1] > 4 or not one_hot_row
