"""The stand-in's ufuncs: NumPy's, with CuPy's operand rules and C-contiguous outputs.

cupy/_core/_kernel.pyx (v13.6), ``ufunc.__call__``: operands are device
arrays or scalars (``_preprocess_arg`` raises "Unsupported type" for a
NumPy array or a list); outputs are allocated C-contiguous.
"""

from __future__ import annotations

import numpy as np

from . import _array, _device


class ufunc:
    """A NumPy ufunc run as a device kernel."""

    def __init__(self, np_ufunc):
        self._u = np_ufunc
        self.__name__ = np_ufunc.__name__
        self.nin, self.nout, self.nargs = np_ufunc.nin, np_ufunc.nout, np_ufunc.nargs

    def _check(self, args):
        for x in args:  # device arrays and scalars only: a NumPy array, a list or anything else is refused
            if not isinstance(x, (_array.ndarray, int, float, complex, bool, np.generic)) and x is not None:
                raise _array._unsupported(x)

    def __call__(self, *args, out=None, dtype=None, casting="same_kind", **kwargs):
        self._check(args)
        if isinstance(out, tuple) and len(out) == 1:
            out = out[0]
        options = {"casting": casting, **kwargs}
        if dtype is not None:
            options["dtype"] = dtype
        if out is not None:
            if not isinstance(out, _array.ndarray):
                raise TypeError(f"output must be a cupy.ndarray, got {type(out)}")
            return _array.call(self._u, args, {**options, "out": out})
        np_args = [a._a if a.__class__ is _array.ndarray else a for a in args]
        if _device.capturing_state() is None:  # the common case, kept short: a ufunc's output is always new
            result = self._u(*np_args, order="C", **options)
            _device.count("launches")
            if isinstance(result, tuple):
                return tuple(_array.wrap(_device.track(np.asarray(r))) for r in result)
            return _array.wrap(_device.track(np.asarray(result)))
        return _array.call(lambda *a: self._u(*a, order="C", **options), args, c_order=True)

    def reduce(self, array, axis=0, dtype=None, out=None, keepdims=False):
        self._check((array,))
        return _array.call(lambda a: self._u.reduce(a, axis=axis, dtype=dtype, keepdims=keepdims), (array,))

    def at(self, a, indices, b=None):
        # ufunc.at (CuPy >= 13: add.at, subtract.at, maximum.at, minimum.at): scatter with repeats
        make_key, _ = _array.index_key(indices, a.shape)
        target = a._a
        source = b._a if isinstance(b, _array.ndarray) else b
        if isinstance(b, np.ndarray):
            raise _array._unsupported(b)
        _device.launch(lambda: self._u.at(target, make_key(), source) if b is not None
                       else self._u.at(target, make_key()))

    def __repr__(self):
        return f"<ufunc '{self.__name__}'>"


for _name in dir(np):
    _obj = getattr(np, _name)
    if isinstance(_obj, np.ufunc):
        globals()[_name] = ufunc(_obj)
