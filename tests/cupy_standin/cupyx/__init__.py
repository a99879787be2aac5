"""``cupyx`` of the CuPy stand-in: ``scatter_add`` (cupyx/_scatter.py, v13.6)."""

from __future__ import annotations

import numpy as np

from cupy import _array, _device


def scatter_add(a, slices, value):
    """In place ``a[slices] += value`` with repeated indices added up; indices wrap as CuPy's do."""
    if isinstance(value, np.ndarray):
        raise _array._unsupported(value)
    make_key, _ = _array.index_key(slices, a.shape)
    target = a._a
    source = value._a if isinstance(value, _array.ndarray) else value
    _device.launch(lambda: np.add.at(target, make_key(), source))


def scatter_max(a, slices, value):
    make_key, _ = _array.index_key(slices, a.shape)
    target, source = a._a, (value._a if isinstance(value, _array.ndarray) else value)
    _device.launch(lambda: np.maximum.at(target, make_key(), source))
