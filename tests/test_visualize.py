from __future__ import annotations

import pytest

import kerasnas
from kerasnas import diagrams


@pytest.mark.slow
def test_one_diagram_per_trial(fitted_classifier, tmp_path):
    clf, directory = fitted_classifier
    paths = kerasnas.visualize(directory, tmp_path / "png")
    assert [p.rsplit("/", 1)[1] for p in paths] == [
        f"trial_{i}.png" for i in sorted(clf.history["trial_id"])
    ]
    for path in paths:
        data = open(path, "rb").read()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000  # a real drawing
    (svg,) = kerasnas.visualize(directory, tmp_path / "svg", format="svg")[:1]
    text = open(svg).read()
    assert "<svg" in text and "Output shape" in text  # shapes are shown


def test_bad_format_and_missing_graphviz(tmp_path, monkeypatch):
    # Both are refused before the run is looked for: no search is needed.
    with pytest.raises(ValueError, match="format='gif'"):
        kerasnas.visualize(tmp_path, tmp_path / "out", format="gif")
    monkeypatch.setattr(diagrams.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="apt-get install graphviz"):
        kerasnas.visualize(tmp_path, tmp_path / "out")


@pytest.mark.slow
def test_plot_search(fitted_classifier, tmp_path):
    clf, directory = fitted_classifier
    fig = kerasnas.plot_search(directory)
    (ax,) = fig.axes
    points = ax.collections[0].get_offsets()
    assert len(points) == (clf.history["status"] == "COMPLETED").sum()
    assert ax.get_ylabel() == "val_accuracy"
    assert len(ax.lines) >= 2  # parent-child edges and the best-so-far line
    fig.savefig(tmp_path / "search.png")
    assert (tmp_path / "search.png").stat().st_size > 10_000


def test_no_search_there(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="No finished kerasnas search in .*Call `fit`"):
        kerasnas.plot_search(tmp_path)
    monkeypatch.setattr(diagrams.shutil, "which", lambda name: "/usr/bin/dot")  # as if installed
    with pytest.raises(FileNotFoundError, match="No finished kerasnas search"):
        kerasnas.visualize(tmp_path, tmp_path / "out")


def write_scored_run(folder, objective, scores):
    """A run directory with one trial per score and a `kerasnas.json` naming `objective`."""
    import keras_tuner
    from keras_tuner.engine.trial import Trial

    from kerasnas import files, trials
    from kerasnas.graph import generators

    graph = generators.cnn((8, 8, 1), 3, filters=4, dense_units=8)
    for i, score in enumerate(scores):
        hyperparameters = keras_tuner.HyperParameters()
        hyperparameters.values.update(trials.values(graph))
        trial = Trial(hyperparameters, trial_id=f"000{i}", status="COMPLETED")
        trial.score = score
        trial.metrics.register(trials.TRAIN_SECONDS)
        trial.metrics.update(trials.TRAIN_SECONDS, 10.0)
        (folder / f"trial_000{i}").mkdir(parents=True)
        files.write_json(str(folder / f"trial_000{i}" / trials.TRIAL_FILE), trial.get_state())
    metadata = {
        "task": "regression",
        "objective": objective,
        "input_shape": [8, 8],
        "input_dtype": "float32",
        "preprocessing": {"mean": [0.0], "variance": [1.0]},
        "targets": {"num_targets": 1},
    }
    files.write_json(str(folder / "kerasnas.json"), metadata)


@pytest.mark.parametrize(
    "objective, best_so_far",
    [
        ("val_mae", [0.5, 0.3, 0.3]),
        ("val_accuracy", [0.5, 0.5, 0.5]),
        ("val_loss", [0.5, 0.3, 0.3]),
    ],
)
def test_plot_search_takes_the_direction_the_run_recorded(tmp_path, objective, best_so_far):
    # val_mae is minimised, though its name does not end in "loss".
    write_scored_run(tmp_path / "run", objective, [0.5, 0.3, 0.4])
    fig = kerasnas.plot_search(tmp_path)
    (ax,) = fig.axes
    (step,) = [line for line in ax.lines if line.get_label() == "best so far"]
    assert list(step.get_ydata()) == pytest.approx(best_so_far)
    assert ax.get_ylabel() == objective
