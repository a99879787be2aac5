"""The array cache (scratchgan/accel/memory.py): reuse only when nothing refers to an array, and bounds;
on only on the CPython versions where this file checked the reference-count rule."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import sysconfig
import types
import weakref

import numpy as np
import pytest

import scratchgan as sg
from scratchgan.gan import losses
from scratchgan.accel import memory
from scratchgan import nn, ops, optim

BIG = (256, 256)  # 256 KiB in float32: at MIN_BYTES

#: The tests of the reuse rule run where the cache is on (SCRATCHGAN_ARRAY_CACHE=1 turns it on to check a new
#: CPython version before it goes into memory.VERIFIED_CPYTHON).
needs_cache = pytest.mark.skipif(not memory.ENABLED, reason="the array cache is off here: "
                                 + memory.cache_decision()[1])


@pytest.fixture(autouse=True)
def fresh_cache():
    memory.clear()
    yield
    memory.clear()


@needs_cache
def test_an_array_is_handed_out_again_only_after_its_last_reference_is_gone():
    a = memory.empty(BIG, np.float32)
    b = memory.empty(BIG, np.float32)
    assert a is not b and a.shape == BIG and a.dtype == np.float32 and a.flags.c_contiguous
    a_id = id(a)
    del a
    c = memory.empty(BIG, np.float32)
    assert id(c) == a_id  # the free one comes back
    d = memory.empty(BIG, np.float32)
    assert d is not b and d is not c  # b and c are still held


@needs_cache
@pytest.mark.parametrize("holder", ["view", "tensor", "list", "transpose"])
def test_anything_that_refers_to_an_array_keeps_it_in_use(holder):
    a = memory.empty(BIG, np.float32)
    keep = {"view": lambda: a[1:], "tensor": lambda: sg.as_tensor(a), "list": lambda: [a],
            "transpose": lambda: a.T}[holder]()
    a_id = id(a)
    del a
    gc.collect()
    b = memory.empty(BIG, np.float32)
    assert id(b) != a_id
    del keep


@needs_cache
def test_other_shapes_dtypes_and_small_arrays_are_not_mixed_up():
    a = memory.empty(BIG, np.float32)
    del a
    assert memory.empty(BIG, np.float64).dtype == np.float64
    assert memory.empty((256, 512), np.float32).shape == (256, 512)
    before = memory.cached_bytes()
    small = memory.empty((4, 4), np.float32)
    assert small.shape == (4, 4) and memory.cached_bytes() == before  # below MIN_BYTES: plain np.empty
    huge = memory.empty((memory.MAX_ARRAY_BYTES // 4 + 1,), np.float32)
    assert memory.cached_bytes() == before  # one-off large arrays go back to the system
    del huge


@needs_cache
def test_empty_like_keeps_a_channels_last_layout_and_falls_back_for_views():
    nhwc = np.zeros((8, 16, 16, 64), np.float32)
    nchw_view = nhwc.transpose(0, 3, 1, 2)
    before = memory.cached_bytes()
    out = memory.empty_like(nchw_view)
    assert out.shape == nchw_view.shape and out.strides == nchw_view.strides
    assert memory.cached_bytes() == before + out.nbytes  # from the cache, not NumPy's fallback
    cropped = nhwc[:, 1:, 1:, :].transpose(0, 3, 1, 2)  # not dense: NumPy's own empty_like
    assert memory.empty_like(cropped).shape == cropped.shape
    broadcast = np.broadcast_to(np.zeros((1, 512), np.float32), (512, 512))
    assert memory.empty_like(broadcast).strides == np.empty_like(broadcast).strides  # NumPy's choice


@needs_cache
def test_bounds_per_shape_and_in_bytes(monkeypatch):
    monkeypatch.setattr(memory, "MAX_PER_KEY", 2)
    held = [memory.empty(BIG, np.float32) for _ in range(4)]  # only two are cached
    assert memory.cached_bytes() == 2 * held[0].nbytes
    monkeypatch.setattr(memory, "MAX_BYTES", 3 * held[0].nbytes)
    del held
    other = [memory.empty((128, 1024), np.float32) for _ in range(2)]  # the free BIG arrays make room
    assert memory.cached_bytes() <= 3 * other[0].nbytes
    del other
    memory.clear()
    assert memory.cached_bytes() == 0


def _train(steps, seed=0):
    """A few steps of a small DCGAN-like model in float32: conv, transposed conv, batch norm, activations."""
    rng = np.random.default_rng(seed)
    G = nn.Sequential(nn.Linear(8, 4 * 4 * 8, rng=rng), nn.BatchNorm1d(128), nn.ReLU(), nn.Unflatten(1, (8, 4, 4)),
                      nn.ConvTranspose2d(8, 4, 4, 2, 1, rng=rng), nn.BatchNorm2d(4), nn.ReLU(),
                      nn.ConvTranspose2d(4, 1, 4, 2, 1, rng=rng), nn.Tanh())
    D = nn.Sequential(nn.Conv2d(1, 4, 4, 2, 1, rng=rng), nn.LeakyReLU(0.2), nn.Conv2d(4, 8, 4, 2, 1, rng=rng),
                      nn.BatchNorm2d(8), nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(128, 1, rng=rng))
    opt_g, opt_d = optim.Adam(G.parameters(), lr=1e-3), optim.Adam(D.parameters(), lr=1e-3)
    data = rng.uniform(-1, 1, (steps, 16, 1, 16, 16)).astype(np.float32)
    for step in range(steps):
        z = sg.as_tensor(rng.standard_normal((16, 8)).astype(np.float32))
        opt_d.zero_grad()
        losses.d_loss("ns", D(sg.as_tensor(data[step])), D(G(z).detach())).backward()
        opt_d.step()
        opt_g.zero_grad()
        losses.g_loss("ns", D(G(z))).backward()
        opt_g.step()
    return [p.numpy().copy() for p in list(G.parameters()) + list(D.parameters())]


@needs_cache
def test_training_with_every_array_cached_is_bit_identical_to_training_without(monkeypatch, accelerations_on):
    """With MIN_BYTES = 0 every op output of the step goes through the cache: reusing an array that
    something still read would change the numbers."""
    monkeypatch.setattr(memory, "MIN_BYTES", 1 << 62)
    plain = _train(4)
    monkeypatch.setattr(memory, "MIN_BYTES", 0)
    cached = _train(4)
    assert memory.cached_bytes() > 0
    for a, b in zip(plain, cached):
        np.testing.assert_array_equal(a, b)


#: The ops whose accelerations take arrays from the cache (scratchgan/accel/array_cache.py, first_order.py):
#: (name, the op on a BIG float32 input, whether its first-order backward does too: a fast backward, or a rule
#: whose products are elementwise ops of the same shape)
_CACHED_OPS = [
    ("add", lambda x: x + x, False), ("mul", lambda x: x * x, True), ("div", lambda x: x / (x * x + 1.0), True),
    ("relu", ops.relu, True), ("leaky_relu", lambda x: ops.leaky_relu(x, 0.2), True),
    ("batch_norm", lambda x: ops.batch_norm(x, sg.ones(BIG[1], dtype="float32", requires_grad=True),
                                            sg.zeros(BIG[1], dtype="float32", requires_grad=True)), True),
]


@needs_cache
@pytest.mark.parametrize("name,op,backward", _CACHED_OPS, ids=[c[0] for c in _CACHED_OPS])
def test_the_ops_take_large_arrays_from_the_cache_except_in_reference_mode(name, op, backward, accelerations_on):
    """The ops reach the cache through their registered accelerations only: reference mode runs the
    definitions, which allocate with the backend; the values are the same."""
    x = sg.Tensor(np.random.default_rng(0).standard_normal(BIG, dtype=np.float32), requires_grad=True)
    start = memory.cached_bytes()  # 0, or what a failed test before this one still holds
    with sg.reference_mode():
        y = op(x)
        y.backward(sg.ones_like(y))
    assert memory.cached_bytes() == start
    plain, plain_grad = y.numpy().copy(), x.grad.numpy().copy()
    x.grad = None
    with sg.reference_mode():
        y = op(x)  # the forward's definition, then the first-order backward's acceleration
    assert memory.cached_bytes() == start
    y.backward(sg.ones_like(y))
    assert (memory.cached_bytes() > start) is backward
    memory.clear()
    start = memory.cached_bytes()
    x.grad = None
    y = op(x)  # accelerated forward: the cache
    assert memory.cached_bytes() > start
    y.backward(sg.ones_like(y))
    # copies: a failed comparison must not keep cached arrays alive (in its traceback) for the tests after it
    accelerated, accelerated_grad = y.numpy().copy(), x.grad.numpy().copy()
    del x, y
    np.testing.assert_array_equal(accelerated, plain)
    if name != "batch_norm":  # batch norm's first-order backward differs from its rule in the last bits
        np.testing.assert_array_equal(accelerated_grad, plain_grad)


# --------------------------------------------------------------------------- where the cache is on


def _fake_interpreter(monkeypatch, implementation, version, free_threaded=False, env=None):
    monkeypatch.setattr(sys, "implementation", types.SimpleNamespace(name=implementation))
    monkeypatch.setattr(sys, "version_info", (*version, 0, "final", 0))
    real = sysconfig.get_config_var
    monkeypatch.setattr(sysconfig, "get_config_var",
                        lambda name: (1 if free_threaded else 0) if name == "Py_GIL_DISABLED" else real(name))
    if env is None:
        monkeypatch.delenv(memory.ENV_VAR, raising=False)
    else:
        monkeypatch.setenv(memory.ENV_VAR, env)


DECISIONS = [
    ("cpython", (3, 10), False, None, True),
    ("cpython", (3, 11), False, None, True),
    ("cpython", (3, 12), False, None, True),
    ("cpython", (3, 13), False, None, True),
    ("cpython", (3, 14), False, None, False),  # borrows references on the stack (gh-132346)
    ("cpython", (3, 9), False, None, False),
    ("cpython", (4, 0), False, None, False),
    ("cpython", (3, 13), True, None, False),  # free-threaded build: other reference counting
    ("pypy", (3, 11), False, None, False),
    ("pypy", (3, 11), False, "1", False),  # no CPython reference counts to force
    ("cpython", (3, 11), False, "0", False),
    ("cpython", (3, 11), False, " 0 ", False),
    ("cpython", (3, 11), False, "", True),
    ("cpython", (3, 14), False, "1", True),  # forced on, to check a new version with this file
    ("cpython", (3, 13), True, "1", True),
]


@pytest.mark.parametrize("implementation,version,free_threaded,env,on", DECISIONS,
                         ids=[f"{i}{v[0]}.{v[1]}{'t' if ft else ''}-env={e!r}" for i, v, ft, e, _ in DECISIONS])
def test_the_cache_is_on_only_on_verified_cpython(monkeypatch, implementation, version, free_threaded, env, on):
    _fake_interpreter(monkeypatch, implementation, version, free_threaded, env)
    decided, reason = memory.cache_decision()
    assert decided is on, reason
    assert reason


def test_a_bad_switch_value_is_an_error(monkeypatch):
    _fake_interpreter(monkeypatch, "cpython", (3, 11), env="off")
    with pytest.raises(ValueError, match="SCRATCHGAN_ARRAY_CACHE must be 0"):
        memory.cache_decision()


def test_the_switch_is_read_at_import():
    env = {**os.environ, memory.ENV_VAR: "0"}
    code = "import scratchgan.accel.memory as m; print(m.ENABLED, m.cache_decision()[1])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "SCRATCHGAN_ARRAY_CACHE=0"]


def test_the_cache_is_on_in_the_interpreter_running_this_file():
    """The interpreter that runs the suite: on exactly where cache_decision says so (and so the reuse
    tests above ran, or were skipped with the reason)."""
    assert memory.ENABLED is memory.cache_decision()[0]
    if (sys.implementation.name == "cpython" and tuple(sys.version_info[:2]) in memory.VERIFIED_CPYTHON
            and not sysconfig.get_config_var("Py_GIL_DISABLED") and os.environ.get(memory.ENV_VAR, "") == ""):
        assert memory.ENABLED


def test_with_the_cache_off_every_array_is_fresh(monkeypatch):
    monkeypatch.setattr(memory, "ENABLED", False)
    a = memory.empty(BIG, np.float32)
    b = memory.empty(BIG, np.float32)
    assert a is not b and not np.shares_memory(a, b) and a.shape == BIG and a.flags.c_contiguous
    gone = weakref.ref(a)
    del a
    gc.collect()
    assert gone() is None  # nothing kept it: the cache holds no array (with the cache on it would)
    c = memory.empty(BIG, np.float32)
    assert c is not b and memory.cached_bytes() == 0
    nchw_view = np.zeros((8, 16, 16, 64), np.float32).transpose(0, 3, 1, 2)
    out = memory.empty_like(nchw_view)
    assert out.strides == nchw_view.strides and memory.cached_bytes() == 0  # the same layout, not cached


def test_training_with_the_cache_off_caches_nothing_and_gives_the_same_numbers(monkeypatch):
    monkeypatch.setattr(memory, "MIN_BYTES", 0)  # every op output would go through the cache
    cached = _train(2) if memory.ENABLED else None
    memory.clear()
    monkeypatch.setattr(memory, "ENABLED", False)
    plain = _train(2)
    assert memory.cached_bytes() == 0
    for a, b in zip(plain, cached or plain):
        np.testing.assert_array_equal(a, b)
