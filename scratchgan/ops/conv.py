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

How the forward is computed (CPU and GPU, the same code)
--------------------------------------------------------
*im2col*: the input, viewed channels-last (N, H, W, C) and padded, is seen
through :func:`as_strided` as the 6-D array of windows (N, OH, OW, kh, kw, C)
without a copy; one copy turns it into the column matrix (N·OH·OW, kh·kw·C)
(each run of kw·C values is contiguous in the source, so the copy is fast),
and one matrix product with the weight (kh·kw·C, O) gives (N·OH·OW, O), i.e.
the output in NHWC memory. It is returned as the NCHW *view* of that array (a
transpose, no copy): the next layer's channels-last view of it is then free.
It runs a chunk of samples at a time, so that no whole-batch column matrix
(kh·kw/s² times the input: 256 MB for one DCGAN layer at batch 256) is ever
allocated: about 4 MB of columns per chunk on the CPU, in scratch arrays
reused from call to call (:func:`_workspace`) so that the product reads them
from cache, and about 32 MB on a GPU (``_GPU_CHUNK_ELEMENTS``).

*col2im* (the transposed convolution), by phases when C_in <= 2 C_out: each of
the s_h·s_w output phases (every s-th row and column) is a stride-1 convolution of
the input with the kernel taps that reach it, computed by im2col and one product
(:func:`_transpose_conv_by_phases`). Otherwise by slice-adds: one product of the input rows
(N·H·W, C_in) with the weight read as (C_in, kh·kw·C_out) gives, for each
input pixel, the values it adds at each kernel tap; they are summed into a
zero buffer with kh·kw slice-adds (never ``add.at``). The buffer is kept
phase-major, (s_h, s_w, N, H_s, W_s, C_out), so that each slice-add writes
contiguous rows of W·C_out values; one strided copy per phase moves the rows
and columns that survive the crop into a dense (N, OH, OW, C_out) output,
returned as its NCHW view. Both run a chunk of samples at a time too (on
the CPU the product's output is then still in cache when the adds read it).

Large outputs come from :mod:`scratchgan.accel.memory` on the CPU (reused between
steps instead of new blocks from malloc).
"""

from __future__ import annotations

import threading

import numpy as np

from .. import backend
from ..accel import memory
from ..autograd.engine import binary_operands, make_result
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


def _windows(x_nhwc, kh: int, kw: int, stride, padding, out_hw, padded=None):
    """The windows (N, OH, OW, kh, kw, C) of a channels-last array (N, H, W, C), a strided view.

    Window ``(n, a, b)``, tap ``(i, j)``, channel ``c`` is ``x_p[n, s_h a + i, s_w b + j, c]``,
    ``x_p`` the input padded with zeros: into ``padded`` (an (N, H + 2p_h, W + 2p_w, C)
    scratch array whose borders the caller has zeroed) when it is given, else into a new
    array; without padding, no copy.
    """
    xp = backend.array_module(x_nhwc)
    n, h, w, c = x_nhwc.shape
    (sh, sw), (ph, pw), (oh, ow) = stride, padding, out_hw
    if ph or pw:
        if padded is None:
            padded = xp.zeros((n, h + 2 * ph, w + 2 * pw, c), dtype=x_nhwc.dtype)
        padded[:, ph:ph + h, pw:pw + w, :] = x_nhwc
        x_nhwc = padded
    s_n, s_h, s_w, s_c = x_nhwc.strides
    return xp.lib.stride_tricks.as_strided(x_nhwc, (n, oh, ow, kh, kw, c), (s_n, sh * s_h, sw * s_w, s_h, s_w, s_c))


#: Elements of one chunk's column buffer on the CPU (4 MiB in float32): small enough that a product's
#: operands are still in cache when the next step reads them (measured for the transposed convolution:
#: 25 % less CPU time than one whole-batch buffer at batch 256, the same at batch 64).
_CHUNK_ELEMENTS = 1 << 20

#: Elements of one chunk's column buffer on a GPU (32 MiB in float32). The whole batch's columns would be
#: far larger (256 MiB for DCGAN's 64 -> 128 layer at batch 256, kh·kw/s² = 4 times its input), and a chunk
#: this size still gives each GEMM thousands of rows, enough to fill the GPU.
_GPU_CHUNK_ELEMENTS = 1 << 23

_scratch = threading.local()


def _workspace(name: str, shape, dtype):
    """A scratch array of ``shape`` for the CPU chunk loops, reused from call to call (per thread).

    The chunk loops fill a column buffer (and a padded input, and the phase
    buffer of the transposed convolution) for every chunk of every
    convolution of every step; a fresh array each time costs the allocator's
    page faults (large blocks come from ``mmap``). One buffer per name and
    dtype, grown when a larger one is asked for, never handed to the caller:
    a few chunks' worth (``_CHUNK_ELEMENTS``) of memory in all.
    """
    size = 1
    for v in shape:
        size *= int(v)
    key = (name, np.dtype(dtype).str)
    buffers = getattr(_scratch, "buffers", None)
    if buffers is None:
        buffers = _scratch.buffers = {}
    buf = buffers.get(key)
    if buf is None or buf.size < size:
        buf = buffers[key] = np.empty(max(size, 1), dtype=dtype)
    return buf[:size].reshape(shape)


def _scratch_array(xp, name: str, shape, dtype):
    """A chunk loop's scratch array: the reused :func:`_workspace` on the CPU, a new array on a GPU.

    (CuPy's memory pool hands a freed block of the same size straight back.)
    """
    return _workspace(name, shape, dtype) if xp is np else xp.empty(shape, dtype=dtype)


def _empty(xp, shape, dtype):
    """An output array: from :mod:`scratchgan.accel.memory`'s cache on the CPU, CuPy's pool on a GPU."""
    return memory.empty(shape, dtype) if xp is np else xp.empty(shape, dtype=dtype)


def _chunk_size(n: int, per_sample: int, xp=np) -> int:
    """Samples per chunk: columns of ``_CHUNK_ELEMENTS`` (CPU) or ``_GPU_CHUNK_ELEMENTS`` (GPU), at least one sample."""
    budget = _CHUNK_ELEMENTS if xp is np else _GPU_CHUNK_ELEMENTS
    return max(1, min(n, budget // max(per_sample, 1)))


def _matmul_into(a, b, out):
    """``out[...] = a @ b`` for 2-D arrays: into ``out`` directly with NumPy, through
    :func:`scratchgan.backend.matmul` (capturable) on a GPU."""
    if isinstance(out, np.ndarray):
        return np.matmul(a, b, out=out)
    out[...] = backend.matmul(a, b)
    return out


def _column_chunks(x, kh: int, kw: int, stride, padding, out_hw):
    """Yield ``(start, m, cols)``: the columns (m·OH·OW, kh·kw·C) of samples ``start .. start + m`` of ``x``.

    im2col a chunk of samples at a time, so that no whole-batch column matrix
    (kh·kw/s² times the input) is ever allocated. Each chunk's columns are copied
    into the same buffer, so a caller uses them before asking for the next chunk.
    """
    xp = backend.array_module(x)
    n, c, h, w = x.shape
    (ph, pw), (oh, ow) = padding, out_hw
    chunk = _chunk_size(n, oh * ow * kh * kw * c, xp)
    x_nhwc = x.transpose(0, 2, 3, 1)  # channels-last view: no copy
    cols = _scratch_array(xp, "columns", (chunk, oh, ow, kh, kw, c), x.dtype)
    padded = None
    if ph or pw:
        padded = _scratch_array(xp, "padded", (chunk, h + 2 * ph, w + 2 * pw, c), x.dtype)
        padded[...] = 0  # once per call: each chunk rewrites the interior only, the borders stay zero
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        part = cols[:m]
        part[...] = _windows(x_nhwc[start:start + m], kh, kw, stride, padding, out_hw,
                             None if padded is None else padded[:m])
        yield start, m, part.reshape(m * oh * ow, kh * kw * c)


def _column_products(x, kh: int, kw: int, stride, padding, out_hw, w_t=None, gy_rows=None):
    """The products with ``im2col(x)`` that a convolution needs, from one pass over the columns.

    ``y = im2col(x) @ w_t`` (N·OH·OW, O) when ``w_t`` (kh·kw·C, O) is given: the
    convolution's output; ``gw = gy_rows^T @ im2col(x)`` (O, kh·kw·C) when
    ``gy_rows`` (N·OH·OW, O) is given: its weight gradient. Returns ``(y, gw)``,
    ``None`` for a product not asked for. A chunk of samples at a time
    (:func:`_column_chunks`), each chunk's columns used while they are still
    in cache (CPU) and in bounded memory (both), the weight gradient summed
    over the chunks.
    """
    xp = backend.array_module(x)
    rows = out_hw[0] * out_hw[1]
    y = None if w_t is None else _empty(xp, (x.shape[0] * rows, w_t.shape[1]), x.dtype)
    gw = partial = None
    for start, m, cols in _column_chunks(x, kh, kw, stride, padding, out_hw):
        if y is not None:
            _matmul_into(cols, w_t, y[start * rows:(start + m) * rows])
        if gy_rows is not None:
            g = gy_rows[start * rows:(start + m) * rows].T
            if gw is None:
                gw = backend.matmul(g, cols)
            else:
                partial = _matmul_into(g, cols, xp.empty_like(gw) if partial is None else partial)
                gw += partial
    return y, gw


def _phase_rows(size: int, k: int, s: int, out: int, p: int) -> int:
    """Rows per phase of the phase-major buffer: enough for every window and for the cropped output."""
    return max(size - 1 + -(-k // s), -(-(out + p) // s))  # output_padding may exceed the padding


#: :func:`_transpose_conv_nhwc` computes by phases when C_in <= this x C_out. The phase columns
#: hold kh·kw·C_in values per input pixel where the slice-adds touch kh·kw·C_out, and copying a
#: value cost about a third of adding one (DCGAN's 128 -> 64 layer at batch 256 on two cores:
#: 38.0 against 41.6 ms; its 64 -> 1 layer: 12.0 against 3.9 ms, so that one keeps the adds).
_PHASES_MAX_CHANNEL_RATIO = 2


def _transpose_conv_nhwc(x, weight, stride, padding, out_hw):
    """The transposed convolution of the array ``x`` (N, C_in, H, W): an NCHW view of an (N, OH, OW, C_out) array.

    Two ways to the same values: :func:`_transpose_conv_by_phases` (products only,
    on columns of the input) when the input has at most
    ``_PHASES_MAX_CHANNEL_RATIO`` times the output's channels, else
    :func:`_transpose_conv_by_adds` (one product, then col2im's slice-adds).
    """
    if x.shape[1] <= _PHASES_MAX_CHANNEL_RATIO * weight.shape[1]:
        return _transpose_conv_by_phases(x, weight, stride, padding, out_hw)
    return _transpose_conv_by_adds(x, weight, stride, padding, out_hw)


def _transpose_conv_by_phases(x, weight, stride, padding, out_hw):
    """The transposed convolution as s_h·s_w ordinary convolutions, one per output phase (sub-pixel convolution).

    Padded output row ``s_h u + r`` (phase ``r``, row ``u`` of that phase) receives
    input row ``u - d`` through kernel row ``r + s_h d`` for every ``d`` with
    ``r + s_h d < k_h``, and no other. So phase ``r`` is a stride-1 correlation of
    the input, padded with ``D - 1`` zero rows in front (``D = ceil(k_h / s_h)``),
    with the kernel rows ``r, r + s_h, ...`` in reverse order; likewise columns.
    Each phase is computed for the output rows and columns that survive the crop
    only, by im2col and one product whose output rows are its values: no adds,
    no zeroed buffer. The phase's values are then copied into every ``s_h``-th
    row and ``s_w``-th column of the dense (N, OH, OW, C_out) output. A chunk
    of samples at a time, with scratch arrays (reused from call to call on the CPU).
    """
    xp = backend.array_module(x)
    n, c_in, h, w = x.shape
    _, c, kh, kw = weight.shape
    (sh, sw), (ph, pw), (oh, ow) = stride, padding, out_hw
    dh, dw = -(-kh // sh), -(-kw // sw)  # the most kernel rows (columns) that one phase uses
    row_phases, col_phases = _crop_phases(oh, sh, ph), _crop_phases(ow, sw, pw)
    hp = max(h, max(u0 + na for _, _, u0, na in row_phases)) + dh - 1  # padded input: the input at (dh-1, dw-1)
    wp = max(w, max(v0 + nb for _, _, v0, nb in col_phases)) + dw - 1
    max_rows = max(na for *_, na in row_phases) * max(nb for *_, nb in col_phases)  # output pixels per phase
    chunk = _chunk_size(n, max_rows * dh * dw * c_in, xp)
    # (r, t) -> (taps_r, taps_t, (taps_r · taps_t · C_in, C_out)): the phase's kernel taps in window order
    sub_weights = {}
    for r, *_ in row_phases:
        for t, *_ in col_phases:
            if r < kh and t < kw:  # kernel rows r, r + s_h, ... in reverse (slices: no index array to upload)
                sub = weight[:, :, r::sh, t::sw][:, :, ::-1, ::-1].transpose(2, 3, 0, 1)
                sub_weights[r, t] = sub.shape[0], sub.shape[1], xp.ascontiguousarray(sub).reshape(-1, c)
    x_nhwc = x.transpose(0, 2, 3, 1)  # channels-last view: no copy
    out = _empty(xp, (n, oh, ow, c), x.dtype)
    padded = _scratch_array(xp, "padded", (chunk, hp, wp, c_in), x.dtype)
    cols_buf = _scratch_array(xp, "columns", (chunk * max_rows * dh * dw * c_in,), x.dtype)
    res_buf = _scratch_array(xp, "phase_values", (chunk * max_rows * c,), x.dtype)
    padded[...] = 0  # once per call: each chunk rewrites the interior only
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        x_p = padded[:m]
        x_p[:, dh - 1:dh - 1 + h, dw - 1:dw - 1 + w, :] = x_nhwc[start:start + m]
        s_n, s_h, s_w, s_c = x_p.strides
        for r, a0, u0, na in row_phases:
            for t, b0, v0, nb in col_phases:
                dst = out[start:start + m, a0::sh, b0::sw, :]  # (m, na, nb, C_out), every s-th row and column
                if (r, t) not in sub_weights:  # a kernel smaller than the stride: no tap reaches this phase
                    dst[...] = 0
                    continue
                di, dj, sub = sub_weights[r, t]
                first = x_p[:, u0 + dh - di:, v0 + dw - dj:, :]  # window (u, v) starts at row u0 + u + dh - di
                windows = xp.lib.stride_tricks.as_strided(first, (m, na, nb, di, dj, c_in),
                                                          (s_n, s_h, s_w, s_h, s_w, s_c))
                rows = m * na * nb
                cols = cols_buf[:rows * di * dj * c_in].reshape(m, na, nb, di, dj, c_in)
                cols[...] = windows
                values = _matmul_into(cols.reshape(rows, di * dj * c_in), sub, res_buf[:rows * c].reshape(rows, c))
                dst[...] = values.reshape(m, na, nb, c)
    return out.transpose(0, 3, 1, 2)


def _transpose_conv_by_adds(x, weight, stride, padding, out_hw):
    """col2im by slice-adds: :func:`_transpose_conv_nhwc` for few output channels per input channel.

    Each input pixel's row ``x[n, :, a, b]`` times the weight, read as the matrix
    (C_in, (i, j, o)), gives the kh·kw·C_out values it adds at ``y_p[n, o, s_h a + i,
    s_w b + j]`` (col2im, the adjoint of im2col). A chunk of samples at a time
    (bounded memory on both backends): one 2-D product into a reused column buffer, then kh·kw
    slice-adds into a zeroed *phase-major* buffer, where padded row ``s_h u + r`` lives
    at ``buf[r, :, :, u]`` (likewise columns), so that each add writes contiguous rows
    of W·C_out values (never ``add.at``); then one strided copy per phase moves the
    rows and columns that survive the crop into a contiguous (N, OH, OW, C_out) output,
    so that the ops after it (batch norm, activations) read a dense array.
    """
    xp = backend.array_module(x)
    n, c_in, h, w = x.shape
    _, c, kh, kw = weight.shape
    (sh, sw), (ph, pw), (oh, ow) = stride, padding, out_hw
    hs, ws = _phase_rows(h, kh, sh, oh, ph), _phase_rows(w, kw, sw, ow, pw)
    chunk = _chunk_size(n, h * w * kh * kw * c, xp)
    w_cols = weight.transpose(0, 2, 3, 1).reshape(c_in, kh * kw * c)  # (C_in, (i, j, o)): a small copy
    x_nhwc = x.transpose(0, 2, 3, 1)  # channels-last view: no copy
    out = _empty(xp, (n, oh, ow, c), x.dtype)
    buf = _scratch_array(xp, "phases", (sh, sw, chunk, hs, ws, c), x.dtype)
    cols_buf = _scratch_array(xp, "columns", (chunk * h * w, kh * kw * c), x.dtype)
    # output row a is padded row a + p_h: phase (a + p_h) mod s_h, row (a + p_h) // s_h of that phase
    row_phases = _crop_phases(oh, sh, ph)
    col_phases = _crop_phases(ow, sw, pw)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        rows = x_nhwc[start:start + m].reshape(m * h * w, c_in)  # a copy only for NCHW-contiguous inputs
        cols = _matmul_into(rows, w_cols, cols_buf[:m * h * w]).reshape(m, h, w, kh, kw, c)
        part = buf[:, :, :m]
        part[...] = 0
        for i in range(kh):
            u = i // sh
            for j in range(kw):
                v = j // sw
                part[i % sh, j % sw, :, u:u + h, v:v + w, :] += cols[:, :, :, i, j, :]
        for r, a0, u0, na in row_phases:
            for t, b0, v0, nb in col_phases:
                out[start:start + m, a0::sh, b0::sw, :] = part[r, t, :, u0:u0 + na, v0:v0 + nb, :]
    return out.transpose(0, 3, 1, 2)


def _crop_phases(out_size: int, s: int, p: int) -> list:
    """For each phase ``r`` that reaches the cropped output: ``(r, first output index, first phase row, count)``.

    Output index ``a`` is padded index ``a + p``, which lives in phase ``(a + p) mod s`` at
    row ``(a + p) // s``; the output indices of phase ``r`` are ``a0, a0 + s, ...``.
    """
    phases = []
    for r in range(s):
        a0 = (r - p) % s
        count = len(range(a0, out_size, s))
        if count:
            phases.append((r, a0, (a0 + p) // s, count))
    return phases


def _rows(t):
    """(N, C, H, W) as the matrix (N·H·W, C): no copy when the memory is channels-last."""
    n, c, h, w = t.shape
    return t.transpose(0, 2, 3, 1).reshape(n * h * w, c)


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
    w_cols = weight.data.transpose(0, 2, 3, 1).reshape(o, kh * kw * c)  # (O, (i, j, c)): a small copy
    y, _ = _column_products(x.data, kh, kw, stride, padding, (oh, ow), w_t=w_cols.T)  # (N·OH·OW, O)
    parents = (x, weight)
    if bias is not None:
        bias = _check_bias(x, bias, o, op)
        y += bias.data  # the product's fresh output: in place is safe
        parents = (x, weight, bias)
    data = y.reshape(n, oh, ow, o).transpose(0, 3, 1, 2)
    return make_result(data, parents, conv2d_backward, ctx=(stride, padding))


# --------------------------------------------------------------------------- conv_transpose2d


def conv_transpose2d_backward(g, out, needs):
    x, w = out._parents[0], out._parents[1]
    stride, padding, _ = out._ctx
    # y = conv2d's input gradient of x; so dL/dx = conv2d(g, W) and dL/dW = conv2d_weight with the roles swapped
    if needs[0] and needs[1]:  # both are products with im2col(g): build its columns once
        grads = _conv2d_and_weight(g, w, x, stride, padding)
    else:
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
    data = _transpose_conv_nhwc(x.data, weight.data, stride, padding, (oh, ow))
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
    _, gw = _column_products(x.data, kh, kw, stride, padding, (oh, ow), gy_rows=_rows(gy.data))  # (O, (i, j, c))
    return make_result(_weight_layout(gw, weight_shape), (x, gy), conv2d_weight_backward, ctx=(stride, padding))


def _weight_layout(gw, weight_shape):
    """The weight-gradient matrix (O, (i, j, c)) in PyTorch's weight layout (O, C, kh, kw), C-contiguous."""
    o, c, kh, kw = weight_shape
    return backend.array_module(gw).ascontiguousarray(gw.reshape(o, kh, kw, c).transpose(0, 3, 1, 2))


def _conv2d_and_weight(x: Tensor, weight: Tensor, gy: Tensor, stride, padding) -> tuple[Tensor, Tensor]:
    """``conv2d(x, weight)`` and ``conv2d_weight(x, gy, weight.shape)``, from one pass over ``im2col(x)``.

    The transposed convolution's backward needs both (its input and weight
    gradients), and both are products with the columns of its upstream
    gradient. Each result is recorded as the output of its own op, with that
    op's rule, exactly as if the two ops had been called one after the other;
    the shapes are those of a backward, consistent by construction.
    """
    n, c, h, w = x.shape
    o, _, kh, kw = weight.shape
    oh, ow = gy.shape[2:]
    w_t = weight.data.transpose(0, 2, 3, 1).reshape(o, kh * kw * c).T  # ((i, j, c), O)
    y, gw = _column_products(x.data, kh, kw, stride, padding, (oh, ow), w_t=w_t, gy_rows=_rows(gy.data))
    out = make_result(y.reshape(n, oh, ow, o).transpose(0, 3, 1, 2), (x, weight), conv2d_backward,
                      ctx=(stride, padding))
    grad_w = make_result(_weight_layout(gw, weight.shape), (x, gy), conv2d_weight_backward, ctx=(stride, padding))
    return out, grad_w
