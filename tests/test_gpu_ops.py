"""The ops and layers under CuPy's rules: the faults issue 23 found in them, one test (or more) each.

These run on the CuPy backend only: in CI on the strict CPU stand-in
(``PYTHONPATH=tests/cupy_standin python -m pytest -m gpu``), and on a GPU
when there is one. The tests that count transfers or memory read
``cupy.standin.counts()`` and skip on a real GPU.

* fault 5 (silent wrong results): CuPy wraps an out-of-range integer index
  instead of raising, so ``getitem``, ``index_add_zeros``, ``nn.Embedding``
  and ``nn.CrossEntropyLoss`` check their index arrays, with at most one small
  read, none for indices vouched for with ``backend.vouch_indices``;
* fault 6 (memory): the GPU convolution builds its columns a chunk of samples
  at a time, never the whole batch's;
* fault 3 (capture, the ops' part): spectral norm's power iteration, NumPy
  scalar operands, dropout, the embedding's and the cross-entropy's index
  checks inside a captured CUDA graph.
"""

from __future__ import annotations

import numpy as np
import pytest

import scratchgan as sg
from scratchgan import backend, nn, ops
from scratchgan.accel import cuda_graph
from scratchgan.backend.device_rng import DeviceGenerator

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not sg.cupy_available(), reason="needs CuPy (or its stand-in)")]


def counter(cupy):
    """``cupy.standin``'s counters module, or skip (a real CuPy counts nothing)."""
    if not getattr(cupy, "IS_STANDIN", False):
        pytest.skip("counts transfers and memory: needs the CuPy stand-in")
    return cupy.standin


def device(cupy, values, dtype=np.int64):
    return cupy.asarray(np.asarray(values, dtype=dtype))


# --------------------------------------------------------------------------- fault 5: out-of-range indices


@pytest.mark.parametrize("make_index", [
    lambda cp: [0, 3],  # a list: checked on the host before the upload
    lambda cp: np.array([0, 3]),  # a host array
    lambda cp: device(cp, [0, 3]),  # a device array: checked on the device
    lambda cp: sg.Tensor(device(cp, [-4])),  # a Tensor; NumPy's negative range is [-3, 0)
    lambda cp: (device(cp, [0, 1]), device(cp, [0, 2])),  # the second axis has 2 entries
], ids=["list", "host", "device", "negative", "second-axis"])
def test_getitem_raises_for_an_out_of_range_index_as_numpy_does(cupy, make_index):
    x = sg.Tensor(np.arange(6.0).reshape(3, 2), requires_grad=True)
    with pytest.raises(IndexError, match="out of range"):
        ops.getitem(x, make_index(cupy))


def test_getitem_in_range_indices_equal_numpy_and_scatter_back(cupy):
    values = np.arange(12.0).reshape(3, 4)
    x = sg.Tensor(values, dtype="float64", requires_grad=True)
    rows, cols = device(cupy, [2, -3, 2, 0]), device(cupy, [-1, 0, 3, 3])
    y = x[rows, cols]
    np.testing.assert_array_equal(y.numpy(), values[[2, -3, 2, 0], [-1, 0, 3, 3]])
    (y * sg.Tensor(np.array([1.0, 2.0, 3.0, 4.0]), dtype="float64")).sum().backward()
    expected = np.zeros((3, 4))
    np.add.at(expected, ([2, -3, 2, 0], [-1, 0, 3, 3]), [1.0, 2.0, 3.0, 4.0])
    np.testing.assert_array_equal(x.grad.numpy(), expected)  # -3 and 0 are the same row: both add up there


def test_index_checks_read_once_and_not_at_all_when_vouched(cupy):
    stand_in = counter(cupy)
    x = sg.Tensor(np.arange(12.0).reshape(3, 4))
    rows, cols = device(cupy, [0, 2]), device(cupy, [1, 3])
    stand_in.reset()
    x[rows, cols]
    assert stand_in.counts()["device_to_host"] == 1  # both arrays in one read
    backend.vouch_indices(rows, 3)
    backend.vouch_indices(cols, 4)
    stand_in.reset()
    x[rows, cols]
    assert stand_in.counts()["device_to_host"] == 0
    backend.vouch_indices(cols, 5)  # a bound larger than the axis vouches for nothing here
    stand_in.reset()
    x[rows, cols]
    assert stand_in.counts()["device_to_host"] == 1


def test_index_add_zeros_raises_for_an_out_of_range_index(cupy):
    values = sg.Tensor(np.ones(2))
    with pytest.raises(IndexError, match="index 4 is out of range"):
        ops.index_add_zeros(values, device(cupy, [1, 4]), (4,))
    out = ops.index_add_zeros(values, device(cupy, [1, 1]), (4,))
    np.testing.assert_array_equal(out.numpy(), [0.0, 2.0, 0.0, 0.0])


@pytest.mark.parametrize("bad", [4, -1])
def test_embedding_raises_for_an_out_of_range_device_index(cupy, bad):
    emb = nn.Embedding(4, 3, rng=0)
    with pytest.raises(IndexError, match=rf"index {bad} is out of range for 4 embeddings"):
        emb(sg.Tensor(device(cupy, [1, bad])))


def test_embedding_reads_once_or_never_and_scatters_into_the_right_rows(cupy):
    stand_in = counter(cupy)
    emb = nn.Embedding(4, 3, rng=0)
    idx = device(cupy, [3, 0, 3])
    stand_in.reset()
    out = emb(idx)
    assert stand_in.counts()["device_to_host"] == 1  # was two (min and max)
    stand_in.reset()
    out = emb(backend.vouch_indices(idx, 4))
    assert stand_in.counts()["device_to_host"] == 0
    (out * sg.Tensor(np.arange(9.0).reshape(3, 3), dtype="float32")).sum().backward()
    np.testing.assert_array_equal(emb.weight.grad.numpy(), [[3, 4, 5], [0, 0, 0], [0, 0, 0], [0 + 6, 1 + 7, 2 + 8]])


def test_cross_entropy_loss_checks_device_labels_with_one_read_and_means_without_one(cupy):
    stand_in = counter(cupy)
    logits = sg.Tensor(np.random.default_rng(0).standard_normal((4, 3)), dtype="float64", requires_grad=True)
    loss_fn = nn.CrossEntropyLoss(ignore_index=-1)
    with pytest.raises(ValueError, match="found 3"):
        loss_fn(logits, device(cupy, [0, 3, 1, 2]))
    labels = device(cupy, [0, -1, 1, 2])
    stand_in.reset()
    loss = loss_fn(logits, labels)
    assert stand_in.counts()["device_to_host"] == 1  # the range check; the mean's count stays on the device
    z = logits.numpy()
    log_p = z - z.max(axis=1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(loss.item(), -np.mean([log_p[0, 0], log_p[2, 1], log_p[3, 2]]), rtol=1e-12)
    stand_in.reset()
    loss_fn(logits, backend.vouch_indices(device(cupy, [0, 2, 1, 2]), 3))
    assert stand_in.counts()["device_to_host"] == 0
    assert np.isnan(loss_fn(logits, device(cupy, [-1, -1, -1, -1])).item())  # every target ignored: NaN


# --------------------------------------------------------------------------- fault 6: bounded conv memory


def test_gpu_convolution_works_in_bounded_memory_at_batch_256(cupy, accelerations_on):
    """The input and kernel of DCGAN's 64 -> 128 layer (4x4, stride 2, padding 1, 32x32 inputs) at batch 256.

    Its column matrix would be 256 MiB (kh·kw/s² = 4 times the 64 MiB input,
    whatever the output channels; 16 here keep the CPU's arithmetic small). A
    forward and backward must stay within the arrays they make (output, input
    gradient) plus a few chunks of columns (32 MiB each): 132 MiB above the
    inputs, where the whole-batch columns took 404 MiB.
    """
    stand_in = counter(cupy)
    rng = np.random.default_rng(0)
    mib = 1 << 20
    x = sg.Tensor(rng.standard_normal((256, 64, 32, 32), dtype=np.float32), requires_grad=True)  # 64 MiB
    w = sg.Tensor(rng.standard_normal((16, 64, 4, 4), dtype=np.float32) * 0.02, requires_grad=True)
    u = sg.Tensor(rng.standard_normal((256, 16, 16, 16), dtype=np.float32))  # the upstream gradient
    stand_in.reset()
    base = stand_in.counts()["live_bytes"]
    y = ops.conv2d(x, w, stride=2, padding=1)
    y.backward(u)  # x.grad: 64 MiB
    peak = stand_in.counts()["peak_bytes"] - base
    kept = y.data.nbytes + x.grad.data.nbytes  # 68 MiB
    assert peak <= kept + 96 * mib, f"peak {peak / mib:.0f} MiB above the {base / mib:.0f} MiB of inputs"


# --------------------------------------------------------------------------- fault 3: captured steps


def replayed_equals_eager(step, twin_step, replays=2):
    """Capture ``step`` (one rehearsal), replay it ``replays`` times; ``twin_step`` runs the same steps eagerly.

    Each step returns a list of tensors; compares the last replay's with the
    last eager call's (the rehearsal is a real step: the twin runs it too).
    """
    captured = cuda_graph.capture(step, warmup=1)
    for _ in range(replays):
        outputs = captured()
    for _ in range(replays + 1):
        expected = twin_step()
    for got, want in zip(outputs, expected):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-6)


def test_capture_of_a_spectral_norm_layer_step(cupy):
    """Power iteration (``W^T u``, ``W v``, norms) inside a captured step: no cuBLAS call through CuPy."""
    def make():
        layer = nn.utils.spectral_norm(nn.Linear(5, 4, rng=0), rng=1)
        x = sg.Tensor(np.random.default_rng(2).standard_normal((3, 5)), dtype="float32")

        def step():
            layer.weight_orig.grad = None
            layer(x).sum().backward()
            return [sg.as_tensor(layer.weight_u), sg.as_tensor(layer.weight_v), layer.weight_orig.grad]
        return step
    replayed_equals_eager(make(), make())


def test_capture_of_batched_and_vector_products(cupy):
    def make():
        rng = np.random.default_rng(3)
        a = sg.Tensor(rng.standard_normal((2, 3, 4)), requires_grad=True)
        b = sg.Tensor(rng.standard_normal((2, 4, 5)), requires_grad=True)
        v = sg.Tensor(rng.standard_normal(4), requires_grad=True)

        def step():
            a.grad = b.grad = v.grad = None
            (ops.matmul(a, b).sum() + ops.matmul(a, v).sum() + ops.matmul(v, b).sum()).backward()
            with sg.no_grad():
                a.data[...] -= 0.1 * a.grad.data  # the next step differs from this one
            return [a.grad, b.grad, v.grad]
        return step
    replayed_equals_eager(make(), make())


def test_capture_with_numpy_scalar_operands(cupy):
    """``x * np.float32(0.5)``: the scalar is a kernel argument, not an array copied to the device."""
    def make():
        x = sg.Tensor(np.linspace(-1.0, 1.0, 6, dtype=np.float32), requires_grad=True)

        def step():
            x.grad = None
            (x * np.float32(0.5) + np.float32(2.0) * x * x - np.int64(1)).sum().backward()
            with sg.no_grad():
                x.data[...] -= 0.1 * x.grad.data
            return [x, x.grad]
        return step
    replayed_equals_eager(make(), make())


def test_capture_of_a_conv_step(cupy):
    def make():
        rng = np.random.default_rng(4)
        x = sg.Tensor(rng.standard_normal((2, 3, 6, 6), dtype=np.float32))
        g = nn.ConvTranspose2d(3, 4, 4, stride=2, padding=1, rng=5)
        d = nn.Conv2d(4, 2, 4, stride=2, padding=1, rng=6)

        def step():
            g.zero_grad()
            d.zero_grad()
            d(g(x)).sum().backward()
            return [g.weight.grad, d.weight.grad, d.bias.grad]
        return step
    replayed_equals_eager(make(), make())


def test_dropout_in_a_captured_step_draws_on_the_device_or_is_refused_by_name(cupy):
    x = sg.Tensor(np.ones((4, 8), dtype=np.float32), requires_grad=True)
    host_drawn = nn.Dropout(0.5, rng=0)
    with pytest.raises(backend.CaptureError, match="Dropout"):
        cuda_graph.capture(lambda: [host_drawn(x)], warmup=1)
    device_drawn = nn.Dropout(0.5, rng=DeviceGenerator(0))
    captured = cuda_graph.capture(lambda: [device_drawn(x)], warmup=1)
    first = captured()[0].numpy().copy()
    second = captured()[0].numpy()
    assert set(np.unique(first)) <= {0.0, 2.0} and 0 < (first == 0).sum() < first.size
    assert not np.array_equal(first, second)  # the counter lives on the device: each replay draws anew


def test_embedding_in_a_captured_step_needs_vouched_indices(cupy):
    emb = nn.Embedding(10, 3, rng=0)
    labels = device(cupy, [1, 9, 4])
    with pytest.raises(backend.CaptureError, match="range check of Embedding"):
        cuda_graph.capture(lambda: [emb(labels)], warmup=1)
    backend.vouch_indices(labels, 10)
    captured = cuda_graph.capture(lambda: [emb(labels)], warmup=1)
    np.testing.assert_array_equal(captured()[0].numpy(), emb.weight.numpy()[[1, 9, 4]])


def test_cross_entropy_loss_in_a_captured_step_with_vouched_labels(cupy):
    logits = sg.Tensor(np.random.default_rng(7).standard_normal((3, 10)), requires_grad=True)
    labels = backend.vouch_indices(device(cupy, [1, 9, 4]), 10)
    loss_fn = nn.CrossEntropyLoss()
    captured = cuda_graph.capture(lambda: [loss_fn(logits, labels)], warmup=1)
    with sg.no_grad():
        expected = loss_fn(logits.to_backend("numpy"), np.array([1, 9, 4]))
    np.testing.assert_allclose(captured()[0].item(), expected.item(), rtol=1e-6)


def test_adam_state_dict_reads_each_parameters_device_step_count(cupy):
    """Adam keeps its step counts on the device (for captured steps); state_dict reads them back, in order."""
    p, q = (sg.Tensor(np.ones(3, dtype=np.float32), requires_grad=True) for _ in range(2))
    opt = sg.optim.Adam([p, q], lr=0.1)
    p.grad, q.grad = sg.ones(3), sg.ones(3)
    opt.step()
    q.grad = None  # q skips the second step: its own count stays 1
    opt.step()
    assert [opt.state_dict()["state"][k]["step"] for k in ("0", "1")] == [2, 1]


# --------------------------------------------------------------------------- the ops' fused kernels (issue 24)


def test_the_ops_fused_kernels_run_and_equal_the_definitions(cupy, monkeypatch, accelerations_on):
    """linear_relu's bias-and-ReLU kernel (accel/cupy_kernels.py) and ReLU's masked-gradient kernel
    (accel/first_order.py) run on CuPy, give the definitions' bits, and not in reference mode."""
    from scratchgan.accel import kernels
    calls = []
    for name in ("bias_relu_", "relu_grad"):
        real = getattr(kernels, name)
        monkeypatch.setattr(kernels, name, lambda *args, _real=real, _name=name: (calls.append(_name), _real(*args))[1])
    rng = np.random.default_rng(8)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in [(5, 4), (4, 6), (6,), (6, 3)]]

    def step():
        x, w, b, w2 = (sg.Tensor(a, requires_grad=True) for a in arrays)
        y = ops.relu(ops.matmul(ops.linear_relu(x, w, b), w2))
        y.backward(sg.Tensor(np.linspace(-1, 1, 15, dtype=np.float32).reshape(5, 3)))
        return [y.numpy()] + [t.grad.numpy() for t in (x, w, b, w2)]

    with sg.reference_mode():
        want = step()
    assert calls == []
    got = step()
    assert sorted(set(calls)) == ["bias_relu_", "relu_grad"] and calls.count("relu_grad") == 2
    for g, r in zip(got, want):
        np.testing.assert_array_equal(g, r)
