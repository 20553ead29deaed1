"""Soak: does anything accumulate over a long search? Memory, descriptors, threads, time.

Usage:
    python benchmarks/soak.py [--trials 300] [--output DIR] [--seed 1] [--images 300]
                              [--trials-per-process K]

One `ImageClassifier(max_trials=N).fit(...)` on tiny data (8x8 grey images of three
classes, `kerasnas.testing.quadrant_images`), with no time limit and two epochs a trial,
so that each trial takes a second or two; `max_model_size` holds the architectures
within four times the first one's parameters, so that later trials do not train
slower only because they grew. After every trial a callback records the process's
resident memory, open file descriptors and threads (as the operating system counts
them: TensorFlow's own included), the trial's training seconds (its `model.fit`, from
the first batch's start to the last epoch's end) and its parameters; a wrapper around
the oracle's `populate_space` times each proposal apart.

Prints the figures at trials 10, 50, 100, 200 and 300 (those up to N), then the growth
from trial 20 to the last against the targets: resident memory by less than the
larger of 10% and 100 MB, descriptors and threads by none, and training time (the
median of the 10 trials up to each point) by less than 20%. Exits with 1 when a
target is missed. Writes `DIR/soak.json` (one record per trial) and `DIR/soak.png`.

With `--trials-per-process K` the same search runs as a chain of processes of K trials
each (`kerasnas.segments`, as `kerasnas fit --trials-per-process` runs it): each
process resumes the run directory, records its trials into it, and exits. The records
then also say which process trained each trial and the whole chain's peak memory.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time

MARKS = (10, 50, 100, 200, 300)
FROM_TRIAL = 20  # the growth is measured from here: the first trials warm caches up
WINDOW = 10  # trials whose median training time stands for a point


def resources():
    """`(resident MB, open file descriptors, threads)` of this process, as the OS counts."""
    rss = threads = None
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) / 1024
                elif line.startswith("Threads:"):
                    threads = int(line.split()[1])
    except OSError:  # not Linux: the peak instead of the current, Python's threads only
        import resource

        scale = 1 if sys.platform == "darwin" else 1024
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale / 1024
    if threads is None:
        threads = threading.active_count()
    fd_dir = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"
    return rss, len(os.listdir(fd_dir)), threads


def soak(trials, directory, seed=1, images=300, epochs=2, first_trial=1):
    """Runs the search (or resumes it in `directory`); returns one record per trial it
    trained (dicts, oldest first), numbered from `first_trial`."""
    import keras

    import kerasnas
    from kerasnas.graph import generators
    from kerasnas.oracle import NetworkMorphismOracle
    from kerasnas.testing import quadrant_images

    records, proposals = [], []

    def record(fit_seconds, params):
        rss, fds, threads = resources()
        records.append(
            {"trial": first_trial + len(records), "rss_mb": rss, "fds": fds, "threads": threads,
             "process": os.getpid(),
             "train_seconds": fit_seconds, "params": params,
             "proposal_seconds": proposals[-1] if proposals else None}
        )  # fmt: skip

    class Recorder(keras.callbacks.Callback):
        # Each trial gets a deep copy of the callback; `record` is a function, which
        # deepcopy shares, so every copy appends to the same list.
        def __init__(self, record):
            super().__init__()
            self.record = record

        def on_train_begin(self, logs=None):
            self.start = time.perf_counter()

        def on_train_end(self, logs=None):
            self.record(time.perf_counter() - self.start, self.model.count_params())

    populate_space = NetworkMorphismOracle.populate_space

    def timed(oracle, trial_id):
        start = time.perf_counter()
        try:
            return populate_space(oracle, trial_id)
        finally:
            proposals.append(time.perf_counter() - start)

    NetworkMorphismOracle.populate_space = timed
    try:
        x, y = quadrant_images(images, seed)
        x_val, y_val = quadrant_images(images // 3, seed + 1000)
        first = generators.initial_graphs((8, 8, 1), 3)[0]
        clf = kerasnas.ImageClassifier(
            directory=directory, project_name=PROJECT, seed=seed, max_trials=trials, verbose=0,
            max_model_size=4 * first.num_params(),
        )  # fmt: skip
        clf.fit(x, y, validation_data=(x_val, y_val), epochs=epochs, callbacks=[Recorder(record)])
    finally:
        NetworkMorphismOracle.populate_space = populate_space
    return records


PROJECT = "soak"  # the search's folder in the run directory
RECORDS = "soak_records.jsonl"  # what each process of a chain appends, in the run directory


def soak_in_segments(trials, directory, seed, images, trials_per_process):
    """The search of `soak` as a chain of processes; returns every process's records."""
    from kerasnas import segments

    def command(until):
        script = os.path.abspath(__file__)
        return [sys.executable, script, "--segment", directory, "--trials", str(trials),
                "--seed", str(seed), "--images", str(images)]  # fmt: skip

    project_dir = os.path.join(directory, PROJECT)
    status = segments.run_in_segments(command, project_dir, trials_per_process, max_trials=trials)
    if status:
        raise SystemExit(f"soak: a process of the chain failed with status {status}")
    with open(os.path.join(directory, RECORDS)) as f:
        return [json.loads(line) for line in f]


def segment(trials, directory, seed, images):
    """One process of a chain: resumes the search of `trials` trials for as many as the
    chain allows (`kerasnas.segments.PROCESS_TRIALS`), and appends their records."""
    from kerasnas import segments

    first = segments.trials_created(os.path.join(directory, PROJECT)) + 1
    records = soak(trials, directory, seed, images, first_trial=first)
    with open(os.path.join(directory, RECORDS), "a") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)


def at(records, trial):
    """The record of `trial` with the median training time of the `WINDOW` up to it."""
    upto = [r for r in records if trial - WINDOW < r["trial"] <= trial]
    return {**upto[-1], "train_seconds": statistics.median(r["train_seconds"] for r in upto)}


def verdicts(records, since=FROM_TRIAL):
    """`[(what, start, end, allowed growth, held)]` from trial `since` to the last one."""
    start, end = at(records, since), at(records, records[-1]["trial"])
    memory = max(0.10 * start["rss_mb"], 100.0)
    train = 0.20 * start["train_seconds"]
    found = []
    for name, allowed in (("rss_mb", memory), ("fds", 0), ("threads", 0), ("train_seconds", train)):
        found.append((name, start[name], end[name], allowed, end[name] - start[name] <= allowed))
    return found


def plot(records, path):
    """Four panels against the trial: memory, descriptors and threads, training and
    proposal seconds, parameters."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trials = [r["trial"] for r in records]
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharex=True)
    axes[0, 0].plot(trials, [r["rss_mb"] for r in records])
    axes[0, 0].set_ylabel("resident memory (MB)")
    axes[0, 1].plot(trials, [r["fds"] for r in records], label="file descriptors")
    axes[0, 1].plot(trials, [r["threads"] for r in records], label="threads")
    axes[0, 1].legend()
    axes[1, 0].plot(trials, [r["train_seconds"] for r in records], ".", label="training")
    proposed = [(r["trial"], r["proposal_seconds"]) for r in records if r["proposal_seconds"]]
    if proposed:
        axes[1, 0].plot(*zip(*proposed), ".", label="proposal")
    axes[1, 0].set_ylabel("seconds per trial")
    axes[1, 0].legend()
    axes[1, 1].plot(trials, [r["params"] for r in records], ".")
    axes[1, 1].set_ylabel("parameters")
    for ax in axes[1]:
        ax.set_xlabel("trial")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--output", default=os.path.join(os.path.dirname(__file__), "results"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--images", type=int, default=300, help="training images")
    parser.add_argument("--trials-per-process", type=int, default=None, metavar="K")
    parser.add_argument("--segment", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.segment:
        return segment(args.trials, args.segment, args.seed, args.images)
    if args.trials <= FROM_TRIAL:
        parser.error(f"Expected --trials above {FROM_TRIAL}. Received: --trials {args.trials}")

    os.makedirs(args.output, exist_ok=True)
    with tempfile.TemporaryDirectory() as directory:
        started = time.perf_counter()
        if args.trials_per_process:
            records = soak_in_segments(
                args.trials, directory, args.seed, args.images, args.trials_per_process
            )
        else:
            records = soak(args.trials, directory, args.seed, args.images)
        wall = time.perf_counter() - started
    with open(os.path.join(args.output, "soak.json"), "w") as f:
        json.dump({"trials": args.trials, "seed": args.seed, "wall_seconds": wall,
                   "trials_per_process": args.trials_per_process,
                   "records": records}, f, indent=1)  # fmt: skip
    plot(records, os.path.join(args.output, "soak.png"))

    processes = len({r["process"] for r in records})
    peak = max(r["rss_mb"] for r in records)
    print(f"{len(records)} trials in {wall:.0f} s, {processes} process(es); the largest "
          f"resident memory after any trial: {peak:,.0f} MB")  # fmt: skip
    print("| trial | resident MB | file descriptors | threads | training s (median of 10) "
          "| proposal s | parameters |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for mark in [m for m in MARKS if m <= len(records)] or [len(records)]:
        r = at(records, mark)
        proposal = f"{r['proposal_seconds']:.3f}" if r["proposal_seconds"] is not None else "-"
        print(f"| {mark} | {r['rss_mb']:.0f} | {r['fds']} | {r['threads']} | "
              f"{r['train_seconds']:.2f} | {proposal} | {r['params']:,} |")  # fmt: skip
    print()
    held = True
    for name, start, end, allowed, ok in verdicts(records):
        held &= ok
        verdict = "held" if ok else "MISSED"
        print(f"{name}: {start:.2f} at trial {FROM_TRIAL}, {end:.2f} at trial {len(records)}: "
              f"grew {end - start:+.2f} (allowed {allowed:.2f}): {verdict}")  # fmt: skip
    sys.exit(0 if held else 1)


if __name__ == "__main__":
    main()
