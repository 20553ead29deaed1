"""The benchmarks' own machinery (not their figures): cheap checks only."""

from __future__ import annotations

import importlib.util
import pathlib
import subprocess
import sys

import numpy


def load_benchmark(name):
    path = pathlib.Path(__file__).parent.parent / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_autokeras_environment_sees_the_running_interpreters_packages(tmp_path):
    mnist = load_benchmark("mnist")
    python = mnist.make_environment(str(tmp_path / "env"), with_pip=False)
    code = "import sys, numpy, kerasnas.files; print(sys.prefix); print(numpy.__file__)"
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    prefix, numpy_file = done.stdout.splitlines()
    assert pathlib.Path(prefix) == tmp_path / "env"
    assert numpy_file == numpy.__file__
    first_site = subprocess.run(
        [python, "-c", "import sys; print([p for p in sys.path if 'site-packages' in p][0])"],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout.strip()
    assert first_site.startswith(str(tmp_path / "env"))  # what is installed into it wins
    assert sys.executable != python


def test_budgets_are_read_in_convnet_epochs_or_seconds():
    budget = load_benchmark("budget")
    assert budget.parse_budget("15E", 18.0) == (15.0, 270.0)
    assert budget.parse_budget(" 90 ", 18.0) == (5.0, 90.0)
    row = {"system": "cnn", "dataset": "digits", "seed": 1, "budget_E": 5.0, "time_limit": 1.5}
    failed = budget.table([{**row, "error": "exit status 1"}])
    assert "failed: exit status 1" in failed
    ok = {**row, "test_accuracy": 0.98, "wall_seconds": 1.4, "trials": 1, "params": 21386,
          "children_trained": 0, "best_is_descendant": False, "peak_rss_mb": 700.0}  # fmt: skip
    assert "| 0.9800 | 1 | -0.1 |" in budget.table([ok])
    assert budget.medians([ok, {**ok, "seed": 2, "test_accuracy": 0.96}]) == {("cnn", 5.0): 0.97}
