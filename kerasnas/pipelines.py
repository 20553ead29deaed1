"""The `tf.data` pipelines kerasnas hands to Keras: in-memory arrays as batches, untuned.

Its step of "data to Keras": the last, the `tf.data.Dataset`s themselves that Keras
iterates (built by `kerasnas.tasks.feeds` and by the tuner), and the augmentation
layers inside them.

The `tf.data` pipelines kerasnas makes, to hand to Keras or to read itself, run with
tf.data's autotuning off (`untuned`). An autotuned iterator being deleted waits for the
tuning thread to end its sleep between rounds (seen with TensorFlow 2.21), and Keras makes
a new iterator every epoch, so an epoch's first batch could wait for seconds, CPUs idle,
past the checks that keep a trial inside its time (the figures are in
docs/design-notes.md). The pipelines kerasnas makes set their buffers themselves (a
prefetch of 2), so autotuning has little to tune.
"""

from __future__ import annotations

import numpy as np


def untuned(dataset):
    """`dataset` with tf.data's autotuning off (see the module's docstring)."""
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def augmenter():
    """The `augment` option's layers: random shifts and zooms of up to 10%."""
    import keras

    return keras.Sequential(
        [
            keras.layers.RandomTranslation(0.1, 0.1, fill_mode="constant"),
            keras.layers.RandomZoom(0.1, fill_mode="constant"),
        ]
    )


def augmented_while(dataset, switch):
    """`dataset`'s batches with their images augmented (`augmenter`) while `switch` is True.

    The switch is read batch by batch, so a callback can turn augmentation on
    between epochs (Keras makes a new iterator every epoch, unless `steps_per_epoch`
    is given: then only the two batches prefetched before the switch are not augmented).

    Args:
        dataset: a `tf.data.Dataset` of image batches (N, H, W, C), or of tuples whose
            first element is one (`(x, y)` or `(x, y, sample_weight)`).
        switch: a boolean `tf.Variable`.

    Returns:
        The Dataset, or None if its batches are not (tuples led by) 4-D images.
    """
    import tensorflow as tf

    spec = dataset.element_spec
    first = spec[0] if isinstance(spec, tuple) and spec else spec
    if not isinstance(first, tf.TensorSpec) or first.shape.rank != 4:
        return None
    layers = augmenter()

    def augment(*batch):
        images = batch[0]
        images = tf.cond(  # the layers compute in float32; the branches must agree
            switch, lambda: tf.cast(layers(images, training=True), images.dtype), lambda: images
        )
        return (images, *batch[1:]) if isinstance(spec, tuple) else images

    # Its options (autotuning off, for kerasnas' own pipelines) carry over from `dataset`.
    return dataset.map(tf.autograph.experimental.do_not_convert(augment)).prefetch(2)


def array_dataset(x, y=None, weights=None, batch_size=32, shuffle=False, seed=None, augment=False):
    """In-memory arrays as a Dataset of batches, what Keras' `fit` makes of arrays, untuned.

    Args:
        x, y, weights: arrays of one length; `y` and `weights` may be None (`weights`
            only with `y`). Floating-point arrays become float32, as Keras casts them.
        batch_size: images per batch (the last batch may be smaller).
        shuffle: whether to draw a new order on every pass over the data.
        seed: the shuffle's seed. Defaults to None (another order every run).
        augment: whether to shift and zoom the images at random (`augmenter`).

    Returns:
        A `tf.data.Dataset` of `x`, `(x, y)` or `(x, y, weights)` batches.

    Raises:
        ValueError: if the arrays differ in length, or `weights` come without `y`.
    """
    import tensorflow as tf

    if weights is not None and y is None:
        raise ValueError("Expected `y` with `weights`: sample weights weigh labelled images.")
    parts = tuple(_float32(part) for part in (x, y, weights) if part is not None)
    count = len(x)
    lengths = [len(part) for part in parts]
    if len(set(lengths)) > 1:
        raise ValueError(
            "Expected x, y and the sample weights to have one length (one row per image); "
            f"got lengths {lengths}."
        )
    # The arrays become one tensor each, once; every batch gathers its rows from them.
    arrays = tf.data.Dataset.from_tensors(parts).repeat()
    order = tf.data.Dataset.range(count)
    if shuffle:
        order = order.shuffle(count, seed=seed, reshuffle_each_iteration=True)
    layers = augmenter() if augment else None

    def gather(rows, tensors):
        batch = [tf.gather(tensor, rows) for tensor in tensors]
        if layers is not None:
            batch[0] = layers(batch[0], training=True)
        return batch[0] if len(batch) == 1 else tuple(batch)

    dataset = tf.data.Dataset.zip(order.batch(batch_size), arrays)
    dataset = dataset.map(tf.autograph.experimental.do_not_convert(gather))
    return untuned(dataset.prefetch(2))


def _float32(array):
    array = np.asarray(array)
    return (
        array.astype("float32") if array.dtype.kind == "f" and array.dtype != "float32" else array
    )
