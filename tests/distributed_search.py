"""One process of a distributed search (chief or worker), for test_distributed.py.

Run with KERASTUNER_TUNER_ID, KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT set,
and the shared directory as the only argument. SLOW_BATCHES=1 makes every batch
take 0.3 s more, so a test can kill the process in the middle of a trial.
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras

from kerasnas.oracle import NetworkMorphismOracle
from kerasnas.testing import quadrant_images
from kerasnas.tuner import MorphismTuner

MAX_TRIALS = 6


def data(n, seed):
    x, y = quadrant_images(n, seed, dtype="float32")
    return x[..., None], y


class Slow(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        time.sleep(0.3)


def main(directory):
    keras.utils.set_random_seed(0)
    oracle = NetworkMorphismOracle((8, 8, 1), 3, max_trials=MAX_TRIALS, seed=1)
    tuner = MorphismTuner(
        oracle,
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        batch_size=16,
        max_epochs=2,
        directory=directory,
        project_name="search",
        verbose=True,
    )
    x, y = data(96, 0)
    callbacks = [Slow()] if os.environ.get("SLOW_BATCHES") else []
    tuner.search(x, y, validation_data=data(48, 1), callbacks=callbacks)
    print("DONE", os.environ["KERASTUNER_TUNER_ID"], flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
