"""`NetworkMorphismOracle`: Bayesian optimisation over architectures, as a KerasTuner Oracle."""

from __future__ import annotations

import glob
import logging
import math
import os
import time

import keras_tuner
import numpy as np
from keras_tuner.engine import trial as trial_module

from kerasnas import files, trials
from kerasnas.arguments import check_choice, check_int, check_number
from kerasnas.graph import Graph, generators, morphism
from kerasnas.graph.distance import describe, edit_distances
from kerasnas.oracle.annealing import anneal
from kerasnas.oracle.cost import EpochCost
from kerasnas.oracle.gp import (
    GaussianProcess,
    expected_improvement,
    gain_per_cost,
    upper_confidence_bound,
)
from kerasnas.trials import EPOCH_SECONDS, EPOCHS, TRAIN_SECONDS

logger = logging.getLogger("kerasnas")
ACQUISITIONS = ("ei", "ucb")
TASKS = ("classification", "regression")
_Status = trial_module.TrialStatus
# Lengthscales tried for each of the kernel's three distances (inf switches one off),
# and noise variances: a coarse grid keeps a proposal fast with hundreds of trials.
KERNEL_LENGTHSCALES = (0.5, 2.0, 8.0, np.inf)
KERNEL_NOISES = (1e-3, 1e-2, 1e-1)
# The first architecture is the widest plain CNN (first-stage filters below) of
# which at least SIZE_EPOCHS epochs fit in the budget, and at least sqrt(m) where m
# epochs of the narrowest fit: its first score comes early (its first trial, 30% of
# the budget, trains about one epoch at short budgets), and a longer budget buys
# both a wider model and more epochs of it (which augmentation needs, see
# AUGMENT_EPOCHS). Without a timing, the middle width. A first model too small for
# the budget grows too slowly: on MNIST at 5E, five epochs picked 8 filters in five
# runs of twelve (median 0.9814, against 0.9859 for the seven at 16). The rule
# picks 16 filters at 5E, 32 at 15E and at 40E (where three epochs would pick 64,
# which trains four epochs: too few for augmentation to pay).
FIRST_WIDTHS = (8, 16, 32, 64)
DEFAULT_WIDTH = 32
SIZE_EPOCHS = 3
# Every trial trains on augmented images (random shifts and zooms) when at least
# AUGMENT_EPOCHS epochs of the first architecture fit in the budget, and the refinement
# then starts once no more than AUGMENT_EPOCHS of the best architecture's epochs fit
# (if not before, at `refine_share`): augmentation is a regulariser that pays over many
# epochs. On MNIST, 32 filters trained for 400 s, 13 epochs, tested 0.9950 and 0.9952
# augmented (two seeds) against 0.9936 plain; 16 filters, 30 augmented epochs, 0.9952.
# Refinements of four epochs scored lower with their last epoch augmented (0.9932
# against 0.9940). At 40E, children trained until the last 25% of the budget left an
# augmented refinement of 2.7 epochs: 0.9938, against 0.9949 for the ablation's eight.
AUGMENT_EPOCHS = 8
# Under a deadline: another initial architecture starts only while about this many of its
# epochs fit in the time left (a cold start judged on a short run learns nothing, so it
# gets a full trial, which only a long budget affords), and the best architecture is
# refined once the last `refine_share` of the budget has come, or earlier when no more
# than REFINE_EPOCHS of its epochs fit. (Six took over half of a 15E budget on MNIST,
# leaving room for one or two children.)
INITIAL_EPOCHS = 30
REFINE_EPOCHS = 3
# A morphism child is judged by a short warm-started run: `child_share` of the budget, and
# at least CHILD_EPOCHS of its epochs (it starts from its parent's function, so part of an
# epoch shows whether the change helps; the kernel compares scores at the training effort
# behind them), and at least CHILD_OVERHEADS times the trial's overhead, so that building
# and tracing take at most a third of a child's time (where epochs are fast, as on a GPU,
# the overhead would otherwise dominate).
CHILD_EPOCHS = 0.5
CHILD_OVERHEADS = 2
# A refinement trains on at half the learning rate once the weights it starts from have
# trained for LEARNED_EPOCHS (a full-rate restart would spend part of its few epochs
# relearning them); weights trained for less have little to lose and learn faster at the
# full rate.
LEARNED_EPOCHS = 1.0
# The refinement trains on augmented images (random shifts and zooms) from the first epoch
# after which its validation loss is over OVERFIT_RATIO times its training loss, in its
# first half: validation shows it overfitting, the case augmentation helps. (On the 8x8
# digits at 400E it raised the medians from 0.9867 to 0.9922 for kerasnas and from 0.9856
# to 0.9956 for the ablation; short runs on augmented MNIST score below plain ones, and an
# underfitting model needs no help.) Not for regression: a shift may change the target.
OVERFIT_RATIO = 2.0


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


class NetworkMorphismOracle(keras_tuner.Oracle):
    """Searches CNN architectures by network morphism guided by a Gaussian process.

    The first trial is a plain CNN sized to the machine and the budget: the
    tuner times the CNN at up to three widths on a few batches (`set_probe`), and the
    oracle picks the widest of `FIRST_WIDTHS` of which max(3, sqrt(m)) epochs
    fit in the time left, m being how many of the narrowest's fit (the
    default width without a deadline or a timing).
    The other initial architectures of `kerasnas.graph.generators` (ResNet-
    and DenseNet-like, at the same width) start only while about thirty of
    their epochs fit. Every later trial is a child of a trained
    architecture, one or more morphisms away (deeper, wider, skip: the
    child starts computing what its parent computed), chosen to maximise
    the expected improvement (or an upper confidence bound
    `mu + beta * sd`) of a Gaussian process over architectures, by
    tree-structured simulated annealing from the trained architectures.
    The kernel is `exp(-sum_i d_i / l_i)` over four distances: the
    Auto-Keras edit distance, |log2 FLOPs_a - log2 FLOPs_b|,
    |depth_a - depth_b|, and |log2(1 + effort_a) - log2(1 + effort_b)|,
    where effort is the epochs of training behind a trial's weights (its
    own and its ancestors'), so that a child judged on a short warm-started
    run is compared with its parent at the effort behind each. The
    lengthscales are fitted to the scores by marginal likelihood (any can
    switch off).

    Time: under a deadline (`set_deadline`) the oracle plans every trial (a
    `kerasnas.trials.TrialPlan` in the trial's values, which the tuner
    executes): the first architecture gets `trial_share` of the time left;
    a morphism child gets a short run (`child_share` of the budget, at
    least `CHILD_EPOCHS` of its epochs and twice the trial's overhead) plus
    the overhead (building, weight transfer, tracing: measured on the
    trials, on the children once there are some); the refinement gets
    all the time left. Epoch times come from one `EpochCost` model
    (seconds = a * FLOPs + b * activations + c), fitted to the epochs the
    trials measured (kept in the trial files), or to the probe before any.
    The acquisition becomes expected gain per second: the gain (expected
    improvement, or `UCB - best`, over the scores' standard deviation) is
    divided by `r ** w`, where `r` is the candidate's predicted epoch time
    over the median measured one and
    `w = min(1, cost_horizon * median epoch time / time left)`. Candidates that cannot
    finish one epoch in the time left are never proposed, and no trial
    starts when the time left would go to building it. Without a deadline,
    gain alone counts.

    Refinement: once the time left falls to `refine_share` of the budget
    given to `set_deadline`, or to three epochs of the best architecture
    (`augment_epochs` when the search augments),
    the next trial is the best architecture itself, with `"refine": True`:
    the tuner trains it on from its best weights for all the time left,
    on augmented images once it overfits (`overfit_ratio`).

    Augmentation: when the budget holds `augment_epochs` epochs of the first
    architecture (decided when the first trial starts), every trial trains
    on randomly shifted and zoomed images, as with `augment=True`.
    Candidates with more than `max_model_size` parameters are never proposed.

    Each trial's hyperparameters hold the architecture as JSON
    (`"architecture"`, read with `Graph.from_json`) and the id of the trained
    parent whose weights it starts from (`"parent_trial_id"`, `""` for an
    initial architecture). The search history lives in KerasTuner's trial
    files; the Gaussian process and the cost model are refitted from them, never pickled.

    Args:
        input_shape: `(height, width, channels)` of the images.
        num_outputs: number of classes, or of regression targets.
        objective: the metric to optimise. Defaults to `"val_accuracy"`.
        max_trials: stop after this many trials. Defaults to None (no limit).
        seed: random seed; the same seed and scores give the same proposals.
            Defaults to None (KerasTuner draws one).
        max_model_size: largest number of parameters a candidate may have.
            Defaults to None (no limit).
        task: `"classification"` or `"regression"`. Defaults to `"classification"`.
        initial_graphs: the first architectures to train. Defaults to
            `generators.initial_graphs(input_shape, num_outputs, task)`.
        acquisition: `"ei"` (expected improvement) or `"ucb"` (upper confidence
            bound, as in Auto-Keras). Defaults to `"ei"`, which reached better
            architectures on `benchmarks/oracle_synthetic.py`.
        beta: exploration weight of the upper confidence bound. Defaults to 2.576.
        pool_size: random multi-morphism candidates scored beside the
            annealing's. Defaults to 32.
        max_morphisms: most morphisms between a proposal and its trained
            parent, which keeps each step local. Defaults to 5.
        refine_share: fraction of the time budget kept for refining the best
            architecture at the end of the search. Defaults to 0.25; 0 turns it off.
        trial_share: under a deadline, the fraction of the time left that one
            trial may train (always room for one and a half epochs, by the
            epoch-time estimate); a refinement gets all the time left. Defaults to 0.3.
        child_share: under a deadline, the fraction of the budget a morphism
            child trains for (at least half an epoch), on top of the trial's
            overhead. Defaults to 0.04: the number of children a budget holds
            is about (1 - refine_share - trial_share) / child_share.
        cost_horizon: the 10 in `w` above: cost weighs fully once fewer than
            this many typical epochs fit in the time left. Defaults to 10.
        patience: most `EarlyStopping` patience in epochs; a trial with room for
            few epochs gets less (a quarter of the epochs that fit, at least 1);
            a refinement has none (its time-annealed schedule ends it). Defaults to 3.
        search: grow architectures by morphism. Defaults to True. False is the
            no-search ablation, for measuring what the search adds: the first
            initial architecture is trained, then refined (trained on from its
            best weights) for the rest of the budget, and nothing else.
        overfit_ratio: the refinement trains on randomly shifted and zoomed
            images from the first epoch after which its validation loss exceeds
            `overfit_ratio` times its training loss (it overfits), if that comes
            in the first half of the refinement; None never.
            Defaults to `"auto"`: 2.0 for classification, None for regression
            (shifting an image may change its target).
        augment_epochs: every trial trains on randomly shifted and zoomed
            images when at least this many epochs of the first architecture
            fit in the budget (decided when the first trial starts, and kept
            on a resume); None never. Defaults to `"auto"`: 8 for
            classification, None for regression.
        max_consecutive_failed_trials: KerasTuner stops the search after this
            many failed trials in a row. Defaults to 20 (KerasTuner's 3 would
            let a few too-large candidates end the search).
        clock: a function returning the time in seconds since the epoch, as
            `time.time` does (tests pass a fake one). Defaults to `time.time`.
        **kwargs: passed on to `keras_tuner.Oracle`.

    Raises:
        ValueError: if an argument is out of range (the message names it), or
            if no initial architecture fits in `max_model_size`.

    Example:

    >>> oracle = NetworkMorphismOracle((28, 28, 1), 10, max_trials=20, seed=1)
    >>> tuner = kerasnas.tuner.MorphismTuner(oracle, directory="runs", ...)
    """

    def __init__(
        self,
        input_shape,
        num_outputs,
        objective="val_accuracy",
        max_trials=None,
        seed=None,
        max_model_size=None,
        task="classification",
        initial_graphs=None,
        beta=2.576,
        max_morphisms=5,
        pool_size=32,
        acquisition="ei",
        cost_horizon=10,
        refine_share=0.25,
        trial_share=0.3,
        child_share=0.04,
        patience=3,
        search=True,
        overfit_ratio="auto",
        augment_epochs="auto",
        max_consecutive_failed_trials=20,
        clock=None,
        **kwargs,
    ):
        super().__init__(
            objective=objective,
            max_trials=check_int("max_trials", max_trials, minimum=1, allow_none=True),
            seed=check_int("seed", seed, allow_none=True),
            max_consecutive_failed_trials=check_int(
                "max_consecutive_failed_trials", max_consecutive_failed_trials, minimum=1
            ),
            **kwargs,
        )
        self.input_shape = _check_input_shape(input_shape)
        self.num_outputs = check_int("num_outputs", num_outputs, minimum=1)
        self.task = check_choice("task", task, TASKS)
        self.max_model_size = check_int("max_model_size", max_model_size, 1, allow_none=True)
        self.beta = check_number("beta", beta, low=0)
        self.max_morphisms = check_int("max_morphisms", max_morphisms, minimum=1)
        self.pool_size = check_int("pool_size", pool_size, minimum=0)
        self.acquisition = check_choice("acquisition", acquisition, ACQUISITIONS)
        self.cost_horizon = check_number("cost_horizon", cost_horizon, low=0)
        self.refine_share = check_number("refine_share", refine_share, 0, 1, high_open=True)
        self.trial_share = check_number("trial_share", trial_share, 0, 1, low_open=True)
        self.child_share = check_number("child_share", child_share, 0, 1, low_open=True)
        self.patience = check_int("patience", patience, minimum=0)
        if not isinstance(search, bool):
            raise ValueError(f"Expected `search` to be True or False. Received: search={search!r}")
        self.search = search
        self.overfit_ratio = check_overfit_ratio(overfit_ratio, self.task)
        self.augment_epochs = check_augment_epochs(augment_epochs, self.task)
        if clock is not None and not callable(clock):
            raise ValueError(
                f"Expected `clock` to be a function returning seconds, like `time.time`. "
                f"Received: clock={clock!r}"
            )
        self.clock = clock or time.time
        # The default initial architectures are sized when the first trial starts.
        self._sized = initial_graphs is None
        if initial_graphs is None:
            initial_graphs = generators.initial_graphs(self.input_shape, self.num_outputs, task)
        initial_graphs = list(initial_graphs)
        if not initial_graphs or not all(isinstance(g, Graph) for g in initial_graphs):
            raise ValueError(
                "Expected `initial_graphs` to be a non-empty list of `kerasnas.graph.Graph`. "
                f"Received: initial_graphs={initial_graphs!r}"
            )
        self.initial_graphs = [g for g in initial_graphs if self._fits(g)]
        if self._sized and not self.initial_graphs:  # the narrowest may still fit
            self.initial_graphs = self._default_graphs(FIRST_WIDTHS[0])
        if not self.search:
            self.initial_graphs = self.initial_graphs[:1]
        if not self.initial_graphs:
            smallest = min(g.num_params() for g in initial_graphs)
            raise ValueError(
                f"`max_model_size` is smaller than every initial architecture (the smallest "
                f"has {smallest:,} parameters). Received: max_model_size={max_model_size}. "
                "Raise it, or pass None for no limit."
            )
        self.deadline = None
        self.budget = None
        self.width = None  # first-stage filters of the sized initial architectures, once chosen
        self.augment = None  # whether every trial trains on augmented images, once decided
        self.probe = None  # see `set_probe`: timings taken before the first trial
        self._cost = (None, EpochCost())  # (observations it was fitted to, model)
        self._graphs = {}  # trial id -> (Graph, Architecture), parsed once
        self._distances = {}  # (trial id, trial id) -> edit distance

    # ------------------------------------------------------------------ budget

    def set_deadline(self, deadline, budget=None):
        """Makes the search cost-aware until `deadline`.

        Args:
            deadline: seconds since the epoch (as `clock()`), or None for no deadline.
            budget: seconds the whole search has, to place the refinement.
                Defaults to None (from now until `deadline`).
        """
        self.deadline = check_number("deadline", deadline, allow_none=True)
        if budget is None and deadline is not None:
            budget = self.deadline - self.clock()
        self.budget = check_number("budget", budget, allow_none=True)

    def _fits(self, graph):
        return self.max_model_size is None or graph.num_params() <= self.max_model_size

    # ------------------------------------------------------------------ trials

    def trial_graph(self, trial):
        """The `Graph` a trial trains, parsed once per trial."""
        if trial.trial_id not in self._graphs:
            graph = trials.graph_of(trial)
            self._graphs[trial.trial_id] = (graph, describe(graph))
        return self._graphs[trial.trial_id][0]

    def get_best_trials(self, num_trials=1):
        """The best trials, as KerasTuner ranks them, but that a tie on the objective goes
        to the lower validation loss (`trials.TIE_VAL_LOSS`): on a small validation set
        trials often tie, and KerasTuner would keep the earliest (say, the first trial
        over its longer-trained refinement)."""
        done = [t for t in self.trials.values() if t.status == _Status.COMPLETED]
        sign = -1.0 if self.objective.direction == "max" else 1.0

        def rank(trial):
            score = trial.score if trial.score is not None else -sign * math.inf
            return sign * score, trials.metric(trial, trials.TIE_VAL_LOSS, math.inf)

        ranked = sorted(done, key=rank)
        if len(ranked) < num_trials:
            ranked += [t for t in self.trials.values() if t.status != _Status.COMPLETED]
        return ranked[:num_trials]

    def _searched(self):
        """The trials that carry an architecture (an unreadable trial file leaves none)."""
        return [t for t in self.trials.values() if trials.has_architecture(t)]

    def populate_space(self, trial_id):
        """Proposes the next architecture: an initial one, or a morphed trained one."""
        trained = [
            t
            for t in self._searched()
            if t.status == _Status.COMPLETED and t.score is not None and math.isfinite(t.score)
        ]
        if self.deadline is not None and self.clock() >= self.deadline - (
            self.overhead_seconds() if trained else 0.0
        ):
            # What is left would go to building and tracing a model: leave it to the
            # finish (but without a trained model, any training is worth its overhead).
            return {"status": _Status.STOPPED, "values": None}
        tried = {self.trial_graph(t).architecture_key() for t in self._searched()}
        for index, graph in enumerate(self._initial_candidates()):
            fits = index == 0 or self._epochs_left(graph) >= INITIAL_EPOCHS
            if graph.architecture_key() not in tried and fits:
                values = trials.values(graph, plan=self.plan(graph))
                return {"status": _Status.RUNNING, "values": values}
        if not trained:
            # Nothing to grow from yet: wait for a running trial, or give up.
            status = _Status.IDLE if self.ongoing_trials else _Status.STOPPED
            return {"status": status, "values": None}
        if not self.search:
            return self._ablation(trained)
        refine = self._refinement(trained)
        if refine is not None:
            return {"status": _Status.RUNNING, "values": refine}
        rng = np.random.default_rng([self.seed, int(trial_id)])
        proposal = self._propose(trained, tried, rng)
        if proposal is None:
            return {"status": _Status.STOPPED, "values": None}
        graph, parent_trial_id = proposal
        values = trials.values(graph, parent_trial_id, plan=self.plan(graph, child=True))
        return {"status": _Status.RUNNING, "values": values}

    def _ablation(self, trained):
        """Without search: refine the first architecture once, for all the time left."""
        if self.ongoing_trials or any(trials.is_refinement(t) for t in self._searched()):
            return {"status": _Status.STOPPED, "values": None}
        best = self.get_best_trials(1)[0]
        return {"status": _Status.RUNNING, "values": self._refinement_values(best)}

    def _refinement(self, trained):
        """The best trial's values with `refine` once the budget's last stretch has come."""
        if self.deadline is None or not self.budget or self.refine_share <= 0:
            return None
        best = self.get_best_trials(1)[0]
        graph = self.trial_graph(best)
        epochs_left = self._epochs_left(graph)
        last_stretch = self.clock() >= self.deadline - self.refine_share * self.budget
        # Augmented training pays over many epochs: keep that many for the refinement.
        # (A search resumed with `augment_epochs=None` keeps its decision, not the epochs.)
        kept = max(REFINE_EPOCHS, self.augment_epochs or AUGMENT_EPOCHS)
        refine_epochs = kept if self.augment else REFINE_EPOCHS
        if epochs_left < 2 or not (last_stretch or epochs_left <= refine_epochs):
            return None
        refined = {trials.parent_of(t) for t in self._searched() if trials.is_refinement(t)}
        if trials.is_refinement(best) or best.trial_id in refined:
            return None  # refined already: what time is left goes to the search
        return self._refinement_values(best)

    def _refinement_values(self, best):
        """The values of a trial that trains `best` on: its plan's rate depends on the
        epochs behind `best`'s weights."""
        graph = self.trial_graph(best)
        plan = self.plan(graph, refine=True, effort=self.effort(best.trial_id))
        return trials.values(graph, best.trial_id, refine=True, plan=plan)

    # ------------------------------------------------------------------ cost and sizing

    def set_probe(self, graph, epoch_seconds, overhead_seconds=0.0):
        """Records a timing of `graph` on a few batches, taken before the search.

        The epoch-cost model is fitted to these timings besides the trials',
        so that the first architecture can be sized to the machine; timings
        of different widths (`probe_graphs`) let it tell the cost of FLOPs
        from that of activations before any trial, and a third the fixed cost.

        Args:
            graph: the `Graph` that was timed.
            epoch_seconds: the seconds one epoch of it is expected to take.
            overhead_seconds: the seconds a trial spends besides its epochs
                (building, compiling, tracing). Defaults to 0.
        """
        timing = {
            "architecture": graph.to_json(),
            "epoch_seconds": check_number("epoch_seconds", epoch_seconds, low=0, low_open=True),
            "overhead_seconds": check_number("overhead_seconds", overhead_seconds, low=0),
        }
        self.probe = (self.probe or []) + [timing]

    def needs_probe(self):
        """Whether sizing the first architecture still needs a timing (see `set_probe`)."""
        return (
            self._sized
            and self.width is None
            and self.deadline is not None
            and not self.probe
            and not self._searched()
        )

    def probe_graphs(self):
        """The architectures to time for `set_probe`: the first one at the default width,
        at the narrowest and at the widest.

        The tuner times them in this order while the probing takes a small share of the
        time left, so the widest is timed at the budgets that could pick it; extrapolated
        from the other two, the cost model put the 64-filter CNN's MNIST epoch at 49 s,
        and it took 90 s.
        """
        graphs = [
            self._default_graphs(DEFAULT_WIDTH),
            self._default_graphs(FIRST_WIDTHS[0]),
            self._default_graphs(FIRST_WIDTHS[-1]),
        ]
        unique = {g[0].architecture_key(): g[0] for g in graphs if g}
        return list(unique.values())

    def cost_model(self):
        """The `EpochCost` model, fitted to the timed trials and the probe's timings."""
        timed = [
            (t.trial_id, trials.metric(t, EPOCH_SECONDS))
            for t in self._searched()
            if t.status == _Status.COMPLETED and t.metrics.exists(EPOCH_SECONDS)
        ]
        key = (timed, len(self.probe or []))
        if self._cost[0] != key:  # refit only when a timing came or went
            measured = [(self.trial_graph(self.trials[i]), s) for i, s in timed]
            measured += [
                (Graph.from_json(p["architecture"]), p["epoch_seconds"]) for p in self.probe or []
            ]
            self._cost = (key, EpochCost().fit(measured))
        return self._cost[1]

    def overhead_seconds(self, child=False):
        """Seconds a trial spends besides its epochs (building, weight transfer, compiling,
        tracing): the median over the timed trials, else the probe's, else 0.

        Args:
            child: the overhead of a morphism child: the median over the timed
                children once there are some, else over the timed trials. The
                first trial also pays one-time costs (on MNIST here: 4-21 s against
                4-7 s for a child of a small CNN), so the first child's run can be
                long (with `CHILD_OVERHEADS`, up to three times that overhead); the
                children after it are planned with their own. (The probe's overhead
                leaves out the validation pass a child's short run pays in full:
                2.5 s against 25 s for a child of the 64-filter CNN.)
        """
        timed = [
            t
            for t in self._searched()
            if t.status == _Status.COMPLETED
            and all(t.metrics.exists(m) for m in (TRAIN_SECONDS, EPOCHS, EPOCH_SECONDS))
        ]
        children = [t for t in timed if trials.parent_of(t) and not trials.is_refinement(t)]
        spent = [
            trials.metric(t, TRAIN_SECONDS)
            - trials.metric(t, EPOCHS) * trials.metric(t, EPOCH_SECONDS)
            for t in (children if child and children else timed)
        ]
        if not spent:
            spent = [p["overhead_seconds"] for p in self.probe or []]
        return max(0.0, float(np.median(spent))) if spent else 0.0

    def epoch_seconds(self, graph):
        """Seconds one epoch of `graph` should take, or None before any timing.

        From the `EpochCost` model (FLOPs and activations) fitted to the
        trials' measured epochs, read from the trial files, so it survives
        a resume and serves distributed workers.
        """
        return self.cost_model().predict(graph)

    def _default_graphs(self, filters):
        """The default initial architectures with `filters` first-stage filters (that fit)."""
        graphs = generators.initial_graphs(
            self.input_shape, self.num_outputs, self.task, filters / DEFAULT_WIDTH
        )
        return [g for g in graphs if self._fits(g)]

    def _initial_candidates(self):
        """The initial architectures; the default ones sized to the machine and budget."""
        if not self._sized:
            graphs = self.initial_graphs
        else:
            if self.width is None:
                self.width = self._choose_width()
            graphs = self._default_graphs(self.width) or self.initial_graphs
            graphs = graphs if self.search else graphs[:1]
        if self.augment is None:
            self.augment = self._choose_augment(graphs[0])
        return graphs

    def _choose_width(self):
        """The widest `FIRST_WIDTHS` of which max(SIZE_EPOCHS, sqrt(m)) epochs fit in the time
        left, m being how many of the narrowest's fit (on a resume without the search
        state: the width the trials were sized to)."""
        candidates = {width: self._default_graphs(width) for width in FIRST_WIDTHS}
        tried = {self.trial_graph(t).architecture_key() for t in self._searched()}
        for width, graphs in candidates.items():
            if any(g.architecture_key() in tried for g in graphs):
                return width
        widths = [w for w, graphs in candidates.items() if graphs]
        if not widths or self.deadline is None or self.cost_model().coefficients is None:
            return DEFAULT_WIDTH
        room = self.deadline - self.clock() - self.overhead_seconds()
        narrowest = room / self.epoch_seconds(candidates[widths[0]][0])
        epochs = max(SIZE_EPOCHS, math.sqrt(max(narrowest, 0.0)))
        for width in reversed(widths):
            if epochs * self.epoch_seconds(candidates[width][0]) <= room:
                return width
        return widths[0]

    def _choose_augment(self, first):
        """Whether every trial trains on augmented images: when `augment_epochs` epochs of
        the `first` architecture fit in the time left (never without a deadline or a
        timing: the search's time decides)."""
        if self.augment_epochs is None or self.deadline is None:
            return False
        epoch = self.epoch_seconds(first)
        if epoch is None:
            return False
        room = self.deadline - self.clock() - self.overhead_seconds()
        return bool(room >= self.augment_epochs * epoch)

    # ------------------------------------------------------------------ plans

    def plan(self, graph, refine=False, child=False, effort=0.0):
        """The `TrialPlan` of a trial of `graph` starting now: its time, patience and rate.

        Without a deadline: no time limit and the full patience. Under one: a
        share of the time left (all of it for a refinement), never less than
        one and a half epochs, and a patience of at most a quarter of the
        epochs that fit. A morphism child gets a short run: `child_share` of
        the budget, at least `CHILD_EPOCHS` of its epochs and
        `CHILD_OVERHEADS` times the overhead. Either gets all
        the time left when what it would leave could hardly train (under two
        epochs and two trials' overhead). A refinement of weights trained
        for at least `LEARNED_EPOCHS` trains on at half the learning rate: a
        full-rate restart would spend part of its few epochs relearning. Every
        plan says whether the search trains on augmented images (see
        `augment_epochs`); when it does not, a refinement carries the
        `overfit_ratio`, from which it augments.

        Args:
            graph: the trial's `Graph`.
            refine: the trial trains its parent on (the search's finish).
            child: the trial is a morphism child, warm-started from its parent.
            effort: epochs of training behind the weights the trial starts
                from (see `effort`). Defaults to 0.

        Returns:
            A `kerasnas.trials.TrialPlan`.
        """
        scale = 0.5 if refine and effort >= LEARNED_EPOCHS else 1.0
        augment = bool(self.augment)
        if refine:
            remaining = None if self.deadline is None else max(0.0, self.deadline - self.clock())
            ratio = None if augment else self.overfit_ratio
            return trials.TrialPlan(remaining, None, scale, ratio, augment)
        if self.deadline is None:
            return trials.TrialPlan(None, self.patience, scale, augment=augment)
        remaining = max(0.0, self.deadline - self.clock())
        epoch = self.epoch_seconds(graph)
        overhead = self.overhead_seconds(child=child)
        if child:
            share = self._child_seconds(remaining, epoch, overhead)
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
        return trials.TrialPlan(seconds, patience, scale, augment=augment)

    def _child_seconds(self, remaining, epoch, overhead):
        """A morphism child's short run: a share of the budget, at least part of an epoch and
        a multiple of the trial's overhead, and the overhead on top."""
        share = max(self.child_share * (self.budget or remaining), CHILD_OVERHEADS * overhead)
        if epoch is not None:
            share = np.maximum(share, CHILD_EPOCHS * epoch)
        return np.minimum(remaining, overhead + share)

    def _epochs_left(self, graph):
        """How many epochs of `graph` fit in the time left (inf without a deadline or timings)."""
        seconds = self.epoch_seconds(graph)
        if self.deadline is None or seconds is None:
            return math.inf
        return (self.deadline - self.clock()) / seconds

    # ------------------------------------------------------------------ Bayesian optimisation

    def _distance_matrices(self, ids, efforts):
        """(4, n, n) kernel distances between the trials `ids` (see `kernel_distances`)."""
        for i, a in enumerate(ids):
            missing = [b for b in ids[i + 1 :] if (a, b) not in self._distances]
            if missing:
                found = edit_distances([self._graphs[a][1]], [self._graphs[b][1] for b in missing])
                for b, d in zip(missing, found[0]):
                    self._distances[a, b] = self._distances[b, a] = float(d)
        edit = np.array([[0.0 if a == b else self._distances[a, b] for b in ids] for a in ids])
        graphs = [self._graphs[i][0] for i in ids]
        return kernel_distances(edit, graphs, graphs, efforts, efforts)

    def _observations(self, trained):
        """Trial ids and maximised objective values: trained trials, failed ones at the worst."""
        sign = 1.0 if self.objective.direction == "max" else -1.0
        ids = [t.trial_id for t in trained]
        y = [sign * t.score for t in trained]
        failed = [t for t in self._searched() if t.status == _Status.FAILED]
        for t in failed:
            self.trial_graph(t)
        ids += [t.trial_id for t in failed]
        y += [min(y)] * len(failed)
        return ids, np.array(y)

    def effort(self, trial_id):
        """Epochs of training behind a trial's weights: its own and its ancestors'.

        A child starts from its parent's weights, so its score reflects their
        training too; the kernel compares scores at this effort.
        """
        effort, seen = 0.0, set()
        while trial_id and trial_id in self.trials and trial_id not in seen:
            seen.add(trial_id)
            trial = self.trials[trial_id]
            effort += float(trials.metric(trial, EPOCHS, 0.0) or 0.0)
            trial_id = trials.parent_of(trial)
        return effort

    def _propose(self, trained, tried, rng):
        ids, y = self._observations(trained)
        efforts = np.array([self.effort(i) for i in ids])  # (n,)
        distances = self._distance_matrices(ids, efforts)  # (4, n, n)
        gp = GaussianProcess(lengthscales=KERNEL_LENGTHSCALES, noises=KERNEL_NOISES)
        gp.fit(distances, y)
        best, y_scale = y.max(), (y.std() or 1.0)
        cost = self.cost_model()
        timed = [
            trials.metric(t, EPOCH_SECONDS) for t in trained if t.metrics.exists(EPOCH_SECONDS)
        ]
        typical_seconds = float(np.median(timed)) if timed else None
        # Without a deadline a child trains about as many epochs as the children before it.
        child_epochs = [
            trials.metric(t, EPOCHS, 0.0)
            for t in trained
            if trials.parent_of(t) and not trials.is_refinement(t)
        ]
        usual_epochs = float(np.median(child_epochs)) if child_epochs else 1.0
        remaining = None if self.deadline is None else self.deadline - self.clock()
        overhead = self.overhead_seconds(child=True)
        archs = [self._graphs[i][1] for i in ids]
        observed = [self._graphs[i][0] for i in ids]
        parent_effort = {t.trial_id: self.effort(t.trial_id) for t in trained}
        seen = set(tried)

        def expand(item, rng):
            graph, parent_id, steps = item
            if steps >= self.max_morphisms:
                return []
            children = []
            for op in morphism.OPS:
                try:
                    child = getattr(morphism, op)(graph, rng)
                except morphism.MorphismError:
                    continue
                key = child.architecture_key()
                if key not in seen and self._fits(child):
                    seen.add(key)
                    children.append((child, parent_id, steps + 1))
            return children

        def acquire(items):
            graphs = [g for g, _, _ in items]
            seconds = cost.predict(graphs)  # (m,) seconds per epoch, or None
            if remaining is None or seconds is None:
                epochs = np.full(len(graphs), usual_epochs)
            else:
                training = self._child_seconds(remaining, seconds, overhead) - overhead
                epochs = np.maximum(training, 0.0) / np.maximum(seconds, 1e-9)
            candidate_efforts = np.array([parent_effort[p] for _, p, _ in items]) + epochs
            edit = edit_distances(graphs, archs)
            cross = kernel_distances(edit, graphs, observed, candidate_efforts, efforts)
            mu, sd = gp.predict(cross)  # (4, m, n) -> (m,), (m,)
            if self.acquisition == "ei":
                gain = expected_improvement(mu, sd, best) / y_scale  # (m,)
            else:
                gain = (upper_confidence_bound(mu, sd, self.beta) - best) / y_scale  # (m,)
            if remaining is None or seconds is None or typical_seconds is None:
                return gain
            # Full gain per second once fewer than ~10 typical trials fit in the time
            # left; while many still fit, cost weighs in proportionally less.
            weight = min(1.0, self.cost_horizon * typical_seconds / max(remaining, 1e-9))
            value = gain_per_cost(gain, (seconds / typical_seconds) ** weight)
            return np.where(seconds < remaining, value, -np.inf)

        starts = [
            ((self.trial_graph(t), t.trial_id, 0), (sign_y - best) / y_scale)
            for t, sign_y in zip(trained, y)
        ]
        # Besides the annealing's local steps, a pool of random multi-morphism
        # jumps from random trained parents; the GP picks among both.
        pool = []
        for _ in range(self.pool_size):
            item = starts[int(rng.integers(len(starts)))][0]
            for _ in range(int(rng.integers(1, self.max_morphisms + 1))):
                children = expand(item, rng)
                if not children:
                    break
                item = children[int(rng.integers(len(children)))]
            if item[2]:
                pool.append(item)
        candidates = []
        if pool:
            values = acquire(pool)
            candidates.append((pool[int(np.argmax(values))], float(np.max(values))))
        candidates.append(anneal(starts, expand, acquire, rng))
        proposal, value = max(candidates, key=lambda c: c[1])
        return None if proposal is None or not np.isfinite(value) else proposal[:2]

    # ------------------------------------------------------------------ state

    def get_state(self):
        state = super().get_state()
        state["deadline"] = self.deadline
        state["budget"] = self.budget
        state["width"] = self.width
        state["augment"] = self.augment
        state["probe"] = self.probe
        return state

    def set_state(self, state):
        # Trials whose files are gone cannot be running or waiting for a retry.
        state = dict(state)
        state["ongoing_trials"] = {
            tuner: trial_id
            for tuner, trial_id in state["ongoing_trials"].items()
            if trial_id in self.trials
        }
        state["retry_queue"] = [i for i in state["retry_queue"] if i in self.trials]
        super().set_state(state)
        self.deadline = state.get("deadline")
        self.budget = state.get("budget")
        self.width = state.get("width")
        self.augment = state.get("augment")
        self.probe = state.get("probe")

    # ------------------------------------------------------------------ files

    def save(self):
        files.write_json(self._get_oracle_fname(), self.get_state())

    def _save_trial(self, trial):
        path = os.path.join(self._get_trial_dir(trial.trial_id), "trial.json")
        files.write_json(path, trial.get_state())

    def reload(self):
        """Reloads the search from its files (KerasTuner's `Oracle.reload`), robustly.

        An empty or truncated `trial.json` (a crash while it was written by an
        older version) is read as a failed trial without an architecture, with
        a warning: its id stays taken and the search goes on. An unreadable
        `oracle.json` is rebuilt from the trial files, with a warning: unfinished
        trials are run again.
        """
        pattern = os.path.join(self._project_dir, "trial_*", trials.TRIAL_FILE)
        for path in sorted(glob.glob(pattern)):
            trial = trials.read_trial(path)
            self.trials[trial.trial_id] = trial
        path = self._get_oracle_fname()
        try:
            state = files.read_json(path)
        except files.RunFileError as e:
            logger.warning("%s The search state is rebuilt from the trial files.", e)
            state = self._state_from_trials()
        try:
            self.set_state(state)
        except KeyError as e:
            raise files.RunFileError(
                f"{path} lacks {e} and was not written by this version of kerasnas. "
                "Pass overwrite=True, or another directory, to start afresh."
            ) from e
        for trial in self.ongoing_trials.values():
            self._retry_queue.append(trial.trial_id)  # as KerasTuner: run them again
        self.ongoing_trials = {}

    def _state_from_trials(self):
        ids = sorted(self.trials)
        ended = [i for i in ids if self.trials[i].status != _Status.RUNNING]
        return {
            **super().get_state(),
            "ongoing_trials": {},
            "start_order": ids,
            "end_order": ended,
            "run_times": {i: 1 for i in ended},
            "retry_queue": [i for i in ids if i not in ended],
            "tried_so_far": [],
            "id_to_hash": {},
        }


def kernel_distances(edit, graphs_a, graphs_b, efforts_a, efforts_b):
    """The kernel's four distances between two lists of trained (or planned) graphs.

    Args:
        edit: (m, n) edit distances between `graphs_a` and `graphs_b`.
        graphs_a: m graphs.
        graphs_b: n graphs.
        efforts_a: (m,) epochs of training behind each of `graphs_a` (see
            `NetworkMorphismOracle.effort`).
        efforts_b: (n,) the same for `graphs_b`.

    Returns:
        (4, m, n): the edit distance, |log2 FLOPs_a - log2 FLOPs_b|,
        |depth_a - depth_b| and |log2(1 + effort_a) - log2(1 + effort_b)|.
    """
    size_a, size_b = _log_flops(graphs_a), _log_flops(graphs_b)  # (m,), (n,)
    depth_a = np.array([g.depth() for g in graphs_a], float)  # (m,)
    depth_b = np.array([g.depth() for g in graphs_b], float)  # (n,)
    effort_a = np.log2(1 + np.asarray(efforts_a, float))  # (m,)
    effort_b = np.log2(1 + np.asarray(efforts_b, float))  # (n,)
    return np.stack(
        [
            np.asarray(edit, float),
            np.abs(size_a[:, None] - size_b[None, :]),
            np.abs(depth_a[:, None] - depth_b[None, :]),
            np.abs(effort_a[:, None] - effort_b[None, :]),
        ]
    )


def _log_flops(graphs):
    return np.log2(np.array([max(g.flops(), 1) for g in graphs], dtype=float))


def _check_input_shape(input_shape):
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else None
    if (
        shape is None
        or len(shape) != 3
        or not all(
            isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d > 0 for d in shape
        )
    ):
        raise ValueError(
            "Expected `input_shape` to be (height, width, channels), three positive integers. "
            f"Received: input_shape={input_shape!r}"
        )
    return tuple(int(d) for d in shape)
