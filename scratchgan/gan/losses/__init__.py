"""GAN losses and penalties, on logits, each with its formula: ``sg.losses``.

Three modules, one per concern, all of whose names are here:

* :mod:`~scratchgan.gan.losses.objectives`: the adversarial objectives,
  :func:`bce_with_logits`, :func:`d_loss` and :func:`g_loss` of every kind in
  :data:`ALL_KINDS` (minimax, ns, wasserstein, lsgan, hinge, rsgan, rasgan);
* :mod:`~scratchgan.gan.losses.penalties`: what is added to the critic's loss to
  constrain it, :func:`gradient_penalty` (WGAN-GP, WGAN-LP),
  :func:`dragan_penalty`, :func:`r1_penalty`, :func:`r2_penalty` (double
  backprop through the critic's input gradient) and :func:`clip_weights`;
* :mod:`~scratchgan.gan.losses.classification`: :func:`softmax_cross_entropy`
  and the auxiliary heads' losses, ACGAN's and InfoGAN's.

Every loss takes the critic's raw outputs (logits, never probabilities),
reduces with the mean, and can be differentiated twice; float32 and float64,
NumPy or CuPy. See ``docs/losses.md`` for when to use which loss and the
tests that check them.
"""

from __future__ import annotations

from .classification import CROSS_ENTROPY_REDUCTIONS  # noqa: F401 - a constant of sg.losses, as before the split
from .classification import acgan_discriminator_loss, acgan_generator_loss, mutual_information_penalty, softmax_cross_entropy
from .objectives import ALL_KINDS, KINDS, RELATIVISTIC_KINDS, bce_with_logits, d_loss, g_loss
from .penalties import clip_weights, dragan_penalty, gradient_penalty, r1_penalty, r2_penalty
from .penalties import DRAGAN_SCALE, NORM_EPS  # noqa: F401 - constants of sg.losses, as before the split
from .penalties import _gp_at, _r_at  # noqa: F401 - the penalty cores that tests/test_losses.py checks

__all__ = ["ALL_KINDS", "KINDS", "RELATIVISTIC_KINDS", "bce_with_logits", "clip_weights", "d_loss", "dragan_penalty",
           "g_loss", "gradient_penalty", "r1_penalty", "r2_penalty",
           "acgan_discriminator_loss", "acgan_generator_loss", "mutual_information_penalty", "softmax_cross_entropy"]
