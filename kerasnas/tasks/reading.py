"""From what the user passes to `fit`, `final_fit`, `predict` or `evaluate` to checked
`ImageData` with encoded labels, before anything changes or trains.

Its step of "data to Keras": the first, deciding what the user's arguments are (numpy,
a Dataset or a folder, with or without labels) and refusing bad ones with a clear
`ValueError`; `data.py` reads each kind, `inputs.py` checks arrays and labels, and
`feeds.py` turns the result into what Keras trains on. The validation split is made here.
"""

from __future__ import annotations

import warnings

import numpy as np

from kerasnas.output import user_stacklevel
from kerasnas.tasks import data as datalib
from kerasnas.tasks import feeds
from kerasnas.tasks.inputs import check_images, check_lengths, check_resize_shape

RANGE_RATIO = 8  # predict warns when its images' value range differs from fit's by more


def read(task, x, y, name, labelled, size=None, channels=None, decode_all=False):
    """`ImageData` of `x` (numpy, Dataset or folder) and `y`, as `task` reads images;
    `decode_all`: a streamed folder is decoded once first, for what Keras trains on
    (see `data.from_folder`)."""
    resize_shape = check_resize_shape(task.resize_shape)
    if datalib.is_dataset(x) or datalib.is_folder(x):
        if y is not None:
            kind = "a tf.data.Dataset" if datalib.is_dataset(x) else "a folder"
            raise ValueError(
                f"Expected `y` to be None when `{name}` is {kind}; the labels come from it. "
                f"Received: y of type {type(y).__name__}."
            )
        if datalib.is_folder(x):
            return datalib.from_folder(
                x,
                name,
                size=size or resize_shape,
                channels=channels,
                need_labels=labelled,
                decode_all=decode_all,
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


def read_like_fit(task, x, y, name, labelled, decode_all=False):
    """`ImageData` of `x` shaped like the images the fitted `task` saw, or a clear
    `ValueError`; warns when their values are scaled unlike those (see `check_range`)."""
    shape = tuple(task.input_shape_)
    full = (*shape, 1) if len(shape) == 2 else shape
    if not (datalib.is_dataset(x) or datalib.is_folder(x)):
        given = np.shape(x) if hasattr(x, "shape") or isinstance(x, (list, tuple)) else ()
        if tuple(given) in (shape, full):
            raise ValueError(
                f"`{name}` looks like one image of shape {tuple(given)} without its batch "
                f"axis; pass a batch of one: {name}[None] (or np.expand_dims({name}, 0))."
            )
    data = read(task, x, y, name, labelled, size=full[:2], channels=full[2], decode_all=decode_all)
    if tuple(data.shape) != full:
        got = data.shape if full[-1] != 1 or data.shape[-1] != 1 else data.shape[:2]
        raise ValueError(
            f"Expected `{name}` to hold images shaped {shape}, like those given to `fit`; "
            f"got images shaped {tuple(got)}. Resize or crop them to {shape[:2]} first."
        )
    check_range(task, data, name)
    return data


def check_range(task, data, name):
    """Warns when `data`'s values span a range `RANGE_RATIO` times wider or narrower than
    the images given to `fit` (e.g. divided by 255 once more)."""
    low_high = getattr(task, "input_range_", None)
    if low_high is None or data.sample.size == 0:
        return
    low, high = low_high
    sample = data.sample[:: max(1, len(data.sample) // 1000)]
    got_low, got_high = float(sample.min()), float(sample.max())
    span, got = high - low, got_high - got_low
    if span > 0 and got > 0 and (got * RANGE_RATIO < span or got > RANGE_RATIO * span):
        warnings.warn(
            f"The images in `{name}` ({data.dtype}) range over [{got_low:.4g}, "
            f"{got_high:.4g}], but those given to `fit` ({task.input_dtype_}) ranged over "
            f"[{low:.4g}, {high:.4g}]. The model expects images scaled as in `fit` (e.g. "
            "not divided by 255): its answers on these are likely wrong.",
            UserWarning,
            stacklevel=user_stacklevel(),
        )


def fit_data(task, x, y, validation_split, validation_data, class_weight, sample_weight):
    """What `fit` trains and validates on, checked, without changing `task`.

    Args:
        task: the estimator (its arguments are read, nothing is set on it).
        x, y, validation_split, validation_data, class_weight, sample_weight: as
            given to `fit` (`validation_split` checked already).

    Returns:
        `(targets, training, validation)`: the label state `task` learns
        (`{"encoder_": ...}` or `{"num_targets_": ...}`), `(train, encoded,
        weights, per_class)` and `(val, val_encoded)`.
    """
    train = read(task, x, y, "x", labelled=True, decode_all=True)
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
    targets, encoded = task._learn_targets(train.labels)
    classes = targets["encoder_"].classes_ if "encoder_" in targets else None
    per_class = feeds.class_weights(class_weight, encoded, classes)
    weights = None
    if not train.streamed:
        weights = feeds.sample_weights(sample_weight, train.count, per_class, encoded)
    if validation_data is not None:
        val, val_encoded = validation(task, validation_data, train, targets)
    elif train.streamed and train.files is None:
        raise ValueError(
            f"`x` is a tf.data.Dataset larger than {datalib.in_memory_bytes() >> 20} MB, "
            "so it is streamed, and kerasnas cannot hold out a random validation split "
            "from a stream. Pass `validation_data` (a Dataset or a folder), e.g. from "
            "keras.utils.image_dataset_from_directory(..., validation_split=0.1, "
            "subset='both')."
        )
    else:
        train, encoded, weights, val, val_encoded = split(
            train, encoded, weights, validation_split, task.seed
        )
    return targets, (train, encoded, weights, per_class), (val, val_encoded)


def validation(task, validation_data, train, targets):
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
    val = read(
        task,
        x_val,
        y_val,
        name,
        labelled=True,
        size=train.shape[:2],
        channels=train.shape[2],
        decode_all=True,
    )
    if tuple(val.shape) != tuple(train.shape):
        raise ValueError(
            f"Expected validation images of shape {train.shape} like `x`; got {val.shape}."
        )
    label_name = "validation_data" if y_val is None else "validation_data[1]"
    return val, task._encode(val.labels, label_name, targets)


def split(train, encoded, weights, fraction, seed):
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


def raw_dtype(dtype):
    """The dtype exported models take: the user's integer type, else float32."""
    return str(dtype) if np.issubdtype(np.dtype(dtype), np.integer) else "float32"
