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

Each update reads as the loop of docs/study.md: sample, forward, loss = the
sum of the loss terms, backward, sync, step. The pieces live in their own
modules:

* :mod:`~scratchgan.app.loss_terms`: the terms (adversarial loss, ACGAN/InfoGAN
  head, gradient penalty, R1, DRAGAN), assembled once from the config;
* :mod:`~scratchgan.app.steps`: an update's inputs (batches, labels, codes, D's
  forward pass) and its record; :mod:`~scratchgan.app.draws`: its random draws;
* :mod:`~scratchgan.app.sync`: data-parallel glue;
* :mod:`~scratchgan.app.runfolder`: the run folder (:data:`RUN_FILES`, its lock,
  writes that fail with a :class:`SaveError` naming the last safe step);
* :mod:`~scratchgan.app.run_state`: the checkpoint tree and resume's checks;
* :mod:`~scratchgan.app.loop`: the run loop (logging, checkpoints, pictures,
  Ctrl-C, the NaN check);
* :mod:`~scratchgan.app.sampling` and :mod:`~scratchgan.app.evaluation`: samples,
  pictures and the final evaluation.

The networks come from :mod:`scratchgan.gan.models`, the metrics file, progress
bar and Ctrl-C handling from :mod:`scratchgan.app.runlog`.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from pathlib import Path

import numpy as np

from .. import backend, nn, optim
from ..autograd.engine import grad, no_grad
from ..backend.device_rng import DeviceGenerator
from ..gan import losses
from ..gan.models import build_discriminator, build_generator
from . import evaluation, loop, runlog, sampling, sync
from .checkpoint import save_checkpoint
from .config import ConfigError, TrainConfig, resolve
from .data import load_dataset
from .distributed import local_shares
from .draws import StepDraws
from .loss_terms import critic_terms, generator_terms, total_loss
from .run_state import ResumeStepsError, load_trainer_state, read_run, trainer_state
from .runfolder import (CHECKPOINT, RUN_FILES, RunExistsError, RunFolder, RunWarning, SaveError, TrainingError,
                        lock_run_folder, run_summary)
from .runlog import METRICS
from .steps import critic_inputs, critic_record, generator_inputs, generator_record, judge

__all__ = ["CHECKPOINT", "METRICS", "RUN_FILES", "ResumeStepsError", "RunExistsError", "RunWarning", "SaveError",
           "Trainer", "TrainingError", "host_record", "lock_run_folder", "run_summary"]


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


def host_record(record: dict) -> dict:
    """A step's record with its device scalars (0-d CuPy arrays) as floats, read back in one transfer.

    A record of floats (the CPU's) comes back as it is.
    """
    return loop.read_record(record, ())[0]


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
        sync.start_from_rank0(self)

    def _setup(self, config: TrainConfig, out_dir, mode: str, lock, comm=None) -> None:
        """``mode``: "new" (refuse a folder with a run), "overwrite", "resume" (the folder's run is ours) or "read"."""
        self.config = resolve(config)  # the checks that need no data, before anything is loaded
        self.out_dir = Path(out_dir)
        self.comm = comm
        self._folder = RunFolder(self.out_dir, mode, lock, writer=comm is None or comm.rank == 0)
        backend.set_backend(self.config.backend)
        self.data = load_dataset(self.config.data, self.config.data_path)
        self.config = c = resolve(config, self.data)  # the recipe's architecture may depend on the image sides
        if c.aux == "acgan" and self.data.num_classes < 2:
            raise ConfigError(f"--aux acgan needs labelled data (its D classifies the real images by their labels); "
                              f"{self.data.name} has no classes")
        if c.conditional and self.data.num_classes < 2:
            raise ConfigError(f"conditional training needs labelled data; {self.data.name} has no classes")
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
        self._step_draws = self._new_draws()
        self._critic_terms, self._generator_terms = critic_terms(c), generator_terms(c)  # the losses, once
        self._step_blocks = None  # GPU: the Philox blocks one step draws (learnt at the first step), see _batched
        self._first_bad = None  # GPU: a 0-d device array, the first step whose loss was not finite (-1: none)
        self.step = 0

    def _new_draws(self) -> StepDraws:
        """The draws of this run's steps from its streams; data-parallel, of this rank's share of each batch."""
        rank, size = (0, 1) if self.comm is None else (self.comm.rank, self.comm.size)
        share, pack_share = local_shares(self.config, rank, size)
        return StepDraws(self.config, self.data, self.rng, self.device_rng, share, pack_share)

    def _real_batch(self):
        return self._step_draws.real_batch()

    @property
    def _batches(self):
        """GPU: the training split on the device (uploaded at the first batch)."""
        return self._step_draws.batches

    def _value(self, array):
        """A scalar of the step's record from a 0-d array: a float on the CPU, the device array itself on the GPU.

        The GPU's values are read back only when the loop logs (:func:`host_record`): reading each at
        every step would make the host wait for the GPU several times a step.
        """
        return array if self._on_device else float(array)

    # ---- one update of each network: the loop of docs/study.md
    def d_update(self) -> dict:
        """One critic update: sample, forward, loss = the sum of the critic's terms, backward, sync, step."""
        c = self.config
        step = critic_inputs(self.G, self.D, self._step_draws, c, check_inputs=not self._on_device)
        self.opt_d.zero_grad()
        judge(step, real_aux=c.aux == "acgan", fake_aux=c.aux != "none")  # InfoGAN's Q sees fakes only
        loss = total_loss(self._critic_terms, step)
        loss.backward()
        record = sync.average_gradients(self.comm, self.D.parameters(), critic_record(loss, step, self._value))
        self.opt_d.step()
        if c.loss == "wgan":  # the original WGAN's constraint: D's weights clipped to [-c, c]
            losses.clip_weights(self.D, c.clip_value)
        return record

    def g_update(self) -> dict:
        """One generator update: sample, forward, loss = the sum of G's terms, backward (G only), sync, step."""
        c = self.config
        step = generator_inputs(self.G, self.D, self._step_draws, c)
        judge(step, real_aux=False, fake_aux=c.aux != "none")
        loss = total_loss(self._generator_terms, step)
        params = list(self.G.parameters())
        # grad() walks only the part of the graph that leads to G: D's gradients are not computed
        for p, g in zip(params, grad(loss, params)):
            p.grad = g
        record = sync.average_gradients(self.comm, params, generator_record(loss, step, self._value))
        self.opt_g.step()
        if self.G_ema is not None:
            _ema_update(self.G_ema, self.G, c.ema_decay)
        return record

    @contextlib.contextmanager
    def _batched(self):
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
        with self._batched():
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
        clone._step_draws = clone._new_draws()  # the copy's streams
        clone._step_draws.batches = self._step_draws.batches
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

    # ---- the run folder, the loop
    @property
    def _saved_step(self):
        """The step of the checkpoint on disk that this run wrote or loaded (None: none yet)."""
        return self._folder.saved_step

    def _writing(self):
        """Hold the folder's lock while writing into it (:meth:`~scratchgan.app.runfolder.RunFolder.writing`)."""
        return self._folder.writing()

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
            return loop.run(self, progress, on_log)

    # ---- checkpoints
    def state(self) -> dict:
        """The checkpoint tree (:func:`~scratchgan.app.run_state.trainer_state`)."""
        return trainer_state(self)

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
        if self._folder.writer:
            with self._writing():
                save_checkpoint(self.out_dir / CHECKPOINT, self.state())
        self._folder.saved(self.step)  # on a rank > 0: rank 0 wrote it
        return self.out_dir / CHECKPOINT

    def load_state(self, tree: dict, source="checkpoint") -> None:
        """Restore networks, optimisers, RNG and step from a checkpoint tree."""
        load_trainer_state(self, tree, source)

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
        config, tree, signature = read_run(out_dir, mode, steps, overrides, comm)
        trainer = cls.__new__(cls)
        trainer._setup(config, out_dir, mode, lock, comm)
        if tree is not None:  # data-parallel: rank 0 read it
            trainer.load_state(tree, source=str(Path(out_dir) / CHECKPOINT))
        sync.start_from_rank0(trainer)
        trainer._folder.saved_step, trainer._folder.checkpoint_signature = trainer.step, signature
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
        return sampling.sample(self.generator_for_sampling(), self.config, self.data, n, labels, seed,
                               category=category, continuous=continuous, noise=noise)

    def info_grid(self, per_row: int = 10, seed: int = 0) -> np.ndarray:
        """InfoGAN's picture of the categorical code: (info_categories * per_row, ...) samples.

        Row ``k`` has category ``k``; column ``j`` the same noise in every row
        (drawn with ``seed``), and every continuous code is 0, the prior's mean:
        down a column only the categorical code changes.
        """
        return sampling.info_grid(self, per_row, seed)

    def save_pictures(self) -> None:
        """Draw ``samples.png`` and ``losses.png``, each replaced atomically (holding the folder's lock).

        Images: a grid of samples; for a conditional run (ACGAN too) one row
        per class, for an InfoGAN run one row per value of the categorical code
        with the same noise down each column (:meth:`info_grid`).
        """
        if self._folder.writer:  # data-parallel: rank 0 draws them
            sampling.save_pictures(self, self._folder)

    def evaluate(self) -> dict:
        """The final evaluation on ``config.eval_samples`` samples (what ``eval.json`` holds).

        Toy data: :func:`scratchgan.gan.metrics.mode_coverage`; images:
        :func:`scratchgan.app.image_eval.evaluate_images` (the classifier metrics;
        a conditional or ACGAN run also gets its conditional accuracy), and for
        an InfoGAN run :func:`scratchgan.app.image_eval.info_code_metrics` (how well
        the categorical code maps to the classes).
        """
        return evaluation.evaluate(self)
