"""Op forwards that use a fused CuPy kernel (:mod:`scratchgan.accel.kernels`) on the GPU.

On the GPU a small step's cost is its number of kernel launches: a chain of
elementwise operations written as one kernel saves launches and temporaries.
Each function is registered (``register_forward``, see
:mod:`scratchgan.autograd.fastpath`) against the definition in
:mod:`scratchgan.ops` it computes; on NumPy it calls the definition. The op
table checks each against its definition on the CuPy stand-in
(``PYTHONPATH=tests/cupy_standin python -m pytest -m gpu tests/test_ops.py``).
The first-order backwards that use a kernel (ReLU's masked gradient) are in
:mod:`scratchgan.accel.first_order`.
"""

from __future__ import annotations

import numpy as np

from .. import backend
from ..autograd.fastpath import register_forward
from ..ops import fused
from . import kernels


def linear_relu_forward(x, weight, bias):
    """``fused.linear_relu_forward`` with the bias add and the ReLU as one kernel on CuPy."""
    if backend.array_module(x) is np:
        return fused.linear_relu_forward(x, weight, bias)
    y = backend.matmul(x, weight)
    kernels.bias_relu_(y, bias)
    return y


register_forward(fused.linear_relu_forward, linear_relu_forward, op="linear_relu")
