"""pipelines: arrays as Datasets of batches, every row once per pass, autotuning off."""

from __future__ import annotations

import numpy as np
import pytest

from kerasnas import pipelines


def rows(dataset):
    """The first column of every batch of one pass, concatenated."""
    return np.concatenate(
        [np.asarray(batch[0] if isinstance(batch, tuple) else batch) for batch in dataset]
    )


def test_array_dataset_gives_every_row_once_per_pass_in_a_new_order():
    x = np.arange(10, dtype="float32")[:, None]
    dataset = pipelines.array_dataset(x, np.arange(10) % 2, batch_size=4, shuffle=True, seed=1)
    assert int(dataset.cardinality()) == 3
    first, second = rows(dataset)[:, 0], rows(dataset)[:, 0]
    assert sorted(first) == sorted(second) == list(range(10))
    assert list(first) != list(second)


def test_array_dataset_keeps_the_order_and_pairs_rows_without_shuffle():
    x = np.arange(7, dtype="float32")[:, None]
    batches = list(pipelines.array_dataset(x, 10 * np.arange(7), 2 * np.arange(7), batch_size=3))
    assert [len(b[0]) for b in batches] == [3, 3, 1]
    images, labels, weights = (
        np.concatenate([np.asarray(b[i]) for b in batches]) for i in range(3)
    )
    np.testing.assert_array_equal(images[:, 0], np.arange(7))
    np.testing.assert_array_equal(labels, 10 * np.arange(7))
    np.testing.assert_array_equal(weights, 2 * np.arange(7))


def test_array_dataset_of_images_alone_yields_bare_batches():
    (batch,) = list(pipelines.array_dataset(np.zeros((3, 2, 2, 1), "float32"), batch_size=8))
    assert tuple(batch.shape) == (3, 2, 2, 1)


def test_array_dataset_runs_without_autotuning():
    # An autotuned iterator made Keras wait up to 30 s at an epoch's start (the module's docstring).
    x = np.zeros((4, 2, 2, 1), "float32")
    dataset = pipelines.array_dataset(x, np.zeros(4), batch_size=2, shuffle=True, augment=True)
    assert dataset.options().autotune.enabled is False
    assert len(list(dataset)) == 2


def test_array_dataset_casts_floats_to_float32_as_keras_does():
    (batch,) = list(
        pipelines.array_dataset(np.zeros((3, 2), "float64"), np.arange(3), batch_size=4)
    )
    assert batch[0].dtype == "float32" and batch[1].dtype == "int64"


@pytest.mark.parametrize(
    "y, weights, match",
    [
        (np.zeros(4), None, r"one length.*\[5, 4\]"),
        (np.zeros(5), np.ones(6), r"one length.*\[5, 5, 6\]"),
        (None, np.ones(5), "Expected `y` with `weights`"),
    ],
)
def test_array_dataset_refuses_arrays_that_do_not_pair_up(y, weights, match):
    with pytest.raises(ValueError, match=match):
        pipelines.array_dataset(np.zeros((5, 2)), y, weights, batch_size=2)


def test_augmented_while_reads_its_switch_on_every_pass():
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = rng.random((8, 12, 12, 1), dtype="float32")
    labels, weights = np.arange(8), np.linspace(1, 2, 8)
    switch = tf.Variable(False)
    dataset = pipelines.augmented_while(
        pipelines.array_dataset(x, labels, weights, batch_size=4), switch
    )
    assert dataset.options().autotune.enabled is False  # kept from the array pipeline
    np.testing.assert_array_equal(rows(dataset), x)  # off: the images as they were
    switch.assign(True)
    batches = list(dataset)
    images = np.concatenate([np.asarray(b[0]) for b in batches])
    assert images.shape == x.shape and not np.allclose(images, x)
    # Only the images change: the labels and weights stay with their rows.
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), labels)
    np.testing.assert_allclose(np.concatenate([b[2] for b in batches]), weights)


def test_augmented_while_keeps_the_images_dtype_and_bare_batches():
    import tensorflow as tf

    x = np.random.default_rng(1).integers(0, 255, (6, 10, 10, 1), dtype="uint8")
    dataset = pipelines.augmented_while(
        tf.data.Dataset.from_tensor_slices(x).batch(3), tf.Variable(True)
    )
    batches = list(dataset)
    assert [tuple(b.shape) for b in batches] == [(3, 10, 10, 1)] * 2
    assert all(b.dtype == tf.uint8 for b in batches)
    assert not np.array_equal(np.concatenate(batches), x)


def test_augmented_while_leaves_batches_that_are_not_images_alone():
    import tensorflow as tf

    flat = pipelines.array_dataset(np.zeros((4, 3), "float32"), np.zeros(4), batch_size=2)
    assert pipelines.augmented_while(flat, tf.Variable(False)) is None
