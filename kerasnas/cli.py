"""The `kerasnas` command: fit, predict, export, report and demo from a shell."""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import glob
import importlib.abc
import importlib.metadata
import importlib.util
import os
import platform
import re
import sys
import tempfile
import time
import traceback

from kerasnas import __version__


class UsageError(Exception):
    """A mistake in what the user typed or pointed at: one line, exit status 2."""


def parse_duration(text):
    """The seconds a duration such as `--time-limit` names.

    Args:
        text: A number of seconds (`90`, `90s`, `2.5`), minutes (`10m`), hours (`2h`),
            or hours, minutes and seconds together (`1h30m`, `1h2m3s`).

    Returns:
        The duration in seconds, as a float.

    Raises:
        argparse.ArgumentTypeError: If `text` is not such a duration; argparse turns
            it into a one-line error and exit status 2.
    """
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
    """The data `kerasnas fit` searches on.

    Args:
        path: An `.npz` file holding arrays `x` (images) and `y` (labels), or a folder
            of one subfolder of images per class.
        grayscale: Whether to read the images in grayscale (RGB images of an `.npz` are
            converted with the ITU-R 601 weights). Defaults to False.
        image_size: `(height, width)` to resize a folder's images to, or None for its
            most common size. Defaults to None.

    Returns:
        A tuple `(x, y)`: the two arrays of an `.npz`; for a folder, `(path, None)`,
        which `ImageClassifier.fit` reads itself (streamed when large), or with
        `grayscale`, a `tf.data.Dataset` of `(image, class name)` and None.

    Raises:
        UsageError: If `path` does not exist, is a file but not an `.npz`, or is an
            `.npz` without `x` and `y` or that cannot be read.
        ValueError: If the folder holds no images, or images that cannot be read
            (the message names them).
    """
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
    """The image size `--image-size` names.

    Args:
        text: One number for square images (`32`), or height and width (`32x48`,
            `32,48`).

    Returns:
        A tuple of two ints, `(height, width)`.

    Raises:
        argparse.ArgumentTypeError: If `text` is not such a size or a side is 0.
    """
    match = re.fullmatch(r"\s*(\d+)\s*(?:[x,]\s*(\d+))?\s*", text)
    if not match or int(match.group(1)) < 1 or (match.group(2) and int(match.group(2)) < 1):
        raise argparse.ArgumentTypeError(
            f"expected an image size such as 32 or 32x48 (height x width); got {text!r}"
        )
    height = int(match.group(1))
    return height, int(match.group(2) or height)


def _positive_int(text):
    """An int of at least 1, for `--trials-per-process`."""
    if not re.fullmatch(r"\s*\d+\s*", text) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1; got {text!r}")
    return int(text)


def _verbosity(args):
    return 0 if args.quiet else (2 if args.verbose else 1)


def _fit(args):
    if args.trials_per_process is not None:
        return _fit_in_segments(args)
    time_limit = args.time_limit
    if args.until is not None:  # a segment: the search ends when the whole chain does
        time_limit = args.until - time.time()
        if time_limit <= 0:
            return None
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
    clf.fit(x, y, time_limit=time_limit)
    best = clf.history.set_index("trial_id").loc[clf.best_trial_id_]
    print(
        f"best trial {clf.best_trial_id_}: validation accuracy {best['val_accuracy']:.4f} "
        f"({best['params']:,} parameters)"
    )


def _fit_in_segments(args):
    """`fit` as a chain of processes of `--trials-per-process` trials (see
    `kerasnas.segments`), each the same command with `--until`, the chain's end.
    Returns the exit status of the first segment that failed, else 0."""
    from kerasnas import segments

    argv = [sys.executable, "-m", "kerasnas", "fit", args.data, "--directory", args.directory]
    argv += ["--grayscale"] if args.grayscale else []
    argv += ["--seed", str(args.seed)] if args.seed is not None else []
    argv += ["--max-trials", str(args.max_trials)] if args.max_trials is not None else []
    if args.image_size:
        argv += ["--image-size", "{}x{}".format(*args.image_size)]
    argv += ["--quiet"] if args.quiet else ["--verbose"] if args.verbose else []
    overwrite = [args.overwrite]  # only the first segment starts afresh

    def command(until):
        fresh, overwrite[0] = overwrite[0], False
        return argv + ["--until", repr(until)] + (["--overwrite"] if fresh else [])

    if not args.quiet:
        print(f"kerasnas: searching in processes of {args.trials_per_process} trials each.")
    status = segments.run_in_segments(
        command,
        os.path.join(args.directory, "search"),
        args.trials_per_process,
        max_trials=args.max_trials,
        time_limit=args.time_limit,
        fresh=args.overwrite,
    )
    return status  # a failed segment has said why


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
    labels = os.path.join(args.out, "kerasnas_labels.json")
    print(f"SavedModel written to {args.out} (class names in {labels})")


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


def _distribution_version(*names):
    """The version of the first installed distribution among `names`, or None."""
    for name in names:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def version_text():
    """`kerasnas 0.1.0 (Keras 3.6.0, TensorFlow 2.18.0, Python 3.11.7)`, read without
    importing Keras or TensorFlow."""
    parts = [
        f"{label} {version}"
        for label, version in (
            ("Keras", _distribution_version("keras", "keras-nightly")),
            ("TensorFlow", _distribution_version(*TENSORFLOW_DISTRIBUTIONS)),
            ("Python", platform.python_version()),
        )
        if version
    ]
    return f"kerasnas {__version__} ({', '.join(parts)})"


TENSORFLOW_DISTRIBUTIONS = ("tensorflow", "tensorflow-cpu", "tensorflow-macos", "tf-nightly")


def build_parser():
    """The `kerasnas` argument parser, one subparser a command."""
    parser = argparse.ArgumentParser(
        prog="kerasnas", description="Neural architecture search for Keras."
    )
    parser.add_argument(
        "--version",
        action="version",
        version=version_text(),
        help="print the versions of kerasnas, Keras, TensorFlow and Python, and exit",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    fit = commands.add_parser(
        "fit",
        help="search an image classifier",
        description="Search an image classifier; rerun on the same directory to resume.",
    )
    fit.add_argument("data", help="folder of class subfolders, or .npz with x and y")
    fit.add_argument(
        "--time-limit",
        type=parse_duration,
        default=600.0,
        help="e.g. 600, 90s, 10m, 1h30m (default 10m)",
    )
    fit.add_argument(
        "--directory", required=True, help="run directory (the search goes in DIRECTORY/search)"
    )
    fit.add_argument(
        "--max-trials",
        type=int,
        default=None,
        help="most architectures to train (default: no limit)",
    )
    fit.add_argument(
        "--seed", type=int, default=None, help="random seed: same seed, same proposals"
    )
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
    fit.add_argument(
        "--overwrite", action="store_true", help="start afresh instead of resuming the search"
    )
    fit.add_argument(
        "--trials-per-process",
        type=_positive_int,
        default=None,
        metavar="K",
        help="run the search as a chain of processes of K trials each, so that the memory "
        "TensorFlow keeps of every trained model goes back at each exit (long searches)",
    )
    fit.add_argument("--until", type=float, default=None, help=argparse.SUPPRESS)
    fit.set_defaults(run=_fit)

    predict = commands.add_parser(
        "predict",
        help="label images with a finished search",
        description="Print a line per image: its path, the predicted class and its probability.",
    )
    predict.add_argument("directory", help="the run directory given to fit")
    predict.add_argument("images", nargs="+", help="image files, or folders of images")
    predict.set_defaults(run=_predict)

    export = commands.add_parser(
        "export",
        help="write a TensorFlow SavedModel for serving",
        description="Write a SavedModel that takes raw images; class names in "
        "OUT/kerasnas_labels.json.",
    )
    export.add_argument("directory", help="the run directory given to fit")
    export.add_argument("out", help="folder to write the SavedModel to")
    export.set_defaults(run=_export)

    report = commands.add_parser(
        "report",
        help="history table, diagrams and search plot",
        description="Print the trials, and write history.csv, search.png and the "
        "architectures' diagrams (these need Graphviz).",
    )
    report.add_argument("directory", help="the run directory given to fit")
    report.add_argument("--out", default=None, help="default: DIRECTORY/report")
    report.set_defaults(run=_report)

    demo = commands.add_parser(
        "demo",
        help="the MNIST (or Fashion-MNIST) demo search",
        description="Search on the 60,000 training images, then print the trials and the "
        "accuracy on the 10,000 test images.",
    )
    demo.add_argument(
        "--time-limit",
        type=parse_duration,
        default=600.0,
        help="e.g. 600, 90s, 10m, 1h30m (default 10m)",
    )
    demo.add_argument("--directory", default=None, help="default: runs/DATASET")
    demo.add_argument(
        "--dataset",
        choices=("mnist", "fashion"),
        default="mnist",
        help="mnist or fashion (Fashion-MNIST); default mnist",
    )
    demo.set_defaults(run=_demo)
    return parser


# --------------------------------------------------------------- TensorFlow's start-up notices
# TensorFlow hides its C++ messages below the severity TF_CPP_MIN_LOG_LEVEL names (0 shows
# all, 1 hides INFO, 2 also WARNING, 3 also ERROR), but the lines its shared libraries log
# while they load come before absl::InitializeLog() and ignore it. So the import of
# TensorFlow runs with file descriptor 2 sent to a temporary file, and the lines are then
# written to the real stderr unless the level hides their severity.
# "3" and not "2": TensorFlow logs notices as ERROR too ("oneDNN supports DT_UINT8 only on
# platforms with AVX-512", on every uint8 folder, with AVX-512); its real errors raise.
DEFAULT_LOG_LEVEL = "3"
_SEVERITY = {"I": 0, "W": 1, "E": 2, "F": 3}
_LOG_LINE = re.compile(  # absl's "I0000 00:00:1.2   123 file.cc:1] " or the older TF prefix
    r"(?:([IWEF])\d{4} \d\d:\d\d:[\d.]+\s+\d+ |\d{4}-\d\d-\d\d [\d:.]+: ([IWEF]) )\S+:\d+\] "
)
_ABSL_PREINIT = "WARNING: All log messages before absl::InitializeLog() is called"
_CONTINUATION = ("To enable the following instructions:",)  # second line of a CPU notice
_quiet = None  # the one _QuietTensorFlow of this process, once installed


def _gpu_device_nodes():
    """Whether the machine shows an NVIDIA GPU (Linux device nodes, or WSL's /dev/dxg)."""
    return bool(glob.glob("/dev/nvidia[0-9]*")) or os.path.exists("/dev/dxg")


class _QuietTensorFlow(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` on first import and loads it with its start-up notices filtered."""

    def __init__(self, level, chosen):
        self.level, self.chosen = level, chosen

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once; the search below must not find this finder
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader, self)
        return spec

    def keep(self, line, previous_kept):
        """Whether a line TensorFlow wrote while it loaded reaches the user."""
        if line.startswith(_ABSL_PREINIT):
            return self.level < 1
        if line.startswith(_CONTINUATION):
            return previous_kept
        match = _LOG_LINE.match(line)
        if not match:
            return True  # not a TensorFlow log line: a Python warning, a message before a crash
        return _SEVERITY[match.group(1) or match.group(2)] >= self.level

    @contextlib.contextmanager
    def filtered_stderr(self):
        """Sends file descriptor 2 to a temporary file, then writes the kept lines to stderr."""
        sys.stderr.flush()
        try:
            real = os.dup(2)
        except OSError:  # no stderr at all: nothing to filter
            yield
            return
        capture = tempfile.TemporaryFile(prefix="kerasnas-tensorflow-")
        crash_report = not faulthandler.is_enabled()
        if crash_report:  # a crash while loading still reaches the real stderr
            faulthandler.enable(file=real)
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(real, 2)
            if crash_report:
                faulthandler.disable()
            os.close(real)
            capture.seek(0)
            kept = True
            for line in capture.read().decode(errors="replace").splitlines(keepends=True):
                kept = self.keep(line, kept)
                if kept:
                    sys.stderr.write(line)
            sys.stderr.flush()
            capture.close()

    def after_import(self, tf):
        """Lists the GPUs (inside the filter: CUDA's start-up lines come now), and says when
        the machine has one TensorFlow cannot use."""
        try:
            gpus = tf.config.list_physical_devices("GPU")
        except Exception:  # noqa: BLE001 -- the search itself will report a broken TensorFlow
            return
        hidden = os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1")
        if not gpus and not self.chosen and not hidden and _gpu_device_nodes():
            print(
                "kerasnas: this machine has an NVIDIA GPU, but TensorFlow cannot use it, so "
                "it runs on the CPU; run with TF_CPP_MIN_LOG_LEVEL=0 to see TensorFlow's reason",
                file=sys.stderr,
            )


class _QuietLoader(importlib.abc.Loader):
    """TensorFlow's own loader, run inside the stderr filter."""

    def __init__(self, loader, quiet):
        self.loader, self.quiet = loader, quiet

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        module.__loader__ = module.__spec__.loader = self.loader  # the module keeps its own
        with self.quiet.filtered_stderr():
            self.loader.exec_module(module)
            self.quiet.after_import(module)

    def __getattr__(self, name):
        return getattr(self.loader, name)


def quiet_tensorflow_notices():
    """Keeps TensorFlow's start-up notices out of this process's output.

    If the environment does not set `TF_CPP_MIN_LOG_LEVEL`, sets it to
    `DEFAULT_LOG_LEVEL` ("3": TensorFlow's INFO, WARNING and ERROR log lines hidden; its
    errors still raise, and the command reports them). Either way, when TensorFlow is
    first imported, the lines it logs while it loads (which ignore that variable) are
    held back, then written to stderr unless the level hides their severity; other
    lines, such as Python's warnings, are written as they are. With no level chosen, a
    machine with an NVIDIA GPU that TensorFlow cannot use gets one line saying so.
    `TF_CPP_MIN_LOG_LEVEL=0` leaves TensorFlow's output untouched. Call it before
    TensorFlow is imported; later calls, and calls after TensorFlow has been imported,
    do nothing.
    """
    global _quiet
    if _quiet is not None or "tensorflow" in sys.modules:
        return
    chosen = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
    if chosen is None:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = DEFAULT_LOG_LEVEL
    try:
        level = int(os.environ["TF_CPP_MIN_LOG_LEVEL"])
    except ValueError:
        level = 0  # what TensorFlow makes of a value it cannot read
    _quiet = _QuietTensorFlow(level, chosen is not None)
    if level > 0:
        sys.meta_path.insert(0, _quiet)


EXPECTED = (UsageError, ValueError, RuntimeError, OSError)  # the user's input or environment


def main(argv=None):
    """Runs the `kerasnas` command, as the console script does.

    Expected failures (bad input, damaged or missing files, a full disk, a busy
    directory) print one `kerasnas: error:` line to stderr and return 2; anything else
    prints one `kerasnas: unexpected error:` line naming the file that holds the full
    traceback, and returns 1. Before TensorFlow is imported, its start-up notices are
    filtered (see `quiet_tensorflow_notices`).

    Args:
        argv: The arguments after the program name, as strings, for example
            `["fit", "data.npz", "--directory", "runs/digits"]`. Defaults to
            `sys.argv[1:]`.

    Returns:
        The exit status as an int: 0 on success, 2 for a mistake in the input or the
        environment, 1 for an unexpected error, 130 when interrupted with Ctrl-C.

    Raises:
        SystemExit: From argparse, with status 2 for arguments it cannot parse (after
            printing the usage and one `kerasnas: error:` line) and 0 for `--help`
            and `--version`.

    Example:
        ```pycon
        >>> from kerasnas import cli
        >>> status = cli.main(["report", "runs/digits"])  # doctest: +SKIP
        ```
    """
    quiet_tensorflow_notices()
    args = build_parser().parse_args(argv)
    try:
        status = args.run(args)
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
    return status or 0


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
