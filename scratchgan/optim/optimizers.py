"""Optimizers: SGD (with momentum / Nesterov), Adam and RMSprop, with PyTorch's parameter groups.

Each optimizer is its hyperparameters (names, defaults and checks, in
``torch.optim``'s order) and an update rule of one parameter, written once on
arrays in :mod:`scratchgan.optim.rules` (the math, following the PyTorch
documentation and PyTorch's order of operations). The common part, parameter
groups, per-parameter state and the state round trip, is
:class:`scratchgan.optim.optimizer.Optimizer`. ``g`` is a parameter's
gradient, ``p`` the parameter and ``t`` the number of updates that parameter
has received, counting this one.

Adam has an acceleration (:mod:`scratchgan.accel.optim_kernels`: in place
through a work buffer on NumPy, one fused kernel per parameter on CuPy),
registered against its definition (:func:`scratchgan.optim.rules.adam_group`)
at the bottom of this module; reference mode (``SCRATCHGAN_REFERENCE=1``)
runs the definition.
"""

from __future__ import annotations

import numpy as np

from ..accel import optim_kernels
from .. import backend
from ..autograd.fastpath import fast_or, is_reference_mode, register_forward
from ..backend.validate import boolean, number
from . import rules
from .optimizer import Optimizer

__all__ = ["SGD", "Adam", "Optimizer", "RMSprop"]


class SGD(Optimizer):
    """Stochastic gradient descent, with optional momentum, Nesterov and weight decay.

    As documented for ``torch.optim.SGD``, per step:

    .. math::

        g &\\leftarrow g + \\lambda p                      && \\text{(weight decay } \\lambda \\ne 0) \\\\
        b &\\leftarrow g \\text{ at the first step, else } \\mu b + (1 - \\tau) g
                                                          && \\text{(momentum } \\mu \\ne 0) \\\\
        g &\\leftarrow g + \\mu b \\text{ (Nesterov) or } b \\\\
        p &\\leftarrow p - \\gamma g

    Parameters
    ----------
    params : iterable of Tensor, or iterable of dict (parameter groups)
    lr : float
        ``gamma`` >= 0 (1e-3 by default, as in PyTorch).
    momentum : float
        ``mu`` >= 0.
    dampening : float
        ``tau`` >= 0 (PyTorch's; 0 by default).
    weight_decay : float
        ``lambda`` >= 0 (L2 penalty added to the gradient).
    nesterov : bool
        Needs ``momentum > 0`` and ``dampening == 0``.

    The arguments come in ``torch.optim.SGD``'s order, and a group may set
    any of ``lr``, ``momentum``, ``dampening``, ``weight_decay``, ``nesterov``.
    """

    _rule = staticmethod(rules.sgd_update)
    _hyper_keys = ("lr", "momentum", "dampening", "weight_decay", "nesterov")
    _required_state_keys = ("momentum_buffer",)
    _all_state_keys = ("momentum_buffer",)

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False):
        super().__init__(params, {"lr": lr, "momentum": momentum, "dampening": dampening,
                                  "weight_decay": weight_decay, "nesterov": nesterov})

    def _check_hyper(self, h, who):
        out = {"lr": number(h["lr"], "lr", who), "momentum": number(h["momentum"], "momentum", who),
               "dampening": number(h["dampening"], "dampening", who),
               "weight_decay": number(h["weight_decay"], "weight_decay", who),
               "nesterov": boolean(h["nesterov"], "nesterov", who)}
        if out["nesterov"] and (out["momentum"] <= 0 or out["dampening"] != 0):
            raise ValueError(f"{who}: Nesterov momentum requires momentum > 0 and dampening == 0")
        return out


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with bias correction; ``weight_decay`` is L2 (not AdamW).

    As documented for ``torch.optim.Adam``, at the parameter's step ``t``:

    .. math::

        g &\\leftarrow g + \\lambda p  \\qquad (\\lambda \\ne 0) \\\\
        m &\\leftarrow \\beta_1 m + (1 - \\beta_1) g \\\\
        v &\\leftarrow \\beta_2 v + (1 - \\beta_2) g^2 \\\\
        \\hat m &= m / (1 - \\beta_1^t), \\quad \\hat v = v / (1 - \\beta_2^t) \\\\
        p &\\leftarrow p - \\gamma \\, \\hat m / (\\sqrt{\\hat v} + \\epsilon)

    computed as PyTorch does: ``denom = sqrt(v) / sqrt(1 - beta2^t) + eps``,
    ``p -= (lr / (1 - beta1^t)) * m / denom``. At ``t = 1`` the update is
    ``-lr * g / (|g| + eps)``, about ``-lr * sign(g)``.

    Parameters
    ----------
    params : iterable of Tensor, or iterable of dict (parameter groups)
    lr : float
        ``gamma`` >= 0.
    betas : (float, float)
        Each in [0, 1).
    eps : float
        >= 0.
    weight_decay : float
        ``lambda`` >= 0.

    Notes
    -----
    The state keys are ``step``, ``exp_avg`` (m) and ``exp_avg_sq`` (v), and
    a group's hyperparameters ``lr``, ``betas``, ``eps``, ``weight_decay``,
    as in PyTorch.
    """

    _rule = staticmethod(rules.adam_update)
    _hyper_keys = ("lr", "betas", "eps", "weight_decay")
    _required_state_keys = ("step", "exp_avg", "exp_avg_sq")
    _all_state_keys = ("step", "exp_avg", "exp_avg_sq")

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})

    def _check_hyper(self, h, who):
        betas = h["betas"]
        if isinstance(betas, np.ndarray):
            betas = betas.tolist()
        try:
            beta1, beta2 = betas
        except (TypeError, ValueError):
            raise ValueError(f"{who}: betas must be a pair (beta1, beta2), got {betas!r}") from None
        return {"lr": number(h["lr"], "lr", who),
                "betas": (number(beta1, "beta1 (betas[0])", who, 0.0, 1.0, high_open=True),
                          number(beta2, "beta2 (betas[1])", who, 0.0, 1.0, high_open=True)),
                "eps": number(h["eps"], "eps", who),
                "weight_decay": number(h["weight_decay"], "weight_decay", who)}

    def _upgrade_hyper(self, hyper: dict) -> dict:
        if "beta1" in hyper and "beta2" in hyper:  # the names before parameter groups
            hyper = dict(hyper)
            hyper["betas"] = (hyper.pop("beta1"), hyper.pop("beta2"))
        return hyper

    def _update_group(self, group, hyper: dict, updates) -> None:
        # the definition, or its acceleration (scratchgan.accel.optim_kernels): no temporaries on NumPy; on CuPy one
        # fused kernel per parameter, reading t and lr from GPU memory so that a captured CUDA graph replays right
        if is_reference_mode() and backend.is_capturing():
            raise backend.CaptureError(
                "Adam in reference mode (SCRATCHGAN_REFERENCE=1 or scratchgan.reference_mode()) runs its definition, "
                "which keeps the step count and learning rate on the host: a CUDA graph would replay the values of "
                "its capture at every replay; capture the step outside reference mode")
        fast_or(rules.adam_group)(group, hyper, updates)

    def state_dict(self) -> dict:
        optim_kernels.read_step_counts(self.param_groups, self.state)  # behind on the host after graph replays
        return super().state_dict()


class RMSprop(Optimizer):
    """RMSprop (Hinton's lecture 6e), as documented for ``torch.optim.RMSprop``.

    .. math::

        g &\\leftarrow g + \\lambda p  \\qquad (\\lambda \\ne 0) \\\\
        v &\\leftarrow \\alpha v + (1 - \\alpha) g^2 \\\\
        \\tilde v &= v - \\bar g^2, \\ \\bar g \\leftarrow \\alpha \\bar g + (1 - \\alpha) g
            \\quad \\text{(centered), else } \\tilde v = v \\\\
        b &\\leftarrow \\mu b + g / (\\sqrt{\\tilde v} + \\epsilon), \\quad p \\leftarrow p - \\gamma b
            \\quad (\\mu > 0, \\ b_0 = 0) \\\\
        p &\\leftarrow p - \\gamma g / (\\sqrt{\\tilde v} + \\epsilon) \\quad (\\mu = 0)

    Parameters
    ----------
    params : iterable of Tensor, or iterable of dict (parameter groups)
    lr : float
        ``gamma`` >= 0.
    alpha : float
        Smoothing constant in [0, 1].
    eps : float
        >= 0.
    weight_decay : float
        ``lambda`` >= 0.
    momentum : float
        ``mu`` >= 0.
    centered : bool
        Normalize by an estimate of the variance instead of the second moment.

    Notes
    -----
    The arguments come in ``torch.optim.RMSprop``'s order. State keys:
    ``step``, ``square_avg`` (v), ``momentum_buffer`` (when momentum > 0) and
    ``grad_avg`` (when centered), as in PyTorch.
    """

    _rule = staticmethod(rules.rmsprop_update)
    _hyper_keys = ("lr", "alpha", "eps", "weight_decay", "momentum", "centered")
    _required_state_keys = ("step", "square_avg")
    _all_state_keys = ("step", "square_avg", "momentum_buffer", "grad_avg")

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0.0,
                 momentum: float = 0.0, centered: bool = False):
        super().__init__(params, {"lr": lr, "alpha": alpha, "eps": eps, "weight_decay": weight_decay,
                                  "momentum": momentum, "centered": centered})

    def _check_hyper(self, h, who):
        return {"lr": number(h["lr"], "lr", who), "alpha": number(h["alpha"], "alpha", who, 0.0, 1.0),
                "eps": number(h["eps"], "eps", who), "weight_decay": number(h["weight_decay"], "weight_decay", who),
                "momentum": number(h["momentum"], "momentum", who),
                "centered": boolean(h["centered"], "centered", who)}


# The acceleration lives a layer below (scratchgan.accel), which cannot import the optimizers: registered here.
register_forward(rules.adam_group, optim_kernels.fused_adam, op="adam")
