"""Reading and writing the JSON files of a run directory safely (standard library only).

`write_json` replaces a file atomically: a crash, a kill or a full disk
leaves either the old file or the new one, never a truncated one.
`read_json` turns a missing, empty or truncated file into a `RunFileError` that
names the file and says what to do. Every layer may import this module.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile

from kerasnas.errors import MissingRunFileError, RunFileError  # noqa: F401  (as files.X)


def write_json(path, obj, indent=2):
    """Writes `obj` as JSON to `path` atomically (a temporary file, fsync, rename).

    Args:
        path: the file to write.
        obj: a JSON-serialisable object.
        indent: JSON indentation. Defaults to 2.

    Raises:
        OSError: if the file cannot be written (e.g. a full disk); `path`
            is then left as it was.
        TypeError: if `obj` is not JSON-serialisable; `path` is left as it was.
    """
    text = json.dumps(obj, indent=indent)  # fails before touching the disk
    _write_atomically(path, "w", lambda f: f.write(text))


def read_json(path, fix="Pass overwrite=True to start afresh, or use another directory."):
    """The JSON object in `path`, or a `RunFileError` naming the file.

    Args:
        path: the file to read.
        fix: what the user can do about a corrupt file, appended to the message.

    Raises:
        MissingRunFileError: if `path` does not exist (a `RunFileError` and a
            `FileNotFoundError`).
        RunFileError: if it is empty or not valid JSON.
    """
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except FileNotFoundError:
        raise MissingRunFileError(f"{path} is missing. {fix}", path) from None
    if not text.strip():
        raise RunFileError(f"{path} is empty (a crash or a full disk cut it short). {fix}", path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise RunFileError(
            f"{path} is not valid JSON ({e}); it may have been cut short by a crash or a "
            f"full disk. {fix}",
            path,
        ) from None


SHARED_MEMORY = "/dev/shm"  # RAM-backed, where there is one: h5py's writes never fail there
SCRATCH_PREFIX = "kerasnas_weights_"  # then the writing process's id


def remove_stale_scratch(scratch):
    """Removes the scratch folders of `save_weights` left in `scratch` by processes that
    are gone (a process killed mid-save leaves its folder, in RAM where it is `/dev/shm`)."""
    for name in os.listdir(scratch):
        pid = name[len(SCRATCH_PREFIX) :].split("_", 1)[0]
        if not name.startswith(SCRATCH_PREFIX) or not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(os.path.join(scratch, name), ignore_errors=True)
        except OSError:
            pass  # alive, or not ours to ask about


def save_weights(model, path):
    """`model.save_weights(path)`, made atomic and safe on a full disk.

    h5py crashes the process (a segmentation fault when the file is closed)
    if its own writes fail, e.g. with ENOSPC. So the weights are written to a
    RAM-backed scratch folder (`/dev/shm` where there is one) and copied to
    `path` with plain Python I/O: a full disk gives a clean `OSError`, and
    `path` keeps its old contents.

    Args:
        model: a Keras model (anything with `save_weights`).
        path: the `.weights.h5` file to write.

    Raises:
        OSError: if `path` cannot be written; it is then left as it was.
    """
    shm = SHARED_MEMORY
    scratch = shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else tempfile.gettempdir()
    remove_stale_scratch(scratch)
    folder = tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}_", dir=scratch)
    try:
        local = os.path.join(folder, os.path.basename(path))
        model.save_weights(local)
        copy_file(local, path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def copy_file(source, path):
    """Copies `source` to `path` atomically (a temporary file beside `path`, fsync, rename)."""
    with open(source, "rb") as src:
        _write_atomically(path, "wb", lambda f: shutil.copyfileobj(src, f))


def _write_atomically(path, mode, write):
    """Calls `write(f)` on a temporary file beside `path`, then renames it to `path`.

    A crash or a full disk leaves `path` as it was and no temporary file behind.
    """
    folder = os.path.dirname(os.path.abspath(path))
    handle, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(handle, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        directory = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def is_disk_full(error):
    """Whether `error`, or an error it was raised from, says the disk or quota is full."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(error)
        if "No space left on device" in text or "errno = 28" in text or "Disk quota" in text:
            return True
        error = error.__cause__ or error.__context__
    return False
