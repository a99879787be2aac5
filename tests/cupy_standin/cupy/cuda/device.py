"""``cupy.cuda.device`` (cupy/cuda/device.pyx, v13.6): devices and the per-device cuBLAS handle."""

from __future__ import annotations

from .. import _device
from . import runtime


class Device:
    def __init__(self, device=None):
        self.id = runtime.getDevice() if device is None else int(device)
        self._previous = []

    def use(self):
        runtime.setDevice(self.id)

    def __enter__(self):
        self._previous.append(runtime.getDevice())
        runtime.setDevice(self.id)
        return self

    def __exit__(self, *exc):
        runtime.setDevice(self._previous.pop())

    def synchronize(self):
        _device.synchronize("Device.synchronize")

    @property
    def compute_capability(self):
        return "90"

    def __int__(self):
        return self.id

    def __eq__(self, other):
        return isinstance(other, Device) and other.id == self.id

    def __hash__(self):
        return hash(self.id)

    def __repr__(self):
        return f"<CUDA Device {self.id}>"


def get_device_id():
    return runtime.getDevice()


_handles: dict = {}


def get_cublas_handle():
    """CuPy's cuBLAS handle for the current device (an opaque integer)."""
    from cupy_backends.cuda.libs import cublas  # noqa: PLC0415

    dev = runtime.getDevice()
    if dev not in _handles:
        _handles[dev] = cublas.create()
    return _handles[dev]
