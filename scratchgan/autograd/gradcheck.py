"""Public finite-difference gradient checkers (float64 only).

``gradcheck`` compares the gradient that the engine computes with central
differences. The outputs are first contracted with a fixed random vector
``v``, so the checked quantity is the scalar

    f(x) = sum_k <v_k, out_k(x)>,

and every element ``x_j`` of every input is checked:

    numerical_j = (f(x + eps e_j) - f(x - eps e_j)) / (2 eps)
    |analytic_j - numerical_j| <= atol + rtol * |numerical_j|.

``gradgradcheck`` runs the same check on the function that returns the first
gradient (contracted with its own random vector), which is how the second
derivatives behind gradient penalties are verified.
"""

from __future__ import annotations

import numpy as np

from .. import backend
from .engine import grad
from .tensor import Tensor, as_tensor


class GradcheckError(AssertionError):
    """An analytic gradient disagrees with the finite-difference one."""


def _as_tuple(x):
    return (x,) if isinstance(x, Tensor) else tuple(x)


def _differentiable_inputs(inputs, who: str):
    chosen = []
    for i, t in enumerate(inputs):
        if not isinstance(t, Tensor):
            raise TypeError(f"{who}: input {i} is a {type(t).__name__}; pass Tensors")
        if t.requires_grad:
            if t.dtype != np.float64:
                raise TypeError(
                    f"{who}: input {i} has dtype {t.dtype}; finite differences need float64 "
                    "(create the inputs with dtype='float64')"
                )
            if not t.is_leaf:
                raise ValueError(f"{who}: input {i} is not a leaf tensor; pass leaves created with requires_grad=True")
            chosen.append(i)
    if not chosen:
        raise ValueError(f"{who}: no input requires grad; set requires_grad=True on the inputs to check")
    return chosen


def _random_like(outputs, rng):
    vs = []
    for out in outputs:
        xp = backend.array_module(out.data)
        vs.append(as_tensor(xp.asarray(rng.standard_normal(out.shape)).astype(out.dtype)))
    return vs


def _projected(fn, inputs, vs) -> float:
    # fn runs with recording on: it may take gradients itself (a gradient penalty)
    outs = _as_tuple(fn(*inputs))
    return float(sum(float((o.data * v.data).sum()) for o, v in zip(outs, vs)))


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0) -> bool:
    """Check ``fn``'s gradients against central differences in float64.

    Parameters
    ----------
    fn : callable
        ``fn(*inputs)`` returns a Tensor or a tuple of Tensors.
    inputs : Tensor or sequence of Tensor
        Those with ``requires_grad=True`` are checked; they must be float64 leaves.
    eps, atol, rtol : float
        Step and tolerances (PyTorch's gradcheck defaults).
    seed : int
        Seed of the random output projection.

    Returns
    -------
    bool
        True when every element agrees.

    Raises
    ------
    GradcheckError
        Naming the input, the element index and both values at the first disagreement.

    Examples
    --------
    >>> import scratchgan as sg
    >>> x = sg.Tensor([[0.3, -1.2]], dtype="float64", requires_grad=True)
    >>> sg.gradcheck(lambda x: sg.ops.softplus(x).sum(), [x])
    True
    """
    inputs = _as_tuple(inputs)
    checked = _differentiable_inputs(inputs, "gradcheck")
    rng = np.random.default_rng(seed)
    outputs = _as_tuple(fn(*inputs))
    for k, out in enumerate(outputs):
        if not isinstance(out, Tensor):
            raise TypeError(f"gradcheck: output {k} of fn is a {type(out).__name__}; fn must return Tensors")
    vs = _random_like(outputs, rng)

    roots = [(o, v) for o, v in zip(outputs, vs) if o.requires_grad]
    if roots:
        analytic = grad([o for o, _ in roots], [inputs[i] for i in checked],
                        grad_outputs=[v for _, v in roots], allow_unused=True)
    else:
        analytic = [None] * len(checked)

    for i, g in zip(checked, analytic):
        t = inputs[i]
        original = t.data
        work = original.copy()
        t.data = work
        flat = work.reshape(-1)  # a view: writing it perturbs the input
        expected = np.zeros(t.size) if g is None else backend.to_numpy(g.data).reshape(-1)
        try:
            for j in range(t.size):
                x0 = flat[j].item()
                flat[j] = x0 + eps
                f_plus = _projected(fn, inputs, vs)
                flat[j] = x0 - eps
                f_minus = _projected(fn, inputs, vs)
                flat[j] = x0
                numerical = (f_plus - f_minus) / (2 * eps)
                a = float(expected[j])
                if not abs(a - numerical) <= atol + rtol * abs(numerical):
                    index = np.unravel_index(j, t.shape) if t.ndim else ()
                    raise GradcheckError(
                        f"gradient mismatch for input {i} (shape {t.shape}) at index {tuple(int(n) for n in index)}: "
                        f"analytic {a!r} vs numerical {numerical!r} (atol={atol}, rtol={rtol})"
                    )
        finally:
            t.data = original
    return True


def gradgradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0) -> bool:
    """Check second derivatives: ``gradcheck`` of the first gradient.

    The first gradient is ``grad(sum_k <u_k, fn(x)_k>, x, create_graph=True)``
    for a fixed random ``u``; its gradients are then checked against central
    differences exactly as in :func:`gradcheck` (float64 only).

    Examples
    --------
    >>> import scratchgan as sg
    >>> x = sg.Tensor([0.5, -0.7], dtype="float64", requires_grad=True)
    >>> sg.gradgradcheck(lambda x: sg.ops.tanh(x) * x, [x])
    True
    """
    inputs = _as_tuple(inputs)
    checked = _differentiable_inputs(inputs, "gradgradcheck")
    rng = np.random.default_rng(seed + 1)
    outputs = _as_tuple(fn(*inputs))
    us = _random_like(outputs, rng)

    def first_gradient(*xs):
        outs = _as_tuple(fn(*xs))
        roots = [(o, u) for o, u in zip(outs, us) if o.requires_grad]
        diff = [xs[i] for i in checked]
        if not roots:
            return tuple(as_tensor(backend.array_module(x.data).zeros_like(x.data)) for x in diff)
        gs = grad([o for o, _ in roots], diff, grad_outputs=[u for _, u in roots],
                  create_graph=True, allow_unused=True)
        return tuple(as_tensor(backend.array_module(x.data).zeros_like(x.data)) if g is None else g
                     for g, x in zip(gs, diff))

    return gradcheck(first_gradient, inputs, eps=eps, atol=atol, rtol=rtol, seed=seed)
