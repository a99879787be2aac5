"""Loss modules with PyTorch's names: ``nn.BCEWithLogitsLoss``, ``nn.BCELoss``, ``nn.MSELoss``.

Thin wrappers over :mod:`scratchgan.losses` and the ops, so that a PyTorch
tutorial's ``criterion = nn.BCEWithLogitsLoss(); loss = criterion(output,
label)`` ports by changing the imports. ``reduction`` is ``"mean"`` (the
default), ``"sum"`` or ``"none"``, as in PyTorch. Unlike PyTorch, ``input``
and ``target`` must have the same shape (PyTorch only warns, then
broadcasts ``(N, 1)`` against ``(N,)`` into an ``(N, N)`` loss).
"""

from __future__ import annotations

import numpy as np

from .. import losses as _losses
from ..ops import clip, log, mean, mul, softplus, sub, sum as sum_
from ..tensor import Tensor, as_tensor
from .module import Module

_REDUCTIONS = ("mean", "sum", "none")


def _target_like(input: Tensor, target, who: str) -> Tensor:  # noqa: A002 - PyTorch's argument names
    if not isinstance(input, Tensor):
        raise TypeError(f"{who}: input must be a Tensor, got {type(input).__name__}")
    if isinstance(target, (int, float)):
        return target
    target = as_tensor(target, dtype=input.dtype) if not isinstance(target, Tensor) else target
    if target.shape != input.shape:
        raise ValueError(f"{who}: target has shape {target.shape} but input has shape {input.shape}; "
                         "reshape one of them (e.g. output.reshape(-1)) so that they match")
    return target


class _Loss(Module):
    def __init__(self, reduction: str = "mean"):
        super().__init__()
        if reduction not in _REDUCTIONS:
            raise ValueError(f"{type(self).__name__}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction

    def _reduce(self, values: Tensor) -> Tensor:
        if self.reduction == "mean":
            return mean(values)
        return sum_(values) if self.reduction == "sum" else values

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class BCEWithLogitsLoss(_Loss):
    r"""Binary cross-entropy on logits: :math:`\ell(x, z) = z\,\mathrm{softplus}(-x) + (1-z)\,\mathrm{softplus}(x)`.

    Stable for every finite logit (see :func:`scratchgan.losses.bce_with_logits`,
    which the default ``reduction="mean"`` calls).
    """

    def forward(self, input: Tensor, target) -> Tensor:  # noqa: A002
        target = _target_like(input, target, "BCEWithLogitsLoss")
        if self.reduction == "mean":
            return _losses.bce_with_logits(input, target)
        return self._reduce(mul(target, softplus(-input)) + mul(sub(1.0, target), softplus(input)))


class BCELoss(_Loss):
    r"""Binary cross-entropy on probabilities: :math:`-z \log p - (1 - z) \log(1 - p)`.

    As in PyTorch, each log is clamped at -100, so ``p = 0`` or ``1`` gives a
    finite loss. Prefer :class:`BCEWithLogitsLoss`: a sigmoid followed by
    this loss loses precision once ``|logit|`` passes about 17 (float32).
    """

    def forward(self, input: Tensor, target) -> Tensor:  # noqa: A002
        target = _target_like(input, target, "BCELoss")
        with np.errstate(divide="ignore"):  # log(0) = -inf, clamped to -100 below
            log_p = clip(log(input), min=-100.0)
            log_q = clip(log(sub(1.0, input)), min=-100.0)
        return self._reduce(-(mul(target, log_p) + mul(sub(1.0, target), log_q)))


class MSELoss(_Loss):
    r"""Mean squared error :math:`(x - y)^2` (the least-squares GAN's loss)."""

    def forward(self, input: Tensor, target) -> Tensor:  # noqa: A002
        target = _target_like(input, target, "MSELoss")
        diff = sub(input, target)
        return self._reduce(mul(diff, diff))
