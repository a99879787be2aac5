"""The stand-in's ``cupy.cuda.nccl``: NCCL for ONE rank, on raw device pointers.

Modelled on CuPy 13.6 / 14: ``cupy/cuda/nccl.py`` (``available``, and the
names of ``cupy_backends/cuda/libs/nccl.pyx`` re-exported) and
``cupy_backends/cuda/libs/nccl.pyx`` / ``nccl.pxd`` (the enums, ``NcclError``,
``get_unique_id``, ``groupStart`` / ``groupEnd`` and ``NcclCommunicator``
with its collectives), with NCCL 2's own rules where CuPy passes the call
straight through (``ncclCommInitRank``, the argument checks of a collective).

What it cannot be: a communicator of several ranks. The other ranks are other
processes, which a CPU imitation cannot reach; a real ``ncclCommInitRank``
waits for all ``ndev`` of them, so ``ndev > 1`` raises :class:`StandinLimit`
at once (a clear error instead of that wait). With one rank every collective
is a copy of the send buffer into the receive buffer (the sum, product,
maximum, minimum or mean of one value is that value), which runs as one
kernel launch on the stand-in's device: counted in ``cupy.standin.counts()``,
and recorded rather than run while the stream captures (NCCL 2.9+ may be
captured into CUDA graphs). Pointers are checked against the stand-in's live
allocations, so a host pointer or a count past the end of a buffer raises
the illegal memory access a GPU would report.
"""

from __future__ import annotations

import operator
import os

from .. import _device, standin

# cupy/cuda/nccl.py (v13.6, v14): True when CuPy found an NCCL library; the stand-in always "has" one
available = True

# cupy_backends/cuda/libs/nccl.pxd (v13.6, v14): NCCL's reduction ops and data types, with NCCL's own values
NCCL_SUM, NCCL_PROD, NCCL_MAX, NCCL_MIN, NCCL_AVG = 0, 1, 2, 3, 4
NCCL_INT8 = NCCL_CHAR = 0
NCCL_UINT8 = 1
NCCL_INT32 = NCCL_INT = 2
NCCL_UINT32 = 3
NCCL_INT64 = 4
NCCL_UINT64 = 5
NCCL_FLOAT16 = NCCL_HALF = 6
NCCL_FLOAT32 = NCCL_FLOAT = 7
NCCL_FLOAT64 = NCCL_DOUBLE = 8
NCCL_BFLOAT16 = 9
_OPS = frozenset(range(5))
# cupy_backends/cuda/libs/nccl.pyx (v13.6, v14), _bytesize, plus bfloat16 (NCCL's ncclTypeSize)
_BYTES = {NCCL_INT8: 1, NCCL_UINT8: 1, NCCL_INT32: 4, NCCL_UINT32: 4, NCCL_INT64: 8, NCCL_UINT64: 8,
          NCCL_FLOAT16: 2, NCCL_FLOAT32: 4, NCCL_FLOAT64: 8, NCCL_BFLOAT16: 2}

# cupy_backends/cuda/libs/nccl.pyx (v13.6, v14): NCCL_UNIQUE_ID_BYTES from nccl.h
NCCL_UNIQUE_ID_BYTES = 128
#: the NCCL version the stand-in answers for (NCCL_VERSION_CODE: 2.27.3 as X * 10000 + Y * 100 + Z)
NCCL_VERSION_CODE = 22703

# ncclResult_t (nccl.h, NCCL 2) and CuPy's names for them (nccl.pyx's ERROR2, v13.6, v14)
_SUCCESS, _UNHANDLED_CUDA_ERROR, _SYSTEM_ERROR, _INTERNAL_ERROR, _INVALID_ARGUMENT, _INVALID_USAGE = range(6)
_ERROR_NAMES = {0: "NCCL_ERROR_SUCCESS", 1: "NCCL_ERROR_UNHANDLED_CUDA_ERROR", 2: "NCCL_ERROR_SYSTEM_ERROR",
                3: "NCCL_ERROR_INTERNAL_ERROR", 4: "NCCL_ERROR_INVALID_ARGUMENT", 5: "NCCL_ERROR_INVALID_USAGE"}
# ncclGetErrorString (NCCL 2, src/init.cc)
_ERROR_STRINGS = {0: "no error", 1: "unhandled cuda error", 2: "unhandled system error", 3: "internal error",
                  4: "invalid argument", 5: "invalid usage"}


class NcclError(RuntimeError):
    """cupy_backends/cuda/libs/nccl.pyx (v13.6, v14): ``'%s: %s' % (ERROR2[status], ncclGetErrorString(status))``.

    The stand-in adds, after a semicolon, what NCCL_DEBUG=WARN would have said.
    """

    def __init__(self, status: int, detail: str = ""):
        self.status = status
        message = f"{_ERROR_NAMES[status]}: {_ERROR_STRINGS[status]}"
        super().__init__(f"{message}; {detail}" if detail else message)

    def __reduce__(self):
        return (type(self), (self.status,))


class StandinLimit(RuntimeError):
    """What the stand-in cannot imitate: NCCL between several ranks (other processes)."""


def get_build_version() -> int:
    return NCCL_VERSION_CODE


def get_version() -> int:
    return NCCL_VERSION_CODE


_issued_ids: set = set()


def get_unique_id() -> tuple:
    """cupy_backends/cuda/libs/nccl.pyx (v13.6, v14): a tuple of NCCL_UNIQUE_ID_BYTES signed chars.

    The stand-in remembers the ids it issued: with one rank, rank 0 made the
    id in this very process, and an id from anywhere else names a bootstrap
    root that a real ``ncclCommInitRank`` could not reach.
    """
    raw = os.urandom(NCCL_UNIQUE_ID_BYTES)
    uid = tuple(b - 256 if b > 127 else b for b in raw)  # <char> is signed, as CuPy's tuple holds it
    _issued_ids.add(uid)
    return uid


# --------------------------------------------------------------------------- group calls

_group: list = []  # the collectives held back by the open group calls
_group_depth = 0


def groupStart() -> None:  # noqa: N802 - CuPy's name
    """ncclGroupStart (cupy_backends/cuda/libs/nccl.pyx, v13.6, v14): collectives wait for the matching groupEnd."""
    global _group_depth
    _group_depth += 1


def groupEnd() -> None:  # noqa: N802 - CuPy's name
    """ncclGroupEnd: the outermost one launches what the group held back (NCCL 2, src/group.cc)."""
    global _group_depth
    if _group_depth == 0:  # NCCL 2, src/group.cc: "ncclGroupEnd: not in a group call." -> ncclInvalidUsage
        raise NcclError(_INVALID_USAGE, "ncclGroupEnd: not in a group call (no groupStart before it)")
    _group_depth -= 1
    if _group_depth == 0:
        held, _group[:] = list(_group), []
        for launch in held:
            launch()


# --------------------------------------------------------------------------- the communicator

class NcclCommunicator:
    """``NcclCommunicator(ndev, commId, rank)``: one rank's communicator (cupy_backends/cuda/libs/nccl.pyx).

    Parameters
    ----------
    ndev : int
        The number of ranks; the stand-in has one (anything else raises
        :class:`StandinLimit`, where ``ncclCommInitRank`` would wait for the
        other ranks).
    commId : tuple
        :func:`get_unique_id`'s tuple, made in this process.
    rank : int
        This rank, ``0 <= rank < ndev``.
    """

    def __init__(self, ndev, commId, rank):  # noqa: N803 - CuPy's names
        ndev, rank = _int("ndev", ndev), _int("rank", rank)
        # nccl.pyx (v13.6, v14) declares `tuple commId` (a Cython TypeError otherwise) and asserts its length
        if not isinstance(commId, tuple):
            raise TypeError(f"Argument 'commId' has incorrect type (expected tuple, got {type(commId).__name__})")
        assert len(commId) == NCCL_UNIQUE_ID_BYTES
        # NCCL 2, src/init.cc (ncclCommInitRankDev): "Invalid rank requested : %d/%d" -> ncclInvalidArgument
        if ndev < 1 or not 0 <= rank < ndev:
            raise NcclError(_INVALID_ARGUMENT, f"Invalid rank requested : {rank}/{ndev}")
        if ndev > 1:
            raise StandinLimit(
                f"the CuPy stand-in's NCCL has one rank only: NcclCommunicator(ndev={ndev}, ..., rank={rank}) would "
                f"wait in ncclCommInitRank for the other {ndev - 1} rank(s), which are other processes the stand-in "
                "cannot reach; run one rank under the stand-in (mpiexec -n 1), and several on real GPUs")
        if commId not in _issued_ids:  # the id names rank 0's bootstrap socket: none in this process
            raise NcclError(_SYSTEM_ERROR, "the unique id was not made by get_unique_id in this process (with one "
                                           "rank, rank 0 makes it and passes it to itself)")
        self._comm = id(self)  # a non-zero handle, as ncclComm_t
        self._ndev, self._rank = ndev, rank
        self._device = _current_device()

    # ---- the handle and its queries
    @property
    def comm(self) -> int:
        return self._comm

    def destroy(self) -> None:
        self._comm = 0

    def abort(self) -> None:
        self._comm = 0

    def device_id(self) -> int:
        self._check_alive()
        return self._device

    def rank_id(self) -> int:
        self._check_alive()
        return self._rank

    def size(self) -> int:
        self._check_alive()
        return self._ndev

    # ---- collectives (one rank: each is a copy of count elements from send to recv)
    def allReduce(self, sendbuf, recvbuf, count, datatype, op, stream):  # noqa: N802 - CuPy's name
        """ncclAllReduce of ``count`` elements; with one rank the result is the send buffer."""
        self._collective("AllReduce", sendbuf, recvbuf, count, datatype, stream, op=op)

    def reduce(self, sendbuf, recvbuf, count, datatype, op, root, stream):
        self._collective("Reduce", sendbuf, recvbuf, count, datatype, stream, op=op, root=root)

    def broadcast(self, sendbuff, recvbuff, count, datatype, root, stream):
        self._collective("Broadcast", sendbuff, recvbuff, count, datatype, stream, root=root)

    def bcast(self, buff, count, datatype, root, stream):
        self._collective("Bcast", buff, buff, count, datatype, stream, root=root)

    def allGather(self, sendbuf, recvbuf, count, datatype, stream):  # noqa: N802 - CuPy's name
        self._collective("AllGather", sendbuf, recvbuf, count, datatype, stream)

    def reduceScatter(self, sendbuf, recvbuf, recvcount, datatype, op, stream):  # noqa: N802 - CuPy's name
        self._collective("ReduceScatter", sendbuf, recvbuf, recvcount, datatype, stream, op=op)

    def _check_alive(self) -> None:
        # NCCL 2, src/enqueue.cc / argcheck.cc: a NULL communicator -> ncclInvalidArgument
        if not self._comm:
            raise NcclError(_INVALID_ARGUMENT, "comm argument is NULL (the communicator was destroyed)")

    def _collective(self, name, send, recv, count, datatype, stream, op=NCCL_SUM, root=0) -> None:
        # nccl.pyx (v13.6, v14) types the arguments intptr_t / size_t / int: Cython's conversions refuse the rest
        send, recv, stream = _int("sendbuf", send), _int("recvbuf", recv), _int("stream", stream)
        count, datatype, op, root = _int("count", count), _int("datatype", datatype), _int("op", op), _int("root", root)
        if count < 0:
            raise OverflowError("can't convert negative value to size_t")
        self._check_alive()
        # NCCL 2, src/argcheck.cc (ArgsCheck): the type, the op and the root are checked before anything runs
        if datatype not in _BYTES:
            raise NcclError(_INVALID_ARGUMENT, f"{name} : invalid type {datatype}")
        if op not in _OPS:
            raise NcclError(_INVALID_ARGUMENT, f"{name} : invalid reduction operation {op}")
        if not 0 <= root < self._ndev:
            raise NcclError(_INVALID_ARGUMENT,
                            f"{name} : invalid root {root} (root should be in the 0..{self._ndev - 1} range)")
        nbytes = count * _BYTES[datatype]
        if nbytes == 0:
            return
        # NCCL 2 checks the pointers only with NCCL_CHECK_POINTERS=1 (src/argcheck.cc, CudaPtrCheck); without it a
        # host pointer, or a count past the end of a buffer, is an illegal memory access of the kernel, which the
        # stand-in's array_at raises at once (cudaErrorIllegalAddress)
        source, target = standin.array_at(send, nbytes), standin.array_at(recv, nbytes)

        def launch():
            _on_stream(stream, lambda: target.__setitem__(slice(None), source.copy()))

        if _group_depth:
            _group.append(launch)
        else:
            launch()


def _int(name: str, value) -> int:
    """Cython's conversion of a Python object to a C integer argument (TypeError for floats, None, ...)."""
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"an integer is required for {name!r}, got {type(value).__name__}") from None


def _current_device() -> int:
    from . import runtime  # noqa: PLC0415 - the stand-in's cupy.cuda.runtime

    return runtime.getDevice()


def _on_stream(stream_ptr: int, fn) -> None:
    """One kernel launch on the stream ``stream_ptr``: recorded if that stream captures, else run now.

    NCCL 2.9+ collectives may be captured into CUDA graphs (NCCL user guide,
    "Using NCCL with CUDA Graphs"): the kernel goes into the graph of the stream
    it is launched on, which need not be the current one.
    """
    state = _device._captures.get(stream_ptr)  # the stand-in keys a capture by its stream's ptr
    if state is not None:
        state.launches.append(fn)
        return
    _device.count("launches")
    fn()
