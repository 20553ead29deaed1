"""Diagrams of searched architectures and plots of a search, read from a run directory.

The run is found, its trials read and its objective's direction taken as everywhere
else in kerasnas: `kerasnas.tasks.run_dir` finds the run and reads its trial files,
`kerasnas.json` names the objective, and `kerasnas.trials` ranks by it.
"""

from __future__ import annotations

import os
import shutil

from kerasnas import trials as contract
from kerasnas.tasks import run_dir

FORMATS = ("png", "pdf", "svg")


def load_trials(directory):
    """The trials of a search, in trial-id order, as KerasTuner `Trial`s.

    A damaged trial file is read as a failed trial without an architecture
    (with a warning), as on resume.

    Args:
        directory: the run directory given to `fit` (or its `project_name` folder).

    Returns:
        A list of KerasTuner `Trial`s.

    Raises:
        FileNotFoundError: if no kerasnas search is in `directory`.
    """
    return list(run_dir.read_trials(run_dir.find_run(directory)).values())


def visualize(directory, out_dir, format="png"):
    """Draws every searched architecture with Keras' `model_to_dot`, shapes shown.

    Args:
        directory: the run directory given to `fit` (or its `project_name` folder).
        out_dir: folder for the diagrams, one per trial: `trial_<id>.<format>`.
        format: `"png"`, `"pdf"` or `"svg"`. Defaults to `"png"`.

    Returns:
        The paths written, in trial order.

    Raises:
        ValueError: if `format` is not one of those.
        RuntimeError: if Graphviz's `dot` program is missing.
        FileNotFoundError: if no kerasnas search is in `directory`.

    Example:
        ```python
        paths = kerasnas.visualize("runs/mnist", "diagrams", format="svg")
        ```
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

    Raises:
        FileNotFoundError: if no kerasnas search is in `directory`.

    Example:
        ```python
        fig = kerasnas.plot_search("runs/mnist")
        fig.savefig("search.png", dpi=150)
        ```
    """
    from matplotlib.figure import Figure  # not pyplot: works headless, needs no backend

    project_dir = run_dir.find_run(directory)
    trials = list(run_dir.read_trials(project_dir).values())
    objective = run_dir.read_metadata(project_dir)["objective"]
    direction = run_dir.objective_direction(objective)
    elapsed, when, scores = 0.0, {}, {}
    for trial in trials:
        elapsed += contract.metric(trial, contract.TRAIN_SECONDS, 0.0)
        when[trial.trial_id] = elapsed
        if trial.status == "COMPLETED" and trial.score is not None:
            scores[trial.trial_id] = trial.score
    fig = Figure(figsize=(8, 4.5))
    ax = fig.add_subplot()
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
        by_id = {t.trial_id: t for t in trials}
        best, best_tie, xs, ys = None, None, [], []
        for i in ids:
            tie = contract.metric(by_id[i], contract.TIE_VAL_LOSS)
            if contract.better(scores[i], tie, best, best_tie, direction):
                best, best_tie = scores[i], tie
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
