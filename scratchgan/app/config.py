"""Training configuration: one dataclass, per-loss defaults from the papers.

Fields left as ``None`` are filled by :func:`resolve` from a *recipe*:

* ``"paper"``: :data:`LOSS_DEFAULTS`, the optimiser settings each loss's paper
  used, with no R1 penalty and a constant learning rate;
* ``"toy"``: :data:`TOY_RECIPES`, the recipe tuned for the 2-D mode-coverage
  benchmark (grid25, ring8) in about a minute on two CPU cores; it exists for
  the ``"ns"`` loss only (see docs/training.md for the evidence);
* ``"image"``: :data:`IMAGE_RECIPE` for image data: the DCGAN networks,
  z_dim 100, batches of 64 and a step count that fits the 20-minute budget on
  two CPU cores, with the optimiser of the loss's paper recipe as tuned for
  images by :data:`IMAGE_LOSS_RECIPES` (for ``"ns"`` Adam 8e-4, betas 0.5/0.999);
* ``"auto"`` (the default): ``"image"`` for image data, ``"toy"`` when the
  data is a 2-D toy mixture and the loss has a toy recipe, otherwise
  ``"paper"``.

So ``scratchgan train`` with no options runs the tuned toy recipe,
``scratchgan train --data fashion-mnist`` the DCGAN image recipe, a user who
picks another loss on toy data gets that loss's published recipe, and any
single value can still be overridden. The fields a recipe fills are
:data:`RECIPE_FIELDS`; where a recipe names no value, the field takes the
value given there (the toy job's networks and budget, as before recipes
filled them).

The names a field accepts (:data:`CHOICES`) and the range of a numeric field
(:func:`value_problem`) are defined here once: :func:`resolve` checks a
config with them, and the ``scratchgan train`` command line takes its
``choices`` and checks each option's value with them.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from ..backend import BACKENDS
from ..backend.validate import ConfigError
from .data import DATASETS

LOSSES = ("gan", "ns", "wgan", "wgan-gp", "lsgan", "hinge", "rsgan", "rasgan")
ACTIVATIONS = ("relu", "leaky_relu", "tanh")
OPTIMIZERS = ("adam", "rmsprop", "sgd")
DTYPES = ("float32", "float64")

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
    # Miyato et al. 2018 / Lim & Ye 2017 (hinge): Adam 2e-4, beta1 0.5; with --spectral-norm this is SNGAN's
    # setting C of Miyato et al.'s Table 1 (alpha 2e-4, beta1 0.5, beta2 0.999, n_dis 1; docs/training.md)
    "hinge": dict(optimizer="adam", lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.999), n_critic=1),
    # Jolicoeur-Martineau 2018, section 4 (the DCGAN setup of her experiments): Adam 2e-4, betas (0.5, 0.999), n_D 1
    "rsgan": dict(optimizer="adam", lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.999), n_critic=1),
    "rasgan": dict(optimizer="adam", lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.999), n_critic=1),
}


#: Main-job recipe for the 2-D toy benchmarks (tuned on grid25 and ring8, 5 seeds; docs/training.md).
#: Only the values that differ from the paper recipe of the same loss are the point: a 10x larger
#: learning rate, twice as large for D (TTUR, Heusel et al. 2017), beta2 0.9, R1 (Mescheder et al.
#: 2018) and a linear decay of both learning rates to zero.
TOY_RECIPES = {
    "ns": dict(optimizer="adam", lr_g=2e-3, lr_d=4e-3, betas=(0.5, 0.9), n_critic=1, r1=0.3, lr_decay="linear"),
}
TOY_DATA = ("ring8", "grid25")
#: The image datasets (every other name of :data:`~scratchgan.app.data.DATASETS`).
IMAGE_DATA = tuple(name for name in DATASETS if name not in TOY_DATA)

#: The width of the image recipe's fully connected hidden layers in the DCGAN networks (``g_fc``, ``d_fc``):
#: with them fashion-mnist reached in 1,500 steps a classifier score (6.6) that the reference networks
#: plateau below (5.9-6.0) at 6,000 (docs/training.md). Unconditional runs only: :func:`resolve` gives
#: conditional runs (and ACGAN's) the reference networks.
DCGAN_RECIPE_FC = 256
#: The image recipe (docs/training.md, "The image recipe"): the DCGAN networks with hidden layers of
#: DCGAN_RECIPE_FC units, and the budget of a run that fits 20 minutes on two CPU cores with room to spare
#: (4,000 steps: 12.9 minutes in all for fashion-mnist, evaluation included), and G's EMA over the last
#: ~100 steps. The optimiser is the loss's paper recipe (for ns, DCGAN's Adam 2e-4, betas 0.5/0.999),
#: except where IMAGE_LOSS_RECIPES tunes it. When the image sides do not divide by 4 the architecture
#: falls back to the MLP, without the hidden layers (see :func:`resolve`).
IMAGE_RECIPE = dict(arch="dcgan", g_fc=DCGAN_RECIPE_FC, d_fc=DCGAN_RECIPE_FC, z_dim=100, batch_size=64,
                    steps=4000, ema_decay=0.99, r1=0.0, lr_decay="none")
#: Per loss, the image recipe's changes to the paper optimiser (tuned on fashion-mnist, docs/training.md):
#: for the default loss four times DCGAN's learning rate. Doubling it reached the same classifier score
#: in half the steps (5.13 at 1,500 steps against 4.77; 5.61 at 3,000 against 5.23); doubling again
#: gained a little more (full 6,000-step runs: 5.99 against 5.91, FCD 16.8 against 19.2).
IMAGE_LOSS_RECIPES = {
    "ns": dict(lr_g=8e-4, lr_d=8e-4),
}

#: A recipe's EMA of G averages over at most ``steps / EMA_WINDOWS_PER_RUN`` steps: its decay is
#: ``min(recipe value, 1 - EMA_WINDOWS_PER_RUN / steps)`` (0.999 for the default 12,000 steps).
EMA_WINDOWS_PER_RUN = 12

RECIPES = ("auto", "paper", "toy", "image")
LR_DECAYS = ("none", "linear")
#: The network architectures (:data:`scratchgan.gan.models.ARCHITECTURES` has one entry per name).
ARCHS = ("mlp", "dcgan")
#: Auxiliary heads on D (docs/losses.md, "ACGAN and InfoGAN"): none, ACGAN's classifier, InfoGAN's Q head.
AUXES = ("none", "acgan", "infogan")

#: The fields that take one of a list of names, and those names (the command line's choices come from here).
#: ``data`` is checked by :func:`scratchgan.app.data.load_dataset` (case-insensitively), the others by :func:`resolve`.
CHOICES = {
    "data": DATASETS,
    "loss": LOSSES,
    "recipe": RECIPES,
    "arch": ARCHS,
    "aux": AUXES,
    "g_activation": ACTIVATIONS,
    "d_activation": ACTIVATIONS,
    "optimizer": OPTIMIZERS,
    "lr_decay": LR_DECAYS,
    "backend": BACKENDS,
    "dtype": DTYPES,
}

#: Numeric fields that must be > 0, and those that must be >= 0 (see :func:`value_problem`).
POSITIVE_FIELDS = ("z_dim", "batch_size", "steps", "n_critic", "pack", "log_every", "sample_every", "checkpoint_every",
                   "eval_samples", "embed_dim", "lr_decay_steps", "lr_g", "lr_d", "clip_value")
NON_NEGATIVE_FIELDS = ("r1", "penalty_weight", "seed", "dragan", "g_fc", "d_fc")
NON_NEGATIVE_FIELDS += ("aux_weight", "info_categories", "info_continuous")  # ACGAN / InfoGAN

#: Fields that a recipe fills when they are left as None, and their value when no recipe names them
#: (for arch, z_dim, batch_size, steps and ema_decay: the toy job's values, which the paper and toy
#: recipes keep).
RECIPE_FIELDS = {"arch": "mlp", "g_fc": 0, "d_fc": 0, "z_dim": 16, "batch_size": 128, "steps": 12000,
                 "ema_decay": 0.999,
                 "optimizer": None, "lr_g": None, "lr_d": None, "betas": (0.5, 0.999), "n_critic": None,
                 "penalty_weight": None, "clip_value": None, "r1": 0.0, "lr_decay": "none", "lr_decay_steps": None,
                 "label_smoothing": 0.0}


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved in every checkpoint).

    ``None`` means "the value of the recipe" (``recipe``; see :func:`resolve`,
    :data:`LOSS_DEFAULTS`, :data:`TOY_RECIPES`, :data:`IMAGE_RECIPE` and
    :data:`RECIPE_FIELDS`). The other defaults are the main job's: the grid25
    benchmark in about a minute on two CPU cores (docs/training.md gives the
    evidence).
    """

    # data
    data: str = "grid25"
    data_path: str | None = None
    # objective
    loss: str = "ns"
    recipe: str = "auto"  # where None fields come from: "paper", "toy", "image" or "auto" (images -> image,
    # toy data + ns -> toy, else paper)
    r1: float | None = None  # gamma of the R1 penalty gamma/2 E||grad D(x)||^2 on real data; 0 = off (toy recipe: 0.3)
    # one-sided label smoothing s (Salimans et al. 2016): D's target on real data is 1 - s; gan and ns losses only;
    # 0 = off (losses.d_loss)
    label_smoothing: float | None = None
    pack: int = 1  # PacGAN (Lin et al. 2018): D judges `pack` samples at once; 1 = a plain GAN
    # lambda of DRAGAN's penalty lambda E(||grad D(x + delta)|| - 1)^2 around the real data (Kodali et al. 2017; they
    # use 10); 0 = off
    dragan: float = 0.0
    # SNGAN (Miyato et al. 2018): spectral normalisation of every Linear/Conv layer of D, which then has no batch norm
    spectral_norm: bool = False
    # DiffAugment (Zhao et al. 2020): D sees every image, real and fake, through the same random differentiable
    # translation and cutout, in D's and G's updates (scratchgan.gan.augment); images only
    diffaugment: bool = False
    # networks
    arch: str | None = None  # "mlp" or "dcgan" (recipe: dcgan for images whose sides divide by 4, else mlp)
    # DCGAN only: widths of a fully connected hidden layer at G's input (z -> g_fc -> the first feature map) and
    # between D's convolutions and its output (TF-GAN's and InfoGAN's 28x28 networks have such layers, of 1024);
    # 0 = none, the reference DCGAN; recipe: 256 each for images
    g_fc: int | None = None
    d_fc: int | None = None
    z_dim: int | None = None  # recipe: 16 (toy, paper), 100 (image)
    g_hidden: tuple = (128, 128, 128)
    d_hidden: tuple = (128, 128, 128)
    g_activation: str = "relu"
    d_activation: str = "leaky_relu"
    conditional: bool = False  # CGAN: label embeddings (MLP: concatenated to both inputs; DCGAN: G's input, D's
    # projection)
    embed_dim: int = 16
    # an auxiliary head on D (docs/losses.md, "ACGAN and InfoGAN"): "acgan" (Odena et al. 2017: D also classifies,
    # G is class-conditional, so resolve() sets conditional; D has no projection) or "infogan" (Chen et al. 2016:
    # G also takes latent codes, a Q head on D's body predicts them; no labels); pack must be 1
    aux: str = "none"
    aux_weight: float = 1.0  # weight of the ACGAN classification losses / the InfoGAN MI penalty, on G and on D
    info_categories: int = 10  # InfoGAN: categories of the one-hot code, drawn uniformly (0 = none)
    info_continuous: int = 2  # InfoGAN: continuous codes, uniform on [-1, 1] (0 = none)
    # optimisation
    batch_size: int | None = None  # recipe: 128 (toy, paper), 64 (image)
    steps: int | None = None  # generator updates, in total (resume continues up to this); recipe: 12000 (toy,
    # paper), IMAGE_RECIPE's for images
    optimizer: str | None = None  # "adam" | "rmsprop" | "sgd"
    lr_g: float | None = None
    lr_d: float | None = None  # a different value from lr_g is the TTUR
    betas: tuple | None = None
    n_critic: int | None = None  # discriminator updates per generator update
    penalty_weight: float | None = None  # lambda of the WGAN-GP gradient penalty
    clip_value: float | None = None  # weight clipping of the original WGAN
    lr_decay: str | None = None  # "none" (constant) or "linear" (both lrs fall linearly to 0, see lr_decay_steps)
    # the linear decay reaches 0 at step max(lr_decay_steps, steps); None = the run's steps, fixed by resolve()
    # when the run starts and saved with it, so a run stopped early and resumed matches one run straight
    lr_decay_steps: int | None = None
    ema_decay: float | None = None  # generator EMA (Yazici et al. 2019); 0 = off; recipe: 0.999 (toy, paper; at most
    # 1 - 12 / steps for shorter runs), 0.99 image
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
        # checkpoints written before these fields existed trained with a constant lr, no recipe field, MLPs
        d.setdefault("lr_decay", "none")
        d.setdefault("arch", "mlp")
        d.setdefault("label_smoothing", 0.0)
        d.setdefault("g_fc", 0)  # DCGAN runs from before these fields had the reference networks
        d.setdefault("d_fc", 0)
        for key in ("g_hidden", "d_hidden", "betas"):
            if d.get(key) is not None:
                d[key] = tuple(d[key])
        return cls(**d)


def recipe_name(config: TrainConfig) -> str:
    """The recipe that fills ``config``'s ``None`` fields: ``"paper"``, ``"toy"`` or ``"image"``."""
    if config.recipe not in RECIPES:
        raise ConfigError(f"unknown recipe {config.recipe!r}; choose one of {', '.join(RECIPES)}")
    if config.recipe == "toy" and config.loss not in TOY_RECIPES:
        raise ConfigError(f"there is no toy recipe for the {config.loss!r} loss (only for {', '.join(TOY_RECIPES)}); "
                          "use --recipe paper or auto")
    toy = _data_key(config.data) in TOY_DATA
    if config.recipe == "image" and toy:
        raise ConfigError(f"the image recipe is for image data ({', '.join(IMAGE_DATA)}); {config.data} is a 2-D "
                          "toy mixture: use --recipe auto, toy or paper")
    if config.recipe == "auto":
        if toy:
            return "toy" if config.loss in TOY_RECIPES else "paper"
        return "image"
    return config.recipe


def recipe_values(name: str, loss: str) -> dict:
    """The values that the recipe ``name`` (``"paper"``, ``"toy"`` or ``"image"``) gives for ``loss``."""
    if name == "toy":
        return dict(TOY_RECIPES[loss])
    if name == "image":
        return {**LOSS_DEFAULTS[loss], **IMAGE_LOSS_RECIPES.get(loss, {}), **IMAGE_RECIPE}
    return dict(LOSS_DEFAULTS[loss])


def resolve(config: TrainConfig, data=None) -> TrainConfig:
    """Fill the ``None`` fields from the recipe (see the module docstring) and validate everything.

    ``data`` (a loaded :class:`~scratchgan.app.data.Dataset`, optional) lets the
    recipe's architecture follow the images: a recipe's ``"dcgan"`` becomes
    ``"mlp"`` for images whose sides do not divide by 4 (an explicit
    ``arch="dcgan"`` is kept, and the networks then refuse the data).
    """
    if config.loss not in LOSSES:
        raise ConfigError(f"unknown loss {config.loss!r}; choose one of {', '.join(LOSSES)}")
    recipe = recipe_values(recipe_name(config), config.loss)
    filled = {}
    for key, fallback in RECIPE_FIELDS.items():
        if getattr(config, key) is None:
            value = recipe.get(key)
            filled[key] = fallback if value is None else value
    if filled.get("arch") == "dcgan" and data is not None and not _fits_dcgan(data):
        filled["arch"] = "mlp"
    # the recipe's hidden layers are the DCGAN networks' (an MLP has --g/d-hidden), and for runs without labels:
    # with labels they collapsed each class of mnist5k to one style (recall 0.0, FCD 183, docs/training.md),
    # where the reference networks keep the classes' variety (recall 0.8)
    if filled.get("arch", config.arch) != "dcgan" or config.conditional or config.aux == "acgan":
        for key in ("g_fc", "d_fc"):
            if key in filled:
                filled[key] = 0
    steps = filled.get("steps", config.steps)
    if "ema_decay" in filled and filled["ema_decay"] > 0 and isinstance(steps, int) and steps > 0:
        # the recipe's EMA averages over at most a twelfth of the run (0.999 = 1,000 steps of the 12,000-step
        # default): a shortened run would otherwise sample from weights that lag far behind G (ring8 at 3,000
        # steps: 0.2 % high-quality samples from an EMA of 0.999, 88 % from G itself)
        filled["ema_decay"] = fitted_ema_decay(filled["ema_decay"], steps)
    if (filled.get("lr_decay", config.lr_decay) == "linear"
            and filled.get("lr_decay_steps", config.lr_decay_steps) is None):
        # the decay's horizon is fixed when the run starts: the run's own length, saved with the run,
        # so a shortened run still decays to zero and a resumed one keeps its schedule
        filled["lr_decay_steps"] = steps
    if config.aux == "acgan" and not config.conditional:
        filled["conditional"] = True  # ACGAN's G is class-conditional (its D predicts the class instead)
    config = dataclasses.replace(config, **filled)
    _validate(config)
    return config


def fitted_ema_decay(decay: float, steps: int) -> float:
    """A recipe's EMA decay ``decay`` for a run of ``steps``: at most ``1 - EMA_WINDOWS_PER_RUN / steps``, >= 0."""
    return min(decay, max(0.0, 1.0 - EMA_WINDOWS_PER_RUN / steps))


def step_fitted_changes(config: TrainConfig, steps: int) -> dict:
    """What a run of the resolved ``config``, resumed up to ``steps`` in total, keeps of its own length.

    :func:`resolve` fits two things to the step count when a run starts, and
    they are saved with it: the linear decay's horizon (``lr_decay_steps``)
    and a recipe's EMA decay (:func:`fitted_ema_decay`). A resume to more
    steps than ``config.steps`` keeps them, where a run of ``steps`` from
    scratch would fit them to ``steps``. Returns ``{name: (kept, straight)}``
    for what differs: ``"lr_horizon"``, the step at which the decay planned
    at the start reaches 0 (``max(lr_decay_steps, steps)``; a resume
    stretches the rest of it to ``steps``, see
    :meth:`~scratchgan.app.train.Trainer.lr_factor`), and ``"ema_decay"`` when
    it is the recipe's value capped for ``config.steps`` (a value that was
    given and happens to equal it is taken for the recipe's). Empty when a
    resume to ``steps`` is the straight run's continuation.
    """
    changes = {}
    if steps <= config.steps:
        return changes
    horizon = max(config.lr_decay_steps or 0, config.steps)
    if config.lr_decay == "linear" and horizon < steps:
        changes["lr_horizon"] = (horizon, steps)
    recipe = recipe_values(recipe_name(config), config.loss).get("ema_decay")
    recipe = RECIPE_FIELDS["ema_decay"] if recipe is None else recipe
    kept, straight = config.ema_decay, fitted_ema_decay(recipe, steps)
    fitted = kept is not None and math.isclose(kept, fitted_ema_decay(recipe, config.steps))
    if fitted and not math.isclose(kept, straight):
        changes["ema_decay"] = (kept, straight)
    return changes


def _data_key(name) -> str:
    """A dataset name as :func:`scratchgan.app.data.load_dataset` reads it (any case, ``_`` for ``-``)."""
    return str(name).strip().lower().replace("_", "-")


def _fits_dcgan(data) -> bool:
    """Whether ``data`` holds images whose two sides divide by 4 (what the DCGAN networks need)."""
    if data.kind != "image":
        return False
    h, w = tuple(data.image_shape)[-2:]
    return h % 4 == 0 and w % 4 == 0


def value_problem(name: str, value) -> str | None:
    """What is wrong with ``value`` as the field ``name`` on its own, or None when it is fine.

    The answer completes a sentence about the field, e.g. ``"must be > 0, got 0"``.
    None is fine for the fields a recipe fills (:data:`RECIPE_FIELDS`) and
    ``data_path``; the name of ``data`` is not checked here
    (:func:`scratchgan.app.data.load_dataset` reads it). Fields checked together
    (``batch_size`` and ``pack``) are checked by :func:`resolve`.
    """
    if value is None:
        return None if name in RECIPE_FIELDS or name == "data_path" else "must be given, got None"
    if name == "info_categories" and value == 1:
        return "must be 0 (no categorical code) or at least 2 categories, got 1"
    if name in CHOICES and name != "data":
        if value not in CHOICES[name]:
            return f"must be one of {', '.join(CHOICES[name])}, got {value!r}"
    elif name in POSITIVE_FIELDS or name in NON_NEGATIVE_FIELDS:
        rule = "> 0" if name in POSITIVE_FIELDS else ">= 0"
        if not math.isfinite(value):
            return f"must be a finite number {rule}, got {value}"
        if not (value > 0 if rule == "> 0" else value >= 0):
            return f"must be {rule}, got {value}"
    elif name in ("ema_decay", "label_smoothing"):
        if not 0 <= value < 1:
            return f"must be in [0, 1), got {value}"
    elif name == "betas":
        if len(value) != 2 or not all(0 <= b < 1 for b in value):
            return f"must be two numbers in [0, 1), got {value}"
    elif name in ("g_hidden", "d_hidden"):
        if not value or any(int(s) <= 0 for s in value):
            return f"must be a non-empty list of positive layer widths, got {value}"
    return None


def _validate(c: TrainConfig) -> None:
    for f in dataclasses.fields(c):
        problem = value_problem(f.name, getattr(c, f.name))
        if problem:
            raise ConfigError(f"{f.name} {problem}")
    if c.batch_size % c.pack:
        raise ConfigError(f"batch_size ({c.batch_size}) must be a multiple of pack ({c.pack})")
    if c.label_smoothing and c.loss not in ("gan", "ns"):
        raise ConfigError(f"label_smoothing applies to the gan and ns losses (a target for D's sigmoid), not to "
                          f"{c.loss!r}: drop --label-smoothing or use --loss ns")
    for key, net in (("g_fc", "generator"), ("d_fc", "discriminator")):
        if getattr(c, key) and c.arch != "dcgan":
            raise ConfigError(f"{key} ({getattr(c, key)}) adds a hidden layer to the dcgan {net}; the {c.arch} "
                              f"architecture has none (its layers are --{key[0]}-hidden): drop --{key[0]}-fc or "
                              "use --arch dcgan")
    if c.arch == "dcgan" and _data_key(c.data) in TOY_DATA:
        raise ConfigError(f"the dcgan architecture needs image data; {c.data} is a 2-D toy mixture (use --arch mlp)")
    if c.diffaugment and _data_key(c.data) in TOY_DATA:
        raise ConfigError(f"--diffaugment shifts and cuts out parts of images; {c.data} is a 2-D toy mixture of "
                          f"points, not images: drop --diffaugment or train on {', '.join(IMAGE_DATA)}")
    _validate_aux(c)


def _validate_aux(c: TrainConfig) -> None:
    """The checks of the ACGAN / InfoGAN options that involve several fields."""
    if c.aux == "none":
        return
    if c.pack != 1:
        raise ConfigError(f"--aux {c.aux} needs pack 1: its head classifies each sample, and a PacGAN discriminator "
                          f"sees packs of {c.pack} (drop --pack)")
    if c.aux == "infogan":
        if c.conditional:
            raise ConfigError("--aux infogan learns its categorical code without labels; drop --conditional "
                              "(for a class-conditional GAN with a classifier head use --aux acgan)")
        if c.info_categories == 0 and c.info_continuous == 0:
            raise ConfigError("--aux infogan needs at least one code: info_categories >= 2 or info_continuous >= 1")
