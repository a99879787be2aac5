"""Large host arrays reused from one training step to the next: a small caching allocator for NumPy.

CuPy keeps freed device memory in its memory pool and hands it out again.
NumPy hands every array to ``malloc``, and glibc gives large freed blocks
back to the kernel (``munmap``, or a trim of the heap top once more than a
threshold is free). A training step allocates and frees the same large
arrays every time (conv outputs, batch-norm and activation arrays, their
gradients), so every step paid the kernel's page faults to get the same
memory back: about 10,000 per DCGAN step at batch 64 (40 MB), a tenth of the
step. ``scratchgan.app.process.keep_heap_warm`` avoids them by changing malloc's
settings for the whole process, which only an application may do; this
cache avoids most of them inside the library.

How it works: the hot ops ask :func:`empty` / :func:`empty_like` for their
large outputs (at least :data:`MIN_BYTES`) on the CPU. The cache keeps every
array it handed out, per (shape, dtype), and hands one out again once
nothing else refers to it: its reference count is back to the cache's own
(a Tensor, a view of it, a saved tensor of the graph, a user's variable: any
of them keeps it in use). So an array is never reused while it can still be
read, and the memory of a step is the memory of the last step.

Bounds: arrays of :data:`MIN_BYTES` to :data:`MAX_ARRAY_BYTES` only, at most
:data:`MAX_PER_KEY` arrays per shape and dtype, and :data:`MAX_BYTES` in all;
past that, free arrays are dropped (oldest shapes first) or the new one is
not cached. :func:`clear` drops every free array.
Per thread. On CuPy (whose own pool does this) and for small arrays,
:func:`empty` is the backend's ``empty``.

Where the cache is on: ``sys.getrefcount`` is an implementation detail
whose meaning CPython documents as changing between versions (gh-132346:
3.14 borrows references on the evaluation stack, so an array still in use
can show a free array's count, and handing it out again would corrupt it
silently). The cache is therefore on only on the CPython versions of
:data:`VERIFIED_CPYTHON`, with the GIL, where tests/test_memory.py checks
the rule; on any other interpreter (a newer CPython, a free-threaded build,
PyPy) :func:`empty` is ``numpy.empty``, the same arrays without reuse.
``SCRATCHGAN_ARRAY_CACHE=0`` turns it off anywhere (``=1`` turns it on
outside the list, to check a new CPython version with tests/test_memory.py
before adding it); the variable is read once, at import. :data:`ENABLED`
says what was decided, :func:`cache_decision` why.
"""

from __future__ import annotations

import os
import sys
import sysconfig
import threading

import numpy as np

from .. import backend

#: Arrays smaller than this come from malloc's free lists, which do not fault: not cached.
MIN_BYTES = 1 << 18
#: Arrays larger than this are not cached: a training step's arrays are far smaller (12.8 MB is the
#: largest activation of the DCGAN step at batch 256); larger ones come from one-off work, such as
#: sampling thousands of images for an evaluation, whose memory should go back to the system.
MAX_ARRAY_BYTES = 32 << 20
#: At most this many arrays of one shape and dtype are cached (live or free).
MAX_PER_KEY = 16
#: At most this many bytes of arrays are cached (live or free) per thread.
MAX_BYTES = 512 << 20

#: The CPython versions (major, minor) on which tests/test_memory.py has checked the reference-count rule;
#: elsewhere the cache is off. Add a version only after that file passes on it with SCRATCHGAN_ARRAY_CACHE=1.
VERIFIED_CPYTHON = frozenset({(3, 10), (3, 11), (3, 12), (3, 13)})
#: The environment variable that overrides the decision: "0" off, "1" on (CPython only), unset or "" the default.
ENV_VAR = "SCRATCHGAN_ARRAY_CACHE"

_local = threading.local()


def cache_decision() -> tuple[bool, str]:
    """Whether the cache may be on in this interpreter, and why: ``(on, reason)``.

    Reads :data:`ENV_VAR`, ``sys.implementation``, ``sys.version_info`` and
    the build's ``Py_GIL_DISABLED`` now; :data:`ENABLED` holds its answer at
    import. A value of :data:`ENV_VAR` other than "0", "1" or "" is a
    ``ValueError``.
    """
    setting = os.environ.get(ENV_VAR, "").strip()
    if setting not in ("", "0", "1"):
        raise ValueError(f"{ENV_VAR} must be 0 (array cache off) or 1 (on), not {setting!r}")
    if setting == "0":
        return False, f"{ENV_VAR}=0"
    if sys.implementation.name != "cpython" or not hasattr(sys, "getrefcount"):
        return False, f"{sys.implementation.name} has no CPython reference counts"
    if setting == "1":
        return True, f"{ENV_VAR}=1"
    if sysconfig.get_config_var("Py_GIL_DISABLED"):
        return False, "a free-threaded CPython build: its reference counts are not checked"
    version = tuple(sys.version_info[:2])
    if version not in VERIFIED_CPYTHON:
        return False, f"CPython {version[0]}.{version[1]} is not in VERIFIED_CPYTHON"
    return True, f"CPython {version[0]}.{version[1]} is verified"


#: Whether :func:`empty` reuses arrays (decided once, at import, by :func:`cache_decision`).
ENABLED = cache_decision()[0]


def _refs(entries: list, i: int) -> int:
    return sys.getrefcount(entries[i])


#: The reference count of an array that only the cache holds, as :func:`_refs` sees it (measured, so that
#: it stays right where the interpreter counts references differently); None without sys.getrefcount.
_FREE_REFS = _refs([np.empty(1)], 0) if hasattr(sys, "getrefcount") else None


def _state():
    state = getattr(_local, "state", None)
    if state is None:
        state = _local.state = {"arrays": {}, "bytes": 0}
    return state


def _take_free(entries: list):
    for i in range(len(entries)):
        if _refs(entries, i) <= _FREE_REFS:
            array = entries.pop(i)
            entries.append(array)  # most recently used last
            return array
    return None


def _drop_free(state, keep_key=None, room: int | None = None) -> None:
    """Drop free arrays, the oldest shapes first (not ``keep_key``'s); with ``room``, only until that many
    more bytes fit under :data:`MAX_BYTES`."""
    arrays = state["arrays"]
    for key in list(arrays):
        if room is not None and state["bytes"] + room <= MAX_BYTES:
            return
        if key == keep_key:
            continue
        entries = arrays[key]
        for i in reversed(range(len(entries))):
            if _refs(entries, i) <= _FREE_REFS:
                state["bytes"] -= entries.pop(i).nbytes
        if not entries:
            del arrays[key]


def empty(shape, dtype):
    """An uninitialised C-contiguous host array, reused from the cache when a free one of this shape exists.

    Parameters
    ----------
    shape : tuple of int
    dtype : numpy dtype

    Returns
    -------
    numpy.ndarray
        Its values are whatever the last user left: write every element.
        With the cache off (:data:`ENABLED`), always a new array.
    """
    shape = tuple(int(v) for v in shape)
    dtype = np.dtype(dtype)
    nbytes = dtype.itemsize
    for v in shape:
        nbytes *= v
    if nbytes < MIN_BYTES or nbytes > MAX_ARRAY_BYTES or not ENABLED:
        return np.empty(shape, dtype)
    state = _state()
    key = (shape, dtype.str)
    entries = state["arrays"].setdefault(key, [])
    array = _take_free(entries)
    if array is not None:
        return array
    array = np.empty(shape, dtype)
    if len(entries) < MAX_PER_KEY:
        if state["bytes"] + nbytes > MAX_BYTES:
            _drop_free(state, keep_key=key, room=nbytes)
        if state["bytes"] + nbytes <= MAX_BYTES:
            entries.append(array)
            state["bytes"] += nbytes
    return array


def empty_like(a, dtype=None):
    """An uninitialised array of ``a``'s shape in ``a``'s memory order (as ``empty_like``), cached on the CPU.

    A dense array in any axis order (a channels-last conv output seen as
    NCHW, say) gets the same order, so that elementwise work on the two
    reads and writes memory in one order. Other layouts (broadcast or
    cropped views) and GPU arrays get the backend's own ``empty_like``.
    """
    xp = backend.array_module(a)
    dtype = a.dtype if dtype is None else np.dtype(dtype)
    if xp is not np or not MIN_BYTES <= a.size * dtype.itemsize <= MAX_ARRAY_BYTES:
        return xp.empty_like(a, dtype=dtype)
    order = sorted(range(a.ndim), key=lambda ax: -abs(a.strides[ax]))  # outermost axis first
    in_order = a.transpose(order)
    if not in_order.flags.c_contiguous:
        return np.empty_like(a, dtype=dtype)
    inverse = [0] * a.ndim
    for position, ax in enumerate(order):
        inverse[ax] = position
    return empty(in_order.shape, dtype).transpose(inverse)


def clear() -> None:
    """Drop the free arrays of this thread's cache (live ones stay with their users)."""
    _drop_free(_state())


def cached_bytes() -> int:
    """Bytes of the arrays this thread's cache holds (live and free)."""
    return _state()["bytes"]
