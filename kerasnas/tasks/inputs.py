"""Checks users' images and labels before any training, and encodes labels (numpy only)."""

from __future__ import annotations

import numpy as np

MIN_SIDE = 8  # smallest image side the initial architectures are made for


def check_images(x, name="x", resize_shape=None):
    """Returns `x` as an (N, H, W, C) array, or raises a `ValueError` that says what is wrong.

    Args:
        x: images, (N, H, W) or (N, H, W, C), integers or floats.
        name: the argument's name, for messages. Defaults to `"x"`.
        resize_shape: `(height, width)` the images will be resized to, which
            lifts the minimum size. Defaults to None.
    """
    x = np.asarray(x)
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise ValueError(f"Expected `{name}` to hold numbers; got dtype {x.dtype}.")
    if x.ndim not in (3, 4):
        raise ValueError(
            f"Expected `{name}` to have 3 or 4 dimensions (N, H, W[, C]); got shape {x.shape}."
        )
    if len(x) == 0:
        raise ValueError(f"Expected `{name}` to hold at least one image; got shape {x.shape}.")
    if x.ndim == 3:
        x = x[..., None]
    if x.shape[-1] > 4:
        raise ValueError(
            f"Expected `{name}` to have at most 4 channels (grayscale, RGB or RGBA) in its last "
            f"dimension; got shape {x.shape}. For channels-first images (N, C, H, W), pass "
            f"np.moveaxis({name}, 1, -1)."
        )
    if resize_shape is None and min(x.shape[1:3]) < MIN_SIDE:
        raise ValueError(
            f"Expected images of at least {MIN_SIDE}x{MIN_SIDE} pixels in `{name}`; got "
            f"{x.shape[1]}x{x.shape[2]}. Pass e.g. resize_shape=({MIN_SIDE}, {MIN_SIDE}) to "
            "resize them."
        )
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        raise ValueError(
            f"`{name}` contains {int((~np.isfinite(x)).sum())} NaN or infinite values; "
            "remove or replace them before fitting."
        )
    return x


def check_lengths(x, y, x_name="x", y_name="y"):
    if len(x) != len(y):
        raise ValueError(
            f"Expected `{x_name}` and `{y_name}` to have the same length; got "
            f"{len(x)} images and {len(y)} labels."
        )


class LabelEncoder:
    """Maps the user's labels (ints, strings or one-hot rows) to class indices and back.

    Example:

    >>> encoder = LabelEncoder.fit(["cat", "dog", "cat"])
    >>> encoder.encode(["dog"]), encoder.decode([0])
    (array([1]), array(['cat'], dtype='<U3'))
    """

    def __init__(self, classes, one_hot=False):
        self.classes_ = np.asarray(classes)
        self.one_hot = bool(one_hot)

    @classmethod
    def fit(cls, y, name="y"):
        """Learns the classes of `y`.

        Raises:
            ValueError: for NaN labels, a single class, or one-hot rows that
                are not one-hot.
        """
        y = np.asarray(y)
        one_hot = y.ndim == 2 and y.shape[1] > 1
        if one_hot:
            classes = np.arange(y.shape[1])
        else:
            labels = _flat_labels(y, name)
            classes = np.unique(labels)
        encoder = cls(classes, one_hot)
        indices = encoder.encode(y, name)
        if len(np.unique(indices)) < 2:
            raise ValueError(
                f"Expected at least 2 classes in `{name}`; got only {encoder.decode(indices[:1])}. "
                "A classifier needs examples of several classes."
            )
        return encoder

    def encode(self, y, name="y"):
        """Class indices (N,) of labels `y`."""
        y = np.asarray(y)
        if self.one_hot:
            if y.ndim != 2 or y.shape[1] != len(self.classes_):
                raise ValueError(
                    f"Expected one-hot `{name}` of shape (N, {len(self.classes_)}); got {y.shape}."
                )
            if not np.isfinite(y).all():
                raise ValueError(f"`{name}` contains NaN or infinite values.")
            if not np.allclose(y.sum(axis=1), 1) or not np.isin(y, (0, 1)).all():
                raise ValueError(f"Expected each row of one-hot `{name}` to hold a single 1.")
            return y.argmax(axis=1)
        labels = _flat_labels(y, name)
        positions = np.searchsorted(self.classes_, labels)
        positions = np.clip(positions, 0, len(self.classes_) - 1)
        unknown = self.classes_[positions] != labels
        if unknown.any():
            unseen = sorted(set(labels[unknown].tolist()))[:5]
            raise ValueError(
                f"`{name}` holds labels not seen in fit: {unseen}. "
                f"Known classes: {self.classes_.tolist()}."
            )
        return positions

    def decode(self, indices):
        """The user's labels for class indices."""
        return self.classes_[np.asarray(indices, dtype=int)]

    def get_config(self):
        return {"classes": self.classes_.tolist(), "one_hot": self.one_hot}

    @classmethod
    def from_config(cls, config):
        return cls(config["classes"], config["one_hot"])


def _flat_labels(y, name):
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(
            f"Expected `{name}` to be labels of shape (N,) or one-hot rows (N, classes); "
            f"got shape {y.shape}."
        )
    if np.issubdtype(y.dtype, np.floating):
        if not np.isfinite(y).all():
            raise ValueError(f"`{name}` contains NaN or infinite values.")
        if np.array_equal(y, np.round(y)):
            y = y.astype(int)
    return y


def check_targets(y, name="y"):
    """Regression targets as a float32 array (N, k), or a `ValueError`."""
    y = np.asarray(y)
    if not np.issubdtype(y.dtype, np.number):
        raise ValueError(f"Expected numeric regression targets in `{name}`; got dtype {y.dtype}.")
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2:
        raise ValueError(f"Expected `{name}` of shape (N,) or (N, targets); got {y.shape}.")
    if not np.isfinite(y).all():
        raise ValueError(f"`{name}` contains NaN or infinite values.")
    return y.astype("float32")
