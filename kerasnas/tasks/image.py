"""`ImageClassifier` and `ImageRegressor`: what users call (the shared machinery is in
`estimator.py`)."""

from __future__ import annotations

import numpy as np

from kerasnas.errors import NotFittedError
from kerasnas.tasks.estimator import ImageTask, register
from kerasnas.tasks.inputs import LabelEncoder, check_targets
from kerasnas.tasks.run_dir import METADATA

__all__ = ["ImageClassifier", "ImageRegressor", "NotFittedError", "load", "METADATA"]

_ARGS = """
    Args:
        directory: folder for runs. Defaults to None (a new temporary folder).
        project_name: subfolder of this search. Defaults to `"{project}"`.
        overwrite: start afresh instead of resuming. Defaults to False.
        max_trials: most architectures to train. Defaults to None (no limit).
        objective: the metric to {sense}. Defaults to `"{objective}"`.
        seed: random seed. Defaults to None.
        verbose: 0 silent; 1 a line per trial (best score so far, time left),
            plus Keras' progress bars when the output is a terminal or a
            notebook; 2 also a line per epoch, never a bar. True means 1.
            Defaults to 1.
        augment: random shifts and zooms in every trial's training and in
            `final_fit`. Defaults to False (a classifier's search still trains
            every trial on them when its budget holds eight epochs of the first
            architecture, `searcher_args={{"augment_epochs": None}}` stops
            that; otherwise its refinement and `final_fit` turn to them once
            validation shows them overfitting, `{{"overfit_ratio": None}}`).
        resize_shape: `(height, width)` to resize images to. Defaults to None
            (numpy and Dataset images as they are; a folder's most common size).
        max_model_size: most parameters an architecture may have. Defaults to None.
        distribution_strategy: a `tf.distribute.Strategy` for each trial. Defaults to None.
        searcher_args: keyword arguments for `NetworkMorphismOracle`. Defaults to None.
        ensemble_size: at most this many of the best distinct architectures
            averaged when that beats the best one on the validation data (the
            result is still one plain Keras model); 1 switches the ensemble
            off. Defaults to 3.
        path: AutoKeras 0.4's name for `directory`. Defaults to None.
"""


@register
class ImageClassifier(ImageTask):
    __doc__ = (
        """Finds a CNN that classifies images, by network morphism search.

    Images: numpy arrays, a `tf.data.Dataset` or a folder with one subfolder
    per class. Labels may be ints, strings or one-hot rows (a folder's and a
    Dataset's `class_names` become string labels); `predict` answers in the
    same encoding. The search, its trials and the best weights live in
    `directory/project_name`; rerunning `fit` there resumes the search.
"""
        + _ARGS.format(project="image_classifier", sense="maximise", objective="val_accuracy")
        + """
    Example:

    >>> clf = kerasnas.ImageClassifier(directory="runs/mnist", seed=1)
    >>> clf.fit(x_train, y_train, time_limit=600)
    >>> clf.evaluate(x_test, y_test)
    """
    )

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
        """Class probabilities, shape (N, classes), columns in the order of `classes_`.

        Args:
            x: images as for `fit` (numpy, a Dataset, whose labels are ignored,
                or a folder, with or without class subfolders).
            batch_size: images per batch. Defaults to None (256).
        """
        return self._outputs(x, batch_size)

    def predict(self, x, batch_size=None):
        """Labels of `x`, in the encoding given to `fit` (one-hot in, class index out;
        a folder's or a Dataset's class names)."""
        probabilities = self.predict_proba(x, batch_size)
        return self.encoder_.decode(probabilities.argmax(axis=1))

    @property
    def classes_(self):
        self._check_fitted()
        return self.encoder_.classes_

    def evaluate(self, x, y=None, batch_size=None, return_dict=False):
        """Accuracy on `(x, y)`, or a Dataset or folder of labelled images.

        Args:
            x: images (numpy, a Dataset of (image, label) or a folder).
            y: labels (None for a Dataset or a folder).
            batch_size: images per batch. Defaults to None (256).
            return_dict: return Keras' `{"loss": ..., "accuracy": ...}`
                (the loss: mean cross-entropy) instead of the accuracy alone.
                Defaults to False.

        Returns:
            The accuracy as a float (as AutoKeras 0.4's `evaluate`), or a dict.
        """
        probabilities, expected = self._labelled_outputs(x, y, batch_size)
        accuracy = float(np.mean(probabilities.argmax(axis=1) == expected))
        if not return_dict:
            return accuracy
        picked = probabilities[np.arange(len(expected)), expected]
        loss = float(np.mean(-np.log(np.clip(picked, 1e-7, 1.0))))
        return {"loss": loss, "accuracy": accuracy}


@register
class ImageRegressor(ImageTask):
    __doc__ = """Finds a CNN that predicts numbers from images, by network morphism search.

    Images as for `ImageClassifier` (a folder's or a Dataset's labels are then
    the targets). Targets: floats of shape (N,) or (N, k).
""" + _ARGS.format(project="image_regressor", sense="minimise", objective="val_loss")

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
        """Predicted targets, shape (N,) for one target, else (N, k)."""
        out = self._outputs(x, batch_size)
        return out[:, 0] if self.num_targets_ == 1 else out

    def evaluate(self, x, y=None, batch_size=None, return_dict=False):
        """Mean squared error (the loss) on `(x, y)`; with `return_dict`, Keras'
        `{"loss": mse, "mae": ...}`."""
        outputs, y = self._labelled_outputs(x, y, batch_size)
        mse = float(np.mean((outputs - y) ** 2))
        if not return_dict:
            return mse
        return {"loss": mse, "mae": float(np.mean(np.abs(outputs - y)))}


def load(directory):
    """Reopens a finished search (a classifier or a regressor); see `ImageTask.load`."""
    return ImageTask.load(directory)
