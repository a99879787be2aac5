r"""Softmax and log-softmax over one axis, each one op with its own rule.

For logits :math:`x` along the axis, with :math:`m = \max_k x_k`:

.. math::

    \operatorname{log\_softmax}(x)_i = x_i - m - \log \sum_k e^{x_k - m}, \qquad
    \operatorname{softmax}(x)_i = \frac{e^{x_i - m}}{\sum_k e^{x_k - m}}.

Subtracting the maximum leaves the value unchanged (it cancels) but makes
every exponent :math:`\le 0` and the sum :math:`\ge 1`: no exponential
overflows and the logarithm never sees 0, for any finite logits in float32
or float64 (the naive :math:`\log(e^{x_i} / \sum_k e^{x_k})` is NaN from
:math:`x \approx 89` in float32). The shift is not part of the graph: the
rules below are the exact derivatives of the functions, which do not depend
on it.

Gradients, for an upstream gradient :math:`g` along the same axis
(:math:`p = \operatorname{softmax}(x)`):

.. math::

    \frac{\partial}{\partial x_j} \sum_i g_i \log p_i = g_j - p_j \sum_i g_i, \qquad
    \frac{\partial}{\partial x_j} \sum_i g_i p_i = p_j \Big(g_j - \sum_i g_i p_i\Big).

Both rules are written with differentiable ops on the op's own output
(:math:`p = e^{\log p}` for log-softmax), so they can be differentiated again
(second order: double backprop through a classifier loss). There is one
definition per derivative: no first-order shortcut on the raw arrays.

The softmax cross-entropy built on :func:`log_softmax` is
:func:`scratchgan.gan.losses.softmax_cross_entropy`.
"""

from __future__ import annotations

from .. import backend
from ..autograd.engine import make_result
from ..autograd.tensor import Tensor
from .arith import exp, mul, sub
from .reduce import sum as sum_

__all__ = ["log_softmax", "softmax"]


def _check(a, axis, op: str) -> int:
    """Validate the input and the axis; returns the axis as a non-negative int."""
    if not isinstance(a, Tensor):
        raise TypeError(f"{op}: expected a Tensor of logits, got {type(a).__name__}")
    if a.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating tensor (logits), got dtype {a.dtype}; "
                        "convert it with .float() or .double()")
    if a.ndim == 0:
        raise ValueError(f"{op}: the input is 0-d; it needs at least one axis to normalise over")
    if isinstance(axis, bool) or not isinstance(axis, int):
        raise TypeError(f"{op}: axis must be one int (as torch's dim), got {axis!r}")
    if not -a.ndim <= axis < a.ndim:
        raise ValueError(f"{op}: axis {axis} is out of range for a tensor of shape {a.shape} "
                         f"({a.ndim} dimensions)")
    return axis % a.ndim


def _shifted(x, axis: int):
    """``x - max(x, axis)``: every value <= 0 along the axis (a fresh array)."""
    return x - x.max(axis=axis, keepdims=True)


def log_softmax_backward(g, out, needs):
    # d/dx_j sum_i g_i log p_i = g_j - p_j sum_i g_i, with p = exp(out)
    axis = out._ctx
    return (sub(g, mul(exp(out), sum_(g, axis=axis, keepdims=True))),)


def log_softmax(a: Tensor, axis: int = -1) -> Tensor:
    r"""Log-softmax along ``axis``: :math:`x_i - m - \log\sum_k e^{x_k - m}`, :math:`m = \max_k x_k`.

    Parameters
    ----------
    a : Tensor
        Floating logits, at least 1-d.
    axis : int
        The axis to normalise over (default the last, as ``dim=-1``).

    Returns
    -------
    Tensor
        Same shape and dtype; ``exp`` of it sums to 1 along ``axis``. Finite
        for every finite input. Its gradient is :math:`g - p \sum_{axis} g`
        with :math:`p` the softmax, twice differentiable.

    Raises
    ------
    TypeError
        For a non-floating input or a non-integer axis.
    ValueError
        For a 0-d input or an axis out of range.
    """
    ax = _check(a, axis, "log_softmax")
    x = a.data
    if x.size == 0:
        return make_result(x.copy(), (a,), log_softmax_backward, ctx=ax)
    xp = backend.array_module(x)
    shifted = _shifted(x, ax)
    shifted -= xp.log(xp.exp(shifted).sum(axis=ax, keepdims=True))
    return make_result(shifted, (a,), log_softmax_backward, ctx=ax)


def softmax_backward(g, out, needs):
    # d/dx_j sum_i g_i p_i = p_j (g_j - sum_i g_i p_i)
    axis = out._ctx
    gp = mul(g, out)
    return (sub(gp, mul(out, sum_(gp, axis=axis, keepdims=True))),)


def softmax(a: Tensor, axis: int = -1) -> Tensor:
    r"""Softmax along ``axis``: :math:`e^{x_i - m} / \sum_k e^{x_k - m}`, :math:`m = \max_k x_k`.

    Parameters
    ----------
    a : Tensor
        Floating logits, at least 1-d.
    axis : int
        The axis to normalise over (default the last).

    Returns
    -------
    Tensor
        Probabilities in [0, 1] summing to 1 along ``axis`` (an entry far
        below the maximum underflows to exactly 0; use :func:`log_softmax`
        for its logarithm). Gradient :math:`p\,(g - \sum_{axis} g p)`, twice
        differentiable.

    Raises
    ------
    TypeError, ValueError
        As :func:`log_softmax`.
    """
    ax = _check(a, axis, "softmax")
    x = a.data
    if x.size == 0:
        return make_result(x.copy(), (a,), softmax_backward, ctx=ax)
    xp = backend.array_module(x)
    e = xp.exp(_shifted(x, ax))
    e /= e.sum(axis=ax, keepdims=True)
    return make_result(e, (a,), softmax_backward, ctx=ax)
