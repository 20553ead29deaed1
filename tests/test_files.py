"""Run files: weights written whole, and the scratch space of killed writers reclaimed."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from kerasnas import files


def dead_pid():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_the_scratch_folders_of_gone_writers_are_removed(tmp_path):
    gone = tmp_path / f"{files.SCRATCH_PREFIX}{dead_pid()}_abc"
    alive = tmp_path / f"{files.SCRATCH_PREFIX}{os.getpid()}_def"
    other = tmp_path / "kerasnas_weights_notapid"
    for folder in (gone, alive, other):
        folder.mkdir()
        (folder / "w.weights.h5").write_bytes(b"x" * 10)
    files.remove_stale_scratch(str(tmp_path))
    assert not gone.exists()
    assert alive.exists() and other.exists()


def test_weights_are_saved_whole_and_leave_no_scratch(tmp_path, monkeypatch):
    import keras

    scratch = tmp_path / "shm"
    scratch.mkdir()
    monkeypatch.setattr(files, "SHARED_MEMORY", str(scratch))
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    path = tmp_path / "run" / "m.weights.h5"
    path.parent.mkdir()
    files.save_weights(model, str(path))
    again = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    again.load_weights(str(path))
    for a, b in zip(model.get_weights(), again.get_weights()):
        assert (a == b).all()
    assert os.listdir(scratch) == []


def test_a_damaged_json_file_is_named(tmp_path):
    path = tmp_path / "oracle.json"
    path.write_text('{"trials": [')
    with pytest.raises(files.RunFileError, match="oracle.json"):
        files.read_json(str(path))
