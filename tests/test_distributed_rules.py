"""The distributed mode's rules in one process, without training: a worker's bounded
wait, the chief's end, and reports that outlive a chief (`kerasnas.distributed`).

The end-to-end runs, with real processes killed, are in test_distributed.py.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time

import pytest
from keras_tuner.engine import trial as trial_module

from kerasnas import distributed, trials
from kerasnas.oracle import NetworkMorphismOracle


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def cluster(monkeypatch):
    """The `KERASTUNER_*` variables of a worker, with a free port on 127.0.0.1."""
    port = free_port()
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", str(port))
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "tuner0")
    return f"127.0.0.1:{port}"


def make_oracle(directory, **kwargs):
    oracle = NetworkMorphismOracle((8, 8, 1), 3, seed=1, **kwargs)
    oracle._set_project_dir(str(directory), "search")
    return oracle


def client_of(oracle, chief_timeout):
    from keras_tuner.src.distribute.oracle_client import OracleClient

    return distributed.bound_worker(OracleClient(oracle), chief_timeout)


def complete(client, trial, score=0.5):
    client.update_trial(trial.trial_id, {"val_accuracy": score})
    trial.status = "COMPLETED"
    client.end_trial(trial)


def test_a_worker_without_a_chief_stops_after_chief_timeout(tmp_path, cluster):
    client = client_of(make_oracle(tmp_path), chief_timeout=1.0)
    start = time.monotonic()
    with pytest.raises(distributed.ChiefUnreachableError, match=f"chief at {cluster} gave no"):
        client.create_trial("tuner0")
    assert 0.9 <= time.monotonic() - start < 30


def test_the_worker_error_stops_a_keras_tuner_search():
    from keras_tuner import errors

    # KerasTuner fails a trial on most errors and goes on; a FatalError stops `search`.
    assert issubclass(distributed.ChiefUnreachableError, errors.FatalError)


def test_without_a_deadline_the_chief_waits_and_says_how_to_free_it(tmp_path, cluster, caplog):
    oracle = make_oracle(tmp_path, max_trials=1)
    # A daemon: a failed test leaves no thread that keeps pytest from exiting.
    chief = threading.Thread(
        target=distributed.serve,
        args=(oracle,),
        kwargs={"worker_grace": 0.5, "poll": 0.05},
        daemon=True,
    )
    chief.start()
    client = client_of(make_oracle(tmp_path / "worker"), chief_timeout=30)
    trial = client.create_trial("tuner0")
    assert trial.status == "RUNNING"
    assert client.create_trial("tuner1").status == "STOPPED"  # max_trials reached
    time.sleep(1.5)
    waiting = [r.getMessage() for r in caplog.records if "search is over" in r.getMessage()]
    assert len(waiting) == 1  # said once
    assert f"but for trial {trial.trial_id} (tuner0)" in waiting[0]
    assert "start a worker with the same KERASTUNER_TUNER_ID" in waiting[0]
    assert chief.is_alive()  # without a deadline, the chief waits for the trial
    complete(client, trial)
    assert client.create_trial("tuner0").status == "STOPPED"
    chief.join(timeout=10)
    assert not chief.is_alive()


def test_the_chief_ends_by_its_deadline_plus_grace_without_a_lost_trial(tmp_path, cluster, caplog):
    oracle = make_oracle(tmp_path)
    lost = oracle.create_trial("tuner0")  # its worker never reports it
    oracle.set_deadline(time.time() - 0.5)
    start = time.time()
    with caplog.at_level(logging.WARNING, logger="kerasnas"):
        distributed.serve(oracle, worker_grace=1.0, poll=0.05)
    assert time.time() - start < 10
    messages = [r.getMessage() for r in caplog.records]
    assert any(f"no worker has reported trial {lost.trial_id} (tuner0)" in m for m in messages)


def test_the_chief_names_an_address_it_cannot_listen_on(tmp_path, monkeypatch):
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "192.0.2.1")  # TEST-NET: not this machine's
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", str(free_port()))
    with pytest.raises(OSError, match=r"cannot listen on 192\.0\.2\.1:\d+"):
        distributed.serve(make_oracle(tmp_path), poll=0.05)


def restarted_chief(tmp_path, deadline=None):
    """A chief killed with trial 0 running for tuner0, and the one started after it."""
    first = make_oracle(tmp_path, max_trials=3)
    first.set_deadline(deadline and deadline - 100)
    running = first.create_trial("tuner0")
    second = make_oracle(tmp_path, max_trials=3)
    second.reload()
    second.set_deadline(deadline)
    return second, running


def request(name, **fields):
    from keras_tuner.src import protos

    return getattr(protos.get_service(), name)(**fields)


def test_a_report_that_outlives_its_chief_ends_the_trial_once(tmp_path):
    oracle, running = restarted_chief(tmp_path)
    assert oracle._retry_queue == [running.trial_id]  # put back in line, as KerasTuner does
    servicer = distributed._servicer(oracle)
    metrics = {"val_accuracy": 0.5}
    update = request("UpdateTrialRequest", trial_id=running.trial_id, metrics=metrics)
    servicer.UpdateTrial(update, None)
    running.status = "COMPLETED"
    for _ in range(2):  # the worker's report, then the same report again
        servicer.EndTrial(request("EndTrialRequest", trial=running.to_proto()), None)
    assert oracle.end_order == [running.trial_id]
    assert oracle._retry_queue == []  # not trained again
    assert oracle.get_trial(running.trial_id).status == "COMPLETED"
    assert oracle.create_trial("tuner1").trial_id != running.trial_id


def test_the_chiefs_file_never_lists_an_ended_trial_as_running(tmp_path):
    oracle = make_oracle(tmp_path, max_trials=3)
    servicer = distributed._servicer(oracle)
    response = servicer.CreateTrial(request("CreateTrialRequest", tuner_id="tuner0"), None)
    trial = trial_module.Trial.from_proto(response.trial)
    metrics = {"val_accuracy": 0.5}
    update = request("UpdateTrialRequest", trial_id=trial.trial_id, metrics=metrics)
    servicer.UpdateTrial(update, None)
    trial.status = "COMPLETED"
    servicer.EndTrial(request("EndTrialRequest", trial=trial.to_proto()), None)
    state = json.loads((tmp_path / "search" / "oracle.json").read_text())
    assert state["ongoing_trials"] == {}
    assert state["end_order"] == [trial.trial_id]


def test_a_rerun_chief_does_not_hand_out_a_trial_that_ended(tmp_path):
    first = make_oracle(tmp_path, max_trials=3)
    trial = first.create_trial("tuner0")
    first.update_trial(trial.trial_id, {"val_accuracy": 0.5})
    trial.status = "COMPLETED"
    first.end_trial(trial)  # KerasTuner saves before it lets the trial go
    second = make_oracle(tmp_path, max_trials=3)
    second.reload()
    assert second._retry_queue == [trial.trial_id]  # what KerasTuner alone would retrain
    second.forget_ended()
    assert second._retry_queue == []
    assert second.create_trial("tuner1").trial_id != trial.trial_id
    state = json.loads((tmp_path / "search" / "oracle.json").read_text())
    assert state["retry_queue"] == []


def test_a_trial_handed_out_again_carries_the_chiefs_deadline_of_now(tmp_path):
    deadline = time.time() + 600
    oracle, running = restarted_chief(tmp_path, deadline)
    assert trials.plan_of(running).deadline == deadline - 100
    servicer = distributed._servicer(oracle)
    response = servicer.CreateTrial(request("CreateTrialRequest", tuner_id="tuner1"), None)
    handed = trial_module.Trial.from_proto(response.trial)
    assert handed.trial_id == running.trial_id
    assert trials.plan_of(handed).deadline == deadline
    # The chief's own record keeps the plan it made; only the worker's copy changes.
    assert trials.plan_of(oracle.get_trial(running.trial_id)).deadline == deadline - 100


def test_the_tuner_checks_its_distributed_arguments(tmp_path):
    from kerasnas.tuner import MorphismTuner

    oracle = make_oracle(tmp_path)
    with pytest.raises(ValueError, match="chief_timeout"):
        MorphismTuner(oracle, loss="mse", directory=tmp_path, chief_timeout=0)
    with pytest.raises(ValueError, match="worker_grace"):
        MorphismTuner(oracle, loss="mse", directory=tmp_path, worker_grace=-1)
