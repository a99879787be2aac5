"""Tests for metrics.kernel_distance (KID) and metrics.prdc, and their place in image_eval.evaluate_images.

Each metric is checked against a slow, direct implementation written from
its published definition (double loops over the subsets' points, explicit
nearest-neighbour lists), against closed forms (identical and disjoint sets,
hand-built ties, the expectations for equal distributions, the exact MMD² of
two Gaussians) and against the formulas of the reference implementations
re-implemented here (the authors' / torch-fidelity's sums, clean-fid's
vectorised form). The full-size check against the PRDC README figures is
``benchmarks/metric_references.py`` (too slow for the suite).
"""

from __future__ import annotations

import math
import types

import numpy as np
import pytest

import scratchgan as sg
from scratchgan.app import image_eval
from scratchgan.gan import metrics
from scratchgan.gan.metrics import kernel_distance, prdc

# --------------------------------------------------------------------------- KID: independent implementations


def same_subsets(n_a, n_b, subsets, m, seed):
    """The subsets kernel_distance documents: per subset, a's indices then b's, without replacement."""
    gen = np.random.default_rng(seed)
    out = []
    for _ in range(subsets):
        ia = gen.choice(n_a, m, replace=False)
        ib = gen.choice(n_b, m, replace=False)
        out.append((ia, ib))
    return out


def loop_kernel(u, v):
    d = len(u)
    return (sum(float(p) * float(q) for p, q in zip(u, v)) / d + 1.0) ** 3


def loop_mmd2_unbiased(x, y):
    """Bińkowski et al. (2018), eq. for the unbiased MMD² estimate, with plain loops."""
    m = len(x)
    xx = sum(loop_kernel(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    yy = sum(loop_kernel(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    xy = sum(loop_kernel(x[i], y[j]) for i in range(m) for j in range(m))
    return xx / (m * (m - 1)) + yy / (m * (m - 1)) - 2.0 * xy / (m * m)


def sums_mmd2(x, y):
    """The authors' ``_mmd2_and_variance`` / torch-fidelity's ``mmd2``, ``mmd_est="unbiased"``, rewritten."""
    d = x.shape[1]
    k_xx, k_yy, k_xy = ((p @ q.T / d + 1) ** 3 for p, q in ((x, x), (y, y), (x, y)))
    m = len(x)
    kt_xx_sum = (k_xx.sum(axis=1) - np.diagonal(k_xx)).sum()
    kt_yy_sum = (k_yy.sum(axis=1) - np.diagonal(k_yy)).sum()
    return (kt_xx_sum + kt_yy_sum) / (m * (m - 1)) - 2 * k_xy.sum(axis=0).sum() / (m * m)


def cleanfid_mmd2(x, y):
    """clean-fid's ``kernel_distance`` body for one subset, rewritten (its m is the subset size)."""
    n, m = x.shape[1], len(x)
    a = (x @ x.T / n + 1) ** 3 + (y @ y.T / n + 1) ** 3
    b = (x @ y.T / n + 1) ** 3
    return ((a.sum() - np.diag(a).sum()) / (m - 1) - b.sum() * 2 / m) / m


@pytest.fixture
def small_sets():
    rng = np.random.default_rng(21)
    return rng.standard_normal((40, 3)), 0.3 + 1.2 * rng.standard_normal((35, 3))


@pytest.fixture(params=["whole-set kernels", "per-subset kernels"])
def kid_path(request, monkeypatch):
    """Run a test on both ways kernel_distance computes the kernels."""
    if request.param == "per-subset kernels":
        monkeypatch.setattr(metrics, "KID_KERNEL_ELEMENTS", 0)
    return request.param


def test_kid_matches_a_direct_double_loop_on_the_same_subsets(small_sets, kid_path):
    a, b = small_sets
    values = [loop_mmd2_unbiased(a[ia], b[ib]) for ia, ib in same_subsets(40, 35, 6, 12, seed=3)]
    mean, std = kernel_distance(a, b, subsets=6, subset_size=12, rng=3)
    assert mean == pytest.approx(np.mean(values), rel=1e-12, abs=1e-14)
    assert std == pytest.approx(np.std(values), rel=1e-10)  # population std (ddof=0), as np.std in the references
    assert std > 0


def test_kid_equals_the_reference_implementations_formulas(small_sets, kid_path):
    a, b = small_sets
    subsets = same_subsets(40, 35, 8, 20, seed=9)
    mean, std = kernel_distance(a, b, subsets=8, subset_size=20, rng=9)
    for formula in (sums_mmd2, cleanfid_mmd2):
        values = [formula(a[ia], b[ib]) for ia, ib in subsets]
        assert mean == pytest.approx(np.mean(values), rel=1e-12)
        assert std == pytest.approx(np.std(values), rel=1e-10)


def test_kid_draws_without_replacement(kid_path):
    # subset_size = n: every subset is the whole set, only the order changes, so the spread is rounding only
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((30, 5)), rng.standard_normal((30, 5)) + 0.5
    mean, std = kernel_distance(a, b, subsets=20, subset_size=30, rng=0)
    assert mean == pytest.approx(loop_mmd2_unbiased(a, b), rel=1e-12)
    assert std < 1e-12 * abs(mean)


def _expected_kernel(mu_p, cov_p, mu_q, cov_q):
    r""":math:`E[(x^\top y/d + 1)^3]` for independent Gaussians, from their first three moments."""
    d = len(mu_p)

    def third(mu, cov):  # E[x_i x_j x_k] of a Gaussian
        return (np.einsum("i,j,k->ijk", mu, mu, mu) + np.einsum("i,jk->ijk", mu, cov)
                + np.einsum("j,ik->ijk", mu, cov) + np.einsum("k,ij->ijk", mu, cov))

    s1 = mu_p @ mu_q
    s2 = np.trace((cov_p + np.outer(mu_p, mu_p)) @ (cov_q + np.outer(mu_q, mu_q)))
    s3 = np.sum(third(mu_p, cov_p) * third(mu_q, cov_q))
    return s3 / d**3 + 3 * s2 / d**2 + 3 * s1 / d + 1


def exact_mmd2(mu_p, cov_p, mu_q, cov_q):
    """The population MMD² of two Gaussians with the cubic kernel: what the unbiased estimate averages to."""
    return (_expected_kernel(mu_p, cov_p, mu_p, cov_p) + _expected_kernel(mu_q, cov_q, mu_q, cov_q)
            - 2 * _expected_kernel(mu_p, cov_p, mu_q, cov_q))


def test_kid_averages_to_the_exact_mmd2_of_two_gaussians():
    # 40 independent draws of 400 + 400 points, each estimate with one subset of all points (subset_size = n)
    d = 4
    mu_q = np.array([0.6, -0.3, 0.0, 0.4])
    cov_q = np.diag([1.5, 0.7, 1.0, 1.2])
    exact = exact_mmd2(np.zeros(d), np.eye(d), mu_q, cov_q)
    rng = np.random.default_rng(12)
    draws = [kernel_distance(rng.standard_normal((400, d)), rng.multivariate_normal(mu_q, cov_q, 400),
                             subsets=1, subset_size=400, rng=0)[0] for _ in range(40)]
    error = np.std(draws) / math.sqrt(len(draws))
    assert exact > 0.3 and error < 0.05 * exact
    assert np.mean(draws) == pytest.approx(exact, abs=4 * error)


def test_kid_of_one_distribution_is_about_zero_and_a_shift_makes_it_grow(kid_path):
    rng = np.random.default_rng(5)
    d = 8
    a, b = rng.standard_normal((1000, d)), rng.standard_normal((1000, d))
    mean, std = kernel_distance(a, b, subsets=50, subset_size=200, rng=1)
    assert abs(mean) < std / 2  # unbiased: no positive offset (the biased estimate sits ~2 std above 0 here)
    previous = mean
    for shift in (0.25, 0.5, 1.0):
        shifted, spread = kernel_distance(a, b + shift, subsets=50, subset_size=200, rng=1)
        assert shifted > previous and shifted > 3 * spread
        previous = shifted


def test_kid_rng_policy():
    rng = np.random.default_rng(6)
    a, b = rng.standard_normal((50, 3)), rng.standard_normal((60, 3)) + 0.2
    assert kernel_distance(a, b, 10, 20, rng=7) == kernel_distance(a, b, 10, 20, rng=np.random.default_rng(7))
    gen = np.random.default_rng(7)
    first, second = kernel_distance(a, b, 10, 20, rng=gen), kernel_distance(a, b, 10, 20, rng=gen)
    assert first != second  # a Generator is advanced in place
    sg.manual_seed(11)
    global_first = kernel_distance(a, b, 10, 20)
    sg.manual_seed(11)
    assert kernel_distance(a, b, 10, 20, rng=None) == global_first
    with pytest.raises(TypeError, match="kernel_distance: rng"):
        kernel_distance(a, b, 10, 20, rng=np.random.RandomState(0))


def test_kid_argument_errors():
    a, b = np.zeros((10, 3)), np.ones((8, 3))
    with pytest.raises(ValueError, match="subset_size 9 is larger .* subset_size=8"):
        kernel_distance(a, b, subsets=2, subset_size=9)
    with pytest.raises(ValueError, match="subset_size"):
        kernel_distance(a, b, subsets=2, subset_size=1)
    with pytest.raises(ValueError, match="subsets"):
        kernel_distance(a, b, subsets=0, subset_size=4)
    with pytest.raises(ValueError, match="same number of columns"):
        kernel_distance(a, np.ones((8, 2)), subsets=2, subset_size=4)
    with pytest.raises(ValueError, match="NaN"):
        kernel_distance(np.full((10, 3), np.nan), b, subsets=2, subset_size=4)
    with pytest.raises(ValueError, match="shape"):
        kernel_distance(np.zeros(10), b, subsets=2, subset_size=4)


# --------------------------------------------------------------------------- PRDC: an independent implementation


def loop_prdc(real, fake, k):
    """Naeem et al. (2020) definitions, with NND_k the k-th nearest *other* point, from explicit sorted lists."""
    real, fake = [list(map(float, r)) for r in real], [list(map(float, f)) for f in fake]

    def radius(points, i):
        return sorted(math.dist(points[i], points[j]) for j in range(len(points)) if j != i)[k - 1]

    r_real = [radius(real, i) for i in range(len(real))]
    r_fake = [radius(fake, j) for j in range(len(fake))]
    dist = [[math.dist(x, y) for y in fake] for x in real]
    n, m = len(real), len(fake)
    return {
        "precision": sum(any(dist[i][j] < r_real[i] for i in range(n)) for j in range(m)) / m,
        "recall": sum(any(dist[i][j] < r_fake[j] for j in range(m)) for i in range(n)) / n,
        "density": sum(dist[i][j] < r_real[i] for i in range(n) for j in range(m)) / (k * m),
        "coverage": sum(min(dist[i]) < r_real[i] for i in range(n)) / n,
    }


@pytest.mark.parametrize("k", [1, 3, 5])
def test_prdc_matches_the_direct_definitions(k):
    rng = np.random.default_rng(30 + k)
    real = rng.standard_normal((60, 4))
    fake = np.concatenate([0.5 * rng.standard_normal((30, 4)) + 0.4, 2.0 * rng.standard_normal((15, 4))])
    got, want = prdc(real, fake, k=k), loop_prdc(real, fake, k)
    assert set(got) == {"precision", "recall", "density", "coverage"}
    assert all(type(v) is float for v in got.values())
    assert got == pytest.approx(want, rel=1e-15, abs=0)
    assert 0 < got["precision"] < 1 and got["recall"] > 0 and 0 < got["coverage"] < 1  # not vacuous


def test_prdc_is_accurate_far_from_the_origin():
    # |x|^2 - 2 x.y + |y|^2 at |x| ~ 1e7 loses ~0.1 of a unit distance; the distances do not depend on the origin
    rng = np.random.default_rng(36)
    real = rng.standard_normal((60, 4))
    fake = np.concatenate([0.5 * rng.standard_normal((30, 4)) + 0.4, 2.0 * rng.standard_normal((15, 4))])
    want = loop_prdc(real, fake, 5)
    assert prdc(real + 1e7, fake + 1e7, k=5) == pytest.approx(want, rel=1e-15, abs=0)


def test_prdc_strict_comparisons_on_hand_built_ties():
    # k = 1 on a line: every real radius is 1; the fake at 4 is at distance exactly 1 from the real 3
    real = np.array([[0.0], [1.0], [2.0], [3.0]])
    fake = np.array([[2.5], [4.0], [6.0]])  # fake radii: 1.5, 1.5, 2
    got = prdc(real, fake, k=1)
    assert got == {"precision": 1 / 3, "recall": 0.5, "density": 2 / 3, "coverage": 0.5}
    assert got == loop_prdc(real, fake, 1)
    # nothing strictly inside a ball: a fake exactly on every boundary
    on_boundary = prdc(np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([[4.0], [5.0], [6.0]]), k=1)
    assert on_boundary == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_prdc_of_identical_sets():
    x = np.random.default_rng(2).standard_normal((300, 16))
    for k in (1, 5):
        # each ball holds its centre and its k - 1 nearest others: density is exactly k / k
        assert prdc(x, x, k=k) == {"precision": 1.0, "recall": 1.0, "density": 1.0, "coverage": 1.0}


def test_prdc_of_far_apart_sets_is_zero():
    rng = np.random.default_rng(3)
    real, fake = rng.standard_normal((100, 8)), rng.standard_normal((80, 8)) + 1000.0
    assert prdc(real, fake) == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_prdc_expectations_for_one_distribution():
    # E[density] = 1 and E[coverage] = 1 - C(N-1, k) / C(N+M-1, k) for real and fake from the same law
    rng = np.random.default_rng(8)
    n, m, k, reps = 200, 150, 5, 30
    runs = [prdc(rng.standard_normal((n, 6)), rng.standard_normal((m, 6)), k=k) for _ in range(reps)]
    for key, expected in (("density", 1.0), ("coverage", 1 - math.comb(n - 1, k) / math.comb(n + m - 1, k))):
        values = np.array([r[key] for r in runs])
        assert values.mean() == pytest.approx(expected, abs=4 * values.std() / math.sqrt(reps))


def test_prdc_tells_fidelity_from_diversity():
    # a collapsed generator: every fake sits near the centre of the real cloud
    rng = np.random.default_rng(4)
    real, collapsed = rng.standard_normal((400, 2)), 0.05 * rng.standard_normal((400, 2))
    got = prdc(real, collapsed)
    assert got["precision"] == 1.0 and got["density"] > 1
    assert got["recall"] < 0.05 and got["coverage"] < 0.1
    swapped = prdc(collapsed, real)  # the roles matter: the real set's balls define fidelity
    assert swapped["precision"] < 0.05 and swapped["recall"] == 1.0


def test_prdc_blocks_give_the_same_result(monkeypatch):
    rng = np.random.default_rng(5)
    real, fake = rng.standard_normal((90, 5)), rng.standard_normal((70, 5)) * 1.3
    whole = prdc(real, fake, k=4)
    monkeypatch.setattr(metrics, "PRDC_BLOCK_ELEMENTS", 7 * 90)  # 7-row blocks, a partial last one
    assert prdc(real, fake, k=4) == whole
    monkeypatch.setattr(metrics, "PRDC_BLOCK_ELEMENTS", 1)  # one row at a time
    assert prdc(real, fake, k=4) == whole


def test_prdc_argument_errors():
    x = np.zeros((6, 2))
    with pytest.raises(ValueError, match="k=5 nearest neighbours need at least 6"):
        prdc(x[:5], x, k=5)
    with pytest.raises(ValueError, match="at least 6"):
        prdc(x, x[:5], k=5)
    assert prdc(x + np.arange(6)[:, None], x + np.arange(6)[:, None], k=5)["precision"] == 1.0  # k + 1 is enough
    with pytest.raises(ValueError, match="k must be a positive int"):
        prdc(x, x, k=0)
    with pytest.raises(ValueError, match="same number of columns"):
        prdc(x, np.zeros((6, 3)))
    with pytest.raises(ValueError, match="NaN"):
        prdc(x, np.full((6, 2), np.inf))


# --------------------------------------------------------------------------- in evaluate_images

KID_PRDC_KEYS = {f"kernel_classifier_distance{s}" for s in ("", "_std", "_real", "_real_std")} | {
    f"prdc_{name}{s}" for name in ("precision", "recall", "density", "coverage") for s in ("", "_real")}


@pytest.fixture
def blocks(tmp_path, monkeypatch):
    monkeypatch.setenv("SCRATCHGAN_CACHE", str(tmp_path / "cache"))
    from test_classifier import make_dataset  # noqa: PLC0415 - the three-class 6x6 block images

    return make_dataset()


def stub_trainer(data, sample):
    return types.SimpleNamespace(data=data, config=types.SimpleNamespace(conditional=False),
                                 sample=lambda n, labels=None: sample(n))


def test_evaluate_images_reports_kid_and_prdc_next_to_real_references(blocks, monkeypatch):
    from test_classifier import make_images  # noqa: PLC0415

    monkeypatch.setattr(image_eval, "KID_SUBSETS", 25)  # a quarter of the time; the checks below hold with 25

    rng = np.random.default_rng(11)
    real_like = image_eval.evaluate_images(stub_trainer(blocks, lambda n: make_images(rng.integers(0, 3, n), rng)),
                                           150)
    assert KID_PRDC_KEYS <= set(real_like)
    assert all(type(real_like[key]) is float for key in KID_PRDC_KEYS)
    # constant images: a large KID; every fake in one point, far from the real balls
    constant = image_eval.evaluate_images(stub_trainer(blocks, lambda n: np.full((n, 6, 6), -0.6, np.float32)), 150)
    assert constant["kernel_classifier_distance"] > 10 * constant["kernel_classifier_distance_std"]
    assert constant["prdc_recall"] == 0.0 and constant["prdc_coverage"] < 0.05 and constant["prdc_precision"] < 0.05
    # fresh real images: KID near 0 like the reference (pool noise, which the subset std does not show, is
    # about 0.2 here against 4 for the constant images), PRDC close to the reference's
    for result in (real_like, constant):
        assert abs(result["kernel_classifier_distance_real"]) < 0.1 * constant["kernel_classifier_distance"]
    assert abs(real_like["kernel_classifier_distance"]) < 0.1 * constant["kernel_classifier_distance"]
    for name in ("precision", "recall", "density", "coverage"):
        assert real_like[f"prdc_{name}"] == pytest.approx(real_like[f"prdc_{name}_real"], abs=0.1)
        assert real_like[f"prdc_{name}_real"] > 0.9
    # one class out of three: faithful images (precision as the reference's) but a third of the diversity
    one_class = image_eval.evaluate_images(
        stub_trainer(blocks, lambda n: make_images(np.zeros(n, dtype=np.int64), rng)), 150)
    assert one_class["prdc_precision"] > 0.9 and one_class["prdc_density"] > 0.9
    assert 0.2 < one_class["prdc_recall"] < 0.45 and 0.2 < one_class["prdc_coverage"] < 0.45
    assert one_class["kernel_classifier_distance"] > 10 * one_class["kernel_classifier_distance_std"]
    # deterministic: the same seeded subsets every time
    again = image_eval.evaluate_images(stub_trainer(blocks, lambda n: np.full((n, 6, 6), -0.6, np.float32)), 150)
    assert {k: again[k] for k in KID_PRDC_KEYS} == {k: constant[k] for k in KID_PRDC_KEYS}


def test_evaluate_images_kid_and_prdc_sizes(blocks, monkeypatch):
    calls = []
    real_kd, real_prdc = image_eval.kernel_distance, image_eval._prdc_against

    def spy_kd(a, b, subsets, subset_size, rng):
        calls.append(("kid", len(a), len(b), subsets, subset_size))
        return real_kd(a, b, subsets=subsets, subset_size=subset_size, rng=rng)

    def spy_prdc(real, fakes, k):
        calls.append(("prdc", len(real), [len(f) for f in fakes], k))
        return real_prdc(real, fakes, k)

    monkeypatch.setattr(image_eval, "kernel_distance", spy_kd)
    monkeypatch.setattr(image_eval, "_prdc_against", spy_prdc)
    rng = np.random.default_rng(1)
    from test_classifier import make_images  # noqa: PLC0415

    image_eval.evaluate_images(stub_trainer(blocks, lambda n: make_images(rng.integers(0, 3, n), rng)), 100)
    # 180 test images, 450 training images: KID subsets of min(500, 100, 180, 100); PRDC on 100 test images
    assert calls == [("kid", 100, 180, 100, 100), ("kid", 100, 180, 100, 100), ("prdc", 100, [100, 100], 5)]
    calls.clear()
    out = image_eval.evaluate_images(stub_trainer(blocks, lambda n: make_images(rng.integers(0, 3, n), rng)), 5)
    assert [c[0] for c in calls] == ["kid", "kid"] and not any(key.startswith("prdc") for key in out)


# --------------------------------------------------------------------------- the reference-figure benchmark


def test_metric_references_script_runs_small(tmp_path):
    import json  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "metric_references.py"
    out = tmp_path / "refs.json"
    args = ["--seeds", "0", "1", "--n", "200", "--dim", "10", "--kid-n", "300", "--kid-subsets", "5",
            "--kid-subset-size", "100", "--kid-seeds", "3", "--json", str(out)]
    done = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "| README | 0.4772 | 0.4705 | 1.0555 | 0.9735 |" in done.stdout
    figures = json.loads(out.read_text())
    assert [row["seed"] for row in figures["prdc"]["rows"]] == [0, 1]
    assert figures["prdc"]["expectation"]["density"] == 1.0
    assert [row["exact"] for row in figures["kid"]][0] == 0.0
    assert [len(row["kid_per_seed"]) for row in figures["kid"]] == [3, 3]
