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


def synchronize() -> None:
    """Wait for the GPU to finish queued work (no-op on NumPy)."""
    if _name == "cupy":
        xp.cuda.get_current_stream().synchronize()


def _init_from_environment() -> None:
    name = os.environ.get("SCRATCHGAN_BACKEND", "").strip().lower()
    if name:
        set_backend(name)


_init_from_environment()
