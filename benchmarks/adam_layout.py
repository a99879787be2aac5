"""Would a flat parameter buffer make Adam faster on NumPy? The measurement behind that decision.

Adam over the reference discriminator's 8 arrays (784x256 ... 1), two ways, the
same 13 in-place NumPy operations each time:

* ``per-parameter``: the operations on each of the 8 arrays (104 calls), as
  ``scratchgan.optim.Adam`` does;
* ``flat``: the gradients copied into one flat buffer (one ``concatenate``),
  then the operations once on flat buffers (13 calls), as an optimizer whose
  parameters were views into one buffer would do.

Prints the best of several repetitions, in microseconds per update.

Usage::

    python benchmarks/adam_layout.py
"""

from __future__ import annotations

import os
import sys
import timeit

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from handwritten import D_SIZES, init_params  # noqa: E402

B1, B2, EPS, LR = 0.5, 0.999, 1e-8, 2e-4
SQRT_BC2 = 0.3  # any bias correction: the cost does not depend on it


def _adam_arrays(x, g, m, v, tmp):
    """One Adam update of ``x`` in place, through the scratch buffer ``tmp`` (13 operations)."""
    m *= B1
    np.multiply(g, 1 - B1, out=tmp)
    m += tmp
    v *= B2
    np.multiply(g, g, out=tmp)
    tmp *= 1 - B2
    v += tmp
    denom = np.sqrt(v, out=tmp)
    denom /= SQRT_BC2
    denom += EPS
    update = np.divide(m, denom, out=tmp)
    update *= LR
    x -= update


def main():
    rng = np.random.default_rng(0)
    params = init_params(D_SIZES, rng)
    grads = [rng.standard_normal(p.shape).astype(np.float32) for p in params]
    state = [(np.zeros_like(p), np.zeros_like(p), np.empty_like(p)) for p in params]
    n = sum(p.size for p in params)
    flat_x, flat_g, flat_m, flat_v, flat_tmp = (np.zeros(n, np.float32) for _ in range(5))

    def per_parameter():
        for x, g, (m, v, tmp) in zip(params, grads, state):
            _adam_arrays(x, g, m, v, tmp)

    def flat():
        np.concatenate([g.ravel() for g in grads], out=flat_g)
        _adam_arrays(flat_x, flat_g, flat_m, flat_v, flat_tmp)

    print(f"Adam over D's {len(params)} arrays ({n} floats), best of 7 x 200 updates")
    for fn in (per_parameter, flat, per_parameter, flat):
        us = min(timeit.repeat(fn, number=200, repeat=7)) / 200 * 1e6
        print(f"{fn.__name__:14s} {us:7.1f} us per update")


if __name__ == "__main__":
    main()
