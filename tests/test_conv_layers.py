"""Conv layers (Conv2d, ConvTranspose2d), BatchNorm2d, Flatten and Unflatten.

Shapes and arguments, PyTorch's default initialisation (statistics, and the
fans of the transposed layer), PyTorch's weights giving PyTorch's outputs,
BatchNorm2d against ``torch.nn.BatchNorm2d`` in training and eval (running
statistics included), second derivatives through a Conv2d + BatchNorm2d
stack, and the state_dict round trip.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conv_reference import conv2d_loop, conv_transpose2d_loop

import scratchgan as sg
from scratchgan import nn
from scratchgan.autograd.gradcheck import gradcheck, gradgradcheck


def f64(a, grad=False):
    return sg.Tensor(a, dtype="float64", requires_grad=grad)


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# --------------------------------------------------------------------------- Conv2d, ConvTranspose2d


def test_conv_layer_shapes_arguments_and_repr(backend):
    conv = nn.Conv2d(3, 8, (3, 2), stride=2, padding=(1, 0), rng=0)
    assert conv.weight.shape == (8, 3, 3, 2) and conv.bias.shape == (8,) and conv.weight.dtype == np.float32
    assert conv.kernel_size == (3, 2) and conv.stride == (2, 2) and conv.padding == (1, 0)
    assert conv(np.zeros((2, 3, 9, 7), dtype=np.float32)).shape == (2, 8, 5, 3)
    assert repr(conv) == "Conv2d(3, 8, kernel_size=(3, 2), stride=(2, 2), padding=(1, 0))"
    up = nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1, output_padding=1, bias=False, rng=0, dtype="float64")
    assert up.weight.shape == (8, 4, 4, 4) and up.bias is None and up.weight.dtype == np.float64
    assert up(f64(np.zeros((1, 8, 5, 3)))).shape == (1, 4, 11, 7)
    assert repr(up) == ("ConvTranspose2d(8, 4, kernel_size=(4, 4), stride=(2, 2), padding=(1, 1), "
                        "output_padding=(1, 1), bias=False)")
    assert [name for name, _ in conv.named_parameters()] == ["weight", "bias"]


def test_conv_layer_errors(backend):
    with pytest.raises(ValueError, match="Conv2d: in_channels must be a positive int"):
        nn.Conv2d(0, 4, 3)
    with pytest.raises(ValueError, match="Conv2d: kernel_size must be >= 1"):
        nn.Conv2d(1, 4, 0)
    with pytest.raises(ValueError, match="Conv2d: stride must be an int or a pair of ints"):
        nn.Conv2d(1, 4, 3, stride=1.5)
    with pytest.raises(ValueError, match="ConvTranspose2d: padding must be >= 0"):
        nn.ConvTranspose2d(1, 4, 3, padding=-1)
    with pytest.raises(ValueError, match=r"ConvTranspose2d: output_padding \(2, 2\) must be smaller than the stride"):
        nn.ConvTranspose2d(1, 4, 3, stride=2, output_padding=2)
    with pytest.raises(ValueError, match="Conv2d: unknown init 'orthogonal'"):
        nn.Conv2d(1, 4, 3, init="orthogonal")
    with pytest.raises(TypeError, match="float32 or float64"):
        nn.Conv2d(1, 4, 3, dtype="float16")
    conv = nn.Conv2d(3, 4, 3, rng=0)
    with pytest.raises(ValueError, match=r"Conv2d: expected input of shape \(N, 3, H, W\), got \(2, 2, 5, 5\)"):
        conv(np.zeros((2, 2, 5, 5), dtype=np.float32))
    with pytest.raises(ValueError, match=r"ConvTranspose2d: expected input of shape \(N, 3, H, W\), got \(3, 5, 5\)"):
        nn.ConvTranspose2d(3, 4, 3, rng=0)(np.zeros((3, 5, 5), dtype=np.float32))


@pytest.mark.parametrize("layer, fan_in", [
    (lambda: nn.Conv2d(64, 128, 4, rng=0, dtype="float64"), 64 * 16),
    (lambda: nn.Conv2d(3, 200, (5, 3), rng=1, dtype="float64"), 3 * 15),
    # PyTorch's fan_in of a transposed conv's (in, out, kh, kw) weight is out * kh * kw
    (lambda: nn.ConvTranspose2d(128, 64, 4, rng=2, dtype="float64"), 64 * 16),
    (lambda: nn.ConvTranspose2d(20, 300, 3, rng=3, dtype="float64"), 300 * 9),
], ids=["conv", "conv_nonsquare", "transpose", "transpose_wide"])
def test_pytorch_default_init_statistics(backend, layer, fan_in):
    """kaiming_uniform_(a=sqrt(5)): W, b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    m = layer()
    bound = 1.0 / math.sqrt(fan_in)
    w = m.weight.numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.98 * bound
    assert w.mean() == pytest.approx(0.0, abs=0.05 * bound)
    assert w.std() == pytest.approx(bound / math.sqrt(3.0), rel=0.05)
    b = m.bias.numpy()
    assert np.abs(b).max() <= bound and b.std() > 0.3 * bound


def test_init_matches_torch_scale(backend):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    for ours, theirs in [(nn.Conv2d(64, 128, 4, rng=0), torch.nn.Conv2d(64, 128, 4)),
                         (nn.ConvTranspose2d(128, 64, 4, rng=0), torch.nn.ConvTranspose2d(128, 64, 4)),
                         (nn.ConvTranspose2d(16, 64, 3, rng=0), torch.nn.ConvTranspose2d(16, 64, 3))]:
        for a, b in [(ours.weight.numpy(), theirs.weight.detach().numpy()),
                     (ours.bias.numpy(), theirs.bias.detach().numpy())]:
            assert a.shape == b.shape
            assert np.abs(a).max() == pytest.approx(np.abs(b).max(), rel=0.03)


@pytest.mark.parametrize("cls", [nn.Conv2d, nn.ConvTranspose2d])
def test_dcgan_xavier_he_inits_and_seeds(backend, cls):
    m = cls(64, 96, 4, init="dcgan", rng=0, dtype="float64")
    assert m.weight.numpy().std() == pytest.approx(0.02, rel=0.03) and not m.bias.numpy().any()
    fan_in = 96 * 16 if cls is nn.ConvTranspose2d else 64 * 16
    fan_out = 64 * 16 if cls is nn.ConvTranspose2d else 96 * 16
    he = cls(64, 96, 4, init="he", rng=0, dtype="float64")
    assert he.weight.numpy().std() == pytest.approx(math.sqrt(2.0 / fan_in), rel=0.03)
    xavier = cls(64, 96, 4, init="xavier", rng=0, dtype="float64")
    assert np.abs(xavier.weight.numpy()).max() <= math.sqrt(6.0 / (fan_in + fan_out))
    same = cls(64, 96, 4, rng=5)
    np.testing.assert_array_equal(same.weight.numpy(), cls(64, 96, 4, rng=5).weight.numpy())
    assert not np.array_equal(same.weight.numpy(), cls(64, 96, 4, rng=6).weight.numpy())


def test_torch_weights_give_torch_outputs(backend):
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    x = randn(2, 3, 9, 8)
    for theirs, ours in [
        (torch.nn.Conv2d(3, 5, (3, 4), stride=(2, 1), padding=(1, 2)), nn.Conv2d(3, 5, (3, 4), (2, 1), (1, 2),
                                                                                  dtype="float64")),
        (torch.nn.ConvTranspose2d(3, 5, 4, stride=2, padding=1, output_padding=1),
         nn.ConvTranspose2d(3, 5, 4, 2, 1, 1, dtype="float64")),
    ]:
        theirs = theirs.double()
        ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
        np.testing.assert_allclose(ours(f64(x)).numpy(), theirs(torch.tensor(x)).detach().numpy(), rtol=1e-10,
                                   atol=1e-12)


def test_conv_layers_equal_the_direct_loops(backend):
    conv = nn.Conv2d(2, 3, 3, stride=2, padding=1, rng=0, dtype="float64")
    up = nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1, output_padding=1, rng=1, dtype="float64")
    x = randn(2, 2, 5, 4)
    y = conv(f64(x))
    np.testing.assert_allclose(y.numpy(), conv2d_loop(x, conv.weight.numpy(), conv.bias.numpy(), 2, 1), rtol=1e-12)
    z = up(y)
    expected = conv_transpose2d_loop(y.numpy(), up.weight.numpy(), up.bias.numpy(), 2, 1, 1)
    np.testing.assert_allclose(z.numpy(), expected, rtol=1e-12, atol=1e-14)


# --------------------------------------------------------------------------- BatchNorm2d


def _torch_bn(torch, c, affine, momentum=0.1):
    bn = torch.nn.BatchNorm2d(c, momentum=momentum, affine=affine).double()
    if affine:
        with torch.no_grad():
            bn.weight.copy_(torch.tensor(randn(c, seed=20) * 0.5 + 1.0))
            bn.bias.copy_(torch.tensor(randn(c, seed=21)))
    return bn


@pytest.mark.parametrize("affine", [True, False])
def test_batchnorm2d_matches_torch_in_training_and_eval(backend, affine):
    torch = pytest.importorskip("torch")
    c = 3
    ours, theirs = nn.BatchNorm2d(c, momentum=0.2, affine=affine, dtype="float64"), _torch_bn(torch, c, affine, 0.2)
    if affine:
        ours.load_state_dict({"weight": theirs.weight.detach().numpy(), "bias": theirs.bias.detach().numpy()},
                             strict=False)
    for step in range(3):  # running statistics after a few steps
        x = randn(4, c, 5, 3, seed=step) * np.array([1.0, 3.0, 0.5]).reshape(1, c, 1, 1) + step
        u = randn(4, c, 5, 3, seed=10 + step)
        xs, xt = f64(x, grad=True), torch.tensor(x, requires_grad=True)
        ys, yt = ours(xs), theirs(xt)
        np.testing.assert_allclose(ys.numpy(), yt.detach().numpy(), rtol=1e-10, atol=1e-12)
        params_s = [xs] + ([ours.weight, ours.bias] if affine else [])
        params_t = [xt] + ([theirs.weight, theirs.bias] if affine else [])
        got = sg.grad((ys * f64(u)).sum(), params_s)
        expected = torch.autograd.grad((yt * torch.tensor(u)).sum(), params_t)
        for a, e in zip(got, expected):
            np.testing.assert_allclose(a.numpy(), e.numpy(), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(ours.running_mean, theirs.running_mean.numpy(), rtol=1e-12)
        np.testing.assert_allclose(ours.running_var, theirs.running_var.numpy(), rtol=1e-12)
    ours.eval()
    theirs.eval()
    x = randn(2, c, 4, 4, seed=30)
    xs, xt = f64(x, grad=True), torch.tensor(x, requires_grad=True)
    ys, yt = ours(xs), theirs(xt)
    np.testing.assert_allclose(ys.numpy(), yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    (gs,), (gt,) = sg.grad(ys.sum(), [xs]), torch.autograd.grad(yt.sum(), [xt])
    np.testing.assert_allclose(gs.numpy(), gt.numpy(), rtol=1e-10)


def test_batchnorm2d_statistics_errors_and_1d_unchanged(backend):
    bn = nn.BatchNorm2d(2, dtype="float64")
    x = randn(3, 2, 4, 5) * 2.0 + 1.0
    y = bn(f64(x)).numpy()
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0.0, atol=1e-12)
    m = 3 * 4 * 5
    np.testing.assert_allclose(sg.backend.to_numpy(bn.running_var), 0.9 + 0.1 * x.var(axis=(0, 2, 3)) * m / (m - 1),
                               rtol=1e-12)
    with pytest.raises(ValueError, match=r"BatchNorm2d: expected input of shape \(N, 2, H, W\), got \(3, 2, 4\)"):
        bn(f64(np.ones((3, 2, 4))))
    with pytest.raises(ValueError, match=r"BatchNorm2d: expected input of shape \(N, 2, H, W\), got \(3, 3, 4, 4\)"):
        bn(f64(np.ones((3, 3, 4, 4))))
    with pytest.raises(ValueError, match="BatchNorm2d: expected more than 1 value per channel when training"):
        bn(f64(np.ones((1, 2, 1, 1))))
    with pytest.raises(ValueError, match="BatchNorm2d: momentum must be in"):
        nn.BatchNorm2d(2, momentum=1.5)
    with pytest.raises(ValueError, match=r"BatchNorm1d: expected input of shape \(N, 2\) or \(N, 2, L\)"):
        nn.BatchNorm1d(2)(f64(np.ones((3, 2, 4, 4))))
    assert repr(nn.BatchNorm2d(4)) == "BatchNorm2d(4, eps=1e-05, momentum=0.1, affine=True)"


def test_gradgradcheck_conv_batchnorm_stack(backend):
    net = nn.Sequential(nn.Conv2d(2, 3, 3, stride=2, padding=1, rng=0, dtype="float64"),
                        nn.BatchNorm2d(3, dtype="float64"), nn.Tanh(),
                        nn.ConvTranspose2d(3, 1, 2, stride=2, rng=1, dtype="float64"))
    with sg.no_grad():  # affine values away from ones/zeros
        net[1].weight.data[...] = [0.7, 1.3, -0.9]
        net[1].bias.data[...] = [0.1, -0.4, 0.6]
    x = f64(randn(2, 2, 4, 3, seed=3), grad=True)
    params = list(net.parameters())
    assert gradcheck(lambda x, *ps: net(x), [x] + params)
    assert gradgradcheck(lambda x, *ps: net(x), [x] + params)


def test_state_dict_round_trip(backend):
    def build(seed):
        rng = np.random.default_rng(seed)
        return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, rng=rng), nn.BatchNorm2d(4), nn.LeakyReLU(0.2),
                             nn.ConvTranspose2d(4, 2, 4, stride=2, padding=1, rng=rng), nn.Flatten(),
                             nn.Unflatten(1, (2, 8, 6)))

    a, b = build(0), build(1)
    x = sg.Tensor(randn(3, 1, 4, 3), dtype="float32")
    a(x)  # a training step moves the running statistics
    state = a.state_dict()
    assert set(state) == {"0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var",
                          "3.weight", "3.bias"}
    assert state["0.weight"].shape == (4, 1, 3, 3) and state["3.weight"].shape == (4, 2, 4, 4)
    b.load_state_dict(state)
    for name, value in b.state_dict().items():
        np.testing.assert_array_equal(value, state[name], err_msg=name)
    a.eval()
    b.eval()
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())


# --------------------------------------------------------------------------- Flatten, Unflatten


def test_flatten_unflatten(backend):
    x = f64(randn(2, 3, 4, 5), grad=True)
    assert nn.Flatten()(x).shape == (2, 60)
    assert nn.Flatten(0)(x).shape == (120,)
    assert nn.Flatten(1, 2)(x).shape == (2, 12, 5)
    assert nn.Flatten(-3, -2)(x).shape == (2, 12, 5)
    assert nn.Unflatten(1, (3, 20))(nn.Flatten()(x)).shape == (2, 3, 20)
    assert nn.Unflatten(-1, (-1, 5))(nn.Flatten()(x)).shape == (2, 12, 5)
    back = nn.Unflatten(1, (3, 4, 5))(nn.Flatten()(x))
    np.testing.assert_array_equal(back.numpy(), x.numpy())
    assert gradcheck(lambda x: nn.Unflatten(1, (4, 15))(nn.Flatten()(x)) * 2.0, [x])
    # the values come in NCHW order, also from a conv's channels-last output
    conv = nn.Conv2d(3, 6, 3, padding=1, rng=0, dtype="float64")
    y = conv(x)
    np.testing.assert_array_equal(nn.Flatten()(y).numpy(), y.numpy().reshape(2, -1))
    with pytest.raises(ValueError, match="Flatten: start_dim=2, end_dim=1 do not select axes"):
        nn.Flatten(2, 1)(x)
    with pytest.raises(ValueError, match="Flatten: start_dim=5"):
        nn.Flatten(5)(x)
    with pytest.raises(ValueError, match=r"Unflatten: axis 1 of size 3 .* cannot be split into \(2, 2\)"):
        nn.Unflatten(1, (2, 2))(x)
    with pytest.raises(ValueError, match="Unflatten: dim 4 is out of range"):
        nn.Unflatten(4, (1, 1))(x)
    with pytest.raises(ValueError, match="Unflatten: unflattened_size must be positive ints"):
        nn.Unflatten(1, (-1, -1))
    assert repr(nn.Flatten()) == "Flatten(start_dim=1, end_dim=-1)"
    assert repr(nn.Unflatten(1, (2, 3))) == "Unflatten(dim=1, unflattened_size=(2, 3))"
