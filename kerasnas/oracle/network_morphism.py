"""`NetworkMorphismOracle`: the search as a KerasTuner Oracle.

This module adapts the framework-free parts of the search to KerasTuner: it decides
which trial comes next (`populate_space`), keeps the search's state in KerasTuner's
files and reloads it. The rules it applies live apart: the budget policy in
`schedule.py`, what the trials measured in `measurements.py`, the choice of a
morphism child in `proposals.py`. What the oracle does, trial by trial, and every
argument users set through `searcher_args`, are in the class docstring.
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np
from keras_tuner.engine import trial as trial_module

from kerasnas import trials
from kerasnas.arguments import check_choice, check_input_shape, check_int, check_number
from kerasnas.graph import Graph, generators
from kerasnas.graph.distance import describe
from kerasnas.oracle import explain, measurements
from kerasnas.oracle.durable import DurableOracle
from kerasnas.oracle.proposals import (
    ACQUISITIONS,
    CandidateSearch,
    EditDistances,
    fit_gp,
    graph_features,
    kernel_distances,
    window,
)
from kerasnas.oracle.schedule import (
    DEFAULT_WIDTH,
    FIRST_WIDTHS,
    SEARCH_PATIENCE,
    BudgetSchedule,
    check_augment_epochs,
    check_overfit_ratio,
)

logger = logging.getLogger("kerasnas")
TASKS = ("classification", "regression")
_Status = trial_module.TrialStatus


# A resumed search keeps its budget when its new deadline lies this close to the old one.
SAME_DEADLINE_SECONDS = 5.0
SAME_DEADLINE_SHARE = 0.02


class NetworkMorphismOracle(DurableOracle):
    """Searches CNN architectures by network morphism, guided by a Gaussian process.

    A KerasTuner `Oracle`: the tuner (`kerasnas.tuner.MorphismTuner`) asks it for each
    trial and reports each trial's scores and timings back. Trial by trial, it:

    1. Sizes the first architecture to the machine, from a few batches the tuner
       times before the first trial (`set_probe`): it takes the widest width (8, 16,
       32 or 64 filters in the plain CNN's first stage; the other default graphs
       scale alike) at which max(3, sqrt(m)) epochs fit in the budget, m being how
       many fit at the narrowest.
    2. Trains the initial architectures, cheapest (in FLOPs) first: the first always,
       each other one only while about thirty of its epochs still fit (a cold start
       needs a full trial to be judged).
    3. Grows the trained architectures by morphism: every later trial is a child one
       to `max_morphisms` morphisms (deeper, wider, skip) away from a trained parent,
       starting from the parent's weights. It is the candidate with the best
       acquisition of a Gaussian process over architectures, per second of training
       under a deadline.
    4. Plans each trial's time: its seconds, early-stopping patience, learning-rate
       scale and augmentation (a `kerasnas.trials.TrialPlan`), from the deadline
       (`set_deadline`) and the epoch times measured so far.
    5. Finishes by refining the best architecture: in the last `refine_share` of the
       budget, it trains on from its best weights for all the time left. It does so
       earlier once `search_patience` children in a row did not beat the incumbent by
       one standard error of the validation accuracy (what the draw of the validation
       images alone could give), and then refines the incumbent.

    `kerasnas.ImageClassifier` and `kerasnas.ImageRegressor` build it from their own
    arguments and pass `searcher_args` on as keyword arguments: every argument below
    but `input_shape`, `num_outputs`, `objective`, `max_trials`, `seed`,
    `max_model_size` and `task`, which they set themselves.

    Args:
        input_shape: `(height, width, channels)` of the images the models take.
        num_outputs: the number of classes, or of regression targets.
        objective: the metric to optimise, as KerasTuner names it. Defaults to
            `"val_accuracy"`.
        max_trials: the search stops after this many trials. Defaults to None (no
            limit but the time).
        seed: the random seed; the same seed and the same scores give the same
            proposals. Defaults to None (KerasTuner draws one).
        max_model_size: the most parameters an architecture may have; larger
            candidates are never proposed. Defaults to None (no limit).
        task: `"classification"` or `"regression"`. Defaults to `"classification"`.
        initial_graphs: a list of `kerasnas.graph.Graph`s to train first, in order,
            instead of the default ones. Defaults to None: the plain CNN, ResNet- and
            DenseNet-like graphs of `kerasnas.graph.generators.initial_graphs`, the
            CNN's width sized to the machine and the budget.
        first_width: the first-stage filters of the default initial architectures,
            one of 8, 16, 32 and 64, instead of the width sized to the machine and
            the budget, whose timings vary from run to run: two runs of one seed
            then start from the same architecture. Not with `initial_graphs`.
            Defaults to None (sized).
        search: whether to grow architectures by morphism, and how. True: the
            Gaussian process chooses each child. False is the no-search ablation:
            the first architecture trains, then is refined for the rest of the
            budget, and nothing else is tried. `"random"` is the random-search
            ablation: everything as with True, but each child is drawn uniformly from
            `pool_size` random jumps like those the acquisition scores. Defaults to
            True.
        acquisition: how a candidate is scored: `"ei"` (expected improvement over
            the best score) or `"ucb"` (upper confidence bound, as in Auto-Keras).
            Defaults to `"ei"`.
        beta: the weight of the standard deviation in the upper confidence bound
            (used with `acquisition="ucb"` only). Defaults to 2.576.
        pool_size: how many random jumps of several morphisms are scored beside the
            candidates that simulated annealing finds. Defaults to 32.
        max_morphisms: the most morphisms between a candidate and its trained parent.
            Defaults to 5.
        refine_share: the last fraction of the budget kept for refining the best
            architecture; 0 turns the refinement off. Defaults to 0.25.
        trial_share: the fraction of the time left that a trial of an initial
            architecture may train (never less than one and a half of its epochs).
            Defaults to 0.3.
        child_share: the fraction of the budget a morphism child trains for (at least
            half an epoch and twice the cost of building it), on top of that cost.
            Larger values give fewer, longer children. Defaults to 0.04.
        cost_horizon: how strongly a candidate's epoch time counts against it: fully
            once fewer than this many typical epochs fit in the time left, less
            before. Defaults to 10.
        patience: the most `EarlyStopping` patience a trial gets, in epochs; a trial
            with room for few epochs gets less, a refinement none. Defaults to 3.
        search_patience: under a time limit, the search turns to refining once this
            many morphism children in a row did not beat the incumbent (the best trial
            validation can tell apart) by one standard error of the validation
            accuracy, sqrt(p (1 - p) / n) for n validation images
            (`set_validation_size`; with another objective, or n unknown, the rule is
            off), and refines the incumbent. None never. Defaults to 2.
        overfit_ratio: the refinement (and `final_fit`) switches to augmented images
            (random shifts and zooms) after the first epoch whose validation loss
            exceeds this many times its training loss, if that comes in its first
            half; None never does.
            Defaults to `"auto"`: 2.0 for classification, None for regression (a
            shift may change a target).
        augment_epochs: every trial trains on augmented images when the budget holds
            this many epochs of the first architecture; None never. Defaults to
            `"auto"`: 50 for classification, None for regression.
        max_consecutive_failed_trials: KerasTuner stops the search after this many
            failed trials in a row. Defaults to 20.
        clock: a function returning seconds since the epoch, like `time.time`;
            tests pass a fake one. Defaults to None (`time.time`).
        **kwargs: passed on to `keras_tuner.Oracle` (e.g. `max_retries_per_trial`).

    Raises:
        ValueError: if an argument is out of range or of the wrong kind (the message
            names it), or if no initial architecture fits in `max_model_size`.

    Note:
        Each trial's hyperparameter values hold its architecture as JSON, the id of
        the parent whose weights it starts from, whether it refines, and its plan
        (see `kerasnas.trials`). The whole search lives in KerasTuner's trial files
        and `oracle.json`: the Gaussian process and the epoch-cost model are
        refitted from them on every proposal, never pickled, so a resumed search
        and KerasTuner's distributed workers see the same state.

        The Gaussian process's kernel is `exp(-sum_i d_i / l_i)` over four
        distances: the Auto-Keras edit distance, |log2 FLOPs_a - log2 FLOPs_b|,
        |depth_a - depth_b| and |log2(1 + effort_a) - log2(1 + effort_b)|, effort
        being the epochs of training behind a trial's weights; the lengthscales
        `l_i` are fitted by marginal likelihood. Epoch times come from one
        `kerasnas.oracle.cost.EpochCost` model fitted to the epochs the trials
        measured, or to the probe's timings before any.

    Example:
        ```python
        import numpy as np
        from kerasnas.oracle.network_morphism import NetworkMorphismOracle
        from kerasnas.tuner import MorphismTuner

        x = np.random.default_rng(0).random((64, 8, 8, 1), dtype="float32")
        y = np.arange(64) % 2
        oracle = NetworkMorphismOracle((8, 8, 1), 2, max_trials=2, seed=1)
        tuner = MorphismTuner(
            oracle,
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
            max_epochs=1,
            directory="runs",
            project_name="oracle_example",
        )
        tuner.search(x, y, validation_data=(x[:16], y[:16]))
        best_model = tuner.get_best_models(1)[0]
        ```
    """

    def __init__(
        self,
        input_shape,
        num_outputs,
        *,
        objective="val_accuracy",
        max_trials=None,
        seed=None,
        max_model_size=None,
        task="classification",
        initial_graphs=None,
        first_width=None,
        search=True,
        acquisition="ei",
        beta=2.576,
        pool_size=32,
        max_morphisms=5,
        refine_share=0.25,
        trial_share=0.3,
        child_share=0.04,
        cost_horizon=10,
        patience=3,
        search_patience=SEARCH_PATIENCE,
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
        self.input_shape = check_input_shape(input_shape)
        self.num_outputs = check_int("num_outputs", num_outputs, minimum=1)
        self.task = check_choice("task", task, TASKS)
        self.max_model_size = check_int("max_model_size", max_model_size, 1, allow_none=True)
        self.beta = check_number("beta", beta, low=0)
        self.max_morphisms = check_int("max_morphisms", max_morphisms, minimum=1)
        self.pool_size = check_int("pool_size", pool_size, minimum=0)
        self.acquisition = check_choice("acquisition", acquisition, ACQUISITIONS)
        self.schedule = BudgetSchedule(
            refine_share=refine_share,
            trial_share=trial_share,
            child_share=child_share,
            cost_horizon=cost_horizon,
            patience=patience,
            search_patience=search_patience,
            overfit_ratio=check_overfit_ratio(overfit_ratio, self.task),
            augment_epochs=check_augment_epochs(augment_epochs, self.task),
        )
        if not isinstance(search, bool) and search != "random":
            raise ValueError(
                f'Expected `search` to be True, False or "random". Received: search={search!r}'
            )
        if search == "random" and not self.pool_size:
            raise ValueError(
                'Expected `pool_size` of at least 1 with search="random": the random '
                f"children are drawn from that pool. Received: pool_size={pool_size!r}"
            )
        self.search = search
        if clock is not None and not callable(clock):
            raise ValueError(
                f"Expected `clock` to be a function returning seconds, like `time.time`. "
                f"Received: clock={clock!r}"
            )
        self.clock = clock or time.time
        self._sized = initial_graphs is None  # the default ones are sized later
        if first_width is not None:
            check_choice("first_width", first_width, FIRST_WIDTHS)
            if not self._sized:
                raise ValueError(
                    "Expected `first_width` or `initial_graphs`, not both: `first_width` "
                    "sets the width of the default initial architectures, which "
                    f"`initial_graphs` replaces. Received: first_width={first_width!r}"
                )
            first_width = int(first_width)
            if not self._default_graphs(first_width):
                raise ValueError(
                    f"Expected a `first_width` whose architectures fit `max_model_size`: at "
                    f"{first_width} filters none has at most {max_model_size:,} parameters. "
                    f"Received: first_width={first_width}; pass a narrower one or None."
                )
        self.first_width = first_width
        self.initial_graphs = _initial_graphs(self, initial_graphs, max_model_size)
        self.deadline = None
        self.budget = None
        self.validation_size = None  # images that score a trial, once known
        self.process_trials = None  # trials this process may start (a chain's segment)
        self._started_here = 0
        self.width = None  # first-stage filters of the sized initial architectures, once chosen
        self.augment = None  # whether every trial trains on augmented images, once decided
        self.probe = None  # see `set_probe`: timings taken before the first trial
        self._sizing = None  # why the first architecture has its width, once sized
        self._graphs = {}  # trial id -> (Graph, its description for the edit distance, key)
        self._efforts = {}  # completed trial id -> epochs behind its weights (they never change)
        self._costs = measurements.CostModel(self.trial_graph)
        self._edit = EditDistances(lambda trial_id: self._graphs[trial_id][1])

    # ------------------------------------------------------------------ budget

    def set_deadline(self, deadline, budget=None):
        """Makes the search cost-aware until `deadline`.

        A resumed search given (about) the deadline it had keeps its budget: it goes on
        as one process would have, however many processes ran it (`kerasnas.segments`).

        Args:
            deadline: seconds since the epoch (as `clock()`), or None for no deadline.
            budget: seconds the whole search has, to place the refinement.
                Defaults to None: the budget it had when resumed toward the same
                deadline (within `SAME_DEADLINE_SECONDS` or `SAME_DEADLINE_SHARE` of
                that budget, the time `fit` keeps back differing between processes),
                else from now until `deadline`.
        """
        deadline = check_number("deadline", deadline, allow_none=True)
        if budget is None and deadline is not None:
            resumed = self.deadline is not None and self.budget
            slack = max(SAME_DEADLINE_SECONDS, SAME_DEADLINE_SHARE * (self.budget or 0.0))
            if resumed and abs(deadline - self.deadline) <= slack:
                budget = self.budget
            else:
                budget = deadline - self.clock()
        self.deadline = deadline
        self.budget = check_number("budget", budget, allow_none=True)

    def set_validation_size(self, validation_size):
        """Tells the search how many images score each trial, so that it can tell a gain
        from the noise of the validation set (see `search_patience`).

        Args:
            validation_size: a positive int, or None when unknown (the rule is off).
        """
        self.validation_size = check_int(
            "validation_size", validation_size, minimum=1, allow_none=True
        )

    def _remaining(self):  # seconds to the deadline (at least 0), or None without one
        return None if self.deadline is None else max(0.0, self.deadline - self.clock())

    def _fits(self, graph):
        return self.max_model_size is None or graph.num_params() <= self.max_model_size

    # ------------------------------------------------------------------ trials

    def trial_graph(self, trial):
        """The `Graph` a trial trains, parsed once per trial.

        Args:
            trial: a KerasTuner `Trial` that carries an architecture.
        """
        if trial.trial_id not in self._graphs:
            graph = trials.graph_of(trial)
            self._graphs[trial.trial_id] = (graph, describe(graph), graph.architecture_key())
        return self._graphs[trial.trial_id][0]

    def _tried(self):
        """The architecture keys of every trial that carries one (trained or planned),
        as recorded with each; only a trial of an older kerasnas is parsed for its key."""
        keys = set()
        for trial in self._with_architecture():
            key = trials.architecture_key_of(trial)
            if key is None:
                self.trial_graph(trial)
                key = self._graphs[trial.trial_id][2]
            keys.add(key)
        return keys

    def get_best_trials(self, num_trials=1):
        """The best trials by `kerasnas.trials.ranking_key` (a tie goes to the lower
        validation loss, not to the earliest trial); unfinished trials come last.

        Args:
            num_trials: how many trials. Defaults to 1.

        Returns:
            A list of at most `num_trials` KerasTuner `Trial`s, best first.
        """
        ranked = trials.ranked(self.trials.values(), self.objective.direction)
        if len(ranked) < num_trials:
            ranked += [t for t in self.trials.values() if t.status != _Status.COMPLETED]
        return ranked[:num_trials]

    def _with_architecture(self):
        """The trials that carry an architecture (an unreadable trial file leaves none)."""
        return [t for t in self.trials.values() if trials.has_architecture(t)]

    def _scored(self):
        """The completed trials with a finite score: the parents a child may grow from."""
        return [
            t
            for t in self._with_architecture()
            if t.status == _Status.COMPLETED and t.score is not None and math.isfinite(t.score)
        ]

    def populate_space(self, trial_id):
        """Proposes the next architecture: an initial one, or a morphed trained one.

        KerasTuner calls it for each new trial (see the class's numbered steps). Once
        `process_trials` trials started in this process (a segment of
        `kerasnas.segments`), it stops, and the next process goes on.

        Args:
            trial_id: the new trial's id.

        Returns:
            KerasTuner's `{"status": ..., "values": ...}`: `RUNNING` with the trial's
            values (`kerasnas.trials.values`), `IDLE` while a running trial must end
            first, or `STOPPED` when the search is over.
        """
        if self.process_trials is not None and self._started_here >= self.process_trials:
            return {"status": _Status.STOPPED, "values": None}
        response = self._populate(trial_id)
        self._started_here += response["status"] == _Status.RUNNING
        return response

    def _populate(self, trial_id):
        """`populate_space`'s proposal, without the segment's quota."""
        scored = self._scored()
        # What is left would go to building and tracing a model: leave it to the finish
        # (but without a trained model, any training is worth its overhead).
        if self.schedule.stops(
            self._remaining(),
            self.overhead_seconds() if scored else 0.0,
        ):
            return {"status": _Status.STOPPED, "values": None}
        tried = self._tried()
        for index, graph in enumerate(self._initial_candidates()):
            starts = self.schedule.starts_initial(index, self._epochs_left(graph))
            if graph.architecture_key() not in tried and starts:
                reason = self._initial_reason(index, graph)
                values = trials.values(graph, plan=self.plan(graph), reason=reason)
                return {"status": _Status.RUNNING, "values": values}
        if not scored:
            # Nothing to grow from yet: wait for a running trial, or give up.
            status = _Status.IDLE if self.ongoing_trials else _Status.STOPPED
            return {"status": status, "values": None}
        if not self.search:
            return self._ablation()
        refine = self._refinement()
        if refine is not None:
            return {"status": _Status.RUNNING, "values": refine}
        rng = np.random.default_rng([self.seed, int(trial_id)])
        proposal = self._propose(scored, tried, rng)
        if proposal is None:
            return {"status": _Status.STOPPED, "values": None}
        graph, parent_trial_id = proposal
        plan = self.plan(graph, child=True)
        morphisms = len(graph.morphisms_since(self.trial_graph(self.trials[parent_trial_id])))
        how = "random" if self.search == "random" else self.acquisition
        reason = explain.child(
            parent_trial_id, morphisms, how, plan.seconds, self.epoch_seconds(graph)
        )
        values = trials.values(graph, parent_trial_id, plan=plan, reason=reason)
        return {"status": _Status.RUNNING, "values": values}

    def _ablation(self):
        """Without search: refine the first architecture once, for all the time left."""
        if self.ongoing_trials or any(trials.is_refinement(t) for t in self._with_architecture()):
            return {"status": _Status.STOPPED, "values": None}
        best = self.get_best_trials(1)[0]
        reason = explain.ablation(best.trial_id, self._remaining())
        return {"status": _Status.RUNNING, "values": self._refinement_values(best, reason)}

    def _refinement(self):
        """The values of a trial that refines the best trial when `schedule.refines` says
        why (the incumbent of `measurements.search_progress` when its children gained
        nothing beyond noise), else None."""
        if self.deadline is None:
            return None
        best = self.get_best_trials(1)[0]
        graph = self.trial_graph(best)
        epochs_left = self._epochs_left(graph)
        incumbent, stalled = self._progress()
        cause = self.schedule.refines(
            remaining=self._remaining(),
            budget=self.budget,
            epochs_left=epochs_left,
            children_without_gain=stalled,
        )
        if cause is None:
            return None
        if cause == "no gain":
            # Noise alone could have ranked the children above it: train it on, as the
            # ablation would, rather than a child that validation cannot tell apart.
            best = incumbent
            graph = self.trial_graph(best)
        refined = {
            trials.parent_of(t) for t in self._with_architecture() if trials.is_refinement(t)
        }
        if trials.is_refinement(best) or best.trial_id in refined:
            return None  # refined already: what time is left goes to the search
        epoch = self.epoch_seconds(graph)
        child_epochs = None
        if epoch:
            overhead = self.overhead_seconds(child=True)
            run = self.schedule.child_seconds(self._remaining(), epoch, overhead, self.budget)
            child_epochs = float(run) / epoch
        children = sum(trials.is_child(t) for t in self._with_architecture())
        reason = explain.refinement(
            best.trial_id,
            self._remaining(),
            epochs_left,
            child_epochs,
            children,
            self.schedule.refine_share,
            cause,
            stalled,
            self._score_error(best.score),
        )
        return self._refinement_values(best, reason)

    def _score_error(self, score):
        """One standard error of `score` on the validation set, or None (see
        `measurements.score_error`)."""
        return measurements.score_error(score, self.objective.name, self.validation_size)

    def _progress(self):
        """`(incumbent, children without gain)`: see `measurements.search_progress`."""
        return measurements.search_progress(
            trials.in_order(self._scored()), self.objective.direction, self._score_error
        )

    def _refinement_values(self, best, reason=""):
        """The values of a trial that trains `best` on, for all the time left."""
        graph = self.trial_graph(best)
        plan = self.plan(graph, refine=True)
        return trials.values(graph, best.trial_id, refine=True, plan=plan, reason=reason)

    # ------------------------------------------------------------------ measurements

    def set_probe(self, graph, epoch_seconds, overhead_seconds=0.0):
        """Records a timing of `graph` on a few batches, taken before the search.

        The epoch-cost model is fitted to these timings besides the trials', so that
        the first architecture can be sized to the machine; timings of different
        widths (`probe_graphs`) tell the cost of FLOPs from that of activations before
        any trial, and a third the fixed cost.

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
            and not self._with_architecture()
        )

    def probe_graphs(self):
        """The architectures to time for `set_probe`, in this order: the first one at the
        default width, at the narrowest and at the widest (timed, not extrapolated)."""
        graphs = [
            self._default_graphs(DEFAULT_WIDTH),
            self._default_graphs(FIRST_WIDTHS[0]),
            self._default_graphs(FIRST_WIDTHS[-1]),
        ]
        unique = {g[0].architecture_key(): g[0] for g in graphs if g}
        return list(unique.values())

    def cost_model(self):
        """The `EpochCost` model, fitted to the timed trials and the probe's timings.

        Returns:
            A `kerasnas.oracle.cost.EpochCost` (without coefficients before any timing).
        """
        return self._costs.fitted(self._with_architecture(), self.probe)

    def overhead_seconds(self, child=False):
        """Seconds a trial spends besides its epochs (see `measurements.overhead_seconds`).

        Args:
            child: the overhead of a morphism child. Defaults to False.
        """
        return measurements.overhead_seconds(self._with_architecture(), self.probe, child)

    def epoch_seconds(self, graph):
        """Seconds one epoch of `graph` should take, or None before any timing.

        Args:
            graph: a `Graph`.
        """
        return self.cost_model().predict(graph)

    def effort(self, trial_id):
        """Epochs of training behind a trial's weights: its own and its ancestors'.

        Args:
            trial_id: the trial's id.
        """
        if trial_id in self._efforts:
            return self._efforts[trial_id]
        found = measurements.effort(self.trials, trial_id)
        trial = self.trials.get(trial_id)
        if trial is not None and trial.status == _Status.COMPLETED:
            self._efforts[trial_id] = found
        return found

    def _epochs_left(self, graph):
        """How many epochs of `graph` fit in the time left (inf without a deadline or timings)."""
        seconds = self.epoch_seconds(graph)
        if self.deadline is None or seconds is None:
            return math.inf
        return (self.deadline - self.clock()) / seconds

    # ------------------------------------------------------------------ sizing and plans

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
            self.augment = self.schedule.augments(self._room(), self.epoch_seconds(graphs[0]))
        return graphs

    def _room(self):
        """Seconds training can use: the time left less one trial's overhead (None
        without a deadline)."""
        if self.deadline is None:
            return None
        return self.deadline - self.clock() - self.overhead_seconds()

    def _choose_width(self):
        """The first architecture's width (`BudgetSchedule.first_width`); on a resume
        without the search state, the width the trials were sized to."""
        candidates = {width: self._default_graphs(width) for width in FIRST_WIDTHS}
        tried = self._tried()
        for width, graphs in candidates.items():
            if any(g.architecture_key() in tried for g in graphs):
                return width
        if self.first_width is not None:
            self._sizing = explain.first_architecture_given(self.first_width)
            return self.first_width
        widths = [w for w, graphs in candidates.items() if graphs]
        if not widths or self.deadline is None or self.cost_model().coefficients is None:
            return DEFAULT_WIDTH
        epochs = {w: self.epoch_seconds(candidates[w][0]) for w in widths}
        room = self._room()
        width = self.schedule.first_width(room, epochs)
        needed = self.schedule.first_epochs(room, epochs[widths[0]])
        self._sizing = explain.first_architecture(width, room, epochs[width], needed)
        return width

    def _initial_reason(self, index, graph):
        """Why the `index`-th initial architecture starts now (see `oracle.explain`)."""
        if not self._sized or index:
            reason = explain.another_initial(index, self._epochs_left(graph), not self._sized)
        else:
            reason = self._sizing or explain.first_architecture(
                self.width, self._room(), self.epoch_seconds(graph), None
            )
        if index:
            return reason
        epoch = self.epoch_seconds(graph)
        augmentation = explain.augmentation(
            self.augment, self._room(), epoch, self.schedule.augment_epochs
        )
        return f"{reason}; {augmentation}"

    def plan(self, graph, refine=False, child=False):
        """The `TrialPlan` of a trial of `graph` starting now (see `BudgetSchedule.plan`).

        Args:
            graph: the trial's `Graph`.
            refine: the trial trains its parent on (the search's finish). Defaults
                to False.
            child: the trial is a morphism child, warm-started from its parent.
                Defaults to False.

        Returns:
            A `kerasnas.trials.TrialPlan`.
        """
        timed = self.deadline is not None and not refine
        return self.schedule.plan(
            remaining=self._remaining(),
            budget=self.budget,
            epoch=self.epoch_seconds(graph) if timed else None,
            overhead=self.overhead_seconds(child=child) if timed else 0.0,
            augment=self.augment,
            refine=refine,
            child=child,
            deadline=self.deadline,
        )

    # ------------------------------------------------------------------ proposals

    def _propose(self, scored, tried, rng):
        """The next morphism child and its parent's id, or None (see `CandidateSearch`).

        The Gaussian process sees the trials of `proposals.window` (all of them up to
        `MAX_OBSERVATIONS`; beyond, the best half and the most recent), and children grow
        from the scored trials among them, by either search: a proposal parses and
        compares at most that many architectures, however long the search.
        """
        failed = [t for t in self._with_architecture() if t.status == _Status.FAILED]
        ids, y = window(*measurements.observations(scored, failed, self.objective.direction))
        scores = dict(zip(ids, y))  # at most MAX_OBSERVATIONS
        parents = [
            (t.trial_id, self.trial_graph(t), self.effort(t.trial_id), scores[t.trial_id])
            for t in scored
            if t.trial_id in scores
        ]
        for i in ids:
            self.trial_graph(self.trials[i])  # parsed for the distances
        settings = dict(
            schedule=self.schedule,
            fits=self._fits,
            tried=tried,
            max_morphisms=self.max_morphisms,
            pool_size=self.pool_size,
            cost=self.cost_model(),
            remaining=self._remaining(),
        )
        if self.search == "random":
            return CandidateSearch(None, [], [], [], y, **settings).draw(parents, rng)
        efforts = np.array([self.effort(i) for i in ids])  # (n,)
        observed = [self._graphs[i][0] for i in ids]
        features = graph_features(observed)  # (2, n)
        distances = kernel_distances(self._edit.matrix(ids), features, features, efforts, efforts)
        search = CandidateSearch(
            fit_gp(distances, y),
            observed,
            [self._graphs[i][1] for i in ids],
            efforts,
            y,
            acquisition=self.acquisition,
            beta=self.beta,
            typical_epoch=measurements.typical_epoch_seconds(scored),
            budget=self.budget,
            overhead=self.overhead_seconds(child=True),
            usual_epochs=measurements.usual_child_epochs(scored),
            **settings,
        )
        return search.propose(parents, rng)

    # ------------------------------------------------------------------ state and files

    def get_state(self):
        state = super().get_state()
        state["deadline"] = self.deadline
        state["budget"] = self.budget
        state["width"] = self.width
        state["augment"] = self.augment
        state["probe"] = self.probe
        state["validation_size"] = self.validation_size
        return state

    def set_state(self, state):
        super().set_state(state)
        self.deadline = state.get("deadline")
        self.budget = state.get("budget")
        self.width = state.get("width")
        self.augment = state.get("augment")
        self.probe = state.get("probe")
        self.validation_size = state.get("validation_size")


def _initial_graphs(oracle, initial_graphs, max_model_size):
    """The initial architectures of `oracle` that fit `max_model_size` (the default ones
    when `initial_graphs` is None; only the first without search).

    Raises:
        ValueError: if `initial_graphs` is not a list of Graphs, or none fits.
    """
    if initial_graphs is None:
        initial_graphs = generators.initial_graphs(
            oracle.input_shape, oracle.num_outputs, oracle.task
        )
    initial_graphs = list(initial_graphs)
    if not initial_graphs or not all(isinstance(g, Graph) for g in initial_graphs):
        raise ValueError(
            "Expected `initial_graphs` to be a non-empty list of `kerasnas.graph.Graph`. "
            f"Received: initial_graphs={initial_graphs!r}"
        )
    fitting = [g for g in initial_graphs if oracle._fits(g)]
    if oracle._sized and not fitting:  # the narrowest may still fit
        fitting = oracle._default_graphs(FIRST_WIDTHS[0])
    if not oracle.search:
        fitting = fitting[:1]
    if not fitting:
        smallest = min(g.num_params() for g in initial_graphs)
        raise ValueError(
            f"`max_model_size` is smaller than every initial architecture (the smallest "
            f"has {smallest:,} parameters). Received: max_model_size={max_model_size}. "
            "Raise it, or pass None for no limit."
        )
    return fitting
