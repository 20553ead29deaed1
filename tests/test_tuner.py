from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasnas import pipelines, trials
from kerasnas.callbacks import AugmentWhenOverfitting
from kerasnas.graph import generators
from kerasnas.oracle import NetworkMorphismOracle, schedule
from kerasnas.testing import FakeClock, quadrant_images, ticking
from kerasnas.tuner import MorphismTuner


def quadrant_data(n, seed):
    """(n, 8, 8, 1) float images of three classes, and their labels."""
    x, y = quadrant_images(n, seed, dtype="float32")
    return x[..., None], y


def small_cnn():
    return generators.cnn((8, 8, 1), 3, filters=4, dense_units=8)


def make_tuner(directory, max_trials, **kwargs):
    oracle_keys = ("initial_graphs", "clock", "search", "child_share", "overfit_ratio")
    oracle_kwargs = {k: kwargs.pop(k) for k in oracle_keys if k in kwargs}
    oracle = NetworkMorphismOracle((8, 8, 1), 3, max_trials=max_trials, seed=1, **oracle_kwargs)
    kwargs.setdefault("max_epochs", 2)
    kwargs.setdefault("batch_size", 16)
    return MorphismTuner(
        oracle,
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        directory=str(directory),
        project_name="search",
        verbose=False,
        **kwargs,
    )


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """A three-trial search without a deadline (a small CNN and two morphism children), run
    once for the tests that read it: (tuner, its directory, the validation images)."""
    keras.utils.set_random_seed(0)
    directory = tmp_path_factory.mktemp("three_trials")
    tuner = make_tuner(directory, max_trials=3, initial_graphs=[small_cnn()])
    x_val, y_val = quadrant_data(32, 1)
    tuner.search(*quadrant_data(64, 0), validation_data=(x_val, y_val))
    return tuner, directory, x_val


@pytest.mark.slow
def test_trials_train_save_their_best_weights_and_report_timings(searched):
    tuner, directory, _ = searched
    done = list(tuner.oracle.trials.values())
    assert [t.status for t in done] == ["COMPLETED"] * 3
    for trial in done:
        assert (directory / "search" / f"trial_{trial.trial_id}" / trials.CHECKPOINT).exists()
        for metric in trials.TIMING_METRICS:
            assert trial.metrics.get_last_value(metric) > 0
    best = tuner.get_best_models(1)[0]
    best_graph = trials.graph_of(tuner.oracle.get_best_trials(1)[0])
    assert best.count_params() == best_graph.num_params()
    assert tuner.oracle.validation_size == 32  # told by `search`, for the noise rule


@pytest.mark.slow
def test_children_start_from_their_parents_function(searched):
    tuner, _, x_val = searched
    child = list(tuner.oracle.trials.values())[1]
    parent = tuner.oracle.get_trial(trials.parent_of(child))
    warm = tuner.build_model(child)  # before any training of the child
    trained_parent = tuner.load_model(parent)
    np.testing.assert_allclose(
        warm.predict(x_val, verbose=0), trained_parent.predict(x_val, verbose=0), atol=1e-5
    )


@pytest.mark.slow
def test_a_bad_candidate_fails_its_trial_and_the_search_goes_on(tmp_path):
    small = small_cnn()
    huge = generators.cnn((8, 8, 1), 3, filters=64, dense_units=512)
    tuner = make_tuner(
        tmp_path, max_trials=3, initial_graphs=[huge, small], max_model_size=huge.num_params() - 1
    )
    tuner.search(*quadrant_data(64, 0), validation_data=quadrant_data(32, 1))
    statuses = [t.status for t in tuner.oracle.trials.values()]
    assert (
        statuses[0] == "FAILED"
        and "max_model_size" in tuner.oracle.trials[list(tuner.oracle.trials)[0]].message
    )
    assert statuses.count("COMPLETED") == 2  # the small CNN and its child


def test_nan_loss_fails_the_trial(tmp_path):
    tuner = make_tuner(tmp_path, max_trials=1, learning_rate=1e30)
    x, y = quadrant_data(64, 0)
    tuner.search(x * 1e30, y, validation_data=quadrant_data(32, 1))
    (trial,) = tuner.oracle.trials.values()
    assert trial.status == "FAILED"


@pytest.mark.slow
def test_a_failing_build_fails_its_trial_and_the_search_goes_on(tmp_path, monkeypatch):
    tuner = make_tuner(tmp_path, max_trials=2, initial_graphs=[small_cnn()])
    real = MorphismTuner.build_model

    def broken_for_children(self, trial):
        if trials.parent_of(trial):
            raise ValueError("the morphism cannot be applied")
        return real(self, trial)

    monkeypatch.setattr(MorphismTuner, "build_model", broken_for_children)
    tuner.search(*quadrant_data(64, 0), validation_data=quadrant_data(32, 1))
    statuses = [t.status for t in tuner.oracle.trials.values()]
    assert statuses == ["COMPLETED", "FAILED"]
    child = list(tuner.oracle.trials.values())[1]
    assert "the morphism cannot be applied" in child.message


def test_arrays_reach_keras_as_untuned_datasets_with_their_weights(tmp_path, keras_fits):
    tuner = make_tuner(tmp_path, max_trials=1, initial_graphs=[small_cnn()])
    x, y = quadrant_data(64, 0)
    weight_of = lambda images: images.reshape(len(images), -1).sum(axis=1)  # noqa: E731
    tuner.search(x, y, sample_weight=weight_of(x), validation_data=quadrant_data(32, 1))
    ((data, validation, _),) = keras_fits
    for dataset in (data, validation):
        assert isinstance(dataset, tf.data.Dataset)
        assert dataset.options().autotune.enabled is False
    batches = list(data)
    assert len(batches) == 4 and all(len(batch) == 3 for batch in batches)  # 64 / 16
    for images, _, weights in batches:  # each weight stays with its image
        np.testing.assert_allclose(weights, weight_of(np.asarray(images)), rtol=1e-5)


@pytest.mark.slow
def test_a_refinement_that_overfits_trains_on_augmented_images_from_then_on(tmp_path, keras_fits):
    # Validated on its own images under other labels: the better the model learns them,
    # the further its validation loss rises above its training loss.
    keras.utils.set_random_seed(0)
    x, y = quadrant_data(64, 0)
    tuner = make_tuner(
        tmp_path,
        max_trials=2,
        initial_graphs=[small_cnn()],
        search=False,
        overfit_ratio=1.5,
        max_epochs=4,
        learning_rate=0.03,
    )
    tuner.search(x, y, validation_data=(x, (y + 1) % 3))
    first, refined = (tuner.oracle.trials[i] for i in sorted(tuner.oracle.trials))
    assert trials.is_refinement(refined)
    assert trials.metric(first, trials.AUGMENTED_AFTER) is None  # only the refinement may
    assert trials.metric(refined, trials.AUGMENTED_AFTER) in (1, 2)  # in its first half
    (_, _, plain), (data, _, callbacks) = keras_fits
    assert not any(isinstance(c, AugmentWhenOverfitting) for c in plain)
    assert any(isinstance(c, AugmentWhenOverfitting) for c in callbacks)
    # The switch stays on after training: the refinement's data now shifts and zooms.
    images = np.concatenate([np.asarray(batch[0]) for batch in data])
    assert images.shape == x.shape and not np.allclose(
        np.sort(images, axis=None), np.sort(x, axis=None)
    )


def image_sums(dataset):
    """Each training image's sum over one pass, sorted (the pass's order is shuffled)."""
    return np.sort(np.concatenate([np.sum(batch[0], axis=(1, 2, 3)) for batch in dataset]))


@pytest.mark.slow
def test_a_search_that_augments_trains_every_trial_on_augmented_images(tmp_path, keras_fits):
    keras.utils.set_random_seed(0)
    x, y = quadrant_data(64, 0)
    tuner = make_tuner(tmp_path, max_trials=2, initial_graphs=[small_cnn()], search=False)
    tuner.oracle.augment = True  # as the oracle decides when the budget holds many epochs
    x_val, y_val = quadrant_data(32, 1)
    tuner.search(x, y, validation_data=(x_val, y_val))
    done = [tuner.oracle.trials[i] for i in sorted(tuner.oracle.trials)]
    assert [trials.is_refinement(t) for t in done] == [False, True]
    assert [trials.metric(t, trials.AUGMENTED_AFTER) for t in done] == [0, 0]
    assert len(keras_fits) == 2
    for data, validation, callbacks in keras_fits:
        assert not any(isinstance(c, AugmentWhenOverfitting) for c in callbacks)
        assert not np.allclose(image_sums(data), image_sums(data))  # every pass shifts
        assert np.allclose(image_sums(validation), image_sums(validation))  # never these


@pytest.mark.slow
def test_user_callbacks_are_copied_for_each_trial(tmp_path):
    history = keras.callbacks.History()
    tuner = make_tuner(tmp_path, max_trials=1, initial_graphs=[small_cnn()])
    tuner.search(*quadrant_data(64, 0), validation_data=quadrant_data(32, 1), callbacks=[history])
    assert history.history == {}  # each trial trained with its own copy


def search_on_a_fake_clock(tmp_path, clock, seconds, **kwargs):
    """A search with a deadline where a trial takes 3 s to start, batches 0.5 s and
    validation batches 0.1 s.

    Children train for 20% of the budget (not 4%): each trial also costs real seconds
    to build and trace, however little fake time it trains.
    """
    kwargs.setdefault("child_share", 0.2)
    tuner = make_tuner(tmp_path, max_trials=None, max_epochs=1000, clock=clock, **kwargs)
    tuner.oracle.set_deadline(clock() + seconds)
    tuner.search(
        *quadrant_data(64, 0),
        validation_data=quadrant_data(32, 1),
        callbacks=[ticking(clock, train_batch=0.5, test_batch=0.1, train_begin=3.0)],
    )
    return tuner


@pytest.fixture(scope="module")
def deadline_search(tmp_path_factory):
    """A search with a 40-s deadline on a fake clock, run once: (tuner, clock)."""
    keras.utils.set_random_seed(0)
    clock = FakeClock()
    tuner = search_on_a_fake_clock(tmp_path_factory.mktemp("deadline"), clock, 40)
    return tuner, clock


@pytest.mark.slow
def test_a_deadline_bounds_the_search(deadline_search):
    tuner, clock = deadline_search
    assert clock() <= tuner.deadline
    done = list(tuner.oracle.trials.values())
    assert len(done) >= 2 and all(t.status == "COMPLETED" for t in done)


@pytest.mark.slow
def test_the_last_stretch_refines_the_best_trial_until_the_deadline(deadline_search):
    tuner, clock = deadline_search
    done = [tuner.oracle.trials[i] for i in sorted(tuner.oracle.trials)]
    refined = [t for t in done if trials.is_refinement(t)]
    assert len(refined) == 1
    parent = tuner.oracle.trials[trials.parent_of(refined[0])]
    assert trials.graph_of(parent).to_json() == trials.graph_of(refined[0]).to_json()
    # No early stopping: the refinement is the last trial and trains until the deadline,
    # less than one epoch (2 s of training, 0.2 s of validation) before it.
    assert done[-1] is refined[0]
    assert tuner.deadline - 2.2 <= clock() <= tuner.deadline


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"batch_size": 0}, "batch_size.*>= 1"),
        ({"batch_size": -1}, "batch_size"),
        ({"learning_rate": 0}, "learning_rate.*> 0"),
        ({"max_epochs": 0}, "max_epochs.*>= 1"),
        ({"max_model_size": 0}, "max_model_size"),
    ],
)
def test_bad_arguments_name_themselves(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_tuner(tmp_path, max_trials=1, **kwargs)


@pytest.mark.slow
def test_without_search_one_architecture_trains_for_the_whole_budget(tmp_path, clock):
    tuner = search_on_a_fake_clock(tmp_path, clock, 30, search=False)
    done = [tuner.oracle.trials[i] for i in sorted(tuner.oracle.trials)]
    assert len({trials.graph_of(t).architecture_key() for t in done}) == 1
    assert [trials.is_refinement(t) for t in done] == [False, True]
    assert tuner.deadline - 2.2 <= clock() <= tuner.deadline  # to within an epoch


class ReadTicks:
    """A clock that moves 0.01 s each time it is read."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        self.now += 0.01
        return self.now


@pytest.mark.parametrize("count, steps", [(64, 4), (640, 40)])
def test_the_probe_times_a_few_batches_and_scales_them_to_an_epoch(tmp_path, count, steps):
    tuner = make_tuner(tmp_path, max_trials=1, clock=ReadTicks())
    x, y = quadrant_data(count, 0)
    epoch, overhead = tuner.probe(generators.cnn((8, 8, 1), 3), x, y)
    # Each batch reads the clock once, at its end: 0.01 s a step, `steps` steps an epoch.
    assert epoch == pytest.approx(0.01 * steps)
    # The reads that are not batch ends (start, epoch begin, end): not the batches trained.
    assert 0 < overhead < 0.01 * schedule.PROBE_BATCHES


def test_the_probe_times_a_dataset_without_keras_warning_about_shuffle(tmp_path, recwarn):
    tuner = make_tuner(tmp_path, max_trials=1, clock=ReadTicks())
    x, y = quadrant_data(640, 0)
    dataset = pipelines.array_dataset(x, y, batch_size=16, shuffle=True, seed=0)
    epoch, _ = tuner.probe(generators.cnn((8, 8, 1), 3), dataset)
    assert epoch == pytest.approx(0.01 * 40)
    assert not [w for w in recwarn if "shuffle" in str(w.message)]


class StallingTicks(ReadTicks):
    """`ReadTicks` that stalls for 5 s at one read, as a shared machine now and then does."""

    def __init__(self, stall_at):
        super().__init__()
        self.reads, self.stall_at = 0, stall_at

    def __call__(self):
        self.reads += 1
        if self.reads == self.stall_at:
            self.now += 5.0
        return super().__call__()


def test_a_stall_during_the_probe_goes_to_its_overhead_not_to_the_epoch(tmp_path):
    clock = StallingTicks(stall_at=5)  # the third batch's end (after the start and epoch begin)
    tuner = make_tuner(tmp_path, max_trials=1, clock=clock)
    epoch, overhead = tuner.probe(generators.cnn((8, 8, 1), 3), *quadrant_data(640, 0))
    assert clock.reads > 5  # the stall happened
    assert epoch == pytest.approx(0.01 * 40)  # the typical step, not one inflated by 5 s
    assert overhead >= 5.0


@pytest.mark.slow
def test_under_a_deadline_the_first_architecture_is_sized_from_the_probe(tmp_path):
    import time

    tuner = make_tuner(tmp_path, max_trials=1)  # two epochs at most: the deadline is far
    tuner.oracle.set_deadline(time.time() + 3600)
    assert tuner.oracle.needs_probe()
    tuner.search(*quadrant_data(64, 0), validation_data=quadrant_data(32, 1))
    oracle = tuner.oracle
    # Three widths timed: probing takes a small share of the hour.
    assert len(oracle.probe) == 3 and not oracle.needs_probe()
    assert all(timing["epoch_seconds"] > 0 for timing in oracle.probe)
    first = trials.graph_of(oracle.trials[min(oracle.trials)])
    assert first.layers[0]["config"]["filters"] == oracle.width
    assert first.architecture_key() == oracle._default_graphs(oracle.width)[0].architecture_key()
