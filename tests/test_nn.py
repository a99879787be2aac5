"""Tests for scratchgan.nn: layers, Module bookkeeping, state dicts and initializers."""

import math

import numpy as np
import pytest

import scratchgan as sg
from scratchgan import nn
from scratchgan.autograd.gradcheck import gradcheck, gradgradcheck


def t64(array, grad=True):
    return sg.Tensor(np.asarray(array, dtype=np.float64), requires_grad=grad, dtype="float64")


def host(a):
    """A tensor's or a raw (NumPy or CuPy) array's values on the host."""
    return sg.backend.to_numpy(a.data if isinstance(a, sg.Tensor) else a)


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# --------------------------------------------------------------------------- Linear


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_linear_forward_equals_x_at_w_plus_b(backend, dtype):
    layer = nn.Linear(4, 3, rng=0, dtype=dtype)
    assert layer.weight.shape == (4, 3) and layer.bias.shape == (3,)
    assert layer.weight.dtype == dtype and isinstance(layer.weight, nn.Parameter) and layer.weight.requires_grad
    x = randn(5, 4).astype(dtype)
    y = layer(sg.Tensor(x, dtype=dtype))
    expected = x @ layer.weight.numpy() + layer.bias.numpy()
    assert y.dtype == dtype and y.shape == (5, 3)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-6 if dtype == "float32" else 1e-14)
    # leading batch axes broadcast like matmul
    assert layer(sg.Tensor(randn(2, 5, 4), dtype=dtype)).shape == (2, 5, 3)


def test_linear_without_bias_and_shape_error(backend):
    layer = nn.Linear(4, 3, bias=False, rng=0)
    assert layer.bias is None and [n for n, _ in layer.named_parameters()] == ["weight"]
    with pytest.raises(ValueError, match=r"last axis has size 5.*in_features is 4"):
        layer(sg.Tensor(np.ones((2, 5))))
    with pytest.raises(ValueError, match="unknown init"):
        nn.Linear(2, 2, init="glorot")
    with pytest.raises(ValueError, match="in_features must be a positive int"):
        nn.Linear(0, 2)


def test_gradcheck_linear(backend):
    layer = nn.Linear(3, 2, rng=1, dtype="float64")
    x = t64(randn(4, 3))
    assert gradcheck(lambda x, w, b: layer(x), [x, layer.weight, layer.bias])


# --------------------------------------------------------------------------- LayerNorm, BatchNorm


def _randomize_affine(module, seed):
    rng = np.random.default_rng(seed)
    nn.uniform_(module.weight, 0.5, 1.5, rng=rng)
    nn.uniform_(module.bias, -0.5, 0.5, rng=rng)


def test_layernorm_forward_and_per_sample(backend):
    ln = nn.LayerNorm(6, dtype="float64")
    x = randn(4, 6) * 3 + 1
    y = ln(t64(x, grad=False)).numpy()
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    np.testing.assert_allclose(y, (x - mu) / np.sqrt(var + 1e-5), rtol=1e-12)
    # per sample: changing sample 1 leaves sample 0's output alone
    x2 = x.copy()
    x2[1] *= 10
    np.testing.assert_array_equal(ln(t64(x2, grad=False)).numpy()[0], y[0])
    # float32 agrees with a float64 evaluation
    y32 = nn.LayerNorm(6)(sg.Tensor(x, dtype="float32")).numpy()
    np.testing.assert_allclose(y32, y, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="does not end with normalized_shape"):
        ln(sg.Tensor(np.ones((2, 5)), dtype="float64"))


def test_gradcheck_layernorm(backend):
    ln = nn.LayerNorm((2, 3), dtype="float64")
    _randomize_affine(ln, 2)
    x = t64(randn(3, 2, 3))
    assert gradcheck(lambda x, w, b: ln(x), [x, ln.weight, ln.bias])


def test_gradgradcheck_layernorm(backend):
    ln = nn.LayerNorm(4, dtype="float64")
    _randomize_affine(ln, 3)
    x = t64(randn(3, 4))
    assert gradgradcheck(lambda x, w, b: ln(x), [x, ln.weight, ln.bias])


def test_gradcheck_batchnorm_train(backend):
    for shape in [(5, 3), (4, 3, 2)]:
        bn = nn.BatchNorm1d(3, dtype="float64")
        _randomize_affine(bn, 4)
        x = t64(randn(*shape, seed=5))
        assert gradcheck(lambda x, w, b: bn(x), [x, bn.weight, bn.bias])


def test_batchnorm_train_and_eval(backend):
    bn = nn.BatchNorm1d(3, momentum=0.1, dtype="float64")
    x = randn(8, 3) * np.array([1.0, 2.0, 3.0]) + np.array([0.0, 5.0, -2.0])
    y = bn(t64(x, grad=False)).numpy()
    np.testing.assert_allclose(y.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(0), x.var(0) / (x.var(0) + 1e-5), rtol=1e-12)
    # running stats: PyTorch's update with the unbiased variance
    np.testing.assert_allclose(host(bn.running_mean), 0.1 * x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(host(bn.running_var), 0.9 + 0.1 * x.var(0, ddof=1), rtol=1e-12)
    running_mean = host(bn.running_mean).copy()
    bn.eval()
    assert not bn.training
    z = randn(2, 3, seed=9)
    expected = (z - host(bn.running_mean)) / np.sqrt(host(bn.running_var) + 1e-5)
    np.testing.assert_allclose(bn(t64(z, grad=False)).numpy(), expected, rtol=1e-12)
    np.testing.assert_array_equal(host(bn.running_mean), running_mean)  # eval does not update
    bn.train()
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        bn(t64(np.ones((1, 3)), grad=False))
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 3\)"):
        bn(t64(np.ones((4, 2)), grad=False))
    # 3-D input: statistics over batch and length
    bn3 = nn.BatchNorm1d(2, dtype="float64")
    x3 = randn(4, 2, 5)
    bn3(t64(x3, grad=False))
    np.testing.assert_allclose(host(bn3.running_mean), 0.1 * x3.mean((0, 2)), rtol=1e-12)
    np.testing.assert_allclose(host(bn3.running_var), 0.9 + 0.1 * x3.transpose(1, 0, 2).reshape(2, -1).var(1, ddof=1))


# --------------------------------------------------------------------------- Embedding


def test_embedding_forward_gradient_and_errors(backend):
    emb = nn.Embedding(5, 3, rng=0, dtype="float64")
    idx = np.array([[0, 4, 4], [2, 0, 4]])
    out = emb(idx)
    assert out.shape == (2, 3, 3)
    np.testing.assert_array_equal(out.numpy(), emb.weight.numpy()[idx])
    out.sum().backward()
    counts = np.bincount(idx.ravel(), minlength=5)[:, None] * np.ones((1, 3))
    np.testing.assert_array_equal(emb.weight.grad.numpy(), counts)  # repeats add up
    assert emb(sg.Tensor(idx)).shape == (2, 3, 3)
    with pytest.raises(IndexError, match=r"index 5 is out of range for 5 embeddings \(valid 0..4\)"):
        emb(np.array([1, 5]))
    with pytest.raises(IndexError, match="index -1 is out of range"):
        emb([0, -1])
    with pytest.raises(TypeError, match="indices must be integers"):
        emb(np.array([0.0, 1.0]))


def test_gradcheck_embedding(backend):
    emb = nn.Embedding(4, 2, rng=1, dtype="float64")
    idx = np.array([3, 1, 3, 0])
    assert gradcheck(lambda w: emb(idx), [emb.weight])


# --------------------------------------------------------------------------- MLP


def test_gradgradcheck_mlp(backend):
    model = nn.mlp([3, 5, 4, 1], activation="tanh", norm="layer", rng=0, dtype="float64")
    x = t64(randn(4, 3))
    params = list(model.parameters())
    assert gradgradcheck(lambda x, *ps: model(x), [x] + params)


def test_gradgradcheck_mlp_leaky_relu_input_gradient(backend):
    # the WGAN-GP shape: second derivatives through a leaky-ReLU critic
    model = nn.mlp([2, 6, 1], activation="leaky_relu", rng=3, dtype="float64")
    x = t64(randn(5, 2, seed=4))
    assert gradgradcheck(lambda x, *ps: model(x), [x] + list(model.parameters()))


def test_mlp_structure_and_errors(backend):
    model = nn.mlp([2, 8, 8, 1], activation="leaky_relu", out_activation="sigmoid", norm="batch", rng=0)
    kinds = [type(m).__name__ for m in model]
    assert kinds == ["Linear", "BatchNorm1d", "LeakyReLU", "Linear", "BatchNorm1d", "LeakyReLU", "Linear", "Sigmoid"]
    assert model[2].negative_slope == 0.01  # PyTorch's default, the same everywhere
    assert nn.LeakyReLU().negative_slope == 0.01
    assert nn.mlp([2, 8, 1], activation="leaky_relu", negative_slope=0.2, rng=0)[1].negative_slope == 0.2
    assert isinstance(nn.mlp([2, 3], activation=nn.Tanh, rng=0)[0], nn.Linear)
    with pytest.raises(ValueError, match="at least an input and an output"):
        nn.mlp([3])
    with pytest.raises(ValueError, match="unknown activation"):
        nn.mlp([2, 3, 1], activation="gelu")
    with pytest.raises(ValueError, match="norm must be"):
        nn.mlp([2, 3, 1], norm="group")


# --------------------------------------------------------------------------- Module bookkeeping


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(2, 3, rng=0), nn.BatchNorm1d(3), nn.ReLU())
        self.head = nn.Linear(3, 1, rng=1)
        self.scale = nn.Parameter(np.ones(1, dtype=np.float32))

    def forward(self, x):
        return self.head(self.body(x)) * self.scale


def test_module_registration_and_traversal(backend):
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["scale", "body.0.weight", "body.0.bias", "body.1.weight", "body.1.bias",
                     "head.weight", "head.bias"]
    assert len(list(net.parameters())) == 7
    assert [type(m).__name__ for m in net.children()] == ["Sequential", "Linear"]
    assert [type(m).__name__ for m in net.modules()] == ["Net", "Sequential", "Linear", "BatchNorm1d", "ReLU", "Linear"]
    assert [n for n, _ in net.named_buffers()] == ["body.1.running_mean", "body.1.running_var"]
    assert len(net.body) == 3 and isinstance(net.body[-1], nn.ReLU) and len(net.body[:2]) == 2
    with pytest.raises(TypeError, match="cannot assign a Tensor to parameter 'scale'"):
        net.scale = sg.Tensor([2.0])
    net.head.bias = None
    assert "head.bias" not in dict(net.named_parameters())
    shared = nn.Linear(2, 2, rng=0)
    seq = nn.Sequential(shared, shared)
    assert len(list(seq.parameters())) == 2  # a shared module counts once
    r = repr(net)
    assert "(body): Sequential(" in r and "(0): Linear(in_features=2, out_features=3, bias=True)" in r


def test_forgetting_super_init_is_a_clear_error(backend):
    class Bad(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(np.ones(2))

    with pytest.raises(RuntimeError, match=r"super\(\).__init__\(\)"):
        Bad()


def test_train_eval_zero_grad_and_backend(backend):
    net = Net()
    assert net.training and net.body[1].training
    assert net.eval() is net and not net.body[1].training and not net.head.training
    net.train()
    assert net.body[1].training
    net(sg.Tensor(randn(4, 2), dtype="float32")).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    w = net.head.weight
    assert net.to_backend("numpy") is net and net.head.weight is w
    with pytest.raises(ValueError, match="unknown backend"):
        net.to_backend("tpu")


def test_dropout_train_eval_and_seed(backend):
    x = sg.Tensor(np.ones((200, 50), dtype=np.float32))
    drop = nn.Dropout(0.25, rng=0)
    y = drop(x).numpy()
    assert set(np.unique(y)) <= {0.0, np.float32(1 / 0.75)}
    assert abs((y == 0).mean() - 0.25) < 0.02 and abs(y.mean() - 1.0) < 0.03
    np.testing.assert_array_equal(nn.Dropout(0.25, rng=0)(x).numpy(), y)  # same seed, same mask
    drop.eval()
    assert drop(x) is x
    assert nn.Dropout(0.0, rng=0)(x) is x
    assert not nn.Dropout(1.0, rng=0)(x).numpy().any()
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\]"):
        nn.Dropout(1.5)
    xg = sg.Tensor(np.ones((3, 4)), requires_grad=True)
    out = nn.Dropout(0.5, rng=1)(xg)
    out.sum().backward()
    np.testing.assert_array_equal(xg.grad.numpy(), out.numpy())  # gradient is the mask


def test_dropout_with_a_device_generator_draws_where_the_tensor_lives(backend):
    from scratchgan.backend.device_rng import DeviceGenerator

    x = sg.Tensor(np.ones((200, 50), dtype=np.float32))
    drop = nn.Dropout(0.25, rng=DeviceGenerator(0))
    y = drop(x).numpy()
    assert set(np.unique(y)) <= {0.0, np.float32(1 / 0.75)}
    assert abs((y == 0).mean() - 0.25) < 0.02
    assert not np.array_equal(drop(x).numpy(), y)  # the stream moves on
    np.testing.assert_array_equal(nn.Dropout(0.25, rng=DeviceGenerator(0))(x).numpy(), y)  # same seed, same mask


# --------------------------------------------------------------------------- state dict


def test_state_dict_round_trip(backend):
    a, b = nn.mlp([2, 4, 1], norm="batch", rng=0), nn.mlp([2, 4, 1], norm="batch", rng=1)
    a(sg.Tensor(randn(6, 2), dtype="float32"))  # moves the running stats away from their defaults
    sd = a.state_dict()
    assert list(sd) == ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var",
                        "3.weight", "3.bias"]
    assert all(isinstance(v, np.ndarray) for v in sd.values())
    sd["0.weight"][0, 0] = 123.0  # a copy: the module is untouched
    assert a[0].weight.numpy()[0, 0] != 123.0
    sd = a.state_dict()
    w = b[0].weight
    assert b.load_state_dict(sd) == ([], [])
    assert b[0].weight is w  # copied in place
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        np.testing.assert_array_equal(va, vb, err_msg=k)
    x = sg.Tensor(randn(3, 2), dtype="float32")
    np.testing.assert_array_equal(a.eval()(x).numpy(), b.eval()(x).numpy())


def test_load_state_dict_keeps_dtype(backend):
    a = nn.Linear(2, 3, rng=0, dtype="float64")
    b = nn.Linear(2, 3, rng=1, dtype="float32")
    b.load_state_dict(a.state_dict())
    assert b.weight.dtype == np.float32
    np.testing.assert_array_equal(b.weight.numpy(), a.weight.numpy().astype(np.float32))


def test_load_state_dict_errors(backend):
    model = nn.mlp([2, 3, 1], rng=0)
    before = model.state_dict()
    sd = model.state_dict()
    del sd["2.bias"]
    with pytest.raises(ValueError, match=r"missing keys \(in the module, not in the state\): \['2.bias'\]"):
        model.load_state_dict(sd)
    sd = model.state_dict()
    sd["2.extra"] = np.zeros(1)
    with pytest.raises(ValueError, match=r"unexpected keys \(in the state, not in the module\): \['2.extra'\]"):
        model.load_state_dict(sd)
    sd = model.state_dict()
    sd["0.weight"] = np.zeros((3, 2))
    sd["0.bias"] = np.zeros(9)
    with pytest.raises(ValueError) as err:
        model.load_state_dict(sd)
    msg = str(err.value)
    assert "'0.weight': state has shape (3, 2), module has (2, 3) (transposed" in msg
    assert "'0.bias': state has shape (9,), module has (3,)" in msg
    for k, v in model.state_dict().items():  # nothing was written
        np.testing.assert_array_equal(v, before[k])
    sd = model.state_dict()
    sd["0.weight"] = np.array([["a", "b", "c"]] * 2)
    with pytest.raises(TypeError, match="expected a numeric array"):
        model.load_state_dict(sd)
    # strict=False: report, load the rest
    sd = {"0.weight": np.ones((2, 3)), "junk": np.ones(1)}
    result = model.load_state_dict(sd, strict=False)
    assert result.missing_keys == ["0.bias", "2.weight", "2.bias"] and result.unexpected_keys == ["junk"]
    assert np.all(model[0].weight.numpy() == 1.0)


# --------------------------------------------------------------------------- initializers


def test_pytorch_default_init_bounds_and_seed(backend):
    layer = nn.Linear(64, 256, rng=0, dtype="float64")
    bound = 1 / math.sqrt(64)
    w, b = layer.weight.numpy(), layer.bias.numpy()
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    assert np.abs(w).max() > 0.98 * bound  # fills the interval
    assert abs(w.std() - bound / math.sqrt(3)) < 0.02 * bound  # U(-a, a) has std a/sqrt(3)
    same = nn.Linear(64, 256, rng=0, dtype="float64")
    np.testing.assert_array_equal(same.weight.numpy(), w)
    np.testing.assert_array_equal(same.bias.numpy(), b)
    assert not np.array_equal(nn.Linear(64, 256, rng=1, dtype="float64").weight.numpy(), w)
    # float32 init = the float64 draws, rounded
    np.testing.assert_array_equal(nn.Linear(64, 256, rng=0).weight.numpy(), w.astype(np.float32))
    # a shared generator draws layer by layer, in order
    m1, m2 = nn.mlp([3, 5, 2], rng=7), nn.mlp([3, 5, 2], rng=np.random.default_rng(7))
    for v1, v2 in zip(m1.state_dict().values(), m2.state_dict().values()):
        np.testing.assert_array_equal(v1, v2)


def test_dcgan_init_std(backend):
    layer = nn.Linear(256, 256, init="dcgan", rng=0)
    w = layer.weight.numpy()
    assert abs(w.std() - 0.02) < 0.001 and abs(w.mean()) < 0.001
    assert not layer.bias.numpy().any()


def test_xavier_and_he_init(backend):
    w = nn.Linear(100, 300, init="xavier", rng=0, dtype="float64").weight.numpy()
    bound = math.sqrt(6 / (100 + 300))
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.98 * bound
    he = nn.Linear(200, 300, init="he", rng=0, dtype="float64")
    assert abs(he.weight.numpy().std() - math.sqrt(2 / 200)) < 0.02 * math.sqrt(2 / 200)
    assert not he.bias.numpy().any()
    rng = np.random.default_rng(0)
    x = sg.Tensor(np.zeros((100, 300)), dtype="float64")
    nn.xavier_normal_(x, rng=rng)
    assert abs(x.numpy().std() - math.sqrt(2 / 400)) < 0.02 * math.sqrt(2 / 400)
    nn.kaiming_uniform_(x, a=math.sqrt(5), rng=rng)  # PyTorch's Linear weight rule: bound 1/sqrt(fan_in)
    assert np.abs(x.numpy()).max() <= 1 / math.sqrt(100) * (1 + 1e-12)
    nn.kaiming_normal_(x, mode="fan_out", nonlinearity="tanh", rng=rng)
    assert abs(x.numpy().std() - (5 / 3) / math.sqrt(300)) < 0.02 * (5 / 3) / math.sqrt(300)
    with pytest.raises(TypeError, match="normal_: rng must be"):  # None is the global generator (test_validate.py)
        nn.normal_(x, rng=np.random.RandomState(0))
    with pytest.raises(ValueError, match="at least 2 axes"):
        nn.xavier_uniform_(sg.Tensor(np.zeros(3)), rng=rng)
    assert nn.calculate_gain("leaky_relu", 0.2) == pytest.approx(math.sqrt(2 / 1.04))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sequential_fuses_linear_relu_without_changing_values_or_gradients(backend, dtype):
    """Sequential runs Linear+ReLU as one op; calling the layers one by one gives the same bits."""
    rng = np.random.default_rng(0)
    net = nn.Sequential(nn.Linear(5, 7, rng=rng, dtype=dtype), nn.ReLU(), nn.Linear(7, 3, rng=rng, dtype=dtype),
                        nn.ReLU(), nn.Linear(3, 1, rng=rng, dtype=dtype))
    x = sg.Tensor(rng.standard_normal((6, 5)), dtype=dtype)
    fused = net(x)
    assert fused.grad_fn == "linear"  # the last layer; the two before it were fused ...
    assert fused._parents[0].grad_fn == "linear_relu"  # ... as linear_relu
    fused_grads = sg.grad(fused.sum(), list(net.parameters()))
    y = x
    for layer in net.children():  # one by one: no fusion
        y = layer(y)
    assert y._parents[0].grad_fn == "relu"
    plain_grads = sg.grad(y.sum(), list(net.parameters()))
    np.testing.assert_array_equal(host(fused), host(y))
    for a, b in zip(fused_grads, plain_grads):
        np.testing.assert_array_equal(host(a), host(b))
