"""KerasTuner's distributed mode: one chief serving the oracle, workers, a shared directory.

Each test runs `distributed_search.py` as separate processes on 127.0.0.1 and kills some
of them. Time bounds are generous (a loaded 2-core machine); each test prints the real
figures (run pytest with `-s` to see them).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

HERE = Path(__file__).parent
pytestmark = pytest.mark.slow
# What the deadline bounds allow beyond the figures on an idle machine (a few seconds).
SLACK = 15.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Search:
    """One process of the search; a thread reads its output as it comes, timing each line."""

    def __init__(self, tuner_id, directory, port, **env):
        environ = dict(
            os.environ,
            KERASTUNER_TUNER_ID=tuner_id,
            KERASTUNER_ORACLE_IP="127.0.0.1",
            KERASTUNER_ORACLE_PORT=str(port),
            PYTHONUNBUFFERED="1",
            **env,
        )
        self.popen = subprocess.Popen(
            [sys.executable, str(HERE / "distributed_search.py"), str(directory)],
            env=environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines = []  # (time.time(), line)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.popen.stdout:
            self.lines.append((time.time(), line))

    @property
    def output(self):
        return "".join(line for _, line in list(self.lines))

    def wait_for(self, prefix, timeout, contains=""):
        """The first line that starts with `prefix` (and holds `contains`), waiting for it."""
        end = time.time() + timeout
        while time.time() < end:
            for _, line in list(self.lines):
                if line.startswith(prefix) and contains in line:
                    return line
            if self.popen.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.2)
        raise AssertionError(f"no line starting with {prefix!r}:\n{self.output}")

    def times(self, prefix, contains=""):
        return [t for t, line in list(self.lines) if line.startswith(prefix) and contains in line]

    def finish(self, timeout):
        """Waits for the process to end; returns its exit status and its output."""
        self.popen.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return self.popen.returncode, self.output

    def kill(self):
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(timeout=30)


def done_at(output):
    """The time on the process' `DONE <id> <time>` line."""
    return float(next(line for line in output.splitlines() if line.startswith("DONE")).split()[2])


def read_search(directory):
    project = Path(directory) / "search"
    oracle = json.loads((project / "oracle.json").read_text())
    trials = {}
    for path in project.glob("trial_*/trial.json"):
        trial = json.loads(path.read_text())
        trials[trial["trial_id"]] = trial
    return oracle, trials


@pytest.fixture
def processes():
    """Every `Search` a test starts; those still running at its end are killed."""
    started = []
    yield started
    for process in started:
        process.kill()


def test_chief_and_two_workers_with_a_killed_worker(tmp_path, processes):
    # No time limit: the killed worker's trial waits for it, and its restart trains it.
    port = free_port()
    chief = Search("chief", tmp_path, port)
    victim = Search("tuner0", tmp_path, port, SLOW_BATCHES="1")
    worker = Search("tuner1", tmp_path, port)
    processes += [chief, victim, worker]
    # Kill tuner0 in the middle of its first trial, then restart it.
    killed_trial = victim.wait_for("Trial ", timeout=120).split()[1].rstrip(":")
    time.sleep(2)
    victim.popen.send_signal(signal.SIGKILL)
    victim.popen.wait(timeout=30)
    restarted = Search("tuner0", tmp_path, port)
    processes.append(restarted)
    outputs = {}
    for name, process in (("tuner0", restarted), ("tuner1", worker), ("chief", chief)):
        returncode, outputs[name] = process.finish(timeout=300)
        assert returncode == 0, outputs[name]

    project = tmp_path / "search"
    oracle, trials = read_search(tmp_path)
    # Every trial up to max_trials ran to completion exactly once.
    assert len(trials) == 6
    assert sorted(oracle["end_order"]) == sorted(trials)
    assert all(t["status"] == "COMPLETED" for t in trials.values())
    assert killed_trial in trials
    assert f"Trial {killed_trial}:" in outputs["tuner0"]  # picked up again after the restart
    # Children started from their parents' saved weights.
    children = [t for t in trials.values() if t["hyperparameters"]["values"]["parent_trial_id"]]
    assert children
    assert all("has no readable weights" not in out for out in outputs.values())
    for trial in trials.values():
        assert (project / f"trial_{trial['trial_id']}" / "checkpoint.weights.h5").exists()


def test_the_chiefs_deadline_holds_for_the_cluster_when_a_worker_is_lost(tmp_path, processes):
    # tuner0 is killed mid-trial and never comes back; tuner2 joins in its place.
    port = free_port()
    budget, grace = 40, 10
    env = {"MAX_EPOCHS": "50", "WORKER_GRACE": str(grace)}
    chief = Search("chief", tmp_path, port, DEADLINE_SECONDS=str(budget), **env)
    victim = Search("tuner0", tmp_path, port, SLOW_BATCHES="1", **env)
    worker = Search("tuner1", tmp_path, port, **env)
    processes += [chief, victim, worker]
    lost_trial = victim.wait_for("Trial ", timeout=120).split()[1].rstrip(":")
    time.sleep(2)
    victim.popen.send_signal(signal.SIGKILL)
    victim.popen.wait(timeout=30)
    killed_at = time.time()
    replacement = Search("tuner2", tmp_path, port, **env)
    processes.append(replacement)
    outputs = {}
    for name, process in (("tuner1", worker), ("tuner2", replacement), ("chief", chief)):
        returncode, outputs[name] = process.finish(timeout=budget + grace + 240)
        assert returncode == 0, outputs[name]

    oracle, trials = read_search(tmp_path)
    deadline = oracle["deadline"]
    # The deadline travelled in every trial's plan.
    for trial in trials.values():
        plan = json.loads(trial["hyperparameters"]["values"]["plan"])
        assert plan["deadline"] == deadline
    # The other worker kept training after the kill, and the replacement joined.
    assert worker.times("Trial ", contains="completed")[-1] > killed_at
    assert replacement.times("Trial ", contains="completed")
    # Every live worker's last trial ended, and its search returned, by the deadline.
    for name in ("tuner1", "tuner2"):
        print(
            f"{name}'s search returned {done_at(outputs[name]) - deadline:+.1f} s from the deadline"
        )
        assert done_at(outputs[name]) <= deadline + SLACK
    # The lost trial did not hold the chief past the deadline and its grace, and it
    # stays unfinished in the directory, for a rerun of the chief to hand out again.
    print(f"the chief returned {done_at(outputs['chief']) - deadline:+.1f} s from the deadline")
    assert done_at(outputs["chief"]) <= deadline + grace + SLACK
    assert outputs["chief"].count(f"no worker has reported trial {lost_trial} (tuner0)") == 1
    assert trials[lost_trial]["status"] == "RUNNING"
    assert oracle["ongoing_trials"] == {"tuner0": lost_trial}
    assert all(t["status"] == "COMPLETED" for i, t in trials.items() if i != lost_trial)


def test_workers_stop_when_the_chief_is_killed_and_a_rerun_chief_resumes(tmp_path, processes):
    port = free_port()
    timeout = 20
    chief = Search("chief", tmp_path, port)
    workers = [
        Search(name, tmp_path, port, SLOW_BATCHES="1", CHIEF_TIMEOUT=str(timeout))
        for name in ("tuner0", "tuner1")
    ]
    processes += [chief, *workers]
    workers[0].wait_for("Trial ", timeout=180, contains="completed")
    chief.popen.send_signal(signal.SIGKILL)
    chief.popen.wait(timeout=30)
    killed_at = time.time()
    # Each worker ends its trial, waits `chief_timeout` for the chief, then stops.
    for worker in workers:
        returncode, output = worker.finish(timeout=timeout + 120)
        waited = time.time() - killed_at
        print(f"a worker stopped {waited:.1f} s after the chief was killed, saying:")
        print(output.strip().splitlines()[-1])
        assert returncode != 0
        assert timeout - 1 <= waited <= timeout + 90
        assert output.count("ChiefUnreachableError: The chief at 127.0.0.1") == 1, output
        assert "DONE" not in output

    _, before = read_search(tmp_path)
    finished = {i: t for i, t in before.items() if t["status"] == "COMPLETED"}
    assert finished
    # The chief, run again in the same directory, resumes: new workers train the
    # rest, and no finished trial is trained again.
    chief = Search("chief", tmp_path, port)
    workers = [Search(name, tmp_path, port) for name in ("tuner0", "tuner1")]
    processes += [chief, *workers]
    outputs = []
    for process in (*workers, chief):
        returncode, output = process.finish(timeout=300)
        assert returncode == 0, output
        outputs.append(output)
    oracle, trials = read_search(tmp_path)
    assert len(trials) == 6
    assert all(t["status"] == "COMPLETED" for t in trials.values())
    assert sorted(oracle["end_order"]) == sorted(trials)  # each ended once
    for trial_id, trial in finished.items():
        assert all(f"Trial {trial_id}:" not in output for output in outputs[:2])
        assert trials[trial_id]["score"] == trial["score"]
