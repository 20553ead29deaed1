from __future__ import annotations

import numpy as np
import pytest

from kerasnas.tasks.inputs import LabelEncoder, check_images, check_lengths, check_targets


def test_images_get_a_channel_axis():
    assert check_images(np.zeros((2, 8, 8), "uint8")).shape == (2, 8, 8, 1)
    assert check_images(np.zeros((2, 9, 8, 3))).shape == (2, 9, 8, 3)


@pytest.mark.parametrize(
    "x, match",
    [
        (np.zeros(10), r"3 or 4 dimensions \(N, H, W\[, C\]\); got shape \(10,\)"),
        (np.zeros((0, 8, 8)), "at least one image"),
        (np.zeros((2, 8, 8, 5)), "at most 4 channels"),
        (np.full((2, 8, 8), np.nan), "NaN or infinite"),
        (np.zeros((2, 4, 4)), r"resize_shape=\(8, 8\)"),
        (np.array([["a"] * 8] * 8)[None], "hold numbers"),
    ],
)
def test_bad_images(x, match):
    with pytest.raises(ValueError, match=match):
        check_images(x)


def test_small_images_pass_when_they_will_be_resized():
    assert check_images(np.zeros((2, 4, 4)), resize_shape=(8, 8)).shape == (2, 4, 4, 1)


def test_lengths_must_agree():
    with pytest.raises(ValueError, match="same length; got 3 images and 2 labels"):
        check_lengths(np.zeros((3, 8, 8)), [0, 1])


@pytest.mark.parametrize(
    "y, classes",
    [
        (["cat", "dog", "cat"], ["cat", "dog"]),
        ([3, 1, 3], [1, 3]),
        ([[0, 1], [1, 0]], [0, 1]),
        ([[2.0], [5.0]], [2, 5]),
    ],
)
def test_label_encoder_round_trips(y, classes):
    encoder = LabelEncoder.fit(y)
    assert encoder.classes_.tolist() == classes
    indices = encoder.encode(y)
    again = LabelEncoder.from_config(encoder.get_config())
    assert again.decode(indices).tolist() == encoder.decode(indices).tolist()


@pytest.mark.parametrize(
    "y, match",
    [
        ([1, 1, 1], "at least 2 classes"),
        ([1.0, np.nan], "NaN or infinite"),
        ([[0, 1], [1, 1]], "single 1"),
        (np.zeros((2, 2, 2)), "shape"),
    ],
)
def test_bad_labels(y, match):
    with pytest.raises(ValueError, match=match):
        LabelEncoder.fit(y)


def test_unknown_labels_are_named():
    encoder = LabelEncoder.fit(["a", "b"])
    with pytest.raises(ValueError, match=r"not seen in fit: \['z'\]"):
        encoder.encode(["a", "z"])


def test_regression_targets():
    assert check_targets([1.0, 2.0]).shape == (2, 1)
    with pytest.raises(ValueError, match="NaN"):
        check_targets([1.0, np.inf])
