"""Adam, accelerated: in place through one work buffer on the CPU, one fused kernel per parameter on the GPU.

Adam written with array operations (:func:`scratchgan.optim.rules.adam_update`)
makes about eight temporary arrays per parameter on the CPU, and is about 13
kernel launches per parameter on the GPU. The acceleration registered
against it (:func:`fused_adam`) does the same arithmetic

* on NumPy, in place through one work buffer per parameter (no allocation,
  hence no page faults, per step), bit for bit the definition's result;
* on CuPy, as one fused kernel (:func:`scratchgan.accel.kernels.adam_update`),
  capturable in a CUDA graph (:mod:`scratchgan.accel.cuda_graph`).

A CUDA graph replays each kernel with the arguments it was captured with, so
what changes from step to step must live in GPU memory (PyTorch calls such
an optimizer *capturable*):

* each parameter's step count ``t``: a one-element float64 device counter,
  advanced by a kernel (``counter += 1``) so that a replay advances it too;
* each group's learning rate: a one-element device array, written at once
  when the group's ``"lr"`` is written (the group tells its *companion*, an
  :class:`AdamGroup`), so that ``opt.lr = value`` between replays reaches the
  next replay.

The host's counts (``state["step"]``) advance at eager steps only;
:func:`read_step_counts` (called by ``Adam.state_dict``) reads the true ones
back. :mod:`scratchgan.optim.optimizers` registers :func:`fused_adam` against
the group-wise definition (``register_forward``; this layer cannot import
that one); reference mode runs the definition.
"""

from __future__ import annotations

import math

import numpy as np

from .. import backend
from ..backend.validate import number
from . import kernels

__all__ = ["AdamGroup", "fused_adam", "read_step_counts"]


class AdamGroup:
    """What the accelerated Adam keeps with one parameter group (as the group's ``companion``).

    Attributes
    ----------
    scratch : dict
        Parameter index -> its work buffer (NumPy parameters).
    lr : device array, shape (1,), float64, or None
        The group's learning rate as the fused kernel reads it (CuPy parameters).
    steps : dict
        Parameter index -> ``[device counter (1,) float64, the host count it was last advanced to]``.
    """

    def __init__(self):
        self.scratch: dict = {}
        self.lr = None
        self._lr = None  # the value self.lr holds
        self.steps: dict = {}

    def set_lr(self, lr: float) -> None:
        """Write ``lr`` into the device array (a fill kernel; nothing when it holds that value already)."""
        if self.lr is not None and lr != self._lr:
            self.lr.fill(lr)
            self._lr = lr

    def written(self, group) -> None:
        """The group was written: copy a new valid ``"lr"`` to the device at once (a replay reads it there)."""
        try:
            lr = number(group.get("lr"), "lr")
        except (TypeError, ValueError):
            return  # not written: the next step() reports the bad value, a replay keeps the last good one
        self.set_lr(lr)

    def step(self, i: int, t: int, xp):
        """Parameter ``i``'s device counter advanced to ``t`` (by a kernel: a replay advances it as well).

        A counter is made, or set again, from the host count ``t - 1`` when
        the host's eager steps are not the ones it last counted (its first
        step here, or steps taken in reference mode); after replays the host
        count is behind and the device count is the true one, kept.
        """
        entry = self.steps.get(i)
        if entry is None:
            entry = self.steps[i] = [xp.full((1,), t - 1, dtype=xp.float64), t - 1]
        elif entry[1] != t - 1:
            entry[0].fill(t - 1)
        entry[0] += 1
        entry[1] = t
        return entry[0]


def companion(group) -> AdamGroup:
    """The group's :class:`AdamGroup`, made on first use."""
    if group.companion is None:
        group.companion = AdamGroup()
    return group.companion


def device_group(group, lr: float, xp) -> AdamGroup:
    """The group's :class:`AdamGroup` with its lr in device memory (of ``xp``), current.

    An eager step refreshes the lr, in case it was written bypassing the
    group (``dict.__setitem__``).
    """
    c = companion(group)
    if c.lr is None:
        c.lr, c._lr = xp.full((1,), lr, dtype=xp.float64), lr
    c.set_lr(lr)
    return c


def fused_adam(group, hyper: dict, updates) -> None:
    """Adam on a parameter group, accelerated: :func:`scratchgan.optim.rules.adam_group`'s arguments and results.

    Each NumPy parameter is updated in place through its work buffer, each
    CuPy one by the fused kernel.
    """
    lr, (beta1, beta2), eps, weight_decay = hyper["lr"], hyper["betas"], hyper["eps"], hyper["weight_decay"]
    for i, p, g, state in updates:
        xp = backend.array_module(p)
        if not state:
            state.update(step=0, exp_avg=xp.zeros_like(p), exp_avg_sq=xp.zeros_like(p))
        t = state["step"] = state["step"] + 1
        m, v = state["exp_avg"], state["exp_avg_sq"]
        if xp is np:
            _adam_in_place(p, g, m, v, _scratch(group, i, p), t, lr, beta1, beta2, eps, weight_decay)
        else:
            device = device_group(group, lr, xp)
            kernels.adam_update(p, g, m, v, device.step(i, t, xp), device.lr, beta1, beta2, eps, weight_decay)


def _scratch(group, i: int, p):
    """Parameter ``i``'s work buffer, of its shape and dtype."""
    buffers = companion(group).scratch
    tmp = buffers.get(i)
    if tmp is None or tmp.shape != p.shape or tmp.dtype != p.dtype:
        tmp = buffers[i] = np.empty_like(p)
    return tmp


def _adam_in_place(p, g, m, v, tmp, t: int, lr, beta1, beta2, eps, weight_decay) -> None:
    """:func:`scratchgan.optim.rules.adam_update`'s arithmetic, in the same order, every temporary in ``tmp``."""
    if weight_decay != 0:
        g = g + weight_decay * p
    m *= beta1
    np.multiply(g, 1.0 - beta1, out=tmp)
    m += tmp
    v *= beta2
    np.multiply(g, g, out=tmp)
    tmp *= 1.0 - beta2
    v += tmp
    denom = np.sqrt(v, out=tmp)
    denom /= math.sqrt(1.0 - beta2 ** t)
    denom += eps
    update = np.divide(m, denom, out=tmp)
    update *= lr / (1.0 - beta1 ** t)
    p -= update


def read_step_counts(groups, state: list) -> None:
    """Write each parameter's device step count into ``state[i]["step"]`` (one read for them all).

    After CUDA-graph replays the host counts are behind; the device counters
    hold the true ones. Nothing happens where no fused step ran.
    """
    companions = [c for c in (getattr(group, "companion", None) for group in groups) if c is not None]
    entries = {i: entry for c in companions for i, entry in c.steps.items() if state[i]}
    if not entries:
        return
    xp = backend.array_module(next(iter(entries.values()))[0])
    values = backend.to_host(xp.concatenate([entry[0] for entry in entries.values()]), "Adam.state_dict's step counts")
    for (i, entry), value in zip(entries.items(), values.tolist()):
        state[i]["step"] = entry[1] = int(round(value))

