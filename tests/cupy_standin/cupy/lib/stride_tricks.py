"""``cupy.lib.stride_tricks`` (cupy/lib/stride_tricks.py, v13.6): views, no kernels."""

from __future__ import annotations

import numpy as np

from .. import _array


def as_strided(x, shape=None, strides=None):
    return _array.wrap(np.lib.stride_tricks.as_strided(_array.unwrap(x), shape=shape, strides=strides))


def broadcast_to(array, shape):
    return _array.wrap(np.broadcast_to(_array.unwrap(array), shape))


def sliding_window_view(x, window_shape, axis=None):
    return _array.wrap(np.lib.stride_tricks.sliding_window_view(_array.unwrap(x), window_shape, axis=axis))
