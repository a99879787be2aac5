"""The `scratchgan` command: exit codes and one-line messages, sample and eval."""

from __future__ import annotations

import json

import numpy as np
import pytest

from scratchgan import __version__
from scratchgan.cli import main

TINY = ["--g-hidden", "16", "--d-hidden", "16", "--z-dim", "4", "--batch-size", "32", "--quiet",
        "--eval-samples", "200"]


def run_cli(capsys, *args):
    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse exits for --help, --version and bad arguments
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("args, fragment", [
    (["train", "--loss", "gann"], "invalid choice: 'gann'"),
    (["train", "--steps", "many"], "invalid int value: 'many'"),
    (["train", "--g-hidden", "0,5"], "positive layer widths"),
    (["train", "--betas", "0.5"], "two numbers"),
    (["sample", "-n", "5"], "--run"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_arguments_exit_2_with_one_line(capsys, args, fragment):
    code, out, err = run_cli(capsys, *args)
    assert code == 2
    assert fragment in err
    assert len(err.strip().splitlines()) == 1


def test_version_and_help(capsys):
    code, out, _ = run_cli(capsys, "--version")
    assert code == 0 and __version__ in out
    code, out, _ = run_cli(capsys, "train", "--help")
    assert code == 0
    for option in ("--data", "--data-path", "--loss", "--steps", "--batch-size", "--seed", "--backend", "--out",
                   "--resume", "--conditional"):
        assert option in out


def test_missing_data_is_one_clear_line(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("SCRATCHGAN_DATA", raising=False)
    code, out, err = run_cli(capsys, "train", "--data", "mnist", "--data-path", str(tmp_path / "nowhere"),
                             "--out", str(tmp_path / "run"), *TINY)
    assert code == 1
    assert err.startswith("scratchgan: error:") and "nowhere" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_unwritable_output_folder_is_one_clear_line(capsys, tmp_path):
    (tmp_path / "file").write_text("x")
    code, _, err = run_cli(capsys, "train", "--out", str(tmp_path / "file" / "run"), *TINY)
    assert code == 1 and "cannot write to the output folder" in err


def test_resume_without_checkpoint_and_with_corrupt_checkpoint(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", "--resume", "--out", str(tmp_path / "empty"), *TINY)
    assert code == 1 and "checkpoint.npz" in err
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "checkpoint.npz").write_bytes(b"PK\x03\x04 truncated")
    code, _, err = run_cli(capsys, "train", "--resume", "--out", str(tmp_path / "bad"), *TINY)
    assert code == 1 and "checkpoint.npz" in err and len(err.strip().splitlines()) == 1


def test_train_then_sample_and_eval(capsys, tmp_path):
    run = tmp_path / "run"
    code, out, err = run_cli(capsys, "train", "--steps", "5", "--out", str(run), *TINY)
    assert code == 0, err
    assert "modes_captured" in out and "samples.png" in out

    code, out, err = run_cli(capsys, "sample", "--run", str(run), "-n", "7", "--out", str(tmp_path / "s.npy"))
    assert code == 0, err
    x = np.load(tmp_path / "s.npy")
    assert x.shape == (7, 2) and np.isfinite(x).all()
    # the same seed gives the same samples, another seed others
    run_cli(capsys, "sample", "--run", str(run), "-n", "7", "--out", str(tmp_path / "t.npy"))
    run_cli(capsys, "sample", "--run", str(run), "-n", "7", "--seed", "1", "--out", str(tmp_path / "u.npy"))
    assert np.array_equal(x, np.load(tmp_path / "t.npy"))
    assert not np.array_equal(x, np.load(tmp_path / "u.npy"))

    code, out, err = run_cli(capsys, "eval", "--run", str(run), "-n", "300")
    assert code == 0, err
    result = json.loads(out)
    assert result["step"] == 5 and 0 <= result["high_quality_frac"] <= 1


def test_sample_rejects_bad_values(capsys, tmp_path):
    run = tmp_path / "run"
    run_cli(capsys, "train", "--steps", "2", "--out", str(run), *TINY)
    code, _, err = run_cli(capsys, "sample", "--run", str(run), "-n", "0", "--out", str(tmp_path / "s.npy"))
    assert code == 1 and "-n must be positive" in err
    code, _, err = run_cli(capsys, "sample", "--run", str(run), "-n", "3", "--out", str(tmp_path / "s.txt"))
    assert code == 1 and ".npy" in err
    code, _, err = run_cli(capsys, "sample", "--run", str(run), "-n", "3", "--label", "1", "--out", str(tmp_path / "s.npy"))
    assert code == 1 and "not conditional" in err
