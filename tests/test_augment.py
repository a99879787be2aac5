"""DiffAugment (scratchgan/gan/augment.py) against a direct loop; its ranges, draws, gradient, and the device.

The op table (op_specs.py, ``diff_augment``) runs the generic checks on small images: first- and second-order
gradients against finite differences, the forward against augment_reference.diff_augment_loop, float32 against
float64. Here: images of MNIST's size, the ranges the ratios give, where the draws come from, the gradient as
the transposed map, and the trainer's use of it on the GPU (the CuPy stand-in in CI).
"""

from __future__ import annotations

import numpy as np
import pytest

import scratchgan as sg
from scratchgan import ops
from scratchgan.backend.device_rng import DeviceGenerator
from scratchgan.gan.augment import Augmentation, diff_augment, draw_parameters

import augment_reference as ref


def images(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize("policy", [("translation", "cutout"), ("translation",), ("cutout",), ("cutout", "translation")])
@pytest.mark.parametrize("shape", [(16, 1, 28, 28), (5, 2, 7, 12), (3, 1, 1, 1)])
def test_matches_the_direct_loop(backend, policy, shape):
    """T(x) = the loop's value for every image and pixel: the shifted value, or 0 outside, or 0 in the square."""
    x = images(shape)
    got = diff_augment(sg.Tensor(x, dtype="float64"), policy, rng=np.random.default_rng(3)).numpy()
    n, _, h, w = shape
    want = ref.augment_loop(x, ref.draws(np.random.default_rng(3), n, h, w, policy))
    np.testing.assert_array_equal(got, want)


def _shifts(h, w, n=3000, seed=0):
    """The shift of each image, read off the output: pixel (i, j) shows the value of input pixel (i + s, j + t)."""
    x = np.broadcast_to(np.arange(1, h * w + 1, dtype=np.float64).reshape(1, 1, h, w), (n, 1, h, w))
    y = diff_augment(sg.Tensor(x), "translation", rng=seed).numpy()
    s, t = [], []
    for k in range(n):
        i, j = np.argwhere(y[k, 0] != 0)[0]  # the first pixel still inside
        src = int(y[k, 0, i, j]) - 1
        s.append(src // w - i)
        t.append(src % w - j)
    return np.array(s), np.array(t)


@pytest.mark.parametrize("h, w, rho_h, rho_w", [(28, 28, 4, 4), (8, 12, 1, 2), (3, 3, 0, 0)])
def test_shifts_cover_the_ratio_range_and_no_more(h, w, rho_h, rho_w):
    """Shifts in [-round(H/8), round(H/8)] (rows) and alike for columns, every value drawn."""
    s, t = _shifts(h, w)
    assert set(s) == set(range(-rho_h, rho_h + 1)) and set(t) == set(range(-rho_w, rho_w + 1))


@pytest.mark.parametrize("h, side", [(28, 14), (8, 4), (7, 4), (5, 3)])
def test_the_cut_square_has_half_the_side_clipped_at_the_border(h, side):
    """On images of ones: the zeros of each image form one square of side round(H/2), clipped; the centre
    ranges over [0, H] (even side) or [0, H) (odd), so every clipped size down to half the square occurs."""
    n = 4000
    y = diff_augment(sg.Tensor(np.ones((n, 1, h, h))), "cutout", rng=1).numpy()[:, 0]
    full = 0
    heights, widths = set(), set()
    for k in range(n):
        zeros = np.argwhere(y[k] == 0)
        rows, cols = np.unique(zeros[:, 0]), np.unique(zeros[:, 1])
        assert len(zeros) == len(rows) * len(cols)  # a rectangle...
        assert np.ptp(rows) == len(rows) - 1 and np.ptp(cols) == len(cols) - 1  # ...of adjacent rows and columns
        assert len(rows) <= side and len(cols) <= side
        assert len(rows) == side or rows[0] == 0 or rows[-1] == h - 1  # shorter only at a border
        heights.add(len(rows))
        widths.add(len(cols))
        full += len(rows) == side and len(cols) == side
    smallest = side - side // 2  # the centre on the border: the half of the square inside, rounded up
    assert heights == widths == set(range(smallest, side + 1)) and full > 0


def test_centres_and_shifts_drawn_as_documented():
    """The draws: for 28x28, shifts in [-4, 4], centres in [0, 28] (side 14 is even); for 5x5 (side 3, odd) in [0, 5)."""
    rng = np.random.default_rng(0)
    (name1, s, t), (name2, u, v) = draw_parameters(rng, 5000, 28, 28)
    assert (name1, name2) == ("translation", "cutout")
    assert (s.min(), s.max(), t.min(), t.max()) == (-4, 4, -4, 4)
    assert (u.min(), u.max(), v.min(), v.max()) == (0, 28, 0, 28)
    (_, u, v), = draw_parameters(rng, 5000, 5, 5, "cutout")
    assert (u.min(), u.max(), v.min(), v.max()) == (0, 4, 0, 4)


def test_the_same_seed_gives_the_same_t_and_a_generator_moves_on():
    x = sg.Tensor(images((8, 1, 12, 12)))
    a, b = diff_augment(x, rng=5).numpy(), diff_augment(x, rng=5).numpy()
    assert np.array_equal(a, b)
    rng = np.random.default_rng(5)
    first, second = diff_augment(x, rng=rng).numpy(), diff_augment(x, rng=rng).numpy()
    assert np.array_equal(first, a) and not np.array_equal(first, second)
    sg.manual_seed(2)
    c = diff_augment(x).numpy()  # rng=None: the global generator, which manual_seed reseeds
    sg.manual_seed(2)
    assert np.array_equal(c, diff_augment(x).numpy())


def test_each_image_gets_its_own_draws():
    """64 copies of one image come out as many different images (9 x 9 shifts x 29 x 29 centres)."""
    x = np.broadcast_to(images((1, 1, 28, 28)), (64, 1, 28, 28))
    y = diff_augment(sg.Tensor(x), rng=0).numpy().reshape(64, -1)
    assert len(np.unique(y, axis=0)) >= 60


def test_the_gradient_is_the_transposed_map(backend):
    """d<u, T(x)>/dx = M^T u per image, M the loop's matrix of T; T(x) = M x too."""
    n, h, w = 6, 6, 7
    x = sg.Tensor(images((n, 1, h, w)), dtype="float64", requires_grad=True)
    drawn = draw_parameters(np.random.default_rng(9), n, h, w)
    T = Augmentation(drawn, x.shape)
    u = images((n, 1, h, w), seed=1)
    (g,) = sg.grad((T(x) * sg.Tensor(u, dtype="float64")).sum(), [x])
    for k in range(n):
        M = ref.matrix(drawn, k, h, w)
        np.testing.assert_allclose(g.numpy()[k, 0].ravel(), M.T @ u[k, 0].ravel(), rtol=0, atol=1e-15)
        np.testing.assert_allclose(T(x).numpy()[k, 0].ravel(), M @ x.numpy()[k, 0].ravel(), rtol=0, atol=1e-15)


def test_a_device_generator_draws_what_the_reference_draws_from_its_copy():
    """rng a DeviceGenerator (the trainer's GPU stream, here on NumPy): the same T as the loop with its numbers."""
    gen = DeviceGenerator([4, 1], xp=np)
    twin = DeviceGenerator([4, 1], xp=np)
    x = images((10, 1, 9, 9))
    got = diff_augment(sg.Tensor(x, dtype="float64"), rng=gen).numpy()
    np.testing.assert_array_equal(got, ref.augment_loop(x, ref.draws(twin, 10, 9, 9)))


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="unknown policy"):
        diff_augment(sg.Tensor(np.zeros((1, 1, 4, 4))), "color")
    with pytest.raises(ValueError, match=r"expected images \(N, C, H, W\)"):
        diff_augment(sg.Tensor(np.zeros((4, 16))))
    T = Augmentation(draw_parameters(np.random.default_rng(0), 2, 4, 4), (2, 1, 4, 4))
    with pytest.raises(ValueError, match="drawn for images of shape"):
        T(sg.Tensor(np.zeros((3, 1, 4, 4))))
    with pytest.raises(TypeError):
        diff_augment(sg.Tensor(np.zeros((1, 1, 4, 4))), rng=1.5)


# --------------------------------------------------------------------------- on the device (a GPU or the stand-in)


def test_the_device_result_equals_the_host_result(cupy):
    """An int seed draws on the host and moves the index and the mask to the device; a DeviceGenerator draws there
    and no value crosses: the forward and the gradient equal NumPy's."""
    x = images((8, 1, 12, 12))
    u = images((8, 1, 12, 12), seed=1)

    def run(rng):
        t = sg.Tensor(x, dtype="float64", requires_grad=True)
        y = diff_augment(t, rng=rng)
        (g,) = sg.grad((y * sg.Tensor(u, dtype="float64")).sum(), [t])
        return y.numpy(), g.numpy()

    y, g = run(3)
    sg.set_backend("numpy")
    y_host, g_host = run(3)
    np.testing.assert_array_equal(y, y_host)
    np.testing.assert_array_equal(g, g_host)
    sg.set_backend("cupy")
    gen = DeviceGenerator([4, 1])
    y_dev, _ = run(gen)
    np.testing.assert_array_equal(y_dev, ref.augment_loop(x, ref.draws(DeviceGenerator([4, 1], xp=np), 8, 12, 12)))


def test_a_device_draw_and_its_gradient_copy_nothing(cupy):
    standin = getattr(cupy, "standin", None)
    if standin is None:
        pytest.skip("counts transfers with the CuPy stand-in")
    gen = DeviceGenerator([4, 1])
    x = sg.Tensor(cupy.asarray(images((8, 1, 12, 12))), requires_grad=True)
    u = sg.Tensor(cupy.asarray(images((8, 1, 12, 12), seed=1)))
    standin.reset()
    (g,) = sg.grad(ops.sum(diff_augment(x, rng=gen) * u), [x])
    counts = standin.counts()
    assert (counts["device_to_host"], counts["host_to_device"]) == (0, 0), counts


def test_a_diffaugment_step_on_the_device_copies_nothing_and_resumes_exactly(tmp_path, cupy):
    """The trainer draws T on the device stream: a step that does not log copies nothing; k steps + resume equal
    the straight run bit for bit (with R1 through T and the relativistic loss's augmented real batch)."""
    from scratchgan.app.checkpoint import load_checkpoint
    from scratchgan.app.train import Trainer

    from test_gpu_trainer import config, transfers
    from test_train import assert_bitwise_equal

    overrides = dict(data="mnist", arch="dcgan", loss="rasgan", r1=1.0, diffaugment=True, steps=4, checkpoint_every=2)
    trainer = Trainer(config(tmp_path, **overrides), tmp_path / "run")
    trainer.train_step(with_norms=True)
    _, counts = transfers(cupy, lambda: trainer.train_step(with_norms=False))
    if counts is not None:
        assert counts == {"device_to_host": 0, "host_to_device": 0}, counts
    straight = Trainer(config(tmp_path, **overrides), tmp_path / "straight")
    straight.run(progress=False)

    def stop_at_2(record):
        if record["step"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Trainer(config(tmp_path, **overrides), tmp_path / "split").run(progress=False, on_log=stop_at_2)
    Trainer.resume(tmp_path / "split").run(progress=False)
    a = load_checkpoint(tmp_path / "straight" / "checkpoint.npz")
    b = load_checkpoint(tmp_path / "split" / "checkpoint.npz")
    assert a["device_rng"] == b["device_rng"]
    assert_bitwise_equal(a, b)
