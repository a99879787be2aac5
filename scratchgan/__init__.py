"""scratchgan: GANs from scratch on a small NumPy/CuPy autograd engine.

``import scratchgan as sg`` gives the engine API here (``sg.Tensor``,
``sg.grad``, ``sg.no_grad``, ...) and every public submodule as an attribute,
as ``import torch`` does: ``sg.nn``, ``sg.optim``, ``sg.losses``, ``sg.ops``
are imported at once; the heavier ones (``sg.data``, ``sg.metrics``,
``sg.plots``, ``sg.train``, ``sg.models``, ...) on first use.
"""

import importlib

from .tensor import (  # first: the engine and ops build on it
    Tensor, as_tensor, bool_, float32, float64, full, int64, ones, ones_like, tensor, zeros, zeros_like,
)
from . import engine, losses, nn, ops, optim
from .backend import cupy_available, get_backend, set_backend
from .engine import detect_anomaly, enable_grad, grad, is_grad_enabled, no_grad, set_grad_enabled
from .gradcheck import GradcheckError, gradcheck, gradgradcheck
from .random import manual_seed, rand, randint, randn

__version__ = "0.1.0"

# submodules imported on first attribute access (they pull in scipy, matplotlib or the data loaders)
_LAZY_SUBMODULES = (
    "checkpoint", "classifier", "cli", "config", "cuda_graph", "data", "distributed", "image_eval", "metrics", "models",
    "plots",
    "process", "profiler", "runlog", "testing", "train", "validate", "viz",
)
# names of a lazy submodule's function: ``sg.profile()`` is ``scratchgan.profiler.profile()``
_LAZY_FUNCTIONS = {"profile": "profiler"}


def __getattr__(name):
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _LAZY_FUNCTIONS:
        return getattr(importlib.import_module(f".{_LAZY_FUNCTIONS[name]}", __name__), name)
    raise AttributeError(f"module 'scratchgan' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY_SUBMODULES) | set(_LAZY_FUNCTIONS))


__all__ = [
    "GradcheckError", "Tensor", "as_tensor", "bool_", "float32", "float64", "int64", "cupy_available", "detect_anomaly", "enable_grad", "engine", "full",
    "get_backend", "grad", "gradcheck", "gradgradcheck", "is_grad_enabled", "losses", "manual_seed", "nn",
    "no_grad", "ones", "ones_like", "ops", "optim", "rand", "randint", "randn", "set_backend", "set_grad_enabled",
    "tensor", "zeros", "zeros_like",
]
