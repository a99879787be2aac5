"""Differentiable ops, grouped by family; each module keeps an op next to its rule."""

from .arith import (
    abs, add, clip, div, eq, exp, ge, gt, le, linear, linear_relu, log, lt, matmul, maximum, minimum, mul, ne, neg, pow, sqrt, sub, where,
)
from .activation import leaky_relu, log_sigmoid, mean_softplus, relu, sigmoid, softplus, tanh
from .reduce import max, mean, min, sum
from .shape import astype, broadcast_to, concatenate, getitem, index_add_zeros, reshape, swapaxes, transpose

__all__ = [
    "abs", "add", "astype", "broadcast_to", "clip", "concatenate", "div", "eq", "exp", "ge", "getitem", "gt",
    "index_add_zeros", "le", "leaky_relu", "linear", "linear_relu", "log", "log_sigmoid", "lt", "matmul", "max", "maximum", "mean", "mean_softplus", "min",
    "minimum", "mul", "ne", "neg", "pow", "relu", "reshape", "sigmoid", "softplus", "sqrt", "sub", "sum",
    "swapaxes", "tanh", "transpose", "where",
]
