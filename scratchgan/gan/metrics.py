"""Sample-quality metrics in NumPy/SciPy: mode coverage, Fréchet distance,
kernel distance (KID), precision/recall/density/coverage (PRDC), classifier
score and class coverage.

Everything here works on NumPy arrays in float64 and knows nothing of the
autograd engine; callers convert device arrays first. The exact definitions,
with formulas, are in ``docs/metrics.md``. Their use on an image generator,
with the classifier trained on the engine, is :mod:`scratchgan.app.image_eval`.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import scipy.linalg
from scipy.special import xlogy

from ..backend.validate import as_generator, count, positive_int

__all__ = [
    "EMPTY_MODE_MASS",
    "mode_coverage",
    "feature_statistics",
    "frechet_distance",
    "kernel_distance",
    "prdc",
    "KID_KERNEL_ELEMENTS",
    "PRDC_BLOCK_ELEMENTS",
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
# Kernel distance (KID)
# ---------------------------------------------------------------------------


def _features_pair(who: str, a, b, names: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """Two finite float64 feature arrays (n, d) and (m, d) with the same d."""
    a, b = _as_2d(names[0], a), _as_2d(names[1], b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"{who}: {names[0]} and {names[1]} must have the same number of columns, "
                         f"got {a.shape} and {b.shape}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError(f"{who}: features contain NaN or Inf")
    return a, b


#: :func:`kernel_distance` computes the three kernel matrices of the whole sets once (then sums sub-blocks)
#: when they hold at most this many entries together (64 MB), else the kernel of each subset afresh.
KID_KERNEL_ELEMENTS = 1 << 23


def _cubic_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    r"""The matrix :math:`(x_i^\top y_j / d + 1)^3`, shape (len(x), len(y))."""
    k = x @ y.T
    k /= x.shape[1]
    k += 1.0
    cube = k * k
    cube *= k
    return cube


def _mmd2_from_sums(xx_off: float, yy_off: float, xy: float, m: int) -> float:
    r"""Unbiased MMD² of m + m points from the sums of their kernel values.

    ``xx_off`` :math:`= \sum_{i \ne j} k(x_i, x_j)`, ``yy_off`` likewise,
    ``xy`` :math:`= \sum_{i,j} k(x_i, y_j)` (the diagonal kept).
    """
    return (xx_off + yy_off) / (m * (m - 1)) - 2.0 * xy / (m * m)


def _off_diagonal_sum(k: np.ndarray) -> float:
    return float(k.sum() - np.trace(k))


def kernel_distance(features_a, features_b, subsets: int = 100, subset_size: int = 1000,
                    rng=None) -> tuple[float, float]:
    r"""Kernel Inception Distance formula (KID, Bińkowski et al. 2018) with any features.

    The kernel is the cubic polynomial kernel of the reference code,

    .. math::

        k(x, y) = \Big(\frac{x^\top y}{d} + 1\Big)^3,

    with :math:`d` the number of features. For each of ``subsets`` subsets,
    :math:`m` = ``subset_size`` rows :math:`x_1, \dots, x_m` of
    ``features_a`` and :math:`m` rows :math:`y_1, \dots, y_m` of
    ``features_b`` are drawn uniformly **without replacement** (within one
    subset; the subsets are drawn independently of each other), and the
    unbiased estimate of the squared maximum mean discrepancy is computed:

    .. math::

        \widehat{\mathrm{MMD}}^2_u = \frac{1}{m(m-1)} \sum_{i \ne j}
            \big(k(x_i, x_j) + k(y_i, y_j)\big)
          - \frac{2}{m^2} \sum_{i, j} k(x_i, y_j).

    The cross term keeps its :math:`i = j` terms: :math:`x` and :math:`y`
    are independent samples, so this estimate is unbiased (it is the
    ``mmd_est="unbiased"`` branch of the authors' ``polynomial_mmd``, also
    used by torch-fidelity's ``kid`` and clean-fid's ``kernel_distance``). It
    can be negative; its expectation is 0 when the two distributions are
    equal. The result is the mean and the population standard deviation
    (``ddof=0``, as ``np.std`` in the references) of the ``subsets``
    estimates. The standard deviation describes the spread of one subset's
    estimate, not the error of the mean.

    Subsets are drawn as ``idx_a = rng.choice(n_a, m, replace=False)`` and
    then ``idx_b = rng.choice(n_b, m, replace=False)``, subset after subset
    (the order of torch-fidelity), so a seed gives the same subsets every
    time. Computed in float64. When the kernel matrices of the whole sets
    hold at most ``KID_KERNEL_ELEMENTS`` entries together they are computed
    once and each subset sums its sub-blocks; otherwise each subset's
    kernels are computed afresh (the same numbers up to rounding).

    Parameters
    ----------
    features_a, features_b : array_like, shape (n_a, d) and (n_b, d)
        Feature vectors of the two sets (e.g. generated and real); finite.
        :math:`\mathrm{MMD}^2` is symmetric, so the order only changes which
        random subsets are drawn.
    subsets : int, default 100
        Number of subsets (the default of torch-fidelity's ``kid_subsets``
        and of clean-fid; the authors' ``polynomial_mmd_averages`` defaults
        to 50).
    subset_size : int, default 1000
        :math:`m \ge 2`. Must not exceed ``n_a`` or ``n_b``: as in the
        authors' code and torch-fidelity, too few samples is an error, not a
        silent change of ``subset_size`` (clean-fid clips it to
        ``min(n_a, n_b)``; pass that value yourself to get its behaviour).
        The mean's expectation does not depend on :math:`m`, its spread does.
    rng : numpy.random.Generator, int or None
        Where the subsets come from: a Generator, an int seed, or None for
        scratchgan's global generator (:func:`scratchgan.manual_seed`); see
        :func:`scratchgan.backend.validate.as_generator`.

    Returns
    -------
    mean : float
        Mean of the per-subset :math:`\widehat{\mathrm{MMD}}^2_u` (what papers
        report as KID, often multiplied by 1000).
    std : float
        Their population standard deviation.

    Raises
    ------
    ValueError
        Bad shapes, non-finite features, ``subsets < 1``, ``subset_size < 2``
        or ``subset_size`` larger than either set.

    References
    ----------
    Bińkowski, Sutherland, Arbel, Gretton, "Demystifying MMD GANs", ICLR 2018
    (code: github.com/mbinkowski/MMD-GAN, ``gan/compute_scores.py``).
    """
    who = "kernel_distance"
    a, b = _features_pair(who, features_a, features_b, ("features_a", "features_b"))
    subsets = positive_int(subsets, "subsets", who)
    m = count(subset_size, "subset_size", who, minimum=2)
    if m > a.shape[0] or m > b.shape[0]:
        raise ValueError(f"{who}: subset_size {m} is larger than the number of samples "
                         f"(features_a: {a.shape[0]}, features_b: {b.shape[0]}); pass "
                         f"subset_size={min(a.shape[0], b.shape[0])} or fewer")
    gen = as_generator(rng, who)
    n_a, n_b = a.shape[0], b.shape[0]
    whole = n_a * n_a + n_b * n_b + n_a * n_b <= KID_KERNEL_ELEMENTS
    if whole:  # small sets: three matrix products in all, then sums of sub-blocks (no BLAS call per subset)
        k_aa, k_bb, k_ab = _cubic_kernel(a, a), _cubic_kernel(b, b), _cubic_kernel(a, b)
    values = np.empty(subsets)
    for s in range(subsets):
        ia = gen.choice(n_a, m, replace=False)
        ib = gen.choice(n_b, m, replace=False)
        if whole:  # sorted indices: the same subset, a faster gather
            ia, ib = np.sort(ia), np.sort(ib)
            k_xx, k_yy, k_xy = k_aa[np.ix_(ia, ia)], k_bb[np.ix_(ib, ib)], k_ab[np.ix_(ia, ib)]
        else:
            x, y = a[ia], b[ib]
            k_xx, k_yy, k_xy = _cubic_kernel(x, x), _cubic_kernel(y, y), _cubic_kernel(x, y)
        values[s] = _mmd2_from_sums(_off_diagonal_sum(k_xx), _off_diagonal_sum(k_yy), float(k_xy.sum()), m)
    return float(values.mean()), float(values.std())


# ---------------------------------------------------------------------------
# Precision, recall, density and coverage (PRDC)
# ---------------------------------------------------------------------------

#: Largest number of float64 distances held at once by :func:`prdc` (32 MB).
PRDC_BLOCK_ELEMENTS = 1 << 22


def _row_blocks(rows: int, cols: int):
    """Slices of at most ``PRDC_BLOCK_ELEMENTS // cols`` rows (at least one) covering ``range(rows)``."""
    step = max(1, PRDC_BLOCK_ELEMENTS // max(cols, 1))
    for start in range(0, rows, step):
        yield slice(start, min(start + step, rows))


def _distances(x: np.ndarray, x_sq: np.ndarray, y: np.ndarray, y_sq: np.ndarray) -> np.ndarray:
    r"""Euclidean distances, shape (len(x), len(y)).

    :math:`\sqrt{\max(0, \lVert x\rVert^2 - 2 x^\top y + \lVert y\rVert^2)}`, with the squared norms given.
    """
    d = x @ y.T
    d *= -2.0
    d += x_sq[:, None]
    d += y_sq[None, :]
    np.maximum(d, 0.0, out=d)
    return np.sqrt(d, out=d)


def _knn_radii(x: np.ndarray, x_sq: np.ndarray, k: int) -> np.ndarray:
    """Distance of each row of ``x`` to its k-th nearest other row: the (k+1)-th smallest including itself (0)."""
    radii = np.empty(x.shape[0])
    for rows in _row_blocks(x.shape[0], x.shape[0]):
        d = _distances(x[rows], x_sq[rows], x, x_sq)
        idx = np.arange(rows.start, rows.stop)
        d[idx - rows.start, idx] = 0.0  # the distance to itself, exactly (as sklearn sets it)
        radii[rows] = np.partition(d, k, axis=1)[:, k]
    return radii


def prdc(real_features, fake_features, k: int = 5) -> dict:
    r"""Precision, recall, density and coverage (Naeem et al. 2020) of two feature sets.

    With real features :math:`X_1, \dots, X_N`, fake features
    :math:`Y_1, \dots, Y_M`, Euclidean distances, and
    :math:`\mathrm{NND}_k(X_i)` the distance from :math:`X_i` to its k-th
    nearest neighbour among the other real points (the (k+1)-th smallest
    distance counting :math:`X_i` itself, as the authors' code computes it;
    likewise :math:`\mathrm{NND}_k(Y_j)` among the fakes), and the open ball
    :math:`B(x, r) = \{z : \lVert z - x \rVert < r\}` (strict :math:`<`):

    .. math::

        \text{precision} &= \frac1M \sum_{j=1}^M
            \big[\exists i : Y_j \in B(X_i, \mathrm{NND}_k(X_i))\big], \\
        \text{recall} &= \frac1N \sum_{i=1}^N
            \big[\exists j : X_i \in B(Y_j, \mathrm{NND}_k(Y_j))\big], \\
        \text{density} &= \frac{1}{kM} \sum_{j=1}^M \sum_{i=1}^N
            \big[Y_j \in B(X_i, \mathrm{NND}_k(X_i))\big], \\
        \text{coverage} &= \frac1N \sum_{i=1}^N
            \big[\min_j \lVert X_i - Y_j \rVert < \mathrm{NND}_k(X_i)\big].

    This is ``compute_prdc`` of the authors' package (clovaai/
    generative-evaluation-prdc, ``prdc/prdc.py``), computed in float64 in
    blocks of rows (at most ``PRDC_BLOCK_ELEMENTS`` distances at a time)
    instead of full N x N, M x M and N x M matrices. Distances are
    :math:`\sqrt{\max(0, \lVert a\rVert^2 - 2a^\top b + \lVert b\rVert^2)}`
    as in scikit-learn's ``pairwise_distances``, with a point's distance to
    itself set to 0, computed after subtracting the mean of the real
    features from both sets (distances are unchanged; features far from the
    origin lose less precision to cancellation).

    Facts that help reading the values: identical sets (no duplicate rows)
    give precision = recall = coverage = 1 and density = 1 exactly (each
    ball holds its centre and k - 1 neighbours). Real and fake samples from
    the same distribution give :math:`E[\text{density}] = 1` and
    :math:`E[\text{coverage}] = 1 - \binom{N-1}{k} / \binom{N+M-1}{k}`
    (about :math:`1 - 2^{-k}` for N = M), in any dimension; precision and
    recall fall with the dimension (about 0.48 for N(0, I) in 1000
    dimensions, 10,000 points each, k = 5). Density is not bounded by 1.
    The values depend on N, M and k: compare only at the same sizes.

    Parameters
    ----------
    real_features : array_like, shape (N, d)
    fake_features : array_like, shape (M, d)
        Finite; N and M at least k + 1 (each point needs k other points).
    k : int, default 5
        Nearest-neighbour count (the paper's recommended k = 5).

    Returns
    -------
    dict
        ``precision``, ``recall``, ``coverage`` (floats in [0, 1]) and
        ``density`` (float >= 0, at most N / k).

    Raises
    ------
    ValueError
        Bad shapes, non-finite features, ``k < 1`` or fewer than k + 1 points
        in a set.

    References
    ----------
    Naeem, Oh, Uh, Choi, Yoo, "Reliable Fidelity and Diversity Metrics for
    Generative Models", ICML 2020; precision and recall of Kynkäänniemi et
    al., NeurIPS 2019.
    """
    who = "prdc"
    real, fake = _features_pair(who, real_features, fake_features, ("real_features", "fake_features"))
    k = positive_int(k, "k", who)
    if real.shape[0] <= k or fake.shape[0] <= k:
        raise ValueError(f"{who}: k={k} nearest neighbours need at least {k + 1} points in each set, got "
                         f"{real.shape[0]} real and {fake.shape[0]} fake")
    return _prdc_against(real, [fake], k)[0]


def _prdc_against(real: np.ndarray, fakes, k: int) -> list[dict]:
    """:func:`prdc` of one validated real set against several fake sets, the real radii computed once."""
    centre = real.mean(axis=0)  # distances do not move; the expansion loses less to cancellation
    real = real - centre
    real_sq = np.einsum("ij,ij->i", real, real)
    real_radii = _knn_radii(real, real_sq, k)
    out = []
    for fake in fakes:
        fake = fake - centre
        fake_sq = np.einsum("ij,ij->i", fake, fake)
        out.append(_prdc(real, real_sq, real_radii, fake, fake_sq, _knn_radii(fake, fake_sq, k), k))
    return out


def _prdc(real, real_sq, real_radii, fake, fake_sq, fake_radii, k: int) -> dict:
    """PRDC from validated float64 features, their squared norms and k-NN radii (one pass over N x M)."""
    in_some_real_ball = np.zeros(fake.shape[0], dtype=bool)
    real_balls_holding = np.zeros(fake.shape[0], dtype=np.int64)
    in_some_fake_ball = np.zeros(real.shape[0], dtype=bool)
    covered = np.zeros(real.shape[0], dtype=bool)
    for rows in _row_blocks(real.shape[0], fake.shape[0]):
        d = _distances(real[rows], real_sq[rows], fake, fake_sq)  # (rows, M)
        radius = real_radii[rows, None]
        inside = d < radius
        in_some_real_ball |= inside.any(axis=0)
        real_balls_holding += inside.sum(axis=0)
        in_some_fake_ball[rows] = (d < fake_radii[None, :]).any(axis=1)
        covered[rows] = d.min(axis=1) < real_radii[rows]
    return {
        "precision": float(in_some_real_ball.mean()),
        "recall": float(in_some_fake_ball.mean()),
        "density": float(real_balls_holding.sum() / (k * fake.shape[0])),
        "coverage": float(covered.mean()),
    }


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
