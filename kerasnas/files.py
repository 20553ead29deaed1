"""Reading and writing the JSON files of a run directory safely (standard library only).

`write_json` replaces a file atomically: a crash, a kill or a full disk
leaves either the old file or the new one, never a truncated one.
`read_json` turns a missing, empty or truncated file into a `RunFileError` that
names the file and says what to do. Every layer may import this module.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import os
import re
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


# What `read_json` accepts. A run file holds data the search wrote, so a file beyond these
# was not written by kerasnas and is refused before it is parsed. The caps sit far above
# the largest run files measured (the figures are in docs/design-notes.md).
MAX_JSON_BYTES = 32 * 2**20  # 32 MiB
MAX_JSON_DEPTH = 100  # levels of arrays and objects

# Every JSON token but the brackets: strings (whose brackets do not count) and the rest.
_NOT_BRACKETS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[^"\[\]{}]+')
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1, '"': 0}  # a quote left is an unclosed string


def json_depth(text):
    """How deeply arrays and objects nest in the JSON `text`, found without parsing it.

    The scan keeps no stack (a regular expression drops the strings and scalars, the
    brackets left are counted), so no nesting can exhaust Python's recursion, as
    `json.loads` does on a deep enough text.

    Example:
        ```pycon
        >>> json_depth('{"a": [1, [2, "]]]"]]}')
        3
        ```
    """
    brackets = _NOT_BRACKETS.sub("", text)
    return max(itertools.accumulate(map(_STEP.__getitem__, brackets)), default=0)


def loads(text, max_depth=MAX_JSON_DEPTH):
    """`json.loads(text)`, refusing a text nested deeper than `max_depth` before parsing it.

    Raises:
        ValueError: if `text` is nested too deeply or is not valid JSON (the message
            says which; a `json.JSONDecodeError` for the latter).
    """
    depth = json_depth(text)
    if depth > max_depth:
        raise ValueError(
            f"nested {depth} levels deep; kerasnas writes no JSON deeper than {max_depth}"
        )
    return json.loads(text)


def read_json(path, fix="Pass overwrite=True to start afresh, or use another directory."):
    """The JSON object in `path`, or a `RunFileError` naming the file.

    A file larger than `MAX_JSON_BYTES` is refused unread, one nested deeper than
    `MAX_JSON_DEPTH` unparsed: kerasnas writes neither, and a copied run directory is
    data from a stranger.

    Args:
        path: the file to read.
        fix: what the user can do about a corrupt file, appended to the message.

    Raises:
        MissingRunFileError: if `path` does not exist (a `RunFileError` and a
            `FileNotFoundError`).
        RunFileError: if it is empty, too large, nested too deeply or not valid JSON.
    """
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_JSON_BYTES + 1)
    except FileNotFoundError:
        raise MissingRunFileError(f"{path} is missing. {fix}", path) from None
    if len(data) > MAX_JSON_BYTES:
        raise RunFileError(
            f"{path} is larger than {MAX_JSON_BYTES:,} bytes, the most kerasnas reads from a "
            f"run file; it was not written by kerasnas. {fix}",
            path,
        )
    text = data.decode("utf-8", errors="replace")
    if not text.strip():
        raise RunFileError(f"{path} is empty (a crash or a full disk cut it short). {fix}", path)
    try:
        return loads(text)
    except json.JSONDecodeError as e:
        raise RunFileError(
            f"{path} is not valid JSON ({e}); it may have been cut short by a crash or a "
            f"full disk. {fix}",
            path,
        ) from None
    except ValueError as e:  # nested too deeply, or a number too long to convert
        raise RunFileError(f"{path} was not written by kerasnas: {e}. {fix}", path) from None


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
