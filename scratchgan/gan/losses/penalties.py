"""The penalties on the critic: gradient penalties (WGAN-GP, WGAN-LP, DRAGAN), R1 and R2, weight clipping.

Each penalty takes the critic's input gradient with ``create_graph=True``
(:func:`_input_gradient`), so the penalty can itself be differentiated with
respect to the critic's weights: double backprop. The points where the
gradient is taken are fresh leaves (the data is detached); the critic must
score each sample independently (no batch norm). They work for float32 and
float64 and on either backend (NumPy or CuPy). Each is added to the
discriminator's loss from :mod:`scratchgan.gan.losses.objectives`.

See ``docs/losses.md`` for the formulas, when to use which, and the tests that check them.

References
----------
Arjovsky, Chintala, Bottou (2017), Wasserstein GAN (weight clipping).
Gulrajani et al. (2017), Improved Training of Wasserstein GANs.
Petzka, Fischer, Lukovnikov (2018), On the regularization of Wasserstein GANs (WGAN-LP).
Mescheder, Geiger, Nowozin (2018), Which Training Methods for GANs do actually Converge? (R1, R2).
Kodali, Abernethy, Hays, Kira (2017), On Convergence and Stability of GANs (DRAGAN).
"""

from __future__ import annotations

import numbers

import numpy as np

from ... import backend
from ...autograd.engine import enable_grad, grad, is_grad_enabled
from ...ops import mean, relu, sqrt
from ...ops import sum as _sum
from ...autograd.tensor import Tensor, as_tensor
from ...backend.validate import as_generator

__all__ = ["clip_weights", "dragan_penalty", "gradient_penalty", "r1_penalty", "r2_penalty"]

NORM_EPS = 1e-12
"""Added to the squared norm *inside* the square root of the gradient penalty."""


# --------------------------------------------------------------------------- helpers


def _as_data_tensor(x, name: str, like: Tensor | None = None, check: bool = True) -> Tensor:
    """A detached floating tensor holding ``x`` (Tensor or array), checked for NaN/Inf unless ``check`` is false."""
    if isinstance(x, Tensor):
        t = x.detach()
    else:
        array = x if hasattr(x, "dtype") and hasattr(x, "shape") else np.asarray(x)
        if like is not None:  # follow the other batch's backend and dtype
            xp, dtype = backend.array_module(like.data), like.dtype
        else:  # as Tensor(array) does: float32, but on the backend where the array lives
            xp, dtype = backend.array_module(array), np.dtype(np.float32)
        if array.dtype.kind not in "fiub":
            raise TypeError(f"{name} must be numeric, got dtype {array.dtype}")
        t = as_tensor(xp.asarray(array).astype(dtype, copy=True))
    if t.dtype.kind != "f":
        raise TypeError(f"{name} must be floating (float32 or float64), got dtype {t.dtype}")
    if t.ndim == 0 or t.shape[0] == 0:
        raise ValueError(f"{name} must have a non-empty batch axis first, got shape {t.shape}")
    if check:
        _check_finite(t, name)
    return t


def _check_finite(t: Tensor, name: str) -> None:
    """Raise ValueError naming the NaN and Inf counts of ``t``; on the GPU one read back when all is well."""
    xp = backend.array_module(t.data)
    bad = ~xp.isfinite(t.data)
    if bool(backend.host_scalar(bad.any(), f"the NaN/Inf check of {name}")):
        n_nan, n_bad = (int(v) for v in backend.to_host(xp.stack([xp.isnan(t.data).sum(), bad.sum()]), name))
        n_inf = n_bad - n_nan
        raise ValueError(
            f"{name} contains {n_nan} NaN and {n_inf} Inf value(s) (shape {t.shape}); "
            "a gradient penalty on non-finite inputs is meaningless: check the data and the generator"
        )


def _input_gradient(critic, x: Tensor, who: str) -> Tensor:
    """``grad_x sum_i critic(x)_i`` with the graph kept, so it can be differentiated again.

    ``x`` must require grad. Because a (batch-norm free) critic scores each
    sample independently, the gradient of the *sum* holds every per-sample
    gradient ``grad_{x_i} critic(x)_i`` in row ``i``. The graph is recorded only
    when gradients are enabled outside (so ``no_grad()`` evaluation stays cheap).
    """
    outer = is_grad_enabled()
    with enable_grad():
        out = critic(x)
        if not isinstance(out, Tensor):
            raise TypeError(f"{who}: critic(x) must return a Tensor, got {type(out).__name__}")
        n = x.shape[0]
        if out.shape not in ((n,), (n, 1)):
            raise ValueError(
                f"{who}: critic(x) must return one score per sample, shape ({n},) or ({n}, 1); "
                f"got {out.shape} for an input of shape {x.shape}"
            )
        if not out.requires_grad:  # a critic that ignores its input: the gradient is zero
            g = None
        else:
            (g,) = grad(_sum(out), x, create_graph=outer, allow_unused=True)
    if g is None:
        g = as_tensor(backend.array_module(x.data).zeros_like(x.data))
    return g


def _squared_norms(g: Tensor) -> Tensor:
    """Per-sample squared L2 norm over every non-batch axis, shape (N,)."""
    sq = g * g
    return _sum(sq, axis=tuple(range(1, g.ndim))) if g.ndim > 1 else sq


def _gp_at(critic, x_hat: Tensor, weight: float, target: float, one_sided: bool,
           who: str = "gradient_penalty") -> Tensor:
    """Gradient penalty at given points ``x_hat`` (which must require grad).

    Used by :func:`gradient_penalty` and :func:`dragan_penalty` (which differ
    only in where the points are); kept separate so that tests can check its
    derivatives with respect to the points as well as the critic's weights.
    """
    g = _input_gradient(critic, x_hat, who)
    norms = sqrt(_squared_norms(g) + NORM_EPS)  # epsilon inside the root: finite gradient at g = 0
    d = norms - target
    if one_sided:
        d = relu(d)
    return mean(d * d) * weight


def _r_at(critic, x: Tensor, weight: float, who: str) -> Tensor:
    """``weight / 2 * mean_i ||grad_x D(x_i)||^2`` at points ``x`` (which must require grad)."""
    g = _input_gradient(critic, x, who)
    return mean(_squared_norms(g)) * (0.5 * weight)


def _check_weight(weight, who: str) -> float:
    if not isinstance(weight, numbers.Real) or not np.isfinite(weight) or weight < 0:
        raise ValueError(f"{who}: weight must be a finite number >= 0, got {weight!r}")
    return float(weight)


# --------------------------------------------------------------------------- penalties


def gradient_penalty(critic, real, fake, weight: float = 10.0, target: float = 1.0, one_sided: bool = False,
                     rng=None, alpha=None, *, check_inputs: bool = True) -> Tensor:
    r"""Gradient penalty of WGAN-GP (two-sided) or WGAN-LP (one-sided).

    .. math::

        \hat x_i = \alpha_i x_i + (1 - \alpha_i)\tilde x_i, \qquad \alpha_i \sim U[0, 1],

        n_i = \sqrt{\textstyle\sum_{j} (\partial_{\hat x_{ij}} f(\hat x_i))^2 + 10^{-12}},

        P = \lambda \cdot \frac1N \sum_i (n_i - t)^2
        \quad\text{or, one-sided,}\quad
        \lambda \cdot \frac1N \sum_i \operatorname{relu}(n_i - t)^2,

    where ``x`` are real and ``x~`` fake samples, ``f`` the critic, ``j`` runs
    over **all** non-batch axes (a per-sample norm, not per element), ``t`` the
    target norm and ``lambda`` the weight.

    Implementation: ``real`` and ``fake`` are detached, ``x_hat`` is a new leaf
    with ``requires_grad=True``, and the input gradient is taken with
    ``create_graph=True``, so the penalty is differentiable with respect to the
    critic's weights (its whole purpose). The epsilon sits *inside* the square
    root: ``sqrt(s)`` has an infinite derivative at ``s = 0`` (0 * inf = NaN for
    a zero gradient); ``sqrt(s + 1e-12)`` is smooth. The gradient of the sum of
    the critic's outputs gives every per-sample gradient only for a critic that
    treats samples independently: **no batch norm** in the critic (layer norm is
    fine).

    Gradient with respect to the norm: :math:`\partial P/\partial n_i = 2\lambda (n_i - t)/N`
    (times ``[n_i > t]`` when one-sided).

    Parameters
    ----------
    critic : callable
        ``critic(x)`` returns a Tensor of shape ``(N,)`` or ``(N, 1)``.
    real, fake : Tensor or array
        Batches of the same shape ``(N, ...)``, finite. An array becomes a
        float32 tensor, as with ``Tensor(array)`` (``fake`` as an array
        follows ``real``'s dtype); pass Tensors for float64.
    weight : float
        ``lambda`` (10 in Gulrajani et al.).
    target : float
        ``t``, the target norm (1 for a 1-Lipschitz critic).
    one_sided : bool
        Penalise only norms above the target (WGAN-LP, Petzka et al. 2018).
    rng : numpy.random.Generator, int or None
        Source of ``alpha`` (drawn on the host, then moved to the data's
        backend); an int is a seed, None the global generator that
        :func:`scratchgan.manual_seed` reseeds. Ignored when ``alpha`` is given.
    alpha : float, array or Tensor, optional
        Fixed interpolation factors in [0, 1] (tests): a number, or one per
        sample of shape ``(N,)`` or ``(N, 1, ..., 1)``.
    check_inputs : bool, keyword-only
        Check the inputs' values: finite, and ``alpha`` in [0, 1].
        On the GPU each check reads a value back to the host (a wait for
        the GPU, and a step a CUDA graph cannot record); the trainer passes
        False for the values it made itself and reports a NaN loss instead.

    Returns
    -------
    Tensor
        A 0-d tensor of the data's dtype.

    Raises
    ------
    ValueError
        Different shapes of ``real`` and ``fake`` (both named), NaN or Inf in
        either, ``alpha`` outside [0, 1] or of the wrong shape, a critic
        output that is not one score per sample, a negative weight.
    TypeError
        Non-floating data or different dtypes.
    """
    weight = _check_weight(weight, "gradient_penalty")
    real_t = _as_data_tensor(real, "gradient_penalty: real", check=check_inputs)
    fake_t = _as_data_tensor(fake, "gradient_penalty: fake", like=real_t, check=check_inputs)
    if real_t.shape != fake_t.shape:
        raise ValueError(f"gradient_penalty: real has shape {real_t.shape} but fake has shape {fake_t.shape}; "
                         "they must match (interpolation is per sample)")
    if real_t.dtype != fake_t.dtype:
        raise TypeError(f"gradient_penalty: real has dtype {real_t.dtype} but fake has dtype {fake_t.dtype}")
    backend.check_same_backend(real_t.data, fake_t.data, "gradient_penalty")
    xp = backend.array_module(real_t.data)
    n = real_t.shape[0]
    a_shape = (n,) + (1,) * (real_t.ndim - 1)
    gen = as_generator(rng, "gradient_penalty") if alpha is None else None
    a = _alpha_array(alpha, gen, a_shape, real_t.dtype, xp, "gradient_penalty", check_inputs)
    x_hat = (real_t * a + fake_t * (1.0 - a)).requires_grad_(True)  # a new leaf (its inputs are detached)
    return _gp_at(critic, x_hat, weight, float(target), bool(one_sided))


DRAGAN_SCALE = 0.5
"""The factor ``c`` of DRAGAN's perturbation ``c * std(x) * U[0, 1]`` (Kodali et al.'s code)."""


def dragan_penalty(critic, real, weight: float = 10.0, k: float = 1.0, rng=None, *, alpha=None,
                   noise=None, check_inputs: bool = True) -> Tensor:
    r"""DRAGAN's gradient penalty around the real data (Kodali, Abernethy, Hays & Kira 2017).

    .. math::

        \delta_{ij} = 0.5\,s\,\epsilon_{ij},\quad \epsilon_{ij} \sim U[0, 1],\quad
        s = \operatorname{std}(x) \text{ over the whole batch},

        \hat x_i = x_i + \alpha_i\,\delta_i,\quad \alpha_i \sim U[0, 1],

        n_i = \sqrt{\textstyle\sum_j (\partial_{\hat x_{ij}} D(\hat x_i))^2 + 10^{-12}},\qquad
        P = \lambda\,\frac1N \sum_i (n_i - k)^2 .

    This is the authors' code (``DRAGAN.ipynb`` of kodalinaveen3/DRAGAN):
    ``X_p = X + 0.5 * X.std() * np.random.random(X.shape)``, a perturbation
    per element scaled by the population standard deviation (``ddof = 0``)
    of *all* the batch's values, then the penalty at a random point of the
    segment from ``x_i`` to its perturbation, ``X + alpha * (X_p - X)`` with
    one ``alpha`` per sample, and the mean over samples of
    ``(||grad||_2 - 1)^2`` with one norm per sample over all its features.
    (torchgan's DRAGAN takes one norm of the whole batch's gradient, a
    different penalty.) ``alpha=1.0`` gives the penalty at the perturbed
    points ``x + 0.5 std(x) U[0, 1]`` themselves.

    The points are a fresh leaf (``real`` is detached, the noise is a
    constant) and the input gradient is taken with ``create_graph=True``, so
    the penalty is differentiable with respect to the critic's weights;
    given the points it is :func:`gradient_penalty`'s two-sided penalty with
    target ``k``, with the same epsilon inside the square root and the same
    need for a critic without batch norm. Gradient with respect to a
    per-sample norm: :math:`\partial P/\partial n_i = 2\lambda(n_i - k)/N`.

    Parameters
    ----------
    critic : callable
        ``critic(x)`` returns a Tensor of shape ``(N,)`` or ``(N, 1)``.
    real : Tensor or array
        Real samples ``(N, ...)``, finite (an array becomes float32, as with ``Tensor(array)``).
    weight : float
        ``lambda`` >= 0 (10 in Kodali et al.).
    k : float
        Target norm (1 in Kodali et al.).
    rng : numpy.random.Generator, int or None
        Source of the noise, drawn on the host in this order: ``epsilon`` of
        ``real``'s shape, then ``alpha`` of shape ``(N,)`` (unless given);
        an int is a seed, None the global generator that
        :func:`scratchgan.manual_seed` reseeds.
    alpha : float, array or Tensor, optional, keyword-only
        Fixed factors in [0, 1]: a number, or one per sample ``(N,)`` or
        ``(N, 1, ..., 1)``; 1 puts every point at its full perturbation.
    noise : array or Tensor, optional, keyword-only
        Fixed ``epsilon`` values in [0, 1] of ``real``'s shape instead of
        drawing them (tests; the trainer draws them for the whole global
        batch so that a data-parallel run makes the same draws).
    check_inputs : bool, keyword-only
        Check the inputs' values: finite, ``alpha`` and ``noise`` in [0, 1].
        On the GPU each check reads a value back to the host (a wait for
        the GPU, and a step a CUDA graph cannot record); the trainer passes
        False for the values it made itself and reports a NaN loss instead.

    Returns
    -------
    Tensor
        A 0-d tensor of the data's dtype.

    Raises
    ------
    ValueError
        NaN or Inf in ``real``, ``alpha`` outside [0, 1] or of the wrong
        shape, a critic output that is not one score per sample, a negative
        weight.
    """
    weight = _check_weight(weight, "dragan_penalty")
    x = _as_data_tensor(real, "dragan_penalty: real", check=check_inputs)
    xp = backend.array_module(x.data)
    gen = as_generator(rng, "dragan_penalty") if noise is None or alpha is None else None
    n = x.shape[0]
    a_shape = (n,) + (1,) * (x.ndim - 1)
    if noise is None:
        eps = xp.asarray(gen.random(x.shape)).astype(x.dtype)
    else:
        eps = xp.asarray(noise.data if isinstance(noise, Tensor) else noise).astype(x.dtype)
        if eps.shape != x.shape:
            raise ValueError(f"dragan_penalty: noise has shape {eps.shape}; expected real's shape {x.shape}")
        if check_inputs and not bool(backend.host_scalar(((eps >= 0) & (eps <= 1)).all(),
                                                         "dragan_penalty's check that noise lies in [0, 1]")):
            raise ValueError("dragan_penalty: noise must lie in [0, 1] (it stands for U[0, 1] draws)")
    # one standard deviation of every value of the batch (NumPy's minibatch.std(), as the authors' code)
    delta = eps * (DRAGAN_SCALE * xp.std(x.data))
    a = _alpha_array(alpha, gen, a_shape, x.dtype, xp, "dragan_penalty", check_inputs)
    x_hat = as_tensor(x.data + a * delta).requires_grad_(True)  # a new leaf: the points carry no graph
    return _gp_at(critic, x_hat, weight, float(k), False, who="dragan_penalty")


def _alpha_array(alpha, gen, a_shape, dtype, xp, who: str, check: bool = True):
    """Per-sample factors of shape ``a_shape`` = (N, 1, ..., 1): drawn U[0, 1] by ``gen``, or ``alpha`` (checked)."""
    n = a_shape[0]
    if alpha is None:
        return xp.asarray(gen.random(a_shape)).astype(dtype)
    a = alpha.data if isinstance(alpha, Tensor) else alpha
    a = xp.asarray(a).astype(dtype)
    if a.ndim == 0:
        a = xp.full(a_shape, a, dtype=dtype)
    elif a.shape == (n,):
        a = a.reshape(a_shape)
    elif a.shape != a_shape:
        raise ValueError(f"{who}: alpha has shape {a.shape}; expected a number, ({n},) or {a_shape}")
    if check and not bool(backend.host_scalar(((a >= 0) & (a <= 1)).all(),
                                              f"{who}'s check that alpha lies in [0, 1]")):
        raise ValueError(f"{who}: alpha must lie in [0, 1]")
    return a


def r1_penalty(critic, real, weight: float, *, check_inputs: bool = True) -> Tensor:
    r"""R1 penalty of Mescheder et al. (2018): the critic's input gradient on *real* data.

    .. math::

        R_1 = \frac{\gamma}{2}\,\frac1N \sum_i \lVert \nabla_x D(x_i) \rVert^2,
        \qquad x_i \sim p_{\text{data}}.

    ``weight`` is ``gamma`` and the factor 1/2 is applied here, as in the
    paper's definition (their code's ``reg_param``); libraries that fold it
    into the weight (``r1_gamma * 0.5``) mean the same thing. ``D`` is the raw
    logit. No square root is taken, so no epsilon is needed. The gradient is
    taken with ``create_graph=True`` on a detached copy of ``real``, so the
    penalty reaches the critic's weights. Gradient with respect to the
    per-sample gradient ``g_i``: :math:`\gamma g_i / N`.

    Parameters
    ----------
    critic : callable
        ``critic(x)`` returns a Tensor of shape ``(N,)`` or ``(N, 1)``.
    real : Tensor or array
        Real samples ``(N, ...)``, finite (an array becomes float32, as with ``Tensor(array)``).
    weight : float
        ``gamma`` >= 0.
    check_inputs : bool, keyword-only
        Check the inputs' values: finite. On the GPU each check reads a
        value back to the host (a wait for the GPU, and a step a CUDA graph
        cannot record); the trainer passes False for the values it made itself
        and reports a NaN loss instead.

    Returns
    -------
    Tensor
        A 0-d tensor.
    """
    weight = _check_weight(weight, "r1_penalty")
    x = _as_data_tensor(real, "r1_penalty: real", check=check_inputs).requires_grad_(True)
    return _r_at(critic, x, weight, "r1_penalty")


def r2_penalty(critic, fake, weight: float, *, check_inputs: bool = True) -> Tensor:
    r"""R2 penalty of Mescheder et al. (2018): like :func:`r1_penalty`, on *generated* data.

    .. math::

        R_2 = \frac{\gamma}{2}\,\frac1N \sum_i \lVert \nabla_x D(\tilde x_i) \rVert^2,
        \qquad \tilde x_i \sim p_g.

    ``fake`` is detached: the penalty regularises the critic, not the generator.
    ``check_inputs``: as :func:`r1_penalty`'s.
    """
    weight = _check_weight(weight, "r2_penalty")
    x = _as_data_tensor(fake, "r2_penalty: fake", check=check_inputs).requires_grad_(True)
    return _r_at(critic, x, weight, "r2_penalty")


def clip_weights(module, c: float) -> None:
    """Clamp every parameter of ``module`` in place to ``[-c, c]`` (the original WGAN).

    The arrays are modified in place (``xp.clip(p.data, -c, c, out=p.data)``),
    so the optimizers, which hold these same arrays, see the new values.
    Nothing is recorded in the graph. Call it after each critic update.

    Parameters
    ----------
    module : object with ``.parameters()``, or an iterable of Tensors
        The critic.
    c : float
        The clipping bound, > 0 (0.01 in Arjovsky et al.).
    """
    if not isinstance(c, numbers.Real) or not np.isfinite(c) or c <= 0:
        raise ValueError(f"clip_weights: c must be a finite number > 0, got {c!r}")
    params = module.parameters() if hasattr(module, "parameters") else module
    for i, p in enumerate(params):
        if not isinstance(p, Tensor):
            raise TypeError(f"clip_weights: parameter {i} is a {type(p).__name__}, not a Tensor")
        xp = backend.array_module(p.data)
        xp.clip(p.data, -c, c, out=p.data)
