"""Run files: weights written whole, and the scratch space of killed writers reclaimed."""

from __future__ import annotations

import json
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


def test_json_depth_is_found_without_recursion():
    assert files.json_depth('{"a": [1, [2, "]]]\\"[["]]}') == 3
    assert files.json_depth("7") == 0
    assert files.json_depth("[" * 100_000 + "]" * 100_000) == 100_000


def test_a_file_over_the_size_cap_is_refused_unparsed(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "MAX_JSON_BYTES", 1000)
    path = tmp_path / "trial.json"
    path.write_text(json.dumps({"x": "a" * 1000}))
    parsed = []
    monkeypatch.setattr(files, "loads", lambda *a, **k: parsed.append(a))
    with pytest.raises(files.RunFileError, match=r"trial\.json is larger than 1,000 bytes"):
        files.read_json(str(path))
    assert not parsed


def test_a_file_at_the_real_caps_is_refused(tmp_path):
    path = tmp_path / "oracle.json"
    path.write_bytes(b" " * (files.MAX_JSON_BYTES + 1))
    with pytest.raises(files.RunFileError, match=r"oracle\.json is larger than 33,554,432"):
        files.read_json(str(path))


def test_deep_nesting_is_refused_before_parsing(tmp_path):
    path = tmp_path / "kerasnas.json"
    path.write_text("[" * 100_000 + "]" * 100_000)  # json.loads raises RecursionError
    with pytest.raises(files.RunFileError, match=r"kerasnas\.json was not written by kerasnas: "):
        files.read_json(str(path))
    path.write_text("[" * files.MAX_JSON_DEPTH + "]" * files.MAX_JSON_DEPTH)
    assert files.json_depth(path.read_text()) == files.MAX_JSON_DEPTH
    files.read_json(str(path))  # at the cap: read


def test_a_number_too_long_to_convert_is_named(tmp_path):
    path = tmp_path / "trial.json"
    path.write_text('{"x": ' + "9" * 10_000 + "}")
    with pytest.raises(files.RunFileError, match=r"trial\.json was not written by kerasnas"):
        files.read_json(str(path))


def test_loads_refuses_deep_text_with_a_value_error():
    with pytest.raises(ValueError, match="nested 3 levels deep; kerasnas writes no JSON deeper"):
        files.loads("[[[]]]", max_depth=2)
    assert files.loads('{"a": [1]}') == {"a": [1]}
