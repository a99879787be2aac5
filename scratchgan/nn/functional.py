"""Loss functions as plain functions (``torch.nn.functional``'s names): the math behind :mod:`scratchgan.nn.loss`.

:func:`bce_with_logits` lives here, one layer below the GAN objectives
(:mod:`scratchgan.gan.losses`) that build on it and re-export it.
"""

from __future__ import annotations

import numbers

import numpy as np

from .. import backend
from ..autograd.tensor import Tensor
from ..ops import mean, mean_softplus, softplus

__all__ = ["bce_with_logits", "binary_cross_entropy_with_logits"]


def _check_logits(x, name: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a Tensor of logits, got {type(x).__name__}")
    if x.dtype.kind != "f":
        raise TypeError(f"{name} must be a floating tensor (float32 or float64), got dtype {x.dtype}")
    if x.size == 0:
        raise ValueError(f"{name} is empty (shape {x.shape}); a mean over no logits is undefined")
    return x


def _targets_like(targets, logits: Tensor) -> Tensor:
    """Turn targets (Tensor, array or number) into a tensor matching ``logits``."""
    xp = backend.array_module(logits.data)
    if isinstance(targets, Tensor):
        if targets.shape != logits.shape:
            raise ValueError(
                f"bce_with_logits: targets have shape {targets.shape} but logits have shape {logits.shape}; "
                "reshape one of them (no silent broadcasting, e.g. of (N, 1) against (N,))"
            )
        if targets.dtype != logits.dtype:
            targets = targets.astype(logits.dtype)  # differentiable cast (targets rarely need a gradient)
        return targets
    if isinstance(targets, numbers.Real):
        return Tensor._wrap(xp.full(logits.shape, float(targets), dtype=logits.dtype))  # on the logits' backend
    array = targets if hasattr(targets, "dtype") and hasattr(targets, "shape") else np.asarray(targets)
    if tuple(array.shape) != logits.shape:
        raise ValueError(
            f"bce_with_logits: targets have shape {tuple(array.shape)} but logits have shape {logits.shape}; "
            "reshape one of them (no silent broadcasting, e.g. of (N, 1) against (N,))"
        )
    if array.dtype.kind not in "fiub":
        raise TypeError(f"bce_with_logits: targets must be numeric, got dtype {array.dtype}")
    # targets are constants: cast them to the logits' dtype and backend
    return Tensor._wrap(xp.asarray(array).astype(logits.dtype, copy=True))


def bce_with_logits(logits: Tensor, targets) -> Tensor:
    r"""Mean binary cross-entropy between ``sigmoid(logits)`` and ``targets``, from logits.

    .. math::

        \ell(x, z) = -z \log\sigma(x) - (1 - z)\log(1 - \sigma(x))
                   = \max(x, 0) - x z + \log(1 + e^{-|x|})
                   = \operatorname{softplus}(x) - x z,

        L = \frac{1}{N} \sum_i \ell(x_i, z_i).

    It is evaluated as ``z * softplus(-x) + (1 - z) * softplus(x)`` (the same
    function, since ``softplus(x) - x = softplus(-x)``) with the engine's stable
    ``softplus``: for ``z`` in [0, 1] both terms are non-negative, so nothing
    cancels (``softplus(x) - x*z`` loses every digit of a small loss in
    float32), nothing overflows for any finite logit, and the gradient is
    exactly ``sigmoid(x) - z`` even at ``x = 0`` (a ``relu``/``abs`` form would
    take the wrong one-sided derivative there). With a number as target
    (the GAN case) the same sum is taken as ``z * mean_softplus(-x) + (1 - z)
    * mean_softplus(x)`` with the fused :func:`scratchgan.ops.mean_softplus`
    (one graph node per term; a term whose factor is 0 is skipped). The
    result can be differentiated again.

    Parameters
    ----------
    logits : Tensor
        Raw scores ``x`` of any shape (typically ``(N,)`` or ``(N, 1)``).
    targets : Tensor, array_like or float
        Labels ``z`` in [0, 1], of exactly ``logits.shape`` (a number is
        used for every element). Arrays are cast to the logits' dtype and
        backend.

    Returns
    -------
    Tensor
        A 0-d tensor, the mean loss.

    Raises
    ------
    ValueError
        When ``targets`` (not a number) has a different shape from
        ``logits``; both shapes are named. There is no broadcasting:
        ``(N, 1)`` against ``(N,)`` would silently build an ``(N, N)`` loss.

    Notes
    -----
    Gradient with respect to each logit:
    :math:`\partial L / \partial x_i = (\sigma(x_i) - z_i) / N`.
    With respect to a target: :math:`-x_i / N`.

    Examples
    --------
    >>> import scratchgan as sg
    >>> x = sg.Tensor([0.0, 2.0], dtype="float64", requires_grad=True)
    >>> round(bce_with_logits(x, [1.0, 0.0]).item(), 6)
    1.410038
    """
    logits = _check_logits(logits, "logits")
    if isinstance(targets, numbers.Real) and not isinstance(targets, Tensor):
        return _bce_one(logits, float(targets))  # one target for all: the fused mean_softplus op
    z = _targets_like(targets, logits)
    return mean(z * softplus(-logits) + (1.0 - z) * softplus(logits))


def _bce_one(logits: Tensor, target: float) -> Tensor:
    """``bce_with_logits(logits, target)`` for a constant target, skipping the zero term."""
    if target == 1.0:
        return mean_softplus(-logits)
    if target == 0.0:
        return mean_softplus(logits)
    return mean_softplus(-logits) * target + mean_softplus(logits) * (1.0 - target)



#: ``torch.nn.functional``'s name (``reduction="mean"`` only)
binary_cross_entropy_with_logits = bce_with_logits
