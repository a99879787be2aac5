"""Activations, in numerically stable forms.

* ``sigmoid(x)``: two branches on ``e = exp(-|x|)``: ``1/(1+e)`` for x >= 0 and
  ``e/(1+e)`` for x < 0, so no exponential ever overflows.
* ``softplus(x) = log(1 + e^x) = max(x, 0) + log1p(exp(-|x|))``: finite for
  every finite x (the naive form overflows in float32 from x ~ 89).
* ``log_sigmoid(x) = -softplus(-x) = min(x, 0) - log1p(exp(-|x|))``.

This file is the math only. The accelerations registered against it
(:mod:`scratchgan.autograd.fastpath`): ``relu`` and ``leaky_relu`` take large
outputs from the array cache (``scratchgan/accel/array_cache.py``), and their
plain first-order ``backward`` works on the raw arrays (one fused CuPy kernel
for ReLU's on the GPU; ``scratchgan/accel/first_order.py``).
``SCRATCHGAN_REFERENCE=1`` turns them off.
"""

from __future__ import annotations

from .. import backend
from ..autograd.engine import make_result
from ..autograd.fastpath import fast_or
from ..autograd.tensor import Tensor
from .arith import mul, neg, sub


def tanh_backward(g, out, needs):
    # d tanh(a)/da = 1 - tanh(a)^2
    return (mul(g, sub(1.0, mul(out, out))),)


def tanh(a: Tensor) -> Tensor:
    """Elementwise hyperbolic tangent."""
    return make_result(backend.array_module(a.data).tanh(a.data), (a,), tanh_backward)


def stable_sigmoid(xp, x):
    """``1 / (1 + e^-x)`` on an array, from ``e = exp(-|x|)``: ``1/(1+e)`` for x >= 0, ``e/(1+e)`` below."""
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype, copy=False)


def sigmoid_backward(g, out, needs):
    # d sigma(a)/da = sigma(a) (1 - sigma(a))
    return (mul(g, mul(out, sub(1.0, out))),)


def sigmoid(a: Tensor) -> Tensor:
    """Elementwise logistic function ``1 / (1 + e^-a)``, stable for any finite input."""
    return make_result(stable_sigmoid(backend.array_module(a.data), a.data), (a,), sigmoid_backward)


def softplus_backward(g, out, needs):
    # d softplus(a)/da = sigma(a)
    return (mul(g, sigmoid(out._parents[0])),)


def stable_softplus(xp, x):
    """``log(1 + e^x)`` on an array as ``max(x, 0) + log1p(exp(-|x|))``; also the values of ``fused.mean_softplus``."""
    return xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x)))


def softplus(a: Tensor) -> Tensor:
    """Elementwise ``log(1 + e^a)``, computed as ``max(a, 0) + log1p(exp(-|a|))``."""
    return make_result(stable_softplus(backend.array_module(a.data), a.data), (a,), softplus_backward)


def log_sigmoid_backward(g, out, needs):
    # d log sigma(a)/da = 1 - sigma(a) = sigma(-a)
    return (mul(g, sigmoid(neg(out._parents[0]))),)


def log_sigmoid(a: Tensor) -> Tensor:
    """Elementwise ``log(sigmoid(a))``, computed as ``min(a, 0) - log1p(exp(-|a|))``."""
    xp = backend.array_module(a.data)
    x = a.data
    data = xp.minimum(x, 0) - xp.log1p(xp.exp(-xp.abs(x)))
    return make_result(data, (a,), log_sigmoid_backward)


def relu_backward(g, out, needs):
    # d relu(a)/da = 1 where a > 0, else 0: a product with the 0/1 mask (NumPy's where is ~15x slower)
    return (mul(g, out._parents[0].data > 0),)


def relu_forward(x):
    """``max(x, 0)`` on an array."""
    return backend.array_module(x).maximum(x, 0)


def relu(a: Tensor) -> Tensor:
    """Elementwise ``max(a, 0)``; the gradient at 0 is 0."""
    return make_result(fast_or(relu_forward)(a.data), (a,), relu_backward)


def leaky_relu_slopes(x, negative_slope: float):
    """The local slope of leaky ReLU at ``x``: 1 where x > 0, ``negative_slope`` elsewhere (an array).

    Computed as ``(x > 0)(1 - s) + s`` (cheaper than ``where``); the first-order
    backward in ``scratchgan/accel/first_order.py`` does the same arithmetic.
    """
    slopes = (x > 0).astype(x.dtype)  # an array also for 0-d inputs (a NumPy scalar otherwise)
    slopes *= 1.0 - negative_slope
    slopes += negative_slope
    return slopes


def leaky_relu_backward(g, out, needs):
    # d leaky_relu(a)/da = 1 where a > 0, else the negative slope
    return (mul(g, leaky_relu_slopes(out._parents[0].data, out._ctx)),)


def leaky_relu_forward(x, negative_slope: float):
    """``x`` where x > 0, ``negative_slope * x`` elsewhere, on an array."""
    xp = backend.array_module(x)
    return xp.where(x > 0, x, xp.multiply(x, negative_slope))


def leaky_relu(a: Tensor, negative_slope: float = 0.01) -> Tensor:
    """Elementwise ``a`` for a > 0, ``negative_slope * a`` otherwise."""
    negative_slope = float(negative_slope)  # a Python float takes a's dtype (a NumPy float64 would promote float32)
    data = fast_or(leaky_relu_forward)(a.data, negative_slope)
    return make_result(data, (a,), leaky_relu_backward, ctx=negative_slope)
