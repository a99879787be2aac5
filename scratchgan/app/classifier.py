"""A small image classifier, trained with scratchgan itself, for the image metrics.

:func:`get_classifier` returns an :class:`ImageClassifier` for a dataset: an
MLP ``H*W -> 256 -> 128 -> C`` (ReLU) trained with :class:`scratchgan.optim.Adam`
on the dataset's training labels with the softmax cross-entropy
(:func:`scratchgan.gan.losses.softmax_cross_entropy`, on the
:func:`scratchgan.ops.log_softmax` op). Its
penultimate layer (the 128 ReLU features) feeds the Fréchet classifier
distance and its softmax the classifier score and class coverage
(:func:`scratchgan.app.image_eval.evaluate_images`; formulas in ``docs/metrics.md``).

Training is deterministic given the seed (on the NumPy backend) and takes
seconds. The trained weights are cached in the user's cache folder
(:func:`cache_dir`), one file per dataset, image shape, architecture, seed and
:data:`CLASSIFIER_VERSION`, written atomically with
:func:`scratchgan.app.checkpoint.save_checkpoint`. A cache file that is missing,
unreadable, or made for other data or another recipe is replaced by a freshly
trained classifier (with one line on stderr), never an error.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import re
import sys
from pathlib import Path

import numpy as np

from .. import backend, nn, optim
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ..gan.losses import softmax_cross_entropy
from ..ops import log_softmax
from ..autograd.engine import no_grad
from ..autograd.tensor import as_tensor

__all__ = [
    "CLASSIFIER_VERSION",
    "DEFAULT_HIDDEN",
    "ImageClassifier",
    "cache_dir",
    "cache_path",
    "get_classifier",
    "one_blas_thread",
    "train_classifier",
]

#: Bump when the architecture, the training recipe or the file layout changes:
#: older cache files are then ignored (they have another name).
CLASSIFIER_VERSION = 1
DEFAULT_HIDDEN = (256, 128)
FORMAT_NAME = "scratchgan-classifier"

# Training recipe (stored in the cache file; a file with another recipe is retrained).
BATCH_SIZE = 128
LEARNING_RATE = 1e-3
EPOCHS = 30  # passes over the training set, within [MIN_STEPS, MAX_STEPS] Adam steps
MIN_STEPS = 300  # tiny datasets still get enough updates
MAX_STEPS = 2000  # full MNIST (469 batches an epoch): ~4 epochs, well under a minute on 2 cores
EVAL_BATCH = 1000


# --------------------------------------------------------------------------- BLAS threads


def one_blas_thread():
    """Run NumPy's BLAS on one thread (when threadpoolctl is installed), restored afterwards.

    The classifier's matrices are small (batches of 128): a second OpenBLAS
    thread gains little on an idle machine, and on a busy 2-core one its
    spin-waiting made training 6x slower (18 s instead of 3 s on mnist5k).
    """
    try:
        from threadpoolctl import threadpool_limits  # noqa: PLC0415 - optional
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


# --------------------------------------------------------------------------- the classifier


class ImageClassifier:
    """A trained MLP classifier of flattened images.

    Attributes
    ----------
    net : scratchgan.nn.Sequential
        ``Linear, ReLU, ..., Linear``; ``net[:-1]`` gives the features.
    image_shape : tuple (H, W)
    num_classes : int
    hidden : tuple of int
    meta : dict
        What the cache file records (dataset, digest, recipe, ``test_accuracy``).
    """

    def __init__(self, net: nn.Sequential, image_shape, num_classes: int, hidden, meta: dict | None = None):
        self.net = net
        self.image_shape = tuple(int(s) for s in image_shape)
        self.num_classes = int(num_classes)
        self.hidden = tuple(int(h) for h in hidden)
        self.meta = dict(meta or {})
        self._features = net[:-1]
        self._head = net[-1]

    @property
    def feature_dim(self) -> int:
        return self.hidden[-1]

    @property
    def test_accuracy(self) -> float | None:
        """Accuracy on the dataset's test split when it was trained (None if unknown)."""
        return self.meta.get("test_accuracy")

    def _check_images(self, images) -> np.ndarray:
        x = np.asarray(backend.to_numpy(images))
        d = math.prod(self.image_shape)
        if x.ndim < 2 or math.prod(x.shape[1:]) != d:
            raise ValueError(f"expected images of shape (N, {self.image_shape[0]}, {self.image_shape[1]}) "
                             f"or (N, {d}), got {x.shape}")
        return x.reshape(len(x), d)

    def features_and_probs(self, images, batch_size: int = EVAL_BATCH) -> tuple[np.ndarray, np.ndarray]:
        """Penultimate features (N, feature_dim) and softmax probabilities (N, C), float64 host arrays.

        ``images`` in [-1, 1], shape (N, H, W) or (N, H*W); evaluated under
        ``no_grad`` in batches of ``batch_size``, in eval mode.
        """
        x = self._check_images(images)
        first = next(self.net.parameters())
        where, dtype = first.backend, first.dtype
        feats, probs = [], []
        was_training = self.net.training
        self.net.eval()
        try:
            with no_grad(), one_blas_thread():
                for start in range(0, len(x), batch_size):
                    xb = as_tensor(backend.to_backend(np.ascontiguousarray(x[start:start + batch_size], dtype=dtype),
                                                      where))
                    h = self._features(xb)
                    logp = log_softmax(self._head(h), axis=1)
                    feats.append(np.asarray(h.numpy(), dtype=np.float64))
                    probs.append(np.exp(np.asarray(logp.numpy(), dtype=np.float64)))
        finally:
            self.net.train(was_training)
        if not feats:
            return np.zeros((0, self.feature_dim)), np.zeros((0, self.num_classes))
        p = np.concatenate(probs)
        return np.concatenate(feats), p / p.sum(axis=1, keepdims=True)

    def features(self, images) -> np.ndarray:
        return self.features_and_probs(images)[0]

    def probs(self, images) -> np.ndarray:
        return self.features_and_probs(images)[1]

    def predict(self, images) -> np.ndarray:
        return np.argmax(self.probs(images), axis=1)

    def accuracy(self, images, labels) -> float:
        labels = np.asarray(labels)
        return float(np.mean(self.predict(images) == labels)) if len(labels) else float("nan")


def _build_net(data_dim: int, hidden, num_classes: int, seed: int) -> nn.Sequential:
    rng = np.random.default_rng([seed, 0])
    return nn.mlp([data_dim, *hidden, num_classes], activation="relu", rng=rng, dtype="float32")


def _recipe() -> dict:
    return {"batch_size": BATCH_SIZE, "lr": LEARNING_RATE, "epochs": EPOCHS, "min_steps": MIN_STEPS,
            "max_steps": MAX_STEPS, "optimizer": "adam"}


def _check_image_data(data) -> None:
    if getattr(data, "kind", None) != "image" or data.num_classes < 2:
        raise ValueError(f"the classifier needs a labelled image dataset, got {getattr(data, 'name', data)!r}")


def train_classifier(data, hidden=DEFAULT_HIDDEN, seed: int = 0, steps: int | None = None) -> ImageClassifier:
    """Train the classifier on ``data.x_train`` / ``data.y_train`` with scratchgan's own engine.

    Adam (lr 1e-3), batches of 128 drawn epoch by epoch from a seeded
    permutation, softmax cross-entropy; ``EPOCHS`` epochs clamped to
    ``[MIN_STEPS, MAX_STEPS]`` steps unless ``steps`` is given (0 gives the
    untrained network). Deterministic given ``seed`` on the NumPy backend.
    The test accuracy is stored in ``meta["test_accuracy"]``.
    """
    _check_image_data(data)
    hidden = tuple(int(h) for h in hidden)
    x = np.ascontiguousarray(data.x_train.reshape(len(data.x_train), -1), dtype=np.float32)
    y = np.asarray(data.y_train, dtype=np.int64)
    n = len(x)
    net = _build_net(x.shape[1], hidden, data.num_classes, seed)
    opt = optim.Adam(list(net.parameters()), lr=LEARNING_RATE)
    batch = min(BATCH_SIZE, n)
    per_epoch = math.ceil(n / batch)
    if steps is None:
        steps = min(max(EPOCHS * per_epoch, MIN_STEPS), MAX_STEPS)
    rng = np.random.default_rng([seed, 1])
    where = next(net.parameters()).backend
    order = None
    with one_blas_thread():
        for step in range(int(steps)):
            k = step % per_epoch
            if k == 0:
                order = rng.permutation(n)
            idx = order[k * batch:(k + 1) * batch]
            xb = as_tensor(backend.to_backend(x[idx], where))
            opt.zero_grad()
            loss = softmax_cross_entropy(net(xb), y[idx])
            loss.backward()
            opt.step()
    clf = ImageClassifier(net, data.image_shape, data.num_classes, hidden)
    clf.meta.update(_expected_meta(data, hidden, seed), steps=int(steps),
                    test_accuracy=clf.accuracy(data.x_test, data.y_test),
                    train_loss=float(loss.item()) if steps else None)
    return clf


# --------------------------------------------------------------------------- cache


def cache_dir() -> Path:
    """``$SCRATCHGAN_CACHE``, else ``$XDG_CACHE_HOME/scratchgan``, else ``~/.cache/scratchgan``."""
    env = os.environ.get("SCRATCHGAN_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "scratchgan"


def _arch(data, hidden) -> str:
    return "-".join(str(s) for s in (data.data_dim, *hidden, data.num_classes))


def cache_path(data, hidden=DEFAULT_HIDDEN, seed: int = 0) -> Path:
    """The cache file of a dataset's classifier (name, image shape, architecture, seed, version)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(data.name)) or "data"
    h, w = data.image_shape
    return cache_dir() / f"classifier-{name}-{h}x{w}-{_arch(data, hidden)}-s{seed}-v{CLASSIFIER_VERSION}.npz"


def data_digest(data) -> str:
    """BLAKE2 digest of the images and labels of both splits (detects other data under the same name)."""
    hasher = hashlib.blake2b(digest_size=16)
    for arr in (data.x_train, data.y_train, data.x_test, data.y_test):
        arr = np.ascontiguousarray(arr)
        hasher.update(f"{arr.dtype.str}{arr.shape}".encode())
        hasher.update(memoryview(arr).cast("B"))
    return hasher.hexdigest()


def _expected_meta(data, hidden, seed) -> dict:
    return {"format": FORMAT_NAME, "version": CLASSIFIER_VERSION, "dataset": str(data.name),
            "image_shape": list(data.image_shape), "num_classes": int(data.num_classes),
            "hidden": list(hidden), "seed": int(seed), "data_digest": data_digest(data), "recipe": _recipe()}


def _load(path: Path, data, hidden, seed) -> ImageClassifier:
    """Load a cached classifier; raises ValueError / CheckpointError when it does not fit."""
    tree = load_checkpoint(path)
    meta, state = tree.get("meta"), tree.get("state")
    if not isinstance(meta, dict) or not isinstance(state, dict):
        raise ValueError("not a scratchgan classifier file")
    expected = _expected_meta(data, hidden, seed)
    wrong = [k for k, v in expected.items() if meta.get(k) != v]
    if wrong:
        raise ValueError(f"made for other data or settings ({', '.join(wrong)} differ)")
    if not all(np.all(np.isfinite(v)) for v in state.values()):
        raise ValueError("weights are not finite")
    net = _build_net(data.data_dim, hidden, data.num_classes, seed)
    net.load_state_dict(state)
    return ImageClassifier(net, data.image_shape, data.num_classes, hidden, meta)


def _say(message: str) -> None:
    print(f"scratchgan: {message}", file=sys.stderr, flush=True)


def get_classifier(data, hidden=DEFAULT_HIDDEN, seed: int = 0, use_cache: bool = True) -> ImageClassifier:
    """The classifier of an image dataset: loaded from the cache, else trained (and cached).

    A missing cache file is trained silently apart from one progress line; an
    unreadable or mismatched one prints a warning line on stderr and is
    replaced. A cache folder that cannot be written only costs the caching.
    """
    _check_image_data(data)
    hidden = tuple(int(h) for h in hidden)
    path = cache_path(data, hidden, seed)
    if use_cache and path.exists():
        try:
            return _load(path, data, hidden, seed)
        except (CheckpointError, ValueError, KeyError, TypeError, OSError) as exc:
            _say(f"warning: classifier cache {path} is unusable ({str(exc).splitlines()[0]}); retraining")
    _say(f"training the {data.name} classifier for the image metrics (once; cached in {path.parent})")
    clf = train_classifier(data, hidden, seed)
    _say(f"{data.name} classifier: test accuracy {clf.test_accuracy:.4f} after {clf.meta['steps']} steps")
    if use_cache:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            save_checkpoint(path, {"meta": clf.meta, "state": dict(clf.net.state_dict())})
        except (OSError, TypeError, ValueError) as exc:
            _say(f"warning: could not cache the classifier in {path} ({exc}); it will be retrained next time")
    return clf
