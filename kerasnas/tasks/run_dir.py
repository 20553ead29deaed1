"""The run directory of a task: finding it, its `kerasnas.json`, its lock, its trials and weights.

Its step of "data to Keras": after Keras, keeping what it trained and finding it
again (which of the estimator's attributes go into `kerasnas.json` is `persistence.py`'s).

A run directory (`directory/project_name`) holds KerasTuner's files
(`oracle.json`, `trial_<id>/trial.json`), each trial's best weights
(`trial_<id>/checkpoint.weights.h5`) and kerasnas' own `kerasnas.json`:
the task, the input the search was made for, the preprocessing, the label
encoding, the best trial and the trials of the ensemble, if one was chosen.
This module is the one place that finds a run (`find_run`) and reads its trial files
(`read_trials`, through `kerasnas.trials`, which names a trial's checkpoint and loads
its trained model for the tuner too). Everything here reads files defensively: a
damaged file gives an error that names it and says what to do, and nothing named
in `kerasnas.json` may point outside the run directory.
"""

from __future__ import annotations

import os
import re
import warnings

from kerasnas import files, trials
from kerasnas.graph.graph import MAX_SIDE, MAX_SIZE
from kerasnas.output import user_stacklevel

METADATA = "kerasnas.json"
FINAL_WEIGHTS = "final.weights.h5"
_TRIAL_ID = re.compile(r"[A-Za-z0-9_-]+")
_WEIGHTS_NAME = re.compile(r"[A-Za-z0-9_.-]+\.weights\.h5")
_INPUT_LIMITS = (MAX_SIDE, MAX_SIDE, MAX_SIZE)  # what a graph's input may be (Graph.from_config)
FRESH_START = "Pass overwrite=True to start afresh, or use another directory or project_name."


def metadata_path(project_dir):
    return os.path.join(project_dir, METADATA)


def read_metadata(project_dir, fix=FRESH_START):
    """`kerasnas.json` of `project_dir`, checked: a `RunFileError` names what is wrong."""
    path = metadata_path(project_dir)
    metadata = files.read_json(path, fix)
    expected = {
        "task": str,
        "objective": str,
        "input_shape": list,
        "input_dtype": str,
        "preprocessing": dict,
        "targets": dict,
    }
    problems = [
        key
        for key, kind in expected.items()
        if not isinstance(metadata, dict) or not isinstance(metadata.get(key), kind)
    ]
    if problems:
        raise files.RunFileError(
            f"{path} lacks or has malformed {', '.join(problems)}; it was not written by this "
            f"version of kerasnas, or was edited. {fix}",
            path,
        )
    shape = metadata["input_shape"]
    if not (
        len(shape) in (2, 3)
        and all(type(d) is int and 1 <= d <= most for d, most in zip(shape, _INPUT_LIMITS))
    ):
        raise files.RunFileError(
            f"{path} holds input_shape={shape!r:.60}, not the (height, width[, channels]) "
            f"of images kerasnas searches (ints from 1 to {MAX_SIDE:,}, channels to "
            f"{MAX_SIZE:,}). {fix}",
            path,
        )
    if metadata["task"] not in ("classification", "regression"):
        raise files.RunFileError(f"{path} names an unknown task {metadata['task']!r}. {fix}", path)
    best = metadata.get("best_trial_id")
    if best is not None and not (isinstance(best, str) and _TRIAL_ID.fullmatch(best)):
        raise files.RunFileError(
            f"{path} holds best_trial_id={best!r}, not a trial id (letters, digits, _ and -). "
            f"{fix}",
            path,
        )
    final = metadata.get("final_weights")
    if final is not None and not (isinstance(final, str) and _WEIGHTS_NAME.fullmatch(final)):
        raise files.RunFileError(
            f"{path} holds final_weights={final!r}; only the name of a `.weights.h5` file inside "
            f"the run directory is accepted. {fix}",
            path,
        )
    ensemble = metadata.get("ensemble")
    if ensemble is not None and not (
        isinstance(ensemble, list)
        and all(isinstance(i, str) and _TRIAL_ID.fullmatch(i) for i in ensemble)
    ):
        raise files.RunFileError(
            f"{path} holds ensemble={ensemble!r}, not a list of trial ids (letters, digits, _ "
            f"and -). {fix}",
            path,
        )
    return metadata


def write_metadata(project_dir, metadata):
    # KerasTuner's overwrite=True removes the folder and makes it again only when needed.
    os.makedirs(project_dir, exist_ok=True)
    files.write_json(metadata_path(project_dir), metadata)


def check_resumable(project_dir, expected):
    """Raises a ValueError if `project_dir` holds a search made for other input or labels.

    Args:
        project_dir: the run directory.
        expected: the values `fit` would write to `kerasnas.json`: `task`,
            `input_shape`, `resize_shape` and `targets`.
    """
    if not os.path.exists(metadata_path(project_dir)):
        return
    saved = read_metadata(project_dir)
    differences = []
    if saved["task"] != expected["task"]:
        differences.append(f"task {saved['task']!r}, not {expected['task']!r}")
    if list(saved["input_shape"]) != list(expected["input_shape"]):
        differences.append(
            f"images shaped {tuple(saved['input_shape'])}, not {tuple(expected['input_shape'])}"
        )
    if saved.get("resize_shape") != expected["resize_shape"]:
        differences.append(
            f"resize_shape={saved.get('resize_shape')}, not {expected['resize_shape']}"
        )
    old, new = saved["targets"], expected["targets"]
    if "classes" in old or "classes" in new:
        if old.get("classes") != new.get("classes") or old.get("one_hot") != new.get("one_hot"):
            differences.append(
                f"classes {_short(old.get('classes'))}, not {_short(new.get('classes'))}"
            )
    elif old.get("num_targets") != new.get("num_targets"):
        differences.append(f"{old.get('num_targets')} targets, not {new.get('num_targets')}")
    if differences:
        raise ValueError(
            f"{project_dir} holds a search made for {'; '.join(differences)}, so it cannot be "
            f"resumed with this data. {FRESH_START}"
        )


def _short(values):
    if not isinstance(values, list) or len(values) <= 8:
        return values
    return f"[{', '.join(map(repr, values[:8]))}, ... ({len(values)} in all)]"


def find_run(directory):
    """The run directory in `directory`: itself, or its one subfolder holding `kerasnas.json`.

    Raises:
        FileNotFoundError: if neither `directory` nor a subfolder holds one.
        ValueError: if several subfolders do.
    """
    directory = os.path.abspath(str(directory))
    candidates = []
    if os.path.isdir(directory):
        candidates = [directory] + sorted(
            os.path.join(directory, d)
            for d in os.listdir(directory)
            if os.path.isdir(os.path.join(directory, d))
        )
    found = [d for d in candidates if os.path.exists(metadata_path(d))]
    if not found:
        raise FileNotFoundError(
            f"No finished kerasnas search in {directory} (no {METADATA} there or in its "
            "subfolders). Call `fit` first."
        )
    if len(found) > 1:
        raise ValueError(f"{directory} holds several searches; pass one of {found}.")
    return found[0]


def objective_direction(objective):
    """`"max"` or `"min"`: the direction of the objective named `objective` (as recorded in
    `kerasnas.json`), by KerasTuner's rule, the one the oracle ranked the trials by."""
    from keras_tuner.engine import metrics_tracking

    return metrics_tracking.infer_metric_direction(objective) or "max"


def first_loadable(project_dir, ranked):
    """`(trial, model)` of the best trial in `ranked` whose weights load, with a warning
    that names the unreadable ones if it is not the first.

    Raises:
        files.RunFileError: if none loads.
    """
    failures = []
    for trial in ranked:
        try:
            model = trials.load_trial_model(project_dir, trial)
        except files.RunFileError as e:
            failures.append(e)
            continue
        if failures:
            warnings.warn(
                f"kerasnas: {' '.join(str(f).strip() for f in failures)} Using trial "
                f"{trial.trial_id}, the best trial whose weights load.",
                RuntimeWarning,
                stacklevel=user_stacklevel(),
            )
        return trial, model
    raise files.RunFileError(
        f"No finished trial of {project_dir} has readable weights: "
        f"{' '.join(str(f).strip() for f in failures)} Pass overwrite=True to start afresh.",
        failures[0].path,
    )


def read_trials(project_dir):
    """`{trial_id: Trial}` from the trial files of `project_dir`, in trial-id order, without
    writing anything; a damaged file reads as a failed trial (see `trials.read_trial`).

    Raises:
        files.RunFileError: naming the `trial.json` files, if trials name each other as
            parents in a cycle (the search starts a child only from a trained parent).
    """
    found = dict(sorted((t.trial_id, t) for t in trials.read_trials(project_dir)))
    check_lineage(project_dir, found)
    return found


def check_lineage(project_dir, trials_by_id):
    """Raises a `RunFileError` if following parents from a trial of `trials_by_id` comes
    back to a trial already passed: the search never writes that, a copied file may.

    Every trial is visited once (linear in the number of trials): a walk stops at a trial
    an earlier walk has cleared, at a missing parent, or at an initial architecture.
    """
    cleared = set()
    for start in trials_by_id:
        walk, trial_id = {}, start  # a dict: ordered, and found in constant time
        while trial_id in trials_by_id and trial_id not in cleared:
            if trial_id in walk:
                cycle = list(walk)[list(walk).index(trial_id) :]
                paths = [trials.trial_path(project_dir, i) for i in cycle]
                what = (
                    f"{paths[0]} names trial {trial_id} itself as its parent"
                    if len(cycle) == 1
                    else f"{', '.join(paths)} name each other as parents in a cycle "
                    f"({' -> '.join(cycle + [trial_id])})"
                )
                raise files.RunFileError(
                    f"{what}; a kerasnas search starts a trial only from an earlier, trained "
                    f"one, so these files were edited. {FRESH_START}",
                    paths[0],
                )
            walk[trial_id] = None
            trial_id = trials.parent_of(trials_by_id[trial_id])
        cleared.update(walk)


class DirectoryLock:
    """An exclusive, non-blocking lock on a file beside the run directory (`<run>.lock`).

    It is `filelock.FileLock`, imported when a lock is taken (so `import kerasnas`
    does not load it): `fcntl.flock` on POSIX, `msvcrt.locking` on Windows, both
    released by the operating system when the process dies, so the lock of a killed
    `fit` never blocks the next one. Where neither exists, filelock uses the file's
    exclusive creation, recording the owner's process id and host; filelock 4 takes
    over such a lock when its owner on the same host is gone (older releases do not).

    On a shared network filesystem the lock keeps processes on different machines
    apart only as far as the filesystem's own locks do. On Linux, `flock` on NFS is
    carried out as an NFS byte-range lock, which other clients see (NFSv4, or NFSv3
    with its lock manager running). On a filesystem without locks (some FUSE and SMB
    mounts) `flock` fails: filelock 3 then raises `NotImplementedError`, and filelock
    4 falls back to the exclusive-creation file, which records the owner's host; a
    process on another host cannot tell whether that owner is alive, so a lock left
    there by a machine that crashed has to be deleted by hand. Several machines
    sharing one search should use KerasTuner's distributed mode instead.

    Raises:
        RuntimeError: on entering, if another `fit` (in this or another process)
            holds the lock.
    """

    def __init__(self, path):
        self.path = path
        self._lock = None

    def __enter__(self):
        import filelock

        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        lock = filelock.FileLock(self.path, timeout=0)
        try:
            lock.acquire()
        except filelock.Timeout:
            raise RuntimeError(
                f"Another process is fitting into {self.path.removesuffix('.lock')}; wait for "
                "it to finish, or use another directory or project_name."
            ) from None
        self._lock = lock
        return self

    def __exit__(self, *exc):
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.release()
