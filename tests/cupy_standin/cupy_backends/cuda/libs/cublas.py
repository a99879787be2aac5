"""``cupy_backends.cuda.libs.cublas`` of the stand-in: CuPy's wrapper signatures, a column-major GEMM underneath.

Modelled on cupy_backends/cuda/libs/cublas.pyx (v13.6 and v14.0):

* every call first sets the handle's stream to the current stream
  (``_setStream``), and ``setStream`` raises NotImplementedError while that
  stream captures ("calling cuBLAS API during stream capture is currently
  unsupported");
* ``sgemm`` / ``dgemm`` take ``alpha`` and ``beta`` as ``size_t``: pointers
  (host pointers in the default pointer mode), never Python floats;
* status codes other than 0 raise ``CUBLASError``.
"""

from __future__ import annotations

import ctypes
import itertools

import numpy as np

from cupy import _device

CUBLAS_OP_N, CUBLAS_OP_T = 0, 1
CUBLAS_POINTER_MODE_HOST, CUBLAS_POINTER_MODE_DEVICE = 0, 1
STATUS_SUCCESS, STATUS_INVALID_VALUE = 0, 7


class CUBLASError(RuntimeError):
    def __init__(self, status):
        self.status = status
        super().__init__(f"CUBLAS_STATUS_{'INVALID_VALUE' if status == 7 else status}")


class _Handle:
    def __init__(self):
        self.stream = 0
        self.pointer_mode = CUBLAS_POINTER_MODE_HOST
        self.workspace = None


_handles: dict = {}
_ids = itertools.count(0x1000)


def create():
    handle = next(_ids)
    _handles[handle] = _Handle()
    return handle


def destroy(handle):
    _handles.pop(handle, None)


def _state(handle) -> _Handle:
    try:
        return _handles[int(handle)]
    except KeyError:
        raise CUBLASError(1) from None  # CUBLAS_STATUS_NOT_INITIALIZED


def setStream(handle, stream):
    if int(stream) in _device._captures:
        raise NotImplementedError("calling cuBLAS API during stream capture is currently unsupported")
    _state(handle).stream = int(stream)


def getStream(handle):
    return _state(handle).stream


def _setStream(handle):
    setStream(handle, _device.current_stream().ptr)


def setPointerMode(handle, mode):
    _setStream(handle)
    _state(handle).pointer_mode = int(mode)


def getPointerMode(handle):
    return _state(handle).pointer_mode


def _size_t(value, name):
    # Cython's size_t argument: a float is a TypeError, not a value
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise TypeError(f"{name}: an integer (a pointer) is required, got {type(value).__name__}")
    return int(value)


def _scalar(state, ptr, dtype):
    if state.pointer_mode == CUBLAS_POINTER_MODE_DEVICE:
        return _device.memory_at(ptr, np.dtype(dtype).itemsize).view(dtype)[0]
    ctype = ctypes.c_float if np.dtype(dtype) == np.float32 else ctypes.c_double
    return ctype.from_address(ptr).value


def gemm_column_major(state, dtype, transa, transb, m, n, k, alpha, a_ptr, lda, b_ptr, ldb, beta, c_ptr, ldc):
    """``C = alpha op(A) op(B) + beta C`` on column-major device memory, recorded if the handle's stream captures.

    ``alpha`` and ``beta`` are the values already read from their pointers
    (host pointer mode reads them at the call, which a graph then keeps).
    """
    dtype = np.dtype(dtype)
    size = dtype.itemsize
    a_rows, a_cols = (m, k) if transa == CUBLAS_OP_N else (k, m)
    b_rows, b_cols = (k, n) if transb == CUBLAS_OP_N else (n, k)
    if min(m, n, k) < 0 or lda < max(1, a_rows) or ldb < max(1, b_rows) or ldc < max(1, m):
        raise CUBLASError(STATUS_INVALID_VALUE)
    if m == 0 or n == 0:
        return

    def matrix(ptr, rows, cols, ld):
        if rows == 0 or cols == 0:
            return np.zeros((rows, cols), dtype)
        mem = _device.memory_at(ptr, (ld * (cols - 1) + rows) * size).view(dtype)
        return np.lib.stride_tricks.as_strided(mem, shape=(rows, cols), strides=(size, ld * size))

    A = matrix(a_ptr, a_rows, a_cols, lda)
    B = matrix(b_ptr, b_rows, b_cols, ldb)
    C = matrix(c_ptr, m, n, ldc)
    op_a = A if transa == CUBLAS_OP_N else A.T
    op_b = B if transb == CUBLAS_OP_N else B.T
    alpha, beta = dtype.type(alpha), dtype.type(beta)

    def run():
        product = alpha * (op_a @ op_b)
        C[...] = product if beta == 0 else product + beta * C  # beta == 0: C is not read (may hold NaN)

    capture = _device._captures.get(state.stream)
    if capture is not None:
        capture.launches.append(run)
    else:
        _device.count("launches")
        with np.errstate(all="ignore"):
            run()


def _gemm(dtype, handle, transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc):
    alpha, beta = _size_t(alpha, "alpha"), _size_t(beta, "beta")
    A, B, C = _size_t(A, "A"), _size_t(B, "B"), _size_t(C, "C")
    _setStream(handle)
    state = _state(handle)
    gemm_column_major(state, dtype, transa, transb, m, n, k, _scalar(state, alpha, dtype), A, lda, B, ldb,
                      _scalar(state, beta, dtype), C, ldc)


def sgemm(handle, transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc):
    _gemm(np.float32, handle, transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc)


def dgemm(handle, transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc):
    _gemm(np.float64, handle, transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc)
