"""The budget schedule on plain numbers: no oracle, no KerasTuner, no training."""

from __future__ import annotations

import numpy as np
import pytest

from kerasnas.oracle import schedule
from kerasnas.oracle.schedule import (
    AUGMENT_EPOCHS,
    CHILD_EPOCHS,
    CHILD_OVERHEADS,
    OVERFIT_RATIO,
    REFINE_EPOCHS,
    SEARCH_PATIENCE,
    BudgetSchedule,
    check_augment_epochs,
    check_overfit_ratio,
)
from kerasnas.testing import frameworks_imported_by
from kerasnas.trials import TrialPlan


def test_the_schedule_and_the_search_maths_import_neither_tensorflow_nor_keras_tuner():
    modules = ("kerasnas.oracle.schedule", "kerasnas.oracle.measurements")
    assert frameworks_imported_by(*modules, "kerasnas.oracle.proposals") == []


@pytest.mark.parametrize(
    "time_limit, ensemble, reserve",
    [(40, False, 1.2), (600, False, 3.0), (600, True, 9.0), (50, True, 2.0)],
)
def test_fit_and_final_fit_keep_time_back_by_one_rule(time_limit, ensemble, reserve):
    assert schedule.reserve_seconds(time_limit, ensemble) == pytest.approx(reserve)


def test_the_first_width_is_the_widest_of_which_enough_epochs_fit():
    epochs = {8: 5.0, 16: 10.0, 32: 20.0, 64: 40.0}
    plan = BudgetSchedule()
    # 60 epochs of the narrowest fit: sqrt(60) = 7.7 epochs of the first; 32 filters take 155 s.
    assert plan.first_width(300.0, epochs) == 32
    assert plan.first_width(30.0, epochs) == 16  # three epochs of 16 filters just fit
    assert plan.first_width(29.0, epochs) == 8
    assert plan.first_width(10.0, epochs) == 8  # nothing fits: the narrowest
    assert plan.first_width(5000.0, epochs) == 64
    # Four times slower, four times the budget: the same width (decisions are in epochs).
    slow = {w: 4 * s for w, s in epochs.items()}
    assert plan.first_width(1200.0, slow) == plan.first_width(300.0, epochs)


def test_the_search_augments_when_enough_epochs_of_the_first_architecture_fit():
    plan = BudgetSchedule()
    assert plan.augments(AUGMENT_EPOCHS * 10.0, 10.0)
    assert not plan.augments(AUGMENT_EPOCHS * 10.0 - 1, 10.0)
    assert not plan.augments(None, 10.0)  # no deadline
    assert not plan.augments(1000.0, None)  # no timing
    assert not BudgetSchedule(augment_epochs=None).augments(1000.0, 1.0)


def test_the_refinement_comes_in_the_last_stretch_or_when_few_epochs_fit():
    plan = BudgetSchedule(refine_share=0.25)
    common = {"budget": 1000.0}
    assert not plan.refines(remaining=500.0, epochs_left=50, **common)
    assert plan.refines(remaining=250.0, epochs_left=50, **common)  # the last quarter
    assert plan.refines(remaining=500.0, epochs_left=REFINE_EPOCHS, **common)
    assert not plan.refines(remaining=500.0, epochs_left=REFINE_EPOCHS + 0.5, **common)
    assert not plan.refines(remaining=250.0, epochs_left=1.5, **common)  # too late to pay
    assert not plan.refines(remaining=None, epochs_left=2, **common)
    assert not BudgetSchedule(refine_share=0).refines(remaining=10.0, epochs_left=3, **common)
    assert plan.refines(remaining=250.0, epochs_left=REFINE_EPOCHS, **common) == "few epochs"
    assert plan.refines(remaining=250.0, epochs_left=50, **common) == "last stretch"


def test_the_refinement_comes_early_once_children_in_a_row_gained_nothing():
    plan = BudgetSchedule(refine_share=0.25)
    early = {"remaining": 800.0, "budget": 1000.0, "epochs_left": 50}
    assert plan.search_patience == SEARCH_PATIENCE == 2
    assert plan.refines(**early, children_without_gain=1) is None
    assert plan.refines(**early, children_without_gain=2) == "no gain"
    assert plan.refines(**early, children_without_gain=5) == "no gain"
    assert plan.refines(**{**early, "epochs_left": 1.5}, children_without_gain=5) is None
    patient = BudgetSchedule(search_patience=4)
    assert patient.refines(**early, children_without_gain=3) is None
    assert BudgetSchedule(search_patience=None).refines(**early, children_without_gain=99) is None
    assert BudgetSchedule.from_config(patient.get_config()).search_patience == 4
    with pytest.raises(ValueError, match="search_patience"):
        BudgetSchedule(search_patience=0)


def test_plans_share_the_time_left_and_carry_the_deadline():
    plan = BudgetSchedule()
    assert plan.plan(remaining=None) == TrialPlan(None, 3, 1.0)
    first = plan.plan(remaining=1000.0, budget=1000.0, epoch=10.0, overhead=5.0, deadline=7.0)
    assert (first.seconds, first.patience, first.deadline) == (300.0, 3, 7.0)
    assert plan.plan(remaining=40.0, epoch=10.0).seconds == 15.0  # 1.5 epochs, not 30%
    assert plan.plan(remaining=30.0, epoch=10.0).seconds == 30.0  # what is left could not train
    child = plan.plan(remaining=1000.0, budget=1000.0, epoch=30.0, overhead=4.0, child=True)
    assert child.seconds == pytest.approx(4.0 + max(40.0, CHILD_EPOCHS * 30, CHILD_OVERHEADS * 4))
    refine = plan.plan(remaining=100.0, refine=True)
    assert refine == TrialPlan(100.0, None, 1.0, OVERFIT_RATIO)
    assert plan.plan(remaining=100.0, refine=True, augment=True).overfit_ratio is None


def test_a_childs_run_is_computed_for_many_candidates_at_once():
    plan = BudgetSchedule(child_share=0.04)
    seconds = plan.child_seconds(500.0, np.array([1.0, 100.0, 2000.0]), 2.0, budget=1000.0)
    np.testing.assert_allclose(seconds, [42.0, 52.0, 500.0])


def test_a_trial_stops_by_its_allowance_or_the_searchs_deadline():
    assert schedule.trial_deadline(TrialPlan(60.0, deadline=1030.0), 1000.0) == 1030.0
    assert schedule.trial_deadline(TrialPlan(20.0, deadline=1030.0), 1000.0) == 1020.0
    assert schedule.trial_deadline(TrialPlan(None), 1000.0) is None
    assert schedule.legacy_plan(refine=True) == TrialPlan(None, None, 0.5)


def test_the_schedule_round_trips_its_config():
    plan = BudgetSchedule(refine_share=0.1, patience=5, overfit_ratio=None)
    assert BudgetSchedule.from_config(plan.get_config()).get_config() == plan.get_config()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"refine_share": 1.0}, "refine_share"),
        ({"trial_share": 0}, "trial_share"),
        ({"child_share": -0.1}, "child_share"),
        ({"patience": -1}, "patience"),
        ({"overfit_ratio": 1.0}, "overfit_ratio"),
    ],
)
def test_bad_knobs_name_themselves(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BudgetSchedule(**kwargs)


def test_auto_knobs_depend_on_the_task():
    assert check_overfit_ratio("auto", "classification") == OVERFIT_RATIO
    assert check_overfit_ratio("auto", "regression") is None
    assert check_augment_epochs("auto", "classification") == AUGMENT_EPOCHS
    assert check_augment_epochs(None, "classification") is None
    with pytest.raises(ValueError, match="Expected `augment_epochs` to be 'auto'"):
        check_augment_epochs("always", "classification")
