"""Engine behaviour: float32 against float64, stable activations, clear errors,
anomaly mode, grad modes, deep graphs, pruning, accumulation, double backprop."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from op_specs import SPECS, OpSpec, cases, table

import scratchgan as sg
from scratchgan import ops
from scratchgan.ops import arith
from scratchgan.autograd.engine import _mode, make_result


def f64(values, requires_grad=True):
    return sg.Tensor(values, dtype="float64", requires_grad=requires_grad)


# --------------------------------------------------------------------------- float32 against float64


@pytest.mark.parametrize("spec", SPECS, ids=repr)
@table
@given(data=st.data())
def test_float32_matches_float64(backend, spec: OpSpec, data):
    case = data.draw(cases(spec), label="case")
    results = {}
    for dtype in ("float32", "float64"):
        xs = [sg.Tensor(a, dtype=dtype, requires_grad=True) for a in case.arrays]
        out = case.call(spec, *xs)
        assert out.dtype == dtype
        g_out = sg.Tensor(np.random.default_rng(case.seed).standard_normal(out.shape), dtype=dtype)
        grads = sg.grad(out, xs, grad_outputs=g_out)
        assert all(g.dtype == dtype for g in grads)
        results[dtype] = [out.numpy()] + [g.numpy() for g in grads]
    for lo, hi in zip(results["float32"], results["float64"]):
        np.testing.assert_allclose(lo, hi, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- stability at extremes

EXTREMES = [-1e4, -1e3, -710.0, -89.0, -30.0, -1.0, -1e-8, 0.0, 1e-8, 1.0, 30.0, 89.0, 710.0, 1e3, 1e4]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("act", [ops.sigmoid, ops.softplus, ops.log_sigmoid, ops.tanh], ids=lambda f: f.__name__)
def test_stable_activations_finite(backend, act, dtype):
    x = sg.Tensor(EXTREMES, dtype=dtype, requires_grad=True)
    with sg.detect_anomaly():  # would raise at the first NaN or Inf, forward or backward
        y = act(x)
        y.sum().backward()
    assert np.isfinite(y.numpy()).all() and np.isfinite(x.grad.numpy()).all()
    assert y.dtype == dtype and x.grad.dtype == dtype
    v = np.array(EXTREMES)
    reference = {"sigmoid": lambda: 0.5 * (1 + np.tanh(v / 2)), "softplus": lambda: np.logaddexp(0, v),
                 "log_sigmoid": lambda: -np.logaddexp(0, -v), "tanh": lambda: np.tanh(v)}[act.__name__]()
    np.testing.assert_allclose(y.numpy(), reference, rtol=1e-6, atol=1e-7)


# --------------------------------------------------------------------------- clear errors


def test_backward_non_scalar_needs_grad(backend):
    y = f64(np.ones((2, 3))) * 2.0
    with pytest.raises(RuntimeError, match=r"implicitly created only for scalar outputs.*\(2, 3\)"):
        y.backward()


def test_backward_through_freed_graph(backend):
    x = f64([1.0, 2.0])
    y = (x.exp() * 3.0).sum()
    y.backward()
    with pytest.raises(RuntimeError, match=r"second time.*retain_graph=True"):
        y.backward()


def test_backward_twice_with_retain_graph_accumulates(backend):
    x = f64([1.0, -2.0])
    y = (x * x).sum()
    y.backward(retain_graph=True)
    first = x.grad.numpy().copy()
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), 2 * first)


def test_matmul_shape_mismatch_names_both_shapes(backend):
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(4, 5\)"):
        ops.matmul(f64(np.ones((2, 3))), f64(np.ones((4, 5))))
    with pytest.raises(ValueError, match=r"\(3,\) and \(4, 5\)"):
        ops.matmul(f64(np.ones(3)), f64(np.ones((4, 5))))


def test_broadcast_mismatch_names_both_shapes(backend):
    with pytest.raises(ValueError, match=r"add: shapes \(2, 3\) and \(4,\) cannot be broadcast"):
        f64(np.ones((2, 3))) + f64(np.ones(4))


def test_backward_grad_shape_mismatch(backend):
    y = f64(np.ones((2, 3))) * 2.0
    with pytest.raises(ValueError, match=r"grad has shape \(3, 2\) but the output has shape \(2, 3\)"):
        y.backward(sg.Tensor(np.ones((3, 2)), dtype="float64"))


def test_mixing_float32_and_float64_is_an_error():
    a = sg.Tensor([1.0, 2.0], requires_grad=True)  # float32 by default
    b = f64([1.0, 2.0])
    with pytest.raises(TypeError, match=r"cannot mix float32 and float64"):
        a * b
    with pytest.raises(TypeError, match=r"float64 array with a float32 tensor would lose precision"):
        a + np.ones(2)


def test_python_scalars_take_the_tensor_dtype(backend):
    a = sg.Tensor([1.0, 2.0], requires_grad=True)
    for out in (a * 2.5, 2.5 - a, a / 3, a ** 2, a ** np.float64(1.5), 2.0 ** a, a * np.float64(0.1),
                ops.leaky_relu(a, np.float64(0.2)), ops.clip(a, np.float64(0.0), np.float64(1.5))):
        assert out.dtype == np.float32
    assert sg.Tensor([1.0, 2.0]).dtype == np.float32  # Python floats default to float32 (PyTorch)
    assert sg.Tensor(np.ones(2)).dtype == np.float64  # an array keeps its dtype (PyTorch, NumPy)


def test_integer_tensor_cannot_require_grad(backend):
    with pytest.raises(TypeError, match=r"only floating tensors can require gradients"):
        sg.Tensor([1, 2, 3], requires_grad=True)


def test_grad_of_unused_input(backend):
    x, unused = f64([1.0, 2.0]), f64([3.0])
    y = (x * x).sum()
    with pytest.raises(RuntimeError, match=r"input 1 \(shape \(1,\)\) is not used.*allow_unused=True"):
        sg.grad(y, [x, unused], retain_graph=True)
    gx, gu = sg.grad(y, [x, unused], allow_unused=True)
    assert gu is None and np.allclose(gx.numpy(), [2.0, 4.0])


@pytest.mark.gpu
@pytest.mark.skipif(not sg.cupy_available(), reason="needs CuPy and a GPU")
def test_mixing_backends_is_an_error():
    a = f64([1.0, 2.0])
    try:
        sg.set_backend("cupy")
        b = f64([1.0, 2.0])
    finally:
        sg.set_backend("numpy")
    with pytest.raises(TypeError, match=r"cannot mix a numpy tensor with a cupy tensor"):
        a + b
    with pytest.raises(TypeError, match=r"cannot mix"):
        ops.concatenate([a, b])


# --------------------------------------------------------------------------- anomaly mode


def test_anomaly_forward_names_the_op(backend):
    x = f64([1.0, -1.0])
    with sg.detect_anomaly(), np.errstate(invalid="ignore"):
        with pytest.raises(FloatingPointError, match=r"op 'log' \(forward\)"):
            x.log()


def test_anomaly_backward_names_the_op(backend):
    x = f64([0.0, 4.0])
    with sg.detect_anomaly(), np.errstate(divide="ignore"):
        y = x.sqrt().sum()  # forward is finite; d sqrt/dx at 0 is inf
        with pytest.raises(FloatingPointError, match=r"op 'sqrt' \(backward\)"):
            y.backward()
    assert not _mode.anomaly  # switched off again


def test_anomaly_off_lets_nan_through(backend):
    with np.errstate(invalid="ignore"):
        assert np.isnan(f64([-1.0]).log().numpy()).all()


# --------------------------------------------------------------------------- grad modes


def test_no_grad_context_and_decorator(backend):
    x = f64([1.0, 2.0])
    with sg.no_grad():
        y = x * 2.0 + 1.0
    assert not y.requires_grad and y._parents == () and y.is_leaf

    @sg.no_grad()
    def f(t):
        return (t * t).sum()

    z = f(x)
    assert not z.requires_grad and z._parents == ()
    assert sg.is_grad_enabled()
    w = x * 2.0
    assert w.requires_grad and w._parents[0] is x


def test_enable_grad_inside_no_grad(backend):
    x = f64([1.0])
    with sg.no_grad(), sg.enable_grad():
        assert (x * 2.0).requires_grad


# --------------------------------------------------------------------------- graph structure


def test_deep_chain_has_no_recursion_limit():
    x = f64([0.5])
    y = x
    for _ in range(100_000):
        y = y + 1e-6
    y.sum().backward()
    assert x.grad.numpy()[0] == 1.0
    z = x
    for _ in range(100_000):  # an unused deep graph is freed without overflowing the C stack
        z = z * 1.0
    del z


def test_constant_inputs_get_no_gradient(backend, monkeypatch):
    seen = []
    original = arith.mul_backward

    def spy(g, out, needs):
        seen.append(needs)
        grads = original(g, out, needs)
        assert all(gr is None for gr, need in zip(grads, needs) if not need)
        return grads

    monkeypatch.setattr(arith, "mul_backward", spy)
    x, w, c = f64([1.0, 2.0]), f64([3.0, 4.0]), f64([5.0, 6.0], requires_grad=False)
    (x * c).sum().backward()
    assert seen == [(True, False)]
    seen.clear()
    sg.grad((x * w).sum(), [x])  # pruned: w needs nothing when only x is asked for
    assert seen == [(True, False)] and w.grad is None


def test_grad_accumulates_across_backward_calls(backend):
    x = f64([1.0, 2.0])
    (x * 3.0).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0 + 2.0, 3.0 + 4.0])


def test_grad_function_does_not_touch_dot_grad(backend):
    x = f64([1.0, 2.0])
    (gx,) = sg.grad((x * x).sum(), [x])
    assert x.grad is None and np.allclose(gx.numpy(), [2.0, 4.0])
    x.grad = sg.Tensor([7.0, 7.0], dtype="float64")
    sg.grad((x * x).sum(), [x])
    np.testing.assert_array_equal(x.grad.numpy(), [7.0, 7.0])


def test_create_graph_gives_differentiable_gradients(backend):
    x = f64([0.5, -2.0, 3.0])
    (g1,) = sg.grad((x ** 3).sum(), [x], create_graph=True)
    np.testing.assert_allclose(g1.numpy(), 3 * x.numpy() ** 2)
    assert g1.requires_grad
    (g2,) = sg.grad(g1.sum(), [x])
    np.testing.assert_allclose(g2.numpy(), 6 * x.numpy())


def test_backward_create_graph_then_backward_again(backend):
    x = f64([1.5])
    y = (x * x * x).sum()
    y.backward(create_graph=True)
    g = x.grad
    x.grad = None
    g.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [6 * 1.5])


def test_ties_share_the_gradient(backend):
    x = f64([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    x.max(axis=1).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [[0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]])
    a, b = f64([1.0, 2.0]), f64([1.0, 0.0])
    ops.maximum(a, b).sum().backward()  # at a tie the gradient goes to the first operand
    np.testing.assert_array_equal(a.grad.numpy(), [1.0, 1.0])
    np.testing.assert_array_equal(b.grad.numpy(), [0.0, 0.0])


def test_wrong_rule_shape_is_an_internal_error(backend):
    def bad_backward(g, out, needs):
        return (ops.transpose(g),)

    x = f64(np.ones((2, 3)))
    y = make_result(x.data * 2.0, (x,), bad_backward)
    with pytest.raises(RuntimeError, match=r"internal error: gradient of shape \(3, 2\) for an input of shape"):
        y.sum().backward()
