"""NetworkMorphismOracle against random morphism search on an analytic objective.

The simulator lives in `kerasnas.testing` (the tests run it small).

Usage: python benchmarks/oracle_synthetic.py [--seeds 5] [--budget 1500] [--timing]
       python benchmarks/oracle_synthetic.py --scale 50,200,1000 [--repeats 3]

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
    synthetic_oracle,
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


def proposals_at_scale(sizes, seed=0, repeats=3):
    """`{size: (first s, next s, traced MB, GP points, cached distances)}`: one proposal
    from a fresh synthetic state (every distance computed anew, as after a resume),
    another after it (the caches warm), each the median of `repeats` fresh states, and
    the memory the state and the proposal hold."""
    import tracemalloc

    found = {}
    with tempfile.TemporaryDirectory() as directory:
        for size in sizes:
            firsts, warms = [], []
            for _ in range(repeats):
                oracle = synthetic_oracle(size, directory, seed)
                start = time.perf_counter()
                oracle.populate_space(f"{size:04d}")
                firsts.append(time.perf_counter() - start)
                start = time.perf_counter()
                oracle.populate_space(f"{size + 1:04d}")
                warms.append(time.perf_counter() - start)
            first, warm = statistics.median(firsts), statistics.median(warms)
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
        "synthetic state of each (the median of --repeats), and its memory, instead of "
        "the comparison",
    )
    parser.add_argument("--repeats", type=int, default=3, help="fresh states timed per size")
    args = parser.parse_args()

    if args.scale:
        sizes = [int(size) for size in args.scale.split(",")]
        print("| completed trials | first proposal s | next proposal s | traced MB | GP points "
              "| cached distances |")  # fmt: skip
        print("| --- | --- | --- | --- | --- | --- |")
        found = proposals_at_scale(sizes, repeats=args.repeats)
        for size, (first, warm, traced, points, pairs) in found.items():
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
