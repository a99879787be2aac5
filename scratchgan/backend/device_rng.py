"""Random numbers drawn where the arrays live: a Philox4x32-10 stream whose counter is in device memory.

On the GPU the trainer draws its noise, labels, batch indices and penalty
factors with :class:`DeviceGenerator` instead of a host
``numpy.random.Generator``: nothing is drawn on the host and copied up at
each step, and the step can be recorded as a CUDA graph (cuRAND, behind
``cupy.random``, cannot be captured), because everything that changes from
one draw to the next, the counter, lives in a device array that a kernel
advances. A replayed graph therefore draws fresh numbers at each replay.

The generator is Philox4x32-10 (Salmon, Moraes, Dror & Shaw, "Parallel
random numbers: as easy as 1, 2, 3", SC 2011; the Random123 library): a
bijection of a 128-bit counter under a 64-bit key, ten rounds of two 32x32
-> 64-bit products and XORs. It is written here in array code (uint64
arithmetic, so it runs on NumPy and CuPy alike) and checked against
Random123's known-answer vectors; the same round code at 64-bit width
(Philox4x64-10) is checked against :class:`numpy.random.Philox`.

The stream's state is ``(key, stream, counter)``: the key and the stream id
are fixed at construction (the key from a seed, through
:class:`numpy.random.SeedSequence`), the counter counts the 128-bit blocks
used so far. Block ``b`` is the Philox output of the counter words
``(b mod 2^32, b div 2^32, stream, 0)``; its four 32-bit words are handed
out in order. :meth:`DeviceGenerator.state` and
:meth:`~DeviceGenerator.set_state` save and restore it (the trainer keeps it
in the checkpoint, so a resumed GPU run draws what the straight run drew).

How values are made of the 32-bit words ``w``:

* ``random`` (float32): ``(w >> 8) * 2^-24`` in [0, 1); float64 takes two
  words, ``((a >> 5) * 2^26 + (b >> 6)) * 2^-53``, as NumPy's
  ``random_standard_uniform``;
* ``integers(low, high)``: ``low + (w * (high - low)) >> 32`` (Lemire's
  multiply-shift without rejection: a bias below ``(high - low) / 2^32``);
* ``standard_normal``: Box-Muller, ``sqrt(-2 ln(1 - u1)) * (cos, sin)(2 pi u2)``,
  both values of each pair used.
"""

from __future__ import annotations

import contextlib
import json

import numpy as np

from .. import backend

__all__ = ["DeviceGenerator", "philox4x32", "philox4x64"]

ROUNDS = 10
_PHILOX = {  # width: (multipliers (M0, M1), Weyl key increments (W0, W1)), Random123's philox.h
    32: ((0xD2511F53, 0xCD9E8D57), (0x9E3779B9, 0xBB67AE85)),
    64: ((0xD2E7470EE14C6C93, 0xCA5A826395121157), (0x9E3779B97F4A7C15, 0xBB67AE8584CAA73B)),
}
_MASK32 = 0xFFFFFFFF
NAME = "Philox4x32-10"


def _round_keys(key, width: int, rounds: int = ROUNDS) -> list[tuple[int, int]]:
    """The key of each round: the key bumped by the Weyl increments before rounds 2..``rounds``."""
    mask = (1 << width) - 1
    (w0, w1) = _PHILOX[width][1]
    k0, k1 = (int(k) & mask for k in key)
    return [((k0 + r * w0) & mask, (k1 + r * w1) & mask) for r in range(rounds)]


def _mulhilo(a, m, width: int, xp):
    """``(hi, lo)`` words of the ``2 * width``-bit products ``a * m`` (uint64 arrays, ``m`` broadcast)."""
    shift = xp.right_shift
    if width == 32:  # a 32 x 32-bit product fits in uint64
        p = a * m
        return shift(p, 32), p & _MASK32
    # 64 x 64 bits from four 32 x 32-bit partial products (no 128-bit integers in array code)
    a_lo, a_hi = a & _MASK32, shift(a, 32)
    m_lo, m_hi = m & _MASK32, shift(m, 32)
    ll, lh, hl = a_lo * m_lo, a_lo * m_hi, a_hi * m_lo
    middle = shift(ll, 32) + (lh & _MASK32) + (hl & _MASK32)  # < 3 * 2^32: no overflow
    hi = a_hi * m_hi + shift(lh, 32) + shift(hl, 32) + shift(middle, 32)
    return hi, a * m  # uint64 products wrap: the low word is the plain product


def _philox_rounds(even, odd, multipliers, round_keys, width: int, xp):
    """Philox's rounds on the counter words held in lane pairs: ``even = (c0, c2)``, ``odd = (c1, c3)``.

    Random123's round is ``(c0, c1, c2, c3) <- (hi(M1 c2) ^ c1 ^ k0, lo(M1 c2), hi(M0 c0) ^ c3 ^ k1,
    lo(M0 c0))``. With the even words in one (2, n) array, both products are
    one multiplication by ``multipliers = [[M0], [M1]]``, and reversing the
    pair axis (a view) pairs them up for the next round: about five array
    operations per round instead of ten, which is what a GPU step pays for
    (one kernel launch each). ``round_keys`` is a (rounds, 2, 1) array.
    """
    for r in range(len(round_keys)):
        hi, lo = _mulhilo(even, multipliers, width, xp)
        even, odd = hi[::-1] ^ odd ^ round_keys[r], lo[::-1]
    return even, odd


def _philox(counters, key, width: int, xp=np):
    """Philox4xW-10 of the counters ``(4, n)`` (uint64, words < 2^width) under ``key`` (two ints): (4, n)."""
    counters = xp.asarray(counters, dtype=np.uint64)
    multipliers = xp.asarray(np.array(_PHILOX[width][0], dtype=np.uint64).reshape(2, 1))
    keys = xp.asarray(np.array(_round_keys(key, width), dtype=np.uint64).reshape(ROUNDS, 2, 1))
    even, odd = _philox_rounds(counters[0::2], counters[1::2], multipliers, keys, width, xp)
    return xp.stack([even[0], odd[0], even[1], odd[1]])


def philox4x32(counters, key, xp=np):
    """Philox4x32-10 (Random123) of counters ``(4, n)`` (32-bit words) under ``key = (k0, k1)``.

    Returns the (4, n) output words as uint64 arrays of values below 2^32.
    """
    return _philox(counters, key, 32, xp)


def philox4x64(counters, key, xp=np):
    """Philox4x64-10 of counters ``(4, n)`` under ``key = (k0, k1)``: :class:`numpy.random.Philox`'s bijection.

    Here only to check the round code against NumPy's independent implementation.
    """
    return _philox(counters, key, 64, xp)


def _size(size) -> tuple[int, ...]:
    shape = (size,) if isinstance(size, (int, np.integer)) else tuple(size)
    if any(int(s) < 0 for s in shape):
        raise ValueError(f"negative dimension in size {shape}")
    return tuple(int(s) for s in shape)


def _float_dtype(dtype) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"DeviceGenerator draws float32 or float64, got {dtype}")
    return dtype


class DeviceGenerator:
    """A Philox4x32-10 stream on the active backend, with a numpy-Generator-like interface.

    Parameters
    ----------
    seed : int, sequence of ints or numpy.random.SeedSequence
        Gives the 64-bit key (``SeedSequence(seed).generate_state(2, uint32)``).
    stream : int
        A stream id in [0, 2^32): generators with one key and different
        streams draw independent numbers.
    xp : module, optional
        ``numpy`` or ``cupy``; default the active backend's.

    Notes
    -----
    The constants (multipliers, round keys) are uploaded once, here; each
    draw then launches only kernels with Python scalars as arguments and
    advances :attr:`counter` (a 0-d uint64 device array) in place: no
    transfer either way, so a draw can be recorded in a CUDA graph.

    Philox in array code is about 60 kernel launches per evaluation, however
    many numbers it makes: :meth:`batched` serves several draws from one.
    """

    def __init__(self, seed, stream: int = 0, xp=None):
        xp = backend.xp if xp is None else xp
        sequence = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
        self.key = tuple(int(k) for k in sequence.generate_state(2, np.uint32))
        if not 0 <= int(stream) <= _MASK32:
            raise ValueError(f"DeviceGenerator: stream must be in [0, 2^32), got {stream!r}")
        self.stream = int(stream)
        self._multipliers = xp.asarray(np.array(_PHILOX[32][0], dtype=np.uint64).reshape(2, 1))
        self._round_keys = xp.asarray(np.array(_round_keys(self.key, 32), dtype=np.uint64).reshape(ROUNDS, 2, 1))
        self.counter = xp.zeros((), dtype=np.uint64)  # 128-bit blocks used so far
        self._batch = None  # inside batched(): [the words of its blocks, blocks planned, blocks served]
        self._served = 0  # blocks handed out to draws by this object (a host count, for batched())

    @property
    def xp(self):
        """The array module the stream lives on (that of its counter: a copy of the generator stays there)."""
        return backend.array_module(self.counter)

    # ---- raw words
    def words(self, n: int):
        """The next ``n`` 32-bit words of the stream, as a uint64 array (values below 2^32).

        A draw takes whole blocks (four words each); the words of a block it
        leaves unused are not handed out.
        """
        blocks = -(-int(n) // 4)
        if blocks == 0:
            return self.xp.zeros(0, dtype=np.uint64)
        if self._batch is not None:  # the blocks this draw would take alone, out of the batch's evaluation
            words, planned, served = self._batch
            if served + blocks > planned:
                raise RuntimeError(f"DeviceGenerator.batched: the draws took more than the {planned} blocks planned")
            self._batch[2] = served + blocks
            self._served += blocks
            return words[4 * served:4 * served + int(n)]
        self._served += blocks
        return self._blocks(blocks)[:n]

    @contextlib.contextmanager
    def batched(self, blocks: int | None):
        """Serve the draws made inside from one Philox evaluation of the next ``blocks`` blocks.

        Each draw gets the very blocks it would take alone, in the order of
        the draws, so batching changes no number (and no counter): it saves
        the launches of all the evaluations but one. ``blocks`` must be what
        the draws take: the context yields a list whose one item is set, on
        exit, to the number of blocks they took; with ``blocks=None`` they
        run one by one, which is how a caller learns the number (the trainer
        does so at its first step; every step of a run draws the same).

        Raises
        ------
        RuntimeError
            When the draws take more or fewer blocks than planned.
        """
        taken = [None]
        if blocks is None or self._batch is not None:  # learn the count (or nested: the outer batch serves)
            start = self._served
            yield taken
            taken[0] = self._served - start
            return
        self._batch = [self._blocks(int(blocks)), int(blocks), 0]
        try:
            yield taken
        finally:
            served, self._batch = self._batch[2], None
        taken[0] = served
        if served != blocks:
            raise RuntimeError(f"DeviceGenerator.batched: the draws took {served} blocks, not the {blocks} planned")

    def _blocks(self, blocks: int):
        """The words of the next ``blocks`` blocks (one Philox evaluation); advances the counter."""
        xp = self.xp
        index = self.counter + xp.arange(blocks, dtype=np.uint64)
        self.counter += blocks  # a kernel: a captured graph advances it at every replay
        even = xp.empty((2, blocks), dtype=np.uint64)  # (c0, c2): the block's low word, the stream id
        odd = xp.zeros((2, blocks), dtype=np.uint64)  # (c1, c3): the block's high word, 0
        xp.bitwise_and(index, _MASK32, out=even[0])
        even[1].fill(self.stream)
        xp.right_shift(index, 32, out=odd[0])
        even, odd = _philox_rounds(even, odd, self._multipliers, self._round_keys, 32, xp)
        return xp.stack([even[0], odd[0], even[1], odd[1]], axis=1).reshape(-1)

    # ---- numpy.random.Generator's names
    def random(self, size=(), dtype=np.float32):
        """Uniform floats on [0, 1) (float32: 24 random bits, float64: 53)."""
        shape, dtype = _size(size), _float_dtype(dtype)
        n = int(np.prod(shape, dtype=np.int64))
        if dtype == np.float32:
            values = self.xp.right_shift(self.words(n), 8).astype(np.float32) * 2.0 ** -24
        else:
            w = self.words(2 * n)
            high, low = self.xp.right_shift(w[:n], 5), self.xp.right_shift(w[n:], 6)
            values = (high * (1 << 26) + low).astype(np.float64) * 2.0 ** -53
        return values.astype(dtype, copy=False).reshape(shape)

    def uniform(self, low=0.0, high=1.0, size=(), dtype=np.float32):
        """Uniform floats on [low, high): ``low + (high - low) * random``."""
        return self.random(size, dtype) * float(high - low) + float(low)

    def integers(self, low, high=None, size=()):
        """int64 values uniform on [low, high) (``integers(high)`` for [0, high)), ``high - low <= 2^32``."""
        low, high = (0, low) if high is None else (low, high)
        span = int(high) - int(low)
        if not 1 <= span <= 1 << 32:
            raise ValueError(f"DeviceGenerator.integers: high - low must be in [1, 2^32], got {span}")
        shape = _size(size)
        w = self.words(int(np.prod(shape, dtype=np.int64)))
        values = self.xp.right_shift(w * span, 32).astype(np.int64)
        if low:
            values += int(low)
        return values.reshape(shape)

    def standard_normal(self, size=(), dtype=np.float32):
        """Standard normal values by Box-Muller (both values of each pair used)."""
        shape, dtype = _size(size), _float_dtype(dtype)
        n = int(np.prod(shape, dtype=np.int64))
        pairs = -(-n // 2)
        u = self.random(2 * pairs, dtype)
        radius = self.xp.sqrt(-2.0 * self.xp.log(1.0 - u[:pairs]))  # 1 - u in (0, 1]: a finite log
        angle = u[pairs:] * (2.0 * np.pi)
        z = self.xp.concatenate([radius * self.xp.cos(angle), radius * self.xp.sin(angle)])
        return z[:n].reshape(shape)

    # ---- state
    def state(self, what: str = "the device generator's counter") -> dict:
        """``{"bit_generator", "key", "stream", "counter"}``: a JSON-able dict (reads the counter back once)."""
        counter = int(backend.host_scalar(self.counter, what))
        return {"bit_generator": NAME, "key": list(self.key), "stream": self.stream, "counter": counter}

    def set_state(self, state: dict) -> None:
        """Restore a :meth:`state` (key, stream and counter; no transfer: the counter is filled by a kernel)."""
        if not isinstance(state, dict) or state.get("bit_generator") != NAME:
            raise ValueError(f"not a {NAME} state: {state!r}")
        key, stream, counter = state["key"], int(state["stream"]), int(state["counter"])
        if len(key) != 2 or not all(0 <= int(k) <= _MASK32 for k in key) or not 0 <= counter < 1 << 64:
            raise ValueError(f"a {NAME} state needs two 32-bit key words and a 64-bit counter, got {state!r}")
        if tuple(int(k) for k in key) != self.key or stream != self.stream:
            self.key, self.stream = tuple(int(k) for k in key), stream
            self._round_keys = self.xp.asarray(
                np.array(_round_keys(self.key, 32), dtype=np.uint64).reshape(ROUNDS, 2, 1))
        self.counter.fill(counter)

    def to_json(self) -> str:
        """:meth:`state` as JSON text (what the checkpoint stores)."""
        return json.dumps(self.state())

    def __repr__(self) -> str:
        return f"DeviceGenerator({NAME}, key={self.key}, stream={self.stream})"
