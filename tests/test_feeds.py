"""feeds: the streamed Datasets kerasnas hands to Keras."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from kerasnas.tasks import feeds


def test_a_stream_runs_without_autotuning():
    # An autotuned iterator made Keras wait up to 30 s at an epoch's start (kerasnas.pipelines).
    x = np.zeros((4, 2, 2, 1), "float32")
    streamed = feeds.stream(
        lambda: tf.data.Dataset.from_tensor_slices((x, np.zeros(4, "int64"))),
        prep=lambda images, training: images,
        encode=lambda y: y,
        batch_size=2,
    )
    assert streamed.options().autotune.enabled is False
    assert len(list(streamed)) == 2
