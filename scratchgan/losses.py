"""GAN losses and penalties, on logits, each with its formula.

Every loss takes the critic's raw outputs (**logits**, never probabilities),
reduces with the mean, and is built only from the engine's differentiable,
numerically stable ops, so that it can be differentiated twice (WGAN-GP, R1).
They work for float32 and float64 and on either backend (NumPy or CuPy): the
array module is always taken from the inputs.

Notation: ``x`` a logit, ``sigma`` the logistic function, ``D(x) = sigma(logit)``
the discriminator's probability, ``N`` the number of logits in a batch.
``softplus(x) = log(1 + e^x)`` and ``log sigma(x) = -softplus(-x)``.

See ``docs/losses.md`` for when to use which loss and the tests that check them.

References
----------
Goodfellow et al. (2014), Generative Adversarial Nets.
Arjovsky, Chintala, Bottou (2017), Wasserstein GAN.
Gulrajani et al. (2017), Improved Training of Wasserstein GANs.
Petzka, Fischer, Lukovnikov (2018), On the regularization of Wasserstein GANs (WGAN-LP).
Mao et al. (2017), Least Squares Generative Adversarial Networks.
Lim & Ye (2017), Geometric GAN; Miyato et al. (2018), Spectral Normalization (hinge loss).
Mescheder, Geiger, Nowozin (2018), Which Training Methods for GANs do actually Converge? (R1, R2).
"""

from __future__ import annotations

import numbers

import numpy as np

from . import backend
from .ops import mean, mean_softplus, relu, softplus, sqrt
from .ops import sum as _sum
from .engine import enable_grad, grad, is_grad_enabled
from .tensor import Tensor, as_tensor
from .validate import as_generator

__all__ = ["KINDS", "bce_with_logits", "clip_weights", "d_loss", "g_loss", "gradient_penalty", "r1_penalty", "r2_penalty"]

KINDS = ("minimax", "ns", "wasserstein", "lsgan", "hinge")
"""The loss families understood by :func:`d_loss` and :func:`g_loss`."""

NORM_EPS = 1e-12
"""Added to the squared norm *inside* the square root of the gradient penalty."""


# --------------------------------------------------------------------------- helpers


def _check_logits(x, name: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a Tensor of logits, got {type(x).__name__}")
    if x.dtype.kind != "f":
        raise TypeError(f"{name} must be a floating tensor (float32 or float64), got dtype {x.dtype}")
    if x.size == 0:
        raise ValueError(f"{name} is empty (shape {x.shape}); a mean over no logits is undefined")
    return x


def _check_kind(kind) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown GAN loss kind {kind!r}; choose one of {', '.join(repr(k) for k in KINDS)}")
    return kind


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
        return as_tensor(xp.full(logits.shape, float(targets), dtype=logits.dtype))
    array = targets if hasattr(targets, "dtype") and hasattr(targets, "shape") else np.asarray(targets)
    if tuple(array.shape) != logits.shape:
        raise ValueError(
            f"bce_with_logits: targets have shape {tuple(array.shape)} but logits have shape {logits.shape}; "
            "reshape one of them (no silent broadcasting, e.g. of (N, 1) against (N,))"
        )
    if array.dtype.kind not in "fiub":
        raise TypeError(f"bce_with_logits: targets must be numeric, got dtype {array.dtype}")
    # targets are constants: cast them to the logits' dtype and backend
    return as_tensor(xp.asarray(array).astype(logits.dtype, copy=True))


def _as_data_tensor(x, name: str, like: Tensor | None = None) -> Tensor:
    """A detached floating tensor holding ``x`` (Tensor or array), checked for NaN/Inf."""
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
    xp = backend.array_module(t.data)
    bad = ~xp.isfinite(t.data)
    if bool(bad.any()):
        n_nan = int(xp.isnan(t.data).sum())
        n_inf = int(bad.sum()) - n_nan
        raise ValueError(
            f"{name} contains {n_nan} NaN and {n_inf} Inf value(s) (shape {t.shape}); "
            "a gradient penalty on non-finite inputs is meaningless: check the data and the generator"
        )
    return t


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


def _gp_at(critic, x_hat: Tensor, weight: float, target: float, one_sided: bool) -> Tensor:
    """Gradient penalty at given points ``x_hat`` (which must require grad).

    Used by :func:`gradient_penalty`; kept separate so that tests can check its
    derivatives with respect to the points as well as the critic's weights.
    """
    g = _input_gradient(critic, x_hat, "gradient_penalty")
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


# --------------------------------------------------------------------------- BCE


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


# --------------------------------------------------------------------------- adversarial losses


def d_loss(kind: str, real_logits: Tensor, fake_logits: Tensor, label_smoothing: float = 0.0) -> Tensor:
    r"""Discriminator (critic) loss to *minimise*, from logits.

    ``r`` are the logits on real data, ``f`` those on generated data, each
    mean-reduced over its own batch (the two batches may differ in size).

    Per kind (the bar is the mean over the batch; the gradient is with respect
    to one logit, real then fake):

    ``"minimax"``, ``"ns"``
        :math:`\overline{\operatorname{softplus}(-r)} + \overline{\operatorname{softplus}(f)}
        = -[\overline{\log D(x)} + \overline{\log(1 - D(G(z)))}]`;
        gradients :math:`-\sigma(-r_i)/N_r` and :math:`\sigma(f_i)/N_f`.
    ``"wasserstein"``
        :math:`\overline{f} - \overline{r}`; gradients :math:`-1/N_r` and :math:`1/N_f`.
    ``"lsgan"``
        :math:`\tfrac12\overline{(r - 1)^2} + \tfrac12\overline{f^2}`;
        gradients :math:`(r_i - 1)/N_r` and :math:`f_i/N_f`.
    ``"hinge"``
        :math:`\overline{\operatorname{relu}(1 - r)} + \overline{\operatorname{relu}(1 + f)}`;
        gradients :math:`-[r_i < 1]/N_r` and :math:`[f_i > -1]/N_f`.

    ``"minimax"`` and ``"ns"`` share the
    discriminator loss; they differ only in the generator's (see :func:`g_loss`).
    For ``"wasserstein"`` add a Lipschitz constraint: :func:`gradient_penalty`
    (WGAN-GP) or :func:`clip_weights` (the original WGAN). ``"lsgan"`` uses
    the a=0, b=1, c=1 coding of Mao et al. with the factor 1/2 of their
    equation (2) on each term (some code omits it: that only doubles the loss).

    Parameters
    ----------
    kind : {"minimax", "ns", "wasserstein", "lsgan", "hinge"}
    real_logits, fake_logits : Tensor
        Raw critic outputs on real and generated samples (any shape, e.g.
        ``(N,)`` or ``(N, 1)``); detach the fakes in the discriminator step.
    label_smoothing : float
        One-sided label smoothing ``s`` in [0, 1) (Salimans et al. 2016) for
        ``"minimax"``/``"ns"`` only: the real target becomes ``1 - s`` and the
        real term :math:`\overline{(1-s)\operatorname{softplus}(-r) + s\operatorname{softplus}(r)}`,
        with gradient :math:`(\sigma(r_i) - (1 - s))/N_r`. Fakes keep target 0.

    Returns
    -------
    Tensor
        A 0-d tensor.

    Raises
    ------
    ValueError
        For an unknown ``kind`` (the message lists the kinds), or label
        smoothing outside [0, 1) or with a kind other than minimax/ns.
    """
    kind = _check_kind(kind)
    real_logits = _check_logits(real_logits, "real_logits")
    fake_logits = _check_logits(fake_logits, "fake_logits")
    s = float(label_smoothing)
    if not 0.0 <= s < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
    if s and kind not in ("minimax", "ns"):
        raise ValueError(f"label_smoothing applies to the 'minimax' and 'ns' losses only, not {kind!r}")
    if kind in ("minimax", "ns"):
        return _bce_one(real_logits, 1.0 - s) + _bce_one(fake_logits, 0.0)
    if kind == "wasserstein":
        return mean(fake_logits) - mean(real_logits)
    if kind == "lsgan":
        dr = real_logits - 1.0
        return mean(dr * dr) * 0.5 + mean(fake_logits * fake_logits) * 0.5
    # hinge
    return mean(relu(1.0 - real_logits)) + mean(relu(fake_logits + 1.0))


def g_loss(kind: str, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
    r"""Generator loss to *minimise*, from the critic's logits ``f`` on generated samples.

    Per kind (the bar is the mean over the batch; gradient with respect to one logit):

    ``"minimax"``
        :math:`\overline{\log(1 - D(G(z)))} = -\overline{\operatorname{softplus}(f)}`;
        gradient :math:`-\sigma(f_i)/N`.
    ``"ns"``
        :math:`-\overline{\log D(G(z))} = \overline{\operatorname{softplus}(-f)}`;
        gradient :math:`-\sigma(-f_i)/N`.
    ``"wasserstein"``, ``"hinge"``
        :math:`-\overline{f}`; gradient :math:`-1/N`.
    ``"lsgan"``
        :math:`\tfrac12\overline{(f - 1)^2}`; gradient :math:`(f_i - 1)/N`.

    ``"minimax"`` is the saturating loss of the original GAN's value function:
    when the discriminator confidently rejects the fakes (``f -> -inf``, early
    in training) its gradient ``-sigma(f)/N`` vanishes. ``"ns"`` (the
    non-saturating loss that Goodfellow et al. recommend) has the same fixed
    point but a gradient near ``-1/N`` there. Prefer ``"ns"``; ``"minimax"``
    is here for completeness and for the test that shows the difference.

    Parameters
    ----------
    kind : {"minimax", "ns", "wasserstein", "lsgan", "hinge"}
    fake_logits : Tensor
        Critic outputs on generated samples (not detached: the gradient must
        reach the generator).
    real_logits : Tensor, optional
        Unused by these kinds (their generator losses do not depend on real
        data); accepted so that relativistic variants can share the signature.

    Returns
    -------
    Tensor
        A 0-d tensor.
    """
    kind = _check_kind(kind)
    fake_logits = _check_logits(fake_logits, "fake_logits")
    if real_logits is not None:
        _check_logits(real_logits, "real_logits")
    if kind == "minimax":
        return -mean_softplus(fake_logits)
    if kind == "ns":
        return mean_softplus(-fake_logits)
    if kind == "lsgan":
        d = fake_logits - 1.0
        return mean(d * d) * 0.5
    # wasserstein, hinge
    return -mean(fake_logits)


# --------------------------------------------------------------------------- penalties


def gradient_penalty(critic, real, fake, weight: float = 10.0, target: float = 1.0, one_sided: bool = False,
                     rng=None, alpha=None) -> Tensor:
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
    real_t = _as_data_tensor(real, "gradient_penalty: real")
    fake_t = _as_data_tensor(fake, "gradient_penalty: fake", like=real_t)
    if real_t.shape != fake_t.shape:
        raise ValueError(f"gradient_penalty: real has shape {real_t.shape} but fake has shape {fake_t.shape}; "
                         "they must match (interpolation is per sample)")
    if real_t.dtype != fake_t.dtype:
        raise TypeError(f"gradient_penalty: real has dtype {real_t.dtype} but fake has dtype {fake_t.dtype}")
    backend.check_same_backend(real_t.data, fake_t.data, "gradient_penalty")
    xp = backend.array_module(real_t.data)
    n = real_t.shape[0]
    a_shape = (n,) + (1,) * (real_t.ndim - 1)
    if alpha is None:
        gen = as_generator(rng, "gradient_penalty")
        a = xp.asarray(gen.random(a_shape)).astype(real_t.dtype)
    else:
        a = alpha.data if isinstance(alpha, Tensor) else alpha
        a = xp.asarray(a).astype(real_t.dtype)
        if a.ndim == 0:
            a = xp.full(a_shape, a, dtype=real_t.dtype)
        elif a.shape == (n,):
            a = a.reshape(a_shape)
        elif a.shape != a_shape:
            raise ValueError(f"gradient_penalty: alpha has shape {a.shape}; expected a number, ({n},) or {a_shape}")
        if not bool(((a >= 0) & (a <= 1)).all()):
            raise ValueError("gradient_penalty: alpha must lie in [0, 1]")
    x_hat = (real_t * a + fake_t * (1.0 - a)).requires_grad_(True)  # a new leaf (its inputs are detached)
    return _gp_at(critic, x_hat, weight, float(target), bool(one_sided))


def r1_penalty(critic, real, weight: float) -> Tensor:
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

    Returns
    -------
    Tensor
        A 0-d tensor.
    """
    weight = _check_weight(weight, "r1_penalty")
    x = _as_data_tensor(real, "r1_penalty: real").requires_grad_(True)
    return _r_at(critic, x, weight, "r1_penalty")


def r2_penalty(critic, fake, weight: float) -> Tensor:
    r"""R2 penalty of Mescheder et al. (2018): like :func:`r1_penalty`, on *generated* data.

    .. math::

        R_2 = \frac{\gamma}{2}\,\frac1N \sum_i \lVert \nabla_x D(\tilde x_i) \rVert^2,
        \qquad \tilde x_i \sim p_g.

    ``fake`` is detached: the penalty regularises the critic, not the generator.
    """
    weight = _check_weight(weight, "r2_penalty")
    x = _as_data_tensor(fake, "r2_penalty: fake").requires_grad_(True)
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
