"""A PyTorch user's habits just work.

The first test runs a GAN training loop written as in PyTorch's DCGAN
tutorial (an MLP on a 2-D Gaussian instead of convolutions on faces), with
only the imports changed: the same function body runs on ``torch`` and on
``scratchgan``. The others pin each trap that a PyTorch user met before:
every one of them failed on the code before this file existed.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import scratchgan as sg
from scratchgan import nn as sg_nn
from scratchgan import optim as sg_optim

NZ, BATCH = 4, 64


def tutorial_training(torch, nn, optim, real_batches, noises=None, steps=300, custom_init=False):
    """PyTorch's DCGAN tutorial loop (https://pytorch.org/tutorials/beginner/dcgan_faces_tutorial.html).

    Written once for both libraries: ``torch, nn, optim`` are
    ``torch, torch.nn, torch.optim`` or ``scratchgan, scratchgan.nn,
    scratchgan.optim``. Names kept from the tutorial; ``output.view(-1)`` is
    written ``output.reshape(-1)`` and ``real.size(0)`` is ``real.shape[0]``
    (both valid in PyTorch too: scratchgan's tensor methods follow NumPy,
    see docs/conventions.md). ``noises`` replaces ``torch.randn`` when given,
    so that both libraries can be fed the same numbers.
    """
    torch.manual_seed(999)

    class Generator(nn.Module):
        def __init__(self):
            super().__init__()
            self.main = nn.Sequential(nn.Linear(NZ, 64), nn.ReLU(True), nn.Linear(64, 2))

        def forward(self, input):  # noqa: A002 - the tutorial's name
            return self.main(input)

    class Discriminator(nn.Module):
        def __init__(self):
            super().__init__()
            self.main = nn.Sequential(nn.Linear(2, 64), nn.LeakyReLU(0.2), nn.Linear(64, 1))

        def forward(self, input):  # noqa: A002
            return self.main(input)

    # custom weights initialization called on netG and netD (the tutorial's, with Linear for Conv)
    def weights_init(m):
        classname = m.__class__.__name__
        if classname.find("Linear") != -1:
            nn.init.normal_(m.weight.data, 0.0, 0.02)
            nn.init.constant_(m.bias.data, 0)

    netG, netD = Generator(), Discriminator()
    if custom_init:
        netG.apply(weights_init)
        netD.apply(weights_init)
    criterion = nn.BCEWithLogitsLoss()
    real_label, fake_label = 1.0, 0.0
    optimizerD = optim.Adam(netD.parameters(), lr=2e-3, betas=(0.5, 0.999))
    optimizerG = optim.Adam(netG.parameters(), lr=2e-3, betas=(0.5, 0.999))
    G_losses, D_losses = [], []
    for i in range(steps):
        # (1) Update D network: maximize log(D(x)) + log(1 - D(G(z)))
        netD.zero_grad()
        real = torch.tensor(real_batches[i])
        b_size = real.shape[0]
        label = torch.full((b_size,), real_label, dtype=torch.float32)
        output = netD(real).reshape(-1)
        errD_real = criterion(output, label)
        errD_real.backward()
        noise = torch.randn(b_size, NZ) if noises is None else torch.tensor(noises[i])
        fake = netG(noise)
        label.fill_(fake_label)
        output = netD(fake.detach()).reshape(-1)
        errD_fake = criterion(output, label)
        errD_fake.backward()
        errD = errD_real + errD_fake
        optimizerD.step()
        # (2) Update G network: maximize log(D(G(z)))
        netG.zero_grad()
        label.fill_(real_label)
        output = netD(fake).reshape(-1)
        errG = criterion(output, label)
        errG.backward()
        optimizerG.step()
        G_losses.append(errG.item())
        D_losses.append(errD.item())
    return netG, netD, np.array(D_losses), np.array(G_losses)


def _real_batches(steps, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((steps, BATCH, 2)) * 0.3 + np.array([2.0, -1.0])).astype(np.float32)


def test_tutorial_loop_runs_and_trains():
    steps = 400
    netG, netD, d_losses, g_losses = tutorial_training(sg, sg_nn, sg_optim, _real_batches(steps), steps=steps,
                                                       custom_init=True)
    assert np.isfinite(d_losses).all() and np.isfinite(g_losses).all()
    assert d_losses[0] == pytest.approx(2 * np.log(2), abs=0.05)  # N(0, 0.02) weights: D starts at 1/2
    with sg.no_grad():
        samples = netG(sg.randn(2000, NZ)).numpy()
    # the generator starts near the origin; after training its mean sits near the data's (2, -1)
    np.testing.assert_allclose(samples.mean(axis=0), [2.0, -1.0], atol=0.35)


def test_tutorial_loop_equals_pytorch():
    """The same loop from the same weights and noise: the same losses as PyTorch, step by step."""
    torch = pytest.importorskip("torch")
    steps = 30
    reals = _real_batches(steps, seed=1)
    noises = np.random.default_rng(2).standard_normal((steps, BATCH, NZ)).astype(np.float32)

    # copy scratchgan's initial weights into PyTorch's modules (Linear.weight is (in, out) here, (out, in) there)
    sg_G, sg_D, _, _ = tutorial_training(sg, sg_nn, sg_optim, reals, noises, steps=0)
    initial = {"G": {k: v.copy() for k, v in sg_G.state_dict().items()},
               "D": {k: v.copy() for k, v in sg_D.state_dict().items()}}
    sg_G, sg_D, sg_d, sg_g = tutorial_training(sg, sg_nn, sg_optim, reals, noises, steps=steps)

    import torch.nn as tnn
    made = []
    original_init = tnn.Sequential.__init__

    def sequential_with_weights(self, *mods):  # PyTorch's modules start from scratchgan's initial weights
        original_init(self, *mods)
        net = "G" if len(made) == 0 else "D"
        made.append(net)
        with torch.no_grad():
            for name, p in self.named_parameters():
                value = initial[net]["main." + name]
                p.copy_(torch.from_numpy(value.T.copy() if value.ndim == 2 else value))

    tnn.Sequential.__init__ = sequential_with_weights
    try:
        _, _, t_d, t_g = tutorial_training(torch, tnn, torch.optim, reals, noises, steps=steps)
    finally:
        tnn.Sequential.__init__ = original_init
    np.testing.assert_allclose(sg_d, t_d, rtol=2e-4, atol=1e-5)
    np.testing.assert_allclose(sg_g, t_g, rtol=2e-4, atol=1e-5)


# --------------------------------------------------------------------------- the traps, one by one


def test_import_gives_every_public_submodule():
    code = ("import scratchgan as sg; sg.nn.Linear; sg.optim.Adam; sg.losses.d_loss; sg.ops.conv2d if hasattr(sg.ops, 'conv2d') else None;"
            "sg.data.load_dataset; sg.metrics.frechet_distance; sg.checkpoint.save_checkpoint; sg.train.Trainer;"
            "sg.models; sg.runlog; sg.image_eval; sg.validate")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("make", [
    lambda a: sg.Tensor(a), lambda a: sg.tensor(a), lambda a: sg.as_tensor(a), lambda a: sg_nn.Parameter(a),
    lambda a: sg.Tensor(sg.Tensor(a)), lambda a: sg.tensor(sg.Tensor(a)), lambda a: sg_nn.Parameter(sg.Tensor(a)),
], ids=["Tensor", "tensor", "as_tensor", "Parameter", "Tensor(t)", "tensor(t)", "Parameter(t)"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_arrays_and_tensors_keep_their_float_dtype(make, dtype):
    values = np.array([[0.1, 1.0 / 3.0]], dtype=dtype)
    t = make(values)
    assert t.dtype == dtype
    np.testing.assert_array_equal(t.numpy(), values)  # no rounding through float32


def test_python_numbers_default_to_float32_and_other_floats_are_refused():
    assert sg.tensor([0.5, 1.5]).dtype == np.float32 and sg.Tensor(2.0).dtype == np.float32
    assert sg.tensor([1, 2]).dtype == np.int64 and sg.tensor([True]).dtype == np.bool_
    with pytest.raises(TypeError, match="float16.*float32 or float64"):
        sg.Tensor(np.ones(2, dtype=np.float16))
    with pytest.raises(TypeError, match="float16"):
        sg.tensor([1.0], dtype="float16")


def test_as_tensor_shares_memory_when_it_can():
    a = np.zeros(3, dtype=np.float32)
    t = sg.as_tensor(a)
    a[0] = 5.0
    assert t.numpy()[0] == 5.0  # no copy
    assert sg.as_tensor(t) is t
    assert sg.as_tensor(a, dtype="float64").dtype == np.float64 and a.dtype == np.float32  # a converted copy


def test_misplaced_options_are_keyword_only():
    with pytest.raises(TypeError):
        sg.tensor([1.0], "float64")  # was: a float32 tensor that requires grad
    with pytest.raises(TypeError):
        sg.Tensor([1.0], True)
    t = sg.tensor([1.0], dtype="float64", requires_grad=True)
    assert t.dtype == np.float64 and t.requires_grad


def test_grad_takes_pytorch_argument_order():
    x = sg.tensor([1.0, 2.0], dtype="float64", requires_grad=True)
    y = (x * x).sum()
    g = sg.tensor(1.0, dtype="float64")
    (gx,) = sg.grad(y, x, g, True)  # 4th positional is retain_graph, as in torch.autograd.grad
    assert not gx.requires_grad  # no create_graph: the gradient is not differentiable
    (again,) = sg.grad(y, x, g, False, True)  # the graph was retained; 5th is create_graph
    assert again.requires_grad
    np.testing.assert_array_equal(gx.numpy(), [2.0, 4.0])


def test_backward_takes_gradient_keyword_and_inputs():
    x = sg.tensor([1.0, 2.0], dtype="float64", requires_grad=True)
    w = sg.tensor([3.0, 4.0], dtype="float64", requires_grad=True)
    y = x * w
    y.backward(gradient=sg.tensor([1.0, 10.0], dtype="float64"), retain_graph=True)
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 40.0])
    x.grad = None
    y.backward(sg.tensor([1.0, 1.0], dtype="float64"), inputs=[w])  # only w accumulates
    assert x.grad is None
    np.testing.assert_array_equal(w.grad.numpy(), [1.0 + 1.0, 10.0 * 2.0 + 2.0])


@pytest.mark.parametrize("fn", [sg.zeros, sg.ones, sg.randn, sg.rand])
def test_creation_takes_sizes_or_a_shape(fn):
    assert fn(2, 3).shape == fn((2, 3)).shape == fn([2, 3]).shape == (2, 3)
    assert fn(2, 3).dtype == np.float32 and fn(2, dtype="float64").dtype == np.float64
    assert fn().shape == ()


def test_manual_seed_makes_random_tensors_reproducible():
    sg.manual_seed(3)
    a = sg.randn(4, 2).numpy()
    sg.manual_seed(3)
    np.testing.assert_array_equal(sg.randn(4, 2).numpy(), a)
    assert not np.array_equal(sg.randn(4, 2).numpy(), a)


def test_one_default_leaky_relu_slope():
    x = sg.tensor([-1.0, 2.0])
    np.testing.assert_array_equal(sg_nn.LeakyReLU()(x).numpy(), sg.ops.leaky_relu(x).numpy())
    np.testing.assert_allclose(sg_nn.LeakyReLU()(x).numpy(), [-0.01, 2.0], rtol=1e-6)  # PyTorch's 0.01


def test_fill_refuses_a_recorded_tensor_that_requires_grad():
    w = sg.zeros(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="no_grad"):
        w.fill_(1.0)
    with sg.no_grad():
        w.fill_(1.0)
    np.testing.assert_array_equal(w.numpy(), [1.0, 1.0])


@pytest.mark.parametrize("loss, expected", [
    (sg_nn.BCEWithLogitsLoss, lambda x, z: np.mean(z * np.log1p(np.exp(-x)) + (1 - z) * np.log1p(np.exp(x)))),
    (sg_nn.BCELoss, lambda p, z: -np.mean(z * np.log(p) + (1 - z) * np.log(1 - p))),
    (sg_nn.MSELoss, lambda x, y: np.mean((x - y) ** 2)),
])
def test_loss_modules_match_their_formulas(loss, expected):
    rng = np.random.default_rng(0)
    x = rng.uniform(0.05, 0.95, 6)
    z = rng.uniform(0, 1, 6)
    value = loss()(sg.tensor(x), sg.tensor(z)).item()
    assert value == pytest.approx(expected(x, z), rel=1e-12)
    assert loss(reduction="sum")(sg.tensor(x), sg.tensor(z)).item() == pytest.approx(6 * expected(x, z), rel=1e-12)
    with pytest.raises(ValueError, match=r"target has shape \(6, 1\) but input has shape \(6,\)"):
        loss()(sg.tensor(x), sg.tensor(z.reshape(6, 1)))
