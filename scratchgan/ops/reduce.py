"""Reductions: sum, mean, max, min over an axis (or all axes)."""

from __future__ import annotations

from ..autograd.engine import make_result
from ..autograd.tensor import Tensor
from .arith import div, mul
from .shape import broadcast_to, reshape


def _normalize_axis(axis, ndim: int, op: str) -> tuple:
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    out = []
    for ax in axes:
        if not -ndim <= ax < ndim:
            raise ValueError(f"{op}: axis {ax} is out of range for a tensor with {ndim} dimensions")
        out.append(ax % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: repeated axis in {axis}")
    return tuple(sorted(out))


def _keepdims_shape(shape: tuple, axes: tuple) -> tuple:
    return tuple(1 if i in axes else s for i, s in enumerate(shape))


def _expand_to_input(g: Tensor, in_shape: tuple, axes: tuple, keepdims: bool) -> Tensor:
    """Give a reduced gradient back the input's shape (reshape, then broadcast)."""
    if not keepdims:
        g = reshape(g, _keepdims_shape(in_shape, axes))
    return broadcast_to(g, in_shape)


def sum_backward(g, out, needs):
    axes, keepdims = out._ctx
    return (_expand_to_input(g, out._parents[0].shape, axes, keepdims),)


def sum(a: Tensor, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001 - mirrors torch.sum
    """Sum over ``axis`` (an int, a tuple, or None for all)."""
    axes = _normalize_axis(axis, a.ndim, "sum")
    data = a.data.sum(axis=axes, keepdims=keepdims)
    return make_result(data, (a,), sum_backward, ctx=(axes, keepdims))


def mean(a: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    """Mean over ``axis``; ``sum / count`` (the mean of no elements is NaN, as in NumPy)."""
    axes = _normalize_axis(axis, a.ndim, "mean")
    count = 1
    for ax in axes:
        count *= a.shape[ax]
    total = sum(a, axis=axes, keepdims=keepdims)
    if count == 0:
        return div(total, 0.0)
    return mul(total, 1.0 / count)


def _extremum_backward(g, out, needs):
    axes, keepdims = out._ctx
    a = out._parents[0]
    peak = out.data if keepdims else out.data.reshape(_keepdims_shape(a.shape, axes))
    hits = a.data == peak
    # ties share the gradient equally
    share = (hits / hits.sum(axis=axes, keepdims=True)).astype(a.dtype, copy=False)
    return (mul(_expand_to_input(g, a.shape, axes, keepdims), share),)


def max_backward(g, out, needs):
    return _extremum_backward(g, out, needs)


def min_backward(g, out, needs):
    return _extremum_backward(g, out, needs)


def _extremum(a: Tensor, axis, keepdims: bool, op: str, rule) -> Tensor:
    axes = _normalize_axis(axis, a.ndim, op)
    if a.size == 0:
        raise ValueError(f"{op}: cannot reduce an empty tensor of shape {a.shape}")
    data = getattr(a.data, op)(axis=axes, keepdims=keepdims)
    return make_result(data, (a,), rule, ctx=(axes, keepdims))


def max(a: Tensor, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Maximum over ``axis``; tied maxima share the gradient equally."""
    return _extremum(a, axis, keepdims, "max", max_backward)


def min(a: Tensor, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Minimum over ``axis``; tied minima share the gradient equally."""
    return _extremum(a, axis, keepdims, "min", min_backward)
