"""Checks users' images and labels before any training, and encodes labels (numpy only)."""

from __future__ import annotations

import json
import math
import numbers

import numpy as np

MIN_SIDE = 8  # smallest image side the initial architectures are made for
MAX_PIXEL = 1e12  # larger pixel values overflow float32 statistics (variance) in training


def check_time_limit(time_limit, name="time_limit"):
    """`time_limit` as float seconds, or a `ValueError` naming `name`."""
    ok = isinstance(time_limit, numbers.Real) and not isinstance(time_limit, (bool, np.bool_))
    if not ok or not math.isfinite(float(time_limit)) or not float(time_limit) > 0:
        raise ValueError(
            f"Expected `{name}` to be a positive number of seconds (e.g. 600), or None; "
            f"got {name}={time_limit!r}."
        )
    return float(time_limit)


def check_resize_shape(resize_shape):
    """`resize_shape` as a tuple of 2 positive ints, or None, or a `ValueError`."""
    if resize_shape is None:
        return None
    ok = isinstance(resize_shape, (tuple, list, np.ndarray)) and len(resize_shape) == 2
    ok = ok and all(
        isinstance(d, numbers.Integral) and not isinstance(d, (bool, np.bool_)) and d > 0
        for d in resize_shape
    )
    if not ok:
        raise ValueError(
            "Expected `resize_shape` to be (height, width), two positive integers such as "
            f"(32, 32), or None; got resize_shape={resize_shape!r}."
        )
    return tuple(int(d) for d in resize_shape)


def check_validation_split(validation_split):
    ok = isinstance(validation_split, numbers.Real) and not isinstance(validation_split, bool)
    if not ok or not 0 < float(validation_split) < 1:
        raise ValueError(
            "Expected 0 < validation_split < 1 (e.g. 0.1), or `validation_data`; got "
            f"validation_split={validation_split!r}."
        )
    return float(validation_split)


def _array(value, name, what):
    """`np.asarray(value)`, with a ragged (inhomogeneous) list named as such."""
    try:
        return np.asarray(value)
    except ValueError as e:
        raise ValueError(
            f"Expected `{name}` to be {what} of one shape; got a ragged list that numpy cannot "
            f"stack ({str(e).splitlines()[0]}). Make every element the same shape first."
        ) from None


def check_images(x, name="x", resize_shape=None):
    """Returns `x` as an (N, H, W, C) array, or raises a `ValueError` that says what is wrong.

    Args:
        x: images, (N, H, W) or (N, H, W, C), integers or floats.
        name: the argument's name, for messages. Defaults to `"x"`.
        resize_shape: `(height, width)` the images will be resized to, which
            lifts the minimum size. Defaults to None.
    """
    if x is None:
        raise ValueError(f"Expected images in `{name}`; got None.")
    x = _array(x, name, "images")
    if x.dtype.kind not in "biuf":
        if x.dtype.kind == "c":
            raise ValueError(
                f"Expected `{name}` to hold real numbers; got complex numbers ({x.dtype}). "
                f"Convert them first, e.g. np.abs({name}) or {name}.real."
            )
        raise ValueError(f"Expected `{name}` to hold real numbers; got dtype {x.dtype}.")
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
    if np.issubdtype(x.dtype, np.floating):
        if not np.isfinite(x).all():
            raise ValueError(
                f"`{name}` contains {int((~np.isfinite(x)).sum())} NaN or infinite values; "
                "remove or replace them before fitting."
            )
        largest = float(np.abs(x).max())
        if largest > MAX_PIXEL:
            raise ValueError(
                f"Expected pixel values within +-{MAX_PIXEL:.0e} in `{name}`; got values as large "
                f"as {largest:.3g}, which overflow training. Rescale the images first, e.g. "
                f"{name} / np.abs({name}).max()."
            )
    return x


def check_lengths(x, y, x_name="x", y_name="y"):
    if y is None:
        raise ValueError(f"Expected labels `{y_name}` for the images in `{x_name}`; got None.")
    if np.ndim(x) == 0 or not hasattr(y, "__len__"):
        raise ValueError(
            f"Expected `{y_name}` to be a sequence of labels, one per image; "
            f"got {type(y).__name__}."
        )
    if len(x) != len(y):
        raise ValueError(
            f"Expected `{x_name}` and `{y_name}` to have the same length; got "
            f"{len(x)} images and {len(y)} labels."
        )


class LabelEncoder:
    """Maps the user's labels (ints, strings or one-hot rows) to class indices and back.

    Example:
        ```pycon
        >>> encoder = LabelEncoder.fit(["cat", "dog", "cat"])
        >>> encoder.encode(["dog"]), encoder.decode([0])
        (array([1]), array(['cat'], dtype='<U3'))
        ```
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
        y = label_array(y, name)
        one_hot = y.ndim == 2 and y.shape[1] > 1
        if one_hot:
            classes = np.arange(y.shape[1])
        else:
            labels = _flat_labels(y, name, fitting=True)
            classes = np.unique(labels)
        encoder = cls(classes, one_hot)
        encoder._check_round_trip(name)
        indices = encoder.encode(y, name)
        if len(np.unique(indices)) < 2:
            raise ValueError(
                f"Expected at least 2 classes in `{name}`; got only {encoder.decode(indices[:1])}. "
                "A classifier needs examples of several classes."
            )
        return encoder

    def encode(self, y, name="y"):
        """Class indices (N,) of labels `y`."""
        y = label_array(y, name)
        if self.one_hot:
            if y.dtype.kind not in "biuf":
                raise ValueError(
                    f"Expected one-hot `{name}` of numbers (N, {len(self.classes_)}); got "
                    f"dtype {y.dtype}."
                )
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
        if (labels.dtype.kind in "US") != (self.classes_.dtype.kind in "US"):
            raise ValueError(
                f"`{name}` holds {'strings' if labels.dtype.kind in 'US' else 'numbers'}, but "
                f"the classes seen in fit are {self.classes_.tolist()[:5]}; use the same kind of "
                "labels as in fit."
            )
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
        return {
            "classes": self.classes_.tolist(),
            "one_hot": self.one_hot,
            "dtype": self.classes_.dtype.str if self.classes_.dtype.kind != "U" else "str",
        }

    @classmethod
    def from_config(cls, config):
        dtype = config.get("dtype")
        classes = np.asarray(config["classes"], dtype=None if dtype in (None, "str") else dtype)
        return cls(classes, config["one_hot"])

    def _check_round_trip(self, name):
        """Raises a ValueError unless the classes survive `kerasnas.json` unchanged."""
        try:
            again = LabelEncoder.from_config(json.loads(json.dumps(self.get_config())))
            same = again.classes_.dtype == self.classes_.dtype and np.array_equal(
                again.classes_, self.classes_
            )
        except (TypeError, ValueError, OverflowError):
            same = False
        if not same:
            raise ValueError(
                f"The labels in `{name}` (dtype {self.classes_.dtype}) cannot be saved with the "
                "search and read back unchanged; pass them as ints or strings."
            )


_LABEL_KINDS = {"b": "bool", "i": "int", "u": "int", "f": "float", "U": "str"}


def _kind_of(value):
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, numbers.Integral):
        return "int"
    if isinstance(value, numbers.Real):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, (bytes, np.bytes_)):
        return "bytes"
    return type(value).__name__


def _decode(value, name):
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(
            f"`{name}` holds bytes labels that are not UTF-8 text (e.g. {value!r}); decode them "
            "to strings, or pass ints."
        ) from None


def label_array(y, name="y"):
    """Labels `y` as a numpy array of bools, ints, floats or str, or a `ValueError`.

    Bytes are decoded as UTF-8. Python lists are checked element by element:
    None, a mix of strings and numbers, strings with NUL characters and
    labels of other types (dates, objects) are refused, naming `name`.
    """
    if y is None:
        raise ValueError(f"Expected labels `{name}`; got None.")
    if not isinstance(y, np.ndarray) or y.dtype == object:
        try:
            items = np.asarray(y, dtype=object)
        except ValueError as e:
            raise ValueError(
                f"Expected `{name}` to be labels of one shape; got a ragged list "
                f"({str(e).splitlines()[0]})."
            ) from None
        if items.ndim == 0:
            raise ValueError(
                f"Expected `{name}` to be a sequence of labels, one per image; got {y!r:.80}."
            )
        flat = items.ravel()
        kinds = {}
        for position, value in enumerate(flat):
            if value is None:
                raise ValueError(
                    f"`{name}` holds None at position {position}; every image needs a label. "
                    "Drop the unlabelled images first."
                )
            kinds.setdefault(_kind_of(value), value)
        if "bytes" in kinds:
            flat = np.array(
                [_decode(v, name) if _kind_of(v) == "bytes" else v for v in flat], dtype=object
            )
            kinds["str"] = kinds.pop("bytes")
        unknown = set(kinds) - {"bool", "int", "float", "str"}
        if unknown & {"list", "tuple", "ndarray"}:
            raise ValueError(
                f"Expected `{name}` to be labels of one shape; got a ragged list (rows of "
                "different lengths). One-hot rows must all have one entry per class."
            )
        if unknown:
            kind = sorted(unknown)[0]
            raise ValueError(
                f"`{name}` holds labels of type {kind} (e.g. {kinds[kind]!r:.60}); pass ints or "
                "strings."
            )
        if "str" in kinds and len(kinds) > 1:
            number = next(v for k, v in kinds.items() if k != "str")
            raise ValueError(
                f"`{name}` mixes strings and numbers (e.g. {kinds['str']!r} and {number!r}); "
                f"use one kind for every label, e.g. [str(label) for label in {name}]."
            )
        if "str" in kinds:
            if any("\x00" in v for v in flat):
                raise ValueError(
                    f"`{name}` holds labels with NUL characters ('\\x00'), which numpy drops at "
                    "the end of strings (so 'a\\x00' and 'a' would merge); remove them."
                )
            y = np.array(flat.tolist(), dtype=str).reshape(items.shape)
        else:
            y = np.array(flat.tolist()).reshape(items.shape)
    if y.dtype.kind == "S":
        y = np.array([_decode(bytes(v), name) for v in y.ravel()], dtype=str).reshape(y.shape)
    if y.dtype.kind not in _LABEL_KINDS:
        raise ValueError(
            f"Expected `{name}` to hold ints or strings (or one-hot rows); got dtype {y.dtype}. "
            f"Convert them, e.g. {name}.astype(str)."
        )
    return y


def _flat_labels(y, name, fitting=False):
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
        elif fitting:
            fractional = y[y != np.round(y)]
            raise ValueError(
                f"Expected class labels in `{name}`; got floats such as {fractional[0]!r} that "
                f"would make a {len(np.unique(y))}-class problem. For continuous targets use "
                f"ImageRegressor; if these are class ids, pass {name}.astype(int) or strings."
            )
    return y


def check_targets(y, name="y"):
    """Regression targets as a float32 array (N, k), or a `ValueError`."""
    if y is None:
        raise ValueError(f"Expected regression targets `{name}`; got None.")
    y = _array(y, name, "targets")
    if y.dtype.kind not in "biuf":
        raise ValueError(
            f"Expected real numeric regression targets in `{name}`; got dtype {y.dtype}."
        )
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2:
        raise ValueError(f"Expected `{name}` of shape (N,) or (N, targets); got {y.shape}.")
    if not np.isfinite(y).all():
        raise ValueError(f"`{name}` contains NaN or infinite values.")
    if not np.isfinite(y.astype("float32")).all():
        raise ValueError(
            f"`{name}` holds values beyond float32's range (up to {float(np.abs(y).max()):.3g}); "
            "rescale them first."
        )
    return y.astype("float32")
