"""A simulated search: the oracle against random morphism search on an analytic objective.

No training: an architecture's score is an analytic function that peaks at a
certain depth and size (plus noise), and training it "costs" simulated
seconds proportional to its FLOPs, on a fake clock. Both searches start from
the same initial architectures and stop when the simulated budget is spent.
The oracle is told the time left through `set_deadline`, so it can trade
gain against cost. `tests/test_oracle.py` runs it small;
`benchmarks/oracle_synthetic.py` runs it large and prints figures.
"""

from __future__ import annotations

import tempfile

import numpy as np
from fakes import FakeClock

from kerasnas import trials
from kerasnas.graph import generators, morphism
from kerasnas.oracle import NetworkMorphismOracle

SHAPE, CLASSES = (28, 28, 1), 10
PEAK_DEPTH, PEAK_FLOPS = 14, 8e7


def true_score(graph):
    """Peaks at depth 14 and 80 MFLOPs; an architecture's score falls off on either side."""
    depth_term = 0.004 * abs(graph.depth() - PEAK_DEPTH)
    size_term = 0.01 * abs(np.log2(graph.flops() / PEAK_FLOPS))
    return 0.99 - depth_term - size_term


def cost_seconds(graph):
    """Simulated seconds to train: 1 s per MFLOP (the initial graphs cost ~25 s)."""
    return graph.flops() / 1e6


class RandomMorphismSearch:
    """The baseline: a random trained architecture, then 1 to 5 random morphisms."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.initial = generators.initial_graphs(SHAPE, CLASSES)
        self.trained, self.seen = [], set()

    def propose(self):
        if len(self.trained) < len(self.initial):
            return self.initial[len(self.trained)]
        for _ in range(100):
            graph = self.trained[int(self.rng.integers(len(self.trained)))]
            for _ in range(int(self.rng.integers(1, 6))):
                graph = morphism.random_morphism(graph, self.rng)
            if graph.architecture_key() not in self.seen:
                return graph
        return None

    def tell(self, graph, score, seconds):
        self.trained.append(graph)
        self.seen.add(graph.architecture_key())


class OracleSearch:
    """The oracle, driven through KerasTuner's trial API."""

    def __init__(self, seed, directory, with_deadline=True, **oracle_kwargs):
        self.clock = FakeClock()
        self.oracle = NetworkMorphismOracle(
            SHAPE, CLASSES, seed=seed, clock=self.clock, **oracle_kwargs
        )
        self.oracle._set_project_dir(directory, f"oracle_{seed}")
        self.oracle.verbose = 0
        self.with_deadline = with_deadline
        self.trial = None

    def propose(self, remaining=None):
        if self.with_deadline and remaining is not None:
            self.oracle.set_deadline(self.clock() + remaining)
        self.trial = self.oracle.create_trial("tuner0")
        if self.trial.status != "RUNNING":
            return None
        return trials.graph_of(self.trial)

    def tell(self, graph, score, seconds):
        self.clock.advance(seconds)
        self.oracle.update_trial(
            self.trial.trial_id,
            {"val_accuracy": score, trials.EPOCH_SECONDS: seconds, trials.EPOCHS: 1.0},
        )
        self.trial.status = "COMPLETED"
        self.oracle.end_trial(self.trial)


def simulate(searcher, budget, seed):
    """Runs `searcher` until the simulated budget is spent.

    Returns:
        `(best true score, simulated seconds when first reached, trials)`.
    """
    noise = np.random.default_rng(seed + 1000)
    spent, best, best_at, count = 0.0, -np.inf, 0.0, 0
    while spent < budget:
        if isinstance(searcher, OracleSearch):
            graph = searcher.propose(remaining=budget - spent)
        else:
            graph = searcher.propose()
        if graph is None:
            break
        seconds = cost_seconds(graph)
        if spent + seconds > budget:
            break
        spent += seconds
        count += 1
        score = true_score(graph)
        searcher.tell(graph, score + noise.normal(0, 0.002), seconds)
        if score > best:
            best, best_at = score, spent
    return best, best_at, count


def compare(seeds, budget):
    """`{name: [(best, best_at, trials) per seed]}` for the oracle and random search."""
    results = {"oracle": [], "random": []}
    with tempfile.TemporaryDirectory() as directory:
        for seed in seeds:
            results["oracle"].append(simulate(OracleSearch(seed, directory), budget, seed))
            results["random"].append(simulate(RandomMorphismSearch(seed), budget, seed))
    return results
