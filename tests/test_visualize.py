from __future__ import annotations

import sys

import pytest

import kerasnas

visualize_module = sys.modules["kerasnas.visualize"]  # `kerasnas.visualize` is the function


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


def test_bad_format_and_missing_graphviz(fitted_classifier, tmp_path, monkeypatch):
    _, directory = fitted_classifier
    with pytest.raises(ValueError, match="format='gif'"):
        kerasnas.visualize(directory, tmp_path, format="gif")
    monkeypatch.setattr(visualize_module.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="apt-get install graphviz"):
        kerasnas.visualize(directory, tmp_path)


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


def test_no_search_there(tmp_path):
    with pytest.raises(FileNotFoundError, match="Expected one kerasnas search"):
        kerasnas.plot_search(tmp_path)
