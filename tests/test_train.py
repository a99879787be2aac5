"""Training loop: exact resume, reproducibility, outputs, NaN and Ctrl-C handling."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from scratchgan.app.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from scratchgan.app.config import ConfigError, TrainConfig
from scratchgan.app.train import Trainer, TrainingError

ROOT = Path(__file__).resolve().parents[1]


def tiny(**overrides) -> TrainConfig:
    """A config small enough that a run takes a fraction of a second."""
    base = dict(data="grid25", z_dim=4, g_hidden=(16,), d_hidden=(16,), batch_size=32, steps=6,
                log_every=1, sample_every=1000, checkpoint_every=1000, eval_samples=200, ema_decay=0.9)
    base.update(overrides)
    return TrainConfig(**base)


def write_tiny_mnist(folder: Path, n=60, classes=3) -> Path:
    """A Keras-style npz of small 'digits' (distinct bright blocks per class)."""
    rng = np.random.default_rng(0)
    y = np.arange(n) % classes
    x = rng.integers(0, 40, (n, 8, 8)).astype(np.uint8)
    for i, label in enumerate(y):
        x[i, 2 * label:2 * label + 3, 1:7] = 250
    path = folder / "mnist.npz"
    np.savez(path, x_train=x, y_train=y, x_test=x[:12], y_test=y[:12])
    return path


def flat_arrays(tree, prefix=""):
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(flat_arrays(v, f"{prefix}{k}/"))
        elif isinstance(v, np.ndarray):
            out[prefix + k] = v
    return out


def assert_bitwise_equal(a: dict, b: dict):
    fa, fb = flat_arrays(a), flat_arrays(b)
    assert fa.keys() == fb.keys()
    assert len(fa) > 10
    for k in fa:
        assert fa[k].dtype == fb[k].dtype, k
        assert np.array_equal(fa[k].view(np.uint8), fb[k].view(np.uint8)), f"{k} differs"


RESUME_CASES = {
    "ns": dict(loss="ns"),
    "wgan-gp": dict(loss="wgan-gp", n_critic=2),
    "wgan": dict(loss="wgan", n_critic=2),
    "hinge-r1": dict(loss="hinge", r1=1.0),
    "conditional-images": dict(loss="lsgan", data="mnist", conditional=True, embed_dim=3, arch="mlp"),
    # tiny 8x8 images: batch norm's running statistics (G, D, the EMA's copy) and the projection discriminator
    "dcgan-conditional": dict(loss="ns", data="mnist", conditional=True, embed_dim=3, arch="dcgan"),
    # the layer-norm critic and the gradient penalty through the convolutions
    "dcgan-wgan-gp": dict(loss="wgan-gp", data="mnist", n_critic=2, arch="dcgan"),
    # DiffAugment's draws from the step's stream (config restored from the checkpoint), R1 through T
    "dcgan-diffaugment-r1": dict(loss="ns", data="mnist", arch="dcgan", diffaugment=True, r1=1.0),
}


@pytest.mark.parametrize("case", list(RESUME_CASES))
def test_resume_is_bitwise_exact(tmp_path, case):
    """N steps straight == a run of N interrupted after k, resumed in a fresh process (CPU)."""
    overrides = dict(RESUME_CASES[case])
    if overrides.get("data") == "mnist":
        overrides["data_path"] = str(write_tiny_mnist(tmp_path))
    straight = Trainer(tiny(steps=6, **overrides), tmp_path / "straight")
    straight.run(progress=False)

    # the same run interrupted after 3 steps (Ctrl-C saves a checkpoint), then resumed in a fresh process
    def stop_at_3(record):
        if record["step"] == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Trainer(tiny(steps=6, **overrides), tmp_path / "split").run(progress=False, on_log=stop_at_3)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "scratchgan.app.cli", "train", "--resume", "--out",
                           str(tmp_path / "split"), "--steps", "6", "--quiet"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    a = load_checkpoint(tmp_path / "straight" / "checkpoint.npz")
    b = load_checkpoint(tmp_path / "split" / "checkpoint.npz")
    assert a["step"] == b["step"] == 6
    assert a["rng"] == b["rng"]
    assert_bitwise_equal(a, b)
    # the metrics log has each step once, in order
    steps = [json.loads(line)["step"] for line in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_linear_decay_fits_a_shortened_run_and_its_horizon_is_saved(tmp_path):
    """The toy recipe's decay reaches 0 at the run's own end; resume keeps the horizon of the start."""
    short = Trainer(tiny(steps=4), tmp_path / "short")  # grid25 + ns: the toy recipe, linear decay
    assert short.config.lr_decay == "linear" and short.config.lr_decay_steps == 4
    assert [short.lr_factor(s) for s in range(4)] == [1.0, 0.75, 0.5, 0.25]
    short.run(progress=False)
    longer = Trainer.resume(tmp_path / "short", steps=8)
    assert longer.config.lr_decay_steps == 4  # saved with the run, not recomputed from the new steps
    assert longer.lr_factor(4) == 0.5  # max(4, 8) = 8: the rest of the decay is stretched
    assert Trainer(tiny(steps=4, lr_decay_steps=10), tmp_path / "explicit").lr_factor(3) == 0.7


def test_same_seed_same_run_other_seed_differs(tmp_path):
    a = Trainer(tiny(seed=3), tmp_path / "a")
    a.run(progress=False)
    b = Trainer(tiny(seed=3), tmp_path / "b")
    b.run(progress=False)
    c = Trainer(tiny(seed=4), tmp_path / "c")
    c.run(progress=False)
    assert_bitwise_equal(a.state(), b.state())
    assert not np.array_equal(a.sample(10, seed=0), c.sample(10, seed=0))


def test_run_writes_its_outputs(tmp_path):
    trainer = Trainer(tiny(), tmp_path / "run")
    result = trainer.run(progress=False)
    folder = tmp_path / "run"
    for name in ("config.json", "metrics.jsonl", "checkpoint.npz", "samples.png", "losses.png", "eval.json"):
        assert (folder / name).stat().st_size > 0, name
    record = json.loads((folder / "metrics.jsonl").read_text().splitlines()[-1])
    for key in ("step", "d_loss", "g_loss", "d_real", "d_fake", "grad_norm_d", "grad_norm_g", "steps_per_sec"):
        assert key in record and np.isfinite(record[key]), key
    assert 0 <= record["d_real"] <= 1 and 0 <= record["d_fake"] <= 1  # probabilities for the ns loss
    assert json.loads((folder / "eval.json").read_text()) == result
    assert 0 <= result["modes_captured"] <= 25 and 0 <= result["high_quality_frac"] <= 1
    assert (folder / "samples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("loss", ["gan", "ns", "wgan", "wgan-gp", "lsgan", "hinge"])
def test_every_loss_trains_a_few_steps(tmp_path, loss):
    trainer = Trainer(tiny(loss=loss, steps=3, n_critic=1), tmp_path / loss)
    trainer.run(progress=False)
    assert trainer.step == 3
    if loss == "wgan":  # weight clipping after every critic update
        c = trainer.config.clip_value
        assert all(float(abs(p.data).max()) <= c for p in trainer.D.parameters())


def test_loss_defaults_follow_the_papers():
    from scratchgan.app.config import resolve

    wgan = resolve(TrainConfig(loss="wgan"))
    assert (wgan.optimizer, wgan.lr_d, wgan.clip_value, wgan.n_critic) == ("rmsprop", 5e-5, 0.01, 5)
    gp = resolve(TrainConfig(loss="wgan-gp"))
    assert (gp.optimizer, gp.lr_d, tuple(gp.betas), gp.penalty_weight, gp.n_critic) == ("adam", 1e-4, (0.5, 0.9), 10.0, 5)
    # an explicit value beats the recipe
    assert resolve(TrainConfig(loss="wgan", lr_d=1e-3)).lr_d == 1e-3


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    trainer = Trainer(tiny(steps=10, checkpoint_every=2), tmp_path / "run")
    original = Trainer.d_update

    def poisoned(self):
        record = original(self)
        if self.step == 4:  # the fifth step
            record["d_loss"] = float("nan")
        return record

    monkeypatch.setattr(Trainer, "d_update", poisoned)
    with pytest.raises(TrainingError, match=r"NaN or Inf at step 5 .* the last good checkpoint \(step 4\)"):
        trainer.run(progress=False)
    assert load_checkpoint(tmp_path / "run" / "checkpoint.npz")["step"] == 4
    assert not (tmp_path / "run" / "run.lock").exists()  # released on errors too


def test_checkpoint_of_another_shape_is_refused(tmp_path):
    small = Trainer(tiny(), tmp_path / "small")
    tree = small.state()
    big = Trainer(tiny(g_hidden=(32,)), tmp_path / "big")
    with pytest.raises(CheckpointError, match="does not match"):
        big.load_state(tree)


def test_resume_of_truncated_checkpoint_is_a_clear_error(tmp_path):
    trainer = Trainer(tiny(), tmp_path / "run")
    trainer.run(progress=False)
    path = tmp_path / "run" / "checkpoint.npz"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(CheckpointError, match="checkpoint.npz"):
        Trainer.resume(tmp_path / "run")


def test_foreign_checkpoint_without_config_is_refused(tmp_path):
    (tmp_path / "run").mkdir()
    save_checkpoint(tmp_path / "run" / "checkpoint.npz", {"weights": np.zeros(3)})
    with pytest.raises(CheckpointError, match="not a scratchgan training checkpoint"):
        Trainer.resume(tmp_path / "run")


def test_bad_config_values_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown loss 'gann'"):
        Trainer(tiny(loss="gann"), tmp_path / "a")
    with pytest.raises(ConfigError, match="batch_size"):
        Trainer(tiny(batch_size=0), tmp_path / "b")
    with pytest.raises(ConfigError, match="ema_decay"):
        Trainer(tiny(ema_decay=1.5), tmp_path / "c")
    with pytest.raises(ConfigError, match="g_activation"):
        Trainer(tiny(g_activation="swish"), tmp_path / "d")
    with pytest.raises(ConfigError, match="seed must be >= 0, got -1"):
        Trainer(tiny(seed=-1), tmp_path / "e")
    with pytest.raises(ConfigError, match="lr_g must be a finite number > 0"):
        Trainer(tiny(lr_g=float("nan")), tmp_path / "f")


def test_unwritable_output_folder_is_refused_before_training(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(TrainingError, match="cannot write to the output folder"):
        Trainer(tiny(), blocker / "run")


def test_conditional_samples_follow_labels_and_grid_has_a_row_per_class(tmp_path):
    path = write_tiny_mnist(tmp_path)
    trainer = Trainer(tiny(data="mnist", data_path=str(path), conditional=True, embed_dim=3, steps=2), tmp_path / "run")
    trainer.run(progress=False)
    x = trainer.sample(5, labels=2, seed=0)
    assert x.shape == (5, 8, 8) and x.min() >= -1 and x.max() <= 1
    # different labels give different samples from the same noise
    assert not np.allclose(trainer.sample(5, labels=0, seed=0), x)
    with pytest.raises(ConfigError, match="not conditional"):
        Trainer(tiny(steps=1), tmp_path / "plain").sample(3, labels=1)


def test_sample_refuses_labels_out_of_range(tmp_path):
    path = write_tiny_mnist(tmp_path)
    trainer = Trainer(tiny(data="mnist", data_path=str(path), conditional=True, embed_dim=3), tmp_path / "run")
    for bad in (10, -1, [0, 99], 1.5):
        with pytest.raises(ValueError, match=r"labels must be integers in \[0, 9\]"):
            trainer.sample(2, labels=bad)


# --------------------------------------------------------------------------- models


def test_default_networks_have_the_weights_of_before_the_move_to_models():
    """Seed 0 of the default config: the same initial weights as the builders in train.py gave (pinned)."""
    from scratchgan.app.config import resolve
    from scratchgan.app.data import load_dataset
    from scratchgan.gan.models import build_discriminator, build_generator

    config, data = resolve(TrainConfig()), load_dataset("grid25")
    rng = np.random.default_rng([0, 0])  # the Trainer's init stream; G first, then D
    G, D = build_generator(config, data, rng), build_discriminator(config, data, rng)
    g, d = G.state_dict(), D.state_dict()
    keys = [f"net.{i}.{p}" for i in (0, 2, 4, 6) for p in ("weight", "bias")]
    assert list(g) == keys and list(d) == keys  # the checkpoints' keys
    np.testing.assert_allclose(np.asarray(g["net.0.weight"]).ravel()[:2], [0.06848084181547165, -0.11510664224624634],
                               rtol=1e-7)
    np.testing.assert_allclose(np.asarray(d["net.0.weight"]).ravel()[:2], [0.22848528623580933, 0.16817066073417664],
                               rtol=1e-7)
    np.testing.assert_allclose(np.asarray(d["net.6.bias"]), [-0.03836848586797714], rtol=1e-7)


def test_gan_networks_keep_the_leaky_relu_slope_0_2(tmp_path):
    from scratchgan import nn

    trainer = Trainer(tiny(g_activation="leaky_relu", d_activation="leaky_relu"), tmp_path / "run")
    slopes = [m.negative_slope for net in (trainer.G, trainer.D) for m in net.modules() if isinstance(m, nn.LeakyReLU)]
    assert slopes == [0.2, 0.2]  # one hidden layer each in tiny()


def test_architecture_is_looked_up_in_the_registry():
    import types

    from scratchgan.app.config import resolve
    from scratchgan.app.data import load_dataset
    from scratchgan.gan.models import ARCHITECTURES, MLPGenerator, build_generator

    assert "mlp" in ARCHITECTURES
    config, data = resolve(tiny()), load_dataset("grid25")
    assert isinstance(build_generator(config, data, np.random.default_rng(0)), MLPGenerator)
    assert set(ARCHITECTURES) == {"mlp", "dcgan"}
    other = types.SimpleNamespace(**{**config.to_dict(), "arch": "resnet"})
    with pytest.raises(ConfigError, match="unknown architecture 'resnet'; choose one of mlp, dcgan"):
        build_generator(other, data, np.random.default_rng(0))


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_saves_a_checkpoint_and_exits_cleanly(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "scratchgan.app.cli", "train", "--out", str(out), "--steps", "100000",
                             "--g-hidden", "16", "--d-hidden", "16", "--batch-size", "16", "--log-every", "1",
                             "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 60
    while time.time() < deadline and not (out / "metrics.jsonl").exists():
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "checkpoint saved" in stdout
    tree = load_checkpoint(out / "checkpoint.npz")
    assert 0 < tree["step"] < 100000
    assert not (out / "run.lock").exists()  # the lock was released on the way out


def test_label_smoothing_reaches_the_discriminator_loss(tmp_path, monkeypatch):
    """``label_smoothing`` s makes D's real target 1 - s: the loss of a step against the closed form."""
    from scratchgan.gan import losses

    seen = []
    original = losses.d_loss

    def spy(kind, real_logits, fake_logits, label_smoothing=0.0):
        loss = original(kind, real_logits, fake_logits, label_smoothing=label_smoothing)
        seen.append((real_logits.numpy().astype(np.float64), fake_logits.numpy().astype(np.float64), float(loss.item())))
        return loss

    monkeypatch.setattr(losses, "d_loss", spy)
    trainer = Trainer(tiny(loss="ns", label_smoothing=0.3, steps=1), tmp_path / "run")
    trainer.train_step(with_norms=False)
    r, f, value = seen[0]
    softplus = np.logaddexp
    expected = np.mean(0.7 * softplus(0, -r) + 0.3 * softplus(0, r)) + np.mean(softplus(0, f))
    assert value == pytest.approx(expected, rel=1e-5)


def test_label_smoothing_is_checked_and_old_configs_load_without_it(tmp_path):
    with pytest.raises(ConfigError, match=r"label_smoothing must be in \[0, 1\), got 1.0"):
        Trainer(tiny(label_smoothing=1.0), tmp_path / "a")
    with pytest.raises(ConfigError, match="label_smoothing applies to the gan and ns losses"):
        Trainer(tiny(loss="wgan-gp", label_smoothing=0.1), tmp_path / "b")
    old = tiny().to_dict()
    del old["label_smoothing"]  # a run saved before the field existed trained without smoothing
    assert TrainConfig.from_dict(old).label_smoothing == 0.0
    assert Trainer(tiny(), tmp_path / "c").config.label_smoothing == 0.0  # no recipe smooths


# --------------------------------------------------------------------------- accelerations against the definitions

REFERENCE_CASES = {
    # the toy MLP with R1 (double backward through D) and the EMA copy
    "mlp-toy-r1": dict(r1=1.0),
    # a DCGAN on tiny 8x8 images with the gradient penalty through the convolutions and batch norm
    "dcgan-wgan-gp": dict(data="mnist", arch="dcgan", loss="wgan-gp", n_critic=2),
}


@pytest.mark.parametrize("case", list(REFERENCE_CASES))
def test_reference_mode_steps_match_the_accelerated_ones(tmp_path, case):
    """A few float64 steps with every acceleration on, and inside ``sg.reference_mode()`` (the op definitions
    alone): the gradients of the last updates and the weights after them agree to a relative 1e-9."""
    import scratchgan as sg

    overrides = dict(REFERENCE_CASES[case], dtype="float64", steps=3)
    if overrides.get("data") == "mnist":
        overrides["data_path"] = str(write_tiny_mnist(tmp_path))
    trainers = {}
    for mode in ("fast", "reference"):
        trainer = Trainer(tiny(**overrides), tmp_path / mode)
        with sg.reference_mode(mode == "reference"):
            for _ in range(3):
                trainer.train_step()
        trainers[mode] = trainer
    fast, reference = trainers["fast"], trainers["reference"]
    for net in ("G", "D"):
        for (name, p), (_, q) in zip(getattr(fast, net).named_parameters(), getattr(reference, net).named_parameters()):
            assert p.grad is not None, f"{net}.{name} has no gradient"
            np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-9, atol=1e-12,
                                       err_msg=f"{net}.{name}.grad")
    a, b = flat_arrays(fast.state()), flat_arrays(reference.state())
    assert a.keys() == b.keys() and len(a) > 10
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-9, atol=1e-12, err_msg=k)


def test_critic_loss_is_the_sum_of_its_terms_written_out(tmp_path):
    """D's loss of one update, recomputed here from the same draws with the papers' formulas: the Wasserstein
    loss + the gradient penalty (lambda 3) + R1 (gamma 0.5) + DRAGAN (lambda 2); a term dropped, doubled or of the
    wrong sign changes the sum."""
    import copy

    from scratchgan.autograd.engine import grad, no_grad
    from scratchgan.autograd.tensor import as_tensor

    trainer = Trainer(tiny(loss="wgan-gp", penalty_weight=3.0, r1=0.5, dragan=2.0, dtype="float64", n_critic=1),
                      tmp_path / "run")
    G, D = copy.deepcopy(trainer.G), copy.deepcopy(trainer.D)
    rng = np.random.default_rng()
    rng.bit_generator.state = trainer.rng.bit_generator.state
    record = trainer.d_update()
    # the trainer's draws, in its order: the real batch, the noise, GP's alpha, DRAGAN's noise and alpha
    x, _ = trainer.data.sample_batch(rng, 32)
    x = x.astype(np.float64)
    z = rng.standard_normal((32, 4))
    alpha_gp = rng.uniform(size=(32, 1))
    eps, alpha_dragan = rng.random((32, 2)), rng.random(32)
    with no_grad():
        fake = G(as_tensor(z)).numpy()

    def input_gradient(points):
        t = as_tensor(points).requires_grad_()
        return grad(D(t).sum(), [t], create_graph=False)[0].numpy()

    def norms(g):
        return np.sqrt((g ** 2).sum(axis=1) + 1e-12)

    with no_grad():
        wasserstein = D(as_tensor(fake)).numpy().mean() - D(as_tensor(x)).numpy().mean()
    gp = 3.0 * np.mean((norms(input_gradient(alpha_gp * x + (1 - alpha_gp) * fake)) - 1) ** 2)
    r1 = 0.5 / 2 * np.mean((input_gradient(x) ** 2).sum(axis=1))
    perturbed = x + alpha_dragan[:, None] * (0.5 * x.std() * eps)
    dragan = 2.0 * np.mean((norms(input_gradient(perturbed)) - 1) ** 2)
    assert record["d_loss"] == pytest.approx(wasserstein + gp + r1 + dragan, rel=1e-9)


# --------------------------------------------------------------------------- DiffAugment (--diffaugment)


def _augmented_trainer(tmp_path, **overrides):
    config = dict(data="mnist", data_path=str(write_tiny_mnist(tmp_path)), arch="mlp", diffaugment=True,
                  dtype="float64", n_critic=1)
    return Trainer(tiny(**(config | overrides)), tmp_path / "run")


def _matrices(rng, n, h, w):
    """T of a batch drawn as the trainer draws it, as one (H*W, H*W) matrix per image (the direct loop's)."""
    import augment_reference as ref

    drawn = ref.draws(rng, n, h, w)
    return np.stack([ref.matrix(drawn, k, h, w) for k in range(n)])


def test_diffaugment_trains_a_few_steps_and_is_saved_with_the_run(tmp_path):
    from scratchgan.app.cli import _config_from_args, build_parser

    args = build_parser().parse_args(["train", "--data", "mnist", "--diffaugment"])
    assert _config_from_args(args).diffaugment is True
    assert _config_from_args(build_parser().parse_args(["train", "--data", "mnist"])).diffaugment is False
    trainer = Trainer(tiny(data="mnist", data_path=str(write_tiny_mnist(tmp_path)), arch="dcgan", diffaugment=True,
                           steps=3, r1=1.0), tmp_path / "run")
    trainer.run(progress=False)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["diffaugment"] is True and Trainer.load(tmp_path / "run").config.diffaugment is True
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 3 and all(np.isfinite(r["d_loss"]) and np.isfinite(r["g_loss"]) for r in records)
    old = TrainConfig(data="mnist").to_dict()
    del old["diffaugment"]  # a run saved before the option existed trained without it
    assert TrainConfig.from_dict(old).diffaugment is False


def test_diffaugment_is_refused_for_toy_data(tmp_path):
    with pytest.raises(ConfigError, match="--diffaugment .* grid25 is a 2-D toy mixture"):
        Trainer(tiny(diffaugment=True), tmp_path / "run")


def test_without_diffaugment_a_step_draws_nothing_for_it(tmp_path):
    """Off (the default), no augmentation is drawn: the run draws what it drew before the option existed."""
    trainer = Trainer(tiny(data="mnist", data_path=str(write_tiny_mnist(tmp_path)), arch="mlp"), tmp_path / "run")
    state = trainer.rng.bit_generator.state
    assert trainer._step_draws.augmentation() is None
    assert trainer.rng.bit_generator.state == state


def test_generator_step_with_diffaugment_written_out(tmp_path):
    """G's loss and gradient of one update, recomputed from the same draws: softplus(-D(M G(z))) with M the
    direct loop's matrix of T; G's gradient goes through T (a step without it, or with another T, differs)."""
    import copy

    from scratchgan import ops
    from scratchgan.autograd.engine import grad
    from scratchgan.autograd.tensor import as_tensor

    trainer = _augmented_trainer(tmp_path)
    G, D = copy.deepcopy(trainer.G), copy.deepcopy(trainer.D)
    rng = np.random.default_rng()
    rng.bit_generator.state = trainer.rng.bit_generator.state
    record = trainer.g_update()
    z = rng.standard_normal((32, 4))  # the trainer's draws, in its order: the noise, then T of the fake batch
    M = as_tensor(_matrices(rng, 32, 8, 8))
    fake = G(as_tensor(z))
    seen = ops.matmul(M, fake.reshape(32, 64, 1)).reshape(32, 64)
    loss = ops.softplus(-D(seen)).mean()
    assert record["g_loss"] == pytest.approx(float(loss.numpy()), rel=1e-12)
    params = list(G.parameters())
    for p, q, g in zip(trainer.G.parameters(), params, grad(loss, params)):
        np.testing.assert_allclose(p.grad.numpy(), g.numpy(), rtol=1e-10, atol=1e-14)
    assert trainer.rng.bit_generator.state == rng.bit_generator.state


def test_critic_step_with_diffaugment_and_r1_written_out(tmp_path):
    """D's loss of one update from the same draws: the ns loss on M x and M' G(z) (each batch its own T) plus R1
    through T, as the authors' StyleGAN2 code: gamma/2 mean ||M^T grad D(M x)||^2."""
    import copy

    from scratchgan.autograd.engine import grad, no_grad
    from scratchgan.autograd.tensor import as_tensor

    trainer = _augmented_trainer(tmp_path, r1=0.5)
    G, D = copy.deepcopy(trainer.G), copy.deepcopy(trainer.D)
    rng = np.random.default_rng()
    rng.bit_generator.state = trainer.rng.bit_generator.state
    record = trainer.d_update()
    # the draws, in the trainer's order: the real batch, its T, the noise, the fake batch's T
    x, _ = trainer.data.sample_batch(rng, 32)
    x = x.reshape(32, 64).astype(np.float64)
    m_real = _matrices(rng, 32, 8, 8)
    z = rng.standard_normal((32, 4))
    m_fake = _matrices(rng, 32, 8, 8)
    with no_grad():
        fake = G(as_tensor(z)).numpy()
        seen_real, seen_fake = np.einsum("nij,nj->ni", m_real, x), np.einsum("nij,nj->ni", m_fake, fake)
        d_real, d_fake = D(as_tensor(seen_real)).numpy(), D(as_tensor(seen_fake)).numpy()
    adversarial = np.mean(np.logaddexp(0, -d_real)) + np.mean(np.logaddexp(0, d_fake))
    t = as_tensor(seen_real).requires_grad_()
    g_seen = grad(D(t).sum(), [t])[0].numpy()
    r1 = 0.5 / 2 * np.mean((np.einsum("nji,nj->ni", m_real, g_seen) ** 2).sum(axis=1))
    assert record["d_loss"] == pytest.approx(adversarial + r1, rel=1e-10)
    assert record["d_real"] == pytest.approx(np.mean(1 / (1 + np.exp(-d_real))), rel=1e-10)
