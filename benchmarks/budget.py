"""Does the search pay for itself? kerasnas against its no-search ablation and the plain convnet.

Usage:
    python benchmarks/budget.py [--budgets 3E,5E,15E,40E]
        [--systems kerasnas,kerasnas-nosearch,kerasnas-random,cnn] [--seeds 1,2,3]
        [--dataset mnist|digits|...] [--train-size N] [--e-seconds E]
        [--searcher-args JSON] [--output DIR]

Budgets are stated in E, the seconds one epoch of the plain Keras convnet
(`common.convnet`, the `cnn` system of `benchmarks/mnist.py`: 90% of the training
images, batch 128) takes on the machine at hand, so that a budget means the same on
a laptop, a Colab GPU or a slow 2-core VM. E is timed first, in its own process: the
median of epochs 2-6 (the first traces the graph, and an epoch now and then stalls
for seconds). `--e-seconds` reuses an E timed before, so that seeds run apart share
their budgets. Any positive multiple is read (`2E`, `3E`, `0.5E`), and plain seconds
(`600`) too. A budget under 30 s is refused, whatever E: a run that short measures
fixed costs (process start, tracing, kerasnas' probe), not training.

Every seed gives every system the same data: a seeded, stratified 10% of the training
images held out for validation (the systems validate on them; none sees the test set)
and the other 90% in one seeded order. `--train-size N` first draws a seeded,
stratified subset of N training images (the same for every system of a seed; E is
timed on the first seed's); the test set stays whole.

The systems, each run in its own process, one after another:
- `kerasnas`: `ImageClassifier(seed=s).fit(x, y, validation_data=(x_val, y_val),
  time_limit=T)`.
- `kerasnas-nosearch`: the same with `searcher_args={"search": False}`: kerasnas'
  first architecture, preprocessing, schedule and finish, no other candidate.
  `--searcher-args` adds to both (e.g. `'{"overfit_ratio": null}'` switches off the
  refinement's augmentation); the rows and the table name what was added.
- `kerasnas-random`: the same with `searcher_args={"search": "random"}`: everything as
  kerasnas does, but each morphism child drawn uniformly from a pool of random jumps
  instead of chosen by the Gaussian process (not run unless named in `--systems`).
- `cnn`: the plain convnet trained until T, fed as kerasnas feeds its CNNs
  (`kerasnas.pipelines.array_dataset` with the seed: the same images in the same
  reshuffled order every epoch), validated on the held-out images. Its schedule does
  not depend on T, so it runs once per seed, for the longest budget, and a callback
  (`Snapshots`) tests it where a run of each shorter budget would have stopped, on a
  clock that leaves the snapshots' own testing out: one run gives all its rows.

Writes `DIR/results.json` (`results`: one row per run, kept across invocations
but for the runs repeated, with system, dataset, train_size, seed,
E_seconds, budget_E, time_limit, test_accuracy, wall_seconds, trials,
children_trained, best_is_descendant, params, peak_rss_mb, `machine` (where the row
ran: `common.machine()` with its hostname), for the convnet's shorter budgets
snapshot_of (the longest budget's seconds), and for kerasnas
first_params (the sized first architecture), ensemble (members, 0 for none) and
augmented_after (see `history`; null when the refinement did not augment), and
searcher_args when given),
`DIR/budget_<dataset>.png` (test accuracy against budget, log x, one line per
system through the medians, seeds as points) and prints two Markdown tables: the
runs, and every pair of systems at every budget over the seeds both ran (`stats.py`:
mean paired difference in points, its standard error, 95% t-interval and the
verdicts "not behind" and "ahead").
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import common  # this folder's shared convnet, data, memory and machine description
import stats  # this folder's paired comparisons

SYSTEMS = ("kerasnas", "kerasnas-nosearch", "kerasnas-random", "cnn")
DEFAULT_SYSTEMS = ("kerasnas", "kerasnas-nosearch", "cnn")
ABLATIONS = {"kerasnas-nosearch": False, "kerasnas-random": "random"}  # searcher_args' search
MIN_SECONDS = 30  # under it, a run measures fixed costs, not training
VALIDATION_SHARE = 0.1
BATCH_SIZE = 128  # the convnet's, as in `common.fit_convnet`


# ---------------------------------------------------------------------- the data of a seed


def stratified_pick(y, n, rng):
    """Indices (sorted) of `n` of the labels `y`, each class in its share to within one.

    Each class gets the floor of its share of `n`; the images left over go to the classes
    with the largest remainders (ties drawn by `rng`), so a class's count differs from
    `n * count / len(y)` by less than one.

    Args:
        y: int labels, (N,).
        n: how many to pick, 0 to N.
        rng: a `numpy.random.Generator`.
    """
    import numpy as np

    y = np.asarray(y)
    if not 0 <= n <= len(y):
        raise ValueError(f"Expected `n` between 0 and {len(y)} (the labels). Received: n={n}")
    classes, counts = np.unique(y, return_counts=True)
    share = counts * n / len(y)  # (C,)
    take = np.floor(share).astype(int)
    left = n - int(take.sum())
    ties = rng.random(len(classes))
    order = np.lexsort((ties, -(share - take)))  # largest remainder first
    take[order[:left]] += 1
    picked = [rng.choice(np.flatnonzero(y == c), k, replace=False) for c, k in zip(classes, take)]
    return np.sort(np.concatenate(picked)).astype(int)


def seed_data(dataset, seed, train_size=None):
    """What seed `seed` gives every system: `(x, y), (x_val, y_val), (x_test, y_test)`.

    The training images (a stratified subset of `train_size` if given) lose a stratified
    10% to validation; the rest come in a seeded order. All draws depend on `seed` alone.

    Args:
        dataset: a name in `common.DATASETS`.
        seed: the run's seed.
        train_size: how many training images to keep. Defaults to None (all).

    Raises:
        ValueError: if `train_size` leaves no validation image of some class, or exceeds
            the training images.
    """
    import numpy as np

    (x, y), test = common.load_dataset(dataset)
    y = np.asarray(y)
    if train_size is not None:
        classes = len(np.unique(y))
        low = math.ceil(classes / VALIDATION_SHARE)
        if not low <= train_size <= len(y):
            raise ValueError(
                f"Expected `--train-size` between {low} (a validation image per class) and "
                f"{len(y)} ({dataset}'s training images). Received: --train-size {train_size}"
            )
        keep = stratified_pick(y, train_size, np.random.default_rng([seed, 1]))
        x, y = x[keep], y[keep]
    rng = np.random.default_rng([seed, 2])
    held = stratified_pick(y, int(round(len(y) * VALIDATION_SHARE)), rng)
    rest = rng.permutation(np.setdiff1d(np.arange(len(y)), held))
    return (x[rest], y[rest]), (x[held], y[held]), test


def check_budgets(budgets, e_seconds):
    """`[(budget_E, seconds)]` of the texts `budgets`, refusing any under `MIN_SECONDS`.

    Raises:
        ValueError: naming the budgets under 30 s and the smallest multiple of E allowed.
    """
    parsed = [parse_budget(text, e_seconds) for text in budgets]
    short = [
        f"{text.strip()} = {t:.1f} s" for text, (_, t) in zip(budgets, parsed) if t < MIN_SECONDS
    ]
    if short:
        raise ValueError(
            f"Expected budgets of at least {MIN_SECONDS} s: a shorter run measures fixed "
            f"costs, not training. Received: {', '.join(short)} (E = {e_seconds:.2f} s); "
            f"use {math.ceil(MIN_SECONDS / e_seconds)}E or more."
        )
    return parsed


# ---------------------------------------------------------------------- one run, in its process


def time_epoch(dataset, seed, train_size=None):
    """E: the median seconds of the convnet's epochs 2-6 (the first also traces the graph;
    the median, because an epoch stalls now and then for seconds: Keras' tf.data iterator
    waits on its autotuning thread, see `kerasnas.pipelines`). On the first seed's
    training images (its subset, with `train_size`), 90% of them trained on."""
    import keras
    import numpy as np

    from kerasnas.callbacks import EpochTimer

    (x, y), (x_val, y_val), _ = seed_data(dataset, seed, train_size)
    keras.utils.set_random_seed(seed)
    timer = EpochTimer()
    common.fit_convnet(np.concatenate([x, x_val]), np.concatenate([y, y_val]), [timer], epochs=6)
    return {
        "E_seconds": round(statistics.median(timer.epoch_seconds[1:]), 2),
        "E_epochs": [round(s, 2) for s in timer.epoch_seconds],
        "machine": common.machine(hostname=platform.node()),
    }


class PausedClock:
    """`time.time()` less the time spent between `pause()` and `resume()`."""

    def __init__(self):
        self.paused_seconds = 0.0
        self._since = None

    def __call__(self):
        return time.time() - self.paused_seconds

    def pause(self):
        self._since = time.time()

    def resume(self):
        self.paused_seconds += time.time() - self._since


def snapshots_callback(deadlines, x_test, y_test, clock):
    """A Keras callback testing the model wherever a run to each of `deadlines` would stop.

    For each deadline it keeps a `kerasnas.callbacks.TimeBudget` that watches the same
    batches as the run's own, on `clock`, but stops nothing: when that TimeBudget would
    stop training (one more batch and the epoch's tail would pass its deadline), the model
    as it stands is what a run to that deadline ends with. It is tested then, with `clock`
    paused, so that testing costs the later deadlines nothing. Place it before the run's
    TimeBudget. Each record: `{"deadline", "at", "test_accuracy"}` in `.records`.
    """
    import types

    import keras
    import numpy as np

    from kerasnas.callbacks import TimeBudget

    class Snapshots(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.records = []
            self.watchers = []
            for deadline in sorted(deadlines):
                watcher = TimeBudget(deadline, clock=clock)
                watcher.set_model(types.SimpleNamespace(stop_training=False))  # stops nothing
                watcher.on_train_begin(logs)
                self.watchers.append(watcher)

        def _after(self, event, *args):
            for watcher in self.watchers:
                getattr(watcher, event)(*args)
                if watcher.stopped and watcher.deadline not in [
                    r["deadline"] for r in self.records
                ]:
                    clock.pause()
                    labels = common.labels_of(self.model)(x_test)
                    accuracy = float(np.mean(np.asarray(labels) == y_test))
                    clock.resume()
                    self.records.append(
                        {"deadline": watcher.deadline, "at": clock(), "test_accuracy": accuracy}
                    )

        def on_epoch_begin(self, epoch, logs=None):
            self._after("on_epoch_begin", epoch, logs)

        def on_train_batch_end(self, batch, logs=None):
            self._after("on_train_batch_end", batch, logs)

        def on_epoch_end(self, epoch, logs=None):
            self._after("on_epoch_end", epoch, logs)

    return Snapshots()


def run_cnn(data, seed, time_limits, cosine=False):
    """The convnet trained once to the longest of `time_limits`, tested at each: one row each.

    With `cosine`, its learning rate is annealed towards the longest limit
    (`kerasnas.callbacks.TimeCosineDecay`), as kerasnas anneals a trial's.
    """
    import keras
    import numpy as np

    from kerasnas.callbacks import TimeBudget, TimeCosineDecay
    from kerasnas.pipelines import array_dataset

    (x, y), (x_val, y_val), (x_test, y_test) = data
    keras.utils.set_random_seed(seed)
    clock = PausedClock()
    start = clock()
    limits = sorted(time_limits)
    model = common.convnet(x.shape[1:], int(max(y.max(), y_val.max())) + 1)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    # kerasnas' own feed, with the seed kerasnas' search shuffles with: the same order.
    train = array_dataset(common.scaled(x), y, batch_size=BATCH_SIZE, shuffle=True, seed=seed)
    snapshots = snapshots_callback([start + t for t in limits[:-1]], x_test, y_test, clock)
    model.fit(
        train,
        validation_data=(common.scaled(x_val), y_val),
        epochs=100_000,
        shuffle=False,  # the Dataset reshuffles itself
        callbacks=[
            snapshots,
            *([TimeCosineDecay(start + limits[-1], clock=clock)] if cosine else []),
            TimeBudget(start + limits[-1], clock=clock),
        ],
        verbose=0,
    )
    wall = clock() - start
    labels = common.labels_of(model)(x_test)
    last = {"time_limit": limits[-1], "test_accuracy": float(np.mean(labels == y_test)),
            "wall_seconds": round(wall, 1)}  # fmt: skip
    found = {r["deadline"]: r for r in snapshots.records}
    rows = []
    for t in limits[:-1]:
        record = found.get(start + t)
        if record is None:  # training ended before this mark (it cannot, but say so)
            rows.append({"time_limit": t, "error": "no snapshot: training stopped before"})
            continue
        rows.append({"time_limit": t, "test_accuracy": record["test_accuracy"],
                     "wall_seconds": round(record["at"] - start, 1),
                     "snapshot_of": limits[-1]})  # fmt: skip
    extra = {"trials": 1, "children_trained": 0, "best_is_descendant": False,
             "params": int(model.count_params()), "peak_rss_mb": common.peak_rss_mb(),
             "machine": common.machine(hostname=platform.node())}  # fmt: skip
    return {"runs": [{**r, **extra} for r in [*rows, last]]}


def fit_kerasnas(data, seed, time_limit, searcher_args=None, prefix="budget_"):
    """An `ImageClassifier(seed=seed)` fitted on `seed_data`'s `data` within `time_limit`.

    Returns:
        `(clf, wall_seconds, test_accuracy)`.
    """
    import keras
    import numpy as np

    import kerasnas

    (x_train, y_train), validation, (x_test, y_test) = data
    keras.utils.set_random_seed(seed)
    clf = kerasnas.ImageClassifier(
        directory=tempfile.mkdtemp(prefix=prefix), seed=seed, verbose=False,
        searcher_args=dict(searcher_args or {}),
    )  # fmt: skip
    start = time.time()
    clf.fit(x_train, y_train, validation_data=validation, time_limit=time_limit)
    wall = time.time() - start
    return clf, wall, float(np.mean(np.asarray(clf.predict(x_test)) == y_test))


def run_system(system, data, seed, time_limit, searcher_args=None):
    from kerasnas import trials

    searcher_args = dict(searcher_args or {})
    if system in ABLATIONS:
        searcher_args["search"] = ABLATIONS[system]
    clf, wall, accuracy = fit_kerasnas(data, seed, time_limit, searcher_args, f"budget_{system}_")
    oracle = clf.tuner_.oracle
    done = [t for t in oracle.trials.values() if t.status == "COMPLETED"]
    best = oracle.get_best_trials(1)[0]
    first = oracle.trials[min(oracle.trials, key=int)]
    augmented = [trials.metric(t, trials.AUGMENTED_AFTER) for t in done]
    augmented = [a for a in augmented if a is not None]
    return {
        "test_accuracy": accuracy,
        "wall_seconds": round(wall, 1),
        "params": int(clf.model_.count_params()),
        "peak_rss_mb": common.peak_rss_mb(),
        "trials": len(oracle.trials),
        "children_trained": sum(
            1 for t in done if trials.parent_of(t) and not trials.is_refinement(t)
        ),
        "best_is_descendant": bool(trials.graph_of(best).history),
        "first_params": trials.graph_of(first).num_params(),
        "ensemble": len(clf.ensemble_),
        # After which epoch the refinement turned to augmented images (None: it did not).
        "augmented_after": augmented[0] if augmented else None,
        "machine": common.machine(hostname=platform.node()),
    }


# ---------------------------------------------------------------------- the comparison


def in_process(arguments):
    """Runs this script with `arguments` in a fresh process; returns the JSON it wrote."""
    path = os.path.join(tempfile.mkdtemp(), "row.json")
    command = [sys.executable, os.path.abspath(__file__), *arguments, "--row", path]
    done = subprocess.run(command)
    if done.returncode != 0 or not os.path.exists(path):
        return {"error": f"exit status {done.returncode}"}
    with open(path) as f:
        return json.load(f)


def parse_budget(text, e_seconds):
    """`(budget_E, seconds)` from `15E` or `600`."""
    text = text.strip()
    if text.upper().endswith("E"):
        multiple = float(text[:-1])
        return multiple, multiple * e_seconds
    seconds = float(text)
    return seconds / e_seconds, seconds


def label(row):
    """The row's system, with the searcher_args it ran with, if any."""
    extra = row.get("searcher_args")
    return row["system"] + (f" {json.dumps(extra, sort_keys=True)}" if extra else "")


def dataset_name(row):
    """The row's dataset, with its training subset if any: `mnist` or `mnist[6000]`."""
    size = row.get("train_size")
    return row["dataset"] + (f"[{size}]" if size else "")


def stats_table(rows):
    """The paired comparisons of `rows` (`stats.compare`) as a Markdown table, and notes."""
    order = sorted({label(r) for r in rows}, key=lambda t: (SYSTEMS.index(t.split()[0]), t))
    found, notes = stats.compare(rows, label, order)
    header = ("dataset", "budget", "machine", "pair (A vs B)", "n pairs", "mean diff",
              "SE", "95% interval", "margin", "not behind", "ahead")  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    number = lambda v: "-" if math.isnan(v) else f"{v:+.3f}"  # noqa: E731
    for c in found:
        interval = "-" if math.isnan(c["low"]) else f"[{c['low']:+.3f}, {c['high']:+.3f}]"
        se = "-" if math.isnan(c["se"]) else f"{c['se']:.3f}"
        margin = "-" if c["margin"] is None else f"{c['margin']:+g}"
        size = f"[{c['train_size']}]" if c["train_size"] else ""
        lines.append(
            f"| {c['dataset']}{size} | {c['budget_E']:g}E | {c['host'] or '?'}, "
            f"E = {c['E_seconds']} s | {c['a']} vs {c['b']} | {c['n']} | {number(c['mean'])} | "
            f"{se} | {interval} | {margin} | {c['not_behind']} | {c['ahead']} |"
        )
    return "\n".join(lines + [""] + [f"- {n}" for n in notes] if notes else lines)


def table(rows):
    header = (
        "dataset", "budget", "T s", "system", "seed", "test acc", "wall s", "over T",
        "trials", "children", "best is child", "ensemble", "params", "peak MB",
    )  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for r in rows:
        budget = f"{r['budget_E']:g}E" + (" (snapshot)" if r.get("snapshot_of") else "")
        head = f"| {dataset_name(r)} | {budget} | {r['time_limit']:.0f} | {label(r)} "
        if "error" in r:
            lines.append(head + f"| {r['seed']} | failed: {r['error']} |")
            continue
        lines.append(
            head + f"| {r['seed']} | {r['test_accuracy']:.4f} | {r['wall_seconds']:.0f} | "
            f"{r['wall_seconds'] - r['time_limit']:+.1f} | {r['trials']} | "
            f"{r['children_trained']} | {'yes' if r['best_is_descendant'] else 'no'} | "
            f"{r.get('ensemble', 0) or '-'} | {r['params']:,} | {r['peak_rss_mb']:.0f} |"
        )
    return "\n".join(lines)


def medians(rows):
    """`{(system label, budget_E): median test accuracy}` over seeds."""
    groups = {}
    for r in rows:
        if "error" not in r:
            groups.setdefault((label(r), r["budget_E"]), []).append(r["test_accuracy"])
    return {key: statistics.median(values) for key, values in groups.items()}


def plot(rows, dataset, e_seconds, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    middle = medians(rows)
    ran = [r for r in rows if "error" not in r]
    labels = sorted({label(r) for r in ran}, key=lambda t: (SYSTEMS.index(t.split()[0]), t))
    for i, system in enumerate(labels):
        ok = [r for r in ran if label(r) == system]
        budgets = sorted({r["budget_E"] for r in ok})
        ax.plot(budgets, [middle[system, b] for b in budgets], marker="o", color=f"C{i}",
                label=system)  # fmt: skip
        ax.scatter([r["budget_E"] for r in ok], [r["test_accuracy"] for r in ok],
                   color=f"C{i}", alpha=0.4, s=14)  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel(f"budget in E (one convnet epoch = {e_seconds:.1f} s here)")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"{dataset}: accuracy against budget (lines: medians; points: seeds)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def json_object(text):
    """`--searcher-args`: a JSON object, else an argparse error."""
    try:
        found = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not JSON: {e}") from e
    if not isinstance(found, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object; got {text}")
    return found


def host_of(row):
    return (row.get("machine") or {}).get("hostname")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--budgets",
        default="5E,15E,40E",
        help="multiples of E (2E, 3E, 40E) or seconds, each at least 30 s",
    )
    parser.add_argument("--systems", default=",".join(DEFAULT_SYSTEMS))
    parser.add_argument("--seeds", default="1,2")
    parser.add_argument("--dataset", default="mnist", choices=common.DATASETS)
    parser.add_argument(
        "--train-size",
        type=int,
        help="train on a seeded, stratified subset of this many training images",
    )
    parser.add_argument(
        "--output", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
    )
    parser.add_argument("--e-seconds", type=float, help="use this E instead of timing it")
    parser.add_argument(
        "--searcher-args",
        type=json_object,
        default={},
        help="JSON: searcher_args for the kerasnas systems, e.g. '{\"overfit_ratio\": null}'",
    )
    parser.add_argument("--time-epoch", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--run", help=argparse.SUPPRESS)  # internal: one system, here
    parser.add_argument("--time-limits", help=argparse.SUPPRESS)  # seconds, comma-separated
    parser.add_argument("--row", help=argparse.SUPPRESS)
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    if args.time_epoch or args.run:
        if args.time_epoch:
            row = time_epoch(args.dataset, seeds[0], args.train_size)
        else:
            data = seed_data(args.dataset, seeds[0], args.train_size)
            limits = [float(t) for t in args.time_limits.split(",")]
            if args.run == "cnn":
                row = run_cnn(data, seeds[0], limits)
            else:
                row = run_system(args.run, data, seeds[0], limits[0], args.searcher_args)
        with open(args.row, "w") as f:
            json.dump(row, f)
        return

    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = sorted(set(systems) - set(SYSTEMS))
    if unknown:
        parser.error(f"unknown systems {unknown}; expected some of {','.join(SYSTEMS)}")
    texts = [t for t in args.budgets.split(",") if t.strip()]
    if args.e_seconds:
        e_seconds = args.e_seconds
    else:
        common_args = ["--dataset", args.dataset, "--seeds", str(seeds[0])]
        if args.train_size:
            common_args += ["--train-size", str(args.train_size)]
        timed = in_process(["--time-epoch", *common_args])
        if "error" in timed:
            parser.exit(1, f"timing E failed: {timed['error']}\n")
        e_seconds = timed["E_seconds"]
        print(f"epochs of the plain convnet: {timed['E_epochs']} s", flush=True)
    try:
        budgets = sorted(check_budgets(texts, e_seconds), key=lambda b: b[1])
    except ValueError as e:
        parser.error(str(e))
    os.makedirs(args.output, exist_ok=True)
    subset = f", a subset of {args.train_size} training images" if args.train_size else ""
    print(f"E = {e_seconds:.2f} s (one epoch of the plain convnet on {args.dataset}{subset})",
          flush=True)  # fmt: skip
    here = {"hostname": platform.node()}
    rows = []
    for budget_e, time_limit in budgets:
        for seed in seeds:
            for system in systems:
                if system == "cnn" and time_limit != budgets[-1][1]:
                    continue  # it runs once, at the longest budget, for every budget
                limits = [t for _, t in budgets] if system == "cnn" else [time_limit]
                print(f"== {args.dataset} {budget_e:g}E = {time_limit:.0f} s, {system}, "
                      f"seed {seed}" + (" (and snapshots at the shorter budgets)"
                                        if len(limits) > 1 else ""), flush=True)  # fmt: skip
                searched = system != "cnn" and args.searcher_args
                found = in_process(
                    ["--run", system, "--dataset", args.dataset, "--seeds", str(seed),
                     "--time-limits", ",".join(map(str, limits)),
                     "--searcher-args", json.dumps(args.searcher_args),
                     *(["--train-size", str(args.train_size)] if args.train_size else [])]
                )  # fmt: skip
                runs = found.get("runs") or [{"time_limit": t, **found} for t in limits]
                for run in runs:
                    run = {"time_limit": time_limit, **run}
                    budget = {t: b for b, t in budgets}[run["time_limit"]]
                    rows.append(
                        {"system": system, "dataset": args.dataset,
                         "train_size": args.train_size, "seed": seed, "E_seconds": e_seconds,
                         "budget_E": budget, "machine": here,
                         **({"searcher_args": args.searcher_args} if searched else {}), **run}
                    )  # fmt: skip
                    print(table(rows[-1:]).splitlines()[-1], flush=True)
    path = os.path.join(args.output, "results.json")
    rows_all = rows
    key = lambda r: (r["dataset"], r.get("train_size"), r["budget_E"], r["seed"], label(r),
                     r.get("E_seconds"), host_of(r))  # noqa: E731  # fmt: skip
    if os.path.exists(path):  # keep earlier rows, but for the runs repeated now
        repeated = {key(r) for r in rows}
        with open(path) as f:
            rows_all = [r for r in json.load(f)["results"] if key(r) not in repeated] + rows
    machine = next((r["machine"] for r in reversed(rows) if "error" not in r), here)
    with open(path, "w") as f:
        json.dump({"results": rows_all, "machine": machine}, f, indent=2)
    same = [
        r for r in rows_all
        if r["dataset"] == args.dataset and r.get("train_size") == args.train_size
    ]  # fmt: skip
    name = args.dataset + (f"_{args.train_size}" if args.train_size else "")
    mine = [r for r in same if r.get("E_seconds") == e_seconds and host_of(r) == here["hostname"]]
    plot(mine, args.dataset, e_seconds, os.path.join(args.output, f"budget_{name}.png"))
    print(table(same))
    print()
    print(stats_table(same))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
