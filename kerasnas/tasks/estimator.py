"""The estimator behind `ImageClassifier` and `ImageRegressor`: arguments, fit, predict.

It keeps scikit-learn's contract: `__init__` only stores its (keyword-only)
arguments, `get_params`/`set_params` read and change them, `fit` checks them
and returns `self`, and what `fit` learns lives in attributes ending in `_`.
The estimator owns the `fit` transaction (all checked and the run directory
locked before anything changes; a failure restores the estimator) and inference;
each other job has its module: reading and checking the user's data `reading.py`,
each kind of input `data.py`, what Keras trains on `feeds.py`, the search (oracle
and tuner) `search.py`, averaging the best architectures after it `ensemble.py`,
longer training `final_fit.py`, saving and loading the estimator `persistence.py`,
the run directory's files and lock `run_dir.py`, and models for users `export.py`.
Its step of "data to Keras": none of its own; it calls them in order.
"""

from __future__ import annotations

import errno
import inspect
import os
import tempfile
import time

import numpy as np

from kerasnas import files, trials
from kerasnas.arguments import check_int
from kerasnas.errors import NotFittedError
from kerasnas.oracle import schedule
from kerasnas.output import check_verbose, quiet_retracing
from kerasnas.tasks import data as datalib
from kerasnas.tasks import ensemble, export, feeds, persistence, reading, run_dir, search
from kerasnas.tasks import final_fit as final_fitting
from kerasnas.tasks.inputs import check_resize_shape, check_time_limit, check_validation_split
from kerasnas.tasks.run_dir import DirectoryLock


class ImageTask:
    """What `ImageClassifier` and `ImageRegressor` share: a scikit-learn estimator that
    searches a CNN for images by network morphism (see their docstrings for the arguments).

    A subclass names its `task` (`"classification"` or `"regression"`), its
    `default_objective` and `default_project_name`, and supplies the label hooks
    (`_learn_targets`, `_encode`, `_targets_config`, `_load_targets`,
    `_num_outputs`) and the Keras `_loss` and `_metrics`; it adds `predict` and
    `evaluate` on top of `_outputs` and `_labelled_outputs`.

    Attributes set by `fit` (or `load`):
        model_: the chosen `keras.Model`, on preprocessed images (the ensemble's
            average when one was chosen; after `final_fit`, its longer-trained copy).
        best_trial_id_: the id of the best trial.
        ensemble_: the ids of the averaged trials, best first, or `[]`.
        final_weights_: the name of `final_fit`'s weights file in the run, or None.
        trials_: `{trial_id: keras_tuner Trial}` of the search.
        tuner_: the `MorphismTuner` (None after `load`).
        input_shape_, input_dtype_, input_range_: the images `fit` saw.
        preprocessor_: the `keras.Model` from raw images to the searched models' input.
        directory_: the folder of runs (a temporary one when `directory` was None).
        search_started_: True once this estimator has a search in its run
            directory: a later `fit` resumes it, whatever `overwrite` says.

    Example:
        ```python
        clf = kerasnas.ImageClassifier(directory="runs/digits", seed=1)
        accuracy = clf.fit(x_train, y_train, time_limit=60).evaluate(x_test, y_test)
        ```
    """

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
        """The constructor's arguments, as a dict (scikit-learn's contract).

        Args:
            deep: accepted for scikit-learn; the arguments hold no estimators.
                Defaults to True.

        Returns:
            `{name: value}` of every constructor argument.
        """
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params):
        """Changes constructor arguments (scikit-learn's contract).

        Args:
            **params: new values, by argument name, e.g. `seed=2`.

        Returns:
            self.

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
        """The metric the search optimises: `objective`, or the task's default."""
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
        it was (but for Ctrl-C after a trial completed, which leaves the best
        model so far ready).

        Args:
            x: images: numpy (N, H, W) or (N, H, W, C), uint8 or float; a
                `tf.data.Dataset` of (image, label), batched or not; or a
                folder with one subfolder of images per class (see
                `kerasnas.tasks.data` for the size and colour policy). With
                a Dataset or a folder, leave `y` None.
            y: labels or targets (see the class docstring); None for a
                Dataset or a folder. Defaults to None.
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
            KeyboardInterrupt: on Ctrl-C. Once a trial has completed, the best
                model so far is made ready first, as a finished search would leave
                it (`predict` works, the run folder names it), and `fit` on the same
                directory resumes the search; before that, the estimator stays as it
                was.
        """
        start = time.time()
        time_limit = (
            schedule.DEFAULT_TIME_LIMIT if time_limit is None else check_time_limit(time_limit)
        )
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
        targets, training, validation = reading.fit_data(
            self, x, y, validation_split, validation_data, class_weight, sample_weight
        )
        train = training[0]
        directory = root if root is not None else tempfile.mkdtemp(prefix="kerasnas_")
        project_dir = os.path.join(str(directory), self.project_name or self.default_project_name)
        overwrite = bool(self.overwrite) and not getattr(self, "search_started_", False)
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
                self.input_dtype_ = reading.raw_dtype(train.dtype)
                with quiet_retracing():  # every trial and ensemble member traces anew
                    return search.run(self, start, time_limit, overwrite, verbose, training,
                                      validation, epochs, batch_size, callbacks)  # fmt: skip
        except search.SearchInterrupted:
            raise  # the best model so far is ready: the estimator keeps it
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

    # ------------------------------------------------------------------ after fit

    def _check_fitted(self):
        if getattr(self, "model_", None) is None:
            raise NotFittedError(
                f"This {type(self).__name__} is not fitted yet. Call `fit` first, or "
                "`kerasnas.load(directory)` for a finished search."
            )

    def _best_trial_augmented(self):
        """Whether the best trial trained on augmented images from its start (the search's
        choice, see `augment_epochs`)."""
        trial = (getattr(self, "trials_", None) or {}).get(self.best_trial_id_)
        plan = trials.plan_of(trial) if trial is not None else None
        return bool(plan is not None and plan.augment)

    def _fresh_model(self):
        """The chosen model's architecture (the ensemble's, if any) with fresh weights."""
        ids = getattr(self, "ensemble_", None) or [self.best_trial_id_]
        models = [trials.graph_of(self.trials_[i]).to_keras(name=f"trial_{i}") for i in ids]
        return models[0] if len(models) == 1 else ensemble.average(models)

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
        validation_data=None,
    ):
        """Trains the best architecture longer, on the training data.

        Epochs and weights are chosen on validation images held out of `x_train`
        (10%, as `fit` does) or on `validation_data`, never on `x_test`: the test
        images only report, after training, so the score they give is honest.

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
            x_test: test images, scored once training has finished (the score
                is `final_test_score_`, and said when `verbose`); they choose
                nothing. Defaults to None.
            y_test: their labels. Defaults to None.
            retrain: start from fresh weights instead of the search's. Defaults to False.
            time_limit: seconds this call may take. Defaults to None (no limit).
            epochs: most epochs. Defaults to None (100 under a time limit, else 20).
            batch_size: batch size. Defaults to 128.
            class_weight: as for `fit`. Defaults to None.
            validation_data: `(x_val, y_val)` that early stopping watches, instead
                of images held out of `x_train` (needed for a streamed Dataset).
                Defaults to None.

        Returns:
            self.

        Raises:
            ValueError: for bad input (`x_test` too), before any training.
        """
        with quiet_retracing():  # a new model's training step is traced: expected
            return final_fitting.run(self, x_train, y_train, x_test, y_test, retrain,
                                     time_limit, epochs, batch_size, class_weight,
                                     validation_data)  # fmt: skip

    # ------------------------------------------------------------------ inference

    def _outputs(self, x, batch_size=None, name="x"):
        """The model's outputs for the images `x` (numpy, a Dataset or a folder)."""
        self._check_fitted()
        batch_size = check_int("batch_size", batch_size, minimum=1, allow_none=True) or 256
        data = reading.read_like_fit(self, x, None, name, labelled=False)
        if data.streamed:
            dataset = feeds.stream(
                data.make_stream, self.preprocessor_, None, batch_size, labelled=False
            )
            with datalib.naming_undecodable(data, name):
                return np.concatenate(
                    [np.asarray(self.model_(images, training=False)) for images in dataset]
                )
        prepared = feeds.prepare(self.preprocessor_, data.images, batch_size=max(batch_size, 256))
        return feeds.predict(self.model_, prepared, batch_size)

    def _labelled_outputs(self, x, y, batch_size):
        """`(outputs, encoded labels)` for evaluation, in one pass over the images."""
        self._check_fitted()
        batch_size = check_int("batch_size", batch_size, minimum=1, allow_none=True) or 256
        data = reading.read_like_fit(self, x, y, "x", labelled=True)
        if not data.streamed:
            encoded = self._encode(data.labels, "y")
            prepared = feeds.prepare(self.preprocessor_, data.images)
            return feeds.predict(self.model_, prepared, batch_size), encoded
        encode = feeds.label_encoder_fn(self._targets_config(), self.task)
        dataset = feeds.stream(data.make_stream, self.preprocessor_, encode, batch_size)
        outputs, labels = [], []
        with datalib.naming_undecodable(data, "x"):
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

        Returns:
            An uncompiled `keras.Model`.

        Raises:
            NotFittedError: if the estimator is not fitted yet.
            ValueError: if `trial_id` is not a trial of the search.
        """
        self._check_fitted()
        model = self.model_ if trial_id is None else self._trial_model(trial_id)
        return export.with_preprocessing(self, model)

    def get_best_models(self, num_models=1):
        """The `num_models` best trials' models, best first, preprocessing included.

        Unlike `tuner_.get_best_models()`, whose models take preprocessed
        images, these take raw images as given to `fit`.

        Args:
            num_models: how many models. Defaults to 1.

        Returns:
            A list of at most `num_models` `keras.Model`s (as `export_model`
            gives them), best first.

        Raises:
            NotFittedError: if the estimator is not fitted yet.
        """
        self._check_fitted()
        num_models = check_int("num_models", num_models, minimum=1)
        direction = run_dir.objective_direction(self.objective_name)
        ranked = [t for t in trials.ranked(self.trials_.values(), direction) if t.score is not None]
        return [self.export_model(t.trial_id) for t in ranked[:num_models]]

    def _trial_model(self, trial_id):
        trial = self.trials_.get(str(trial_id))
        if trial is None or not trials.has_architecture(trial):
            raise ValueError(
                f"Expected `trial_id` to be one of the search's trials {sorted(self.trials_)}. "
                f"Received: trial_id={trial_id!r}"
            )
        return trials.load_trial_model(self.project_dir, trial)

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

        Raises:
            NotFittedError: if the estimator is not fitted yet.
        """
        self._check_fitted()
        return export.saved_model(self, path)

    @property
    def history(self):
        """The search, one row per trial, as a pandas DataFrame.

        Its columns: `trial_id`, `parent_trial_id`, `morphisms` (the operations
        from the parent), `refine` (the trial trains its parent on), `architecture`
        (a one-line summary), `params`, `flops`, `epochs`, `train_seconds`,
        `augmented_after` (the epochs trained before augmentation began, empty if
        it never did), the objective (e.g. `val_accuracy`), `status` and `reason`
        (why the search tried it, one sentence; empty in a run of an older kerasnas).

        Raises:
            NotFittedError: if the estimator is not fitted yet.
        """
        self._check_fitted()
        return export.history_frame(self.trials_, self.objective_name)

    # ------------------------------------------------------------------ persistence

    def _save_metadata(self):
        persistence.save(self)

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
        return persistence.load(cls, directory, _TASKS)


_TASKS = {}


def register(cls):
    """Makes `load` know a task class (by its `task`)."""
    _TASKS[cls.task] = cls
    return cls
