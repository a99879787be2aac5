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
from scratchgan.optim.optimizers import SGD, Adam, Optimizer, RMSprop

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
def test_sgd_matches_closed_form(backend, p0, grads, lr, wd):
    got = run(SGD, p0, grads, lr=lr, weight_decay=wd)
    np.testing.assert_allclose(got, ref_sgd(p0, grads, lr, weight_decay=wd), **TOL)


def test_sgd_constant_gradient_closed_form(backend):
    # p_n = p_0 - n lr g for plain SGD; with momentum b_t = g (1 - mu^t) / (1 - mu)
    p0, g, lr, mu, n = np.array([1.0, -2.0]), np.array([0.5, -0.25]), 0.1, 0.9, 7
    np.testing.assert_allclose(run(SGD, p0, [g] * n, lr=lr), p0 - n * lr * g, **TOL)
    bufs = [g * (1 - mu ** t) / (1 - mu) for t in range(1, n + 1)]
    np.testing.assert_allclose(run(SGD, p0, [g] * n, lr=lr, momentum=mu), p0 - lr * sum(bufs), **TOL)
    nest = p0 - lr * sum(g + mu * b for b in bufs)
    np.testing.assert_allclose(run(SGD, p0, [g] * n, lr=lr, momentum=mu, nesterov=True), nest, **TOL)


@given(p0=param_arrays, grads=grad_lists, lr=st.floats(0, 1), mu=st.floats(0.01, 0.99),
       nesterov=st.booleans(), wd=st.sampled_from([0.0, 0.05]))
def test_sgd_momentum_nesterov_matches_closed_form(backend, p0, grads, lr, mu, nesterov, wd):
    got = run(SGD, p0, grads, lr=lr, momentum=mu, nesterov=nesterov, weight_decay=wd)
    np.testing.assert_allclose(got, ref_sgd(p0, grads, lr, mu, nesterov, wd), **TOL)


def test_sgd_dampening_matches_reference(backend):
    rng = np.random.default_rng(1)
    p0, grads = rng.standard_normal(SHAPE), [rng.standard_normal(SHAPE) for _ in range(5)]
    got = run(SGD, p0, grads, lr=0.1, momentum=0.8, dampening=0.3)
    np.testing.assert_allclose(got, ref_sgd(p0, grads, 0.1, 0.8, dampening=0.3), **TOL)


# --------------------------------------------------------------------------- Adam

adam_hyper = dict(lr=st.floats(1e-4, 1.0), b1=st.floats(0.0, 0.99), b2=st.floats(0.0, 0.9999),
                  eps=st.floats(1e-10, 1e-3), wd=st.sampled_from([0.0, 0.01]))


@given(p0=param_arrays, g=grad_arrays, **adam_hyper)
def test_adam_one_step_matches_closed_form(backend, p0, g, lr, b1, b2, eps, wd):
    got = run(Adam, p0, [g], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
    np.testing.assert_allclose(got, ref_adam(p0, [g], lr, b1, b2, eps, wd), **TOL)
    # closed form of step 1: m_hat = g, v_hat = g^2, so the update is -lr g / (|g| + eps)
    g_wd = g + wd * p0
    np.testing.assert_allclose(got, p0 - lr * g_wd / (np.abs(g_wd) + eps), **TOL)


def test_adam_first_step_is_about_minus_lr_sign_g(backend):
    g = np.array([[3.0, -1e-3], [250.0, -7.5]])
    p0 = np.zeros_like(g)
    got = run(Adam, p0, [g], lr=0.01, betas=(0.9, 0.999), eps=1e-12)
    np.testing.assert_allclose(got, -0.01 * np.sign(g), rtol=1e-8)


@given(p0=param_arrays, grads=grad_lists, **adam_hyper)
def test_adam_many_steps_matches_closed_form(backend, p0, grads, lr, b1, b2, eps, wd):
    got = run(Adam, p0, grads, lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
    np.testing.assert_allclose(got, ref_adam(p0, grads, lr, b1, b2, eps, wd), **TOL)


def test_adam_skips_params_without_grad_and_counts_their_own_steps(backend):
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
def test_rmsprop_matches_closed_form(backend, p0, grads, lr, alpha, eps, mu, wd, centered):
    if centered:
        # v - g_ave^2 cancels catastrophically when alpha ~ 0 (it is ~ alpha (1 - alpha) g^2), which turns
        # 1-ulp differences in the operation order into ~1e-8 relative ones; keep alpha in [0.5, 0.9995)
        alpha = 0.5 + alpha / 2
    got = run(RMSprop, p0, grads, lr=lr, alpha=alpha, eps=eps, momentum=mu, weight_decay=wd, centered=centered)
    np.testing.assert_allclose(got, ref_rmsprop(p0, grads, lr, alpha, eps, mu, wd, centered), **TOL)


def test_rmsprop_one_step_closed_form(backend):
    # v_1 = (1 - alpha) g^2, so p_1 = p_0 - lr g / (sqrt(1 - alpha) |g| + eps)
    g, p0 = np.array([2.0, -0.5]), np.array([1.0, 1.0])
    got = run(RMSprop, p0, [g], lr=0.01, alpha=0.99, eps=1e-8)
    np.testing.assert_allclose(got, p0 - 0.01 * g / (np.sqrt(0.01) * np.abs(g) + 1e-8), **TOL)


# --------------------------------------------------------------------------- weight decay: one helper

DECAYING = [(SGD, dict(lr=0.05, momentum=0.9, nesterov=True)), (SGD, dict(lr=0.05)),
            (Adam, dict(lr=1e-2, betas=(0.5, 0.99))), (RMSprop, dict(lr=1e-2, momentum=0.5, centered=True))]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("opt_cls,kw", DECAYING, ids=lambda v: v.__name__ if isinstance(v, type) else "")
def test_weight_decay_comes_from_the_one_helper_only(backend, monkeypatch, opt_cls, kw, dtype):
    """Every optimizer's rule adds weight decay through ``rules.l2_decayed`` and nowhere else:
    with the helper made the identity, weight_decay=0.1 steps bitwise like weight_decay=0, and the
    helper sees every parameter at every step. The rules are the definitions (reference mode); Adam's
    acceleration has its own term, checked against the definition (test_adam_reference_mode_*)."""
    from scratchgan.autograd import fastpath
    from scratchgan.optim import rules

    @fastpath.reference_mode()
    def steps(wd):
        rng = np.random.default_rng(3)
        ps = [sg.Tensor(rng.standard_normal(s), dtype=dtype, requires_grad=True) for s in [(4, 3), (5,)]]
        opt = opt_cls(ps, weight_decay=wd, **kw)
        for _ in range(3):
            grads = [rng.standard_normal(p.shape).astype(dtype) for p in ps]
            for p, g in zip(ps, grads):
                p.grad = sg.Tensor(g, dtype=dtype)
            opt.step()
            for p, g in zip(ps, grads):
                np.testing.assert_array_equal(p.grad.numpy(), g)  # the decay never writes into .grad
        return [p.numpy().copy() for p in ps]

    decayed, plain = steps(0.1), steps(0.0)
    assert not all(np.array_equal(a, b) for a, b in zip(decayed, plain))  # the decay does act
    calls = []

    def identity(g, p, weight_decay):
        calls.append(weight_decay)
        return g

    monkeypatch.setattr(rules, "l2_decayed", identity)
    for a, b in zip(steps(0.1), plain):
        np.testing.assert_array_equal(a, b)
    assert calls == [0.1] * 6


def test_l2_decayed_is_g_plus_wd_p_in_a_new_array():
    from scratchgan.optim.rules import l2_decayed as _l2_decayed

    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        g, p = rng.standard_normal(5).astype(dtype), rng.standard_normal(5).astype(dtype)
        g0 = g.copy()
        out = _l2_decayed(g, p, 0.01)
        assert out.dtype == dtype and out is not g
        np.testing.assert_array_equal(out, g + dtype(0.01) * p)  # what the CuPy kernel computes
        np.testing.assert_array_equal(g, g0)
        assert _l2_decayed(g, p, 0.0) is g


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
    elif isinstance(tree, (list, tuple)):
        for i, v in enumerate(tree):
            yield from _leaves(v, path + (i,))
    else:
        yield path, tree


def _hypers(opt):
    """Every group's hyperparameters (without the tensors)."""
    return [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("opt_cls,kw", OPTIMIZERS, ids=lambda v: v.__name__ if isinstance(v, type) else "")
def test_state_dict_round_trip_continues_bitwise(backend, opt_cls, kw, dtype):
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
    assert fresh_opt.step_count == k and _hypers(fresh_opt) == _hypers(opt)
    _train(fresh, fresh_opt, k, n, skip_last=True)
    for (name, a), b in zip(ref.state_dict().items(), fresh.state_dict().values()):
        assert a.dtype == b.dtype and np.array_equal(a, b), name
    assert fresh_opt.step_count == ref_opt.step_count == n


def test_state_dict_is_a_copy_and_load_copies(backend):
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
    with pytest.raises(ValueError, match="group 0 has 2 parameters in the state, 1 in this optimizer"):
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
    bad["param_groups"][0]["betas"] = (1.5, 0.999)
    with pytest.raises(ValueError, match=r"beta1 \(betas\[0\]\)"):
        opt.load_state_dict(bad)
    bad = copy.deepcopy(sd)
    bad["param_groups"][0]["amsgrad"] = False
    with pytest.raises(ValueError, match="hyperparameters .* do not match"):
        opt.load_state_dict(bad)
    bad = copy.deepcopy(sd)
    bad["param_groups"][0]["params"] = [1, 0]
    with pytest.raises(ValueError, match="number the parameters 0..1 in order"):
        opt.load_state_dict(bad)
    with pytest.raises(ValueError, match="the state has 1 parameter groups, this optimizer has 2"):
        Adam([{"params": [a]}, {"params": [b]}]).load_state_dict(sd)
    bad = copy.deepcopy(sd)
    del bad["step"]
    with pytest.raises(ValueError, match="do not match the expected"):
        opt.load_state_dict(bad)


# --------------------------------------------------------------------------- misc behaviour


def test_zero_grad_sets_none(backend):
    model = nn.mlp([2, 3, 1], rng=0)
    opt = SGD(model.parameters(), lr=0.1)
    model(sg.Tensor(np.ones((4, 2), dtype=np.float32))).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    opt.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_step_records_no_graph_and_keeps_identity(backend):
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


def test_lr_can_be_changed_between_steps(backend):
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
def test_float32_close_to_float64(backend, opt_cls, kw):
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


@pytest.mark.gpu
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


# --------------------------------------------------------------------------- parameter groups

GROUP_CASES = [
    # (optimizer, constructor defaults, per-group settings): the groups differ in lr, weight decay, betas, ...
    ("SGD", dict(lr=0.1, momentum=0.9), [dict(lr=0.05, weight_decay=0.1), dict(nesterov=True)]),
    ("Adam", dict(lr=0.01, betas=(0.5, 0.9)), [dict(weight_decay=0.1), dict(lr=0.003, betas=(0.9, 0.99), eps=1e-6)]),
    ("RMSprop", dict(lr=0.01), [dict(momentum=0.5, centered=True), dict(lr=0.002, alpha=0.9, weight_decay=0.05)]),
]
GROUP_SHAPES = [(3, 2), (4,), (2, 2)]  # parameters 0 and 1 in group 0, parameter 2 in group 1


def _group_setup(lib, name, defaults, group_kw, values):
    """The same three float64 parameters in two groups, for scratchgan (lib=None) or torch."""
    if lib is None:
        params = [sg.Tensor(v, requires_grad=True, dtype="float64") for v in values]
        cls = {"SGD": SGD, "Adam": Adam, "RMSprop": RMSprop}[name]
    else:
        params = [lib.nn.Parameter(lib.tensor(v)) for v in values]
        cls = getattr(lib.optim, name)
    groups = [dict(params=params[:2], **group_kw[0]), dict(params=params[2:], **group_kw[1])]
    return params, cls(groups, **defaults)


def _schedule(opt, step):
    """Per-group learning-rate changes, written into param_groups as a PyTorch scheduler would."""
    if step == 4:
        opt.param_groups[0]["lr"] *= 0.5
    if step == 7:
        for g in opt.param_groups:
            g["lr"] = 0.02


def _group_grads(step):
    rng = np.random.default_rng(500 + step)
    return [rng.standard_normal(s) for s in GROUP_SHAPES]


def _run_groups(lib, name, defaults, group_kw, steps, skip=None):
    values = [np.random.default_rng(40 + i).standard_normal(s) for i, s in enumerate(GROUP_SHAPES)]
    params, opt = _group_setup(lib, name, defaults, group_kw, values)
    for step in range(steps):
        _schedule(opt, step)
        for i, (p, g) in enumerate(zip(params, _group_grads(step))):
            if skip is not None and skip(step, i):
                p.grad = None
            else:
                p.grad = sg.Tensor(g, dtype="float64") if lib is None else lib.tensor(g)
        opt.step()
    return params, opt


@pytest.mark.parametrize("name,defaults,group_kw", GROUP_CASES, ids=[c[0] for c in GROUP_CASES])
def test_param_groups_match_torch(name, defaults, group_kw):
    torch = pytest.importorskip("torch")
    skip = lambda step, i: i == 1 and step % 3 == 1  # noqa: E731 - parameter 1 misses some steps
    ours, opt = _run_groups(None, name, defaults, group_kw, 12, skip)
    theirs, topt = _run_groups(torch, name, defaults, group_kw, 12, skip)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), **TOL)
    # the state dict has PyTorch's structure: the same groups, numbering and per-parameter entries
    sd, tsd = opt.state_dict(), topt.state_dict()
    assert len(sd["param_groups"]) == len(tsd["param_groups"]) == 2
    for g, tg in zip(sd["param_groups"], tsd["param_groups"]):
        assert g["params"] == tg["params"]
        for key, value in g.items():
            assert value == (tuple(tg[key]) if key == "betas" else tg[key]), key
    assert sorted(sd["state"]) == [str(k) for k in sorted(tsd["state"])]
    for key, st in sd["state"].items():
        tst = tsd["state"][int(key)]
        assert set(st) == set(tst)
        for entry, value in st.items():
            np.testing.assert_allclose(value, np.asarray(tst[entry]), **TOL)


@pytest.mark.parametrize("name,defaults,group_kw", GROUP_CASES, ids=[c[0] for c in GROUP_CASES])
def test_groups_take_the_constructor_defaults(backend, name, defaults, group_kw):
    _, opt = _group_setup(None, name, defaults, group_kw, [np.zeros(s) for s in GROUP_SHAPES])
    assert set(opt.defaults) == set(opt._hyper_keys)
    for g, kw in zip(opt.param_groups, group_kw):
        assert set(g) == {"params", *opt.defaults}
        for key, default in opt.defaults.items():
            assert g[key] == kw.get(key, default), key
    assert [len(g["params"]) for g in opt.param_groups] == [2, 1] and len(opt.state) == 3


def test_group_lr_closed_form_with_a_schedule(backend):
    """Plain SGD, two groups: p = p0 - sum_t lr_t g, each group with its own lr sequence (no torch needed)."""
    a = sg.Tensor([1.0, -1.0], requires_grad=True, dtype="float64")
    b = sg.Tensor([2.0], requires_grad=True, dtype="float64")
    opt = SGD([{"params": [a]}, {"params": b, "lr": 0.25}], lr=0.5)
    lrs = {0: [], 1: []}
    for step in range(6):
        if step == 2:
            opt.param_groups[1]["lr"] = 0.125
        if step == 4:
            for g in opt.param_groups:
                g["lr"] = 1.0
        lrs[0].append(opt.param_groups[0]["lr"])
        lrs[1].append(opt.param_groups[1]["lr"])
        a.grad, b.grad = sg.Tensor([1.0, 2.0], dtype="float64"), sg.Tensor([4.0], dtype="float64")
        opt.step()
    assert a.numpy().tolist() == (np.array([1.0, -1.0]) - sum(lrs[0]) * np.array([1.0, 2.0])).tolist()
    assert b.numpy().tolist() == [2.0 - sum(lrs[1]) * 4.0]
    assert lrs == {0: [0.5] * 4 + [1.0] * 2, 1: [0.25] * 2 + [0.125] * 2 + [1.0] * 2}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name,defaults,group_kw", GROUP_CASES, ids=[c[0] for c in GROUP_CASES])
def test_group_state_round_trip_continues_bitwise(backend, name, defaults, group_kw, dtype, tmp_path):
    """Save mid-run (after a schedule changed one group's lr), load into an optimizer built with other
    hyperparameters, through a checkpoint file: the continuation is bitwise the straight run's."""
    from scratchgan.app.checkpoint import load_checkpoint, save_checkpoint

    cls = {"SGD": SGD, "Adam": Adam, "RMSprop": RMSprop}[name]
    n, k = 10, 5

    def build(seed):
        model = nn.mlp([3, 4, 2], rng=seed, dtype=dtype)
        layers = [m for m in model if isinstance(m, nn.Linear)]
        return model, [dict(params=layers[0].parameters(), **group_kw[0]), dict(params=layers[1].parameters(),
                                                                                 **group_kw[1])]

    def train(model, opt, start, stop):
        for step in range(start, stop):
            _schedule(opt, step)
            _train(model, opt, step, step + 1, skip_last=True)

    ref, groups = build(0)
    ref_opt = cls(groups, **defaults)
    train(ref, ref_opt, 0, n)

    first, groups = build(0)
    opt = cls(groups, **defaults)
    train(first, opt, 0, k)
    initial = group_kw[0].get("lr", defaults["lr"])
    assert opt.param_groups[0]["lr"] == initial * 0.5  # the schedule changed it before the save
    save_checkpoint(tmp_path / "ck.npz", {"model": first.state_dict(), "opt": opt.state_dict()})
    tree = load_checkpoint(tmp_path / "ck.npz")

    fresh, groups = build(123)
    fresh.load_state_dict(tree["model"])
    fresh_opt = cls([{"params": g["params"]} for g in groups], lr=0.5)  # hyperparameters come from the state
    fresh_opt.load_state_dict(tree["opt"])
    assert _hypers(fresh_opt) == _hypers(opt)  # including the lr the schedule changed, exactly
    assert [g["lr"] for g in fresh_opt.param_groups] == [g["lr"] for g in opt.param_groups]
    assert fresh_opt.step_count == k
    train(fresh, fresh_opt, k, n)
    for (pname, a), b in zip(ref.state_dict().items(), fresh.state_dict().values()):
        assert a.dtype == b.dtype and np.array_equal(a, b), pname
    assert _hypers(fresh_opt) == _hypers(ref_opt)


def test_state_dict_restores_a_scheduled_lr_exactly(backend):
    p = sg.Tensor(np.ones(2), requires_grad=True, dtype="float64")
    q = sg.Tensor(np.ones(3), requires_grad=True, dtype="float64")
    opt = Adam([{"params": [p]}, {"params": [q], "lr": 0.1}], lr=1e-3)
    opt.param_groups[1]["lr"] = 0.1 * 0.7 ** 3  # not a round number: must come back bit for bit
    sd = opt.state_dict()
    assert [g["lr"] for g in sd["param_groups"]] == [1e-3, 0.1 * 0.7 ** 3]
    other = Adam([{"params": [p]}, {"params": [q]}], lr=0.5)
    other.load_state_dict(sd)
    assert [g["lr"] for g in other.param_groups] == [1e-3, 0.1 * 0.7 ** 3]
    assert other.param_groups[1]["params"][0] is q


def test_old_state_dict_format_still_loads(backend):
    """A state dict written before parameter groups ("hyper", "num_params") loads and continues bitwise."""
    ref = nn.mlp([3, 4, 2], rng=0, dtype="float64")
    ref_opt = Adam(ref.parameters(), lr=1e-2, betas=(0.5, 0.99))
    _train(ref, ref_opt, 0, 6, skip_last=True)

    first = nn.mlp([3, 4, 2], rng=0, dtype="float64")
    opt = Adam(first.parameters(), lr=1e-2, betas=(0.5, 0.99))
    _train(first, opt, 0, 3, skip_last=True)
    new = opt.state_dict()
    (group,) = new["param_groups"]
    old = {"type": "Adam", "step": new["step"], "num_params": len(group["params"]), "state": new["state"],
           "hyper": {"lr": group["lr"], "beta1": group["betas"][0], "beta2": group["betas"][1], "eps": group["eps"],
                     "weight_decay": group["weight_decay"]}}
    fresh = nn.mlp([3, 4, 2], rng=1, dtype="float64")
    fresh.load_state_dict(first.state_dict())
    fresh_opt = Adam(fresh.parameters())
    fresh_opt.load_state_dict(old)
    assert fresh_opt.param_groups[0]["betas"] == (0.5, 0.99)
    _train(fresh, fresh_opt, 3, 6, skip_last=True)
    for a, b in zip(ref.state_dict().values(), fresh.state_dict().values()):
        assert np.array_equal(a, b)


def test_add_param_group(backend):
    a = sg.Tensor(np.ones(2), requires_grad=True, dtype="float64")
    b = sg.Tensor(np.ones(3), requires_grad=True, dtype="float64")
    opt = SGD([a], lr=0.1, momentum=0.9)
    a.grad = sg.Tensor(np.ones(2), dtype="float64")
    opt.step()
    opt.add_param_group({"params": b, "lr": 0.01})  # a single tensor is a group of one, as in PyTorch
    assert opt.param_groups[1]["momentum"] == 0.9 and opt.param_groups[1]["lr"] == 0.01
    assert opt.params[1] is b and len(opt.state) == 2 and opt.state[1] == {}
    b.grad = sg.Tensor(np.ones(3), dtype="float64")
    opt.step()
    np.testing.assert_allclose(b.numpy(), np.ones(3) - 0.01, **TOL)
    assert opt.state_dict()["param_groups"][1]["params"] == [1]
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [a]})


def _two():
    return sg.Tensor(np.ones(2), requires_grad=True), sg.Tensor(np.ones(3), requires_grad=True)


@pytest.mark.parametrize("make,error,match", [
    (lambda a, b: SGD([{"params": [a, b]}, {"params": [b]}], lr=0.1), ValueError,
     "group 1: parameter 0 appears in more than one parameter group"),
    (lambda a, b: Adam([{"params": [a]}, {"lr": 0.1}]), ValueError, "parameter group 1 has no 'params'"),
    (lambda a, b: Adam([{"params": [a], "learning_rate": 0.1}]), ValueError,
     r"unknown hyperparameter\(s\) \['learning_rate'\]; Adam takes \['lr', 'betas', 'eps', 'weight_decay'\]"),
    (lambda a, b: Adam([{"params": [a], "beta1": 0.5}]), ValueError, "unknown hyperparameter"),
    (lambda a, b: SGD([{"params": [a], "lr": -0.1}]), ValueError, "parameter group 0: invalid lr"),
    (lambda a, b: Adam([{"params": [a], "betas": (0.9,)}]), ValueError, "betas must be a pair"),
    (lambda a, b: SGD([{"params": [a]}, b], lr=0.1), TypeError, "mixes Tensors and parameter groups"),
    (lambda a, b: SGD({"params": [a]}, lr=0.1), TypeError, "wrap the group in a list"),
    (lambda a, b: SGD({a, b}, lr=0.1), TypeError, "not a set"),
    (lambda a, b: SGD([{"params": {a, b}}], lr=0.1), TypeError, "not a set"),
    (lambda a, b: SGD([{"params": 3}], lr=0.1), TypeError, "'params' must be a Tensor or an iterable"),
    (lambda a, b: SGD([a], lr=0.1).add_param_group([b]), TypeError, "must be a dict"),
])
def test_param_group_errors(make, error, match):
    with pytest.raises(error, match=match):
        make(*_two())


def test_lr_property_needs_one_group():
    a, b = _two()
    opt = Adam([{"params": [a]}, {"params": [b], "lr": 0.1}])
    with pytest.raises(ValueError, match="2 parameter groups.*param_groups\\[i\\]\\['lr'\\]"):
        opt.lr
    with pytest.raises(ValueError, match="2 parameter groups"):
        opt.lr = 0.5
    single = Adam([a], lr=0.1)
    single.lr = 0.25
    assert single.param_groups[0]["lr"] == 0.25 == single.lr


def test_edited_groups_are_checked_at_the_next_step(backend):
    a, b = _two()
    opt = SGD([{"params": [a]}, {"params": [b]}], lr=0.1)
    a.grad, b.grad = sg.Tensor(np.ones(2)), sg.Tensor(np.ones(3))
    opt.step()
    opt.param_groups[1]["lr"] = -1.0
    with pytest.raises(ValueError, match=r"param_groups\[1\]: invalid lr -1.0"):
        opt.step()
    opt.param_groups[1]["lr"] = 0.1
    opt.param_groups[0]["learning_rate"] = 0.5  # a typo must not pass silently
    with pytest.raises(ValueError, match=r"param_groups\[0\]: unknown hyperparameter"):
        opt.step()
    del opt.param_groups[0]["learning_rate"]
    opt.param_groups[0]["nesterov"] = True  # momentum is 0: invalid combination
    with pytest.raises(ValueError, match="Nesterov momentum requires"):
        opt.step()
    opt.param_groups[0]["nesterov"] = False
    del opt.param_groups[0]["lr"]
    with pytest.raises(ValueError, match=r"param_groups\[0\] has no \['lr'\]"):
        opt.step()


def test_betas_list_edited_in_place_takes_effect(backend):
    """The values checked at the last step are not reused after a list in a group changed in place."""
    p = sg.Tensor(np.zeros(2), requires_grad=True, dtype="float64")
    q = sg.Tensor(np.zeros(2), requires_grad=True, dtype="float64")
    in_place, replaced = Adam([p], lr=0.1), Adam([q], lr=0.1)
    in_place.param_groups[0]["betas"] = [0.9, 0.999]
    for step in range(3):
        if step == 1:
            in_place.param_groups[0]["betas"][0] = 0.5
            replaced.param_groups[0]["betas"] = (0.5, 0.999)
        p.grad = sg.Tensor([1.0, -2.0 + step], dtype="float64")
        q.grad = sg.Tensor([1.0, -2.0 + step], dtype="float64")
        in_place.step()
        replaced.step()
        assert np.array_equal(p.numpy(), q.numpy()), step


def test_group_lr_reaches_the_device_array(backend):
    """What the CuPy path relies on, with a NumPy stand-in for the device array: writing a group's lr
    (by hand or through opt.lr) updates the one-element array the fused kernel reads, in place, so a
    captured CUDA graph sees it; each group has its own array."""
    from scratchgan.accel.optim_kernels import device_group

    a, b = _two()
    opt = Adam([{"params": [a]}, {"params": [b], "lr": 0.1}], lr=1e-3)
    arrays = [device_group(g, g["lr"], np).lr for g in opt.param_groups]
    assert [float(x[0]) for x in arrays] == [1e-3, 0.1]
    opt.param_groups[1]["lr"] = 0.05
    assert float(arrays[1][0]) == 0.05 and float(arrays[0][0]) == 1e-3
    opt.param_groups[0].update(lr=0.2)
    assert float(arrays[0][0]) == 0.2
    opt.param_groups[0]["lr"] = -1.0  # invalid: not written (the next eager step reports it)
    assert float(arrays[0][0]) == 0.2
    dict.__setitem__(opt.param_groups[0], "lr", 0.3)  # bypassing the group: the next step refreshes it
    assert device_group(opt.param_groups[0], 0.3, np).lr is arrays[0] and float(arrays[0][0]) == 0.3
    single = Adam([a], lr=0.1)
    arr = device_group(single.param_groups[0], 0.1, np).lr
    single.lr = 0.01
    assert float(arr[0]) == 0.01
    copy.deepcopy(single.param_groups)  # groups stay copyable


def test_zero_grad_set_to_none_false_leaves_zero_arrays(backend):
    model = nn.mlp([2, 3, 1], rng=0)
    x = sg.Tensor(np.ones((4, 2), dtype=np.float32))
    for zero in (lambda: SGD(model.parameters(), lr=0.1).zero_grad(set_to_none=False),
                 lambda: model.zero_grad(set_to_none=False)):
        model(x).sum().backward()
        arrays = [p.grad.data for p in model.parameters()]
        zero()
        for p, arr in zip(model.parameters(), arrays):
            assert p.grad is not None and p.grad.data is arr  # in place
            assert p.grad.dtype == p.dtype and p.grad.shape == p.shape and not p.grad.numpy().any()
        model(x).sum().backward()  # accumulates onto the zeros: the plain gradient
        grads = [p.grad.numpy().copy() for p in model.parameters()]
        model.zero_grad()
        model(x).sum().backward()
        for p, g in zip(model.parameters(), grads):
            np.testing.assert_array_equal(p.grad.numpy(), g)
        model.zero_grad()
        assert all(p.grad is None for p in model.parameters())
    a, b = _two()
    opt = SGD([a, b], lr=0.1)
    opt.zero_grad(set_to_none=False)
    assert a.grad is None and b.grad is None  # a missing gradient stays missing


def test_zero_grad_without_set_to_none_detaches_a_graph_gradient(backend):
    x = sg.Tensor([1.0, 2.0], requires_grad=True, dtype="float64")
    (g,) = sg.grad((x * x).sum(), x, create_graph=True)
    x.grad = g  # a gradient that is part of a graph: zeroing it in place would change that graph
    SGD([x], lr=0.1).zero_grad(set_to_none=False)
    assert x.grad is not g and not x.grad.requires_grad and x.grad.numpy().tolist() == [0.0, 0.0]
    assert g.numpy().tolist() == [2.0, 4.0]


def test_step_with_closure_returns_its_loss(backend):
    w = sg.Tensor([3.0], requires_grad=True, dtype="float64")
    opt = SGD([w], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss

    with sg.no_grad():  # the closure runs with gradients enabled anyway, as in PyTorch
        loss = opt.step(closure)
    assert loss.item() == 9.0 and w.numpy().tolist() == [3.0 - 0.25 * 6.0]
    assert opt.step() is None


def test_constructor_arguments_in_torch_order():
    torch = pytest.importorskip("torch")
    import inspect

    for ours in (SGD, Adam, RMSprop):
        names = list(inspect.signature(ours.__init__).parameters)[1:]
        theirs = list(inspect.signature(getattr(torch.optim, ours.__name__).__init__).parameters)[1:len(names) + 1]
        assert names == theirs, ours.__name__
        defaults = {k: v.default for k, v in inspect.signature(ours.__init__).parameters.items() if k in names[1:]}
        tdefaults = inspect.signature(getattr(torch.optim, ours.__name__).__init__).parameters
        for k, v in defaults.items():
            assert v == tdefaults[k].default, (ours.__name__, k)


def test_repr_names_every_group():
    a, b = _two()
    text = repr(Adam([{"params": [a]}, {"params": [b], "lr": 0.1}]))
    assert "group 0: lr=0.001" in text and "group 1: lr=0.1" in text and "2 params" in text


@pytest.mark.gpu
@pytest.mark.skipif(not sg.cupy_available(), reason="needs CuPy and a GPU")
def test_adam_groups_on_cupy_match_numpy():
    rng = np.random.default_rng(4)
    p0, grads = [rng.standard_normal((8, 4)), rng.standard_normal(4)], [rng.standard_normal((8, 4)) for _ in range(4)]
    results = []
    for name in ("numpy", "cupy"):
        ps = [sg.Tensor(v, requires_grad=True, dtype="float64").to_backend(name) for v in p0]
        opt = Adam([{"params": ps[:1]}, {"params": ps[1:], "lr": 0.05, "betas": (0.5, 0.9)}], lr=1e-2)
        for step, g in enumerate(grads):
            if step == 2:
                opt.param_groups[1]["lr"] = 0.2
            ps[0].grad = sg.Tensor(g, dtype="float64").to_backend(name)
            ps[1].grad = sg.Tensor(g[0], dtype="float64").to_backend(name)
            opt.step()
        results.append([p.numpy() for p in ps])
    for a, b in zip(*results):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)


@pytest.mark.gpu
@pytest.mark.skipif(not sg.cupy_available(), reason="needs CuPy and a GPU")
@pytest.mark.parametrize("dtype,tol", [("float32", 1e-6), ("float64", 1e-12)])
def test_adam_reference_mode_runs_the_definition_on_cupy(dtype, tol):
    """In reference mode Adam on CuPy runs its definition (rules.adam_update, array code, no device counters),
    and gives the fused kernel's update within float tolerance: two groups, weight decay, an lr written between
    steps, a parameter skipping a step."""
    from scratchgan.autograd import fastpath

    rng = np.random.default_rng(5)
    p0 = [rng.standard_normal((6, 4)), rng.standard_normal(4)]
    grads = [[rng.standard_normal(v.shape) for v in p0] for _ in range(4)]
    results = {}
    for reference in (False, True):
        ps = [sg.Tensor(v, requires_grad=True, dtype=dtype).to_backend("cupy") for v in p0]
        opt = Adam([{"params": ps[:1], "weight_decay": 0.1}, {"params": ps[1:], "lr": 0.05, "betas": (0.5, 0.9)}],
                   lr=1e-2)
        with fastpath.reference_mode(reference):
            for step, gs in enumerate(grads):
                if step == 2:
                    opt.param_groups[1]["lr"] = 0.2
                for p, g in zip(ps, gs):
                    p.grad = None if (step == 1 and p is ps[1]) else sg.Tensor(g, dtype=dtype).to_backend("cupy")
                opt.step()
        assert all(p.backend == "cupy" for p in ps)
        companions = [g.companion for g in opt.param_groups]
        assert all(c is None for c in companions) if reference else all(c is not None for c in companions)
        results[reference] = ([p.numpy() for p in ps], opt.state_dict())
    for a, b in zip(results[False][0], results[True][0]):
        np.testing.assert_allclose(b, a, rtol=tol, atol=tol)
    fused, plain = (results[r][1]["state"] for r in (False, True))
    assert [fused[k]["step"] for k in ("0", "1")] == [plain[k]["step"] for k in ("0", "1")] == [4, 3]
    for k in ("0", "1"):
        for name in ("exp_avg", "exp_avg_sq"):
            np.testing.assert_allclose(plain[k][name], fused[k][name], rtol=tol, atol=tol)


@pytest.mark.gpu
@pytest.mark.skipif(not sg.cupy_available(), reason="needs CuPy and a GPU")
def test_adam_steps_in_reference_mode_then_fused_keep_the_step_count():
    """Steps in reference mode advance only the host count: the fused path's device counter follows it."""
    from scratchgan.autograd import fastpath

    rng = np.random.default_rng(6)
    p0, grads = rng.standard_normal(5), [rng.standard_normal(5) for _ in range(5)]
    finals = []
    for modes in ([False] * 5, [False, True, True, False, False]):
        p = sg.Tensor(p0, requires_grad=True, dtype="float64").to_backend("cupy")
        opt = Adam([p], lr=0.1, betas=(0.5, 0.9))
        for reference, g in zip(modes, grads):
            p.grad = sg.Tensor(g, dtype="float64").to_backend("cupy")
            with fastpath.reference_mode(reference):
                opt.step()
        assert opt.state_dict()["state"]["0"]["step"] == 5
        finals.append(p.numpy())
    np.testing.assert_allclose(finals[1], finals[0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_adam_reference_mode_is_bitwise_on_numpy(dtype, weight_decay):
    """On NumPy the acceleration (in place through a work buffer) gives the definition's update bit for bit."""
    from scratchgan.autograd import fastpath

    rng = np.random.default_rng(7)
    p0 = [rng.standard_normal((3, 4)), rng.standard_normal(4)]
    grads = [[rng.standard_normal(v.shape) for v in p0] for _ in range(4)]
    finals = []
    for reference in (False, True):
        ps = [sg.Tensor(v, requires_grad=True, dtype=dtype) for v in p0]
        opt = Adam([{"params": ps[:1]}, {"params": ps[1:], "lr": 0.3}], lr=0.1, betas=(0.5, 0.9),
                   weight_decay=weight_decay)
        with fastpath.reference_mode(reference):
            for gs in grads:
                for p, g in zip(ps, gs):
                    p.grad = sg.Tensor(g, dtype=dtype)
                opt.step()
        companions = [g.companion for g in opt.param_groups]
        assert all(c is None for c in companions) if reference else all(c is not None for c in companions)
        finals.append([p.numpy() for p in ps] + [opt.state[i][k] for i in (0, 1) for k in ("exp_avg", "exp_avg_sq")])
    for a, b in zip(*finals):
        np.testing.assert_array_equal(a, b)
