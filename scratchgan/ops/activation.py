"""Activations, in numerically stable forms.

* ``sigmoid(x)``: two branches on ``e = exp(-|x|)``: ``1/(1+e)`` for x >= 0 and
  ``e/(1+e)`` for x < 0, so no exponential ever overflows.
* ``softplus(x) = log(1 + e^x) = max(x, 0) + log1p(exp(-|x|))``: finite for
  every finite x (the naive form overflows in float32 from x ~ 89).
* ``log_sigmoid(x) = -softplus(-x) = min(x, 0) - log1p(exp(-|x|))``.
"""

from __future__ import annotations

import numpy as np

from .. import backend
from ..accel import kernels, memory
from ..autograd.engine import is_grad_enabled, make_result, wrap_array
from ..autograd.tensor import Tensor
from .arith import mul, neg, sub


def tanh_backward(g, out, needs):
    # d tanh(a)/da = 1 - tanh(a)^2
    return (mul(g, sub(1.0, mul(out, out))),)


def tanh(a: Tensor) -> Tensor:
    """Elementwise hyperbolic tangent."""
    return make_result(backend.array_module(a.data).tanh(a.data), (a,), tanh_backward)


def _stable_sigmoid(xp, x):
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype, copy=False)


def sigmoid_backward(g, out, needs):
    # d sigma(a)/da = sigma(a) (1 - sigma(a))
    return (mul(g, mul(out, sub(1.0, out))),)


def sigmoid(a: Tensor) -> Tensor:
    """Elementwise logistic function ``1 / (1 + e^-a)``, stable for any finite input."""
    return make_result(_stable_sigmoid(backend.array_module(a.data), a.data), (a,), sigmoid_backward)


def softplus_backward(g, out, needs):
    # d softplus(a)/da = sigma(a)
    return (mul(g, sigmoid(out._parents[0])),)


def _stable_softplus(xp, x):
    """``log(1 + e^x)`` on an array as ``max(x, 0) + log1p(exp(-|x|))``; also the values of ``fused.mean_softplus``."""
    return xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x)))


def softplus(a: Tensor) -> Tensor:
    """Elementwise ``log(1 + e^a)``, computed as ``max(a, 0) + log1p(exp(-|a|))``."""
    return make_result(_stable_softplus(backend.array_module(a.data), a.data), (a,), softplus_backward)


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
    # a product with the 0/1 mask, not where(): NumPy's where is ~15x slower on large arrays
    x = out._parents[0].data
    if not is_grad_enabled():  # first-order: nothing to record, work on the arrays directly
        if backend.array_module(x) is not np:
            return (wrap_array(kernels.relu_grad(g.data, x)),)  # one fused kernel on the GPU
        if g.data.nbytes < memory.MIN_BYTES:  # small: skip the cache's bookkeeping
            return (wrap_array(g.data * (x > 0)),)
        return (wrap_array(np.multiply(g.data, x > 0, out=memory.empty_like(g.data))),)
    return (mul(g, x > 0),)


def relu(a: Tensor) -> Tensor:
    """Elementwise ``max(a, 0)``; the gradient at 0 is 0."""
    xp, x = backend.array_module(a.data), a.data
    data = xp.maximum(x, 0) if x.nbytes < memory.MIN_BYTES else xp.maximum(x, 0, out=memory.empty_like(x))
    return make_result(data, (a,), relu_backward)


def leaky_relu_backward(g, out, needs):
    a = out._parents[0]
    slope = out._ctx
    # the local slope as an array, 1 where a > 0 and `slope` elsewhere (cheaper than where())
    xp = backend.array_module(a.data)
    if xp is np:  # into a cached array of a's layout; an array also for 0-d inputs (a NumPy scalar otherwise)
        factor = np.greater(a.data, 0, out=memory.empty_like(a.data))
    else:
        factor = (a.data > 0).astype(a.dtype)
    factor *= 1.0 - slope
    factor += slope
    if not is_grad_enabled():  # first-order: the product into the temporary, one array less
        factor *= g.data
        return (wrap_array(factor),)
    return (mul(g, factor),)


def leaky_relu(a: Tensor, negative_slope: float = 0.01) -> Tensor:
    """Elementwise ``a`` for a > 0, ``negative_slope * a`` otherwise."""
    xp = backend.array_module(a.data)
    negative_slope = float(negative_slope)  # a Python float takes a's dtype (a NumPy float64 would promote float32)
    scaled = xp.multiply(a.data, negative_slope, out=memory.empty_like(a.data))  # an array also for 0-d inputs
    # max(a, s*a) is leaky_relu for 0 <= s <= 1 and avoids NumPy's slow where(); into the temporary
    data = xp.maximum(a.data, scaled, out=scaled) if 0.0 <= negative_slope <= 1.0 else xp.where(a.data > 0, a.data, scaled)
    return make_result(data, (a,), leaky_relu_backward, ctx=negative_slope)
