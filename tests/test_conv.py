"""2-D convolutions: the definitions and their acceleration against direct loops, PyTorch and each other.

The generic first- and second-order gradient checks of ``conv2d``,
``conv_transpose2d`` and ``conv2d_weight`` are in the op table
(``op_specs.py``, run by ``test_ops.py``). Here: the definitions
(``scratchgan/ops/conv.py``, run alone in reference mode) against the direct
loops of ``conv_reference.py``, forward and gradients; the acceleration
(``scratchgan/accel/conv.py``: chunks of samples, the transposed convolution by
phases or by adds, one pass for conv_transpose2d's backward) against the
definitions, to the last bits of the float sums; the ops (accelerated, as
users run them) against the loops over many layouts, PyTorch's values and
gradients (first and second order), the argument errors, a gradient penalty
(WGAN-GP, R1, R2) through a small conv critic checked against central
differences, a short WGAN-GP run of a tiny conv GAN, and CuPy against NumPy.
"""

from __future__ import annotations

import numpy as np
import pytest
from conv_reference import conv2d_loop, conv2d_weight_loop, conv_transpose2d_loop

import scratchgan as sg
from scratchgan.gan import losses
from scratchgan import nn, ops, optim
from scratchgan.accel import conv as fast_conv

needs_gpu = pytest.mark.skipif(not sg.cupy_available(), reason="needs CuPy and a GPU")


def f64(a, grad=True):
    return sg.Tensor(a, dtype="float64", requires_grad=grad)


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


# (x shape, weight shape (O, C, kh, kw), stride, padding): the layouts that catch bugs (PROTOCOLS.md)
CONV_CASES = [
    ((2, 3, 7, 6), (4, 3, 3, 2), 2, 1),  # stride 2, odd sides, non-square kernel and input
    ((1, 1, 5, 5), (2, 1, 5, 5), 1, 0),  # batch 1, one channel, kernel as large as the input
    ((1, 2, 3, 3), (1, 2, 5, 5), 1, 1),  # kernel as large as the padded input
    ((2, 2, 9, 8), (3, 2, 4, 4), 2, 2),
    ((3, 2, 6, 7), (2, 2, 1, 3), (2, 1), (0, 2)),  # mixed stride and padding
    ((2, 1, 8, 8), (3, 1, 4, 4), 2, 1),  # DCGAN's 4x4 / stride 2 / padding 1
    ((2, 3, 5, 4), (2, 3, 2, 3), 3, (1, 0)),  # stride 3: rows and columns that no window reaches
    ((1, 9, 4, 5), (10, 9, 3, 3), 1, 1),  # many channels
]

# (x shape, weight shape (C_in, C_out, kh, kw), stride, padding, output_padding)
TRANSPOSE_CASES = [
    ((2, 3, 4, 3), (3, 2, 3, 2), 2, 1, 1),
    ((1, 1, 3, 3), (1, 2, 4, 4), 2, 1, 0),  # DCGAN's generator: doubles the side
    ((2, 2, 3, 4), (2, 3, 3, 3), 3, (1, 2), (2, 0)),
    ((1, 2, 2, 2), (2, 1, 1, 1), 1, 0, 0),
    ((2, 1, 5, 3), (1, 2, 2, 3), (1, 2), 2, (0, 1)),  # output_padding larger than the padding
    ((1, 2, 4, 4), (2, 2, 5, 5), 2, 2, 1),
    ((2, 9, 3, 2), (9, 10, 4, 3), 2, (1, 0), 1),  # many output channels
    ((2, 3, 3, 4), (3, 2, 1, 2), 3, 0, (2, 1)),  # kernel smaller than the stride: rows and columns no tap reaches
    ((2, 6, 3, 3), (6, 1, 4, 4), 2, 1, 0),  # many input channels per output channel
]

# The two ways the accelerated transposed convolution computes (accel/conv.py): by phases (products only) or by
# slice-adds. A test that takes ``method`` forces one through the channel-ratio threshold that chooses between them.
METHODS = {"phases": 10 ** 9, "adds": 0}


def force_method(monkeypatch, method):
    monkeypatch.setattr(fast_conv, "_PHASES_MAX_CHANNEL_RATIO", METHODS[method])


def set_chunk(monkeypatch, elements):
    """Chunks of ``elements`` column-buffer elements (at least one sample), on the CPU and on a GPU."""
    monkeypatch.setattr(fast_conv, "_CHUNK_ELEMENTS", elements)
    monkeypatch.setattr(fast_conv, "_GPU_CHUNK_ELEMENTS", elements)


def conv_out(x_shape, w_shape, stride, padding):
    (sh, sw), (ph, pw) = pair(stride), pair(padding)
    return ((x_shape[2] + 2 * ph - w_shape[2]) // sh + 1, (x_shape[3] + 2 * pw - w_shape[3]) // sw + 1)


# --------------------------------------------------------------------------- the definitions against direct loops


def leftover(x_shape, w_shape, stride, padding):
    """The output_padding that makes conv_transpose2d give back conv2d's input size: ``(H + 2p - k) mod s``."""
    (sh, sw), (ph, pw) = pair(stride), pair(padding)
    return (x_shape[2] + 2 * ph - w_shape[2]) % sh, (x_shape[3] + 2 * pw - w_shape[3]) % sw


def assert_close_to_loop(got, expected):
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CONV_CASES)
def test_definition_of_conv2d_and_its_gradients_equal_direct_loops(backend, case):
    """Reference mode (ops/conv.py alone): im2col and one product, and the rule's three gradients."""
    x_shape, w_shape, stride, padding = case
    rng = np.random.default_rng(20)
    x, w, b = rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0])
    g = rng.standard_normal((x_shape[0], w_shape[0]) + conv_out(x_shape, w_shape, stride, padding))
    with sg.reference_mode():
        ts = [f64(x), f64(w), f64(b)]
        y = ops.conv2d(*ts, stride=stride, padding=padding)
        gx, gw, gb = sg.grad(y, ts, grad_outputs=f64(g, grad=False))
    assert_close_to_loop(y, conv2d_loop(x, w, b, stride, padding))
    # dL/dx is the adjoint (the transposed convolution of g), dL/dW the sum over windows of g * x
    assert_close_to_loop(gx, conv_transpose2d_loop(g, w, None, stride, padding,
                                                   leftover(x_shape, w_shape, stride, padding)))
    assert_close_to_loop(gw, conv2d_weight_loop(x, g, w_shape[2:], stride, padding))
    assert_close_to_loop(gb, g.sum(axis=(0, 2, 3)))


@pytest.mark.parametrize("case", TRANSPOSE_CASES)
def test_definition_of_conv_transpose2d_and_its_gradients_equal_direct_loops(backend, case):
    """Reference mode: col2im of one product (kh·kw slice-adds), and the rule's three gradients."""
    x_shape, w_shape, stride, padding, output_padding = case
    rng = np.random.default_rng(21)
    x, w, b = rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[1])
    with sg.reference_mode():
        ts = [f64(x), f64(w), f64(b)]
        y = ops.conv_transpose2d(*ts, stride=stride, padding=padding, output_padding=output_padding)
        g = rng.standard_normal(y.shape)
        gx, gw, gb = sg.grad(y, ts, grad_outputs=f64(g, grad=False))
    assert_close_to_loop(y, conv_transpose2d_loop(x, w, b, stride, padding, output_padding))
    # y is conv2d's input gradient: dL/dx = conv2d(g, W), dL/dW = conv2d_weight with g as the conv2d input
    assert_close_to_loop(gx, conv2d_loop(g, w, None, stride, padding))
    assert_close_to_loop(gw, conv2d_weight_loop(g, x, w_shape[2:], stride, padding))
    assert_close_to_loop(gb, g.sum(axis=(0, 2, 3)))


@pytest.mark.parametrize("case", CONV_CASES)
def test_definition_of_conv2d_weight_and_its_gradients_equal_direct_loops(backend, case):
    x_shape, w_shape, stride, padding = case
    rng = np.random.default_rng(22)
    x, u = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    gy = rng.standard_normal((x_shape[0], w_shape[0]) + conv_out(x_shape, w_shape, stride, padding))
    with sg.reference_mode():
        ts = [f64(x), f64(gy)]
        gw = ops.conv2d_weight(*ts, w_shape, stride=stride, padding=padding)
        dx, dgy = sg.grad(gw, ts, grad_outputs=f64(u, grad=False))
    assert gw.data.flags.c_contiguous
    assert_close_to_loop(gw, conv2d_weight_loop(x, gy, w_shape[2:], stride, padding))
    assert_close_to_loop(dx, conv_transpose2d_loop(gy, u, None, stride, padding,
                                                   leftover(x_shape, w_shape, stride, padding)))
    assert_close_to_loop(dgy, conv2d_loop(x, u, None, stride, padding))


@pytest.mark.parametrize("op", ["conv2d", "conv_transpose2d", "conv2d_weight"])
def test_definitions_pass_gradcheck_and_gradgradcheck(backend, op):
    """First and second derivatives of the definitions against central differences (reference mode)."""
    rng = np.random.default_rng(23)
    if op == "conv2d":
        fn = lambda x, w, b: ops.conv2d(x, w, b, stride=(2, 1), padding=(1, 2))  # noqa: E731
        arrays = [rng.standard_normal((2, 2, 5, 4)), rng.standard_normal((3, 2, 3, 2)), rng.standard_normal(3)]
    elif op == "conv_transpose2d":
        fn = lambda x, w, b: ops.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=(1, 0))  # noqa: E731
        arrays = [rng.standard_normal((2, 3, 3, 2)), rng.standard_normal((3, 2, 3, 2)), rng.standard_normal(2)]
    else:
        fn = lambda x, gy: ops.conv2d_weight(x, gy, (3, 2, 3, 2), stride=2, padding=1)  # noqa: E731
        arrays = [rng.standard_normal((2, 2, 5, 4)), rng.standard_normal((2, 3, 3, 3))]
    ts = [f64(a) for a in arrays]
    with sg.reference_mode():
        assert sg.gradcheck(fn, ts)
        assert sg.gradgradcheck(fn, ts)


def test_reference_mode_runs_no_acceleration(backend, monkeypatch):
    """In reference mode every conv product is the definition's: the accelerated functions are never called."""
    def refuse(*args, **kwargs):
        raise AssertionError("an acceleration ran in reference mode")

    for name in ("_column_products", "_transpose_conv_by_phases", "_transpose_conv_by_adds"):
        monkeypatch.setattr(fast_conv, name, refuse)
    rng = np.random.default_rng(24)
    x, w, wt = f64(rng.standard_normal((2, 3, 6, 6))), f64(rng.standard_normal((4, 3, 3, 3))), \
        f64(rng.standard_normal((4, 2, 4, 4)))
    with sg.reference_mode():
        y = ops.conv_transpose2d(ops.conv2d(x, w, stride=2, padding=1), wt, stride=2, padding=1)
        (gx,) = sg.grad(y.sum(), [x], create_graph=True)
        sg.grad((gx * gx).sum(), [w, wt])  # gx is linear in x: its square depends on the weights only
        sg.grad(y.sum(), [x, w, wt])
    with sg.reference_mode(False), pytest.raises(AssertionError, match="an acceleration ran"):
        ops.conv2d(x, w)  # and outside reference mode (even under SCRATCHGAN_REFERENCE=1) they run


# --------------------------------------------------------------------------- the acceleration against the definitions


def both_paths(fn, arrays, dtype, needs=None):
    """The forward and first-order gradients of ``fn``, by the definitions (reference mode) and accelerated."""
    needs = needs or [True] * len(arrays)
    results = {}
    for path in ("definition", "accelerated"):
        with sg.reference_mode(path == "definition"):
            ts = [sg.Tensor(a, dtype=dtype, requires_grad=need) for a, need in zip(arrays, needs)]
            y = fn(*ts)
            u = sg.Tensor(np.random.default_rng(99).standard_normal(y.shape), dtype=dtype)
            grads = sg.grad(y, [t for t in ts if t.requires_grad], grad_outputs=u)
            assert y.dtype == dtype and all(g.dtype == dtype for g in grads)
            results[path] = [y.numpy()] + [g.numpy() for g in grads]
    return results["definition"], results["accelerated"]


def assert_same_up_to_summation_order(definition, accelerated, dtype):
    """Equal but for the order of the float sums (the products are split into chunks): a tight relative tolerance."""
    tol = 1e-12 if dtype == "float64" else 2e-5
    for d, a in zip(definition, accelerated):
        assert a.shape == d.shape
        np.testing.assert_allclose(a, d, rtol=tol, atol=tol * max(1.0, float(np.abs(d).max())))


# column-buffer elements of one chunk: one sample at a time in every chunk loop, or the default sizes
CHUNKS = {"one_sample": 1, "default": None}
DTYPES = ["float64", "float32"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("case", CONV_CASES)
def test_accelerated_conv2d_equals_definition(backend, case, chunk, dtype, monkeypatch):
    """conv2d and its gradients by chunks of samples (batch 5: chunks that do not divide it) against im2col."""
    if CHUNKS[chunk] is not None:
        set_chunk(monkeypatch, CHUNKS[chunk])
    x_shape, w_shape, stride, padding = case
    rng = np.random.default_rng(25)
    arrays = [rng.standard_normal((5,) + x_shape[1:]), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0])]
    fn = lambda x, w, b: ops.conv2d(x, w, b, stride=stride, padding=padding)  # noqa: E731
    assert_same_up_to_summation_order(*both_paths(fn, arrays, dtype), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("chunk", ["one_sample", "two_samples", "default"])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", TRANSPOSE_CASES)
def test_accelerated_conv_transpose2d_equals_definition(backend, case, method, chunk, dtype, monkeypatch):
    """Both transposed-conv methods (phases, adds) in chunks of samples, and the one-pass backward, against col2im."""
    force_method(monkeypatch, method)
    x_shape, w_shape, stride, padding, output_padding = case
    if chunk == "two_samples":  # two samples per chunk of the forward (the backward's products: their own sizes)
        (sh, sw), (ph, pw), (qh, qw) = pair(stride), pair(padding), pair(output_padding)
        kh, kw = w_shape[2:]
        oh, ow = (x_shape[2] - 1) * sh - 2 * ph + kh + qh, (x_shape[3] - 1) * sw - 2 * pw + kw + qw
        if method == "adds":  # column-buffer elements per sample
            per_sample = x_shape[2] * x_shape[3] * w_shape[1] * kh * kw
        else:  # the largest phase's output pixels x its taps x C_in
            per_sample = -(-oh // sh) * -(-ow // sw) * -(-kh // sh) * -(-kw // sw) * x_shape[1]
        set_chunk(monkeypatch, 2 * per_sample)
    elif CHUNKS[chunk] is not None:
        set_chunk(monkeypatch, CHUNKS[chunk])
    rng = np.random.default_rng(26)
    arrays = [rng.standard_normal((5,) + x_shape[1:]), rng.standard_normal(w_shape), rng.standard_normal(w_shape[1])]
    fn = lambda x, w, b: ops.conv_transpose2d(x, w, b, stride=stride, padding=padding,  # noqa: E731
                                              output_padding=output_padding)
    assert_same_up_to_summation_order(*both_paths(fn, arrays, dtype), dtype)


@pytest.mark.parametrize("needs", [(True, False, False), (False, True, True), (True, True, False)],
                         ids=["input", "weight_bias", "input_weight"])
def test_accelerated_conv_transpose2d_backward_for_each_set_of_needed_gradients(backend, needs, monkeypatch):
    """The one-pass backward when both gradients are needed, the rule's ops otherwise: the definition's values."""
    set_chunk(monkeypatch, 1)
    rng = np.random.default_rng(27)
    arrays = [rng.standard_normal((3, 4, 3, 4)), rng.standard_normal((4, 3, 4, 3)), rng.standard_normal(3)]
    fn = lambda x, w, b: ops.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1)  # noqa: E731
    assert_same_up_to_summation_order(*both_paths(fn, arrays, "float64", needs=list(needs)), "float64")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("case", CONV_CASES)
def test_accelerated_conv2d_weight_equals_definition(backend, case, chunk, dtype, monkeypatch):
    """conv2d_weight, the chunks' products summed, and its gradients against one whole-batch product."""
    if CHUNKS[chunk] is not None:
        set_chunk(monkeypatch, CHUNKS[chunk])
    x_shape, w_shape, stride, padding = case
    rng = np.random.default_rng(28)
    x_shape = (5,) + x_shape[1:]
    arrays = [rng.standard_normal(x_shape),
              rng.standard_normal((5, w_shape[0]) + conv_out(x_shape, w_shape, stride, padding))]
    fn = lambda x, gy: ops.conv2d_weight(x, gy, w_shape, stride=stride, padding=padding)  # noqa: E731
    assert_same_up_to_summation_order(*both_paths(fn, arrays, dtype), dtype)


def test_accelerations_are_registered_against_the_definitions():
    """The conv ops dispatch to accel/conv.py outside reference mode (the op table relies on this registry)."""
    from scratchgan.autograd import fastpath
    from scratchgan.ops import conv

    registered = {(a.definition, a.kind): a.fast for a in fastpath.REGISTRY if a.where == fast_conv.__name__}
    assert registered == {
        (conv.conv2d_forward, "forward"): fast_conv.conv2d_by_chunks,
        (conv.conv_transpose2d_forward, "forward"): fast_conv._transpose_conv_nhwc,
        (conv.conv2d_weight_forward, "forward"): fast_conv.conv2d_weight_by_chunks,
        (conv.conv_transpose2d_backward, "backward"): fast_conv.conv_transpose2d_backward_fast,
    }


# --------------------------------------------------------------------------- the ops (accelerated) against direct loops


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_forward_equals_direct_loop(backend, case, bias):
    x_shape, w_shape, stride, padding = case
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0])
    y = ops.conv2d(f64(x), f64(w), f64(b) if bias else None, stride=stride, padding=padding)
    assert y.shape == (x_shape[0], w_shape[0]) + conv_out(x_shape, w_shape, stride, padding)
    np.testing.assert_allclose(y.numpy(), conv2d_loop(x, w, b if bias else None, stride, padding), rtol=1e-12,
                               atol=1e-12)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("case", TRANSPOSE_CASES)
def test_conv_transpose2d_forward_equals_direct_loop(backend, case, bias, method, monkeypatch):
    force_method(monkeypatch, method)
    x_shape, w_shape, stride, padding, output_padding = case
    rng = np.random.default_rng(1)
    x, w, b = rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[1])
    y = ops.conv_transpose2d(f64(x), f64(w), f64(b) if bias else None, stride=stride, padding=padding,
                             output_padding=output_padding)
    (sh, sw), (ph, pw), (qh, qw) = pair(stride), pair(padding), pair(output_padding)
    expected_shape = (x_shape[0], w_shape[1], (x_shape[2] - 1) * sh - 2 * ph + w_shape[2] + qh,
                      (x_shape[3] - 1) * sw - 2 * pw + w_shape[3] + qw)
    assert y.shape == expected_shape
    expected = conv_transpose2d_loop(x, w, b if bias else None, stride, padding, output_padding)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("samples_per_chunk", [1, 2])
@pytest.mark.parametrize("case", TRANSPOSE_CASES)
def test_conv_transpose2d_in_chunks_of_samples_equals_direct_loop(backend, case, samples_per_chunk, method,
                                                                  monkeypatch):
    """The batch runs in chunks of samples (one or two at a time here): the same values."""
    force_method(monkeypatch, method)
    x_shape, w_shape, stride, padding, output_padding = case
    (sh, sw), (ph, pw), (qh, qw) = pair(stride), pair(padding), pair(output_padding)
    kh, kw = w_shape[2:]
    oh, ow = (x_shape[2] - 1) * sh - 2 * ph + kh + qh, (x_shape[3] - 1) * sw - 2 * pw + kw + qw
    if method == "adds":  # column-buffer elements per sample
        per_sample = x_shape[2] * x_shape[3] * w_shape[1] * kh * kw
    else:  # the largest phase's output pixels x its taps x C_in
        per_sample = -(-oh // sh) * -(-ow // sw) * -(-kh // sh) * -(-kw // sw) * x_shape[1]
    set_chunk(monkeypatch, samples_per_chunk * per_sample)
    x_shape = (5,) + x_shape[1:]  # a batch that does not divide into equal chunks
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    y = ops.conv_transpose2d(f64(x), f64(w), stride=stride, padding=padding, output_padding=output_padding)
    expected = conv_transpose2d_loop(x, w, None, stride, padding, output_padding)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("samples_per_chunk", [1, 2])
@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_and_weight_gradient_in_chunks_of_samples_equal_direct_loop(backend, case, samples_per_chunk,
                                                                           monkeypatch):
    """conv2d and conv2d_weight run in chunks of samples (one or two here, batch 5): the same values."""
    x_shape, w_shape, stride, padding = case
    oh, ow = conv_out(x_shape, w_shape, stride, padding)
    per_sample = oh * ow * w_shape[1] * w_shape[2] * w_shape[3]  # column-buffer elements
    set_chunk(monkeypatch, samples_per_chunk * per_sample)
    x_shape = (5,) + x_shape[1:]  # a batch that does not divide into equal chunks
    rng = np.random.default_rng(4)
    x, w, b = rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0])
    gy = rng.standard_normal((5, w_shape[0], oh, ow))
    y = ops.conv2d(f64(x), f64(w), f64(b), stride=stride, padding=padding)
    np.testing.assert_allclose(y.numpy(), conv2d_loop(x, w, b, stride, padding), rtol=1e-12, atol=1e-12)
    g = ops.conv2d_weight(f64(x), f64(gy), w_shape, stride=stride, padding=padding)
    np.testing.assert_allclose(g.numpy(), conv2d_weight_loop(x, gy, w_shape[2:], stride, padding), rtol=1e-12,
                               atol=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_reused_scratch_buffers_do_not_leak_between_calls(backend, method, monkeypatch):
    """The chunk loops reuse their scratch arrays: a call after a larger one with other values and padding is exact."""
    force_method(monkeypatch, method)
    rng = np.random.default_rng(5)
    big = rng.standard_normal((3, 4, 9, 9)) + 100.0  # large values left in the padded and column buffers
    ops.conv2d(f64(big), f64(rng.standard_normal((2, 4, 3, 3))), padding=2)
    ops.conv_transpose2d(f64(big), f64(rng.standard_normal((4, 2, 4, 4))), stride=2, padding=1)
    x, w = rng.standard_normal((2, 3, 5, 4)), rng.standard_normal((2, 3, 3, 3))
    np.testing.assert_allclose(ops.conv2d(f64(x), f64(w), padding=1).numpy(), conv2d_loop(x, w, None, 1, 1),
                               rtol=1e-12, atol=1e-12)
    z, wt = rng.standard_normal((2, 2, 3, 3)), rng.standard_normal((2, 3, 4, 4))
    np.testing.assert_allclose(ops.conv_transpose2d(f64(z), f64(wt), stride=2, padding=1).numpy(),
                               conv_transpose2d_loop(z, wt, None, 2, 1, 0), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_weight_forward_equals_direct_loop(backend, case):
    x_shape, w_shape, stride, padding = case
    rng = np.random.default_rng(2)
    x = rng.standard_normal(x_shape)
    gy = rng.standard_normal((x_shape[0], w_shape[0]) + conv_out(x_shape, w_shape, stride, padding))
    g = ops.conv2d_weight(f64(x), f64(gy), w_shape, stride=stride, padding=padding)
    assert g.shape == w_shape and g.data.flags.c_contiguous
    np.testing.assert_allclose(g.numpy(), conv2d_weight_loop(x, gy, w_shape[2:], stride, padding), rtol=1e-12,
                               atol=1e-12)


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_transpose2d_is_the_adjoint_of_conv2d(backend, case):
    """<conv2d(x, W), z> = <x, conv_transpose2d(z, W)>, with the output_padding that gives back x's size."""
    x_shape, w_shape, stride, padding = case
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    z = rng.standard_normal((x_shape[0], w_shape[0]) + conv_out(x_shape, w_shape, stride, padding))
    (sh, sw), (ph, pw) = pair(stride), pair(padding)
    leftover = ((x_shape[2] + 2 * ph - w_shape[2]) % sh, (x_shape[3] + 2 * pw - w_shape[3]) % sw)
    back = ops.conv_transpose2d(f64(z), f64(w), stride=stride, padding=padding, output_padding=leftover).numpy()
    assert back.shape == x_shape
    lhs = float((ops.conv2d(f64(x), f64(w), stride=stride, padding=padding).numpy() * z).sum())
    assert lhs == pytest.approx(float((x * back).sum()), rel=1e-12)


def test_float32_in_float32_out_and_channels_last_memory(backend):
    rng = np.random.default_rng(4)
    x = sg.Tensor(rng.standard_normal((2, 3, 6, 6)), dtype="float32")
    w = sg.Tensor(rng.standard_normal((4, 3, 3, 3)), dtype="float32")
    b = sg.Tensor(rng.standard_normal(4), dtype="float32")
    y = ops.conv2d(x, w, b, stride=1, padding=1)
    assert y.dtype == np.float32
    # the product's (N·OH·OW, O) output seen as NCHW: channels-last memory, no copy
    assert y.data.transpose(0, 2, 3, 1).flags.c_contiguous
    wt = sg.Tensor(rng.standard_normal((4, 2, 4, 4)), dtype="float32")
    z = ops.conv_transpose2d(y, wt, stride=2, padding=1)
    assert z.dtype == np.float32 and z.shape == (2, 2, 12, 12)
    expected = conv_transpose2d_loop(y.numpy().astype(np.float64), wt.numpy().astype(np.float64), None, 2, 1)
    np.testing.assert_allclose(z.numpy(), expected, rtol=1e-4, atol=1e-4)


def test_graph_and_no_grad(backend):
    rng = np.random.default_rng(5)
    x, w = f64(rng.standard_normal((1, 1, 4, 4))), f64(rng.standard_normal((2, 1, 2, 2)))
    assert ops.conv2d(x, w).grad_fn == "conv2d"
    assert ops.conv_transpose2d(ops.conv2d(x, w), f64(rng.standard_normal((2, 1, 2, 2)))).grad_fn == "conv_transpose2d"
    with sg.no_grad():
        y = ops.conv2d(x, w)
    assert not y.requires_grad and y.grad_fn is None
    # the first-order backward records nothing; with create_graph the gradient is a node of the next op
    (gx,) = sg.grad(ops.conv2d(x, w).sum(), [x])
    assert not gx.requires_grad
    (gx,) = sg.grad(ops.conv2d(x, w).sum(), [x], create_graph=True)
    assert gx.grad_fn == "conv_transpose2d"
    (gw,) = sg.grad(ops.conv2d(x, w).sum(), [w], create_graph=True)
    assert gw.grad_fn == "conv2d_weight"


@pytest.mark.parametrize("op", ["conv2d", "conv_transpose2d"])
def test_gradients_with_many_channels(backend, op):
    """First and second order with 9 output channels of the transposed product (the stacked-product path).

    The op table draws at most 2 channels, where conv_transpose2d takes the 2-D product; here conv2d's
    input gradient and conv_transpose2d's forward have 9 output channels.
    """
    rng = np.random.default_rng(15)
    if op == "conv2d":
        fn = lambda x, w, b: ops.conv2d(x, w, b, stride=2, padding=1)  # noqa: E731
        arrays = [rng.standard_normal((1, 9, 3, 4)), rng.standard_normal((2, 9, 2, 3)), rng.standard_normal(2)]
    else:
        fn = lambda x, w, b: ops.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1)  # noqa: E731
        arrays = [rng.standard_normal((1, 2, 2, 3)), rng.standard_normal((2, 9, 3, 2)), rng.standard_normal(9)]
    ts = [f64(a) for a in arrays]
    assert sg.gradcheck(fn, ts)
    assert sg.gradgradcheck(fn, ts)


# --------------------------------------------------------------------------- against PyTorch


def _torch():
    return pytest.importorskip("torch")


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_matches_torch_values_and_gradients(case):
    torch = _torch()
    F = torch.nn.functional
    x_shape, w_shape, stride, padding = case
    rng = np.random.default_rng(6)
    arrays = [rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0])]
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    ty = F.conv2d(*ts, stride=stride, padding=padding)
    ss = [f64(a) for a in arrays]
    y = ops.conv2d(*ss, stride=stride, padding=padding)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    g = rng.standard_normal(ty.shape)
    expected = torch.autograd.grad(ty, ts, torch.tensor(g))
    got = sg.grad(y, ss, grad_outputs=f64(g, grad=False))
    for a, e in zip(got, expected):
        np.testing.assert_allclose(a.numpy(), e.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", TRANSPOSE_CASES)
def test_conv_transpose2d_matches_torch_values_and_gradients(case):
    torch = _torch()
    F = torch.nn.functional
    x_shape, w_shape, stride, padding, output_padding = case
    rng = np.random.default_rng(7)
    arrays = [rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[1])]
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    ty = F.conv_transpose2d(*ts, stride=stride, padding=padding, output_padding=output_padding)
    ss = [f64(a) for a in arrays]
    y = ops.conv_transpose2d(*ss, stride=stride, padding=padding, output_padding=output_padding)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    g = rng.standard_normal(ty.shape)
    expected = torch.autograd.grad(ty, ts, torch.tensor(g))
    got = sg.grad(y, ss, grad_outputs=f64(g, grad=False))
    for a, e in zip(got, expected):
        np.testing.assert_allclose(a.numpy(), e.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("transposed", [False, True], ids=["conv2d", "conv_transpose2d"])
def test_second_derivatives_match_torch(transposed):
    """The gradient of ||d<u, f(tanh(x), W)>/dx||^2 (the shape of WGAN-GP) with respect to x and W, against torch."""
    torch = _torch()
    F = torch.nn.functional
    rng = np.random.default_rng(8)
    if transposed:
        x_shape, w_shape, kw = (2, 3, 4, 3), (3, 2, 3, 2), {"stride": 2, "padding": 1, "output_padding": 1}
        t_op, s_op = F.conv_transpose2d, ops.conv_transpose2d
    else:
        x_shape, w_shape, kw = (2, 3, 7, 6), (4, 3, 3, 2), {"stride": 2, "padding": 1}
        t_op, s_op = F.conv2d, ops.conv2d
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    ty = t_op(torch.tanh(tx), tw, **kw)
    u = rng.standard_normal(ty.shape)
    (tgx,) = torch.autograd.grad((ty * torch.tensor(u)).sum(), tx, create_graph=True)
    expected = torch.autograd.grad(tgx.pow(2).sum(), (tx, tw))
    sx, sw = f64(x), f64(w)
    (gx,) = sg.grad((s_op(ops.tanh(sx), sw, **kw) * f64(u, grad=False)).sum(), [sx], create_graph=True)
    got = sg.grad((gx * gx).sum(), [sx, sw])
    for a, e in zip(got, expected):
        np.testing.assert_allclose(a.numpy(), e.numpy(), rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------- errors


def test_errors_name_the_problem():
    x = f64(np.ones((1, 2, 5, 5)))
    w = f64(np.ones((3, 2, 3, 3)))
    with pytest.raises(ValueError, match=r"conv2d: expected a 4-D input \(N, C, H, W\), got shape \(2, 5, 5\)"):
        ops.conv2d(f64(np.ones((2, 5, 5))), w)
    with pytest.raises(ValueError, match="conv2d: expected a 4-D weight"):
        ops.conv2d(x, f64(np.ones((3, 2, 3))))
    with pytest.raises(ValueError, match="input has 2 channels .* but the weight expects 4"):
        ops.conv2d(x, f64(np.ones((3, 4, 3, 3))))
    with pytest.raises(TypeError, match="conv2d: cannot mix float64 and float32"):
        ops.conv2d(x, sg.Tensor(np.ones((3, 2, 3, 3)), dtype="float32"))
    with pytest.raises(TypeError, match="float32 or float64"):
        ops.conv2d(sg.Tensor(np.ones((1, 2, 5, 5), dtype=np.int64)), sg.Tensor(np.ones((3, 2, 3, 3), dtype=np.int64)))
    with pytest.raises(ValueError, match=r"kernel height 8 is larger than the padded input height 5 \+ 2\*1 = 7"):
        ops.conv2d(x, f64(np.ones((3, 2, 8, 3))), padding=1)
    with pytest.raises(ValueError, match="kernel width 6 is larger than the padded input width 5"):
        ops.conv2d(x, f64(np.ones((3, 2, 3, 6))))
    for bad in (0, -1, (1, 0), (1, 2, 3), 1.5, True, "2", None):
        with pytest.raises(ValueError, match="conv2d: stride must be"):
            ops.conv2d(x, w, stride=bad)
    for bad in (-1, (0, -2), 0.5, False, (1,)):
        with pytest.raises(ValueError, match="conv2d: padding must be"):
            ops.conv2d(x, w, padding=bad)
    with pytest.raises(ValueError, match=r"bias has shape \(2,\), expected \(3,\)"):
        ops.conv2d(x, w, f64(np.ones(2)))
    with pytest.raises(ValueError, match="the kernel must be at least 1x1"):
        ops.conv2d(x, f64(np.ones((3, 2, 0, 3))))


def test_transpose_and_weight_errors():
    x = f64(np.ones((1, 2, 3, 3)))
    w = f64(np.ones((2, 4, 3, 3)))
    with pytest.raises(ValueError, match=r"output_padding \(2, 2\) must be smaller than the stride \(2, 2\)"):
        ops.conv_transpose2d(x, w, stride=2, output_padding=2)
    with pytest.raises(ValueError, match=r"output_padding \(1, 1\) must be smaller than the stride \(1, 1\)"):
        ops.conv_transpose2d(x, w, output_padding=1)
    with pytest.raises(ValueError, match="input has 2 channels .* but the weight expects 3"):
        ops.conv_transpose2d(x, f64(np.ones((3, 4, 3, 3))))
    with pytest.raises(ValueError, match=r"the output size \(-1, -1\) .* is below 1"):
        ops.conv_transpose2d(f64(np.ones((1, 2, 1, 1))), f64(np.ones((2, 4, 1, 1))), padding=1)
    with pytest.raises(ValueError, match="conv_transpose2d: expected a 4-D input"):
        ops.conv_transpose2d(f64(np.ones((2, 3, 3))), w)
    with pytest.raises(ValueError, match=r"bias has shape \(2,\), expected \(4,\)"):
        ops.conv_transpose2d(x, w, f64(np.ones(2)))
    with pytest.raises(ValueError, match="conv_transpose2d: output_padding must be >= 0"):
        ops.conv_transpose2d(x, w, output_padding=-1)
    gy = f64(np.ones((1, 4, 1, 1)))
    with pytest.raises(ValueError, match=r"do not fit weight shape \(4, 2, 2, 2\) .* output gradient \(1, 4, 2, 2\)"):
        ops.conv2d_weight(x, gy, (4, 2, 2, 2))
    with pytest.raises(ValueError, match="weight_shape must be 4 positive ints"):
        ops.conv2d_weight(x, gy, (4, 2, 3))
    with pytest.raises(ValueError, match="expected a 4-D output gradient"):
        ops.conv2d_weight(x, f64(np.ones((4, 1, 1))), (4, 2, 3, 3))


# --------------------------------------------------------------------------- penalties through a conv critic


def conv_critic(seed=0):
    """Conv2d -> LeakyReLU -> Conv2d -> Flatten -> Linear, float64, for (N, 1, 5, 6) inputs."""
    rng = np.random.default_rng(seed)
    return nn.Sequential(
        nn.Conv2d(1, 3, 3, stride=2, padding=1, rng=rng, dtype="float64"),  # -> (3, 3, 3)
        nn.LeakyReLU(0.2),
        nn.Conv2d(3, 2, (2, 3), stride=1, padding=(0, 1), rng=rng, dtype="float64"),  # -> (2, 2, 3)
        nn.Flatten(),
        nn.Linear(12, 1, rng=rng, dtype="float64"),
    )


PENALTIES = {
    "wgan_gp": lambda critic, real, fake: losses.gradient_penalty(critic, real, fake, weight=10.0,
                                                                  alpha=np.array([0.2, 0.7, 0.5])),
    "r1": lambda critic, real, fake: losses.r1_penalty(critic, real, weight=3.0),
    "r2": lambda critic, real, fake: losses.r2_penalty(critic, fake, weight=3.0),
}


@pytest.mark.parametrize("penalty", sorted(PENALTIES))
def test_penalty_gradient_through_conv_critic_against_finite_differences(penalty):
    critic = conv_critic()
    rng = np.random.default_rng(9)
    real, fake = f64(rng.standard_normal((3, 1, 5, 6)), grad=False), f64(rng.standard_normal((3, 1, 5, 6)), grad=False)
    params = list(critic.parameters())
    fn = lambda *ps: PENALTIES[penalty](critic, real, fake)  # noqa: E731 - the parameters are perturbed in place
    value = fn()
    assert value.shape == () and np.isfinite(value.item()) and value.item() > 0
    assert sg.gradcheck(fn, params, eps=1e-6, atol=1e-5, rtol=1e-3)
    # the penalty reaches every weight; the critic is piecewise linear in its input (leaky ReLU), so its slope,
    # and the penalty, do not depend on the biases: their gradients are absent (or zero)
    grads = dict(zip([name for name, _ in critic.named_parameters()], sg.grad(fn(), params, allow_unused=True)))
    assert all(np.abs(grads[k].numpy()).sum() > 0 for k in ("0.weight", "2.weight", "4.weight"))
    assert all(grads[k] is None or not grads[k].numpy().any() for k in ("0.bias", "2.bias", "4.bias"))


def test_wgan_gp_through_conv_critic_matches_torch():
    torch = _torch()
    critic = conv_critic(seed=1)
    tcritic = torch.nn.Sequential(
        torch.nn.Conv2d(1, 3, 3, stride=2, padding=1), torch.nn.LeakyReLU(0.2),
        torch.nn.Conv2d(3, 2, (2, 3), stride=1, padding=(0, 1)), torch.nn.Flatten(), torch.nn.Linear(12, 1),
    ).double()
    with torch.no_grad():
        for (name, p), tp in zip(critic.named_parameters(), tcritic.parameters()):
            value = p.numpy().T if name == "4.weight" else p.numpy()  # Linear keeps (in, out)
            tp.copy_(torch.tensor(value))
    rng = np.random.default_rng(10)
    real, fake, alpha = rng.standard_normal((4, 1, 5, 6)), rng.standard_normal((4, 1, 5, 6)), rng.random(4)
    value = losses.gradient_penalty(critic, f64(real, grad=False), f64(fake, grad=False), weight=10.0, alpha=alpha)
    got = sg.grad(value, list(critic.parameters()), allow_unused=True)

    a = torch.tensor(alpha).reshape(4, 1, 1, 1)
    x_hat = (a * torch.tensor(real) + (1 - a) * torch.tensor(fake)).requires_grad_(True)
    (g,) = torch.autograd.grad(tcritic(x_hat).sum(), x_hat, create_graph=True)
    norms = torch.sqrt((g * g).sum(dim=(1, 2, 3)) + 1e-12)
    t_value = 10.0 * ((norms - 1.0) ** 2).mean()
    expected = torch.autograd.grad(t_value, list(tcritic.parameters()), allow_unused=True)
    assert value.item() == pytest.approx(t_value.item(), rel=1e-12)
    for (name, _), a_, e in zip(critic.named_parameters(), got, expected):
        e = np.zeros(a_.shape if a_ is not None else ()) if e is None else e.numpy()
        a_ = np.zeros_like(e) if a_ is None else a_.numpy()
        np.testing.assert_allclose(a_, e.T if name == "4.weight" else e, rtol=1e-10, atol=1e-12, err_msg=name)


def test_wgan_gp_training_of_a_tiny_conv_gan():
    """A few WGAN-GP steps on 8x8 images: the losses stay finite and the parameters move."""
    rng = np.random.default_rng(11)
    z_dim = 4
    gen = nn.Sequential(
        nn.Linear(z_dim, 8 * 2 * 2, rng=rng), nn.Unflatten(1, (8, 2, 2)), nn.BatchNorm2d(8), nn.ReLU(),
        nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1, rng=rng), nn.ReLU(),  # -> 4 x 4
        nn.ConvTranspose2d(4, 1, 4, stride=2, padding=1, rng=rng), nn.Tanh(),  # -> 8 x 8
    )
    critic = nn.Sequential(
        nn.Conv2d(1, 4, 4, stride=2, padding=1, rng=rng), nn.LeakyReLU(0.2),  # -> 4 x 4
        nn.Conv2d(4, 8, 4, stride=2, padding=1, rng=rng), nn.LeakyReLU(0.2),  # -> 2 x 2
        nn.Flatten(), nn.Linear(32, 1, rng=rng),
    )
    opt_g = optim.Adam(gen.parameters(), lr=1e-3, betas=(0.5, 0.9))
    opt_d = optim.Adam(critic.parameters(), lr=1e-3, betas=(0.5, 0.9))
    before = [p.numpy().copy() for p in list(gen.parameters()) + list(critic.parameters())]
    grid = np.linspace(-1, 1, 8)
    pattern = np.tanh(3 * np.add.outer(grid, -grid))  # a diagonal edge
    for step in range(3):
        real = sg.Tensor((pattern + 0.1 * rng.standard_normal((16, 1, 8, 8))).clip(-1, 1), dtype="float32")
        z = sg.Tensor(rng.standard_normal((16, z_dim)), dtype="float32")
        with sg.no_grad():
            fake = gen(z)
        assert fake.shape == (16, 1, 8, 8)
        d_loss = losses.d_loss("wasserstein", critic(real), critic(fake))
        gp = losses.gradient_penalty(critic, real, fake, weight=10.0, rng=rng)
        opt_d.zero_grad()
        (d_loss + gp).backward()
        opt_d.step()
        g_loss = losses.g_loss("wasserstein", critic(gen(sg.Tensor(rng.standard_normal((16, z_dim)), dtype="float32"))))
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        assert all(np.isfinite(v.item()) for v in (d_loss, gp, g_loss)), step
    after = [p.numpy() for p in list(gen.parameters()) + list(critic.parameters())]
    # every parameter moves but the critic's output bias: the Wasserstein loss (mean f - mean r) and the
    # penalty do not depend on it, so its gradient is exactly zero
    unchanged = [i for i, (a, b) in enumerate(zip(before, after)) if np.array_equal(a, b)]
    assert unchanged == [len(before) - 1], unchanged


# --------------------------------------------------------------------------- CuPy against NumPy


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("transposed", [False, True], ids=["conv2d", "conv_transpose2d"])
def test_cupy_equals_numpy_forward_and_gradients(transposed):
    rng = np.random.default_rng(12)
    cases = TRANSPOSE_CASES if transposed else CONV_CASES
    for case in cases:
        if transposed:
            x_shape, w_shape, stride, padding, output_padding = case
            kw = {"stride": stride, "padding": padding, "output_padding": output_padding}
            op, n_out = ops.conv_transpose2d, w_shape[1]
        else:
            x_shape, w_shape, stride, padding = case
            kw = {"stride": stride, "padding": padding}
            op, n_out = ops.conv2d, w_shape[0]
        arrays = [rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(n_out)]
        results = {}
        for name in ("numpy", "cupy"):
            sg.set_backend(name)
            try:
                ts = [f64(a) for a in arrays]
                y = op(*ts, **kw)
                assert y.backend == name
                u = f64(np.random.default_rng(13).standard_normal(y.shape), grad=False)
                (gx,) = sg.grad((y * u).sum(), [ts[0]], create_graph=True)
                first = sg.grad((y * u).sum(), ts)
                second = sg.grad((gx * gx).sum(), ts[1:2])  # double backprop: the weight through the input gradient
                results[name] = [y.numpy()] + [g.numpy() for g in first] + [g.numpy() for g in second]
            finally:
                sg.set_backend("numpy")
        for a, b in zip(results["cupy"], results["numpy"]):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.gpu
@needs_gpu
def test_cupy_float32_conv_gan_layers_equal_numpy():
    rng = np.random.default_rng(14)
    x = rng.standard_normal((8, 16, 7, 7)).astype(np.float32)
    w = (rng.standard_normal((16, 8, 4, 4)) * 0.1).astype(np.float32)
    w2 = (rng.standard_normal((4, 8, 4, 4)) * 0.1).astype(np.float32)
    out = {}
    for name in ("numpy", "cupy"):
        sg.set_backend(name)
        try:
            tx, tw, tw2 = (sg.Tensor(a, requires_grad=True) for a in (x, w, w2))
            y = ops.conv2d(ops.conv_transpose2d(tx, tw, stride=2, padding=1), tw2, stride=2, padding=1)
            y.sum().backward()
            out[name] = [y.numpy(), tx.grad.numpy(), tw.grad.numpy(), tw2.grad.numpy()]
        finally:
            sg.set_backend("numpy")
    for a, b in zip(out["cupy"], out["numpy"]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_conv_outputs_and_flatten_gradient_are_dense_channels_last(backend):
    """The layouts the fast paths rely on: conv outputs are dense channels-last arrays (NCHW views of
    NHWC memory, cropped output included), and a flatten's gradient comes back in its input's layout, so
    that the elementwise rules between them read both operands in the same order."""
    with sg.reference_mode(False):  # the accelerations' layouts (also under SCRATCHGAN_REFERENCE=1)
        rng = np.random.default_rng(6)
        x = sg.Tensor(rng.standard_normal((3, 4, 5, 5)), requires_grad=True)
        w = sg.Tensor(rng.standard_normal((4, 6, 4, 4)))
        y = ops.conv_transpose2d(x, w, stride=2, padding=1)  # (3, 6, 10, 10): a crop of the padded result
        assert y.data.transpose(0, 2, 3, 1).flags.c_contiguous
        z = ops.conv2d(y, sg.Tensor(rng.standard_normal((5, 6, 3, 3))), stride=2, padding=1)
        assert z.data.transpose(0, 2, 3, 1).flags.c_contiguous
        h = ops.leaky_relu(z, 0.2)
        flat = ops.reshape(h, (3, -1))  # NCHW order: a copy of the channels-last memory
        (g,) = sg.grad(ops.sum(flat * sg.Tensor(rng.standard_normal(flat.shape))), [h])
        assert g.data.strides == h.data.strides
