"""Data-parallel training: a communicator over MPI (NumPy arrays) or NCCL (CuPy arrays).

``mpiexec -n N scratchgan train --distributed ...`` starts N ranks; each
computes the gradients of its share of the global batch, and one allreduce
per network update averages them, so every rank applies the same update to
the same parameters (the split ChainerMN and Horovod use). What is exchanged:

* at start, rank 0's state (weights, buffers, optimiser states, RNG, step:
  everything a checkpoint holds) goes to every rank once, over MPI
  (:meth:`Communicator.bcast_object`); :meth:`Communicator.broadcast_module`
  and :meth:`Communicator.broadcast_optimizer` do the same for a loop of
  your own;
* at every update, the gradients of all the parameters are packed into one
  contiguous buffer, summed over the ranks with one allreduce, divided by N
  and unpacked (:meth:`Communicator.allreduce_gradients`); a few scalars
  (the losses of the step) travel at the end of the same buffer.

The arrays decide the transport, with the same code: NumPy arrays go through
``MPI_Allreduce`` (mpi4py), CuPy arrays through NCCL's ``ncclAllReduce``
(``cupy.cuda.nccl``) on the current stream, with MPI for the start-up
exchange (NCCL's unique id included). A CuPy installation without NCCL falls
back to MPI through host copies.

Nothing here imports :mod:`mpi4py` until a :class:`Communicator` is made, and
a single process never makes one: without ``--distributed`` nothing changes.
Without mpi4py the error says what to install (``pip install
"scratchgan[mpi]"``: mpi4py and the ``mpich`` wheel).

A rank that fails must not leave the others waiting in a collective forever:
a :class:`Communicator` of more than one rank installs an exception hook that
prints the traceback and calls ``MPI_Abort`` (mpiexec then stops every rank),
and ``scratchgan train --distributed`` does the same for the errors it
reports in one line. See docs/distributed.md.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import sys
import time

import numpy as np

from .. import backend
from .config import ConfigError
from ..autograd.tensor import Tensor

__all__ = ["INEXACT", "INSTALL_HINT", "Communicator", "DistributedError", "local_shares", "local_slices"]

#: What to install for data-parallel training.
INSTALL_HINT = 'pip install "scratchgan[mpi]" (mpi4py and the mpich wheel)'


class DistributedError(RuntimeError):
    """Data-parallel training cannot start or go on (no MPI, ranks that disagree)."""


def _import_mpi():
    try:
        from mpi4py import MPI  # noqa: PLC0415 - the only import of mpi4py, and only when asked for
    except ImportError as exc:
        raise DistributedError(f"data-parallel training (--distributed) needs mpi4py and an MPI library, which are "
                               f"not installed: {INSTALL_HINT}; then start N ranks with "
                               f"mpiexec -n N scratchgan train --distributed ...") from exc
    return MPI


def local_slices(batch_size: int, pack: int = 1, rank: int = 0, size: int = 1) -> tuple[slice, slice]:
    """This rank's rows of a global batch: ``(samples, packs)``.

    Every rank draws the whole global batch (indices, noise, labels, the
    penalty's interpolation factors) from the shared random stream and keeps
    its contiguous share, ``batch_size / size`` samples, i.e. ``batch_size /
    (size * pack)`` PacGAN packs (a pack never straddles two ranks). Together
    the shares are exactly the batch one process draws, and the stream is the
    same for every N, so runs are comparable across N and a checkpoint
    resumes on any N.

    Raises :class:`~scratchgan.app.config.ConfigError` when the batch does not
    split into equal shares of whole packs (the mean of the ranks' mean
    losses is the global batch's mean loss only for equal shares).
    """
    if batch_size % (size * pack):
        by = f"{size} ranks" if pack == 1 else f"{size} ranks x pack {pack} = {size * pack}"
        lower = batch_size // (size * pack) * size * pack
        hint = f"e.g. {lower} or {lower + size * pack}" if lower else f"e.g. {size * pack}"
        raise ConfigError(f"--batch-size {batch_size} is the global batch, split into equal shares over "
                          f"{by}: it must be divisible by {size * pack} ({hint})")
    share = batch_size // size
    return slice(rank * share, (rank + 1) * share), slice(rank * share // pack, (rank + 1) * share // pack)


#: Options whose gradient on a share of the batch is not a share of the global batch's gradient:
#: (what is refused, a test of a config, why).
INEXACT = (
    ("--loss rasgan", lambda c: getattr(c, "loss", None) == "rasgan",
     "the relativistic average loss compares every sample with the mean logit of the whole other batch inside "
     "a non-linearity, so the mean of the ranks' gradients is not the global batch's gradient; rsgan (which pairs "
     "the samples) splits exactly"),
    ("--dragan", lambda c: (getattr(c, "dragan", 0) or 0) > 0,
     "DRAGAN perturbs the real samples by the standard deviation of the whole batch, which a rank's share does "
     "not have; R1 (--r1) or WGAN-GP split exactly"),
)


def local_shares(config, rank: int = 0, size: int = 1) -> tuple[slice, slice]:
    """:func:`local_slices` for a (resolved) training config, after checking that it splits exactly.

    Data-parallel training is exact for every loss term that is a mean over
    the samples (or packs) of the batch, penalties included; options that are
    not (:data:`INEXACT`) are refused with :class:`~scratchgan.app.config.ConfigError`
    when ``size > 1``. Batch norm's per-rank statistics are the one documented
    exception (docs/distributed.md).
    """
    if size > 1:
        for what, applies, why in INEXACT:
            if applies(config):
                raise ConfigError(f"{what} cannot be trained data-parallel: {why}; train it on one process")
    return local_slices(config.batch_size, config.pack, rank, size)


class Communicator:
    """The ranks of an MPI job, and the collectives a data-parallel step needs.

    Parameters
    ----------
    backend : {"numpy", "cupy"}, optional
        Where the arrays live (default: the active backend). With ``"cupy"``
        each rank takes the GPU ``local_rank`` (make the communicator before
        any CuPy array) and gradients travel over NCCL; two ranks that would
        share a GPU stop every rank here, with :class:`DistributedError`.
    mpi_comm : mpi4py communicator, optional
        Default ``MPI.COMM_WORLD``.
    abort_on_error : bool
        With more than one rank, install a :data:`sys.excepthook` that prints
        the traceback and aborts the whole job (``MPI_Abort``), so that an
        uncaught exception on one rank does not leave the others waiting.

    Attributes
    ----------
    rank, size : int
        This rank and the number of ranks.
    local_rank, local_size : int
        This rank's number among the ranks of its machine, and their number.
    device : int or None
        The GPU this rank took (``"cupy"``), else None.
    backend : str
        ``"numpy"`` or ``"cupy"``.
    transport : str
        What carries the gradients: ``"mpi"``, ``"nccl"`` or ``"mpi (host copies)"``.
    allreduce_calls, allreduce_bytes, allreduce_seconds
        Counters of :meth:`allreduce_gradients` (calls, bytes of the buffers
        reduced, seconds spent in the reduction itself, packing excluded); a
        benchmark reads and resets them.
    """

    def __init__(self, backend: str | None = None, *, mpi_comm=None, abort_on_error: bool = True):
        self._MPI = MPI = _import_mpi()
        self.mpi = MPI.COMM_WORLD if mpi_comm is None else mpi_comm
        self.rank, self.size = self.mpi.Get_rank(), self.mpi.Get_size()
        self.backend = _backend_name(backend)
        node = self.mpi.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)  # the ranks of this machine
        try:
            self.local_rank, self.local_size = node.Get_rank(), node.Get_size()
            self.device = self._take_gpu(node) if self.backend == "cupy" else None
        finally:
            node.Free()
        self.transport = "mpi"
        self._nccl = self._nccl_module = None
        if self.backend == "cupy":
            self._nccl_module = _nccl_module(_cupy())
            self.transport = "nccl" if self._nccl_module is not None else "mpi (host copies)"
        self._buffers: dict = {}  # (array module, dtype) -> flat buffer, reused by every step
        self._flag = np.zeros(1, dtype=np.int8)
        self.reset_counters()
        if abort_on_error and self.size > 1:
            _install_abort_hook(self)

    def __repr__(self) -> str:
        return (f"Communicator(rank={self.rank}, size={self.size}, backend={self.backend!r}, "
                f"transport={self.transport!r})")

    def reset_counters(self) -> None:
        """Zero :attr:`allreduce_calls`, :attr:`allreduce_bytes` and :attr:`allreduce_seconds`."""
        self.allreduce_calls, self.allreduce_bytes, self.allreduce_seconds = 0, 0, 0.0

    # ---- start-up: one GPU per rank
    def _take_gpu(self, node) -> int:
        """Make GPU ``local_rank`` this rank's device, once every rank knows that no two ranks share one.

        A collective of every rank (two allgathers, before any CuPy array is
        made): each rank tells the ranks of its machine which physical GPU it
        would take, then every rank hears of any machine where two ranks
        would share one, or of a rank that cannot use CuPy at all, and raises
        :class:`DistributedError` with the same message. Unchecked, two ranks
        on one GPU fail (or wait forever in NCCL's initialisation) only inside
        the first step. Returns the device index taken.
        """
        try:
            cupy = _cupy()
            count = int(cupy.cuda.runtime.getDeviceCount())
            index = self.local_rank % count  # local_rank itself whenever the machine shows enough GPUs
            mine = (self.rank, count, _gpu_identity(cupy, index), None)
        except Exception as exc:  # noqa: BLE001 - every rank must hear of it instead of waiting for this rank
            mine = (self.rank, 0, None, f"{type(exc).__name__}: {exc}")
        problem = _gpu_sharing_problem(node.allgather(mine), self._MPI.Get_processor_name())
        problems = [p for p in self.mpi.allgather(problem) if p]
        if problems:
            raise DistributedError(f"--backend cupy on {self.size} rank{'s' if self.size > 1 else ''} cannot start "
                                   f"(rank {self.rank} stops): {problems[0]}")
        cupy.cuda.Device(index).use()
        return index

    # ---- objects (MPI, pickled): start-up and control
    def bcast_object(self, obj, root: int = 0):
        """``obj`` of rank ``root`` on every rank (pickled over MPI; what the others pass is ignored)."""
        return self.mpi.bcast(obj, root=root)

    def allgather_object(self, obj) -> list:
        """Every rank's ``obj``, in rank order, on every rank."""
        return self.mpi.allgather(obj)

    def any(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on at least one (a decision all ranks take together)."""
        self._flag[0] = 1 if flag else 0  # a one-byte buffer, not a pickled object: the loop asks at every step
        self.mpi.Allreduce(self._MPI.IN_PLACE, self._flag, op=self._MPI.MAX)
        return bool(self._flag[0])

    def barrier(self) -> None:
        self.mpi.Barrier()

    def abort(self, code: int = 1) -> None:
        """Stop every rank of the job now (``MPI_Abort``); output is flushed first."""
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001, S110 - a closed stream must not keep the job alive
                pass
        time.sleep(0.2)  # let the launcher forward this rank's last lines before it tears the job down
        self.mpi.Abort(code)
        os._exit(code)  # MPI_Abort does not return; should it (a launcher already tearing the job down), still stop

    # ---- arrays: broadcast from one rank
    def broadcast_arrays(self, arrays, root: int = 0) -> None:
        """Overwrite ``arrays`` (NumPy or CuPy, any dtypes) in place with rank ``root``'s values.

        One broadcast per dtype, of one contiguous buffer; CuPy arrays go
        through the host (this is the start-up exchange, not the step).
        """
        groups: dict = {}
        for a in arrays:
            groups.setdefault(np.dtype(a.dtype), []).append(a)
        for dtype, group in groups.items():
            flat = np.concatenate([backend.to_numpy(a).ravel() for a in group]) if group else np.empty(0, dtype)
            self.mpi.Bcast(flat, root=root)
            if self.rank != root:
                offset = 0
                for a in group:
                    xp = backend.array_module(a)
                    a[...] = xp.asarray(flat[offset:offset + a.size].reshape(a.shape))
                    offset += a.size

    def broadcast_module(self, module, root: int = 0) -> None:
        """Give every rank rank ``root``'s parameters and buffers of ``module`` (in place: optimisers stay valid)."""
        arrays = [p.data for p in module.parameters()] + [b for _, b in module.named_buffers()]
        self.broadcast_arrays(arrays, root)

    def broadcast_optimizer(self, optimizer, root: int = 0) -> None:
        """Give every rank rank ``root``'s optimiser state (moments, step counts, learning rates)."""
        state = self.bcast_object(optimizer.state_dict() if self.rank == root else None, root)
        if self.rank != root:
            optimizer.load_state_dict(state)

    # ---- the step: one allreduce of every gradient
    def allreduce_gradients(self, params, record: dict | None = None) -> dict | None:
        """Average the gradients of ``params`` over the ranks, in place, with one allreduce.

        The gradients (every parameter whose ``.grad`` is set, in order; all
        of one dtype) are packed into one contiguous buffer, followed by the
        numeric values of ``record``; the buffer is summed over the ranks
        (MPI for NumPy arrays, NCCL for CuPy arrays), divided by the number of
        ranks, and unpacked into the gradients. Returns ``record`` with its
        numeric values averaged over the ranks (None when it is None).

        A record value may be a number (returned as a float: read back from
        the buffer, one device-to-host copy on the GPU) or a one-element array
        or :class:`~scratchgan.autograd.tensor.Tensor` (returned as a 0-d array, or
        Tensor, of the buffer's module, left on the device: a step that keeps
        its losses on the GPU until it logs reads nothing back here).

        With equal shares of the global batch and a loss that is a mean over
        the rank's share, the average of the ranks' gradients is the gradient
        of the global batch's mean loss, up to the order of the sums.
        """
        params = [p for p in params if p.grad is not None]
        grads = [p.grad.data for p in params]
        numbers = [k for k, v in (record or {}).items()
                   if isinstance(v, (int, float, np.number)) and not isinstance(v, bool)]
        arrays = [k for k, v in (record or {}).items() if _record_array(v) is not None]
        if not grads and not numbers and not arrays:
            return record
        first = grads[0] if grads else _record_array(record[arrays[0]]) if arrays else None
        xp = np if first is None else backend.array_module(first)
        dtypes = {g.dtype for g in grads}
        if len(dtypes) > 1:
            raise TypeError(f"allreduce_gradients: the gradients must share one dtype, got {sorted(map(str, dtypes))}")
        dtype = grads[0].dtype if grads else np.dtype(np.float64)
        n = sum(int(g.size) for g in grads)
        flat = self._buffer(xp, dtype, n + len(numbers) + len(arrays))
        parts = [g.reshape(-1) for g in grads]
        if numbers:  # one upload of the host values
            parts.append(xp.asarray(np.array([float(record[k]) for k in numbers], dtype=dtype)))
        parts += [xp.asarray(_record_array(record[k]), dtype=dtype).reshape(1) for k in arrays]
        xp.concatenate(parts, out=flat)
        start = time.perf_counter()
        self._allreduce_sum(flat, xp)
        flat /= self.size
        # a host copy of the numbers only: on the GPU it waits for the reduction
        tail = backend.to_host(flat[n:n + len(numbers)], "the data-parallel record's numbers") if numbers else ()
        self.allreduce_seconds += time.perf_counter() - start
        self.allreduce_calls += 1
        self.allreduce_bytes += flat.nbytes
        offset = 0
        for p, g in zip(params, grads):
            mean = flat[offset:offset + g.size].reshape(g.shape)
            offset += g.size
            if g.flags.c_contiguous and getattr(g.flags, "writeable", True):
                g[...] = mean
            else:  # a read-only or strided gradient: replace it
                p.grad = Tensor._wrap(mean.copy())
        if record is None:
            return None
        means = {k: float(v) for k, v in zip(numbers, tail)}
        for i, k in enumerate(arrays, start=n + len(numbers)):
            mean = flat[i:i + 1].reshape(()).copy()  # a 0-d copy: the buffer is the next reduction's
            means[k] = Tensor._wrap(mean) if isinstance(record[k], Tensor) else mean
        return {**record, **means}

    def _buffer(self, xp, dtype, size: int):
        key = (xp.__name__, np.dtype(dtype).str)
        buf = self._buffers.get(key)
        if buf is None or buf.size < size:
            buf = self._buffers[key] = xp.empty(size, dtype=dtype)
        return buf[:size]

    def _allreduce_sum(self, flat, xp) -> None:
        """Sum ``flat`` (a contiguous 1-D array) over the ranks, in place."""
        if xp is np:
            self.mpi.Allreduce(self._MPI.IN_PLACE, flat, op=self._MPI.SUM)
        elif self.transport == "nccl":
            cupy, nccl = _cupy(), self._nccl_module
            if self._nccl is None:  # collective: every rank reaches its first reduction together
                uid = self.bcast_object(nccl.get_unique_id() if self.rank == 0 else None)
                self._nccl = nccl.NcclCommunicator(self.size, uid, self.rank)
            kinds = {np.dtype(np.float32): nccl.NCCL_FLOAT32, np.dtype(np.float64): nccl.NCCL_FLOAT64}
            kind = kinds[np.dtype(flat.dtype)]
            stream = cupy.cuda.get_current_stream().ptr
            self._nccl.allReduce(flat.data.ptr, flat.data.ptr, flat.size, kind, nccl.NCCL_SUM, stream)
        else:  # CuPy without NCCL: through the host
            host = backend.to_numpy(flat)
            self.mpi.Allreduce(self._MPI.IN_PLACE, host, op=self._MPI.SUM)
            flat.set(host)

    # ---- checks
    def digest(self, arrays) -> str:
        """A SHA-256 of the arrays' bytes (host copies), to compare across ranks."""
        h = hashlib.sha256()
        for a in arrays:
            h.update(np.ascontiguousarray(backend.to_numpy(a)).tobytes())
        return h.hexdigest()

    def check_parameters_agree(self, *modules) -> None:
        """Raise :class:`DistributedError` on every rank unless all ranks hold bitwise the same parameters.

        A collective (every rank must call it): one digest per rank, gathered.
        """
        digests = self.allgather_object(self.digest(p.data for m in modules for p in m.parameters()))
        differ = [r for r, d in enumerate(digests) if d != digests[0]]
        if differ:
            raise DistributedError(f"the parameters of rank(s) {differ} differ from rank 0's: the ranks have "
                                   "diverged (a rank skipped an update, or its reduction differed); stopping")


def _backend_name(name) -> str:
    name = backend.get_backend() if name is None else name
    if name not in backend.BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {backend.BACKENDS}")
    return name


def _cupy():
    return backend._import_cupy()  # backend.py is the one module that imports CuPy


def _nccl_module(cupy):
    """CuPy's NCCL binding (``cupy.cuda.nccl``), or None when this CuPy was built without NCCL."""
    try:
        nccl = importlib.import_module(f"{cupy.__name__}.cuda.nccl")  # a submodule of the CuPy backend.py imported
    except ImportError:
        return None
    return nccl if getattr(nccl, "available", True) else None


def _record_array(value):
    """A record value's one-element array (of a Tensor, or itself), or None for anything else."""
    data = value.data if isinstance(value, Tensor) else value
    if isinstance(data, (np.generic, bool)) or not hasattr(data, "dtype") or not hasattr(data, "size"):
        return None
    return data if data.size == 1 and np.dtype(data.dtype).kind in "fiu" else None


def _gpu_identity(cupy, index: int) -> str:
    """The physical GPU behind this process's device ``index``, the same whatever CUDA_VISIBLE_DEVICES renumbered.

    Its PCI bus id (``Device.pci_bus_id``, cupy/cuda/device.pyx, CuPy 13/14); a
    CuPy without it falls back on the ``index``-th entry of CUDA_VISIBLE_DEVICES.
    """
    try:
        return str(cupy.cuda.Device(index).pci_bus_id)
    except Exception:  # noqa: BLE001 - no such property (an older or imitated CuPy), or the driver cannot say
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
        entries = [e.strip() for e in visible.split(",") if e.strip()]
        return f"GPU {entries[index]}" if index < len(entries) else f"GPU {index}"


def _gpu_sharing_problem(entries, host: str) -> str | None:
    """Why the ranks of one machine cannot take one GPU each, or None.

    ``entries``: ``(rank, device count, GPU identity, error)`` of every rank of the machine.
    """
    for rank, _, _, error in entries:
        if error:
            return f"rank {rank} (on {host}) cannot use CuPy: {error}"
    users: dict = {}
    for rank, _, gpu, _ in entries:
        users.setdefault(gpu, []).append(rank)
    shared = [(gpu, ranks) for gpu, ranks in users.items() if len(ranks) > 1]
    if not shared:
        return None
    counts = sorted({count for _, count, _, _ in entries})
    shows = " or ".join(map(str, counts)) + (" GPU" if counts == [1] else " GPUs")
    gpu, ranks = shared[0]
    return (f"{len(entries)} ranks run on {host}, which shows {shows} to each of them, so ranks {ranks} would share "
            f"one GPU ({gpu}); NCCL needs one GPU per rank: start at most {max(counts)} rank"
            f"{'s' if max(counts) > 1 else ''} per machine (mpiexec -n), or give each rank a GPU of its own with "
            "CUDA_VISIBLE_DEVICES (a wrapper that sets it from the local rank: $MPI_LOCALRANKID under MPICH, "
            "$OMPI_COMM_WORLD_LOCAL_RANK under Open MPI)")


def _install_abort_hook(comm: Communicator) -> None:
    """Make an uncaught exception on this rank abort the whole job instead of leaving the others waiting."""
    previous = sys.excepthook

    def hook(kind, value, tb):
        previous(kind, value, tb)
        sys.stderr.write(f"scratchgan.app.distributed: rank {comm.rank} of {comm.size} stopped on {kind.__name__}; "
                         "aborting every rank (MPI_Abort)\n")
        comm.abort(1)

    sys.excepthook = hook
