"""The losses of a training step as a list of named terms, assembled once from the config.

Each update minimises the sum of its terms (:func:`total_loss`)::

    critic:    L_D = adversarial + [ACGAN class | InfoGAN code] + [gradient penalty] + [R1] + [DRAGAN]
    generator: L_G = adversarial + [ACGAN class | InfoGAN code]

A term is a small callable object: given the :class:`Step` (the batches and
D's outputs of one update), it returns its Tensor, already weighted. The
formulas themselves live in :mod:`scratchgan.gan.losses`; a term names which
one, with which weight, on which inputs. The order of the list is the order
of the sum and of the random draws (the gradient penalty's ``alpha`` before
DRAGAN's), which fixes the bits of a run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..autograd.tensor import Tensor
from ..gan import auxiliary, losses

__all__ = ["ACGANClassLoss", "CriticObjective", "DraganPenalty", "GeneratorObjective", "GradientPenalty",
           "InfoGANCodeLoss", "R1Penalty", "Step", "critic_terms", "generator_terms", "pack_rows", "total_loss"]

#: the losses module's name of each ``--loss``
LOSS_KINDS = {"gan": "minimax", "ns": "ns", "wgan": "wasserstein", "wgan-gp": "wasserstein", "lsgan": "lsgan",
              "hinge": "hinge", "rsgan": "rsgan", "rasgan": "rasgan"}


def pack_rows(x: Tensor, pack: int) -> Tensor:
    """(N, dim) -> (N / pack, pack * dim): rows ``pack*i .. pack*i+pack-1`` side by side, as D packs them."""
    return x if pack == 1 else x.reshape(x.shape[0] // pack, x.shape[1] * pack)


def unpack_rows(u: Tensor, pack: int) -> Tensor:
    """The inverse of :func:`pack_rows`: (N / pack, pack * dim) -> (N, dim)."""
    return u if pack == 1 else u.reshape(u.shape[0] * pack, u.shape[1] // pack)


@dataclass
class Step:
    """What the loss terms of one update see.

    ``real``/``fake`` are the flat batches (``real`` is None in G's update),
    ``*_labels`` the classes D is conditioned on (None unless conditional),
    ``codes`` InfoGAN's codes of the fake batch, ``*_out`` D's scores and
    ``*_aux`` its auxiliary head's logits (None when not computed).
    ``draws`` serves the penalties' random numbers; ``check_inputs`` is false
    on the GPU (no host read of the penalties' inputs). A term may note an
    unweighted value for the step's record in ``logged``. With DiffAugment
    (``--diffaugment``) ``real`` and ``fake`` are the augmented batches D sees,
    ``real_source`` the real batch before it and ``real_augmentation`` its
    :math:`T` (for R1); both None otherwise.
    """

    D: object
    config: object
    draws: object
    fake: Tensor
    fake_labels: Tensor | None = None
    codes: object = None
    real: Tensor | None = None
    real_labels: Tensor | None = None
    real_out: Tensor | None = None
    real_aux: Tensor | None = None
    fake_out: Tensor | None = None
    fake_aux: Tensor | None = None
    check_inputs: bool = True
    logged: dict = field(default_factory=dict)
    real_source: Tensor | None = None
    real_augmentation: object = None

    def packed(self, x: Tensor) -> Tensor:
        """``x`` as D sees it with PacGAN packing (:func:`pack_rows`)."""
        return pack_rows(x, self.config.pack)

    def packed_critic(self):
        """``D`` as a function of its packed input (N / pack, pack * dim), one score per row.

        The penalties act on D's own input: with packing, GP interpolates and
        takes norms per pack, R1 sums a pack's squared gradients.
        """
        pack, D, labels = self.config.pack, self.D, self.real_labels
        if pack == 1:
            return (lambda x: D(x, labels)) if self.config.conditional else D
        return lambda u: D(unpack_rows(u, pack), labels)

    def augmented_critic(self):
        """With DiffAugment, ``u -> D(T(u))`` on packed un-augmented reals, ``T`` the real batch's (for R1)."""
        critic, pack, T = self.packed_critic(), self.config.pack, self.real_augmentation
        return lambda u: critic(self.packed(T(unpack_rows(u, pack))))


# --------------------------------------------------------------------------- the adversarial objectives


class CriticObjective:
    r"""D's adversarial loss :func:`~scratchgan.gan.losses.d_loss` of the run's ``loss``.

    .. math:: L_D = \mathbb E_x[f(D(x))] + \mathbb E_z[g(D(G(z)))]

    e.g. non-saturating: :math:`f(t) = \operatorname{softplus}(-t)`, :math:`g(t) = \operatorname{softplus}(t)`;
    with label smoothing ``s`` the real target is ``1 - s``.
    """

    def __init__(self, kind: str, label_smoothing: float = 0.0):
        self.kind, self.label_smoothing = kind, label_smoothing

    def __call__(self, step: Step) -> Tensor:
        return losses.d_loss(self.kind, step.real_out, step.fake_out, label_smoothing=self.label_smoothing)


class GeneratorObjective:
    r"""G's adversarial loss :func:`~scratchgan.gan.losses.g_loss` of the run's ``loss``.

    .. math:: L_G = \mathbb E_z[h(D(G(z)))]

    e.g. non-saturating: :math:`h(t) = \operatorname{softplus}(-t)`; the
    relativistic kinds also compare with D on a real batch (``step.real_out``).
    """

    def __init__(self, kind: str):
        self.kind = kind

    def __call__(self, step: Step) -> Tensor:
        return losses.g_loss(self.kind, step.fake_out, step.real_out)


# --------------------------------------------------------------------------- the auxiliary heads


class ACGANClassLoss:
    r"""ACGAN's classification loss (Odena et al. 2017), times ``aux_weight`` :math:`\lambda`.

    .. math::

        \text{critic: } \lambda\,[\operatorname{CE}(c(x), y) + \operatorname{CE}(c(G(z, y')), y')],
        \qquad \text{generator: } \lambda\,\operatorname{CE}(c(G(z, y')), y')

    (:func:`~scratchgan.gan.losses.acgan_discriminator_loss`,
    :func:`~scratchgan.gan.losses.acgan_generator_loss`); logs the unweighted value as ``aux``.
    """

    def __init__(self, weight: float, critic: bool):
        self.weight, self.critic = weight, critic

    def __call__(self, step: Step) -> Tensor:
        if self.critic:
            loss = losses.acgan_discriminator_loss(step.real_aux, step.fake_aux, step.real_labels, step.fake_labels)
        else:
            loss = losses.acgan_generator_loss(step.fake_aux, step.fake_labels)
        step.logged["aux"] = loss
        return loss * self.weight


class InfoGANCodeLoss:
    r"""InfoGAN's mutual-information penalty (Chen et al. 2016) on the fake batch, times ``aux_weight`` :math:`\lambda`.

    .. math:: \lambda\,L_{\text{MI}} = -\lambda\,\frac1K \sum_k \overline{\log Q_k(c_k \mid G(z, c))}

    the same for D (its Q head) and G (:func:`~scratchgan.gan.losses.mutual_information_penalty`);
    logs the unweighted value as ``aux``.
    """

    def __init__(self, weight: float, config):
        self.weight, self.config = weight, config

    def __call__(self, step: Step) -> Tensor:
        categorical_logits, means = auxiliary.split_info_logits(step.fake_aux, self.config)
        codes = step.codes
        loss = losses.mutual_information_penalty(categorical_logits, codes.categories, means, codes.continuous)
        step.logged["aux"] = loss
        return loss * self.weight


# --------------------------------------------------------------------------- the critic's penalties


class GradientPenalty:
    r"""WGAN-GP's gradient penalty (Gulrajani et al. 2017), :func:`~scratchgan.gan.losses.gradient_penalty`.

    .. math::

        \lambda\,\mathbb E_i\big[(\lVert \nabla_{\hat x} D(\hat x_i) \rVert - 1)^2\big],
        \qquad \hat x_i = \alpha_i x_i + (1 - \alpha_i)\,G(z_i),\quad \alpha_i \sim U[0, 1]

    one :math:`\alpha` and one norm per (packed) row of D's input. With
    DiffAugment :math:`x_i` and :math:`G(z_i)` are the augmented batches D's loss sees.
    """

    def __init__(self, weight: float):
        self.weight = weight

    def __call__(self, step: Step) -> Tensor:
        critic, real = step.packed_critic(), step.packed(step.real)
        alpha = step.draws.interpolation_factors()
        return losses.gradient_penalty(critic, real, step.packed(step.fake), weight=self.weight, alpha=alpha,
                                       check_inputs=step.check_inputs)


class R1Penalty:
    r"""The R1 penalty (Mescheder et al. 2018) on real data, :func:`~scratchgan.gan.losses.r1_penalty`.

    .. math:: \frac{\gamma}{2}\,\mathbb E_i \lVert \nabla_x D(x_i) \rVert^2

    With DiffAugment on the augmented reals, as the authors' StyleGAN2 code
    (``tf.gradients(D(DiffAugment(reals)), reals)``): the gradient of
    :math:`D(T(x_i))` with respect to the un-augmented :math:`x_i`, through the
    very :math:`T` of D's score of this update, :math:`T^\top \nabla D(T(x_i))`.
    """

    def __init__(self, gamma: float):
        self.gamma = gamma

    def __call__(self, step: Step) -> Tensor:
        if step.real_augmentation is not None:
            critic, real = step.augmented_critic(), step.packed(step.real_source)
        else:
            critic, real = step.packed_critic(), step.packed(step.real)
        return losses.r1_penalty(critic, real, self.gamma, check_inputs=step.check_inputs)


class DraganPenalty:
    r"""DRAGAN's penalty around the real data (Kodali et al. 2017), :func:`~scratchgan.gan.losses.dragan_penalty`.

    .. math::

        \lambda\,\mathbb E_i\big[(\lVert \nabla_{\hat x} D(\hat x_i) \rVert - 1)^2\big],
        \qquad \hat x_i = x_i + \alpha_i\,0.5\,\operatorname{std}(x)\,\epsilon_i,\quad
        \alpha_i, \epsilon_{ij} \sim U[0, 1]

    With DiffAugment :math:`x_i` is the augmented real batch D's loss sees.
    """

    def __init__(self, weight: float):
        self.weight = weight

    def __call__(self, step: Step) -> Tensor:
        critic, real = step.packed_critic(), step.packed(step.real)
        noise, alpha = step.draws.perturbations(real.shape)
        return losses.dragan_penalty(critic, real, weight=self.weight, noise=noise, alpha=alpha,
                                     check_inputs=step.check_inputs)


# --------------------------------------------------------------------------- assembly


def _aux_terms(config, critic: bool) -> list:
    if config.aux == "acgan":
        return [ACGANClassLoss(config.aux_weight, critic)]
    if config.aux == "infogan":
        return [InfoGANCodeLoss(config.aux_weight, config)]
    return []


def critic_terms(config) -> list:
    """D's terms: the adversarial loss, the auxiliary head's, then the penalties the config turns on."""
    terms = [CriticObjective(LOSS_KINDS[config.loss], config.label_smoothing)] + _aux_terms(config, critic=True)
    if config.loss == "wgan-gp" and config.penalty_weight > 0:
        terms.append(GradientPenalty(config.penalty_weight))
    if config.r1 > 0:
        terms.append(R1Penalty(config.r1))
    if config.dragan > 0:
        terms.append(DraganPenalty(config.dragan))
    return terms


def generator_terms(config) -> list:
    """G's terms: the adversarial loss and the auxiliary head's."""
    return [GeneratorObjective(LOSS_KINDS[config.loss])] + _aux_terms(config, critic=False)


def total_loss(terms, step: Step) -> Tensor:
    """:math:`L = \\sum_k \\text{term}_k(\\text{step})`, summed left to right in the list's order."""
    loss = terms[0](step)
    for term in terms[1:]:
        loss = loss + term(step)
    return loss
