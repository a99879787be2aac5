"""Elementwise arithmetic, matmul and selection ops, each next to its rule.

A rule ``name_backward(g, out, needs)`` returns one gradient per input of the
op, written with differentiable ops so that it can itself be differentiated.
``needs[i]`` says whether input ``i`` needs a gradient; a rule skips the work
for the others (constants). Gradients may have the broadcast shape: the
engine reduces them (see ``engine._unbroadcast``).

This file is the math only. Two accelerations are registered against it
(:mod:`scratchgan.autograd.fastpath`): the large same-shape outputs of
:func:`elementwise_forward` come from the array cache
(``scratchgan/accel/array_cache.py``), and a plain first-order ``backward``
of a 2-D ``matmul`` computes its two products on the raw arrays
(``scratchgan/accel/first_order.py``). ``SCRATCHGAN_REFERENCE=1`` turns both off.
"""

from __future__ import annotations

from .. import backend
from ..autograd.engine import binary_operands, make_result, wrap_array
from ..autograd.fastpath import fast_or
from ..autograd.tensor import Tensor
from .shape import reshape, swapaxes


def _broadcast_error(op: str, a: Tensor, b: Tensor) -> ValueError:
    return ValueError(f"{op}: shapes {a.shape} and {b.shape} cannot be broadcast together")


def elementwise_forward(ufunc_name: str, x, y):
    """The array module's ufunc ``ufunc_name`` (``"add"``, ``"multiply"``, ...) on two arrays, broadcasting."""
    return getattr(backend.array_module(x), ufunc_name)(x, y)


def _elementwise(op: str, ufunc_name: str, a, b, rule):
    a, b = binary_operands(a, b, op)
    try:
        data = fast_or(elementwise_forward)(ufunc_name, a.data, b.data)
    except ValueError:
        raise _broadcast_error(op, a, b) from None
    return make_result(data, (a, b), rule)


# --------------------------------------------------------------------------- add, sub, mul, div


def add_backward(g, out, needs):
    return g, g


def add(a, b) -> Tensor:
    """Elementwise ``a + b`` with broadcasting."""
    return _elementwise("add", "add", a, b, add_backward)


def sub_backward(g, out, needs):
    return g, (neg(g) if needs[1] else None)


def sub(a, b) -> Tensor:
    """Elementwise ``a - b`` with broadcasting."""
    return _elementwise("sub", "subtract", a, b, sub_backward)


def mul_backward(g, out, needs):
    a, b = out._parents
    return (mul(g, b) if needs[0] else None), (mul(g, a) if needs[1] else None)


def mul(a, b) -> Tensor:
    """Elementwise ``a * b`` with broadcasting."""
    return _elementwise("mul", "multiply", a, b, mul_backward)


def div_backward(g, out, needs):
    a, b = out._parents
    ga = div(g, b) if needs[0] else None
    # d(a/b)/db = -a / b^2
    gb = neg(div(mul(g, a), mul(b, b))) if needs[1] else None
    return ga, gb


def div(a, b) -> Tensor:
    """Elementwise ``a / b`` with broadcasting."""
    return _elementwise("div", "true_divide", a, b, div_backward)


def neg_backward(g, out, needs):
    return (neg(g),)


def neg(a: Tensor) -> Tensor:
    """Elementwise ``-a``."""
    return make_result(-a.data, (a,), neg_backward)


# --------------------------------------------------------------------------- pow


def pow_scalar_backward(g, out, needs):
    (a,) = out._parents
    p = out._ctx
    # d(a^p)/da = p a^(p-1)
    return (mul(g, mul(pow(a, p - 1), p)),)


def pow_backward(g, out, needs):
    a, b = out._parents
    # d(a^b)/da = b a^(b-1);  d(a^b)/db = a^b log(a)
    ga = mul(g, mul(b, pow(a, sub(b, 1)))) if needs[0] else None
    gb = mul(g, mul(out, log(a))) if needs[1] else None
    return ga, gb


def pow(a, b) -> Tensor:  # noqa: A001 - mirrors torch.pow
    """Elementwise ``a ** b``; ``b`` a Python number or a Tensor.

    With a tensor exponent the gradient with respect to ``b`` needs
    ``log(a)``, so ``a`` must be positive there.
    """
    if isinstance(b, (int, float)) and isinstance(a, Tensor):
        if isinstance(b, float):
            b = float(b)  # a NumPy float64 exponent would turn float32 data into float64
        return make_result(a.data ** b, (a,), pow_scalar_backward, ctx=b)
    return _elementwise("pow", "power", a, b, pow_backward)


# --------------------------------------------------------------------------- matmul


def matmul_backward(g, out, needs):
    # d(a @ b)/da = g @ b^T;  d(a @ b)/db = a^T @ g  (on the last two axes)
    a, b = out._parents
    ga = matmul(g, swapaxes(b, -1, -2)) if needs[0] else None
    gb = matmul(swapaxes(a, -1, -2), g) if needs[1] else None
    return ga, gb


def matmul(a, b) -> Tensor:
    """Matrix product ``a @ b``.

    Inputs are 2-D or stacks of matrices (leading axes broadcast); a 1-D
    input is treated as a row (left) or column (right) vector, as in NumPy.
    """
    a, b = binary_operands(a, b, "matmul")
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: inputs must not be 0-d, got shapes {a.shape} and {b.shape}; use mul for scalars")
    inner = b.shape[-2] if b.ndim > 1 else b.shape[0]  # the axis of b that meets a's last axis
    if a.shape[-1] != inner:
        raise ValueError(
            f"matmul: shapes {a.shape} and {b.shape} are not aligned: "
            f"{a.shape[-1]} (last axis of the first) != {inner} "
            f"({'second-to-last' if b.ndim > 1 else 'only'} axis of the second)"
        )
    if a.ndim == 1:  # a row vector; vector @ vector is 0-d
        return reshape(matmul(reshape(a, (1, a.shape[0])), b), b.shape[:-2] + b.shape[-1:] if b.ndim > 1 else ())
    if b.ndim == 1:
        return reshape(matmul(a, reshape(b, (b.shape[0], 1))), a.shape[:-1])
    try:
        data = backend.matmul(a.data, b.data)  # any rank; capturable (see backend.matmul)
    except ValueError:
        raise ValueError(f"matmul: batch shapes of {a.shape} and {b.shape} cannot be broadcast together") from None
    return make_result(data, (a, b), matmul_backward)


# --------------------------------------------------------------------------- unary math


def exp_backward(g, out, needs):
    return (mul(g, out),)


def exp(a: Tensor) -> Tensor:
    """Elementwise ``e ** a``."""
    return make_result(backend.array_module(a.data).exp(a.data), (a,), exp_backward)


def log_backward(g, out, needs):
    return (div(g, out._parents[0]),)


def log(a: Tensor) -> Tensor:
    """Elementwise natural logarithm."""
    return make_result(backend.array_module(a.data).log(a.data), (a,), log_backward)


def sqrt_backward(g, out, needs):
    # d sqrt(a)/da = 1 / (2 sqrt(a))
    return (div(g, mul(out, 2.0)),)


def sqrt(a: Tensor) -> Tensor:
    """Elementwise square root."""
    return make_result(backend.array_module(a.data).sqrt(a.data), (a,), sqrt_backward)


def abs_backward(g, out, needs):
    a = out._parents[0]
    return (mul(g, backend.array_module(a.data).sign(a.data)),)


def abs(a: Tensor) -> Tensor:  # noqa: A001 - mirrors torch.abs
    """Elementwise absolute value (gradient ``sign(a)``, 0 at 0)."""
    return make_result(backend.array_module(a.data).abs(a.data), (a,), abs_backward)


# --------------------------------------------------------------------------- selection


def where_backward(g, out, needs):
    cond = out._ctx
    return (where(cond, g, 0.0) if needs[0] else None), (where(cond, 0.0, g) if needs[1] else None)


def where(condition, a, b) -> Tensor:
    """Elementwise ``a`` where ``condition`` holds, else ``b`` (broadcasting).

    ``condition`` is a boolean array or Tensor and carries no gradient.
    """
    cond = condition.data if isinstance(condition, Tensor) else condition
    a, b = binary_operands(a, b, "where")
    xp = backend.array_module(a.data)
    cond = xp.asarray(cond)
    if cond.dtype.kind != "b":
        raise TypeError(f"where: condition must be boolean, got dtype {cond.dtype}")
    try:
        data = xp.where(cond, a.data, b.data)
    except ValueError:
        raise ValueError(
            f"where: shapes {cond.shape} (condition), {a.shape} and {b.shape} cannot be broadcast together"
        ) from None
    return make_result(data, (a, b), where_backward, ctx=cond)


def maximum(a, b) -> Tensor:
    """Elementwise maximum; at ties the gradient goes to ``a``."""
    a, b = binary_operands(a, b, "maximum")
    return where(a.data >= b.data, a, b)


def minimum(a, b) -> Tensor:
    """Elementwise minimum; at ties the gradient goes to ``a``."""
    a, b = binary_operands(a, b, "minimum")
    return where(a.data <= b.data, a, b)


def clip_backward(g, out, needs):
    a = out._parents[0]
    low, high = out._ctx
    inside = True
    if low is not None:
        inside = a.data >= low
    if high is not None:
        inside = inside & (a.data <= high)
    return (where(inside, g, 0.0),)


def clip(a: Tensor, min=None, max=None) -> Tensor:  # noqa: A002 - torch.clamp's names
    """Clamp values to ``[min, max]``; the gradient is zero outside."""
    if min is None and max is None:
        raise ValueError("clip: give at least one of min and max")
    if min is not None and max is not None and min > max:
        raise ValueError(f"clip: min ({min}) is greater than max ({max})")
    # bounds act as Python floats, which take the tensor's dtype (a NumPy float64 would promote float32 data)
    min = float(min) if isinstance(min, float) else min  # noqa: A001
    max = float(max) if isinstance(max, float) else max  # noqa: A001
    data = backend.array_module(a.data).clip(a.data, min, max)
    return make_result(data, (a,), clip_backward, ctx=(min, max))


# --------------------------------------------------------------------------- comparisons (no gradient)


def _compare(ufunc_name: str, a, b) -> Tensor:
    a, b = binary_operands(a, b, ufunc_name)
    try:
        return wrap_array(getattr(backend.array_module(a.data), ufunc_name)(a.data, b.data))
    except ValueError:
        raise _broadcast_error(ufunc_name, a, b) from None


def lt(a, b) -> Tensor:
    return _compare("less", a, b)


def le(a, b) -> Tensor:
    return _compare("less_equal", a, b)


def gt(a, b) -> Tensor:
    return _compare("greater", a, b)


def ge(a, b) -> Tensor:
    return _compare("greater_equal", a, b)


def eq(a, b) -> Tensor:
    return _compare("equal", a, b)


def ne(a, b) -> Tensor:
    return _compare("not_equal", a, b)


