"""Sample-quality metrics in NumPy/SciPy: mode coverage, Fréchet distance,
classifier score and class coverage.

Everything here works on NumPy arrays in float64 and knows nothing of the
autograd engine; callers convert device arrays first. The exact definitions,
with formulas, are in ``docs/metrics.md``. Their use on an image generator,
with the classifier trained on the engine, is :mod:`scratchgan.image_eval`.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import scipy.linalg
from scipy.special import xlogy

__all__ = [
    "EMPTY_MODE_MASS",
    "mode_coverage",
    "feature_statistics",
    "frechet_distance",
    "classifier_score",
    "class_coverage",
]

# Mass given to modes with no high-quality sample before renormalising q,
# so that KL(q || uniform) stays finite and well defined.
EMPTY_MODE_MASS = 1e-10


# ---------------------------------------------------------------------------
# Toy mode coverage (VEEGAN / PacGAN protocol)
# ---------------------------------------------------------------------------


def _as_2d(name: str, x, cols: int | None = None) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] == 0 or (cols is not None and arr.shape[1] != cols):
        want = f"(n, {cols})" if cols is not None else "(n, d)"
        raise ValueError(f"{name} must have shape {want} with n >= 1, got {arr.shape}")
    return arr


def mode_coverage(samples, centres, std, n_std: float = 3.0) -> dict:
    r"""Mode coverage of 2-D samples from a Gaussian mixture (VEEGAN / PacGAN).

    With centres :math:`c_1, \dots, c_K` and samples :math:`x_1, \dots, x_N`,
    each sample is assigned to its nearest centre
    :math:`k(x) = \arg\min_k \lVert x - c_k \rVert_2` and is *high quality*
    when :math:`\lVert x - c_{k(x)} \rVert_2 \le n_{std} \cdot \sigma_{k(x)}`.
    With :math:`n_k` the number of high-quality samples assigned to mode
    :math:`k` and :math:`H = \sum_k n_k`:

    * ``modes_captured`` :math:`= |\{k : n_k \ge 1\}|`;
    * ``high_quality_frac`` :math:`= H / N`;
    * ``kl_uniform`` :math:`= \mathrm{KL}(q \,\|\, u) = \sum_k q_k \log(K q_k)`,
      where :math:`q_k = (n_k/H + \epsilon) / (1 + K\epsilon)` and
      :math:`\epsilon` = ``EMPTY_MODE_MASS`` = 1e-10 keeps empty modes finite.
      If :math:`H = 0` it is defined as :math:`\log K`, the value for all mass
      on one mode (the worst case), not 0, which the smoothed uniform
      :math:`q` would give.

    Non-finite samples are never high quality. Computed in float64.

    Parameters
    ----------
    samples : array_like, shape (N, 2)
        Generated points.
    centres : array_like, shape (K, 2)
        Mode centres.
    std : float or array_like of shape (K,)
        Standard deviation of each mode (one value for all, or one per mode).
    n_std : float, default 3.0
        Acceptance radius in standard deviations.

    Returns
    -------
    dict
        ``modes_captured`` (int), ``high_quality_frac`` (float in [0, 1]),
        ``kl_uniform`` (float >= 0) and ``per_mode_counts`` (list of K ints,
        :math:`n_k`).

    References
    ----------
    Srivastava et al., "VEEGAN", NeurIPS 2017; Lin et al., "PacGAN",
    NeurIPS 2018 (section 5, the 2-D mixture experiments).
    """
    x = _as_2d("samples", samples, cols=2)
    c = _as_2d("centres", centres, cols=2)
    k = c.shape[0]
    sigma = np.asarray(std, dtype=np.float64)
    if sigma.ndim == 0:
        sigma = np.full(k, float(sigma))
    if sigma.shape != (k,) or not np.all(np.isfinite(sigma)) or np.any(sigma <= 0):
        raise ValueError(f"std must be a positive scalar or {k} positive values, got {std!r}")
    if not (np.isfinite(n_std) and n_std > 0):
        raise ValueError(f"n_std must be positive, got {n_std!r}")

    # (N, K) squared distances without an (N, K, 2) temporary.
    d2 = (x[:, :1] - c[:, 0]) ** 2 + (x[:, 1:] - c[:, 1]) ** 2
    with np.errstate(invalid="ignore"):
        nearest = np.argmin(np.where(np.isnan(d2), np.inf, d2), axis=1)
        dist = np.sqrt(d2[np.arange(len(x)), nearest])
        high_quality = dist <= n_std * sigma[nearest]  # NaN compares False
    counts = np.bincount(nearest[high_quality], minlength=k)
    return {
        "modes_captured": int((counts > 0).sum()),
        "high_quality_frac": float(high_quality.mean()),
        "kl_uniform": _kl_to_uniform(counts),
        "per_mode_counts": [int(n) for n in counts],
    }


def _kl_to_uniform(counts: np.ndarray) -> float:
    """KL(q || uniform) of the smoothed share of samples per mode."""
    k = len(counts)
    total = counts.sum()
    if total == 0:
        return math.log(k)
    q = counts / total + EMPTY_MODE_MASS
    q /= q.sum()
    return float(max(np.sum(q * np.log(q * k)), 0.0))  # >= 0; clip rounding


# ---------------------------------------------------------------------------
# Fréchet distance
# ---------------------------------------------------------------------------


def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    r"""Mean and covariance of features, as used by the Fréchet distance.

    :math:`\mu = \frac1N \sum_i f_i`,
    :math:`\Sigma = \frac{1}{N-1} \sum_i (f_i - \mu)(f_i - \mu)^\top`
    (the unbiased estimate, as in the reference FID code).

    Parameters
    ----------
    features : array_like, shape (N, d), N >= 2

    Returns
    -------
    mu : ndarray, shape (d,)
    sigma : ndarray, shape (d, d)
    """
    f = _as_2d("features", features)
    if f.shape[0] < 2:
        raise ValueError(f"need at least 2 feature vectors for a covariance, got {f.shape[0]}")
    if not np.all(np.isfinite(f)):
        raise ValueError("features contain NaN or Inf")
    return f.mean(axis=0), np.atleast_2d(np.cov(f, rowvar=False))


_SQRTM_RTOL = 1e-6


def _sqrtm(a: np.ndarray) -> tuple[np.ndarray | None, float]:
    """``scipy.linalg.sqrtm(a)`` and its relative residual ``|X X - A| / |A|``.

    The root is None when it is not finite. Singular inputs make SciPy warn;
    they are judged by the residual instead.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        root = scipy.linalg.sqrtm(a)
        if not np.all(np.isfinite(root)):
            return None, math.inf
        residual = np.linalg.norm(root @ root - a)
    scale = np.linalg.norm(a)
    return root, (0.0 if residual == 0.0 else float(residual / scale) if scale else math.inf)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6,
                     imag_atol: float = 1e-3) -> float:
    r"""Fréchet (2-Wasserstein) distance between two Gaussians.

    .. math::

        d^2 = \lVert \mu_1 - \mu_2 \rVert_2^2
              + \operatorname{Tr}\big(\Sigma_1 + \Sigma_2
              - 2 (\Sigma_1 \Sigma_2)^{1/2}\big)

    This is the squared distance (FID reports it as is). The matrix root is
    ``scipy.linalg.sqrtm``. If it fails (non-finite, or its square misses
    :math:`\Sigma_1\Sigma_2` by more than 1e-6 in relative Frobenius norm,
    which can happen when the product is singular), it is recomputed as
    :math:`((\Sigma_1 + \epsilon I)(\Sigma_2 + \epsilon I))^{1/2}`, the usual
    fallback of the reference FID code (a RuntimeWarning is issued if that
    root is inaccurate too). A complex result from rounding is
    reduced to its real part when the imaginary parts of its diagonal are
    below ``imag_atol``. Tiny negative totals from rounding are returned as
    0.

    Parameters
    ----------
    mu1, mu2 : array_like, shape (d,)
        Means (scalars are taken as d = 1).
    sigma1, sigma2 : array_like, shape (d, d)
        Covariances, symmetric positive semi-definite (scalars: d = 1
        variances).
    eps : float, default 1e-6
        Diagonal offset for the singular-product fallback.
    imag_atol : float, default 1e-3
        Largest imaginary part tolerated on the diagonal of the root.

    Returns
    -------
    float
        :math:`d^2 \ge 0`.

    Raises
    ------
    ValueError
        Mismatched shapes, non-finite inputs, a root that fails even with the
        offset, or an imaginary part above ``imag_atol``.
    """
    mu1, mu2 = (np.atleast_1d(np.asarray(m, dtype=np.float64)) for m in (mu1, mu2))
    s1, s2 = (np.atleast_2d(np.asarray(s, dtype=np.float64)) for s in (sigma1, sigma2))
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(
            "expected mu1, mu2 of shape (d,) and sigma1, sigma2 of shape (d, d); got "
            f"{mu1.shape}, {s1.shape}, {mu2.shape}, {s2.shape}"
        )
    if not all(np.all(np.isfinite(a)) for a in (mu1, mu2, s1, s2)):
        raise ValueError("Fréchet distance inputs contain NaN or Inf")

    covmean, residual = _sqrtm(s1 @ s2)
    if covmean is None or residual > _SQRTM_RTOL:
        offset = eps * np.eye(d)
        covmean, residual = _sqrtm((s1 + offset) @ (s2 + offset))
        if covmean is None:
            raise ValueError(
                "sqrtm(sigma1 @ sigma2) is not finite even with an eps offset; "
                "check that the covariances are positive semi-definite"
            )
        if residual > _SQRTM_RTOL:
            warnings.warn(f"sqrtm in frechet_distance is inaccurate (relative residual "
                          f"{residual:.2g}); the distance may be off", RuntimeWarning,
                          stacklevel=2)
    if np.iscomplexobj(covmean):
        max_imag = float(np.max(np.abs(np.diagonal(covmean).imag)))
        if max_imag > imag_atol:
            raise ValueError(
                f"sqrtm(sigma1 @ sigma2) has imaginary component {max_imag:.3g} "
                f"> {imag_atol}; the covariances are probably not PSD"
            )
        covmean = covmean.real

    diff = mu1 - mu2
    value = diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean)
    return float(max(value, 0.0))


# ---------------------------------------------------------------------------
# Classifier-based image metrics
# ---------------------------------------------------------------------------


def _as_probs(probs, atol: float = 1e-3) -> np.ndarray:
    """Validate class probabilities (N, C) and renormalise rows exactly."""
    p = _as_2d("probs", probs)
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ValueError("probs must be finite and non-negative")
    row_sums = p.sum(axis=1, keepdims=True)
    worst = float(np.max(np.abs(row_sums - 1.0)))
    if worst > atol:
        raise ValueError(
            f"probs rows must sum to 1 (softmax outputs, not logits); worst row is off "
            f"by {worst:.3g}"
        )
    return p / row_sums


def classifier_score(probs, splits: int = 1) -> tuple[float, float]:
    r"""Inception-Score formula with any classifier.

    For class probabilities :math:`p(y|x_i)` of :math:`N` generated samples,

    .. math::

        S = \exp\Big(\frac1N \sum_i \mathrm{KL}\big(p(y|x_i) \,\|\, \hat p(y)\big)\Big),
        \qquad \hat p(y) = \frac1N \sum_i p(y|x_i),

    with :math:`0 \log 0 = 0`. :math:`1 \le S \le C`: 1 when every sample
    gets the same prediction, C when predictions are confident (one-hot) and
    the classes are used equally often. With ``splits > 1`` the samples are
    cut into that many consecutive, near-equal parts (``np.array_split``),
    :math:`S` is computed on each (each with its own :math:`\hat p`), and the
    mean and standard deviation over parts are returned, as in Salimans et
    al. (2016).

    Parameters
    ----------
    probs : array_like, shape (N, C)
        Softmax outputs; rows must sum to 1 within 1e-3 (then renormalised).
    splits : int, default 1
        Number of parts, ``1 <= splits <= N``.

    Returns
    -------
    mean : float
    std : float
        Population standard deviation over parts (0.0 when ``splits == 1``).
    """
    p = _as_probs(probs)
    if isinstance(splits, bool) or not isinstance(splits, (int, np.integer)) \
            or not 1 <= splits <= len(p):
        raise ValueError(f"splits must be an int in [1, {len(p)}], got {splits!r}")
    scores = [_score(part) for part in np.array_split(p, splits)]
    return float(np.mean(scores)), float(np.std(scores))


def _score(p: np.ndarray) -> float:
    marginal = p.mean(axis=0, keepdims=True)
    # xlogy gives 0 log 0 = 0; where p(y|x) > 0 the marginal is > 0 too.
    kl = (xlogy(p, p) - xlogy(p, marginal)).sum(axis=1)
    return float(np.exp(kl.mean()))


def class_coverage(probs_or_labels, num_classes: int, min_share: float | None = None) -> float:
    r"""Share of classes that the generator produces often enough.

    Each sample gets a predicted label (``argmax`` of its probabilities, or
    the labels as given). With :math:`n_c` samples predicted as class
    :math:`c` out of :math:`N`,

    .. math::

        \text{coverage} = \frac1C \big|\{c : n_c \ge 1 \text{ and }
        n_c / N \ge s_{\min}\}\big|,
        \qquad s_{\min} = \frac{0.1}{C} \text{ by default,}

    i.e. a class counts when it gets at least a tenth of its share under
    uniform generation (1% of the predictions for C = 10). A single stray
    prediction therefore does not count as covering a class, whatever C.
    Pass ``min_share=0`` for "predicted at least once".

    Parameters
    ----------
    probs_or_labels : array_like, shape (N, C) or (N,)
        Class probabilities (or logits: only the argmax is used) or integer
        labels in ``[0, num_classes)``.
    num_classes : int
        C.
    min_share : float, optional
        :math:`s_{\min}` in [0, 1]; default ``0.1 / num_classes``.

    Returns
    -------
    float
        Coverage in [0, 1].
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) \
            or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    labels = _predicted_labels(probs_or_labels, num_classes)
    share = 0.1 / num_classes if min_share is None else float(min_share)
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"min_share must be in [0, 1], got {min_share!r}")
    counts = np.bincount(labels, minlength=num_classes)
    covered = (counts >= 1) & (counts >= share * len(labels))
    return float(covered.sum() / num_classes)


def _predicted_labels(probs_or_labels, num_classes: int) -> np.ndarray:
    arr = np.asarray(probs_or_labels)
    if arr.ndim == 2 and arr.shape[0] >= 1:
        if arr.shape[1] != num_classes:
            raise ValueError(f"probs has {arr.shape[1]} columns, expected num_classes={num_classes}")
        if not np.all(np.isfinite(arr)):
            raise ValueError("probs contain NaN or Inf")
        return np.argmax(arr, axis=1)
    if arr.ndim == 1 and arr.shape[0] >= 1:
        if arr.dtype.kind not in "iu":
            raise ValueError(f"labels must be integers, got dtype {arr.dtype}")
        if arr.min() < 0 or arr.max() >= num_classes:
            raise ValueError(f"labels must lie in [0, {num_classes}), got range "
                             f"[{arr.min()}, {arr.max()}]")
        return arr.astype(np.int64)
    raise ValueError(f"expected probs (N, C) or labels (N,) with N >= 1, got shape {arr.shape}")
