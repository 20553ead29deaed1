"""Does the search pay for itself? kerasnas against its no-search ablation and the plain convnet.

Usage:
    python benchmarks/budget.py [--budgets 5E,15E,40E]
        [--systems kerasnas,kerasnas-nosearch,cnn] [--seeds 1,2]
        [--dataset mnist|digits] [--e-seconds E] [--searcher-args JSON] [--output DIR]

Budgets are stated in E, the seconds one epoch of the plain Keras convnet
(`common.convnet`, the `cnn` system of `benchmarks/mnist.py`: 90% of the training
images, batch 128) takes on the machine at hand, so that a budget means the same on
a laptop, a Colab GPU or a slow 2-core VM. E is timed first, in its own process: the
median of epochs 2-6 (the first traces the graph, and an epoch now and then stalls
for seconds). `--e-seconds` reuses an E timed before, so that seeds run apart share
their budgets. Plain seconds (`600`) are accepted too.

The systems, each run in its own process, one after another:
- `kerasnas`: `ImageClassifier(seed=s).fit(x, y, time_limit=T)`.
- `kerasnas-nosearch`: the same with `searcher_args={"search": False}`: kerasnas'
  first architecture, preprocessing, schedule and finish, no other candidate.
  `--searcher-args` adds to both (e.g. `'{"overfit_ratio": null}'` switches off the
  refinement's augmentation); the rows and the table name what was added.
- `cnn`: the plain convnet trained until T.

Datasets: `mnist` (the real 60,000/10,000, from `kerasnas.datasets.load_mnist`)
and `digits` (scikit-learn's bundled 8x8 digits, 1,797 images: 1,347 to train,
450 to test, split with the seed 0; `pip install scikit-learn`).

Writes `DIR/results.json` (`results`: one row per run, kept across invocations
but for the runs repeated, with system, dataset, seed,
E_seconds, budget_E, time_limit, test_accuracy, wall_seconds, trials,
children_trained, best_is_descendant, params, peak_rss_mb, and for kerasnas
first_params (the sized first architecture), ensemble (members, 0 for none) and
augmented_after (see `history`; null when the refinement did not augment), and
searcher_args when given; and the `machine`),
`DIR/budget_<dataset>.png` (test accuracy against budget, log x, one line per
system through the medians, seeds as points) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import common  # this folder's shared convnet, data, memory and machine description

SYSTEMS = ("kerasnas", "kerasnas-nosearch", "cnn")


# ---------------------------------------------------------------------- one run, in its process


def time_epoch(dataset, seed):
    """E: the median seconds of the convnet's epochs 2-6 (the first also traces the graph;
    the median, because an epoch stalls now and then for seconds: Keras' tf.data iterator
    waits on its autotuning thread, see `kerasnas.pipelines`)."""
    import keras

    from kerasnas.callbacks import EpochTimer

    (x, y), _ = common.load_dataset(dataset)
    keras.utils.set_random_seed(seed)
    timer = EpochTimer()
    common.fit_convnet(x, y, [timer], epochs=6)
    return {
        "E_seconds": round(statistics.median(timer.epoch_seconds[1:]), 2),
        "E_epochs": [round(s, 2) for s in timer.epoch_seconds],
    }


def run_system(system, dataset, seed, time_limit, searcher_args=None):
    import keras
    import numpy as np

    import kerasnas
    from kerasnas import trials
    from kerasnas.callbacks import TimeBudget

    (x_train, y_train), (x_test, y_test) = common.load_dataset(dataset)
    keras.utils.set_random_seed(seed)
    workdir = tempfile.mkdtemp(prefix=f"budget_{system}_")
    start = time.time()
    extra = {"trials": 1, "children_trained": 0, "best_is_descendant": False}
    if system == "cnn":
        model = common.fit_convnet(
            x_train, y_train, [TimeBudget(start + time_limit)], epochs=100_000
        )
        wall = time.time() - start
        predict, params = common.labels_of(model), model.count_params()
    else:
        searcher_args = dict(searcher_args or {})
        if system == "kerasnas-nosearch":
            searcher_args["search"] = False
        clf = kerasnas.ImageClassifier(
            directory=workdir, seed=seed, verbose=False, searcher_args=searcher_args
        )
        clf.fit(x_train, y_train, time_limit=time_limit)
        wall = time.time() - start
        oracle = clf.tuner_.oracle
        done = [t for t in oracle.trials.values() if t.status == "COMPLETED"]
        best = oracle.get_best_trials(1)[0]
        first = oracle.trials[min(oracle.trials, key=int)]
        augmented = [trials.metric(t, trials.AUGMENTED_AFTER) for t in done]
        augmented = [a for a in augmented if a is not None]
        extra = {
            "trials": len(oracle.trials),
            "children_trained": sum(
                1 for t in done if trials.parent_of(t) and not trials.is_refinement(t)
            ),
            "best_is_descendant": bool(trials.graph_of(best).history),
            "first_params": trials.graph_of(first).num_params(),
            "ensemble": len(clf.ensemble_),
            # After which epoch the refinement turned to augmented images (None: it did not).
            "augmented_after": augmented[0] if augmented else None,
        }
        predict, params = clf.predict, clf.model_.count_params()
    return {
        "test_accuracy": float(np.mean(np.asarray(predict(x_test)) == y_test)),
        "wall_seconds": round(wall, 1),
        "params": int(params),
        "peak_rss_mb": common.peak_rss_mb(),
        **extra,
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


def table(rows):
    header = (
        "dataset", "budget", "T s", "system", "seed", "test acc", "wall s", "over T",
        "trials", "children", "best is child", "ensemble", "params", "peak MB",
    )  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for r in rows:
        head = f"| {r['dataset']} | {r['budget_E']:.0f}E | {r['time_limit']:.0f} | {label(r)} "
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", default="5E,15E,40E")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--seeds", default="1,2")
    parser.add_argument("--dataset", default="mnist", choices=common.DATASETS)
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
    parser.add_argument("--time-limit", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--row", help=argparse.SUPPRESS)
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    if args.time_epoch or args.run:
        if args.time_epoch:
            row = time_epoch(args.dataset, seeds[0])
        else:
            row = run_system(args.run, args.dataset, seeds[0], args.time_limit, args.searcher_args)
        with open(args.row, "w") as f:
            json.dump(row, f)
        return

    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = sorted(set(systems) - set(SYSTEMS))
    if unknown:
        parser.error(f"unknown systems {unknown}; expected some of {','.join(SYSTEMS)}")
    os.makedirs(args.output, exist_ok=True)
    if args.e_seconds:
        e_seconds = args.e_seconds
    else:
        timed = in_process(["--time-epoch", "--dataset", args.dataset, "--seeds", str(seeds[0])])
        if "error" in timed:
            parser.exit(1, f"timing E failed: {timed['error']}\n")
        e_seconds = timed["E_seconds"]
        print(f"epochs of the plain convnet: {timed['E_epochs']} s", flush=True)
    print(f"E = {e_seconds:.2f} s (one epoch of the plain convnet on {args.dataset})", flush=True)
    rows = []
    for text in args.budgets.split(","):
        budget_e, time_limit = parse_budget(text, e_seconds)
        for seed in seeds:
            for system in systems:
                print(f"== {args.dataset} {budget_e:g}E = {time_limit:.0f} s, {system}, "
                      f"seed {seed}", flush=True)  # fmt: skip
                searched = system != "cnn" and args.searcher_args
                row = in_process(
                    ["--run", system, "--dataset", args.dataset, "--seeds", str(seed),
                     "--time-limit", str(time_limit),
                     "--searcher-args", json.dumps(args.searcher_args)]
                )  # fmt: skip
                rows.append(
                    {"system": system, "dataset": args.dataset, "seed": seed,
                     "E_seconds": e_seconds, "budget_E": budget_e, "time_limit": time_limit,
                     **({"searcher_args": args.searcher_args} if searched else {}), **row}
                )  # fmt: skip
                print(table(rows[-1:]).splitlines()[-1], flush=True)
    path = os.path.join(args.output, "results.json")
    rows_all = rows
    if os.path.exists(path):  # keep earlier rows, but for the runs repeated now
        key = lambda r: (r["dataset"], r["budget_E"], r["seed"], label(r))  # noqa: E731
        repeated = {key(r) for r in rows}
        with open(path) as f:
            rows_all = [r for r in json.load(f)["results"] if key(r) not in repeated] + rows
    with open(path, "w") as f:
        json.dump({"results": rows_all, "machine": common.machine()}, f, indent=2)
    same = [r for r in rows_all if r["dataset"] == args.dataset]
    plot(same, args.dataset, e_seconds, os.path.join(args.output, f"budget_{args.dataset}.png"))
    print(table(same))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
