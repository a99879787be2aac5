"""scratchgan: GANs from scratch on a small NumPy/CuPy autograd engine.

``import scratchgan as sg`` gives the engine API here (``sg.Tensor``,
``sg.grad``, ``sg.no_grad``, ...) and every public submodule as an attribute,
as ``import torch`` does: ``sg.nn``, ``sg.optim``, ``sg.losses``, ``sg.ops``
are imported at once; the heavier ones (``sg.data``, ``sg.metrics``,
``sg.plots``, ``sg.train``, ``sg.models``, ...) on first use.

The package is in layers; a module imports only from its own layer and the
ones below (tests/test_layers.py checks it):

======  ==============  ===========================================================
layer   folder          what it holds
======  ==============  ===========================================================
0       ``backend/``    NumPy or CuPy, transfers, argument checks, device random numbers
1       ``autograd/``   the Tensor, graph recording, the backward walk, gradcheck
2       ``ops/``        each op's definition: its math and its backward rule
3       ``accel/``      faster ways to compute the ops (checked against ``ops/``)
4       ``nn/``         modules and layers
5       ``optim/``      optimizers
6       ``gan/``        objectives and penalties, models, auxiliary heads, metrics
7       ``study/``,     drawing and timing graphs; property tests of GAN losses
        ``testing/``
8       ``app/``        data, config, run folder, checkpoints, Trainer, CLI
======  ==============  ===========================================================
"""


import importlib

from . import _old_paths

_old_paths.install()  # import scratchgan.train (say) keeps working: see docs/conventions.md

from .autograd.tensor import Tensor, as_tensor, bool_, float32, float64, full, int64, ones, ones_like, tensor, zeros, zeros_like
from .autograd import engine
from .gan import losses
from . import nn, ops, optim
from . import accel  # registers the ops' accelerations (scratchgan/accel/)
from .backend import cupy_available, get_backend, set_backend
from .autograd.engine import detect_anomaly, enable_grad, grad, is_grad_enabled, no_grad, set_grad_enabled
from .autograd.fastpath import is_reference_mode, reference_mode
from .autograd.gradcheck import GradcheckError, gradcheck, gradgradcheck
from .autograd.random import manual_seed, rand, randint, randn

from ._version import __version__  # noqa: E402

# submodules imported on first attribute access (they pull in scipy, matplotlib or the data loaders)
_LAZY_SUBMODULES = {
    name: new for name, new in ((old.removeprefix("scratchgan."), new) for old, new in _old_paths.OLD_PATHS.items())
    if "." not in name
}
_LAZY_SUBMODULES.update({name: f"scratchgan.{name}" for name in ("testing", "accel", "app", "gan", "study")})
# names of a lazy submodule's function: ``sg.profile()`` is ``scratchgan.study.profiler.profile()``
_LAZY_FUNCTIONS = {"profile": "profiler"}


def __getattr__(name):
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(_LAZY_SUBMODULES[name])
    if name in _LAZY_FUNCTIONS:
        return getattr(importlib.import_module(_LAZY_SUBMODULES[_LAZY_FUNCTIONS[name]]), name)
    raise AttributeError(f"module 'scratchgan' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY_SUBMODULES) | set(_LAZY_FUNCTIONS))


__all__ = [
    "GradcheckError", "Tensor", "as_tensor", "bool_", "float32", "float64", "int64", "cupy_available", "detect_anomaly", "enable_grad", "engine", "full",
    "get_backend", "grad", "gradcheck", "gradgradcheck", "is_reference_mode", "reference_mode", "is_grad_enabled", "losses", "manual_seed", "nn",
    "no_grad", "ones", "ones_like", "ops", "optim", "rand", "randint", "randn", "set_backend", "set_grad_enabled",
    "tensor", "zeros", "zeros_like",
]
