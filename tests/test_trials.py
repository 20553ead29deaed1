"""The trial contract: plans round-trip through JSON, across kerasnas versions."""

from __future__ import annotations

import json

from kerasnas import trials


def test_a_plan_round_trips_through_its_config():
    for plan in (
        trials.TrialPlan(12.5, None, 0.5, overfit_ratio=2.0),
        trials.TrialPlan(12.5, 3, augment=True),
    ):
        assert trials.TrialPlan.from_config(json.loads(json.dumps(plan.get_config()))) == plan


def test_a_plan_from_an_older_run_never_augments():
    older = {"seconds": 30.0, "patience": 3, "learning_rate_scale": 1.0}
    plan = trials.TrialPlan.from_config(older)
    assert plan.overfit_ratio is None and plan.augment is False


def test_a_plan_from_a_newer_kerasnas_is_read_without_what_it_adds():
    newer = {**trials.TrialPlan(30.0, 3).get_config(), "label_smoothing": 0.1}
    assert trials.TrialPlan.from_config(newer) == trials.TrialPlan(30.0, 3)


def test_a_trial_records_its_architecture_key_and_an_older_one_is_parsed_for_it():
    import keras_tuner
    from keras_tuner.engine import trial as trial_module

    from kerasnas.graph import generators

    graph = generators.initial_graphs((8, 8, 1), 3)[0]
    hp = keras_tuner.HyperParameters()
    for name, value in trials.values(graph).items():
        hp.Fixed(name, value)
    assert trials.architecture_key_of(trial_module.Trial(hp)) == graph.architecture_key()
    hp.values[trials.ARCHITECTURE_KEY] = "recorded"
    assert trials.key_of(trial_module.Trial(hp)) == "recorded"  # read, not parsed
    hp.values.pop(trials.ARCHITECTURE_KEY)
    assert trials.architecture_key_of(trial_module.Trial(hp)) is None
    assert trials.key_of(trial_module.Trial(hp)) == graph.architecture_key()  # parsed
    hp.values[trials.ARCHITECTURE_KEY] = 7  # a stranger's file: not a key
    assert trials.architecture_key_of(trial_module.Trial(hp)) is None
