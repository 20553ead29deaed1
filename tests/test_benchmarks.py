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
HELPERS = {"common.py", "stats.py"}  # modules the scripts import, not scripts
SCRIPTS = sorted(p.name for p in BENCHMARKS.glob("*.py") if p.name not in HELPERS)


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


def test_the_colour_task_paints_each_image_apart_from_its_class_and_the_convnet_reads_it():
    found = json.loads(
        in_benchmarks("""
        import json
        import numpy as np
        import common
        grey = np.zeros((6, 28, 28), dtype="uint8")
        grey[:, 8:20, 8:20] = 255  # the same square in every image
        x = common.coloured(grey, seed=3)
        again = common.coloured(grey, seed=3)
        model = common.fit_convnet(x, np.arange(6) % 2, [], epochs=1)
        print(json.dumps({
            "shape": list(x.shape), "dtype": str(x.dtype),
            "same": bool((x == again).all()),
            "inks": len({tuple(image[16, 16]) for image in x}),
            "backgrounds": len({tuple(image[0, 0]) for image in x}),
            "ink_of_0": x[0, 16, 16].tolist(),
            "background_of_0": x[0, 0, 0].tolist(),
            "input": list(model.input_shape),
            "scaled": list(common.scaled(x).shape),
            "side": common.COLOUR_SIDE,
        }))
    """)
    )
    side = found["side"]
    assert side > 28  # larger than the grey images it comes from
    assert found["shape"] == [6, side, side, 3]
    assert found["dtype"] == "uint8" and found["same"]
    # One image, one pair of colours: six identical shapes get six colourings.
    assert found["inks"] == 6 and found["backgrounds"] == 6
    assert found["ink_of_0"] != found["background_of_0"]
    assert found["input"] == [None, side, side, 3]
    assert found["scaled"] == [6, side, side, 3]


def test_paired_statistics_on_known_differences():
    found = json.loads(
        in_benchmarks("""
        import json
        import stats
        print(json.dumps(stats.paired([0.1, 0.2, 0.3, 0.0, 0.1, 0.2])))
    """)
    )
    d = numpy.array([0.1, 0.2, 0.3, 0.0, 0.1, 0.2])
    se = d.std(ddof=1) / numpy.sqrt(6)
    assert found["n"] == 6
    assert found["mean"] == pytest.approx(0.15)
    assert found["se"] == pytest.approx(se)
    assert found["low"] == pytest.approx(0.15 - 2.5706 * se, abs=1e-4)
    assert found["high"] == pytest.approx(0.15 + 2.5706 * se, abs=1e-4)


def test_the_claims_on_hand_made_differences():
    found = json.loads(
        in_benchmarks("""
        import json
        import stats
        cases = {
            "ahead": [0.1, 0.2, 0.3, 0.0, 0.1, 0.2],
            "ahead_too_few": [0.1, 0.2, 0.3],
            "clearly_above": [0.0, 0.05, -0.05],
            "straddles": [0.3, -0.6, 0.1],
            "straddles_six": [0.3, -0.6, 0.1, 0.2, -0.5, 0.2],
            "behind": [-0.5, -0.6, -0.55],
            "two": [0.5, 0.6],
        }
        out = {}
        for name, d in cases.items():
            s = stats.paired(d)
            out[name] = [stats.not_behind(s, -0.15), stats.ahead(s)]
        out["no_margin"] = stats.not_behind(stats.paired([0.1, 0.2, 0.3]), None)
        print(json.dumps(out))
    """)
    )
    assert found["ahead"] == ["not behind", "ahead"]
    assert found["ahead_too_few"][1] == "not shown (3 pairs; needs 6)"
    assert found["clearly_above"] == ["not behind", "not shown (3 pairs; needs 6)"]
    assert found["straddles"][0] == "undecided (3 pairs; run seeds up to 6)"
    assert found["straddles_six"] == ["not behind", "not shown"]  # the mean decides at 6
    assert found["behind"][0] == "behind"
    assert found["two"][0] == "undecided (2 pairs; run seeds up to 3)"
    assert found["no_margin"] == "no margin fixed"


def test_pairs_form_over_shared_seeds_and_never_across_machines_or_e():
    found = json.loads(
        in_benchmarks("""
        import json
        import budget
        def row(system, seed, acc, host="a", e=10.0):
            return {"system": system, "dataset": "mnist", "seed": seed, "budget_E": 5.0,
                    "E_seconds": e, "time_limit": 5 * e, "test_accuracy": acc,
                    "machine": {"hostname": host}}
        rows = [row("kerasnas", s, 0.99 + s / 1000) for s in (1, 2, 3, 4)]
        rows += [row("cnn", s, 0.99) for s in (1, 2, 3)]
        rows += [row("cnn", 4, 0.5, host="b"), row("kerasnas", 5, 0.5, e=20.0)]
        rows += [{**row("cnn", 5, 0.9), "error": "exit status 1"}]
        found, notes = budget.stats.compare(rows, budget.label, list(budget.SYSTEMS))
        print(json.dumps({"found": found, "notes": notes, "table": budget.stats_table(rows)}))
    """)
    )
    (pair,) = [c for c in found["found"] if c["b"] == "cnn" and c["host"] == "a"]
    assert (pair["a"], pair["seeds"], pair["n"]) == ("kerasnas", [1, 2, 3], 3)
    assert pair["mean"] == pytest.approx(0.2)
    assert pair["margin"] == -0.15
    assert len(found["notes"]) == 1 and "3 machines or E values" in found["notes"][0]
    assert "| kerasnas vs cnn | 3 | +0.200 |" in found["table"]


def test_the_subset_and_the_hold_out_are_stratified_and_seeded():
    found = json.loads(
        in_benchmarks("""
        import json
        import numpy as np
        import budget
        y = np.repeat(np.arange(3), [50, 30, 20])
        pick = lambda seed, n: budget.stratified_pick(y, n, np.random.default_rng(seed))
        counts = {n: np.bincount(y[pick(1, n)], minlength=3).tolist() for n in (10, 17, 33, 99)}
        same = (pick(1, 33) == pick(1, 33)).all()
        other = not (pick(1, 33) == pick(2, 33)).all()
        (x, yt), (xv, yv), _ = budget.seed_data("digits", 1, train_size=500)
        (x2, _), (xv2, _), _ = budget.seed_data("digits", 1, train_size=500)
        (x3, _), _, _ = budget.seed_data("digits", 2, train_size=500)
        print(json.dumps({
            "counts": counts, "same": bool(same), "other": bool(other),
            "sizes": [len(x), len(xv)], "val_classes": np.bincount(yv).tolist(),
            "repeat": bool((x == x2).all() and (xv == xv2).all()),
            "other_seed": bool(x.shape != x3.shape or not (x == x3).all()),
        }))
    """)
    )
    for n, counts in found["counts"].items():
        expected = numpy.array([50, 30, 20]) * int(n) / 100
        assert sum(counts) == int(n)
        assert (abs(numpy.array(counts) - expected) < 1).all(), (n, counts)
    assert found["same"] and found["other"]
    assert found["sizes"] == [450, 50]
    assert all(4 <= c <= 6 for c in found["val_classes"])  # 10 classes, 50 images
    assert found["repeat"] and found["other_seed"]


def test_budgets_under_30_seconds_are_refused_before_anything_runs(tmp_path):
    found = in_benchmarks("""
        import budget
        try:
            budget.check_budgets(["3E", "40E"], 8.0)
        except ValueError as e:
            print(e)
        print(budget.check_budgets(["2E", "3E", "45"], 20.0))
    """)
    assert "Received: 3E = 24.0 s (E = 8.00 s); use 4E or more" in found
    assert "measures fixed costs, not training" in found
    assert "[(2.0, 40.0), (3.0, 60.0), (2.25, 45.0)]" in found
    done = subprocess.run(
        [sys.executable, "budget.py", "--dataset", "digits", "--e-seconds", "0.14",
         "--budgets", "5E", "--output", str(tmp_path)],
        cwd=BENCHMARKS, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert "5E = 0.7 s" in done.stderr and "use 215E or more" in done.stderr
    assert not list(tmp_path.iterdir())


def test_a_snapshot_is_taken_where_a_shorter_run_would_stop_on_a_clock_without_testing():
    found = json.loads(
        in_benchmarks("""
        import json, time
        import numpy as np
        import budget

        class Clock:  # one second a batch; paused while the snapshot tests
            now, paused, pauses = 0.0, False, 0
            def __call__(self):
                return self.now
            def pause(self):
                self.paused, self.pauses = True, self.pauses + 1
            def resume(self):
                self.paused = False

        class Model:  # what a replay needs: predicts class 1, and only on a paused clock
            stop_training = False
            def predict(self, x, verbose=0):
                assert clock.paused
                return np.tile([0.0, 1.0], (len(x), 1))

        clock = Clock()
        y_test = np.array([1, 1, 0, 1])
        snapshots = budget.snapshots_callback([5.5, 8.5], np.zeros((4, 8, 8), "uint8"), y_test,
                                              clock)
        snapshots.set_model(Model())
        snapshots.on_train_begin()
        snapshots.on_epoch_begin(0)
        for batch in range(12):
            clock.now += 1.0
            snapshots.on_train_batch_end(batch)
        real = budget.PausedClock()
        real.pause()
        time.sleep(0.2)
        real.resume()
        print(json.dumps({"records": snapshots.records, "pauses": clock.pauses,
                          "stopped": Model.stop_training, "paused": real.paused_seconds,
                          "lag": time.time() - real()}))
    """)
    )
    # 5 s + one more 1-s batch reaches the 5.5-s deadline: a run to 5.5 stops there.
    assert found["records"] == [
        {"deadline": 5.5, "at": 5.0, "test_accuracy": 0.75},
        {"deadline": 8.5, "at": 8.0, "test_accuracy": 0.75},
    ]
    assert found["pauses"] == 2
    assert not found["stopped"]  # the snapshots stop nothing
    assert found["paused"] >= 0.2 and found["lag"] >= 0.2


@pytest.mark.slow
def test_a_long_search_holds_its_file_descriptors_and_threads():
    """The soak's bounds that do not depend on the machine's speed, on a shorter run."""
    found = json.loads(
        in_benchmarks("""
        import json, tempfile, soak
        with tempfile.TemporaryDirectory() as directory:
            records = soak.soak(10, directory, seed=1, images=48, epochs=1)
        found = {name: (a, b, held) for name, a, b, _, held in soak.verdicts(records, 5)}
        print(json.dumps({"trials": len(records), **found}))
    """)
    )
    assert found["trials"] == 10
    for name in ("fds", "threads"):
        start, end, held = found[name]
        assert held, f"{name}: {start} at trial 5, {end} at trial 10"


@pytest.mark.slow
def test_the_soak_runs_as_a_chain_of_processes():
    printed = in_benchmarks("""
        import json, tempfile, soak
        with tempfile.TemporaryDirectory() as directory:
            records = soak.soak_in_segments(4, directory, seed=1, images=48, trials_per_process=2)
        print(json.dumps([[r["trial"], r["process"]] for r in records]))
    """)
    found = json.loads(printed.splitlines()[-1])  # after KerasTuner's "Reloading Tuner" line
    assert [trial for trial, _ in found] == [1, 2, 3, 4]
    processes = [process for _, process in found]
    assert processes[0] == processes[1] != processes[2] == processes[3]
