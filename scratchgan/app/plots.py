"""PNG figures for training runs: sample grids, toy scatters, loss curves.

matplotlib is imported lazily inside the functions and only through
``matplotlib.figure.Figure`` with the Agg canvas, never ``pyplot``: nothing
touches global state, no window opens, and the functions are safe to call from
any thread or a headless machine. All inputs are NumPy arrays (convert CuPy
arrays with the backend's ``asnumpy`` first).
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

__all__ = ["save_image_grid", "save_toy_scatter", "save_loss_curves"]

_DPI = 100
_PAD = 2  # pixels of white between grid cells


def _new_figure(width_in: float, height_in: float):
    """A pyplot-free figure with an Agg canvas attached."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=_DPI)
    FigureCanvasAgg(fig)
    return fig


def _save_png(fig, path: str | os.PathLike) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=_DPI)


# ---------------------------------------------------------------------------
# Image grid
# ---------------------------------------------------------------------------


def _as_image_batch(images) -> np.ndarray:
    """Validate and return images as float64 (N, H, W); (N, 1, H, W) is squeezed."""
    arr = np.asarray(images)
    if arr.ndim == 4 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 3 or 0 in arr.shape:
        raise ValueError(
            f"images must have shape (N, H, W) or (N, 1, H, W) with N, H, W >= 1, "
            f"got {arr.shape}"
        )
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"images must be real numbers, got dtype {arr.dtype}")
    return arr.astype(np.float64)


def _tile(images: np.ndarray, ncol: int) -> np.ndarray:
    """Tile (N, H, W) images in [0, 1] into one array, row-major, ``ncol`` per row.

    Cells are separated by ``_PAD`` pixels of 1.0 (white); missing cells in
    the last row are white too.
    """
    n, h, w = images.shape
    nrows = math.ceil(n / ncol)
    grid = np.ones((nrows * (h + _PAD) + _PAD, ncol * (w + _PAD) + _PAD))
    for i, img in enumerate(images):
        r, c = divmod(i, ncol)
        top, left = _PAD + r * (h + _PAD), _PAD + c * (w + _PAD)
        grid[top:top + h, left:left + w] = img
    return grid


def save_image_grid(path, images, nrow=None, row_labels=None) -> None:
    """Save images in [-1, 1] as a grayscale grid PNG.

    Pixel values map linearly to gray levels, ``g = (x + 1) / 2``, clipped to
    [0, 1] (-1 is black, 1 is white). NaN pixels are drawn red so that a
    diverged generator is visible rather than silently black.

    Parameters
    ----------
    path : str or os.PathLike
        Output PNG; missing parent folders are created.
    images : array_like, shape (N, H, W) or (N, 1, H, W)
        Images, real-valued, nominally in [-1, 1].
    nrow : int, optional
        Number of images per grid row (the ``torchvision.utils.make_grid``
        convention). Defaults to ``ceil(N / len(row_labels))`` when
        ``row_labels`` is given, else ``ceil(sqrt(N))``.
    row_labels : sequence of str, optional
        One label per grid row, drawn left of the row (e.g. class names for
        a conditional GAN, with the samples of class ``i`` in row ``i``).
        Its length must equal the number of rows, ``ceil(N / nrow)``.

    Raises
    ------
    ValueError
        Wrong image shape or dtype, ``nrow < 1``, or a wrong number of labels.
    """
    imgs = _as_image_batch(images)
    n, h, w = imgs.shape
    if nrow is None:
        nrow = math.ceil(n / len(row_labels)) if row_labels else math.ceil(math.sqrt(n))
    if isinstance(nrow, bool) or not isinstance(nrow, numbers.Integral) or nrow < 1:
        raise ValueError(f"nrow must be a positive int, got {nrow!r}")
    nrow = min(int(nrow), n)
    n_rows = math.ceil(n / nrow)
    if row_labels is not None and len(row_labels) != n_rows:
        raise ValueError(
            f"row_labels has {len(row_labels)} labels but the grid has {n_rows} rows "
            f"({n} images, {nrow} per row)"
        )

    grid = _tile(np.clip((imgs + 1.0) / 2.0, 0.0, 1.0), nrow)  # NaN survives clip
    _render_grid(path, grid, h, row_labels)


def _render_grid(path, grid: np.ndarray, cell_h: int, row_labels) -> None:
    import matplotlib

    scale = max(1, 64 // cell_h)  # small images (MNIST 28 px) are upscaled 2x
    height_in = grid.shape[0] * scale / _DPI
    width_img_in = grid.shape[1] * scale / _DPI
    label_in = 0.0
    if row_labels:
        label_in = 0.15 + 0.08 * max(len(str(lab)) for lab in row_labels)
    fig = _new_figure(width_img_in + label_in, height_in)
    left = label_in / (width_img_in + label_in)
    ax = fig.add_axes((left, 0.0, 1.0 - left, 1.0))
    cmap = matplotlib.colormaps["gray"].with_extremes(bad="red")
    ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=0.0, vmax=1.0,
              interpolation="nearest", aspect="equal")
    ax.set_xticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    if row_labels:
        centres = [_PAD + r * (cell_h + _PAD) + (cell_h - 1) / 2 for r in range(len(row_labels))]
        ax.set_yticks(centres, [str(lab) for lab in row_labels])
        ax.tick_params(axis="y", length=0, labelsize=9)
    else:
        ax.set_yticks([])
    _save_png(fig, path)


# ---------------------------------------------------------------------------
# Toy 2-D scatter
# ---------------------------------------------------------------------------


def _as_points(name: str, points) -> np.ndarray:
    arr = np.asarray(points)
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] == 0:
        raise ValueError(f"{name} must have shape (N, 2) with N >= 1, got {arr.shape}")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be real numbers, got dtype {arr.dtype}")
    return arr.astype(np.float64)


def _view_box(reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Square-ish box around the reference points with a 25% margin."""
    lo, hi = reference.min(axis=0), reference.max(axis=0)
    margin = 0.25 * max(float((hi - lo).max()), 1e-3)
    return lo - margin, hi + margin


def save_toy_scatter(path, samples, real=None, centres=None, title=None) -> None:
    """Scatter generated 2-D points over real data, with mode centres marked.

    When ``real`` or ``centres`` is given, the view is fixed to their bounding
    box plus a 25% margin, so a generator that diverges does not zoom the
    plot out to nothing; generated points outside the view (and non-finite
    ones) are counted in the legend.

    Parameters
    ----------
    path : str or os.PathLike
        Output PNG; missing parent folders are created.
    samples : array_like, shape (N, 2)
        Generated points.
    real : array_like, shape (M, 2), optional
        Points from the data distribution, drawn light gray underneath.
    centres : array_like, shape (K, 2), optional
        Mode centres, drawn as red crosses on top.
    title : str, optional
        Figure title.

    Raises
    ------
    ValueError
        An input is not of shape (n, 2) with n >= 1, or not real-valued.
    """
    gen = _as_points("samples", samples)
    real = None if real is None else _as_points("real", real)
    centres = None if centres is None else _as_points("centres", centres)

    fig = _new_figure(6.0, 6.0)
    ax = fig.add_subplot(1, 1, 1)
    if real is not None:
        ax.scatter(real[:, 0], real[:, 1], s=4, c="0.55", alpha=0.5, linewidths=0,
                   label=f"real ({len(real)})", rasterized=True)
    finite = np.isfinite(gen).all(axis=1)
    label = f"generated ({len(gen)})"
    refs = [a for a in (real, centres) if a is not None]
    if refs:
        lo, hi = _view_box(np.concatenate(refs))
        inside = finite & (gen >= lo).all(axis=1) & (gen <= hi).all(axis=1)
        if (~inside).any():
            label += f", {int((~inside).sum())} outside view"
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])
    elif (~finite).any():
        label += f", {int((~finite).sum())} non-finite"
    ax.scatter(gen[finite, 0], gen[finite, 1], s=4, c="tab:blue", alpha=0.5,
               linewidths=0, label=label, rasterized=True)
    if centres is not None:
        ax.scatter(centres[:, 0], centres[:, 1], s=60, c="tab:red", marker="x",
                   linewidths=1.5, label=f"mode centres ({len(centres)})")
    ax.set_aspect("equal", adjustable="datalim" if not refs else "box")
    ax.legend(loc="upper right", fontsize=8, framealpha=0.8)
    if title:
        ax.set_title(str(title))
    fig.tight_layout()
    _save_png(fig, path)


# ---------------------------------------------------------------------------
# Loss curves
# ---------------------------------------------------------------------------

_PANELS = (
    # (title, picks a key?, log scale)
    ("Losses", lambda k: k.endswith("loss"), False),
    ("Discriminator outputs", lambda k: k in ("d_real", "d_fake"), False),
    ("Gradient norms", lambda k: k.startswith("grad_norm"), True),
)
_PREFERRED_ORDER = ("d_loss", "g_loss", "d_real", "d_fake", "grad_norm_d", "grad_norm_g")


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _series(records: Sequence[Mapping], key: str, positive: bool) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of the records that have a finite number under ``key``."""
    pairs = [(r["step"], r[key]) for r in records
             if _is_number(r.get("step")) and _is_number(r.get(key))]
    if not pairs:
        return np.empty(0), np.empty(0)
    steps, values = np.array(pairs, dtype=np.float64).T
    keep = np.isfinite(values) & ((values > 0) if positive else True)
    return steps[keep], values[keep]


def _moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over ``window`` points (shorter at the start)."""
    csum = np.concatenate([[0.0], np.cumsum(values)])
    idx = np.arange(1, len(values) + 1)
    start = np.maximum(idx - window, 0)
    return (csum[idx] - csum[start]) / (idx - start)


def _ordered_keys(records: Sequence[Mapping]) -> list[str]:
    seen = dict.fromkeys(k for r in records for k in r if isinstance(k, str))
    return [k for k in _PREFERRED_ORDER if k in seen] + \
           [k for k in seen if k not in _PREFERRED_ORDER]


def save_loss_curves(path, records) -> None:
    """Plot training curves from ``metrics.jsonl`` records.

    Up to three stacked panels sharing the step axis, each drawn only when
    some record has a finite number for one of its keys:

    * **Losses**: every key ending in ``loss`` (``d_loss``, ``g_loss``, ...);
    * **Discriminator output**: ``d_real``, ``d_fake``;
    * **Gradient norms** (log scale): keys starting with ``grad_norm``.

    Records without a numeric ``"step"`` (e.g. evaluation records) and
    non-finite values are skipped. With more than 200 points a series is
    drawn faintly with a trailing moving average (window ``n // 50``) on top.

    Parameters
    ----------
    path : str or os.PathLike
        Output PNG; missing parent folders are created.
    records : sequence of mapping
        One dict per logged step, e.g. ``{"step": 100, "d_loss": 1.2,
        "g_loss": 0.8}``.

    Raises
    ------
    TypeError
        ``records`` is not a sequence of mappings.
    ValueError
        ``records`` is empty or no record has a plottable key.
    """
    if isinstance(records, Mapping) or not isinstance(records, Sequence):
        raise TypeError(f"records must be a list of dicts, got {type(records).__name__}")
    if not records:
        raise ValueError("records is empty: nothing to plot")
    for i, rec in enumerate(records):
        if not isinstance(rec, Mapping):
            raise TypeError(f"records[{i}] must be a dict, got {type(rec).__name__}")

    keys = _ordered_keys(records)
    panels = []
    for title, picks, log in _PANELS:
        lines = [(k, *_series(records, k, positive=log)) for k in keys if picks(k)]
        lines = [line for line in lines if len(line[1])]
        if lines:
            panels.append((title, lines, log))
    if not panels:
        raise ValueError(
            "no record has a numeric 'step' together with a plottable key "
            f"(*loss, d_real, d_fake, grad_norm*); keys seen: {keys}"
        )

    fig = _new_figure(8.0, 0.6 + 2.6 * len(panels))
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (title, lines, log) in zip(axes, panels):
        for i, (key, steps, values) in enumerate(lines):
            _plot_line(ax, key, steps, values, f"C{i}")
        ax.set_title(title, fontsize=10)
        if log:
            ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    axes[-1].set_xlabel("step")
    fig.tight_layout()
    _save_png(fig, path)


def _plot_line(ax, key: str, steps: np.ndarray, values: np.ndarray, color: str) -> None:
    order = np.argsort(steps, kind="stable")
    steps, values = steps[order], values[order]
    if len(values) > 200:
        ax.plot(steps, values, color=color, alpha=0.25, linewidth=0.8)
        ax.plot(steps, _moving_average(values, len(values) // 50), color=color,
                linewidth=1.5, label=key)
    else:
        ax.plot(steps, values, color=color, linewidth=1.2, label=key,
                marker="." if len(values) < 30 else None)
