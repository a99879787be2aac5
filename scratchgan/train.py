"""The training loop: critic steps, then a generator step, with exact resume.

One *step* is one generator update, preceded by ``n_critic`` discriminator
updates; with ``lr_decay="linear"`` both learning rates of step ``t``
(0-based) are ``lr * (1 - t / max(lr_decay_steps, steps))``. Everything
random (data batches, noise, fake labels, interpolation factors) is drawn
from one ``numpy.random.Generator``, whose state the checkpoint stores, so
that ``k`` steps + resume + ``N - k`` steps reproduce ``N`` steps bit for bit
on the CPU.

The outputs of a run, in its folder: ``config.json``, ``metrics.jsonl``,
``checkpoint.npz``, ``samples.png``, ``losses.png`` and ``eval.json``.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from pathlib import Path

import numpy as np

from . import backend, losses, nn, optim
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import ConfigError, TrainConfig, resolve
from .data import Dataset, load_dataset
from .engine import grad, no_grad
from .tensor import Tensor
from .ops import concatenate, sigmoid

CHECKPOINT = "checkpoint.npz"
METRICS = "metrics.jsonl"


class TrainingError(RuntimeError):
    """Training cannot go on (a NaN loss, an unusable output folder)."""


# --------------------------------------------------------------------------- models


def _activation(name: str) -> nn.Module:
    return {"relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(0.2), "tanh": nn.Tanh}[name]()


def build_mlp(sizes, activation: str, out_activation, rng, dtype) -> nn.Sequential:
    """Linear layers of ``sizes`` with ``activation`` between them."""
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b, rng=rng, dtype=dtype))
        if i < len(sizes) - 2:
            layers.append(_activation(activation))
    if out_activation is not None:
        layers.append(out_activation)
    return nn.Sequential(*layers)


def data_scale(data: Dataset) -> float:
    """A fixed scale for toy data: the RMS of the mode centres' coordinates (1 for images).

    The networks work in normalised units (grid25 spans [-4, 4]): G's output is
    multiplied by this constant and D's input divided by it. It is not learned.
    """
    if data.kind != "toy":
        return 1.0
    return float(np.sqrt(np.mean(data.mixture.centres ** 2)))


class Generator(nn.Module):
    """MLP generator ``G(z) (or G(z, y))``; a label embedding is concatenated to z when conditional."""

    def __init__(self, config: TrainConfig, data: Dataset, rng):
        super().__init__()
        self.scale = data_scale(data)
        self.conditional = config.conditional
        extra = config.embed_dim if config.conditional else 0
        if config.conditional:
            self.embed = nn.Embedding(data.num_classes, config.embed_dim, rng=rng, dtype=config.dtype)
        out = nn.Tanh() if data.kind == "image" else None  # images live in [-1, 1]; toy points anywhere
        sizes = [config.z_dim + extra, *config.g_hidden, data.data_dim]
        self.net = build_mlp(sizes, config.g_activation, out, rng, config.dtype)

    def forward(self, z, labels=None):
        if self.conditional:
            z = concatenate([z, self.embed(labels)], axis=1)
        out = self.net(z)
        return out * self.scale if self.scale != 1.0 else out


class Discriminator(nn.Module):
    """MLP discriminator/critic returning one logit per pack of samples, shape (N / pack,).

    With ``pack = m`` (PacGAN) the rows ``m*i .. m*i+m-1`` of the batch are
    concatenated into one input, so D judges m samples jointly, which
    penalises a generator that repeats itself (mode collapse).
    """

    def __init__(self, config: TrainConfig, data: Dataset, rng):
        super().__init__()
        self.scale = data_scale(data)
        self.pack = config.pack
        self.conditional = config.conditional
        extra = config.embed_dim if config.conditional else 0
        if config.conditional:
            self.embed = nn.Embedding(data.num_classes, config.embed_dim, rng=rng, dtype=config.dtype)
        sizes = [(data.data_dim + extra) * config.pack, *config.d_hidden, 1]
        self.net = build_mlp(sizes, config.d_activation, None, rng, config.dtype)

    def forward(self, x, labels=None):
        if self.scale != 1.0:
            x = x * (1.0 / self.scale)
        if self.conditional:
            x = concatenate([x, self.embed(labels)], axis=1)
        if self.pack > 1:
            if x.shape[0] % self.pack:
                raise ValueError(f"a batch of {x.shape[0]} cannot be split into packs of {self.pack}")
            x = x.reshape(x.shape[0] // self.pack, x.shape[1] * self.pack)
        out = self.net(x)
        return out.reshape(out.shape[0])


def _make_optimizer(config: TrainConfig, params, lr):
    if config.optimizer == "adam":
        return optim.Adam(params, lr=lr, betas=tuple(config.betas))
    if config.optimizer == "rmsprop":
        return optim.RMSprop(params, lr=lr)
    return optim.SGD(params, lr=lr)


def _grad_norm(params) -> float:
    total = 0.0
    for p in params:
        if p.grad is not None:
            total += float((p.grad.data.astype(np.float64) ** 2).sum())
    return math.sqrt(total)


# --------------------------------------------------------------------------- trainer


class Trainer:
    """Builds data, networks and optimisers from a config, trains, saves, resumes.

    Parameters
    ----------
    config : TrainConfig
    out_dir : path
        The run's folder (created if missing; must be writable).
    """

    def __init__(self, config: TrainConfig, out_dir):
        self.config = resolve(config)
        self.out_dir = Path(out_dir)
        _check_writable(self.out_dir)
        backend.set_backend(self.config.backend)
        self.data = load_dataset(self.config.data, self.config.data_path)
        if self.config.conditional and self.data.num_classes < 2:
            raise ConfigError(f"conditional training needs labelled data; {self.data.name} has no classes")
        c = self.config
        init_rng = np.random.default_rng([c.seed, 0])
        self.G = Generator(c, self.data, init_rng)
        self.D = Discriminator(c, self.data, init_rng)
        self.G_ema = Generator(c, self.data, init_rng) if c.ema_decay > 0 else None
        if self.G_ema is not None:
            self.G_ema.load_state_dict(self.G.state_dict())
        self.opt_g = _make_optimizer(c, list(self.G.parameters()), c.lr_g)
        self.opt_d = _make_optimizer(c, list(self.D.parameters()), c.lr_d)
        self.rng = np.random.default_rng([c.seed, 1])
        self.step = 0

    # ---- sampling helpers
    def _tensor(self, array) -> Tensor:
        return Tensor._wrap(backend.asarray(np.asarray(array, dtype=self.config.dtype)))

    def _labels(self, array) -> Tensor:
        return Tensor._wrap(backend.asarray(np.asarray(array, dtype=np.int64)))

    def _noise(self, n) -> Tensor:
        dtype = np.dtype(self.config.dtype)
        return self._tensor(self.rng.standard_normal((n, self.config.z_dim), dtype=dtype))

    def _real_batch(self):
        x, y = self.data.sample_batch(self.rng, self.config.batch_size)
        return self._tensor(x.reshape(len(x), -1)), self._labels(y)

    def _fake_labels(self, n):
        if not self.config.conditional:
            return None
        return self._labels(self.rng.integers(0, self.data.num_classes, n))

    # ---- one update of each network
    def d_update(self) -> dict:
        c = self.config
        real, y_real = self._real_batch()
        y_fake = self._fake_labels(c.batch_size)
        with no_grad():
            fake = self.G(self._noise(c.batch_size), y_fake)
        y_real = y_real if c.conditional else None
        self.opt_d.zero_grad()
        real_out = self.D(real, y_real)
        fake_out = self.D(fake, y_fake)
        loss = losses.d_loss(_loss_kind(c.loss), real_out, fake_out)
        gp = c.loss == "wgan-gp" and c.penalty_weight > 0
        if gp or c.r1 > 0:
            # penalties on D's own input: with PacGAN packing that is the packed batch (N / pack rows of
            # pack * dim), so GP interpolates and takes norms per pack and R1 sums a pack's squared gradients
            critic = self._packed_critic(y_real)
            real_p = _pack_rows(real, c.pack)
        if gp:
            alpha = self.rng.uniform(size=(c.batch_size // c.pack, 1)).astype(c.dtype)
            loss = loss + losses.gradient_penalty(critic, real_p, _pack_rows(fake, c.pack), weight=c.penalty_weight,
                                                  alpha=self._tensor(alpha))
        if c.r1 > 0:
            loss = loss + losses.r1_penalty(critic, real_p, c.r1)
        loss.backward()
        self.opt_d.step()
        if c.loss == "wgan":
            losses.clip_weights(self.D, c.clip_value)
        return {"d_loss": float(loss.item()), "d_real": _mean_output(c.loss, real_out),
                "d_fake": _mean_output(c.loss, fake_out)}

    def _packed_critic(self, labels):
        """``D`` as a function of its packed input (N / pack, pack * dim), one score per row."""
        pack, D = self.config.pack, self.D
        if pack == 1:
            return (lambda x: D(x, labels)) if self.config.conditional else D
        return lambda u: D(u.reshape(u.shape[0] * pack, u.shape[1] // pack), labels)

    def g_update(self) -> dict:
        c = self.config
        y_fake = self._fake_labels(c.batch_size)
        fake_out = self.D(self.G(self._noise(c.batch_size), y_fake), y_fake)
        loss = losses.g_loss(_loss_kind(c.loss), fake_out)
        params = list(self.G.parameters())
        # grad() walks only the part of the graph that leads to G: D's gradients are not computed
        for p, g in zip(params, grad(loss, params)):
            p.grad = g
        self.opt_g.step()
        if self.G_ema is not None:
            _ema_update(self.G_ema, self.G, c.ema_decay)
        return {"g_loss": float(loss.item())}

    def lr_factor(self, step: int | None = None) -> float:
        """Multiplier of both learning rates for the generator update number ``step`` (0-based).

        ``"linear"``: ``1 - step / H`` with the horizon ``H = max(lr_decay_steps, steps)``,
        so a run of ``H`` steps ends at ``lr / H``. ``H`` does not change when a run
        is stopped early, so k steps + resume reproduce the straight run exactly.
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
        """
        self._set_lr()
        record = {}
        for _ in range(self.config.n_critic):
            record.update(self.d_update())
        record.update(self.g_update())
        if with_norms:
            # g_update takes G's gradients with grad(): D.grad still holds the last critic update's
            record["grad_norm_d"] = _grad_norm(self.D.parameters())
            record["grad_norm_g"] = _grad_norm(self.G.parameters())
        record["lr_g"], record["lr_d"] = self.opt_g.lr, self.opt_d.lr
        self.step += 1
        return record

    # ---- the loop
    def run(self, progress: bool | None = None, on_log=None) -> dict:
        """Train up to ``config.steps`` total steps; returns the final evaluation.

        Ctrl-C saves a checkpoint and re-raises ``KeyboardInterrupt``. A NaN
        or Inf loss raises :class:`TrainingError` naming the step; the last
        good checkpoint on disk is kept.
        """
        c = self.config
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / "config.json").write_text(json.dumps(c.to_dict(), indent=1) + "\n")
        _truncate_metrics(self.out_dir / METRICS, self.step)
        bar = _progress(self.step, c.steps, progress)
        last_time, last_step = time.perf_counter(), self.step
        interrupted = _InterruptFlag()
        try:
            with interrupted:
                while self.step < c.steps:
                    log_now = (self.step + 1) % c.log_every == 0 or self.step + 1 == c.steps
                    record = self.train_step(with_norms=log_now)
                    if not all(math.isfinite(record[k]) for k in ("d_loss", "g_loss")):
                        raise TrainingError(
                            f"loss became NaN or Inf at step {self.step} (d_loss={record['d_loss']}, "
                            f"g_loss={record['g_loss']}); the last good checkpoint in {self.out_dir} is kept; "
                            "try a lower learning rate or another loss"
                        )
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(d=f"{record['d_loss']:.3f}", g=f"{record['g_loss']:.3f}", refresh=False)
                    if log_now:
                        now = time.perf_counter()
                        record["steps_per_sec"] = (self.step - last_step) / max(now - last_time, 1e-9)
                        last_time, last_step = now, self.step
                        record = {"step": self.step, **record}
                        _append_jsonl(self.out_dir / METRICS, record)
                        if on_log is not None:
                            on_log(record)
                    if self.step % c.checkpoint_every == 0:
                        self.save()
                    if self.step % c.sample_every == 0:
                        self.save_pictures()
                    if interrupted.raised:
                        raise KeyboardInterrupt
        except KeyboardInterrupt:
            self.save()
            raise
        finally:
            if bar is not None:
                bar.close()
        self.save()
        self.save_pictures()
        result = self.evaluate()
        (self.out_dir / "eval.json").write_text(json.dumps(result, indent=1) + "\n")
        return result

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
        return tree

    def save(self, path=None) -> Path:
        path = Path(path) if path else self.out_dir / CHECKPOINT
        save_checkpoint(path, self.state())
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
            self.step = int(tree["step"])
        except (KeyError, ValueError, TypeError) as exc:
            raise CheckpointError(
                f"{source} does not match this configuration ({exc}); start a new run folder or fix the options"
            ) from None

    @classmethod
    def resume(cls, out_dir, steps: int | None = None, **overrides) -> Trainer:
        """Continue the run in ``out_dir`` up to ``steps`` total steps."""
        path = Path(out_dir) / CHECKPOINT
        tree = load_checkpoint(path)
        if "config" not in tree:
            raise CheckpointError(f"{path}: not a scratchgan training checkpoint (no config); start a new run")
        config = TrainConfig.from_dict(tree["config"])
        changes = {k: v for k, v in overrides.items() if v is not None}
        if steps is not None:
            changes["steps"] = steps
        if changes:
            import dataclasses  # noqa: PLC0415

            config = dataclasses.replace(config, **changes)
        trainer = cls(config, out_dir)
        trainer.load_state(tree, source=str(path))
        return trainer

    # ---- outputs
    def generator_for_sampling(self) -> nn.Module:
        return self.G_ema if self.G_ema is not None else self.G

    def sample(self, n: int, labels=None, seed: int | None = None) -> np.ndarray:
        """``n`` samples as a host array: (n, 2) for toy data, (n, H, W) in [-1, 1] for images."""
        rng = np.random.default_rng(seed) if seed is not None else np.random.default_rng([self.config.seed, 2])
        z = self._tensor(rng.standard_normal((n, self.config.z_dim)))
        y = None
        if self.config.conditional:
            if labels is None:
                labels = rng.integers(0, self.data.num_classes, n)
            y = self._labels(np.broadcast_to(np.asarray(labels), (n,)))
        elif labels is not None:
            raise ConfigError("labels were given but this run is not conditional (train with --conditional)")
        G = self.generator_for_sampling()
        G.eval()
        with no_grad():
            x = G(z, y).numpy()
        G.train()
        if self.data.kind == "image":
            return x.reshape(n, *self.data.image_shape)
        return x

    def save_pictures(self) -> None:
        from . import plots  # noqa: PLC0415 - matplotlib is imported only when pictures are made

        if self.data.kind == "toy":
            real, _ = self.data.mixture.sample(2500, np.random.default_rng(0))
            plots.save_toy_scatter(self.out_dir / "samples.png", self.sample(2500), real=real,
                                   centres=self.data.mixture.centres,
                                   title=f"{self.config.data}, {self.config.loss}, step {self.step}")
        elif self.config.conditional:
            k, per_row = self.data.num_classes, 10
            labels = np.repeat(np.arange(k), per_row)
            plots.save_image_grid(self.out_dir / "samples.png", self.sample(k * per_row, labels=labels),
                                  nrow=per_row, row_labels=[str(i) for i in range(k)])
        else:
            plots.save_image_grid(self.out_dir / "samples.png", self.sample(100))
        records = _read_jsonl(self.out_dir / METRICS)
        if records:
            plots.save_loss_curves(self.out_dir / "losses.png", records)

    def evaluate(self) -> dict:
        from . import metrics  # noqa: PLC0415

        n = self.config.eval_samples
        result = {"step": self.step, "data": self.config.data, "loss": self.config.loss}
        if self.data.kind == "toy":
            result.update(metrics.mode_coverage(self.sample(n), self.data.mixture.centres, self.data.mixture.std))
            result.pop("per_mode_counts", None)
        else:
            result.update(metrics.evaluate_images(self, n))
        return result


# --------------------------------------------------------------------------- helpers


def _loss_kind(loss: str) -> str:
    return {"gan": "minimax", "ns": "ns", "wgan": "wasserstein", "wgan-gp": "wasserstein",
            "lsgan": "lsgan", "hinge": "hinge"}[loss]


def _pack_rows(x: Tensor, pack: int) -> Tensor:
    """(N, dim) -> (N / pack, pack * dim): rows ``pack*i .. pack*i+pack-1`` side by side, as D packs them."""
    return x if pack == 1 else x.reshape(x.shape[0] // pack, x.shape[1] * pack)


def _mean_output(loss: str, out: Tensor) -> float:
    """Mean D(x): a probability for the cross-entropy losses, the raw score otherwise."""
    with no_grad():
        values = sigmoid(out) if loss in ("gan", "ns") else out
        return float(values.data.mean())


@no_grad()
def _ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """theta_ema <- decay * theta_ema + (1 - decay) * theta, in place."""
    for pe, p in zip(ema.parameters(), model.parameters()):
        pe.data *= decay
        pe.data += (1 - decay) * p.data


def _rng_state_to_tree(rng) -> dict:
    state = rng.bit_generator.state
    return {"json": json.dumps(state)}  # PCG64 holds 128-bit integers: JSON keeps them exact


def _rng_state_from_tree(tree) -> dict:
    return json.loads(tree["json"])


def _check_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise TrainingError(f"cannot write to the output folder {folder}: {exc.strerror or exc}; choose another with --out") from None


def _append_jsonl(path: Path, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def _read_jsonl(path: Path) -> list:
    if not path.exists():
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _truncate_metrics(path: Path, step: int) -> None:
    """On resume, drop records written after the checkpoint so none appear twice."""
    if not path.exists():
        return
    records = [r for r in _read_jsonl(path) if r.get("step", 0) <= step]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
    os.replace(tmp, path)


def _progress(start: int, total: int, enabled: bool | None):
    """A tqdm bar on a terminal; nothing in logs and CI (``disable=None``)."""
    if enabled is False:
        return None
    from tqdm import tqdm  # noqa: PLC0415

    return tqdm(total=total, initial=start, unit="step", disable=None if enabled is None else not enabled,
                dynamic_ncols=True, leave=False)


class _InterruptFlag:
    """Turn SIGINT into a flag checked between steps, so a step never stops halfway."""

    def __init__(self):
        self.raised = False
        self._previous = None

    def _handler(self, signum, frame):
        if self.raised:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        self.raised = True

    def __enter__(self):
        try:
            self._previous = signal.signal(signal.SIGINT, self._handler)
        except ValueError:  # not the main thread: leave signals alone
            self._previous = None
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False
