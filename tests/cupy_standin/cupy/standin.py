"""What the stand-in counted, and the device memory behind a pointer.

* :func:`counts`: ``device_to_host``, ``host_to_device``, ``syncs``,
  ``launches``, ``live_bytes``, ``peak_bytes``;
* :func:`reset`: zero them (the peak restarts from the bytes in use);
* :func:`array_at`: the bytes at a device address, for code that works on
  raw pointers (cuBLAS through ctypes, NCCL).
"""

from __future__ import annotations

from ._device import counts, device_count, memory_at, reset  # noqa: F401


def array_at(ptr: int, nbytes: int):
    """The live device bytes ``[ptr, ptr + nbytes)`` as a writable uint8 NumPy view (raises outside them)."""
    return memory_at(int(ptr), int(nbytes))


def capturing() -> bool:
    """True while the current stream records a graph."""
    from ._device import capturing_state  # noqa: PLC0415

    return capturing_state() is not None
