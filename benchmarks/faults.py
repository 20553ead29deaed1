"""Reliability: kerasnas under the faults of issue 13, end to end, and under SIGKILL.

Usage:
    python benchmarks/faults.py [--kills 10] [--skip-kills] [--seed 0]

Each fault runs on small synthetic data (8x8 images, 3 classes), tiny
budgets and temporary directories, and prints one row: the fault, what
should happen, what happened, and whether that held. The full-disk fault
mounts a 1 MiB tmpfs, so it needs root (else its row says "skipped").

Then the kill test: a search runs in a child process and is killed with
SIGKILL, at random moments and in the middle of a JSON or checkpoint write
(the child kills itself halfway through its n-th write); `fit` is then run
again on the same directory. Every rerun must finish within its time limit
(plus the slack `fit` promises) and keep every trial that was completed
before the kill.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from fakes import quadrant_images as images  # noqa: E402  (the tests' synthetic images)

SLACK = 10.0  # seconds over the time limit that still count as "within it"
ROWS = []


def fault(name, expected):
    """Decorates a check that returns (observed, held); records one row of the table."""

    def wrap(check):
        def run(*args):
            start = time.time()
            try:
                observed, held = check(*args)
            except Exception as e:  # the check itself broke: the fault did not hold
                observed, held = f"{type(e).__name__}: {e}", False
            observed = " ".join(str(observed).split())
            ROWS.append((name, expected, observed[:160], held, time.time() - start))
            print(f"{'yes' if held else 'NO '} {name}: {observed[:160]}", flush=True)

        run.fault_name = name
        return run

    return wrap


def raises(call, kind, *words):
    """`(message, held)`: whether `call()` raised `kind` with every word in its message."""
    try:
        call()
    except kind as e:
        text = str(e)
        return f"{type(e).__name__}: {text}", all(w in text for w in words)
    except Exception as e:
        return f"{type(e).__name__}: {e}", False
    return "no error", False


def quiet_fit(clf, *args, **kwargs):
    with contextlib.redirect_stdout(io.StringIO()):
        return clf.fit(*args, **kwargs)


_FITTED = {}


def fitted(names=True):
    """A classifier fitted once on string labels (3 trials), and its data: (clf, x, y)."""
    import numpy as np

    import kerasnas

    if not _FITTED:
        x, y = images(150, 0)
        labels = np.array(["left", "right", "bottom"])[y]
        directory = tempfile.mkdtemp(prefix="faults_fitted_")
        clf = kerasnas.ImageClassifier(directory=directory, seed=1, max_trials=3, verbose=False)
        quiet_fit(clf, x, labels, time_limit=60, epochs=2)
        _FITTED.update(clf=clf, x=x, y=labels)
    return _FITTED["clf"], _FITTED["x"], _FITTED["y"]


def copy_run():
    clf, _, _ = fitted()
    copy = os.path.join(tempfile.mkdtemp(prefix="faults_copy_"), "renamed")
    shutil.copytree(clf.project_dir, copy)
    return clf, copy


# ---------------------------------------------------------------------- the fault matrix


@fault("1 rejected fit", "ValueError / RuntimeError; classes_, predict unchanged")
def rejected_fit():
    from kerasnas.tasks.run_dir import DirectoryLock

    clf, x, _ = fitted()
    before = (clf.classes_.tolist(), clf.input_dtype_, clf.predict(x[:20]).tolist())
    new_x, new_y = images(40, 3, "float32")
    first, ok1 = raises(
        lambda: clf.fit(new_x, new_y.clip(0, 1), validation_data=(new_x[:5, :, :7], new_y[:5])),
        ValueError,
    )
    with DirectoryLock(clf.project_dir + ".lock"):
        second, ok2 = raises(lambda: clf.fit(new_x, new_y), RuntimeError, "Another process")
    after = (clf.classes_.tolist(), clf.input_dtype_, clf.predict(x[:20]).tolist())
    return f"{first[:60]} | {second[:50]} | unchanged={after == before}", ok1 and ok2 and (
        after == before
    )


@fault("2 SavedModel with resize_shape", "two calls equal; = predict_proba within 1e-5")
def saved_model_resize():
    import numpy as np
    import tensorflow as tf

    import kerasnas

    x, y = images(90, 4)
    small = x[:, ::2, ::2]
    clf = kerasnas.ImageClassifier(
        directory=tempfile.mkdtemp(), max_trials=1, resize_shape=(8, 8), verbose=False, seed=0
    )
    quiet_fit(clf, small, y, time_limit=30, epochs=2)
    path = clf.export(os.path.join(tempfile.mkdtemp(), "serving"))
    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    runs = [list(serve(tf.constant(small[:32])).values())[0].numpy() for _ in range(3)]
    spread = max(float(np.abs(r - runs[0]).max()) for r in runs)
    gap = float(np.abs(runs[0] - clf.predict_proba(small[:32])).max())
    return f"run-to-run {spread:.2g}, vs predict_proba {gap:.2g}", spread == 0 and gap <= 1e-5


@fault("3 resume with other classes", "ValueError naming overwrite=True, before training")
def other_classes():
    import kerasnas

    clf, x, y = fitted()
    other = kerasnas.ImageClassifier(directory=clf.directory, verbose=False)
    start = time.time()
    message, held = raises(
        lambda: other.fit(x, (y == "left").astype(int)), ValueError, "classes", "overwrite=True"
    )
    return message, held and time.time() - start < 5


@fault("4 bytes / datetime64 labels", "bytes decoded; datetime64 ValueError before training")
def unsavable_labels():
    import numpy as np

    import kerasnas

    x, y = images(60, 5)
    clf = kerasnas.ImageClassifier(directory=tempfile.mkdtemp(), max_trials=1, verbose=False)
    quiet_fit(clf, x, np.array([b"a", b"b", b"c"])[y], time_limit=30, epochs=1)
    again = kerasnas.load(clf.directory)
    decoded = again.classes_.tolist() == ["a", "b", "c"]
    dates = np.array(["2020-01-01", "2021-01-01", "2022-01-01"], dtype="datetime64[D]")[y]
    start = time.time()
    message, held = raises(lambda: clf.fit(x, dates), ValueError, "`y`")
    fast = time.time() - start < 5
    return f"classes {again.classes_.tolist()}; {message}", decoded and held and fast


_DISK_FULL_CHILD = """
import sys, numpy as np
sys.path.insert(0, {here!r})
from faults import images
import kerasnas
x, y = images(300, 6)
clf = kerasnas.ImageClassifier(directory={directory!r}, seed=0, max_trials=8, verbose=False)
try:
    clf.fit(x, y, time_limit=60, epochs=2)
except OSError as e:
    print("FIT-RAISED", e.errno, e)
    raise SystemExit(3)
print("FIT-DONE")
"""


@fault("5 disk full", "one OSError (ENOSPC), normal exit, resumable, no empty JSON")
def disk_full():
    if os.geteuid() != 0:
        return "skipped: mounting a small tmpfs needs root", True
    mount = tempfile.mkdtemp(prefix="faults_tmpfs_")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mount])
    if done.returncode != 0:
        return "skipped: cannot mount a tmpfs here", True
    try:
        code = _DISK_FULL_CHILD.format(here=os.path.dirname(__file__), directory=mount)
        child = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
        )
        lines = [line for line in child.stdout.splitlines() if line.startswith("FIT-")]
        raised = bool(lines) and lines[-1].startswith("FIT-RAISED 28")
        empty = [
            p
            for p in glob.glob(os.path.join(mount, "**", "*.json"), recursive=True)
            if os.path.getsize(p) == 0
        ]
        saved = os.path.join(tempfile.mkdtemp(prefix="faults_full_"), "run")
        shutil.copytree(mount, saved)
    finally:
        subprocess.run(["umount", mount])
    resumed = subprocess.run(
        [
            sys.executable,
            "-c",
            _DISK_FULL_CHILD.format(here=os.path.dirname(__file__), directory=saved),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    resumed_ok = resumed.returncode == 0 and "FIT-DONE" in resumed.stdout
    observed = (
        f"exit {child.returncode}; {lines[-1][:90] if lines else child.stderr[-120:]}; "
        f"empty JSON {len(empty)}; resume exit {resumed.returncode}"
    )
    held = child.returncode == 3 and raised and not empty and resumed_ok
    return observed, held


@fault("6 corrupt best checkpoint", "load names the file; fit falls back, says so")
def corrupt_checkpoint():
    import kerasnas

    clf, copy = copy_run()
    path = os.path.join(copy, f"trial_{clf.best_trial_id_}", "checkpoint.weights.h5")
    with open(path, "wb") as f:
        f.write(b"\x89HDF garbage")
    message, named = raises(lambda: kerasnas.load(copy), ValueError, path)
    _, x, y = fitted()
    again = kerasnas.ImageClassifier(
        directory=os.path.dirname(copy), project_name="renamed", seed=1, max_trials=3, verbose=False
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_fit(again, x, y, time_limit=30, epochs=2)
    said = any("Using trial" in str(w.message) for w in caught)
    fell_back = again.best_trial_id_ != clf.best_trial_id_
    return f"{message[:90]} | fell back to {again.best_trial_id_}", named and said and fell_back


@fault("7 corrupt JSON files", "errors name the file (or rebuild, with a warning)")
def corrupt_json():
    import kerasnas

    observed, held = [], True
    # kerasnas.json: load names it.
    clf, copy = copy_run()
    with open(os.path.join(copy, "kerasnas.json"), "w") as f:
        f.write('{"task": "class')
    message, ok = raises(lambda: kerasnas.load(copy), ValueError, "kerasnas.json", "overwrite=True")
    observed.append(message[:70])
    held &= ok
    # An empty trial.json and a truncated oracle.json: resuming goes on.
    _, x, y = fitted()
    clf, _ = copy_run()
    first = sorted(glob.glob(os.path.join(clf.project_dir, "trial_*")))[0]
    for name in (f"{os.path.basename(first)}/trial.json", "oracle.json"):
        clf, copy = copy_run()
        with open(os.path.join(copy, name), "w") as f:
            f.write("" if name.endswith("trial.json") else '{"ongoing')
        again = kerasnas.ImageClassifier(
            directory=os.path.dirname(copy), project_name="renamed", max_trials=4, verbose=False
        )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                quiet_fit(again, x, y, time_limit=30, epochs=1)
            observed.append(f"{name}: resumed")
        except Exception as e:
            text = f"{type(e).__name__}: {e}"
            observed.append(f"{name}: {text[:80]}")
            held &= os.path.basename(name) in text
    return " | ".join(observed), held


@fault("8 renamed run folder", "load opens it where it is, writes nothing")
def renamed_run():
    import numpy as np

    import kerasnas

    clf, copy = copy_run()

    def listing():
        return {
            os.path.relpath(os.path.join(d, f), os.path.dirname(copy)): os.stat(
                os.path.join(d, f)
            ).st_mtime_ns
            for d, _, names in os.walk(os.path.dirname(copy))
            for f in names
        } | {d: 0 for d, _, _ in os.walk(os.path.dirname(copy))}

    before = listing()
    again = kerasnas.load(copy)
    _, x, _ = fitted()
    same = np.allclose(again.predict_proba(x[:20]), clf.predict_proba(x[:20]), atol=1e-6)
    unchanged = listing() == before
    return f"same predictions {same}, nothing written {unchanged}", same and unchanged


@fault("9 paths in kerasnas.json", "only names inside the run directory")
def confined_paths():
    import kerasnas

    clf, copy = copy_run()
    path = os.path.join(copy, "kerasnas.json")
    with open(path) as f:
        metadata = json.load(f)
    with open(path, "w") as f:
        json.dump({**metadata, "project_name": "../other/run"}, f)
    opened = kerasnas.load(copy).project_dir == copy
    with open(path, "w") as f:
        json.dump({**metadata, "final_weights": "/etc/passwd"}, f)
    message, refused = raises(lambda: kerasnas.load(copy), ValueError, "final_weights")
    return f"project_name ignored {opened}; {message[:80]}", opened and refused


def _bad_inputs():
    import numpy as np
    import tensorflow as tf

    x, y = images(40, 7)
    return [
        ("y with None", {"y": [0, 1, None, 2] * 10}, "y"),
        ("y mixed int/str", {"y": [0, "a"] * 20}, "y"),
        ("max_trials=-1", {"init": {"max_trials": -1}}, "max_trials"),
        ("max_trials=0", {"init": {"max_trials": 0}}, "max_trials"),
        ("epochs=-1", {"epochs": -1}, "epochs"),
        ("batch_size=-1", {"batch_size": -1}, "batch_size"),
        ("resize_shape=(0, 0)", {"init": {"resize_shape": (0, 0)}}, "resize_shape"),
        ("complex images", {"x": x.astype(complex)}, "`x`"),
        ("values near 1e300", {"x": np.full((40, 8, 8), 1e300)}, "`x`"),
        ("time_limit=True", {"time_limit": True}, "time_limit"),
        ("ragged list x", {"x": [np.zeros((8, 8))] * 39 + [np.zeros((9, 9))]}, "`x`"),
        ("continuous float labels", {"y": np.random.default_rng(0).random(40)}, "ImageRegressor"),
        (
            "drop_remainder Dataset",
            {
                "x": tf.data.Dataset.from_tensor_slices((x, np.zeros(40, int))).batch(
                    8, drop_remainder=True
                ),
                "y": None,
            },
            "at least 2 classes",
        ),
    ]


@fault("10 input checks", "ValueError naming the argument, before any training")
def input_checks():
    import numpy as np

    import kerasnas

    x, y = images(40, 7)
    failures = []
    for label, change, word in _bad_inputs():
        change = dict(change)
        init = change.pop("init", {})
        arguments = {"x": x, "y": y, "time_limit": 20, **change}
        clf = kerasnas.ImageClassifier(directory=tempfile.mkdtemp(), verbose=False, **init)
        start = time.time()
        message, held = raises(lambda clf=clf, a=arguments: clf.fit(**a), ValueError, word)
        if not held or time.time() - start > 5:
            failures.append(f"{label}: {message[:60]}")
    for value in (np.float32(10), np.int64(10)):  # accepted: stopped by the lock instead
        from kerasnas.tasks.run_dir import DirectoryLock

        clf = kerasnas.ImageClassifier(directory=tempfile.mkdtemp(), verbose=False)
        with DirectoryLock(clf.project_dir + ".lock"):
            message, held = raises(
                lambda clf=clf, v=value: clf.fit(x, y, time_limit=v), RuntimeError
            )
        if not held:
            failures.append(f"time_limit={value!r}: {message[:60]}")
    fitted_clf, fx, fy = fitted()
    message, held = raises(lambda: fitted_clf.final_fit(fx, fy, time_limit="10"), ValueError)
    if not held or "time_limit" not in message:
        failures.append(f"final_fit time_limit='10': {message[:60]}")
    checked = len(_bad_inputs()) + 3
    return f"{checked - len(failures)}/{checked} refused as expected; {failures}", not failures


@fault("11 CLI failures", "one line and exit 2 (expected); traceback file (unexpected)")
def cli_failures():
    import numpy as np

    kerasnas_cli = shutil.which("kerasnas") or ""
    command = [kerasnas_cli] if kerasnas_cli else [sys.executable, "-m", "kerasnas.cli"]
    root = tempfile.mkdtemp(prefix="faults_cli_")
    x, y = images(30, 8)
    np.savez(os.path.join(root, "data.npz"), x=x, y=np.array([b"a", b"b", b"c"])[y])
    open(os.path.join(root, "a_file"), "w").close()
    clf, copy = copy_run()
    with open(os.path.join(copy, "kerasnas.json"), "w") as f:
        f.write("{")
    cases = [
        ["fit", os.path.join(root, "data.npz"), "--directory", os.path.join(root, "a_file")],
        ["fit", os.path.join(root, "data.npz"), "--directory", root, "--max-trials", "0"],
        ["predict", copy, "x.png"],
        ["report", os.path.join(root, "missing")],
    ]
    bad = []
    for case in cases:
        done = subprocess.run(command + case, capture_output=True, text=True, timeout=300)
        ours = [line for line in done.stderr.splitlines() if line.startswith("kerasnas:")]
        one_line = len(ours) == 1 and "Traceback" not in done.stderr  # TF may log lines too
        if done.returncode != 2 or not one_line:
            bad.append(f"{case[0]} -> {done.returncode}: {done.stderr.strip()[-80:]}")
    return f"{len(cases) - len(bad)}/{len(cases)} one-line exit 2; {bad}", not bad


@fault("13 AutoKeras environment", "sees the running interpreter's packages")
def autokeras_environment():
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import mnist

    python = mnist.make_environment(tempfile.mkdtemp(prefix="faults_env_"), with_pip=False)
    done = subprocess.run(
        [python, "-c", "import numpy, tensorflow, kerasnas; print(numpy.__file__)"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    import numpy

    ok = done.returncode == 0 and done.stdout.strip() == numpy.__file__
    return (done.stdout.strip() or done.stderr.strip()[-100:]), ok


@fault("14 minor", "predict shape named; 'a\\x00' refused; uint8 labels stay uint8")
def minor():
    import numpy as np

    import kerasnas

    clf, _, _ = fitted()
    message, shape_named = raises(
        lambda: clf.predict(np.zeros((2, 9, 9), "uint8")), ValueError, "(8, 8)", "`fit`"
    )
    x, y = images(60, 9)
    nul, nul_refused = raises(
        lambda: kerasnas.ImageClassifier(directory=tempfile.mkdtemp()).fit(
            x, ["a\x00" if v else "a" for v in y], time_limit=20
        ),
        ValueError,
        "NUL",
    )
    u8 = kerasnas.ImageClassifier(directory=tempfile.mkdtemp(), max_trials=1, verbose=False)
    quiet_fit(u8, x, y.astype("uint8"), time_limit=30, epochs=1)
    dtype = kerasnas.load(u8.directory).predict(x[:3]).dtype
    observed = f"{message[:60]} | {nul[:40]} | loaded labels {dtype}"
    return observed, shape_named and nul_refused and dtype == np.uint8


# ---------------------------------------------------------------------- SIGKILL

KILLED_CHILD = """
import os, signal, sys, time
sys.path.insert(0, {here!r})
from faults import images
import kerasnas
from kerasnas import files
mode, n = {mode!r}, {n}
if mode in ("json", "checkpoint"):
    count = [0]

    def die_halfway(path):
        # Leave a torn file behind, as a kill in the middle of the write would.
        if os.path.exists(path):
            with open(path, "r+b") as f:
                f.truncate(os.path.getsize(path) // 2)
        os.kill(os.getpid(), signal.SIGKILL)

    if mode == "json":
        real = files.write_json

        def write_json(path, obj, indent=2):
            count[0] += 1
            if count[0] == n:
                import json, tempfile
                handle, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
                os.write(handle, json.dumps(obj).encode()[:50])
                os.kill(os.getpid(), signal.SIGKILL)  # dies with the temporary file half written
            return real(path, obj, indent)

        files.write_json = write_json
    else:
        import keras
        real = keras.Model.save_weights

        def save_weights(self, path, *args, **kwargs):
            real(self, path, *args, **kwargs)
            count[0] += 1
            if count[0] == n:
                die_halfway(path)

        keras.Model.save_weights = save_weights
x, y = images(300, 10)
clf = kerasnas.ImageClassifier(directory={directory!r}, seed=0, verbose=True)
print("START", time.time(), flush=True)
clf.fit(x, y, time_limit={time_limit}, epochs=3)
print("FIT-DONE", time.time(), flush=True)
"""


def completed_trials(project_dir):
    done = set()
    for path in glob.glob(os.path.join(project_dir, "trial_*", "trial.json")):
        try:
            with open(path) as f:
                if json.load(f).get("status") == "COMPLETED":
                    done.add(os.path.basename(os.path.dirname(path))[len("trial_") :])
        except (OSError, ValueError):
            pass
    return done


def kill_once(mode, n, rerun_limit, seed):
    """Runs a search killed at (mode, n); reruns it; returns a result dict."""
    directory = tempfile.mkdtemp(prefix=f"faults_kill_{mode}_")
    here = os.path.dirname(os.path.abspath(__file__))
    code = KILLED_CHILD.format(here=here, mode=mode, n=n, directory=directory, time_limit=40)
    child = subprocess.Popen(
        [sys.executable, "-u", "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    if mode == "time":
        # Wait for the search to start, then kill it n/10 s later.
        for line in child.stdout:
            if line.startswith("START"):
                break
        time.sleep(n / 10)
        child.kill()
    out, _ = child.communicate(timeout=300)
    killed = child.returncode == -9
    project = os.path.join(directory, "image_classifier")
    before = completed_trials(project)
    rerun_code = KILLED_CHILD.format(
        here=here, mode="none", n=0, directory=directory, time_limit=rerun_limit
    )
    start = time.time()
    rerun = subprocess.run(
        [sys.executable, "-u", "-c", rerun_code], capture_output=True, text=True, timeout=600
    )
    lines = rerun.stdout.splitlines()
    started = [float(line.split()[1]) for line in lines if line.startswith("START")]
    ended = [float(line.split()[1]) for line in lines if line.startswith("FIT-DONE")]
    fit_seconds = ended[0] - started[0] if started and ended else float("nan")
    after = completed_trials(project)
    result = {
        "kill": f"{mode}:{n}",
        "killed": killed,
        "completed_before": len(before),
        "rerun_exit": rerun.returncode,
        "rerun_fit_s": round(fit_seconds, 1),
        "process_s": round(time.time() - start, 1),
        "lost": sorted(before - after),
        "completed_after": len(after),
    }
    result["held"] = (
        rerun.returncode == 0 and fit_seconds <= rerun_limit + SLACK and not result["lost"]
    )
    if rerun.returncode != 0:
        result["error"] = (rerun.stderr.strip().splitlines() or ["?"])[-1][:160]
    return result


def kill_matrix(kills, seed):
    rng = random.Random(seed)
    points = []
    for i in range(kills):
        mode = ("time", "json", "checkpoint")[i % 3]
        if mode == "time":
            points.append((mode, rng.randint(20, 300)))  # 2 to 30 s into the search
        elif mode == "json":
            points.append((mode, rng.randint(2, 14)))  # the n-th JSON write
        else:
            points.append((mode, rng.randint(1, 8)))  # the n-th checkpoint write
    results = []
    for mode, n in points:
        result = kill_once(mode, n, rerun_limit=20, seed=seed)
        print(json.dumps(result), flush=True)
        results.append(result)
    return results


# ---------------------------------------------------------------------- main


CHECKS = [
    rejected_fit,
    saved_model_resize,
    other_classes,
    unsavable_labels,
    disk_full,
    corrupt_checkpoint,
    corrupt_json,
    renamed_run,
    confined_paths,
    input_checks,
    cli_failures,
    autokeras_environment,
    minor,
]


def table(rows):
    lines = ["| fault | expected | observed | held |", "| --- | --- | --- | --- |"]
    for name, expected, observed, held, _ in rows:
        cell = observed.replace("|", "/")
        lines.append(f"| {name} | {expected} | {cell} | {'yes' if held else 'no'} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10, help="SIGKILL points (default 10)")
    parser.add_argument("--skip-kills", action="store_true")
    parser.add_argument("--only", default="", help="comma-separated fault numbers to run")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import keras

    keras.utils.set_random_seed(args.seed)
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    for check in CHECKS:
        if not only or check.fault_name.split()[0] in only:
            check()
    if not args.skip_kills and (not only or "kill" in only):
        results = kill_matrix(args.kills, args.seed)
        held = sum(r["held"] for r in results)
        worst = max((r["rerun_fit_s"] for r in results), default=0)
        lost = sum(len(r["lost"]) for r in results)
        ROWS.append(
            (
                f"SIGKILL x{len(results)}",
                "rerun within limit (20 s + 10), no completed trial lost",
                f"{held}/{len(results)} held; slowest rerun fit {worst:.1f} s; lost trials {lost}; "
                + "; ".join(
                    f"{r['kill']}: {r.get('error', 'ok')}" for r in results if not r["held"]
                ),
                held == len(results),
                0.0,
            )
        )
    print()
    print(table(ROWS))
    return 0 if all(r[3] for r in ROWS) else 1


if __name__ == "__main__":
    sys.exit(main())
