"""The inputs and records of one critic or generator update: sampling, conditioning, D's forward pass.

:meth:`~scratchgan.app.train.Trainer.d_update` and ``g_update`` read as the
loop of docs/study.md with these helpers: sample the batches
(:func:`critic_inputs`, :func:`generator_inputs`), run D on them
(:func:`judge`), sum the loss terms (:mod:`scratchgan.app.loss_terms`), then
backward, sync and step. Conditioning (the labels D and G see) and InfoGAN's
codes are input preparation and happen here; PacGAN's packing happens inside
D and in the penalties (:meth:`~scratchgan.app.loss_terms.Step.packed`).
"""

from __future__ import annotations

from ..autograd.engine import no_grad
from ..gan import auxiliary, losses
from ..ops import sigmoid
from .loss_terms import LOSS_KINDS, Step

__all__ = ["conditioning", "critic_inputs", "critic_record", "generate", "generator_inputs", "generator_record",
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


def critic_inputs(G, D, draws, config, check_inputs: bool = True) -> Step:
    """Sample D's update: a real batch with its labels, and G's batch made without a graph (a constant for D).

    Draws, in this order: the real batch, the fake labels, the noise, InfoGAN's codes.
    """
    n = config.batch_size
    real, real_labels = draws.real_batch()
    fake_labels = draws.fake_labels(n)
    with no_grad():
        z = draws.noise(n)
        codes = draws.info_codes(n)
        fake = generate(G, z, fake_labels, codes, config)
    return Step(D, config, draws, fake, fake_labels, codes, real=real, real_labels=conditioning(config, real_labels),
                check_inputs=check_inputs)


def generator_inputs(G, D, draws, config) -> Step:
    """Sample G's update: G's batch with its graph; for a relativistic loss first D's scores of a fresh real batch.

    Those scores are a constant for G (as the authors' code draws them), so
    D's graph on them is not recorded.
    """
    n, real_out = config.batch_size, None
    if LOSS_KINDS[config.loss] in losses.RELATIVISTIC_KINDS:
        real, real_labels = draws.real_batch()
        with no_grad():
            real_out = D(real, conditioning(config, real_labels))
    fake_labels = draws.fake_labels(n)
    z = draws.noise(n)
    codes = draws.info_codes(n)
    fake = generate(G, z, fake_labels, codes, config)
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
