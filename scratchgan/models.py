"""The GAN's networks: one generator and one discriminator builder per architecture.

:func:`build_generator` and :func:`build_discriminator` build the networks
of a :class:`~scratchgan.config.TrainConfig` for a :class:`~scratchgan.data.Dataset`,
drawing the initial weights from ``rng`` in construction order (same seed,
same weights). They look the architecture up in :data:`ARCHITECTURES`; a new
architecture is one more entry there: a generator class and a discriminator
class, each constructed as ``cls(config, data, rng)``, with

* ``G(z, labels=None)``: noise (N, z_dim) (and int labels (N,) when
  ``config.conditional``) to samples (N, data_dim), in the data's units
  (images in [-1, 1]);
* ``D(x, labels=None)``: samples (N, data_dim) to one logit per pack of
  samples, shape (N / config.pack,).

The architecture comes from ``config.arch`` (``"mlp"`` when the config has no
such field): ``"mlp"`` (:class:`MLPGenerator`, :class:`MLPDiscriminator`, any
data) or ``"dcgan"`` (:class:`DCGANGenerator`, :class:`DCGANDiscriminator`,
images whose sides divide by 4). docs/training.md gives the sources.
"""

from __future__ import annotations

import numpy as np

from . import nn
from .config import ConfigError
from .ops import concatenate
from .ops import sum as sum_

__all__ = ["ARCHITECTURES", "DCGANDiscriminator", "DCGANGenerator", "MLPDiscriminator", "MLPGenerator",
           "build_discriminator", "build_generator", "critic_norm", "data_scale", "image_geometry"]

#: Slope of the LeakyReLU in the GAN networks (DCGAN's 0.2; nn's default is PyTorch's 0.01).
LEAKY_SLOPE = 0.2


def data_scale(data) -> float:
    """A fixed scale for toy data: the RMS of the mode centres' coordinates (1 for images).

    The networks work in normalised units (grid25 spans [-4, 4]): G's output is
    multiplied by this constant and D's input divided by it. It is not learned.
    """
    if data.kind != "toy":
        return 1.0
    return float(np.sqrt(np.mean(data.mixture.centres ** 2)))


def _mlp(sizes, activation: str, out_activation, rng, dtype) -> nn.Sequential:
    """``nn.mlp`` with the GAN's LeakyReLU slope; the layer order (and so the state-dict keys) of ``nn.mlp``."""
    return nn.mlp(sizes, activation=activation, out_activation=out_activation, rng=rng, dtype=dtype,
                  negative_slope=LEAKY_SLOPE)


class MLPGenerator(nn.Module):
    """MLP generator ``G(z)`` (or ``G(z, y)``); a label embedding is concatenated to z when conditional.

    Parameters are created in this order: the embedding (conditional only),
    then the MLP ``z_dim (+ embed_dim) -> g_hidden... -> data_dim`` with
    ``g_activation`` between layers and tanh on the output for images.
    """

    def __init__(self, config, data, rng):
        super().__init__()
        self.scale = data_scale(data)
        self.conditional = config.conditional
        extra = config.embed_dim if config.conditional else 0
        if config.conditional:
            self.embed = nn.Embedding(data.num_classes, config.embed_dim, rng=rng, dtype=config.dtype)
        out = "tanh" if data.kind == "image" else None  # images live in [-1, 1]; toy points anywhere
        sizes = [config.z_dim + extra, *config.g_hidden, data.data_dim]
        self.net = _mlp(sizes, config.g_activation, out, rng, config.dtype)

    def forward(self, z, labels=None):
        if self.conditional:
            z = concatenate([z, self.embed(labels)], axis=1)
        out = self.net(z)
        return out * self.scale if self.scale != 1.0 else out


class MLPDiscriminator(nn.Module):
    """MLP discriminator/critic returning one logit per pack of samples, shape (N / pack,).

    With ``pack = m`` (PacGAN) the rows ``m*i .. m*i+m-1`` of the batch are
    concatenated into one input, so D judges m samples jointly, which
    penalises a generator that repeats itself (mode collapse). Parameters
    are created in this order: the embedding (conditional only), then the MLP
    ``(data_dim (+ embed_dim)) * pack -> d_hidden... -> 1``.
    """

    def __init__(self, config, data, rng):
        super().__init__()
        self.scale = data_scale(data)
        self.pack = config.pack
        self.conditional = config.conditional
        extra = config.embed_dim if config.conditional else 0
        if config.conditional:
            self.embed = nn.Embedding(data.num_classes, config.embed_dim, rng=rng, dtype=config.dtype)
        sizes = [(data.data_dim + extra) * config.pack, *config.d_hidden, 1]
        self.net = _mlp(sizes, config.d_activation, None, rng, config.dtype)

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


# --------------------------------------------------------------------------- DCGAN

#: Channels of the DCGAN networks at half resolution; the quarter-resolution layer has twice as many
#: (the reference for 28x28: G 128 -> 64 -> C, D C -> 64 -> 128; Radford et al. 2016, scaled down as
#: in the PyTorch examples for MNIST-sized images).
DCGAN_WIDTH = 64
#: Standard deviation of the DCGAN initialisation of conv and linear weights (Radford et al. 2016, section 4).
DCGAN_INIT_STD = 0.02


def image_geometry(data) -> tuple[int, int, int]:
    """``(C, H, W)`` of ``data``'s images for the DCGAN networks, or a ConfigError saying why there is none.

    ``data.image_shape`` is ``(H, W)`` (one channel, what :mod:`scratchgan.data`
    loads) or ``(C, H, W)``. Both sides must divide by 4: the networks halve
    (D) or double (G) the side twice with 4x4 kernels, stride 2, padding 1.
    """
    if data.kind != "image":
        raise ConfigError(f"the dcgan architecture needs image data; {data.name} is {data.kind} data "
                          "(use --arch mlp)")
    shape = tuple(int(s) for s in data.image_shape)
    if len(shape) == 2:
        shape = (1, *shape)
    if len(shape) != 3:
        raise ConfigError(f"the dcgan architecture needs images of shape (H, W) or (C, H, W), got {shape}")
    c, h, w = shape
    if h % 4 or w % 4:
        raise ConfigError(f"the dcgan architecture needs image sides divisible by 4; {data.name} is {h}x{w} "
                          "(use --arch mlp)")
    return c, h, w


def critic_norm(config) -> str:
    """The normalisation of the DCGAN discriminator for ``config``: ``"batch"`` or ``"layer"``.

    A gradient penalty on D's input (WGAN-GP, or R1 with ``r1 > 0``) is a sum of
    per-sample input gradients, which is what the gradient of the summed
    outputs gives only when each output depends on its own sample: batch norm
    mixes the samples of the batch, so such runs get layer norm over (C, H, W)
    instead (Gulrajani et al. 2017, section 4, recommend it as the drop-in
    replacement). Every other run keeps DCGAN's batch norm.
    """
    gp = config.loss == "wgan-gp" and (config.penalty_weight is None or config.penalty_weight > 0)
    return "layer" if gp or (config.r1 or 0) > 0 else "batch"


class DCGANGenerator(nn.Module):
    """DCGAN generator (Radford et al. 2016) for images of side divisible by 4.

    For (C, H, W) images, with ``h, w = H / 4, W / 4`` and ``k = DCGAN_WIDTH``::

        z (z_dim [+ embed_dim]) -> Linear(2k·h·w) -> BatchNorm1d -> ReLU -> (2k, h, w)
          -> ConvTranspose2d(2k, k, 4, 2, 1) -> BatchNorm2d -> ReLU
          -> ConvTranspose2d(k, C, 4, 2, 1) -> tanh -> flattened (N, C·H·W)

    (28x28: 100 -> 6272 -> (128, 7, 7) -> (64, 14, 14) -> (C, 28, 28)). The
    layers before a batch norm have no bias (the norm removes it). Weights
    ``N(0, 0.02^2)`` and biases 0 (DCGAN's initialisation); batch-norm scale 1
    and shift 0 (PyTorch's defaults, not the tutorial's ``N(1, 0.02^2)``).
    Conditional: a label embedding (``embed_dim``, ``N(0, 1)`` as
    ``nn.Embedding``) is concatenated to z, as :class:`MLPGenerator` does.
    Parameters are created in this order: the embedding, then the layers.
    """

    def __init__(self, config, data, rng):
        super().__init__()
        c, h, w = image_geometry(data)
        k, dt = DCGAN_WIDTH, config.dtype
        self.conditional = config.conditional
        extra = config.embed_dim if config.conditional else 0
        if config.conditional:
            self.embed = nn.Embedding(data.num_classes, config.embed_dim, rng=rng, dtype=dt)
        h4, w4 = h // 4, w // 4
        self.net = nn.Sequential(
            nn.Linear(config.z_dim + extra, 2 * k * h4 * w4, bias=False, init="dcgan", rng=rng, dtype=dt),
            nn.BatchNorm1d(2 * k * h4 * w4, dtype=dt),
            nn.ReLU(),
            nn.Unflatten(1, (2 * k, h4, w4)),
            nn.ConvTranspose2d(2 * k, k, 4, 2, 1, bias=False, init="dcgan", rng=rng, dtype=dt),
            nn.BatchNorm2d(k, dtype=dt),
            nn.ReLU(),
            nn.ConvTranspose2d(k, c, 4, 2, 1, init="dcgan", rng=rng, dtype=dt),
            nn.Tanh(),
            nn.Flatten(),
        )

    def forward(self, z, labels=None):
        if self.conditional:
            z = concatenate([z, self.embed(labels)], axis=1)
        return self.net(z)


class DCGANDiscriminator(nn.Module):
    """DCGAN discriminator/critic, one logit per pack of samples, shape (N / pack,).

    For (C, H, W) images, ``h, w = H / 4, W / 4``, ``k = DCGAN_WIDTH``::

        x (N, C·H·W) -> (N / pack, pack·C, H, W) -> Conv2d(pack·C, k, 4, 2, 1) -> LeakyReLU(0.2)
          -> Conv2d(k, 2k, 4, 2, 1) -> norm -> LeakyReLU(0.2) -> flatten phi (2k·h·w) -> Linear(1)

    ``norm`` is batch norm, or layer norm over (2k, h, w) for runs with a
    gradient penalty on D's input (:func:`critic_norm`). PacGAN (``pack = m``):
    the m samples of a pack are stacked along the channels (the PacGAN paper's
    construction for conv discriminators), which is what the flat rows
    ``m·i .. m·i+m-1`` side by side reshape to. Initialisation as
    :class:`DCGANGenerator`.

    Conditional: a *projection* discriminator (Miyato & Koyama 2018): the
    logit gets ``<e(y), phi(x)>``, with ``e`` a learned class embedding of
    phi's size (initialised ``N(0, 0.02^2)``, the scale of the output layer's
    weights), i.e. each class adds its own direction to the output layer.
    Chosen over one-hot label channels on the input because the label then
    costs one dot product per sample instead of C+10 input channels in the
    first convolution, and because the projection is the form that Miyato &
    Koyama found to condition D better than input concatenation. With packing
    the projections of a pack's labels are summed: ``<sum_j e(y_j), phi>``.
    Parameters are created in this order: the layers, then the embedding.
    """

    def __init__(self, config, data, rng):
        super().__init__()
        c, h, w = image_geometry(data)
        k, dt = DCGAN_WIDTH, config.dtype
        self.pack = config.pack
        self.conditional = config.conditional
        self.norm = critic_norm(config)
        h4, w4 = h // 4, w // 4
        features = 2 * k * h4 * w4
        norm = (nn.BatchNorm2d(2 * k, dtype=dt) if self.norm == "batch"
                else nn.LayerNorm((2 * k, h4, w4), dtype=dt))
        self.features = nn.Sequential(
            nn.Unflatten(1, (config.pack * c, h, w)),
            nn.Conv2d(config.pack * c, k, 4, 2, 1, init="dcgan", rng=rng, dtype=dt),
            nn.LeakyReLU(LEAKY_SLOPE),
            nn.Conv2d(k, 2 * k, 4, 2, 1, bias=False, init="dcgan", rng=rng, dtype=dt),
            norm,
            nn.LeakyReLU(LEAKY_SLOPE),
            nn.Flatten(),
        )
        self.head = nn.Linear(features, 1, init="dcgan", rng=rng, dtype=dt)
        if config.conditional:
            self.embed = nn.Embedding(data.num_classes, features, rng=rng, dtype=dt)
            nn.normal_(self.embed.weight, mean=0.0, std=DCGAN_INIT_STD, rng=rng)

    def forward(self, x, labels=None):
        n = x.shape[0]
        if n % self.pack:
            raise ValueError(f"a batch of {n} cannot be split into packs of {self.pack}")
        if self.pack > 1:
            x = x.reshape(n // self.pack, x.shape[1] * self.pack)
        phi = self.features(x)
        out = self.head(phi).reshape(phi.shape[0])
        if self.conditional:
            e = self.embed(labels)
            if self.pack > 1:
                e = sum_(e.reshape(n // self.pack, self.pack, e.shape[1]), axis=1)
            out = out + sum_(phi * e, axis=1)
        return out


#: Architecture name -> (generator class, discriminator class).
ARCHITECTURES = {
    "mlp": (MLPGenerator, MLPDiscriminator),
    "dcgan": (DCGANGenerator, DCGANDiscriminator),
}


def _classes(config) -> tuple:
    arch = getattr(config, "arch", "mlp")
    try:
        return ARCHITECTURES[arch]
    except KeyError:
        raise ConfigError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}") from None


def build_generator(config, data, rng) -> nn.Module:
    """The generator of ``config``'s architecture for ``data``, its weights drawn from ``rng``."""
    return _classes(config)[0](config, data, rng)


def build_discriminator(config, data, rng) -> nn.Module:
    """The discriminator of ``config``'s architecture for ``data``, its weights drawn from ``rng``."""
    return _classes(config)[1](config, data, rng)
