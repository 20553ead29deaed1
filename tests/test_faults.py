"""Faults a search must survive that the other test files leave out.

A kill in the middle of a checkpoint write, a disk that really fills up, a run whose
trial and oracle files were damaged before it resumed, a Dataset of one class, and the
CLI's `report` on a folder that is not there. (`benchmarks/faults.py` kills searches at
many more moments; this file runs one of them.)
"""

from __future__ import annotations

import errno
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

import kerasnas
from kerasnas.testing import quadrant_images

# A search in a child process that kills itself with SIGKILL halfway through the first
# checkpoint copy into the folder `kill_in` (a trial's), leaving the half-written
# temporary file that the copy would have renamed.
SEARCH = """
import os
import kerasnas
from kerasnas.testing import die_halfway_through, quadrant_images

die_halfway_through(
    "checkpoint", lambda path, count: os.path.basename(os.path.dirname(path)) == {kill_in!r}
)
x, y = quadrant_images(300, 10)
clf = kerasnas.ImageClassifier(directory={directory!r}, seed=0, verbose=True)
clf.fit(x, y, time_limit=40, epochs=3)
"""


def statuses(project):
    """`{trial id: status}` from the readable trial files of a run."""
    found = {}
    for path in project.glob("trial_*/trial.json"):
        try:
            found[path.parent.name[len("trial_") :]] = json.loads(path.read_text())["status"]
        except (OSError, ValueError, KeyError):
            pass
    return found


@pytest.mark.slow
def test_a_search_killed_mid_checkpoint_write_resumes_without_losing_trials(tmp_path):
    code = SEARCH.format(kill_in="trial_0001", directory=str(tmp_path))
    child = subprocess.run(
        [sys.executable, "-u", "-c", code], capture_output=True, text=True, timeout=300
    )
    assert child.returncode == -9, child.stdout[-2000:] + child.stderr[-2000:]
    project = tmp_path / "image_classifier"
    assert list(project.glob("trial_0001/.checkpoint.weights.h5.*.tmp"))  # the torn copy
    completed = {t for t, s in statuses(project).items() if s == "COMPLETED"}
    assert completed == {"0000"}

    x, y = quadrant_images(300, 10)
    clf = kerasnas.ImageClassifier(directory=str(tmp_path), seed=0, verbose=False)
    start = time.time()
    clf.fit(x, y, time_limit=15, epochs=3)
    assert time.time() - start <= 15 + 10
    history = clf.history.set_index("trial_id")
    assert all(history.loc[t, "status"] == "COMPLETED" for t in completed)
    assert len(history) > len(completed)
    assert kerasnas.load(tmp_path).predict(x[:5]).shape == (5,)


FILL_DISK = """
import sys
import kerasnas
from kerasnas.testing import quadrant_images
x, y = quadrant_images(300, 6)
clf = kerasnas.ImageClassifier(directory={directory!r}, seed=0, max_trials=8, verbose=False)
try:
    clf.fit(x, y, time_limit=60, epochs=2)
except OSError as e:
    print("FIT-RAISED", e.errno, e)
    sys.exit(3)
print("FIT-DONE")
"""


@pytest.fixture
def small_disk():
    """A 1 MiB tmpfs mounted for the test (it needs root); skips where none can be."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a small tmpfs needs root")
    mount = tempfile.mkdtemp(prefix="kerasnas_small_disk_")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mount], capture_output=True
    )
    if done.returncode != 0:
        os.rmdir(mount)
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mount
    finally:
        subprocess.run(["umount", mount], check=False)
        os.rmdir(mount)


@pytest.mark.slow
def test_a_search_on_a_full_disk_stops_with_one_error_and_resumes_elsewhere(small_disk, tmp_path):
    child = subprocess.run(
        [sys.executable, "-c", FILL_DISK.format(directory=small_disk)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert child.returncode == 3, child.stdout[-2000:] + child.stderr[-2000:]  # no crash
    (line,) = [line for line in child.stdout.splitlines() if line.startswith("FIT-")]
    assert line.startswith(f"FIT-RAISED {errno.ENOSPC} ") and "No space left" in line
    for path in pathlib.Path(small_disk).rglob("*.json"):
        json.loads(path.read_text())  # none torn, none empty
    shutil.copytree(small_disk, tmp_path / "run")
    done = statuses(tmp_path / "run" / "image_classifier")

    x, y = quadrant_images(300, 6)
    clf = kerasnas.ImageClassifier(
        directory=str(tmp_path / "run"), seed=0, max_trials=8, verbose=False
    )
    clf.fit(x, y, time_limit=20, epochs=2)
    history = clf.history.set_index("trial_id")
    assert all(history.loc[t, "status"] == "COMPLETED" for t, s in done.items() if s == "COMPLETED")
    assert kerasnas.load(tmp_path / "run").predict(x[:3]).shape == (3,)


@pytest.mark.slow
def test_resuming_a_run_with_an_empty_trial_file_and_torn_oracle_and_tuner_files(
    fitted_classifier, tmp_path
):
    """The damaged trial counts as failed; the oracle's state is rebuilt from the trials;
    a torn tuner file is read as the empty state it always holds."""
    clf, directory = fitted_classifier
    copy = tmp_path / "run"
    shutil.copytree(directory / "image_classifier", copy)
    damaged = min(clf.history["trial_id"])
    (copy / f"trial_{damaged}" / "trial.json").write_text("")
    (copy / "oracle.json").write_text('{"ongoing_trials": {"tuner0"')
    (copy / "tuner0.json").write_text("{")
    x, y = quadrant_images(240, 0)
    again = kerasnas.ImageClassifier(
        directory=str(tmp_path), project_name="run", seed=1, max_trials=6, verbose=False
    )
    again.fit(x, np.array(["left", "right", "bottom"])[y], time_limit=20, epochs=1)
    history = again.history.set_index("trial_id")
    assert history.loc[damaged, "status"] == "FAILED"
    others = [t for t in clf.history["trial_id"] if t != damaged]
    assert (history.loc[others, "status"] == "COMPLETED").all()
    assert again.best_trial_id_ != damaged


def test_a_dataset_of_one_class_is_refused_before_training(tmp_path):
    import tensorflow as tf

    x, _ = quadrant_images(40, 7)
    dataset = tf.data.Dataset.from_tensor_slices((x, np.zeros(40, int)))
    clf = kerasnas.ImageClassifier(directory=str(tmp_path), verbose=False)
    with pytest.raises(ValueError, match=r"at least 2 classes in `y`; got only \[0\]"):
        clf.fit(dataset.batch(8, drop_remainder=True), time_limit=20)
    assert not (tmp_path / "image_classifier").exists()


def test_report_on_a_missing_run_is_one_line_with_status_2(tmp_path, capsys):
    from kerasnas import cli

    status = cli.main(["report", str(tmp_path / "missing")])
    err = capsys.readouterr().err
    assert status == 2
    assert (
        err.startswith("kerasnas: error: No finished kerasnas search in ") and err.count("\n") == 1
    ), err
