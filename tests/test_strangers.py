"""A run directory copied from someone else is data, never code: `kerasnas.load` refuses a
crafted file with a `RunFileError` that names it, before anything is built from it."""

from __future__ import annotations

import json
import os
import re
import shutil

import pytest

import kerasnas
from kerasnas import files, trials
from kerasnas.graph import Graph

DATA = os.path.join(os.path.dirname(__file__), "data")
BEST = "2"  # the best trial of tests/data/run_0_1_0, grown from trial 0


@pytest.fixture
def copied(tmp_path):
    """The run directory of a copy of the run kerasnas 0.1.0 wrote."""
    shutil.copytree(os.path.join(DATA, "run_0_1_0"), tmp_path / "run")
    return tmp_path / "run" / "image_classifier"


@pytest.fixture
def run(copied, monkeypatch):
    """`copied`, whose graphs must never reach Keras: a refusal comes first."""

    def refuse(graph, name=None):
        raise AssertionError(f"{name} was built from a crafted file")

    monkeypatch.setattr(Graph, "to_keras", refuse)
    return copied


def trial_file(run, trial_id=BEST):
    return run / f"trial_{trial_id}" / trials.TRIAL_FILE


def edit_trial(run, change, trial_id=BEST):
    """Rewrites a `trial.json` after `change(state)`, or after `change(state, config)` on
    its architecture's config."""
    path = trial_file(run, trial_id)
    state = json.loads(path.read_text())
    values = state["hyperparameters"]["values"]
    if change.__code__.co_argcount == 2:
        config = json.loads(values[trials.ARCHITECTURE])
        change(state, config)
        values[trials.ARCHITECTURE] = json.dumps(config)
    else:
        change(state)
    path.write_text(json.dumps(state))


def relus(n):
    return [
        {"name": f"relu_{i}", "type": "relu", "inputs": ["input"], "config": {}} for i in range(n)
    ]


CRAFTED = {
    "lambda_layer": (
        lambda s, c: c["layers"][0].update(
            type="Lambda", config={"function": "__import__('os').system('touch pwned')"}
        ),
        r"has unknown type 'Lambda'; expected one of",
    ),
    "a_billion_filters": (
        lambda s, c: c["layers"][0]["config"].update(filters=10**9),
        r"needs `filters` to be an int from 1 to 1,048,576",
    ),
    "a_million_layers": (  # 70 MB of trial.json: refused unread
        lambda s, c: c.update(layers=relus(10**6)),
        r"is larger than 33,554,432 bytes",
    ),
    "thirty_thousand_layers": (
        lambda s, c: c.update(layers=relus(30_000)),
        r"30,000 layers, more than the 20,000",
    ),
    "a_layer_reading_itself": (
        lambda s, c: c["layers"][1].update(inputs=[c["layers"][1]["name"]]),
        r"'batchnorm_1' reads itself",
    ),
    "a_layer_reading_a_later_one": (
        lambda s, c: c["layers"][1].update(inputs=["relu_2"]),
        r"'batchnorm_1' reads 'relu_2', which comes after it",
    ),
    "a_dangling_reference": (
        lambda s, c: c["layers"][1].update(inputs=["nowhere"]),
        r"'batchnorm_1' reads 'nowhere', which no layer makes",
    ),
    "a_deep_architecture": (
        lambda s, c: c.update(history="DEEP"),
        r"nested 100001 levels deep",
    ),
    "a_huge_file": (
        lambda s: s.update(padding="x" * (files.MAX_JSON_BYTES + 1)),
        r"is larger than 33,554,432 bytes",
    ),
    "a_deep_file": (
        lambda s: s.update(metrics={"metrics": "DEEP"}),
        r"was not written by kerasnas: nested 100002 levels deep",
    ),
    "a_foreign_hyperparameter_class": (
        lambda s: s["hyperparameters"]["space"].append({"class_name": "Lambda", "config": {}}),
        r"names hyperparameter classes \['Lambda'\]; only KerasTuner's",
    ),
}


@pytest.mark.parametrize("crafted", sorted(CRAFTED))
def test_a_crafted_trial_file_is_refused_and_named(run, crafted, monkeypatch):
    change, match = CRAFTED[crafted]
    edit_trial(run, change)
    path = trial_file(run)
    text = path.read_text()
    if '"DEEP"' in text or '\\"DEEP\\"' in text:  # nested 100,000 levels, in place
        path.write_text(
            text.replace('\\"DEEP\\"', "[" * 100_000 + "]" * 100_000).replace(
                '"DEEP"', "[" * 100_000 + "]" * 100_000
            )
        )
    monkeypatch.chdir(run)
    with pytest.raises(files.RunFileError, match=re.escape(str(path))) as e:
        kerasnas.load(str(run.parent))
    assert re.search(match, str(e.value)), str(e.value)
    assert e.value.path == str(path)
    assert not os.path.exists(run / "pwned")


def test_a_trial_naming_itself_as_parent_is_refused(run):
    edit_trial(run, lambda s: s["hyperparameters"]["values"].update(parent_trial_id=BEST))
    with pytest.raises(files.RunFileError, match=rf"names trial {BEST} itself as its parent") as e:
        kerasnas.load(str(run.parent))
    assert e.value.path == str(trial_file(run))


def test_two_trials_naming_each_other_as_parents_are_refused(run):
    edit_trial(run, lambda s: s["hyperparameters"]["values"].update(parent_trial_id="0"))
    edit_trial(run, lambda s: s["hyperparameters"]["values"].update(parent_trial_id=BEST), "0")
    with pytest.raises(files.RunFileError, match=r"name each other as parents in a cycle") as e:
        kerasnas.load(str(run.parent))
    assert str(trial_file(run)) in str(e.value) and str(trial_file(run, "0")) in str(e.value)
    assert f"(0 -> {BEST} -> 0)" in str(e.value)


@pytest.mark.parametrize(
    "key, value, match",
    [
        ("best_trial_id", "../../../tmp", r"best_trial_id='\.\./\.\./\.\./tmp', not a trial id"),
        ("final_weights", "../../x.weights.h5", r"only the name of a `\.weights\.h5` file"),
        ("ensemble", ["2", "../0"], r"not a list of trial ids"),
        ("input_shape", [8, 10**9], r"input_shape=\[8, 1000000000\], not the"),
    ],
)
def test_a_crafted_kerasnas_json_is_refused_and_named(run, key, value, match):
    path = run / "kerasnas.json"
    metadata = json.loads(path.read_text())
    metadata[key] = value
    path.write_text(json.dumps(metadata))
    with pytest.raises(files.RunFileError, match=match) as e:
        kerasnas.load(str(run.parent))
    assert e.value.path == str(path) and str(path) in str(e.value)


def test_a_deep_kerasnas_json_is_refused_and_named(run):
    path = run / "kerasnas.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(files.RunFileError, match=re.escape(f"{path} was not written by kerasnas")):
        kerasnas.load(str(run.parent))


def test_a_deep_oracle_json_is_named(run):
    path = run / "oracle.json"
    path.write_text('{"ongoing_trials": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(files.RunFileError, match=re.escape(f"{path} was not written by kerasnas")):
        files.read_json(str(path))


def test_the_run_as_written_still_loads(copied):
    clf = kerasnas.load(str(copied.parent))
    assert clf.best_trial_id_ == BEST
