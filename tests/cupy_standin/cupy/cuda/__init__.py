"""``cupy.cuda``: devices, streams with capture, graphs, events, memory pools (the stand-in's).

Rules modelled (CuPy 13.6 / 14.0):

* ``Stream.begin_capture`` / ``end_capture`` (cupy/cuda/stream.pyx) record
  the launches issued on the stream; a :class:`Graph` replays them
  (cupy/cuda/graph.pyx ``Graph.launch``). Recording runs nothing.
* During a capture, synchronising the stream, the device or an event, and
  copies between host and device fail with cudaErrorStreamCaptureUnsupported
  (CUDA runtime; raised by CuPy as CUDARuntimeError); the capture is then
  invalid and ``end_capture`` fails too (cudaErrorStreamCaptureInvalidated).
* ``runtime.getDeviceCount`` reports ``CUPY_STANDIN_DEVICES`` (default 1);
  ``Device(i).use()`` for ``i`` out of range fails (cudaErrorInvalidDevice).
"""

from __future__ import annotations

import contextlib
import time

from .. import _device
from . import runtime  # noqa: F401
from . import device  # noqa: F401
from .device import Device, get_device_id  # noqa: F401


class Event:
    """A CUDA event: recorded on a stream, waited on, timed (host clock in the stand-in)."""

    def __init__(self, block=False, disable_timing=False, interprocess=False):
        self.ptr = id(self)
        self._time = None

    def record(self, stream=None):
        self._time = time.perf_counter()

    def synchronize(self):
        _device.synchronize("Event.synchronize")

    @property
    def done(self):
        return True


def get_elapsed_time(start_event, end_event):
    """Milliseconds between two recorded events (cupy/cuda/stream.pyx)."""
    return (end_event._time - start_event._time) * 1e3


class Stream:
    """A CUDA stream. ``with stream:`` makes it current; capture records what is issued on it."""

    null = None  # set below

    def __init__(self, null=False, non_blocking=False, ptr=None):
        self._null = null
        self.ptr = 0 if null else id(self)

    def __enter__(self):
        _device._stream_stack.append(self)
        return self

    def __exit__(self, *exc):
        _device._stream_stack.pop()

    def use(self):
        _device._stream_stack.append(self)
        return self

    def synchronize(self):
        _device.synchronize("Stream.synchronize")

    def record(self, event=None):
        event = event if event is not None else Event()
        event.record(self)
        return event

    def wait_event(self, event):
        pass  # ordering only: the stand-in runs launches in issue order

    def is_capturing(self):
        return id(self) in _device._captures

    def begin_capture(self, mode=None):
        if self._null:
            # cudaStreamBeginCapture on the legacy default stream: cudaErrorStreamCaptureUnsupported
            raise _device.CaptureUnsupported("cudaErrorStreamCaptureUnsupported: the null stream cannot capture")
        if id(self) in _device._captures:
            raise _device.CaptureUnsupported("cudaErrorIllegalState: the stream is already capturing")
        _device._captures[id(self)] = _device._CaptureState()

    def end_capture(self):
        state = _device._captures.pop(id(self), None)
        if state is None:
            raise _device.CaptureUnsupported("cudaErrorIllegalState: the stream is not capturing")
        if getattr(state, "invalid", False):
            raise _device.CaptureUnsupported("cudaErrorStreamCaptureInvalidated: the capture was invalidated by an "
                                             "operation not permitted while capturing")
        return Graph(state.launches)


Stream.null = Stream(null=True)


class Graph:
    """An instantiated CUDA graph: ``launch`` replays the recorded kernels in order, one launch from the host."""

    def __init__(self, launches):
        self._launches = list(launches)

    def launch(self, stream=None):
        if _device.capturing_state() is not None:
            raise _device.CaptureUnsupported("the stand-in does not model graphs launched inside a capture")
        _device.count("launches")
        import numpy as np  # noqa: PLC0415

        with np.errstate(all="ignore"):
            for fn in self._launches:
                fn()

    def upload(self, stream=None):
        pass


def get_current_stream(device_id=-1):
    return _device.current_stream()


class MemoryPool:
    """A device memory pool (cupy/cuda/memory.pyx). The stand-in's buffers are NumPy's; this counts nothing."""

    def __init__(self, allocator=None):
        pass

    def malloc(self, size):
        raise NotImplementedError("the stand-in allocates through cupy.empty and friends, not MemoryPool.malloc")

    def used_bytes(self):
        return _device.counts()["live_bytes"]

    def total_bytes(self):
        return _device.counts()["live_bytes"]

    def free_all_blocks(self, stream=None):
        pass

    def set_limit(self, size=None, fraction=None):
        pass


class PinnedMemoryPool(MemoryPool):
    pass


_default_pool = MemoryPool()


@contextlib.contextmanager
def using_allocator(allocator=None):
    yield


def set_allocator(allocator=None):
    pass


def is_available():
    return _device.device_count() > 0


def get_device_id():  # noqa: F811 - the same as device.get_device_id
    return device.get_device_id()


try:  # the one-rank NCCL (cupy.cuda.nccl exists where CuPy found an NCCL library)
    from . import nccl  # noqa: E402,F401
except ImportError:
    pass
