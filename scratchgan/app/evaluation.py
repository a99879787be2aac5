"""The final evaluation of a run (what ``eval.json`` holds)."""

from __future__ import annotations

__all__ = ["evaluate"]


def evaluate(trainer) -> dict:
    """The evaluation on ``config.eval_samples`` samples; see :meth:`~scratchgan.app.train.Trainer.evaluate`.

    Toy data: :func:`scratchgan.gan.metrics.mode_coverage`; images:
    :func:`scratchgan.app.image_eval.evaluate_images`, and for an InfoGAN run
    :func:`scratchgan.app.image_eval.info_code_metrics`.
    """
    config, data = trainer.config, trainer.data
    n = config.eval_samples
    result = {"step": trainer.step, "data": config.data, "loss": config.loss}
    if data.kind == "toy":
        from ..gan.metrics import mode_coverage  # noqa: PLC0415 - SciPy is imported only to evaluate

        result.update(mode_coverage(trainer.sample(n), data.mixture.centres, data.mixture.std))
        result.pop("per_mode_counts", None)
    else:
        from .image_eval import evaluate_images, info_code_metrics  # noqa: PLC0415

        result.update(evaluate_images(trainer, n))
        if config.aux == "infogan":
            result.update(info_code_metrics(trainer, n))
    return result
