"""scratchgan: GANs from scratch on a small NumPy/CuPy autograd engine.

The public engine API lives here; layers, losses and optimizers are in
:mod:`scratchgan.nn`, :mod:`scratchgan.losses` and :mod:`scratchgan.optim`.
"""

from . import ops
from .backend import cupy_available, get_backend, set_backend
from .gradcheck import GradcheckError, gradcheck, gradgradcheck
from .tensor import (
    Tensor, detect_anomaly, enable_grad, grad, is_grad_enabled, no_grad, ones, ones_like, set_grad_enabled,
    tensor, zeros, zeros_like,
)

__version__ = "0.1.0"

__all__ = [
    "GradcheckError", "Tensor", "cupy_available", "detect_anomaly", "enable_grad", "get_backend", "grad",
    "gradcheck", "gradgradcheck", "is_grad_enabled", "no_grad", "ones", "ones_like", "ops", "set_backend",
    "set_grad_enabled", "tensor", "zeros", "zeros_like",
]
