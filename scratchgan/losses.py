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
Jolicoeur-Martineau (2018), The relativistic discriminator: a key element missing from standard GAN (RSGAN, RaSGAN).
Kodali, Abernethy, Hays, Kira (2017), On Convergence and Stability of GANs (DRAGAN).
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

__all__ = ["ALL_KINDS", "KINDS", "RELATIVISTIC_KINDS", "bce_with_logits", "clip_weights", "d_loss", "dragan_penalty",
           "g_loss", "gradient_penalty", "r1_penalty", "r2_penalty"]

KINDS = ("minimax", "ns", "wasserstein", "lsgan", "hinge")
"""The *absolute* loss families of :func:`d_loss` and :func:`g_loss`: each logit is judged on its own, so the
generator loss needs only the fake logits."""

RELATIVISTIC_KINDS = ("rsgan", "rasgan")
"""The relativistic families (Jolicoeur-Martineau 2018): real and fake logits are judged against each other, so
:func:`g_loss` needs the real logits too."""

ALL_KINDS = KINDS + RELATIVISTIC_KINDS
"""Every kind that :func:`d_loss` and :func:`g_loss` understand."""

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
    if kind not in ALL_KINDS:
        raise ValueError(f"unknown GAN loss kind {kind!r}; choose one of {', '.join(repr(k) for k in ALL_KINDS)}")
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
    ``"rsgan"`` (relativistic standard GAN; real and fake batches of the same shape, paired by index)
        :math:`\overline{\operatorname{softplus}(-(r - f))} = -\overline{\log\sigma(r_i - f_i)}`,
        i.e. BCE(r - f, 1); gradients :math:`-\sigma(f_i - r_i)/N` and :math:`+\sigma(f_i - r_i)/N`.
    ``"rasgan"`` (relativistic average standard GAN; the batches may differ in size)
        :math:`\tfrac12[\overline{\operatorname{softplus}(-(r - \bar f))}
        + \overline{\operatorname{softplus}(f - \bar r)}]`, i.e. ½[BCE(r - mean f, 1) + BCE(f - mean r, 0)];
        with :math:`a_i = r_i - \bar f`, :math:`b_j = f_j - \bar r`, gradients
        :math:`-\tfrac{1}{2N_r}[\sigma(-a_i) + \overline{\sigma(b)}]` and
        :math:`\tfrac{1}{2N_f}[\sigma(b_j) + \overline{\sigma(-a)}]`.

    The relativistic kinds (Jolicoeur-Martineau 2018) follow the author's code
    (``GAN_losses_iter.py``, loss_D 5 and 6): RSGAN pairs the i-th real with
    the i-th fake logit, and RaSGAN *halves* the sum of its two terms, so
    both equal log 2 at zero logits. The paper's RaSGAN equations, and
    TF-GAN-style implementations, *sum* the two terms: twice this loss, the
    same minimiser, and with Adam practically the same training (Adam's step
    does not depend on the scale of the gradient, up to its epsilon).

    ``"minimax"`` and ``"ns"`` share the
    discriminator loss; they differ only in the generator's (see :func:`g_loss`).
    For ``"wasserstein"`` add a Lipschitz constraint: :func:`gradient_penalty`
    (WGAN-GP) or :func:`clip_weights` (the original WGAN). ``"lsgan"`` uses
    the a=0, b=1, c=1 coding of Mao et al. with the factor 1/2 of their
    equation (2) on each term (some code omits it: that only doubles the loss).

    Parameters
    ----------
    kind : {"minimax", "ns", "wasserstein", "lsgan", "hinge", "rsgan", "rasgan"}
    real_logits, fake_logits : Tensor
        Raw critic outputs on real and generated samples (any shape, e.g.
        ``(N,)`` or ``(N, 1)``; the same shape for ``"rsgan"``); detach the
        fakes in the discriminator step.
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
        For an unknown ``kind`` (the message lists the kinds), label
        smoothing outside [0, 1) or with a kind other than minimax/ns, or
        ``"rsgan"`` logits of different shapes (both named).
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
    if kind == "rsgan":
        return mean_softplus(fake_logits - _paired(real_logits, fake_logits, "d_loss"))  # softplus(-(r - f))
    if kind == "rasgan":
        a = real_logits - mean(fake_logits)  # how much more real than the average fake
        b = fake_logits - mean(real_logits)
        return (mean_softplus(-a) + mean_softplus(b)) * 0.5
    # hinge
    return mean(relu(1.0 - real_logits)) + mean(relu(fake_logits + 1.0))


def _paired(real_logits: Tensor, fake_logits: Tensor, who: str) -> Tensor:
    """``real_logits``, after checking that it pairs with ``fake_logits`` index by index (RSGAN)."""
    if real_logits.shape != fake_logits.shape:
        raise ValueError(
            f"{who}('rsgan'): real_logits have shape {real_logits.shape} but fake_logits have shape "
            f"{fake_logits.shape}; RSGAN compares the i-th real with the i-th fake logit, so both batches must have "
            "the same shape (no broadcasting; 'rasgan' compares with the other batch's mean and takes any sizes)")
    return real_logits


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
    ``"rsgan"`` (needs ``real_logits`` ``r`` of the same shape)
        The mirror of its discriminator loss, BCE(f - r, 1):
        :math:`\overline{\operatorname{softplus}(-(f - r))}`; gradients
        :math:`-\sigma(r_i - f_i)/N` (fake) and :math:`+\sigma(r_i - f_i)/N` (real).
    ``"rasgan"`` (needs ``real_logits``)
        The mirror, ½[BCE(r - mean f, 0) + BCE(f - mean r, 1)]:
        :math:`\tfrac12[\overline{\operatorname{softplus}(a)} + \overline{\operatorname{softplus}(-b)}]`
        with :math:`a_i = r_i - \bar f`, :math:`b_j = f_j - \bar r`; gradient
        :math:`-\tfrac{1}{2N_f}[\sigma(-b_j) + \overline{\sigma(a)}]` with respect to a fake logit.

    The relativistic generator losses depend on the real logits too: the
    generator also gains by making real data look *less* real relative to its
    fakes (Jolicoeur-Martineau 2018). Both are non-saturating. Scaling as
    :func:`d_loss` (the author's code: RaSGAN halved).

    ``"minimax"`` is the saturating loss of the original GAN's value function:
    when the discriminator confidently rejects the fakes (``f -> -inf``, early
    in training) its gradient ``-sigma(f)/N`` vanishes. ``"ns"`` (the
    non-saturating loss that Goodfellow et al. recommend) has the same fixed
    point but a gradient near ``-1/N`` there. Prefer ``"ns"``; ``"minimax"``
    is here for completeness and for the test that shows the difference.

    Parameters
    ----------
    kind : {"minimax", "ns", "wasserstein", "lsgan", "hinge", "rsgan", "rasgan"}
    fake_logits : Tensor
        Critic outputs on generated samples (not detached: the gradient must
        reach the generator).
    real_logits : Tensor, optional
        Critic outputs on a real batch: required by ``"rsgan"`` and
        ``"rasgan"`` (:data:`RELATIVISTIC_KINDS`), unused by the other kinds
        (their generator losses do not depend on real data).

    Returns
    -------
    Tensor
        A 0-d tensor.

    Raises
    ------
    TypeError
        For a relativistic kind without ``real_logits``.
    ValueError
        For an unknown ``kind``, or ``"rsgan"`` logits of different shapes.
    """
    kind = _check_kind(kind)
    fake_logits = _check_logits(fake_logits, "fake_logits")
    if real_logits is not None:
        _check_logits(real_logits, "real_logits")
    elif kind in RELATIVISTIC_KINDS:
        raise TypeError(f"g_loss({kind!r}) needs real_logits: a relativistic generator loss compares the fake logits "
                        "with the critic's logits on a real batch; call g_loss(kind, fake_logits, real_logits)")
    if kind == "rsgan":
        return mean_softplus(_paired(real_logits, fake_logits, "g_loss") - fake_logits)  # softplus(-(f - r))
    if kind == "rasgan":
        a = real_logits - mean(fake_logits)
        b = fake_logits - mean(real_logits)
        return (mean_softplus(a) + mean_softplus(-b)) * 0.5
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


# --------------------------------------------------------------------------- classification and auxiliary losses
# Softmax cross-entropy, the ACGAN auxiliary-classifier losses and the InfoGAN mutual-information penalty
# (docs/losses.md, "ACGAN and InfoGAN"). Built on the log_softmax op, so twice differentiable.

from .ops import getitem as _getitem, log_softmax as _log_softmax  # noqa: E402

__all__ += ["acgan_discriminator_loss", "acgan_generator_loss", "mutual_information_penalty",  # noqa: PLE0605
            "softmax_cross_entropy"]

CROSS_ENTROPY_REDUCTIONS = ("mean", "sum", "none")
_HALF_LOG_2PI = 0.5 * float(np.log(2.0 * np.pi))


def _class_logits(logits, who: str) -> Tensor:
    """``logits`` as a non-empty floating (N, C) Tensor, or a clear error."""
    if not isinstance(logits, Tensor):
        raise TypeError(f"{who} must be a Tensor of logits, got {type(logits).__name__}")
    if logits.dtype.kind != "f":
        raise TypeError(f"{who} must be a floating tensor (float32 or float64), got dtype {logits.dtype}")
    if logits.ndim != 2:
        raise ValueError(f"{who} must have shape (N, C): one row of C class logits per sample; got shape "
                         f"{logits.shape}")
    n, c = logits.shape
    if n == 0 or c == 0:
        raise ValueError(f"{who} is empty (shape {logits.shape}); a mean over no samples or classes is undefined")
    return logits


def _class_labels(labels, logits: Tensor, who: str):
    """Integer class labels of shape (N,) in [0, C) as an array on the logits' backend, or a clear error."""
    n, c = logits.shape
    xp = backend.array_module(logits.data)
    y = labels.data if isinstance(labels, Tensor) else labels
    y = y if hasattr(y, "dtype") and hasattr(y, "shape") else np.asarray(y)
    if y.dtype.kind not in "iu":
        raise TypeError(f"{who} must be integer class indices (int32/int64), got dtype {y.dtype}; for one-hot "
                        "or probability targets use nn.CrossEntropyLoss")
    if tuple(y.shape) != (n,):
        raise ValueError(f"{who} must have shape ({n},), one class index per row of the logits {logits.shape}; "
                         f"got shape {tuple(y.shape)}")
    vouched = backend.vouched_high(y)
    if vouched is None or vouched > c:  # labels drawn in range (the trainer's, on the GPU) need no read back
        if backend.array_module(y) is np:  # host labels: checked before they are copied to the device
            lo, hi = int(y.min()), int(y.max())
        else:
            lo, hi = (int(v) for v in backend.to_host(xp.stack([y.min(), y.max()]), f"the range check of {who}"))
        if lo < 0 or hi >= c:
            raise ValueError(f"{who} must lie in [0, {c - 1}] (the logits have {c} classes), found {lo}..{hi}")
    return backend.vouch_indices(xp.asarray(y), c)


def softmax_cross_entropy(logits: Tensor, labels, reduction: str = "mean") -> Tensor:
    r"""Softmax cross-entropy of (N, C) logits against integer class labels.

    .. math::

        \ell_i = -\log \operatorname{softmax}(z_i)_{y_i}
               = -z_{i y_i} + m_i + \log \sum_k e^{z_{ik} - m_i}, \qquad
        L = \frac1N \sum_i \ell_i,

    with :math:`m_i = \max_k z_{ik}` (:func:`scratchgan.ops.log_softmax`, so
    finite for every finite logit). PyTorch's ``F.cross_entropy(z, y)`` and
    TF's ``sparse_softmax_cross_entropy_with_logits`` (then the mean).

    Parameters
    ----------
    logits : Tensor, shape (N, C)
        Floating class logits, N >= 1, C >= 1.
    labels : Tensor or array_like of int, shape (N,)
        Classes in ``[0, C)``.
    reduction : {"mean", "sum", "none"}
        ``"none"`` returns the (N,) per-sample losses.

    Returns
    -------
    Tensor
        0-d (or (N,) for ``"none"``), the logits' dtype.

    Raises
    ------
    TypeError
        For non-floating logits or non-integer labels.
    ValueError
        For logits that are not (N, C) or empty, labels of another shape or
        out of range, or an unknown reduction; the message names the shapes.

    Notes
    -----
    Gradient: :math:`\partial L / \partial z_{ik} = (\operatorname{softmax}(z_i)_k - [k = y_i]) / N`;
    second derivative :math:`(\operatorname{diag}(p_i) - p_i p_i^\top) / N`.
    """
    if reduction not in CROSS_ENTROPY_REDUCTIONS:
        raise ValueError(f"softmax_cross_entropy: reduction must be one of {CROSS_ENTROPY_REDUCTIONS}, "
                         f"got {reduction!r}")
    logits = _class_logits(logits, "softmax_cross_entropy: logits")
    y = _class_labels(labels, logits, "softmax_cross_entropy: labels")
    xp = backend.array_module(logits.data)
    rows = backend.vouch_indices(xp.arange(logits.shape[0]), logits.shape[0])  # so getitem reads nothing back
    picked = _getitem(_log_softmax(logits, axis=1), (rows, y))
    if reduction == "none":
        return -picked
    return -(mean(picked) if reduction == "mean" else _sum(picked))


def acgan_discriminator_loss(real_class_logits: Tensor, fake_class_logits: Tensor, real_labels,
                             fake_labels=None) -> Tensor:
    r"""ACGAN's auxiliary-classifier loss for D (Odena et al. 2017): classify real *and* generated images.

    .. math::

        L^D_{\text{aux}} = \operatorname{CE}(c(x), y) + \operatorname{CE}(c(G(z, y')), y'),

    each a mean :func:`softmax_cross_entropy` over its batch. It is TF-GAN's
    ``acgan_discriminator_loss`` (the sum of the two mean terms; TF-GAN uses
    one label batch for both, because its G is fed the real batch's labels).
    Here ``fake_labels`` are the labels G was asked for (default: the real
    labels, TF-GAN's case). The trainer adds it, times ``aux_weight``, to D's
    adversarial loss; the paper's :math:`L_C` is the log-likelihood of the
    correct class on both sources, the same thing.

    Parameters
    ----------
    real_class_logits, fake_class_logits : Tensor, shapes (N, C) and (M, C)
        The auxiliary head's logits on real and generated samples.
    real_labels : array_like of int, shape (N,)
    fake_labels : array_like of int, shape (M,), optional

    Returns
    -------
    Tensor
        0-d. Gradient w.r.t. each logit row: :math:`(p_i - e_{y_i}) / N` (real) and
        :math:`(p_j - e_{y'_j}) / M` (fake).
    """
    fake_labels = real_labels if fake_labels is None else fake_labels
    real = _class_logits(real_class_logits, "acgan_discriminator_loss: real_class_logits")
    fake = _class_logits(fake_class_logits, "acgan_discriminator_loss: fake_class_logits")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"acgan_discriminator_loss: the real and fake class logits must have the same number of "
                         f"classes; got shapes {real.shape} and {fake.shape}")
    return softmax_cross_entropy(real, real_labels) + softmax_cross_entropy(fake, fake_labels)


def acgan_generator_loss(fake_class_logits: Tensor, fake_labels) -> Tensor:
    r"""ACGAN's auxiliary-classifier loss for G: its samples must be classified as the labels it was given.

    .. math::

        L^G_{\text{aux}} = \operatorname{CE}(c(G(z, y')), y') = -\frac1M \sum_j \log \operatorname{softmax}(c_j)_{y'_j},

    TF-GAN's ``acgan_generator_loss`` (a mean softmax cross-entropy). Gradient
    w.r.t. the logits :math:`(p_j - e_{y'_j}) / M`, which reaches G through D.
    """
    return softmax_cross_entropy(fake_class_logits, fake_labels)


def _continuous_codes(means, codes, who: str):
    if not isinstance(means, Tensor):
        raise TypeError(f"{who}: continuous_means must be a Tensor (the Q head's predicted means), got "
                        f"{type(means).__name__}")
    if means.dtype.kind != "f":
        raise TypeError(f"{who}: continuous_means must be floating, got dtype {means.dtype}")
    if means.ndim != 2 or 0 in means.shape:
        raise ValueError(f"{who}: continuous_means must have shape (N, d) with N, d >= 1, got {means.shape}")
    c = codes if isinstance(codes, Tensor) else None
    if c is None:
        array = codes if hasattr(codes, "dtype") and hasattr(codes, "shape") else np.asarray(codes)
        if array.dtype.kind not in "fiu":
            raise TypeError(f"{who}: continuous_codes must be numeric, got dtype {array.dtype}")
        c = as_tensor(backend.array_module(means.data).asarray(array).astype(means.dtype, copy=True))
    elif c.dtype != means.dtype:
        c = c.astype(means.dtype)
    if c.shape != means.shape:
        raise ValueError(f"{who}: continuous_codes have shape {c.shape} but continuous_means have shape "
                         f"{means.shape}; they must match (one predicted mean per code)")
    return c.detach()


def mutual_information_penalty(categorical_logits: Tensor | None = None, categorical_codes=None,
                               continuous_means: Tensor | None = None, continuous_codes=None) -> Tensor:
    r"""InfoGAN's mutual-information penalty (Chen et al. 2016), as TF-GAN's ``mutual_information_penalty``.

    The negative variational lower bound of :math:`I(c; G(z, c))` (up to the
    codes' constant entropy): the mean over the :math:`K` code groups of each
    group's negative mean log-likelihood under the Q head,

    .. math::

        L_{\text{MI}} = -\frac1K \sum_{k=1}^{K} \overline{\log Q_k(c_k \mid G(z, c))},

        \log Q_{\text{cat}}(c \mid x) = \log \operatorname{softmax}(q(x))_c, \qquad
        \log Q_{\text{cont}}(s \mid x) = -\tfrac12 (s - \mu(x))^2 - \tfrac12 \log 2\pi,

    a categorical code :math:`c` (the bar: mean over the N samples) and
    continuous codes :math:`s` with a unit-variance Gaussian posterior of
    mean :math:`\mu(x)` (the bar: mean over the N·d values). :math:`K` is the
    number of groups given (1 or 2): TF-GAN reduces the list of per-group
    log-likelihoods with ``SUM_BY_NONZERO_WEIGHTS``, i.e. their mean (its test
    case, categorical logits [1, 2] with code 1 and a N(0, 1) posterior with
    code 2, gives 1.61610; ``tests/test_aux_losses.py`` reproduces it). The
    paper's :math:`\lambda L_I` is the sum; the factor :math:`1/K` is part of
    the weight. TF-GAN and the trainer add it, times the weight (default 1),
    to both the generator's and the discriminator's loss.

    Parameters
    ----------
    categorical_logits : Tensor, shape (N, C), optional
        The Q head's logits of the categorical code.
    categorical_codes : array_like of int, shape (N,), optional
        The categories G was given.
    continuous_means : Tensor, shape (N, d), optional
        The Q head's predicted means of the continuous codes.
    continuous_codes : Tensor or array_like, shape (N, d), optional
        The continuous codes G was given (constants: no gradient).

    Returns
    -------
    Tensor
        0-d. Gradients: :math:`(p_i - e_{c_i}) / (K N)` w.r.t. the categorical
        logits, :math:`-(s_{ij} - \mu_{ij}) / (K N d)` w.r.t. the means.

    Raises
    ------
    ValueError
        When neither group is given, a logits/codes pair is incomplete, or
        shapes do not fit (the message names them).
    """
    who = "mutual_information_penalty"
    terms = []
    if (categorical_logits is None) != (categorical_codes is None):
        raise ValueError(f"{who}: give both categorical_logits and categorical_codes, or neither")
    if (continuous_means is None) != (continuous_codes is None):
        raise ValueError(f"{who}: give both continuous_means and continuous_codes, or neither")
    if categorical_logits is not None:
        terms.append(softmax_cross_entropy(categorical_logits, categorical_codes))  # = -mean log Q_cat
    if continuous_means is not None:
        s = _continuous_codes(continuous_means, continuous_codes, who)
        if categorical_logits is not None and continuous_means.shape[0] != categorical_logits.shape[0]:
            raise ValueError(f"{who}: the categorical logits {categorical_logits.shape} and the continuous means "
                             f"{continuous_means.shape} must come from the same batch (same N)")
        d = s - continuous_means
        terms.append(mean(d * d) * 0.5 + _HALF_LOG_2PI)  # = -mean log N(s; mu, 1)
    if not terms:
        raise ValueError(f"{who}: no codes given; pass categorical_logits/categorical_codes and/or "
                         "continuous_means/continuous_codes")
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return total * (1.0 / len(terms)) if len(terms) > 1 else total
