"""The budget policy: how a search spends its time limit, in one place.

Every rule of kerasnas that turns seconds into decisions lives here: how much of the
time limit `fit` and `final_fit` keep back, how wide the first architecture is, whether
the search augments, how long each trial trains and at which rate, when the search
turns to refining its best architecture, and when it stops. The rules read measured
seconds only (never a constant tuned to one machine) and import neither TensorFlow nor
KerasTuner, so they are tested on plain numbers. The evidence behind each constant is
in docs/design-notes.md (from the runs of `benchmarks/README.md`).

Glossary (all in seconds unless said otherwise):
    time_limit: what the user gave `fit` (T).
    budget: what the search has from its start (T less `reserve_seconds`).
    remaining: from now to the search's deadline.
    room: `remaining` less one trial's overhead: what training can use.
    epoch: one epoch of an architecture, validation included.
    overhead: what a trial spends besides its epochs (building, transfer, tracing).
    effort: epochs of training behind a trial's weights (its own and its ancestors').
"""

from __future__ import annotations

import math

import numpy as np

from kerasnas.arguments import check_int, check_number
from kerasnas.trials import TrialPlan

# First-stage filters the default first architecture may have; the middle one without a timing.
FIRST_WIDTHS = (8, 16, 32, 64)
DEFAULT_WIDTH = 32
# The first architecture is the widest of which max(SIZE_EPOCHS, sqrt(m)) epochs fit,
# m being how many epochs of the narrowest fit.
SIZE_EPOCHS = 3
# Every trial augments when this many epochs of the first architecture fit.
AUGMENT_EPOCHS = 50
# Another initial architecture starts only while this many of its epochs fit.
INITIAL_EPOCHS = 30
# The refinement starts once no more than this many epochs of the best architecture fit.
REFINE_EPOCHS = 8
# The search turns to refining once this many children in a row did not beat the
# incumbent by one standard error of the validation score.
SEARCH_PATIENCE = 2
# A morphism child trains at least this many of its epochs...
CHILD_EPOCHS = 0.5
# ...and at least this many times the trial's overhead.
CHILD_OVERHEADS = 2
# A refinement augments once its validation loss exceeds this many times its training loss.
OVERFIT_RATIO = 2.0
# `fit` without a time limit searches for a day at most.
DEFAULT_TIME_LIMIT = 24 * 60 * 60
# `fit` and `final_fit` keep back min(RESERVE_SECONDS, RESERVE_SHARE * T) for what follows
# the last batch (saving, loading the best model)...
RESERVE_SECONDS = 3.0
RESERVE_SHARE = 0.03
# ...and `fit` this share of T more for choosing an ensemble after the search.
ENSEMBLE_SHARE = 0.01
# The probe trains this many batches of an architecture to time it...
PROBE_BATCHES = 6
# ...and times another width only while the probing took less than this share of the time left.
PROBE_SHARE = 0.05
# `final_fit`: Adam's rate from fresh weights, and from the search's weights.
FINAL_RETRAIN_RATE = 1e-3
FINAL_TUNE_RATE = 3e-4
# `final_fit`: early-stopping patience, and epochs with and without a time limit.
FINAL_PATIENCE = 5
FINAL_EPOCHS = 100
FINAL_EPOCHS_UNTIMED = 20
# `final_fit` holds this share of `x_train` out for validation when given no other.
FINAL_VALIDATION_SPLIT = 0.1


def reserve_seconds(time_limit, ensemble=False):
    """The seconds `fit` or `final_fit` keeps back from a time limit for what follows the
    last batch (and, for `fit` with an ensemble, for choosing it).

    Args:
        time_limit: the user's time limit T in seconds.
        ensemble: whether an ensemble may be chosen after the search. Defaults to False.

    Returns:
        `min(RESERVE_SECONDS, RESERVE_SHARE * T)`, plus `ENSEMBLE_SHARE * T` with an ensemble.
    """
    reserve = min(RESERVE_SECONDS, RESERVE_SHARE * time_limit)
    return reserve + (ENSEMBLE_SHARE * time_limit if ensemble else 0.0)


def legacy_plan(refine):
    """The plan of a trial from a run older than plans: no limit, patience 3 (a refinement
    none, at half the rate)."""
    return TrialPlan(None, None if refine else 3, 0.5 if refine else 1.0)


def trial_deadline(plan, start):
    """When a trial that started at `start` must stop: its allowance, and never after the
    search's deadline (both travel in its plan). None for no limit."""
    ends = [start + plan.seconds] if plan.seconds is not None else []
    if plan.deadline is not None:
        ends.append(plan.deadline)
    return min(ends) if ends else None


def check_overfit_ratio(overfit_ratio, task):
    """The ratio of validation to training loss from which a refinement augments.

    Args:
        overfit_ratio: a number above 1, None (never), or `"auto"`: `OVERFIT_RATIO`
            for classification, None for regression.
        task: `"classification"` or `"regression"`.

    Returns:
        A float, or None.

    Raises:
        ValueError: for any other value.
    """
    overfit_ratio = _auto("overfit_ratio", overfit_ratio, task, OVERFIT_RATIO, "above 1")
    return check_number("overfit_ratio", overfit_ratio, low=1, low_open=True, allow_none=True)


def check_augment_epochs(augment_epochs, task):
    """How many epochs of the first architecture must fit in the budget for every
    trial to train on augmented images.

    Args:
        augment_epochs: a positive number, None (never), or `"auto"`:
            `AUGMENT_EPOCHS` for classification, None for regression.
        task: `"classification"` or `"regression"`.

    Returns:
        A float, or None.

    Raises:
        ValueError: for any other value.
    """
    augment_epochs = _auto("augment_epochs", augment_epochs, task, AUGMENT_EPOCHS, "above 0")
    return check_number("augment_epochs", augment_epochs, low=0, low_open=True, allow_none=True)


def _auto(name, value, task, default, numbers):
    """`value`, with `"auto"` read as `default` for classification and None for regression
    (shifting an image may change its target)."""
    if not isinstance(value, str):
        return value
    if value != "auto":
        raise ValueError(
            f"Expected `{name}` to be 'auto', None or a number {numbers}. "
            f"Received: {name}={value!r}"
        )
    return default if task == "classification" else None


class BudgetSchedule:
    """The search's budget rules, with the knobs users may set through `searcher_args`.

    `NetworkMorphismOracle` holds one as `oracle.schedule` and asks it every
    question that turns seconds into a decision; it reads measured seconds only,
    never the clock, so each rule is a plain function of numbers.

    Args:
        refine_share: fraction of the budget kept for refining the best architecture
            at the end of the search; 0 turns it off. Defaults to 0.25.
        trial_share: the fraction of the time left that one trial of an initial
            architecture may train (always room for one and a half epochs). Defaults to 0.3.
        child_share: the fraction of the budget a morphism child trains for, on top of
            its overhead. Defaults to 0.04.
        cost_horizon: cost weighs fully in the acquisition once fewer than this many
            typical epochs fit in the time left. Defaults to 10.
        patience: most `EarlyStopping` patience in epochs. Defaults to 3.
        search_patience: the search turns to refining once this many morphism
            children in a row did not beat the incumbent by one standard error of the
            validation score (an accuracy objective and a known validation size only);
            None never. Defaults to `SEARCH_PATIENCE`.
        overfit_ratio: see `check_overfit_ratio` (already resolved: a float or None).
            Defaults to `OVERFIT_RATIO`.
        augment_epochs: see `check_augment_epochs` (already resolved). Defaults to
            `AUGMENT_EPOCHS`.

    Raises:
        ValueError: if an argument is out of range (the message names it).

    Example:
        ```pycon
        >>> schedule = BudgetSchedule(child_share=0.1)
        >>> plan = schedule.plan(remaining=600.0, budget=600.0, epoch=10.0, child=True)
        >>> plan.seconds, plan.patience
        (60.0, 1)
        ```
    """

    def __init__(
        self,
        *,
        refine_share=0.25,
        trial_share=0.3,
        child_share=0.04,
        cost_horizon=10,
        patience=3,
        search_patience=SEARCH_PATIENCE,
        overfit_ratio=OVERFIT_RATIO,
        augment_epochs=AUGMENT_EPOCHS,
    ):
        self.refine_share = check_number("refine_share", refine_share, 0, 1, high_open=True)
        self.trial_share = check_number("trial_share", trial_share, 0, 1, low_open=True)
        self.child_share = check_number("child_share", child_share, 0, 1, low_open=True)
        self.cost_horizon = check_number("cost_horizon", cost_horizon, low=0)
        self.patience = check_int("patience", patience, minimum=0)
        self.search_patience = check_int(
            "search_patience", search_patience, minimum=1, allow_none=True
        )
        self.overfit_ratio = check_number(
            "overfit_ratio", overfit_ratio, low=1, low_open=True, allow_none=True
        )
        self.augment_epochs = check_number(
            "augment_epochs", augment_epochs, low=0, low_open=True, allow_none=True
        )

    def get_config(self):
        """The knobs as a dict, for `from_config`."""
        return {
            "refine_share": self.refine_share,
            "trial_share": self.trial_share,
            "child_share": self.child_share,
            "cost_horizon": self.cost_horizon,
            "patience": self.patience,
            "search_patience": self.search_patience,
            "overfit_ratio": self.overfit_ratio,
            "augment_epochs": self.augment_epochs,
        }

    @classmethod
    def from_config(cls, config):
        """A `BudgetSchedule` of a `get_config` dict.

        Args:
            config: a dict from `get_config`.
        """
        return cls(**config)

    # ------------------------------------------------------------------ the first trial

    def first_width(self, room, epoch_seconds):
        """The first architecture's width: the widest of which max(SIZE_EPOCHS, sqrt(m))
        epochs fit in `room`, m being how many of the narrowest's fit.

        Args:
            room: seconds training can use.
            epoch_seconds: `{width: seconds of one epoch}` of the widths that fit
                `max_model_size`, narrowest first.

        Returns:
            One of the widths (the narrowest when none fits).
        """
        widths = list(epoch_seconds)
        epochs = self.first_epochs(room, epoch_seconds[widths[0]])
        for width in reversed(widths):
            if epochs * epoch_seconds[width] <= room:
                return width
        return widths[0]

    @staticmethod
    def first_epochs(room, narrowest_epoch):
        """How many epochs of the first architecture must fit in `room`:
        max(SIZE_EPOCHS, sqrt(m)), m being how many of the narrowest's fit.

        Args:
            room: seconds training can use.
            narrowest_epoch: seconds of one epoch of the narrowest width.
        """
        return max(SIZE_EPOCHS, math.sqrt(max(room / narrowest_epoch, 0.0)))

    def augments(self, room, first_epoch):
        """Whether every trial trains on augmented images: when `augment_epochs` epochs of
        the first architecture fit in `room`.

        Args:
            room: seconds training can use, or None without a deadline (never then).
            first_epoch: seconds of one epoch of the first architecture, or None
                before a timing (never then).
        """
        if self.augment_epochs is None or room is None or first_epoch is None:
            return False
        return bool(room >= self.augment_epochs * first_epoch)

    @staticmethod
    def starts_initial(index, epochs_left):
        """Whether the `index`-th initial architecture starts: the first always, another
        only while `INITIAL_EPOCHS` of its epochs fit (a cold start needs a full trial).

        Args:
            index: its position among the initial architectures, from 0.
            epochs_left: how many of its epochs fit in the time left.
        """
        return index == 0 or epochs_left >= INITIAL_EPOCHS

    # ------------------------------------------------------------------ the search's course

    @staticmethod
    def stops(remaining, overhead):
        """Whether no trial should start: what is left would go to building it.

        Args:
            remaining: seconds to the deadline, or None without one (never then).
            overhead: seconds a trial spends besides its epochs.
        """
        return remaining is not None and remaining <= overhead

    def refines(self, *, remaining, budget, epochs_left, children_without_gain=0):
        """Why the best architecture is refined now, or None while the search goes on.

        It is refined, while at least two of its epochs still fit, once the last
        `refine_share` of the budget has come (`"last stretch"`), when no more than
        `REFINE_EPOCHS` of its epochs fit (`"few epochs"`), or once `search_patience`
        children in a row gained nothing that noise could not give (`"no gain"`).

        Args:
            remaining: seconds to the deadline, or None without one.
            budget: the search's budget, or None.
            epochs_left: epochs of the best architecture that fit in `remaining`.
            children_without_gain: the latest children in a row that did not beat the
                incumbent by one standard error. Defaults to 0.

        Returns:
            `"few epochs"`, `"last stretch"`, `"no gain"` (the first that holds), or None.
        """
        if remaining is None or not budget or self.refine_share <= 0 or epochs_left < 2:
            return None
        if epochs_left <= REFINE_EPOCHS:
            return "few epochs"
        if remaining <= self.refine_share * budget:
            return "last stretch"
        if self.stalls(children_without_gain):
            return "no gain"
        return None

    def stalls(self, children_without_gain):
        """Whether the search has stopped finding better architectures: `search_patience`
        children in a row gained less than one standard error each.

        Args:
            children_without_gain: see `refines`.
        """
        patience = self.search_patience
        return patience is not None and children_without_gain >= patience

    def cost_weight(self, typical_epoch, remaining):
        """The exponent `w` on a candidate's relative epoch cost in the acquisition: full
        once fewer than `cost_horizon` typical epochs fit in the time left, less before.

        Args:
            typical_epoch: seconds of a typical epoch (the median measured).
            remaining: seconds to the deadline.

        Returns:
            A float from 0 to 1.
        """
        return min(1.0, self.cost_horizon * typical_epoch / max(remaining, 1e-9))

    # ------------------------------------------------------------------ plans

    def plan(
        self,
        *,
        remaining,
        budget=None,
        epoch=None,
        overhead=0.0,
        augment=False,
        refine=False,
        child=False,
        deadline=None,
    ):
        """The `TrialPlan` of a trial starting now: its time, patience, rate, augmentation.

        Without a deadline: no time limit and the full patience. Under one: a share of
        the time left (all of it for a refinement), never less than one and a half
        epochs, and a patience of at most a quarter of the epochs that fit. A morphism
        child gets a short run (`child_seconds`). Either gets all the time left when
        what it would leave could hardly train (under two epochs and two overheads).
        Every trial starts at the tuner's learning rate, a refinement too; when the
        search does not augment, a refinement carries the `overfit_ratio` from which it
        augments.

        Args:
            remaining: seconds to the search's deadline, or None without one.
            budget: the search's budget, or None. Defaults to None.
            epoch: seconds one epoch of the trial's architecture takes, or None before
                any timing. Defaults to None.
            overhead: the trial's overhead. Defaults to 0.
            augment: whether the search augments. Defaults to False.
            refine: the trial trains its parent on (the search's finish). Defaults to False.
            child: the trial is a morphism child. Defaults to False.
            deadline: the search's deadline (seconds since the epoch), carried in the plan
                so that a worker stops by it. Defaults to None.

        Returns:
            A `kerasnas.trials.TrialPlan`.
        """
        augment = bool(augment)
        if refine:
            seconds = None if remaining is None else max(0.0, remaining)
            ratio = None if augment else self.overfit_ratio
            return TrialPlan(seconds, None, overfit_ratio=ratio, augment=augment, deadline=deadline)
        if remaining is None:
            return TrialPlan(None, self.patience, augment=augment, deadline=deadline)
        remaining = max(0.0, remaining)
        if child:
            share = self.child_seconds(remaining, epoch, overhead, budget)
        else:
            share = remaining * self.trial_share
            if epoch is not None:
                share = max(share, overhead + 1.5 * epoch)
        seconds = float(min(remaining, share))
        if epoch is not None and remaining - seconds < 2 * (overhead + epoch):
            seconds = remaining  # what would be left could build a model but hardly train it
        patience = self.patience
        if epoch is not None:
            patience = int(min(patience, max(1, (seconds / max(epoch, 1e-9)) // 4)))
        return TrialPlan(seconds, patience, augment=augment, deadline=deadline)

    def child_seconds(self, remaining, epoch, overhead, budget=None):
        """A morphism child's run: `child_share` of the budget, at least `CHILD_EPOCHS` of
        its epochs and `CHILD_OVERHEADS` times the overhead, plus the overhead; never
        more than `remaining`.

        Args:
            remaining: seconds to the deadline.
            epoch: seconds of one of its epochs, an array of them (one per
                candidate), or None before any timing.
            overhead: a child's overhead in seconds.
            budget: the search's budget, or None (then `remaining`). Defaults to None.

        Returns:
            Seconds: a float, or an array shaped like `epoch`.
        """
        share = max(self.child_share * (budget or remaining), CHILD_OVERHEADS * overhead)
        if epoch is not None:
            share = np.maximum(share, CHILD_EPOCHS * epoch)
        return np.minimum(remaining, overhead + share)
