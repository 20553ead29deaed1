"""One process of a distributed search (chief or worker), for test_distributed.py.

Run with KERASTUNER_TUNER_ID, KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT set,
and the shared directory as the only argument. Optional variables:

- SLOW_BATCHES=1: every batch takes 0.3 s more, so a test can kill the process in the
  middle of a trial.
- DEADLINE_SECONDS: the chief sets the search's deadline this many seconds from its
  start (before it times the first architecture), and the search has no `max_trials`.
- MAX_TRIALS (default 6, without a deadline), MAX_EPOCHS (default 2).
- CHIEF_TIMEOUT, WORKER_GRACE: `MorphismTuner`'s `chief_timeout` and `worker_grace`.

The last line of a process that returns from `search` is `DONE <tuner id> <time>`.
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras

from kerasnas import distributed
from kerasnas.oracle import NetworkMorphismOracle
from kerasnas.testing import quadrant_images
from kerasnas.tuner import MorphismTuner


def data(n, seed):
    x, y = quadrant_images(n, seed, dtype="float32")
    return x[..., None], y


class Slow(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        time.sleep(0.3)


def number(name, default):
    return float(os.environ[name]) if os.environ.get(name) else default


def main(directory):
    keras.utils.set_random_seed(0)
    deadline_seconds = number("DEADLINE_SECONDS", None)
    max_trials = None if deadline_seconds else int(number("MAX_TRIALS", 6))
    oracle = NetworkMorphismOracle((8, 8, 1), 3, max_trials=max_trials, seed=1)
    if deadline_seconds and os.environ["KERASTUNER_TUNER_ID"] == "chief":
        oracle.set_deadline(time.time() + deadline_seconds)
    tuner = MorphismTuner(
        oracle,
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        batch_size=16,
        max_epochs=int(number("MAX_EPOCHS", 2)),
        directory=directory,
        project_name="search",
        verbose=True,
        chief_timeout=number("CHIEF_TIMEOUT", distributed.CHIEF_TIMEOUT),
        worker_grace=number("WORKER_GRACE", distributed.WORKER_GRACE),
    )
    x, y = data(96, 0)
    callbacks = [Slow()] if os.environ.get("SLOW_BATCHES") else []
    tuner.search(x, y, validation_data=data(48, 1), callbacks=callbacks)
    print("DONE", os.environ["KERASTUNER_TUNER_ID"], time.time(), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
