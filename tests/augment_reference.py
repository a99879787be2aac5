"""DiffAugment written again as a direct loop, independently of scratchgan.gan.augment (used by the op table and
tests/test_augment.py): per image, per pixel, the shifted or cut value or 0, from the draws of the module
docstring's order (translation: row shift then column shift; cutout: row centre then column centre)."""

from __future__ import annotations

import numpy as np


def draws(rng, n, h, w, policy=("translation", "cutout")):
    """The shifts and centres, in the documented order, from a numpy Generator: [(name, (n,), (n,)), ...]."""
    out = []
    for name in policy:
        if name == "translation":
            sh, sw = int(h / 8 + 0.5), int(w / 8 + 0.5)
            out.append((name, rng.integers(-sh, sh + 1, n), rng.integers(-sw, sw + 1, n)))
        else:
            ch, cw = int(h / 2 + 0.5), int(w / 2 + 0.5)
            out.append((name, rng.integers(0, h + (1 - ch % 2), n), rng.integers(0, w + (1 - cw % 2), n)))
    return out


def translate_loop(x, s, t):
    n, c, h, w = x.shape
    y = np.zeros_like(x)
    for k in range(n):
        for i in range(h):
            for j in range(w):
                if 0 <= i + s[k] < h and 0 <= j + t[k] < w:
                    y[k, :, i, j] = x[k, :, i + s[k], j + t[k]]
    return y


def cutout_loop(x, u, v):
    n, c, h, w = x.shape
    ch, cw = int(h / 2 + 0.5), int(w / 2 + 0.5)
    y = x.copy()
    for k in range(n):
        for i in range(h):
            for j in range(w):
                if u[k] - ch // 2 <= i < u[k] - ch // 2 + ch and v[k] - cw // 2 <= j < v[k] - cw // 2 + cw:
                    y[k, :, i, j] = 0.0
    return y


def augment_loop(x, drawn):
    """T(x) for the draws ``drawn`` (:func:`draws`), transforms in their order."""
    y = np.array(x, dtype=np.float64)
    for name, a, b in drawn:
        y = translate_loop(y, a, b) if name == "translation" else cutout_loop(y, a, b)
    return y


def diff_augment_loop(x, policy=("translation", "cutout"), rng=None):
    """The reference of the op table's ``diff_augment``: the same arguments, ``rng`` an int seed."""
    n, _, h, w = x.shape
    return augment_loop(x, draws(np.random.default_rng(rng), n, h, w, policy))


def image_shapes():
    """A hypothesis strategy of one (N, C, H, W) shape: N 0-3, C 1-2, sides 1-9 (shifts of 0 and 1 pixels, odd
    and even cut squares)."""
    from hypothesis import strategies as st

    return st.tuples(st.integers(0, 3), st.integers(1, 2), st.integers(1, 9), st.integers(1, 9)).map(lambda s: [s])


def augment_kwargs(shapes):
    """The op table's fixed constants: a policy (each transform, both, both reversed) and an int seed."""
    from hypothesis import strategies as st

    policies = [("translation", "cutout"), ("translation",), ("cutout",), ("cutout", "translation")]
    return st.fixed_dictionaries({"policy": st.sampled_from(policies), "rng": st.integers(0, 2**16)})


def matrix(drawn, k, h, w):
    """T's matrix for image ``k`` of the draws ``drawn``, (H*W, H*W): column p is T of the p-th basis image."""
    one = [(name, np.repeat(np.asarray(a)[k:k + 1], h * w), np.repeat(np.asarray(b)[k:k + 1], h * w))
           for name, a, b in drawn]
    basis = np.eye(h * w).reshape(h * w, 1, h, w)
    return augment_loop(basis, one).reshape(h * w, h * w).T
