"""MNIST: kerasnas against KerasTuner, AutoKeras and a hand-written CNN, same budget.

Usage:
    python benchmarks/mnist.py [--time-limit 600] [--systems kerasnas,kerastuner,autokeras,cnn]
                               [--output benchmarks/results] [--seed 1] [--dataset mnist|fashion]

Runs each system one after another, each in its own process, on the real
60,000/10,000 MNIST from `kerasnas.datasets.load_mnist()` (or, with
`--dataset fashion`, Fashion-MNIST from `load_fashion_mnist()`, and the
files below are named `fashion_T<T>.*`). Each gets the same
wall-clock budget T for everything it does before predicting (searching,
retraining, restoring); the clock starts once the data is in memory. Then
each predicts the 10,000 test images. It prints one table and writes
`mnist_T<T>.json` (the rows under `results`, and the machine) and
`mnist_T<T>.png` (a bar chart) into `--output`.

The systems:
- `kerasnas`: `ImageClassifier(seed=...).fit(x, y, time_limit=T)`.
- `kerastuner`: `keras_tuner.BayesianOptimization` over a conventional CNN
  space (1 to 3 conv blocks, filters, kernel size, dropout, dense units,
  learning rate) with `EarlyStopping`. KerasTuner has no time limit, so the
  search gets the first 70% of T: its oracle stops proposing trials after
  that, and a callback stops the running trial there. The best
  hyperparameters are then retrained on all the training data until T.
- `autokeras`: `autokeras.ImageClassifier` 3.x, `max_trials=1`: its second
  trial is a ResNet50 on images resized to 224x224, which cannot train one
  epoch of MNIST in 600 s on a CPU. `epochs` is chosen to fill T: AutoKeras
  trains each trial for `epochs` on 80% of the data, then refits the best
  on all of it for as many epochs again; the script times what one more
  epoch costs that way (fits of 20% of the data for 1 and 3 epochs, before
  the clock starts) and sets `epochs = T / that`. It runs in a virtual environment of its own, which
  the script makes (see `make_environment`).
- `cnn`: the classic Keras MNIST convnet (conv 32, pool, conv 64, pool,
  dropout, dense 10; Adam, batch 128, 10% validation) trained for as many
  epochs as fit in T, the last epoch stopped at T.
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

import common  # this folder's shared convnet, memory and machine description

SYSTEMS = ("kerasnas", "kerastuner", "autokeras", "cnn")
DATASETS = {"mnist": "MNIST", "fashion": "Fashion-MNIST"}  # --dataset: its title in the plot
SEARCH_SHARE = 0.7  # of T, for the KerasTuner search; the rest retrains its best
AUTOKERAS_VERSION = "3.0.0"
AUTOKERAS_VENV = os.path.join(os.path.expanduser("~"), ".cache", "kerasnas", "autokeras-venv")


# ---------------------------------------------------------------------- the systems
# Each takes (x_train, y_train, T, seed, workdir) with uint8 images of shape
# (N, 28, 28) and int labels, and returns (predict, trials, params):
# `predict(x)` gives int labels. Only the call itself is timed.


def run_kerasnas(x, y, time_limit, seed, workdir):
    import kerasnas

    clf = kerasnas.ImageClassifier(directory=workdir, seed=seed, overwrite=True, verbose=False)
    clf.fit(x, y, time_limit=time_limit)
    return clf.predict, len(clf.history), clf.model_.count_params()


def run_kerastuner(x, y, time_limit, seed, workdir):
    import keras
    import keras_tuner

    from kerasnas.callbacks import TimeBudget

    start = time.time()
    search_deadline = start + SEARCH_SHARE * time_limit
    deadline = start + time_limit

    class DeadlineOracle(keras_tuner.oracles.BayesianOptimizationOracle):
        def populate_space(self, trial_id):
            if time.time() >= search_deadline:
                return {"status": keras_tuner.engine.trial.TrialStatus.STOPPED, "values": None}
            return super().populate_space(trial_id)

    def build(hp):
        model = keras.Sequential([keras.Input((28, 28, 1))])
        kernel_size = hp.Choice("kernel_size", [3, 5])
        for i in range(hp.Int("conv_blocks", 1, 3)):
            model.add(
                keras.layers.Conv2D(
                    hp.Choice(f"filters_{i}", [16, 32, 64, 128]),
                    kernel_size,
                    padding="same",
                    activation="relu",
                )
            )
            model.add(keras.layers.MaxPooling2D())
        model.add(keras.layers.Flatten())
        model.add(keras.layers.Dropout(hp.Float("dropout", 0.0, 0.5, step=0.1)))
        model.add(keras.layers.Dense(hp.Choice("dense_units", [64, 128, 256]), activation="relu"))
        model.add(keras.layers.Dense(10, activation="softmax"))
        model.compile(
            optimizer=keras.optimizers.Adam(hp.Float("learning_rate", 1e-4, 1e-2, sampling="log")),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        return model

    oracle = DeadlineOracle(objective="val_accuracy", max_trials=1000, seed=seed)
    tuner = keras_tuner.Tuner(
        oracle=oracle, hypermodel=build, directory=workdir, project_name="kerastuner"
    )
    x = common.scaled(x)
    tuner.search(
        x,
        y,
        epochs=20,
        batch_size=128,
        validation_split=0.1,
        callbacks=[
            keras.callbacks.EarlyStopping("val_accuracy", patience=2),
            TimeBudget(search_deadline),
        ],
        verbose=0,
    )
    best = tuner.get_best_hyperparameters(1)[0]
    model = build(best)
    model.fit(
        x,
        y,
        epochs=100,
        batch_size=128,
        validation_split=0.1,
        callbacks=[
            keras.callbacks.EarlyStopping("val_accuracy", patience=3, restore_best_weights=True),
            TimeBudget(deadline),
        ],
        verbose=0,
    )

    return common.labels_of(model), len(oracle.trials), model.count_params()


def _autokeras_epoch_seconds(x, y, seed, workdir):
    """Seconds that one more `epochs` costs AutoKeras on all of (x, y), timed on 20% of it.

    Fits with epochs=1 and epochs=3 differ by two epochs of search plus two
    of refit, free of the fixed costs (building, tracing, the refit's setup).
    """
    import autokeras as ak

    n = len(x) // 5
    seconds = {}
    for epochs in (1, 3):
        clf = ak.ImageClassifier(
            max_trials=1, directory=workdir, project_name=f"timing{epochs}", seed=seed
        )
        start = time.time()
        clf.fit(x[:n], y[:n], epochs=epochs, verbose=0)
        seconds[epochs] = time.time() - start
    return (seconds[3] - seconds[1]) / 2 * len(x) / n


def run_autokeras(x, y, time_limit, seed, workdir, epochs):
    import autokeras as ak

    clf = ak.ImageClassifier(max_trials=1, directory=workdir, overwrite=True, seed=seed)
    clf.fit(x, y, epochs=epochs, verbose=0)
    model = clf.export_model()

    def predict(images):
        return clf.predict(images, verbose=0).astype(int).ravel()

    return predict, 1, model.count_params()


def run_cnn(x, y, time_limit, seed, workdir):
    from kerasnas.callbacks import TimeBudget

    deadline = time.time() + time_limit
    model = common.fit_convnet(x, y, [TimeBudget(deadline)], epochs=1000)
    return common.labels_of(model), 1, model.count_params()


# ---------------------------------------------------------------------- one system, in its process


def run_one(system, time_limit, seed, row_path, dataset="mnist"):
    import keras
    import numpy as np

    (x_train, y_train), (x_test, y_test) = common.load_dataset(dataset)
    keras.utils.set_random_seed(seed)
    workdir = tempfile.mkdtemp(prefix=f"mnist_{system}_")
    extra = {}
    if system == "autokeras":
        seconds = _autokeras_epoch_seconds(x_train, y_train, seed, workdir)
        extra = {"epochs": max(1, int(time_limit / seconds))}
        print(f"autokeras: {seconds:.1f} s per epoch -> epochs={extra['epochs']}", flush=True)
    run = globals()[f"run_{system}"]
    start = time.time()
    predict, trials, params = run(x_train, y_train, time_limit, seed, workdir, **extra)
    wall = time.time() - start
    accuracy = float(np.mean(predict(x_test) == y_test))
    row = {
        "system": system,
        "test_accuracy": accuracy,
        "wall_seconds": round(wall, 1),
        "seconds_over": round(wall - time_limit, 1),
        "time_limit": time_limit,
        "trials": int(trials),
        "params": int(params),
        "peak_rss_mb": common.peak_rss_mb(),
        "keras": keras.__version__,
        **extra,
    }
    with open(row_path, "w") as f:
        json.dump(row, f)


# ---------------------------------------------------------------------- the comparison


def _python_for(system):
    """The interpreter that runs `system`: ours, or the AutoKeras virtual environment's.

    AutoKeras 3.0.0 passes numpy integers as `Dense(units)`, which Keras 3.13
    and later reject, so it runs in a virtual environment of its own that sees
    our packages but has Keras < 3.13 installed over them.
    """
    if system != "autokeras":
        return sys.executable
    python = os.path.join(AUTOKERAS_VENV, "bin", "python")
    if not os.path.exists(os.path.join(_purelib(AUTOKERAS_VENV), PARENT_PTH)):
        print(f"Installing autokeras=={AUTOKERAS_VERSION} into {AUTOKERAS_VENV} ...", flush=True)
        python = make_environment(AUTOKERAS_VENV)
    subprocess.run(
        [python, "-m", "pip", "install", "-q", f"autokeras=={AUTOKERAS_VERSION}", "keras<3.13"],
        check=True,
    )
    return python


PARENT_PTH = "_kerasnas_parent_packages.pth"


def parent_site_dirs():
    """The folders the running interpreter imports installed packages from, in its order.

    In a virtual environment these are the environment's own, not the base
    interpreter's (which `venv --system-site-packages` would give instead).
    """
    import site

    found = list(site.getsitepackages())
    if site.ENABLE_USER_SITE and os.path.isdir(site.getusersitepackages()):
        found.append(site.getusersitepackages())
    found += [p for p in sys.path if os.path.basename(p) in ("site-packages", "dist-packages")]
    return [p for i, p in enumerate(found) if os.path.isdir(p) and p not in found[:i]]


def _purelib(env):
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return os.path.join(env, "lib", version, "site-packages")


def make_environment(path, with_pip=True):
    """Makes (afresh) a virtual environment at `path` that sees the running interpreter's packages.

    Its own site-packages comes first, so what is installed into it (an
    older Keras) wins; then come the folders of `parent_site_dirs()`, read
    with `site.addsitedir` so that their `.pth` files (editable installs,
    such as kerasnas') work too.

    Args:
        path: the folder to make.
        with_pip: install pip into it. Defaults to True.

    Returns:
        The path of its `python`.
    """
    import venv

    venv.EnvBuilder(with_pip=with_pip, clear=True, symlinks=True).create(path)
    line = "import site; " + "; ".join(f"site.addsitedir({d!r})" for d in parent_site_dirs())
    with open(os.path.join(_purelib(path), PARENT_PTH), "w") as f:
        f.write(line + "\n")
    return os.path.join(path, "bin", "python")


def table(rows):
    header = ("system", "test acc", "wall s", "over T", "trials", "params", "peak MB")
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['system']} | failed: {r['error']} |")
            continue
        lines.append(
            f"| {r['system']} | {r['test_accuracy']:.4f} | {r['wall_seconds']:.0f} | "
            f"{r['seconds_over']:+.0f} | {r['trials']} | {r['params']:,} | {r['peak_rss_mb']:.0f} |"
        )
    return "\n".join(lines)


def plot(rows, time_limit, path, title="MNIST"):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if "error" not in r]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    names = [r["system"] for r in rows]
    errors = [100 * (1 - r["test_accuracy"]) for r in rows]
    bars = ax.bar(names, errors, color=["C0" if n == "kerasnas" else "C7" for n in names])
    for bar, r in zip(bars, rows):
        ax.annotate(
            f"{r['test_accuracy']:.2%}\n{r['wall_seconds']:.0f} s",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    ax.set_ylabel("test error (%), lower is better")
    ax.set_title(f"{title}, {time_limit:.0f} s budget each")
    ax.set_ylim(0, max(errors) * 1.35)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-limit", type=float, default=600)
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument(
        "--output", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dataset", default="mnist", choices=DATASETS)
    parser.add_argument("--run-one", help=argparse.SUPPRESS)  # internal: one system, here
    parser.add_argument("--row", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_one:
        return run_one(args.run_one, args.time_limit, args.seed, args.row, args.dataset)

    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = sorted(set(systems) - set(SYSTEMS))
    if unknown:
        parser.error(f"unknown systems {unknown}; expected some of {','.join(SYSTEMS)}")
    if "kerastuner" in systems:
        try:
            import sklearn  # noqa: F401  (KerasTuner's BayesianOptimization needs it)
        except ImportError:
            parser.error('kerastuner needs scikit-learn: pip install -e ".[benchmarks]"')
    os.makedirs(args.output, exist_ok=True)
    rows = []
    for system in systems:
        print(f"== {system}: {args.time_limit:.0f} s", flush=True)
        row_path = os.path.join(tempfile.mkdtemp(), "row.json")
        command = [
            _python_for(system),
            os.path.abspath(__file__),
            "--run-one",
            system,
            "--row",
            row_path,
            "--time-limit",
            str(args.time_limit),
            "--seed",
            str(args.seed),
            "--dataset",
            args.dataset,
        ]
        done = subprocess.run(command)
        if done.returncode == 0 and os.path.exists(row_path):
            with open(row_path) as f:
                rows.append(json.load(f))
        else:
            rows.append({"system": system, "error": f"exit status {done.returncode}"})
        print(table(rows[-1:]).splitlines()[-1], flush=True)

    name = f"{args.dataset}_T{args.time_limit:.0f}"
    report = {
        "time_limit": args.time_limit,
        "seed": args.seed,
        "machine": common.machine(autokeras=AUTOKERAS_VERSION),
        "results": rows,
    }
    with open(os.path.join(args.output, name + ".json"), "w") as f:
        json.dump(report, f, indent=2)
    plot(rows, args.time_limit, os.path.join(args.output, name + ".png"), DATASETS[args.dataset])
    print(table(rows))
    print(f"Wrote {os.path.join(args.output, name)}.json and .png")


if __name__ == "__main__":
    sys.exit(main())
