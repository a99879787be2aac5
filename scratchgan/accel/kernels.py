"""Fused CuPy kernels for the hot elementwise chains (GPU only).

On the GPU the cost of a small training step is the number of kernel
launches, not the arithmetic: Adam written with array operations is about 13
launches per parameter, the fused kernel below is one. Each kernel is built
on first use (CuPy compiles and caches it) and has a NumPy reference of the
same arithmetic, which the CuPy tests compare it with.

CuPy is reached through :mod:`scratchgan.backend` (the only module that
imports it), so importing this module costs nothing on a CPU-only machine.
"""

from __future__ import annotations

import numpy as np

from .. import backend

_kernels: dict = {}


def _elementwise_kernel(name: str, in_params: str, out_params: str, body: str):
    """The CuPy ElementwiseKernel ``scratchgan_<name>``, built on first use and cached."""
    kernel = _kernels.get(name)
    if kernel is None:
        cupy = backend._import_cupy()
        kernel = _kernels[name] = cupy.ElementwiseKernel(in_params, out_params, body, f"scratchgan_{name}")
    return kernel


# One Adam update of one parameter, PyTorch's order of operations (see optim.Adam).
# The step count ``t`` and the learning rate are read from one-element device
# arrays, not passed as numbers: a CUDA graph replays a kernel with the
# arguments it was captured with, so anything that changes between steps must
# live in device memory (this is what PyTorch calls a "capturable" optimizer).
_ADAM_BODY = """
const double tt = t[0];
const double bias_correction1 = 1.0 - pow(beta1, tt);
const double bias_correction2_sqrt = sqrt(1.0 - pow(beta2, tt));
T grad = g;
if (weight_decay != 0.0) grad += (T)weight_decay * p;
m = m * (T)beta1 + grad * (T)(1.0 - beta1);
v = v * (T)beta2 + (grad * grad) * (T)(1.0 - beta2);
const T denom = sqrt(v) / (T)bias_correction2_sqrt + (T)eps;
p -= (T)(lr[0] / bias_correction1) * (m / denom);
"""


def adam_update(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay) -> None:
    """One fused Adam update, in place on ``param``, ``exp_avg`` and ``exp_avg_sq`` (CuPy arrays).

    ``step`` and ``lr`` are one-element float64 device arrays holding ``t``
    (this update's count, already incremented) and the learning rate.
    """
    kernel = _elementwise_kernel(
        "adam", "T g, raw float64 t, raw float64 lr, float64 beta1, float64 beta2, float64 eps, float64 weight_decay",
        "T p, T m, T v", _ADAM_BODY)
    kernel(grad, step, lr, float(beta1), float(beta2), float(eps), float(weight_decay),
                   param, exp_avg, exp_avg_sq)


def adam_update_reference(param, grad, exp_avg, exp_avg_sq, t, lr, beta1, beta2, eps, weight_decay) -> None:
    """The kernel's arithmetic with NumPy (float64 scalars, ``T`` arrays), for the tests."""
    dtype = param.dtype.type
    bias_correction1 = 1.0 - beta1 ** t
    bias_correction2_sqrt = np.sqrt(1.0 - beta2 ** t)
    grad = grad + dtype(weight_decay) * param if weight_decay != 0 else grad
    exp_avg[...] = exp_avg * dtype(beta1) + grad * dtype(1.0 - beta1)
    exp_avg_sq[...] = exp_avg_sq * dtype(beta2) + (grad * grad) * dtype(1.0 - beta2)
    denom = np.sqrt(exp_avg_sq) / dtype(bias_correction2_sqrt) + dtype(eps)
    param -= dtype(lr / bias_correction1) * (exp_avg / denom)


def relu_grad(g, x):
    """``g * (x > 0)`` in one kernel (CuPy); NumPy would need the mask as a temporary."""
    return _elementwise_kernel("relu_grad", "T g, T x", "T out", "out = x > (T)0 ? g : (T)0")(g, x)


def bias_relu_(y, b) -> None:
    """In place ``y = max(y + b, 0)`` (``b`` broadcast over rows) in one kernel (CuPy)."""
    _elementwise_kernel("bias_relu", "T b", "T y", "T a = y + b; y = a > (T)0 ? a : (T)0")(b, y)
