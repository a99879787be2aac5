"""Tests for scratchgan.optim: update rules against independent NumPy references.

The references below are written straight from the formulas in the PyTorch
documentation of torch.optim (not from scratchgan.optim), in float64, and the
optimizers must agree with them to 1e-12.
"""

import copy

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import scratchgan as sg
from scratchgan import nn
from scratchgan.optim import SGD, Adam, Optimizer, RMSprop

TOL = dict(rtol=1e-12, atol=1e-12)
SHAPE = (3, 2)

grad_arrays = hnp.arrays(np.float64, SHAPE, elements=st.floats(-10, 10, allow_subnormal=False))
grad_lists = st.lists(grad_arrays, min_size=1, max_size=12)
param_arrays = hnp.arrays(np.float64, SHAPE, elements=st.floats(-5, 5, allow_subnormal=False))


# --------------------------------------------------------------------------- NumPy references


def ref_sgd(p, grads, lr, momentum=0.0, nesterov=False, weight_decay=0.0, dampening=0.0):
    p = p.copy()
    buf = None
    for g in grads:
        g = g + weight_decay * p
        if momentum != 0:
            buf = g.copy() if buf is None else momentum * buf + (1 - dampening) * g
            g = g + momentum * buf if nesterov else buf
        p = p - lr * g
    return p


def ref_adam(p, grads, lr, b1, b2, eps, weight_decay=0.0):
    p = p.copy()
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        g = g + weight_decay * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g ** 2
        m_hat = m / (1 - b1 ** t)
        v_hat = v / (1 - b2 ** t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
    return p


def ref_rmsprop(p, grads, lr, alpha, eps, momentum=0.0, weight_decay=0.0, centered=False):
    p = p.copy()
    v = np.zeros_like(p)
    g_ave = np.zeros_like(p)
    b = np.zeros_like(p)
    for g in grads:
        g = g + weight_decay * p
        v = alpha * v + (1 - alpha) * g ** 2
        v_tilde = v
        if centered:
            g_ave = alpha * g_ave + (1 - alpha) * g
            v_tilde = v - g_ave ** 2
        if momentum > 0:
            b = momentum * b + g / (np.sqrt(v_tilde) + eps)
            p = p - lr * b
        else:
            p = p - lr * g / (np.sqrt(v_tilde) + eps)
    return p


def run(opt_cls, p0, grads, **kw):
    p = sg.Tensor(p0, requires_grad=True, dtype="float64")
    opt = opt_cls([p], **kw)
    for g in grads:
        p.grad = sg.Tensor(g, dtype="float64")
        opt.step()
    return p.numpy()


# --------------------------------------------------------------------------- SGD


@given(p0=param_arrays, grads=grad_lists, lr=st.floats(0, 1), wd=st.sampled_from([0.0, 0.05]))
def test_sgd_matches_closed_form(p0, grads, lr, wd):
    got = run(SGD, p0, grads, lr=lr, weight_decay=wd)
    np.testing.assert_allclose(got, ref_sgd(p0, grads, lr, weight_decay=wd), **TOL)


def test_sgd_constant_gradient_closed_form():
    # p_n = p_0 - n lr g for plain SGD; with momentum b_t = g (1 - mu^t) / (1 - mu)
    p0, g, lr, mu, n = np.array([1.0, -2.0]), np.array([0.5, -0.25]), 0.1, 0.9, 7
    np.testing.assert_allclose(run(SGD, p0, [g] * n, lr=lr), p0 - n * lr * g, **TOL)
    bufs = [g * (1 - mu ** t) / (1 - mu) for t in range(1, n + 1)]
    np.testing.assert_allclose(run(SGD, p0, [g] * n, lr=lr, momentum=mu), p0 - lr * sum(bufs), **TOL)
    nest = p0 - lr * sum(g + mu * b for b in bufs)
    np.testing.assert_allclose(run(SGD, p0, [g] * n, lr=lr, momentum=mu, nesterov=True), nest, **TOL)


@given(p0=param_arrays, grads=grad_lists, lr=st.floats(0, 1), mu=st.floats(0.01, 0.99),
       nesterov=st.booleans(), wd=st.sampled_from([0.0, 0.05]))
def test_sgd_momentum_nesterov_matches_closed_form(p0, grads, lr, mu, nesterov, wd):
    got = run(SGD, p0, grads, lr=lr, momentum=mu, nesterov=nesterov, weight_decay=wd)
    np.testing.assert_allclose(got, ref_sgd(p0, grads, lr, mu, nesterov, wd), **TOL)


def test_sgd_dampening_matches_reference():
    rng = np.random.default_rng(1)
    p0, grads = rng.standard_normal(SHAPE), [rng.standard_normal(SHAPE) for _ in range(5)]
    got = run(SGD, p0, grads, lr=0.1, momentum=0.8, dampening=0.3)
    np.testing.assert_allclose(got, ref_sgd(p0, grads, 0.1, 0.8, dampening=0.3), **TOL)


# --------------------------------------------------------------------------- Adam

adam_hyper = dict(lr=st.floats(1e-4, 1.0), b1=st.floats(0.0, 0.99), b2=st.floats(0.0, 0.9999),
                  eps=st.floats(1e-10, 1e-3), wd=st.sampled_from([0.0, 0.01]))


@given(p0=param_arrays, g=grad_arrays, **adam_hyper)
def test_adam_one_step_matches_closed_form(p0, g, lr, b1, b2, eps, wd):
    got = run(Adam, p0, [g], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
    np.testing.assert_allclose(got, ref_adam(p0, [g], lr, b1, b2, eps, wd), **TOL)
    # closed form of step 1: m_hat = g, v_hat = g^2, so the update is -lr g / (|g| + eps)
    g_wd = g + wd * p0
    np.testing.assert_allclose(got, p0 - lr * g_wd / (np.abs(g_wd) + eps), **TOL)


def test_adam_first_step_is_about_minus_lr_sign_g():
    g = np.array([[3.0, -1e-3], [250.0, -7.5]])
    p0 = np.zeros_like(g)
    got = run(Adam, p0, [g], lr=0.01, betas=(0.9, 0.999), eps=1e-12)
    np.testing.assert_allclose(got, -0.01 * np.sign(g), rtol=1e-8)


@given(p0=param_arrays, grads=grad_lists, **adam_hyper)
def test_adam_many_steps_matches_closed_form(p0, grads, lr, b1, b2, eps, wd):
    got = run(Adam, p0, grads, lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
    np.testing.assert_allclose(got, ref_adam(p0, grads, lr, b1, b2, eps, wd), **TOL)


def test_adam_skips_params_without_grad_and_counts_their_own_steps():
    a = sg.Tensor([1.0, 2.0], requires_grad=True, dtype="float64")
    b = sg.Tensor([3.0], requires_grad=True, dtype="float64")
    opt = Adam([a, b], lr=0.1)
    ga, gb = np.array([0.5, -1.0]), np.array([2.0])
    a.grad = sg.Tensor(ga, dtype="float64")
    opt.step()  # b has no gradient: untouched, no state
    assert b.numpy().tolist() == [3.0] and opt.state[1] == {}
    b.grad = sg.Tensor(gb, dtype="float64")
    opt.step()
    assert opt.step_count == 2 and opt.state[0]["step"] == 2 and opt.state[1]["step"] == 1
    np.testing.assert_allclose(b.numpy(), ref_adam(np.array([3.0]), [gb], 0.1, 0.9, 0.999, 1e-8), **TOL)
    np.testing.assert_allclose(a.numpy(), ref_adam(np.array([1.0, 2.0]), [ga, ga], 0.1, 0.9, 0.999, 1e-8), **TOL)


# --------------------------------------------------------------------------- RMSprop


@given(p0=param_arrays, grads=grad_lists, lr=st.floats(1e-4, 1.0), alpha=st.floats(0.0, 0.999),
       eps=st.floats(1e-8, 1e-3), mu=st.sampled_from([0.0, 0.5, 0.9]), wd=st.sampled_from([0.0, 0.01]),
       centered=st.booleans())
def test_rmsprop_matches_closed_form(p0, grads, lr, alpha, eps, mu, wd, centered):
    if centered:
        # v - g_ave^2 cancels catastrophically when alpha ~ 0 (it is ~ alpha (1 - alpha) g^2), which turns
        # 1-ulp differences in the operation order into ~1e-8 relative ones; keep alpha in [0.5, 0.9995)
        alpha = 0.5 + alpha / 2
    got = run(RMSprop, p0, grads, lr=lr, alpha=alpha, eps=eps, momentum=mu, weight_decay=wd, centered=centered)
    np.testing.assert_allclose(got, ref_rmsprop(p0, grads, lr, alpha, eps, mu, wd, centered), **TOL)


def test_rmsprop_one_step_closed_form():
    # v_1 = (1 - alpha) g^2, so p_1 = p_0 - lr g / (sqrt(1 - alpha) |g| + eps)
    g, p0 = np.array([2.0, -0.5]), np.array([1.0, 1.0])
    got = run(RMSprop, p0, [g], lr=0.01, alpha=0.99, eps=1e-8)
    np.testing.assert_allclose(got, p0 - 0.01 * g / (np.sqrt(0.01) * np.abs(g) + 1e-8), **TOL)


# --------------------------------------------------------------------------- state round trip

OPTIMIZERS = [
    (SGD, dict(lr=0.05)),
    (SGD, dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)),
    (Adam, dict(lr=1e-2, betas=(0.5, 0.99), weight_decay=1e-3)),
    (RMSprop, dict(lr=1e-2, momentum=0.5, centered=True)),
]


def _grads(step, shapes, dtype):
    rng = np.random.default_rng(1000 + step)
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


def _train(model, opt, start, stop, skip_last=False):
    params = list(model.parameters())
    shapes = [p.shape for p in params]
    for step in range(start, stop):
        for i, (p, g) in enumerate(zip(params, _grads(step, shapes, params[0].dtype))):
            # the last parameter gets a gradient only on even steps: per-parameter step counts differ
            p.grad = None if (skip_last and i == len(shapes) - 1 and step % 2) else sg.Tensor(g, dtype=p.dtype)
        opt.step()


def _leaves(tree, path=()):
    if isinstance(tree, dict):
        for k, v in tree.items():
            assert isinstance(k, str) and "/" not in k, (path, k)
            yield from _leaves(v, path + (k,))
    else:
        yield path, tree


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("opt_cls,kw", OPTIMIZERS, ids=lambda v: v.__name__ if isinstance(v, type) else "")
def test_state_dict_round_trip_continues_bitwise(opt_cls, kw, dtype):
    n, k = 9, 4
    ref = nn.mlp([3, 4, 2], rng=0, dtype=dtype)
    ref_opt = opt_cls(ref.parameters(), **kw)
    _train(ref, ref_opt, 0, n, skip_last=True)

    first = nn.mlp([3, 4, 2], rng=0, dtype=dtype)
    opt = opt_cls(first.parameters(), **kw)
    _train(first, opt, 0, k, skip_last=True)
    saved_model, saved_opt = first.state_dict(), copy.deepcopy(opt.state_dict())
    for path, leaf in _leaves(saved_opt):  # what a checkpoint can store
        assert isinstance(leaf, (np.ndarray, int, float, bool, str)), (path, type(leaf))
    assert saved_opt["type"] == opt_cls.__name__ and saved_opt["step"] == k

    fresh = nn.mlp([3, 4, 2], rng=123, dtype=dtype)
    fresh.load_state_dict(saved_model)
    fresh_opt = opt_cls(fresh.parameters(), lr=0.5)  # hyperparameters come back from the state too
    fresh_opt.load_state_dict(saved_opt)
    assert fresh_opt.step_count == k and fresh_opt.hyper == opt.hyper
    _train(fresh, fresh_opt, k, n, skip_last=True)
    for (name, a), b in zip(ref.state_dict().items(), fresh.state_dict().values()):
        assert a.dtype == b.dtype and np.array_equal(a, b), name
    assert fresh_opt.step_count == ref_opt.step_count == n


def test_state_dict_is_a_copy_and_load_copies():
    p = sg.Tensor(np.ones(3), requires_grad=True, dtype="float64")
    opt = Adam([p])
    p.grad = sg.Tensor(np.ones(3), dtype="float64")
    opt.step()
    sd = opt.state_dict()
    sd["state"]["0"]["exp_avg"][:] = 99.0
    assert not np.any(opt.state[0]["exp_avg"] == 99.0)
    opt.load_state_dict(sd)
    opt.step()
    assert sd["state"]["0"]["exp_avg"][0] == 99.0  # the caller's dict is not touched by later steps


def test_load_state_dict_errors():
    a = sg.Tensor(np.ones((2, 3)), requires_grad=True)
    b = sg.Tensor(np.ones(3), requires_grad=True)
    opt = Adam([a, b])
    a.grad, b.grad = sg.Tensor(np.ones((2, 3))), sg.Tensor(np.ones(3))
    opt.step()
    sd = opt.state_dict()

    with pytest.raises(ValueError, match="for a Adam optimizer, not SGD"):
        SGD([a, b], lr=0.1).load_state_dict(sd)
    with pytest.raises(ValueError, match="for 2 parameters, this optimizer has 1"):
        Adam([a]).load_state_dict(sd)
    swapped = Adam([b, a])
    with pytest.raises(ValueError, match=r"exp_avg'\] has shape \(2, 3\), but parameter 0 has shape \(3,\)"):
        swapped.load_state_dict(sd)
    assert swapped.step_count == 0 and swapped.state == [{}, {}]  # nothing loaded on failure
    bad = copy.deepcopy(sd)
    del bad["state"]["1"]["exp_avg_sq"]
    with pytest.raises(ValueError, match="state of parameter 1 has keys"):
        opt.load_state_dict(bad)
    bad = copy.deepcopy(sd)
    bad["state"]["7"] = bad["state"].pop("1")
    with pytest.raises(ValueError, match="not an index in 0..1"):
        opt.load_state_dict(bad)
    bad = copy.deepcopy(sd)
    bad["hyper"]["beta1"] = 1.5
    with pytest.raises(ValueError, match="beta1"):
        opt.load_state_dict(bad)
    bad = copy.deepcopy(sd)
    del bad["step"]
    with pytest.raises(ValueError, match="do not match the expected"):
        opt.load_state_dict(bad)


# --------------------------------------------------------------------------- misc behaviour


def test_zero_grad_sets_none():
    model = nn.mlp([2, 3, 1], rng=0)
    opt = SGD(model.parameters(), lr=0.1)
    model(sg.Tensor(np.ones((4, 2), dtype=np.float32))).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    opt.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_step_records_no_graph_and_keeps_identity():
    model = nn.mlp([2, 3, 1], rng=0)
    params = list(model.parameters())
    arrays = [p.data for p in params]
    opt = Adam(params, lr=0.1)
    model(sg.Tensor(np.ones((4, 2), dtype=np.float32))).sum().backward()
    opt.step()
    for p, arr in zip(model.parameters(), arrays):
        assert p.data is arr and p.is_leaf and p.dtype == np.float32


@pytest.mark.parametrize("make,match", [
    (lambda p: SGD(p, lr=-1.0), "invalid lr"),
    (lambda p: SGD(p, lr=0.1, momentum=-0.5), "invalid momentum"),
    (lambda p: SGD(p, lr=0.1, nesterov=True), "Nesterov momentum requires momentum > 0"),
    (lambda p: Adam(p, lr=float("nan")), "invalid lr"),
    (lambda p: Adam(p, betas=(1.0, 0.999)), r"beta1 \(betas\[0\]\)"),
    (lambda p: Adam(p, betas=(0.9, -0.1)), r"beta2 \(betas\[1\]\)"),
    (lambda p: Adam(p, betas=0.9), "betas must be a pair"),
    (lambda p: Adam(p, eps=-1e-8), "invalid eps"),
    (lambda p: Adam(p, weight_decay=-1), "invalid weight_decay"),
    (lambda p: RMSprop(p, alpha=1.5), "invalid alpha"),
    (lambda p: Adam([], lr=0.1), "empty parameter list"),
    (lambda p: Adam(p + p), "appears more than once"),
])
def test_hyperparameter_errors(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make([sg.Tensor(np.ones(2), requires_grad=True)])


def test_param_type_errors():
    x = sg.Tensor(np.ones(2), requires_grad=True)
    with pytest.raises(TypeError, match="single Tensor"):
        Adam(x)
    with pytest.raises(ValueError, match="not a leaf"):
        Adam([x * 2])
    with pytest.raises(TypeError, match="not a Tensor"):
        Adam([np.ones(2)])
    with pytest.raises(TypeError, match="real number"):
        Adam([x], lr="0.1")


def test_lr_can_be_changed_between_steps():
    p = sg.Tensor([1.0], requires_grad=True, dtype="float64")
    opt = SGD([p], lr=0.1)
    p.grad = sg.Tensor([1.0], dtype="float64")
    opt.step()
    opt.lr = 0.5
    opt.step()
    assert p.numpy()[0] == pytest.approx(1.0 - 0.1 - 0.5, abs=1e-15)
    with pytest.raises(ValueError):
        opt.lr = -1
    assert "SGD(lr=0.5" in repr(opt) and isinstance(opt, Optimizer)


@pytest.mark.parametrize("opt_cls,kw", OPTIMIZERS, ids=lambda v: v.__name__ if isinstance(v, type) else "")
def test_float32_close_to_float64(opt_cls, kw):
    rng = np.random.default_rng(5)
    p0, grads = rng.standard_normal(SHAPE), [rng.standard_normal(SHAPE) for _ in range(10)]
    p32 = sg.Tensor(p0, requires_grad=True, dtype="float32")
    p64 = sg.Tensor(p0, requires_grad=True, dtype="float64")
    o32, o64 = opt_cls([p32], **kw), opt_cls([p64], **kw)
    for g in grads:
        p32.grad, p64.grad = sg.Tensor(g, dtype="float32"), sg.Tensor(g, dtype="float64")
        o32.step()
        o64.step()
    assert p32.dtype == np.float32
    assert all(v.dtype == np.float32 for v in o32.state_dict()["state"].get("0", {}).values() if isinstance(v, np.ndarray))
    np.testing.assert_allclose(p32.numpy(), p64.numpy(), rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- cross-checks


def test_adam_against_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    p0, grads = rng.standard_normal(SHAPE), [rng.standard_normal(SHAPE) for _ in range(15)]
    for name, kw, ours in [("Adam", dict(lr=0.01, betas=(0.5, 0.9), weight_decay=0.1), Adam),
                           ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True), SGD),
                           ("RMSprop", dict(lr=0.01, momentum=0.5, centered=True), RMSprop)]:
        tp = torch.nn.Parameter(torch.tensor(p0))
        topt = getattr(torch.optim, name)([tp], **kw)
        for g in grads:
            tp.grad = torch.tensor(g)
            topt.step()
        np.testing.assert_allclose(run(ours, p0, grads, **kw), tp.detach().numpy(), **TOL)


@pytest.mark.skipif(not sg.cupy_available(), reason="needs CuPy and a GPU")
@pytest.mark.parametrize("dtype,tol", [("float32", 1e-6), ("float64", 1e-12)])
def test_adam_step_on_cupy_matches_numpy(dtype, tol):
    rng = np.random.default_rng(3)
    p0, g = rng.standard_normal((16, 8)), rng.standard_normal((16, 8))
    results = []
    for name in ("numpy", "cupy"):
        p = sg.Tensor(p0, requires_grad=True, dtype=dtype).to_backend(name)
        p.grad = sg.Tensor(g, dtype=dtype).to_backend(name)
        opt = Adam([p], lr=1e-2)
        opt.step()
        p.grad = sg.Tensor(-g, dtype=dtype).to_backend(name)
        opt.step()
        assert p.backend == name
        results.append(p.numpy())
    np.testing.assert_allclose(results[1], results[0], rtol=tol, atol=tol)
