"""NetworkMorphismOracle against random morphism search on an analytic objective.

Usage: python benchmarks/oracle_synthetic.py [--seeds 5] [--budget 1500] [--timing]

No training: each architecture's score is an analytic function that peaks at a
certain depth and size (plus noise), and training it "costs" simulated seconds
proportional to its FLOPs. Both searches start from the same initial
architectures and stop when the simulated budget is spent. The oracle is told
the time left through `set_deadline`, so it can trade gain against cost.

Prints, per searcher, the median over seeds of the best score reached, and of
the simulated seconds spent when it was first reached. With --timing, also the
wall time of one proposal with 50 and with 200 completed trials in the history.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np

from kerasnas.graph import Graph, generators, morphism
from kerasnas.oracle import EPOCH_SECONDS, NetworkMorphismOracle

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
        self.oracle = NetworkMorphismOracle(SHAPE, CLASSES, seed=seed, **oracle_kwargs)
        self.oracle._set_project_dir(directory, f"oracle_{seed}")
        self.oracle.verbose = 0
        self.with_deadline = with_deadline
        self.trial = None

    def propose(self, remaining=None):
        if self.with_deadline and remaining is not None:
            self.oracle.set_deadline(time.time() + remaining)
        self.trial = self.oracle.create_trial("tuner0")
        if self.trial.status != "RUNNING":
            return None
        return Graph.from_json(self.trial.hyperparameters.values["architecture"])

    def tell(self, graph, score, seconds):
        self.oracle.update_trial(
            self.trial.trial_id, {"val_accuracy": score, EPOCH_SECONDS: seconds}
        )
        self.trial.status = "COMPLETED"
        self.oracle.end_trial(self.trial)


def simulate(searcher, budget, seed):
    """Runs `searcher` until the simulated budget is spent.

    Returns:
        `(best true score, simulated seconds when first reached, trials)`.
    """
    noise = np.random.default_rng(seed + 1000)
    spent, best, best_at, trials = 0.0, -np.inf, 0.0, 0
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
        trials += 1
        score = true_score(graph)
        searcher.tell(graph, score + noise.normal(0, 0.002), seconds)
        if score > best:
            best, best_at = score, spent
    return best, best_at, trials


def compare(seeds, budget):
    """`{name: [(best, best_at, trials) per seed]}` for the oracle and random search."""
    results = {"oracle": [], "random": []}
    with tempfile.TemporaryDirectory() as directory:
        for seed in seeds:
            results["oracle"].append(simulate(OracleSearch(seed, directory), budget, seed))
            results["random"].append(simulate(RandomMorphismSearch(seed), budget, seed))
    return results


def proposal_seconds(history_sizes, seed=0):
    """Wall seconds of one proposal after each number of completed trials."""
    timings = {}
    with tempfile.TemporaryDirectory() as directory:
        searcher = OracleSearch(seed, directory, with_deadline=False)
        done = 0
        for size in sorted(history_sizes):
            while done < size:
                graph = searcher.propose()
                searcher.tell(graph, true_score(graph), cost_seconds(graph))
                done += 1
            start = time.perf_counter()
            graph = searcher.propose()
            timings[size] = time.perf_counter() - start
            searcher.tell(graph, true_score(graph), cost_seconds(graph))
            done += 1
    return timings


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=float, default=1500.0, help="simulated seconds")
    parser.add_argument("--timing", action="store_true", help="time proposals at 50 and 200")
    args = parser.parse_args()

    results = compare(range(args.seeds), args.budget)
    print(
        f"budget {args.budget:.0f} simulated s, {args.seeds} seeds, "
        f"optimum {0.99:.3f} at depth {PEAK_DEPTH}, {PEAK_FLOPS / 1e6:.0f} MFLOPs"
    )
    print(
        f"{'searcher':<10}{'median best':>12}{'median s to best':>18}{'median trials':>15}"
        f"   best per seed"
    )
    for name, rows in results.items():
        best, at, trials = zip(*rows)
        per_seed = " ".join(f"{b:.4f}" for b in best)
        print(
            f"{name:<10}{statistics.median(best):>12.4f}{statistics.median(at):>18.0f}"
            f"{statistics.median(trials):>15.0f}   {per_seed}"
        )
    if args.timing:
        for size, seconds in proposal_seconds([50, 200]).items():
            print(f"one proposal with {size} completed trials: {seconds:.3f} s")


if __name__ == "__main__":
    main()
