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

The rule writes this formula with differentiable ops, ``x_hat`` and ``r``
recomputed as functions of ``x``, so that double backprop goes through it.

Accelerations registered against this file
(:mod:`scratchgan.autograd.fastpath`): the forward's two large arrays come
from the array cache (``scratchgan/accel/array_cache.py``), and a plain
first-order ``backward`` evaluates the formula on the arrays ``x_hat`` and
``r`` that the forward saved, in one temporary
(``scratchgan/accel/first_order.py``; the op table compares it with the
rule to a relative 1e-9, as its arithmetic differs). ``SCRATCHGAN_REFERENCE=1``
turns them off.
"""

from __future__ import annotations

from .. import backend
from ..autograd.engine import binary_operands, make_result
from ..autograd.fastpath import fast_or
from ..autograd.tensor import Tensor
from .arith import add, mul, pow, sub
from .reduce import mean
from .reduce import sum as sum_
from .shape import reshape


def channel_layout(x):
    """The reduction axes (every axis but 1), the broadcast shape of a per-channel value, and m."""
    c = x.shape[1]
    return (0,) + tuple(range(2, x.ndim)), (1, c) + (1,) * (x.ndim - 2), x.size // c


def _standardize(x: Tensor, eps: float):
    """``x_hat`` and ``r`` as differentiable functions of ``x`` (the recorded path of the rule)."""
    axes, _, _ = channel_layout(x)
    xc = sub(x, mean(x, axis=axes, keepdims=True))
    r = pow(add(mean(mul(xc, xc), axis=axes, keepdims=True), eps), -0.5)
    return mul(xc, r), r


def batch_norm_backward(g, out, needs):
    x = out._parents[0]
    eps, _, _, affine = out._ctx  # the saved x_hat and r are the first-order backward's (accel/first_order.py)
    weight = out._parents[1] if affine else None
    axes, shape, m = channel_layout(x)
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


def batch_norm_forward(x, weight, bias, eps: float):
    """The forward on arrays: ``(y, x_hat, r, mu, var)``, the last four kept for the backward and the layer.

    ``mu`` and ``var`` (biased) and ``r = 1 / sqrt(var + eps)`` have the
    per-channel broadcast shape (1, C, 1, ...); ``weight`` and ``bias`` are
    arrays of shape (C,) or both None.
    """
    axes, shape, _ = channel_layout(x)
    mu = x.mean(axis=axes, keepdims=True)
    xc = x - mu
    var = (xc * xc).mean(axis=axes, keepdims=True)
    r = 1.0 / backend.array_module(x).sqrt(var + eps)
    x_hat = xc * r
    if weight is None:
        y = x_hat.copy()  # its own array: x_hat is saved for the backward
    else:
        y = x_hat * weight.reshape(shape) + bias.reshape(shape)
    return y, x_hat, r, mu, var


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
    if channel_layout(x)[2] < 2:
        raise ValueError(f"{op}: expected more than 1 value per channel, got input shape {x.shape}")
    y, x_hat, r, mu, var = fast_or(batch_norm_forward)(
        x.data, None if weight is None else weight.data, None if bias is None else bias.data, eps)
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
