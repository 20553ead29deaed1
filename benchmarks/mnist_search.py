"""ImageClassifier on the real MNIST: fit within a time limit, then test accuracy.

Usage: python benchmarks/mnist_search.py [--time-limit 600] [--directory DIR] [--seed 1]

Loads the 60,000/10,000 MNIST with kerasnas.datasets.load_mnist(), runs
`ImageClassifier(...).fit(x_train, y_train, time_limit=T)` and prints the test
accuracy on the 10,000 test images, the wall seconds of fit, the number of
trials and the best architecture's size.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-limit", type=float, default=600)
    parser.add_argument("--directory", default=None)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()

    import kerasnas

    (x_train, y_train), (x_test, y_test) = kerasnas.datasets.load_mnist()
    directory = args.directory or tempfile.mkdtemp(prefix="kerasnas_mnist_")
    clf = kerasnas.ImageClassifier(
        directory=directory, seed=args.seed, overwrite=True, verbose=args.verbose
    )
    start = time.time()
    clf.fit(x_train, y_train, time_limit=args.time_limit)
    wall = time.time() - start
    accuracy = clf.evaluate(x_test, y_test)
    history = clf.history
    best = history.set_index("trial_id").loc[clf.best_trial_id_]
    print(
        history[
            [
                "trial_id",
                "parent_trial_id",
                "morphisms",
                "params",
                "epochs",
                "train_seconds",
                "val_accuracy",
                "status",
            ]
        ].to_string(index=False)
    )
    print(
        f"time limit {args.time_limit:.0f} s | fit wall {wall:.1f} s "
        f"({wall - args.time_limit:+.1f} s) | trials {len(history)} | "
        f"best trial {clf.best_trial_id_}: {best['architecture']} "
        f"({best['params']:,} params, {best['flops'] / 1e6:.1f} MFLOPs) | "
        f"test accuracy {accuracy:.4f}"
    )


if __name__ == "__main__":
    main()
