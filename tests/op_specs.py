"""Declarative op specs (in the spirit of MyGrad's op factory): each op is declared once.

A spec says how to call the op, its number of inputs, the values they take
(bounds, kinks to keep away from, or element strategies), how their shapes are
drawn, and whether its second derivative is nonzero. :func:`cases` turns a spec
into a hypothesis strategy of :class:`Case`; the generic test bodies are in
``test_ops.py`` (float64 gradients) and ``test_autograd.py`` (float32 vs float64).
Adding an op is one line, e.g. ``OpSpec("hinge", lambda x: ops.relu(1 - x), kinks=(1.0,))``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

import hypothesis.extra.numpy as hnp
import numpy as np
from hypothesis import settings
from hypothesis import strategies as st

from scratchgan import ops

KINK_MARGIN = 1e-3  # inputs stay this far from kinks: 1000x the finite-difference step

try:
    import cupy as _cupy  # a real CuPy, or in CI's GPU pass the stand-in (tests/cupy_standin)
    STANDIN = bool(getattr(_cupy, "IS_STANDIN", False))
except ImportError:
    STANDIN = False

#: Decorates the table's property tests: under the CuPy stand-in a few cases per op (each op and each of
#: its rules still runs through the GPU code; the NumPy pass draws the profile's full count), so that the
#: stand-in pass stays short. Elsewhere the profile's settings (conftest.py).
table = settings(max_examples=6) if STANDIN else (lambda test: test)


@dataclass(frozen=True)
class OpSpec:
    name: str
    fn: Callable  # fn(*tensors, **kwargs) -> Tensor
    arity: int = 1
    shapes: Any = "unary"  # "unary" | "broadcast" | "matmul" | "reduce" | a strategy of a list of shapes
    bounds: tuple = (-3.0, 3.0)  # one (lo, hi) for all inputs, or one per input
    kinks: tuple = ()  # values every input keeps KINK_MARGIN away from
    elements: tuple | None = None  # one element strategy per input (overrides bounds and kinks)
    unique: bool = False  # no repeated values within an input (no ties for max/min)
    kwargs: Callable | None = None  # shapes -> strategy of a dict of keyword arguments
    second_order: bool = False  # second derivative nonzero: gradgradcheck it
    allow_empty: bool = True  # shapes may have size-0 axes
    min_dims: int = 0
    # reference(*arrays, **kwargs) -> float64 array: the forward written independently in plain NumPy
    reference: Callable | None = None
    # the first-order (array) and recorded (create_graph) gradients agree to this rtol; 0: bit for bit
    paths_rtol: float = 0.0
    # with accelerations on and in reference mode (scratchgan.reference_mode), the forward and the first- and
    # second-order gradients agree to this rtol (relative to the largest value); 0: bit for bit
    reference_rtol: float = 0.0

    def __repr__(self) -> str:  # short pytest ids
        return self.name


@dataclass
class Case:
    arrays: list  # float64 host arrays, one per input
    kwargs: dict
    seed: int  # for the random upstream gradient

    def call(self, spec: OpSpec, *tensors):
        return spec.fn(*tensors, **self.kwargs)


def _elements(spec: OpSpec, i: int):
    if spec.elements is not None:
        return spec.elements[i]
    lo, hi = spec.bounds[i] if isinstance(spec.bounds[0], tuple) else spec.bounds
    kinks = spec.kinks
    return st.floats(lo, hi).filter(lambda v: all(abs(v - k) > KINK_MARGIN for k in kinks))


def _shapes(spec: OpSpec, max_side: int, max_dims: int):
    min_side = 0 if spec.allow_empty else 1
    # half the draws are "rich" (2+ axes of 2+ elements), where layout bugs show; the rest reach 0-d and size 0
    shape = st.one_of(hnp.array_shapes(min_dims=2, max_dims=max_dims, min_side=2, max_side=max_side),
                      hnp.array_shapes(min_dims=spec.min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side))
    if spec.shapes in ("unary", "reduce"):
        return shape.map(lambda s: [s])
    if spec.shapes == "broadcast":  # inputs broadcast to the drawn shape
        return shape.flatmap(lambda base: hnp.mutually_broadcastable_shapes(
            num_shapes=spec.arity, base_shape=base, max_dims=max_dims, min_side=min_side, max_side=max_side,
        )).map(lambda r: list(r.input_shapes))
    if spec.shapes == "matmul":
        return hnp.mutually_broadcastable_shapes(
            signature=np.matmul.signature, max_dims=2, min_side=min_side, max_side=max_side
        ).map(lambda r: list(r.input_shapes))
    return spec.shapes


def reduce_kwargs(shapes):
    """axis: None, one int (maybe negative) or a tuple of axes; keepdims: bool."""
    ndim = len(shapes[0])
    axes = st.none()
    if ndim:
        axes = st.one_of(st.none(), st.integers(-ndim, ndim - 1), hnp.valid_tuple_axes(ndim))
    return st.fixed_dictionaries({"axis": axes, "keepdims": st.booleans()})


@st.composite
def cases(draw, spec: OpSpec, max_side: int = 3, max_dims: int = 4) -> Case:
    """A hypothesis strategy of test cases for ``spec``."""
    shapes = draw(_shapes(spec, max_side, max_dims))
    arrays = [
        draw(hnp.arrays(np.float64, shape, elements=_elements(spec, min(i, spec.arity - 1)),
                        fill=st.nothing(), unique=spec.unique))
        for i, shape in enumerate(shapes)
    ]
    kwargs = draw(spec.kwargs(shapes)) if spec.kwargs else {}
    return Case(arrays, kwargs, draw(st.integers(0, 2**32 - 1)))


# --------------------------------------------------------------------------- custom shapes and arguments


@st.composite
def _concat_shapes(draw):
    base = list(draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=3)))
    axis = draw(st.integers(0, len(base) - 1))
    sizes = draw(st.lists(st.integers(0, 3), min_size=1, max_size=3))
    return [tuple(base[:axis] + [n] + base[axis + 1:]) for n in sizes]


def _concat_kwargs(shapes):
    first, ndim = shapes[0], len(shapes[0])
    fits = [ax for ax in range(ndim) if all(s[:ax] + s[ax + 1:] == first[:ax] + first[ax + 1:] for s in shapes)]
    return _kw("axis", st.sampled_from(fits).flatmap(lambda ax: st.sampled_from([ax, ax - ndim])))


def _kw(key, values):  # a strategy of {key: value}
    return st.fixed_dictionaries({key: values})


def _reshapes(s):
    return st.sampled_from([(-1,), s[::-1], (1,) + s, (int(np.prod(s)), 1), s + (1,)])


def _array_indices(shape):  # integer arrays, repeats and negative indices included
    return hnp.integer_array_indices(shape, result_shape=hnp.array_shapes(min_dims=1, max_dims=2, max_side=4))


def _conditions(shapes):
    cond_shape = st.sampled_from([(), shapes[0], np.broadcast_shapes(*shapes)])
    return cond_shape.flatmap(lambda s: hnp.arrays(bool, s, fill=st.nothing()))


_CLIP_BOUNDS = [{"lo": -0.5, "hi": 0.8}, {"lo": -0.5, "hi": None}, {"lo": None, "hi": 0.8}]
_nonzero = st.floats(0.5, 2.0).flatmap(lambda v: st.sampled_from([v, -v]))  # a denominator: |b| in [0.5, 2]
_grid_a = st.integers(-48, 48).map(lambda i: i / 16 + 1 / 32)  # a and b never tie: |a - b| >= 1/32
_grid_b = st.integers(-48, 48).map(lambda i: i / 16)
@st.composite
def _batch_norm_shapes(draw, affine=True):
    """(N, C, ...) with at least 2 values per channel, then weight and bias (C,)."""
    c = draw(st.integers(1, 3))
    rest = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    n = draw(st.integers(1 if int(np.prod(rest)) >= 2 else 2, 3))
    return [(n, c) + rest, (c,), (c,)] if affine else [(n, c) + rest]


def _batch_norm_reference(x, weight=None, bias=None, eps=1e-5):
    """A direct loop over the channels."""
    y = np.empty_like(x)
    for c in range(x.shape[1]):
        v = x[:, c]
        y[:, c] = (v - v.mean()) / np.sqrt(((v - v.mean()) ** 2).mean() + eps)
        if weight is not None:
            y[:, c] = y[:, c] * weight[c] + bias[c]
    return y


# values of x on a grid of 1/8, all distinct: each channel's variance is at least 1/256, so the
# finite differences of (x - mean) / std stay accurate; eps: PyTorch's default and a large one
_bn_x = st.integers(-24, 24).map(lambda i: i / 8)
_bn_kwargs = lambda s: _kw("eps", st.sampled_from([1e-5, 0.5]))  # noqa: E731


@st.composite
def _linear_shapes(draw):
    n, k, m = (draw(st.integers(0, 3)) for _ in range(3))
    return [(n, k), (k, m), (m,)]


_distinct = st.integers(-400, 400).map(lambda i: i / 128)  # with unique=True: no ties, gaps >= 1/128

import conv_reference as _conv  # noqa: E402 - direct-loop references and strategies of the conv ops
import softmax_reference as _softmax  # noqa: E402 - references and strategies of log_softmax, softmax, cross-entropy
import augment_reference as _augment  # noqa: E402 - DiffAugment's direct loop and strategies
from scratchgan.gan.augment import diff_augment as _diff_augment  # noqa: E402

SPECS = [
    OpSpec("add", ops.add, 2, "broadcast"),
    OpSpec("sub", ops.sub, 2, "broadcast"),
    OpSpec("mul", ops.mul, 2, "broadcast", second_order=True),
    OpSpec("div", ops.div, 2, "broadcast", elements=(st.floats(-3, 3), _nonzero), second_order=True),
    OpSpec("neg", ops.neg),
    OpSpec("pow_scalar", lambda x, p: ops.pow(x, p), bounds=(0.5, 2.0), second_order=True,
           kwargs=lambda s: _kw("p", st.sampled_from([2, 3, 0.5, -1.5, 1.7]))),
    OpSpec("pow_tensor", ops.pow, 2, "broadcast", bounds=((0.5, 2.0), (-2.0, 2.0)), second_order=True),
    OpSpec("matmul", ops.matmul, 2, "matmul", second_order=True),
    OpSpec("linear", ops.linear, 3, _linear_shapes(), second_order=True),
    # |x @ W| <= 3 and |b| >= 4: every pre-activation is at least 1 from the ReLU's kink, both signs occur
    OpSpec("linear_relu", ops.linear_relu, 3, _linear_shapes(), second_order=True,
           elements=(st.floats(-1, 1), st.floats(-1, 1), st.floats(4, 5).flatmap(lambda v: st.sampled_from([v, -v])))),
    OpSpec("exp", ops.exp, second_order=True),
    OpSpec("log", ops.log, bounds=(0.1, 3.0), second_order=True),
    OpSpec("sqrt", ops.sqrt, bounds=(0.1, 3.0), second_order=True),
    OpSpec("abs", ops.abs, kinks=(0.0,)),
    OpSpec("tanh", ops.tanh, second_order=True),
    OpSpec("sigmoid", ops.sigmoid, bounds=(-6.0, 6.0), second_order=True),
    OpSpec("relu", ops.relu, kinks=(0.0,)),
    OpSpec("leaky_relu", lambda x: ops.leaky_relu(x, 0.2), kinks=(0.0,)),
    OpSpec("softplus", ops.softplus, bounds=(-6.0, 6.0), second_order=True),
    OpSpec("log_sigmoid", ops.log_sigmoid, bounds=(-6.0, 6.0), second_order=True),
    OpSpec("mean_softplus", ops.mean_softplus, bounds=(-6.0, 6.0), second_order=True, allow_empty=False),
    OpSpec("sum", ops.sum, shapes="reduce", kwargs=reduce_kwargs),
    OpSpec("mean", ops.mean, shapes="reduce", kwargs=reduce_kwargs, allow_empty=False),
    OpSpec("max", ops.max, shapes="reduce", kwargs=reduce_kwargs, elements=(_distinct,), unique=True,
           allow_empty=False),
    OpSpec("min", ops.min, shapes="reduce", kwargs=reduce_kwargs, elements=(_distinct,), unique=True,
           allow_empty=False),
    OpSpec("reshape", ops.reshape, kwargs=lambda s: _kw("shape", _reshapes(s[0]))),
    OpSpec("transpose", ops.transpose,
           kwargs=lambda s: _kw("axes", st.one_of(st.permutations(range(len(s[0]))).map(tuple), st.none()))),
    OpSpec("concatenate", lambda *ts, axis: ops.concatenate(ts, axis=axis), 3, _concat_shapes(),
           kwargs=_concat_kwargs),
    OpSpec("getitem_basic", ops.getitem, kwargs=lambda s: _kw("index", hnp.basic_indices(s[0], allow_newaxis=True))),
    OpSpec("getitem_array", ops.getitem, kwargs=lambda s: _kw("index", _array_indices(s[0])), min_dims=1,
           allow_empty=False),
    OpSpec("maximum", ops.maximum, 2, "broadcast", elements=(_grid_a, _grid_b)),
    OpSpec("minimum", ops.minimum, 2, "broadcast", elements=(_grid_a, _grid_b)),
    OpSpec("clip", lambda x, lo, hi: ops.clip(x, lo, hi), kinks=(-0.5, 0.8),
           kwargs=lambda s: st.sampled_from(_CLIP_BOUNDS)),
    OpSpec("where", lambda a, b, cond: ops.where(cond, a, b), 2, "broadcast",
           kwargs=lambda s: _kw("cond", _conditions(s))),
    # convolutions: strides 1 and 2 (also mixed), paddings 0-2, non-square kernels and inputs, batch 1;
    # inputs in [-1, 1] keep the float32-vs-float64 comparison within its tolerance (sums of up to ~70 products);
    # the chunked CPU convolution (scratchgan/accel/) sums its products in another order than the definition's
    # one product: reference_rtol
    OpSpec("conv2d", ops.conv2d, 3, _conv.conv2d_shapes(bias=True), bounds=(-1.0, 1.0),
           kwargs=_conv.conv2d_kwargs, second_order=True, reference=_conv.conv2d_loop, reference_rtol=1e-12),
    OpSpec("conv2d_nobias", ops.conv2d, 2, _conv.conv2d_shapes(bias=False), bounds=(-1.0, 1.0),
           kwargs=_conv.conv2d_kwargs, second_order=True, reference=_conv.conv2d_loop, reference_rtol=1e-12),
    OpSpec("conv_transpose2d", ops.conv_transpose2d, 3, _conv.conv_transpose2d_shapes(bias=True), bounds=(-1.0, 1.0),
           kwargs=_conv.conv_transpose2d_kwargs, second_order=True, reference=_conv.conv_transpose2d_loop,
           reference_rtol=1e-12),
    OpSpec("conv_transpose2d_nobias", ops.conv_transpose2d, 2, _conv.conv_transpose2d_shapes(bias=False),
           bounds=(-1.0, 1.0), kwargs=_conv.conv_transpose2d_kwargs, second_order=True,
           reference=_conv.conv_transpose2d_loop, reference_rtol=1e-12),
    OpSpec("conv2d_weight", _conv.conv2d_weight_call, 2, _conv.conv2d_weight_shapes(), bounds=(-1.0, 1.0),
           kwargs=_conv.conv2d_weight_kwargs, second_order=True, reference=_conv.conv2d_weight_loop,
           reference_rtol=1e-12),
    # batch norm in training mode (ops/norm.py): its first-order backward (scratchgan/accel/first_order.py) and
    # its rule differ in arithmetic (the saved x_hat, one temporary), hence paths_rtol and reference_rtol
    OpSpec("batch_norm", ops.batch_norm, 3, _batch_norm_shapes(), elements=(_bn_x, st.floats(-2, 2), st.floats(-2, 2)),
           unique=True, kwargs=_bn_kwargs, second_order=True, reference=_batch_norm_reference, paths_rtol=1e-9,
           reference_rtol=1e-9),
    OpSpec("batch_norm_noaffine", ops.batch_norm, 1, _batch_norm_shapes(affine=False), elements=(_bn_x,),
           unique=True, kwargs=_bn_kwargs, second_order=True, reference=_batch_norm_reference, paths_rtol=1e-9,
           reference_rtol=1e-9),
    # softmax family: any axis (negative too), size-0 axes included; the cross-entropy on (N, C) with int labels
    OpSpec("log_softmax", ops.log_softmax, min_dims=1, kwargs=_softmax.axis_kwargs, second_order=True,
           reference=_softmax.log_softmax_reference),
    OpSpec("softmax", ops.softmax, min_dims=1, kwargs=_softmax.axis_kwargs, second_order=True,
           reference=_softmax.softmax_reference),
    OpSpec("softmax_cross_entropy", _softmax.cross_entropy_call, shapes=_softmax.cross_entropy_shapes(),
           kwargs=_softmax.cross_entropy_kwargs, second_order=True, reference=_softmax.cross_entropy_loop),
    # DiffAugment (scratchgan/gan/augment.py) on (N, C, H, W): a gather and a constant 0/1 mask, linear in x (its
    # second derivative is 0, checked as such); the random draws are a fixed constant: an int seed and a policy
    OpSpec("diff_augment", _diff_augment, shapes=_augment.image_shapes(), kwargs=_augment.augment_kwargs,
           second_order=True, reference=_augment.diff_augment_loop),
]

# --------------------------------------------------------------------------- reference forwards

def _np_softplus(x):
    return np.log1p(np.exp(x))  # the textbook form: fine for the specs' bounded inputs


def _np_clip(x, lo, hi):
    return np.minimum(np.maximum(x, -np.inf if lo is None else lo), np.inf if hi is None else hi)


# Each op's forward written again in plain NumPy, independently of scratchgan (test_forward_matches_reference).
REFERENCES = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide, "neg": np.negative,
    "pow_scalar": lambda x, p: x ** p, "pow_tensor": np.power, "matmul": np.matmul,
    "linear": lambda x, w, b: x @ w + b, "linear_relu": lambda x, w, b: np.where(x @ w + b > 0, x @ w + b, 0.0),
    "exp": np.exp, "log": np.log, "sqrt": np.sqrt, "abs": np.abs, "tanh": np.tanh,
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "relu": lambda x: np.where(x > 0, x, 0.0), "leaky_relu": lambda x: np.where(x > 0, x, 0.2 * x),
    "softplus": _np_softplus, "log_sigmoid": lambda x: -_np_softplus(-x),
    "mean_softplus": lambda x: np.mean(_np_softplus(x)),
    "sum": lambda x, axis, keepdims: np.sum(x, axis=axis, keepdims=keepdims),
    "mean": lambda x, axis, keepdims: np.mean(x, axis=axis, keepdims=keepdims),
    "max": lambda x, axis, keepdims: np.max(x, axis=axis, keepdims=keepdims),
    "min": lambda x, axis, keepdims: np.min(x, axis=axis, keepdims=keepdims),
    "reshape": lambda x, shape: np.reshape(x, shape), "transpose": lambda x, axes: np.transpose(x, axes),
    "concatenate": lambda *xs, axis: np.concatenate(xs, axis=axis),
    "getitem_basic": lambda x, index: x[index], "getitem_array": lambda x, index: x[index],
    "maximum": np.maximum, "minimum": np.minimum, "clip": _np_clip,
    "where": lambda a, b, cond: np.where(cond, a, b),
}
SPECS = [s if s.reference is not None else dataclasses.replace(s, reference=REFERENCES[s.name]) for s in SPECS]
assert all(s.reference is not None for s in SPECS), "every op in the table needs a reference forward"


SECOND_ORDER = [s for s in SPECS if s.second_order]
