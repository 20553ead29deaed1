"""A long search as a chain of processes, each running a few trials of the same run.

TensorFlow keeps native memory for every model a process has trained, even after
`keras.backend.clear_session()` (about 17 MB a model of four convolution blocks; see
the benchmarks page, "A long search"). A search of hundreds of trials in one process
grows by gigabytes. Run as segments, each a new process that resumes the run
directory for a few trials and exits, the memory goes back to the system at every
exit, and the search is the one a single process would have run: the trial files and
`oracle.json` hold all of it. Standard library only: the parent process never imports
TensorFlow.
"""

from __future__ import annotations

import os
import subprocess
import time

from kerasnas.arguments import check_int

# A segment does not start with less than this many seconds left: it would only load.
MIN_SEGMENT_SECONDS = 5.0
# The environment variable that tells a segment's search how many trials to start before
# it stops; the trial ids and `max_trials` stay those of the whole search.
PROCESS_TRIALS = "KERASNAS_PROCESS_TRIALS"


def process_trials(environ=os.environ):
    """How many trials the search in this process may start, when it is a segment of a
    chain (`PROCESS_TRIALS` set), else None.

    Raises:
        ValueError: if the variable holds anything but a whole number of at least 1.
    """
    text = environ.get(PROCESS_TRIALS)
    if text is None:
        return None
    if not text.strip().isdigit() or int(text) < 1:
        raise ValueError(
            f"Expected the environment variable {PROCESS_TRIALS} to be a whole number of "
            f"at least 1, or unset. Received: {PROCESS_TRIALS}={text!r}"
        )
    return int(text)


def trials_created(project_dir):
    """How many trials the search in `project_dir` has created (KerasTuner's count for
    `max_trials`): the trial folders that hold a `trial.json`.

    Args:
        project_dir: the search's folder (`directory/project_name`).
    """
    if not os.path.isdir(project_dir):
        return 0
    return sum(
        os.path.exists(os.path.join(project_dir, name, "trial.json"))
        for name in os.listdir(project_dir)
        if name.startswith("trial_")
    )


def run_process(argv, env=None):
    """Runs `argv` (in environment `env`) and returns its exit status. On Ctrl-C, which
    reaches the child too, it waits for the child to save what it has, then raises
    `KeyboardInterrupt`."""
    process = subprocess.Popen(argv, env=env)
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.wait()
        raise


def run_in_segments(
    command,
    project_dir,
    trials_per_process,
    max_trials=None,
    time_limit=None,
    fresh=False,
    clock=time.time,
    run=run_process,
):
    """Runs a search as processes of `trials_per_process` trials each, until it ends.

    Each segment runs `command(until)` (a list of program arguments: the same search,
    resumed) with `PROCESS_TRIALS` set to `trials_per_process` in its environment, and
    the search's end in seconds since the epoch: a segment that counts its time limit
    from that end, once it has loaded, ends the search when one process would have.
    The chain ends when a segment fails (its exit status is returned), when a segment
    started fewer trials than it might (the search stopped on its own: the time is up,
    `max_trials` is reached or nothing is left to try), when the run holds
    `max_trials` trials, or when less than `MIN_SEGMENT_SECONDS` is left.

    Args:
        command: a function `(until) -> list of str`; `until` is None without a
            time limit.
        project_dir: the search's folder, where the trials are counted.
        trials_per_process: the most trials a segment starts (at least 1).
        max_trials: the search's `max_trials`, or None: no segment starts once the
            run holds that many (one would find nothing to do). Defaults to None.
        time_limit: seconds for the whole search from now, or None.
        fresh: the first segment starts the search afresh (its command overwrites the
            run), so the trials already there do not count. Defaults to False.
        clock: the time in seconds, for tests. Defaults to `time.time`.
        run: a function `(argv, env)` that runs one segment and returns its exit
            status. Defaults to `run_process`.

    Returns:
        The exit status: 0, or the first failed segment's.

    Raises:
        ValueError: if `trials_per_process` is not an int of at least 1.
    """
    check_int("trials_per_process", trials_per_process, minimum=1)
    end = None if time_limit is None else clock() + time_limit
    env = {**os.environ, PROCESS_TRIALS: str(trials_per_process)}
    while True:
        if end is not None and end - clock() < MIN_SEGMENT_SECONDS:
            return 0
        before = 0 if fresh else trials_created(project_dir)
        fresh = False
        if max_trials is not None and before >= max_trials:
            return 0
        status = run(command(end), env)
        if status:
            return status
        if trials_created(project_dir) - before < trials_per_process:
            return 0
