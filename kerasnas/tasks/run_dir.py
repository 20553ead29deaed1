"""The run directory of a task: its `kerasnas.json`, its lock, its trials and weights.

A run directory (`directory/project_name`) holds KerasTuner's files
(`oracle.json`, `trial_<id>/trial.json`), each trial's best weights
(`trial_<id>/checkpoint.weights.h5`) and kerasnas' own `kerasnas.json`:
the task, the input the search was made for, the preprocessing, the label
encoding, the best trial and the trials of the ensemble, if one was chosen.
Everything here reads files defensively: a damaged file gives an error that
names it and says what to do, and nothing named in `kerasnas.json` may point
outside the run directory.
"""

from __future__ import annotations

import glob
import os
import re

from kerasnas import files, trials

METADATA = "kerasnas.json"
FINAL_WEIGHTS = "final.weights.h5"
_TRIAL_ID = re.compile(r"[A-Za-z0-9_-]+")
_WEIGHTS_NAME = re.compile(r"[A-Za-z0-9_.-]+\.weights\.h5")
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


def checkpoint_path(project_dir, trial_id):
    return os.path.join(project_dir, f"trial_{trial_id}", trials.CHECKPOINT)


def load_weights(model, path, fix):
    """Loads `path` into `model`; a missing or unreadable file gives a `RunFileError` naming it."""
    if not os.path.isfile(path):
        raise files.MissingRunFileError(f"The weights file {path} is missing. {fix}", path)
    try:
        model.load_weights(path)
    except Exception as e:  # h5py raises OSError, Keras ValueError for a mismatched file
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise files.RunFileError(
            f"The weights file {path} cannot be read ({first}). {fix}", path
        ) from e
    return model


def read_trials(project_dir):
    """`{trial_id: Trial}` from the trial files of `project_dir`, without writing anything."""
    found = {}
    for path in sorted(glob.glob(os.path.join(project_dir, "trial_*", trials.TRIAL_FILE))):
        trial = trials.read_trial(path)
        found[trial.trial_id] = trial
    return found


class DirectoryLock:
    """An exclusive, non-blocking lock on a file beside the run directory.

    `fcntl.flock` on POSIX and `msvcrt.locking` on Windows, imported when a
    lock is taken (so `import kerasnas` needs neither); the operating system
    releases either when the process dies. Where neither exists, the lock is
    the file's exclusive creation (`os.O_EXCL`), holding the owner's process id;
    a lock left by a process that is gone is taken over.
    """

    def __init__(self, path):
        self.path = path
        self._file = None
        self._unlock = None

    def _busy(self):
        return RuntimeError(
            f"Another process is fitting into {self.path[:-5]}; wait for it to finish, "
            "or use another directory or project_name."
        )

    def __enter__(self):
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        try:
            import fcntl
        except ImportError:
            fcntl = None
        if fcntl is not None:
            self._file = open(self.path, "a")
            try:
                fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self._file.close()
                raise self._busy() from None
            self._unlock = lambda: fcntl.flock(self._file, fcntl.LOCK_UN)
            return self
        try:
            import msvcrt
        except ImportError:
            msvcrt = None
        if msvcrt is not None:
            self._file = open(self.path, "a+")
            try:
                self._file.seek(0)
                msvcrt.locking(self._file.fileno(), msvcrt.LK_NBLCK, 1)
            except OSError:
                self._file.close()
                raise self._busy() from None

            def unlock():
                self._file.seek(0)
                msvcrt.locking(self._file.fileno(), msvcrt.LK_UNLCK, 1)

            self._unlock = unlock
            return self
        self._exclusive_create()
        return self

    def _exclusive_create(self):
        path = self.path + ".pid"
        for _ in range(2):
            try:
                handle = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                if _owner_alive(path):
                    raise self._busy() from None
                try:
                    os.unlink(path)  # left by a process that is gone
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(handle, "w") as f:
                f.write(str(os.getpid()))
            self._unlock = lambda: os.unlink(path)
            return
        raise self._busy()

    def __exit__(self, *exc):
        try:
            if self._unlock is not None:
                self._unlock()
        finally:
            if self._file is not None:
                self._file.close()
            self._file, self._unlock = None, None


def _owner_alive(path):
    try:
        with open(path) as f:
            pid = int(f.read().strip() or 0)
    except (OSError, ValueError):
        return True  # being written: assume alive
    if pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True
