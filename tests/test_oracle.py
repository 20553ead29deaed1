"""NetworkMorphismOracle through KerasTuner's own API, with scores fed in, no training."""

from __future__ import annotations

import time

import keras_tuner
import numpy as np
import pytest

from kerasnas.graph import Graph, generators
from kerasnas.oracle import EPOCH_SECONDS, NetworkMorphismOracle

SHAPE = (8, 8, 1)


def make_oracle(directory, **kwargs):
    kwargs.setdefault("seed", 1)
    oracle = NetworkMorphismOracle(SHAPE, 3, **kwargs)
    oracle._set_project_dir(str(directory), "search")
    return oracle


def score(graph):
    """Analytic objective: best at depth 12 and 300k parameters, beyond the initial graphs."""
    return 0.95 - 0.01 * abs(graph.depth() - 12) - 0.02 * abs(np.log2(graph.num_params() / 3e5))


def run(oracle, trials, objective=score, fail=()):
    """Creates, scores and ends `trials` trials; returns them."""
    done = []
    for i in range(trials):
        trial = oracle.create_trial("tuner0")
        if trial.status != "RUNNING":
            break
        graph = Graph.from_json(trial.hyperparameters.values["architecture"])
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
    trials = run(make_oracle(tmp_path), 3)
    graphs = [Graph.from_json(values(t)["architecture"]) for t in trials]
    expected = generators.initial_graphs(SHAPE, 3)
    assert [g.architecture_key() for g in graphs] == [g.architecture_key() for g in expected]
    assert all(values(t)["parent_trial_id"] == "" for t in trials)


def test_later_trials_are_children_of_trained_trials(tmp_path):
    oracle = make_oracle(tmp_path)
    trials = run(oracle, 12)
    keys = set()
    for trial in trials[3:]:
        parent_id = values(trial)["parent_trial_id"]
        parent = oracle.get_trial(parent_id)
        assert parent.status == "COMPLETED"
        parent_graph = Graph.from_json(values(parent)["architecture"])
        child = Graph.from_json(values(trial)["architecture"])
        assert child.history[: len(parent_graph.history)] == parent_graph.history
        assert len(child.history) > len(parent_graph.history)
        keys.add(child.architecture_key())
    assert len(keys) == len(trials) - 3  # never the same architecture twice


def test_search_improves_on_the_initial_architectures(tmp_path):
    oracle = make_oracle(tmp_path)
    run(oracle, 25)
    initial_best = max(t.score for t in list(oracle.trials.values())[:3])
    assert oracle.get_best_trials()[0].score > initial_best + 0.02


def test_same_seed_same_scores_same_proposals(tmp_path):
    first = run(make_oracle(tmp_path / "a"), 10)
    second = run(make_oracle(tmp_path / "b"), 10)
    assert [values(t) for t in first] == [values(t) for t in second]
    third = run(make_oracle(tmp_path / "c", seed=2), 10)
    assert [values(t) for t in first] != [values(t) for t in third]


def test_reload_resumes_without_repeating_and_proposes_the_same(tmp_path):
    oracle = make_oracle(tmp_path)
    run(oracle, 6)
    oracle.set_deadline(time.time() + 3600)
    oracle.save()
    pending = oracle.create_trial("tuner0")  # the process dies while this trial runs

    reloaded = make_oracle(tmp_path)
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


def test_max_trials_stops_the_search(tmp_path):
    oracle = make_oracle(tmp_path, max_trials=5)
    assert len(run(oracle, 10)) == 5
    assert oracle.create_trial("tuner0").status == "STOPPED"


def test_max_model_size_bounds_every_candidate(tmp_path):
    limit = max(g.num_params() for g in generators.initial_graphs(SHAPE, 3)) + 5000
    oracle = make_oracle(tmp_path, max_model_size=limit)
    for trial in run(oracle, 15):
        assert Graph.from_json(values(trial)["architecture"]).num_params() <= limit


def test_max_model_size_below_every_initial_architecture_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="max_model_size=10"):
        make_oracle(tmp_path, max_model_size=10)


def test_a_run_of_failures_does_not_stop_the_search(tmp_path):
    oracle = make_oracle(tmp_path)
    trials = run(oracle, 12, fail=range(4, 10))  # six failed trials in a row
    assert len(trials) == 12
    assert sum(t.status == "FAILED" for t in oracle.trials.values()) == 6


def test_nothing_trained_yet_means_wait_or_stop(tmp_path):
    oracle = make_oracle(tmp_path)
    for i in range(3):
        oracle.create_trial(f"tuner{i}")  # three workers hold the initial trials
    assert oracle.create_trial("tuner3").status == "IDLE"
    only_failures = make_oracle(tmp_path / "failed")
    run(only_failures, 3, fail=range(3))
    assert only_failures.create_trial("tuner0").status == "STOPPED"


def test_deadline_makes_proposals_cheaper(tmp_path):
    """Under a budget, gain per second wins: proposals cost fewer FLOPs on average."""
    flat = lambda graph: 0.9 + 0.001 * graph.depth()  # barely rewards growth
    free, budgeted = make_oracle(tmp_path / "free"), make_oracle(tmp_path / "budget")
    budgeted.set_deadline(time.time() + 3600)
    cost = {}
    for name, oracle in (("free", free), ("budget", budgeted)):
        trials = run(oracle, 16, objective=flat)[3:]
        cost[name] = np.mean([Graph.from_json(values(t)["architecture"]).flops() for t in trials])
    assert cost["budget"] < cost["free"]


def test_no_candidate_fits_the_time_left_stops(tmp_path):
    oracle = make_oracle(tmp_path)
    run(oracle, 3)
    oracle.set_deadline(time.time() + 1e-3)  # far less than any epoch takes
    assert oracle.create_trial("tuner0").status == "STOPPED"


def test_last_stretch_of_the_budget_refines_the_best_architecture_once(tmp_path):
    oracle = make_oracle(tmp_path)
    trials = run(oracle, 6)
    oracle.set_deadline(time.time() + 100, budget=1000)  # 10% left: inside the last 25%
    best = oracle.get_best_trials(1)[0]
    refine = oracle.create_trial("tuner0")
    assert values(refine)["refine"] is True
    assert values(refine)["parent_trial_id"] == best.trial_id
    assert values(refine)["architecture"] == values(best)["architecture"]
    assert not any(values(t)["refine"] for t in trials)
    oracle.update_trial(refine.trial_id, {"val_accuracy": best.score - 0.01, EPOCH_SECONDS: 1e-3})
    refine.status = "COMPLETED"
    oracle.end_trial(refine)
    # The refinement lost: the search goes on with morphisms, not a second refinement.
    assert not values(oracle.create_trial("tuner0"))["refine"]


def test_a_small_budget_skips_initial_architectures_and_refines_early(tmp_path):
    oracle = make_oracle(tmp_path, refine_share=1e-4)  # the 10%-of-budget rule stays off
    first = run(oracle, 1)[0]  # epochs take flops * 1e-6 s in `run`
    epoch = Graph.from_json(values(first)["architecture"]).flops() * 1e-6
    oracle.set_deadline(time.time() + 5 * epoch, budget=1000)  # early in the budget
    trial = oracle.create_trial("tuner0")  # not the second initial architecture: refine
    assert values(trial)["refine"] and values(trial)["parent_trial_id"] == first.trial_id


def test_refinement_waits_for_the_last_stretch_and_can_be_turned_off(tmp_path):
    early = make_oracle(tmp_path / "early")
    run(early, 3)
    early.set_deadline(time.time() + 900, budget=1000)
    assert not values(early.create_trial("tuner0"))["refine"]
    off = make_oracle(tmp_path / "off", refine_share=0)
    run(off, 3)
    off.set_deadline(time.time() + 100, budget=1000)
    assert not values(off.create_trial("tuner0"))["refine"]


def _synthetic_benchmark():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "benchmarks" / "oracle_synthetic.py"
    spec = importlib.util.spec_from_file_location("oracle_synthetic", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_beats_random_morphism_search_on_the_synthetic_benchmark():
    """A smaller run of benchmarks/oracle_synthetic.py: same seeds, same simulated budget."""
    benchmark = _synthetic_benchmark()
    results = benchmark.compare(seeds=range(5), budget=800)
    oracle = np.median([best for best, _, _ in results["oracle"]])
    random = np.median([best for best, _, _ in results["random"]])
    assert oracle > random + 0.002, (oracle, random)
