"""Tests for scratchgan.gan.metrics with hand-built cases and closed forms."""

import math
import subprocess
import sys

import numpy as np
import pytest
import scipy.linalg

from scratchgan.gan import metrics
from scratchgan.gan.metrics import EMPTY_MODE_MASS, class_coverage, classifier_score, feature_statistics, frechet_distance, mode_coverage


def ring8():
    angles = 2 * np.pi * np.arange(8) / 8
    return np.stack([np.cos(angles), np.sin(angles)], axis=1)


def grid25():
    g = np.array([-4.0, -2.0, 0.0, 2.0, 4.0])
    return np.stack(np.meshgrid(g, g), axis=-1).reshape(-1, 2)


# ---------------------------------------------------------------------------
# Mode coverage
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("centres, std", [(ring8(), 0.01), (grid25(), 0.05)])
def test_all_samples_at_one_mode(centres, std):
    k = len(centres)
    samples = np.repeat(centres[3:4], 2500, axis=0) + 0.5 * std
    out = mode_coverage(samples, centres, std)
    assert out["modes_captured"] == 1
    assert out["high_quality_frac"] == 1.0
    assert out["per_mode_counts"] == [0, 0, 0, 2500] + [0] * (k - 4)
    # Exact value with the smoothing constant, and its limit log K.
    eps = EMPTY_MODE_MASS
    q_big, q_small = (1 + eps) / (1 + k * eps), eps / (1 + k * eps)
    exact = q_big * math.log(k * q_big) + (k - 1) * q_small * math.log(k * q_small)
    assert out["kl_uniform"] == pytest.approx(exact, rel=1e-9)
    assert out["kl_uniform"] == pytest.approx(math.log(k), abs=1e-6)


@pytest.mark.parametrize("centres, std", [(ring8(), 0.01), (grid25(), 0.05)])
def test_uniform_over_all_modes(centres, std):
    rng = np.random.default_rng(0)
    k = len(centres)
    samples = np.tile(centres, (100, 1)) + rng.uniform(-1, 1, (100 * k, 2)) * std
    out = mode_coverage(samples, centres, std)
    assert out["modes_captured"] == k
    assert out["high_quality_frac"] == 1.0
    assert out["per_mode_counts"] == [100] * k
    assert out["kl_uniform"] == pytest.approx(0.0, abs=1e-12)


def test_samples_far_away_are_low_quality():
    centres = ring8()
    samples = np.full((500, 2), 10.0)
    out = mode_coverage(samples, centres, 0.01)
    assert out == {"modes_captured": 0, "high_quality_frac": 0.0,
                   "kl_uniform": pytest.approx(math.log(8)), "per_mode_counts": [0] * 8}


def test_threshold_is_n_std_times_std_euclidean():
    centres = np.array([[0.0, 0.0], [10.0, 0.0]])
    r = 3 * 0.1
    samples = np.array([
        [r * 0.999, 0.0],  # inside
        [r * 0.6, r * 0.6],  # Euclidean 0.85 r: inside (each coordinate < r)
        [r * 0.75, r * 0.75],  # Euclidean 1.06 r: outside although |dx|, |dy| < r
        [10.0 + 1.001 * r, 0.0],  # outside
        [np.nan, 0.0], [np.inf, np.inf],  # never high quality
    ])
    out = mode_coverage(samples, centres, 0.1)
    assert out["per_mode_counts"] == [2, 0]
    assert out["modes_captured"] == 1
    assert out["high_quality_frac"] == pytest.approx(2 / 6)
    out = mode_coverage(samples, centres, 0.1, n_std=50.0)  # radius 5 covers 4 samples
    assert out["per_mode_counts"] == [3, 1]


def test_partial_coverage_kl_matches_formula():
    centres = ring8()
    counts = [10, 30, 0, 0, 60, 0, 0, 0]
    samples = np.repeat(centres, counts, axis=0)
    out = mode_coverage(samples, centres, 0.01)
    assert out["modes_captured"] == 3
    q = np.array(counts) / 100 + EMPTY_MODE_MASS
    q /= q.sum()
    assert out["kl_uniform"] == pytest.approx(float(np.sum(q * np.log(8 * q))), rel=1e-12)


def test_per_mode_std():
    centres = np.array([[0.0, 0.0], [1.0, 0.0]])
    samples = np.array([[0.05, 0.0], [1.05, 0.0]])
    out = mode_coverage(samples, centres, std=[0.1, 0.01])
    assert out["per_mode_counts"] == [1, 0]


def test_mode_coverage_types_and_errors():
    out = mode_coverage(ring8().astype(np.float32), ring8(), 0.01)
    assert type(out["modes_captured"]) is int
    assert type(out["high_quality_frac"]) is float and type(out["kl_uniform"]) is float
    assert all(type(n) is int for n in out["per_mode_counts"])
    with pytest.raises(ValueError, match="samples"):
        mode_coverage(np.zeros((10, 3)), ring8(), 0.01)
    with pytest.raises(ValueError, match="samples"):
        mode_coverage(np.zeros((0, 2)), ring8(), 0.01)
    with pytest.raises(ValueError, match="centres"):
        mode_coverage(np.zeros((10, 2)), np.zeros(2), 0.01)
    with pytest.raises(ValueError, match="std"):
        mode_coverage(np.zeros((10, 2)), ring8(), 0.0)
    with pytest.raises(ValueError, match="std"):
        mode_coverage(np.zeros((10, 2)), ring8(), [0.1, 0.1])


# ---------------------------------------------------------------------------
# Fréchet distance
# ---------------------------------------------------------------------------


def random_spd(rng, d):
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def test_identical_statistics_give_zero():
    rng = np.random.default_rng(0)
    mu, sigma = feature_statistics(rng.normal(size=(500, 16)))
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("m1, s1, m2, s2", [(0.0, 1.0, 0.0, 1.0), (1.0, 2.0, -0.5, 0.3),
                                            (3.0, 0.1, 3.0, 5.0)])
def test_one_dimensional_gaussians(m1, s1, m2, s2):
    expected = (m1 - m2) ** 2 + (s1 - s2) ** 2  # W2^2 between N(m1, s1^2), N(m2, s2^2)
    assert frechet_distance([m1], [[s1**2]], [m2], [[s2**2]]) == pytest.approx(expected, abs=1e-12)
    assert frechet_distance(m1, s1**2, m2, s2**2) == pytest.approx(expected, abs=1e-12)


def test_symmetric_and_positive():
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
    s1, s2 = random_spd(rng, 8), random_spd(rng, 8)
    d12 = frechet_distance(mu1, s1, mu2, s2)
    assert d12 > 0
    assert d12 == pytest.approx(frechet_distance(mu2, s2, mu1, s1), rel=1e-10)


def test_diagonal_covariances_closed_form():
    rng = np.random.default_rng(2)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    v1, v2 = rng.uniform(0.1, 3, 5), rng.uniform(0.1, 3, 5)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)
    got = frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2))
    assert got == pytest.approx(expected, rel=1e-12)


def test_matches_symmetric_form_for_general_covariances():
    # Tr((S1 S2)^(1/2)) = Tr((S1^(1/2) S2 S1^(1/2))^(1/2)), a symmetric PSD root.
    rng = np.random.default_rng(3)
    s1, s2 = random_spd(rng, 6), random_spd(rng, 6)
    r1 = scipy.linalg.sqrtm(s1).real
    w = np.linalg.eigvalsh(r1 @ s2 @ r1)
    expected = np.trace(s1) + np.trace(s2) - 2 * np.sum(np.sqrt(np.clip(w, 0, None)))
    assert frechet_distance(np.zeros(6), s1, np.zeros(6), s2) == pytest.approx(expected, rel=1e-9)


def test_singular_covariances():
    # Rank-deficient covariances (fewer samples than dimensions) still work.
    rng = np.random.default_rng(4)
    mu1, s1 = feature_statistics(rng.normal(size=(10, 32)))
    mu2, s2 = feature_statistics(rng.normal(size=(10, 32)) + 1.0)
    d = frechet_distance(mu1, s1, mu2, s2)
    assert np.isfinite(d) and d > 32 * 0.5  # mean shift alone gives about 32
    assert frechet_distance(np.zeros(3), np.zeros((3, 3)), np.zeros(3), np.zeros((3, 3))) == 0.0


def test_eps_fallback_when_sqrtm_fails(monkeypatch):
    real_sqrtm = scipy.linalg.sqrtm
    calls = []

    def flaky_sqrtm(a):
        calls.append(a.copy())
        return np.full_like(a, np.nan) if len(calls) == 1 else real_sqrtm(a)

    monkeypatch.setattr(metrics.scipy.linalg, "sqrtm", flaky_sqrtm)
    v1, v2 = np.array([1.0, 4.0]), np.array([9.0, 1.0])
    got = frechet_distance(np.zeros(2), np.diag(v1), np.zeros(2), np.diag(v2), eps=1e-3)
    assert len(calls) == 2
    np.testing.assert_allclose(calls[1], np.diag((v1 + 1e-3) * (v2 + 1e-3)))
    expected = np.sum(v1 + v2) - 2 * np.sum(np.sqrt((v1 + 1e-3) * (v2 + 1e-3)))
    assert got == pytest.approx(expected, rel=1e-12)


def test_large_imaginary_part_raises():
    # Not PSD: the product has a negative eigenvalue, whose root is imaginary.
    with pytest.raises(ValueError, match="imaginary"):
        frechet_distance(np.zeros(2), np.diag([1.0, -1.0]), np.zeros(2), np.eye(2))


def test_frechet_errors():
    with pytest.raises(ValueError, match="shape"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance(np.zeros(2), np.eye(2) * np.nan, np.zeros(2), np.eye(2))


def test_feature_statistics():
    rng = np.random.default_rng(5)
    f = rng.normal(size=(1000, 3)) * [1.0, 2.0, 3.0] + [1.0, 0.0, -1.0]
    mu, sigma = feature_statistics(f)
    np.testing.assert_allclose(mu, f.mean(0))
    np.testing.assert_allclose(sigma, (f - mu).T @ (f - mu) / 999)
    mu1, sigma1 = feature_statistics(np.array([[1.0], [3.0]]))
    assert mu1.shape == (1,) and sigma1.shape == (1, 1) and sigma1[0, 0] == 2.0
    with pytest.raises(ValueError):
        feature_statistics(np.zeros((1, 3)))
    with pytest.raises(ValueError):
        feature_statistics(np.zeros(5))


# ---------------------------------------------------------------------------
# Classifier score and class coverage
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("c", [2, 10, 37])
def test_confident_uniform_predictions_score_c(c):
    probs = np.eye(c)[np.arange(10 * c) % c]
    mean, std = classifier_score(probs)
    assert mean == pytest.approx(c, rel=1e-12) and std == 0.0


def test_identical_predictions_score_one():
    rng = np.random.default_rng(6)
    p = rng.dirichlet(np.ones(10))
    assert classifier_score(np.tile(p, (50, 1)))[0] == pytest.approx(1.0, abs=1e-12)
    assert classifier_score(np.eye(10)[np.zeros(50, int)])[0] == pytest.approx(1.0, abs=1e-12)


def test_score_matches_direct_formula_and_bounds():
    rng = np.random.default_rng(7)
    probs = rng.dirichlet(np.full(5, 0.3), size=200)
    py = probs.mean(0)
    expected = math.exp(np.mean(np.sum(probs * (np.log(probs) - np.log(py)), axis=1)))
    mean, _ = classifier_score(probs)
    assert mean == pytest.approx(expected, rel=1e-12)
    assert 1.0 <= mean <= 5.0


def test_score_splits():
    # First half confident on 2 classes, second half confident on 4 classes.
    probs = np.concatenate([np.eye(4)[np.arange(40) % 2], np.eye(4)[np.arange(40) % 4]])
    mean, std = classifier_score(probs, splits=2)
    assert mean == pytest.approx(3.0) and std == pytest.approx(1.0)
    with pytest.raises(ValueError, match="splits"):
        classifier_score(probs, splits=0)
    with pytest.raises(ValueError, match="splits"):
        classifier_score(probs, splits=81)


def test_score_rejects_non_probabilities():
    with pytest.raises(ValueError, match="sum to 1"):
        classifier_score(np.array([[2.0, -1.0], [0.5, 0.5]]) + 1.0)
    with pytest.raises(ValueError, match="non-negative"):
        classifier_score(np.array([[1.5, -0.5]]))
    with pytest.raises(ValueError, match="probs"):
        classifier_score(np.ones(3) / 3)


def test_class_coverage_labels_and_probs():
    labels = np.repeat(np.arange(7), 100)  # 7 of 10 classes, 100 each
    assert class_coverage(labels, 10) == pytest.approx(0.7)
    probs = np.eye(10)[labels] * 0.9 + 0.01
    assert class_coverage(probs, 10) == pytest.approx(0.7)


def test_class_coverage_threshold():
    # 991 predictions of class 0 and 9 of class 1 (0.9%): below the default
    # threshold 0.1 / C = 1% for C = 10, so class 1 is not covered.
    labels = np.array([0] * 991 + [1] * 9)
    assert class_coverage(labels, 10) == pytest.approx(0.1)
    assert class_coverage(labels, 10, min_share=0.0) == pytest.approx(0.2)
    labels = np.array([0] * 990 + [1] * 10)  # exactly 1%: covered
    assert class_coverage(labels, 10) == pytest.approx(0.2)


def test_class_coverage_errors():
    with pytest.raises(ValueError, match="columns"):
        class_coverage(np.ones((5, 3)) / 3, 10)
    with pytest.raises(ValueError, match="labels"):
        class_coverage(np.array([0, 10]), 10)
    with pytest.raises(ValueError, match="integers"):
        class_coverage(np.array([0.0, 1.0]), 10)
    with pytest.raises(ValueError, match="min_share"):
        class_coverage(np.array([0, 1]), 10, min_share=2.0)


def test_metrics_module_does_not_pull_in_the_classifier():
    """metrics is pure NumPy/SciPy: image evaluation (which trains a classifier on the engine) lives in image_eval."""
    code = ("import sys, scratchgan.gan.metrics as m; "
            "assert 'scratchgan.app.classifier' not in sys.modules and 'scratchgan.app.image_eval' not in sys.modules; "
            "assert not hasattr(m, 'evaluate_images')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
