"""Evaluation of an image generator with the trained classifier: :func:`evaluate_images`.

The classifier (:mod:`scratchgan.classifier`) runs on scratchgan's engine;
the metrics computed from its features and probabilities are the pure
NumPy/SciPy ones of :mod:`scratchgan.metrics` (formulas in ``docs/metrics.md``).
"""

from __future__ import annotations

import warnings

import numpy as np

from .classifier import one_blas_thread, get_classifier
from .metrics import class_coverage, classifier_score, feature_statistics, frechet_distance

__all__ = ["EVAL_SEED", "evaluate_images"]

#: Seed of the label order and of the real reference subset in evaluate_images.
EVAL_SEED = 20240


def evaluate_images(trainer, n: int) -> dict:
    r"""Classifier-based metrics of an image generator, next to real-data references.

    Uses :func:`scratchgan.classifier.get_classifier` (trained on the
    dataset's training labels with scratchgan itself, cached on disk).
    ``n`` images are drawn with ``trainer.sample(n)``; for a conditional run
    (``trainer.config.conditional``) with balanced labels
    (each class ``n / C`` times, shuffled) through
    ``trainer.sample(n, labels=...)``. The references use real images:
    the held-out test split, and ``min(n, N_train)`` training images drawn
    without replacement (the same size as the generated set, so that the two
    Fréchet distances have the same estimation bias).

    Returns
    -------
    dict
        Flat, JSON-able:

        * ``frechet_classifier_distance``: FD between the penultimate-layer
          features of the generated images and of the test images;
        * ``frechet_classifier_distance_real``: the same for the training
          subset against the test images (what a generator that reproduced
          the training data would get);
        * ``classifier_score`` / ``classifier_score_real``: the Inception-Score
          formula (:func:`scratchgan.metrics.classifier_score`, one split) on
          the generated / test images;
        * ``class_coverage`` / ``class_coverage_real``:
          :func:`scratchgan.metrics.class_coverage` of the generated / test
          images;
        * ``classifier_test_accuracy``: the classifier's accuracy on the test
          images;
        * ``conditional_accuracy`` (conditional runs only): share of
          generated images classified as the label they were asked for;
        * ``eval_samples``: ``n``.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"n must be an int >= 2 (a covariance needs two samples), got {n!r}")
    n = int(n)
    data = trainer.data
    num_classes = int(data.num_classes)
    clf = get_classifier(data)
    rng = np.random.default_rng(EVAL_SEED)

    conditional = bool(getattr(trainer.config, "conditional", False))
    if conditional:
        labels = rng.permutation(np.arange(n) % num_classes).astype(np.int64)
        fake = trainer.sample(n, labels=labels)
    else:
        labels = None
        fake = trainer.sample(n)
    fake = np.asarray(fake, dtype=np.float64).reshape(n, -1)
    bad = ~np.isfinite(fake)
    if bad.any():
        warnings.warn(f"evaluate_images: {int(bad.any(axis=1).sum())} of {n} generated images contain "
                      "NaN or Inf; those pixels are set to 0 for the metrics", RuntimeWarning, stacklevel=2)
        fake = np.where(bad, 0.0, fake)

    subset = rng.choice(len(data.x_train), size=min(n, len(data.x_train)), replace=False)
    with one_blas_thread():  # small matrices: a second BLAS thread only hurts on a busy machine
        f_fake, p_fake = clf.features_and_probs(fake)
        f_test, p_test = clf.features_and_probs(data.x_test)
        f_train, _ = clf.features_and_probs(data.x_train[np.sort(subset)])
        mu_test, sigma_test = feature_statistics(f_test)
        result = {
            "eval_samples": n,
            "classifier_test_accuracy": float(np.mean(np.argmax(p_test, axis=1) == np.asarray(data.y_test))),
            "classifier_score": classifier_score(p_fake)[0],
            "classifier_score_real": classifier_score(p_test)[0],
            "frechet_classifier_distance": frechet_distance(*feature_statistics(f_fake), mu_test, sigma_test),
            "frechet_classifier_distance_real": frechet_distance(*feature_statistics(f_train), mu_test,
                                                                 sigma_test),
            "class_coverage": class_coverage(p_fake, num_classes),
            "class_coverage_real": class_coverage(p_test, num_classes),
        }
    if conditional:
        result["conditional_accuracy"] = float(np.mean(np.argmax(p_fake, axis=1) == labels))
    return result
