"""The benchmarks' own machinery (not their figures): cheap checks only.

A benchmark is a script, not a module of the test suite: each test runs its code in a
child process started in `benchmarks/`, where the scripts import one another as they do
when run, and reads back what that process prints.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import textwrap

import numpy
import pytest

BENCHMARKS = pathlib.Path(__file__).parent.parent / "benchmarks"
SCRIPTS = sorted(p.name for p in BENCHMARKS.glob("*.py") if p.name != "common.py")


def in_benchmarks(code):
    """Runs Python `code` in a child process in `benchmarks/`; returns its stdout."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=BENCHMARKS,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_explains_itself_and_leaves_the_tests_off_its_path(script):
    found = json.loads(
        in_benchmarks(f"""
        import contextlib, io, json, runpy, sys
        sys.argv = [{script!r}, "--help"]
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            runpy.run_path({script!r}, run_name="__main__")
        print(json.dumps({{"help": out.getvalue(), "path": sys.path}}))
    """)
    )
    assert found["help"].startswith("usage:")
    assert not [p for p in found["path"] if pathlib.Path(p or ".").name == "tests"]


def test_the_autokeras_environment_sees_the_running_interpreters_packages(tmp_path):
    env = tmp_path / "env"
    python = in_benchmarks(f"""
        import mnist
        print(mnist.make_environment({str(env)!r}, with_pip=False))
    """).strip()
    code = "import sys, numpy, kerasnas.files; print(sys.prefix); print(numpy.__file__)"
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    prefix, numpy_file = done.stdout.splitlines()
    assert pathlib.Path(prefix) == env
    assert numpy_file == numpy.__file__
    first_site = subprocess.run(
        [python, "-c", "import sys; print([p for p in sys.path if 'site-packages' in p][0])"],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout.strip()
    assert first_site.startswith(str(env))  # what is installed into it wins
    assert sys.executable != python


def test_budgets_are_read_in_convnet_epochs_or_seconds():
    found = json.loads(
        in_benchmarks("""
        import json
        import budget
        row = {"system": "cnn", "dataset": "digits", "seed": 1, "budget_E": 5.0,
               "time_limit": 1.5}
        ok = {**row, "test_accuracy": 0.98, "wall_seconds": 1.4, "trials": 1, "params": 21386,
              "children_trained": 0, "best_is_descendant": False, "peak_rss_mb": 700.0}
        print(json.dumps({
            "epochs": budget.parse_budget("15E", 18.0),
            "seconds": budget.parse_budget(" 90 ", 18.0),
            "failed": budget.table([{**row, "error": "exit status 1"}]),
            "ok": budget.table([ok]),
            "medians": [[*key, value] for key, value in budget.medians(
                [ok, {**ok, "seed": 2, "test_accuracy": 0.96}]).items()],
        }))
    """)
    )
    assert found["epochs"] == [15.0, 270.0]
    assert found["seconds"] == [5.0, 90.0]
    assert "failed: exit status 1" in found["failed"]
    assert "| 0.9800 | 1 | -0.1 |" in found["ok"]
    assert found["medians"] == [["cnn", 5.0, pytest.approx(0.97)]]


def test_the_shared_convnet_trains_on_small_images_and_predicts_labels():
    found = json.loads(
        in_benchmarks("""
        import json
        import numpy as np
        import common
        x = np.random.default_rng(0).integers(0, 256, (20, 8, 8), dtype="uint8")
        y = np.arange(20) % 3
        model = common.fit_convnet(x, y, [], epochs=1)
        print(json.dumps({
            "output": list(model.output_shape),
            "labels": sorted(set(common.labels_of(model)(x).tolist())),
            "scaled": [float(common.scaled(x).max()), list(common.scaled(x).shape)],
            "machine": sorted(common.machine(extra=1)),
            "peak": common.peak_rss_mb() > 0,
        }))
    """)
    )
    assert found["output"] == [None, 3]
    assert set(found["labels"]) <= {0, 1, 2}
    assert found["scaled"][0] <= 1.0 and found["scaled"][1] == [20, 8, 8, 1]
    assert {"cpu", "cores", "tensorflow", "keras", "extra"} <= set(found["machine"])
    assert found["peak"]
