"""Shape ops: reshape, transpose, broadcast, concatenate, indexing, casts."""

from __future__ import annotations

import numpy as np

from .. import backend
from ..engine import is_grad_enabled, make_result, wrap_array
from ..tensor import Tensor


def reshape_backward(g, out, needs):
    x = out._parents[0].data
    gx = reshape(g, x.shape)
    if not is_grad_enabled() and x.ndim > 2 and not x.flags.c_contiguous and gx.data.flags.c_contiguous:
        # the forward copied (a conv's channels-last output flattened in NCHW order): the gradient gets the
        # input's memory layout back, so that the rules before it (activation, batch norm, the conv's
        # weight gradient) read their operands in the same order (3-8x faster than mixed layouts)
        same_layout = backend.array_module(x).empty_like(x)  # order "K": the input's strides
        same_layout[...] = gx.data
        return (wrap_array(same_layout),)
    return (gx,)


def reshape(a: Tensor, shape) -> Tensor:
    """Same values in a new shape (one entry may be -1)."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    try:
        data = a.data.reshape(shape)
    except ValueError:
        raise ValueError(f"reshape: cannot reshape a tensor of shape {a.shape} ({a.size} elements) into {shape}") from None
    return make_result(data, (a,), reshape_backward)


def transpose_backward(g, out, needs):
    return (transpose(g, tuple(np.argsort(out._ctx))),)


def transpose(a: Tensor, axes=None) -> Tensor:
    """Permute the axes (reverse them when ``axes`` is None)."""
    axes = tuple(range(a.ndim))[::-1] if axes is None else tuple(int(ax) % max(a.ndim, 1) for ax in axes)
    if sorted(axes) != list(range(a.ndim)):
        raise ValueError(f"transpose: axes {axes} are not a permutation of the {a.ndim} axes of shape {a.shape}")
    return make_result(a.data.transpose(axes), (a,), transpose_backward, ctx=axes)


def swapaxes(a: Tensor, axis1: int, axis2: int) -> Tensor:
    """Exchange two axes."""
    axes = list(range(a.ndim))
    axes[axis1], axes[axis2] = axes[axis2], axes[axis1]
    return transpose(a, axes)


def broadcast_to_backward(g, out, needs):
    return (g,)  # the engine sums g back to the input's shape


def broadcast_to(a: Tensor, shape) -> Tensor:
    """A read-only broadcast view of ``a`` with ``shape``."""
    shape = tuple(shape)
    if a.shape == shape:
        return a
    try:
        data = backend.array_module(a.data).broadcast_to(a.data, shape)
    except ValueError:
        raise ValueError(f"broadcast_to: cannot broadcast shape {a.shape} to {shape}") from None
    return make_result(data, (a,), broadcast_to_backward)


def concatenate_backward(g, out, needs):
    axis, sizes = out._ctx
    grads, start = [], 0
    for size, need in zip(sizes, needs):
        if need:
            index = (slice(None),) * axis + (slice(start, start + size),)
            grads.append(getitem(g, index))
        else:
            grads.append(None)
        start += size
    return tuple(grads)


def concatenate(tensors, axis: int = 0) -> Tensor:
    """Join tensors along an existing axis."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("concatenate: need at least one tensor")
    first = tensors[0]
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"concatenate: item {i} is a {type(t).__name__}, not a Tensor")
        backend.check_same_backend(first.data, t.data, "concatenate")
        if t.dtype != first.dtype:
            raise TypeError(f"concatenate: item {i} has dtype {t.dtype}, item 0 has {first.dtype}")
    ndim = first.ndim
    if ndim == 0:
        raise ValueError("concatenate: 0-d tensors cannot be concatenated")
    axis = axis % ndim
    for i, t in enumerate(tensors):
        if t.ndim != ndim or t.shape[:axis] + t.shape[axis + 1:] != first.shape[:axis] + first.shape[axis + 1:]:
            raise ValueError(f"concatenate: item {i} has shape {t.shape}, which does not fit item 0's {first.shape} along axis {axis}")
    data = backend.array_module(first.data).concatenate([t.data for t in tensors], axis=axis)
    return make_result(data, tuple(tensors), concatenate_backward, ctx=(axis, [t.shape[axis] for t in tensors]))


def _is_basic_index(index) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return all(isinstance(i, (int, slice)) or i is None or i is Ellipsis for i in items)


def _normalize_index(index, xp):
    """Turn Tensors and lists inside an index into backend integer arrays."""
    def convert(i):
        if isinstance(i, Tensor):
            i = i.data
        if isinstance(i, (list, np.ndarray)) or (hasattr(i, "dtype") and not isinstance(i, (int, np.integer))):
            arr = xp.asarray(i)
            if arr.dtype.kind not in "iub":
                raise TypeError(f"index arrays must be integer or boolean, got dtype {arr.dtype}")
            return arr
        return i
    return tuple(convert(i) for i in index) if isinstance(index, tuple) else convert(index)


def getitem_backward(g, out, needs):
    return (index_add_zeros(g, out._ctx, out._parents[0].shape),)


def getitem(a: Tensor, index) -> Tensor:
    """``a[index]``: basic slices, integers, None, Ellipsis and integer arrays."""
    index = _normalize_index(index, backend.array_module(a.data))
    try:
        data = a.data[index]
    except IndexError as exc:
        raise IndexError(f"index {index!r} is invalid for a tensor of shape {a.shape}: {exc}") from None
    return make_result(data, (a,), getitem_backward, ctx=index)


def index_add_zeros_backward(g, out, needs):
    return (getitem(g, out._ctx[0]),)


def index_add_zeros(values: Tensor, index, shape) -> Tensor:
    """Zeros of ``shape`` with ``values`` added at ``index`` (repeats add up).

    The adjoint of ``getitem``; its own gradient is ``getitem``, which is what
    makes indexing twice differentiable.
    """
    xp = backend.array_module(values.data)
    data = xp.zeros(shape, dtype=values.dtype)
    if _is_basic_index(index):
        data[index] = values.data  # a basic index never repeats an element
    else:
        backend.scatter_add(xp, data, index, values.data)
    return make_result(data, (values,), index_add_zeros_backward, ctx=(index, shape))


def astype_backward(g, out, needs):
    return (astype(g, out._parents[0].dtype),)


def astype(a: Tensor, dtype) -> Tensor:
    """A copy cast to ``dtype`` (float32 <-> float64 keeps the gradient)."""
    dtype = np.dtype(dtype)
    if a.dtype == dtype:
        return a
    if a.requires_grad and dtype.kind != "f":
        raise TypeError(f"astype: casting a tensor that requires grad to {dtype} would drop its gradient; detach() first")
    return make_result(a.data.astype(dtype), (a,), astype_backward)
