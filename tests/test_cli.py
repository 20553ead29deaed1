"""The `kerasnas` command as a user runs it: through the installed console script."""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from kerasnas.cli import parse_duration
from kerasnas.testing import quadrant_images

KERASNAS = shutil.which("kerasnas")
pytestmark = pytest.mark.skipif(KERASNAS is None, reason="the package is not installed")


def run(*args):
    return subprocess.run([KERASNAS, *map(str, args)], capture_output=True, text=True, timeout=600)


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


def test_durations():
    assert parse_duration("600") == 600
    assert parse_duration("10m") == 600
    assert parse_duration("1h30m") == 5400
    assert parse_duration("45s") == 45


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
