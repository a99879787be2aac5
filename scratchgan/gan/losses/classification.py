"""Classification losses: softmax cross-entropy, ACGAN's auxiliary-classifier losses, InfoGAN's MI penalty.

The losses of the auxiliary heads (docs/losses.md, "ACGAN and InfoGAN"; the
heads and the trainer's use of them are in :mod:`scratchgan.gan.auxiliary`).
Built on the ``log_softmax`` op, so twice differentiable; float32 and
float64, NumPy or CuPy.

References
----------
Odena, Olah, Shlens (2017), Conditional Image Synthesis with Auxiliary Classifier GANs (ACGAN).
Chen et al. (2016), InfoGAN: Interpretable Representation Learning by Information Maximizing GANs.
TF-GAN's ``acgan_discriminator_loss``, ``acgan_generator_loss`` and ``mutual_information_penalty``.
"""

from __future__ import annotations

import numpy as np

from ... import backend
from ...ops import getitem as _getitem, log_softmax as _log_softmax, mean
from ...ops import sum as _sum
from ...autograd.tensor import Tensor, as_tensor

__all__ = ["acgan_discriminator_loss", "acgan_generator_loss", "mutual_information_penalty", "softmax_cross_entropy"]

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
