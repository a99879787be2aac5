"""The Tensor's operators and math methods (``a + b``, ``a @ b``, ``a.sum()``): each one op of this package.

:class:`~scratchgan.autograd.tensor.Tensor` lives one layer below the ops and
does not import them; :func:`attach` copies the methods of
:class:`TensorMethods` onto it when :mod:`scratchgan.ops` is imported (which
``import scratchgan`` does).
"""

from __future__ import annotations

import numpy as np

from .activation import relu, sigmoid, tanh
from .arith import abs as abs_, add, clip, div, eq, exp, ge, gt, le, log, lt, matmul, mul, ne, neg, pow as pow_, sqrt, sub
from .reduce import max as max_, mean, min as min_, sum as sum_
from .shape import astype, getitem, reshape, transpose
from .softmax import log_softmax, softmax


class TensorMethods:
    """The methods :func:`attach` gives the Tensor; each calls the op of the same name."""

    # ---- operators (NumPy-style broadcasting)
    def __add__(self, other):
        return add(self, other)

    def __radd__(self, other):
        return add(other, self)

    def __sub__(self, other):
        return sub(self, other)

    def __rsub__(self, other):
        return sub(other, self)

    def __mul__(self, other):
        return mul(self, other)

    def __rmul__(self, other):
        return mul(other, self)

    def __truediv__(self, other):
        return div(self, other)

    def __rtruediv__(self, other):
        return div(other, self)

    def __neg__(self):
        return neg(self)

    def __pow__(self, other):
        return pow_(self, other)

    def __rpow__(self, other):
        return pow_(other, self)

    def __matmul__(self, other):
        return matmul(self, other)

    def __rmatmul__(self, other):
        return matmul(other, self)

    def __getitem__(self, index):
        return getitem(self, index)

    def __lt__(self, other):
        return lt(self, other)

    def __le__(self, other):
        return le(self, other)

    def __gt__(self, other):
        return gt(self, other)

    def __ge__(self, other):
        return ge(self, other)

    def __eq__(self, other):
        return eq(self, other)

    def __ne__(self, other):
        return ne(self, other)

    # ---- methods mirroring the functions of this package
    def exp(self):
        return exp(self)

    def log(self):
        return log(self)

    def sqrt(self):
        return sqrt(self)

    def abs(self):
        return abs_(self)

    def tanh(self):
        return tanh(self)

    def sigmoid(self):
        return sigmoid(self)

    def relu(self):
        return relu(self)

    def softmax(self, axis=-1):
        return softmax(self, axis=axis)

    def log_softmax(self, axis=-1):
        return log_softmax(self, axis=axis)

    def sum(self, axis=None, keepdims=False):
        return sum_(self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims=False):
        return mean(self, axis=axis, keepdims=keepdims)

    def max(self, axis=None, keepdims=False):
        return max_(self, axis=axis, keepdims=keepdims)

    def min(self, axis=None, keepdims=False):
        return min_(self, axis=axis, keepdims=keepdims)

    def reshape(self, *shape):
        return reshape(self, shape[0] if len(shape) == 1 and not isinstance(shape[0], int) else shape)

    def transpose(self, *axes):
        return transpose(self, axes[0] if len(axes) == 1 and not isinstance(axes[0], int) else (axes or None))

    @property
    def T(self):
        return transpose(self)

    def clip(self, min=None, max=None):  # noqa: A002
        return clip(self, min, max)

    def astype(self, dtype):
        return astype(self, dtype)

    def float(self):
        """Cast to float32 (differentiable)."""
        return astype(self, np.float32)

    def double(self):
        """Cast to float64 (differentiable)."""
        return astype(self, np.float64)


#: class attributes that are not methods to copy
_NOT_METHODS = {"__module__", "__qualname__", "__doc__", "__dict__", "__weakref__", "__hash__"}


def attach(tensor_class) -> None:
    """Copy :class:`TensorMethods`'s methods onto ``tensor_class``."""
    for name, member in vars(TensorMethods).items():
        if name not in _NOT_METHODS:
            setattr(tensor_class, name, member)
