"""Independent references and hypothesis strategies of the softmax ops, for the op table (tests/op_specs.py).

The references are plain NumPy/SciPy written apart from scratchgan: SciPy's
``log_softmax`` / ``softmax`` and a direct loop over the rows for the
cross-entropy.
"""

from __future__ import annotations

import hypothesis.extra.numpy as hnp
import numpy as np
import scipy.special
from hypothesis import strategies as st

from scratchgan.gan import losses


def axis_kwargs(shapes):
    """``axis``: any axis of the input, negative or not."""
    ndim = len(shapes[0])
    return st.fixed_dictionaries({"axis": st.integers(-ndim, ndim - 1)})


def log_softmax_reference(x, axis):
    return x.copy() if x.size == 0 else scipy.special.log_softmax(x, axis=axis)


def softmax_reference(x, axis):
    return x.copy() if x.size == 0 else scipy.special.softmax(x, axis=axis)


def cross_entropy_shapes():
    """One (N, C) logits array, N and C in 1..4."""
    return st.tuples(st.integers(1, 4), st.integers(1, 4)).map(lambda nc: [nc])


def cross_entropy_kwargs(shapes):
    n, c = shapes[0]
    return st.fixed_dictionaries({"labels": hnp.arrays(np.int64, (n,), elements=st.integers(0, c - 1)),
                                  "reduction": st.sampled_from(["mean", "sum", "none"])})


def cross_entropy_call(x, labels, reduction):
    return losses.softmax_cross_entropy(x, labels, reduction=reduction)


def cross_entropy_loop(x, labels, reduction):
    """-log softmax(x_i)[y_i] row by row, then the reduction."""
    per = []
    for row, y in zip(x, labels):
        per.append(-(row[y] - np.log(np.sum(np.exp(row)))))
    per = np.array(per)
    return {"mean": per.mean(), "sum": per.sum(), "none": per}[reduction]
