"""What a trained run draws: samples (with chosen classes or InfoGAN codes) and the run's pictures."""

from __future__ import annotations

import numpy as np

from .. import backend
from ..autograd.engine import no_grad
from ..autograd.tensor import as_tensor
from ..gan import auxiliary
from . import runlog
from .config import ConfigError
from .runlog import METRICS

__all__ = ["info_grid", "sample", "save_pictures"]


def _class_labels(labels, n: int, data, rng):
    """``labels`` (one class, ``n`` classes, or None: uniform draws) as a checked, vouched label tensor."""
    k = data.num_classes
    if labels is None:
        labels = rng.integers(0, k, n)
    labels = np.broadcast_to(np.asarray(labels), (n,))
    if labels.dtype.kind not in "iu" or (n and (labels.min() < 0 or labels.max() >= k)):
        raise ValueError(f"labels must be integers in [0, {k - 1}] ({data.name} has {k} classes), "
                         f"got {np.unique(labels)[:5].tolist()}")
    y = as_tensor(np.asarray(labels, dtype=np.int64))
    backend.vouch_indices(y.data, k)  # checked above, on the host: the embedding need not read them back
    return y


def sample(G, config, data, n: int, labels=None, seed: int | None = None, *, category=None, continuous=None,
           noise=None) -> np.ndarray:
    """``n`` samples of ``G`` (in eval mode) as a host array; see :meth:`~scratchgan.app.train.Trainer.sample`."""
    rng = np.random.default_rng(seed) if seed is not None else np.random.default_rng([config.seed, 2])
    if noise is None:
        noise = rng.standard_normal((n, config.z_dim))
    noise = np.asarray(noise)
    if noise.shape != (n, config.z_dim):
        raise ValueError(f"noise must have shape ({n}, {config.z_dim}), got {noise.shape}")
    z = as_tensor(np.asarray(noise, dtype=config.dtype))
    codes = auxiliary.sample_info_codes(rng, n, config, category, continuous)
    y = None
    if config.conditional:
        y = _class_labels(labels, n, data, rng)
    elif labels is not None:
        raise ConfigError("labels were given but this run is not conditional (train with --conditional)")
    G.eval()
    with no_grad():
        x = (G(z, y) if codes is None else G(z, y, codes=auxiliary.as_code_tensor(codes, config))).numpy()
    G.train()
    if data.kind == "image":
        return x.reshape(n, *data.image_shape)
    return x


def info_grid(trainer, per_row: int = 10, seed: int = 0) -> np.ndarray:
    """InfoGAN's picture of the categorical code; see :meth:`~scratchgan.app.train.Trainer.info_grid`."""
    config = trainer.config
    k = int(config.info_categories) if config.aux == "infogan" else 0
    if k < 2:
        raise ConfigError("info_grid needs an InfoGAN run with a categorical code (--aux infogan, "
                          "info_categories >= 2)")
    column_noise = np.random.default_rng(seed).standard_normal((per_row, config.z_dim))
    codes = auxiliary.info_grid_codes(config, per_row)
    return trainer.sample(k * per_row, noise=np.tile(column_noise, (k, 1)), category=codes.categories,
                          continuous=codes.continuous)


def _draw_samples(trainer, path) -> None:
    """``samples.png``: a scatter (toy data), or a grid with one row per class or per InfoGAN category."""
    from . import plots  # noqa: PLC0415 - matplotlib is imported only when pictures are made

    config, data = trainer.config, trainer.data
    if data.kind == "toy":
        real, _ = data.mixture.sample(2500, np.random.default_rng(0))
        plots.save_toy_scatter(path, trainer.sample(2500), real=real, centres=data.mixture.centres,
                               title=f"{config.data}, {config.loss}, step {trainer.step}")
    elif config.aux == "infogan" and config.info_categories >= 2:
        plots.save_image_grid(path, trainer.info_grid(), nrow=10,
                              row_labels=[f"c={i}" for i in range(config.info_categories)])
    elif config.conditional:
        k, per_row = data.num_classes, 10
        labels = np.repeat(np.arange(k), per_row)
        plots.save_image_grid(path, trainer.sample(k * per_row, labels=labels), nrow=per_row,
                              row_labels=[str(i) for i in range(k)])
    else:
        plots.save_image_grid(path, trainer.sample(100))


def save_pictures(trainer, folder) -> None:
    """Draw ``samples.png`` and ``losses.png`` in ``folder`` (a RunFolder), each replaced atomically, locked."""
    from . import plots  # noqa: PLC0415

    with folder.writing(), runlog.atomic_path(folder.path / "samples.png") as tmp:
        _draw_samples(trainer, tmp)
    records = runlog.read_jsonl(folder.path / METRICS)
    if records:
        with folder.writing(), runlog.atomic_path(folder.path / "losses.png") as tmp:
            plots.save_loss_curves(tmp, records)
