"""The inputs and records of one critic or generator update: sampling, conditioning, D's forward pass.

:meth:`~scratchgan.app.train.Trainer.d_update` and ``g_update`` read as the
loop of docs/study.md with these helpers: sample the batches
(:func:`critic_inputs`, :func:`generator_inputs`), run D on them
(:func:`judge`), sum the loss terms (:mod:`scratchgan.app.loss_terms`), then
backward, sync and step. Conditioning (the labels D and G see) and InfoGAN's
codes are input preparation and happen here; PacGAN's packing happens inside
D and in the penalties (:meth:`~scratchgan.app.loss_terms.Step.packed`).

With ``--diffaugment`` (Zhao et al. 2020, :mod:`scratchgan.gan.augment`)
every batch D sees is augmented here, real and fake, in D's update and in
G's: ``step.real`` and ``step.fake`` are :math:`T(x)` and :math:`T(G(z))`,
each batch with its own draws, taken right after the batch itself; in G's
update :math:`T(G(z))` keeps its graph, so G's gradient flows through
:math:`T`. The penalties then see (see :mod:`scratchgan.app.loss_terms`):
R1 the un-augmented reals through the same :math:`T` (as the authors'
StyleGAN2 code: the gradient with respect to the reals of D's score of the
augmented reals); the gradient penalty and DRAGAN the augmented batches.
"""

from __future__ import annotations

from ..autograd.engine import no_grad
from ..gan import auxiliary, losses
from ..ops import sigmoid
from .loss_terms import LOSS_KINDS, Step

__all__ = ["augmented", "conditioning", "critic_inputs", "critic_record", "generate", "generator_inputs", "generator_record",
           "judge"]


def conditioning(config, labels):
    """The labels D is conditioned on: ``labels`` for a conditional run (ACGAN's too), else None."""
    return labels if config.conditional else None


def generate(G, z, labels, codes, config):
    """``G(z, labels)``, with InfoGAN's codes as G's extra input when there are some."""
    if codes is None:
        return G(z, labels)
    return G(z, labels, codes=auxiliary.as_code_tensor(codes, config))


def discriminate(D, x, labels, with_aux: bool):
    """``(D(x), aux_logits)``: both heads on one pass when ``with_aux``, else ``(D(x), None)``."""
    if with_aux:
        return D.forward_with_aux(x, labels)
    return D(x, labels), None


def augmented(x, augmentation):
    """DiffAugment's ``T(x)`` (:meth:`~scratchgan.app.draws.StepDraws.augmentation`), or ``x`` when it is off."""
    return x if augmentation is None else augmentation(x)


def critic_inputs(G, D, draws, config, check_inputs: bool = True) -> Step:
    """Sample D's update: a real batch with its labels, and G's batch made without a graph (a constant for D).

    Draws, in this order: the real batch, [its augmentation], the fake labels,
    the noise, InfoGAN's codes, [the fake batch's augmentation]; the
    augmentations only with ``--diffaugment``, and then ``real`` and ``fake``
    are the augmented batches.
    """
    n = config.batch_size
    real, real_labels = draws.real_batch()
    augment_real = draws.augmentation()
    fake_labels = draws.fake_labels(n)
    with no_grad():
        z = draws.noise(n)
        codes = draws.info_codes(n)
        fake = generate(G, z, fake_labels, codes, config)
        fake = augmented(fake, draws.augmentation())
    return Step(D, config, draws, fake, fake_labels, codes, real=augmented(real, augment_real),
                real_labels=conditioning(config, real_labels), check_inputs=check_inputs,
                real_source=real if augment_real is not None else None, real_augmentation=augment_real)


def generator_inputs(G, D, draws, config) -> Step:
    """Sample G's update: G's batch with its graph; for a relativistic loss first D's scores of a fresh real batch.

    Those scores are a constant for G (as the authors' code draws them), so
    D's graph on them is not recorded. With ``--diffaugment`` D scores
    :math:`T(x)` and :math:`T(G(z))` (each batch's augmentation drawn right
    after it), and :math:`T(G(z))` keeps its graph: G's gradient goes through :math:`T`.
    """
    n, real_out = config.batch_size, None
    if LOSS_KINDS[config.loss] in losses.RELATIVISTIC_KINDS:
        real, real_labels = draws.real_batch()
        real = augmented(real, draws.augmentation())
        with no_grad():
            real_out = D(real, conditioning(config, real_labels))
    fake_labels = draws.fake_labels(n)
    z = draws.noise(n)
    codes = draws.info_codes(n)
    fake = generate(G, z, fake_labels, codes, config)
    fake = augmented(fake, draws.augmentation())
    return Step(D, config, draws, fake, fake_labels, codes, real_out=real_out)


def judge(step: Step, real_aux: bool, fake_aux: bool) -> Step:
    """The forward pass of D on the step's batches (the real one when there is one), with its head where asked."""
    if step.real is not None:
        step.real_out, step.real_aux = discriminate(step.D, step.real, step.real_labels, real_aux)
    step.fake_out, step.fake_aux = discriminate(step.D, step.fake, step.fake_labels, fake_aux)
    return step


def _mean_output(loss: str, out):
    """Mean D(x), a 0-d array: a probability for the cross-entropy losses, the raw score otherwise."""
    with no_grad():
        values = sigmoid(out) if loss in ("gan", "ns") else out
        return values.data.mean()


def critic_record(loss, step: Step, value) -> dict:
    """D's update in the step's record: its loss, mean D on real and fake, the head's unweighted loss.

    ``value`` turns a 0-d array into what the record holds (a float on the
    CPU, the device array on the GPU).
    """
    kind = step.config.loss
    record = {"d_loss": value(loss.data), "d_real": value(_mean_output(kind, step.real_out)),
              "d_fake": value(_mean_output(kind, step.fake_out))}
    return record | {f"d_{k}": value(v.data) for k, v in step.logged.items()}


def generator_record(loss, step: Step, value) -> dict:
    """G's update in the step's record: its loss and the head's unweighted loss."""
    return {"g_loss": value(loss.data)} | {f"g_{k}": value(v.data) for k, v in step.logged.items()}
