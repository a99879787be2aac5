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
_capturing = False  # True while scratchgan.accel.cuda_graph records a CUDA graph (see matmul)
_rehearsing = False  # True during the eager step cuda_graph.capture runs just before recording
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
    """Return the module (numpy or cupy) that owns ``array``.

    A CuPy array is recognised by its class's module even before
    :func:`set_backend` imported CuPy (an array a user made with ``cupy``
    directly), which imports CuPy then.
    """
    if isinstance(array, (np.ndarray, np.generic)):
        return np
    if _cupy is not None and isinstance(array, _cupy.ndarray):
        return _cupy
    if type(array).__module__.split(".")[0] == "cupy":
        cupy = _import_cupy()
        if isinstance(array, cupy.ndarray):
            return cupy
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
        _refuse_during_capture("backend.asarray", "copies a device array to the host")
        data = data.get()  # a cupy array given while NumPy is active: copy it to the host
    elif xp is not np and not type(data).__module__.startswith("cupy"):
        _refuse_during_capture("backend.asarray", "copies host data to the device")
    return xp.asarray(data, dtype=dtype)


def to_backend(array, name: str):
    """Move an array to the named backend."""
    if name == "numpy":
        return to_numpy(array)
    if name == "cupy":
        return _import_cupy().asarray(array)
    raise ValueError(f"unknown backend {name!r}; choose one of {BACKENDS}")


class CaptureError(RuntimeError):
    """A step does something a CUDA graph cannot record (raised before the capture, naming it)."""


def is_capturing() -> bool:
    """True while :func:`scratchgan.accel.cuda_graph.capture` records a graph, or rehearses the step just before.

    Code that must take a capture-safe route (products, random draws) asks
    this; the rehearsal takes the same route eagerly, so a route that fails
    fails before anything is recorded.
    """
    return _capturing or _rehearsing


def _refuse_during_capture(what: str, doing: str) -> None:
    if _capturing or _rehearsing:
        raise CaptureError(f"{what} {doing}, which a CUDA graph cannot record")


def to_host(array, what: str) -> np.ndarray:
    """A device array's values on the host: the one way scratchgan reads a value back.

    Parameters
    ----------
    array : array
        A NumPy or CuPy array (NumPy arrays are returned as they are).
    what : str
        Who reads, for the error when a captured step would read back
        (e.g. ``"the NaN check of gradient_penalty's input"``).

    Raises
    ------
    CaptureError
        For a CuPy array while a CUDA graph is recorded or rehearsed.
    """
    if isinstance(array, (np.ndarray, np.generic)):
        return np.asarray(array)
    _refuse_during_capture(what, "reads a value back to the host")
    return array_module(array).asnumpy(array)


def host_scalar(array, what: str):
    """A 0-d (or one-element) array's value as a Python scalar, through :func:`to_host`'s checks."""
    if isinstance(array, (np.ndarray, np.generic)):
        return array.item()
    _refuse_during_capture(what, "reads a value back to the host")
    return array.item()


# Index arrays the library made in range by construction (labels and batch indices drawn on the
# device): the range checks of getitem and Embedding skip their device-to-host read. A small
# bounded table of strong references keyed by id: CuPy arrays take no weak references on every
# version, and these arrays are small and short-lived.
_VOUCHED_MAX = 64
_vouched: dict = {}


def vouch_indices(array, high: int):
    """Record that the integer array ``array`` holds values in ``[0, high)`` by construction; returns it."""
    _vouched.pop(id(array), None)
    _vouched[id(array)] = (array, int(high))
    while len(_vouched) > _VOUCHED_MAX:
        _vouched.pop(next(iter(_vouched)))
    return array


def vouched_high(array) -> int | None:
    """The bound given to :func:`vouch_indices` for this very array, or None."""
    entry = _vouched.get(id(array))
    return entry[1] if entry is not None and entry[0] is array else None


def to_numpy(array) -> np.ndarray:
    """Return a host NumPy array (a copy from the GPU for CuPy arrays): :func:`to_host` for an unnamed reader."""
    return to_host(array, "backend.to_numpy")


def scatter_add(xp_module, target, index, values) -> None:
    """In place ``target[index] += values``, adding repeated indices up."""
    if xp_module is np:
        np.add.at(target, index, values)
    else:
        import cupyx  # noqa: PLC0415 - part of CuPy, only reached on that backend

        cupyx.scatter_add(target, index, values)


def matmul(a, b):
    """``a @ b`` for arrays of any rank, also while a CUDA graph is being captured.

    CuPy refuses every cuBLAS call during stream capture (its wrappers check
    the stream first: cupy_backends/cuda/libs/cublas.pyx), although cuBLAS
    GEMMs record into graphs fine. While :func:`scratchgan.accel.cuda_graph.capture`
    records (and in the eager rehearsal just before, so that the same code
    runs once where a failure can still be reported), products therefore go
    to cuBLAS directly through ctypes (:class:`_CaptureGemm`): a 2-D product
    is one GEMM, a 1-D operand is a matrix with one row or column, a stack of
    matrices is one GEMM per matrix. Otherwise this is ``a @ b``.
    """
    if not (_capturing or _rehearsing) or array_module(a) is np:
        return a @ b
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError("matmul: 0-d operands have no product (use *)")
    if a.ndim == 1:
        return matmul(a.reshape(1, -1), b)[..., 0, :] if b.ndim > 1 else matmul(a.reshape(1, -1), b.reshape(-1, 1))[0, 0]
    if b.ndim == 1:
        return matmul(a, b.reshape(-1, 1))[..., 0]
    if a.ndim == 2 and b.ndim == 2:
        return _capture_gemm().product(a, b)
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    a = _cupy.broadcast_to(a, batch + a.shape[-2:])
    b = _cupy.broadcast_to(b, batch + b.shape[-2:])
    out = _cupy.empty(batch + (a.shape[-2], b.shape[-1]), dtype=np.result_type(a.dtype, b.dtype))
    for index in np.ndindex(*batch):
        out[index] = _capture_gemm().product(a[index], b[index])
    return out


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


_CUBLAS_WORKSPACE_BYTES = 32 * 2**20  # what PyTorch gives cuBLAS on Hopper; set before capture, so none is allocated in it
_gemm_route = None  # the _CaptureGemm, made on first need (outside any capture)


def _capture_gemm() -> _CaptureGemm:
    global _gemm_route
    if _gemm_route is None:
        if _capturing:
            raise CaptureError("the cuBLAS handle for captured products is made before the capture; "
                               "call scratchgan.backend.prepare_capture() first (cuda_graph.capture does)")
        _gemm_route = _CaptureGemm(_import_cupy())
    return _gemm_route


def prepare_capture() -> None:
    """Make what a captured product needs (a cuBLAS handle and its workspace) while nothing captures."""
    _capture_gemm()


def _open_libcublas(cupy):
    """libcublas as a ctypes library: the copy CuPy already loaded, else its CUDA major version's soname."""
    import ctypes  # noqa: PLC0415 - only on this route

    names = []
    try:
        with open("/proc/self/maps") as maps:  # where CuPy's libcublas lies, whichever wheel brought it
            for line in maps:
                path = line.split()[-1] if len(line.split()) >= 6 else ""
                if os.path.basename(path).startswith("libcublas.so") and path not in names:
                    names.append(path)
    except OSError:
        pass
    major = cupy.cuda.runtime.runtimeGetVersion() // 1000
    names += [f"libcublas.so.{major}", "libcublas.so"]
    errors = []
    for name in names:
        try:
            return ctypes.CDLL(name)
        except OSError as exc:
            errors.append(f"{name}: {exc}")
    raise CaptureError("products inside a CUDA graph call libcublas directly, and it could not be loaded ("
                       + "; ".join(errors) + "); install the CUDA toolkit's cuBLAS or nvidia-cublas-cu12")


class _CaptureGemm:
    """Row-major products through scratchgan's own cuBLAS handle, called with ctypes: capturable.

    The handle is made once, outside any capture, with a workspace of its
    own (cuBLAS would otherwise allocate one inside the capture) and host
    pointer mode: ``alpha`` and ``beta`` are read from host memory at the
    call, which the graph keeps. Each call sets the handle's stream to the
    current (capturing) stream.
    """

    def __init__(self, cupy):
        import ctypes  # noqa: PLC0415

        self._ctypes = ctypes
        self._cupy = cupy
        lib = _open_libcublas(cupy)
        vp, i = ctypes.c_void_p, ctypes.c_int
        lib.cublasCreate_v2.argtypes = [ctypes.POINTER(vp)]
        lib.cublasSetStream_v2.argtypes = [vp, vp]
        lib.cublasSetPointerMode_v2.argtypes = [vp, i]
        lib.cublasSetWorkspace_v2.argtypes = [vp, vp, ctypes.c_size_t]
        for name, scalar in (("cublasSgemm_v2", ctypes.c_float), ("cublasDgemm_v2", ctypes.c_double)):
            getattr(lib, name).argtypes = [vp, i, i, i, i, i, ctypes.POINTER(scalar), vp, i, vp, i,
                                           ctypes.POINTER(scalar), vp, i]
        for name in ("cublasCreate_v2", "cublasSetStream_v2", "cublasSetPointerMode_v2", "cublasSetWorkspace_v2",
                     "cublasSgemm_v2", "cublasDgemm_v2"):
            getattr(lib, name).restype = i
        self._lib = lib
        self._handle = vp()
        self._check(lib.cublasCreate_v2(ctypes.byref(self._handle)), "cublasCreate")
        self._workspace = cupy.empty(_CUBLAS_WORKSPACE_BYTES, dtype=np.uint8)
        self._check(lib.cublasSetWorkspace_v2(self._handle, self._workspace.data.ptr, _CUBLAS_WORKSPACE_BYTES),
                    "cublasSetWorkspace")
        self._check(lib.cublasSetPointerMode_v2(self._handle, 0), "cublasSetPointerMode")  # 0: host pointers

    @staticmethod
    def _check(status, call):
        if status != 0:
            raise RuntimeError(f"{call} failed with cuBLAS status {status}")

    def product(self, a, b):
        """``a @ b`` for 2-D CuPy arrays: the column-major ``C^T (n, m) = B^T A^T`` into a C-contiguous (m, n)."""
        cupy, ctypes = self._cupy, self._ctypes
        dtype = np.result_type(a.dtype, b.dtype)
        if dtype.char not in "fd":
            raise CaptureError(f"a product of {a.dtype} and {b.dtype} arrays inside a CUDA graph: only float32 "
                               "and float64 products are captured (cast the operands)")
        a, b = a.astype(dtype, copy=False), b.astype(dtype, copy=False)
        m, k = a.shape
        n = b.shape[1]
        out = cupy.empty((m, n), dtype=dtype)
        if m == 0 or n == 0:
            return out
        if k == 0:
            out.fill(0)
            return out
        a_arr, op_a, ld_a = self._column_major(a)
        b_arr, op_b, ld_b = self._column_major(b)
        scalar = ctypes.c_float if dtype.char == "f" else ctypes.c_double
        gemm = self._lib.cublasSgemm_v2 if dtype.char == "f" else self._lib.cublasDgemm_v2
        alpha, beta = scalar(1.0), scalar(0.0)
        self._check(self._lib.cublasSetStream_v2(self._handle, cupy.cuda.get_current_stream().ptr),
                    "cublasSetStream")
        self._check(gemm(self._handle, op_b, op_a, n, m, k, ctypes.byref(alpha), b_arr.data.ptr, ld_b,
                         a_arr.data.ptr, ld_a, ctypes.byref(beta), out.data.ptr, n), "cublasGemm")
        return out

    def _column_major(self, x):
        layout = gemm_operand(x)
        if layout is None:
            x = self._cupy.ascontiguousarray(x)
            layout = gemm_operand(x)
        return (x, *layout)


def synchronize() -> None:
    """Wait for the GPU to finish queued work (no-op on NumPy)."""
    if _name == "cupy":
        _refuse_during_capture("backend.synchronize", "waits for the GPU")
        xp.cuda.get_current_stream().synchronize()


def _init_from_environment() -> None:
    name = os.environ.get("SCRATCHGAN_BACKEND", "").strip().lower()
    if name:
        set_backend(name)


_init_from_environment()
