"""KerasTuner's distributed mode: one chief serving the oracle, two workers, a shared directory."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).parent
pytestmark = pytest.mark.slow


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(tuner_id, directory, port, **env):
    environ = dict(
        os.environ,
        KERASTUNER_TUNER_ID=tuner_id,
        KERASTUNER_ORACLE_IP="127.0.0.1",
        KERASTUNER_ORACLE_PORT=str(port),
        PYTHONUNBUFFERED="1",
        **env,
    )
    return subprocess.Popen(
        [sys.executable, str(HERE / "distributed_search.py"), str(directory)],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for_line(process, prefix, timeout):
    """Reads `process`' output until a line starts with `prefix`; returns what was read."""
    lines, end = [], time.time() + timeout
    while time.time() < end:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith(prefix):
            return lines
    raise AssertionError(f"no line starting with {prefix!r}:\n{''.join(lines)}")


def test_chief_and_two_workers_with_a_killed_worker(tmp_path):
    port = free_port()
    chief = start("chief", tmp_path, port)
    victim = start("tuner0", tmp_path, port, SLOW_BATCHES="1")
    worker = start("tuner1", tmp_path, port)
    try:
        # Kill tuner0 in the middle of its first trial, then restart it.
        early = wait_for_line(victim, "Trial ", timeout=120)
        time.sleep(2)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
        killed_trial = early[-1].split()[1].rstrip(":")
        restarted = start("tuner0", tmp_path, port)
        outputs = {}
        for name, process in (("tuner0", restarted), ("tuner1", worker), ("chief", chief)):
            out, _ = process.communicate(timeout=300)
            outputs[name] = out
            assert process.returncode == 0, out
    finally:
        for process in (chief, victim, worker):
            if process.poll() is None:
                process.kill()

    project = tmp_path / "search"
    oracle = json.loads((project / "oracle.json").read_text())
    trials = {}
    for path in project.glob("trial_*/trial.json"):
        trial = json.loads(path.read_text())
        trials[trial["trial_id"]] = trial
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
