"""Tests for scratchgan.app.classifier and image_eval.evaluate_images on a tiny synthetic image set.

Three classes of 6x6 images: a dark background with a bright horizontal band
(rows 0-1, 2-3 or 4-5) plus Gaussian noise. Every test points the cache at
its own tmp_path through $SCRATCHGAN_CACHE.
"""

from __future__ import annotations

import types

import numpy as np
import pytest
from scipy.special import log_softmax as scipy_log_softmax

from scratchgan.app import classifier, image_eval
from scratchgan.gan import losses
from scratchgan import ops
from scratchgan.app.data import Dataset
from scratchgan.autograd.tensor import Tensor

C, H, W = 3, 6, 6


def make_images(labels, rng) -> np.ndarray:
    x = -0.6 + 0.3 * rng.standard_normal((len(labels), H, W))
    for c in range(C):
        x[labels == c, 2 * c:2 * c + 2, :] += 1.2
    return np.clip(x, -1.0, 1.0).astype(np.float32)


def make_dataset(seed=0, name="blocks", n_train=150, n_test=60) -> Dataset:
    rng = np.random.default_rng(seed)
    y_train = np.repeat(np.arange(C), n_train).astype(np.int64)
    y_test = np.repeat(np.arange(C), n_test).astype(np.int64)
    return Dataset(name, "image", make_images(y_train, rng), y_train, make_images(y_test, rng), y_test,
                   num_classes=C, image_shape=(H, W))


@pytest.fixture(scope="module")
def data():
    return make_dataset()


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("SCRATCHGAN_CACHE", str(folder))
    return folder


class StubTrainer:
    """What evaluate_images needs of a Trainer: .data, .config.conditional, .sample."""

    def __init__(self, data, sample, conditional=False):
        self.data = data
        self.config = types.SimpleNamespace(conditional=conditional)
        self._sample = sample
        self.calls = []

    def sample(self, n, labels=None, seed=None):
        self.calls.append((n, None if labels is None else np.array(labels)))
        return self._sample(n, labels)


# --------------------------------------------------------------------------- loss


def test_log_softmax_matches_scipy_and_is_stable():
    """The classifier's loss is the log_softmax op (its private copy is gone: one definition per derivative)."""
    assert classifier.log_softmax is ops.log_softmax
    assert classifier.softmax_cross_entropy is losses.softmax_cross_entropy
    assert "log_softmax" not in classifier.__all__ and "softmax_cross_entropy" not in classifier.__all__
    z = np.array([[1.0, 2.0, 3.0], [1e4, -1e4, 0.0], [-1e4, -1e4 + 1.0, -1e4 + 2.0]])
    out = ops.log_softmax(Tensor(z, dtype="float64"), axis=1).numpy()
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, scipy_log_softmax(z, axis=1), rtol=1e-12, atol=1e-12)


def test_cross_entropy_value_and_gradient():
    rng = np.random.default_rng(3)
    z = rng.standard_normal((5, 4)) * 50.0
    y = np.array([0, 3, 1, 1, 2])
    t = Tensor(z, dtype="float64", requires_grad=True)
    loss = losses.softmax_cross_entropy(t, y)
    logp = scipy_log_softmax(z, axis=1)
    assert loss.item() == pytest.approx(-logp[np.arange(5), y].mean(), rel=1e-12)
    loss.backward()
    expected = (np.exp(logp) - np.eye(4)[y]) / 5
    np.testing.assert_allclose(t.grad.numpy(), expected, atol=1e-12)
    with pytest.raises(ValueError):
        losses.softmax_cross_entropy(t, np.array([0, 1, 2, 3, 4]))


# --------------------------------------------------------------------------- training


def test_untrained_is_near_chance_and_training_learns(data):
    untrained = classifier.train_classifier(data, steps=0)
    assert untrained.accuracy(data.x_test, data.y_test) < 0.7
    clf = classifier.get_classifier(data)
    assert clf.test_accuracy > 0.9
    assert clf.accuracy(data.x_test, data.y_test) == pytest.approx(clf.test_accuracy)
    feats, probs = clf.features_and_probs(data.x_test)
    assert feats.shape == (len(data.x_test), classifier.DEFAULT_HIDDEN[-1])
    assert probs.shape == (len(data.x_test), C) and np.allclose(probs.sum(axis=1), 1.0)
    # batching does not change anything
    f2, p2 = clf.features_and_probs(data.x_test.reshape(len(data.x_test), -1), batch_size=7)
    np.testing.assert_allclose(f2, feats, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(p2, probs, rtol=1e-6, atol=1e-6)


def test_training_is_deterministic(data):
    a = classifier.train_classifier(data, steps=40, seed=5).net.state_dict()
    b = classifier.train_classifier(data, steps=40, seed=5).net.state_dict()
    c = classifier.train_classifier(data, steps=40, seed=6).net.state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not all(np.array_equal(a[k], c[k]) for k in a)


def test_rejects_non_image_data():
    with pytest.raises(ValueError):
        classifier.get_classifier(types.SimpleNamespace(kind="toy", num_classes=8, name="ring8"))


# --------------------------------------------------------------------------- cache


def test_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("SCRATCHGAN_CACHE", str(tmp_path / "a"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert classifier.cache_dir() == tmp_path / "a"
    monkeypatch.delenv("SCRATCHGAN_CACHE")
    assert classifier.cache_dir() == tmp_path / "x" / "scratchgan"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert classifier.cache_dir() == tmp_path / "home" / ".cache" / "scratchgan"


def _no_training(*args, **kwargs):
    raise AssertionError("the classifier was retrained although a valid cache file exists")


def test_cache_is_written_and_reused(data, cache, monkeypatch):
    first = classifier.get_classifier(data)
    path = classifier.cache_path(data)
    assert path.parent == cache and path.is_file()
    assert "blocks" in path.name and "6x6" in path.name
    assert not list(cache.glob("*.tmp"))
    monkeypatch.setattr(classifier, "train_classifier", _no_training)
    second = classifier.get_classifier(data)
    a, b = first.net.state_dict(), second.net.state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert second.test_accuracy == first.test_accuracy


def _counting_trainer(monkeypatch):
    calls = []
    real = classifier.train_classifier

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(classifier, "train_classifier", counted)
    return calls


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_corrupt_cache_is_retrained(data, monkeypatch, capsys, damage):
    classifier.get_classifier(data)
    path = classifier.cache_path(data)
    raw = path.read_bytes()
    path.write_bytes({"garbage": b"not a zip file at all", "truncated": raw[: len(raw) // 2], "empty": b""}[damage])
    calls = _counting_trainer(monkeypatch)
    capsys.readouterr()
    clf = classifier.get_classifier(data)
    assert calls == [1]
    assert "unusable" in capsys.readouterr().err
    assert clf.test_accuracy > 0.9
    monkeypatch.setattr(classifier, "train_classifier", _no_training)
    classifier.get_classifier(data)  # the rewritten file is valid


def test_cache_for_other_data_under_the_same_name_is_retrained(data, monkeypatch, capsys):
    classifier.get_classifier(data)
    other = make_dataset(seed=1)  # same name, shape and architecture; other pixels
    assert classifier.cache_path(other) == classifier.cache_path(data)
    calls = _counting_trainer(monkeypatch)
    capsys.readouterr()
    classifier.get_classifier(other)
    assert calls == [1]
    assert "data_digest" in capsys.readouterr().err


def test_unwritable_cache_folder_only_warns(data, tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.setenv("SCRATCHGAN_CACHE", str(blocker / "sub"))
    clf = classifier.get_classifier(data)
    assert clf.test_accuracy > 0.9
    assert "could not cache" in capsys.readouterr().err


# --------------------------------------------------------------------------- evaluate_images


def test_evaluate_images_on_real_images(data):
    rng = np.random.default_rng(11)

    def fresh_real(n, labels):  # new real images, neither train nor test
        return make_images(rng.integers(0, C, n), rng)

    out = image_eval.evaluate_images(StubTrainer(data, fresh_real), 300)
    assert set(out) == {"eval_samples", "classifier_test_accuracy", "classifier_score", "classifier_score_real",
                        "frechet_classifier_distance", "frechet_classifier_distance_real", "class_coverage",
                        "class_coverage_real", "kernel_classifier_distance", "kernel_classifier_distance_std",
                        "kernel_classifier_distance_real", "kernel_classifier_distance_real_std",
                        *(f"prdc_{m}{s}" for m in ("precision", "recall", "density", "coverage") for s in ("", "_real"))}
    assert all(isinstance(v, (int, float)) for v in out.values())
    assert out["classifier_test_accuracy"] > 0.9
    assert out["classifier_score"] == pytest.approx(out["classifier_score_real"], rel=0.1)
    assert out["classifier_score_real"] > 2.5
    assert out["class_coverage"] == out["class_coverage_real"] == 1.0
    ref = out["frechet_classifier_distance_real"]
    assert out["frechet_classifier_distance"] < 2.0 * ref + 1e-3

    test_images = StubTrainer(data, lambda n, labels: data.x_test[np.arange(n) % len(data.x_test)])
    on_test = image_eval.evaluate_images(test_images, len(data.x_test))
    assert on_test["frechet_classifier_distance"] < 1e-6 * max(ref, 1.0)
    assert on_test["classifier_score"] == pytest.approx(out["classifier_score_real"], rel=1e-9)


def test_evaluate_images_on_constant_images(data):
    stub = StubTrainer(data, lambda n, labels: np.full((n, H, W), -0.6, dtype=np.float32))
    out = image_eval.evaluate_images(stub, 200)
    assert out["class_coverage"] == pytest.approx(1 / C)
    assert out["classifier_score"] == pytest.approx(1.0, abs=1e-9)
    assert out["frechet_classifier_distance"] > 10 * out["frechet_classifier_distance_real"]
    assert stub.calls == [(200, None)]


def test_evaluate_images_conditional(data):
    rng = np.random.default_rng(5)
    good = StubTrainer(data, lambda n, labels: make_images(np.asarray(labels), rng), conditional=True)
    out = image_eval.evaluate_images(good, 300)
    (n, labels), = good.calls
    assert n == 300 and np.array_equal(np.bincount(labels, minlength=C), [100, 100, 100])
    assert out["conditional_accuracy"] > 0.9
    # a generator that ignores the label: right only for the class it always makes
    deaf = StubTrainer(data, lambda n, labels: make_images(np.zeros(n, dtype=np.int64), rng), conditional=True)
    assert image_eval.evaluate_images(deaf, 300)["conditional_accuracy"] == pytest.approx(1 / C, abs=0.05)


def test_evaluate_images_survives_nan_and_checks_n(data):
    def with_nan(n, labels):
        x = np.zeros((n, H, W), dtype=np.float32)
        x[0, 0, 0] = np.nan
        return x

    with pytest.warns(RuntimeWarning, match="NaN"):
        out = image_eval.evaluate_images(StubTrainer(data, with_nan), 50)
    assert np.isfinite(out["frechet_classifier_distance"])
    with pytest.raises(ValueError):
        image_eval.evaluate_images(StubTrainer(data, with_nan), 1)
