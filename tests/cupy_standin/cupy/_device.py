"""The stand-in's model of one GPU: memory, counters, streams and capture.

Everything a real device does asynchronously is modelled by *launches*: a
launch is a Python closure that writes into device buffers (NumPy arrays
that only this package hands out). Outside a capture a launch runs at once;
while the current stream captures, it is recorded into the stream's graph
and runs only when the graph is launched, as on a GPU, where recording a
capture runs nothing.

The counters (:func:`counts`) are what the tests and ``CUPY_STANDIN_REPORT``
read: ``device_to_host`` and ``host_to_device`` copies, ``syncs`` (host waits
for the device), ``launches`` (kernel launches from the host, a graph launch
counting one), and ``live_bytes`` / ``peak_bytes`` of device memory in use.
"""

from __future__ import annotations

import atexit
import json
import os
import weakref

import numpy as np

_COUNTER_NAMES = ("device_to_host", "host_to_device", "syncs", "launches")
_counts = dict.fromkeys(_COUNTER_NAMES, 0)
_memory = {"live_bytes": 0, "peak_bytes": 0}
_allocations: dict = {}  # id of a weak reference to a live buffer -> (that reference, nbytes)


class CaptureUnsupported(RuntimeError):
    """What the CUDA runtime reports for an operation a capturing stream does not allow.

    cudaErrorStreamCaptureUnsupported (900) / cudaErrorStreamCaptureInvalidated
    (901); CuPy raises them as ``CUDARuntimeError`` (cupy_backends/cuda/api/runtime.pyx,
    v13.6), a subclass of RuntimeError, which this models.
    """


def count(name: str, n: int = 1) -> None:
    _counts[name] += n


def counts() -> dict:
    """The counters: transfers each way, syncs, launches, live and peak device bytes."""
    return {**_counts, **_memory}


def reset() -> None:
    """Zero the counters; the peak restarts from the memory in use now."""
    for name in _COUNTER_NAMES:
        _counts[name] = 0
    _memory["peak_bytes"] = _memory["live_bytes"]


def device_count() -> int:
    """``CUPY_STANDIN_DEVICES`` (default 1): how many GPUs the runtime reports."""
    return int(os.environ.get("CUPY_STANDIN_DEVICES", "1"))


# --------------------------------------------------------------------------- memory

_GARBAGE = {"f": np.nan, "c": np.nan, "i": -0x5A5A5A5A, "u": 0x5A5A5A5A, "b": True}


def allocate(shape, dtype, order="C") -> np.ndarray:
    """A new device buffer. Its contents are garbage (NaN for floats), as memory from a pool is."""
    buf = np.empty(shape, dtype=dtype, order=order)
    fill = _GARBAGE.get(buf.dtype.kind)
    if fill is not None and buf.size:
        buf.fill(np.array(fill).astype(buf.dtype) if buf.dtype.kind in "iu" else fill)
    track(buf)
    return buf


def track(buf: np.ndarray) -> np.ndarray:
    """Count ``buf`` (a fresh NumPy array the stand-in owns) as device memory until it is freed."""
    nbytes = buf.nbytes
    live = _memory["live_bytes"] = _memory["live_bytes"] + nbytes
    if live > _memory["peak_bytes"]:
        _memory["peak_bytes"] = live
    ref = weakref.ref(buf, _free)
    _allocations[id(ref)] = (ref, nbytes)  # a weak reference to an array is not hashable: keyed by its id
    return buf


def _free(ref) -> None:
    entry = _allocations.pop(id(ref), None)
    if entry is not None:
        _memory["live_bytes"] -= entry[1]


def memory_at(ptr: int, nbytes: int) -> np.ndarray:
    """The device bytes ``[ptr, ptr + nbytes)`` as a uint8 NumPy view, if one live allocation holds them.

    A pointer outside every live allocation is what a kernel would turn into
    an illegal memory access (cudaErrorIllegalAddress): raised here at once.
    """
    for ref, size in list(_allocations.values()):
        buf = ref()
        if buf is None:
            continue
        address = buf.__array_interface__["data"][0]
        if address <= ptr and ptr + nbytes <= address + size:
            raw = buf.reshape(-1, order="A").view(np.uint8)  # a fresh buffer is C- or F-contiguous: a view
            return raw[ptr - address:ptr - address + nbytes]
    raise RuntimeError(f"cudaErrorIllegalAddress: an illegal memory access ({nbytes} bytes at {ptr:#x} "
                       "lie in no live device allocation)")


# --------------------------------------------------------------------------- streams and capture

class _CaptureState:
    """One capture in progress: the launches recorded so far."""

    def __init__(self):
        self.launches: list = []


_stream_stack: list = []  # streams entered with ``with stream:``; the null stream when empty
_captures: dict = {}  # id(stream) -> _CaptureState while it captures


def current_stream():
    from .cuda import Stream  # noqa: PLC0415 - cycle: cuda.Stream uses this module

    return _stream_stack[-1] if _stream_stack else Stream.null


def capturing_state():
    """The capture the current stream is recording, or None."""
    return _captures.get(id(current_stream()))


def any_capture() -> bool:
    return bool(_captures)


def refuse_in_capture(what: str) -> None:
    """Host transfers and synchronisations are not allowed while a stream captures (CUDA runtime rules).

    cudaMemcpy / cudaStreamSynchronize / cudaDeviceSynchronize on or during a
    capture return cudaErrorStreamCaptureUnsupported and invalidate the
    capture (CUDA Runtime API, "Stream capture"; CuPy 13.6 raises them as
    CUDARuntimeError from cupy_backends/cuda/api/runtime.pyx).
    """
    if _captures:
        for state in _captures.values():
            state.invalid = True
        raise CaptureUnsupported(f"cudaErrorStreamCaptureUnsupported: {what} is not permitted when the stream "
                                 "is capturing")


def launch(fn) -> None:
    """One kernel launch: run it now, or record it into the capturing stream's graph."""
    state = capturing_state()
    if state is not None:
        state.launches.append(fn)
        return
    _counts["launches"] += 1
    with np.errstate(all="ignore"):
        fn()


def device_to_host(what: str) -> None:
    """A copy to the host (a synchronising cudaMemcpy): counted, refused during a capture."""
    refuse_in_capture(what)
    _counts["device_to_host"] += 1


def host_to_device(what: str) -> None:
    """A copy from the host: counted, refused during a capture."""
    refuse_in_capture(what)
    _counts["host_to_device"] += 1


def synchronize(what: str) -> None:
    refuse_in_capture(what)
    _counts["syncs"] += 1


# --------------------------------------------------------------------------- the report

def _write_report() -> None:
    path = os.environ.get("CUPY_STANDIN_REPORT")
    if path:
        with open(path, "w") as f:
            json.dump(counts(), f)


atexit.register(_write_report)
