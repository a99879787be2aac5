"""Evaluation of an image generator with the trained classifier: :func:`evaluate_images`.

The classifier (:mod:`scratchgan.app.classifier`) runs on scratchgan's engine;
the metrics computed from its features and probabilities are the pure
NumPy/SciPy ones of :mod:`scratchgan.gan.metrics` (formulas in ``docs/metrics.md``).
"""

from __future__ import annotations

import warnings

import numpy as np

from .classifier import one_blas_thread, get_classifier
from ..gan.metrics import _features_pair, _prdc_against, class_coverage, classifier_score, feature_statistics, frechet_distance, kernel_distance

__all__ = ["EVAL_SEED", "KID_SUBSETS", "KID_SUBSET_SIZE", "PRDC_K", "evaluate_images", "info_code_metrics"]

#: Seed of the label order, of the real reference subset and of the KID subsets in evaluate_images.
EVAL_SEED = 20240
#: Number of KID subsets in evaluate_images (torch-fidelity's default).
KID_SUBSETS = 100
#: Largest KID subset size in evaluate_images (smaller when a set is smaller): 500 rather than the
#: usual 1000 halves the cost (about 1.7 s instead of 3.7 s of one core per KID, 128 features); the
#: mean's expectation does not depend on it.
KID_SUBSET_SIZE = 500
#: Nearest-neighbour count of PRDC in evaluate_images (the paper's recommended k).
PRDC_K = 5


def evaluate_images(trainer, n: int) -> dict:
    r"""Classifier-based metrics of an image generator, next to real-data references.

    Uses :func:`scratchgan.app.classifier.get_classifier` (trained on the
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
          formula (:func:`scratchgan.gan.metrics.classifier_score`, one split) on
          the generated / test images;
        * ``class_coverage`` / ``class_coverage_real``:
          :func:`scratchgan.gan.metrics.class_coverage` of the generated / test
          images;
        * ``classifier_test_accuracy``: the classifier's accuracy on the test
          images;
        * ``kernel_classifier_distance`` / ``kernel_classifier_distance_std``:
          :func:`scratchgan.gan.metrics.kernel_distance` (KID formula) of the
          generated against the test features: ``KID_SUBSETS`` = 100 subsets
          of ``m = min(KID_SUBSET_SIZE, n, N_test, N_train)`` rows, drawn
          from the evaluation's seeded generator;
          ``kernel_classifier_distance_real`` / ``..._real_std``: the same for
          the training subset against the test features (same :math:`m`);
        * ``prdc_precision``, ``prdc_recall``, ``prdc_density``,
          ``prdc_coverage``: :func:`scratchgan.gan.metrics.prdc` with
          ``min(n, N_test)`` test images (drawn without replacement; all of
          them if there are no more) as the real set, the generated ones as
          the fake set and k = ``PRDC_K`` = 5; the ``..._real`` keys: the
          same real set against the training subset as the fake set (the
          same size as the generated set when ``n <= N_train``). Left out
          when a set has at most k images;
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
        result.update(_kid_and_prdc(f_fake, f_train, f_test, rng))
    if conditional:
        result["conditional_accuracy"] = float(np.mean(np.argmax(p_fake, axis=1) == labels))
    return result


def _kid_and_prdc(f_fake, f_train, f_test, rng: np.random.Generator) -> dict:
    """KID and PRDC of the generated and of the real (training-subset) features against test features.

    KID: ``KID_SUBSETS`` subsets of ``min(KID_SUBSET_SIZE, n, N_test, N_train)`` rows.
    PRDC: the real set is ``min(n, N_test)`` test rows drawn without replacement
    (all of them when there are no more than ``n``), k = ``PRDC_K``; left out
    when a set has at most k rows.
    """
    n = len(f_fake)
    m = min(KID_SUBSET_SIZE, n, len(f_train), len(f_test))
    out = {}
    for suffix, feats in (("", f_fake), ("_real", f_train)):
        mean, std = kernel_distance(feats, f_test, subsets=KID_SUBSETS, subset_size=m, rng=rng)
        out[f"kernel_classifier_distance{suffix}"] = mean
        out[f"kernel_classifier_distance{suffix}_std"] = std
    if n < len(f_test):
        f_test = f_test[np.sort(rng.choice(len(f_test), n, replace=False))]
    if min(n, len(f_train), len(f_test)) > PRDC_K:
        test, fake = _features_pair("prdc", f_test, f_fake, ("test features", "generated features"))
        _, train = _features_pair("prdc", f_test, f_train, ("test features", "training features"))
        for suffix, values in zip(("", "_real"), _prdc_against(test, [fake, train], PRDC_K)):
            out.update({f"prdc_{name}{suffix}": value for name, value in values.items()})
    return out


def info_code_metrics(trainer, n: int, seed: int = 20240) -> dict:
    r"""How well InfoGAN's categorical code maps to the data's classes, judged by the image classifier.

    ``n // K`` images are drawn per code value :math:`k` (fresh noise, random
    continuous codes; seed ``seed``) and classified with
    :func:`scratchgan.app.classifier.get_classifier`; :math:`n_{kj}` counts the
    images of code :math:`k` classified as class :math:`j`.

    Returns
    -------
    dict
        * ``info_code_purity``: :math:`\frac1K \sum_k \max_j n_{kj} / n_k`, the
          mean share of a code's images in its majority class (1: every code
          makes one class);
        * ``info_code_classes``: how many distinct classes are some code's
          majority class (10 for MNIST when every digit has its own code);
        * ``info_code_accuracy``: the share of all images in the class of their
          code under the best one-to-one matching of codes to classes (the
          Hungarian algorithm, :func:`scipy.optimize.linear_sum_assignment`: the
          usual unsupervised clustering accuracy);
        * ``info_code_majority``: the majority class of each code, a list.
    """
    from scipy.optimize import linear_sum_assignment  # noqa: PLC0415 - SciPy only to evaluate

    k = int(trainer.config.info_categories)
    if k < 2 or trainer.data.kind != "image" or trainer.data.num_classes < 2:
        return {}
    per = max(int(n) // k, 1)
    categories = np.repeat(np.arange(k, dtype=np.int64), per)
    images = trainer.sample(k * per, seed=seed, category=categories)
    predicted = get_classifier(trainer.data).predict(images)
    counts = np.zeros((k, trainer.data.num_classes), dtype=np.int64)
    np.add.at(counts, (categories, predicted), 1)
    rows, cols = linear_sum_assignment(-counts)
    return {
        "info_code_purity": float(np.mean(counts.max(axis=1) / per)),
        "info_code_classes": int(len(set(counts.argmax(axis=1).tolist()))),
        "info_code_accuracy": float(counts[rows, cols].sum() / counts.sum()),
        "info_code_majority": counts.argmax(axis=1).tolist(),
    }
