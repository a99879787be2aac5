"""``cupy.linalg``: cuBLAS / cuSOLVER underneath, so refused while a stream captures (see cupy.matmul)."""

from __future__ import annotations

import numpy as np

from . import _array, _device


def _refuse(library):
    if _device.capturing_state() is not None:
        raise NotImplementedError(f"calling {library} API during stream capture is currently unsupported")


def norm(x, ord=None, axis=None, keepdims=False):
    # cupy/linalg/_norms.py: vector norms and 'fro' are elementwise + reduction kernels; matrix 2-norms use SVD
    if ord in (2, -2, "nuc") and (x.ndim == 2 and axis is None or isinstance(axis, tuple)):
        _refuse("cuSOLVER")
    return _array.call(lambda a: np.linalg.norm(a, ord=ord, axis=axis, keepdims=keepdims), (x,))


def _solver(name):
    def routine(*args, **kwargs):
        _refuse("cuSOLVER")
        return _array.call(getattr(np.linalg, name), args, kwargs)
    routine.__name__ = name
    return routine


for _name in ("svd", "qr", "cholesky", "eigh", "eigvalsh", "inv", "pinv", "solve", "det", "slogdet", "lstsq"):
    globals()[_name] = _solver(_name)
