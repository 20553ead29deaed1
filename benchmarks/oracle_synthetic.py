"""NetworkMorphismOracle against random morphism search on an analytic objective.

The simulator lives in `kerasnas.testing` (the tests run it small).

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

from kerasnas.oracle.proposals import MAX_OBSERVATIONS
from kerasnas.testing import (
    PEAK_DEPTH,
    PEAK_FLOPS,
    OracleSearch,
    compare,
    cost_seconds,
    true_score,
)


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


def synthetic_oracle(size, directory, seed=0):
    """An oracle whose history holds `size` completed trials, made without proposing:
    random morphism chains (1 to 3 steps) from random earlier trials, scored by
    `true_score` plus noise, timed by `cost_seconds`, as a long search would leave."""
    import keras_tuner
    import numpy as np
    from keras_tuner.engine import trial as trial_module

    from kerasnas import trials
    from kerasnas.graph import generators, morphism
    from kerasnas.oracle import NetworkMorphismOracle
    from kerasnas.testing import CLASSES, SHAPE, FakeClock

    rng = np.random.default_rng(seed)
    oracle = NetworkMorphismOracle(SHAPE, CLASSES, seed=seed, clock=FakeClock())
    oracle._set_project_dir(directory, f"synthetic_{size}")
    made = []
    for index in range(size):
        if index < 3:
            graph, parent = generators.initial_graphs(SHAPE, CLASSES)[index], ""
        else:
            parent_index = int(rng.integers(len(made)))
            graph = made[parent_index]
            for _ in range(int(rng.integers(1, 4))):
                graph = morphism.random_morphism(graph, rng)
            parent = f"{parent_index:04d}"
        hp = keras_tuner.HyperParameters()
        for name, value in trials.values(graph, parent).items():
            hp.Fixed(name, value)
        trial = trial_module.Trial(hp, trial_id=f"{index:04d}", status="COMPLETED")
        score = true_score(graph) + rng.normal(0, 0.002)
        seconds = cost_seconds(graph)
        metrics = {"val_accuracy": score, trials.EPOCH_SECONDS: seconds, trials.EPOCHS: 1.0}
        metrics[trials.TRAIN_SECONDS] = seconds + 2.0
        for name, value in metrics.items():
            trial.metrics.register(name, direction="max")
            trial.metrics.update(name, value)
        trial.score = score
        oracle.trials[trial.trial_id] = trial
        made.append(graph)
    return oracle


def proposals_at_scale(sizes, seed=0):
    """`{size: (first s, next s, traced MB, GP points, cached distances)}`: one proposal
    from a fresh synthetic state (every distance computed anew, as after a resume),
    another after it (the caches warm), and the memory the state and the proposal hold."""
    import tracemalloc

    found = {}
    with tempfile.TemporaryDirectory() as directory:
        for size in sizes:
            oracle = synthetic_oracle(size, directory, seed)
            start = time.perf_counter()
            oracle.populate_space(f"{size:04d}")
            first = time.perf_counter() - start
            start = time.perf_counter()
            oracle.populate_space(f"{size + 1:04d}")
            warm = time.perf_counter() - start
            tracemalloc.start()
            oracle = synthetic_oracle(size, directory, seed)
            oracle.populate_space(f"{size:04d}")
            traced = tracemalloc.get_traced_memory()[0] / 2**20
            tracemalloc.stop()
            points = min(size, len(oracle._scored()), MAX_OBSERVATIONS)
            found[size] = (first, warm, traced, points, len(oracle._edit._pairs) // 2)
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=float, default=1500.0, help="simulated seconds")
    parser.add_argument("--timing", action="store_true", help="time proposals at 50 and 200")
    parser.add_argument(
        "--scale",
        default=None,
        help="comma-separated history sizes (e.g. 50,200,1000): time one proposal from a "
        "synthetic state of each, and its memory, instead of the comparison",
    )
    args = parser.parse_args()

    if args.scale:
        sizes = [int(size) for size in args.scale.split(",")]
        print("| completed trials | first proposal s | next proposal s | traced MB | GP points "
              "| cached distances |")  # fmt: skip
        print("| --- | --- | --- | --- | --- | --- |")
        for size, (first, warm, traced, points, pairs) in proposals_at_scale(sizes).items():
            print(f"| {size} | {first:.3f} | {warm:.3f} | {traced:.1f} | {points} | {pairs:,} |")
        return
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
