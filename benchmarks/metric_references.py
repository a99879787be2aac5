"""KID and PRDC against reference figures: ``python benchmarks/metric_references.py``.

PRDC: the example of the authors' README (clovaai/generative-evaluation-prdc):
10,000 real and 10,000 fake samples of N(0, I) in 1,000 dimensions, k = 5,
for which they print precision 0.4772, recall 0.4705, density 1.0555,
coverage 0.9735 ("may fluctuate due to randomness"; their seed is not given).
This script draws the same setting with several seeds (float64,
``np.random.default_rng(seed)``, real first), prints
:func:`scratchgan.gan.metrics.prdc` for each seed, the mean and standard
deviation over seeds, the exact expectations where there is one
(E[density] = 1; E[coverage] = 1 - C(N-1, k) / C(N+M-1, k) for two samples
of one distribution), whether our mean is within 3 standard errors of them,
and whether each README figure (one draw) is within 3 sampling standard
deviations of our mean (``SIGMAS``; the standard deviation is measured over
our seeds). It exits with status 1 when a check fails.

KID: :func:`scratchgan.gan.metrics.kernel_distance` (100 subsets of 1,000, the
reference defaults) of N(0, I) against N(mu, diag(s^2)) in 16 dimensions,
and of N(0, I) against itself, 2,000 samples per set, over 10 independent
pairs of pools; the mean over pools is compared with the exact MMD² of the
two Gaussians with the cubic kernel (from their first three moments; 0 for
one distribution), which the unbiased estimate averages to, within 3
standard errors.

One seed of the full PRDC setting is three 10,000 x 10,000 distance
matrices in 1,000 dimensions (0.6 Tflop, in blocks): about 3 minutes of one
core on a busy machine.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scratchgan.gan import metrics  # noqa: E402

#: The authors' README example output (N = M = 10,000, d = 1,000, k = 5).
README = {"precision": 0.4772, "recall": 0.4705, "density": 1.0555, "coverage": 0.9735}
KEYS = ("precision", "recall", "density", "coverage")
#: A README figure agrees when it is within this many sampling standard deviations of our mean: their
#: figure is one draw and ours the mean of S draws, so their difference has the standard deviation
#: sd * sqrt(1 + 1/S), with sd the seed-to-seed standard deviation measured here.
SIGMAS = 3.0


def prdc_rows(seeds, n: int, dim: int, k: int) -> list[dict]:
    rows = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        real = rng.standard_normal((n, dim))
        fake = rng.standard_normal((n, dim))
        start = time.perf_counter()
        values = metrics.prdc(real, fake, k=k)
        rows.append({"seed": seed, **values, "seconds": time.perf_counter() - start})
        print(f"| {seed} | " + " | ".join(f"{values[key]:.4f}" for key in KEYS) + f" | {rows[-1]['seconds']:.1f} |",
              flush=True)
    return rows


def coverage_expectation(n: int, m: int, k: int) -> float:
    """E[coverage] for real and fake samples of one distribution: 1 - C(N-1, k) / C(N+M-1, k)."""
    return 1.0 - math.comb(n - 1, k) / math.comb(n + m - 1, k)


def _expected_kernel(mu_p, cov_p, mu_q, cov_q) -> float:
    """E[(x.y / d + 1)^3] for independent x ~ N(mu_p, cov_p), y ~ N(mu_q, cov_q)."""
    d = len(mu_p)

    def third(mu, cov):
        return (np.einsum("i,j,k->ijk", mu, mu, mu) + np.einsum("i,jk->ijk", mu, cov)
                + np.einsum("j,ik->ijk", mu, cov) + np.einsum("k,ij->ijk", mu, cov))

    s1 = mu_p @ mu_q
    s2 = np.trace((cov_p + np.outer(mu_p, mu_p)) @ (cov_q + np.outer(mu_q, mu_q)))
    s3 = np.sum(third(mu_p, cov_p) * third(mu_q, cov_q))
    return float(s3 / d**3 + 3 * s2 / d**2 + 3 * s1 / d + 1)


def exact_gaussian_mmd2(mu_p, cov_p, mu_q, cov_q) -> float:
    """Population MMD² of two Gaussians with the cubic polynomial kernel."""
    return (_expected_kernel(mu_p, cov_p, mu_p, cov_p) + _expected_kernel(mu_q, cov_q, mu_q, cov_q)
            - 2 * _expected_kernel(mu_p, cov_p, mu_q, cov_q))


def kid_rows(n: int, dim: int, seeds, subsets: int, subset_size: int) -> list[dict]:
    """KID over independent pairs of pools (one per seed) for each case, next to the exact MMD²."""
    mu = np.linspace(-0.3, 0.3, dim)
    scale = np.linspace(0.8, 1.2, dim)
    cases = [("N(0, I) vs N(0, I)", np.zeros(dim), np.ones(dim)), ("N(0, I) vs N(mu, diag(s^2))", mu, scale)]
    rows = []
    for name, mean, std in cases:
        exact = exact_gaussian_mmd2(np.zeros(dim), np.eye(dim), mean, np.diag(std**2))
        values, spreads = [], []
        start = time.perf_counter()
        for seed in seeds:
            rng = np.random.default_rng(seed)
            a = rng.standard_normal((n, dim))
            b = mean + std * rng.standard_normal((n, dim))
            value, spread = metrics.kernel_distance(a, b, subsets=subsets, subset_size=min(subset_size, n), rng=seed)
            values.append(value)
            spreads.append(spread)
        sd = float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")
        error = sd / math.sqrt(len(values))
        ok = abs(float(np.mean(values)) - exact) <= SIGMAS * error if len(values) > 1 else None
        rows.append({"case": name, "kid_per_seed": values, "subset_std_per_seed": spreads,
                     "kid_mean": float(np.mean(values)), "kid_sd_over_seeds": sd, "exact": exact,
                     "within_tolerance": ok, "seconds": time.perf_counter() - start})
        verdict = "-" if ok is None else ("yes" if ok else "NO")
        print(f"| {name} | {np.mean(values):.5f} ± {sd:.5f} | {np.mean(spreads):.5f} | {exact:.5f} | "
              f"{verdict} (|diff| {abs(np.mean(values) - exact):.5f} <= {SIGMAS * error:.5f}) | "
              f"{rows[-1]['seconds']:.1f} |", flush=True)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="PRDC seeds (default 0..4)")
    parser.add_argument("--n", type=int, default=10_000, help="samples per set (default 10,000, as the README)")
    parser.add_argument("--dim", type=int, default=1000, help="PRDC dimension (default 1,000, as the README)")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--kid-n", type=int, default=2000, help="KID samples per set (default 2,000)")
    parser.add_argument("--kid-seeds", type=int, default=10, help="independent pools per KID case (default 10)")
    parser.add_argument("--kid-dim", type=int, default=16)
    parser.add_argument("--kid-subsets", type=int, default=100)
    parser.add_argument("--kid-subset-size", type=int, default=1000)
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args(argv)

    print(f"PRDC, N(0, I) vs N(0, I): N = M = {args.n:,}, d = {args.dim:,}, k = {args.k}")
    print("| seed | precision | recall | density | coverage | seconds |\n|---|---|---|---|---|---|")
    rows = prdc_rows(args.seeds, args.n, args.dim, args.k)
    mean = {key: float(np.mean([r[key] for r in rows])) for key in KEYS}
    sd = {key: float(np.std([r[key] for r in rows], ddof=1)) if len(rows) > 1 else float("nan") for key in KEYS}
    print("| mean ± sd | " + " | ".join(f"{mean[key]:.4f} ± {sd[key]:.4f}" for key in KEYS) + " | |")
    print("| README | " + " | ".join(f"{README[key]:.4f}" for key in KEYS) + " | |")
    exact = {"density": 1.0, "coverage": coverage_expectation(args.n, args.n, args.k)}
    print("| expectation | - | - | " + " | ".join(f"{exact[key]:.4f}" for key in ("density", "coverage")) + " | |")
    s = len(rows)
    tolerance = {key: SIGMAS * sd[key] * math.sqrt(1 + 1 / s) for key in KEYS}
    agree = {key: abs(mean[key] - README[key]) <= tolerance[key] for key in KEYS}
    expected = {key: abs(mean[key] - exact[key]) <= SIGMAS * sd[key] / math.sqrt(s) for key in exact}
    reference_setting = args.n == 10_000 and args.dim == 1000 and args.k == 5 and s >= 2
    if s >= 2:
        print(f"our mean vs the expectation (within {SIGMAS:g} sd/sqrt({s})): " + ", ".join(
            f"{key} {'yes' if expected[key] else 'NO'} (|diff| {abs(mean[key] - exact[key]):.4f} <= "
            f"{SIGMAS * sd[key] / math.sqrt(s):.4f})" for key in exact))
    if reference_setting:
        print(f"README figure vs our mean (within {SIGMAS:g} sd sqrt(1 + 1/{s})): " + ", ".join(
            f"{key} {'yes' if agree[key] else 'NO'} (|diff| {abs(mean[key] - README[key]):.4f} <= "
            f"{tolerance[key]:.4f})" for key in KEYS))
    else:
        print("(not the README setting, or one seed: no comparison with its figures)")

    print(f"\nKID, {args.kid_subsets} subsets of {args.kid_subset_size}, {args.kid_n:,} samples per set, "
          f"d = {args.kid_dim}, {args.kid_seeds} independent pools (seeds 0..{args.kid_seeds - 1})")
    print(f"| case | KID, mean ± sd over pools | mean subset std | exact MMD² | within {SIGMAS:g} sd/sqrt(pools) "
          "| seconds |\n|---|---|---|---|---|---|")
    kid = kid_rows(args.kid_n, args.kid_dim, range(args.kid_seeds), args.kid_subsets, args.kid_subset_size)

    if args.json is not None:
        args.json.write_text(json.dumps({
            "machine": platform.platform(), "python": platform.python_version(), "numpy": np.__version__,
            "prdc": {"n": args.n, "dim": args.dim, "k": args.k, "rows": rows, "mean": mean, "sd": sd,
                     "readme": README, "expectation": exact, "tolerance": tolerance,
                     "readme_within_tolerance": agree if reference_setting else None,
                     "expectation_within_tolerance": expected if s >= 2 else None},
            "kid": kid,
        }, indent=1) + "\n")
    ok = ((not reference_setting or all(agree.values())) and (s < 2 or all(expected.values()))
          and all(row["within_tolerance"] is not False for row in kid))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
