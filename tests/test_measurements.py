"""What the trials measured, read back from hand-made trials."""

from __future__ import annotations

import keras_tuner
import pytest
from keras_tuner.engine import trial as trial_module

from kerasnas import trials
from kerasnas.graph import generators
from kerasnas.oracle import measurements
from kerasnas.trials import EPOCH_SECONDS, EPOCHS, TRAIN_SECONDS

GRAPH = generators.initial_graphs((8, 8, 1), 3)[0]


def trial(trial_id, parent="", refine=False, status="COMPLETED", **metrics):
    hp = keras_tuner.HyperParameters()
    for name, value in trials.values(GRAPH, parent, refine).items():
        hp.Fixed(name, value)
    found = trial_module.Trial(hp, trial_id=trial_id, status=status)
    for name, value in metrics.items():
        found.metrics.update(name, value)
    return found


def timed(trial_id, train, epochs, epoch, **kwargs):
    return trial(trial_id, **kwargs, **{TRAIN_SECONDS: train, EPOCHS: epochs, EPOCH_SECONDS: epoch})


def test_the_overhead_is_the_median_time_besides_epochs():
    first = timed("0", 30.0, 2.0, 10.0)  # 10 s overhead: one-time costs
    children = [timed("1", 9.0, 0.5, 10.0, parent="0"), timed("2", 10.0, 0.5, 12.0, parent="0")]
    refinement = timed("3", 100.0, 9.0, 10.0, parent="0", refine=True)
    searched = [first, *children, refinement]
    assert measurements.overhead_seconds(searched) == pytest.approx((4.0 + 10.0) / 2)
    assert measurements.overhead_seconds(searched, child=True) == pytest.approx(4.0)
    assert measurements.overhead_seconds([first], child=True) == pytest.approx(10.0)


def test_without_timed_trials_the_overhead_is_the_probes_or_nothing():
    assert measurements.overhead_seconds([], [{"overhead_seconds": 2.5}]) == 2.5
    assert measurements.overhead_seconds([trial("0", status="FAILED")]) == 0.0
    assert measurements.overhead_seconds([timed("0", 1.0, 1.0, 5.0)]) == 0.0  # never negative


def test_effort_adds_up_the_epochs_of_the_ancestors_and_survives_a_cycle():
    found = {
        "0": timed("0", 30.0, 2.0, 10.0),
        "1": timed("1", 9.0, 0.5, 10.0, parent="0"),
        "2": timed("2", 9.0, 0.25, 10.0, parent="1"),
        "8": trial("8", parent="9", **{EPOCHS: 1.0}),
        "9": trial("9", parent="8", **{EPOCHS: 2.0}),  # a damaged run: parents in a cycle
    }
    assert measurements.effort(found, "2") == pytest.approx(2.75)
    assert measurements.effort(found, "missing") == 0.0
    assert measurements.effort(found, "8") == pytest.approx(3.0)


def test_typical_epochs_and_childrens_epochs_are_medians():
    trained = [timed("0", 30, 2.0, 10.0), timed("1", 9, 0.5, 14.0, parent="0")]
    assert measurements.typical_epoch_seconds(trained) == pytest.approx(12.0)
    assert measurements.typical_epoch_seconds([]) is None
    assert measurements.usual_child_epochs(trained) == 0.5
    assert measurements.usual_child_epochs(trained[:1]) == 1.0


def test_the_cost_model_is_refitted_only_when_a_timing_comes():
    graphs = []
    model = measurements.CostModel(lambda t: graphs.append(t.trial_id) or GRAPH)
    searched = [timed("0", 30, 2.0, 10.0)]
    assert model.fitted(searched).predict(GRAPH) == pytest.approx(10.0, rel=1e-3)
    model.fitted(searched)
    assert graphs == ["0"]
    probe = [{"architecture": GRAPH.to_json(), "epoch_seconds": 12.0, "overhead_seconds": 1.0}]
    model.fitted(searched, probe)
    assert graphs == ["0", "0"]


def test_the_cost_model_fits_only_the_latest_timings():
    parsed = []
    model = measurements.CostModel(lambda t: parsed.append(t.trial_id) or GRAPH)
    old = [timed(f"{i:03d}", 300, 2.0, 100.0) for i in range(20)]  # a slower machine
    recent = [timed(f"{i:03d}", 30, 2.0, 10.0) for i in range(20, 20 + measurements.TIMINGS_KEPT)]
    assert model.fitted(old + recent).predict(GRAPH) == pytest.approx(10.0, rel=1e-3)
    assert parsed == [t.trial_id for t in recent]


def scored(trial_id, score, parent="", refine=False):
    found = trial(trial_id, parent, refine)
    found.score = score
    return found


def test_the_error_of_an_accuracy_is_binomial_and_other_objectives_have_none():
    assert measurements.score_error(0.9, "val_accuracy", 6000) == pytest.approx(0.003873, abs=1e-6)
    assert measurements.score_error(1.0, "val_accuracy", 100) == 0.0
    assert measurements.score_error(0.9, "val_loss", 6000) is None
    assert measurements.score_error(0.9, "val_accuracy", None) is None
    assert measurements.score_error(1.5, "val_accuracy", 100) is None  # not a proportion


def test_the_incumbent_changes_only_for_a_child_beyond_the_noise():
    error = lambda best: 0.01  # noqa: E731
    first = scored("0", 0.90)
    gained = scored("1", 0.92, parent="0")  # +0.02: beyond one error
    level = scored("2", 0.925, parent="1")  # +0.005: inside it
    worse = scored("3", 0.91, parent="1")
    progress = measurements.search_progress
    assert progress([], "max", error) == (None, 0)
    assert progress([first], "max", error) == (first, 0)
    assert progress([first, gained], "max", error) == (gained, 0)
    assert progress([first, gained, level], "max", error) == (gained, 1)  # the best, not the bar
    assert progress([first, gained, level, worse], "max", error) == (gained, 2)
    # The bar is the incumbent's score: 0.935 is 0.015 above it, though 0.01 above `level`.
    beyond = scored("4", 0.935, parent="2")
    assert progress([first, gained, level, beyond], "max", error) == (beyond, 0)
    # A refinement or another initial architecture displaces it on its score alone.
    refined = scored("5", 0.921, parent="1", refine=True)
    assert progress([first, gained, level, worse, refined], "max", error) == (refined, 2)
    # Minimised objectives gain downwards; without an error, the best score leads.
    losses = [scored("0", 0.5), scored("1", 0.3, parent="0"), scored("2", 0.295, parent="1")]
    assert progress(losses, "min", error) == (losses[1], 1)
    assert progress([first, gained, level, worse], "max", lambda best: None) == (level, 0)
