"""Differentiable ops, grouped by family; each module keeps an op next to its rule.

Dependencies run one way: ``shape`` <- ``arith`` <- ``reduce``, ``activation``
<- ``fused``; ``reduce`` <- ``conv``, ``softmax``, ``norm`` (no import cycle inside the package).
"""

from .arith import abs, add, clip, div, eq, exp, ge, gt, le, log, lt, matmul, maximum, minimum, mul, ne, neg, pow, sqrt, sub, where
from .activation import leaky_relu, log_sigmoid, relu, sigmoid, softplus, tanh
from .conv import conv2d, conv2d_weight, conv_transpose2d
from .fused import linear, linear_relu, mean_softplus
from .norm import batch_norm
from .reduce import max, mean, min, sum
from .softmax import log_softmax, softmax
from .shape import astype, broadcast_to, concatenate, getitem, index_add_zeros, reshape, swapaxes, transpose
from . import tensor_methods
from ..autograd.tensor import Tensor

tensor_methods.attach(Tensor)  # a + b, a @ b, a.sum(), ...: see tensor_methods.py

__all__ = [
    "abs", "add", "astype", "batch_norm", "broadcast_to", "clip", "concatenate", "conv2d", "conv2d_weight", "conv_transpose2d", "div", "eq", "exp", "ge", "getitem", "gt",
    "index_add_zeros", "le", "leaky_relu", "linear", "linear_relu", "log", "log_sigmoid", "log_softmax", "lt", "matmul", "max", "maximum", "mean", "mean_softplus", "min",
    "minimum", "mul", "ne", "neg", "pow", "relu", "reshape", "sigmoid", "softmax", "softplus", "sqrt", "sub", "sum",
    "swapaxes", "tanh", "transpose", "where",
]
