"""Convolutions for the tests: direct-loop reference forwards and hypothesis strategies.

The references are written from the definitions, one output element at a time
(plain NumPy, float64), independently of ``scratchgan.ops.conv`` (no im2col,
no col2im): ``op_specs.py`` declares them as the ops' ``reference`` and
``test_conv.py`` checks the ops against them directly.

* conv2d: ``y[n, o, a, b] = bias[o] + sum_{c, i, j} w[o, c, i, j] * xp[n, c, s_h a + i, s_w b + j]``
  with ``xp`` the zero-padded input; ``OH = (H + 2p - kh) // s + 1``.
* conv_transpose2d, gathered per output position: ``y[n, o, r, t] = bias[o] + sum
  x[n, c, a, b] * w[c, o, i, j]`` over the ``(c, i, j)`` with ``r + p_h - i = s_h a`` for an
  integer ``0 <= a < H`` (likewise columns); ``OH = (H - 1) s - 2p + kh + output_padding``.
* conv2d_weight: ``g[o, c, i, j] = sum_{n, a, b} gy[n, o, a, b] * xp[n, c, s_h a + i, s_w b + j]``.
"""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import strategies as st


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def conv2d_loop(x, w, b=None, stride=1, padding=0):
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.zeros((n, c, h + 2 * ph, wd + 2 * pw))
    xp[:, :, ph:ph + h, pw:pw + wd] = x
    oh, ow = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
    y = np.zeros((n, o, oh, ow))
    for q, f, a, bb in itertools.product(range(n), range(o), range(oh), range(ow)):
        total = 0.0 if b is None else b[f]
        for ch, i, j in itertools.product(range(c), range(kh), range(kw)):
            total += w[f, ch, i, j] * xp[q, ch, sh * a + i, sw * bb + j]
        y[q, f, a, bb] = total
    return y


def conv_transpose2d_loop(x, w, b=None, stride=1, padding=0, output_padding=0):
    (sh, sw), (ph, pw), (qh, qw) = _pair(stride), _pair(padding), _pair(output_padding)
    n, c, h, wd = x.shape
    _, o, kh, kw = w.shape
    oh, ow = (h - 1) * sh - 2 * ph + kh + qh, (wd - 1) * sw - 2 * pw + kw + qw
    y = np.zeros((n, o, oh, ow))
    for q, f, r, t in itertools.product(range(n), range(o), range(oh), range(ow)):
        total = 0.0 if b is None else b[f]
        for ch, i, j in itertools.product(range(c), range(kh), range(kw)):
            da, db = r + ph - i, t + pw - j  # = s * (input position) when this tap reaches (r, t)
            if da % sh or db % sw:
                continue
            a, bb = da // sh, db // sw
            if 0 <= a < h and 0 <= bb < wd:
                total += x[q, ch, a, bb] * w[ch, f, i, j]
        y[q, f, r, t] = total
    return y


def conv2d_weight_loop(x, gy, kernel, stride=1, padding=0):
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    kh, kw = kernel
    n, c, h, wd = x.shape
    _, o, oh, ow = gy.shape
    xp = np.zeros((n, c, h + 2 * ph, wd + 2 * pw))
    xp[:, :, ph:ph + h, pw:pw + wd] = x
    g = np.zeros((o, c, kh, kw))
    for f, ch, i, j in itertools.product(range(o), range(c), range(kh), range(kw)):
        g[f, ch, i, j] = sum(gy[q, f, a, bb] * xp[q, ch, sh * a + i, sw * bb + j]
                             for q, a, bb in itertools.product(range(n), range(oh), range(ow)))
    return g


# --------------------------------------------------------------------------- hypothesis strategies (op table)

# tiny sizes: the op table's first-order test perturbs every element, gradgradcheck too
_SIDES = st.integers(1, 5)
_STRIDES = [1, 2, (1, 2), (2, 1)]
_PADDINGS = [0, 1, 2, (0, 1), (2, 0)]


@st.composite
def conv2d_shapes(draw, bias: bool):
    """[x (N, C, H, W), w (O, C, kh, kw)(, b (O,))] with non-square kernels and inputs, batch 1 included."""
    n, c, o = draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(1, 2))
    h, w = draw(_SIDES), draw(_SIDES)
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    shapes = [(n, c, h, w), (o, c, kh, kw)]
    return shapes + [(o,)] if bias else shapes


def conv2d_kwargs(shapes):
    """stride and padding; the padded input is at least as large as the kernel."""
    (_, _, h, w), (_, _, kh, kw) = shapes[0], shapes[1]
    fits = [p for p in _PADDINGS if h + 2 * _pair(p)[0] >= kh and w + 2 * _pair(p)[1] >= kw]
    return st.fixed_dictionaries({"stride": st.sampled_from(_STRIDES), "padding": st.sampled_from(fits)})


@st.composite
def conv_transpose2d_shapes(draw, bias: bool):
    """[x (N, C_in, H, W), w (C_in, C_out, kh, kw)(, b (C_out,))]."""
    n, c, o = draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(1, 2))
    h, w = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    shapes = [(n, c, h, w), (c, o, kh, kw)]
    return shapes + [(o,)] if bias else shapes


@st.composite
def _transpose_arguments(draw, shapes):
    (_, _, h, w), (_, _, kh, kw) = shapes[0], shapes[1]
    stride = draw(st.sampled_from(_STRIDES))
    s = _pair(stride)
    output_padding = draw(st.sampled_from([0, (s[0] - 1, s[1] - 1), (0, s[1] - 1)]))
    op = _pair(output_padding)

    def size(p):
        p = _pair(p)
        return (h - 1) * s[0] - 2 * p[0] + kh + op[0], (w - 1) * s[1] - 2 * p[1] + kw + op[1]

    fits = [p for p in _PADDINGS if min(size(p)) >= 1]
    return {"stride": stride, "padding": draw(st.sampled_from(fits)), "output_padding": output_padding}


def conv_transpose2d_kwargs(shapes):
    """stride, output_padding (< stride) and a padding that leaves an output of at least 1x1."""
    return _transpose_arguments(shapes)


@st.composite
def conv2d_weight_shapes(draw):
    """[x (N, C, H, W), gy (N, O, OH, OW)] for some kernel, stride and padding."""
    n, c, o = draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(1, 2))
    h, w = draw(_SIDES), draw(_SIDES)
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    s, p = _pair(draw(st.sampled_from(_STRIDES))), _pair(draw(st.sampled_from(_PADDINGS)))
    kh, kw = min(kh, h + 2 * p[0]), min(kw, w + 2 * p[1])
    oh, ow = (h + 2 * p[0] - kh) // s[0] + 1, (w + 2 * p[1] - kw) // s[1] + 1
    return [(n, c, h, w), (n, o, oh, ow)]


def conv2d_weight_kwargs(shapes):
    """A kernel, stride and padding that map the input's size to the output gradient's."""
    (_, _, h, w), (_, _, oh, ow) = shapes
    options = []
    for stride, padding in itertools.product(_STRIDES, _PADDINGS):
        (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
        for kh, kw in itertools.product(range(1, h + 2 * ph + 1), range(1, w + 2 * pw + 1)):
            if (h + 2 * ph - kh) // sh + 1 == oh and (w + 2 * pw - kw) // sw + 1 == ow:
                options.append({"kernel": (kh, kw), "stride": stride, "padding": padding})
    return st.sampled_from(options)


def conv2d_weight_call(x, gy, kernel, stride, padding):
    """``ops.conv2d_weight`` with the weight shape made of the inputs' channels and ``kernel``."""
    from scratchgan import ops  # noqa: PLC0415 - the references above stay free of scratchgan

    return ops.conv2d_weight(x, gy, (gy.shape[1], x.shape[1]) + tuple(kernel), stride=stride, padding=padding)
