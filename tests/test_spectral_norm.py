"""nn.utils.spectral_norm (Miyato et al. 2018) against torch.nn.utils.spectral_norm and the SVD.

docs/losses.md ("Spectral normalisation") cites these tests by name. The
PyTorch comparisons start both modules from the same weights and the same u, v
vectors and then train them side by side; they are skipped when torch is not
installed. The closed-form tests need only NumPy.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

import scratchgan as sg
from scratchgan import nn
from scratchgan.nn.utils import remove_spectral_norm, spectral_norm

F64 = "float64"


def _torch():
    return pytest.importorskip("torch")


def host(array) -> np.ndarray:
    """A raw (NumPy or CuPy) array's values on the host."""
    return sg.backend.to_numpy(array)


def _sigma(layer) -> float:
    return float(layer._spectral_norms["weight"].sigma(layer).item())


def _matrix(layer) -> np.ndarray:
    return layer._spectral_norms["weight"].matrix(layer.weight_orig.data)


# --------------------------------------------------------------------------- against PyTorch


def _pair(kind: str, torch, seed: int = 0):
    """The same layer in torch and here (float64), both spectrally normalised, with torch's u and v copied."""
    torch.manual_seed(seed)
    if kind == "linear":
        t = torch.nn.Linear(6, 4).double()
        s = nn.Linear(6, 4, dtype=F64, rng=seed)
        x_shape = (5, 6)
    elif kind == "conv":
        t = torch.nn.Conv2d(3, 5, 3, stride=2, padding=1).double()
        s = nn.Conv2d(3, 5, 3, stride=2, padding=1, dtype=F64, rng=seed)
        x_shape = (2, 3, 6, 6)
    else:
        t = torch.nn.ConvTranspose2d(4, 3, 4, stride=2, padding=1).double()
        s = nn.ConvTranspose2d(4, 3, 4, stride=2, padding=1, dtype=F64, rng=seed)
        x_shape = (2, 4, 3, 3)
    t = torch.nn.utils.spectral_norm(t)
    w = t.weight_orig.detach().numpy()
    s.weight.data[...] = w.T if kind == "linear" else w  # scratchgan's Linear stores (in, out)
    s.bias.data[...] = t.bias.detach().numpy()
    spectral_norm(s, rng=seed)
    assert s.weight_u.shape == tuple(t.weight_u.shape) and s.weight_v.shape == tuple(t.weight_v.shape)
    s.weight_u[...] = t.weight_u.numpy()
    s.weight_v[...] = t.weight_v.numpy()
    return t, s, x_shape


@pytest.mark.parametrize("kind", ["linear", "conv", "conv_transpose"])
def test_matches_torch_over_train_steps(backend, kind):
    """Forward outputs, u and v after each step, sigma, normalised weight and weight gradients, 4 SGD steps."""
    torch = _torch()
    t, s, x_shape = _pair(kind, torch)
    rng = np.random.default_rng(1)
    lin = kind == "linear"
    for step in range(4):
        x = rng.standard_normal(x_shape)
        yt = t(torch.tensor(x))
        g = rng.standard_normal(tuple(yt.shape))
        (yt * torch.tensor(g)).sum().backward()
        ys = s(sg.Tensor(x, dtype=F64))
        (ys * sg.Tensor(g, dtype=F64)).sum().backward()
        np.testing.assert_allclose(ys.numpy(), yt.detach().numpy(), rtol=1e-10, atol=1e-12, err_msg=f"step {step}")
        np.testing.assert_allclose(s.weight_u, t.weight_u.numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(s.weight_v, t.weight_v.numpy(), rtol=1e-10, atol=1e-12)
        w_mat = t.weight_orig.detach()
        if kind == "conv_transpose":
            w_mat = w_mat.transpose(0, 1)
        sigma_t = float(t.weight_u @ w_mat.reshape(w_mat.shape[0], -1) @ t.weight_v)
        assert _sigma(s) == pytest.approx(sigma_t, rel=1e-12)
        tw = t.weight.detach().numpy()
        np.testing.assert_allclose(s.weight.numpy(), tw.T if lin else tw, rtol=1e-10, atol=1e-12)
        tg = t.weight_orig.grad.numpy()
        np.testing.assert_allclose(s.weight_orig.grad.numpy(), tg.T if lin else tg, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(s.bias.grad.numpy(), t.bias.grad.numpy(), rtol=1e-9, atol=1e-12)
        with torch.no_grad():  # the same SGD step on both
            for p in (t.weight_orig, t.bias):
                p -= 0.5 * p.grad
                p.grad = None
        for p in (s.weight_orig, s.bias):
            p.data -= 0.5 * p.grad.data
            p.grad = None


def test_two_forwards_one_backward_matches_torch(backend):
    """D(real), D(fake), then one backward: each forward's graph keeps its own u and v (PyTorch clones them)."""
    torch = _torch()
    t, s, _ = _pair("linear", torch, seed=3)
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((4, 6)), rng.standard_normal((3, 6))
    (t(torch.tensor(a)).sum() - 2 * t(torch.tensor(b)).sum()).backward()
    (s(sg.Tensor(a, dtype=F64)).sum() - s(sg.Tensor(b, dtype=F64)).sum() * 2).backward()
    np.testing.assert_allclose(s.weight_orig.grad.numpy(), t.weight_orig.grad.numpy().T, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(s.weight_u, t.weight_u.numpy(), rtol=1e-10)


def test_eval_mode_matches_torch_and_keeps_u_v(backend):
    torch = _torch()
    t, s, x_shape = _pair("conv", torch, seed=4)
    x = np.random.default_rng(5).standard_normal(x_shape)
    t.eval()
    s.eval()
    u0, v0 = s.weight_u.copy(), s.weight_v.copy()
    for _ in range(3):
        yt = t(torch.tensor(x)).detach().numpy()
        ys = s(sg.Tensor(x, dtype=F64)).numpy()
        np.testing.assert_allclose(ys, yt, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(s.weight_u, u0)
    np.testing.assert_array_equal(s.weight_v, v0)
    np.testing.assert_array_equal(t.weight_u.numpy(), u0)


def test_state_dict_keys_match_torch(backend):
    torch = _torch()
    for kind in ("linear", "conv", "conv_transpose"):
        t, s, _ = _pair(kind, torch)
        assert set(s.state_dict()) == set(t.state_dict())


def test_torch_state_dict_loads(backend):
    """A PyTorch SN state dict loads (Linear's weight_orig transposed, as every Linear weight)."""
    torch = _torch()
    t, s, x_shape = _pair("linear", torch, seed=6)
    t2 = torch.nn.utils.spectral_norm(torch.nn.Linear(6, 4).double())
    state = {k: v.numpy() for k, v in t2.state_dict().items()}
    state["weight_orig"] = state["weight_orig"].T
    s.load_state_dict(state)
    s.eval()
    t2.eval()
    x = np.random.default_rng(0).standard_normal(x_shape)
    np.testing.assert_allclose(s(sg.Tensor(x, dtype=F64)).numpy(), t2(torch.tensor(x)).detach().numpy(), rtol=1e-10)


# --------------------------------------------------------------------------- closed forms (NumPy only)


@pytest.mark.parametrize("shape,make", [
    ((7, 12), lambda: nn.Linear(7, 12, dtype=F64, rng=0)),
    ((12, 7), lambda: nn.Linear(12, 7, dtype=F64, rng=0)),
    ((6, 3, 3, 3), lambda: nn.Conv2d(3, 6, 3, dtype=F64, rng=0)),
    ((3, 6, 4, 4), lambda: nn.ConvTranspose2d(3, 6, 4, dtype=F64, rng=0)),
])
def test_sigma_converges_to_largest_singular_value(shape, make):
    """After many training-mode forward calls, sigma = the top singular value of the (out, -1) matrix."""
    layer = spectral_norm(make(), rng=1)
    layer.weight_orig.data[...] = np.random.default_rng(2).standard_normal(layer.weight_orig.shape)
    w = layer.weight_orig.data
    if isinstance(layer, nn.Linear):
        expected_matrix = w.T  # (out, in), PyTorch's layout
    elif isinstance(layer, nn.ConvTranspose2d):
        expected_matrix = np.moveaxis(w, 1, 0).reshape(w.shape[1], -1)
    else:
        expected_matrix = w.reshape(w.shape[0], -1)
    np.testing.assert_array_equal(_matrix(layer), expected_matrix)
    top = np.linalg.svd(expected_matrix, compute_uv=False)[0]
    x = sg.Tensor(np.zeros((1,) + ((layer.in_features,) if isinstance(layer, nn.Linear)
                                  else (layer.in_channels, 5, 5))), dtype=F64)
    with sg.no_grad():
        for _ in range(500):
            layer(x)
    assert _sigma(layer) == pytest.approx(top, rel=1e-10)
    # the normalised weight has spectral norm 1
    assert np.linalg.svd(_matrix_of(layer, layer.weight.numpy()), compute_uv=False)[0] == pytest.approx(1.0, rel=1e-10)


def _matrix_of(layer, w):
    return layer._spectral_norms["weight"].matrix(w)


def test_known_matrix_sigma(backend):
    """A diagonal matrix with known singular values: sigma -> 5, and W / sigma has largest singular value 1."""
    layer = spectral_norm(nn.Linear(3, 3, bias=False, dtype=F64, rng=0), n_power_iterations=200, rng=0)
    layer.weight_orig.data[...] = np.diag([2.0, -5.0, 1.0])
    layer(sg.Tensor(np.ones((1, 3)), dtype=F64))
    assert _sigma(layer) == pytest.approx(5.0, rel=1e-12)
    np.testing.assert_allclose(layer.weight.numpy(), np.diag([0.4, -1.0, 0.2]), atol=1e-12)


def test_one_power_iteration_per_training_forward_none_in_eval(backend):
    layer = spectral_norm(nn.Linear(5, 4, dtype=F64, rng=0), rng=1)
    w_mat = layer.weight_orig.numpy().T
    x = sg.Tensor(np.ones((2, 5)), dtype=F64)
    for _ in range(3):
        u = host(layer.weight_u).copy()
        v = w_mat.T @ u
        v /= np.linalg.norm(v)
        u = w_mat @ v
        u /= np.linalg.norm(u)
        layer(x)
        np.testing.assert_allclose(host(layer.weight_v), v, rtol=1e-13)
        np.testing.assert_allclose(host(layer.weight_u), u, rtol=1e-13)
    layer.eval()
    u, v = host(layer.weight_u).copy(), host(layer.weight_v).copy()
    layer(x)
    with sg.no_grad():
        layer(x)
    np.testing.assert_array_equal(host(layer.weight_u), u)
    np.testing.assert_array_equal(host(layer.weight_v), v)
    # n_power_iterations=3: three steps per call
    layer3 = spectral_norm(nn.Linear(5, 4, dtype=F64, rng=0), n_power_iterations=3, rng=1)
    twice = spectral_norm(nn.Linear(5, 4, dtype=F64, rng=0), rng=1)
    layer3(x)
    for _ in range(3):
        twice(x)
    np.testing.assert_allclose(host(layer3.weight_u), host(twice.weight_u), rtol=1e-13)


def test_power_iteration_is_not_recorded_and_u_v_are_constants(backend):
    """The weight gradient is that of W / (u^T W v) with u, v fixed: gradcheck and gradgradcheck in eval mode."""
    layer = spectral_norm(nn.Linear(4, 3, dtype=F64, rng=0), rng=1)
    x = sg.Tensor(np.random.default_rng(0).standard_normal((5, 4)), dtype=F64)
    layer(x)  # one training step of power iteration, then freeze u and v
    layer.eval()
    assert not isinstance(layer.weight_u, sg.Tensor)
    assert sg.gradcheck(lambda w: sg.ops.tanh(layer(x)), [layer.weight_orig])
    assert sg.gradgradcheck(lambda w: sg.ops.tanh(layer(x)), [layer.weight_orig])
    # closed form of the gradient of sum(G * W/sigma): G/sigma - <G, W> u v^T / sigma^2 (Linear: (in, out) layout)
    w = layer.weight_orig.numpy()
    u, v = host(layer.weight_u), host(layer.weight_v)
    sigma = u @ w.T @ v
    g = np.random.default_rng(3).standard_normal(w.shape)
    layer.weight_orig.grad = None
    layer(x)  # a fresh eval-mode forward (gradcheck's last call left a perturbed weight)
    (layer.weight * sg.Tensor(g, dtype=F64)).sum().backward()
    expected = g / sigma - (g * w).sum() * np.outer(v, u) / sigma ** 2
    np.testing.assert_allclose(layer.weight_orig.grad.numpy(), expected, rtol=1e-12)


def test_conv_gradcheck_in_eval_mode(backend):
    layer = spectral_norm(nn.Conv2d(2, 3, 3, padding=1, dtype=F64, rng=0), rng=1)
    x = sg.Tensor(np.random.default_rng(0).standard_normal((2, 2, 4, 4)), dtype=F64)
    layer(x)
    layer.eval()
    assert sg.gradcheck(lambda w: layer(x), [layer.weight_orig])


# --------------------------------------------------------------------------- module behaviour


def test_state_dict_round_trip_restores_u_v_exactly(backend):
    a = spectral_norm(nn.Linear(6, 5, rng=0), rng=1)
    x = sg.Tensor(np.random.default_rng(0).standard_normal((3, 6)).astype(np.float32))
    for _ in range(3):
        a(x)
    b = spectral_norm(nn.Linear(6, 5, rng=7), rng=8)
    u_buffer = b.weight_u
    b.load_state_dict(a.state_dict())
    assert b.weight_u is u_buffer  # written in place
    for key in ("weight_u", "weight_v", "weight_orig", "bias"):
        np.testing.assert_array_equal(b.state_dict()[key], a.state_dict()[key])
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())
    np.testing.assert_array_equal(host(a.weight_u), host(b.weight_u))


def test_weight_orig_is_the_same_parameter_and_optimizer_keeps_working(backend):
    layer = nn.Linear(4, 2, rng=0)
    w = layer.weight
    opt = sg.optim.SGD(layer.parameters(), lr=0.1)
    spectral_norm(layer, rng=0)
    assert layer.weight_orig is w
    assert [p for p in layer.parameters()] == [layer.bias, w]
    before = w.data.copy()
    layer(sg.Tensor(np.ones((2, 4), np.float32))).sum().backward()
    opt.step()
    assert not np.array_equal(before, w.data)


def test_sequential_fused_path_does_not_bypass_spectral_norm(backend):
    """Sequential fuses Linear + ReLU by type; a normalised Linear must go through its forward."""
    lin = nn.Linear(3, 4, dtype=F64, rng=0)
    net = nn.Sequential(lin, nn.ReLU())
    spectral_norm(lin, rng=0)
    x = sg.Tensor(np.random.default_rng(0).standard_normal((5, 3)), dtype=F64)
    y = net(x).numpy()
    np.testing.assert_allclose(y, np.maximum(x.numpy() @ lin.weight.numpy() + lin.bias.numpy(), 0), rtol=1e-12)
    assert isinstance(lin, nn.Linear) and type(lin) is not nn.Linear and type(lin).__name__ == "Linear"
    assert repr(lin) == "Linear(in_features=3, out_features=4, bias=True)"


def test_remove_spectral_norm(backend):
    layer = spectral_norm(nn.Conv2d(2, 3, 3, rng=0), rng=0)
    x = sg.Tensor(np.random.default_rng(0).standard_normal((1, 2, 5, 5)).astype(np.float32))
    layer(x)
    layer.eval()
    expected = layer(x).numpy()
    w = layer.weight_orig
    remove_spectral_norm(layer)
    assert type(layer) is nn.Conv2d
    assert layer.weight is w
    assert sorted(layer.state_dict()) == ["bias", "weight"]
    np.testing.assert_allclose(layer(x).numpy(), expected, rtol=1e-6)
    with pytest.raises(ValueError, match="spectral_norm of 'weight' not found"):
        remove_spectral_norm(layer)


def test_errors(backend):
    layer = spectral_norm(nn.Linear(2, 2, rng=0), rng=0)
    with pytest.raises(RuntimeError, match="two spectral_norm hooks"):
        spectral_norm(layer)
    with pytest.raises(ValueError, match="no parameter 'bias2'"):
        spectral_norm(nn.Linear(2, 2, rng=0), name="bias2")
    with pytest.raises(ValueError, match="n_power_iterations"):
        spectral_norm(nn.Linear(2, 2, rng=0), n_power_iterations=0)
    with pytest.raises(ValueError, match="eps"):
        spectral_norm(nn.Linear(2, 2, rng=0), eps=0.0)
    with pytest.raises(ValueError, match="dim"):
        spectral_norm(nn.Linear(2, 2, rng=0), dim=2)


def test_deepcopy_and_reset_parameters(backend):
    layer = spectral_norm(nn.Linear(3, 2, rng=0), rng=0)
    x = sg.Tensor(np.ones((1, 3), np.float32))
    layer(x)
    clone = copy.deepcopy(layer)
    np.testing.assert_array_equal(clone(x).numpy(), layer(x).numpy())
    assert clone.weight_u is not layer.weight_u
    old = layer.weight_orig.data.copy()
    layer.reset_parameters(rng=5)
    assert not np.array_equal(old, layer.weight_orig.data)
    assert isinstance(layer.weight_orig, nn.Parameter) and "weight" not in layer._parameters


def test_embedding_and_float32(backend):
    emb = spectral_norm(nn.Embedding(5, 3, rng=0), rng=0)
    assert emb.weight_u.shape == (5,) and emb.weight_u.dtype == np.float32
    out = emb(np.array([0, 4]))
    assert out.shape == (2, 3)


# --------------------------------------------------------------------------- SNGAN in the trainer


def _tiny_config(tmp_path, **overrides):
    from scratchgan.app.config import TrainConfig

    base = dict(data="grid25", loss="hinge", spectral_norm=True, z_dim=4, g_hidden=(16,), d_hidden=(16,),
                batch_size=32, steps=6, log_every=1, sample_every=1000, checkpoint_every=1000, eval_samples=200,
                ema_decay=0.0)
    if overrides.get("data") == "mnist":
        # tests/test_train.py's tiny 8x8 "digits", the very same values: the same cached evaluation classifier
        rng = np.random.default_rng(0)
        y = np.arange(60) % 3
        x = rng.integers(0, 40, (60, 8, 8)).astype(np.uint8)
        for i, label in enumerate(y):
            x[i, 2 * label:2 * label + 3, 1:7] = 250
        path = tmp_path / "mnist.npz"
        np.savez(path, x_train=x, y_train=y, x_test=x[:12], y_test=y[:12])
        base["data_path"] = str(path)
    base.update(overrides)
    return TrainConfig(**base)


@pytest.mark.parametrize("arch", ["mlp", "dcgan"])
def test_trainer_resume_restores_u_v_exactly(tmp_path, arch):
    """6 steps straight == 3 steps, checkpoint, resume, 3 steps: bitwise, u and v included."""
    from scratchgan.app.checkpoint import load_checkpoint
    from scratchgan.app.train import Trainer

    data = dict(data="mnist", arch="dcgan") if arch == "dcgan" else {}
    straight = Trainer(_tiny_config(tmp_path, **data), tmp_path / "straight")
    straight.run(progress=False)
    fresh = Trainer(_tiny_config(tmp_path, **data), tmp_path / "fresh").D.state_dict()
    Trainer(_tiny_config(tmp_path, steps=3, **data), tmp_path / "split").run(progress=False)
    half = load_checkpoint(tmp_path / "split" / "checkpoint.npz")["D"]
    us = [k for k in half if k.endswith("weight_u") or k.endswith("weight_v")]
    # dcgan: 2 convs, the image recipe's hidden layer (d_fc) and the output; mlp: 2 layers; u and v each
    assert len(us) == (8 if arch == "dcgan" else 4)
    # trained: not what a new D draws (a 1-output layer's u is +-1 whatever happens)
    assert all(not np.array_equal(half[k], fresh[k]) for k in us if half[k].size > 1)
    resumed = Trainer.resume(tmp_path / "split", steps=6)
    for k in us:
        np.testing.assert_array_equal(resumed.D.state_dict()[k], half[k])
    resumed.run(progress=False)
    a, b = straight.state(), resumed.state()
    for net in ("G", "D"):
        assert a[net].keys() == b[net].keys()
        for key, value in a[net].items():
            assert np.array_equal(value.view(np.uint8), b[net][key].view(np.uint8)), f"{net}/{key}"


def test_sngan_discriminator_layers(tmp_path):
    """--spectral-norm: every Linear/Conv of D normalised, no batch norm, the hinge recipe's optimiser."""
    from scratchgan.app.config import resolve
    from scratchgan.gan.models import critic_norm
    from scratchgan.app.train import Trainer

    trainer = Trainer(_tiny_config(tmp_path, data="mnist", arch="dcgan", steps=1), tmp_path / "run")
    c = trainer.config
    assert critic_norm(c) == "none"
    assert (c.optimizer, c.lr_d, c.lr_g, tuple(c.betas), c.n_critic) == ("adam", 2e-4, 2e-4, (0.5, 0.999), 1)
    layers = [m for m in trainer.D.modules() if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d))]
    assert c.d_fc > 0  # the image recipe's hidden layer is normalised too: 2 convs, it, the output
    assert len(layers) == 4 and all("weight" in m._spectral_norms for m in layers)
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.LayerNorm)) for m in trainer.D.modules())
    assert not any(hasattr(m, "weight_u") for m in trainer.G.modules())  # D only
    # D's parameters are the optimiser's: weight_orig is trained
    held = {id(p) for group in trainer.opt_d.param_groups for p in group["params"]}
    assert {id(m.weight_orig) for m in layers} <= held
    trainer.run(progress=False)
    plain = resolve(_tiny_config(tmp_path, spectral_norm=False, arch="dcgan", data="mnist"))
    assert critic_norm(plain) == "batch"
