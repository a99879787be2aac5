"""Batch normalization in training mode as one op, next to its rule.

For an input ``x`` with channels on axis 1 and ``m`` values per channel (all
other axes), per channel ``c``:

.. math::

    \\mu_c = \\frac{1}{m} \\sum x, \\quad
    \\sigma_c^2 = \\frac{1}{m} \\sum (x - \\mu_c)^2, \\quad
    \\hat x = (x - \\mu_c) \\, r_c, \\quad r_c = (\\sigma_c^2 + \\epsilon)^{-1/2}, \\quad
    y = \\gamma_c \\hat x + \\beta_c

The same values as the chain of elementary ops (mean, sub, mul, mean, pow,
mul, mul, add) with two temporaries instead of about ten and one graph node
instead of eight: batch norm sits after every hidden layer of a DCGAN, so its
arithmetic is a large share of the step's elementwise work.

Gradient (for an upstream ``g``; sums over the ``m`` values of a channel):

.. math::

    \\frac{\\partial L}{\\partial \\beta_c} = \\sum g, \\quad
    \\frac{\\partial L}{\\partial \\gamma_c} = \\sum g \\hat x, \\quad
    \\frac{\\partial L}{\\partial x} = \\gamma_c r_c \\Big(g - \\frac{1}{m}\\Big(\\hat x
        \\frac{\\partial L}{\\partial \\gamma_c} + \\frac{\\partial L}{\\partial \\beta_c}\\Big)\\Big)

A plain ``backward`` computes it on the arrays saved by the forward
(``x_hat`` and ``r``); with ``create_graph=True`` the same formula is written
with differentiable ops, ``x_hat`` and ``r`` recomputed as functions of
``x``, so that double backprop goes through it (the op table compares the
two paths).
"""

from __future__ import annotations

from .. import backend
from ..accel import memory
from ..autograd.engine import binary_operands, is_grad_enabled, make_result, wrap_array
from ..autograd.tensor import Tensor
from .arith import add, mul, pow, sub
from .reduce import mean
from .reduce import sum as sum_
from .shape import reshape


def _layout(x):
    """The reduction axes (every axis but 1), the broadcast shape of a per-channel value, and m."""
    c = x.shape[1]
    return (0,) + tuple(range(2, x.ndim)), (1, c) + (1,) * (x.ndim - 2), x.size // c


def _standardize(x: Tensor, eps: float):
    """``x_hat`` and ``r`` as differentiable functions of ``x`` (the recorded path of the rule)."""
    axes, _, _ = _layout(x)
    xc = sub(x, mean(x, axis=axes, keepdims=True))
    r = pow(add(mean(mul(xc, xc), axis=axes, keepdims=True), eps), -0.5)
    return mul(xc, r), r


def batch_norm_backward(g, out, needs):
    x = out._parents[0]
    eps, x_hat, r, affine = out._ctx
    weight = out._parents[1] if affine else None
    axes, shape, m = _layout(x)
    if not is_grad_enabled():  # a first-order backward: the formula on the saved arrays, nothing recorded
        return _grads_of_arrays(g.data, x_hat, r, None if weight is None else weight.data, axes, shape, m, needs)
    x_hat, r = _standardize(x, eps)
    g_beta = sum_(g, axis=axes)
    g_gamma = sum_(mul(g, x_hat), axis=axes)
    gx = None
    if needs[0]:
        scale = r if weight is None else mul(r, reshape(weight, shape))
        mean_part = add(mul(x_hat, reshape(g_gamma, shape)), reshape(g_beta, shape))
        gx = mul(sub(g, mul(mean_part, 1.0 / m)), scale)
    if not affine:
        return (gx,)
    return gx, (g_gamma if needs[1] else None), (g_beta if needs[2] else None)


def _grads_of_arrays(g, x_hat, r, weight, axes, shape, m, needs):
    xp = backend.array_module(g)
    g_beta = g.sum(axis=axes)
    tmp = xp.multiply(g, x_hat, out=memory.empty_like(x_hat))
    g_gamma = tmp.sum(axis=axes)
    gx = None
    if needs[0]:
        scale = r if weight is None else r * weight.reshape(shape)
        # (g - (x_hat * g_gamma + g_beta) / m) * scale, in the one temporary
        xp.multiply(x_hat, (g_gamma / m).reshape(shape), out=tmp)
        tmp += (g_beta / m).reshape(shape)
        xp.subtract(g, tmp, out=tmp)
        tmp *= scale
        gx = wrap_array(tmp)
    if weight is None:
        return (gx,)
    return (gx, wrap_array(g_gamma) if needs[1] else None, wrap_array(g_beta) if needs[2] else None)


def batch_norm_with_stats(x, weight=None, bias=None, eps: float = 1e-5):
    """:func:`batch_norm` and the batch statistics it used: ``(y, mean, var)``.

    ``mean`` and ``var`` are plain arrays of shape (C,), ``var`` the biased
    variance; ``nn.BatchNorm*d`` updates its running statistics with them.
    """
    op = "batch_norm"
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected a Tensor input, got {type(x).__name__}")
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: expected a float32 or float64 input, got dtype {x.dtype}")
    if x.ndim < 2:
        raise ValueError(f"{op}: expected an input of shape (N, C, ...), got shape {x.shape}")
    c = x.shape[1]
    if (weight is None) != (bias is None):
        raise ValueError(f"{op}: give both weight and bias (an affine batch norm) or neither")
    parents = (x,)
    if weight is not None:
        _, weight = binary_operands(x, weight, op)
        _, bias = binary_operands(x, bias, op)
        if weight.shape != (c,) or bias.shape != (c,):
            raise ValueError(f"{op}: weight and bias must have shape ({c},) for an input of shape {x.shape}, "
                             f"got {weight.shape} and {bias.shape}")
        parents = (x, weight, bias)
    axes, shape, m = _layout(x)
    if m < 2:
        raise ValueError(f"{op}: expected more than 1 value per channel, got input shape {x.shape}")
    xp = backend.array_module(x.data)
    mu = x.data.mean(axis=axes, keepdims=True)
    x_hat = xp.subtract(x.data, mu, out=memory.empty_like(x.data))
    y = xp.multiply(x_hat, x_hat, out=memory.empty_like(x_hat))
    var = y.mean(axis=axes, keepdims=True)
    r = 1.0 / xp.sqrt(var + eps)
    x_hat *= r
    if weight is None:
        y[...] = x_hat
    else:
        xp.multiply(x_hat, weight.data.reshape(shape), out=y)
        y += bias.data.reshape(shape)
    out = make_result(y, parents, batch_norm_backward, ctx=(float(eps), x_hat, r, weight is not None))
    return out, mu.reshape(c), var.reshape(c)


def batch_norm(x, weight=None, bias=None, eps: float = 1e-5) -> Tensor:
    """Batch normalization with the batch's own statistics (training mode), per channel (axis 1).

    ``y = (x - mean) / sqrt(var + eps) * weight + bias``, mean and biased
    variance over every axis but 1 (see the module docstring for the math and
    the gradient). Running statistics are the layer's business
    (``nn.BatchNorm1d`` / ``nn.BatchNorm2d``).

    Parameters
    ----------
    x : Tensor
        (N, C) or (N, C, ...), float32 or float64, at least 2 values per channel.
    weight, bias : Tensor, optional
        Shape (C,); both or neither.
    eps : float

    Returns
    -------
    Tensor
        The shape of ``x``.
    """
    return batch_norm_with_stats(x, weight, bias, eps)[0]
