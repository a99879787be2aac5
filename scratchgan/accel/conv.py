"""The convolutions' fast path: chunked column products, the transposed convolution by phases.

:mod:`scratchgan.ops.conv` defines conv2d, conv_transpose2d and conv2d_weight
as im2col / col2im and one product each, on whole-batch arrays. The functions
here compute the same arrays faster and are registered against those
definitions (:func:`~scratchgan.autograd.fastpath.register_forward`; the
transposed convolution's first-order backward with ``register_backward``).
They give the same values up to the order of the float sums (the products
are split into chunks); ``scratchgan.reference_mode()`` turns them off.

*im2col in chunks* (:func:`_column_chunks`, :func:`_column_products`): the
windows of a chunk of samples at a time are copied into a column buffer and
multiplied while still in cache, so that no whole-batch column matrix
(kh·kw/s² times the input: 256 MB for one DCGAN layer at batch 256) is ever
allocated: about 4 MB of columns per chunk on the CPU, in scratch arrays
reused from call to call (:func:`_workspace`), and about 32 MB on a GPU
(``_GPU_CHUNK_ELEMENTS``). conv2d's output is the product's (N·OH·OW, O)
array seen as NCHW (channels-last memory, no copy); conv2d_weight sums the
chunks' products.

*The transposed convolution* (:func:`_transpose_conv_nhwc`), by phases when
C_in <= 2 C_out: each of the s_h·s_w output phases (every s-th row and
column) is a stride-1 convolution of the input with the kernel taps that
reach it, computed by im2col and one product
(:func:`_transpose_conv_by_phases`). Otherwise by slice-adds
(:func:`_transpose_conv_by_adds`): col2im into a zeroed *phase-major* buffer,
(s_h, s_w, N, H_s, W_s, C_out), so that each slice-add writes contiguous rows
of W·C_out values; one strided copy per phase moves the rows and columns that
survive the crop into a dense (N, OH, OW, C_out) output, returned as its NCHW
view. Both run a chunk of samples at a time too.

*conv_transpose2d's backward* (:func:`conv_transpose2d_backward_fast`): its
input and weight gradients are conv2d and conv2d_weight of the upstream
gradient, both products with its columns: one pass over them gives both.

Large outputs come from :mod:`scratchgan.accel.memory` on the CPU (reused
between steps instead of new blocks from malloc).
"""

from __future__ import annotations

import threading

import numpy as np

from .. import backend
from ..autograd.engine import wrap_array
from ..autograd.fastpath import register_backward, register_forward
from ..ops import conv
from ..ops.conv import windows
from . import memory

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
        source = x_nhwc[start:start + m]
        if padded is not None:
            padded[:m, ph:ph + h, pw:pw + w, :] = source
            source = padded[:m]
        part = cols[:m]
        part[...] = windows(source, (kh, kw), stride, out_hw)
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


def _weight_layout(gw, weight_shape):
    """The weight-gradient matrix (O, (i, j, c)) in PyTorch's weight layout (O, C, kh, kw), C-contiguous."""
    o, c, kh, kw = weight_shape
    return backend.array_module(gw).ascontiguousarray(gw.reshape(o, kh, kw, c).transpose(0, 3, 1, 2))


# --------------------------------------------------------------------------- the accelerations


def conv2d_by_chunks(x, weight, stride, padding, out_hw):
    """:func:`scratchgan.ops.conv.conv2d_forward` by :func:`_column_products`: an NCHW view of (N, OH, OW, O)."""
    o, c, kh, kw = weight.shape
    w_cols = weight.transpose(0, 2, 3, 1).reshape(o, kh * kw * c)  # (O, (i, j, c)): a small copy
    y, _ = _column_products(x, kh, kw, stride, padding, out_hw, w_t=w_cols.T)  # (N·OH·OW, O)
    return y.reshape(x.shape[0], out_hw[0], out_hw[1], o).transpose(0, 3, 1, 2)


def conv2d_weight_by_chunks(x, gy, weight_shape, stride, padding):
    """:func:`scratchgan.ops.conv.conv2d_weight_forward` by :func:`_column_products`, the chunks' products summed."""
    _, _, kh, kw = weight_shape
    _, gw = _column_products(x, kh, kw, stride, padding, gy.shape[2:], gy_rows=_rows(gy))  # (O, (i, j, c))
    return _weight_layout(gw, weight_shape)


def conv_transpose2d_backward_fast(g, out, needs):
    """conv_transpose2d's first-order backward: ``conv2d(g, W)`` and ``conv2d_weight(g, x)`` from one pass.

    Both gradients are products with ``im2col(g)`` (:func:`_column_products`
    builds its columns once); the bias gradient, and the cases that need only
    one of the two, are the rule's (:func:`scratchgan.ops.conv.conv_transpose2d_backward`).
    """
    if not (needs[0] and needs[1]):
        return conv.conv_transpose2d_backward(g, out, needs)
    x, weight = out._parents[0], out._parents[1]
    stride, padding, _ = out._ctx
    n, c, _, _ = g.shape
    o, _, kh, kw = weight.shape  # conv2d's weight layout (out = C_in here, in = C_out)
    oh, ow = x.shape[2:]
    w_t = weight.data.transpose(0, 2, 3, 1).reshape(o, kh * kw * c).T  # ((i, j, c), O)
    y, gw = _column_products(g.data, kh, kw, stride, padding, (oh, ow), w_t=w_t, gy_rows=_rows(x.data))
    grads = (wrap_array(y.reshape(n, oh, ow, o).transpose(0, 3, 1, 2)), wrap_array(_weight_layout(gw, weight.shape)))
    return grads + conv.conv_transpose2d_backward(g, out, (False, False) + tuple(needs[2:]))[2:]


register_forward(conv.conv2d_forward, conv2d_by_chunks, op="conv2d")
register_forward(conv.conv_transpose2d_forward, _transpose_conv_nhwc, op="conv_transpose2d")
register_forward(conv.conv2d_weight_forward, conv2d_weight_by_chunks, op="conv2d_weight")
register_backward(conv.conv_transpose2d_backward, conv_transpose2d_backward_fast, op="conv_transpose2d")
