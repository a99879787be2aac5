"""A strict CuPy stand-in for tests: NumPy underneath, CuPy's rules on top.

With ``tests/cupy_standin`` first on ``PYTHONPATH``, ``import cupy`` gives this
package, so scratchgan's GPU code runs on the CPU in CI. It is *not* a CuPy
for users: it exists to make the GPU code fail here the way it would fail on
a GPU. What it checks and what it cannot is in docs/engine.md ("The CuPy
stand-in"). Each rule cites the CuPy source file it models (CuPy 13.6 and
14.0 agree on all of them).

``cupy.standin.counts()`` / ``cupy.standin.reset()`` read and zero the
counters; ``CUPY_STANDIN_REPORT=path.json`` writes them at exit;
``CUPY_STANDIN_DEVICES=N`` sets the number of GPUs reported (default 1).
"""

from __future__ import annotations

import numpy as _np

from . import _array, _device, _ufuncs
from ._array import ndarray
from ._ufuncs import ufunc

__version__ = "13.6.0+standin"
IS_STANDIN = True

from . import cuda, random, linalg, lib, standin  # noqa: E402,F401
from ._kernel import ElementwiseKernel, ReductionKernel, RawKernel  # noqa: E402,F401

# dtypes, constants and dtype utilities are NumPy's own (CuPy re-exports NumPy's: cupy/__init__.py)
for _name in ("bool_", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float16",
              "float32", "float64", "complex64", "complex128", "intp", "uintp", "dtype", "finfo", "iinfo",
              "result_type", "promote_types", "can_cast", "issubdtype", "newaxis", "inf", "nan", "pi", "e",
              "integer", "floating", "number", "generic", "signedinteger", "unsignedinteger", "complexfloating",
              "isscalar", "ndim", "shape", "errstate", "float_", "int_"):
    if hasattr(_np, _name):
        globals()[_name] = getattr(_np, _name)
bool = _np.bool_  # noqa: A001 - cupy.bool

for _name in dir(_ufuncs):
    if isinstance(getattr(_ufuncs, _name), ufunc):
        globals()[_name] = getattr(_ufuncs, _name)


# --------------------------------------------------------------------------- transfers

def _from_host(data, dtype, copy, order="K"):
    _device.host_to_device("cupy.asarray of host data (cudaMemcpy host to device)")
    host = _np.array(data, dtype=dtype, order=order, copy=True)
    if host.dtype == object:
        raise ValueError("Unsupported dtype object")
    buf = _device.allocate(host.shape, host.dtype, "F" if host.flags.f_contiguous and not host.flags.c_contiguous
                           else "C")
    buf[...] = host
    return _array.wrap(buf)


def asarray(a, dtype=None, order=None, *, blocking=False):
    """A device array: ``a`` itself if it already is one of this dtype, else a copy (an upload for host data)."""
    if isinstance(a, ndarray):
        if dtype is None or _np.dtype(dtype) == a.dtype:
            return a
        return a.astype(dtype)
    return _from_host(a, dtype, True)


def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, *, blocking=False):
    if isinstance(obj, ndarray):
        if not copy and (dtype is None or _np.dtype(dtype) == obj.dtype):
            return obj
        return obj.astype(dtype if dtype is not None else obj.dtype, copy=True)
    out = _from_host(obj, dtype, True)
    return out.reshape((1,) * (ndmin - out.ndim) + out.shape) if ndmin > out.ndim else out


asanyarray = asarray


def ascontiguousarray(a, dtype=None):
    if not isinstance(a, ndarray):
        return asarray(_np.ascontiguousarray(a), dtype)
    return _array.call(lambda x: _np.ascontiguousarray(x, dtype=dtype), (a,))


def asfortranarray(a, dtype=None):
    if not isinstance(a, ndarray):
        return asarray(_np.asfortranarray(a), dtype)
    return _array.call(lambda x: _np.asfortranarray(x, dtype=dtype), (a,))


def asnumpy(a, stream=None, order="C", out=None, blocking=True):
    """The host copy of a device array (cupy/_core/core.pyx ``asnumpy``); host arrays pass through."""
    if isinstance(a, ndarray):
        return a.get(order=order, out=out)
    return _np.asarray(a, order=order)


def get_array_module(*args):
    return _mod if any(isinstance(a, ndarray) for a in args) else _np


# --------------------------------------------------------------------------- creation

def empty(shape, dtype=float, order="C"):
    """Uninitialised device memory: garbage (NaN for floats), never zeros, as a pool's blocks are."""
    return _array.wrap(_device.allocate(shape, dtype, order))


def empty_like(a, dtype=None, order="K", subok=None, shape=None):
    if not isinstance(a, ndarray):
        raise _array._unsupported(a)
    return empty(a.shape if shape is None else shape, a.dtype if dtype is None else dtype,
                 "F" if order in ("F", "A", "K") and a.flags.f_contiguous and not a.flags.c_contiguous else "C")


def _filled(shape, dtype, order, value):
    out = empty(shape, dtype, order)
    out.fill(value)
    return out


def zeros(shape, dtype=float, order="C"):
    return _filled(shape, dtype, order, 0)


def ones(shape, dtype=float, order="C"):
    return _filled(shape, dtype, order, 1)


def full(shape, fill_value, dtype=None, order="C"):
    if isinstance(fill_value, _np.ndarray):
        raise _array._unsupported(fill_value)
    if dtype is None:
        dtype = fill_value.dtype if isinstance(fill_value, ndarray) else _np.array(fill_value).dtype
    return _filled(shape, dtype, order, fill_value)


def _like(a, dtype, value):
    return _filled(a.shape, a.dtype if dtype is None else dtype, "C", value)


def zeros_like(a, dtype=None, order="K", subok=None, shape=None):
    return _like(a, dtype, 0)


def ones_like(a, dtype=None, order="K", subok=None, shape=None):
    return _like(a, dtype, 1)


def full_like(a, fill_value, dtype=None, order="K", subok=None, shape=None):
    return _like(a, dtype, fill_value)


# --------------------------------------------------------------------------- routines with CuPy's own rules

def _refuse_cublas_in_capture():
    # cupy_backends/cuda/libs/cublas.pyx (v13.6) setStream, which every cuBLAS wrapper calls first:
    # "if runtime.streamIsCapturing(stream): raise NotImplementedError(...)"
    if _device.capturing_state() is not None:
        raise NotImplementedError("calling cuBLAS API during stream capture is currently unsupported")


def matmul(a, b, out=None, **kwargs):
    """A product through cuBLAS (gemm, or gemmStridedBatched for stacks): refused during a capture."""
    _refuse_cublas_in_capture()
    return _array.call(_np.matmul, (a, b), {"out": out} if out is not None else {})


def dot(a, b, out=None):
    _refuse_cublas_in_capture()
    return _array.call(_np.dot, (a, b), {"out": out} if out is not None else {})


def tensordot(a, b, axes=2):
    _refuse_cublas_in_capture()
    return _array.call(_np.tensordot, (a, b), {"axes": axes})


def inner(a, b):
    _refuse_cublas_in_capture()
    return _array.call(_np.inner, (a, b))


def vdot(a, b):
    _refuse_cublas_in_capture()
    return _array.call(_np.vdot, (a, b))


def einsum(*operands, **kwargs):
    _refuse_cublas_in_capture()  # cupy/linalg/_einsum.py reduces to tensordot_core (cuBLAS)
    return _array.call(_np.einsum, operands, kwargs)


def _wrapped_indices(indices, size):
    return _np.mod(indices, size) if size else indices


def take(a, indices, axis=None, out=None, mode="wrap"):
    """``a.take``: out-of-range indices wrap (cupy/_core/_routines_indexing.pyx ``_take``: only 'wrap')."""
    if isinstance(indices, (_np.ndarray, list)):
        indices = asarray(indices)
    size = a.size if axis is None else a.shape[axis]
    if isinstance(indices, ndarray):
        return _array.call(lambda x, i: _np.take(x, _wrapped_indices(i, size), axis=axis), (a, indices))
    return _array.call(lambda x: _np.take(x, indices, axis=axis), (a,))


def take_along_axis(a, indices, axis):
    size = a.shape[axis]
    return _array.call(lambda x, i: _np.take_along_axis(x, _wrapped_indices(i, size), axis), (a, indices))


def put_along_axis(a, indices, values, axis):
    size = a.shape[axis]
    target, idx = a._a, indices._a
    vals = values._a if isinstance(values, ndarray) else values
    _device.launch(lambda: _np.put_along_axis(target, _wrapped_indices(idx, size), vals, axis))


def copyto(dst, src, casting="same_kind", where=True):
    if isinstance(src, _np.ndarray):
        raise _array._unsupported(src)
    target = dst._a
    source = src._a if isinstance(src, ndarray) else src
    _device.launch(lambda: _np.copyto(target, source, casting=casting))


def _needs_count(name):
    def routine(*args, **kwargs):
        # the output's size is known only on the host: a synchronising read (e.g. cupy/_core/_routines_indexing.pyx
        # nonzero -> count_nonzero(...).item(); cupy/_manipulation/add_remove.py unique)
        _device.device_to_host(f"cupy.{name} (its output size)")
        _device.synchronize(f"cupy.{name}")
        return _array.call(getattr(_np, name), args, kwargs)
    routine.__name__ = name
    return routine


for _name in ("nonzero", "argwhere", "flatnonzero", "unique", "compress", "extract"):
    globals()[_name] = _needs_count(_name)


def where(condition, x=None, y=None):
    if x is None and y is None:
        return nonzero(condition)  # noqa: F821 - defined just above
    return _array.call(_np.where, (condition, x, y), c_order=True)


def __getattr__(name):
    # any other NumPy routine, run on the buffers with the operand rules (views stay views)
    obj = getattr(_np, name, None)
    if obj is None or isinstance(obj, type) or not callable(obj) or name.startswith("_"):
        raise AttributeError(f"module 'cupy' has no attribute '{name}'")

    def routine(*args, **kwargs):
        return _array.call(obj, args, kwargs)

    routine.__name__ = name
    globals()[name] = routine
    return routine


import sys as _sys  # noqa: E402

_mod = _sys.modules[__name__]

from . import _libcublas  # noqa: E402

_libcublas.install()  # ctypes.CDLL("libcublas.so.N") now reaches the stand-in's cuBLAS
