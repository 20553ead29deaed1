"""`ImageClassifier` and `ImageRegressor`: what users call."""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import tempfile
import time

import numpy as np

from kerasnas.tasks.inputs import LabelEncoder, check_images, check_lengths, check_targets

DEFAULT_TIME_LIMIT = 24 * 60 * 60
METADATA = "kerasnas.json"


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
        return check_images(x, name, self.resize_shape)

    def _from_dataset(self, dataset, name="x"):
        """Materialises a `tf.data.Dataset` of (image, label), batched or not, into numpy."""
        spec = dataset.element_spec
        if not isinstance(spec, tuple) or len(spec) != 2:
            raise ValueError(f"Expected `{name}` to be a tf.data.Dataset of (image, label).")
        pairs = list(dataset.as_numpy_iterator())
        if not pairs:
            raise ValueError(f"Expected `{name}` to hold at least one image; the dataset is empty.")
        xs, ys = zip(*pairs)
        batched = (
            spec[0].shape.rank is not None and spec[0].shape.rank > 0 and (spec[0].shape[0] is None)
        )
        join = np.concatenate if batched else np.stack
        return join(xs), join(ys)

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
            ValueError: for bad input, before any training.
            RuntimeError: if another process is fitting into the same directory.
        """
        start = time.time()
        if time_limit is None:
            time_limit = DEFAULT_TIME_LIMIT
        if not isinstance(time_limit, (int, float)) or not time_limit > 0:
            raise ValueError(
                f"Expected `time_limit` to be a positive number of seconds; "
                f"got time_limit={time_limit!r}."
            )
        if not 0 < validation_split < 1 and validation_data is None:
            raise ValueError(
                f"Expected 0 < validation_split < 1; got validation_split={validation_split!r}."
            )
        if _is_dataset(x):
            x, y = self._from_dataset(x)
        self._raw_shape = tuple(int(d) for d in np.shape(x)[1:])
        self.input_dtype_ = _raw_dtype(x)
        x = self._check_x(x)
        if y is None:
            raise ValueError("Expected labels `y` (or a tf.data.Dataset of (image, label) as `x`).")
        check_lengths(x, y)
        y = self._fit_targets(y)
        if validation_data is not None:
            x_val, y_val = validation_data
            x_val = self._check_x(x_val, "validation_data[0]")
            check_lengths(x_val, y_val, "validation_data[0]", "validation_data[1]")
            y_val = self._encode(y_val, "validation_data[1]")
            if x_val.shape[1:] != x.shape[1:]:
                raise ValueError(
                    f"Expected validation images of shape {x.shape[1:]} like `x`; "
                    f"got {x_val.shape[1:]}."
                )
        else:
            order = np.random.default_rng(self.seed).permutation(len(x))
            n_val = max(1, int(round(len(x) * validation_split)))
            if n_val >= len(x):
                raise ValueError(
                    f"Expected more than {n_val} images to hold out {validation_split:.0%} for "
                    f"validation; got {len(x)}."
                )
            x_val, y_val = x[order[:n_val]], y[order[:n_val]]
            x, y = x[order[n_val:]], y[order[n_val:]]

        if self._directory is None:
            self._directory = tempfile.mkdtemp(prefix="kerasnas_")
        with _DirectoryLock(self.project_dir + ".lock"):
            return self._search(
                start, time_limit, x, y, x_val, y_val, epochs, batch_size, callbacks
            )

    def _search(self, start, time_limit, x, y, x_val, y_val, epochs, batch_size, callbacks):
        import keras

        from kerasnas.oracle import NetworkMorphismOracle
        from kerasnas.tuner import MorphismTuner

        if self.seed is not None:
            keras.utils.set_random_seed(self.seed)
        raw_shape = self._raw_shape
        sample = x[:: max(1, len(x) // 5000)].astype("float64")
        flat = sample.reshape(-1, sample.shape[-1])
        mean, variance = flat.mean(axis=0), np.maximum(flat.var(axis=0), 1e-12)
        self.input_shape_ = raw_shape
        self.preprocessor_ = self._preprocessor(raw_shape, mean, variance)
        self._preprocessing = {"mean": mean.tolist(), "variance": variance.tolist()}
        x_search, x_val_search = self._prepare(x), self._prepare(x_val)
        search_shape = x_search.shape[1:]

        self._check_metadata()
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
            overwrite=self.overwrite and not getattr(self, "_fitted_once", False),
            distribution_strategy=self.distribution_strategy,
        )
        self._fitted_once = True
        # Keep back time to choose and restore the best model: the deadline covers all of fit.
        reserve = min(5.0, 0.05 * time_limit)
        tuner.deadline = start + time_limit - reserve
        oracle.set_deadline(tuner.deadline)
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
        self.tuner_ = tuner
        best = [t for t in oracle.get_best_trials(1) if t.status == "COMPLETED"]
        if not best:
            raise RuntimeError(
                f"No trial completed within time_limit={time_limit} s; see the trials in "
                f"{self.project_dir}. Give the search more time."
            )
        self.best_trial_id_ = best[0].trial_id
        self.model_ = tuner.load_model(best[0])
        self._final_weights = None
        self._save_metadata()
        if self.verbose:
            print(
                f"kerasnas: best trial {self.best_trial_id_} with {self.objective} = "
                f"{best[0].score:.4f}, after {time.time() - start:.0f} s."
            )
        return self

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

    def _metadata_path(self):
        return os.path.join(self.project_dir, METADATA)

    def _check_metadata(self):
        path = self._metadata_path()
        if self.overwrite or getattr(self, "_fitted_once", False) or not os.path.exists(path):
            return
        with open(path) as f:
            saved = json.load(f)
        if tuple(saved["input_shape"]) != self.input_shape_ or saved["task"] != self.task:
            raise ValueError(
                f"{self.project_dir} holds a search over {saved['task']} of images shaped "
                f"{tuple(saved['input_shape'])}, not {self.input_shape_}. Pass overwrite=True "
                "to start afresh, or another directory or project_name."
            )

    def _save_metadata(self):
        metadata = {
            "task": self.task,
            "project_name": self.project_name,
            "objective": self.objective,
            "input_shape": list(self.input_shape_),
            "input_dtype": self.input_dtype_,
            "resize_shape": None if self.resize_shape is None else list(self.resize_shape),
            "preprocessing": self._preprocessing,
            "targets": self._targets_config(),
            "best_trial_id": self.best_trial_id_,
            "final_weights": self._final_weights,
        }
        tmp = self._metadata_path() + ".tmp"
        with open(tmp, "w") as f:
            json.dump(metadata, f, indent=2)
        os.replace(tmp, self._metadata_path())

    def _restore(self, metadata):
        """Rebuilds the tuner (to read the trials) and the best model of a saved search."""
        from kerasnas.oracle import NetworkMorphismOracle
        from kerasnas.tuner import MorphismTuner

        search_shape = tuple(self.preprocessor_.output_shape[1:])
        oracle = NetworkMorphismOracle(
            search_shape, self._num_outputs(), objective=self.objective, task=self.task
        )
        with contextlib.redirect_stdout(io.StringIO()):  # KerasTuner's "Reloading Tuner..."
            self.tuner_ = MorphismTuner(
                oracle,
                loss=self._loss(),
                metrics=self._metrics(),
                directory=str(self._directory),
                project_name=self.project_name,
                verbose=False,
            )
        self._fitted_once = True
        self.best_trial_id_ = metadata["best_trial_id"]
        self._final_weights = metadata["final_weights"]
        self.model_ = self.tuner_.load_model(self.tuner_.oracle.get_trial(self.best_trial_id_))
        if self._final_weights:
            self.model_.load_weights(os.path.join(self.project_dir, self._final_weights))

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
        """
        import keras

        from kerasnas.callbacks import TimeBudget, TimeCosineDecay

        start = time.time()
        self._check_fitted()
        if time_limit is not None and not time_limit > 0:
            raise ValueError(f"Expected a positive `time_limit`; got time_limit={time_limit!r}.")
        x = self._prepare(self._check_x(x_train, "x_train"))
        check_lengths(x, y_train, "x_train", "y_train")
        y = self._encode(y_train, "y_train")
        if x_test is not None:
            x_val = self._prepare(self._check_x(x_test, "x_test"))
            check_lengths(x_val, y_test, "x_test", "y_test")
            y_val = self._encode(y_test, "y_test")
        else:
            cut = max(1, len(x) // 10)
            x_val, y_val, x, y = x[:cut], y[:cut], x[cut:], y[cut:]
        graph = self.tuner_.trial_graph(self.tuner_.oracle.get_trial(self.best_trial_id_))
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
            callbacks += [TimeBudget(deadline), TimeCosineDecay(deadline)]
        model.fit(
            x,
            y,
            validation_data=(x_val, y_val),
            batch_size=batch_size,
            epochs=epochs or (100 if time_limit else 20),
            callbacks=callbacks,
            verbose=1 if self.verbose else 0,
        )
        self.model_ = model
        self._final_weights = "final.weights.h5"
        model.save_weights(os.path.join(self.project_dir, self._final_weights))
        self._save_metadata()
        return self

    def _outputs(self, x):
        self._check_fitted()
        x = self._prepare(self._check_x(x))
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

        Args:
            path: the SavedModel folder to write.

        Returns:
            `path`.
        """
        model = self.export_model()
        model.export(str(path), format="tf_saved_model", verbose=False)
        labels = {
            "task": self.task,
            "input_shape": list(self.input_shape_),
            "input_dtype": self.input_dtype_,
            "classes": self._targets_config().get("classes"),
        }
        with open(os.path.join(str(path), "kerasnas_labels.json"), "w") as f:
            json.dump(labels, f, indent=2)
        return path

    @property
    def history(self):
        """One row per trial: ids, morphisms (or `refine`: the parent trained on), size,
        epochs, seconds, score and status."""
        import pandas as pd

        from kerasnas.graph import Graph

        self._check_fitted()
        oracle = self.tuner_.oracle
        rows = []
        for trial_id in sorted(oracle.trials):
            trial = oracle.trials[trial_id]
            graph = Graph.from_json(trial.hyperparameters.values["architecture"])
            parent_id = trial.hyperparameters.values.get("parent_trial_id", "")
            done = 0
            if parent_id:
                parent = oracle.trials[parent_id].hyperparameters.values["architecture"]
                done = len(Graph.from_json(parent).history)

            def metric(name, trial=trial):
                exists = trial.metrics.exists(name)
                return trial.metrics.get_last_value(name) if exists else np.nan

            rows.append(
                {
                    "trial_id": trial_id,
                    "parent_trial_id": parent_id or None,
                    "morphisms": [r["op"] for r in graph.history[done:]],
                    "refine": bool(trial.hyperparameters.values.get("refine")),
                    "architecture": graph.summary(),
                    "params": graph.num_params(),
                    "flops": graph.flops(),
                    "epochs": metric("epochs"),
                    "train_seconds": metric("train_seconds"),
                    self.objective: trial.score,
                    "status": trial.status,
                }
            )
        return pd.DataFrame(rows)


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

    def _fit_targets(self, y):
        self.encoder_ = LabelEncoder.fit(y)
        return self.encoder_.encode(y)

    def _encode(self, y, name="y"):
        return self.encoder_.encode(y, name)

    def _num_outputs(self):
        return len(self.encoder_.classes_)

    def _targets_config(self):
        return self.encoder_.get_config()

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

    def _fit_targets(self, y):
        y = check_targets(y)
        self.num_targets_ = y.shape[1]
        return y

    def _encode(self, y, name="y"):
        return check_targets(y, name)

    def _num_outputs(self):
        return self.num_targets_

    def _targets_config(self):
        return {"num_targets": self.num_targets_}

    def _load_targets(self, config):
        self.num_targets_ = config["num_targets"]

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
        y = check_targets(y)
        return float(np.mean((self._outputs(x) - y) ** 2))


def load(directory):
    """Reopens a finished search, ready to predict or to resume.

    Args:
        directory: the folder given to `fit` (holding one search), or the
            search's own folder `directory/project_name`.

    Returns:
        A fitted `ImageClassifier` or `ImageRegressor`.

    Raises:
        FileNotFoundError: if no finished search is there.
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
    with open(os.path.join(project_dir, METADATA)) as f:
        metadata = json.load(f)
    cls = ImageClassifier if metadata["task"] == "classification" else ImageRegressor
    task = cls(
        directory=os.path.dirname(project_dir),
        project_name=metadata["project_name"],
        objective=metadata["objective"],
        resize_shape=metadata["resize_shape"],
        verbose=False,
    )
    task._load_targets(metadata["targets"])
    task.input_shape_ = tuple(metadata["input_shape"])
    task.input_dtype_ = metadata["input_dtype"]
    prep = metadata["preprocessing"]
    task._preprocessing = prep
    task.preprocessor_ = task._preprocessor(
        task.input_shape_, np.array(prep["mean"]), np.array(prep["variance"])
    )
    task._restore(metadata)
    return task


def _raw_dtype(x):
    """The dtype exported models take: the user's integer type, else float32."""
    dtype = np.asarray(x[:1]).dtype if not hasattr(x, "dtype") else x.dtype
    return str(dtype) if np.issubdtype(dtype, np.integer) else "float32"


def _is_dataset(x):
    return type(x).__module__.startswith("tensorflow") and hasattr(x, "as_numpy_iterator")


class _DirectoryLock:
    """An exclusive, non-blocking lock on a file beside the run directory."""

    def __init__(self, path):
        self.path = path

    def __enter__(self):
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        self._file = open(self.path, "a")
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.close()
            raise RuntimeError(
                f"Another process is fitting into {self.path[:-5]}; wait for it to finish, "
                "or use another directory or project_name."
            ) from None
        return self

    def __exit__(self, *exc):
        fcntl.flock(self._file, fcntl.LOCK_UN)
        self._file.close()
