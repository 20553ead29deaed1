"""Image folders, tf.data Datasets (in memory and streamed), class weights and verbosity."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import kerasnas
from kerasnas.graph import generators
from kerasnas.tasks import data, feeds
from kerasnas.tasks.run_dir import DirectoryLock
from kerasnas.testing import quadrant_images

NAMES = ["left", "right", "bottom"]


def image_folder(root, n=60, seed=0, corrupt=False):
    """Class subfolders of PNG and JPEG files: mostly 12x12, some 16x16, a few in colour."""
    x, y = quadrant_images(n, seed)
    for i, (image, label) in enumerate(zip(x, y)):
        folder = root / NAMES[label]
        folder.mkdir(parents=True, exist_ok=True)
        side = 16 if i % 5 == 0 else 12
        picture = Image.fromarray(image).resize((side, side), Image.NEAREST)
        if i % 7 == 0:
            picture = picture.convert("RGB")
        if i % 3 == 0:
            picture.save(folder / f"{i}.jpg", quality=95)
        else:
            picture.save(folder / f"{i}.png")
    if corrupt:
        (root / NAMES[0] / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return root


def test_a_folder_is_read_at_its_most_common_size_in_colour_if_any_image_is(tmp_path):
    folder = image_folder(tmp_path / "images")
    read = data.from_folder(folder)
    assert read.shape == (12, 12, 3) and read.dtype == "uint8" and read.count == 60
    assert not read.streamed and read.images.shape == (60, 12, 12, 3)
    assert set(read.labels.tolist()) == set(NAMES)
    gray = data.from_folder(folder, size=(8, 8), channels=1)
    assert gray.images.shape == (60, 8, 8, 1)


def test_a_corrupt_image_is_named(tmp_path):
    folder = image_folder(tmp_path / "images", n=12, corrupt=True)
    with pytest.raises(ValueError, match=r"cannot read 1 file\(s\): .*broken\.png"):
        data.from_folder(folder)


def test_large_data_is_streamed_with_its_labels(tmp_path, monkeypatch):
    monkeypatch.setenv("KERASNAS_IN_MEMORY_MB", "0.001")  # about 1 KB: everything streams
    folder = data.from_folder(image_folder(tmp_path / "images", n=30))
    assert folder.streamed and folder.count == 30 and len(folder.labels) == 30
    assert folder.sample.shape[1:] == (12, 12, 3)
    x, y = quadrant_images(40, 1)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    dataset.class_names = ["a", "b", "c"]
    streamed = data.from_dataset(dataset)
    assert streamed.streamed and streamed.raw_shape == (8, 8)
    assert streamed.labels.tolist() == np.array(["a", "b", "c"])[y].tolist()
    batch = next(iter(streamed.make_stream().batch(40)))
    assert batch[0].shape == (40, 8, 8)


def test_a_small_dataset_is_read_into_memory_with_its_class_names():
    x, y = quadrant_images(20, 2)
    dataset = tf.data.Dataset.from_tensor_slices((x, tf.one_hot(y, 3)))
    dataset.class_names = ["a", "b", "c"]
    read = data.from_dataset(dataset)
    assert not read.streamed and read.images.shape == (20, 8, 8, 1)
    assert read.labels.tolist() == np.array(["a", "b", "c"])[y].tolist()


def test_class_weights():
    encoded = np.array([0] * 9 + [1])
    balanced = feeds.class_weights("balanced", encoded, np.array(["a", "b"]))
    np.testing.assert_allclose(balanced, [10 / 18, 5.0])
    np.testing.assert_allclose(
        feeds.class_weights({"b": 3}, encoded, np.array(["a", "b"])), [1.0, 3.0]
    )
    with pytest.raises(ValueError, match=r"names labels not among the classes: \['c'\]"):
        feeds.class_weights({"c": 1}, encoded, np.array(["a", "b"]))
    with pytest.raises(ValueError, match="class_weight='even'"):
        feeds.class_weights("even", encoded, np.array(["a", "b"]))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"class_weight": "even"}, "class_weight='even'"),
        ({"sample_weight": np.ones(3)}, "Expected `sample_weight` to be 30 finite numbers"),
        ({"y": [0, 1]}, "same length"),
    ],
)
def test_weights_are_checked_before_training(kwargs, match, tmp_path):
    x, y = quadrant_images(30, 0)
    arguments = {"x": x, "y": y, "time_limit": 30, **kwargs}
    clf = kerasnas.ImageClassifier(directory=str(tmp_path), verbose=0)
    with pytest.raises(ValueError, match=match):
        clf.fit(**arguments)
    assert not (tmp_path / "image_classifier").exists()


def test_verbose_and_params_are_checked():
    clf = kerasnas.ImageClassifier(verbose=3, seed=1)
    assert clf.get_params()["seed"] == 1 and clf.set_params(seed=2).seed == 2
    with pytest.raises(ValueError, match="no parameter 'sead'"):
        clf.set_params(sead=2)
    x, y = quadrant_images(30, 0)
    with pytest.raises(ValueError, match="Received: verbose=3"):
        clf.fit(x, y, time_limit=30)
    with pytest.raises(TypeError):
        kerasnas.ImageClassifier("runs")  # keyword-only


def test_import_and_lock_without_fcntl(tmp_path):
    code = textwrap.dedent(f"""
        import sys
        sys.modules["fcntl"] = None  # as on Windows: `import fcntl` raises ImportError
        sys.modules["msvcrt"] = None
        import kerasnas
        from kerasnas.tasks.run_dir import DirectoryLock
        path = {str(tmp_path / "run.lock")!r}
        with DirectoryLock(path):
            try:
                with DirectoryLock(path):
                    raise SystemExit("locked twice")
            except RuntimeError as e:
                assert "Another process is fitting" in str(e)
        with DirectoryLock(path):
            pass
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_the_lock_of_a_killed_process_does_not_block(tmp_path):
    path = str(tmp_path / "run.lock")
    code = textwrap.dedent(f"""
        import os, sys
        from kerasnas.tasks.run_dir import DirectoryLock
        with DirectoryLock({path!r}):
            print("locked", flush=True)
            sys.stdin.readline()  # held until killed
    """)
    holder = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RuntimeError, match="Another process is fitting into .*run;"):
            with DirectoryLock(path):
                pass
        holder.kill()
        holder.wait(timeout=30)
    finally:
        if holder.poll() is None:
            holder.kill()
    with DirectoryLock(path):  # the killed holder's lock file is still there, its lock gone
        assert (tmp_path / "run.lock").exists()


# ---------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_a_folder_through_fit_predict_evaluate_and_export(tmp_path):
    train = image_folder(tmp_path / "train", n=90, seed=0)
    test = image_folder(tmp_path / "test", n=30, seed=1)
    clf = kerasnas.ImageClassifier(
        directory=str(tmp_path / "runs"), max_trials=1, seed=0, verbose=0
    )
    clf.fit(train, validation_data=test, time_limit=30, epochs=4)
    assert clf.input_shape_ == (12, 12, 3) and clf.classes_.tolist() == sorted(NAMES)
    predicted = clf.predict(test)
    assert predicted.shape == (30,) and set(predicted) <= set(NAMES)
    read = data.from_folder(test, size=(12, 12), channels=3)
    images, truth = read.images, np.asarray(read.labels)
    assert clf.evaluate(test) == pytest.approx(np.mean(predicted == truth))
    assert set(clf.evaluate(test, return_dict=True)) == {"loss", "accuracy"}
    (model,) = clf.get_best_models(1)
    np.testing.assert_allclose(model.predict(images, verbose=0), clf.predict_proba(test), atol=1e-5)
    path = clf.export(tmp_path / "serving")
    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    (out,) = serve(tf.constant(images)).values()
    np.testing.assert_allclose(out.numpy(), clf.predict_proba(images), atol=1e-5)


@pytest.mark.slow
def test_a_streamed_dataset_end_to_end_at_verbose_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KERASNAS_IN_MEMORY_MB", "0.002")
    x, y = quadrant_images(240, 3)
    x_val, y_val = quadrant_images(60, 4)
    train = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(240, seed=0).batch(16)
    val = tf.data.Dataset.from_tensor_slices((x_val, y_val)).batch(16)
    clf = kerasnas.ImageClassifier(directory=str(tmp_path), max_trials=1, seed=0, verbose=2)
    clf.fit(train, validation_data=val, time_limit=30, epochs=3)
    out = capsys.readouterr().out
    assert "\r" not in out and "\x08" not in out
    lines = out.strip().splitlines()
    epochs = int(clf.history["epochs"].iloc[0])
    assert sum(line.startswith("Trial ") and " epoch " in line for line in lines) == epochs
    # searching; the trial's start, why and end; its epochs; what the search added, best
    assert len(lines) == 1 + 3 + epochs + 2
    assert "streamed" in lines[0] and lines[2].startswith("  why: the first architecture")
    assert "best" in lines[-3] and "s left" in lines[-3]
    assert lines[-2].startswith("kerasnas: the search added") and "ms per image" in lines[-1]
    assert clf.predict(val).shape == (60,)
    assert clf.evaluate(val) == pytest.approx(clf.evaluate(x_val, y_val))
    assert clf.evaluate(x_val, y_val) >= 0.6


def recall_of_minority(class_weight, verbose, tmp_path):
    rng = np.random.default_rng(5)
    x, y = quadrant_images(400, 5)
    y = (y == 0).astype(int)  # quadrant 0 against the rest
    keep = (y == 0) | (rng.uniform(size=len(y)) < 0.12)  # about 1 in 12 of class 1 kept
    x, y = x[keep], y[keep]
    noisy = np.clip(x + rng.normal(0, 90, x.shape), 0, 255).astype("uint8")  # a hard problem
    # One fixed architecture (not one sized to the machine), so that only the weights differ.
    first = generators.cnn((*x.shape[1:], 1), 2)
    clf = kerasnas.ImageClassifier(
        directory=str(tmp_path / str(class_weight)),
        max_trials=1,
        seed=0,
        verbose=verbose,
        searcher_args={"initial_graphs": [first]},
    )
    clf.fit(noisy, y, time_limit=30, epochs=3, batch_size=32, class_weight=class_weight)
    x_test, y_test = quadrant_images(300, 6)
    y_test = (y_test == 0).astype(int)
    x_test = np.clip(x_test + rng.normal(0, 90, x_test.shape), 0, 255).astype("uint8")
    predicted = clf.predict(x_test)
    return float(np.mean(predicted[y_test == 1] == 1)), clf


@pytest.mark.slow
def test_balanced_class_weights_raise_the_minority_recall_and_verbose_0_1(tmp_path, capsys):
    plain, _ = recall_of_minority(None, 0, tmp_path)
    assert capsys.readouterr().out == ""
    balanced, clf = recall_of_minority("balanced", 1, tmp_path)
    lines = capsys.readouterr().out.strip().splitlines()
    # searching; each trial's start, why and end; what the search added, best
    assert len(lines) == 1 + 3 * len(clf.history) + 2 and "\r" not in "".join(lines)
    assert balanced > plain + 0.1, (plain, balanced)


@pytest.mark.slow
def test_a_search_completes_without_tensorboard(tmp_path):
    code = textwrap.dedent(f"""
        import sys
        sys.modules["tensorboard"] = None  # as with tensorflow-cpu, which lacks it
        from kerasnas.testing import quadrant_images
        import kerasnas
        x, y = quadrant_images(60, 0)
        clf = kerasnas.ImageClassifier(directory={str(tmp_path)!r}, max_trials=1, verbose=0)
        clf.fit(x, y, time_limit=30, epochs=1)
        print(clf.history["status"].tolist())
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.stdout.strip() == "['COMPLETED']", done.stderr[-2000:]


def garbage_pixels_png(path, seed=0):
    """A PNG whose header and chunk checksums are sound (Pillow opens and verifies it) but
    whose compressed pixels are garbage, which TensorFlow cannot decode."""
    import io
    import struct
    import zlib

    buffer = io.BytesIO()
    Image.fromarray(np.zeros((8, 8), "uint8")).save(buffer, format="PNG")
    png = buffer.getvalue()
    start = png.index(b"IDAT") - 4
    (length,) = struct.unpack(">I", png[start : start + 4])
    garbage = np.random.default_rng(seed).bytes(length)
    chunk = struct.pack(">I", length) + b"IDAT" + garbage
    chunk += struct.pack(">I", zlib.crc32(b"IDAT" + garbage) & 0xFFFFFFFF)
    path.write_bytes(png[:start] + chunk + png[start + 12 + length :])
    with Image.open(path) as image:
        image.verify()  # the header check of every file passes it
    return path


def streamed_folder_with_garbage_pixels(root):
    """300 8x8 PNGs in two classes, streamed, the last (past the images read into memory
    while deciding to stream) a `garbage_pixels_png`."""
    x, y = quadrant_images(299, 3)
    for i, (image, label) in enumerate(zip(x, y % 2)):
        (root / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(root / str(label) / f"{i:03d}.png")
    return garbage_pixels_png(root / "1" / "zz_garbage.png")


def test_a_streamed_image_tensorflow_cannot_decode_is_named_before_training(tmp_path, monkeypatch):
    monkeypatch.setenv("KERASNAS_IN_MEMORY_MB", "0.001")  # about 1 KB: the folder streams
    bad = streamed_folder_with_garbage_pixels(tmp_path / "images")
    named = rf"cannot read 1 file\(s\): {bad}.*\(InvalidArgumentError: .*\)\. Remove or replace"
    lazy = data.from_folder(tmp_path / "images")  # predict's reading: lazy
    assert lazy.streamed
    with pytest.raises(ValueError, match=named):
        with data.naming_undecodable(lazy):  # as predict and evaluate iterate it
            list(lazy.make_stream().batch(64))
    clf = kerasnas.ImageClassifier(directory=str(tmp_path / "run"), verbose=False)
    with pytest.raises(ValueError, match=named):
        clf.fit(str(tmp_path / "images"), time_limit=60)
    assert not (tmp_path / "run").exists()  # stopped before anything was written


def test_an_image_tensorflow_cannot_decode_is_named_when_read_into_memory(tmp_path):
    for label in "ab":
        (tmp_path / "images" / label).mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8), "uint8")).save(tmp_path / "images" / label / "1.png")
    bad = garbage_pixels_png(tmp_path / "images" / "a" / "garbage.png")
    with pytest.raises(ValueError, match=rf"cannot read 1 file\(s\): {bad} \(Invalid"):
        data.from_folder(tmp_path / "images")


@pytest.mark.parametrize(
    "env, where",
    [
        ({"KERAS_BACKEND": "jax"}, "the environment variable KERAS_BACKEND selects the 'jax'"),
        ({"KERAS_BACKEND": "torch"}, "the environment variable KERAS_BACKEND selects the 'torch'"),
        ({"KERAS_HOME": "{home}"}, r"the Keras configuration file .*keras\.json selects the 'jax'"),
    ],
)
def test_another_keras_backend_gets_one_clear_error_at_import(env, where, tmp_path, monkeypatch):
    from kerasnas.testing import frameworks_imported_by

    (tmp_path / "keras.json").write_text('{"backend": "jax"}')
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value.format(home=tmp_path))
    with pytest.raises(RuntimeError) as info:
        frameworks_imported_by("kerasnas")  # a fresh interpreter
    error = info.value.args[0].strip().splitlines()
    assert error[-1].startswith("ImportError: kerasnas runs on Keras' TensorFlow backend")
    assert sum(line.startswith("ImportError") for line in error) == 1
    assert re.search(where, error[-1]) and "KERAS_BACKEND=tensorflow" in error[-1]
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")  # overrides the file, as in Keras
    assert frameworks_imported_by("kerasnas") == []  # and imports no framework yet
