"""libcublas itself, as ctypes sees it: for code that calls cuBLAS directly (not through CuPy's wrappers).

``ctypes.CDLL("libcublas.so.N")`` (any name containing ``libcublas``)
returns :class:`Library` while the stand-in is imported. It models the C API
(cuBLAS 12: ``cublasCreate_v2``, ``cublasSetStream_v2``,
``cublasSetPointerMode_v2``, ``cublasSetWorkspace_v2``, ``cublasSgemm_v2``,
``cublasDgemm_v2``, ``cublasDestroy_v2``) and the ctypes rules that bite:

* a function called before its ``argtypes`` are declared is refused: ctypes
  would pass a Python int as a 32-bit C int and cut a 64-bit device pointer;
* cuBLAS itself may be called while the stream captures (cuBLAS documents
  graph capture support); the GEMM is then recorded, not run;
* pointers must lie in live device memory (else an illegal address).
"""

from __future__ import annotations

import ctypes
import os

import numpy as np

from cupy_backends.cuda.libs import cublas as _wrappers

from . import _device


def _value(arg):
    """The integer or float a ctypes argument carries."""
    if isinstance(arg, ctypes._SimpleCData):
        return arg.value if arg.value is not None else 0
    return arg


def _pointee(arg, ctype):
    """What a pointer argument points at: ``byref(x)``, ``pointer(x)``, or an address."""
    obj = getattr(arg, "_obj", None)  # ctypes.byref(...)
    if obj is not None:
        return obj
    if isinstance(arg, ctypes._Pointer):
        return arg.contents
    return ctype.from_address(int(_value(arg)))


class _Function:
    def __init__(self, name, body):
        self.__name__ = name
        self.argtypes = None
        self.restype = ctypes.c_int
        self._body = body

    def __call__(self, *args):
        if self.argtypes is None:
            raise TypeError(f"{self.__name__}: declare argtypes before calling it (without them ctypes passes "
                            "Python ints as 32-bit C ints, cutting 64-bit pointers)")
        if len(args) != len(self.argtypes):
            raise TypeError(f"{self.__name__}: this function takes exactly {len(self.argtypes)} arguments "
                            f"({len(args)} given)")
        try:
            self._body(*args)
        except _wrappers.CUBLASError as exc:
            return exc.status
        return 0


def _create(handle_out):
    _pointee(handle_out, ctypes.c_void_p).value = _wrappers.create()


def _destroy(handle):
    _wrappers.destroy(_value(handle))


def _set_stream(handle, stream):
    _wrappers._state(_value(handle)).stream = int(_value(stream) or 0)


def _set_pointer_mode(handle, mode):
    _wrappers._state(_value(handle)).pointer_mode = int(_value(mode))


def _set_workspace(handle, ptr, size):
    _device.memory_at(int(_value(ptr)), int(_value(size)))  # must be live device memory
    _wrappers._state(_value(handle)).workspace = (int(_value(ptr)), int(_value(size)))


def _gemm(dtype, ctype):
    def body(handle, transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc):
        state = _wrappers._state(_value(handle))
        if state.pointer_mode == _wrappers.CUBLAS_POINTER_MODE_DEVICE:
            raise NotImplementedError("the stand-in models cuBLAS's host pointer mode only")
        _wrappers.gemm_column_major(
            state, dtype, int(_value(transa)), int(_value(transb)), int(_value(m)), int(_value(n)),
            int(_value(k)), _pointee(alpha, ctype).value, int(_value(A)), int(_value(lda)), int(_value(B)),
            int(_value(ldb)), _pointee(beta, ctype).value, int(_value(C)), int(_value(ldc)))
    return body


class Library:
    """The stand-in's libcublas: the entry points scratchgan may call through ctypes."""

    def __init__(self, name):
        self._name = name
        self.cublasCreate_v2 = _Function("cublasCreate_v2", _create)
        self.cublasDestroy_v2 = _Function("cublasDestroy_v2", _destroy)
        self.cublasSetStream_v2 = _Function("cublasSetStream_v2", _set_stream)
        self.cublasSetPointerMode_v2 = _Function("cublasSetPointerMode_v2", _set_pointer_mode)
        self.cublasSetWorkspace_v2 = _Function("cublasSetWorkspace_v2", _set_workspace)
        self.cublasSgemm_v2 = _Function("cublasSgemm_v2", _gemm(np.float32, ctypes.c_float))
        self.cublasDgemm_v2 = _Function("cublasDgemm_v2", _gemm(np.float64, ctypes.c_double))

    def __getattr__(self, name):
        raise AttributeError(f"the stand-in's libcublas does not model {name}")


_RealCDLL = ctypes.CDLL


class _CDLL(_RealCDLL):
    """``ctypes.CDLL`` that answers names of libcublas with the stand-in's library."""

    def __new__(cls, name, *args, **kwargs):
        if name is not None and "libcublas" in os.path.basename(str(name)):
            return Library(name)
        return super().__new__(cls)


def install() -> None:
    ctypes.CDLL = _CDLL
    ctypes.cdll.LoadLibrary = lambda name: _CDLL(name)
