"""Loss modules with PyTorch's names: ``nn.BCEWithLogitsLoss``, ``nn.BCELoss``, ``nn.MSELoss``, ``nn.CrossEntropyLoss``.

Thin wrappers over :mod:`scratchgan.gan.losses` and the ops, so that a PyTorch
tutorial's ``criterion = nn.BCEWithLogitsLoss(); loss = criterion(output,
label)`` ports by changing the imports. ``reduction`` is ``"mean"`` (the
default), ``"sum"`` or ``"none"``, as in PyTorch. Unlike PyTorch, ``input``
and ``target`` must have the same shape (PyTorch only warns, then
broadcasts ``(N, 1)`` against ``(N,)`` into an ``(N, N)`` loss).
"""

from __future__ import annotations

import numpy as np

from .functional import bce_with_logits
from .. import backend
from ..ops import clip, div, log, log_softmax, mean, mul, reshape, softplus, sub, sum as sum_, transpose
from ..ops.shape import getitem_unchecked, index_range_violation
from ..autograd.tensor import Tensor, as_tensor
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

    Stable for every finite logit (see :func:`scratchgan.gan.losses.bce_with_logits`,
    which the default ``reduction="mean"`` calls).
    """

    def forward(self, input: Tensor, target) -> Tensor:  # noqa: A002
        target = _target_like(input, target, "BCEWithLogitsLoss")
        if self.reduction == "mean":
            return bce_with_logits(input, target)
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


class CrossEntropyLoss(_Loss):
    r"""Softmax cross-entropy on logits, with PyTorch's meaning: ``nn.CrossEntropyLoss``.

    ``input`` holds class logits: ``(C,)``, ``(N, C)`` or ``(N, C, d1, ..., dk)``
    (the classes on axis 1). ``target`` is either

    * class indices (an integer array or Tensor) of the input's shape without
      the class axis: ``()``, ``(N,)`` or ``(N, d1, ..., dk)``; entries equal
      to ``ignore_index`` contribute nothing, or
    * class probabilities (floating) of the input's own shape.

    Per element, with :math:`\log p = \operatorname{log\_softmax}` over the
    classes (:func:`scratchgan.ops.log_softmax`) and label smoothing
    :math:`\varepsilon`: :math:`\ell = -(1 - \varepsilon) \log p_y - \frac{\varepsilon}{C} \sum_c \log p_c`
    for an index, :math:`\ell = -\sum_c q_c \log p_c` with
    :math:`q = (1 - \varepsilon) t + \varepsilon / C` for probabilities.
    ``reduction="mean"`` divides the sum by the number of elements that are
    not ignored (NaN when every one is), ``"sum"`` sums, ``"none"`` returns
    one loss per element (0 where ignored). Finite for any finite logits.

    Parameters
    ----------
    weight : None
        Per-class weights are not supported: anything but None raises
        ``NotImplementedError``.
    ignore_index : int
        Index targets equal to it are skipped (PyTorch's default -100).
    reduction : {"mean", "sum", "none"}
    label_smoothing : float in [0, 1]
    """

    def __init__(self, weight=None, ignore_index: int = -100, reduction: str = "mean", label_smoothing: float = 0.0):
        super().__init__(reduction)
        if weight is not None:
            raise NotImplementedError("CrossEntropyLoss: per-class weight is not supported; use weight=None "
                                      "(or scale the per-element losses of reduction='none' yourself)")
        if not 0.0 <= float(label_smoothing) <= 1.0:
            raise ValueError(f"CrossEntropyLoss: label_smoothing must be in [0, 1], got {label_smoothing}")
        self.ignore_index = int(ignore_index)
        self.label_smoothing = float(label_smoothing)

    def extra_repr(self) -> str:
        return (f"reduction={self.reduction!r}, ignore_index={self.ignore_index}, "
                f"label_smoothing={self.label_smoothing}")

    @staticmethod
    def _rows(x: Tensor) -> Tensor:
        """(C,) / (N, C) / (N, C, d...) -> (M, C): the class axis last, one row per element."""
        if x.ndim == 1:
            return reshape(x, (1, x.shape[0]))
        if x.ndim == 2:
            return x
        axes = (0, *range(2, x.ndim), 1)
        return reshape(transpose(x, axes), (-1, x.shape[1]))

    def forward(self, input: Tensor, target) -> Tensor:  # noqa: A002
        who = "CrossEntropyLoss"
        if not isinstance(input, Tensor):
            raise TypeError(f"{who}: input must be a Tensor of logits, got {type(input).__name__}")
        if input.dtype.kind != "f":
            raise TypeError(f"{who}: input must be floating logits, got dtype {input.dtype}")
        if input.ndim == 0:
            raise ValueError(f"{who}: input must have a class axis, shape (C,), (N, C) or (N, C, d1, ...); got ()")
        c = input.shape[0] if input.ndim == 1 else input.shape[1]
        logp = log_softmax(self._rows(input), axis=1)
        eps = self.label_smoothing
        data = target.data if isinstance(target, Tensor) else target
        data = data if hasattr(data, "dtype") and hasattr(data, "shape") else np.asarray(data)
        xp = backend.array_module(input.data)
        if data.dtype.kind == "f":  # class probabilities
            if tuple(data.shape) != input.shape:
                raise ValueError(f"{who}: probability targets must have the input's shape {input.shape}, "
                                 f"got {tuple(data.shape)}")
            q = target if isinstance(target, Tensor) else as_tensor(xp.asarray(data).astype(input.dtype))
            if q.dtype != input.dtype:
                q = q.astype(input.dtype)
            q = self._rows(q)
            if eps:
                q = q * (1.0 - eps) + eps / c
            per = -sum_(mul(q, logp), axis=1)
            return self._reduce(per if self.reduction != "none" else reshape(per, _without_class_axis(input.shape)))
        if data.dtype.kind not in "iu":
            raise TypeError(f"{who}: target must be class indices (integers) or class probabilities (floats), "
                            f"got dtype {data.dtype}")
        expected = _without_class_axis(input.shape)
        if tuple(data.shape) != expected:
            raise ValueError(f"{who}: index targets must have shape {expected} for input of shape {input.shape} "
                             f"(the input's shape without the class axis), got {tuple(data.shape)}")
        labels = data.reshape(-1)  # host or device, as given: host labels are checked before the upload
        keep = labels != self.ignore_index
        safe = backend.array_module(labels).where(keep, labels, 0)
        found = None
        if backend.vouched_high(data) is None or backend.vouched_high(data) > c:  # one read, none when vouched
            found = index_range_violation([(safe, c)], who, negative=False)
        if found is not None:
            raise ValueError(f"{who}: targets must lie in [0, {c - 1}] (or equal ignore_index "
                             f"{self.ignore_index}); found {found[0]}")
        keep, safe = xp.asarray(keep), xp.asarray(safe)
        per = -getitem_unchecked(logp, (xp.arange(safe.shape[0]), safe))  # checked above; arange is in range
        if eps:
            per = per * (1.0 - eps) - mean(logp, axis=1) * eps
        per = mul(per, keep.astype(input.dtype))  # a raw array: a constant on the input's backend
        if self.reduction == "none":
            return reshape(per, expected)
        total = sum_(per)
        if self.reduction == "sum":
            return total
        # the mean over the elements not ignored, counted on the device (no read): 0 / 0 = NaN over none,
        # as in PyTorch
        with np.errstate(divide="ignore", invalid="ignore"):
            return div(total, keep.sum().astype(input.dtype))


def _without_class_axis(shape: tuple) -> tuple:
    return () if len(shape) == 1 else (shape[0], *shape[2:])
