"""Weight initializers, drawn on the host (PyTorch's names).

Every initializer takes ``rng``: a numpy.random.Generator, an int seed, or None
for the global generator that :func:`scratchgan.manual_seed` reseeds (the policy
of :func:`scratchgan.backend.validate.as_generator`).
"""

from __future__ import annotations

import math

import numpy as np

from .. import backend
from ..autograd.tensor import Tensor
from ..backend.validate import as_generator
from .module import LINEAR_INITS

# --------------------------------------------------------------------------- initializers


def calculate_fans(shape) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight in this library's ``(in, out)`` layout.

    For 2-D ``(in, out)``: ``fan_in = in``, ``fan_out = out``. For more axes
    the last is the output axis and the others multiply into ``fan_in``.
    """
    shape = tuple(shape)
    if len(shape) < 2:
        raise ValueError(f"fan in and fan out need a weight with at least 2 axes, got shape {shape}")
    return int(np.prod(shape[:-1])), int(shape[-1])


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """Recommended gain (as ``torch.nn.init.calculate_gain``).

    ``linear``/``sigmoid``: 1; ``tanh``: 5/3; ``relu``: sqrt(2);
    ``leaky_relu`` with slope ``a`` (default 0.01): sqrt(2 / (1 + a^2)).
    """
    if nonlinearity in ("linear", "identity", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3.0
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        a = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1.0 + a * a))
    raise ValueError(f"unsupported nonlinearity {nonlinearity!r}; use linear, sigmoid, tanh, relu or leaky_relu")


def _target(tensor):
    if isinstance(tensor, Tensor):
        return tensor.data
    backend.array_module(tensor)
    return tensor


def _write(tensor, host: np.ndarray):
    """Copy host values into ``tensor`` (a Tensor or array) in place, on its backend; returns it."""
    target = _target(tensor)
    target[...] = backend.array_module(target).asarray(host.astype(target.dtype))
    return tensor


def uniform_(tensor, a: float = 0.0, b: float = 1.0, *, rng=None):
    """Fill in place with ``U(a, b)`` drawn on the host by ``rng`` (``torch.nn.init.uniform_``'s arguments)."""
    rng = as_generator(rng, "uniform_")
    return _write(tensor, rng.uniform(a, b, size=_target(tensor).shape))


def normal_(tensor, mean: float = 0.0, std: float = 1.0, *, rng=None):
    """Fill in place with ``N(mean, std^2)`` drawn on the host by ``rng``.

    The DCGAN initialization is ``normal_(w, 0.0, 0.02)`` (Radford et al. 2016).
    """
    rng = as_generator(rng, "normal_")
    if std < 0:
        raise ValueError(f"normal_: std must be >= 0, got {std}")
    return _write(tensor, rng.normal(mean, std, size=_target(tensor).shape))


def constant_(tensor, value: float):
    """Fill in place with ``value``."""
    target = _target(tensor)
    target[...] = value
    return tensor


def zeros_(tensor):
    """Fill in place with zeros."""
    return constant_(tensor, 0.0)


def ones_(tensor):
    """Fill in place with ones."""
    return constant_(tensor, 1.0)


def xavier_uniform_(tensor, gain: float = 1.0, *, rng=None):
    """Glorot/Xavier uniform (Glorot & Bengio 2010), in place.

    ``W ~ U(-a, a)`` with ``a = gain * sqrt(6 / (fan_in + fan_out))``, which
    gives ``Var(W) = gain^2 * 2 / (fan_in + fan_out)``.
    """
    fan_in, fan_out = calculate_fans(_target(tensor).shape)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return _write(tensor, as_generator(rng, "xavier_uniform_").uniform(-bound, bound, size=_target(tensor).shape))


def xavier_normal_(tensor, gain: float = 1.0, *, rng=None):
    """Glorot/Xavier normal, in place: ``W ~ N(0, std^2)``, ``std = gain * sqrt(2 / (fan_in + fan_out))``."""
    fan_in, fan_out = calculate_fans(_target(tensor).shape)
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    return _write(tensor, as_generator(rng, "xavier_normal_").normal(0.0, std, size=_target(tensor).shape))


def _kaiming_std(shape, a, mode, nonlinearity) -> float:
    fan_in, fan_out = calculate_fans(shape)
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan = fan_in if mode == "fan_in" else fan_out
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", *, rng=None):
    """He/Kaiming uniform (He et al. 2015), in place.

    ``W ~ U(-b, b)`` with ``b = gain * sqrt(3 / fan)``, ``gain =
    calculate_gain(nonlinearity, a)`` and ``fan`` the fan-in (default) or
    fan-out; so ``std(W) = gain / sqrt(fan)``. With ``a = sqrt(5)`` this is
    PyTorch's Linear default, ``b = 1 / sqrt(fan_in)``.
    """
    bound = math.sqrt(3.0) * _kaiming_std(_target(tensor).shape, a, mode, nonlinearity)
    return _write(tensor, as_generator(rng, "kaiming_uniform_").uniform(-bound, bound, size=_target(tensor).shape))


def kaiming_normal_(tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", *, rng=None):
    """He/Kaiming normal (He et al. 2015), in place: ``W ~ N(0, (gain / sqrt(fan))^2)``.

    With the defaults (``a = 0``) the gain is sqrt(2), the ReLU value.
    """
    std = _kaiming_std(_target(tensor).shape, a, mode, nonlinearity)
    return _write(tensor, as_generator(rng, "kaiming_normal_").normal(0.0, std, size=_target(tensor).shape))


def pytorch_linear_init_(weight, bias, *, rng=None):
    """PyTorch's default Linear initialization, in place.

    PyTorch calls ``kaiming_uniform_(W, a=sqrt(5))``: gain ``sqrt(2/(1+5)) =
    sqrt(1/3)``, bound ``sqrt(1/3) * sqrt(3/fan_in) = 1/sqrt(fan_in)``. So
    ``W ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` and the bias (when not None)
    ``b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))``; the weight is drawn first.
    """
    rng = as_generator(rng, "pytorch_linear_init_")
    fan_in, _ = calculate_fans(_target(weight).shape)
    bound = 1.0 / math.sqrt(fan_in)
    uniform_(weight, -bound, bound, rng=rng)
    if bias is not None:
        uniform_(bias, -bound, bound, rng=rng)
    return weight


def dcgan_init_(weight, bias, std: float = 0.02, *, rng=None):
    """DCGAN initialization (Radford et al. 2016), in place: ``W ~ N(0, 0.02^2)``, ``b = 0``."""
    normal_(weight, 0.0, std, rng=rng)
    if bias is not None:
        zeros_(bias)
    return weight


def _init_linear(weight, bias, init: str, rng) -> None:
    if init == "pytorch":
        pytorch_linear_init_(weight, bias, rng=rng)
        return
    if init == "xavier":
        xavier_uniform_(weight, rng=rng)
    elif init == "he":
        kaiming_normal_(weight, a=0.0, nonlinearity="relu", rng=rng)
    elif init == "dcgan":
        normal_(weight, 0.0, 0.02, rng=rng)
    else:
        raise ValueError(f"unknown init {init!r}; choose one of {LINEAR_INITS}")
    if bias is not None:
        zeros_(bias)
