"""Op forwards whose large outputs come from the array cache (:mod:`scratchgan.accel.memory`).

Each function computes what the definition in :mod:`scratchgan.ops` it is
registered against computes (``register_forward``, see
:mod:`scratchgan.autograd.fastpath`), with the same NumPy calls, but writes
into arrays that :func:`memory.empty_like` hands out: on the CPU a training
step then gets the memory of the last step back instead of paying the
kernel's page faults for it. On CuPy, ``memory.empty_like`` is CuPy's own
``empty_like`` (its memory pool does this already). The op table checks each
against its definition, with the cache on for every size
(``tests/test_ops.py``).
"""

from __future__ import annotations

import numpy as np

from .. import backend
from ..autograd.fastpath import register_forward
from ..ops import activation, arith, norm
from . import memory


def elementwise_forward(ufunc_name: str, x, y):
    """``arith.elementwise_forward`` into a cached array, for large same-shape float operands on the CPU.

    Same shape covers gradient sums and most products; a broadcast or mixed
    operand pair takes the definition.
    """
    if (backend.array_module(x) is np and x.nbytes >= memory.MIN_BYTES and x.shape == y.shape
            and x.dtype == y.dtype and x.dtype.kind == "f"):
        return getattr(np, ufunc_name)(x, y, out=memory.empty_like(x))
    return arith.elementwise_forward(ufunc_name, x, y)


def relu_forward(x):
    """``activation.relu_forward`` into a cached array of ``x``'s layout, for a large ``x``."""
    if x.nbytes < memory.MIN_BYTES:  # small: skip the cache's bookkeeping
        return activation.relu_forward(x)
    return backend.array_module(x).maximum(x, 0, out=memory.empty_like(x))


def leaky_relu_forward(x, negative_slope: float):
    """``activation.leaky_relu_forward``: ``s * x`` into a cached array, then ``max(x, s x)`` in place.

    ``max(x, s x)`` is leaky ReLU for ``0 <= s <= 1`` and avoids NumPy's
    slow ``where`` (the definition's form, kept for other slopes).
    """
    xp = backend.array_module(x)
    scaled = xp.multiply(x, negative_slope, out=memory.empty_like(x))  # an array also for 0-d inputs
    if 0.0 <= negative_slope <= 1.0:
        return xp.maximum(x, scaled, out=scaled)
    return xp.where(x > 0, x, scaled)


def batch_norm_forward(x, weight, bias, eps: float):
    """``norm.batch_norm_forward`` with its two large arrays (``x_hat`` and ``y``) from the cache.

    ``y`` holds ``(x - mu)^2`` for the variance first, then the output.
    """
    axes, shape, _ = norm.channel_layout(x)
    xp = backend.array_module(x)
    mu = x.mean(axis=axes, keepdims=True)
    x_hat = xp.subtract(x, mu, out=memory.empty_like(x))
    y = xp.multiply(x_hat, x_hat, out=memory.empty_like(x_hat))
    var = y.mean(axis=axes, keepdims=True)
    r = 1.0 / xp.sqrt(var + eps)
    x_hat *= r
    if weight is None:
        y[...] = x_hat
    else:
        xp.multiply(x_hat, weight.reshape(shape), out=y)
        y += bias.reshape(shape)
    return y, x_hat, r, mu, var


register_forward(arith.elementwise_forward, elementwise_forward, op="add/sub/mul/div/pow")
register_forward(activation.relu_forward, relu_forward, op="relu")
register_forward(activation.leaky_relu_forward, leaky_relu_forward, op="leaky_relu")
register_forward(norm.batch_norm_forward, batch_norm_forward, op="batch_norm")
