"""The device random stream (scratchgan.backend.device_rng): Philox checked against independent references.

The round code is checked at 32-bit width against Random123's known-answer
vectors and at 64-bit width against numpy.random.Philox (NumPy's own C
implementation); the distributions by their moments; the state by a
round trip. The CuPy tests (marked gpu) check that a draw makes no
transfer, matches the NumPy draw bit for bit, and advances inside a
recorded CUDA graph at every replay.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

import scratchgan as sg
from scratchgan.backend.device_rng import DeviceGenerator, philox4x32, philox4x64

# Random123 tests/kat_vectors, the three "philox4x32 10" lines: counter (4 words), key (2 words), expected (4 words)
PHILOX4X32_KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


@pytest.mark.parametrize("counter, key, expected", PHILOX4X32_KAT)
def test_philox4x32_matches_random123_known_answers(counter, key, expected):
    out = philox4x32(np.array(counter, dtype=np.uint64).reshape(4, 1), key)
    assert [int(v) for v in out[:, 0]] == list(expected)


@pytest.mark.parametrize("key, start", [((0, 0), 0), ((123456789012345, 2**64 - 5), 7), ((2**63 + 11, 99), 2**40)])
def test_philox4x64_round_code_matches_numpy_philox(key, start):
    """The same rounds at 64-bit width against numpy.random.Philox's raw output (an independent implementation).

    NumPy increments its counter before each block, so its first block is
    that of counter ``start + 1``.
    """
    blocks = 5
    raw = np.random.Philox(key=np.array(key, dtype=np.uint64), counter=[start, 0, 0, 0]).random_raw(4 * blocks)
    counters = np.zeros((4, blocks), dtype=np.uint64)
    counters[0] = np.arange(start + 1, start + 1 + blocks, dtype=np.uint64)
    assert np.array_equal(philox4x64(counters, key).T.reshape(-1), raw)


def test_words_are_the_blocks_of_the_counter_in_order():
    g = DeviceGenerator(3, stream=5, xp=np)
    first, second = g.words(6), g.words(3)  # two blocks, then the third block's first three words
    counters = np.array([[0, 1, 2], [0, 0, 0], [5, 5, 5], [0, 0, 0]], dtype=np.uint64)
    blocks = philox4x32(counters, g.key).T.reshape(-1)
    assert np.array_equal(first, blocks[:6]) and np.array_equal(second, blocks[8:11])
    assert int(g.counter) == 3


def test_a_seed_gives_one_stream_and_streams_differ():
    a, b = DeviceGenerator([1, 2], xp=np), DeviceGenerator([1, 2], xp=np)
    assert np.array_equal(a.standard_normal(10), b.standard_normal(10))
    other_stream = DeviceGenerator([1, 2], stream=1, xp=np)
    assert not np.array_equal(other_stream.words(8), DeviceGenerator([1, 2], xp=np).words(8))
    assert not np.array_equal(DeviceGenerator([1, 3], xp=np).words(8), DeviceGenerator([1, 2], xp=np).words(8))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_distributions_have_the_right_moments(dtype):
    g = DeviceGenerator(0, xp=np)
    n = 200_000
    u = g.random(n, dtype)
    assert u.dtype == dtype and u.min() >= 0 and u.max() < 1
    assert abs(u.mean() - 0.5) < 0.005 and abs(u.var() - 1 / 12) < 0.002
    z = g.standard_normal((n // 2, 2), dtype)
    assert z.dtype == dtype and z.shape == (n // 2, 2)
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    assert abs(np.mean(z ** 4) - 3) < 0.1  # the tails too (kurtosis of a normal)
    flat = z.ravel()
    half = flat.size // 2  # the first values of the pairs, then the second ones
    assert abs(np.corrcoef(flat[:half], flat[half:])[0, 1]) < 0.02
    v = g.uniform(-1.0, 1.0, (n,), dtype)
    assert v.dtype == dtype and v.min() >= -1 and v.max() < 1 and abs(v.mean()) < 0.01


def test_float64_uniforms_have_53_random_bits():
    u = DeviceGenerator(0, xp=np).random(1000, np.float64)
    assert np.mean((u * 2.0 ** 53) % 2 == 1) > 0.4  # the lowest of the 53 bits is set about half the time


def test_integers_are_in_range_and_uniform():
    g = DeviceGenerator(0, xp=np)
    x = g.integers(0, 10, 100_000)
    assert x.dtype == np.int64 and x.min() == 0 and x.max() == 9
    counts = np.bincount(x, minlength=10)
    assert np.all(np.abs(counts - 10_000) < 500)
    y = g.integers(-3, 3, (4, 5))
    assert y.shape == (4, 5) and y.min() >= -3 and y.max() < 3
    with pytest.raises(ValueError, match="high - low"):
        g.integers(5, 5, 3)


def test_state_round_trip_continues_the_stream():
    g = DeviceGenerator(7, xp=np)
    g.standard_normal(13)
    state = g.state()
    ahead = g.standard_normal(9)
    other = DeviceGenerator(99, xp=np)
    other.set_state(state)
    assert np.array_equal(other.standard_normal(9), ahead)
    with pytest.raises(ValueError, match="Philox4x32-10"):
        other.set_state({"bit_generator": "PCG64"})


def test_a_copy_is_an_independent_stream_in_the_same_state():
    g = DeviceGenerator(7, xp=np)
    h = copy.deepcopy(g)
    assert np.array_equal(g.words(5), h.words(5))
    assert int(g.counter) == int(h.counter) == 2


def _some_draws(g):
    return [g.standard_normal((3, 5)), g.integers(0, 7, 11), g.random((2, 2), np.float64), g.uniform(-1.0, 1.0, 4)]


def test_batched_draws_are_the_draws_one_by_one():
    alone, batched = DeviceGenerator(5, xp=np), DeviceGenerator(5, xp=np)
    with alone.batched(None) as taken:  # None: one by one, counting the blocks
        expected = _some_draws(alone)
    assert taken == [4 + 3 + 2 + 1]
    with batched.batched(taken[0]) as again:
        values = _some_draws(batched)
    assert again == taken
    for a, b in zip(values, expected):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert int(batched.counter) == int(alone.counter) == 10
    assert np.array_equal(batched.words(4), alone.words(4))  # and the stream goes on alike


@pytest.mark.parametrize("planned", [9, 11])
def test_a_batch_that_does_not_match_its_draws_is_an_error(planned):
    g = DeviceGenerator(5, xp=np)
    with pytest.raises(RuntimeError, match="planned"):
        with g.batched(planned):
            _some_draws(g)


# --------------------------------------------------------------------------- on CuPy

def needs_cupy(test):
    """Mark a test gpu and skip it without CuPy."""
    skip = pytest.mark.skipif(not sg.cupy_available(), reason="CuPy with a visible GPU is not available")
    return pytest.mark.gpu(skip(test))


@pytest.fixture
def cupy():
    sg.set_backend("cupy")
    try:
        yield sg.backend._import_cupy()
    finally:
        sg.set_backend("numpy")


@needs_cupy
def test_cupy_draws_equal_numpy_draws_and_copy_nothing(cupy):
    device, host = DeviceGenerator([4, 1]), DeviceGenerator([4, 1], xp=np)
    device.words(1)  # the constants are uploaded at construction; warm the counter path once
    host.words(1)
    standin = getattr(cupy, "standin", None)
    if standin is not None:
        standin.reset()
    draws = [device.standard_normal((3, 5)), device.integers(0, 7, 11), device.random((2, 2), np.float64),
             device.uniform(-1.0, 1.0, 4)]
    if standin is not None:
        counts = standin.counts()
        assert counts["device_to_host"] == 0 and counts["host_to_device"] == 0, counts
    expected = [host.standard_normal((3, 5)), host.integers(0, 7, 11), host.random((2, 2), np.float64),
                host.uniform(-1.0, 1.0, 4)]
    for d, h in zip(draws, expected):
        assert isinstance(d, cupy.ndarray) and d.dtype == h.dtype
        assert np.array_equal(cupy.asnumpy(d), h)
    assert device.state() == host.state()


@needs_cupy
def test_a_batch_saves_the_launches_of_all_evaluations_but_one(cupy):
    standin = getattr(cupy, "standin", None)
    if standin is None:
        pytest.skip("counts launches with the CuPy stand-in")
    launches = []
    for planned in (None, 10):
        g = DeviceGenerator(5)
        standin.reset()
        with g.batched(planned):
            _some_draws(g)
        launches.append(standin.counts()["launches"])
    assert launches[1] < launches[0] - 3 * 50, launches  # four evaluations of about 60 launches become one


@needs_cupy
def test_a_recorded_graph_draws_fresh_numbers_at_each_replay(cupy):
    """The counter is advanced by a kernel: each replay of a captured draw gives the next numbers."""
    device, host = DeviceGenerator(11), DeviceGenerator(11, xp=np)
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        device.words(1)  # allocations and first use outside the capture
        host.words(1)
        stream.begin_capture()
        out = device.standard_normal(6)
        graph = stream.end_capture()
    replays = []
    for _ in range(3):
        graph.launch(stream)
        replays.append(cupy.asnumpy(out))
    for values in replays:
        assert np.array_equal(values, host.standard_normal(6))
    assert not np.array_equal(replays[0], replays[1])
