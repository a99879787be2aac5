"""The one place that knows NumPy from CuPy.

Every array the library creates goes through this module, and no other file
imports :mod:`cupy`. The active backend is chosen with :func:`set_backend` or,
at import time, with the environment variable ``SCRATCHGAN_BACKEND``
(``numpy``, the default, or ``cupy``).

Existing tensors keep the arrays they were made with: switching the backend
changes where *new* arrays live. Tensors whose arrays live on different
backends never mix silently (see :func:`check_same_backend`).
"""

from __future__ import annotations

import os

import numpy as np

BACKENDS = ("numpy", "cupy")

_INSTALL_HINT = (
    "install CuPy for your CUDA version, e.g. `pip install scratchgan[cuda12]` "
    "(cupy-cuda12x) or `pip install scratchgan[cuda13]` (cupy-cuda13x), on a "
    "machine with an NVIDIA GPU; or use set_backend('numpy')"
)

_cupy = None  # the imported cupy module, once asked for
_capturing = False  # True while scratchgan.cuda_graph records a CUDA graph (see matmul)
_name = "numpy"
xp = np  # the array module of the active backend


def _import_cupy():
    """Import CuPy and check that a GPU is visible, with a helpful error."""
    global _cupy
    if _cupy is not None:
        return _cupy
    try:
        import cupy  # noqa: PLC0415 - the only cupy import in scratchgan
    except ImportError as exc:
        raise RuntimeError(f"backend 'cupy' needs CuPy, which is not installed: {_INSTALL_HINT}") from exc
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDA driver missing or broken
        raise RuntimeError(f"backend 'cupy': CuPy is installed but CUDA is not usable ({exc}); {_INSTALL_HINT}") from exc
    if count < 1:
        raise RuntimeError(f"backend 'cupy': no GPU is visible; {_INSTALL_HINT}")
    _cupy = cupy
    return cupy


def cupy_available() -> bool:
    """Return True when CuPy imports and sees at least one GPU."""
    try:
        _import_cupy()
    except RuntimeError:
        return False
    return True


def set_backend(name: str) -> None:
    """Choose where new arrays live: ``"numpy"`` (CPU) or ``"cupy"`` (GPU).

    Raises
    ------
    ValueError
        For a name other than ``"numpy"`` or ``"cupy"``.
    RuntimeError
        For ``"cupy"`` when CuPy is not installed or no GPU is visible.
    """
    global _name, xp
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {BACKENDS}")
    xp = _import_cupy() if name == "cupy" else np
    _name = name


def get_backend() -> str:
    """Return the name of the active backend, ``"numpy"`` or ``"cupy"``."""
    return _name


def array_module(array):
    """Return the module (numpy or cupy) that owns ``array``."""
    if isinstance(array, (np.ndarray, np.generic)):
        return np
    if _cupy is not None and isinstance(array, _cupy.ndarray):
        return _cupy
    raise TypeError(f"expected a numpy or cupy array, got {type(array).__name__}")


def backend_of(array) -> str:
    """Return ``"numpy"`` or ``"cupy"`` for an array."""
    return "numpy" if array_module(array) is np else "cupy"


def check_same_backend(a, b, op: str) -> None:
    """Raise a clear error when two arrays live on different backends."""
    if type(a) is not type(b) and (array_module(a) is not array_module(b)):
        raise TypeError(
            f"{op}: cannot mix a {backend_of(a)} tensor with a {backend_of(b)} tensor; "
            "move one with .to_backend(name) (set_backend changes only new tensors)"
        )


def asarray(data, dtype=None):
    """Make an array on the active backend, copying between host and GPU when needed."""
    if xp is np and type(data).__module__.startswith("cupy"):
        data = data.get()  # a cupy array given while NumPy is active: copy it to the host
    return xp.asarray(data, dtype=dtype)


def to_backend(array, name: str):
    """Move an array to the named backend."""
    if name == "numpy":
        return to_numpy(array)
    if name == "cupy":
        return _import_cupy().asarray(array)
    raise ValueError(f"unknown backend {name!r}; choose one of {BACKENDS}")


def to_numpy(array) -> np.ndarray:
    """Return a host NumPy array (a copy from the GPU for CuPy arrays)."""
    if isinstance(array, np.ndarray):
        return array
    if isinstance(array, np.generic):
        return np.asarray(array)
    return array_module(array).asnumpy(array)


def scatter_add(xp_module, target, index, values) -> None:
    """In place ``target[index] += values``, adding repeated indices up."""
    if xp_module is np:
        np.add.at(target, index, values)
    else:
        import cupyx  # noqa: PLC0415 - part of CuPy, only reached on that backend

        cupyx.scatter_add(target, index, values)


def matmul(a, b):
    """``a @ b``, also while a CUDA graph is being captured.

    CuPy refuses every cuBLAS call during stream capture (cupy/cupy#6290),
    although cuBLAS GEMMs record into graphs fine. While
    :func:`scratchgan.cuda_graph.capture` records, 2-D products therefore go
    to cuBLAS directly (:func:`_gemm_for_capture`); otherwise this is ``@``.
    """
    if _capturing and a.ndim == 2 and b.ndim == 2:
        return _gemm_for_capture(a, b)
    return a @ b


def gemm_operand(x):
    """``(operation, leading dimension)`` under which cuBLAS reads a row-major matrix ``x`` as ``x^T``.

    cuBLAS is column-major. A row-major (m, k) @ (k, n) product is the
    column-major ``C^T = B^T A^T`` (n, m), so each operand must be read as its
    transpose: a C-contiguous matrix already *is* its transpose in
    column-major order (operation N = 0, leading dimension = its number of
    columns); an F-contiguous one (a transposed view, as in every backward
    rule) is itself in column-major order (operation T = 1, leading dimension
    = its number of rows). Returns None for other strides (copy first).
    """
    if x.flags.c_contiguous:
        return 0, max(1, x.shape[1])
    if x.flags.f_contiguous:
        return 1, max(1, x.shape[0])
    return None


def _gemm_for_capture(a, b):
    """``a @ b`` for 2-D CuPy arrays through cuBLAS's sgemm/dgemm, on the current stream.

    Computes the column-major ``C^T (n, m) = B^T A^T`` into a C-contiguous
    (m, n) output (see :func:`gemm_operand`).
    """
    cupy = _cupy
    if a.dtype != b.dtype or a.dtype.char not in "fd":
        return a @ b  # not a float32/float64 GEMM: let CuPy decide (it raises during capture)
    from cupy_backends.cuda.libs import cublas  # noqa: PLC0415 - part of CuPy, reached only on GPU

    pointer_mode_host = 0  # cublasPointerMode_t

    def column_major(x):
        layout = gemm_operand(x)
        if layout is None:
            x = cupy.ascontiguousarray(x)
            layout = gemm_operand(x)
        return (x, *layout)

    m, k = a.shape
    n = b.shape[1]
    out = cupy.empty((m, n), dtype=a.dtype)
    if m == 0 or n == 0:
        return out
    if k == 0:
        out.fill(0)
        return out
    b_arr, op_b, ld_b = column_major(b)
    a_arr, op_a, ld_a = column_major(a)
    handle = cupy.cuda.device.get_cublas_handle()
    cublas.setStream(handle, cupy.cuda.get_current_stream().ptr)  # the capturing stream
    cublas.setPointerMode(handle, pointer_mode_host)  # alpha and beta below are host scalars
    gemm = cublas.sgemm if a.dtype.char == "f" else cublas.dgemm
    gemm(handle, op_b, op_a, n, m, k, 1.0, b_arr.data.ptr, ld_b, a_arr.data.ptr, ld_a, 0.0, out.data.ptr, n)
    return out


def synchronize() -> None:
    """Wait for the GPU to finish queued work (no-op on NumPy)."""
    if _name == "cupy":
        xp.cuda.get_current_stream().synchronize()


def _init_from_environment() -> None:
    name = os.environ.get("SCRATCHGAN_BACKEND", "").strip().lower()
    if name:
        set_backend(name)


_init_from_environment()
