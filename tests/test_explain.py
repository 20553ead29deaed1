"""The search's sentences: on plain numbers, from an oracle on a fake clock, and the summary."""

from __future__ import annotations

import pytest

from kerasnas import trials
from kerasnas.oracle import NetworkMorphismOracle, explain
from kerasnas.oracle.schedule import REFINE_EPOCHS
from kerasnas.trials import EPOCH_SECONDS

SHAPE = (8, 8, 1)


def make_oracle(directory, **kwargs):
    oracle = NetworkMorphismOracle(SHAPE, 3, seed=1, **kwargs)
    oracle._set_project_dir(str(directory), "search")
    return oracle


def complete(oracle, trial, score, epoch=10.0, epochs=20.0):
    metrics = {"val_accuracy": score, EPOCH_SECONDS: epoch, trials.EPOCHS: epochs}
    metrics[trials.TRAIN_SECONDS] = epochs * epoch + 3.0
    oracle.update_trial(trial.trial_id, metrics)
    trial.status = "COMPLETED"
    oracle.end_trial(trial)


def test_the_first_architecture_says_what_fit_and_whether_it_augments():
    assert explain.first_architecture(32, 300.0, 10.0, 3.0) == (
        "the first architecture, 32 filters wide: the widest of which 3 epochs fit in 300 s "
        "(an epoch takes 10 s)"
    )
    assert "the narrowest: 2 of its epochs" in explain.first_architecture(8, 20.0, 10.0, 3.0)
    assert "an epoch takes 0.031 s" in explain.first_architecture(64, 20.0, 0.031, 25.0)
    assert explain.first_architecture(32, None, None, None).endswith("no time limit to size it to")
    assert explain.augmentation(True, 600.0, 10.0, 50) == (
        "every trial trains on augmented images: 60 epochs of it fit, 50 needed"
    )
    assert explain.augmentation(False, 300.0, 10.0, 50).startswith("no augmentation from")
    assert "augment_epochs=None" in explain.augmentation(False, 600.0, 10.0, None)


def test_a_child_and_a_refinement_give_their_numbers():
    line = explain.child("3", 2, "ei", 45.0, 60.0)
    assert line == (
        "a child of trial 3 by 2 morphisms, the candidate of highest expected improvement "
        "per second; it trains 45 s, about 0.75 of its epochs"
    )
    assert "drawn at random" in explain.child("0", 1, "random", None, None)
    line = explain.refinement("0", 70.0, 7.0, 2.1, 0, 0.25, "few epochs")
    assert line == (
        f"no child: 7 epochs of trial 0 fit ({REFINE_EPOCHS} or fewer go to refining it); "
        "a child would take 2.1 of them. Refining trial 0 for the 70 s left"
    )
    line = explain.refinement("4", 250.0, 25.0, 2.1, 3, 0.25)
    assert line.startswith("no further child after 3: the last 25% of the budget has come")
    line = explain.refinement("4", 600.0, 60.0, 2.1, 5, 0.25, "no gain", 2, 0.0039)
    assert line == (
        "no further child after 5: the last 2 children each beat trial 4's score by less "
        "than one standard error of the validation score (0.0039), which noise alone could "
        "give. Refining trial 4 for the 600 s left"
    )


def test_a_budget_without_room_for_a_child_says_so(tmp_path, clock):
    oracle = make_oracle(tmp_path, clock=clock, refine_share=1e-4)  # the share rule stays off
    oracle.set_deadline(clock() + 100, budget=100)
    first = oracle.create_trial("tuner0")
    assert trials.reason_of(first).startswith("the first architecture")
    complete(oracle, first, 0.5)
    clock.advance(25)  # 75 s left: fewer than REFINE_EPOCHS epochs of 10 s
    refine = oracle.create_trial("tuner0")
    assert trials.is_refinement(refine)
    reason = trials.reason_of(refine)
    assert reason.startswith(f"no child: 7.5 epochs of trial {first.trial_id} fit")
    assert "a child would take" in reason and reason.endswith("for the 75 s left")


def test_a_budget_with_room_for_a_child_says_which_and_why(tmp_path, clock):
    oracle = make_oracle(tmp_path, clock=clock)
    oracle.set_deadline(clock() + 200, budget=200)  # too short for another initial architecture
    first = oracle.create_trial("tuner0")
    complete(oracle, first, 0.5)
    child = oracle.create_trial("tuner0")
    assert trials.parent_of(child) == first.trial_id and not trials.is_refinement(child)
    seconds = trials.plan_of(child).seconds
    reason = trials.reason_of(child)
    assert reason.startswith(f"a child of trial {first.trial_id} by ")
    assert "expected improvement" in reason and f"it trains {seconds:.0f} s" in reason


def test_without_search_the_refinement_says_so(tmp_path, clock):
    oracle = make_oracle(tmp_path, clock=clock, search=False)
    oracle.set_deadline(clock() + 200, budget=200)
    first = oracle.create_trial("tuner0")
    complete(oracle, first, 0.5)
    refine = oracle.create_trial("tuner0")
    assert trials.reason_of(refine) == (
        f"no search (search=False): trial {first.trial_id} trains on for the 200 s left"
    )


@pytest.mark.parametrize("child_score, gain", [(0.6, 0.1), (0.5, 0.0), (0.4, 0.0)])
def test_the_summary_weighs_the_best_against_the_first_architecture(
    tmp_path, clock, child_score, gain
):
    oracle = make_oracle(tmp_path, clock=clock)
    oracle.set_deadline(clock() + 200, budget=200)
    first = oracle.create_trial("tuner0")
    complete(oracle, first, 0.5)
    child = oracle.create_trial("tuner0")
    complete(oracle, child, child_score)
    record, line = explain.summary(oracle.trials, "max", "val_accuracy")
    assert record["first_trial_id"] == first.trial_id and record["children"] == 1
    assert record["gain"] == pytest.approx(max(child_score - 0.5, 0.0))
    if gain:
        assert line.startswith("the search added +0.1000 val_accuracy over the first")
    else:
        assert line.startswith("the search added nothing over the first architecture")


def test_a_gain_inside_the_validation_noise_says_so(tmp_path, clock):
    oracle = make_oracle(tmp_path, clock=clock)
    oracle.set_deadline(clock() + 200, budget=200)
    first = oracle.create_trial("tuner0")
    complete(oracle, first, 0.90)
    child = oracle.create_trial("tuner0")
    complete(oracle, child, 0.91)
    _, small = explain.summary(oracle.trials, "max", "val_accuracy", validation_count=100)
    assert small.endswith(
        "less than one standard error of a score on 100 validation images (0.0286): "
        "noise alone could give it"
    )
    _, large = explain.summary(oracle.trials, "max", "val_accuracy", validation_count=60_000)
    assert "noise" not in large


def test_the_summary_of_no_completed_trial_is_none(tmp_path):
    assert explain.summary({}, "max", "val_accuracy") == (None, None)
