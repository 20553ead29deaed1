"""`ImageClassifier` and `ImageRegressor`: what users call (the shared machinery is in
`estimator.py`)."""

from __future__ import annotations

import numpy as np

from kerasnas.errors import NotFittedError
from kerasnas.tasks import data as datalib
from kerasnas.tasks import feeds
from kerasnas.tasks.estimator import ImageTask, register
from kerasnas.tasks.inputs import LabelEncoder, check_targets
from kerasnas.tasks.run_dir import METADATA

__all__ = ["ImageClassifier", "ImageRegressor", "NotFittedError", "load", "METADATA"]


@register
class ImageClassifier(ImageTask):
    """Finds a CNN that classifies images, by network morphism search.

    Images: numpy arrays, a `tf.data.Dataset` or a folder with one subfolder
    per class. Labels may be ints, strings or one-hot rows (a folder's and a
    Dataset's `class_names` become string labels); `predict` answers in the
    same encoding. The search, its trials and the best weights live in
    `directory/project_name`; rerunning `fit` there resumes the search.
    Every argument is keyword-only, and `__init__` only stores it
    (scikit-learn's contract): `fit` checks them.

    Args:
        directory: the folder for runs. Defaults to None (a new temporary folder).
        project_name: the subfolder of `directory` for this search. Defaults to
            `"image_classifier"`.
        overwrite: start afresh instead of resuming the search in
            `directory/project_name`. Defaults to False.
        max_trials: the most architectures to train. Defaults to None (no limit
            but the time).
        objective: the metric to maximise, as Keras logs it. Defaults to None
            (`"val_accuracy"`).
        seed: the random seed (the validation split, initial weights, shuffling,
            proposals). Without a time limit the same seed on the same data gives
            the same architectures and, on a CPU, the same scores (measured
            identical to the last bit; TensorFlow promises float tolerance only, so
            other machines or versions may differ in the last digits). Under a time
            limit the machine's speed shapes the search too. See the time limit's
            page, "The same seed, the same search". Defaults to None.
        verbose: 0 silent; 1 a line per trial (best score so far, time left),
            plus Keras' progress bars when the output is a terminal or a
            notebook; 2 also a line per epoch, never a bar. True means 1.
            Defaults to 1.
        augment: train every trial and `final_fit` on randomly shifted and zoomed
            images. Defaults to False: a classifier's search still augments every
            trial when its budget holds fifty epochs of the first architecture
            (`searcher_args={"augment_epochs": None}` stops that), and otherwise
            its refinement and `final_fit` turn to augmented images once validation
            shows them overfitting (`searcher_args={"overfit_ratio": None}` stops
            that).
        resize_shape: `(height, width)` to resize images to. Defaults to None
            (numpy and Dataset images as they are; a folder's most common size).
        max_model_size: the most parameters an architecture may have. Defaults to
            None (no limit).
        distribution_strategy: a `tf.distribute.Strategy` each trial trains under.
            Defaults to None.
        searcher_args: keyword arguments for the search,
            `kerasnas.oracle.network_morphism.NetworkMorphismOracle` (see the
            `searcher_args` page of the manual). Defaults to None.
        ensemble_size: at most this many of the best distinct architectures are
            averaged, when that beats the best one on the validation data (the
            result is still one plain Keras model); 1 switches the ensemble off.
            Defaults to 3.
        path: AutoKeras 0.4's name for `directory`. Defaults to None.

    Attributes:
        model_: the chosen `keras.Model`, on preprocessed images (the ensemble's
            average when one was chosen; after `final_fit`, its longer-trained copy).
            `export_model()` gives it with the preprocessing, from raw images.
        best_trial_id_: the id of the best trial.
        ensemble_: the ids of the averaged trials, best first, or `[]`.
        trials_: `{trial_id: keras_tuner Trial}` of the search.
        tuner_: the `kerasnas.tuner.MorphismTuner` (None after `load`).
        input_shape_: the shape of one image given to `fit`.
        input_dtype_: the dtype of the images given to `fit`.
        directory_: the folder of runs (a temporary one when `directory` was None).
        final_test_score_: the score on `final_fit`'s `x_test`, or None.
        search_summary_: what the search added over its first architecture on
            validation (`first_score`, `best_score`, `gain`, `children`, with the
            trial ids), the chosen model's `params` and `cpu_seconds_per_image`;
            kept in `kerasnas.json`. None for a run of an older kerasnas.

    Example:
        ```python
        clf = kerasnas.ImageClassifier(directory="runs/mnist", seed=1)
        clf.fit(x_train, y_train, time_limit=600)
        accuracy = clf.evaluate(x_test, y_test)
        labels = clf.predict(x_test[:5])
        ```
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

    def predict_proba(self, x, batch_size=None):
        """Class probabilities for the images `x`.

        Args:
            x: images as for `fit` (numpy, a Dataset, whose labels are ignored,
                or a folder, with or without class subfolders).
            batch_size: images per batch. Defaults to None (256).

        Returns:
            A float array of shape (N, classes), its columns in the order of
            `classes_`, each row summing to 1.

        Raises:
            NotFittedError: if the classifier is not fitted yet.
            ValueError: if the images do not look like those `fit` saw (their
                shape or channels differ).
        """
        return self._outputs(x, batch_size)

    def predict(self, x, batch_size=None):
        """The most probable label of each image of `x`.

        Args:
            x: images as for `predict_proba`.
            batch_size: images per batch. Defaults to None (256).

        Returns:
            An array of N labels in the encoding given to `fit`: the labels
            themselves for ints and strings, a class index for one-hot rows, the
            class names for a folder or a Dataset with `class_names`.

        Raises:
            NotFittedError: if the classifier is not fitted yet.
            ValueError: if the images do not look like those `fit` saw.
        """
        probabilities = self.predict_proba(x, batch_size)
        return self.encoder_.decode(probabilities.argmax(axis=1))

    @property
    def classes_(self):
        """The labels `fit` learned, in the order of `predict_proba`'s columns.

        Raises:
            NotFittedError: if the classifier is not fitted yet.
        """
        self._check_fitted()
        return self.encoder_.classes_

    def evaluate(self, x, y=None, batch_size=None, return_dict=False, sample_weight=None):
        """Accuracy on `(x, y)`, or a Dataset or folder of labelled images.

        Args:
            x: images (numpy, a Dataset of (image, label) or a folder).
            y: labels (None for a Dataset or a folder). Defaults to None.
            batch_size: images per batch. Defaults to None (256).
            return_dict: return Keras' `{"loss": ..., "accuracy": ...}`
                (the loss: mean cross-entropy) instead of the accuracy alone.
                Defaults to False.
            sample_weight: a weight >= 0 per image of numpy `x`, as Keras'
                `evaluate` takes it: the loss is `sum(w * loss) / N` (Keras'
                reduction) and the accuracy `sum(w * correct) / sum(w)` (Keras'
                `weighted_metrics`, scikit-learn's `accuracy_score`). Defaults to
                None (every image weighs 1).

        Returns:
            The accuracy as a float (as AutoKeras 0.4's `evaluate`), or a dict.

        Raises:
            NotFittedError: if the classifier is not fitted yet.
            ValueError: if the images or labels do not match those `fit` saw (a
                label it never saw included), or for a `sample_weight` that is not
                one number >= 0 per image of numpy `x`, or sums to 0.
        """
        weights = evaluation_weights(x, sample_weight)
        probabilities, expected = self._labelled_outputs(x, y, batch_size)
        accuracy = weighted_mean(probabilities.argmax(axis=1) == expected, weights)
        if not return_dict:
            return accuracy
        picked = probabilities[np.arange(len(expected)), expected]
        loss = keras_loss(-np.log(np.clip(picked, 1e-7, 1.0)), weights)
        return {"loss": loss, "accuracy": accuracy}


@register
class ImageRegressor(ImageTask):
    """Finds a CNN that predicts numbers from images, by network morphism search.

    Images as for `ImageClassifier` (a folder's or a Dataset's labels are then
    the targets). Targets: floats of shape (N,) or (N, k). The search, its
    trials and the best weights live in `directory/project_name`; rerunning
    `fit` there resumes the search.

    Args:
        directory: the folder for runs. Defaults to None (a new temporary folder).
        project_name: the subfolder of `directory` for this search. Defaults to
            `"image_regressor"`.
        overwrite: start afresh instead of resuming the search in
            `directory/project_name`. Defaults to False.
        max_trials: the most architectures to train. Defaults to None (no limit
            but the time).
        objective: the metric to minimise, as Keras logs it. Defaults to None
            (`"val_loss"`).
        seed: the random seed (the validation split, initial weights, shuffling,
            proposals). Without a time limit the same seed on the same data gives
            the same architectures and, on a CPU, the same scores (measured
            identical to the last bit; TensorFlow promises float tolerance only, so
            other machines or versions may differ in the last digits). Under a time
            limit the machine's speed shapes the search too. See the time limit's
            page, "The same seed, the same search". Defaults to None.
        verbose: 0 silent; 1 a line per trial (best score so far, time left),
            plus Keras' progress bars when the output is a terminal or a
            notebook; 2 also a line per epoch, never a bar. True means 1.
            Defaults to 1.
        augment: train every trial and `final_fit` on randomly shifted and zoomed
            images. Defaults to False: a classifier's search still augments every
            trial when its budget holds fifty epochs of the first architecture
            (`searcher_args={"augment_epochs": None}` stops that), and otherwise
            its refinement and `final_fit` turn to augmented images once validation
            shows them overfitting (`searcher_args={"overfit_ratio": None}` stops
            that).
        resize_shape: `(height, width)` to resize images to. Defaults to None
            (numpy and Dataset images as they are; a folder's most common size).
        max_model_size: the most parameters an architecture may have. Defaults to
            None (no limit).
        distribution_strategy: a `tf.distribute.Strategy` each trial trains under.
            Defaults to None.
        searcher_args: keyword arguments for the search,
            `kerasnas.oracle.network_morphism.NetworkMorphismOracle` (see the
            `searcher_args` page of the manual). Defaults to None.
        ensemble_size: at most this many of the best distinct architectures are
            averaged, when that beats the best one on the validation data (the
            result is still one plain Keras model); 1 switches the ensemble off.
            Defaults to 3.
        path: AutoKeras 0.4's name for `directory`. Defaults to None.

    Attributes:
        model_: the chosen `keras.Model`, on preprocessed images (the ensemble's
            average when one was chosen; after `final_fit`, its longer-trained copy).
            `export_model()` gives it with the preprocessing, from raw images.
        best_trial_id_: the id of the best trial.
        ensemble_: the ids of the averaged trials, best first, or `[]`.
        trials_: `{trial_id: keras_tuner Trial}` of the search.
        tuner_: the `kerasnas.tuner.MorphismTuner` (None after `load`).
        input_shape_: the shape of one image given to `fit`.
        input_dtype_: the dtype of the images given to `fit`.
        directory_: the folder of runs (a temporary one when `directory` was None).
        final_test_score_: the score on `final_fit`'s `x_test`, or None.
        search_summary_: what the search added over its first architecture on
            validation (`first_score`, `best_score`, `gain`, `children`, with the
            trial ids), the chosen model's `params` and `cpu_seconds_per_image`;
            kept in `kerasnas.json`. None for a run of an older kerasnas.

    Example:
        ```python
        reg = kerasnas.ImageRegressor(directory="runs/brightness", seed=1)
        reg.fit(x_train, x_train.mean(axis=(1, 2)), time_limit=600)
        mse = reg.evaluate(x_test, x_test.mean(axis=(1, 2)))
        ```
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

    def predict(self, x, batch_size=None):
        """The predicted targets of the images `x`.

        Args:
            x: images as for `fit` (numpy, a Dataset, whose targets are ignored,
                or a folder).
            batch_size: images per batch. Defaults to None (256).

        Returns:
            A float array of shape (N,) for one target, else (N, k).

        Raises:
            NotFittedError: if the regressor is not fitted yet.
            ValueError: if the images do not look like those `fit` saw.
        """
        out = self._outputs(x, batch_size)
        return out[:, 0] if self.num_targets_ == 1 else out

    def evaluate(self, x, y=None, batch_size=None, return_dict=False, sample_weight=None):
        """The mean squared error (the loss) on `(x, y)`, or a Dataset or folder.

        Args:
            x: images (numpy, a Dataset of (image, target) or a folder).
            y: targets (None for a Dataset or a folder). Defaults to None.
            batch_size: images per batch. Defaults to None (256).
            return_dict: return Keras' `{"loss": mse, "mae": ...}` instead of the
                mean squared error alone. Defaults to False.
            sample_weight: a weight >= 0 per image of numpy `x`, as Keras'
                `evaluate` takes it: the loss is `sum(w * squared error) / N`
                (Keras' reduction, not divided by `sum(w)`) and the MAE
                `sum(w * absolute error) / sum(w)` (Keras' `weighted_metrics`).
                Defaults to None (every image weighs 1).

        Returns:
            The mean squared error as a float, or a dict.

        Raises:
            NotFittedError: if the regressor is not fitted yet.
            ValueError: if the images or targets do not match those `fit` saw, or
                for a `sample_weight` that is not one number >= 0 per image of
                numpy `x`, or sums to 0.
        """
        weights = evaluation_weights(x, sample_weight)
        outputs, y = self._labelled_outputs(x, y, batch_size)
        mse = keras_loss(np.mean((outputs - y) ** 2, axis=1), weights)
        if not return_dict:
            return mse
        return {"loss": mse, "mae": weighted_mean(np.mean(np.abs(outputs - y), axis=1), weights)}


def evaluation_weights(x, sample_weight):
    """`evaluate`'s `sample_weight` checked against the images `x`: (N,) float64, or None.

    Raises:
        ValueError: for weights with a Dataset or a folder, not one finite number >= 0
            per image, or summing to 0.
    """
    if sample_weight is None:
        return None
    if datalib.is_dataset(x) or datalib.is_folder(x):
        raise ValueError(
            "Expected `sample_weight` only with numpy images `x` (a Dataset's or a folder's "
            "order is not yours to align weights with); evaluate it without weights, or "
            "read its images into numpy arrays first."
        )
    weights = feeds.sample_weights(sample_weight, len(x)).astype("float64")
    if not weights.sum() > 0:
        raise ValueError(
            f"Expected `sample_weight` to have a positive sum; got {len(weights)} weights "
            "summing to 0. Give some image a weight above 0."
        )
    return weights


def weighted_mean(values, weights):
    """`sum(w * v) / sum(w)`, the mean of `values` without weights (Keras' weighted metrics)."""
    values = np.asarray(values, dtype="float64")
    return float(np.mean(values) if weights is None else np.sum(weights * values) / weights.sum())


def keras_loss(losses, weights):
    """`sum(w * loss) / N`, the mean without weights: Keras' "sum_over_batch_size" reduction
    over the whole set, which divides by the number of images, not by `sum(w)`."""
    losses = np.asarray(losses, dtype="float64")
    return float(np.mean(losses if weights is None else weights * losses))


def load(directory):
    """Reopens a finished search, a classifier's or a regressor's; writes nothing.

    The run is opened where it is found: a renamed or copied run folder loads as
    well. The estimator it returns predicts, exports and resumes (`fit` on it
    goes on with the same search).

    Args:
        directory: the folder given to `fit` (holding one search), or the
            search's own folder `directory/project_name`.

    Returns:
        A fitted `ImageClassifier` or `ImageRegressor`, as the search was.

    Raises:
        FileNotFoundError: if no finished search is there.
        ValueError: if a file of the search is damaged (the message names it).

    Example:
        ```python
        clf = kerasnas.load("runs/mnist")
        labels = clf.predict(x_test[:5])
        ```
    """
    return ImageTask.load(directory)
