"""NetworkMorphismOracle through KerasTuner's own API, with scores fed in, no training."""

from __future__ import annotations

import os
import re

import keras_tuner
import numpy as np
import pytest

from kerasnas import trials
from kerasnas.graph import Graph, generators
from kerasnas.oracle import NetworkMorphismOracle
from kerasnas.oracle.schedule import (
    AUGMENT_EPOCHS,
    CHILD_EPOCHS,
    CHILD_OVERHEADS,
    DEFAULT_WIDTH,
    FIRST_WIDTHS,
    OVERFIT_RATIO,
    REFINE_EPOCHS,
    SIZE_EPOCHS,
)
from kerasnas.testing import compare
from kerasnas.trials import EPOCH_SECONDS

SHAPE = (8, 8, 1)


def make_oracle(directory, **kwargs):
    kwargs.setdefault("seed", 1)
    oracle = NetworkMorphismOracle(SHAPE, 3, **kwargs)
    oracle._set_project_dir(str(directory), "search")
    return oracle


def score(graph):
    """Analytic objective: best at depth 12 and 300k parameters, beyond the initial graphs."""
    return 0.95 - 0.01 * abs(graph.depth() - 12) - 0.02 * abs(np.log2(graph.num_params() / 3e5))


def run(oracle, count, objective=score, fail=()):
    """Creates, scores and ends `count` trials; returns them."""
    done = []
    for i in range(count):
        trial = oracle.create_trial("tuner0")
        if trial.status != "RUNNING":
            break
        graph = trials.graph_of(trial)
        if i in fail:
            trial.status = "FAILED"
        else:
            seconds = graph.flops() * 1e-6
            oracle.update_trial(
                trial.trial_id, {"val_accuracy": objective(graph), EPOCH_SECONDS: seconds}
            )
            trial.status = "COMPLETED"
        oracle.end_trial(trial)
        done.append(trial)
    return done


def values(trial):
    return trial.hyperparameters.values


def test_is_a_keras_tuner_oracle(tmp_path):
    oracle = make_oracle(tmp_path)
    assert isinstance(oracle, keras_tuner.Oracle)
    assert oracle.objective.name == "val_accuracy" and oracle.objective.direction == "max"


def test_initial_architectures_come_first_cheapest_first(tmp_path):
    done = run(make_oracle(tmp_path), 3)
    graphs = [trials.graph_of(t) for t in done]
    expected = generators.initial_graphs(SHAPE, 3)
    assert [g.architecture_key() for g in graphs] == [g.architecture_key() for g in expected]
    assert all(trials.parent_of(t) is None for t in done)


def test_later_trials_are_children_of_trained_trials(tmp_path):
    oracle = make_oracle(tmp_path)
    done = run(oracle, 12)
    keys = set()
    for trial in done[3:]:
        parent = oracle.get_trial(trials.parent_of(trial))
        assert parent.status == "COMPLETED"
        parent_graph = trials.graph_of(parent)
        child = trials.graph_of(trial)
        assert child.history[: len(parent_graph.history)] == parent_graph.history
        assert len(child.history) > len(parent_graph.history)
        keys.add(child.architecture_key())
    assert len(keys) == len(done) - 3  # never the same architecture twice


@pytest.mark.slow
def test_search_improves_on_the_initial_architectures(tmp_path):
    oracle = make_oracle(tmp_path)
    run(oracle, 25)
    initial_best = max(t.score for t in list(oracle.trials.values())[:3])
    assert oracle.get_best_trials()[0].score > initial_best + 0.02


@pytest.mark.slow
def test_same_seed_same_scores_same_proposals(tmp_path):
    first = run(make_oracle(tmp_path / "a"), 10)
    second = run(make_oracle(tmp_path / "b"), 10)
    assert [values(t) for t in first] == [values(t) for t in second]
    third = run(make_oracle(tmp_path / "c", seed=2), 10)
    assert [values(t) for t in first] != [values(t) for t in third]


def test_reload_resumes_without_repeating_and_proposes_the_same(tmp_path, clock):
    oracle = make_oracle(tmp_path, clock=clock)
    run(oracle, 6)
    oracle.set_deadline(clock() + 3600)
    oracle.save()
    pending = oracle.create_trial("tuner0")  # the process dies while this trial runs

    reloaded = make_oracle(tmp_path, clock=clock)
    reloaded.reload()
    assert reloaded.deadline == oracle.deadline
    assert sorted(reloaded.trials) == sorted(oracle.trials)
    completed = [t for t in reloaded.trials.values() if t.status == "COMPLETED"]
    assert len(completed) == 6
    # The interrupted trial is run again, then the search goes on where it was.
    retried = reloaded.create_trial("tuner0")
    assert retried.trial_id == pending.trial_id
    assert values(retried) == values(pending)
    retried.status = "COMPLETED"
    reloaded.update_trial(retried.trial_id, {"val_accuracy": 0.5})
    reloaded.end_trial(retried)
    following = reloaded.create_trial("tuner0")
    assert following.trial_id not in oracle.trials


def trial_file(directory, trial_id):
    return os.path.join(str(directory), "search", f"trial_{trial_id}", "trial.json")


@pytest.mark.parametrize("damage", ["", '{"trial_id": "0002", "hyperpar'])
def test_an_empty_or_truncated_trial_file_counts_as_failed_on_resume(tmp_path, damage, caplog):
    oracle = make_oracle(tmp_path)
    run(oracle, 5)
    oracle.save()  # as the tuner does after each trial
    with open(trial_file(tmp_path, "0002"), "w") as f:
        f.write(damage)
    reloaded = make_oracle(tmp_path)
    reloaded.reload()
    assert "trial_0002" in caplog.text and "unreadable" in caplog.text
    assert reloaded.trials["0002"].status == "FAILED"
    assert sorted(reloaded.trials) == sorted(oracle.trials)
    # The search goes on, with a new id, and never proposes from the damaged trial.
    following = run(reloaded, 3)
    assert [t.trial_id for t in following] == ["0005", "0006", "0007"]
    assert all(trials.parent_of(t) != "0002" for t in following)


def test_an_unreadable_oracle_file_is_rebuilt_from_the_trial_files(tmp_path, caplog):
    oracle = make_oracle(tmp_path)
    run(oracle, 5)
    pending = oracle.create_trial("tuner0")
    with open(os.path.join(str(tmp_path), "search", "oracle.json"), "w") as f:
        f.write('{"ongoing_trials": {"tuner0": "0005"}, "hyp')
    reloaded = make_oracle(tmp_path)
    reloaded.reload()
    assert "oracle.json is not valid JSON" in caplog.text
    retried = reloaded.create_trial("tuner0")  # the unfinished trial runs again
    assert retried.trial_id == pending.trial_id and values(retried) == values(pending)


def test_trial_and_oracle_files_are_written_whole(tmp_path, monkeypatch):
    """A crash while a file is written (a full disk, say) leaves the previous version."""
    oracle = make_oracle(tmp_path)
    run(oracle, 3)
    path = trial_file(tmp_path, "0002")
    before = open(path).read()

    def disk_full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    trial = oracle.trials["0002"]
    with pytest.raises(OSError, match="No space"):
        oracle.update_trial(trial.trial_id, {"val_accuracy": 0.1})
    assert open(path).read() == before
    assert not [f for f in os.listdir(os.path.dirname(path)) if f.startswith(".tmp")]


def test_max_trials_stops_the_search(tmp_path):
    oracle = make_oracle(tmp_path, max_trials=5)
    assert len(run(oracle, 10)) == 5
    assert oracle.create_trial("tuner0").status == "STOPPED"


@pytest.mark.slow
def test_max_model_size_bounds_every_candidate(tmp_path):
    limit = max(g.num_params() for g in generators.initial_graphs(SHAPE, 3)) + 5000
    oracle = make_oracle(tmp_path, max_model_size=limit)
    for trial in run(oracle, 15):
        assert trials.graph_of(trial).num_params() <= limit


def test_max_model_size_below_every_initial_architecture_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="max_model_size=10"):
        make_oracle(tmp_path, max_model_size=10)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"acquisition": "pi"}, "acquisition.*'ei', 'ucb'.*Received: acquisition='pi'"),
        ({"refine_share": 1.0}, "refine_share.*< 1.*Received: refine_share=1.0"),
        ({"refine_share": -0.1}, "refine_share.*>= 0"),
        ({"max_trials": 0}, "max_trials.*>= 1.*or None"),
        ({"max_trials": -1}, "max_trials"),
        ({"max_trials": 2.5}, "max_trials.*integer"),
        ({"seed": "1"}, "seed"),
        ({"beta": float("nan")}, "beta"),
        ({"max_morphisms": 0}, "max_morphisms.*>= 1"),
        ({"pool_size": -1}, "pool_size.*>= 0"),
        ({"cost_horizon": -1}, "cost_horizon"),
        ({"child_share": 0}, "child_share.*> 0"),
        ({"child_share": 1.5}, "child_share.*<= 1"),
        ({"task": "segmentation"}, "task.*'classification', 'regression'"),
        ({"max_consecutive_failed_trials": 0}, "max_consecutive_failed_trials"),
        ({"max_model_size": 0}, "max_model_size.*>= 1"),
        ({"initial_graphs": []}, "initial_graphs.*non-empty"),
        ({"clock": 3.0}, "clock.*function"),
        ({"patience": -1}, "patience.*>= 0"),
        ({"trial_share": 1.5}, "trial_share.*<= 1"),
        ({"trial_share": 0}, "trial_share.*> 0"),
        ({"overfit_ratio": 1.0}, "overfit_ratio.*> 1"),
        ({"overfit_ratio": "always"}, "overfit_ratio.*'auto', None or a number"),
        ({"augment_epochs": 0}, "augment_epochs.*> 0"),
        ({"augment_epochs": "long"}, "augment_epochs.*'auto', None or a number above 0"),
    ],
)
def test_bad_arguments_name_themselves(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_oracle(tmp_path, **kwargs)


@pytest.mark.parametrize(
    "shape, outputs, match",
    [((8, 8), 3, "input_shape"), ((8, 0, 1), 3, "input_shape"), (SHAPE, 0, "num_outputs")],
)
def test_bad_shapes_name_themselves(shape, outputs, match):
    with pytest.raises(ValueError, match=match):
        NetworkMorphismOracle(shape, outputs)


def test_ucb_acquisition_searches_too(tmp_path):
    oracle = make_oracle(tmp_path, acquisition="ucb")
    done = run(oracle, 8)
    assert len(done) == 8 and all(trials.parent_of(t) for t in done[3:])


def test_a_run_of_failures_does_not_stop_the_search(tmp_path):
    oracle = make_oracle(tmp_path)
    done = run(oracle, 12, fail=range(4, 10))  # six failed trials in a row
    assert len(done) == 12
    assert sum(t.status == "FAILED" for t in oracle.trials.values()) == 6


def test_nothing_trained_yet_means_wait_or_stop(tmp_path):
    oracle = make_oracle(tmp_path)
    for i in range(3):
        oracle.create_trial(f"tuner{i}")  # three workers hold the initial trials
    assert oracle.create_trial("tuner3").status == "IDLE"
    only_failures = make_oracle(tmp_path / "failed")
    run(only_failures, 3, fail=range(3))
    assert only_failures.create_trial("tuner0").status == "STOPPED"


@pytest.mark.slow
def test_deadline_makes_proposals_cheaper(tmp_path, clock):
    """Under a budget, gain per second wins: proposals cost fewer FLOPs on average.

    The budget holds a few hundred epochs of these graphs (0.2-2 s each), so cost
    weighs in the acquisition (`cost_horizon`); with thousands it would hardly count.
    """
    flat = lambda graph: 0.9 + 0.001 * graph.depth()  # barely rewards growth
    free = make_oracle(tmp_path / "free", clock=clock)
    budgeted = make_oracle(tmp_path / "budget", clock=clock)
    budgeted.set_deadline(clock() + 300)
    cost = {}
    for name, oracle in (("free", free), ("budget", budgeted)):
        done = run(oracle, 16, objective=flat)[3:]
        cost[name] = np.mean([trials.graph_of(t).flops() for t in done])
    assert cost["budget"] < cost["free"]


def test_no_candidate_fits_the_time_left_stops(tmp_path, clock):
    oracle = make_oracle(tmp_path, clock=clock)
    run(oracle, 3)
    oracle.set_deadline(clock() + 1e-3)  # far less than any epoch takes
    assert oracle.create_trial("tuner0").status == "STOPPED"


def test_the_deadline_stops_the_search(tmp_path, clock):
    oracle = make_oracle(tmp_path, clock=clock)
    oracle.set_deadline(clock() + 10)
    run(oracle, 2)
    clock.advance(10)
    assert oracle.create_trial("tuner0").status == "STOPPED"


def test_epoch_seconds_come_from_the_trial_files_and_survive_resume(tmp_path):
    oracle = make_oracle(tmp_path)
    assert oracle.epoch_seconds(generators.cnn(SHAPE, 3)) is None
    run(oracle, 3)  # each epoch takes flops * 1e-6 s in `run`
    graph = generators.resnet(SHAPE, 3)
    assert oracle.epoch_seconds(graph) == pytest.approx(graph.flops() * 1e-6)
    reloaded = make_oracle(tmp_path)
    reloaded.reload()
    assert reloaded.epoch_seconds(graph) == pytest.approx(graph.flops() * 1e-6)


def end_as_trained(oracle, trial, epochs, epoch_seconds=1.0, overhead=None):
    """Ends `trial` as trained for `epochs` epochs of `epoch_seconds` each (plus `overhead`
    seconds of building and tracing, when given)."""
    metrics = {"val_accuracy": 0.5 + epochs / 100, EPOCH_SECONDS: epoch_seconds}
    metrics[trials.EPOCHS] = epochs
    if overhead is not None:
        metrics[trials.TRAIN_SECONDS] = epochs * epoch_seconds + overhead
    oracle.update_trial(trial.trial_id, metrics)
    trial.status = "COMPLETED"
    oracle.end_trial(trial)


def test_last_stretch_of_the_budget_refines_the_best_architecture_once(tmp_path, clock):
    oracle = make_oracle(tmp_path, clock=clock)
    done = run(oracle, 6)
    oracle.set_deadline(clock() + 100, budget=1000)  # 10% left: inside the last 25%
    best = oracle.get_best_trials(1)[0]
    refine = oracle.create_trial("tuner0")
    assert trials.is_refinement(refine)
    assert trials.parent_of(refine) == best.trial_id
    assert values(refine)[trials.ARCHITECTURE] == values(best)[trials.ARCHITECTURE]
    assert not any(trials.is_refinement(t) for t in done)
    oracle.update_trial(refine.trial_id, {"val_accuracy": best.score - 0.01, EPOCH_SECONDS: 1e-3})
    refine.status = "COMPLETED"
    oracle.end_trial(refine)
    # The refinement lost: the search goes on with morphisms, not a second refinement.
    assert not trials.is_refinement(oracle.create_trial("tuner0"))


def test_a_small_budget_skips_initial_architectures_and_refines_early(tmp_path, clock):
    oracle = make_oracle(tmp_path, refine_share=1e-4, clock=clock)  # the share rule stays off
    first = run(oracle, 1)[0]  # epochs take flops * 1e-6 s in `run`
    epoch = trials.graph_of(first).flops() * 1e-6
    oracle.set_deadline(clock() + (REFINE_EPOCHS - 0.5) * epoch, budget=1000)  # early on
    oracle.update_trial(first.trial_id, {"val_accuracy": first.score, trials.EPOCHS: 2.0})
    trial = oracle.create_trial("tuner0")  # not the second initial architecture: refine
    assert trials.is_refinement(trial) and trials.parent_of(trial) == first.trial_id


@pytest.mark.parametrize("augment", [False, True])
@pytest.mark.parametrize("epochs_left, refines", [(REFINE_EPOCHS - 0.5, True), (12.0, False)])
def test_the_refinement_keeps_its_epochs_augmented_or_not(
    tmp_path, clock, augment, epochs_left, refines
):
    oracle = make_oracle(tmp_path, refine_share=1e-4, clock=clock)  # the share rule stays off
    first = run(oracle, 1)[0]
    oracle.augment = augment  # as decided for a budget of many epochs
    epoch = trials.graph_of(first).flops() * 1e-6
    oracle.set_deadline(clock() + epochs_left * epoch, budget=1000)
    trial = oracle.create_trial("tuner0")
    assert trials.is_refinement(trial) is refines  # else a child: more epochs fit
    assert trials.plan_of(trial).augment is augment


def test_refinement_waits_for_the_last_stretch_and_can_be_turned_off(tmp_path, clock):
    early = make_oracle(tmp_path / "early", clock=clock)
    run(early, 3)
    early.set_deadline(clock() + 900, budget=1000)
    assert not trials.is_refinement(early.create_trial("tuner0"))
    clock.advance(700)  # 200 s of 1000 left: inside the last 25%
    assert trials.is_refinement(early.create_trial("tuner1"))
    off = make_oracle(tmp_path / "off", refine_share=0, clock=clock)
    run(off, 3)
    off.set_deadline(clock() + 100, budget=1000)
    assert not trials.is_refinement(off.create_trial("tuner0"))


def test_children_that_gain_less_than_the_noise_of_validation_turn_the_search_to_refining(
    tmp_path, clock
):
    level = lambda graph: 0.9  # noqa: E731  every child ties the first architectures
    oracle = make_oracle(tmp_path / "noisy", clock=clock)
    oracle.set_deadline(clock() + 900, budget=1000)  # early: no other rule refines
    oracle.set_validation_size(6000)  # one standard error of 0.9: 0.0039
    initial = len(oracle.initial_graphs)
    done = run(oracle, initial + 2, objective=level)
    assert [trials.is_child(t) for t in done] == [False] * initial + [True, True]
    refine = oracle.create_trial("tuner0")
    assert trials.is_refinement(refine)
    # Every score ties: the first trial stays the incumbent, and is refined.
    assert trials.parent_of(refine) == done[0].trial_id
    assert "less than one standard error of the validation score (0.0039)" in trials.reason_of(
        refine
    )
    # The same run with a validation size unknown, or the rule off: the search goes on.
    for name, kwargs, size in [("unknown", {}, None), ("off", {"search_patience": None}, 6000)]:
        other = make_oracle(tmp_path / name, clock=clock, **kwargs)
        other.set_deadline(clock() + 900, budget=1000)
        other.set_validation_size(size)
        run(other, initial + 2, objective=level)
        assert trials.is_child(other.create_trial("tuner0"))


def test_a_child_ahead_by_less_than_the_noise_is_not_the_one_refined(tmp_path, clock):
    oracle = make_oracle(tmp_path, clock=clock)
    oracle.set_deadline(clock() + 900, budget=1000)
    oracle.set_validation_size(6000)  # one standard error of 0.9: 0.0039
    initial = len(oracle.initial_graphs)
    scores = iter([0.9] * initial + [0.902, 0.901])  # two children, each inside the noise
    done = run(oracle, initial + 2, objective=lambda graph: next(scores))
    refine = oracle.create_trial("tuner0")
    assert oracle.get_best_trials(1)[0].trial_id == done[-2].trial_id  # the best score
    assert trials.parent_of(refine) == done[0].trial_id  # but the incumbent is refined


def test_children_that_gain_beyond_the_noise_keep_the_search_going(tmp_path, clock):
    oracle = make_oracle(tmp_path, clock=clock)
    oracle.set_deadline(clock() + 900, budget=1000)
    oracle.set_validation_size(6000)
    rising = iter(0.80 + 0.01 * i for i in range(100))  # each trial beats the last by 0.01
    done = run(oracle, len(oracle.initial_graphs) + 4, objective=lambda graph: next(rising))
    assert sum(trials.is_child(t) for t in done) == 4
    assert not any(trials.is_refinement(t) for t in done)
    reloaded = make_oracle(tmp_path, clock=clock)
    reloaded.reload()
    assert reloaded.validation_size == 6000


def test_a_search_resumed_toward_the_same_deadline_keeps_its_budget(tmp_path, clock):
    oracle = make_oracle(tmp_path, clock=clock)
    oracle.set_deadline(clock() + 1000)
    run(oracle, 2)
    clock.advance(400)  # the process ends; the next one resumes 400 s on
    for deadline, budget in [
        (clock() + 600 + 4, 1000),
        (clock() + 600 - 15, 1000),
        (clock() + 900, 900),
    ]:
        resumed = make_oracle(tmp_path, clock=clock)
        resumed.reload()
        resumed.set_deadline(deadline)  # within 2% of the budget, or a new search's end
        assert resumed.budget == pytest.approx(budget)
    fresh = make_oracle(tmp_path / "fresh", clock=clock)
    fresh.set_deadline(clock() + 600)
    assert fresh.budget == pytest.approx(600)


def test_a_segment_of_a_chain_stops_after_its_trials_and_the_next_goes_on(tmp_path):
    segment = make_oracle(tmp_path / "chain")
    segment.process_trials = 2
    first = run(segment, 5)
    assert len(first) == 2  # the third proposal stops this process
    segment.save()  # as the tuner does after every trial
    following = make_oracle(tmp_path / "chain")
    following.reload()
    following.process_trials = 2
    more = run(following, 5)
    assert [t.trial_id for t in more] == ["0002", "0003"]  # the ids of one long search
    whole = run(make_oracle(tmp_path / "whole"), 4)  # the same search in one process
    architecture = lambda t: values(t)[trials.ARCHITECTURE]  # noqa: E731
    assert [architecture(t) for t in first + more] == [architecture(t) for t in whole]


def test_the_validation_size_is_checked(tmp_path):
    with pytest.raises(ValueError, match="validation_size"):
        make_oracle(tmp_path).set_validation_size(0)


@pytest.mark.slow
def test_beats_random_morphism_search_on_the_synthetic_benchmark():
    """A smaller run of benchmarks/oracle_synthetic.py: same seeds, same simulated budget."""
    results = compare(seeds=range(5), budget=800)
    oracle = np.median([best for best, _, _ in results["oracle"]])
    random = np.median([best for best, _, _ in results["random"]])
    assert oracle > random + 0.002, (oracle, random)


def test_without_search_the_first_architecture_is_trained_then_refined_and_nothing_else(
    tmp_path, clock
):
    oracle = make_oracle(tmp_path, search=False, clock=clock)
    oracle.set_deadline(clock() + 1000)
    first, refinement = run(oracle, 2)
    assert trials.parent_of(first) is None
    assert trials.graph_of(first).architecture_key() == (
        generators.initial_graphs(SHAPE, 3)[0].architecture_key()
    )
    assert trials.is_refinement(refinement) and trials.parent_of(refinement) == first.trial_id
    assert oracle.create_trial("tuner0").status == "STOPPED"


@pytest.mark.parametrize("epochs", [0.5, 2.0, 20.0])
def test_a_refinement_trains_on_at_the_full_rate_however_long_its_weights_trained(
    epochs, tmp_path, clock
):
    # Half the rate after an epoch cost 0.2-2.4 points at 40E (docs/design-notes.md).
    oracle = make_oracle(tmp_path, search=False, clock=clock)
    oracle.set_deadline(clock() + 1000)
    end_as_trained(oracle, oracle.create_trial("tuner0"), epochs)
    refinement = oracle.create_trial("tuner0")
    assert trials.is_refinement(refinement)
    assert trials.plan_of(refinement).learning_rate_scale == 1.0


def test_search_must_be_a_bool_or_random(tmp_path):
    with pytest.raises(ValueError, match='search.*True, False or "random".*no'):
        make_oracle(tmp_path, search="no")
    with pytest.raises(ValueError, match="pool_size.*random.*Received: pool_size=0"):
        make_oracle(tmp_path, search="random", pool_size=0)


def test_the_random_ablation_grows_children_without_the_gaussian_process(tmp_path, monkeypatch):
    from kerasnas.oracle import network_morphism

    def refuse(*args):
        raise AssertionError("the random ablation fitted the Gaussian process")

    monkeypatch.setattr(network_morphism, "fit_gp", refuse)
    oracle = make_oracle(tmp_path, search="random")
    done = run(oracle, 8)
    assert len(done) == 8 and all(trials.parent_of(t) for t in done[3:])
    keys = {trials.graph_of(t).architecture_key() for t in done}
    assert len(keys) == 8


def test_the_oracle_plans_each_trials_time_patience_and_rate(tmp_path, clock):
    oracle = make_oracle(tmp_path, clock=clock)
    first = oracle.create_trial("tuner0")
    assert trials.plan_of(first) == trials.TrialPlan(None, 3, 1.0)  # no deadline yet
    first.status = "COMPLETED"
    graph = trials.graph_of(first)
    epoch = 10.0
    oracle.update_trial(first.trial_id, {"val_accuracy": 0.5, EPOCH_SECONDS: epoch})
    oracle.end_trial(first)
    oracle.set_deadline(clock() + 1000, budget=1000)
    plan = oracle.plan(graph)
    assert plan.seconds == pytest.approx(300)  # 30% of the time left
    assert plan.patience == 3 and plan.learning_rate_scale == 1.0
    clock.advance(960)  # 40 s left: 12 s, but never under 1.5 epochs
    plan = oracle.plan(graph)
    assert plan.seconds == pytest.approx(15) and plan.patience == 1
    refine = oracle.plan(graph, refine=True)
    # All the time left at the full rate, no early stopping, augmented once validation
    # shows it overfitting; the search's deadline travels in every plan, for a worker.
    assert refine == trials.TrialPlan(40, None, 1.0, OVERFIT_RATIO, deadline=oracle.deadline)
    assert plan.deadline == oracle.deadline == clock() + 40
    clock.advance(35)
    assert oracle.plan(graph).seconds == pytest.approx(5)  # never past the deadline


@pytest.mark.parametrize(
    "kwargs, ratio",
    [
        ({}, OVERFIT_RATIO),
        ({"overfit_ratio": 3.5}, 3.5),
        ({"overfit_ratio": None}, None),
        ({"task": "regression"}, None),  # a shifted image may have another target
        ({"task": "regression", "overfit_ratio": 3.0}, 3.0),
    ],
)
def test_only_the_refinement_may_augment_and_the_ratio_is_an_option(tmp_path, clock, kwargs, ratio):
    oracle = make_oracle(tmp_path, clock=clock, **kwargs)
    graph = oracle.initial_graphs[0]
    assert oracle.plan(graph, refine=True).overfit_ratio == ratio
    oracle.set_deadline(clock() + 100)
    assert oracle.plan(graph, refine=True).overfit_ratio == ratio
    assert oracle.plan(graph).overfit_ratio is None
    assert oracle.plan(graph, child=True).overfit_ratio is None


def test_a_plan_travels_in_the_trial_and_survives_resume(tmp_path, clock):
    oracle = make_oracle(tmp_path, clock=clock)
    oracle.set_deadline(clock() + 600)
    trial = oracle.create_trial("tuner0")
    oracle.save()
    reloaded = make_oracle(tmp_path, clock=clock)
    reloaded.reload()
    assert trials.plan_of(reloaded.trials[trial.trial_id]) == trials.plan_of(trial)
    assert trials.plan_of(trial).seconds == pytest.approx(180)


def first_width(graph):
    return graph.layers[0]["config"]["filters"]


@pytest.mark.parametrize("budget", [1.0, 3.0, 30.0, 3000.0])
def test_the_first_architecture_is_sized_to_the_machine_and_budget(tmp_path, clock, budget):
    oracle = make_oracle(tmp_path, clock=clock)
    oracle.set_deadline(clock() + budget)
    assert oracle.needs_probe()
    oracle.set_probe(oracle.probe_graphs()[0], epoch_seconds=0.5, overhead_seconds=0.5)
    assert not oracle.needs_probe()
    first = trials.graph_of(oracle.create_trial("tuner0"))
    assert first_width(oracle.probe_graphs()[0]) == DEFAULT_WIDTH
    assert first_width(first) in FIRST_WIDTHS
    widths = {
        w: generators.initial_graphs(SHAPE, 3, width=w / DEFAULT_WIDTH)[0] for w in FIRST_WIDTHS
    }
    room = budget - 0.5  # the probe's overhead
    # The widest of which max(SIZE_EPOCHS, sqrt(m)) epochs fit, m being how many of the
    # narrowest's fit (the narrowest if none does).
    epochs = max(SIZE_EPOCHS, np.sqrt(room / oracle.epoch_seconds(widths[FIRST_WIDTHS[0]])))
    fits = [w for w, g in widths.items() if epochs * oracle.epoch_seconds(g) <= room]
    assert first_width(first) == (max(fits) if fits else FIRST_WIDTHS[0])


def test_a_longer_budget_buys_more_epochs_of_the_first_architecture(tmp_path, clock):
    epochs = []
    for budget in (30.0, 3000.0, 300000.0):
        oracle = make_oracle(tmp_path / str(budget), clock=clock)
        oracle.set_deadline(clock() + budget)
        oracle.set_probe(oracle.probe_graphs()[0], epoch_seconds=0.5)
        first = trials.graph_of(oracle.create_trial("tuner0"))
        epochs.append(budget / oracle.epoch_seconds(first))
    assert SIZE_EPOCHS <= epochs[0] < epochs[1] < epochs[2]


@pytest.mark.parametrize(
    "budget, kwargs, augment",
    [
        (3000.0, {}, True),  # many epochs of the first architecture fit
        (0.5, {}, False),  # a few
        (3000.0, {"augment_epochs": None}, False),
        (3000.0, {"task": "regression"}, False),  # a shift may change the target
        (3000.0, {"task": "regression", "augment_epochs": 4}, True),
    ],
)
def test_every_trial_augments_when_the_budget_holds_many_epochs(
    tmp_path, clock, budget, kwargs, augment
):
    oracle = make_oracle(tmp_path, clock=clock, **kwargs)
    oracle.set_deadline(clock() + budget)
    oracle.set_probe(oracle.probe_graphs()[0], epoch_seconds=0.5)
    first = oracle.create_trial("tuner0")
    graph = trials.graph_of(first)
    if not kwargs:
        assert oracle.schedule.augment_epochs == AUGMENT_EPOCHS
    epochs = (budget - oracle.overhead_seconds()) / oracle.epoch_seconds(graph)
    assert (epochs >= (oracle.schedule.augment_epochs or np.inf)) is augment
    assert oracle.augment is augment
    assert trials.plan_of(first).augment is augment
    assert oracle.plan(graph, child=True).augment is augment
    refine = oracle.plan(graph, refine=True)
    assert refine.augment is augment
    # Augmented throughout, the refinement has nothing to turn to once it overfits.
    assert (refine.overfit_ratio is None) is (augment or kwargs.get("task") == "regression")
    oracle.save()
    reloaded = make_oracle(tmp_path, clock=clock, **kwargs)
    reloaded.reload()
    clock.advance(budget - 1)  # now nothing would fit: the decision stands
    assert reloaded.augment is augment and reloaded.plan(graph).augment is augment


def test_without_a_deadline_or_a_timing_the_search_does_not_augment(tmp_path, clock):
    oracle = make_oracle(tmp_path, clock=clock)
    assert trials.plan_of(oracle.create_trial("tuner0")).augment is False
    assert oracle.augment is False
    timed_later = make_oracle(tmp_path / "no_probe", clock=clock)
    timed_later.set_deadline(clock() + 3000)  # but nothing timed: the epoch is unknown
    assert trials.plan_of(timed_later.create_trial("tuner0")).augment is False


def test_sizing_grows_with_the_budget_and_survives_resume(tmp_path, clock):
    widths = []
    for budget in (3.0, 3000.0):
        oracle = make_oracle(tmp_path / str(budget), clock=clock)
        oracle.set_deadline(clock() + budget)
        oracle.set_probe(oracle.probe_graphs()[0], 0.5)
        widths.append(first_width(trials.graph_of(oracle.create_trial("tuner0"))))
        oracle.save()
    assert widths[0] < widths[1]
    reloaded = make_oracle(tmp_path / "3000.0", clock=clock)
    reloaded.reload()
    assert reloaded.width == widths[1] and reloaded.probe == oracle.probe
    assert not reloaded.needs_probe()


@pytest.mark.parametrize("budget", [3.0, 3000.0])
def test_a_first_width_given_holds_whatever_the_timings(tmp_path, clock, budget):
    oracle = make_oracle(tmp_path, clock=clock, first_width=FIRST_WIDTHS[1])
    oracle.set_deadline(clock() + budget)
    assert oracle.needs_probe()  # still timed: the schedule and augmentation read it
    oracle.set_probe(oracle.probe_graphs()[0], epoch_seconds=0.5, overhead_seconds=0.5)
    first = oracle.create_trial("tuner0")
    assert first_width(trials.graph_of(first)) == FIRST_WIDTHS[1]
    assert trials.reason_of(first).startswith(
        f"the first architecture, {FIRST_WIDTHS[1]} filters wide, as `first_width` asks"
    )
    oracle.save()
    reloaded = make_oracle(tmp_path, clock=clock, first_width=FIRST_WIDTHS[1])
    reloaded.reload()
    assert reloaded.width == FIRST_WIDTHS[1]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"first_width": 12}, "Expected `first_width` to be one of 8, 16, 32, 64"),
        ({"first_width": 32, "initial_graphs": generators.initial_graphs(SHAPE, 3)[:1]},
         "Expected `first_width` or `initial_graphs`, not both"),
        ({"first_width": 64, "max_model_size": 20_000},
         "at 64 filters none has at most 20,000 parameters"),
    ],
)  # fmt: skip
def test_a_first_width_that_cannot_hold_is_refused(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        make_oracle(tmp_path, **kwargs)


def test_without_a_timing_the_first_architecture_has_the_default_width(tmp_path, clock):
    oracle = make_oracle(tmp_path, clock=clock)
    oracle.set_deadline(clock() + 10)
    first = trials.graph_of(oracle.create_trial("tuner0"))
    assert first.architecture_key() == generators.initial_graphs(SHAPE, 3)[0].architecture_key()


def test_children_are_judged_by_short_warm_started_runs(tmp_path, clock):
    oracle = make_oracle(tmp_path, clock=clock)
    oracle.set_deadline(clock() + 200, budget=200)  # too short for another initial architecture
    first = oracle.create_trial("tuner0")
    graph = trials.graph_of(first)
    oracle.update_trial(
        first.trial_id,
        {"val_accuracy": 0.5, EPOCH_SECONDS: 10.0, trials.EPOCHS: 20.0, trials.TRAIN_SECONDS: 203},
    )
    first.status = "COMPLETED"
    oracle.end_trial(first)
    assert oracle.overhead_seconds() == pytest.approx(3.0)  # 203 s for 20 epochs of 10 s
    child = oracle.create_trial("tuner0")
    assert trials.parent_of(child) == first.trial_id and not trials.is_refinement(child)
    epoch = oracle.epoch_seconds(trials.graph_of(child))
    expected = 3.0 + max(
        oracle.schedule.child_share * 200, CHILD_EPOCHS * epoch, CHILD_OVERHEADS * 3.0
    )
    assert trials.plan_of(child).seconds == pytest.approx(expected, rel=1e-3)
    assert trials.plan_of(child).seconds < oracle.plan(graph).seconds  # an initial one: 30%


def test_a_childs_run_is_planned_with_the_overhead_measured_on_children(tmp_path, clock):
    oracle = make_oracle(tmp_path, clock=clock, child_share=0.01)
    oracle.set_deadline(clock() + 200, budget=200)  # too short for another initial architecture
    oracle.set_probe(oracle.probe_graphs()[0], epoch_seconds=10.0, overhead_seconds=2.5)

    def planned_training(child):  # the child's run beyond its overhead, as planned
        epoch = oracle.epoch_seconds(trials.graph_of(child))
        return max(oracle.schedule.child_share * 200, CHILD_EPOCHS * epoch)

    assert oracle.overhead_seconds(child=True) == pytest.approx(2.5)  # the probe's, until...
    first = oracle.create_trial("tuner0")
    # The first trial pays one-time costs.
    end_as_trained(oracle, first, 2.0, epoch_seconds=10.0, overhead=18.0)
    assert oracle.overhead_seconds(child=True) == pytest.approx(18.0)  # ...a trial is timed,
    child = oracle.create_trial("tuner0")
    assert trials.parent_of(child) == first.trial_id and not trials.is_refinement(child)
    expected = 18.0 + max(planned_training(child), CHILD_OVERHEADS * 18.0)
    assert trials.plan_of(child).seconds == pytest.approx(expected, rel=1e-3)
    end_as_trained(oracle, child, 0.5, epoch_seconds=10.0, overhead=4.0)
    assert oracle.overhead_seconds() == pytest.approx((18.0 + 4.0) / 2)
    assert oracle.overhead_seconds(child=True) == pytest.approx(4.0)  # ...and then a child
    grandchild = oracle.create_trial("tuner0")
    assert trials.parent_of(grandchild) and not trials.is_refinement(grandchild)
    # It trains for twice its overhead: more than 1% of the budget or half an epoch.
    assert CHILD_OVERHEADS * 4.0 > planned_training(grandchild)
    assert trials.plan_of(grandchild).seconds == pytest.approx(4.0 + CHILD_OVERHEADS * 4.0)


def test_effort_adds_up_the_training_behind_a_trial(tmp_path, clock):
    oracle = make_oracle(tmp_path, clock=clock, initial_graphs=[generators.cnn(SHAPE, 3)])
    efforts = {}
    for epochs in (4.0, 0.5, 0.5):
        trial = oracle.create_trial("tuner0")
        end_as_trained(oracle, trial, epochs)
        parent = trials.parent_of(trial)
        efforts[trial.trial_id] = epochs + (efforts[parent] if parent else 0.0)
    for trial_id, effort in efforts.items():
        assert oracle.effort(trial_id) == pytest.approx(effort)
    assert any(e > 4.0 for e in efforts.values())  # a child's effort includes its parent's


def test_no_trial_starts_when_the_time_left_would_go_to_building_it(tmp_path, clock):
    oracle = make_oracle(tmp_path, clock=clock)
    first = oracle.create_trial("tuner0")
    oracle.update_trial(
        first.trial_id,
        {"val_accuracy": 0.5, EPOCH_SECONDS: 1.0, trials.EPOCHS: 5.0, trials.TRAIN_SECONDS: 15.0},
    )
    first.status = "COMPLETED"
    oracle.end_trial(first)
    oracle.set_deadline(clock() + 9.0, budget=100)  # the overhead is 10 s
    assert oracle.create_trial("tuner0").status == "STOPPED"


def test_set_probe_checks_its_timings(tmp_path):
    oracle = make_oracle(tmp_path)
    with pytest.raises(ValueError, match="epoch_seconds"):
        oracle.set_probe(oracle.probe_graphs()[0], 0.0)
    with pytest.raises(ValueError, match="overhead_seconds"):
        oracle.set_probe(oracle.probe_graphs()[0], 1.0, -1.0)


def test_two_probe_widths_tell_flops_from_activations(tmp_path):
    oracle = make_oracle(tmp_path)
    truth = lambda g: 1e-6 * g.flops() + 1e-4 * g.activations()  # noqa: E731
    probes = oracle.probe_graphs()[:2]
    assert probes[0].flops() > probes[1].flops()
    for graph in probes:
        oracle.set_probe(graph, truth(graph), 1.0)
    middle = generators.initial_graphs(SHAPE, 3, width=0.5)[0]
    assert oracle.epoch_seconds(middle) == pytest.approx(truth(middle), rel=1e-3)
    assert oracle.overhead_seconds() == pytest.approx(1.0)


def test_the_widest_first_architecture_is_timed_not_extrapolated(tmp_path):
    oracle = make_oracle(tmp_path)
    probes = oracle.probe_graphs()
    widths = [DEFAULT_WIDTH, FIRST_WIDTHS[0], FIRST_WIDTHS[-1]]
    assert [g.architecture_key() for g in probes] == [
        oracle._default_graphs(w)[0].architecture_key() for w in widths
    ]
    # A fixed cost per epoch besides FLOPs and activations, which two timings cannot tell.
    truth = lambda g: 1e-6 * g.flops() + 1e-4 * g.activations() + 2.0  # noqa: E731
    default, narrowest, widest = probes
    oracle.set_probe(default, truth(default))
    oracle.set_probe(narrowest, truth(narrowest))
    assert oracle.epoch_seconds(widest) != pytest.approx(truth(widest), rel=0.05)
    oracle.set_probe(widest, truth(widest))
    middle = generators.initial_graphs(SHAPE, 3, width=0.5)[0]
    for graph in (widest, middle):
        assert oracle.epoch_seconds(graph) == pytest.approx(truth(graph), rel=1e-3)


def test_a_tie_on_the_objective_goes_to_the_lower_validation_loss(tmp_path):
    oracle = make_oracle(tmp_path)
    done = []
    for loss in (0.06, 0.03, None):  # the third reports no loss: it loses the tie
        trial = oracle.create_trial("tuner0")
        metrics = {"val_accuracy": 0.9926, EPOCH_SECONDS: 1.0}
        if loss is not None:
            metrics[trials.TIE_VAL_LOSS] = loss
        oracle.update_trial(trial.trial_id, metrics)
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
        done.append(trial.trial_id)
    assert [t.trial_id for t in oracle.get_best_trials(3)] == [done[1], done[0], done[2]]
    # The objective comes first: a better score wins whatever its loss.
    trial = oracle.create_trial("tuner0")
    oracle.update_trial(trial.trial_id, {"val_accuracy": 0.995, trials.TIE_VAL_LOSS: 0.5})
    trial.status = "COMPLETED"
    oracle.end_trial(trial)
    assert oracle.get_best_trials(1)[0].trial_id == trial.trial_id


def decisions_in_epochs(directory, budget_epochs, scale):
    """A replayed search's decisions in E (the replay machine's plain-CNN epoch at
    `scale`): the first width, each trial's allowance and when the refinement starts."""
    from kerasnas.testing import REPLAY_CLASSES, REPLAY_SHAPE, replay_epoch_seconds, replay_search

    epoch = replay_epoch_seconds(generators.cnn(REPLAY_SHAPE, REPLAY_CLASSES), scale)
    decisions, oracle = replay_search(directory, budget=budget_epochs * epoch, scale=scale)
    first = trials.graph_of(oracle.trials[decisions[0]["trial_id"]])
    refinements = [d for d in decisions if d["refine"]]
    return {
        "first_width": FIRST_WIDTHS.index(first.layers[0]["config"]["filters"]),
        "allowances": [d["plan"]["seconds"] / epoch for d in decisions],
        "refine_starts": (
            budget_epochs - refinements[0]["plan"]["seconds"] / epoch if refinements else None
        ),
    }


@pytest.mark.parametrize("budget_epochs", [3, 15, 40])
@pytest.mark.parametrize("scale", [0.25, 4.0])
def test_decisions_in_epochs_do_not_depend_on_the_machine_speed(tmp_path, budget_epochs, scale):
    """A machine 4x faster or slower, given the same budget in its own epochs, sizes the
    first architecture within one width step and plans trials and the refinement
    within a factor of two."""
    here = decisions_in_epochs(tmp_path / "here", budget_epochs, 1.0)
    there = decisions_in_epochs(tmp_path / "there", budget_epochs, scale)
    assert abs(here["first_width"] - there["first_width"]) <= 1
    assert abs(len(here["allowances"]) - len(there["allowances"])) <= 1
    for a, b in zip(here["allowances"][:2], there["allowances"][:2]):
        assert 0.5 <= b / a <= 2.0
    assert (here["refine_starts"] is None) == (there["refine_starts"] is None)
    if here["refine_starts"] is not None:
        assert abs(here["refine_starts"] - there["refine_starts"]) <= max(1.0, 0.1 * budget_epochs)


def test_same_seed_same_proposals_whatever_the_timings_under_fits_default_budget(tmp_path):
    """`fit` without a time limit has a day: the cost weight of the acquisition is then about
    1e-5, so the proposals follow the seed and the scores, not the epoch times measured on a
    busy or idle machine (here +-30% apart)."""
    from kerasnas.oracle.schedule import DEFAULT_TIME_LIMIT
    from kerasnas.testing import FakeClock

    proposals = []
    for name, timing_seed in (("a", 1), ("b", 2)):
        clock = FakeClock()
        oracle = make_oracle(tmp_path / name, clock=clock)
        oracle.set_deadline(clock() + DEFAULT_TIME_LIMIT)
        noise = np.random.default_rng(timing_seed)
        done = []
        for _ in range(10):
            trial = oracle.create_trial("tuner0")
            graph = trials.graph_of(trial)
            seconds = graph.flops() * 1e-6 * noise.uniform(0.7, 1.3)
            clock.advance(3 * seconds)
            oracle.update_trial(
                trial.trial_id, {"val_accuracy": score(graph), EPOCH_SECONDS: seconds}
            )
            trial.status = "COMPLETED"
            oracle.end_trial(trial)
            done.append((trials.graph_of(trial).architecture_key(), trials.parent_of(trial)))
        proposals.append(done)
    assert proposals[0] == proposals[1]


@pytest.mark.parametrize("search", [True, "random"])
def test_a_long_search_parses_only_the_trials_a_proposal_looks_at(tmp_path, monkeypatch, search):
    from kerasnas.oracle import measurements
    from kerasnas.oracle.proposals import MAX_OBSERVATIONS, window
    from kerasnas.testing import synthetic_oracle

    size = MAX_OBSERVATIONS + measurements.TIMINGS_KEPT + 40
    oracle = synthetic_oracle(size, str(tmp_path))
    oracle.search = search
    for trial in list(oracle.trials.values())[:10]:  # trials of an older kerasnas: no key
        del trial.hyperparameters.values[trials.ARCHITECTURE_KEY]
    parsed = []
    graph_of = trials.graph_of
    monkeypatch.setattr(trials, "graph_of", lambda t: parsed.append(t.trial_id) or graph_of(t))

    found = oracle.populate_space(f"{size:04d}")

    assert found["status"] == "RUNNING"
    assert len(set(parsed)) <= MAX_OBSERVATIONS + measurements.TIMINGS_KEPT + 10 < size
    ids, y = measurements.observations(oracle._scored(), [], "max")
    assert found["values"][trials.PARENT_TRIAL_ID] in window(ids, y)[0]
    child = Graph.from_json(found["values"][trials.ARCHITECTURE])
    tried = {trials.graph_of(t).architecture_key() for t in oracle.trials.values()}
    assert child.architecture_key() not in tried and oracle._tried() == tried
