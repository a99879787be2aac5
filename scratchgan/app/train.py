"""The training loop: critic steps, then a generator step, with exact resume.

One *step* is one generator update, preceded by ``n_critic`` discriminator
updates; with ``lr_decay="linear"`` both learning rates of step ``t``
(0-based) are ``lr * (1 - t / max(lr_decay_steps, steps))``. Everything
random (data batches, noise, fake labels, interpolation factors) is drawn
from one ``numpy.random.Generator``, whose state the checkpoint stores, so
that ``k`` steps + resume + ``N - k`` steps reproduce ``N`` steps bit for bit
on the CPU.

On the GPU (``backend="cupy"``) the same draws come from a
:class:`~scratchgan.backend.device_rng.DeviceGenerator` (Philox4x32-10, its counter in
device memory, its state in the checkpoint: resume is exact there too), the
training split is uploaded once and batches are gathered on the device, and
the step's record stays on the device until the loop logs: a step that does
not log copies nothing to or from the host, and a logging step reads its
record back in one transfer (:func:`host_record`). The GPU run draws other
numbers than the CPU run of the same seed.

The outputs of a run, in its folder: ``config.json``, ``metrics.jsonl``,
``checkpoint.npz``, ``samples.png``, ``losses.png`` and ``eval.json``
(:data:`RUN_FILES`). The folder never loses work (docs/training.md, "The run
folder"): a new run refuses a folder that holds one (:class:`RunExistsError`)
unless told to overwrite it; :meth:`Trainer.run` writes only while holding the
folder's :class:`~scratchgan.app.runlog.RunLock`; every file is replaced
atomically or appended whole, and a write that fails stops the run with a
:class:`SaveError` naming the last safe step (a picture that fails only warns).

The networks come from :mod:`scratchgan.gan.models`, the metrics file, progress
bar and Ctrl-C handling from :mod:`scratchgan.app.runlog`, the final evaluation
from :mod:`scratchgan.gan.metrics` (toy data) and :mod:`scratchgan.app.image_eval`
(images).
"""

from __future__ import annotations

import contextlib
import copy
import errno
import json
import math
import os
import time
import warnings
from pathlib import Path

import numpy as np

from ..gan import auxiliary, losses
from .. import backend, nn, optim
from . import runlog
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import ConfigError, TrainConfig, resolve, step_fitted_changes
from .data import DeviceBatches, load_dataset
from ..backend.device_rng import DeviceGenerator
from .distributed import local_shares
from ..autograd.engine import grad, no_grad
from ..gan.models import build_discriminator, build_generator
from ..ops import sigmoid
from .runlog import METRICS
from ..autograd.tensor import Tensor, as_tensor

__all__ = ["CHECKPOINT", "METRICS", "RUN_FILES", "ResumeStepsError", "RunExistsError", "RunWarning", "SaveError",
           "Trainer", "TrainingError", "host_record", "lock_run_folder", "run_summary"]

CHECKPOINT = "checkpoint.npz"
#: The files of a run in its folder: a folder holding any of them holds a run; ``overwrite`` removes them (and
#: nothing else), the checkpoint last.
RUN_FILES = ("eval.json", "samples.png", "losses.png", "config.json", METRICS, CHECKPOINT)


class TrainingError(RuntimeError):
    """Training cannot go on (a NaN loss, an unusable output folder)."""


class RunExistsError(TrainingError):
    """A new run was pointed at a folder that already holds one (see :func:`run_summary`)."""

    def __init__(self, folder, summary: str, message: str):
        super().__init__(message)
        self.folder, self.summary = Path(folder), summary
        self.resumable = (self.folder / CHECKPOINT).is_file()


class SaveError(TrainingError):
    """Writing a file of the run failed (a full disk, a lost permission): the run stopped.

    ``path`` is the file, ``step`` the step the run had reached, ``safe_step``
    the step of the last good checkpoint on disk (None when none was saved).
    """

    def __init__(self, message: str, path, step: int, safe_step: int | None):
        super().__init__(message)
        self.path, self.step, self.safe_step = Path(path), step, safe_step


class ResumeStepsError(ConfigError):
    """A resume asked for fewer steps in total than its run has done (``done``, ``asked``): it cannot shorten a run."""

    def __init__(self, message: str, done: int, asked: int):
        super().__init__(message)
        self.done, self.asked = done, asked


class RunWarning(UserWarning):
    """Something of a run went wrong without stopping it (a picture that could not be written, a stale lock)."""


def run_summary(out_dir) -> str | None:
    """A few words on the run that ``out_dir`` holds (data set, loss, step), or None when it holds none.

    A folder holds a run when any of :data:`RUN_FILES` is in it. The step is
    the checkpoint's (the step a resume starts from); ``finished`` means
    ``eval.json`` was written.
    """
    folder = Path(out_dir)
    if not any((folder / name).is_file() for name in RUN_FILES):
        return None
    config, step, unreadable = {}, None, False
    path = folder / CHECKPOINT
    if path.is_file():
        try:
            tree = load_checkpoint(path)
            step, config = int(tree["step"]), tree.get("config") or {}
        except (CheckpointError, KeyError, TypeError, ValueError):
            unreadable = True
    if not isinstance(config, dict) or not config:
        try:
            config = json.loads((folder / "config.json").read_text())
        except (OSError, ValueError):
            config = {}
    config = config if isinstance(config, dict) else {}
    text = f"{config.get('data', 'unknown data')}, loss {config.get('loss', 'unknown')}, "
    if unreadable:
        text += "an unreadable checkpoint"
    elif step is None:
        text += "no checkpoint yet"
    else:
        text += f"step {step}" + (f" of {config['steps']}" if config.get("steps") else "")
    if (folder / "eval.json").is_file():
        text += ", finished"
    return text


def lock_run_folder(out_dir) -> runlog.RunLock:
    """Take the writer's lock of a run folder (created if missing); see :class:`~scratchgan.app.runlog.RunLock`.

    Raises :class:`~scratchgan.app.runlog.RunLockedError` when another process
    holds it and :class:`TrainingError` when the folder cannot be written.
    """
    lock = runlog.RunLock(out_dir)
    try:
        return lock.acquire()
    except OSError as exc:
        raise TrainingError(f"cannot write to the output folder {out_dir}: {exc.strerror or exc}; "
                            "choose another with --out") from None


def _file_signature(path: Path):
    """What changes when a file is replaced or rewritten (None when it does not exist)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def _reason(exc: OSError) -> str:
    name = errno.errorcode.get(exc.errno) if exc.errno else None
    return f"{exc.strerror or exc}" + (f" [{name}]" if name else "")


# --------------------------------------------------------------------------- optimisers


def _make_optimizer(config: TrainConfig, params, lr):
    if config.optimizer == "adam":
        return optim.Adam(params, lr=lr, betas=tuple(config.betas))
    if config.optimizer == "rmsprop":
        return optim.RMSprop(params, lr=lr)
    return optim.SGD(params, lr=lr)


def _grad_norm(params, on_device: bool = False):
    """The L2 norm of all the gradients together, in float64.

    On the GPU a 0-d device array (summed on the device, read when the
    record is logged); on the CPU a float.
    """
    squares = [(p.grad.data.astype(np.float64) ** 2).sum() for p in params if p.grad is not None]
    if on_device:
        xp = backend.array_module(squares[0]) if squares else backend.xp
        return xp.sqrt(xp.stack(squares).sum()) if squares else xp.zeros((), dtype=np.float64)
    total = 0.0
    for square in squares:
        total += float(square)
    return math.sqrt(total)


def host_record(record: dict) -> dict:
    """A step's record with its device scalars (0-d CuPy arrays) as floats, read back in one transfer.

    A record of floats (the CPU's) comes back as it is.
    """
    return _read_record(record, ())[0]


def _read_record(record: dict, extra, what: str = "the record of a logged training step") -> tuple[dict, list]:
    """``(record as floats, the values of the 0-d device arrays extra)``, all read back in one transfer."""
    keys = [k for k, v in record.items() if not isinstance(v, (int, float, np.number))]
    arrays = [record[k] for k in keys] + list(extra)
    if not arrays:
        return dict(record), []
    xp = backend.array_module(arrays[0])
    values = backend.to_host(xp.stack([a.astype(np.float64) for a in arrays]), what).tolist()
    return {**record, **dict(zip(keys, values))}, values[len(keys):]


# --------------------------------------------------------------------------- trainer


class Trainer:
    """Builds data, networks and optimisers from a config, trains, saves, resumes.

    Parameters
    ----------
    config : TrainConfig
    out_dir : path
        The run's folder (created if missing; must be writable). A folder that
        already holds a run (:func:`run_summary`) is refused with
        :class:`RunExistsError`, here and again when :meth:`run` starts,
        unless ``overwrite`` is true; to continue that run use
        :meth:`resume`, to read it :meth:`load`.
    overwrite : bool
        Replace the run in ``out_dir``: when :meth:`run` (or :meth:`save`)
        first writes, with the folder's lock held, it removes the old run's
        :data:`RUN_FILES` (nothing else).
    lock : RunLock, optional
        The folder's lock, already held by the caller (the command line takes
        it before loading the data; a data-parallel run has rank 0 hold it).
        Without it, :meth:`run` takes the lock itself and releases it when it
        returns, however it ends; :meth:`save` and :meth:`save_pictures`
        outside :meth:`run` take it for their write.
    comm : scratchgan.app.distributed.Communicator, optional
        Data-parallel training (docs/distributed.md): every rank of ``comm``
        makes its Trainer with the same config and folder; each computes the
        gradients of its share of the global batch ``batch_size``, one
        allreduce per update averages them, and every rank starts from rank
        0's state. Only rank 0 touches the run folder (lock, checkpoints,
        metrics, pictures, evaluation). None (the default): one process.
    """

    def __init__(self, config: TrainConfig, out_dir, *, overwrite: bool = False, lock: runlog.RunLock | None = None,
                 comm=None):
        self._setup(config, out_dir, "overwrite" if overwrite else "new", lock, comm)
        self._sync_ranks()

    def _setup(self, config: TrainConfig, out_dir, mode: str, lock, comm=None) -> None:
        """``mode``: "new" (refuse a folder with a run), "overwrite", "resume" (the folder's run is ours) or "read"."""
        self.config = resolve(config)  # the checks that need no data, before anything is loaded
        self.out_dir = Path(out_dir)
        self.comm, self._writer = comm, comm is None or comm.rank == 0  # data-parallel: rank 0 writes the run
        rank, size = (0, 1) if comm is None else (comm.rank, comm.size)
        # this rank's rows of each global batch (every rank draws the whole batch and keeps its share)
        self._share, self._pack_share = local_shares(self.config, rank, size)
        self._mode, self._lock, self._active_lock = mode, lock, None
        self._saved_step = None  # the step of the checkpoint on disk that this run wrote or loaded
        self._checkpoint_signature = None  # that file's (inode, size, mtime), to notice another writer
        if lock is not None and Path(os.path.abspath(lock.folder)) != Path(os.path.abspath(self.out_dir)):
            raise ValueError(f"the lock is for {lock.folder}, not for the run folder {self.out_dir}")
        if mode == "new" and self._writer:
            self._refuse_existing_run()
        if mode != "read" and self._writer:
            try:
                runlog.check_writable(self.out_dir)
            except OSError as exc:
                raise TrainingError(f"cannot write to the output folder {self.out_dir}: {exc.strerror or exc}; "
                                    "choose another with --out") from None
        backend.set_backend(self.config.backend)
        self.data = load_dataset(self.config.data, self.config.data_path)
        self.config = resolve(config, self.data)  # the recipe's architecture may depend on the image sides
        if self.config.aux == "acgan" and self.data.num_classes < 2:
            raise ConfigError(f"--aux acgan needs labelled data (its D classifies the real images by their labels); "
                              f"{self.data.name} has no classes")
        if self.config.conditional and self.data.num_classes < 2:
            raise ConfigError(f"conditional training needs labelled data; {self.data.name} has no classes")
        c = self.config
        init_rng = np.random.default_rng([c.seed, 0])
        # G, D, then G's EMA copy from one stream: this order fixes the initial weights of a seed
        self.G = build_generator(c, self.data, init_rng)
        self.D = build_discriminator(c, self.data, init_rng)
        self.G_ema = build_generator(c, self.data, init_rng) if c.ema_decay > 0 else None
        if self.G_ema is not None:
            self.G_ema.load_state_dict(self.G.state_dict())
        self.opt_g = _make_optimizer(c, list(self.G.parameters()), c.lr_g)
        self.opt_d = _make_optimizer(c, list(self.D.parameters()), c.lr_d)
        self.rng = np.random.default_rng([c.seed, 1])
        # the GPU draws on the device (a counter-based stream, saved with the checkpoint); the CPU keeps self.rng
        self._on_device = backend.get_backend() == "cupy"
        self.device_rng = DeviceGenerator([c.seed, 1]) if self._on_device else None
        self._batches = None  # the training split on the device (DeviceBatches), uploaded at the first batch
        self._step_blocks = None  # GPU: the Philox blocks one step draws (learnt at the first step), see _draws
        self._first_bad = None  # GPU: a 0-d device array, the first step whose loss was not finite (-1: none)
        self.step = 0

    def _sync_ranks(self) -> None:
        """Data-parallel: every rank takes rank 0's state (weights, buffers, optimisers, RNG, step), once.

        The ranks build the same networks from the same seed anyway; this makes
        it so whatever differs between machines, and checks that every rank
        was started with rank 0's options.
        """
        if self.comm is None:
            return
        tree = self.comm.bcast_object(self.state() if self.comm.rank == 0 else None)
        if self.comm.rank != 0:
            mine, theirs = self.config.to_dict(), tree["config"]
            differ = sorted(k for k in mine if k != "data_path" and mine[k] != theirs.get(k))
            if differ:
                raise ConfigError(f"rank {self.comm.rank} was started with other options than rank 0: "
                                  + ", ".join(f"{k} {mine[k]!r} here, {theirs.get(k)!r} on rank 0" for k in differ))
            self.load_state(tree, source="rank 0's state")

    # ---- sampling helpers
    def _tensor(self, array) -> Tensor:
        """A host array as a tensor of the run's dtype on the active backend (cast on the host)."""
        return as_tensor(np.asarray(array, dtype=self.config.dtype))

    def _labels(self, array) -> Tensor:
        return as_tensor(np.asarray(array, dtype=np.int64))

    def _device_labels(self, array, high: int) -> Tensor:
        """Labels drawn on the device, vouched for (in [0, high) by construction: no range check reads them)."""
        t = as_tensor(array)
        backend.vouch_indices(t.data, high)
        return t

    # every draw is of the global batch (n = batch_size rows); data-parallel, this rank keeps its share
    def _noise(self, n) -> Tensor:
        dtype = np.dtype(self.config.dtype)
        if self.device_rng is not None:
            return as_tensor(self.device_rng.standard_normal((n, self.config.z_dim), dtype)[self._share])
        return self._tensor(self.rng.standard_normal((n, self.config.z_dim), dtype=dtype)[self._share])

    def _real_batch(self):
        if self.device_rng is not None:
            if self._batches is None:  # the one upload of the data set
                self._batches = DeviceBatches(self.data, self.config.dtype, backend.xp)
            x, y = self._batches.sample(self.device_rng, self.config.batch_size)
            return as_tensor(x[self._share]), self._device_labels(y[self._share], self.data.num_classes)
        x, y = self.data.sample_batch(self.rng, self.config.batch_size)
        x, y = x[self._share], y[self._share]
        return self._tensor(x.reshape(len(x), -1)), self._labels(y)

    def _fake_labels(self, n):
        if not self.config.conditional:
            return None
        k = self.data.num_classes
        if self.device_rng is not None:
            return self._device_labels(self.device_rng.integers(0, k, n)[self._share], k)
        return self._labels(self.rng.integers(0, k, n)[self._share])

    # ---- ACGAN / InfoGAN (config.aux; scratchgan.gan.auxiliary, docs/losses.md "ACGAN and InfoGAN")
    def _info_codes(self, n):
        """InfoGAN's codes of a global batch of ``n``, drawn after the noise (None for other runs: no draw)."""
        source = self.rng if self.device_rng is None else self.device_rng
        return auxiliary.draw_info_codes(source, n, self.config, self._share)

    def _generate(self, z, labels, codes):
        """``G(z, labels)``, with InfoGAN's codes when there are some."""
        if codes is None:
            return self.G(z, labels)
        return self.G(z, labels, codes=auxiliary.as_code_tensor(codes, self.config))

    def _discriminate(self, x, labels, with_aux: bool):
        """``(D(x), aux_logits)``: both heads on one pass when ``with_aux``, else ``(D(x), None)``."""
        if with_aux:
            return self.D.forward_with_aux(x, labels)
        return self.D(x, labels), None

    def _value(self, array):
        """A scalar of the step's record from a 0-d array: a float on the CPU, the device array itself on the GPU.

        The GPU's values are read back only when the loop logs (:func:`host_record`): reading each at
        every step would make the host wait for the GPU several times a step.
        """
        return array if self._on_device else float(array)

    # ---- one update of each network
    def d_update(self) -> dict:
        c = self.config
        real, y_real = self._real_batch()
        y_fake = self._fake_labels(c.batch_size)
        with no_grad():
            z = self._noise(c.batch_size)
            codes = self._info_codes(c.batch_size)
            fake = self._generate(z, y_fake, codes)
        y_real = y_real if c.conditional else None
        self.opt_d.zero_grad()
        real_out, real_aux = self._discriminate(real, y_real, c.aux == "acgan")  # InfoGAN's Q sees fakes only
        fake_out, fake_aux = self._discriminate(fake, y_fake, c.aux != "none")
        loss = losses.d_loss(_loss_kind(c.loss), real_out, fake_out, label_smoothing=c.label_smoothing)
        aux_loss = auxiliary.aux_d_loss(c, real_aux, fake_aux, y_real, y_fake, codes)
        if aux_loss is not None:
            loss = loss + aux_loss * c.aux_weight
        gp = c.loss == "wgan-gp" and c.penalty_weight > 0
        if gp or c.r1 > 0 or c.dragan > 0:
            # penalties on D's own input: with PacGAN packing that is the packed batch (N / pack rows of
            # pack * dim), so GP interpolates and takes norms per pack and R1 sums a pack's squared gradients
            critic = self._packed_critic(y_real)
            real_p = _pack_rows(real, c.pack)
        # the GPU checks no penalty input on the host (a read each): they are the trainer's own draws and data,
        # and a NaN among them makes the loss NaN, which the loop reports
        check = not self._on_device
        rows = c.batch_size // c.pack
        if gp:
            if self.device_rng is None:
                alpha = self._tensor(self.rng.uniform(size=(rows, 1)).astype(c.dtype)[self._pack_share])
            else:
                alpha = as_tensor(self.device_rng.random((rows, 1), c.dtype)[self._pack_share])
            loss = loss + losses.gradient_penalty(critic, real_p, _pack_rows(fake, c.pack), weight=c.penalty_weight,
                                                  alpha=alpha, check_inputs=check)
        if c.r1 > 0:
            loss = loss + losses.r1_penalty(critic, real_p, c.r1, check_inputs=check)
        if c.dragan > 0:
            # DRAGAN's draws for the global batch, in dragan_penalty's own order (noise, then one alpha per row)
            source = self.rng if self.device_rng is None else self.device_rng
            dtype = np.float64 if self.device_rng is None else c.dtype  # the CPU's draws as they always were
            noise = source.random((rows,) + real_p.shape[1:], dtype)[self._pack_share]
            alpha = source.random(rows, dtype)[self._pack_share]
            loss = loss + losses.dragan_penalty(critic, real_p, weight=c.dragan, noise=noise, alpha=alpha,
                                                check_inputs=check)
        loss.backward()
        record = {"d_loss": self._value(loss.data), "d_real": self._value(_mean_output(c.loss, real_out)),
                  "d_fake": self._value(_mean_output(c.loss, fake_out))}
        if aux_loss is not None:
            record["d_aux"] = self._value(aux_loss.data)
        if self.comm is not None:  # data-parallel: the global batch's mean gradient (and record) on every rank
            record = self.comm.allreduce_gradients(self.D.parameters(), record)
        self.opt_d.step()
        if c.loss == "wgan":
            losses.clip_weights(self.D, c.clip_value)
        return record

    def _packed_critic(self, labels):
        """``D`` as a function of its packed input (N / pack, pack * dim), one score per row."""
        pack, D = self.config.pack, self.D
        if pack == 1:
            return (lambda x: D(x, labels)) if self.config.conditional else D
        return lambda u: D(u.reshape(u.shape[0] * pack, u.shape[1] // pack), labels)

    def g_update(self) -> dict:
        c = self.config
        kind = _loss_kind(c.loss)
        real_out = None
        if kind in losses.RELATIVISTIC_KINDS:
            # a relativistic G loss compares with D on real data: a fresh real batch, as the author's code draws;
            # a constant for G, so D's graph on it is not recorded
            real, y_real = self._real_batch()
            with no_grad():
                real_out = self.D(real, y_real if c.conditional else None)
        y_fake = self._fake_labels(c.batch_size)
        z = self._noise(c.batch_size)
        codes = self._info_codes(c.batch_size)
        fake_out, fake_aux = self._discriminate(self._generate(z, y_fake, codes), y_fake, c.aux != "none")
        loss = losses.g_loss(kind, fake_out, real_out)
        aux_loss = auxiliary.aux_g_loss(c, fake_aux, y_fake, codes)
        if aux_loss is not None:  # through D's head, into G (D's weights are not updated here)
            loss = loss + aux_loss * c.aux_weight
        params = list(self.G.parameters())
        # grad() walks only the part of the graph that leads to G: D's gradients are not computed
        for p, g in zip(params, grad(loss, params)):
            p.grad = g
        record = {"g_loss": self._value(loss.data)}
        if aux_loss is not None:
            record["g_aux"] = self._value(aux_loss.data)
        if self.comm is not None:  # data-parallel: the global batch's mean gradient (and record) on every rank
            record = self.comm.allreduce_gradients(params, record)
        self.opt_g.step()
        if self.G_ema is not None:
            _ema_update(self.G_ema, self.G, c.ema_decay)
        return record

    @contextlib.contextmanager
    def _draws(self):
        """GPU: the draws of a step served from one Philox evaluation (the same numbers, fewer launches).

        Every step of a run draws the same number of blocks: the first step
        draws one by one and counts them, the later ones evaluate them at
        once (:meth:`~scratchgan.backend.device_rng.DeviceGenerator.batched`).
        """
        if self.device_rng is None:
            yield
            return
        with self.device_rng.batched(self._step_blocks) as taken:
            yield
        self._step_blocks = taken[0]

    def lr_factor(self, step: int | None = None) -> float:
        """Multiplier of both learning rates for the generator update number ``step`` (0-based).

        ``"linear"``: ``1 - step / H`` with the horizon ``H = max(lr_decay_steps, steps)``,
        so a run of ``H`` steps ends at ``lr / H``. ``lr_decay_steps`` defaults to the
        run's ``steps`` when it starts (:func:`~scratchgan.app.config.resolve`) and is saved
        with the run, so ``H`` does not change when a run is stopped early: k steps +
        resume reproduce the straight run exactly. Resuming with more steps stretches
        the rest of the decay over the new length, and :meth:`resume` says so (a
        :class:`RunWarning`): the result differs from a straight run of that length.
        """
        c = self.config
        step = self.step if step is None else step
        if c.lr_decay == "linear":
            return max(1.0 - step / max(c.lr_decay_steps or 0, c.steps), 0.0)
        return 1.0

    def _set_lr(self) -> None:
        factor = self.lr_factor()
        self.opt_g.lr = self.config.lr_g * factor
        self.opt_d.lr = self.config.lr_d * factor

    def train_step(self, with_norms: bool = True) -> dict:
        """One generator step after ``n_critic`` discriminator steps; returns its record.

        ``with_norms`` adds the gradient norms of both networks (a pass over
        every gradient, so the loop asks for it only on the steps it logs).

        The record's values are floats on the CPU; on the GPU the losses,
        mean outputs and norms are 0-d device arrays (``float(v)`` reads one,
        :func:`host_record` all of them in one transfer): a GPU step copies
        nothing to or from the host, so it can also be recorded as a CUDA
        graph (:func:`scratchgan.accel.cuda_graph.capture`) when the learning rate
        is constant.
        """
        if self.config.lr_decay != "none" and backend.is_capturing():
            raise backend.CaptureError(
                f"the learning-rate decay (lr_decay={self.config.lr_decay!r}) sets a new learning rate on the host "
                "before each step, and a captured step would replay the rate of the capture at every replay; "
                "train with lr_decay='none' (--lr-decay none) to capture the step")
        self._set_lr()
        record = {}
        with self._draws():
            for _ in range(self.config.n_critic):
                record.update(self.d_update())
            record.update(self.g_update())
        if with_norms:
            # g_update takes G's gradients with grad(): D.grad still holds the last critic update's
            record["grad_norm_d"] = _grad_norm(self.D.parameters(), self._on_device)
            record["grad_norm_g"] = _grad_norm(self.G.parameters(), self._on_device)
        record["lr_g"], record["lr_d"] = self.opt_g.lr, self.opt_d.lr
        self.step += 1
        return record

    def measure_step_time(self, min_steps: int = 3, min_seconds: float = 0.3, max_steps: int = 50) -> float:
        """Seconds per training step, measured on a throwaway copy of the networks, optimisers and RNG.

        One warm-up step, then at least ``min_steps`` steps and ``min_seconds``
        (at most ``max_steps``). The run itself is untouched: its weights,
        optimiser states, RNG state and step stay as they were.
        """
        clone = copy.copy(self)
        memo = {id(self.data): self.data}
        clone.G, clone.D, clone.G_ema, clone.opt_g, clone.opt_d, clone.rng, clone.device_rng = copy.deepcopy(
            (self.G, self.D, self.G_ema, self.opt_g, self.opt_d, self.rng, self.device_rng), memo)
        clone.train_step(with_norms=False)
        if self.comm is not None:  # data-parallel steps are collectives: every rank takes the same number
            max_steps = min_steps
        backend.synchronize()  # the GPU queues the steps: time them from an idle device to a finished one
        done, start = 0, time.perf_counter()
        while done < max_steps and (done < min_steps or time.perf_counter() - start < min_seconds):
            clone.train_step(with_norms=False)
            done += 1
            backend.synchronize()
        return (time.perf_counter() - start) / done

    # ---- the run folder
    def _refuse_existing_run(self) -> None:
        summary = run_summary(self.out_dir)
        if summary is None:
            return
        out = str(self.out_dir)
        resume = f"continue it with Trainer.resume({out!r}), " if (self.out_dir / CHECKPOINT).is_file() else ""
        raise RunExistsError(self.out_dir, summary,
                             f"{out} already holds a run ({summary}); {resume}replace it with "
                             f"Trainer(config, {out!r}, overwrite=True), or choose another folder")

    @contextlib.contextmanager
    def _writing(self):
        """Hold the folder's lock (the caller's, or one taken here) and claim the folder while writing into it.

        Nested uses (a save inside :meth:`run`) reuse the outer one. The lock
        taken here is released on the way out, however the block ends.
        """
        if self._mode == "read":
            raise TrainingError(f"this Trainer reads the run in {self.out_dir} (Trainer.load) and writes nothing; "
                                "use Trainer.resume to continue it")
        if self._active_lock is not None or not self._writer:  # nested; or a data-parallel rank > 0 (no files)
            yield
            return
        lock = self._lock if self._lock is not None and self._lock.held else lock_run_folder(self.out_dir)
        own = lock is not self._lock
        if own and lock.note:
            warnings.warn(lock.note, RunWarning, stacklevel=4)
        self._active_lock = lock
        try:
            self._claim_folder()
            yield
        finally:
            self._active_lock = None
            if own:
                lock.release()

    def _claim_folder(self) -> None:
        """With the lock held: refuse another run, remove the run being overwritten, or check ours is unchanged."""
        runlog.remove_temp_files(self.out_dir, RUN_FILES)  # left by writes that were killed; nobody else writes
        if self._mode == "new":
            self._refuse_existing_run()  # again: the folder may have been used since the constructor looked
        elif self._mode == "overwrite":
            for name in RUN_FILES:  # the checkpoint last: a removal that fails keeps what matters most
                try:
                    (self.out_dir / name).unlink(missing_ok=True)
                except OSError as exc:
                    raise TrainingError(f"cannot remove the old run's {name} from {self.out_dir} to overwrite it: "
                                        f"{_reason(exc)}") from None
        elif _file_signature(self.out_dir / CHECKPOINT) != self._checkpoint_signature:
            raise TrainingError(f"the checkpoint in {self.out_dir} changed since this Trainer loaded or wrote it "
                                "(another process wrote it); load it again with Trainer.resume")
        self._mode = "resume"  # from now on the folder's run is this one

    def _save_error(self, what: str, path, exc: OSError) -> SaveError:
        """The error that stops a run whose write of ``what`` failed, naming the last safe step."""
        safe = self._saved_step
        if safe is None:
            advice = "no checkpoint was saved yet, so no step is safe: free some space or choose another folder, " \
                     "and start again"
        else:
            advice = (f"the last good checkpoint, {self.out_dir / CHECKPOINT}, is intact and holds step {safe}: "
                      f"step {safe} is safe; free some space, then continue with: scratchgan train --resume "
                      f"--out {self.out_dir}")
        return SaveError(f"could not write {what} {path} at step {self.step}: {_reason(exc)}; {advice}",
                         path, self.step, safe)

    def _checkpoint(self) -> None:
        if self.comm is not None:  # data-parallel: the ranks must hold the same weights (else stop, clearly)
            self.comm.check_parameters_agree(self.G, self.D)
        try:
            self.save()
        except OSError as exc:
            raise self._save_error("the checkpoint", self.out_dir / CHECKPOINT, exc) from exc

    def _pictures(self) -> None:
        """The pictures, or a warning: a picture that cannot be written does not stop the run."""
        try:
            self.save_pictures()
        except OSError as exc:
            warnings.warn(f"could not write the pictures in {self.out_dir} at step {self.step}: {_reason(exc)}; "
                          "training goes on (the previous pictures are kept; a resume needs only the checkpoint "
                          "and the metrics)", RunWarning, stacklevel=3)

    # ---- the loop
    def run(self, progress: bool | None = None, on_log=None) -> dict:
        """Train up to ``config.steps`` total steps; returns the final evaluation.

        Holds the run folder's lock throughout (see the class docstring) and
        first claims the folder: a new run refuses one that holds a run, an
        ``overwrite`` run removes the old run's files.

        Ctrl-C saves a checkpoint and re-raises ``KeyboardInterrupt``. A NaN
        or Inf loss raises :class:`TrainingError` naming the step; the last
        good checkpoint on disk is kept. A checkpoint, metrics or config write
        that fails raises :class:`SaveError` naming the file and the last safe
        step; a picture or ``eval.json`` that fails gives a :class:`RunWarning`.
        """
        with self._writing():
            return self._run(progress, on_log)

    def _run(self, progress, on_log) -> dict:
        c = self.config
        if self._writer:  # data-parallel: rank 0 alone writes the run's files
            try:
                runlog.write_text_atomic(self.out_dir / "config.json", json.dumps(c.to_dict(), indent=1) + "\n")
            except OSError as exc:
                raise self._save_error("the config", self.out_dir / "config.json", exc) from exc
            try:
                runlog.truncate_metrics(self.out_dir / METRICS, self.step)
            except OSError as exc:
                raise self._save_error("the metrics file", self.out_dir / METRICS, exc) from exc
        bar = runlog.progress_bar(self.step, c.steps, progress if self._writer else False)
        last_time, last_step = time.perf_counter(), self.step
        interrupted = runlog.InterruptFlag()
        try:
            with interrupted:
                while self.step < c.steps:
                    log_now = (self.step + 1) % c.log_every == 0 or self.step + 1 == c.steps
                    record = self.train_step(with_norms=log_now)
                    # the GPU checks the losses (a read back) only before something is written or logged
                    writes = log_now or self.step % c.checkpoint_every == 0 or self.step % c.sample_every == 0
                    record = self._checked(record, read=log_now, check=writes)
                    if bar is not None:
                        bar.update(1)
                        if not self._on_device or log_now:  # the GPU's losses are on the host on logged steps
                            bar.set_postfix(d=f"{record['d_loss']:.3f}", g=f"{record['g_loss']:.3f}", refresh=False)
                    if log_now:
                        now = time.perf_counter()
                        record["steps_per_sec"] = (self.step - last_step) / max(now - last_time, 1e-9)
                        last_time, last_step = now, self.step
                        record = {"step": self.step, **record}
                        try:
                            if self._writer:
                                runlog.append_jsonl(self.out_dir / METRICS, record)
                        except OSError as exc:  # the file keeps its complete lines; stop before more is lost
                            raise self._save_error("the metrics file", self.out_dir / METRICS, exc) from exc
                        if on_log is not None:
                            on_log(record)
                    if self.step % c.checkpoint_every == 0:
                        self._checkpoint()
                    if self.step % c.sample_every == 0:
                        self._pictures()
                    # data-parallel: all ranks stop at the same step when any of them was interrupted
                    if interrupted.raised if self.comm is None else self.comm.any(interrupted.raised):
                        raise KeyboardInterrupt
        except KeyboardInterrupt:
            if self._on_device:
                self._verify_finite()  # the CPU checked every step; the GPU checks before it writes
            self._checkpoint()
            raise
        finally:
            if bar is not None:
                bar.close()
        self._checkpoint()
        self._pictures()
        if not self._writer:  # data-parallel rank > 0: rank 0 evaluates; every rank returns its result
            return self.comm.bcast_object(None)
        result = self.evaluate()
        try:
            runlog.write_text_atomic(self.out_dir / "eval.json", json.dumps(result, indent=1) + "\n")
        except OSError as exc:
            warnings.warn(f"could not write {self.out_dir / 'eval.json'}: {_reason(exc)}; the run is complete "
                          f"(checkpoint at step {self.step}) and `scratchgan eval --run {self.out_dir}` prints the "
                          "evaluation again", RunWarning, stacklevel=3)
        return result if self.comm is None else self.comm.bcast_object(result)

    def _checked(self, record: dict, read: bool, check: bool) -> dict:
        """Raise :class:`TrainingError` when a loss of the step is NaN or Inf; returns the record.

        The CPU checks every step. The GPU notes on the device the first
        step whose losses were not finite, and reads that note back only when
        ``check`` (a step that logs or writes: no checkpoint, picture or
        metrics line is made of a diverged run, :meth:`_verify_finite`); with
        ``read`` the record is read back too, in the same transfer, and
        returned as floats.
        """
        if not self._on_device:
            if not all(math.isfinite(record[k]) for k in ("d_loss", "g_loss")):
                self._diverged(self.step, f"d_loss={record['d_loss']}, g_loss={record['g_loss']}")
            return record
        xp = backend.xp
        if self._first_bad is None:
            self._first_bad = xp.full((), -1, dtype=np.int64)
        finite = xp.isfinite(record["d_loss"]) & xp.isfinite(record["g_loss"])
        self._first_bad = xp.where(~finite & (self._first_bad < 0), self.step, self._first_bad)
        if read:
            return self._verify_finite(record)
        if check:
            self._verify_finite()
        return record

    def _verify_finite(self, record: dict | None = None) -> dict | None:
        """GPU: raise :class:`TrainingError` when the losses of a step so far were not finite.

        One read back: of the note :meth:`_checked` keeps on the device, and
        of ``record`` (returned as floats) when one is given.
        """
        if self._first_bad is None:  # no step yet
            return record
        if record is not None:
            record, (first_bad,) = _read_record(record, [self._first_bad])
        else:
            first_bad = backend.host_scalar(self._first_bad, "the trainer's check for a NaN or Inf loss")
        if self.comm is not None:  # data-parallel: every rank decides on every rank's losses
            first_bad, record = self._across_ranks(first_bad, record)
        if first_bad >= 0:
            now = "" if record is None else f"; at step {self.step}: d_loss={record['d_loss']}, " \
                                            f"g_loss={record['g_loss']}"
            self._diverged(int(first_bad), f"found at step {self.step}: the GPU checks the losses when the run "
                                           f"logs or writes{now}")
        return record

    def _across_ranks(self, first_bad, record):
        """Data-parallel on the GPU: the first bad step of any rank, and the record's losses averaged over the ranks.

        On the CPU :meth:`~scratchgan.app.distributed.Communicator.allreduce_gradients`
        averages the losses with the gradients at each update; on the GPU
        they stay on the device until logged, so the ranks exchange them
        here, on the steps that check (the same steps on every rank), and all
        stop together when any rank's loss was not finite.
        """
        keys = [k for k in (record or {}) if k.startswith(("d_", "g_"))]  # the losses and mean outputs
        everyone = self.comm.allgather_object((int(first_bad), [record[k] for k in keys]))
        bad = [b for b, _ in everyone if b >= 0]
        if record is not None:
            means = [float(np.mean([values[i] for _, values in everyone])) for i in range(len(keys))]
            record = {**record, **dict(zip(keys, means))}
        return (min(bad) if bad else -1), record

    def _diverged(self, step: int, detail: str):
        kept = (f"no checkpoint was saved before it in {self.out_dir}" if self._saved_step is None
                else f"the last good checkpoint (step {self._saved_step}) in {self.out_dir} is kept")
        raise TrainingError(f"loss became NaN or Inf at step {step} ({detail}); {kept}; try a lower learning rate "
                            "or another loss")

    # ---- checkpoints
    def state(self) -> dict:
        tree = {
            "config": self.config.to_dict(),
            "step": self.step,
            "rng": _rng_state_to_tree(self.rng),
            "G": self.G.state_dict(),
            "D": self.D.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
        }
        if self.G_ema is not None:
            tree["G_ema"] = self.G_ema.state_dict()
        if self.device_rng is not None:
            tree["device_rng"] = {"json": self.device_rng.to_json()}
        return tree

    def save(self, path=None) -> Path:
        """Write the checkpoint atomically: to ``path``, or by default to the run folder's ``checkpoint.npz``.

        The default takes the folder's lock for the write (unless :meth:`run`
        holds it); a write that fails raises ``OSError`` and leaves the
        previous checkpoint as it was. Data-parallel, the default writes on
        rank 0 only (every rank holds the same state).
        """
        if path is not None and Path(path) != self.out_dir / CHECKPOINT:
            save_checkpoint(path, self.state())
            return Path(path)
        path = self.out_dir / CHECKPOINT
        if not self._writer:
            self._saved_step = self.step  # rank 0 wrote it
            return path
        with self._writing():
            save_checkpoint(path, self.state())
            self._saved_step, self._checkpoint_signature = self.step, _file_signature(path)
        return path

    def load_state(self, tree: dict, source="checkpoint") -> None:
        """Restore networks, optimisers, RNG and step from a checkpoint tree."""
        try:
            self.G.load_state_dict(tree["G"])
            self.D.load_state_dict(tree["D"])
            if self.G_ema is not None:
                self.G_ema.load_state_dict(tree["G_ema"])
            self.opt_g.load_state_dict(tree["opt_g"])
            self.opt_d.load_state_dict(tree["opt_d"])
            self.rng.bit_generator.state = _rng_state_from_tree(tree["rng"])
            # a checkpoint of a CPU run has no device stream: the GPU then goes on with the seed's fresh one
            if self.device_rng is not None and "device_rng" in tree:
                self.device_rng.set_state(json.loads(tree["device_rng"]["json"]))
            self.step = int(tree["step"])
        except (KeyError, ValueError, TypeError) as exc:
            raise CheckpointError(
                f"{source} does not match this configuration ({exc}); start a new run folder or fix the options"
            ) from None

    @classmethod
    def resume(cls, out_dir, steps: int | None = None, *, lock: runlog.RunLock | None = None, comm=None,
               **overrides) -> Trainer:
        """Continue the run in ``out_dir`` up to ``steps`` total steps (None: the run's own ``steps``).

        ``steps`` below the checkpoint's step raises :class:`ResumeStepsError`
        before anything is loaded or written (a resume cannot shorten a run;
        as many steps as done only evaluates again). More steps than the run
        was planned for give one :class:`RunWarning` when the run fitted
        something to its length (the linear decay's horizon, a recipe's EMA
        decay: :func:`~scratchgan.app.config.step_fitted_changes`), since the
        result then differs from a straight run of ``steps``.

        ``lock``: the folder's lock, held by the caller (see the class
        docstring); without it :meth:`run` takes it, and refuses to start when
        another process has written the checkpoint since it was loaded here.
        ``comm``: data-parallel (see the class docstring); rank 0 reads the
        checkpoint and every rank starts from it, on any number of ranks that
        divides the batch (the batches do not depend on it).
        """
        return cls._from_checkpoint(out_dir, "resume", lock, steps, overrides, comm)

    @classmethod
    def load(cls, run_dir) -> Trainer:
        """The trained run in ``run_dir``, to sample and evaluate: it takes no lock and writes nothing.

        What ``scratchgan sample`` and ``eval`` use; they can read a run while
        it trains (a checkpoint is replaced atomically, so they see the old or
        the new one). :meth:`run` and the default :meth:`save` are refused.
        """
        return cls._from_checkpoint(run_dir, "read", None, None, {})

    @classmethod
    def _from_checkpoint(cls, out_dir, mode, lock, steps, overrides, comm=None) -> Trainer:
        path = Path(out_dir) / CHECKPOINT
        reader = comm is None or comm.rank == 0  # data-parallel: rank 0 reads the checkpoint, the others get it
        signature = tree = None
        if reader:
            signature = _file_signature(path)  # before loading: a replacement in between is then noticed, not missed
            tree = load_checkpoint(path)
            if "config" not in tree:
                raise CheckpointError(f"{path}: not a scratchgan training checkpoint (no config); start a new run")
        saved, done = (tree["config"], _checkpoint_step(tree)) if reader else (None, None)
        if comm is not None:
            saved, done = comm.bcast_object((saved, done) if reader else None)
        config = TrainConfig.from_dict(saved)
        if mode == "resume" and steps is not None and done is not None:
            _check_resume_steps(config, out_dir, done, steps, warn=reader)
        changes = {k: v for k, v in overrides.items() if v is not None}
        if steps is not None:
            changes["steps"] = steps
        if changes:
            import dataclasses  # noqa: PLC0415

            config = dataclasses.replace(config, **changes)
        trainer = cls.__new__(cls)
        trainer._setup(config, out_dir, mode, lock, comm)
        if reader:
            trainer.load_state(tree, source=str(path))
        trainer._sync_ranks()
        trainer._saved_step, trainer._checkpoint_signature = trainer.step, signature
        return trainer

    # ---- outputs
    def generator_for_sampling(self) -> nn.Module:
        return self.G_ema if self.G_ema is not None else self.G

    def sample(self, n: int, labels=None, seed: int | None = None, *, category=None, continuous=None,
               noise=None) -> np.ndarray:
        """``n`` samples as a host array: (n, 2) for toy data, (n, H, W) in [-1, 1] for images.

        ``labels`` (conditional runs only, ACGAN included): one class or ``n``
        classes, integers in ``[0, num_classes)``; None draws them uniformly.
        ``seed`` (an int >= 0) fixes the noise; None uses the run's sampling
        stream ``[seed, 2]``. ``noise``: an (n, z_dim) array used instead of
        drawn noise. InfoGAN runs (``aux="infogan"``): ``category`` (one int or
        ``n`` ints in ``[0, info_categories)``) and ``continuous`` (a number,
        ``d`` values or an (n, d) array) fix the codes; None draws them from
        the prior, after the noise (:func:`scratchgan.gan.auxiliary.sample_info_codes`).
        """
        rng = np.random.default_rng(seed) if seed is not None else np.random.default_rng([self.config.seed, 2])
        if noise is None:
            z = self._tensor(rng.standard_normal((n, self.config.z_dim)))
        else:
            noise = np.asarray(noise)
            if noise.shape != (n, self.config.z_dim):
                raise ValueError(f"noise must have shape ({n}, {self.config.z_dim}), got {noise.shape}")
            z = self._tensor(noise)
        codes = auxiliary.sample_info_codes(rng, n, self.config, category, continuous)
        y = None
        if self.config.conditional:
            k = self.data.num_classes
            if labels is None:
                labels = rng.integers(0, k, n)
            labels = np.broadcast_to(np.asarray(labels), (n,))
            if labels.dtype.kind not in "iu" or (n and (labels.min() < 0 or labels.max() >= k)):
                raise ValueError(f"labels must be integers in [0, {k - 1}] ({self.data.name} has {k} classes), "
                                 f"got {np.unique(labels)[:5].tolist()}")
            y = self._labels(labels)
            backend.vouch_indices(y.data, k)  # checked above, on the host: the embedding need not read them back
        elif labels is not None:
            raise ConfigError("labels were given but this run is not conditional (train with --conditional)")
        G = self.generator_for_sampling()
        G.eval()
        with no_grad():
            x = (G(z, y) if codes is None else G(z, y, codes=auxiliary.as_code_tensor(codes, self.config))).numpy()
        G.train()
        if self.data.kind == "image":
            return x.reshape(n, *self.data.image_shape)
        return x

    def info_grid(self, per_row: int = 10, seed: int = 0) -> np.ndarray:
        """InfoGAN's picture of the categorical code: (info_categories * per_row, ...) samples.

        Row ``k`` has category ``k``; column ``j`` the same noise in every row
        (drawn with ``seed``), and every continuous code is 0, the prior's mean:
        down a column only the categorical code changes.
        """
        k = int(self.config.info_categories) if self.config.aux == "infogan" else 0
        if k < 2:
            raise ConfigError("info_grid needs an InfoGAN run with a categorical code (--aux infogan, "
                              "info_categories >= 2)")
        column_noise = np.random.default_rng(seed).standard_normal((per_row, self.config.z_dim))
        codes = auxiliary.info_grid_codes(self.config, per_row)
        return self.sample(k * per_row, noise=np.tile(column_noise, (k, 1)), category=codes.categories,
                           continuous=codes.continuous)

    def save_pictures(self) -> None:
        """Draw ``samples.png`` and ``losses.png``, each replaced atomically (holding the folder's lock).

        Images: a grid of samples; for a conditional run (ACGAN too) one row
        per class, for an InfoGAN run one row per value of the categorical code
        with the same noise down each column (:meth:`info_grid`).
        """
        if not self._writer:  # data-parallel: rank 0 draws them
            return
        from . import plots  # noqa: PLC0415 - matplotlib is imported only when pictures are made

        with self._writing(), runlog.atomic_path(self.out_dir / "samples.png") as tmp:
            if self.data.kind == "toy":
                real, _ = self.data.mixture.sample(2500, np.random.default_rng(0))
                plots.save_toy_scatter(tmp, self.sample(2500), real=real, centres=self.data.mixture.centres,
                                       title=f"{self.config.data}, {self.config.loss}, step {self.step}")
            elif self.config.aux == "infogan" and self.config.info_categories >= 2:
                plots.save_image_grid(tmp, self.info_grid(), nrow=10,
                                      row_labels=[f"c={i}" for i in range(self.config.info_categories)])
            elif self.config.conditional:
                k, per_row = self.data.num_classes, 10
                labels = np.repeat(np.arange(k), per_row)
                plots.save_image_grid(tmp, self.sample(k * per_row, labels=labels), nrow=per_row,
                                      row_labels=[str(i) for i in range(k)])
            else:
                plots.save_image_grid(tmp, self.sample(100))
        records = runlog.read_jsonl(self.out_dir / METRICS)
        if records:
            with self._writing(), runlog.atomic_path(self.out_dir / "losses.png") as tmp:
                plots.save_loss_curves(tmp, records)

    def evaluate(self) -> dict:
        """The final evaluation on ``config.eval_samples`` samples (what ``eval.json`` holds).

        Toy data: :func:`scratchgan.gan.metrics.mode_coverage`; images:
        :func:`scratchgan.app.image_eval.evaluate_images` (the classifier metrics;
        a conditional or ACGAN run also gets its conditional accuracy), and for
        an InfoGAN run :func:`scratchgan.app.image_eval.info_code_metrics` (how well
        the categorical code maps to the classes).
        """
        n = self.config.eval_samples
        result = {"step": self.step, "data": self.config.data, "loss": self.config.loss}
        if self.data.kind == "toy":
            from ..gan.metrics import mode_coverage  # noqa: PLC0415 - SciPy is imported only to evaluate

            result.update(mode_coverage(self.sample(n), self.data.mixture.centres, self.data.mixture.std))
            result.pop("per_mode_counts", None)
        else:
            from .image_eval import evaluate_images, info_code_metrics  # noqa: PLC0415

            result.update(evaluate_images(self, n))
            if self.config.aux == "infogan":
                result.update(info_code_metrics(self, n))
        return result


# --------------------------------------------------------------------------- helpers


def _loss_kind(loss: str) -> str:
    return {"gan": "minimax", "ns": "ns", "wgan": "wasserstein", "wgan-gp": "wasserstein",
            "lsgan": "lsgan", "hinge": "hinge", "rsgan": "rsgan", "rasgan": "rasgan"}[loss]


def _pack_rows(x: Tensor, pack: int) -> Tensor:
    """(N, dim) -> (N / pack, pack * dim): rows ``pack*i .. pack*i+pack-1`` side by side, as D packs them."""
    return x if pack == 1 else x.reshape(x.shape[0] // pack, x.shape[1] * pack)


def _mean_output(loss: str, out: Tensor):
    """Mean D(x), a 0-d array: a probability for the cross-entropy losses, the raw score otherwise."""
    with no_grad():
        values = sigmoid(out) if loss in ("gan", "ns") else out
        return values.data.mean()


def _checkpoint_step(tree: dict) -> int | None:
    """The step of a checkpoint tree, or None when it has none (:meth:`Trainer.load_state` then says what is wrong)."""
    try:
        return int(tree["step"])
    except (KeyError, TypeError, ValueError):
        return None


def _check_resume_steps(config: TrainConfig, out_dir, done: int, steps: int, warn: bool) -> None:
    """A resume of the run ``config`` at step ``done`` up to ``steps``: refuse fewer steps, say what more changes."""
    if steps < done:
        raise ResumeStepsError(
            f"cannot resume {out_dir} to {steps} steps: its run has done {done} already (of the {config.steps} it "
            f"was planned for), and a resume only continues a run; ask for {done} steps or more, or start a new run "
            f"of {steps} steps (--overwrite, or another --out)", done, steps)
    changes = step_fitted_changes(config, steps)
    if done == 0:  # nothing trained yet: the decay starts afresh at the new horizon, as a straight run's does
        changes.pop("lr_horizon", None)
    if not (changes and warn):
        return
    parts = []
    if "lr_horizon" in changes:
        old, new = changes["lr_horizon"]
        was, now = config.lr_g * (1 - (done - 1) / old), config.lr_g * (1 - done / new)
        parts.append(f"the learning-rate decay now ends at step {new} instead of {old} (lr_g {was:.2g} at step "
                     f"{done}, {now:.2g} at step {done + 1})")
    if "ema_decay" in changes:
        kept, straight = changes["ema_decay"]
        parts.append(f"G's EMA keeps the decay {kept:.3g} fitted to {config.steps} steps (a {steps}-step run "
                     f"has {straight:.3g})")
    warnings.warn(f"extending the run from {config.steps} to {steps} steps: {', and '.join(parts)}; the result "
                  f"differs from a straight {steps}-step run (for that, start a new run with --steps {steps})",
                  RunWarning, stacklevel=4)


@no_grad()
def _ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """theta_ema <- decay * theta_ema + (1 - decay) * theta, in place; buffers are copied.

    The buffers are the batch-norm running statistics of a DCGAN generator:
    the EMA copy samples in eval mode with the statistics that G's own
    training batches gave (the MLPs have none).
    """
    for pe, p in zip(ema.parameters(), model.parameters()):
        pe.data *= decay
        pe.data += (1 - decay) * p.data
    for (_, be), (_, b) in zip(ema.named_buffers(), model.named_buffers()):
        be[...] = b


def _rng_state_to_tree(rng) -> dict:
    state = rng.bit_generator.state
    return {"json": json.dumps(state)}  # PCG64 holds 128-bit integers: JSON keeps them exact


def _rng_state_from_tree(tree) -> dict:
    return json.loads(tree["json"])
