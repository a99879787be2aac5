"""The `scratchgan` command: exit codes and one-line messages, sample and eval."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from scratchgan import __version__
from scratchgan.app import config
from scratchgan.app.cli import build_parser, main

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
    # every bad value names its option (numpy's "expected non-negative integer" named none)
    (["train", "--seed", "-1"], "argument --seed: must be >= 0, got -1"),
    (["train", "--batch-size", "0"], "argument --batch-size: must be > 0, got 0"),
    (["train", "--lr-g", "nan"], "argument --lr-g: must be a finite number > 0"),
    (["train", "--ema-decay", "1"], "argument --ema-decay: must be in [0, 1)"),
    (["train", "--betas", "0.5,1.5"], "argument --betas: must be two numbers in [0, 1)"),
    (["train", "--data", "cifar"], "argument --data: invalid choice: 'cifar'"),
    (["sample", "--run", "r", "--out", "s.npy", "--seed", "-1"], "argument --seed: must be >= 0, got -1"),
    (["sample", "--run", "r", "--out", "s.npy", "-n", "0"], "argument -n: must be >= 1, got 0"),
    (["eval", "--run", "r", "-n", "1"], "argument -n: must be >= 2, got 1"),  # statistics need two samples
    (["train", "--resume"], "argument --resume: needs --out RUN"),
    (["train", "--resume", "--overwrite", "--out", "r"], "argument --overwrite: not allowed with argument --resume"),
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
                   "--resume", "--overwrite", "--conditional"):
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
    # the plan comes first, in one line, with a time estimate
    plan = out.splitlines()[0]
    assert plan.startswith("plan: mlp ns GAN on grid25 (recipe toy): 5 of 5 steps of batch 32, about ")
    assert "s/step measured on this machine" in plan

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
    code, _, err = run_cli(capsys, "sample", "--run", str(run), "-n", "3", "--out", str(tmp_path / "s.txt"))
    assert code == 1 and ".npy" in err
    code, _, err = run_cli(capsys, "sample", "--run", str(run), "-n", "3", "--label", "1", "--out", str(tmp_path / "s.npy"))
    assert code == 1 and "not conditional" in err


def write_tiny_mnist(folder, n=60):
    """A Keras-style npz of small 'digits' (the mnist loader gives it 10 classes)."""
    rng = np.random.default_rng(0)
    y = np.arange(n) % 3
    x = rng.integers(0, 255, (n, 8, 8)).astype(np.uint8)
    np.savez(folder / "mnist.npz", x_train=x, y_train=y, x_test=x[:12], y_test=y[:12])
    return folder / "mnist.npz"


def test_sample_label_out_of_range_is_one_line_naming_the_option(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("SCRATCHGAN_CACHE", str(tmp_path / "cache"))  # the final evaluation trains a classifier
    run = tmp_path / "run"
    code, out, err = run_cli(capsys, "train", "--data", "mnist", "--data-path", str(write_tiny_mnist(tmp_path)),
                             "--conditional", "--embed-dim", "3", "--steps", "1", "--eval-samples", "20", "--out",
                             str(run), *TINY[:-2])
    assert code == 0, err
    assert out.startswith("plan: dcgan ns GAN on mnist (recipe image): 1 of 1 steps of batch 32")
    for label in ("99", "10", "-1"):
        code, _, err = run_cli(capsys, "sample", "--run", str(run), "-n", "3", "--label", label,
                               "--out", str(tmp_path / "s.npy"))
        assert code == 2, err
        assert f"argument --label: must be a class of this run, 0 to 9 (mnist has 10 classes), got {label}" in err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli(capsys, "sample", "--run", str(run), "-n", "3", "--label", "9",
                           "--out", str(tmp_path / "s.npy"))
    assert code == 0, err


def _options(parser):
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {cmd: {a.dest: a for a in p._actions} for cmd, p in sub.choices.items()}


def test_cli_choices_and_checks_come_from_the_config():
    """Every choice list of `train` is config.CHOICES's, and every config option is checked by config's rules."""
    train = _options(build_parser())["train"]
    with_choices = {dest: tuple(a.choices) for dest, a in train.items() if a.choices is not None}
    assert with_choices == {k: tuple(v) for k, v in config.CHOICES.items()}
    # numeric and list options check their value with config.value_problem, as resolve() does
    for dest in (*config.POSITIVE_FIELDS, *config.NON_NEGATIVE_FIELDS, "ema_decay", "betas", "g_hidden", "d_hidden"):
        assert getattr(train[dest].type, "field", None) == dest, dest
    # --data reads names as load_dataset does
    assert build_parser().parse_args(["train", "--data", "Fashion_MNIST"]).data == "fashion-mnist"


def test_dcgan_on_toy_data_is_one_clear_line(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", "--arch", "dcgan", "--out", str(tmp_path / "run"), *TINY)
    assert code == 1
    assert err.startswith("scratchgan: error: the dcgan architecture needs image data; grid25")
    assert len(err.strip().splitlines()) == 1


def test_recipe_filled_options_default_to_the_recipe():
    """--arch, --z-dim, --batch-size, --steps and --ema-decay are left to the recipe unless given."""
    args = build_parser().parse_args(["train", "--data", "fashion-mnist"])
    assert (args.arch, args.z_dim, args.batch_size, args.steps, args.ema_decay) == (None, None, None, None, None)
    args = build_parser().parse_args(["train", "--arch", "mlp", "--z-dim", "7"])
    assert (args.arch, args.z_dim) == ("mlp", 7)


# --------------------------------------------------------------------------- check-loss

USER_LOSSES = '''
import scratchgan as sg


def d_loss(real_logits, fake_logits):
    return sg.ops.softplus(-real_logits).mean() + sg.ops.softplus(fake_logits).mean()


def g_naive(fake_logits):
    return -sg.ops.log(sg.ops.sigmoid(fake_logits)).mean()


def g_minimax(fake_logits):
    return -sg.ops.softplus(fake_logits).mean()


def gp_whole_batch(critic, real, fake):
    a = sg.rand(real.shape[0], 1, dtype="float64")
    x = (real * a + fake * (1.0 - a)).detach().requires_grad_(True)
    (g,) = sg.grad(critic(x).sum(), x, create_graph=True)
    return (sg.ops.sqrt((g * g).sum() + 1e-12) - 1.0) ** 2 * 10.0


def r1(critic, real, fake):
    return sg.losses.r1_penalty(critic, real, 1.0)
'''


def test_check_loss_reports_each_property(capsys, tmp_path):
    path = tmp_path / "my_losses.py"
    path.write_text(USER_LOSSES)
    code, out, err = run_cli(capsys, "check-loss", f"{path}:d_loss", "--g", "g_minimax", "--max-examples", "10")
    assert code == 0, out + err
    assert "HELD    optimal_discriminator" in out and "INFO    generator_saturation" in out
    assert "SATURATES" in out and "all properties held" in out
    code, out, err = run_cli(capsys, "check-loss", f"{path}:r1", "--kind", "penalty", "--max-examples", "5")
    assert code == 0, out + err
    assert "HELD    per_sample_independence" in out and "HELD    critic_weight_gradient" in out


def test_check_loss_exits_1_on_a_broken_loss(capsys, tmp_path):
    path = tmp_path / "my_losses.py"
    path.write_text(USER_LOSSES)
    code, out, _ = run_cli(capsys, "check-loss", f"{path}:d_loss", "--g", "g_naive")
    assert code == 1
    assert "FAILED  finite_at_extreme_logits[float64]: g_loss(fake_logits) is inf in float64" in out
    assert "counterexample (shrunk by hypothesis): real_logits=array([0.]), fake_logits=array([-10000.])" in out
    code, out, _ = run_cli(capsys, "check-loss", f"{path}:gp_whole_batch", "--kind", "penalty",
                           "--max-examples", "10")
    assert code == 1 and "FAILED  per_sample_independence" in out


@pytest.mark.parametrize("target, extra, fragment", [
    ("{path}:nope", [], "has no function 'nope' (it has: d_loss, g_minimax, g_naive, gp_whole_batch, r1)"),
    ("{missing}:d_loss", [], "no such file"),
    ("{path}", [], "expected a file and a function name"),
    ("{path}:d_loss", ["--g", "nope"], "argument --g:"),
    ("{path}:r1", ["--kind", "penalty", "--g", "g_naive"], "argument --g: a generator loss goes with --kind loss"),
])
def test_check_loss_bad_arguments_are_one_line(capsys, tmp_path, target, extra, fragment):
    path = tmp_path / "my_losses.py"
    path.write_text(USER_LOSSES)
    code, _, err = run_cli(capsys, "check-loss", target.format(path=path, missing=tmp_path / "missing.py"), *extra)
    assert code == 2 and fragment in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_check_loss_file_that_fails_to_import_is_one_line(capsys, tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("import no_such_module_anywhere\n")
    code, _, err = run_cli(capsys, "check-loss", f"{path}:d_loss")
    assert code == 1 and "importing" in err and "ModuleNotFoundError" in err
    assert len(err.strip().splitlines()) == 1
