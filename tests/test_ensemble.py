"""The ensemble finish: choosing and gathering members, and ensembles that load, train,
save and export as plain Keras models."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import textwrap
import types

import numpy as np
import pytest

import kerasnas
from kerasnas import files, trials
from kerasnas.graph import generators
from kerasnas.tasks import ensemble, feeds
from kerasnas.testing import quadrant_images
from kerasnas.trials import checkpoint_path

NAMES = np.array(["left", "right", "bottom"])
# Three tiny, distinct architectures, best first.
SIZES = [{}, {"filters": 6}, {"dense_units": 12}]


def graph(**size):
    return generators.cnn((8, 8, 1), 3, **{"filters": 4, "dense_units": 8, **size})


def make_trial(trial_id, architecture, score, status="COMPLETED", parent="", refine=False):
    """A KerasTuner trial as the oracle makes one, for `architecture` (a Graph)."""
    import keras_tuner
    from keras_tuner.engine.trial import Trial

    hyperparameters = keras_tuner.HyperParameters()
    hyperparameters.values.update(trials.values(architecture, parent, refine))
    trial = Trial(hyperparameters, trial_id=trial_id, status=status)
    trial.score = score
    return trial


# ---------------------------------------------------------------------- choose


LABELS = np.array([0, 1, 2, 0])
FIRST = np.array([[0.6, 0.2, 0.2], [0.2, 0.6, 0.2], [0.2, 0.2, 0.6], [0.3, 0.6, 0.1]])  # 3 of 4
FIXES = np.array([[0.3, 0.5, 0.2], [0.2, 0.6, 0.2], [0.2, 0.2, 0.6], [0.9, 0.05, 0.05]])  # 3 of 4
WRONG = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # 0 of 4
RIGHT = np.eye(3)[LABELS]  # 4 of 4


@pytest.mark.parametrize(
    "outputs, expected",
    [
        ([FIRST], 1),
        ([FIRST, FIXES], 2),  # 3/4 and 3/4 alone, 4/4 together
        ([FIRST, FIRST], 1),  # a tie keeps the single model
        ([FIRST, WRONG], 1),
        ([FIRST, FIRST, RIGHT], 3),  # two no better, three better
        ([FIRST, FIXES, WRONG], 2),  # the best prefix, not the longest
        ([FIRST, FIXES, RIGHT], 2),  # three ties two: the shorter
    ],
)
def test_choose_averages_only_when_strictly_more_accurate(outputs, expected):
    many = [np.tile(o, (4, 1)) for o in outputs]  # 16 images: one in four gained is no noise
    assert ensemble.choose(many, np.tile(LABELS, 4), "classification") == expected


def test_choose_keeps_the_single_model_when_the_gain_is_within_noise():
    labels = np.zeros(1000, dtype=int)
    single = np.tile([0.6, 0.4], (1000, 1))
    single[:10] = [0.4, 0.6]  # 990 of 1000 right
    other = single.copy()
    other[:2] = [0.9, 0.1]
    other[10:11] = [0.1, 0.9]  # together: 991 right, 1 lost, 2 gained
    assert ensemble.choose([single, other], labels, "classification") == 1
    other[:10] = [0.9, 0.1]  # together: 999 right, 1 lost, 10 gained
    assert ensemble.choose([single, other], labels, "classification") == 2


TARGETS = np.array([[0.0], [1.0], [2.0]])
LOW = np.array([[0.5], [1.0], [2.0]])  # squared error 0.25 on the first
HIGH = np.array([[-0.5], [1.0], [2.0]])  # as bad, the other way: together exact


@pytest.mark.parametrize(
    "outputs, expected",
    [([LOW, HIGH], 2), ([LOW, LOW], 1), ([LOW, np.full((3, 1), 5.0)], 1), ([LOW, LOW, HIGH], 3)],
)
def test_choose_averages_only_when_the_squared_error_is_strictly_lower(outputs, expected):
    many = [np.tile(o, (4, 1)) for o in outputs]
    assert ensemble.choose(many, np.tile(TARGETS, (4, 1)), "regression") == expected


def test_choose_names_what_it_cannot_use():
    with pytest.raises(ValueError, match="Received: task='ranking'"):
        ensemble.choose([FIRST], LABELS, "ranking")
    with pytest.raises(ValueError, match="at least one member"):
        ensemble.choose([], LABELS, "classification")


# ---------------------------------------------------------------------- members and gather


def test_members_keep_the_best_trial_of_each_architecture_and_at_most_k():
    a, b, c, d = graph(), graph(filters=6), graph(dense_units=12), graph(filters=2)
    broken = make_trial("0006", a, 0.99)
    broken.hyperparameters.values.clear()  # as read from a damaged trial.json
    ranked = [
        broken,
        make_trial("0001", a, 0.95, parent="0000", refine=True),  # A trained on: same key
        make_trial("0000", a, 0.90),
        make_trial("0002", b, 0.85),
        make_trial("0003", c, 0.84, status="FAILED"),
        make_trial("0004", c, 0.80),
        make_trial("0005", d, 0.70),
    ]
    ids = [t.trial_id for t in ensemble.members(ranked, 3)]
    assert ids == ["0001", "0002", "0004"]
    assert [t.trial_id for t in ensemble.members(ranked, 2)] == ["0001", "0002"]
    assert [t.trial_id for t in ensemble.members(ranked, 1)] == ["0001"]
    assert len(ensemble.members(ranked, 10)) == 4


def candidate(trial_id, flops=1.0):
    return types.SimpleNamespace(trial_id=trial_id, flops=flops)


def test_gather_stops_when_the_next_member_would_pass_the_deadline(clock):
    def load(trial):
        clock.advance(0.5)
        return trial.trial_id

    def predict(model):
        clock.advance(1.5)
        return np.full((2, 3), float(model))

    deadline = clock() + 5.0  # two members of 2 s fit, a third would end at 6 s
    found = ensemble.gather(
        [candidate(str(i)) for i in range(4)],
        load,
        predict,
        deadline,
        flops=lambda t: t.flops,
        clock=clock,
    )
    assert [t.trial_id for t, _, _ in found] == ["0", "1"]
    assert clock() <= deadline
    np.testing.assert_array_equal(found[1][2], np.ones((2, 3)))


def test_gather_expects_bigger_members_to_take_longer(clock):
    def predict(model):
        clock.advance(1.0)
        return np.zeros((2, 3))

    # After a 1 s member of 1 FLOP, a 3-FLOP member is expected to take 3 s: 4 s > 3.5 s.
    found = ensemble.gather(
        [candidate("0"), candidate("1", flops=3.0), candidate("2")],
        lambda t: t,
        predict,
        clock() + 3.5,
        flops=lambda t: t.flops,
        clock=clock,
    )
    assert [t.trial_id for t, _, _ in found] == ["0"]
    # The first member's expected time is given: it must fit too.
    none = ensemble.gather(
        [candidate("0")],
        lambda t: t,
        predict,
        clock() + 1,
        flops=lambda t: 1,
        first_seconds=2,
        clock=clock,
    )
    assert none == []


def test_gather_skips_a_member_whose_weights_do_not_load(clock, caplog):
    def load(trial):
        if trial.trial_id == "1":
            raise files.RunFileError("The weights file trial_1/checkpoint.weights.h5 is missing.")
        return trial

    with caplog.at_level(logging.WARNING, logger="kerasnas"):
        found = ensemble.gather(
            [candidate(str(i)) for i in range(3)],
            load,
            lambda m: np.zeros((1, 3)),
            clock() + 10,
            flops=lambda t: 1,
            clock=clock,
        )
    assert [t.trial_id for t, _, _ in found] == ["0", "2"]
    assert "goes on without trial 1" in caplog.text and "checkpoint.weights.h5" in caplog.text


def test_average_is_one_model_of_the_mean_and_needs_distinct_names():
    models = [graph(**size).to_keras(name=f"trial_{i}") for i, size in enumerate(SIZES)]
    x = np.random.default_rng(0).normal(size=(5, 8, 8, 1)).astype("float32")
    mean = np.mean([np.asarray(m(x, training=False)) for m in models], axis=0)
    averaged = ensemble.average(models)
    np.testing.assert_allclose(np.asarray(averaged(x, training=False)), mean, atol=1e-6)
    with pytest.raises(ValueError, match=r"distinct names.*\['trial_0', 'trial_0'\]"):
        ensemble.average([models[0], models[0]])
    with pytest.raises(ValueError, match="at least 2 models"):
        ensemble.average(models[:1])


# ---------------------------------------------------------------------- a finished run


def write_run(root, ensemble_ids):
    """A finished classification run of three briefly trained tiny CNNs, as `fit` leaves one.

    Returns:
        The run directory (`root/image_classifier`).
    """
    import keras

    keras.utils.set_random_seed(0)
    x, y = quadrant_images(60, 21)
    clf = kerasnas.ImageClassifier(directory=str(root), verbose=0)
    mean, variance, low, high = feeds.statistics(x[..., None])
    clf.directory_ = str(root)
    clf.input_shape_, clf.input_dtype_, clf.input_range_ = (8, 8), "uint8", [low, high]
    clf.preprocessing_ = {"mean": mean.tolist(), "variance": variance.tolist()}
    state, encoded = clf._learn_targets(NAMES[y])
    clf.__dict__.update(state)
    prepared = feeds.prepare(feeds.preprocessor((8, 8), None, mean, variance), x[..., None])
    for i, size in enumerate(SIZES):
        trial = make_trial(f"000{i}", graph(**size), 0.9 - 0.1 * i)
        model = graph(**size).to_keras()
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        model.fit(prepared, encoded, epochs=2, batch_size=16, verbose=0)
        folder = root / "image_classifier" / f"trial_{trial.trial_id}"
        folder.mkdir(parents=True)
        files.write_json(str(folder / trials.TRIAL_FILE), trial.get_state())
        files.save_weights(model, checkpoint_path(clf.project_dir, trial.trial_id))
    clf.best_trial_id_, clf.final_weights_, clf.ensemble_ = "0000", None, list(ensemble_ids)
    clf._save_metadata()
    return root / "image_classifier"


@pytest.fixture(scope="module")
def ensemble_run(tmp_path_factory):
    """A run whose kerasnas.json holds an ensemble of its three trials."""
    return write_run(tmp_path_factory.mktemp("ensemble"), ["0000", "0001", "0002"])


@pytest.fixture
def run_copy(ensemble_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(ensemble_run, copy)
    return copy


def edit_metadata(folder, **changes):
    path = folder / "kerasnas.json"
    metadata = json.loads(path.read_text())
    metadata.update(changes)
    path.write_text(json.dumps(metadata))


def test_load_rebuilds_the_ensemble_of_kerasnas_json(run_copy):
    x, _ = quadrant_images(20, 22)
    clf = kerasnas.load(run_copy)
    assert clf.ensemble_ == ["0000", "0001", "0002"] and clf.best_trial_id_ == "0000"
    each = [clf.export_model(trial_id=i).predict(x, verbose=0) for i in clf.ensemble_]
    np.testing.assert_allclose(clf.predict_proba(x), np.mean(each, axis=0), atol=1e-6)
    assert not np.allclose(each[0], each[1], atol=1e-3)  # the average is not the best alone
    assert len(clf.get_best_models(3)) == 3  # single trials still
    edit_metadata(run_copy, ensemble=["0000", "0002"])
    two = kerasnas.load(run_copy)
    np.testing.assert_allclose(two.predict_proba(x), (each[0] + each[2]) / 2, atol=1e-6)
    metadata = json.loads((run_copy / "kerasnas.json").read_text())
    del metadata["ensemble"]  # as an older kerasnas wrote it
    (run_copy / "kerasnas.json").write_text(json.dumps(metadata))
    alone = kerasnas.load(run_copy)
    assert alone.ensemble_ == []
    np.testing.assert_allclose(alone.predict_proba(x), each[0], atol=1e-6)


def test_a_damaged_ensemble_entry_is_named(run_copy):
    edit_metadata(run_copy, ensemble=["0000", "../../x"])
    with pytest.raises(ValueError, match=r"ensemble=\['0000', '../../x'\], not a list of trial"):
        kerasnas.load(run_copy)
    edit_metadata(run_copy, ensemble=["0000", "0009"])
    match = (
        "Trial 0009 of the ensemble of .* cannot be used: .*trial_0009.* is missing.*kerasnas.json"
    )
    with pytest.raises(ValueError, match=match):
        kerasnas.load(run_copy)
    edit_metadata(run_copy, ensemble=["0000", "0001"])
    (run_copy / "trial_0001" / "checkpoint.weights.h5").write_bytes(b"")
    with pytest.raises(
        ValueError, match=r"trial_0001.*checkpoint.weights.h5 cannot be read.*empty the `ens"
    ):
        kerasnas.load(run_copy)


@pytest.mark.slow  # a subprocess that imports TensorFlow
def test_an_exported_ensemble_is_plain_keras_and_a_saved_model(run_copy, tmp_path):
    clf = kerasnas.load(run_copy)
    x, _ = quadrant_images(12, 23)
    expected = clf.predict_proba(x)
    clf.export_model().save(tmp_path / "model.keras")
    clf.export(tmp_path / "serving")
    np.save(tmp_path / "x.npy", x)
    code = textwrap.dedent(f"""
        import sys, numpy as np, keras, tensorflow as tf
        x = np.load({str(tmp_path / "x.npy")!r})
        model = keras.models.load_model({str(tmp_path / "model.keras")!r}, safe_mode=True)
        np.save({str(tmp_path / "keras.npy")!r}, model.predict(x, verbose=0))
        serving = tf.saved_model.load({str(tmp_path / "serving")!r})
        (out,) = serving.signatures["serving_default"](tf.constant(x)).values()
        np.save({str(tmp_path / "served.npy")!r}, out.numpy())
        np.save({str(tmp_path / "serve.npy")!r}, serving.serve(tf.constant(x)).numpy())
        assert not any(m.startswith("kerasnas") for m in sys.modules)
    """)
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    for name in ("keras", "served", "serve"):
        np.testing.assert_allclose(np.load(tmp_path / f"{name}.npy"), expected, atol=1e-5)


@pytest.mark.slow  # trains the ensemble for an epoch
def test_final_fit_trains_the_ensemble_as_one_model(run_copy):
    clf = kerasnas.load(run_copy)
    x, y = quadrant_images(60, 24)
    before = clf.model_.get_weights()
    clf.final_fit(x, NAMES[y], epochs=1, batch_size=16)
    assert clf.ensemble_ == ["0000", "0001", "0002"]
    members = [layer.name for layer in clf.model_.layers[1:4]]
    assert members == ["trial_0000", "trial_0001", "trial_0002"]
    assert any(not np.allclose(a, b) for a, b in zip(before, clf.model_.get_weights()))
    assert json.loads((run_copy / "kerasnas.json").read_text())["final_weights"]
    again = kerasnas.load(run_copy)
    np.testing.assert_allclose(again.predict_proba(x), clf.predict_proba(x), atol=1e-6)


def single(run_copy):
    """The run loaded without its ensemble, and its trials best first."""
    edit_metadata(run_copy, ensemble=[])
    clf = kerasnas.load(run_copy)
    return clf, [clf.trials_[i] for i in ("0000", "0001", "0002")]


def validation_feed(clf, seed=25):
    x, y = quadrant_images(40, seed)
    return feeds.prepare(clf.preprocessor_, x[..., None]), clf._encode(NAMES[y])


def test_the_search_keeps_the_average_that_choose_picks(run_copy, monkeypatch):
    import time

    clf, ranked = single(run_copy)
    feed = validation_feed(clf)
    picked = []

    def choose(outputs, labels, task):
        picked.append(len(outputs))
        return 2

    monkeypatch.setattr(ensemble, "choose", choose)
    scores = ensemble.finish(clf, ranked, feed, (60, 40), 16, time.time() + 60)
    assert picked == [3] and clf.ensemble_ == ["0000", "0001"]
    images, labels = feed
    each = [np.asarray(clf._trial_model(i)(images, training=False)) for i in ("0000", "0001")]
    assert scores == pytest.approx(
        (
            ensemble.score(np.mean(each, axis=0), labels, "classification"),
            ensemble.score(each[0], labels, "classification"),
        )
    )
    x, _ = quadrant_images(10, 26)
    each = [clf.export_model(trial_id=i).predict(x, verbose=0) for i in ("0000", "0001")]
    np.testing.assert_allclose(clf.predict_proba(x), np.mean(each, axis=0), atol=1e-6)


def test_no_ensemble_with_ensemble_size_1_or_without_time(run_copy, monkeypatch):
    import time

    clf, ranked = single(run_copy)
    model = clf.model_

    def choose(outputs, labels, task):
        raise AssertionError("choose must not be called")

    monkeypatch.setattr(ensemble, "choose", choose)
    clf.set_params(ensemble_size=1)
    assert (
        ensemble.finish(clf, ranked, validation_feed(clf), (60, 40), 16, time.time() + 60) is None
    )
    clf.set_params(ensemble_size=3)
    assert ensemble.finish(clf, ranked, validation_feed(clf), (60, 40), 16, time.time()) is None
    assert clf.model_ is model and clf.ensemble_ == []


def test_a_streamed_validation_set_must_keep_its_order(run_copy, caplog):
    import time

    import tensorflow as tf

    clf, ranked = single(run_copy)
    images, labels = validation_feed(clf)
    fixed = tf.data.Dataset.from_tensor_slices((images, labels)).batch(16)
    arrays = ensemble.ValidationPasses((images, labels), 16)
    streamed = ensemble.ValidationPasses(fixed, 16)
    for model in (clf.model_, clf._trial_model("0001")):
        np.testing.assert_allclose(streamed(model), arrays(model), atol=1e-6)
    np.testing.assert_array_equal(streamed.labels, labels)
    shuffled = tf.data.Dataset.from_tensor_slices((images, labels)).shuffle(40, seed=1).batch(16)
    passes = ensemble.ValidationPasses(shuffled, 16)
    passes(clf.model_)
    with pytest.raises(ensemble.ReorderedError, match="another order on each pass"):
        passes(clf.model_)
    with caplog.at_level(logging.WARNING, logger="kerasnas"):
        assert ensemble.finish(clf, ranked, shuffled, (60, 40), 16, time.time() + 60) is None
    assert "keeping the best model alone" in caplog.text and clf.ensemble_ == []


# ---------------------------------------------------------------------- the argument


@pytest.mark.parametrize("value", [0, "3", 2.5, None, True])
def test_ensemble_size_is_checked_before_training(value, tmp_path):
    x, y = quadrant_images(30, 0)
    clf = kerasnas.ImageClassifier(directory=str(tmp_path), ensemble_size=value, verbose=0)
    assert clf.get_params()["ensemble_size"] == value
    with pytest.raises(
        ValueError, match=r"`ensemble_size` to be an integer >= 1. Received: ensemble_size="
    ):
        clf.fit(x, y, time_limit=30)
    assert not (tmp_path / "image_classifier").exists()


@pytest.mark.slow
def test_fit_finishes_with_the_ensemble_choose_picks(tmp_path, monkeypatch, capsys):
    # (ensemble_size=1 is test_no_ensemble_with_ensemble_size_1_or_without_time's.)
    monkeypatch.setattr(ensemble, "choose", lambda outputs, labels, task: len(outputs))
    x, y = quadrant_images(90, 27)
    clf = kerasnas.ImageClassifier(directory=str(tmp_path), seed=1, max_trials=2, verbose=1)
    clf.fit(x, NAMES[y], time_limit=120, epochs=1)
    written = json.loads((tmp_path / "image_classifier" / "kerasnas.json").read_text())
    assert written["ensemble"] == clf.ensemble_
    # max_trials=2 and a `choose` that takes every member: both trials are averaged.
    assert clf.ensemble_[0] == clf.best_trial_id_ and len(clf.ensemble_) == 2
    keys = {trials.graph_of(clf.trials_[i]).architecture_key() for i in clf.ensemble_}
    assert len(keys) == len(clf.ensemble_)
    assert f"ensemble of trials {', '.join(clf.ensemble_)}: validation accuracy" in (
        capsys.readouterr().out
    )
    x_new, _ = quadrant_images(10, 28)
    each = [clf.export_model(trial_id=i).predict(x_new, verbose=0) for i in clf.ensemble_]
    np.testing.assert_allclose(clf.predict_proba(x_new), np.mean(each, axis=0), atol=1e-6)
    again = kerasnas.load(tmp_path)
    np.testing.assert_allclose(again.predict_proba(x_new), clf.predict_proba(x_new), atol=1e-6)
