"""The optimizers' update rules: one parameter's step, written once on arrays (NumPy or CuPy).

Each rule updates ``p`` (the parameter's array) in place from ``g`` (its
gradient) and ``state`` (a dict that the rule fills at the parameter's first
step and keeps its running averages in), with PyTorch's order of operations,
so that the results match ``torch.optim`` bit for bit on the CPU. The
gradient array is never written: weight decay makes a new one
(:func:`l2_decayed`). The scalar factors (bias corrections) are Python floats.

These are the definitions; :mod:`scratchgan.optim.optimizers` applies them to
each parameter group. Adam's fused CuPy kernel
(:mod:`scratchgan.accel.optim_kernels`) is registered against
:func:`adam_group` and checked against it; reference mode runs these rules only.
"""

from __future__ import annotations

import math

from .. import backend


def l2_decayed(g, p, weight_decay: float):
    """The gradient with L2 weight decay, ``g + weight_decay * p``, in a new array (``g`` itself when 0).

    The one place where the rules add weight decay (before the update, as
    PyTorch's optimizers do); the parameter's ``.grad`` is never modified.
    """
    return g + weight_decay * p if weight_decay != 0 else g


def sgd_update(p, g, state: dict, lr, momentum, dampening, weight_decay, nesterov) -> None:
    """One SGD step (``torch.optim.SGD``), with momentum buffer ``b`` when ``momentum`` > 0.

    .. math::

        g \\leftarrow g + \\lambda p, \\quad
        b \\leftarrow g \\text{ (first step), else } \\mu b + (1 - \\tau) g, \\quad
        g \\leftarrow g + \\mu b \\text{ (Nesterov) or } b, \\quad
        p \\leftarrow p - \\gamma g
    """
    g = l2_decayed(g, p, weight_decay)
    if momentum != 0:
        buf = state.get("momentum_buffer")
        if buf is None:
            buf = state["momentum_buffer"] = g.copy()
        else:
            buf *= momentum
            buf += g if dampening == 0 else (1.0 - dampening) * g
        g = g + momentum * buf if nesterov else buf
    p -= lr * g


def adam_update(p, g, state: dict, lr, betas, eps, weight_decay) -> None:
    """One Adam step (``torch.optim.Adam``) at the parameter's step ``t``.

    .. math::

        g &\\leftarrow g + \\lambda p \\\\
        m &\\leftarrow \\beta_1 m + (1 - \\beta_1) g, \\quad
        v \\leftarrow \\beta_2 v + (1 - \\beta_2) g^2 \\\\
        p &\\leftarrow p - \\frac{\\gamma}{1 - \\beta_1^t} \\,
             \\frac{m}{\\sqrt{v} / \\sqrt{1 - \\beta_2^t} + \\epsilon}

    which is :math:`p - \\gamma \\hat m / (\\sqrt{\\hat v} + \\epsilon)` with the
    bias-corrected :math:`\\hat m, \\hat v`, computed in PyTorch's order.
    """
    beta1, beta2 = betas
    if not state:
        xp = backend.array_module(p)
        state.update(step=0, exp_avg=xp.zeros_like(p), exp_avg_sq=xp.zeros_like(p))
    t = state["step"] = state["step"] + 1
    m, v = state["exp_avg"], state["exp_avg_sq"]
    g = l2_decayed(g, p, weight_decay)
    m *= beta1
    m += g * (1.0 - beta1)
    v *= beta2
    v += (g * g) * (1.0 - beta2)
    denom = backend.array_module(p).sqrt(v) / math.sqrt(1.0 - beta2 ** t) + eps
    p -= (lr / (1.0 - beta1 ** t)) * (m / denom)


def adam_group(group, hyper: dict, updates) -> None:
    """Adam on a parameter group: :func:`adam_update` for each ``(index, p, g, state)`` of ``updates``.

    The definition that Adam's fused GPU kernel is registered against: that
    acceleration keeps the group's learning rate and each parameter's step
    count in GPU memory, with the ``group`` (here unused), so that a captured
    CUDA graph sees them change.
    """
    for _, p, g, state in updates:
        adam_update(p, g, state, **hyper)


def rmsprop_update(p, g, state: dict, lr, alpha, eps, weight_decay, momentum, centered) -> None:
    """One RMSprop step (``torch.optim.RMSprop``).

    .. math::

        g &\\leftarrow g + \\lambda p, \\quad v \\leftarrow \\alpha v + (1 - \\alpha) g^2 \\\\
        \\tilde v &= v - \\bar g^2 \\text{ with } \\bar g \\leftarrow \\alpha \\bar g + (1 - \\alpha) g
            \\text{ (centered), else } \\tilde v = v \\\\
        b &\\leftarrow \\mu b + g / (\\sqrt{\\tilde v} + \\epsilon), \\quad p \\leftarrow p - \\gamma b
            \\quad (\\mu > 0), \\text{ else } p \\leftarrow p - \\gamma g / (\\sqrt{\\tilde v} + \\epsilon)
    """
    g = l2_decayed(g, p, weight_decay)
    xp = backend.array_module(p)
    if not state:
        state.update(step=0, square_avg=xp.zeros_like(p))
    state["step"] += 1
    v = state["square_avg"]
    v *= alpha
    v += (1.0 - alpha) * (g * g)
    if centered:
        ga = state.get("grad_avg")
        if ga is None:
            ga = state["grad_avg"] = xp.zeros_like(p)
        ga *= alpha
        ga += (1.0 - alpha) * g
        denom = xp.sqrt(v - ga * ga)
    else:
        denom = xp.sqrt(v)
    denom += eps
    if momentum > 0:
        buf = state.get("momentum_buffer")
        if buf is None:
            buf = state["momentum_buffer"] = xp.zeros_like(p)
        buf *= momentum
        buf += g / denom
        p -= lr * buf
    else:
        p -= lr * (g / denom)
