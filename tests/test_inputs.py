from __future__ import annotations

import json

import numpy as np
import pytest

from kerasnas.tasks.inputs import (
    LabelEncoder,
    check_images,
    check_lengths,
    check_resize_shape,
    check_targets,
    check_time_limit,
)


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
        (np.array([["a"] * 8] * 8)[None], "hold real numbers; got dtype <U1"),
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


@pytest.mark.parametrize(
    "y, match",
    [
        ([0, None, 1], "holds None at position 1"),
        ([1, "a", 2], r"mixes strings and numbers \(e.g. 'a' and 1\)"),
        (np.array([1, "a"], dtype=object), "mixes strings and numbers"),
        (np.array(["2020-01-01", "2020-01-02"], dtype="datetime64[D]"), "dtype datetime64"),
        (np.array([1 + 1j, 2]), "dtype complex"),
        ([b"\xff\xfe", b"a"], "not UTF-8"),
        (["a\x00", "a"], "NUL characters"),
        ([0.1, 0.7, 2.35], r"3-class problem. For continuous targets use ImageRegressor"),
        ([[0, 1], [0]], "ragged"),
        (5, "a sequence of labels"),
    ],
)
def test_labels_that_cannot_round_trip_are_refused(y, match):
    with pytest.raises(ValueError, match=match):
        LabelEncoder.fit(y, "y")


@pytest.mark.parametrize(
    "y, classes",
    [
        ([b"cat", b"dog"], ["cat", "dog"]),
        (np.array([b"cat", b"dog", b"cat"]), ["cat", "dog"]),
        (np.array(["a", "b"], dtype=object), ["a", "b"]),
        ([True, False], [False, True]),
    ],
)
def test_bytes_labels_are_decoded(y, classes):
    encoder = LabelEncoder.fit(y)
    assert encoder.classes_.tolist() == classes
    again = LabelEncoder.from_config(json.loads(json.dumps(encoder.get_config())))
    assert again.classes_.tolist() == classes


def test_label_dtype_survives_the_saved_config():
    encoder = LabelEncoder.fit(np.array([3, 1, 3], dtype="uint8"))
    again = LabelEncoder.from_config(json.loads(json.dumps(encoder.get_config())))
    assert again.decode([0, 1]).dtype == np.uint8
    assert LabelEncoder.from_config({"classes": [1, 2], "one_hot": False}).classes_.tolist() == [
        1,
        2,
    ]


@pytest.mark.parametrize(
    "x, match",
    [
        (np.zeros((2, 8, 8), dtype=complex), r"real numbers; got complex numbers \(complex128\)"),
        (np.full((2, 8, 8), 1e300), r"within \+-1e\+12 in `x`; got values as large as 1e\+300"),
        ([np.zeros((8, 8)), np.zeros((9, 9))], "ragged list"),
        (None, "got None"),
    ],
)
def test_more_bad_images(x, match):
    with pytest.raises(ValueError, match=match):
        check_images(x)


@pytest.mark.parametrize("value", [True, "10", 0, -1, float("nan"), float("inf"), None])
def test_time_limit_must_be_a_positive_number(value):
    with pytest.raises(ValueError, match=f"Expected `time_limit`.*got time_limit={value!r}"):
        check_time_limit(value)


@pytest.mark.parametrize("value", [10, 2.5, np.float32(10), np.int64(10)])
def test_numpy_scalars_are_time_limits(value):
    assert check_time_limit(value) == float(value)


@pytest.mark.parametrize("value", [(0, 0), (8,), (8.0, 8), "8x8", (True, 8)])
def test_resize_shape_must_be_two_positive_ints(value):
    with pytest.raises(ValueError, match="Expected `resize_shape` to be"):
        check_resize_shape(value)


def test_regression_targets_must_fit_float32():
    with pytest.raises(ValueError, match="beyond float32"):
        check_targets([1e300, 1.0])
    with pytest.raises(ValueError, match="real numeric"):
        check_targets(np.array([1j, 2]))
