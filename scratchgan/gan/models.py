"""The GAN's networks: one generator and one discriminator builder per architecture.

:func:`build_generator` and :func:`build_discriminator` build the networks
of a :class:`~scratchgan.app.config.TrainConfig` for a :class:`~scratchgan.app.data.Dataset`,
drawing the initial weights from ``rng`` in construction order (same seed,
same weights). They look the architecture up in :data:`ARCHITECTURES`; a new
architecture is one more entry there: a generator class and a discriminator
class, each constructed as ``cls(config, data, rng)``, with

* ``G(z, labels=None)``: noise (N, z_dim) (and int labels (N,) when
  ``config.conditional``) to samples (N, data_dim), in the data's units
  (images in [-1, 1]);
* ``D(x, labels=None)``: samples (N, data_dim) to one logit per pack of
  samples, shape (N / config.pack,).

With ``config.aux`` (docs/losses.md, "ACGAN and InfoGAN") the discriminator
also has an auxiliary head on its body's features, and
``D.forward_with_aux(x, labels=None)`` returns ``(logits, aux_logits)``:
``"acgan"`` a classifier, ``(N, num_classes)`` logits (G conditional, D not);
``"infogan"`` InfoGAN's Q head, ``(N, info_categories + info_continuous)``:
the categorical code's logits, then the means of the continuous codes, and G
takes the codes as ``G(z, codes=...)`` (:func:`info_code_dim` wide: one-hot
category, then the continuous values). ``D(x)`` stays the logit alone, so the
penalties see the same critic.

The architecture comes from ``config.arch`` (``"mlp"`` when the config has no
such field): ``"mlp"`` (:class:`MLPGenerator`, :class:`MLPDiscriminator`, any
data) or ``"dcgan"`` (:class:`DCGANGenerator`, :class:`DCGANDiscriminator`,
images whose sides divide by 4). docs/training.md gives the sources.
"""

from __future__ import annotations

import numpy as np

from .. import nn
from ..backend.validate import ConfigError
from ..ops import concatenate
from ..ops import sum as sum_

__all__ = ["ARCHITECTURES", "DCGANDiscriminator", "DCGANGenerator", "MLPDiscriminator", "MLPGenerator",
           "Q_HIDDEN", "aux_kind", "aux_output_dim", "build_discriminator", "build_generator", "critic_norm",
           "data_scale", "image_geometry", "info_code_dim"]

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


# --------------------------------------------------------------------------- auxiliary heads (ACGAN, InfoGAN)

#: Width of the hidden layer of InfoGAN's Q head (Chen et al. 2016, MNIST: FC 128, batch norm, lReLU, then the
#: codes; here without the batch norm, which would mix the samples of a batch).
Q_HIDDEN = 128


def aux_kind(config) -> str:
    """The auxiliary head of ``config``: ``"none"``, ``"acgan"`` or ``"infogan"`` (``"none"`` without the field)."""
    return getattr(config, "aux", "none") or "none"


def info_code_dim(config) -> int:
    """Width of InfoGAN's structured code given to G: one-hot categories + continuous codes (0 for other runs)."""
    if aux_kind(config) != "infogan":
        return 0
    return int(config.info_categories) + int(config.info_continuous)


def aux_output_dim(config, data) -> int:
    """Outputs of D's auxiliary head: the classes (ACGAN), the code's logits and means (InfoGAN), or 0."""
    kind = aux_kind(config)
    if kind == "acgan":
        return int(data.num_classes)
    return info_code_dim(config)


def _g_conditional(config) -> bool:
    """G takes labels: a conditional run, or ACGAN (whose G is conditional even before :func:`resolve` says so)."""
    return bool(config.conditional) or aux_kind(config) == "acgan"


def _d_conditional(config) -> bool:
    """D takes labels: a conditional run that is not ACGAN (ACGAN's D predicts the label instead)."""
    return bool(config.conditional) and aux_kind(config) != "acgan"


def _aux_head(config, data, features: int, rng, init: str, dtype) -> nn.Module | None:
    """D's auxiliary head on ``features`` body features, its weights drawn from ``rng`` (None without one).

    ACGAN: one Linear to the class logits, next to the real/fake output (the
    paper's D has two output layers on a shared body). InfoGAN: Q, a Linear to
    :data:`Q_HIDDEN`, LeakyReLU(0.2), a Linear to the code's logits and means
    (the paper's Q: one more hidden layer on D's last features).
    """
    kind = aux_kind(config)
    if kind == "none":
        return None
    if kind == "acgan":
        return nn.Linear(features, aux_output_dim(config, data), init=init, rng=rng, dtype=dtype)
    return nn.Sequential(nn.Linear(features, Q_HIDDEN, init=init, rng=rng, dtype=dtype), nn.LeakyReLU(LEAKY_SLOPE),
                         nn.Linear(Q_HIDDEN, info_code_dim(config), init=init, rng=rng, dtype=dtype))


def _with_codes(z, codes, code_dim: int):
    """``z`` with InfoGAN's codes concatenated (``code_dim`` 0: ``z`` itself; codes must then be None)."""
    if code_dim == 0:
        if codes is not None:
            raise ValueError("codes were given but this generator takes no InfoGAN codes (train with --aux infogan)")
        return z
    if codes is None:
        raise ValueError(f"this InfoGAN generator needs its codes: G(z, codes=c) with c of shape (N, {code_dim}) "
                         "(one-hot category, then the continuous codes)")
    if codes.shape != (z.shape[0], code_dim):
        raise ValueError(f"codes must have shape ({z.shape[0]}, {code_dim}) for noise of shape {z.shape}, "
                         f"got {codes.shape}")
    return concatenate([z, codes], axis=1)


def _no_aux_head(D) -> ValueError:
    return ValueError(f"{type(D).__name__} has no auxiliary head: forward_with_aux needs a run with --aux acgan "
                      "or --aux infogan")


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
        self.conditional = _g_conditional(config)
        self.code_dim = info_code_dim(config)
        extra = config.embed_dim if self.conditional else 0
        if self.conditional:
            self.embed = nn.Embedding(data.num_classes, config.embed_dim, rng=rng, dtype=config.dtype)
        out = "tanh" if data.kind == "image" else None  # images live in [-1, 1]; toy points anywhere
        sizes = [config.z_dim + self.code_dim + extra, *config.g_hidden, data.data_dim]
        self.net = _mlp(sizes, config.g_activation, out, rng, config.dtype)

    def forward(self, z, labels=None, codes=None):
        z = _with_codes(z, codes, self.code_dim)
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
    ``(data_dim (+ embed_dim)) * pack -> d_hidden... -> 1``, then the
    auxiliary head (``aux_head``, ACGAN / InfoGAN only) on the last hidden
    layer's features (:meth:`forward_with_aux`).
    """

    def __init__(self, config, data, rng):
        super().__init__()
        self.scale = data_scale(data)
        self.pack = config.pack
        self.conditional = _d_conditional(config)
        extra = config.embed_dim if self.conditional else 0
        if self.conditional:
            self.embed = nn.Embedding(data.num_classes, config.embed_dim, rng=rng, dtype=config.dtype)
        sizes = [(data.data_dim + extra) * config.pack, *config.d_hidden, 1]
        self.net = _mlp(sizes, config.d_activation, None, rng, config.dtype)
        self.aux = aux_kind(config)
        head = _aux_head(config, data, sizes[-2], rng, "pytorch", config.dtype)
        if head is not None:
            self.aux_head = head

    def forward(self, x, labels=None):
        out = self.net(self._input(x, labels))
        return out.reshape(out.shape[0])

    def forward_with_aux(self, x, labels=None):
        """``(logits (N,), aux_logits (N, aux_output_dim))``: both heads on one pass through the body."""
        if self.aux == "none":
            raise _no_aux_head(self)
        phi = self.net[:-1](self._input(x, labels))
        out = self.net[-1](phi)
        return out.reshape(out.shape[0]), self.aux_head(phi)

    def _input(self, x, labels):
        """The MLP's input: rescaled, with the label embedding (conditional), packed (PacGAN)."""
        if self.scale != 1.0:
            x = x * (1.0 / self.scale)
        if self.conditional:
            x = concatenate([x, self.embed(labels)], axis=1)
        if self.pack > 1:
            if x.shape[0] % self.pack:
                raise ValueError(f"a batch of {x.shape[0]} cannot be split into packs of {self.pack}")
            x = x.reshape(x.shape[0] // self.pack, x.shape[1] * self.pack)
        return x


# --------------------------------------------------------------------------- DCGAN

#: Channels of the DCGAN networks at half resolution; the quarter-resolution layer has twice as many
#: (the reference for 28x28: G 128 -> 64 -> C, D C -> 64 -> 128; Radford et al. 2016, scaled down as
#: in the PyTorch examples for MNIST-sized images).
DCGAN_WIDTH = 64
#: Standard deviation of the DCGAN initialisation of conv and linear weights (Radford et al. 2016, section 4).
DCGAN_INIT_STD = 0.02


def image_geometry(data) -> tuple[int, int, int]:
    """``(C, H, W)`` of ``data``'s images for the DCGAN networks, or a ConfigError saying why there is none.

    ``data.image_shape`` is ``(H, W)`` (one channel, what :mod:`scratchgan.app.data`
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
    """The normalisation of the DCGAN discriminator for ``config``: ``"batch"``, ``"layer"`` or ``"none"``.

    A gradient penalty on D's input (WGAN-GP, R1 with ``r1 > 0`` or DRAGAN with
    ``dragan > 0``) is a sum of per-sample input gradients, which is what the
    gradient of the summed outputs gives only when each output depends on its
    own sample: batch norm mixes the samples of the batch, so such runs get
    layer norm over (C, H, W) instead (Gulrajani et al. 2017, section 4,
    recommend it as the drop-in replacement). With spectral normalisation
    (``spectral_norm``, SNGAN) there is none: Miyato et al.'s discriminators
    have no normalisation layer (a norm after a layer would rescale its output
    again and undo the Lipschitz bound), and the author of the relativistic
    GAN's code removes D's batch norm with it too. Every other run keeps
    DCGAN's batch norm.
    """
    if getattr(config, "spectral_norm", False):
        return "none"
    gp = config.loss == "wgan-gp" and (config.penalty_weight is None or config.penalty_weight > 0)
    return "layer" if gp or (config.r1 or 0) > 0 or (getattr(config, "dragan", 0) or 0) > 0 else "batch"


class DCGANGenerator(nn.Module):
    """DCGAN generator (Radford et al. 2016) for images of side divisible by 4.

    For (C, H, W) images, with ``h, w = H / 4, W / 4`` and ``k = DCGAN_WIDTH``::

        z (z_dim [+ embed_dim]) -> Linear(2k·h·w) -> BatchNorm1d -> ReLU -> (2k, h, w)
          -> ConvTranspose2d(2k, k, 4, 2, 1) -> BatchNorm2d -> ReLU
          -> ConvTranspose2d(k, C, 4, 2, 1) -> tanh -> flattened (N, C·H·W)

    (28x28: 100 -> 6272 -> (128, 7, 7) -> (64, 14, 14) -> (C, 28, 28)). With
    ``config.g_fc = m > 0`` a hidden layer ``Linear(m) -> BatchNorm1d -> ReLU``
    comes first (z -> m -> 2k·h·w), as in TF-GAN's and InfoGAN's 28x28
    generators (m = 1024 there; the image recipe uses m = 256,
    docs/training.md); ``g_fc = 0`` is the reference above. The
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
        self.conditional = _g_conditional(config)
        self.code_dim = info_code_dim(config)
        extra = config.embed_dim if self.conditional else 0
        if self.conditional:
            self.embed = nn.Embedding(data.num_classes, config.embed_dim, rng=rng, dtype=dt)
        h4, w4 = h // 4, w // 4
        inputs = config.z_dim + self.code_dim + extra
        g_fc = getattr(config, "g_fc", 0) or 0
        hidden = []
        if g_fc:  # a hidden layer before the projection to (2k, h, w), as TF-GAN's 28x28 G
            hidden = [nn.Linear(inputs, g_fc, bias=False, init="dcgan", rng=rng, dtype=dt),
                      nn.BatchNorm1d(g_fc, dtype=dt), nn.ReLU()]
            inputs = g_fc
        self.net = nn.Sequential(
            *hidden,
            nn.Linear(inputs, 2 * k * h4 * w4, bias=False, init="dcgan", rng=rng, dtype=dt),
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

    def forward(self, z, labels=None, codes=None):
        z = _with_codes(z, codes, self.code_dim)
        if self.conditional:
            z = concatenate([z, self.embed(labels)], axis=1)
        return self.net(z)


class DCGANDiscriminator(nn.Module):
    """DCGAN discriminator/critic, one logit per pack of samples, shape (N / pack,).

    For (C, H, W) images, ``h, w = H / 4, W / 4``, ``k = DCGAN_WIDTH``::

        x (N, C·H·W) -> (N / pack, pack·C, H, W) -> Conv2d(pack·C, k, 4, 2, 1) -> LeakyReLU(0.2)
          -> Conv2d(k, 2k, 4, 2, 1) -> norm -> LeakyReLU(0.2) -> flatten phi (2k·h·w) -> Linear(1)

    With ``config.d_fc = m > 0`` a hidden layer ``Linear(2k·h·w, m) ->
    LeakyReLU(0.2)`` follows the flatten and phi is its output (m values), as
    in TF-GAN's and InfoGAN's 28x28 discriminators (which use m = 1024 and a
    batch norm there); the image recipe uses m = 256 (docs/training.md).
    ``d_fc = 0`` is the reference DCGAN above.

    ``norm`` is batch norm, or layer norm over (2k, h, w) for runs with a
    gradient penalty on D's input, or nothing (and the conv gets a bias) with
    spectral normalisation (:func:`critic_norm`). PacGAN (``pack = m``):
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

    ACGAN / InfoGAN (``config.aux``): an auxiliary head ``aux_head`` on phi
    next to ``head`` (:meth:`forward_with_aux`; ACGAN's D has no projection:
    it predicts the label instead), initialised as the other layers.
    Parameters are created in this order: the layers, then the embedding,
    then the auxiliary head.
    """

    def __init__(self, config, data, rng):
        super().__init__()
        c, h, w = image_geometry(data)
        k, dt = DCGAN_WIDTH, config.dtype
        self.pack = config.pack
        self.conditional = _d_conditional(config)
        self.norm = critic_norm(config)
        h4, w4 = h // 4, w // 4
        features = 2 * k * h4 * w4
        norm = (nn.BatchNorm2d(2 * k, dtype=dt) if self.norm == "batch"
                else nn.LayerNorm((2 * k, h4, w4), dtype=dt) if self.norm == "layer" else nn.Identity())
        self.features = nn.Sequential(
            nn.Unflatten(1, (config.pack * c, h, w)),
            nn.Conv2d(config.pack * c, k, 4, 2, 1, init="dcgan", rng=rng, dtype=dt),
            nn.LeakyReLU(LEAKY_SLOPE),
            # a norm removes a bias; without one (SNGAN) the layer keeps it (zeros: no draw from rng either way)
            nn.Conv2d(k, 2 * k, 4, 2, 1, bias=self.norm == "none", init="dcgan", rng=rng, dtype=dt),
            norm,
            nn.LeakyReLU(LEAKY_SLOPE),
            nn.Flatten(),
        )
        d_fc = getattr(config, "d_fc", 0) or 0
        if d_fc:  # the hidden layer judges the conv features jointly before the logit (TF-GAN's 28x28 D)
            self.features.append(nn.Linear(features, d_fc, init="dcgan", rng=rng, dtype=dt))
            self.features.append(nn.LeakyReLU(LEAKY_SLOPE))
            features = d_fc
        self.head = nn.Linear(features, 1, init="dcgan", rng=rng, dtype=dt)
        if self.conditional:
            self.embed = nn.Embedding(data.num_classes, features, rng=rng, dtype=dt)
            nn.normal_(self.embed.weight, mean=0.0, std=DCGAN_INIT_STD, rng=rng)
        self.aux = aux_kind(config)
        head = _aux_head(config, data, features, rng, "dcgan", dt)
        if head is not None:
            self.aux_head = head

    def forward(self, x, labels=None):
        return self._logits_and_features(x, labels)[0]

    def forward_with_aux(self, x, labels=None):
        """``(logits (N,), aux_logits (N, aux_output_dim))``: both heads on one pass through the body."""
        if self.aux == "none":
            raise _no_aux_head(self)
        out, phi = self._logits_and_features(x, labels)
        return out, self.aux_head(phi)

    def _logits_and_features(self, x, labels):
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
        return out, phi


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
    """The discriminator of ``config``'s architecture for ``data``, its weights drawn from ``rng``.

    With ``config.spectral_norm`` (SNGAN) every Linear, Conv2d and
    ConvTranspose2d of it is then spectrally normalised
    (:func:`scratchgan.nn.utils.spectral_norm`), the initial u and v vectors
    drawn from ``rng`` after the weights, layer by layer in module order.
    """
    D = _classes(config)[1](config, data, rng)
    if getattr(config, "spectral_norm", False):
        for module in list(D.modules()):
            if isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
                nn.utils.spectral_norm(module, rng=rng)
    return D
