"""What earlier versions wrote still works: recorded searches replay to the same decisions,
and a run directory written by kerasnas 0.1.0 (before the oracle and estimator split)
still loads, predicts and resumes."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

import kerasnas
from kerasnas.testing import REPLAY_SCENARIOS, quadrant_images, replay_search

DATA = os.path.join(os.path.dirname(__file__), "data")
NAMES = np.array(["left", "right", "bottom"])


def recorded_replays():
    with open(os.path.join(DATA, "oracle_replay.json")) as f:
        return json.load(f)


@pytest.mark.parametrize("scenario", sorted(REPLAY_SCENARIOS))
def test_a_recorded_search_replays_to_the_same_proposals_and_plans(tmp_path, scenario):
    # tests/data/oracle_replay.json holds the decisions of these replays as they were
    # last changed on purpose (`kerasnas.testing.record_replays`): the oracle of 0.1.0
    # (5b0f3f8) wrote it before its split, which changed no decision; the refinement's
    # full rate (635e7b2), the first CNN that pools after every convolution and the
    # threshold of fifty augmented epochs (2026-12-07) rewrote it.
    recorded = recorded_replays()[scenario]
    decisions, oracle = replay_search(tmp_path, **REPLAY_SCENARIOS[scenario])
    assert (oracle.width, oracle.augment) == (recorded["width"], recorded["augment"])
    assert len(decisions) == len(recorded["decisions"])
    for got, want in zip(decisions, recorded["decisions"]):
        assert got["architecture"] == want["architecture"], got["trial_id"]
        assert (got["trial_id"], got["parent"], got["refine"]) == (
            want["trial_id"],
            want["parent"],
            want["refine"],
        )
        assert got["plan"].keys() >= want["plan"].keys() if want["plan"] else got["plan"] is None
        for key, value in (want["plan"] or {}).items():
            exact = value is None or isinstance(value, bool)
            expected = value if exact else pytest.approx(value, rel=1e-9)
            assert got["plan"][key] == expected, (got["trial_id"], key)
        assert got["epochs"] == pytest.approx(want["epochs"], rel=1e-9)


@pytest.fixture
def old_run(tmp_path):
    """A copy of the run directory kerasnas 0.1.0 wrote: three trials of an 8x8 search on
    string labels (`ImageClassifier(seed=1, max_trials=3, max_model_size=40000)`)."""
    directory = tmp_path / "run"
    shutil.copytree(os.path.join(DATA, "run_0_1_0"), directory)
    return directory


def test_a_run_written_by_0_1_0_loads_and_predicts(old_run):
    clf = kerasnas.load(str(old_run))
    x, y = quadrant_images(60, 1)
    assert clf.evaluate(x, NAMES[y]) >= 0.9
    assert set(clf.predict(x[:10])) <= set(NAMES)
    assert list(clf.history["trial_id"]) == ["0", "1", "2"]


@pytest.mark.slow
def test_a_run_written_by_0_1_0_resumes_without_repeating_its_trials(old_run):
    x, y = quadrant_images(120, 0)
    clf = kerasnas.ImageClassifier(
        directory=str(old_run), seed=1, max_trials=4, max_model_size=40000, verbose=False
    )
    clf.fit(x, NAMES[y], time_limit=120, epochs=1)
    ids = list(clf.history["trial_id"])
    assert ids[:3] == ["0", "1", "2"] and len(ids) == 4
    assert clf.evaluate(*(lambda x, y: (x, NAMES[y]))(*quadrant_images(60, 1))) >= 0.9
