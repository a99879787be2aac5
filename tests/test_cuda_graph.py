"""CUDA-graph capture and the fused CuPy kernels.

The GPU tests skip without CuPy; the CPU tests check what can be checked
anywhere: the argument errors, and that the NumPy reference of the fused Adam
kernel is exactly the optimizer's own NumPy update (so comparing the kernel
with the reference on a GPU compares it with ``optim.Adam``).
"""

from __future__ import annotations

import numpy as np
import pytest

import scratchgan as sg
from scratchgan import backend, nn, optim
from scratchgan.accel import cuda_graph, kernels
from scratchgan.gan import losses

# the CUDA-graph support is an acceleration (scratchgan/accel): these tests run with the accelerations on, also under
# SCRATCHGAN_REFERENCE=1, where capturing Adam's definition is refused (test_gpu_ops.py)
pytestmark = pytest.mark.usefixtures("accelerations_on")

needs_gpu = pytest.mark.skipif(not sg.cupy_available(), reason="needs CuPy and a GPU")


# --------------------------------------------------------------------------- anywhere


def test_capture_on_numpy_says_it_needs_cupy():
    with pytest.raises(RuntimeError, match="needs the cupy backend"):
        cuda_graph.capture(lambda: None)


@pytest.mark.parametrize("warmup", [0, -1, 1.5, True, "3"])
def test_capture_rejects_bad_warmup(warmup):
    with pytest.raises(ValueError, match="warmup must be an int >= 1"):
        cuda_graph.capture(lambda: None, warmup=warmup)


def test_capture_rejects_non_callable():
    with pytest.raises(TypeError, match="must be callable"):
        cuda_graph.capture(42)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_adam_kernel_reference_is_the_optimizer_update(dtype, weight_decay):
    """The kernel's arithmetic, written with NumPy, gives bitwise Adam's NumPy update over 5 steps."""
    rng = np.random.default_rng(0)
    p = sg.Tensor(rng.standard_normal((7, 5)), dtype=dtype, requires_grad=True)
    opt = optim.Adam([p], lr=3e-3, betas=(0.5, 0.99), eps=1e-8, weight_decay=weight_decay)
    ref_p, ref_m, ref_v = p.data.copy(), np.zeros_like(p.data), np.zeros_like(p.data)
    for t in range(1, 6):
        g = rng.standard_normal((7, 5)).astype(dtype)
        p.grad = sg.Tensor(g, dtype=dtype)
        opt.step()
        kernels.adam_update_reference(ref_p, g, ref_m, ref_v, t, 3e-3, 0.5, 0.99, 1e-8, weight_decay)
        np.testing.assert_array_equal(ref_p, p.data)
        np.testing.assert_array_equal(ref_m, opt.state[0]["exp_avg"])
        np.testing.assert_array_equal(ref_v, opt.state[0]["exp_avg_sq"])


def _column_major_gemm(op_a, op_b, m, n, k, a_mem, lda, b_mem, ldb, ldc):
    """What cuBLAS's gemm computes, emulated: column-major C (m, n) = op(A) op(B), ld = leading dimension."""

    def view(mem, rows, cols, ld):  # element (i, j) of a column-major matrix at mem[i + j * ld]
        return np.lib.stride_tricks.as_strided(mem, shape=(rows, cols), strides=(mem.itemsize, ld * mem.itemsize))

    A = view(a_mem, *((m, k) if op_a == 0 else (k, m)), lda)
    B = view(b_mem, *((k, n) if op_b == 0 else (n, k)), ldb)
    c = np.zeros(ldc * n, dtype=a_mem.dtype)
    view(c, m, n, ldc)[...] = (A if op_a == 0 else A.T) @ (B if op_b == 0 else B.T)
    return c


@pytest.mark.parametrize("layout", ["NN", "NT", "TN", "TT"])
@pytest.mark.parametrize("shape", [(5, 3, 4), (1, 3, 4), (5, 1, 4), (5, 3, 1)])
def test_gemm_operands_give_the_row_major_product(layout, shape):
    """The (operation, leading dimension) choices of the capture-time GEMM, checked on the CPU.

    Row-major ``a @ b`` must come out of one column-major GEMM over the
    operands' raw memory, for C-contiguous operands and for transposed views.
    """
    m, k, n = shape
    rng = np.random.default_rng(0)
    a = rng.standard_normal((k, m)).T if layout[0] == "T" else rng.standard_normal((m, k))
    b = rng.standard_normal((n, k)).T if layout[1] == "T" else rng.standard_normal((k, n))
    op_b, ld_b = backend.gemm_operand(b)
    op_a, ld_a = backend.gemm_operand(a)
    memory = [np.ravel(x, order="K") for x in (b, a)]  # the buffers as they lie in memory
    c = _column_major_gemm(op_b, op_a, n, m, k, memory[0], ld_b, memory[1], ld_a, ldc=n)
    np.testing.assert_allclose(c.reshape(m, n), a @ b, rtol=1e-12)


def test_gemm_operand_refuses_strided_views():
    assert backend.gemm_operand(np.zeros((6, 6))[::2, ::2]) is None


# --------------------------------------------------------------------------- GPU


@pytest.fixture
def cupy_backend(cupy):
    return cupy  # the conftest's fixture: the cupy backend active for the test


@needs_gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("layout", ["NN", "NT", "TN", "TT", "outer", "vector"])
def test_capture_gemm_matches_cupy_matmul(cupy_backend, dtype, layout):
    cp = cupy_backend
    rng = np.random.default_rng(1)
    m, k, n = 33, 17, 9
    if layout == "outer":
        m, k, n = 33, 1, 9
    if layout == "vector":
        m, k, n = 33, 17, 1

    def operand(rows, cols, transposed):
        host = rng.standard_normal((cols, rows) if transposed else (rows, cols)).astype(dtype)
        arr = cp.asarray(host)
        return arr.T if transposed else arr  # a transposed view is F-contiguous, as in the backward rules

    a = operand(m, k, layout in ("TN", "TT"))
    b = operand(k, n, layout in ("NT", "TT"))
    expected = cp.asnumpy(cp.matmul(a, b))
    got = cp.asnumpy(backend._capture_gemm().product(a, b))  # libcublas through ctypes: the capture route
    np.testing.assert_allclose(got, expected, rtol=1e-5 if dtype == "float32" else 1e-12, atol=1e-6)


@needs_gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_adam_kernel_matches_reference(cupy_backend, dtype):
    cp = cupy_backend
    rng = np.random.default_rng(2)
    p = rng.standard_normal(1000).astype(dtype)
    m, v = np.zeros_like(p), np.zeros_like(p)
    dp, dm, dv = cp.asarray(p), cp.asarray(m), cp.asarray(v)
    lr = cp.full((1,), 1e-3, dtype=cp.float64)
    for t in range(1, 4):
        g = rng.standard_normal(1000).astype(dtype)
        kernels.adam_update(dp, cp.asarray(g), dm, dv, cp.full((1,), t, dtype=cp.float64), lr, 0.5, 0.999, 1e-8, 0.01)
        kernels.adam_update_reference(p, g, m, v, t, 1e-3, 0.5, 0.999, 1e-8, 0.01)
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(cp.asnumpy(dp), p, rtol=tol, atol=tol)
    np.testing.assert_allclose(cp.asnumpy(dv), v, rtol=tol, atol=tol)


@needs_gpu
def test_relu_grad_kernel(cupy_backend):
    cp = cupy_backend
    x = cp.asarray(np.linspace(-2, 2, 101, dtype=np.float32))
    g = cp.asarray(np.arange(101, dtype=np.float32))
    np.testing.assert_array_equal(cp.asnumpy(kernels.relu_grad(g, x)), cp.asnumpy(g * (x > 0)))


def _tiny_gan(seed):
    rng = np.random.default_rng(seed)
    G = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 6), nn.Tanh())
    D = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 1))
    for p in list(G.parameters()) + list(D.parameters()):
        p.data[...] = backend.asarray(rng.uniform(-0.3, 0.3, p.shape).astype(np.float32))
    return G, D, optim.Adam(G.parameters(), lr=2e-3, betas=(0.5, 0.999)), optim.Adam(D.parameters(), lr=2e-3,
                                                                                       betas=(0.5, 0.999))


def _make_step(G, D, opt_g, opt_d, real, z_d, z_g):
    def step():
        with sg.no_grad():
            fake = G(z_d)
        opt_d.zero_grad()
        loss_d = losses.d_loss("ns", D(real), D(fake))
        loss_d.backward()
        opt_d.step()
        opt_g.zero_grad()
        loss_g = losses.g_loss("ns", D(G(z_g)))
        loss_g.backward()
        opt_g.step()
        return loss_d, loss_g
    return step


@needs_gpu
def test_captured_step_matches_eager_steps(cupy_backend):
    cp = cupy_backend
    rng = np.random.default_rng(3)
    batches = [(rng.uniform(-1, 1, (8, 6)), rng.standard_normal((8, 4)), rng.standard_normal((8, 4)))
               for _ in range(12)]
    warmup, replays = 2, 10

    eager = _tiny_gan(0)
    real, z_d, z_g = (sg.zeros((8, 6)), sg.zeros((8, 4)), sg.zeros((8, 4)))
    eager_step = _make_step(*eager, real, z_d, z_g)
    captured_model = _tiny_gan(0)
    c_real, c_zd, c_zg = (sg.zeros((8, 6)), sg.zeros((8, 4)), sg.zeros((8, 4)))
    c_step = _make_step(*captured_model, c_real, c_zd, c_zg)

    def feed(buffers, batch):
        for buf, host in zip(buffers, batch):
            buf.data[...] = cp.asarray(host.astype(np.float32))

    # the warmup steps of capture() see the first batch each time: the eager twin does the same. Recording the
    # capture runs nothing (on a GPU as in the stand-in), so the twin takes exactly `warmup` steps here
    feed((c_real, c_zd, c_zg), batches[0])
    captured = cuda_graph.capture(c_step, warmup=warmup)
    feed((real, z_d, z_g), batches[0])
    for _ in range(warmup):
        eager_step()
    for batch in batches[1:1 + replays]:
        feed((real, z_d, z_g), batch)
        loss_d, loss_g = eager_step()
        feed((c_real, c_zd, c_zg), batch)
        c_loss_d, c_loss_g = captured()
        np.testing.assert_allclose(float(c_loss_d.data), float(loss_d.data), rtol=1e-4)
        np.testing.assert_allclose(float(c_loss_g.data), float(loss_g.data), rtol=1e-4)
    G, D = eager[0], eager[1]
    cG, cD = captured_model[0], captured_model[1]
    for a, b in zip(list(G.parameters()) + list(D.parameters()), list(cG.parameters()) + list(cD.parameters())):
        np.testing.assert_allclose(cp.asnumpy(b.data), cp.asnumpy(a.data), rtol=1e-4, atol=1e-6)
    # the true step counts come back from the GPU
    assert captured_model[2].state_dict()["state"]["0"]["step"] == warmup + replays
    assert captured.replays == replays


@needs_gpu
def test_lr_set_between_replays_reaches_the_graph(cupy_backend):
    cp = cupy_backend
    G, D, opt_g, opt_d = _tiny_gan(1)
    real, z_d, z_g = sg.zeros((8, 6)), sg.zeros((8, 4)), sg.zeros((8, 4))
    captured = cuda_graph.capture(_make_step(G, D, opt_g, opt_d, real, z_d, z_g), warmup=1)
    opt_g.lr = 0.0
    opt_d.lr = 0.0
    before = [cp.asnumpy(p.data) for p in list(G.parameters()) + list(D.parameters())]
    captured()
    after = [cp.asnumpy(p.data) for p in list(G.parameters()) + list(D.parameters())]
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)


@needs_gpu
def test_capturing_adams_definition_in_reference_mode_is_refused(cupy_backend):
    """Reference mode runs Adam's definition, whose step count and learning rate live on the host: a graph
    would replay the captured ones, so the capture is refused with what to do (and no step is half-recorded)."""
    G, D, opt_g, opt_d = _tiny_gan(1)
    real, z_d, z_g = sg.zeros((8, 6)), sg.zeros((8, 4)), sg.zeros((8, 4))
    with sg.reference_mode():
        with pytest.raises(RuntimeError, match="Adam in reference mode .* capture the step outside reference mode"):
            cuda_graph.capture(_make_step(G, D, opt_g, opt_d, real, z_d, z_g), warmup=1)


@needs_gpu
def test_host_read_inside_capture_is_explained(cupy_backend):
    x = sg.ones((4,))

    def step():
        return float((x * 2).sum().data)  # a device-to-host copy: not capturable

    with pytest.raises(RuntimeError, match="must not read values back to the host"):
        cuda_graph.capture(step, warmup=1)
    assert not backend._capturing


@needs_gpu
def test_capturing_flag_is_cleared_when_begin_capture_fails(cupy_backend, monkeypatch):
    """The flag that routes products to the capture GEMM is set inside the try, after begin_capture."""
    def refuse(self, mode=None):
        raise RuntimeError("cudaErrorStreamCaptureUnsupported")

    monkeypatch.setattr(cupy_backend.cuda.Stream, "begin_capture", refuse)
    x = sg.ones((4, 4))
    with pytest.raises(RuntimeError, match="cudaErrorStreamCaptureUnsupported"):
        cuda_graph.capture(lambda: x @ x, warmup=1)
    assert not backend._capturing


@needs_gpu
def test_a_host_read_through_the_backend_is_refused_before_the_capture(cupy_backend):
    """scratchgan's own host reads name themselves in the rehearsal: nothing is recorded, the message says what."""
    x = sg.ones((4,))
    calls = []

    def step():
        calls.append(1)
        return backend.host_scalar((x * 2).sum().data, "the test's loss check")

    with pytest.raises(backend.CaptureError, match="nothing was recorded: the test's loss check reads a "
                                                   "value back to the host"):
        cuda_graph.capture(step, warmup=2)
    assert len(calls) == 2 and not backend.is_capturing()


@needs_gpu
@pytest.mark.parametrize("shapes", [((5,), (5, 3)), ((4, 5), (5,)), ((5,), (5,)), ((2, 4, 5), (5, 3)),
                                    ((2, 4, 5), (2, 5, 3)), ((4, 5), (3, 5, 2))])
def test_products_of_any_rank_are_captured(cupy_backend, shapes):
    """1-D and batched products inside a capture (CuPy's matmul would call cuBLAS and be refused)."""
    cp = cupy_backend
    rng = np.random.default_rng(4)
    a = sg.Tensor(rng.standard_normal(shapes[0]), dtype="float64", requires_grad=True)
    b = sg.Tensor(rng.standard_normal(shapes[1]), dtype="float64", requires_grad=True)
    out = {}

    def step():
        a.grad = b.grad = None
        y = a @ b
        y.sum().backward()
        out["y"] = y
        return y

    captured = cuda_graph.capture(step, warmup=1)
    a.data[...] = cp.asarray(rng.standard_normal(shapes[0]))
    captured()
    # the reference: the same product and gradient on the NumPy backend
    ref_a = sg.Tensor(cp.asnumpy(a.data), dtype="float64", requires_grad=True).to_backend("numpy")
    ref_b = sg.Tensor(cp.asnumpy(b.data), dtype="float64", requires_grad=True).to_backend("numpy")
    ref_y = ref_a @ ref_b
    ref_y.sum().backward()
    np.testing.assert_allclose(cp.asnumpy(captured.outputs.data), ref_y.data, rtol=1e-12)
    np.testing.assert_allclose(cp.asnumpy(a.grad.data), ref_a.grad.data, rtol=1e-12)
    np.testing.assert_allclose(cp.asnumpy(b.grad.data), ref_b.grad.data, rtol=1e-12)


def _benchmark(name):
    import importlib
    import sys
    from pathlib import Path

    folder = str(Path(__file__).resolve().parents[1] / "benchmarks")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return importlib.import_module(name)


def _replay_against_eager(cp, make_model, inputs_for, shapes, parameters, warmup, replays):
    """A captured step (gan_step.ScratchganGraphed: ``warmup`` eager calls, the capture, then replays) against
    the same number of eager steps from the same start; returns the largest relative parameter difference."""
    gan_step = _benchmark("gan_step")
    eager, graphed = make_model(), gan_step.ScratchganGraphed(make_model(), shapes, warmup=warmup)
    eager_inputs, graphed_inputs = inputs_for(), inputs_for()
    first = eager_inputs.next()
    for _ in range(warmup + 1):  # the graphed model's first call: `warmup` eager steps and one replay, one batch
        eager.step(*first)
    graphed.step(*graphed_inputs.next())
    for _ in range(replays):
        eager.step(*eager_inputs.next())
        graphed.step(*graphed_inputs.next())
    assert graphed.captured.replays == replays + 1
    worst = 0.0
    for a, b in zip(parameters(eager), parameters(graphed)):
        a, b = cp.asnumpy(a), cp.asnumpy(b)
        assert np.isfinite(b).all()
        worst = max(worst, float(np.abs(a - b).max() / (np.abs(a).max() + 1e-12)))
    return worst


@needs_gpu
def test_captured_reference_mlp_step_replays_to_the_eager_parameters(cupy_backend):
    """gan_step.py's reference MLP step (NS loss, Adam), captured after 3 eager steps, against eager steps."""
    cp = cupy_backend
    gan_step = _benchmark("gan_step")
    from handwritten import D_SIZES, G_SIZES, init_params

    rng = np.random.default_rng(0)
    g_params, d_params = init_params(G_SIZES, rng), init_params(D_SIZES, rng)
    batch = 16
    shapes = [(batch, G_SIZES[-1]), (batch, G_SIZES[0]), (batch, G_SIZES[0])]
    worst = _replay_against_eager(cp, lambda: gan_step.ScratchganGAN(g_params, d_params),
                                  lambda: gan_step.Inputs(batch, cp, cp.asarray, seed=1), shapes,
                                  lambda m: m.parameters(), warmup=3, replays=4)
    assert worst < 1e-6, worst  # the same float32 arithmetic in a different order at most


@needs_gpu
def test_captured_reference_dcgan_step_replays_to_the_eager_parameters(cupy_backend):
    """dcgan_step.py's reference DCGAN step (conv, transposed conv, batch norm, Adam), captured and replayed."""
    cp = cupy_backend
    dcgan_step = _benchmark("dcgan_step")
    batch = 4
    worst = _replay_against_eager(cp, lambda: dcgan_step.ScratchganDCGAN(0),
                                  lambda: dcgan_step.Inputs(batch, cp.asarray, seed=1),
                                  dcgan_step._input_shapes(batch),
                                  lambda m: [p.data for p in (m.model if hasattr(m, "model") else m).G.parameters()]
                                  + [p.data for p in (m.model if hasattr(m, "model") else m).D.parameters()],
                                  warmup=2, replays=2)
    assert worst < 1e-5, worst
