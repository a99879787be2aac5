"""ACGAN and InfoGAN in the networks and the trainer: heads, options, the losses of a step, resume, pictures.

Tiny 8x8 'digits' (tests/test_train.py's write_tiny_mnist) keep each test to
a few seconds. The step tests recompute, from the same draws and the same
networks, what a D and a G update must have minimised, with formulas written
here (not the library's), so that a trainer that drops a term (the real
batch's classification, the MI penalty of D) or weights it wrongly fails.
"""

from __future__ import annotations

import copy
import json
import types

import numpy as np
import pytest

from scratchgan.app import cli
from scratchgan.app.config import ConfigError, TrainConfig, resolve
from scratchgan.autograd.engine import no_grad
from scratchgan.gan.models import Q_HIDDEN, aux_output_dim, build_discriminator, build_generator, info_code_dim
from scratchgan.autograd.tensor import as_tensor
from scratchgan.app.train import Trainer

from test_train import assert_bitwise_equal, tiny, write_tiny_mnist

LOG_2PI = np.log(2.0 * np.pi)


@pytest.fixture
def mnist(tmp_path):
    return str(write_tiny_mnist(tmp_path))


def aux_config(data_path, **overrides):
    base = dict(data="mnist", data_path=data_path, arch="mlp", g_hidden=(16,), d_hidden=(16,), batch_size=12,
                steps=3, eval_samples=40, info_categories=3, info_continuous=2)
    base.update(overrides)
    return tiny(**base)


def images(num_classes=10):
    return types.SimpleNamespace(kind="image", name="images", image_shape=(8, 8), num_classes=num_classes,
                                 data_dim=64)


# --------------------------------------------------------------------------- options


def test_acgan_makes_the_generator_conditional_and_needs_labels(tmp_path, mnist, monkeypatch):
    assert resolve(TrainConfig(data="mnist", aux="acgan")).conditional is True
    assert resolve(TrainConfig(data="mnist", aux="infogan")).conditional is False
    unlabelled = types.SimpleNamespace(name="blank", kind="image", num_classes=0, image_shape=(8, 8), data_dim=64)
    monkeypatch.setattr("scratchgan.app.train.load_dataset", lambda name, path=None: unlabelled)
    with pytest.raises(ConfigError, match="--aux acgan needs labelled data.*blank has no classes"):
        Trainer(aux_config(mnist, aux="acgan"), tmp_path / "run")


@pytest.mark.parametrize(("overrides", "match"), [
    (dict(aux="acgan", pack=2), "--aux acgan needs pack 1"),
    (dict(aux="infogan", conditional=True), "without labels; drop --conditional"),
    (dict(aux="infogan", info_categories=0, info_continuous=0), "at least one code"),
    (dict(aux="infogan", info_categories=1), "info_categories must be 0 .* or at least 2"),
    (dict(aux="infogan", info_continuous=-1), "info_continuous must be >= 0"),
    (dict(aux="acgan", aux_weight=-1.0), "aux_weight must be >= 0"),
    (dict(aux="gan"), "aux must be one of none, acgan, infogan"),
])
def test_aux_option_errors_are_clear(overrides, match):
    with pytest.raises(ConfigError, match=match):
        resolve(TrainConfig(data="mnist", **overrides))


def test_command_line_sets_the_aux_fields():
    args = cli.build_parser().parse_args(["train", "--data", "mnist5k", "--aux", "infogan", "--aux-weight", "0.5",
                                          "--info-categories", "12", "--info-continuous", "3"])
    config = cli._config_from_args(args)
    assert (config.aux, config.aux_weight, config.info_categories, config.info_continuous) == ("infogan", 0.5, 12, 3)
    defaults = cli._config_from_args(cli.build_parser().parse_args(["train"]))
    assert (defaults.aux, defaults.aux_weight, defaults.info_categories, defaults.info_continuous) == \
        ("none", 1.0, 10, 2)


def test_old_checkpoints_without_the_aux_fields_load_without_a_head():
    old = TrainConfig().to_dict()
    for key in ("aux", "aux_weight", "info_categories", "info_continuous"):
        old.pop(key)
    assert TrainConfig.from_dict(old).aux == "none"


# --------------------------------------------------------------------------- networks


@pytest.mark.parametrize("arch", ["mlp", "dcgan"])
@pytest.mark.parametrize("aux", ["acgan", "infogan"])
def test_heads_shapes_and_the_networks_without_them_are_unchanged(arch, aux):
    data = images()
    cfg = resolve(TrainConfig(data="mnist", arch=arch, z_dim=6, batch_size=4, aux=aux, g_hidden=(16,),
                              d_hidden=(16,), info_categories=4, info_continuous=2))
    plain = resolve(TrainConfig(data="mnist", arch=arch, z_dim=6, batch_size=4, g_hidden=(16,), d_hidden=(16,),
                                conditional=aux == "acgan"))
    rng = np.random.default_rng(0)
    G, D = build_generator(cfg, data, rng), build_discriminator(cfg, data, rng)
    Gp, Dp = build_generator(plain, data, np.random.default_rng(0)), build_discriminator(plain, data, rng)
    z = as_tensor(np.random.default_rng(1).standard_normal((4, 6)).astype(np.float32))
    if aux == "infogan":
        assert info_code_dim(cfg) == 6 and aux_output_dim(cfg, data) == 6
        codes = as_tensor(np.eye(6, dtype=np.float32)[:4])
        x = G(z, codes=codes)
        with pytest.raises(ValueError, match=r"needs its codes: G\(z, codes=c\) with c of shape \(N, 6\)"):
            G(z)
        with pytest.raises(ValueError, match=r"codes must have shape \(4, 6\)"):
            G(z, codes=as_tensor(np.zeros((4, 5), np.float32)))
        assert [tuple(p.shape) for p in D.aux_head.parameters()][-1] == (6,)
        assert D.aux_head[0].out_features == Q_HIDDEN
    else:
        labels = as_tensor(np.array([0, 1, 2, 9]))
        x = G(z, labels)
        assert not D.conditional and not hasattr(D, "embed")  # ACGAN's D predicts the label, no projection
        assert aux_output_dim(cfg, data) == 10
    out, aux_logits = D.forward_with_aux(x)
    assert out.shape == (4,) and aux_logits.shape == (4, aux_output_dim(cfg, data))
    with no_grad():
        np.testing.assert_array_equal(D(x).numpy(), D.forward_with_aux(x)[0].numpy())
    # the head's parameters come last, so the rest of D has the keys (and draws) of the same D without a head
    keys = [k for k in D.state_dict() if not k.startswith("aux_head.")]
    assert keys == [k for k in Dp.state_dict() if not k.startswith("embed.")]
    assert list(D.state_dict())[len(keys):] == [k for k in D.state_dict() if k.startswith("aux_head.")]
    with pytest.raises(ValueError, match="no auxiliary head"):
        Dp.forward_with_aux(x)
    with pytest.raises(ValueError, match="takes no InfoGAN codes"):
        Gp(z, as_tensor(np.zeros(4, np.int64)) if plain.conditional else None, codes=z)


def test_a_head_leaves_the_other_weights_as_they_were(mnist, tmp_path):
    """A run with a head draws its other initial weights exactly as the run without (the head is drawn last)."""
    plain = Trainer(aux_config(mnist, conditional=True), tmp_path / "a")
    acgan = Trainer(aux_config(mnist, aux="acgan"), tmp_path / "b")
    for (k, v), (k2, v2) in zip(plain.G.state_dict().items(), acgan.G.state_dict().items()):
        assert k == k2 and np.array_equal(v, v2)
    d = acgan.D.state_dict()
    for k, v in plain.D.state_dict().items():
        if not k.startswith("embed."):
            assert k in d


# --------------------------------------------------------------------------- the losses of a step


def _np_ce(logits, labels):
    z = np.asarray(logits, np.float64)
    return float(np.mean([np.logaddexp.reduce(row) - row[y] for row, y in zip(z, labels)]))


def _np_ns_d(real, fake):
    return float(np.mean(np.logaddexp(0, -real)) + np.mean(np.logaddexp(0, fake)))


def _np_mi(q, c, mu, s):
    cat = np.mean([row[k] - np.logaddexp.reduce(row) for row, k in zip(np.asarray(q, np.float64), c)])
    cont = np.mean(-0.5 * (np.asarray(s, np.float64) - mu) ** 2 - 0.5 * LOG_2PI)
    return -float((cat + cont) / 2)


def _draws(trainer, real_batch: bool):
    """Replay a step's draws on a copy of the training stream: real batch, fake labels, noise, codes."""
    c, rng = trainer.config, copy.deepcopy(trainer.rng)
    x = y = None
    if real_batch:
        x, y = trainer.data.sample_batch(rng, c.batch_size)
        x = x.reshape(len(x), -1)
    y_fake = rng.integers(0, trainer.data.num_classes, c.batch_size) if c.conditional else None
    z = rng.standard_normal((c.batch_size, c.z_dim), dtype=np.dtype(c.dtype))
    cat = cont = None
    if c.aux == "infogan":
        cat = rng.integers(0, c.info_categories, c.batch_size)
        cont = rng.uniform(-1.0, 1.0, (c.batch_size, c.info_continuous))
    return x, y, y_fake, z, cat, cont


def _forward(trainer, x, y, y_fake, z, cat, cont):
    """The networks' outputs on those draws, evaluated here without the trainer's plumbing (float64 host arrays)."""
    c = trainer.config
    with no_grad():
        codes = None
        if cat is not None:
            codes = as_tensor(np.concatenate([np.eye(c.info_categories)[cat], cont], axis=1).astype(c.dtype))
        labels = as_tensor(y_fake) if y_fake is not None else None
        fake = trainer.G(as_tensor(z), labels, **({"codes": codes} if codes is not None else {}))
        fake_out, fake_aux = trainer.D.forward_with_aux(fake)
        real_out = real_aux = None
        if x is not None:
            real_out, real_aux = trainer.D.forward_with_aux(as_tensor(x.astype(c.dtype)))
    as64 = lambda t: None if t is None else t.numpy().astype(np.float64)  # noqa: E731
    return as64(real_out), as64(real_aux), as64(fake_out), as64(fake_aux)


@pytest.mark.parametrize("weight", [1.0, 0.7])
def test_acgan_step_minimises_the_adversarial_plus_the_classification_losses(mnist, tmp_path, weight):
    trainer = Trainer(aux_config(mnist, aux="acgan", aux_weight=weight, ema_decay=0.0), tmp_path / "run")
    x, y, y_fake, z, _, _ = _draws(trainer, real_batch=True)
    real_out, real_aux, fake_out, fake_aux = _forward(trainer, x, y, y_fake, z, None, None)
    aux = _np_ce(real_aux, y) + _np_ce(fake_aux, y_fake)  # real AND fake (TF-GAN's acgan_discriminator_loss)
    record = trainer.d_update()
    assert record["d_aux"] == pytest.approx(aux, rel=1e-5)
    assert record["d_loss"] == pytest.approx(_np_ns_d(real_out, fake_out) + weight * aux, rel=1e-5)
    assert all(float(np.abs(p.grad.numpy()).sum()) > 0 for p in trainer.D.aux_head.parameters())

    _, _, y_fake, z, _, _ = _draws(trainer, real_batch=False)
    _, _, fake_out, fake_aux = _forward(trainer, None, None, y_fake, z, None, None)
    record = trainer.g_update()
    g_aux = _np_ce(fake_aux, y_fake)
    assert record["g_aux"] == pytest.approx(g_aux, rel=1e-5)
    assert record["g_loss"] == pytest.approx(float(np.mean(np.logaddexp(0, -fake_out))) + weight * g_aux, rel=1e-5)


@pytest.mark.parametrize("weight", [1.0, 0.7])
def test_infogan_step_adds_the_mi_penalty_to_d_and_to_g(mnist, tmp_path, weight):
    trainer = Trainer(aux_config(mnist, aux="infogan", aux_weight=weight, ema_decay=0.0), tmp_path / "run")
    k = trainer.config.info_categories
    x, y, _, z, cat, cont = _draws(trainer, real_batch=True)
    real_out, _, fake_out, fake_aux = _forward(trainer, x, y, None, z, cat, cont)
    mi = _np_mi(fake_aux[:, :k], cat, fake_aux[:, k:], cont)
    record = trainer.d_update()
    assert record["d_aux"] == pytest.approx(mi, rel=1e-5)
    assert record["d_loss"] == pytest.approx(_np_ns_d(real_out, fake_out) + weight * mi, rel=1e-5)
    # the penalty trains Q and D's body (TF-GAN adds it to D's loss)
    assert all(float(np.abs(p.grad.numpy()).sum()) > 0 for p in trainer.D.aux_head.parameters())

    _, _, _, z, cat, cont = _draws(trainer, real_batch=False)
    _, _, fake_out, fake_aux = _forward(trainer, None, None, None, z, cat, cont)
    record = trainer.g_update()
    mi = _np_mi(fake_aux[:, :k], cat, fake_aux[:, k:], cont)
    assert record["g_aux"] == pytest.approx(mi, rel=1e-5)
    assert record["g_loss"] == pytest.approx(float(np.mean(np.logaddexp(0, -fake_out))) + weight * mi, rel=1e-5)


def test_the_mi_penalty_reaches_the_generator(mnist, tmp_path):
    """G's update with the penalty differs from the one without, from the same state and draws."""
    a = Trainer(aux_config(mnist, aux="infogan", ema_decay=0.0), tmp_path / "a")
    b = Trainer(aux_config(mnist, aux="infogan", aux_weight=0.0, ema_decay=0.0), tmp_path / "b")
    a.g_update()
    b.g_update()
    moved = [not np.array_equal(p.numpy(), q.numpy()) for p, q in zip(a.G.parameters(), b.G.parameters())]
    assert all(moved)


# --------------------------------------------------------------------------- runs, resume, pictures


@pytest.mark.parametrize("aux", ["acgan", "infogan"])
def test_a_short_run_trains_samples_and_evaluates(mnist, tmp_path, aux):
    trainer = Trainer(aux_config(mnist, aux=aux), tmp_path / "run")
    result = trainer.run(progress=False)
    folder = tmp_path / "run"
    assert (folder / "samples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    record = json.loads((folder / "metrics.jsonl").read_text().splitlines()[-1])
    assert np.isfinite(record["d_aux"]) and np.isfinite(record["g_aux"])
    assert json.loads((folder / "eval.json").read_text()) == result
    if aux == "acgan":  # the conditional evaluation: samples asked for each class, classified
        assert 0.0 <= result["conditional_accuracy"] <= 1.0
        x = trainer.sample(4, labels=[0, 1, 2, 3], seed=0)
        assert x.shape == (4, 8, 8)
    else:
        assert 0.0 < result["info_code_purity"] <= 1.0 and 1 <= result["info_code_classes"] <= 3
        assert 0.0 < result["info_code_accuracy"] <= 1.0 and len(result["info_code_majority"]) == 3
        grid = trainer.info_grid(per_row=5, seed=3)
        assert grid.shape == (15, 8, 8)
        noise = np.tile(np.random.default_rng(3).standard_normal((5, trainer.config.z_dim)), (3, 1))
        same = trainer.sample(15, noise=noise, category=np.repeat(np.arange(3), 5), continuous=0.0)
        np.testing.assert_array_equal(grid, same)
        assert not np.allclose(trainer.sample(5, seed=0, category=0), trainer.sample(5, seed=0, category=1))
        with pytest.raises(ValueError, match=r"category must be integers in \[0, 2\]"):
            trainer.sample(2, category=3)
        with pytest.raises(ConfigError, match="not conditional"):
            trainer.sample(2, labels=1)


def test_codes_given_to_a_run_without_them_are_refused(tmp_path):
    trainer = Trainer(tiny(steps=1), tmp_path / "run")
    with pytest.raises(ConfigError, match="no InfoGAN codes"):
        trainer.sample(2, category=1)
    with pytest.raises(ConfigError, match="info_grid needs an InfoGAN run"):
        trainer.info_grid()


@pytest.mark.parametrize("aux", ["acgan", "infogan"])
def test_dcgan_heads_train_a_few_steps(mnist, tmp_path, aux):
    trainer = Trainer(aux_config(mnist, aux=aux, arch="dcgan", batch_size=8, z_dim=4), tmp_path / "run")
    for _ in range(2):
        record = trainer.train_step()
    assert np.isfinite(record["d_aux"]) and np.isfinite(record["g_aux"])


@pytest.mark.parametrize(("aux", "arch"), [("acgan", "mlp"), ("infogan", "dcgan")])
def test_resume_is_bitwise_exact(mnist, tmp_path, aux, arch):
    """4 steps straight == 2 steps, checkpoint, resume, 2 more: heads, their Adam states, the code draws."""
    cfg = dict(aux=aux, arch=arch, batch_size=8, z_dim=4, eval_samples=20)
    straight = Trainer(aux_config(mnist, steps=4, **cfg), tmp_path / "straight")
    straight.run(progress=False)
    Trainer(aux_config(mnist, steps=2, **cfg), tmp_path / "split").run(progress=False)
    resumed = Trainer.resume(tmp_path / "split", steps=4)
    resumed.run(progress=False)
    a, b = straight.state(), resumed.state()
    assert a["step"] == b["step"] == 4 and a["rng"] == b["rng"]
    assert any(k.startswith("aux_head.") for k in a["D"])
    assert_bitwise_equal(a, b)


def test_info_code_metrics_count_codes_against_classes(monkeypatch):
    """Purity, distinct majority classes and the best one-to-one matching, on known counts."""
    from scratchgan.app import image_eval

    # 3 codes, 4 images each: code 0 -> class 2 (4/4), code 1 -> class 2 (3/4) and class 0 (1/4), code 2 -> class 1
    plan = {0: [2, 2, 2, 2], 1: [2, 2, 2, 0], 2: [1, 1, 1, 1]}

    class Trainer_:
        config = types.SimpleNamespace(info_categories=3)
        data = types.SimpleNamespace(kind="image", num_classes=5)

        def sample(self, n, seed=None, category=None):
            assert n == 12
            return np.concatenate([plan[k] for k in range(3)]).astype(float)  # "images" that encode the class

    monkeypatch.setattr("scratchgan.app.image_eval.get_classifier",
                        lambda data: types.SimpleNamespace(predict=lambda x: np.asarray(x, dtype=int)))
    result = image_eval.info_code_metrics(Trainer_(), 12)
    assert result["info_code_purity"] == pytest.approx((1 + 0.75 + 1) / 3)
    assert result["info_code_classes"] == 2 and result["info_code_majority"] == [2, 2, 1]
    assert result["info_code_accuracy"] == pytest.approx(9 / 12)  # 0->2 (4), 1->0 (1), 2->1 (4)
