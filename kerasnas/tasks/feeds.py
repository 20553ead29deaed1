"""From `ImageData` to what Keras trains on: preprocessing, label encoding in TensorFlow,
sample and class weights, augmentation, and batched streams.

Its step of "data to Keras": the second, after `reading.py` has checked the user's
data into `ImageData`: the training and validation feeds handed to Keras' `fit`
(through the tuner, or in `final_fit`) and to the models' calls for predictions.

The searched models take float32 images, resized (`resize_shape`) and
normalised per channel with the training images' mean and variance; the
preprocessing model (`preprocessor`) does that and is put in front of every
model handed to users. In-memory images are preprocessed once, into arrays;
streamed images are preprocessed batch by batch inside the `tf.data` pipeline.

The `tf.data` pipelines here run with tf.data's autotuning off (see
`kerasnas.pipelines`) and fix their own buffers (a prefetch of 2).
"""

from __future__ import annotations

import numpy as np

from kerasnas.pipelines import array_dataset, augmenter, untuned
from kerasnas.tasks import data as datalib

SHUFFLE_SEED = 0


def statistics(sample):
    """Per-channel `(mean, variance, low, high)` of (N, H, W, C) images."""
    sample = sample[:: max(1, len(sample) // 5000)].astype("float64")
    flat = sample.reshape(-1, sample.shape[-1])
    mean, variance = flat.mean(axis=0), np.maximum(flat.var(axis=0), 1e-12)
    return mean, variance, float(flat.min()), float(flat.max())


def preprocessor(input_shape, resize_shape=None, mean=None, variance=None):
    """Layers from raw (H, W[, C]) images to the searched models' input: cast, resize, normalise."""
    import keras

    if len(input_shape) == 2:
        input_shape = (*input_shape, 1)
    raw = keras.Input(shape=input_shape, name="image")
    x = keras.layers.Rescaling(1.0, name="to_float")(raw)  # casts integer images to float32
    if resize_shape is not None:
        height, width = (int(d) for d in resize_shape)
        x = keras.layers.Resizing(height, width, name="resize")(x)
    if mean is not None:
        x = keras.layers.Normalization(mean=mean, variance=variance, name="normalize")(x)
    return keras.Model(raw, x, name="preprocessing")


def prepare(model, images, batch_size=2048):
    """Raw (N, H, W, C) images to the float32 arrays the searched models take."""
    return predict(model, np.asarray(images), batch_size)


def predict(model, x, batch_size):
    """`model.predict` on the array `x`, fed as an untuned Dataset (see `kerasnas.pipelines`)."""
    return model.predict(array_dataset(x, batch_size=batch_size), verbose=0)


def label_encoder_fn(targets_config, task):
    """A TensorFlow function from a batch of the user's labels to the encoded targets."""
    import tensorflow as tf

    if task == "regression":
        k = int(targets_config["num_targets"])
        return lambda y: tf.reshape(tf.cast(y, "float32"), (-1, k))
    classes = np.asarray(targets_config["classes"])
    if targets_config.get("one_hot"):
        return lambda y: tf.argmax(y, axis=-1)
    if classes.dtype.kind in "US":
        table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(classes.astype(str)), tf.range(len(classes), dtype="int64")
            ),
            default_value=-1,
        )

        def encode(y):
            index = table.lookup(tf.reshape(y, (-1,)))
            tf.debugging.assert_non_negative(
                index, message="a label not seen in fit (see the classes of `fit`)"
            )
            return index

        return encode
    sorted_classes = tf.constant(classes.astype("float64"))
    return lambda y: tf.searchsorted(
        sorted_classes, tf.reshape(tf.cast(y, "float64"), (-1,)), out_type="int64"
    )


def class_weights(class_weight, encoded, classes):
    """A weight per class index, from `class_weight` (dict of the user's labels, or
    `"balanced"`), or None.

    "balanced" weighs class c by N / (classes * N_c), as scikit-learn does.
    """
    if class_weight is None:
        return None
    n = len(classes)
    counts = np.bincount(np.asarray(encoded, dtype=int), minlength=n)
    if isinstance(class_weight, str):
        if class_weight != "balanced":
            raise ValueError(
                "Expected `class_weight` to be a dict {label: weight}, 'balanced' or None. "
                f"Received: class_weight={class_weight!r}"
            )
        return (counts.sum() / (n * np.maximum(counts, 1))).astype("float32")
    if not isinstance(class_weight, dict):
        raise ValueError(
            "Expected `class_weight` to be a dict {label: weight}, 'balanced' or None. "
            f"Received: class_weight={type(class_weight).__name__}"
        )
    keys = [k.item() if isinstance(k, np.generic) else k for k in classes.tolist()]
    unknown = [k for k in class_weight if k not in keys]
    if unknown:
        raise ValueError(
            f"`class_weight` names labels not among the classes: {unknown[:5]}. Use the labels "
            f"as given to `fit`: {keys[:10]}."
        )
    weights = np.ones(n, dtype="float32")
    for index, key in enumerate(keys):
        if key in class_weight:
            value = class_weight[key]
            if not isinstance(value, (int, float, np.number)) or not value >= 0:
                raise ValueError(
                    f"Expected `class_weight` values to be numbers >= 0; got {key!r}: {value!r}."
                )
            weights[index] = float(value)
    return weights


def sample_weights(sample_weight, count, per_class=None, encoded=None):
    """Per-image weights (N,) combining `sample_weight` and class weights, or None."""
    weights = None
    if sample_weight is not None:
        weights = np.asarray(sample_weight, dtype="float64")
        if weights.shape != (count,) or not np.isfinite(weights).all() or (weights < 0).any():
            raise ValueError(
                f"Expected `sample_weight` to be {count} finite numbers >= 0, one per image "
                f"of `x`; got shape {weights.shape}."
            )
        weights = weights.astype("float32")
    if per_class is not None:
        by_class = per_class[np.asarray(encoded, dtype=int)]
        weights = by_class if weights is None else weights * by_class
    return weights


def stream(make, prep, encode, batch_size, per_class=None, augment=False, labelled=True):
    """A batched, preprocessed Dataset from a `make_stream` function (see `ImageData`)."""
    import tensorflow as tf

    convert = tf.autograph.experimental.do_not_convert
    dataset = make().batch(batch_size)
    layers = augmenter() if augment else None

    def images(x):
        x = prep(x, training=False)
        return layers(x, training=True) if layers is not None else x

    if not labelled:
        dataset = dataset.map(convert(images), num_parallel_calls=tf.data.AUTOTUNE)
    elif per_class is None:
        dataset = dataset.map(
            convert(lambda x, y: (images(x), encode(y))), num_parallel_calls=tf.data.AUTOTUNE
        )
    else:
        table = tf.constant(per_class)

        def weighted(x, y):
            y = encode(y)
            return images(x), y, tf.gather(table, y)

        dataset = dataset.map(convert(weighted), num_parallel_calls=tf.data.AUTOTUNE)
    return untuned(dataset.prefetch(2))  # a fixed buffer: memory stays a few batches


def training_feed(task, train, encoded, weights, per_class, batch_size, augment=None):
    """`(args, kwargs)` for Keras' `fit` (through the tuner) on `train`, preprocessed by
    `task.preprocessor_`, shuffled every epoch; augmented if `augment` (None: `task.augment`)."""
    augment = task.augment if augment is None else augment
    if train.streamed:
        make = train.make_stream
        if train.files is not None:  # a folder: shuffle its file names every epoch
            make = datalib.folder_stream(
                train.files, train.labels, *train.folder, shuffle_seed=task.seed or 0
            )
        dataset = stream(
            make,
            task.preprocessor_,
            label_encoder_fn(task._targets_config(), task.task),
            batch_size,
            per_class=per_class,
            augment=augment,
        )
        return (dataset,), {}
    x = prepare(task.preprocessor_, train.images)
    dataset = array_dataset(
        x, encoded, weights, batch_size, shuffle=True, seed=task.seed, augment=augment
    )
    return (dataset,), {}


def validation_feed(task, val, val_encoded, batch_size):
    """The validation data: a Dataset of batches if streamed, else `(images, labels)`
    arrays (see `keras_validation` for `fit`)."""
    if val.streamed:
        return stream(
            val.make_stream,
            task.preprocessor_,
            label_encoder_fn(task._targets_config(), task.task),
            batch_size,
        )
    return prepare(task.preprocessor_, val.images), val_encoded


def keras_validation(feed, batch_size):
    """A `validation_feed` as `fit` gets it: arrays become an untuned Dataset of batches."""
    if isinstance(feed, tuple):
        return array_dataset(*feed, batch_size=batch_size)
    return feed
