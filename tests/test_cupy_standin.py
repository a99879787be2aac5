"""The CuPy stand-in's own rules: each one violated on purpose, and the stand-in catching it.

These run in the stand-in pass (``PYTHONPATH=tests/cupy_standin python -m
pytest -m gpu``) and skip elsewhere, real CuPy included: they test the
stand-in, not CuPy.
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

try:
    import cupy
except ImportError:  # the NumPy pass
    cupy = None

STANDIN = Path(__file__).parent / "cupy_standin"
pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not getattr(cupy, "IS_STANDIN", False), reason="tests of the CuPy stand-in itself")]


@pytest.fixture(autouse=True)
def fresh_counts():
    if cupy is not None:
        cupy.standin.reset()


def _capture(fn):
    """Record ``fn()`` on a fresh stream; returns (graph, what fn returned)."""
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        stream.begin_capture()
        try:
            result = fn()
        finally:
            graph = None
            try:
                graph = stream.end_capture()
            except RuntimeError:
                pass
    return graph, result


# --------------------------------------------------------------------------- the host, reached explicitly

def test_an_array_is_not_a_numpy_array_and_refuses_implicit_conversion():
    x = cupy.zeros(3)
    assert not isinstance(x, np.ndarray)
    with pytest.raises(TypeError, match="Implicit conversion to a NumPy array is not allowed"):
        np.asarray(x)
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.array(x)


@pytest.mark.parametrize("read", [lambda x: x.get(), lambda x: cupy.asnumpy(x), lambda x: x[0].item(),
                                  lambda x: float(x[0]), lambda x: int(x[0]), lambda x: bool(x[0]),
                                  lambda x: x.tolist(), lambda x: repr(x)])
def test_every_host_read_counts_one_device_to_host_copy(read):
    x = cupy.arange(3)
    cupy.standin.reset()
    read(x)
    assert cupy.standin.counts()["device_to_host"] == 1


@pytest.mark.parametrize("upload", [lambda: cupy.asarray(np.ones(3)), lambda: cupy.array([1.0, 2.0]),
                                    lambda: cupy.zeros(3).__setitem__(slice(None), np.ones(3))])
def test_every_upload_counts_one_host_to_device_copy(upload):
    cupy.standin.reset()
    upload()
    assert cupy.standin.counts()["host_to_device"] == 1


def test_scalars_are_kernel_arguments_not_transfers():
    x = cupy.ones(3)
    cupy.standin.reset()
    y = x * 2.0 + np.float32(1.0)
    assert cupy.standin.counts()["host_to_device"] == 0 and cupy.standin.counts()["launches"] == 2
    np.testing.assert_array_equal(y.get(), [3.0, 3.0, 3.0])


# --------------------------------------------------------------------------- operands, results, layouts

@pytest.mark.parametrize("mix", [lambda x: x + np.ones(3), lambda x: np.ones(3) + x, lambda x: cupy.add(x, [1, 2, 3]),
                                 lambda x: cupy.concatenate([x, np.ones(3)]), lambda x: cupy.maximum(x, np.zeros(3))])
def test_numpy_operands_are_refused(mix):
    with pytest.raises(TypeError, match="Unsupported type"):
        mix(cupy.ones(3))


def test_reductions_return_0d_arrays():
    s = cupy.arange(4.0).sum()
    assert isinstance(s, cupy.ndarray) and s.ndim == 0
    assert isinstance(cupy.arange(4.0).max(), cupy.ndarray)


def test_out_of_range_integer_indices_wrap_instead_of_raising():
    x = cupy.asarray(np.arange(5.0))
    idx = cupy.asarray(np.array([0, 5, -1, 7]))
    np.testing.assert_array_equal(x[idx].get(), [0.0, 0.0, 4.0, 2.0])  # NumPy would raise IndexError
    np.testing.assert_array_equal(cupy.take(x, idx).get(), [0.0, 0.0, 4.0, 2.0])
    with pytest.raises(IndexError):
        x[5]  # a host integer is checked on the host, as CuPy does


def test_elementwise_outputs_are_c_contiguous():
    f = cupy.asarray(np.ones((3, 4))).T  # F-contiguous view
    assert f.flags.f_contiguous and not f.flags.c_contiguous
    assert (f * 2).flags.c_contiguous  # NumPy keeps F order here
    assert cupy.exp(f).flags.c_contiguous


def test_empty_is_garbage_not_zeros():
    assert np.isnan(cupy.empty(4).get()).all()


def test_boolean_mask_indexing_reads_the_count_back():
    x = cupy.arange(4.0)
    cupy.standin.reset()
    np.testing.assert_array_equal(x[x > 1].get(), [2.0, 3.0])
    assert cupy.standin.counts()["syncs"] == 1 and cupy.standin.counts()["device_to_host"] == 2


# --------------------------------------------------------------------------- capture

def test_recording_runs_nothing_and_the_graph_replays_it():
    x = cupy.zeros(3)

    def body():
        y = x + 1
        x[...] = y * 2
        return y

    graph, y = _capture(body)
    assert np.isnan(y.get()).all() and (x.get() == 0).all()  # nothing ran
    graph.launch()
    np.testing.assert_array_equal(x.get(), [2.0, 2.0, 2.0])
    graph.launch()
    np.testing.assert_array_equal(x.get(), [6.0, 6.0, 6.0])
    np.testing.assert_array_equal(y.get(), [3.0, 3.0, 3.0])


@pytest.mark.parametrize("forbidden", [
    lambda x: x.get(), lambda x: float(x[0]), lambda x: cupy.asarray(np.ones(2)),
    lambda x: x.__setitem__(slice(None), np.ones(3)), lambda x: cupy.cuda.get_current_stream().synchronize(),
    lambda x: cupy.cuda.runtime.deviceSynchronize(), lambda x: x[x > 0]])
def test_transfers_and_syncs_fail_during_a_capture(forbidden):
    x = cupy.ones(3)
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        stream.begin_capture()
        with pytest.raises(RuntimeError, match="cudaErrorStreamCaptureUnsupported"):
            forbidden(x)
        with pytest.raises(RuntimeError, match="cudaErrorStreamCaptureInvalidated"):
            stream.end_capture()


@pytest.mark.parametrize("call", [lambda x: x @ x, lambda x: cupy.matmul(x, x), lambda x: x.dot(x),
                                  lambda x: cupy.einsum("ij,jk->ik", x, x)])
def test_cupy_products_call_cublas_and_fail_during_a_capture(call):
    x = cupy.ones((2, 2))
    call(x)  # fine outside a capture
    with pytest.raises(NotImplementedError, match="calling cuBLAS API during stream capture"):
        _capture(lambda: call(x))


def test_cupy_random_calls_curand_and_fails_during_a_capture():
    cupy.random.standard_normal((2,))
    with pytest.raises(NotImplementedError, match="cuRAND"):
        _capture(lambda: cupy.random.standard_normal((2,)))


def test_a_graph_launch_is_one_launch():
    x = cupy.zeros(3)
    graph, _ = _capture(lambda: [x.__iadd__(1) for _ in range(5)])
    cupy.standin.reset()
    graph.launch()
    assert cupy.standin.counts()["launches"] == 1
    np.testing.assert_array_equal(x.get(), [5.0, 5.0, 5.0])


# --------------------------------------------------------------------------- cuBLAS

def _column_major_product(a, b):
    """CuPy's wrapper called as cuBLAS wants it: row-major a @ b as column-major C^T = B^T A^T."""
    from cupy_backends.cuda.libs import cublas

    m, k = a.shape
    n = b.shape[1]
    out = cupy.empty((m, n), dtype=cupy.float64)
    one, zero = np.array(1.0), np.array(0.0)
    cublas.dgemm(cupy.cuda.device.get_cublas_handle(), 0, 0, n, m, k, one.ctypes.data, b.data.ptr, n,
                 a.data.ptr, k, zero.ctypes.data, out.data.ptr, n)
    return out


def test_cublas_wrappers_take_pointers_and_compute_the_product():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((4, 3)), rng.standard_normal((3, 5))
    np.testing.assert_allclose(_column_major_product(cupy.asarray(a), cupy.asarray(b)).get(), a @ b, rtol=1e-14)


def test_cublas_wrappers_refuse_floats_for_alpha_and_beta():
    from cupy_backends.cuda.libs import cublas

    x = cupy.ones((2, 2))
    with pytest.raises(TypeError, match="pointer"):
        cublas.dgemm(cupy.cuda.device.get_cublas_handle(), 0, 0, 2, 2, 2, 1.0, x.data.ptr, 2, x.data.ptr, 2, 0.0,
                     x.data.ptr, 2)


def test_cublas_wrappers_refuse_a_capturing_stream():
    x = cupy.ones((2, 2))
    with pytest.raises(NotImplementedError, match="cuBLAS API during stream capture"):
        _capture(lambda: _column_major_product(x, x))


def test_libcublas_through_ctypes_needs_argtypes_and_records_in_a_capture():
    lib = ctypes.CDLL("libcublas.so.12")
    handle = ctypes.c_void_p()
    with pytest.raises(TypeError, match="declare argtypes"):
        lib.cublasCreate_v2(ctypes.byref(handle))
    vp, i, d = ctypes.c_void_p, ctypes.c_int, ctypes.c_double
    lib.cublasCreate_v2.argtypes = [ctypes.POINTER(vp)]
    lib.cublasSetStream_v2.argtypes = [vp, vp]
    lib.cublasDgemm_v2.argtypes = [vp, i, i, i, i, i, ctypes.POINTER(d), vp, i, vp, i, ctypes.POINTER(d), vp, i]
    assert lib.cublasCreate_v2(ctypes.byref(handle)) == 0
    a = cupy.asarray(np.arange(6.0).reshape(2, 3))
    b = cupy.asarray(np.arange(12.0).reshape(3, 4))
    out = cupy.empty((2, 4))
    alpha, beta = d(1.0), d(0.0)

    def gemm():
        lib.cublasSetStream_v2(handle, cupy.cuda.get_current_stream().ptr)
        return lib.cublasDgemm_v2(handle, 0, 0, 4, 2, 3, ctypes.byref(alpha), b.data.ptr, 4, a.data.ptr, 3,
                                  ctypes.byref(beta), out.data.ptr, 4)

    graph, status = _capture(gemm)
    assert status == 0 and np.isnan(out.get()).all()  # recorded, not run
    graph.launch()
    np.testing.assert_array_equal(out.get(), np.arange(6.0).reshape(2, 3) @ np.arange(12.0).reshape(3, 4))
    assert lib.cublasDgemm_v2(handle, 0, 0, 4, 2, 3, ctypes.byref(alpha), b.data.ptr, 1, a.data.ptr, 3,
                              ctypes.byref(beta), out.data.ptr, 4) == 7  # ldb < rows: CUBLAS_STATUS_INVALID_VALUE


def test_a_pointer_outside_device_memory_is_an_illegal_address():
    host = np.ones(4)
    with pytest.raises(RuntimeError, match="cudaErrorIllegalAddress"):
        cupy.standin.array_at(host.ctypes.data, 32)


# --------------------------------------------------------------------------- kernels

def test_elementwise_kernel_runs_its_c_body():
    k = cupy.ElementwiseKernel("T x, float64 s", "T y", "const double h = s * 0.5; y = x > (T)0 ? x * (T)h : (T)0",
                               "scaled_relu")
    x = cupy.asarray(np.array([-1.0, 2.0, 4.0], np.float32))
    y = k(x, 3.0)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y.get(), [0.0, 3.0, 6.0])


def test_elementwise_kernel_type_rules():
    k = cupy.ElementwiseKernel("T a, T b", "T c", "c = a + b", "add2")
    f32, f64 = cupy.ones(2, dtype=np.float32), cupy.ones(2, dtype=np.float64)
    with pytest.raises(TypeError, match="Type is mismatched"):
        k(f32, f64)
    with pytest.raises(TypeError, match="Unsupported type"):
        k(f32, np.ones(2, np.float32))
    with pytest.raises(SyntaxError, match="const"):
        cupy.ElementwiseKernel("T a", "T c", "a = 1; c = a", "write_input")(f32)
    with pytest.raises(SyntaxError, match="no function"):
        cupy.ElementwiseKernel("T a", "T c", "c = frobnicate(a)", "unknown")


def test_scatter_add_adds_repeated_indices():
    import cupyx

    x = cupy.zeros(3)
    cupyx.scatter_add(x, cupy.asarray(np.array([0, 0, 2, 3])), 1.0)
    np.testing.assert_array_equal(x.get(), [3.0, 0.0, 1.0])  # index 3 wraps to 0


# --------------------------------------------------------------------------- counters, report, devices

def test_peak_bytes_follow_live_arrays():
    cupy.standin.reset()
    base = cupy.standin.counts()["live_bytes"]
    x = cupy.empty(1000)
    y = cupy.empty(1000)
    assert cupy.standin.counts()["peak_bytes"] == base + 16000
    del x, y
    assert cupy.standin.counts()["live_bytes"] == base
    cupy.standin.reset()
    assert cupy.standin.counts()["peak_bytes"] == base


def test_the_report_and_the_device_count_come_from_the_environment(tmp_path):
    report = tmp_path / "counts.json"
    env = {**os.environ, "PYTHONPATH": str(STANDIN), "CUPY_STANDIN_REPORT": str(report), "CUPY_STANDIN_DEVICES": "3"}
    code = ("import cupy, numpy; x = cupy.asarray(numpy.ones(2)); x.get(); x.get();"
            "print(cupy.cuda.runtime.getDeviceCount())")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "3"
    counts = json.loads(report.read_text())
    assert counts["device_to_host"] == 2 and counts["host_to_device"] == 1


def test_a_device_beyond_the_count_is_refused():
    with pytest.raises(RuntimeError, match="cudaErrorInvalidDevice"):
        cupy.cuda.Device(cupy.cuda.runtime.getDeviceCount()).use()
