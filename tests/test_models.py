"""The GAN networks (models.py): DCGAN shapes, conditioning, the penalty critic, errors; the image recipe."""

from __future__ import annotations

import types

import numpy as np
import pytest

from scratchgan.gan import losses
from scratchgan import nn
from scratchgan.app.config import ARCHS, DCGAN_RECIPE_FC, IMAGE_RECIPE, ConfigError, TrainConfig, recipe_name, resolve
from scratchgan.autograd.engine import no_grad
from scratchgan.gan.models import ARCHITECTURES, DCGANDiscriminator, DCGANGenerator, MLPGenerator, build_discriminator, build_generator, critic_norm
from scratchgan.autograd.tensor import as_tensor
from scratchgan.app.train import Trainer


def images(shape, num_classes=10, name="images"):
    """A stand-in for a loaded image Dataset: what the networks read of one."""
    return types.SimpleNamespace(kind="image", name=name, image_shape=tuple(shape), num_classes=num_classes,
                                 data_dim=int(np.prod(shape)))


def config(**overrides) -> TrainConfig:
    """A resolved DCGAN config: the reference networks (no hidden layers) unless g_fc / d_fc are given."""
    base = dict(data="mnist", arch="dcgan", z_dim=8, batch_size=8, embed_dim=4, g_fc=0, d_fc=0)
    base.update(overrides)
    return resolve(TrainConfig(**base))


def nets(cfg, data, seed=0):
    rng = np.random.default_rng(seed)
    return build_generator(cfg, data, rng), build_discriminator(cfg, data, rng)


def noise(n, dim, dtype="float32", seed=1):
    return as_tensor(np.random.default_rng(seed).standard_normal((n, dim)).astype(dtype))


def labels(values):
    return as_tensor(np.asarray(values, dtype=np.int64))


def write_tiny_mnist(folder, n=60, classes=3):
    """A Keras-style npz of 8x8 'digits' (a bright block per class; the mnist loader gives it 10 classes)."""
    rng = np.random.default_rng(0)
    y = np.arange(n) % classes
    x = rng.integers(0, 40, (n, 8, 8)).astype(np.uint8)
    for i, label in enumerate(y):
        x[i, 2 * label:2 * label + 3, 1:7] = 250
    np.savez(folder / "mnist.npz", x_train=x, y_train=y, x_test=x[:12], y_test=y[:12])
    return folder / "mnist.npz"


# --------------------------------------------------------------------------- shapes and structure


@pytest.mark.parametrize("shape", [(28, 28), (1, 28, 28), (32, 32), (3, 32, 32), (3, 8, 12)])
def test_dcgan_shapes_follow_the_contract(shape):
    data = images(shape)
    G, D = nets(config(), data)
    x = G(noise(6, 8))
    assert x.shape == (6, data.data_dim)  # flat samples, C·H·W
    assert float(abs(x.data).max()) <= 1.0  # tanh output
    assert D(x).shape == (6,)
    c = shape[0] if len(shape) == 3 else 1
    # before the final flatten, G's output is (N, C, H, W): H and W not swapped (the flat size would not show it)
    assert G.net[:-1](noise(6, 8)).shape == (6, c, shape[-2], shape[-1])
    convs = [m for m in D.modules() if isinstance(m, nn.Conv2d)]
    assert convs[0].in_channels == c and convs[-1].out_channels == 128
    head = D.head
    assert head.in_features == 128 * (shape[-2] // 4) * (shape[-1] // 4)


def test_dcgan_layers_are_the_reference_for_28x28():
    G, D = nets(config(z_dim=100), images((28, 28)))
    g_layers = [type(m).__name__ for m in G.net]
    assert g_layers == ["Linear", "BatchNorm1d", "ReLU", "Unflatten", "ConvTranspose2d", "BatchNorm2d", "ReLU",
                        "ConvTranspose2d", "Tanh", "Flatten"]
    assert (G.net[0].in_features, G.net[0].out_features) == (100, 128 * 7 * 7)
    assert G.net[3].unflattened_size == (128, 7, 7)
    assert [(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding) for m in G.net
            if isinstance(m, nn.ConvTranspose2d)] == [(128, 64, (4, 4), (2, 2), (1, 1)), (64, 1, (4, 4), (2, 2), (1, 1))]
    d_layers = [type(m).__name__ for m in D.features] + [type(D.head).__name__]
    assert d_layers == ["Unflatten", "Conv2d", "LeakyReLU", "Conv2d", "BatchNorm2d", "LeakyReLU", "Flatten", "Linear"]
    assert [(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding) for m in D.features
            if isinstance(m, nn.Conv2d)] == [(1, 64, (4, 4), (2, 2), (1, 1)), (64, 128, (4, 4), (2, 2), (1, 1))]
    assert (D.head.in_features, D.head.out_features) == (128 * 7 * 7, 1)


def test_dcgan_discriminator_leaky_slope_is_0_2():
    for loss in ("ns", "wgan-gp"):
        _, D = nets(config(loss=loss), images((28, 28)))
        slopes = [m.negative_slope for m in D.modules() if isinstance(m, nn.LeakyReLU)]
        assert slopes == [0.2, 0.2], loss


def test_dcgan_initialisation_is_n_0_0_02_and_norms_start_at_identity():
    G, D = nets(config(z_dim=100), images((28, 28)))
    for net in (G, D):
        for name, p in net.named_parameters():
            values = np.asarray(p.data)
            if "weight" in name and values.ndim >= 2:  # linear and conv weights
                assert abs(values.std() - 0.02) < 0.003, name
                assert abs(values.mean()) < 0.003, name
            elif name.endswith("bias"):
                assert not values.any(), name
            else:  # batch-norm scales
                assert np.all(values == 1), name


def test_weights_are_drawn_from_rng_in_order():
    cfg, data = config(conditional=True), images((28, 28))
    a, b = nets(cfg, data, seed=5), nets(cfg, data, seed=5)
    for net_a, net_b in zip(a, b):
        for (ka, va), (kb, vb) in zip(net_a.state_dict().items(), net_b.state_dict().items()):
            assert ka == kb and np.array_equal(va, vb)
    other = nets(cfg, data, seed=6)[0].state_dict()
    assert not np.array_equal(a[0].state_dict()["net.0.weight"], other["net.0.weight"])


def test_g_fc_puts_a_hidden_layer_before_the_first_feature_map():
    """g_fc = m: G(z) = reference_rest(relu(bn(z @ W1))), checked against NumPy with eval-mode statistics."""
    cfg = config(g_fc=16, dtype="float64")
    G, _ = nets(cfg, images((28, 28)))
    reference = nets(config(), images((28, 28)))[0]
    assert [type(m).__name__ for m in G.net] == ["Linear", "BatchNorm1d", "ReLU"] + [
        type(m).__name__ for m in reference.net]
    fc, bn = G.net[0], G.net[1]
    assert (fc.in_features, fc.out_features, fc.bias) == (8, 16, None)  # a norm follows: no bias
    assert (G.net[3].in_features, G.net[3].out_features) == (16, 128 * 7 * 7)
    rng = np.random.default_rng(2)
    bn.running_mean[...] = rng.normal(size=16)
    bn.running_var[...] = rng.uniform(0.5, 2.0, 16)
    bn.weight.data[...] = rng.normal(size=16)
    bn.bias.data[...] = rng.normal(size=16)
    G.eval()
    z = noise(5, 8, "float64")
    with no_grad():
        out = G(z).numpy()
        pre = z.numpy() @ np.asarray(fc.weight.data)
        hidden = np.maximum((pre - bn.running_mean) / np.sqrt(bn.running_var + bn.eps) * np.asarray(bn.weight.data)
                            + np.asarray(bn.bias.data), 0.0)
        expected = G.net[3:](as_tensor(hidden)).numpy()  # the reference part, from the projection on
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-16)


def test_d_fc_puts_a_hidden_layer_between_the_convolutions_and_the_logit():
    """d_fc = m: logit = head(leaky_0.2(flatten(convs(x)) @ W + b)), checked against NumPy on the same weights."""
    cfg = config(d_fc=16, conditional=True, dtype="float64")
    G, D = nets(cfg, images((28, 28)))
    reference = nets(config(), images((28, 28)))[1]
    assert [type(m).__name__ for m in D.features] == [type(m).__name__ for m in reference.features] + [
        "Linear", "LeakyReLU"]
    fc = D.features[7]
    assert (fc.in_features, fc.out_features, D.head.in_features) == (128 * 7 * 7, 16, 16)
    assert D.embed.weight.shape == (10, 16)  # the projection acts on the hidden layer's output
    assert abs(np.asarray(fc.weight.data).std() - 0.02) < 0.003 and not np.asarray(fc.bias.data).any()
    D.eval()
    x = G(noise(5, 8, "float64"), labels([0, 1, 2, 3, 4]))
    y = labels([3, 3, 0, 9, 1])
    with no_grad():
        conv_features = D.features[:7](x).numpy()  # the reference part, up to the flatten
        out = D(x, y).numpy()
    pre = conv_features @ np.asarray(fc.weight.data) + np.asarray(fc.bias.data)
    phi = np.where(pre > 0, pre, 0.2 * pre)
    expected = (phi @ np.asarray(D.head.weight.data)).ravel() + np.asarray(D.head.bias.data)
    expected += (phi * np.asarray(D.embed.weight.data)[[3, 3, 0, 9, 1]]).sum(axis=1)
    np.testing.assert_allclose(out, expected, rtol=1e-12)


# --------------------------------------------------------------------------- conditioning


def test_conditional_generator_labels_change_the_output():
    G, D = nets(config(conditional=True), images((28, 28)))
    G.eval()  # batch statistics would mix the rows; eval mode compares like with like
    z = noise(4, 8)
    with no_grad():
        x0 = G(z, labels([0, 0, 0, 0])).numpy()
        x0_again = G(z, labels([0, 0, 0, 0])).numpy()
        x3 = G(z, labels([3, 3, 3, 3])).numpy()
    assert x0.shape == (4, 784)
    assert np.array_equal(x0, x0_again)
    assert np.abs(x0 - x3).max() > 1e-3
    # G's embedding is concatenated to z
    assert G.net[0].in_features == 8 + 4 and G.embed.weight.shape == (10, 4)


def test_conditional_discriminator_is_a_projection():
    """D(x, y) = head(phi(x)) + <e(y), phi(x)>: the label moves the logit by that inner product exactly."""
    cfg = config(conditional=True, dtype="float64")
    G, D = nets(cfg, images((28, 28)))
    D.eval()
    x = G(noise(4, 8, "float64"), labels([1, 2, 3, 4]))
    y = labels([0, 1, 2, 9])
    with no_grad():
        phi = D.features(x).numpy()
        plain = D.head(D.features(x)).numpy().ravel()
        out = D(x, y).numpy()
    e = np.asarray(D.embed.weight.data)[[0, 1, 2, 9]]
    assert D.embed.weight.shape == (10, phi.shape[1])
    np.testing.assert_allclose(out, plain + (phi * e).sum(axis=1), rtol=1e-12)
    assert abs(np.asarray(D.embed.weight.data).std() - 0.02) < 0.003  # the output layer's scale
    # the first convolution sees the image only (no label channels)
    assert D.features[1].in_channels == 1


# --------------------------------------------------------------------------- the critic of penalty runs


@pytest.mark.parametrize("overrides, norm", [
    (dict(loss="ns"), "batch"),
    (dict(loss="hinge"), "batch"),
    (dict(loss="wgan-gp"), "layer"),
    (dict(loss="wgan-gp", penalty_weight=0.0), "batch"),
    (dict(loss="ns", r1=1.0), "layer"),
    (dict(loss="lsgan", r1=0.1), "layer"),
])
def test_penalty_runs_get_a_critic_without_batch_norm(overrides, norm):
    cfg = config(**overrides)
    assert critic_norm(cfg) == norm
    _, D = nets(cfg, images((28, 28)))
    kinds = {type(m).__name__ for m in D.modules()}
    if norm == "layer":
        assert "BatchNorm2d" not in kinds and "BatchNorm1d" not in kinds and "LayerNorm" in kinds
        ln = next(m for m in D.modules() if isinstance(m, nn.LayerNorm))
        assert ln.normalized_shape == (128, 7, 7)  # over (C, H, W), per sample
    else:
        assert "BatchNorm2d" in kinds and "LayerNorm" not in kinds


@pytest.mark.parametrize("loss, independent", [("wgan-gp", True), ("ns", False)])
def test_penalty_critic_scores_each_sample_on_its_own(loss, independent):
    """In training mode, a sample's score must not depend on the rest of the batch (what the penalties assume)."""
    cfg = config(loss=loss, dtype="float64")
    G, D = nets(cfg, images((8, 8)))
    with no_grad():
        x = G(noise(6, 8, "float64"))
        full = D(x).numpy()
        half = D(x[:3]).numpy()
    assert np.allclose(full[:3], half, rtol=1e-12, atol=1e-12) == independent


@pytest.mark.parametrize("d_fc", [0, 16])
def test_gradient_penalty_through_the_dcgan_critic_matches_finite_differences(d_fc):
    """The WGAN-GP penalty's gradient with respect to D's weights (a second-order gradient), float64."""
    cfg = config(loss="wgan-gp", conditional=True, dtype="float64", d_fc=d_fc)
    data = images((8, 8))
    G, D = nets(cfg, data)
    rng = np.random.default_rng(3)
    real = as_tensor(rng.uniform(-1, 1, (4, 64)))
    with no_grad():
        fake = as_tensor(G(noise(4, 8, "float64"), labels([0, 1, 2, 3])).numpy())
    y = labels([1, 1, 2, 5])
    alpha = as_tensor(rng.uniform(size=(4, 1)))

    def penalty():
        return losses.gradient_penalty(lambda u: D(u, y), real, fake, weight=10.0, alpha=alpha)

    for p in D.parameters():
        p.grad = None
    value = penalty()
    assert float(value.item()) > 0
    value.backward()
    checked = 0
    names = [("features.1.weight", (3, 0, 1, 2)), ("features.3.weight", (5, 7, 2, 1)),
             ("head.weight", (10, 0)), ("embed.weight", (1, 13)), ("features.4.weight", (2, 1, 0))]
    if d_fc:  # the hidden layer's weight (its bias only moves the LeakyReLU's kinks: no gradient almost everywhere)
        names += [("features.7.weight", (40, 3)), ("features.7.weight", (511, 15))]
    for name, index in names:
        p = dict(D.named_parameters())[name]
        analytic = float(np.asarray(p.grad.data)[index])
        h = 1e-6
        old = float(p.data[index])
        p.data[index] = old + h
        up = float(penalty().item())
        p.data[index] = old - h
        down = float(penalty().item())
        p.data[index] = old
        numeric = (up - down) / (2 * h)
        assert abs(analytic) > 1e-8, name
        assert abs(analytic - numeric) <= 1e-5 * abs(numeric) + 1e-9, (name, analytic, numeric)
        checked += 1
    assert checked == len(names)


# --------------------------------------------------------------------------- PacGAN


def test_packing_stacks_a_packs_samples_along_the_channels():
    cfg = config(pack=2, conditional=True, dtype="float64")
    G, D = nets(cfg, images((8, 12)))  # not square: a mix-up of H and W shows
    assert D.features[1].in_channels == 2
    D.eval()
    x = G(noise(6, 8, "float64"), labels([0, 1, 2, 3, 4, 5]))
    y = labels([0, 1, 2, 3, 4, 5])
    with no_grad():
        out = D(x, y).numpy()
        stacked = D.features[1:](as_tensor(x.numpy().reshape(3, 2, 8, 12))).numpy()
        phi = D.features(x.reshape(3, 2 * 96)).numpy()
    assert out.shape == (3,)
    np.testing.assert_array_equal(stacked, phi)  # the packed input is the two images as two channels
    e = np.asarray(D.embed.weight.data)
    expected = (phi @ np.asarray(D.head.weight.data)).ravel() + (phi * (e[[0, 2, 4]] + e[[1, 3, 5]])).sum(axis=1)
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    with pytest.raises(ValueError, match="packs of 2"):
        D(x[:5], y[:5])


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("shape", [(30, 30), (28, 26), (3, 10, 12)])
def test_sides_not_divisible_by_4_are_a_clear_error(shape):
    with pytest.raises(ConfigError, match="sides divisible by 4"):
        nets(config(), images(shape))


def test_toy_data_is_a_clear_error():
    from scratchgan.app.data import load_dataset

    cfg = config()
    with pytest.raises(ConfigError, match="dcgan architecture needs image data; grid25"):
        DCGANGenerator(cfg, load_dataset("grid25"), np.random.default_rng(0))
    with pytest.raises(ConfigError, match="needs image data"):
        DCGANDiscriminator(cfg, load_dataset("ring8"), np.random.default_rng(0))
    # caught by resolve() already, before any data is loaded
    with pytest.raises(ConfigError, match="dcgan architecture needs image data; grid25"):
        resolve(TrainConfig(arch="dcgan"))


def test_the_config_names_the_registrys_architectures():
    assert tuple(ARCHITECTURES) == ARCHS
    with pytest.raises(ConfigError, match="arch must be one of mlp, dcgan"):
        resolve(TrainConfig(data="mnist", arch="resnet"))


# --------------------------------------------------------------------------- the recipes


def test_auto_picks_the_image_recipe_for_image_data():
    for name in ("mnist", "fashion-mnist", "mnist5k", "digits", "Fashion_MNIST"):
        c = resolve(TrainConfig(data=name))
        assert recipe_name(c) == "image", name
        assert (c.arch, c.z_dim, c.batch_size, c.steps) == ("dcgan", 100, 64, IMAGE_RECIPE["steps"])
        # DCGAN's Adam with the image recipe's learning rate for the default loss (IMAGE_LOSS_RECIPES)
        assert (c.optimizer, c.lr_g, c.lr_d, tuple(c.betas), c.n_critic) == ("adam", 8e-4, 8e-4, (0.5, 0.999), 1)
        assert (c.ema_decay, c.r1, c.lr_decay) == (IMAGE_RECIPE["ema_decay"], IMAGE_RECIPE["r1"], "none")
    # another loss keeps the image networks and budget with its paper's optimiser
    hinge = resolve(TrainConfig(data="mnist", loss="hinge"))
    assert (hinge.lr_g, hinge.lr_d, hinge.steps) == (2e-4, 2e-4, IMAGE_RECIPE["steps"])
    gp = resolve(TrainConfig(data="mnist", loss="wgan-gp"))
    assert (gp.arch, gp.z_dim, gp.optimizer, gp.lr_d, tuple(gp.betas), gp.n_critic) == \
        ("dcgan", 100, "adam", 1e-4, (0.5, 0.9), 5)
    # an explicit value wins
    assert resolve(TrainConfig(data="mnist", z_dim=64, arch="mlp", steps=10)).z_dim == 64
    assert resolve(TrainConfig(data="mnist", arch="mlp")).arch == "mlp"


def test_auto_keeps_the_toy_recipe_and_its_values_for_toy_data():
    c = resolve(TrainConfig())
    assert recipe_name(c) == "toy"
    assert (c.arch, c.z_dim, c.batch_size, c.steps, c.ema_decay) == ("mlp", 16, 128, 12000, 0.999)
    assert (c.lr_g, c.lr_d, tuple(c.betas), c.r1, c.lr_decay, c.lr_decay_steps) == \
        (2e-3, 4e-3, (0.5, 0.9), 0.3, "linear", 12000)
    short = resolve(TrainConfig(steps=3000))  # a shortened run: the decay and the EMA's window follow it
    assert (short.lr_decay_steps, short.ema_decay) == (3000, pytest.approx(0.996))
    assert resolve(TrainConfig(steps=3000, ema_decay=0.999)).ema_decay == 0.999  # an explicit value wins
    assert resolve(TrainConfig(steps=24000)).ema_decay == 0.999  # a longer run keeps the recipe's value
    other = resolve(TrainConfig(data="ring8", loss="hinge"))
    assert recipe_name(other) == "paper" and (other.arch, other.z_dim, other.batch_size) == ("mlp", 16, 128)


def test_paper_and_toy_recipes_on_images_are_unchanged():
    c = resolve(TrainConfig(data="mnist", recipe="paper"))
    assert recipe_name(c) == "paper"
    assert (c.arch, c.z_dim, c.batch_size, c.steps, c.ema_decay, c.r1) == ("mlp", 16, 128, 12000, 0.999, 0.0)
    t = resolve(TrainConfig(data="mnist", recipe="toy"))
    assert (t.arch, t.lr_g, t.r1) == ("mlp", 2e-3, 0.3)


def test_image_recipe_on_toy_data_is_refused():
    with pytest.raises(ConfigError, match="image recipe is for image data"):
        resolve(TrainConfig(data="grid25", recipe="image"))


def test_image_recipe_falls_back_to_the_mlp_when_sides_do_not_divide_by_4():
    assert resolve(TrainConfig(data="mnist"), images((30, 30))).arch == "mlp"
    assert resolve(TrainConfig(data="mnist"), images((28, 28))).arch == "dcgan"
    # an explicit dcgan is kept; the networks then refuse the data
    cfg = resolve(TrainConfig(data="mnist", arch="dcgan"), images((30, 30)))
    with pytest.raises(ConfigError, match="divisible by 4"):
        nets(cfg, images((30, 30)))


def fcs(c):
    return c.g_fc, c.d_fc


def test_the_image_recipe_gives_the_dcgan_networks_their_hidden_layers():
    assert fcs(resolve(TrainConfig(data="fashion-mnist"))) == (DCGAN_RECIPE_FC, DCGAN_RECIPE_FC) == (256, 256)
    assert fcs(resolve(TrainConfig(data="fashion-mnist", g_fc=0, d_fc=0))) == (0, 0)  # the reference, on request
    assert fcs(resolve(TrainConfig(data="fashion-mnist", d_fc=64))) == (256, 64)
    assert fcs(resolve(TrainConfig())) == (0, 0)  # toy data: MLPs
    assert fcs(resolve(TrainConfig(data="mnist", recipe="paper"))) == (0, 0)  # the paper recipe's MLP
    assert fcs(resolve(TrainConfig(data="mnist", arch="mlp"))) == (0, 0)
    assert fcs(resolve(TrainConfig(data="mnist"), images((30, 30)))) == (0, 0)  # the recipe fell back to the MLP
    # with labels the recipe keeps the reference networks (the hidden layers collapsed mnist5k's classes)
    assert fcs(resolve(TrainConfig(data="mnist5k", conditional=True))) == (0, 0)
    assert fcs(resolve(TrainConfig(data="mnist5k", aux="acgan"))) == (0, 0)
    assert fcs(resolve(TrainConfig(data="mnist5k", aux="infogan"))) == (256, 256)  # no labels: as unconditional
    assert fcs(resolve(TrainConfig(data="mnist5k", conditional=True, g_fc=32, d_fc=16))) == (32, 16)  # explicit
    with pytest.raises(ConfigError, match="d_fc \\(64\\) adds a hidden layer to the dcgan discriminator; the mlp"):
        resolve(TrainConfig(data="mnist", arch="mlp", d_fc=64))
    with pytest.raises(ConfigError, match="g_fc \\(8\\) adds a hidden layer to the dcgan generator.*--g-hidden"):
        resolve(TrainConfig(data="mnist", arch="mlp", g_fc=8))
    for key in ("g_fc", "d_fc"):
        with pytest.raises(ConfigError, match=f"{key} must be >= 0, got -1"):
            resolve(TrainConfig(data="mnist", **{key: -1}))


def test_dcgan_checkpoints_from_before_the_fc_fields_keep_the_reference_networks():
    old = resolve(TrainConfig(data="fashion-mnist")).to_dict()
    del old["g_fc"], old["d_fc"]
    assert fcs(resolve(TrainConfig.from_dict(old))) == (0, 0)


def test_checkpoints_from_before_the_arch_field_load_as_mlps():
    old = TrainConfig().to_dict()
    old.update(data="mnist", z_dim=16, batch_size=128, steps=12000, ema_decay=0.999)
    del old["arch"]
    assert resolve(TrainConfig.from_dict(old)).arch == "mlp"


# --------------------------------------------------------------------------- training


@pytest.mark.parametrize("loss, norm", [("ns", "batch"), ("wgan-gp", "layer")])
def test_a_short_dcgan_run_trains_and_samples(tmp_path, loss, norm, monkeypatch):
    monkeypatch.setenv("SCRATCHGAN_CACHE", str(tmp_path / "cache"))
    path = write_tiny_mnist(tmp_path)
    cfg = TrainConfig(data="mnist", data_path=str(path), loss=loss, conditional=True, z_dim=8, embed_dim=4,
                      batch_size=16, steps=3, n_critic=2 if loss == "wgan-gp" else None, log_every=1,
                      eval_samples=40, ema_decay=0.9)
    trainer = Trainer(cfg, tmp_path / "run")
    assert trainer.config.arch == "dcgan"  # auto picked the image recipe: the sides (8) divide by 4
    assert isinstance(trainer.G, DCGANGenerator) and critic_norm(trainer.config) == norm
    before = {k: v.copy() for k, v in trainer.D.state_dict().items()}
    result = trainer.run(progress=False)
    assert trainer.step == 3 and np.isfinite(result["frechet_classifier_distance"])
    assert any(not np.array_equal(before[k], v) for k, v in trainer.D.state_dict().items())
    x = trainer.sample(5, labels=1, seed=0)
    assert x.shape == (5, 8, 8) and np.isfinite(x).all() and np.abs(x).max() <= 1
    # the EMA copy samples with the generator's batch-norm statistics
    for (name, be), (_, b) in zip(trainer.G_ema.named_buffers(), trainer.G.named_buffers()):
        assert np.array_equal(be, b), name
    assert np.abs(trainer.G.state_dict()["net.1.running_mean"]).sum() > 0


def test_measuring_the_step_time_leaves_the_run_untouched(tmp_path):
    path = write_tiny_mnist(tmp_path)
    cfg = TrainConfig(data="mnist", data_path=str(path), z_dim=8, batch_size=8, steps=2, ema_decay=0.9)
    a, b = Trainer(cfg, tmp_path / "a"), Trainer(cfg, tmp_path / "b")
    assert a.measure_step_time(min_steps=2, min_seconds=0.0) > 0
    for _ in range(2):
        assert a.train_step() == b.train_step()
    sa, sb = a.state(), b.state()
    assert sa["rng"] == sb["rng"] and sa["step"] == sb["step"] == 2
    for net in ("G", "D", "G_ema"):
        for k in sa[net]:
            assert np.array_equal(sa[net][k], sb[net][k]), (net, k)


def test_mlp_is_still_built_for_explicit_mlp_on_images(tmp_path):
    path = write_tiny_mnist(tmp_path)
    trainer = Trainer(TrainConfig(data="mnist", data_path=str(path), arch="mlp", z_dim=4, g_hidden=(16,),
                                  d_hidden=(16,), batch_size=8, steps=1), tmp_path / "run")
    assert isinstance(trainer.G, MLPGenerator)
