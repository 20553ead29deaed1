"""kerasnas' input path against plain Keras, and the memory of a streamed folder.

Usage: python benchmarks/pipeline.py [--images 6000] [--epochs 3] [--stream-mb 48]
       [--time-limit 60] [--only throughput|memory]

1. Throughput (images per second, epochs after the first) of one fixed
   architecture (the initial CNN of `kerasnas.graph.generators`) trained through
   kerasnas' input path (`ImageClassifier`'s reading, preprocessing and feed, as
   `fit` builds them) against plain `model.fit` on the same numpy arrays
   (scaled by 1/255), and for a folder of JPEGs against
   `keras.utils.image_dataset_from_directory` + `model.fit`. The folder goes
   through kerasnas both read into memory (its default for a small folder) and
   streamed (`KERASNAS_IN_MEMORY_MB` set below the folder's size).
2. Peak memory: `fit(time_limit=60)` on a folder whose decoded images are
   larger than the streaming threshold (`--stream-mb`), in a child process,
   against the same `fit` (batch size 128 for both) on a folder of 200 such
   images, also streamed (TensorFlow's, the models' and the pipeline's own
   footprint), and against the large folder read into memory (threshold
   raised). Peak RSS is the process's `ru_maxrss`. `--only memory` (or
   `throughput`) runs one part.

Each measurement runs in its own process, one after another; nothing else
should run beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import common  # this folder's shared helpers
import numpy as np

SIDE = 32  # the JPEGs' side; colour


def synthetic(n, side, channels, seed=0):
    """(n, side, side, channels) uint8 images whose class (0-2) is the brightest third."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.uniform(0, 80, (n, side, side, channels))
    third = side // 3
    for i, label in enumerate(y):
        x[i, :, label * third : (label + 1) * third] += 150
    return x.astype("uint8"), y


def write_folder(root, n, side=SIDE, seed=0):
    from PIL import Image

    x, y = synthetic(n, side, 3, seed)
    for i, (image, label) in enumerate(zip(x, y)):
        folder = os.path.join(root, f"class_{label}")
        os.makedirs(folder, exist_ok=True)
        Image.fromarray(image).save(os.path.join(folder, f"{i:05d}.jpg"), quality=90)
    return root


class _Timer:
    def __new__(cls):
        import keras

        class Timer(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.seconds = []

            def on_epoch_begin(self, epoch, logs=None):
                self._start = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                self.seconds.append(time.perf_counter() - self._start)

        return Timer()


def _model(shape):
    import keras

    from kerasnas.graph import generators

    keras.utils.set_random_seed(0)
    model = generators.cnn(shape, 3).to_keras()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _rate(timer, n):
    later = timer.seconds[1:] or timer.seconds
    return n / float(np.median(later))


def throughput(kind, n, epochs, folder=None):
    """Images per second for one way of feeding the fixed CNN (run in a child process)."""
    import keras

    import kerasnas

    batch = 128
    timer = _Timer()
    if kind == "numpy_keras":
        x, y = synthetic(n, 28, 1)
        _model((28, 28, 1)).fit(
            x / np.float32(255), y, batch_size=batch, epochs=epochs, callbacks=[timer], verbose=0
        )
        return _rate(timer, n)
    if kind == "folder_keras":
        dataset = keras.utils.image_dataset_from_directory(
            folder, image_size=(SIDE, SIDE), batch_size=batch, seed=0, verbose=False
        )
        dataset = dataset.map(lambda a, b: (a / 255.0, b)).prefetch(-1)
        _model((SIDE, SIDE, 3)).fit(dataset, epochs=epochs, callbacks=[timer], verbose=0)
        return _rate(timer, n)
    # kerasnas' input path: what `fit` reads, preprocesses and feeds a trial.
    from kerasnas.tasks import feeds, reading

    clf = kerasnas.ImageClassifier(seed=0, verbose=0)
    if kind == "numpy_kerasnas":
        x, y = synthetic(n, 28, 1)
        train = reading.read(clf, x, y, "x", labelled=True)
    else:
        train = reading.read(clf, folder, None, "x", labelled=True)
    targets, encoded = clf._learn_targets(train.labels)
    clf.__dict__.update(targets)
    clf.input_shape_ = train.raw_shape
    mean, variance, _, _ = feeds.statistics(train.sample)
    clf.preprocessor_ = feeds.preprocessor(train.raw_shape, None, mean, variance)
    args, kwargs = feeds.training_feed(clf, train, encoded, None, None, batch)
    _model(train.shape).fit(*args, epochs=epochs, callbacks=[timer], verbose=0, **kwargs)
    return _rate(timer, train.count)


def peak_fit(folder, directory, time_limit, batch_size=128):
    """Peak RSS (MB), seconds and trials of `fit(folder, time_limit)` (child process)."""
    import kerasnas

    clf = kerasnas.ImageClassifier(directory=directory, seed=0, verbose=0)
    start = time.time()
    clf.fit(folder, time_limit=time_limit, batch_size=batch_size)
    seconds = time.time() - start
    return {
        "peak_mb": common.peak_rss_mb(),
        "seconds": round(seconds, 1),
        "trials": len(clf.history),
    }


def _child(function, *args, env=None):
    code = f"import json, pipeline; print(json.dumps(pipeline.{function}(*{args!r})))"
    done = subprocess.run(  # started in this folder, so that `import pipeline` finds it
        [sys.executable, "-c", code],
        cwd=os.path.dirname(os.path.abspath(__file__)),
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{function}{args} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=6000, help="images per throughput run")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--stream-mb", type=float, default=48, help="streaming threshold, MB")
    parser.add_argument("--time-limit", type=float, default=60)
    parser.add_argument("--only", choices=["throughput", "memory"], default=None)
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="kerasnas_pipeline_")
    if args.only != "memory":
        _throughput(args, work)
    if args.only != "throughput":
        _memory(args, work)


def _throughput(args, work):
    folder = write_folder(os.path.join(work, "jpegs"), args.images)
    decoded_mb = args.images * SIDE * SIDE * 3 / 2**20
    tiny = {"KERASNAS_IN_MEMORY_MB": str(min(1.0, decoded_mb / 4))}
    rows = [
        ("numpy: plain model.fit", _child("throughput", "numpy_keras", args.images, args.epochs)),
        ("numpy: kerasnas", _child("throughput", "numpy_kerasnas", args.images, args.epochs)),
        (
            "JPEG folder: image_dataset_from_directory + fit",
            _child("throughput", "folder_keras", args.images, args.epochs, folder),
        ),
        (
            "JPEG folder: kerasnas, in memory",
            _child("throughput", "folder_kerasnas", args.images, args.epochs, folder),
        ),
        (
            "JPEG folder: kerasnas, streamed",
            _child("throughput", "folder_kerasnas", args.images, args.epochs, folder, env=tiny),
        ),
    ]
    print(f"Throughput of the initial CNN, {args.images} images, median of epochs 2-{args.epochs}")
    print("| path | images/s | ratio |")
    print("| --- | --- | --- |")
    baselines = {"numpy": rows[0][1], "JPEG folder": rows[2][1]}
    for name, rate in rows:
        base = baselines[name.split(":")[0]]
        print(f"| {name} | {rate:,.0f} | {rate / base:.2f}x |")
    print()


def _memory(args, work):
    # Peak memory of a streamed folder, against the same fit on a small folder.
    big_n = int(args.stream_mb * 1.5 * 2**20 / (SIDE * SIDE * 3)) + 1
    big = write_folder(os.path.join(work, "big"), big_n, seed=1)
    small = write_folder(os.path.join(work, "small"), 200, seed=2)
    threshold = {"KERASNAS_IN_MEMORY_MB": str(args.stream_mb)}
    # The baseline streams too (a threshold below its size): the same pipeline machinery.
    base = _child(
        "peak_fit",
        small,
        os.path.join(work, "r1"),
        args.time_limit,
        env={"KERASNAS_IN_MEMORY_MB": "0.1"},
    )
    streamed = _child("peak_fit", big, os.path.join(work, "r2"), args.time_limit, env=threshold)
    in_memory = _child(
        "peak_fit",
        big,
        os.path.join(work, "r3"),
        args.time_limit,
        env={"KERASNAS_IN_MEMORY_MB": str(args.stream_mb * 4)},
    )
    big_mb = big_n * SIDE * SIDE * 3 / 2**20
    print(
        f"fit(time_limit={args.time_limit:.0f}, batch_size=128) on JPEG folders, streaming "
        f"threshold {args.stream_mb:.0f} MB"
    )
    print("| folder | decoded MB | read | peak RSS MB | wall s | trials |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, n, how, result in (
        ("200 images", 200, "streamed", base),
        (f"{big_n} images", big_n, "streamed", streamed),
        (f"{big_n} images", big_n, "in memory (threshold x4)", in_memory),
    ):
        mb = n * SIDE * SIDE * 3 / 2**20
        print(
            f"| {name} | {mb:.0f} | {how} | {result['peak_mb']:.0f} | {result['seconds']:.0f} | "
            f"{result['trials']} |"
        )
    over = streamed["peak_mb"] - base["peak_mb"]
    print(
        f"\nStreamed peak RSS over the small folder's: {over:.0f} MB (threshold "
        f"{args.stream_mb:.0f} MB, decoded folder {big_mb:.0f} MB)."
    )


if __name__ == "__main__":
    main()
