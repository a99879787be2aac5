"""Tests for scratchgan.app.plots: valid PNGs of the expected size, clear errors."""

import struct
import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from scratchgan.app.plots import save_image_grid, save_loss_curves, save_toy_scatter

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path) -> tuple[int, int]:
    """(width, height) from the IHDR chunk, after checking the signature."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, "not a PNG file"
    assert data[12:16] == b"IHDR"
    assert data[-8:-4] == b"IEND"
    return struct.unpack(">II", data[16:24])


def read_rgb(path) -> np.ndarray:
    from matplotlib.image import imread

    return imread(path)[..., :3]


def ring(k=8):
    angles = 2 * np.pi * np.arange(k) / k
    return np.stack([np.cos(angles), np.sin(angles)], axis=1)


# ---------------------------------------------------------------------------
# Image grid
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("n, nrow, grid_rows, grid_cols", [(16, None, 4, 4), (10, None, 3, 4),
                                                            (12, 6, 2, 6), (3, 10, 1, 3)])
def test_image_grid_size(tmp_path, n, nrow, grid_rows, grid_cols):
    images = np.random.default_rng(0).uniform(-1, 1, (n, 28, 28))
    path = tmp_path / "grid.png"
    save_image_grid(path, images, nrow=nrow)
    # 28 px cells, 2 px gaps and border, upscaled 2x.
    assert png_size(path) == (2 * (grid_cols * 30 + 2), 2 * (grid_rows * 30 + 2))


def test_image_grid_pixel_values(tmp_path):
    images = np.stack([np.full((32, 32), -1.0), np.full((32, 32), 1.0),
                       np.full((32, 32), 0.0), np.full((32, 32), 5.0)])
    images[2, 10, 10] = np.nan
    path = tmp_path / "grid.png"
    save_image_grid(path, images, nrow=4)
    rgb = read_rgb(path)
    assert rgb.shape == (2 * 36, 2 * (4 * 34 + 2), 3)  # 32 px images, scale 2

    def cell(i):  # centre pixel of image i
        return rgb[2 * (2 + 16), 2 * (2 + i * 34 + 16)]

    np.testing.assert_allclose(cell(0), 0.0, atol=0.01)  # -1 is black
    np.testing.assert_allclose(cell(1), 1.0, atol=0.01)  # +1 is white
    np.testing.assert_allclose(cell(2), 0.5, atol=0.01)  # 0 is mid gray
    np.testing.assert_allclose(cell(3), 1.0, atol=0.01)  # clipped
    nan_px = rgb[2 * (2 + 10), 2 * (2 + 2 * 34 + 10)]
    assert nan_px[0] > 0.9 and nan_px[1] < 0.1 and nan_px[2] < 0.1  # NaN is red


def test_image_grid_row_labels_and_channel_axis(tmp_path):
    images = np.zeros((30, 1, 28, 28), dtype=np.float32)
    path = tmp_path / "cond.png"
    save_image_grid(path, images, row_labels=[str(d) for d in range(10)])  # 3 per row
    width, height = png_size(path)
    assert height == 2 * (10 * 30 + 2)
    assert width > 2 * (3 * 30 + 2)  # label margin on the left


@pytest.mark.parametrize("images", [
    np.zeros((28, 28)), np.zeros((4, 3, 28, 28)), np.zeros((0, 28, 28)),
    np.zeros((2, 0, 5)), np.zeros((2, 28, 28, 1, 1)), np.array([["a"]] * 2),
])
def test_image_grid_bad_shapes(tmp_path, images):
    with pytest.raises(ValueError, match="images"):
        save_image_grid(tmp_path / "x.png", images)
    assert not (tmp_path / "x.png").exists()


def test_image_grid_bad_arguments(tmp_path):
    images = np.zeros((6, 8, 8))
    with pytest.raises(ValueError, match="nrow"):
        save_image_grid(tmp_path / "x.png", images, nrow=0)
    with pytest.raises(ValueError, match="row_labels"):
        save_image_grid(tmp_path / "x.png", images, nrow=3, row_labels=["a", "b", "c"])


# ---------------------------------------------------------------------------
# Toy scatter
# ---------------------------------------------------------------------------


def test_toy_scatter(tmp_path):
    rng = np.random.default_rng(0)
    centres = ring()
    real = centres[rng.integers(0, 8, 500)] + 0.01 * rng.normal(size=(500, 2))
    samples = centres[rng.integers(0, 3, 500)] + 0.05 * rng.normal(size=(500, 2))
    samples[:5] = 1e6  # diverged points must not break the view
    samples[5] = np.nan
    path = tmp_path / "sub" / "scatter.png"  # parent folder is created
    save_toy_scatter(path, samples, real=real, centres=centres, title="ring8")
    assert png_size(path) == (600, 600)
    assert path.stat().st_size > 5_000


def test_toy_scatter_samples_only(tmp_path):
    path = tmp_path / "s.png"
    save_toy_scatter(path, np.random.default_rng(0).normal(size=(100, 2)))
    assert png_size(path) == (600, 600)


@pytest.mark.parametrize("kwargs, name", [
    ({"samples": np.zeros((10, 3))}, "samples"),
    ({"samples": np.zeros(10)}, "samples"),
    ({"samples": np.zeros((0, 2))}, "samples"),
    ({"samples": np.zeros((10, 2)), "real": np.zeros((10, 2, 1))}, "real"),
    ({"samples": np.zeros((10, 2)), "centres": np.zeros(2)}, "centres"),
])
def test_toy_scatter_bad_shapes(tmp_path, kwargs, name):
    with pytest.raises(ValueError, match=name):
        save_toy_scatter(tmp_path / "x.png", **kwargs)


# ---------------------------------------------------------------------------
# Loss curves
# ---------------------------------------------------------------------------


def _records(n, keys):
    rng = np.random.default_rng(0)
    return [{"step": 10 * i, **{k: float(np.exp(rng.normal())) for k in keys}} for i in range(n)]


@pytest.mark.parametrize("keys, panels", [
    (["d_loss", "g_loss"], 1),
    (["d_loss", "g_loss", "d_real", "d_fake"], 2),
    (["d_loss", "g_loss", "d_real", "d_fake", "grad_norm_d", "grad_norm_g"], 3),
    (["g_loss", "grad_norm_g"], 2),
])
def test_loss_curves_panels(tmp_path, keys, panels):
    path = tmp_path / "loss.png"
    save_loss_curves(path, _records(300, keys))  # > 200 points: smoothed too
    assert png_size(path) == (800, round(100 * (0.6 + 2.6 * panels)))


def test_loss_curves_tolerate_gaps_and_non_finite(tmp_path):
    records = _records(20, ["d_loss", "g_loss", "grad_norm_d"])
    records[3]["d_loss"] = float("nan")
    records[4]["grad_norm_d"] = 0.0  # not drawable on a log axis
    records[5] = {"eval": True, "modes_captured": 8}  # no step: skipped
    del records[6]["g_loss"]
    records.append({"step": 500, "d_loss": None})
    path = tmp_path / "loss.png"
    save_loss_curves(path, records)
    assert png_size(path)[0] == 800


def test_loss_curves_errors(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        save_loss_curves(tmp_path / "x.png", [])
    with pytest.raises(ValueError, match="plottable"):
        save_loss_curves(tmp_path / "x.png", [{"step": 1, "lr": 0.1}, {"d_loss": 1.0}])
    with pytest.raises(TypeError):
        save_loss_curves(tmp_path / "x.png", {"step": 1, "d_loss": 1.0})
    with pytest.raises(TypeError):
        save_loss_curves(tmp_path / "x.png", [{"step": 1, "d_loss": 1.0}, 3])


def test_no_pyplot_state(tmp_path):
    save_image_grid(tmp_path / "g.png", np.zeros((4, 8, 8)))
    save_toy_scatter(tmp_path / "s.png", np.zeros((4, 2)))
    save_loss_curves(tmp_path / "l.png", _records(5, ["d_loss"]))
    # Nothing here imports pyplot (it would only be loaded by someone else).
    if "matplotlib.pyplot" in sys.modules:
        import matplotlib.pyplot as plt

        assert plt.get_fignums() == []
