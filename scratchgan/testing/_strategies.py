"""Hypothesis strategies for GAN math: logits, batches, critics, discrete distributions.

Every strategy draws NumPy arrays (or, for :func:`critics`, a small callable
critic holding float64 leaf Tensors); wrap arrays with ``sg.Tensor(x, dtype=...)``
where a Tensor is needed. :func:`scratchgan.testing.check_gradients` does that itself.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ..autograd.tensor import Tensor

__all__ = ["EXTREME_LOGITS", "Critic", "batches", "critics", "distributions", "logits"]

EXTREME_LOGITS = (0.0, -1e4, 1e4, -1e3, 1e3, -100.0, 100.0, -40.0, 40.0, 1e-8, -1e-8, 1e-30, -1e-30)
"""Logits that break naive formulas: overflow of ``exp`` at +-1e4, ``sigmoid`` rounding to 0 or 1
(float32 beyond about 17 and 104, float64 beyond 37 and 745), and values at and near 0. Hypothesis
shrinks towards the front of this tuple, so 0 comes first and the large negative logit next."""


def _shape_strategy(shape):
    if shape is None:
        return st.integers(1, 6).map(lambda n: (n,))
    if isinstance(shape, int):
        return st.just((shape,))
    if isinstance(shape, tuple):
        return st.just(shape)
    return shape.map(lambda s: (s,) if isinstance(s, int) else tuple(s))  # a strategy of shapes or sizes


def logits(shape=None, dtype="float64", extreme=True, min_value=-1e4, max_value=1e4):
    """Arrays of logits.

    Parameters
    ----------
    shape : int, tuple, strategy or None
        The array's shape, or a strategy of shapes (None: 1-D, 1 to 6 logits).
    dtype : str
        ``"float64"`` or ``"float32"`` (the drawn values are representable in it).
    extreme : bool
        Mix in :data:`EXTREME_LOGITS` (+-1e4, +-1e3, ..., 0, +-1e-8, +-1e-30)
        between ordinary floats; False draws ordinary floats only.
    min_value, max_value : float
        Bounds of the ordinary floats (and of the extreme values kept).
    """
    dtype = np.dtype(dtype)
    width = 32 if dtype == np.float32 else 64
    ordinary = st.floats(min_value, max_value, allow_nan=False, allow_infinity=False, width=width)
    if extreme:
        special = [v for v in EXTREME_LOGITS if min_value <= v <= max_value]
        elements = st.one_of(st.sampled_from(special), ordinary) if special else ordinary
    else:
        elements = ordinary
    return _shape_strategy(shape).flatmap(lambda s: hnp.arrays(dtype, s, elements=elements))


def batches(n=None, features=None, dtype="float64", min_value=-3.0, max_value=3.0, pair=False):
    """Data batches of shape ``(N, features)``; with ``pair=True`` a ``(real, fake)`` tuple of one shape.

    ``n`` and ``features`` are ints or strategies (defaults: N in 1..5, 1..4 features).
    """
    n = st.integers(1, 5) if n is None else (st.just(n) if isinstance(n, int) else n)
    features = st.integers(1, 4) if features is None else (st.just(features) if isinstance(features, int) else features)
    elements = st.floats(min_value, max_value, allow_nan=False, allow_infinity=False,
                         width=32 if np.dtype(dtype) == np.float32 else 64)

    def arrays(shape):
        one = hnp.arrays(np.dtype(dtype), shape, elements=elements)
        return st.tuples(one, one) if pair else one

    return st.tuples(n, features).flatmap(arrays)


class Critic:
    """A small tanh MLP critic in float64: ``critic(x)`` maps ``(N, ...)`` to ``(N, 1)``.

    ``parameters()`` returns its leaf Tensors (``requires_grad=True``), so a
    check can differentiate a penalty with respect to them. With
    ``coupled=True`` the hidden layer is centred over the batch (as batch norm
    does), so each score depends on the other samples: a per-sample gradient
    penalty is then wrong, which is what the ``coupled`` critics are for.
    """

    def __init__(self, weights, coupled=False):
        self.W1, self.b1, self.w2, self.b2 = weights
        self.coupled = bool(coupled)
        self.in_features = self.W1.shape[0]

    def parameters(self):
        return [self.W1, self.b1, self.w2, self.b2]

    def __call__(self, x):
        pre = x.reshape(x.shape[0], -1) @ self.W1 + self.b1
        if self.coupled:
            pre = pre - pre.mean(axis=0, keepdims=True)
        return pre.tanh() @ self.w2 + self.b2

    def __repr__(self):
        arrays = ", ".join(
            f"{name}=" + " ".join(np.array2string(getattr(self, name).numpy(), precision=17, separator=", ").split())
            for name in ("W1", "b1", "w2", "b2"))
        return f"Critic(coupled={self.coupled}, {arrays})"


def critics(in_features=None, hidden=None, coupled=False, scale=1.5):
    """Random two-layer tanh critics (:class:`Critic`) in float64.

    ``in_features`` and ``hidden`` are ints or strategies (defaults 1..4 and
    2..5); ``coupled`` a bool or a strategy of bools (batch coupling, see
    :class:`Critic`); weights are drawn uniformly in ``[-scale, scale]``.
    """
    in_features = st.integers(1, 4) if in_features is None else (
        st.just(in_features) if isinstance(in_features, int) else in_features)
    hidden = st.integers(2, 5) if hidden is None else (st.just(hidden) if isinstance(hidden, int) else hidden)
    coupled = st.just(coupled) if isinstance(coupled, bool) else coupled
    w = st.floats(-scale, scale, allow_nan=False)

    @st.composite
    def build(draw):
        d, h, c = draw(in_features), draw(hidden), draw(coupled)
        shapes = [(d, h), (h,), (h, 1), (1,)]
        arrays = [draw(hnp.arrays(np.float64, s, elements=w)) for s in shapes]
        return Critic([Tensor(a, dtype="float64", requires_grad=True) for a in arrays], coupled=c)

    return build()


@st.composite
def _count_pairs(draw, min_points=2, max_points=6, max_count=5, full_support=False):
    k = draw(st.integers(min_points, max_points))
    counts = st.integers(1, max_count)
    a = np.array(draw(st.lists(counts, min_size=k, max_size=k)), dtype=np.int64)
    b = np.array(draw(st.lists(counts, min_size=k, max_size=k)), dtype=np.int64)
    if not full_support:  # each point in both supports, only in p's, or only in q's
        where = np.array(draw(st.lists(st.sampled_from(["both", "p", "q"]), min_size=k, max_size=k)))
        a, b = a * (where != "q"), b * (where != "p")
        if a.sum() == 0:
            a[0] = 1
        if b.sum() == 0:
            b[-1] = 1
    return a, b


def distributions(min_points=2, max_points=6, full_support=False, counts=False):
    """Pairs ``(p, q)`` of discrete distributions on the same k points (float64 arrays summing to 1).

    With ``full_support=False`` (default) points may carry mass under only one
    of them, so disjoint and partly overlapping supports are drawn too.
    With ``counts=True`` the pair is drawn as integer counts ``(c_p, c_q)``
    instead (``p = c_p / c_p.sum()``): batches with exactly these frequencies
    represent p and q exactly, which is how the optimal-discriminator property
    feeds them to a loss.
    """
    pairs = _count_pairs(min_points, max_points, full_support=full_support)
    if counts:
        return pairs
    return pairs.map(lambda ab: (ab[0] / ab[0].sum(), ab[1] / ab[1].sum()))
