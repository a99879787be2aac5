"""Training configuration: one dataclass, per-loss defaults from the papers.

Fields left as ``None`` are filled by :func:`resolve` from a *recipe*:

* ``"paper"``: :data:`LOSS_DEFAULTS`, the optimiser settings each loss's paper
  used, with no R1 penalty and a constant learning rate;
* ``"toy"``: :data:`TOY_RECIPES`, the recipe tuned for the 2-D mode-coverage
  benchmark (grid25, ring8) in about a minute on two CPU cores; it exists for
  the ``"ns"`` loss only (see docs/training.md for the evidence);
* ``"auto"`` (the default): ``"toy"`` when the data is a 2-D toy mixture and
  the loss has a toy recipe, otherwise ``"paper"``.

So ``scratchgan train`` with no options runs the tuned toy recipe, a user who
picks another loss (or image data) gets that loss's published recipe, and any
single value can still be overridden.
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


#: Main-job recipe for the 2-D toy benchmarks (tuned on grid25 and ring8, 5 seeds; docs/training.md).
#: Only the values that differ from the paper recipe of the same loss are the point: a 10x larger
#: learning rate, twice as large for D (TTUR, Heusel et al. 2017), beta2 0.9, R1 (Mescheder et al.
#: 2018) and a linear decay of both learning rates to zero.
TOY_RECIPES = {
    "ns": dict(optimizer="adam", lr_g=2e-3, lr_d=4e-3, betas=(0.5, 0.9), n_critic=1, r1=0.3, lr_decay="linear",
               lr_decay_steps=12000),
}
TOY_DATA = ("ring8", "grid25")
RECIPES = ("auto", "paper", "toy")
LR_DECAYS = ("none", "linear")

#: Fields that a recipe fills when they are left as None, and their value when no recipe names them.
RECIPE_FIELDS = {"optimizer": None, "lr_g": None, "lr_d": None, "betas": (0.5, 0.999), "n_critic": None,
                 "penalty_weight": None, "clip_value": None, "r1": 0.0, "lr_decay": "none", "lr_decay_steps": None}


class ConfigError(ValueError):
    """A configuration value is invalid."""


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved in every checkpoint).

    ``None`` means "the value of the recipe" (``recipe``; see :func:`resolve`,
    :data:`LOSS_DEFAULTS` and :data:`TOY_RECIPES`). The other defaults are
    the main job's: the grid25 benchmark in about a minute on two CPU cores
    (docs/training.md gives the evidence).
    """

    # data
    data: str = "grid25"
    data_path: str | None = None
    # objective
    loss: str = "ns"
    recipe: str = "auto"  # where None fields come from: "paper", "toy" or "auto" (toy data + ns -> toy)
    r1: float | None = None  # gamma of the R1 penalty gamma/2 E||grad D(x)||^2 on real data; 0 = off (toy recipe: 0.3)
    pack: int = 1  # PacGAN (Lin et al. 2018): D judges `pack` samples at once; 1 = a plain GAN
    # networks (MLPs)
    z_dim: int = 16
    g_hidden: tuple = (128, 128, 128)
    d_hidden: tuple = (128, 128, 128)
    g_activation: str = "relu"
    d_activation: str = "leaky_relu"
    conditional: bool = False  # CGAN: a label embedding is concatenated to the input of both nets
    embed_dim: int = 16
    # optimisation
    batch_size: int = 128
    steps: int = 12000  # generator updates, in total (resume continues up to this)
    optimizer: str | None = None  # "adam" | "rmsprop" | "sgd"
    lr_g: float | None = None
    lr_d: float | None = None  # a different value from lr_g is the TTUR
    betas: tuple | None = None
    n_critic: int | None = None  # discriminator updates per generator update
    penalty_weight: float | None = None  # lambda of the WGAN-GP gradient penalty
    clip_value: float | None = None  # weight clipping of the original WGAN
    lr_decay: str | None = None  # "none" (constant) or "linear" (both lrs fall linearly to 0, see lr_decay_steps)
    # the linear decay reaches 0 at step max(lr_decay_steps, steps): a horizon that does not depend on steps
    # (toy recipe: 12000, the default steps), so a run stopped early and resumed matches one run straight
    lr_decay_steps: int | None = None
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
        # checkpoints written before these fields existed trained with a constant lr and no recipe field
        d.setdefault("lr_decay", "none")
        for key in ("g_hidden", "d_hidden", "betas"):
            if d.get(key) is not None:
                d[key] = tuple(d[key])
        return cls(**d)


def recipe_name(config: TrainConfig) -> str:
    """The recipe that fills ``config``'s ``None`` fields: ``"paper"`` or ``"toy"``."""
    if config.recipe not in RECIPES:
        raise ConfigError(f"unknown recipe {config.recipe!r}; choose one of {', '.join(RECIPES)}")
    if config.recipe == "toy" and config.loss not in TOY_RECIPES:
        raise ConfigError(f"there is no toy recipe for the {config.loss!r} loss (only for {', '.join(TOY_RECIPES)}); "
                          "use --recipe paper or auto")
    if config.recipe == "auto":
        return "toy" if config.loss in TOY_RECIPES and config.data in TOY_DATA else "paper"
    return config.recipe


def resolve(config: TrainConfig) -> TrainConfig:
    """Fill the ``None`` fields from the recipe (see the module docstring) and validate everything."""
    if config.loss not in LOSSES:
        raise ConfigError(f"unknown loss {config.loss!r}; choose one of {', '.join(LOSSES)}")
    recipe = TOY_RECIPES[config.loss] if recipe_name(config) == "toy" else LOSS_DEFAULTS[config.loss]
    filled = {}
    for key, fallback in RECIPE_FIELDS.items():
        if getattr(config, key) is None:
            value = recipe.get(key)
            filled[key] = fallback if value is None else value
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
                 "eval_samples", "embed_dim", "lr_decay_steps"):
        positive(name, getattr(c, name))
    for name in ("lr_g", "lr_d", "clip_value"):
        positive(name, getattr(c, name))
    positive("r1", c.r1, allow_zero=True)
    positive("penalty_weight", c.penalty_weight, allow_zero=True)
    if not 0 <= c.ema_decay < 1:
        raise ConfigError(f"ema_decay must be in [0, 1), got {c.ema_decay}")
    if c.lr_decay not in LR_DECAYS:
        raise ConfigError(f"lr_decay must be one of {', '.join(LR_DECAYS)}, got {c.lr_decay!r}")
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
