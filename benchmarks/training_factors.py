"""Where a short budget goes: kerasnas' training of one fixed network, one factor at a time.

Given the plain convnet itself as its only architecture and no search, kerasnas should
train it about as well as plain Keras does in the same time. This script measures how far
it falls short, and which of kerasnas' training choices costs what: each variant changes
one `searcher_args` knob (or `fit` argument) against kerasnas' defaults, on the data of
`budget.py`'s seed (the same split and order for every variant).

    python benchmarks/training_factors.py --dataset mnist --train-size 4000 \
        --time-limit 40 --seeds 1,2,3 --variants keras,kerasnas,kerasnas+no-augment

Variants: `keras`, `keras-cosine`, or a base with modifiers joined by `+`
(`convnet+one-trial`).
    keras: the convnet trained by plain Keras until T (`budget.py`'s `cnn`).
    keras-cosine: the same, its learning rate annealed to T (`TimeCosineDecay`).
    kerasnas (base): kerasnas' defaults, its own first architecture and search.
    convnet (base): the convnet as kerasnas' only initial graph, `search=False`.
    nosearch: `search=False`.
    no-augment: never augmenting from the first epoch (`augment_epochs=None`).
    one-trial: the first trial may take the whole budget (`refine_share=0`,
        `trial_share=1`); early stopping may still end it.
    plain: no augmentation, no overfitting switch, one trial.
    patient: the first trial is not cut short by early stopping (`patience=100`).

Each run prints one JSON line: the variant, the seed, test accuracy, wall seconds and the
trials (epochs, validation accuracy, whether augmented). Run it alone on the machine.
Its figures, and the `full-rate` modifier of its first version (1db616f), which found
that halving the refinement's rate cost up to a point, are in docs/design-notes.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import budget
import common

BASES = ("kerasnas", "convnet")
MODIFIERS = {
    "nosearch": {"search": False},
    "no-augment": {"augment_epochs": None},
    "one-trial": {"refine_share": 0.0, "trial_share": 1.0},
    "plain": {
        "augment_epochs": None,
        "overfit_ratio": None,
        "refine_share": 0.0,
        "trial_share": 1.0,
    },  # fmt: skip
    "patient": {"patience": 100},
}
KERAS = ("keras", "keras-cosine")


def check_variant(variant):
    """The variant's `(base, modifiers)`; ValueError for an unknown one."""
    if variant in KERAS:
        return variant, []
    base, *modifiers = variant.split("+")
    unknown = [m for m in modifiers if m not in MODIFIERS]
    if base not in BASES or unknown:
        raise ValueError(
            f"Unknown variant {variant!r}: expected {' or '.join(KERAS)}, or one of {BASES} "
            f"followed by +modifiers from {sorted(MODIFIERS)}"
        )
    return base, modifiers


def convnet_graph(shape, classes):
    """`common.convnet` as a kerasnas `Graph` (conv 32, pool, conv 64, pool, dropout, head)."""
    from kerasnas.graph import Graph

    graph = Graph(common.with_channels(shape), classes)
    x = graph.add_layer("conv", graph.input, filters=32, kernel_size=3)
    x = graph.add_layer("relu", x)
    x = graph.add_layer("maxpool", x, pool_size=2)
    x = graph.add_layer("conv", x, filters=64, kernel_size=3)
    x = graph.add_layer("relu", x)
    x = graph.add_layer("maxpool", x, pool_size=2)
    x = graph.add_layer("flatten", x)
    x = graph.add_layer("dropout", x, rate=0.5)
    graph.add_layer("head", x)
    return graph


def run_variant(variant, data, seed, time_limit):
    """One run of `variant` on `budget.seed_data`'s `data`: a dict for the JSON line."""
    from kerasnas import trials

    base, modifiers = check_variant(variant)
    if base in KERAS:
        row = budget.run_cnn(data, seed, [time_limit], cosine=variant == "keras-cosine")
        row = row["runs"][-1]
        return {"test_accuracy": row["test_accuracy"], "wall_seconds": row["wall_seconds"]}
    (x, y), _, _ = data
    args = {}
    for modifier in modifiers:
        args.update(MODIFIERS[modifier])
    if base == "convnet":
        args.update(search=False, initial_graphs=[convnet_graph(x.shape[1:], int(y.max()) + 1)])
    clf, wall, accuracy = budget.fit_kerasnas(data, seed, time_limit, args, "factors_")
    done = sorted(clf.tuner_.oracle.trials.values(), key=lambda t: int(t.trial_id))
    return {
        "test_accuracy": accuracy,
        "wall_seconds": round(wall, 1),
        "trials": [
            {
                "epochs": round(trials.metric(t, trials.EPOCHS) or 0, 2),
                "val_accuracy": t.score,
                "augmented_after": trials.metric(t, trials.AUGMENTED_AFTER),
                "refine": trials.is_refinement(t),
                "params": trials.graph_of(t).num_params(),
            }
            for t in done
        ],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="mnist", choices=common.DATASETS)
    parser.add_argument("--train-size", type=int, default=None)
    parser.add_argument("--time-limit", type=float, default=40.0)
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--variants", default="keras,convnet,kerasnas")
    parser.add_argument("--run", default=None, help=argparse.SUPPRESS)  # one run, in process
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    variants = args.variants.split(",")
    for variant in variants:
        try:
            check_variant(variant)
        except ValueError as e:
            parser.error(str(e))
    if args.run:
        data = budget.seed_data(args.dataset, seeds[0], args.train_size)
        row = run_variant(args.run, data, seeds[0], args.time_limit)
        print("ROW " + json.dumps(row), flush=True)
        return
    for seed in seeds:
        for variant in variants:
            command = [sys.executable, __file__, "--run", variant, "--seeds", str(seed),
                       "--dataset", args.dataset, "--time-limit", str(args.time_limit)]  # fmt: skip
            if args.train_size:
                command += ["--train-size", str(args.train_size)]
            done = subprocess.run(command, capture_output=True, text=True,
                                  env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})  # fmt: skip
            rows = [line[4:] for line in done.stdout.splitlines() if line.startswith("ROW ")]
            if not rows:
                print(json.dumps({"variant": variant, "seed": seed,
                                  "error": done.stderr[-2000:]}), flush=True)  # fmt: skip
                continue
            print(json.dumps({"variant": variant, "seed": seed, **json.loads(rows[0])}),
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
