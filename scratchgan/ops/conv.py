"""2-D convolutions (NCHW): conv2d, conv_transpose2d and conv2d_weight, each the others' gradient.

Three linear maps cover every derivative of a convolution, to any order
(Chainer's ``Convolution2DFunction`` / ``Deconvolution2DFunction`` /
``Convolution2DGradW``). For ``y = conv2d(x, W)`` with stride ``s`` and
padding ``p``, and ``x_p`` the input padded with ``p`` zeros:

.. math::

    y_{n,o,a,b} = \\sum_{c,i,j} W_{o,c,i,j} \\, x_{p;\\,n,c,\\,sa+i,\\,sb+j}

It is bilinear in ``(x, W)``, so each partial derivative is again a linear map
of the upstream gradient ``g`` and of the other operand:

* ``dL/dx = conv_transpose2d(g, W)``: the adjoint of ``x -> conv2d(x, W)``;
* ``dL/dW = conv2d_weight(x, g)``: ``sum_{n,a,b} g_{n,o,a,b} x_{p; n,c,sa+i,sb+j}``.

``conv_transpose2d`` and ``conv2d_weight`` are bilinear too, and their partial
derivatives are again among the three ops (see each rule). The backward rules
are written with these differentiable ops only: with gradients disabled (a
first-order backward) they compute arrays and record nothing; with
``create_graph=True`` they record a graph that can be differentiated again
(WGAN-GP, R1 through a conv critic). Each derivative has one definition.

How the forward is computed (the definition, CPU and GPU the same code)
-----------------------------------------------------------------------
*im2col* (:func:`im2col`): the input, seen channels-last (N, H, W, C) and
padded with zeros, is viewed through ``as_strided`` as its windows
(N, OH, OW, kh, kw, C), without a copy (:func:`windows`); one copy turns them
into the column matrix (N·OH·OW, kh·kw·C), one row per output pixel. Then:

* ``conv2d`` is ``im2col(x) @ W`` with the weight read as (kh·kw·C, O): the
  output (N·OH·OW, O), i.e. channels-last memory, returned as its NCHW view;
* ``conv2d_weight`` is ``gy^T @ im2col(x)``, ``gy`` read as (N·OH·OW, O);
* ``conv_transpose2d`` is the adjoint of im2col (*col2im*, :func:`col2im`):
  one product of the input rows (N·H·W, C_in) with the weight read as
  (C_in, kh·kw·C_out) gives, for each input pixel, the kh·kw·C_out values it
  adds into the output; kh·kw slice-adds (one per kernel tap, each onto every
  s-th row and column) sum them into a zeroed padded buffer, which is cropped.

The fast path is in :mod:`scratchgan.accel.conv` (registered against the
forwards here with :func:`~scratchgan.autograd.fastpath.register_forward`):
the same products a chunk of samples at a time in reused scratch buffers, the
transposed convolution by output phases, outputs from the array cache, and
conv_transpose2d's two weight-side gradients from one pass over the columns.
``scratchgan.reference_mode()`` runs the definitions here alone.
"""

from __future__ import annotations

import numpy as np

from .. import backend
from ..autograd.engine import binary_operands, make_result
from ..autograd.fastpath import fast_or
from ..autograd.tensor import Tensor
from .reduce import sum as sum_


# --------------------------------------------------------------------------- argument checks


def _pair(value, name: str, op: str, minimum: int) -> tuple[int, int]:
    """``value`` (an int or a pair of ints) as a pair, each at least ``minimum``."""
    def is_int(v):
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

    if is_int(value):
        pair = (int(value), int(value))
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(is_int(v) for v in value):
        pair = (int(value[0]), int(value[1]))
    else:
        raise ValueError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    if pair[0] < minimum or pair[1] < minimum:
        raise ValueError(f"{op}: {name} must be >= {minimum}, got {value!r}")
    return pair


def _operands(x, weight, op: str) -> tuple[Tensor, Tensor]:
    x, weight = binary_operands(x, weight, op)
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: expected float32 or float64 tensors, got dtype {x.dtype}")
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D input (N, C, H, W), got shape {x.shape}")
    return x, weight


def _check_weight(weight: Tensor, op: str, layout: str) -> None:
    if weight.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D weight {layout}, got shape {weight.shape}")
    if weight.shape[2] < 1 or weight.shape[3] < 1:
        raise ValueError(f"{op}: the kernel must be at least 1x1, got weight shape {weight.shape}")


def _check_bias(x: Tensor, bias, channels: int, op: str) -> Tensor:
    _, bias = binary_operands(x, bias, op)
    if bias.shape != (channels,):
        raise ValueError(f"{op}: bias has shape {bias.shape}, expected ({channels},)")
    return bias


def _conv_out_size(size: int, k: int, s: int, p: int, op: str, axis: str) -> int:
    if size + 2 * p < k:
        raise ValueError(f"{op}: kernel {axis} {k} is larger than the padded input {axis} "
                         f"{size} + 2*{p} = {size + 2 * p}")
    return (size + 2 * p - k) // s + 1


def _leftover(in_shape, kernel, stride, padding) -> tuple[int, int]:
    """Rows and columns of the padded input that no window reaches: ``(H + 2p - kh) mod s``.

    They are the ``output_padding`` that makes ``conv_transpose2d`` give back the input size.
    """
    return tuple((in_shape[2 + a] + 2 * padding[a] - kernel[a]) % stride[a] for a in (0, 1))


# --------------------------------------------------------------------------- im2col, col2im (arrays)


def windows(x_p, kernel, stride, out_hw):
    """The windows (N, OH, OW, kh, kw, C) of a padded channels-last array ``x_p`` (N, H_p, W_p, C): a view.

    Window ``(n, a, b)``, tap ``(i, j)``, channel ``c`` is ``x_p[n, s_h a + i, s_w b + j, c]``:
    the same memory read with other strides (``as_strided``), no copy.
    """
    xp = backend.array_module(x_p)
    n, _, _, c = x_p.shape
    (kh, kw), (sh, sw), (oh, ow) = kernel, stride, out_hw
    s_n, s_h, s_w, s_c = x_p.strides
    return xp.lib.stride_tricks.as_strided(x_p, (n, oh, ow, kh, kw, c), (s_n, sh * s_h, sw * s_w, s_h, s_w, s_c))


def im2col(x, kernel, stride, padding, out_hw):
    """The column matrix (N·OH·OW, kh·kw·C) of ``x`` (N, C, H, W): row ``(n, a, b)`` is window ``(a, b)``.

    Row ``(n, a, b)``, column ``(i, j, c)`` holds ``x_p[n, c, s_h a + i, s_w b + j]``,
    ``x_p`` the input padded with zeros: so ``im2col(x) @ W`` (W read as
    (kh·kw·C, O)) sums ``W_{o,c,i,j} x_p[...]`` over each window, a convolution.
    """
    xp = backend.array_module(x)
    n, c, h, w = x.shape
    (kh, kw), (ph, pw), (oh, ow) = kernel, padding, out_hw
    x_p = xp.zeros((n, h + 2 * ph, w + 2 * pw, c), dtype=x.dtype)
    x_p[:, ph:ph + h, pw:pw + w, :] = x.transpose(0, 2, 3, 1)  # channels-last: each window row is contiguous
    return windows(x_p, kernel, stride, out_hw).reshape(n * oh * ow, kh * kw * c)  # the one copy


def col2im(cols, stride, padding, image_hw):
    """The adjoint of :func:`im2col`: add each window's values back where im2col read them.

    ``cols`` (N, OH, OW, kh, kw, C) holds, for window ``(a, b)`` and tap ``(i, j)``, a value
    for ``x_p[n, s_h a + i, s_w b + j, c]``; the values that land on the same pixel are summed
    (kh·kw slice-adds, tap by tap, into a zeroed padded image), and the padding is cropped.
    Returns the channels-last image (N, H, W, C) (a view of the padded buffer).
    """
    xp = backend.array_module(cols)
    n, oh, ow, kh, kw, c = cols.shape
    (sh, sw), (ph, pw), (h, w) = stride, padding, image_hw
    image_p = xp.zeros((n, h + 2 * ph, w + 2 * pw, c), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):  # tap (i, j) of window (a, b) lands on padded pixel (s_h a + i, s_w b + j)
            image_p[:, i:i + sh * oh:sh, j:j + sw * ow:sw, :] += cols[:, :, :, i, j, :]
    return image_p[:, ph:ph + h, pw:pw + w, :]


def _rows(t):
    """(N, C, H, W) as the matrix (N·H·W, C), one row per pixel (a copy unless the memory is channels-last)."""
    n, c, h, w = t.shape
    return t.transpose(0, 2, 3, 1).reshape(n * h * w, c)


def conv2d_forward(x, weight, stride, padding, out_hw):
    """conv2d of arrays: ``im2col(x) @ W`` (N·OH·OW, O), returned as the NCHW view (N, O, OH, OW)."""
    n, (o, c, kh, kw), (oh, ow) = x.shape[0], weight.shape, out_hw
    w_cols = weight.transpose(0, 2, 3, 1).reshape(o, kh * kw * c)  # (O, (i, j, c)), im2col's column order
    y = backend.matmul(im2col(x, (kh, kw), stride, padding, out_hw), w_cols.T)
    return y.reshape(n, oh, ow, o).transpose(0, 3, 1, 2)


def conv_transpose2d_forward(x, weight, stride, padding, out_hw):
    """conv_transpose2d of arrays: col2im of ``x_rows @ W`` (W read as (C_in, kh·kw·C_out)), as NCHW.

    Returns the NCHW view of a dense channels-last (N, OH, OW, C_out) array.
    """
    xp = backend.array_module(x)
    n, c_in, h, w = x.shape
    _, c_out, kh, kw = weight.shape
    w_cols = weight.transpose(0, 2, 3, 1).reshape(c_in, kh * kw * c_out)  # (C_in, (i, j, o))
    cols = backend.matmul(_rows(x), w_cols).reshape(n, h, w, kh, kw, c_out)  # what each input pixel adds
    y = col2im(cols, stride, padding, out_hw)  # (N, OH, OW, C_out), a crop of the padded buffer
    return xp.ascontiguousarray(y).transpose(0, 3, 1, 2)  # dense, so that the ops after it read contiguous memory


def conv2d_weight_forward(x, gy, weight_shape, stride, padding):
    """conv2d_weight of arrays: ``gy_rows^T @ im2col(x)`` (O, kh·kw·C), in the layout (O, C, kh, kw), C-contiguous."""
    xp = backend.array_module(x)
    o, c, kh, kw = weight_shape
    gw = backend.matmul(_rows(gy).T, im2col(x, (kh, kw), stride, padding, gy.shape[2:]))  # (O, (i, j, c))
    return xp.ascontiguousarray(gw.reshape(o, kh, kw, c).transpose(0, 3, 1, 2))


# --------------------------------------------------------------------------- conv2d


def conv2d_backward(g, out, needs):
    x, w = out._parents[0], out._parents[1]
    stride, padding = out._ctx
    # dL/dx = conv2d's adjoint applied to g; dL/dW = sum over windows of g * x; dL/db = sum of g over (N, H, W)
    gx = (conv_transpose2d(g, w, stride=stride, padding=padding,
                           output_padding=_leftover(x.shape, w.shape[2:], stride, padding)) if needs[0] else None)
    gw = conv2d_weight(x, g, w.shape, stride=stride, padding=padding) if needs[1] else None
    grads = (gx, gw)
    if len(needs) == 3:
        grads += ((sum_(g, axis=(0, 2, 3)) if needs[2] else None),)
    return grads


def conv2d(x, weight, bias=None, stride=1, padding=0) -> Tensor:
    """2-D convolution (cross-correlation, as PyTorch's ``conv2d``) of an NCHW batch.

    .. math::

        y_{n,o,a,b} = b_o + \\sum_{c=0}^{C-1} \\sum_{i=0}^{k_h-1} \\sum_{j=0}^{k_w-1}
            W_{o,c,i,j} \\; x_{p;\\,n,\\,c,\\,s_h a + i,\\,s_w b + j}

    where ``x_p`` is ``x`` padded with ``p`` zeros on each side. Output size
    (PyTorch's): ``OH = (H + 2 p_h - k_h) // s_h + 1``, likewise ``OW``.

    Gradients (the rule), for an upstream gradient ``g``:
    ``dL/dx = conv_transpose2d(g, W, s, p, output_padding=(H + 2p - k) mod s)``,
    ``dL/dW = conv2d_weight(x, g, W.shape, s, p)``,
    ``dL/db = sum(g, axis=(0, 2, 3))``. These are differentiable ops, so the
    gradient can be differentiated again.

    Parameters
    ----------
    x : Tensor
        Input of shape (N, C, H, W), float32 or float64.
    weight : Tensor
        Shape (O, C, k_h, k_w), PyTorch's layout; same dtype as ``x``.
    bias : Tensor, optional
        Shape (O,).
    stride : int or (int, int)
        >= 1.
    padding : int or (int, int)
        Zeros added on both sides of each spatial axis, >= 0.

    Returns
    -------
    Tensor
        Shape (N, O, OH, OW). Its array is the NCHW view of a channels-last
        (N, OH, OW, O) array (a transpose, no copy).

    Raises
    ------
    ValueError
        Inputs that are not 4-D, a channel mismatch, a kernel larger than the
        padded input, bad stride or padding, a bias of the wrong shape.
    TypeError
        Mixed float32/float64 operands, or non-floating ones.
    """
    op = "conv2d"
    x, weight = _operands(x, weight, op)
    _check_weight(weight, op, "(out_channels, in_channels, kh, kw)")
    stride = _pair(stride, "stride", op, 1)
    padding = _pair(padding, "padding", op, 0)
    n, c, h, w = x.shape
    o, c_w, kh, kw = weight.shape
    if c != c_w:
        raise ValueError(f"{op}: input has {c} channels (shape {x.shape}) but the weight expects {c_w} "
                         f"(weight shape {weight.shape}, layout (out, in, kh, kw))")
    oh = _conv_out_size(h, kh, stride[0], padding[0], op, "height")
    ow = _conv_out_size(w, kw, stride[1], padding[1], op, "width")
    data = fast_or(conv2d_forward)(x.data, weight.data, stride, padding, (oh, ow))
    parents = (x, weight)
    if bias is not None:
        bias = _check_bias(x, bias, o, op)
        data += bias.data.reshape(1, o, 1, 1)  # the forward's fresh output: in place is safe
        parents = (x, weight, bias)
    return make_result(data, parents, conv2d_backward, ctx=(stride, padding))


# --------------------------------------------------------------------------- conv_transpose2d


def conv_transpose2d_backward(g, out, needs):
    x, w = out._parents[0], out._parents[1]
    stride, padding, _ = out._ctx
    # y = conv2d's input gradient of x; so dL/dx = conv2d(g, W) and dL/dW = conv2d_weight with the roles swapped
    grads = (conv2d(g, w, stride=stride, padding=padding) if needs[0] else None,
             conv2d_weight(g, x, w.shape, stride=stride, padding=padding) if needs[1] else None)
    if len(needs) == 3:
        grads += ((sum_(g, axis=(0, 2, 3)) if needs[2] else None),)
    return grads


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0) -> Tensor:
    """Transposed 2-D convolution (PyTorch's ``conv_transpose2d``): the adjoint of :func:`conv2d` in its input.

    Each input pixel scatters a weighted copy of the kernel into the output:

    .. math::

        y_{p;\\,n,\\,o,\\,s_h a + i,\\,s_w b + j} \\mathrel{+}= \\sum_c x_{n,c,a,b} \\, W_{c,o,i,j},
        \\qquad y = b_o + y_p[\\ldots, p_h : p_h + OH, p_w : p_w + OW]

    so that ``<conv_transpose2d(x, W), z> = <x, conv2d(z, W)>`` (without bias).
    Output size (PyTorch's): ``OH = (H - 1) s_h - 2 p_h + k_h + output_padding_h``.
    ``output_padding`` (< stride) adds rows and columns at the bottom and right
    that no input reaches; it picks which of the ``s`` input sizes of the
    matching conv2d this op inverts.

    Gradients (the rule): ``dL/dx = conv2d(g, W, s, p)``,
    ``dL/dW = conv2d_weight(g, x, W.shape, s, p)`` (``g`` in the role of the
    conv2d input, ``x`` in that of its output gradient), ``dL/db = sum(g,
    axis=(0, 2, 3))``.

    Parameters
    ----------
    x : Tensor
        Input of shape (N, C_in, H, W), float32 or float64.
    weight : Tensor
        Shape (C_in, C_out, k_h, k_w), PyTorch's layout.
    bias : Tensor, optional
        Shape (C_out,).
    stride : int or (int, int)
        >= 1.
    padding : int or (int, int)
        >= 0; crops ``padding`` rows and columns from each border.
    output_padding : int or (int, int)
        >= 0 and smaller than the stride.

    Returns
    -------
    Tensor
        Shape (N, C_out, OH, OW): an NCHW view of a channels-last buffer.

    Raises
    ------
    ValueError
        Inputs that are not 4-D, a channel mismatch, output_padding >= stride,
        an output size below 1, bad stride or padding, a bias of the wrong shape.
    TypeError
        Mixed float32/float64 operands, or non-floating ones.
    """
    op = "conv_transpose2d"
    x, weight = _operands(x, weight, op)
    _check_weight(weight, op, "(in_channels, out_channels, kh, kw)")
    stride = _pair(stride, "stride", op, 1)
    padding = _pair(padding, "padding", op, 0)
    output_padding = _pair(output_padding, "output_padding", op, 0)
    if output_padding[0] >= stride[0] or output_padding[1] >= stride[1]:
        raise ValueError(f"{op}: output_padding {output_padding} must be smaller than the stride {stride}")
    n, c, h, w = x.shape
    c_w, o, kh, kw = weight.shape
    if c != c_w:
        raise ValueError(f"{op}: input has {c} channels (shape {x.shape}) but the weight expects {c_w} "
                         f"(weight shape {weight.shape}, layout (in, out, kh, kw))")
    oh = (h - 1) * stride[0] - 2 * padding[0] + kh + output_padding[0]
    ow = (w - 1) * stride[1] - 2 * padding[1] + kw + output_padding[1]
    if oh < 1 or ow < 1 or h < 1 or w < 1:
        raise ValueError(f"{op}: the output size ({oh}, {ow}) = (H - 1) * stride - 2 * padding + kernel + "
                         f"output_padding is below 1 for input shape {x.shape}, kernel {(kh, kw)}, stride {stride}, "
                         f"padding {padding}, output_padding {output_padding}")
    data = fast_or(conv_transpose2d_forward)(x.data, weight.data, stride, padding, (oh, ow))
    parents = (x, weight)
    if bias is not None:
        bias = _check_bias(x, bias, o, op)
        data += bias.data.reshape(1, o, 1, 1)  # a view of the fresh buffer: in place is safe
        parents = (x, weight, bias)
    return make_result(data, parents, conv_transpose2d_backward, ctx=(stride, padding, output_padding))


# --------------------------------------------------------------------------- conv2d_weight


def conv2d_weight_backward(g, out, needs):
    x, gy = out._parents
    stride, padding = out._ctx
    # the op is conv2d's weight gradient, bilinear in (x, gy): for an upstream G of the weight's shape,
    # x gets conv2d's input gradient for weight G, gy gets conv2d(x, G)
    gx = (conv_transpose2d(gy, g, stride=stride, padding=padding,
                           output_padding=_leftover(x.shape, g.shape[2:], stride, padding)) if needs[0] else None)
    ggy = conv2d(x, g, stride=stride, padding=padding) if needs[1] else None
    return gx, ggy


def conv2d_weight(x, gy, weight_shape, stride=1, padding=0) -> Tensor:
    """The weight gradient of :func:`conv2d` as an op of its own (Chainer's ``Convolution2DGradW``).

    .. math::

        G_{o,c,i,j} = \\sum_{n,a,b} gy_{n,o,a,b} \\; x_{p;\\,n,\\,c,\\,s_h a + i,\\,s_w b + j}

    computed as one product ``gy_rows^T (O, N·OH·OW) @ im2col(x) (N·OH·OW,
    kh·kw·C)``. It is bilinear in ``(x, gy)``; for an upstream gradient ``U``
    of the weight's shape its rule is ``dL/dx = conv_transpose2d(gy, U, s, p,
    output_padding=(H + 2p - k) mod s)`` and ``dL/dgy = conv2d(x, U, s, p)``.

    Parameters
    ----------
    x : Tensor
        The convolution's input, (N, C, H, W).
    gy : Tensor
        The gradient of its output, (N, O, OH, OW) with ``OH = (H + 2p - kh) // s + 1``.
    weight_shape : tuple of 4 ints
        (O, C, kh, kw).
    stride, padding : int or (int, int)

    Returns
    -------
    Tensor
        Shape ``weight_shape``, C-contiguous.
    """
    op = "conv2d_weight"
    x, gy = _operands(x, gy, op)
    stride = _pair(stride, "stride", op, 1)
    padding = _pair(padding, "padding", op, 0)
    weight_shape = tuple(weight_shape)
    if len(weight_shape) != 4 or not all(isinstance(v, (int, np.integer)) and v >= 1 for v in weight_shape):
        raise ValueError(f"{op}: weight_shape must be 4 positive ints (O, C, kh, kw), got {weight_shape}")
    o, c, kh, kw = (int(v) for v in weight_shape)
    if gy.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D output gradient (N, O, OH, OW), got shape {gy.shape}")
    n, _, h, w = x.shape
    oh = _conv_out_size(h, kh, stride[0], padding[0], op, "height")
    ow = _conv_out_size(w, kw, stride[1], padding[1], op, "width")
    if x.shape[1] != c or gy.shape != (n, o, oh, ow):
        raise ValueError(f"{op}: input {x.shape} and output gradient {gy.shape} do not fit weight shape "
                         f"{weight_shape} with stride {stride} and padding {padding}: expected input (N, {c}, H, W) "
                         f"and output gradient {(n, o, oh, ow)}")
    data = fast_or(conv2d_weight_forward)(x.data, gy.data, (o, c, kh, kw), stride, padding)
    return make_result(data, (x, gy), conv2d_weight_backward, ctx=(stride, padding))

