"""Training configuration: one dataclass, per-loss defaults from the papers.

Fields left as ``None`` are filled by :func:`resolve` from :data:`LOSS_DEFAULTS`
(the optimiser settings each paper used) so that a user who picks a loss gets
its published recipe, and can still override any single value.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

LOSSES = ("gan", "ns", "wgan", "wgan-gp", "lsgan", "hinge")
ACTIVATIONS = ("relu", "leaky_relu", "tanh")

#: Optimiser recipe per loss, with its source.
LOSS_DEFAULTS = {
    # Goodfellow et al. 2014 with the DCGAN optimiser (Radford et al. 2016): Adam 2e-4, beta1 0.5
    "gan": dict(optimizer="adam", lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.999), n_critic=1),
    "ns": dict(optimizer="adam", lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.999), n_critic=1),
    # Arjovsky et al. 2017, Algorithm 1: RMSprop 5e-5, clip 0.01, n_critic 5
    "wgan": dict(optimizer="rmsprop", lr_g=5e-5, lr_d=5e-5, clip_value=0.01, n_critic=5),
    # Gulrajani et al. 2017, Algorithm 1: Adam 1e-4, betas (0.5, 0.9), lambda 10, n_critic 5
    "wgan-gp": dict(optimizer="adam", lr_g=1e-4, lr_d=1e-4, betas=(0.5, 0.9), penalty_weight=10.0, n_critic=5),
    # Mao et al. 2017: Adam 2e-4, beta1 0.5
    "lsgan": dict(optimizer="adam", lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.999), n_critic=1),
    # Miyato et al. 2018 / Lim & Ye 2017 (hinge): Adam 2e-4, beta1 0.5
    "hinge": dict(optimizer="adam", lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.999), n_critic=1),
}


class ConfigError(ValueError):
    """A configuration value is invalid."""


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved in every checkpoint).

    ``None`` means "the default of the chosen loss" (see :data:`LOSS_DEFAULTS`).
    """

    # data
    data: str = "grid25"
    data_path: str | None = None
    # objective
    loss: str = "ns"
    r1: float = 0.0  # weight gamma of the R1 penalty gamma/2 E||grad D(x)||^2 on real data; 0 = off
    pack: int = 1  # PacGAN (Lin et al. 2018): D judges `pack` samples at once; 1 = a plain GAN
    # networks (MLPs)
    z_dim: int = 16
    g_hidden: tuple = (256, 256, 256)
    d_hidden: tuple = (256, 256, 256)
    g_activation: str = "relu"
    d_activation: str = "leaky_relu"
    conditional: bool = False  # CGAN: a label embedding is concatenated to the input of both nets
    embed_dim: int = 16
    # optimisation
    batch_size: int = 256
    steps: int = 4000  # generator updates, in total (resume continues up to this)
    optimizer: str | None = None  # "adam" | "rmsprop" | "sgd"
    lr_g: float | None = None
    lr_d: float | None = None  # a different value from lr_g is the TTUR
    betas: tuple | None = None
    n_critic: int | None = None  # discriminator updates per generator update
    penalty_weight: float | None = None  # lambda of the WGAN-GP gradient penalty
    clip_value: float | None = None  # weight clipping of the original WGAN
    ema_decay: float = 0.999  # generator EMA (Yazici et al. 2019); 0 = off
    # reproducibility and device
    seed: int = 0
    backend: str = "numpy"
    dtype: str = "float32"
    # bookkeeping
    log_every: int = 100
    sample_every: int = 1000
    checkpoint_every: int = 1000
    eval_samples: int = 2500
    extra: dict = field(default_factory=dict)  # reserved for future fields; kept so old checkpoints load

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for key in ("g_hidden", "d_hidden", "betas"):
            if d[key] is not None:
                d[key] = list(d[key])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"unknown config fields {unknown}; this scratchgan knows {sorted(names)}")
        d = dict(d)
        for key in ("g_hidden", "d_hidden", "betas"):
            if d.get(key) is not None:
                d[key] = tuple(d[key])
        return cls(**d)


def resolve(config: TrainConfig) -> TrainConfig:
    """Fill the ``None`` fields from the loss's recipe and validate everything."""
    if config.loss not in LOSSES:
        raise ConfigError(f"unknown loss {config.loss!r}; choose one of {', '.join(LOSSES)}")
    recipe = LOSS_DEFAULTS[config.loss]
    filled = {}
    for key in ("optimizer", "lr_g", "lr_d", "betas", "n_critic", "penalty_weight", "clip_value"):
        if getattr(config, key) is None:
            filled[key] = recipe.get(key)
    if filled.get("betas", config.betas) is None:
        filled["betas"] = (0.5, 0.999)
    config = dataclasses.replace(config, **filled)
    _validate(config)
    return config


def _validate(c: TrainConfig) -> None:
    def positive(name, value, allow_zero=False):
        if value is None:
            return
        if not (value >= 0 if allow_zero else value > 0):
            raise ConfigError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value}")

    if c.batch_size % c.pack:
        raise ConfigError(f"batch_size ({c.batch_size}) must be a multiple of pack ({c.pack})")
    for name in ("z_dim", "batch_size", "steps", "n_critic", "pack", "log_every", "sample_every", "checkpoint_every",
                 "eval_samples", "embed_dim"):
        positive(name, getattr(c, name))
    for name in ("lr_g", "lr_d", "clip_value"):
        positive(name, getattr(c, name))
    positive("r1", c.r1, allow_zero=True)
    positive("penalty_weight", c.penalty_weight, allow_zero=True)
    if not 0 <= c.ema_decay < 1:
        raise ConfigError(f"ema_decay must be in [0, 1), got {c.ema_decay}")
    if c.optimizer not in ("adam", "rmsprop", "sgd"):
        raise ConfigError(f"optimizer must be adam, rmsprop or sgd, got {c.optimizer!r}")
    if len(c.betas) != 2 or not all(0 <= b < 1 for b in c.betas):
        raise ConfigError(f"betas must be two numbers in [0, 1), got {c.betas}")
    for name in ("g_activation", "d_activation"):
        if getattr(c, name) not in ACTIVATIONS:
            raise ConfigError(f"{name} must be one of {ACTIVATIONS}, got {getattr(c, name)!r}")
    for name in ("g_hidden", "d_hidden"):
        sizes = getattr(c, name)
        if not sizes or any(int(s) <= 0 for s in sizes):
            raise ConfigError(f"{name} must be a non-empty list of positive layer widths, got {sizes}")
    if c.backend not in ("numpy", "cupy"):
        raise ConfigError(f"backend must be numpy or cupy, got {c.backend!r}")
    if c.dtype not in ("float32", "float64"):
        raise ConfigError(f"dtype must be float32 or float64, got {c.dtype!r}")
