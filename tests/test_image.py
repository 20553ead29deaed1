"""ImageClassifier and ImageRegressor as users call them."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import quadrant_images

import kerasnas
from kerasnas.tasks.image import _DirectoryLock

NAMES = np.array(["left", "right", "bottom"])


def test_fit_predict_evaluate_in_the_users_labels(fitted_classifier):
    clf, _ = fitted_classifier
    x, y = quadrant_images(60, 7)
    assert set(clf.predict(x)) <= set(NAMES)
    assert clf.evaluate(x, NAMES[y]) >= 0.9
    proba = clf.predict_proba(x)
    assert proba.shape == (60, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1, atol=1e-5)
    assert clf.classes_.tolist() == sorted(NAMES.tolist())


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
        "val_accuracy",
        "status",
    ):
        assert column in history.columns
    assert history["status"].eq("COMPLETED").all()
    assert history["morphisms"].iloc[3]  # the fourth trial is a morphed child


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


def test_load_gives_back_a_fitted_classifier(fitted_classifier):
    clf, directory = fitted_classifier
    x, _ = quadrant_images(20, 9)
    again = kerasnas.load(directory)
    assert isinstance(again, kerasnas.ImageClassifier)
    np.testing.assert_allclose(again.predict_proba(x), clf.predict_proba(x), atol=1e-6)
    assert again.predict(x).tolist() == clf.predict(x).tolist()


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
    ],
)
def test_bad_input_is_refused_before_training(kwargs, match, tmp_path):
    x, y = quadrant_images(30, 0)
    arguments = {"x": x, "y": y, "time_limit": 30, **kwargs}
    clf = kerasnas.ImageClassifier(directory=str(tmp_path), verbose=False)
    start = time.time()
    with pytest.raises(ValueError, match=match):
        clf.fit(**arguments)
    assert time.time() - start < 2
    assert not (tmp_path / "image_classifier").exists()


def test_directory_and_its_old_name_path_together_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="not both"):
        kerasnas.ImageClassifier(directory=str(tmp_path), path=str(tmp_path))
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


def test_regressor(tmp_path):
    x, y = quadrant_images(150, 2, dtype="float32")
    target = x[:, :4, :4].mean(axis=(1, 2))  # brightness of the top-left quadrant
    reg = kerasnas.ImageRegressor(directory=str(tmp_path), max_trials=2, verbose=False, seed=0)
    reg.fit(x, target, time_limit=40, epochs=5)
    assert reg.predict(x[:7]).shape == (7,)
    assert reg.evaluate(x, target) < np.var(target) + 1e-3
    assert "val_loss" in reg.history.columns


@pytest.mark.slow
def test_the_seed_notebooks_calls(tmp_path):
    x_train, y_train = quadrant_images(200, 3)
    x_test, y_test = quadrant_images(60, 4)
    clf = kerasnas.ImageClassifier(path=str(tmp_path), verbose=True, augment=False)
    clf.fit(x_train, y_train, time_limit=30)
    clf.final_fit(x_train, y_train, x_test, y_test, retrain=True)
    accuracy = clf.evaluate(x_test, y_test)
    assert 0.8 <= accuracy <= 1.0
    assert clf.predict(x_test[0:1])[0] in (0, 1, 2)
    metadata = json.loads((tmp_path / "image_classifier" / "kerasnas.json").read_text())
    assert metadata["final_weights"] == "final.weights.h5"


@pytest.mark.slow
@pytest.mark.parametrize("time_limit", [30, 45])
def test_fit_keeps_its_time_limit(time_limit, tmp_path):
    x, y = quadrant_images(2000, 5)
    clf = kerasnas.ImageClassifier(directory=str(tmp_path), verbose=False, seed=0)
    start = time.time()
    clf.fit(x, y, time_limit=time_limit, epochs=1000)
    elapsed = time.time() - start
    assert elapsed <= time_limit + 10
    assert len(clf.history) >= 2


RESUMABLE_FIT = """
import sys, numpy as np
sys.path.insert(0, {tests!r})
from conftest import quadrant_images
import kerasnas
x, y = quadrant_images(600, 6)
clf = kerasnas.ImageClassifier(directory={directory!r}, seed=0, verbose=True)
clf.fit(x, y, time_limit=300, epochs=3)
"""


@pytest.mark.slow
def test_a_killed_search_resumes_and_keeps_its_trials_and_time_limit(tmp_path):
    code = RESUMABLE_FIT.format(
        tests=str(__import__("pathlib").Path(__file__).parent), directory=str(tmp_path)
    )
    process = subprocess.Popen(
        [sys.executable, "-u", "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        for line in process.stdout:  # kill it during its fourth trial
            if line.startswith("Trial 0003:"):
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
    assert [before[f"trial_000{i}"] for i in range(3)] == ["COMPLETED"] * 3

    x, y = quadrant_images(600, 6)
    clf = kerasnas.ImageClassifier(directory=str(tmp_path), seed=0, verbose=False)
    start = time.time()
    clf.fit(x, y, time_limit=25, epochs=3)
    assert time.time() - start <= 25 + 10
    history = clf.history.set_index("trial_id")
    for trial_id, status in before.items():
        if status == "COMPLETED":
            assert history.loc[trial_id[len("trial_") :], "status"] == "COMPLETED"
    assert len(history) > 3


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)


def test_augmentation_trains_on_shifted_copies(tmp_path):
    x, y = quadrant_images(120, 10)
    clf = kerasnas.ImageClassifier(
        directory=str(tmp_path), max_trials=1, augment=True, verbose=False, seed=0
    )
    clf.fit(x, y, time_limit=30, epochs=2)
    assert clf.history["status"].tolist() == ["COMPLETED"]
    assert clf.predict(x[:4]).shape == (4,)


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
