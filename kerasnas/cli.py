"""The `kerasnas` command: fit, predict, export, report and demo from a shell."""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import traceback

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


class UsageError(Exception):
    """A mistake in what the user typed or pointed at: one line, exit status 2."""


def parse_duration(text):
    """Seconds in `text`: `90`, `90s`, `10m`, `2h` or `1h30m`."""
    match = re.fullmatch(
        r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*"
        r"(?:(\d+(?:\.\d+)?)s?)?\s*",
        text,
    )
    if not text.strip() or not match or not any(match.groups()):
        raise argparse.ArgumentTypeError(
            f"expected a duration such as 600, 10m or 1h30m; got {text!r}"
        )
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def load_data(path, grayscale=False, image_size=None):
    """`(x, y)` from an `.npz` holding `x` and `y`, or `(folder, None)` for a folder of one
    subfolder per class (read by kerasnas itself, streamed when large)."""
    import numpy as np

    if not os.path.exists(path):
        raise UsageError(f"no such file or folder: {path}")
    if os.path.isfile(path):
        if not path.endswith(".npz"):
            raise UsageError(f"expected a folder of class subfolders or an .npz file; got {path}")
        try:
            with np.load(path, allow_pickle=False) as data:
                if "x" not in data or "y" not in data:
                    raise UsageError(
                        f"{path} must hold arrays named 'x' and 'y'; it holds {sorted(data.files)}"
                    )
                x, y = data["x"], data["y"]
        except (OSError, ValueError) as e:
            raise UsageError(f"cannot read {path}: {e}") from None
        if grayscale and x.ndim == 4 and x.shape[-1] in (3, 4):
            x = np.round(x[..., :3] @ np.array([0.2989, 0.587, 0.114])).astype(x.dtype)
        return x, y
    from kerasnas.tasks import data

    files, _, _ = data.list_folder(path, "DATA")  # ValueError: one line, status 2
    if grayscale:
        return _grayscale_folder(path, files, image_size), None
    return path, None


def _grayscale_folder(path, files, image_size):
    """The folder read in grayscale: a Dataset of (image, class name)."""
    from kerasnas.tasks import data

    sizes, _ = data.scan_images(files)  # names an unreadable file
    size = tuple(image_size) if image_size else data.folder_size(sizes)
    _, labels, _ = data.list_folder(path, "DATA")
    return data.folder_stream(files, labels, size, 1)()


def parse_size(text):
    """`(height, width)` from `32`, `32x32` or `32,48`."""
    match = re.fullmatch(r"\s*(\d+)\s*(?:[x,]\s*(\d+))?\s*", text)
    if not match or int(match.group(1)) < 1 or (match.group(2) and int(match.group(2)) < 1):
        raise argparse.ArgumentTypeError(
            f"expected an image size such as 32 or 32x48 (height x width); got {text!r}"
        )
    height = int(match.group(1))
    return height, int(match.group(2) or height)


def _verbosity(args):
    return 0 if args.quiet else (2 if args.verbose else 1)


def _fit(args):
    import kerasnas

    x, y = load_data(args.data, grayscale=args.grayscale, image_size=args.image_size)
    clf = kerasnas.ImageClassifier(
        directory=args.directory,
        project_name="search",
        overwrite=args.overwrite,
        seed=args.seed,
        max_trials=args.max_trials,
        resize_shape=args.image_size,
        verbose=_verbosity(args),
    )
    clf.fit(x, y, time_limit=args.time_limit)
    best = clf.history.set_index("trial_id").loc[clf.best_trial_id_]
    print(
        f"best trial {clf.best_trial_id_}: validation accuracy {best['val_accuracy']:.4f} "
        f"({best['params']:,} parameters)"
    )


def _load(directory):
    import kerasnas

    return kerasnas.load(directory)


def _predict(args):
    import numpy as np

    from kerasnas import pipelines
    from kerasnas.tasks import data

    clf = _load(args.directory)
    shape = clf.input_shape_
    channels = 1 if len(shape) == 2 else shape[-1]
    paths = []
    for path in args.images:  # a folder stands for the images in it
        if os.path.isdir(path):
            paths += data.list_folder(path, "IMAGE", need_classes=False)[0]
        elif not os.path.isfile(path):
            raise UsageError(f"no such file or folder: {path}")
        else:
            paths.append(path)
    data.scan_images(paths)  # names an unreadable file
    # Read as `fit` read its folder: same size, channels and resizing.
    stream = data.folder_stream(paths, None, tuple(shape[:2]), channels)()
    images = np.concatenate(list(pipelines.untuned(stream.batch(256)).as_numpy_iterator()))
    images = images.reshape((-1, *shape)).astype(clf.input_dtype_)
    probabilities = clf.predict_proba(images)
    for path, row in zip(paths, probabilities):
        print(f"{path}\t{clf.classes_[row.argmax()]}\t{row.max():.4f}")


def _export(args):
    clf = _load(args.directory)
    clf.export(args.out)
    print(f"SavedModel written to {args.out} (class names in kerasnas_labels.json)")


def _report(args):
    import kerasnas

    clf = _load(args.directory)
    out = args.out or os.path.join(args.directory, "report")
    os.makedirs(out, exist_ok=True)
    clf.history.to_csv(os.path.join(out, "history.csv"), index=False)
    kerasnas.plot_search(clf.project_dir).savefig(os.path.join(out, "search.png"), dpi=120)
    try:
        kerasnas.visualize(clf.project_dir, os.path.join(out, "architectures"))
    except RuntimeError as e:  # no Graphviz: the rest of the report still stands
        print(f"kerasnas: skipping diagrams: {e}", file=sys.stderr)
    print(clf.history.to_string(index=False))
    print(f"report written to {out}")


def _demo(args):
    from kerasnas import demo

    argv = ["--time-limit", str(args.time_limit), "--dataset", args.dataset]
    demo.main(argv + (["--directory", args.directory] if args.directory else []))


def build_parser():
    parser = argparse.ArgumentParser(
        prog="kerasnas", description="Neural architecture search for Keras."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    fit = commands.add_parser("fit", help="search an image classifier")
    fit.add_argument("data", help="folder of class subfolders, or .npz with x and y")
    fit.add_argument(
        "--time-limit", type=parse_duration, default=600.0, help="e.g. 600, 10m, 1h (default 10m)"
    )
    fit.add_argument("--directory", required=True, help="run directory")
    fit.add_argument("--max-trials", type=int, default=None)
    fit.add_argument("--seed", type=int, default=None)
    fit.add_argument("--grayscale", action="store_true", help="read images as grayscale")
    fit.add_argument(
        "--image-size",
        type=parse_size,
        default=None,
        help="resize images to HxW, e.g. 32 or 32x48 (default: a folder's most common size)",
    )
    loud = fit.add_mutually_exclusive_group()
    loud.add_argument("-q", "--quiet", action="store_true", help="print only the result")
    loud.add_argument("-v", "--verbose", action="store_true", help="also a line per epoch")
    fit.add_argument("--overwrite", action="store_true", help="start afresh")
    fit.set_defaults(run=_fit)

    predict = commands.add_parser("predict", help="label images with a finished search")
    predict.add_argument("directory")
    predict.add_argument("images", nargs="+")
    predict.set_defaults(run=_predict)

    export = commands.add_parser("export", help="write a TensorFlow SavedModel for serving")
    export.add_argument("directory")
    export.add_argument("out")
    export.set_defaults(run=_export)

    report = commands.add_parser("report", help="history table, diagrams and search plot")
    report.add_argument("directory")
    report.add_argument("--out", default=None, help="default: DIRECTORY/report")
    report.set_defaults(run=_report)

    demo = commands.add_parser("demo", help="the MNIST (or Fashion-MNIST) demo search")
    demo.add_argument("--time-limit", type=parse_duration, default=600.0)
    demo.add_argument("--directory", default=None, help="default: runs/DATASET")
    demo.add_argument(
        "--dataset",
        choices=("mnist", "fashion"),
        default="mnist",
        help="mnist or fashion (Fashion-MNIST); default mnist",
    )
    demo.set_defaults(run=_demo)
    return parser


EXPECTED = (UsageError, ValueError, RuntimeError, OSError)  # the user's input or environment


def main(argv=None):
    """Runs the `kerasnas` command; returns its exit status.

    Expected failures (bad input, damaged or missing files, a full disk, a
    busy directory) print one line and return 2; anything else prints a
    short message naming the file that holds the full traceback, and returns 1.
    """
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except KeyboardInterrupt:
        return 130
    except EXPECTED as e:
        print(f"kerasnas: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except Exception as e:
        path = _write_traceback()
        print(
            f"kerasnas: unexpected error: {type(e).__name__}: {_one_line(e)} "
            f"(full traceback in {path}; please report it)",
            file=sys.stderr,
        )
        return 1
    return 0


def _one_line(error):
    text = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, OSError) and error.filename and str(error.filename) not in text:
        text += f": {error.filename}"
    return text


def _write_traceback():
    handle, path = tempfile.mkstemp(prefix="kerasnas-traceback-", suffix=".txt")
    with os.fdopen(handle, "w") as f:
        traceback.print_exc(file=f)
    return path


if __name__ == "__main__":
    sys.exit(main())
