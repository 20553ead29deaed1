"""ImageClassifier and ImageRegressor as users call them."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest
import tensorflow as tf

import kerasnas
from kerasnas import trials
from kerasnas.tasks.run_dir import DirectoryLock as _DirectoryLock
from kerasnas.testing import quadrant_images

NAMES = np.array(["left", "right", "bottom"])


@pytest.mark.slow
def test_fit_predict_evaluate_in_the_users_labels(fitted_classifier):
    clf, _ = fitted_classifier
    x, y = quadrant_images(60, 7)
    assert set(clf.predict(x)) <= set(NAMES)
    assert clf.evaluate(x, NAMES[y]) >= 0.9
    proba = clf.predict_proba(x)
    assert proba.shape == (60, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1, atol=1e-5)
    assert clf.classes_.tolist() == sorted(NAMES.tolist())


@pytest.mark.slow
def test_history_has_a_row_per_trial(fitted_classifier):
    clf, _ = fitted_classifier
    history = clf.history
    assert len(history) == 4
    for column in (
        "trial_id",
        "parent_trial_id",
        "morphisms",
        "refine",
        "params",
        "flops",
        "epochs",
        "train_seconds",
        "augmented_after",
        "val_accuracy",
        "status",
        "reason",
    ):
        assert column in history.columns
    assert history["status"].eq("COMPLETED").all()
    assert history["morphisms"].iloc[3]  # the fourth trial is a morphed child
    assert history["reason"].iloc[0].startswith("the first architecture")
    parent = history["parent_trial_id"].iloc[3]
    assert history["reason"].iloc[3].startswith(f"a child of trial {parent}")
    assert clf.tuner_.oracle.validation_size == 24  # 10% of 240: the noise the search reads


@pytest.mark.slow
def test_exported_model_takes_raw_images_and_reloads_without_kerasnas(fitted_classifier, tmp_path):
    clf, _ = fitted_classifier
    x, _ = quadrant_images(20, 8)
    model = clf.export_model()
    np.testing.assert_allclose(model.predict(x, verbose=0), clf.predict_proba(x), atol=1e-5)
    path = tmp_path / "model.keras"
    model.save(path)
    np.save(tmp_path / "x.npy", x)
    code = textwrap.dedent(f"""
        import sys, numpy as np, keras
        model = keras.models.load_model({str(path)!r}, safe_mode=True)
        np.save({str(tmp_path / "p.npy")!r}, model.predict(np.load({str(tmp_path / "x.npy")!r}),
                                                           verbose=0))
        assert not any(m.startswith("kerasnas") for m in sys.modules)
    """)
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), clf.predict_proba(x), atol=1e-5)


@pytest.mark.slow
def test_load_gives_back_a_fitted_classifier(fitted_classifier):
    clf, directory = fitted_classifier
    x, _ = quadrant_images(20, 9)
    again = kerasnas.load(directory)
    assert isinstance(again, kerasnas.ImageClassifier)
    np.testing.assert_allclose(again.predict_proba(x), clf.predict_proba(x), atol=1e-6)
    assert again.predict(x).tolist() == clf.predict(x).tolist()
    # The search's decisions come back with it: each trial's reason, and the summary.
    assert again.history["reason"].tolist() == clf.history["reason"].tolist()
    assert again.search_summary_ == clf.search_summary_
    summary = clf.search_summary_
    assert summary["best_trial_id"] == clf.best_trial_id_
    assert summary["first_trial_id"] == clf.history["trial_id"].iloc[0]
    assert summary["params"] == clf.model_.count_params() and summary["cpu_seconds_per_image"] > 0


def test_predict_before_fit_says_to_fit():
    with pytest.raises(kerasnas.NotFittedError, match="Call `fit` first"):
        kerasnas.ImageClassifier().predict(np.zeros((1, 8, 8)))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"x": np.zeros(10)}, "3 or 4 dimensions"),
        ({"y": [0, 1]}, "same length"),
        ({"x": np.zeros((0, 8, 8)), "y": []}, "at least one image"),
        ({"x": np.full((30, 8, 8), np.inf)}, "NaN or infinite"),
        ({"y": np.zeros(30)}, "at least 2 classes"),
        ({"x": np.zeros((30, 8, 8, 6))}, "at most 4 channels"),
        ({"x": np.zeros((30, 5, 5))}, "resize_shape"),
        ({"time_limit": 0}, "positive number of seconds"),
        ({"time_limit": -5}, "time_limit=-5"),
        ({"time_limit": True}, "time_limit=True"),
        ({"time_limit": "10"}, "time_limit='10'"),
        ({"y": [0, 1, None] * 10}, "holds None at position 2"),
        ({"y": [0, "a", 1] * 10}, "mixes strings and numbers"),
        (
            {"y": np.linspace(0, 1, 30)},
            "30-class problem. For continuous targets use ImageRegressor",
        ),
        ({"y": np.array(["2020-01-01"] * 30, dtype="datetime64[D]")}, "dtype datetime64"),
        ({"epochs": -1}, "Expected `epochs` to be an integer >= 1"),
        ({"batch_size": -1}, "Received: batch_size=-1"),
        ({"x": np.zeros((30, 8, 8), dtype=complex)}, "real numbers"),
        ({"x": np.full((30, 8, 8), 1e300)}, r"within \+-1e\+12"),
        ({"x": [np.zeros((8, 8))] * 29 + [np.zeros((9, 9))]}, "`x` to be images of one shape"),
        ({"validation_split": 1.5}, "validation_split=1.5"),
        ({"init": {"max_trials": -1}}, "Received: max_trials=-1"),
        ({"init": {"max_trials": 0}}, "Received: max_trials=0"),
        ({"init": {"resize_shape": (0, 0)}}, r"resize_shape=\(0, 0\)"),
        (
            {"init": {"augment": True, "searcher_args": {"overfit_ratio": 2.0}}},
            "no `overfit_ratio`.*with `augment=True`",
        ),
    ],
)
def test_bad_input_is_refused_before_training(kwargs, match, tmp_path):
    x, y = quadrant_images(30, 0)
    kwargs = dict(kwargs)
    init = kwargs.pop("init", {})
    arguments = {"x": x, "y": y, "time_limit": 30, **kwargs}
    clf = kerasnas.ImageClassifier(directory=str(tmp_path), verbose=False, **init)
    with pytest.raises(ValueError, match=match):
        clf.fit(**arguments)
    assert not (tmp_path / "image_classifier").exists()  # refused before anything ran


def test_directory_and_its_old_name_path_together_is_an_error(tmp_path):
    clf = kerasnas.ImageClassifier(directory=str(tmp_path), path=str(tmp_path))  # only stored
    x, y = quadrant_images(30, 0)
    with pytest.raises(ValueError, match="not both"):
        clf.fit(x, y, time_limit=30)
    assert kerasnas.ImageClassifier().project_dir is None  # fit makes a temporary folder


def test_two_fits_into_one_directory_is_an_error(tmp_path):
    x, y = quadrant_images(30, 0)
    clf = kerasnas.ImageClassifier(directory=str(tmp_path), verbose=False)
    with _DirectoryLock(str(tmp_path / "image_classifier.lock")):  # as another process would
        with pytest.raises(RuntimeError, match="Another process is fitting into"):
            clf.fit(x, y, time_limit=30)


def test_dataset_input_and_resizing(tmp_path):
    x, y = quadrant_images(120, 1)
    small = x[:, ::2, ::2]  # 4x4 images, resized to 8x8
    dataset = tf.data.Dataset.from_tensor_slices((small, y)).batch(32)
    clf = kerasnas.ImageClassifier(
        directory=str(tmp_path), max_trials=1, resize_shape=(8, 8), verbose=False, seed=0
    )
    clf.fit(dataset, time_limit=30, epochs=2)
    assert clf.predict(small[:5]).shape == (5,)
    assert clf.export_model().input_shape == (None, 4, 4)


@pytest.mark.slow
def test_regressor(tmp_path):
    x, y = quadrant_images(150, 2, dtype="float32")
    target = x[:, :4, :4].mean(axis=(1, 2))  # brightness of the top-left quadrant
    reg = kerasnas.ImageRegressor(directory=str(tmp_path), max_trials=2, verbose=False, seed=0)
    reg.fit(x, target, time_limit=40, epochs=5)
    assert reg.predict(x[:7]).shape == (7,)
    # On held-out images it must clearly beat predicting the training mean.
    x_new, y_new = quadrant_images(60, 3, dtype="float32")
    target_new = x_new[:, :4, :4].mean(axis=(1, 2))
    baseline = np.mean((target_new - target.mean()) ** 2)
    assert reg.evaluate(x_new, target_new) < 0.5 * baseline
    assert "val_loss" in reg.history.columns
    # A shift would move the top-left quadrant.
    assert reg.tuner_.oracle.schedule.overfit_ratio is None
    weights = np.random.default_rng(0).uniform(0, 3, len(x_new))
    assert_evaluates_as_keras(reg, x_new, target_new, weights, "mse", "mae")


def assert_evaluates_as_keras(estimator, x, y, weights, loss, metric):
    """`evaluate(..., sample_weight=...)` gives what Keras' `evaluate` gives for the exported
    model compiled with `loss` and `weighted_metrics=[metric]`."""
    model = estimator.export_model()
    model.compile(loss=loss, weighted_metrics=[metric])
    expected = model.evaluate(x, y, sample_weight=weights, return_dict=True, verbose=0)
    got = estimator.evaluate(x, y, sample_weight=weights, return_dict=True)
    assert got.keys() == expected.keys()
    for name in got:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_the_seed_notebooks_calls(tmp_path, keras_fits):
    """The seed notebook's calls work, and hand Keras untuned Datasets (an autotuned iterator
    can stall an epoch's start for seconds) and `BatchNormMomentum` in every training."""
    import keras

    from kerasnas.callbacks import BatchNormMomentum

    x_train, y_train = quadrant_images(200, 3)
    x_test, y_test = quadrant_images(60, 4)
    clf = kerasnas.ImageClassifier(path=str(tmp_path), verbose=True, augment=False)
    clf.fit(x_train, y_train, time_limit=20)
    clf.final_fit(x_train, y_train, x_test, y_test, retrain=True)
    trainings = [  # the trials and final_fit; the probe's timings have no EarlyStopping
        callbacks
        for _, _, callbacks in keras_fits
        if any(isinstance(c, keras.callbacks.EarlyStopping) for c in callbacks)
    ]
    assert len(trainings) == len(clf.history) + 1
    assert all(any(isinstance(c, BatchNormMomentum) for c in cs) for cs in trainings)
    for data, validation, _ in keras_fits:
        for dataset in (data, validation):
            assert isinstance(dataset, tf.data.Dataset)
            assert dataset.options().autotune.enabled is False
    accuracy = clf.evaluate(x_test, y_test)
    assert accuracy >= 0.8
    probabilities = clf.predict_proba(x_test[:20])
    np.testing.assert_array_equal(clf.predict(x_test[:20]), probabilities.argmax(axis=1))
    metadata = json.loads((tmp_path / "image_classifier" / "kerasnas.json").read_text())
    assert metadata["final_weights"] == "final.weights.h5"


@pytest.mark.slow
def test_fit_keeps_its_time_limit(tmp_path):
    time_limit = 30
    x, y = quadrant_images(2000, 5)
    clf = kerasnas.ImageClassifier(directory=str(tmp_path), verbose=False, seed=0)
    start = time.time()
    clf.fit(x, y, time_limit=time_limit, epochs=1000)
    elapsed = time.time() - start
    assert elapsed <= time_limit + 5  # the promise: T plus a few seconds, at most 5
    assert len(clf.history) >= 2


RESUMABLE_FIT = """
import numpy as np
from kerasnas.testing import quadrant_images
import kerasnas
x, y = quadrant_images(600, 6)
clf = kerasnas.ImageClassifier(directory={directory!r}, seed=0, verbose=True)
clf.fit(x, y, time_limit=300, epochs=3)
"""


@pytest.mark.slow
def test_a_killed_search_resumes_and_keeps_its_trials_and_time_limit(tmp_path):
    code = RESUMABLE_FIT.format(directory=str(tmp_path))
    process = subprocess.Popen(
        [sys.executable, "-u", "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        for line in process.stdout:  # kill it during its third trial
            if line.startswith("Trial 0002:"):
                time.sleep(1)
                break
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    project = tmp_path / "image_classifier"
    before = {
        p.parent.name: json.loads(p.read_text())["status"]
        for p in project.glob("trial_*/trial.json")
    }
    assert [before[f"trial_000{i}"] for i in range(2)] == ["COMPLETED"] * 2

    x, y = quadrant_images(600, 6)
    clf = kerasnas.ImageClassifier(directory=str(tmp_path), seed=0, verbose=False)
    start = time.time()
    clf.fit(x, y, time_limit=25, epochs=3)
    assert time.time() - start <= 25 + 5  # the time limit's promise, kept on resume
    history = clf.history.set_index("trial_id")
    for trial_id, status in before.items():
        if status == "COMPLETED":
            assert history.loc[trial_id[len("trial_") :], "status"] == "COMPLETED"
    assert len(history) > 2


def test_augmentation_trains_on_shifted_copies(tmp_path):
    x, y = quadrant_images(120, 10)
    clf = kerasnas.ImageClassifier(
        directory=str(tmp_path), max_trials=1, augment=True, verbose=False, seed=0
    )
    clf.fit(x, y, time_limit=30, epochs=2)
    assert clf.history["status"].tolist() == ["COMPLETED"]
    assert clf.tuner_.oracle.schedule.overfit_ratio is None  # no refinement switches it on again
    assert clf.predict(x[:4]).shape == (4,)


@pytest.mark.slow
def test_export_writes_a_saved_model_served_by_tensorflow_alone(fitted_classifier, tmp_path):
    clf, _ = fitted_classifier
    x, _ = quadrant_images(12, 11)
    path = clf.export(tmp_path / "serving")
    labels = json.loads((tmp_path / "serving" / "kerasnas_labels.json").read_text())
    assert labels["classes"] == clf.classes_.tolist() and labels["input_dtype"] == "uint8"
    np.save(tmp_path / "x.npy", x)
    code = textwrap.dedent(f"""
        import sys, numpy as np, tensorflow as tf
        serve = tf.saved_model.load({str(path)!r}).signatures["serving_default"]
        (out,) = serve(tf.constant(np.load({str(tmp_path / "x.npy")!r}))).values()
        np.save({str(tmp_path / "p.npy")!r}, out.numpy())
        assert not any(m.startswith("kerasnas") for m in sys.modules)
    """)
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), clf.predict_proba(x), atol=1e-5)


# ---------------------------------------------------------------------- reliability


def fitted_state(clf):
    x, _ = quadrant_images(10, 12)
    return (
        clf.classes_.tolist(),
        clf.encoder_.get_config(),
        clf.input_dtype_,
        clf.input_shape_,
        clf.best_trial_id_,
        clf.predict(x).tolist(),
    )


@pytest.mark.slow
def test_a_rejected_fit_leaves_a_fitted_classifier_unchanged(fitted_classifier):
    clf, directory = fitted_classifier
    before = fitted_state(clf)
    x, y = quadrant_images(30, 13, dtype="float32")
    y = y.clip(0, 1)  # two int classes instead of three names
    with pytest.raises(ValueError, match="validation images of shape"):
        clf.fit(x, y, validation_data=(np.repeat(x[..., None], 3, -1), y), time_limit=30)
    assert fitted_state(clf) == before
    with _DirectoryLock(os.path.join(str(directory), "image_classifier.lock")):
        with pytest.raises(RuntimeError, match="Another process is fitting into"):
            clf.fit(x, y, time_limit=30)
    assert fitted_state(clf) == before


@pytest.mark.parametrize("time_limit", [np.float32(10), np.int64(10), 10.5])
def test_numpy_scalars_are_accepted_as_time_limits(time_limit, tmp_path):
    x, y = quadrant_images(30, 0)
    clf = kerasnas.ImageClassifier(directory=str(tmp_path), verbose=False)
    with _DirectoryLock(str(tmp_path / "image_classifier.lock")):  # stops fit after its checks
        with pytest.raises(RuntimeError, match="Another process"):
            clf.fit(x, y, time_limit=time_limit)


@pytest.mark.slow
def test_final_fit_checks_its_arguments(fitted_classifier):
    clf, _ = fitted_classifier
    x, y = quadrant_images(20, 14)
    with pytest.raises(ValueError, match="time_limit='10'"):
        clf.final_fit(x, NAMES[y], time_limit="10")
    with pytest.raises(ValueError, match="Received: epochs=0"):
        clf.final_fit(x, NAMES[y], epochs=0)


@pytest.mark.slow
def test_final_fit_chooses_nothing_on_the_test_set(run_copy, keras_fits, monkeypatch):
    """Epochs and weights are chosen on images held out of x_train; the test images,
    whose labels are all wrong here, are read for the report only after training."""
    import keras

    clf = kerasnas.load(run_copy[1])
    x, y = quadrant_images(80, 15)
    x_test, y_test = quadrant_images(30, 16)
    wrong = NAMES[(y_test + 1) % 3]  # every label wrong: monitoring on them would show it
    events = []
    evaluate = type(clf).evaluate

    def recording_evaluate(self, *args, **kwargs):
        events.append(("evaluate", len(keras_fits)))
        return evaluate(self, *args, **kwargs)

    monkeypatch.setattr(type(clf), "evaluate", recording_evaluate)
    clf.final_fit(x, NAMES[y], x_test, wrong, epochs=2, batch_size=16)
    ((_, validation, callbacks),) = keras_fits
    assert sum(len(batch[0]) for batch in validation) == 8  # 10% of x_train, not x_test
    stopping = [c for c in callbacks if isinstance(c, keras.callbacks.EarlyStopping)]
    assert stopping[0].monitor == "val_accuracy"
    assert events == [("evaluate", 1)]  # once, after the one training
    assert clf.final_test_score_ == clf.evaluate(x_test, wrong)
    with pytest.raises(ValueError, match="x_test"):  # still checked before any training
        clf.final_fit(x, NAMES[y], x_test[:, :4], wrong, epochs=1)
    assert len(keras_fits) == 1


def image_sums(dataset):
    """Each training image's sum over one pass, sorted (the pass's order is shuffled)."""
    return np.sort(np.concatenate([np.sum(batch[0], axis=(1, 2, 3)) for batch in dataset]))


@pytest.mark.parametrize(
    "settings, search_augmented, watched",
    [
        ({}, False, True),
        ({"searcher_args": {"overfit_ratio": None}}, False, False),
        ({"augment": True}, False, False),
        ({}, True, False),
    ],
)
@pytest.mark.slow
def test_final_fit_augments_as_the_search_did(
    run_copy, keras_fits, settings, search_augmented, watched
):
    """By default once it overfits (as `fit`'s refinement), never with the ratio None,
    and throughout with `augment=True` or when the search's best trial trained so."""
    from kerasnas.callbacks import AugmentWhenOverfitting

    clf = kerasnas.load(run_copy[1])
    for name, value in settings.items():
        setattr(clf, name, value)
    best = clf.trials_[clf.best_trial_id_]
    plan = trials.plan_of(best) or trials.TrialPlan()
    plan.augment = search_augmented
    best.hyperparameters.values[trials.PLAN] = json.dumps(plan.get_config())
    x, y = quadrant_images(40, 15)
    clf.final_fit(x, NAMES[y], epochs=1, batch_size=16)
    ((data, _, callbacks),) = keras_fits
    watch = [c for c in callbacks if isinstance(c, AugmentWhenOverfitting)]
    assert len(watch) == watched
    if watched:
        assert watch[0].ratio == 2.0 and watch[0].augmented_after is None
        np.testing.assert_allclose(image_sums(data), image_sums(data))  # off: as they are
        watch[0].switch.assign(True)
    augmented = watched or settings.get("augment", False) or search_augmented
    assert np.allclose(image_sums(data), image_sums(data)) != augmented


@pytest.mark.slow
def test_predict_names_the_shape_fit_saw(fitted_classifier):
    clf, _ = fitted_classifier
    with pytest.raises(
        ValueError, match=r"shaped \(8, 8\), like those given to `fit`; got .*\(9, 9\)"
    ):
        clf.predict(np.zeros((2, 9, 9), "uint8"))
    assert clf.predict(np.zeros((2, 8, 8, 1), "uint8")).shape == (2,)


@pytest.mark.slow
def test_resuming_with_other_classes_is_refused(fitted_classifier):
    _, directory = fitted_classifier
    x, y = quadrant_images(30, 15)
    clf = kerasnas.ImageClassifier(directory=str(directory), verbose=False)
    with pytest.raises(
        ValueError, match=r"classes \['bottom', 'left', 'right'\], not \[0, 1\].*overwrite=True"
    ):
        clf.fit(x, y.clip(0, 1), time_limit=30)
    with pytest.raises(ValueError, match=r"images shaped \(8, 8\), not \(8, 8, 3\)"):
        clf.fit(np.repeat(x[..., None], 3, -1), NAMES[y], time_limit=30)
    assert not hasattr(clf, "encoder_")


@pytest.fixture
def run_copy(fitted_classifier, tmp_path):
    """A copy of the fitted classifier's run folder, renamed: (classifier, copy)."""
    clf, directory = fitted_classifier
    copy = tmp_path / "renamed_run"
    shutil.copytree(directory / "image_classifier", copy)
    return clf, copy


def snapshot(folder):
    return {
        str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size)
        for p in folder.rglob("*")
    }


@pytest.mark.slow
def test_a_renamed_run_loads_where_it_is_without_writing(run_copy):
    clf, copy = run_copy
    before = snapshot(copy.parent)
    x, _ = quadrant_images(10, 16)
    for where in (copy, copy.parent):
        again = kerasnas.load(where)
        np.testing.assert_allclose(again.predict_proba(x), clf.predict_proba(x), atol=1e-6)
        assert again.project_dir == str(copy)
        assert len(again.history) == len(clf.history)
    assert snapshot(copy.parent) == before


def edit_metadata(folder, **changes):
    path = folder / "kerasnas.json"
    metadata = json.loads(path.read_text())
    metadata.update(changes)
    path.write_text(json.dumps(metadata))


@pytest.mark.slow
def test_names_in_kerasnas_json_stay_inside_the_run(run_copy, tmp_path):
    clf, copy = run_copy
    elsewhere = tmp_path / "other" / "run"
    shutil.copytree(copy, elsewhere)
    edit_metadata(elsewhere, best_trial_id="0000")
    edit_metadata(copy, project_name="../other/run")
    assert kerasnas.load(copy).best_trial_id_ == clf.best_trial_id_  # not the other run's
    edit_metadata(copy, final_weights=str(elsewhere / "trial_0000" / "checkpoint.weights.h5"))
    with pytest.raises(ValueError, match="only the name of a `.weights.h5` file inside"):
        kerasnas.load(copy)
    edit_metadata(copy, final_weights=None, best_trial_id="../../x")
    with pytest.raises(ValueError, match="not a trial id"):
        kerasnas.load(copy)


@pytest.mark.slow
def test_damaged_files_are_named(run_copy):
    clf, copy = run_copy
    best = copy / f"trial_{clf.best_trial_id_}"
    (best / "checkpoint.weights.h5").write_bytes(b"\x89HDF\r\n garbage")
    with pytest.raises(ValueError, match=r"checkpoint.weights.h5 cannot be read.*Rerun `fit`"):
        kerasnas.load(copy)
    (best / "trial.json").write_text("")
    unreadable = f"best trial {clf.best_trial_id_} .* cannot be used: .*trial.json is empty"
    with pytest.raises(ValueError, match=unreadable):
        kerasnas.load(copy)
    (copy / "kerasnas.json").write_text('{"task": "classif')
    with pytest.raises(ValueError, match=r"kerasnas.json is not valid JSON.*overwrite=True"):
        kerasnas.load(copy)
    (copy / "kerasnas.json").write_text('{"task": "classification"}')
    with pytest.raises(ValueError, match="kerasnas.json lacks or has malformed objective"):
        kerasnas.load(copy)


@pytest.mark.slow
def test_resuming_falls_back_from_an_unreadable_best_checkpoint(run_copy):
    clf, copy = run_copy
    (copy / f"trial_{clf.best_trial_id_}" / "checkpoint.weights.h5").write_bytes(b"")
    x, y = quadrant_images(240, 0)
    again = kerasnas.ImageClassifier(
        directory=str(copy.parent), project_name=copy.name, seed=1, max_trials=4, verbose=False
    )
    with pytest.warns(RuntimeWarning, match=r"checkpoint.weights.h5 cannot be read.*Using trial"):
        again.fit(x, NAMES[y], time_limit=30, epochs=3)  # max_trials reached: nothing trains
    assert again.best_trial_id_ != clf.best_trial_id_
    assert kerasnas.load(copy).best_trial_id_ == again.best_trial_id_


def test_a_full_disk_gives_one_clear_error_and_leaves_the_estimator_as_it_was(
    monkeypatch, tmp_path
):
    from kerasnas import files

    def full(path, obj, indent=2):
        raise OSError(errno.ENOSPC, "No space left on device", path)

    monkeypatch.setattr(files, "write_json", full)
    x, y = quadrant_images(30, 0)
    clf = kerasnas.ImageClassifier(directory=str(tmp_path), verbose=False)
    with pytest.raises(OSError, match="No space left on the device of .* resumes") as info:
        clf.fit(x, y, time_limit=30)
    assert info.value.errno == errno.ENOSPC
    assert not hasattr(clf, "model_") and clf.project_dir == str(tmp_path / "image_classifier")


@pytest.fixture(scope="module")
def resized_classifier(tmp_path_factory):
    """Fitted on 4x4 images resized to 8x8, from a dataset batched with drop_remainder."""
    x, y = quadrant_images(120, 1)
    small = x[:, ::2, ::2]
    dataset = tf.data.Dataset.from_tensor_slices((small, y)).batch(32, drop_remainder=True)
    clf = kerasnas.ImageClassifier(
        directory=str(tmp_path_factory.mktemp("resized")),
        max_trials=1,
        resize_shape=(8, 8),
        verbose=False,
        seed=0,
    )
    clf.fit(dataset, time_limit=30, epochs=2)
    return clf, small


def test_a_drop_remainder_dataset_is_read_as_batches(resized_classifier):
    clf, small = resized_classifier
    assert clf.input_shape_ == (4, 4)
    assert clf.predict(small[:5]).shape == (5,)
    labels = clf.predict(small[:40])
    pairs = tf.data.Dataset.from_tensor_slices((small[:40], labels)).batch(16)
    images = tf.data.Dataset.from_tensor_slices(small[:40])  # unbatched, no labels
    assert clf.predict(pairs, batch_size=8).tolist() == labels.tolist()
    assert clf.predict(images).tolist() == labels.tolist()
    assert clf.evaluate(pairs) == 1.0 and clf.evaluate(small[:40], labels, batch_size=4) == 1.0


def test_the_saved_model_of_a_resizing_classifier_is_deterministic(resized_classifier, tmp_path):
    clf, small = resized_classifier
    path = clf.export(tmp_path / "serving")
    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    first, second = (list(serve(tf.constant(small[:16])).values())[0].numpy() for _ in range(2))
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(first, clf.predict_proba(small[:16]), atol=1e-5)


@pytest.mark.slow
def test_bytes_and_uint8_labels_survive_fit_and_load(tmp_path):
    x, y = quadrant_images(60, 17)
    clf = kerasnas.ImageClassifier(directory=str(tmp_path), max_trials=1, verbose=False, seed=0)
    clf.fit(x, np.array([b"left", b"right", b"up"])[y], time_limit=30, epochs=1)
    assert clf.classes_.tolist() == ["left", "right", "up"]
    assert kerasnas.load(tmp_path).predict(x[:3]).dtype.kind == "U"
    other = kerasnas.ImageClassifier(directory=str(tmp_path / "u8"), max_trials=1, verbose=False)
    other.fit(x, y.astype("uint8"), time_limit=30, epochs=1)
    assert kerasnas.load(tmp_path / "u8").predict(x[:3]).dtype == np.uint8


def test_one_image_without_its_batch_axis_is_told_to_add_it(resized_classifier):
    clf, small = resized_classifier
    with pytest.raises(ValueError, match=r"one image of shape \(4, 4\) without its batch axis"):
        clf.predict(small[0])
    with pytest.raises(ValueError, match=r"x\[None\]"):
        clf.predict(small[0][..., None])


def test_images_scaled_unlike_fit_get_a_warning(resized_classifier):
    clf, small = resized_classifier
    scaled = r"range over \[0\.0039\d*, 0\.98\d*\].*ranged over \[0, 25\d\].*divided by 255"
    with pytest.warns(UserWarning, match=scaled):
        clf.predict(small[:8] / 255.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clf.predict(small[:8].astype("float32"))  # same values, another dtype: fine


def test_load_is_a_classmethod_that_checks_the_task(resized_classifier):
    clf, small = resized_classifier
    again = kerasnas.ImageClassifier.load(clf.project_dir)
    assert again.predict(small[:6]).tolist() == clf.predict(small[:6]).tolist()
    assert (
        again.get_params()["resize_shape"] == (8, 8) and again.trials_.keys() == clf.trials_.keys()
    )
    with pytest.raises(ValueError, match="holds a classification search; load it with Image"):
        kerasnas.ImageRegressor.load(clf.project_dir)


class InterruptTraining:
    """A Keras callback that raises KeyboardInterrupt (as Ctrl-C would) in the `at`-th
    training that calls it, after its first batch. Trials get deep copies of the user's
    callbacks, so the count lives on the class."""

    trainings = 0

    @classmethod
    def at(cls, n):
        import keras

        class Interrupt(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                InterruptTraining.trainings += 1

            def on_train_batch_end(self, batch, logs=None):
                if InterruptTraining.trainings == n:
                    raise KeyboardInterrupt

        cls.trainings = 0
        return Interrupt()


@pytest.mark.slow
def test_ctrl_c_after_a_trial_leaves_the_best_model_so_far_ready(tmp_path):
    x, y = quadrant_images(90, 20)
    clf = kerasnas.ImageClassifier(directory=str(tmp_path), max_trials=3, verbose=False, seed=0)
    # (KerasTuner's trial ids have as many digits as max_trials: "0", "1", ...)
    with pytest.raises(KeyboardInterrupt, match=r"best model so far, trial 0 \(val_accuracy"):
        clf.fit(x, y, time_limit=300, epochs=1, callbacks=[InterruptTraining.at(2)])
    assert clf.best_trial_id_ == "0" and clf.ensemble_ == []
    assert clf.predict(x[:5]).shape == (5,)
    assert clf.history.set_index("trial_id")["status"].to_dict() == {
        "0": "COMPLETED",
        "1": "RUNNING",
    }
    again = kerasnas.load(tmp_path)  # the run folder names the model, as after a finished fit
    assert again.best_trial_id_ == "0"
    np.testing.assert_allclose(again.predict_proba(x[:5]), clf.predict_proba(x[:5]), atol=1e-6)


def test_ctrl_c_before_any_trial_completed_leaves_the_estimator_unfitted(tmp_path):
    x, y = quadrant_images(60, 21)
    clf = kerasnas.ImageClassifier(directory=str(tmp_path), max_trials=1, verbose=False, seed=0)
    with pytest.raises(KeyboardInterrupt) as info:
        clf.fit(x, y, time_limit=300, epochs=1, callbacks=[InterruptTraining.at(1)])
    assert type(info.value) is KeyboardInterrupt  # not the "model ready" one
    with pytest.raises(kerasnas.NotFittedError, match="Call `fit` first"):
        clf.predict(x[:2])


def test_evaluate_weighs_images_as_keras_does(resized_classifier):
    clf, small = resized_classifier
    x, y = small[:50], clf.predict(small[:50])
    y[::3] = (y[::3] + 1) % 3  # some wrong, so that the weights matter
    weights = np.random.default_rng(1).uniform(0, 3, len(x))
    assert_evaluates_as_keras(clf, x, y, weights, "sparse_categorical_crossentropy", "accuracy")
    correct = clf.predict(x) == y
    assert clf.evaluate(x, y, sample_weight=weights) == pytest.approx(
        np.sum(weights * correct) / weights.sum()
    )
    assert clf.evaluate(x, y, sample_weight=np.ones(len(x))) == clf.evaluate(x, y)
    dataset = tf.data.Dataset.from_tensor_slices((x, y))
    for kwargs, match in [
        ({"x": dataset, "sample_weight": weights}, "only with numpy images `x`"),
        ({"x": x, "y": y, "sample_weight": weights[:-1]}, r"50 finite numbers >= 0.*\(49,\)"),
        ({"x": x, "y": y, "sample_weight": np.zeros(len(x))}, "a positive sum"),
    ]:
        with pytest.raises(ValueError, match=match):
            clf.evaluate(**kwargs)


REPRODUCIBLE_SCORES = 1e-5  # TensorFlow's float tolerance allowed between two CPU runs


def search_record(clf):
    """`(proposals, scores)` of a fitted search: each trial's architecture and parent, and
    its objective and validation loss."""
    ordered = sorted(clf.trials_.items())
    proposals = [
        (i, trials.graph_of(t).architecture_key(), trials.parent_of(t)) for i, t in ordered
    ]
    scores = [(t.score, trials.metric(t, trials.TIE_VAL_LOSS)) for _, t in ordered]
    return proposals, np.array(scores, dtype="float64")


@pytest.mark.slow
def test_the_same_seed_without_a_time_limit_gives_the_same_search_on_a_cpu(tmp_path):
    """Proposals equal, scores and outputs within `REPRODUCIBLE_SCORES` (measured: identical
    to the last bit, in one process and in two; see the `seed` argument's docstring)."""
    x, y = quadrant_images(80, 22)
    records = []
    for run in ("a", "b"):
        clf = kerasnas.ImageClassifier(
            directory=str(tmp_path / run), seed=3, max_trials=4, verbose=False
        )
        clf.fit(x, y, epochs=1)  # no time limit
        records.append((*search_record(clf), clf.predict_proba(x[:20])))
    (proposals, scores, outputs), (again, again_scores, again_outputs) = records
    assert proposals == again
    assert any(parent is not None for _, _, parent in proposals)  # a morphism child too
    np.testing.assert_allclose(again_scores, scores, rtol=0, atol=REPRODUCIBLE_SCORES)
    np.testing.assert_allclose(again_outputs, outputs, rtol=0, atol=REPRODUCIBLE_SCORES)
