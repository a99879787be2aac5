"""``cupy.cuda.runtime`` (cupy_backends/cuda/api/runtime.pyx, v13.6): the calls scratchgan makes."""

from __future__ import annotations

from .. import _device


class CUDARuntimeError(RuntimeError):
    pass


is_hip = False
_current = [0]


def getDeviceCount():
    return _device.device_count()


def getDevice():
    return _current[0]


def setDevice(device):
    if not 0 <= int(device) < _device.device_count():
        raise CUDARuntimeError("cudaErrorInvalidDevice: invalid device ordinal")
    _current[0] = int(device)


def getDeviceProperties(device):
    if not 0 <= int(device) < _device.device_count():
        raise CUDARuntimeError("cudaErrorInvalidDevice: invalid device ordinal")
    return {"name": b"CuPy stand-in (NumPy on the CPU)", "totalGlobalMem": 80 * 2**30, "major": 9, "minor": 0,
            "multiProcessorCount": 132}


def runtimeGetVersion():
    return 12080


def driverGetVersion():
    return 12080


def deviceSynchronize():
    _device.synchronize("cudaDeviceSynchronize")


def streamIsCapturing(stream):
    return int(stream) in _device._captures  # a Stream's ptr is the key of its capture


def memGetInfo():
    used = _device.counts()["live_bytes"]
    return 80 * 2**30 - used, 80 * 2**30
