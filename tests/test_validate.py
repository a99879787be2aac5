"""scratchgan.backend.validate: the argument validators, and the one ``rng`` policy every module follows.

The policy: a numpy.random.Generator is used as it is, an int seed gives
np.random.default_rng(seed), None is the global generator that
sg.manual_seed reseeds (PyTorch's habit), anything else is a TypeError.
"""

from __future__ import annotations

import numpy as np
import pytest

import scratchgan as sg
from scratchgan.gan import losses
from scratchgan import nn
from scratchgan.backend import validate
from scratchgan.autograd import random as sg_random
from scratchgan.app.data import load_dataset, ring8

# --------------------------------------------------------------------------- as_generator


def test_generator_is_used_as_it_is():
    g = np.random.default_rng(3)
    assert validate.as_generator(g, "f") is g


def test_int_seed_gives_a_fresh_seeded_generator():
    a, b = validate.as_generator(7, "f"), validate.as_generator(np.int64(7), "f")
    assert isinstance(a, np.random.Generator) and a is not b
    assert a.random() == b.random() == np.random.default_rng(7).random()


def test_none_is_the_global_generator_looked_up_at_call_time():
    first = sg.manual_seed(5)
    assert validate.as_generator(None, "f") is first is sg_random.default_generator()
    second = sg.manual_seed(5)  # manual_seed replaces the object: as_generator must not keep the old one
    assert second is not first and validate.as_generator(None, "f") is second


@pytest.mark.parametrize("bad", [True, False, 1.5, "0", [0, 1], np.random.RandomState(0), np.random.SeedSequence(0),
                                 np.array([1, 2])])
def test_other_rng_types_are_type_errors_naming_the_argument(bad):
    with pytest.raises(TypeError, match=r"^f: rng must be a numpy.random.Generator, an int seed or None"):
        validate.as_generator(bad, "f")
    with pytest.raises(TypeError, match=r"^g: generator must be"):
        validate.as_generator(bad, "g", name="generator")


def test_negative_seed_is_a_value_error():
    with pytest.raises(ValueError, match="f: rng seed must be a non-negative int"):
        validate.as_generator(-1, "f")


# --------------------------------------------------------------------------- the policy where it is used


def _linear_weights():
    layer = nn.Linear(3, 2)
    return layer.weight.numpy().copy(), layer.bias.numpy().copy()


def test_manual_seed_makes_layers_reproducible():
    sg.manual_seed(0)
    a = _linear_weights()
    sg.manual_seed(0)
    b = _linear_weights()
    sg.manual_seed(1)
    c = _linear_weights()
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    sg.manual_seed(0)
    m1 = nn.mlp([3, 4, 2])
    sg.manual_seed(0)
    m2 = nn.mlp([3, 4, 2])
    for p, q in zip(m1.parameters(), m2.parameters()):
        np.testing.assert_array_equal(p.numpy(), q.numpy())


def test_unseeded_layers_differ_from_each_other():
    sg.manual_seed(0)
    a, b = _linear_weights(), _linear_weights()  # the global stream advances
    assert not np.array_equal(a[0], b[0])


def test_int_seed_is_reproducible_and_ignores_the_global_generator():
    sg.manual_seed(0)
    a = nn.Linear(3, 2, rng=0).weight.numpy()
    sg.manual_seed(99)
    b = nn.Linear(3, 2, rng=0).weight.numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, nn.Linear(3, 2, rng=1).weight.numpy())
    np.testing.assert_array_equal(a, nn.Linear(3, 2, rng=np.random.default_rng(0)).weight.numpy())


def test_initializers_follow_the_policy():
    w = sg.zeros(4, 3, dtype="float64")
    sg.manual_seed(2)
    nn.normal_(w)  # rng=None: the global generator
    first = w.numpy().copy()
    sg.manual_seed(2)
    nn.normal_(w, rng=None)
    np.testing.assert_array_equal(w.numpy(), first)
    nn.xavier_uniform_(w, rng=4)
    second = w.numpy().copy()
    nn.xavier_uniform_(w, rng=4)
    np.testing.assert_array_equal(w.numpy(), second)
    with pytest.raises(TypeError, match="kaiming_normal_: rng must be"):
        nn.kaiming_normal_(w, rng=np.random.RandomState(0))


def test_dropout_with_rng_none_follows_manual_seed_at_each_call():
    drop = nn.Dropout(0.5)  # built before the seed: it must still draw from the reseeded global generator
    x = sg.ones(64)
    sg.manual_seed(3)
    a = drop(x).numpy()
    sg.manual_seed(3)
    b = drop(x).numpy()
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(nn.Dropout(0.5, rng=8)(x).numpy(), nn.Dropout(0.5, rng=8)(x).numpy())


def test_data_sampling_follows_the_policy():
    mix = ring8()
    np.testing.assert_array_equal(mix.sample(10, 4)[0], mix.sample(10, np.random.default_rng(4))[0])
    sg.manual_seed(1)
    a = mix.sample(10)[0]
    sg.manual_seed(1)
    np.testing.assert_array_equal(mix.sample(10, None)[0], a)
    ds = load_dataset("ring8")
    np.testing.assert_array_equal(ds.sample_batch(6, 5)[0], ds.sample_batch(np.random.default_rng(6), 5)[0])
    with pytest.raises(TypeError, match="Dataset.sample_batch: rng must be"):
        ds.sample_batch(np.random.RandomState(0), 5)


def test_gradient_penalty_follows_the_policy():
    critic = nn.Linear(3, 1, rng=0, dtype="float64")
    real = sg.tensor(np.random.default_rng(0).standard_normal((5, 3)))
    fake = sg.tensor(np.random.default_rng(1).standard_normal((5, 3)))
    a = losses.gradient_penalty(critic, real, fake, rng=3).item()
    assert a == losses.gradient_penalty(critic, real, fake, rng=np.random.default_rng(3)).item()
    sg.manual_seed(2)
    b = losses.gradient_penalty(critic, real, fake).item()
    sg.manual_seed(2)
    assert losses.gradient_penalty(critic, real, fake, rng=None).item() == b
    with pytest.raises(TypeError, match="gradient_penalty: rng must be"):
        losses.gradient_penalty(critic, real, fake, rng=[1, 2])


def test_random_generator_argument_follows_the_policy():
    np.testing.assert_array_equal(sg.randn(4, generator=5).numpy(), sg.randn(4, generator=np.random.default_rng(5)).numpy())
    np.testing.assert_array_equal(sg.randint(0, 9, 4, generator=5).numpy(),
                                  sg.randint(0, 9, (4,), generator=np.random.default_rng(5)).numpy())
    with pytest.raises(TypeError, match="randint: generator must be"):
        sg.randint(0, 9, 4, generator="x")
    with pytest.raises(TypeError, match="rand: generator must be"):
        sg.rand(2, generator=1.0)


# --------------------------------------------------------------------------- the other validators


def test_positive_int():
    assert validate.positive_int(np.int32(3), "n", "f") == 3 and type(validate.positive_int(3, "n")) is int
    for bad in (0, -2, 1.0, True, "3", None):
        with pytest.raises(ValueError, match="f: n must be a positive int"):
            validate.positive_int(bad, "n", "f")


def test_count():
    assert validate.count(0, "n", "f") == 0 and validate.count(np.array(4), "n", "f") == 4
    with pytest.raises(ValueError, match="f: n must be a non-negative int, got -1"):
        validate.count(-1, "n", "f")
    with pytest.raises(ValueError, match="f: batch must be an int >= 1, got 0"):
        validate.count(0, "batch", "f", minimum=1)
    for bad in (True, 2.0, np.array([1]), np.array(1.0)):
        with pytest.raises(ValueError):
            validate.count(bad, "n", "f")


def test_number():
    assert validate.number(np.float32(0.5), "lr", "f") == 0.5 and validate.number(np.array(2), "x", "f") == 2.0
    assert validate.number(-3, "x", "f", low=None) == -3.0
    with pytest.raises(ValueError, match=r"f: invalid beta 1.0; it must be >= 0.0 and < 1.0"):
        validate.number(1.0, "beta", "f", 0.0, 1.0, high_open=True)
    with pytest.raises(ValueError, match="it must be > 0"):
        validate.number(0, "eps", "f", 0, low_open=True)
    for bad in (float("nan"), float("inf"), -1e-9):
        with pytest.raises(ValueError, match="f: invalid lr"):
            validate.number(bad, "lr", "f")
    for bad in ("0.1", True, None, [0.1], np.ones(2)):
        with pytest.raises(TypeError, match="f: lr must be a real number"):
            validate.number(bad, "lr", "f")


def test_boolean():
    assert validate.boolean(np.bool_(True), "flag", "f") is True
    for bad in (0, 1, "True", None):
        with pytest.raises(TypeError, match="f: flag must be a bool"):
            validate.boolean(bad, "flag", "f")


def test_float_dtype():
    assert validate.float_dtype("float64") == np.float64 and validate.float_dtype(np.float32) == np.float32
    assert validate.float_dtype(None) == np.float32  # the library's default dtype, as dtype=None in PyTorch
    for bad in ("float16", "int32", np.int64, "nonsense", 3.5):
        with pytest.raises(TypeError, match="^Linear: "):
            validate.float_dtype(bad, "Linear")
    with pytest.raises(TypeError, match="Linear: parameters must be float32 or float64"):
        nn.Linear(2, 2, dtype="float16")
