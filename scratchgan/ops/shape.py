"""Shape ops: reshape, transpose, broadcast, concatenate, indexing, casts.

One acceleration is registered against this file
(:mod:`scratchgan.autograd.fastpath`): a plain first-order ``backward`` of
``reshape`` gives the gradient the input's memory layout back
(``scratchgan/accel/first_order.py``). ``getitem``'s range check on CuPy is
not an acceleration but a difference of the backends (CuPy wraps an
out-of-range index where NumPy raises): see :func:`index_range_violation`.
"""

from __future__ import annotations

import numpy as np

from .. import backend
from ..autograd.engine import make_result
from ..autograd.tensor import Tensor


def reshape_backward(g, out, needs):
    return (reshape(g, out._parents[0].shape),)


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


def _is_array(i) -> bool:
    """True for an index item that is an array (host or device), not an int, slice, None or Ellipsis."""
    return hasattr(i, "dtype") and not isinstance(i, (int, np.integer))


def _normalize_index(index):
    """Turn Tensors, lists and NumPy booleans inside an index into integer or boolean arrays (not yet uploaded)."""
    def convert(i):
        if isinstance(i, Tensor):
            i = i.data
        if isinstance(i, (list, np.bool_)):
            i = np.asarray(i)
        if _is_array(i) and i.dtype.kind not in "iub":
            raise TypeError(f"index arrays must be integer or boolean, got dtype {i.dtype}")
        return i
    return tuple(convert(i) for i in index) if isinstance(index, tuple) else convert(index)


def _upload(index, xp):
    """The index with its host arrays copied to ``xp``'s device (after their range check)."""
    def upload(i):
        return xp.asarray(i) if isinstance(i, np.ndarray) else i
    return tuple(upload(i) for i in index) if isinstance(index, tuple) else upload(index)


def _integer_arrays(index, shape) -> list:
    """``(array, size of the axis it indexes)`` for every integer array of an index.

    Follows NumPy's rules: None adds an axis, Ellipsis stands for the axes no
    other item takes, a boolean array takes as many axes as it has. Items past
    the last axis are left to the indexing itself, which raises.
    """
    items = index if isinstance(index, tuple) else (index,)
    taken = sum(i.ndim if _is_array(i) and i.dtype.kind == "b" else 1
                for i in items if i is not None and i is not Ellipsis)
    pairs, axis = [], 0
    for i in items:
        if i is None:
            continue
        if i is Ellipsis:
            axis += max(len(shape) - taken, 0)
        elif _is_array(i) and i.dtype.kind == "b":
            axis += i.ndim
        else:
            if _is_array(i) and axis < len(shape):
                pairs.append((i, shape[axis]))
            axis += 1
    return pairs


def index_range_violation(pairs, what: str, negative: bool = True):
    """The first out-of-range value among integer index arrays, or None when every value is in range.

    NumPy raises ``IndexError`` for an index outside its axis; CuPy wraps it
    silently (its gather and scatter kernels take the index modulo the axis
    size: ``cupy/_core/_routines_indexing.pyx``, v13 and v14), and so reads,
    or scatter-adds into, the wrong rows. So the library checks: host arrays on
    the host (before they are uploaded), device arrays on the device, all of
    them together with one small read (each array's minimum and maximum)
    through :func:`scratchgan.backend.to_host`. A device array that
    :func:`scratchgan.backend.vouch_indices` vouched for (in ``[0, high)``
    with ``high`` at most the axis size) is not read at all; that is what a
    CUDA-graph step needs, since a captured step cannot read back.

    Parameters
    ----------
    pairs : list of (array, int)
        Integer arrays (NumPy or CuPy) and the size of the axis each indexes.
    what : str
        The checker, named in the error when a captured step would read back.
    negative : bool
        Allow NumPy's negative indices, ``[-size, size)``; else ``[0, size)``.

    Returns
    -------
    tuple of (int, int) or None
        ``(value, size)`` of the first array with a value out of range.
    """
    extremes, device = [], []  # (size, lowest, highest) on the host; device arrays still to read
    for array, size in pairs:
        if array.size == 0:
            continue
        if isinstance(array, np.ndarray):
            extremes.append((size, array.min(), array.max()))
        else:
            high = backend.vouched_high(array)
            if high is None or high > size:
                device.append((array, size))
    if device:
        xp = backend.array_module(device[0][0])
        stacked = xp.stack([e for array, _ in device for e in (array.min(), array.max())])
        values = backend.to_host(stacked, f"the range check of {what}'s device index array (an array not vouched "
                                         "for with scratchgan.backend.vouch_indices)").tolist()
        extremes += [(size, values[2 * k], values[2 * k + 1]) for k, (_, size) in enumerate(device)]
    for size, low, high in extremes:
        lowest = -size if negative else 0
        if low < lowest or high >= size:
            return (int(low) if low < lowest else int(high)), size
    return None


def getitem_backward(g, out, needs):
    return (_index_add_zeros(g, out._ctx, out._parents[0].shape),)


def getitem(a: Tensor, index) -> Tensor:
    """``a[index]``: basic slices, integers, None, Ellipsis and integer or boolean arrays.

    An integer array's values must lie in ``[-size, size)`` of the axis it
    indexes, on CuPy as on NumPy (see :func:`index_range_violation`);
    otherwise ``IndexError``.
    """
    xp = backend.array_module(a.data)
    index = _normalize_index(index)
    if xp is not np:  # NumPy raises for a bad index itself, CuPy wraps it
        found = index_range_violation(_integer_arrays(index, a.shape), "getitem")
        if found is not None:
            raise IndexError(f"getitem: index {found[0]} is out of range for an axis of size {found[1]} "
                             f"(tensor of shape {a.shape})")
        index = _upload(index, xp)
    return getitem_unchecked(a, index)


def getitem_unchecked(a: Tensor, index) -> Tensor:
    """``a[index]`` for an index of backend arrays whose range the caller has checked (the op itself).

    For callers that checked the indices already (:class:`scratchgan.nn.Embedding`,
    the cross-entropy losses), so that the check costs one read, not two, and
    for the rules (the index of a backward is the forward's).
    """
    try:
        data = a.data[index]
    except IndexError as exc:
        raise IndexError(f"index {index!r} is invalid for a tensor of shape {a.shape}: {exc}") from None
    return make_result(data, (a,), getitem_backward, ctx=index)


def index_add_zeros_backward(g, out, needs):
    return (getitem_unchecked(g, out._ctx[0]),)


def index_add_zeros(values: Tensor, index, shape) -> Tensor:
    """Zeros of ``shape`` with ``values`` added at ``index`` (repeats add up).

    The adjoint of ``getitem``; its own gradient is ``getitem``, which is what
    makes indexing twice differentiable. Integer arrays are range-checked as
    in :func:`getitem` (a scatter-add with wrapped indices would write the
    wrong rows).
    """
    xp = backend.array_module(values.data)
    shape = tuple(shape)
    index = _normalize_index(index)
    found = index_range_violation(_integer_arrays(index, shape), "index_add_zeros")
    if found is not None:
        raise IndexError(f"index_add_zeros: index {found[0]} is out of range for an axis of size {found[1]} "
                         f"(shape {shape})")
    return _index_add_zeros(values, _upload(index, xp), shape)


def _index_add_zeros(values: Tensor, index, shape) -> Tensor:
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
