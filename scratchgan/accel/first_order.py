"""First-order backwards on raw arrays: the ops' rules when nobody will differentiate the gradient.

A plain ``backward()`` (``create_graph=False``) records nothing, so the
backward walk may call a faster function instead of the rule: each function
here is registered with ``register_backward(rule, fast, op=...)`` and so
becomes ``rule.fast`` (:mod:`scratchgan.autograd.fastpath`). It computes the
same gradients as the rule it stands for, on the arrays, without the op
plumbing (no ``make_result``, no operand checks), sometimes into arrays of
the cache (:mod:`scratchgan.accel.memory`) or with one fused CuPy kernel
(:mod:`scratchgan.accel.kernels`). For the cases it does not cover it calls
the rule itself. With ``create_graph=True`` or in reference mode the rule
runs, so double backprop always goes through the definition.

The op table (``tests/op_specs.py``, ``tests/test_ops.py``) compares each
with its rule: bit for bit where the arithmetic is the same, to a relative
1e-9 for batch norm, whose arithmetic here differs (the saved ``x_hat``, one
temporary).
"""

from __future__ import annotations

import numpy as np

from .. import backend
from ..autograd.engine import wrap_array
from ..autograd.fastpath import register_backward
from ..ops import activation, arith, fused, norm, shape
from . import kernels, memory


def matmul_backward(g, out, needs):
    """``g @ b^T`` and ``a^T @ g`` on the arrays, for 2-D operands (stacks and vectors: the rule)."""
    a, b = out._parents
    if a.ndim != 2 or b.ndim != 2:
        return arith.matmul_backward(g, out, needs)
    gd = g.data
    return (wrap_array(backend.matmul(gd, b.data.T)) if needs[0] else None,
            wrap_array(backend.matmul(a.data.T, gd)) if needs[1] else None)


def relu_backward(g, out, needs):
    """``g * (x > 0)``: one fused kernel on the GPU, into a cached array for a large one on the CPU."""
    x = out._parents[0].data
    if backend.array_module(x) is not np:
        return (wrap_array(kernels.relu_grad(g.data, x)),)
    if g.data.nbytes < memory.MIN_BYTES:  # small: skip the cache's bookkeeping
        return (wrap_array(g.data * (x > 0)),)
    return (wrap_array(np.multiply(g.data, x > 0, out=memory.empty_like(g.data))),)


def leaky_relu_backward(g, out, needs):
    """The local slopes (``activation.leaky_relu_slopes``' arithmetic) in a cached array, times ``g`` in place."""
    a = out._parents[0]
    slope = out._ctx
    if backend.array_module(a.data) is np:  # into a cached array of a's layout; an array also for 0-d inputs
        factor = np.greater(a.data, 0, out=memory.empty_like(a.data))
    else:
        factor = (a.data > 0).astype(a.dtype)
    factor *= 1.0 - slope
    factor += slope
    factor *= g.data  # the product into the temporary: one array less
    return (wrap_array(factor),)


def _linear_grads_of_arrays(gd, x, w, needs):
    """The gradients of ``x @ w (+ b)`` for the upstream array ``gd``: ``fused.linear_backward``'s products."""
    grads = (wrap_array(backend.matmul(gd, w.T)) if needs[0] else None,
             wrap_array(backend.matmul(x.T, gd)) if needs[1] else None)
    if len(needs) == 3:
        grads += ((wrap_array(gd.sum(axis=0)) if needs[2] else None),)
    return grads


def linear_backward(g, out, needs):
    """``fused.linear_backward`` on the arrays (a 2-D input; other ranks: the rule)."""
    x, w = out._parents[0], out._parents[1]
    if x.data.ndim != 2:
        return fused.linear_backward(g, out, needs)
    return _linear_grads_of_arrays(g.data, x.data, w.data, needs)


def linear_relu_backward(g, out, needs):
    """The masked upstream gradient (one fused kernel on the GPU), then the linear gradients on the arrays."""
    y = out.data
    g_pre = g.data * (y > 0) if y.__class__ is np.ndarray else kernels.relu_grad(g.data, y)
    return _linear_grads_of_arrays(g_pre, out._parents[0].data, out._parents[1].data, needs)


def mean_softplus_backward(g, out, needs):
    """``g / N * sigmoid(a)`` on the arrays, in the rule's order of operations."""
    a = out._parents[0]
    scale = 1.0 / a.data.size
    g_scaled = g.data * g.data.dtype.type(scale)  # a scalar argument: no host-to-device copy on CuPy
    return (wrap_array(g_scaled * activation.stable_sigmoid(backend.array_module(a.data), a.data)),)


def batch_norm_backward(g, out, needs):
    """``norm.batch_norm_backward``'s formula on the ``x_hat`` and ``r`` that the forward saved, in one temporary."""
    eps, x_hat, r, affine = out._ctx
    weight = out._parents[1].data if affine else None
    axes, shape_, m = norm.channel_layout(out._parents[0])
    g = g.data
    xp = backend.array_module(g)
    g_beta = g.sum(axis=axes)
    tmp = xp.multiply(g, x_hat, out=memory.empty_like(x_hat))
    g_gamma = tmp.sum(axis=axes)
    gx = None
    if needs[0]:
        scale = r if weight is None else r * weight.reshape(shape_)
        # (g - (x_hat * g_gamma + g_beta) / m) * scale, in the one temporary
        xp.multiply(x_hat, (g_gamma / m).reshape(shape_), out=tmp)
        tmp += (g_beta / m).reshape(shape_)
        xp.subtract(g, tmp, out=tmp)
        tmp *= scale
        gx = wrap_array(tmp)
    if weight is None:
        return (gx,)
    return (gx, wrap_array(g_gamma) if needs[1] else None, wrap_array(g_beta) if needs[2] else None)


def reshape_backward(g, out, needs):
    """The rule's gradient, given the input's memory layout back where the forward copied.

    A conv's channels-last output flattened in NCHW order is copied by the
    forward: its gradient in the input's layout lets the rules before it
    (activation, batch norm, the conv's weight gradient) read their operands
    in one order (3-8x faster than mixed layouts). Same values.
    """
    x = out._parents[0].data
    (gx,) = shape.reshape_backward(g, out, needs)
    if x.ndim > 2 and not x.flags.c_contiguous and gx.data.flags.c_contiguous:
        same_layout = backend.array_module(x).empty_like(x)  # order "K": the input's strides
        same_layout[...] = gx.data
        return (wrap_array(same_layout),)
    return (gx,)


register_backward(arith.matmul_backward, matmul_backward, op="matmul")
register_backward(activation.relu_backward, relu_backward, op="relu")
register_backward(activation.leaky_relu_backward, leaky_relu_backward, op="leaky_relu")
register_backward(fused.linear_backward, linear_backward, op="linear")
register_backward(fused.linear_relu_backward, linear_relu_backward, op="linear_relu")
register_backward(fused.mean_softplus_backward, mean_softplus_backward, op="mean_softplus")
register_backward(norm.batch_norm_backward, batch_norm_backward, op="batch_norm")
register_backward(shape.reshape_backward, reshape_backward, op="reshape")
