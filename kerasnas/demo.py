"""The MNIST demo the README's Quickstart runs: `python -m kerasnas.demo`.

Searches architectures on the 60,000 MNIST training images within a time
limit (10 minutes by default), then prints the accuracy on the 10,000 test
images and the searched trials.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv=None):
    parser = argparse.ArgumentParser(description="Search a CNN for MNIST with kerasnas.")
    parser.add_argument("--time-limit", type=float, default=600, help="seconds (default 600)")
    parser.add_argument("--directory", default="runs/mnist", help="run directory")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    import kerasnas

    (x_train, y_train), (x_test, y_test) = kerasnas.datasets.load_mnist()
    clf = kerasnas.ImageClassifier(directory=args.directory, seed=args.seed, overwrite=True)
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
