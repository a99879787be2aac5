"""The adversarial objectives: BCE from logits and the GAN losses of D and G, each with its formula.

Every loss takes the critic's raw outputs (**logits**, never probabilities),
reduces with the mean, and is built only from the engine's differentiable,
numerically stable ops, so that it can be differentiated twice (WGAN-GP, R1).
They work for float32 and float64 and on either backend (NumPy or CuPy): the
array module is always taken from the inputs.

Notation: ``x`` a logit, ``sigma`` the logistic function, ``D(x) = sigma(logit)``
the discriminator's probability, ``N`` the number of logits in a batch.
``softplus(x) = log(1 + e^x)`` and ``log sigma(x) = -softplus(-x)``.

See ``docs/losses.md`` for when to use which loss and the tests that check them;
the penalties that go with them are in :mod:`scratchgan.gan.losses.penalties`.

References
----------
Goodfellow et al. (2014), Generative Adversarial Nets.
Arjovsky, Chintala, Bottou (2017), Wasserstein GAN.
Mao et al. (2017), Least Squares Generative Adversarial Networks.
Lim & Ye (2017), Geometric GAN; Miyato et al. (2018), Spectral Normalization (hinge loss).
Jolicoeur-Martineau (2018), The relativistic discriminator: a key element missing from standard GAN (RSGAN, RaSGAN).
Salimans et al. (2016), Improved Techniques for Training GANs (one-sided label smoothing).
"""

from __future__ import annotations

from ...autograd.tensor import Tensor
from ...nn.functional import _bce_one, _check_logits, bce_with_logits
from ...ops import mean, mean_softplus, relu

__all__ = ["ALL_KINDS", "KINDS", "RELATIVISTIC_KINDS", "bce_with_logits", "d_loss", "g_loss"]

KINDS = ("minimax", "ns", "wasserstein", "lsgan", "hinge")
"""The *absolute* loss families of :func:`d_loss` and :func:`g_loss`: each logit is judged on its own, so the
generator loss needs only the fake logits."""

RELATIVISTIC_KINDS = ("rsgan", "rasgan")
"""The relativistic families (Jolicoeur-Martineau 2018): real and fake logits are judged against each other, so
:func:`g_loss` needs the real logits too."""

ALL_KINDS = KINDS + RELATIVISTIC_KINDS
"""Every kind that :func:`d_loss` and :func:`g_loss` understand."""


# --------------------------------------------------------------------------- helpers


def _check_kind(kind) -> str:
    if kind not in ALL_KINDS:
        raise ValueError(f"unknown GAN loss kind {kind!r}; choose one of {', '.join(repr(k) for k in ALL_KINDS)}")
    return kind


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
    For ``"wasserstein"`` add a Lipschitz constraint: :func:`~scratchgan.gan.losses.gradient_penalty`
    (WGAN-GP) or :func:`~scratchgan.gan.losses.clip_weights` (the original WGAN). ``"lsgan"`` uses
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
