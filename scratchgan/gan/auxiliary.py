r"""ACGAN and InfoGAN in the trainer: the codes, the auxiliary losses of a step, the pictures and metrics.

The losses themselves are in :mod:`scratchgan.gan.losses`
(:func:`~scratchgan.gan.losses.acgan_discriminator_loss`,
:func:`~scratchgan.gan.losses.acgan_generator_loss`,
:func:`~scratchgan.gan.losses.mutual_information_penalty`) and the heads in
:mod:`scratchgan.gan.models`; this module joins them to a
:class:`~scratchgan.app.train.Trainer` (``config.aux``):

* ``"acgan"`` (Odena et al. 2017): G is class-conditional; D's auxiliary head
  classifies. D adds :math:`w\,[\operatorname{CE}(c(x), y) + \operatorname{CE}(c(G(z, y')), y')]`
  to its loss, G adds :math:`w\,\operatorname{CE}(c(G(z, y')), y')` (TF-GAN's
  ``acgan_discriminator_loss`` / ``acgan_generator_loss``, weight ``aux_weight``).
* ``"infogan"`` (Chen et al. 2016): G's input is the noise, a one-hot
  categorical code :math:`c \sim U\{0..K-1\}` and continuous codes
  :math:`s \sim U[-1, 1]^d`; D's Q head predicts them; both G and D add
  :math:`w\,L_{\text{MI}}` (TF-GAN's ``mutual_information_penalty``, added to
  both losses as TF-GAN's ``gan_loss`` does). Labels are not used.

Every draw comes from the trainer's training stream after the noise (so
runs without ``aux`` draw exactly what they drew before), and is of the
global batch, of which a data-parallel rank keeps its share.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import backend
from . import losses
from ..autograd.tensor import Tensor, as_tensor
from ..backend.validate import ConfigError

__all__ = ["InfoCodes", "as_code_tensor", "aux_d_loss", "aux_g_loss", "code_matrix", "draw_info_codes", "info_grid_codes",
           "sample_info_codes", "split_info_logits"]


@dataclass
class InfoCodes:
    """InfoGAN's structured codes of a batch (host arrays; device arrays when the GPU trainer drew them).

    Attributes
    ----------
    categories : ndarray of int64, shape (N,), or None
        The categorical code (None when ``info_categories`` is 0).
    continuous : ndarray, shape (N, d), or None
        The continuous codes (None when ``info_continuous`` is 0).
    """

    categories: np.ndarray | None
    continuous: np.ndarray | None


def draw_info_codes(rng, n: int, config, share=slice(None)) -> InfoCodes | None:
    """Draw the codes of a global batch of ``n`` (None unless ``config.aux == "infogan"``).

    Categories uniform on ``0 .. info_categories - 1`` (``rng.integers``),
    then continuous codes uniform on [-1, 1) (``rng.uniform``), each drawn for
    the whole batch and then cut to ``share`` (a data-parallel rank's rows).
    ``rng``: a ``numpy.random.Generator`` (host arrays) or the GPU trainer's
    :class:`~scratchgan.backend.device_rng.DeviceGenerator` (device arrays, the
    continuous codes in ``config.dtype``, the categories vouched for, so that
    their range check reads nothing back).
    """
    if getattr(config, "aux", "none") != "infogan":
        return None
    k, d = int(config.info_categories), int(config.info_continuous)
    if not isinstance(rng, np.random.Generator):  # drawn on the device
        cat = backend.vouch_indices(rng.integers(0, k, n)[share], k) if k else None
        cont = rng.uniform(-1.0, 1.0, (n, d), config.dtype)[share] if d else None
        return InfoCodes(cat, cont)
    cat = rng.integers(0, k, n)[share].astype(np.int64) if k else None
    cont = rng.uniform(-1.0, 1.0, (n, d))[share] if d else None
    return InfoCodes(cat, cont)


def code_matrix(codes: InfoCodes, config):
    """G's code input (N, K + d): the one-hot category, then the continuous codes, in ``config.dtype``.

    A host array for host codes; a device array, made on the device, for codes drawn there.
    """
    k, d = int(config.info_categories), int(config.info_continuous)
    first = codes.categories if k else codes.continuous
    xp = np if isinstance(first, (list, tuple, int, float, np.ndarray, np.generic)) else backend.array_module(first)
    parts = []
    if k:
        parts.append(xp.eye(k, dtype=config.dtype)[xp.asarray(codes.categories)])
    if d:
        parts.append(xp.asarray(codes.continuous, dtype=config.dtype).reshape(-1, d))
    return xp.ascontiguousarray(xp.concatenate(parts, axis=1), dtype=config.dtype)


def split_info_logits(aux_logits: Tensor, config) -> tuple[Tensor | None, Tensor | None]:
    """The Q head's output (N, K + d) as (categorical logits (N, K) or None, continuous means (N, d) or None)."""
    k, d = int(config.info_categories), int(config.info_continuous)
    if aux_logits.ndim != 2 or aux_logits.shape[1] != k + d:
        raise ValueError(f"the Q head's output must have shape (N, {k + d}) (info_categories {k} + info_continuous "
                         f"{d}), got {aux_logits.shape}")
    return (aux_logits[:, :k] if k else None), (aux_logits[:, k:] if d else None)


def _mi_penalty(aux_logits: Tensor, codes: InfoCodes, config) -> Tensor:
    cat_logits, means = split_info_logits(aux_logits, config)
    return losses.mutual_information_penalty(cat_logits, codes.categories, means, codes.continuous)


def aux_d_loss(config, real_aux, fake_aux, real_labels, fake_labels, codes) -> Tensor | None:
    """D's auxiliary loss of a step, before the weight (None for runs without ``aux``).

    ACGAN: :func:`~scratchgan.gan.losses.acgan_discriminator_loss` on the real batch
    (its labels) and the generated one (the labels G was given). InfoGAN:
    :func:`~scratchgan.gan.losses.mutual_information_penalty` of the Q head on the
    generated batch.
    """
    kind = getattr(config, "aux", "none")
    if kind == "acgan":
        return losses.acgan_discriminator_loss(real_aux, fake_aux, real_labels, fake_labels)
    if kind == "infogan":
        return _mi_penalty(fake_aux, codes, config)
    return None


def aux_g_loss(config, fake_aux, fake_labels, codes) -> Tensor | None:
    """G's auxiliary loss of a step, before the weight (None for runs without ``aux``).

    ACGAN: :func:`~scratchgan.gan.losses.acgan_generator_loss`; InfoGAN: the same
    :func:`~scratchgan.gan.losses.mutual_information_penalty` as D's, on G's batch.
    """
    kind = getattr(config, "aux", "none")
    if kind == "acgan":
        return losses.acgan_generator_loss(fake_aux, fake_labels)
    if kind == "infogan":
        return _mi_penalty(fake_aux, codes, config)
    return None


def info_grid_codes(config, per_row: int) -> InfoCodes:
    """Codes of InfoGAN's picture: row ``k`` has category ``k``, every continuous code 0 (the prior's mean)."""
    k, d = int(config.info_categories), int(config.info_continuous)
    cat = np.repeat(np.arange(k, dtype=np.int64), per_row)
    return InfoCodes(cat, np.zeros((k * per_row, d)) if d else None)


def as_code_tensor(codes: InfoCodes | None, config) -> Tensor | None:
    """G's code input as a Tensor (None for None)."""
    return None if codes is None else as_tensor(code_matrix(codes, config))


def sample_info_codes(rng: np.random.Generator, n: int, config, category=None, continuous=None) -> InfoCodes | None:
    """The codes of ``Trainer.sample``: given values, or draws from the prior (categories first, then continuous).

    ``category``: one int or ``n`` ints in ``[0, info_categories)``;
    ``continuous``: a number, ``d`` values (one per code) or an (n, d) array.
    None for a run without InfoGAN codes, where giving either is an error.
    """
    if getattr(config, "aux", "none") != "infogan":
        if category is not None or continuous is not None:
            raise ConfigError("category / continuous codes were given but this run has no InfoGAN codes "
                              "(train with --aux infogan)")
        return None
    k, d = int(config.info_categories), int(config.info_continuous)
    cat = cont = None
    if k:
        if category is None:
            cat = rng.integers(0, k, n).astype(np.int64)
        else:
            cat = np.broadcast_to(np.asarray(category), (n,))
            if cat.dtype.kind not in "iu" or (n and (cat.min() < 0 or cat.max() >= k)):
                raise ValueError(f"category must be integers in [0, {k - 1}] (the run has {k} categories), "
                                 f"got {np.unique(cat)[:5].tolist()}")
            cat = cat.astype(np.int64)
    elif category is not None:
        raise ValueError("category was given but this InfoGAN run has no categorical code (info_categories 0)")
    if d:
        if continuous is None:
            cont = rng.uniform(-1.0, 1.0, (n, d))
        else:
            values = np.asarray(continuous, dtype=np.float64)
            try:
                cont = np.broadcast_to(values, (n, d))
            except ValueError:
                raise ValueError(f"continuous must be a number, {d} values or an ({n}, {d}) array, "
                                 f"got shape {values.shape}") from None
    elif continuous is not None:
        raise ValueError("continuous was given but this InfoGAN run has no continuous codes (info_continuous 0)")
    return InfoCodes(cat, cont)
