"""Diagrams of searched architectures and plots of a search, read from a run directory."""

from __future__ import annotations

import glob
import os
import shutil

from kerasnas import trials as contract

FORMATS = ("png", "pdf", "svg")


def _project_dir(directory):
    """The search folder: `directory` itself, or its one subfolder holding `oracle.json`."""
    directory = str(directory)
    if os.path.exists(os.path.join(directory, "oracle.json")):
        return directory
    found = sorted(
        os.path.dirname(p) for p in glob.glob(os.path.join(directory, "*", "oracle.json"))
    )
    if len(found) != 1:
        raise FileNotFoundError(
            f"Expected one kerasnas search in {directory} (a folder holding oracle.json, or "
            f"with one such subfolder); found {len(found)}."
        )
    return found[0]


def load_trials(directory):
    """The trials of a search, in trial-id order, as KerasTuner `Trial`s.

    A damaged trial file is read as a failed trial without an architecture
    (with a warning), as on resume.
    """
    pattern = os.path.join(_project_dir(directory), "trial_*", contract.TRIAL_FILE)
    found = [contract.read_trial(p) for p in glob.glob(pattern)]
    return sorted(found, key=lambda t: t.trial_id)


def visualize(directory, out_dir, format="png"):
    """Draws every searched architecture with Keras' `model_to_dot`, shapes shown.

    Args:
        directory: the run directory given to `fit` (or its `project_name` folder).
        out_dir: folder for the diagrams, one per trial: `trial_<id>.<format>`.
        format: `"png"`, `"pdf"` or `"svg"`. Defaults to `"png"`.

    Returns:
        The paths written, in trial order.

    Raises:
        RuntimeError: if Graphviz's `dot` program is missing.
    """
    import keras

    if format not in FORMATS:
        raise ValueError(f"Expected format to be one of {FORMATS}; got format={format!r}.")
    if shutil.which("dot") is None:
        raise RuntimeError(
            "Drawing needs Graphviz's `dot` program, which is not on PATH. Install it: "
            "`apt-get install graphviz` (Debian/Ubuntu), `brew install graphviz` (macOS) "
            "or `conda install graphviz`."
        )
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for trial in load_trials(directory):
        if not contract.has_architecture(trial):
            continue
        graph = contract.graph_of(trial)
        path = os.path.join(str(out_dir), f"trial_{trial.trial_id}.{format}")
        dot = keras.utils.model_to_dot(
            graph.to_keras(name=f"trial_{trial.trial_id}"),
            show_shapes=True,
            show_layer_names=True,
            dpi=96,
        )
        # Keras' orthogonal edges crash Graphviz on graphs with skip connections
        # ("Trapezoid-table overflow"); curved edges draw the same architecture.
        dot.set("splines", "true")
        dot.write(path, format=format)
        written.append(path)
    return written


def plot_search(directory):
    """Plots a search: each trial's score against cumulative training time.

    Lines join each child to its parent (the morphism tree); a step line
    marks the best score so far; failed trials are crosses at the bottom.

    Args:
        directory: the run directory given to `fit` (or its `project_name` folder).

    Returns:
        A matplotlib `Figure` (nothing is shown; call `fig.savefig(...)`).
    """
    from matplotlib.figure import Figure  # not pyplot: works headless, needs no backend

    trials = load_trials(directory)
    elapsed, when, scores = 0.0, {}, {}
    for trial in trials:
        elapsed += contract.metric(trial, contract.TRAIN_SECONDS, 0.0)
        when[trial.trial_id] = elapsed
        if trial.status == "COMPLETED" and trial.score is not None:
            scores[trial.trial_id] = trial.score
    fig = Figure(figsize=(8, 4.5))
    ax = fig.add_subplot()
    objective = _objective_name(trials)
    for trial in trials:
        parent = contract.parent_of(trial)
        if parent in scores and trial.trial_id in scores:
            ax.plot(
                [when[parent], when[trial.trial_id]],
                [scores[parent], scores[trial.trial_id]],
                color="0.75",
                linewidth=1,
                zorder=1,
            )
    ids = list(scores)
    ax.scatter([when[i] for i in ids], [scores[i] for i in ids], zorder=2, label="trial")
    for i in ids:
        ax.annotate(
            i.lstrip("0") or "0",
            (when[i], scores[i]),
            fontsize=7,
            xytext=(3, 3),
            textcoords="offset points",
        )
    if ids:
        maximize = not objective.endswith("loss")
        best, xs, ys = None, [], []
        for i in ids:
            if best is None or (scores[i] > best if maximize else scores[i] < best):
                best = scores[i]
            xs.append(when[i])
            ys.append(best)
        ax.step(xs, ys, where="post", color="C1", label="best so far", zorder=3)
    failed = [t.trial_id for t in trials if t.status == "FAILED"]
    if failed and ids:
        bottom = min(scores.values())
        ax.scatter(
            [when[i] for i in failed],
            [bottom] * len(failed),
            marker="x",
            color="C3",
            label="failed",
            zorder=2,
        )
    ax.set_xlabel("cumulative training time (s)")
    ax.set_ylabel(objective)
    ax.set_title(f"kerasnas search: {len(trials)} trials")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def _objective_name(trials):
    for trial in trials:
        for name in trial.metrics.metrics:
            if name not in contract.TIMING_METRICS:
                return name
    return "score"
