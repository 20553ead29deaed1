from __future__ import annotations

import time

import keras
import numpy as np
import pytest
from conftest import quadrant_images

from kerasnas.graph import Graph, generators
from kerasnas.oracle import NetworkMorphismOracle
from kerasnas.tuner import MorphismTuner


def quadrant_data(n, seed):
    """(n, 8, 8, 1) float images of three classes, and their labels."""
    x, y = quadrant_images(n, seed, dtype="float32")
    return x[..., None], y


def make_tuner(directory, max_trials, **kwargs):
    oracle_kwargs = {k: kwargs.pop(k) for k in ("initial_graphs",) if k in kwargs}
    oracle = NetworkMorphismOracle((8, 8, 1), 3, max_trials=max_trials, seed=1, **oracle_kwargs)
    kwargs.setdefault("max_epochs", 2)
    return MorphismTuner(
        oracle,
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        batch_size=16,
        directory=str(directory),
        project_name="search",
        verbose=False,
        **kwargs,
    )


def test_trials_train_save_their_best_weights_and_report_timings(tmp_path):
    tuner = make_tuner(tmp_path, max_trials=4)
    tuner.search(*quadrant_data(64, 0), validation_data=quadrant_data(32, 1))
    trials = list(tuner.oracle.trials.values())
    assert [t.status for t in trials] == ["COMPLETED"] * 4
    for trial in trials:
        assert (tmp_path / "search" / f"trial_{trial.trial_id}" / "checkpoint.weights.h5").exists()
        for metric in ("train_seconds", "epoch_seconds", "setup_seconds", "epochs"):
            assert trial.metrics.get_last_value(metric) > 0
    best = tuner.get_best_models(1)[0]
    assert (
        best.count_params()
        == Graph.from_json(
            tuner.oracle.get_best_trials(1)[0].hyperparameters.values["architecture"]
        ).num_params()
    )


def test_children_start_from_their_parents_function(tmp_path):
    tuner = make_tuner(tmp_path, max_trials=4)
    x_val, y_val = quadrant_data(32, 1)
    tuner.search(*quadrant_data(64, 0), validation_data=(x_val, y_val))
    child = (
        tuner.oracle.trials["3"]
        if "3" in tuner.oracle.trials
        else list(tuner.oracle.trials.values())[3]
    )
    parent = tuner.oracle.get_trial(child.hyperparameters.values["parent_trial_id"])
    warm = tuner.build_model(child)  # before any training of the child
    trained_parent = tuner.load_model(parent)
    np.testing.assert_allclose(
        warm.predict(x_val, verbose=0), trained_parent.predict(x_val, verbose=0), atol=1e-5
    )


def test_a_bad_candidate_fails_its_trial_and_the_search_goes_on(tmp_path):
    small = generators.cnn((8, 8, 1), 3, filters=4, dense_units=8)
    huge = generators.cnn((8, 8, 1), 3, filters=64, dense_units=512)
    tuner = make_tuner(
        tmp_path, max_trials=4, initial_graphs=[huge, small], max_model_size=huge.num_params() - 1
    )
    tuner.search(*quadrant_data(64, 0), validation_data=quadrant_data(32, 1))
    statuses = [t.status for t in tuner.oracle.trials.values()]
    assert (
        statuses[0] == "FAILED"
        and "max_model_size" in tuner.oracle.trials[list(tuner.oracle.trials)[0]].message
    )
    assert statuses.count("COMPLETED") == 3


def test_nan_loss_fails_the_trial(tmp_path):
    tuner = make_tuner(tmp_path, max_trials=1, learning_rate=1e30)
    x, y = quadrant_data(64, 0)
    tuner.search(x * 1e30, y, validation_data=quadrant_data(32, 1))
    (trial,) = tuner.oracle.trials.values()
    assert trial.status == "FAILED"


def test_a_deadline_bounds_the_search(tmp_path):
    tuner = make_tuner(tmp_path, max_trials=None, max_epochs=1000)
    tuner.deadline = time.time() + 12
    tuner.oracle.set_deadline(tuner.deadline)
    start = time.time()
    tuner.search(*quadrant_data(64, 0), validation_data=quadrant_data(32, 1))
    assert time.time() - start < 12 + 3
    assert any(t.status == "COMPLETED" for t in tuner.oracle.trials.values())


def test_the_last_stretch_refines_the_best_trial_until_the_deadline(tmp_path):
    tuner = make_tuner(tmp_path, max_trials=None, max_epochs=1000)
    tuner.deadline = time.time() + 20
    tuner.oracle.set_deadline(tuner.deadline)
    tuner.search(*quadrant_data(64, 0), validation_data=quadrant_data(32, 1))
    ended = time.time()
    trials = [tuner.oracle.trials[i] for i in sorted(tuner.oracle.trials)]
    refined = [t for t in trials if t.hyperparameters.values["refine"]]
    assert len(refined) == 1
    values = refined[0].hyperparameters.values
    parent = tuner.oracle.trials[values["parent_trial_id"]]
    assert parent.hyperparameters.values["architecture"] == values["architecture"]
    # No early stopping: the refinement is the last trial and trains until the deadline.
    assert trials[-1] is refined[0]
    assert ended >= tuner.deadline - 1.0


@pytest.fixture(autouse=True)
def _quiet():
    keras.utils.set_random_seed(0)
