"""The public checkers: they pass on correct rules, raise on wrong ones, refuse float32."""

from __future__ import annotations

import re

import numpy as np
import pytest

import scratchgan as sg
from scratchgan import ops
from scratchgan.ops.arith import mul
from scratchgan.autograd.engine import make_result


def f64(values, requires_grad=True):
    return sg.Tensor(values, dtype="float64", requires_grad=requires_grad)


def cube_wrong_backward(g, out, needs):  # should be 3 a^2
    (a,) = out._parents
    return (mul(g, mul(a, a)),)


def cube_wrong(a):
    return make_result(a.data ** 3, (a,), cube_wrong_backward)


def square_wrong_second_backward(g, out, needs):
    # right value 2a, but built from a constant: its own derivative is lost
    (a,) = out._parents
    return (mul(g, sg.Tensor(2 * a.data, dtype=a.dtype)),)


def square_wrong_second(a):
    return make_result(a.data ** 2, (a,), square_wrong_second_backward)


def test_pass_on_correct_functions():
    rng = np.random.default_rng(0)
    x, w = f64(rng.standard_normal((3, 4))), f64(rng.standard_normal((4, 2)))
    fn = lambda x, w: ops.softplus(ops.matmul(ops.tanh(x), w)).sum(axis=0)  # noqa: E731
    assert sg.gradcheck(fn, [x, w])
    assert sg.gradgradcheck(fn, [x, w])


def test_multiple_outputs_and_constant_inputs():
    x, c = f64([0.3, -0.7]), f64([2.0, 3.0], requires_grad=False)
    assert sg.gradcheck(lambda x, c: (x * c, x.exp()), [x, c])
    assert sg.gradgradcheck(lambda x, c: (x * x * c, x.sigmoid()), [x, c])


def test_wrong_rule_raises_naming_input_index_and_values():
    x = f64([[0.5, -1.0], [2.0, 1.5]])
    c = f64([1.0])
    with pytest.raises(sg.GradcheckError) as info:
        sg.gradcheck(lambda c, x: cube_wrong(x) * c, [c, x])
    message = str(info.value)
    assert "input 1 (shape (2, 2)) at index (0, 0)" in message
    assert "analytic" in message and "numerical" in message
    # both values are in the message: 0.25 v vs 0.75 v for the same projection v
    analytic, numerical = (float(v) for v in re.findall(r"analytic (\S+) vs numerical (\S+) ", message)[0])
    assert np.isclose(numerical, 3 * analytic, rtol=1e-5)


def test_first_order_correct_but_second_order_wrong():
    x = f64([0.5, -1.0, 2.0])
    assert sg.gradcheck(square_wrong_second, [x])
    with pytest.raises(sg.GradcheckError, match=r"gradient mismatch for input 0 \(shape \(3,\)\) at index \(0,\)"):
        sg.gradgradcheck(square_wrong_second, [x])


def test_refuses_float32():
    x = sg.Tensor([1.0, 2.0], requires_grad=True)
    for check in (sg.gradcheck, sg.gradgradcheck):
        with pytest.raises(TypeError, match=r"input 0 has dtype float32; finite differences need float64"):
            check(lambda x: x * x, [x])


def test_refuses_no_differentiable_input_and_non_leaves():
    with pytest.raises(ValueError, match=r"no input requires grad"):
        sg.gradcheck(lambda x: x * x, [f64([1.0], requires_grad=False)])
    with pytest.raises(ValueError, match=r"not a leaf"):
        sg.gradcheck(lambda x: x * x, [f64([1.0]) * 2.0])


def test_inputs_restored_after_check():
    x = f64([0.25, -0.5])
    before = x.numpy().copy()
    with pytest.raises(sg.GradcheckError):
        sg.gradcheck(cube_wrong, [x])
    np.testing.assert_array_equal(x.numpy(), before)
    assert x.grad is None
