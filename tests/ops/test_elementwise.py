"""Elementwise ops: arithmetic with broadcasting, unary maths, clamp/maximum/minimum/where,
comparisons, and the dtype rules of mixed operands."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinynn as tn
from tests.ops.harness import OpCase, cases, op_tests, torch_module

# Shape pairs that broadcast in every way: equal, scalar, trailing, leading ones, both sides.
BROADCAST_PAIRS = [((2, 3), (2, 3)), ((2, 3), ()), ((2, 3), (3,)), ((4, 1, 3), (2, 1)), ((1, 3), (2, 1))]


def _sigmoid(a):
    return 1 / (1 + np.exp(-a))


CASES: list[OpCase] = [
    *cases("add", lambda a, b: a + b, np.add, "add", BROADCAST_PAIRS),
    *cases("sub", lambda a, b: a - b, np.subtract, "sub", BROADCAST_PAIRS),
    *cases("mul", lambda a, b: a * b, np.multiply, "mul", BROADCAST_PAIRS),
    *cases("div", lambda a, b: a / b, np.divide, "div", BROADCAST_PAIRS, domain=("real", "nonzero")),
    *cases("pow", lambda a, b: a ** b, np.power, "pow", BROADCAST_PAIRS, domain=("positive", "real")),
    OpCase("add_alpha", lambda a, b: tn.add(a, b, alpha=2.5), lambda a, b: a + 2.5 * b,
           lambda a, b: a.add(b, alpha=2.5), [(2, 3), (3,)]),
    OpCase("add_scalar", lambda a: a + 2, lambda a: a + a.dtype.type(2), lambda a: a + 2, [(2, 3)]),
    OpCase("rsub_scalar", lambda a: 1.5 - a, lambda a: a.dtype.type(1.5) - a, lambda a: 1.5 - a, [(2, 3)]),
    OpCase("rdiv_scalar", lambda a: 2.0 / a, lambda a: a.dtype.type(2.0) / a, lambda a: 2.0 / a, [(2, 3)],
           domain="nonzero"),
    OpCase("pow_scalar3", lambda a: a ** 3, lambda a: a ** 3, lambda a: a ** 3, [(2, 3)]),
    OpCase("pow_scalar_half", lambda a: a ** 0.5, lambda a: a ** a.dtype.type(0.5), lambda a: a ** 0.5, [(2, 3)],
           domain="positive"),
    OpCase("pow_scalar_neg", lambda a: a ** -2, lambda a: a ** a.dtype.type(-2.0), lambda a: a ** -2, [(2, 3)],
           domain="nonzero"),
    OpCase("rpow_scalar", lambda a: 2.0 ** a, lambda a: a.dtype.type(2.0) ** a, lambda a: 2.0 ** a, [(2, 3)]),
    OpCase("neg", lambda a: -a, np.negative, "neg", [(2, 3)]),
    OpCase("abs", tn.abs, np.abs, "abs", [(2, 3)], domain="distinct"),
    OpCase("exp", tn.exp, np.exp, "exp", [(2, 3)]),
    OpCase("log", tn.log, np.log, "log", [(2, 3)], domain="positive"),
    OpCase("sqrt", tn.sqrt, np.sqrt, "sqrt", [(2, 3)], domain="positive"),
    OpCase("rsqrt", tn.rsqrt, lambda a: 1 / np.sqrt(a), "rsqrt", [(2, 3)], domain="positive"),
    OpCase("sin", tn.sin, np.sin, "sin", [(2, 3)]),
    OpCase("cos", tn.cos, np.cos, "cos", [(2, 3)]),
    OpCase("tanh", tn.tanh, np.tanh, "tanh", [(2, 3)]),
    OpCase("sigmoid", tn.sigmoid, _sigmoid, "sigmoid", [(2, 3)]),
    OpCase("log1p", tn.log1p, np.log1p, "log1p", [(2, 3)], domain="positive"),
    OpCase("expm1", tn.expm1, np.expm1, "expm1", [(2, 3)]),
    OpCase("square", tn.square, np.square, "square", [(2, 3)]),
    OpCase("reciprocal", tn.reciprocal, np.reciprocal, "reciprocal", [(2, 3)], domain="nonzero"),
    OpCase("erf", tn.erf, None, "erf", [(2, 3)]),  # NumPy has no erf: PyTorch is the reference
    OpCase("relu", tn.relu, lambda a: np.maximum(a, 0), "relu", [(2, 3)], domain="distinct"),
    OpCase("relu_times_x", lambda a: tn.relu(a) * a, lambda a: np.maximum(a, 0) * a, lambda a: a.relu() * a,
           [(2, 3)], domain="distinct"),
    *cases("clamp", tn.clamp, lambda a, min=None, max=None: np.clip(a, min, max), "clamp", [[(3, 4)]],
           [dict(min=-0.5, max=0.5), dict(min=-0.5), dict(max=0.5)], domain="distinct"),
    OpCase("clamp_tensor_bounds", lambda a, lo: tn.clamp(a, min=lo), lambda a, lo: np.maximum(a, lo),
           lambda a, lo: a.clamp(min=lo), [(2, 3), (3,)], domain="distinct"),
    *cases("maximum", tn.maximum, np.maximum, "maximum", [((2, 3), (2, 3)), ((2, 3), (3,))], domain="distinct"),
    *cases("minimum", tn.minimum, np.minimum, "minimum", [((2, 3), (2, 3)), ((4, 1), (3,))], domain="distinct"),
    *cases("where", lambda a, b: tn.where(a > b, a * b, b), lambda a, b: np.where(a > b, a * b, b),
           lambda a, b: torch_module().where(a > b, a * b, b), [((2, 3), (2, 3)), ((2, 3), (3,))],
           domain="distinct"),
    OpCase("where_scalar_other", lambda a: tn.where(a > 0, a, 0.0), lambda a: np.where(a > 0, a, a.dtype.type(0)),
           lambda a: torch_module().where(a > 0, a, 0.0), [(2, 3)], domain="distinct"),
    # Comparisons are not differentiable: forward only.
    *[OpCase(name, getattr(tn, name), ref, name, [(2, 3), (3,)], domain="distinct", grad=False)
      for name, ref in [("eq", np.equal), ("ne", np.not_equal), ("lt", np.less), ("le", np.less_equal),
                        ("gt", np.greater), ("ge", np.greater_equal)]],
    OpCase("eq_self", lambda a: a == a, lambda a: a == a, lambda a: a == a, [(2, 3)], grad=False),
]

(test_forward, test_non_contiguous_inputs, test_gradcheck, test_gradgradcheck,
 test_torch_parity) = op_tests(CASES)


# --- dtype rules ----------------------------------------------------------------------------


# Each rule is written once for both libraries: make(tn) and make(torch).
DTYPE_RULES = [
    (lambda t: t.ones(3) * 2, "float32"),                                # Python scalars are "weak"
    (lambda t: t.ones(3) * 2.5, "float32"),
    (lambda t: t.ones(3, dtype=t.float64) * 2.5, "float64"),
    (lambda t: t.ones(3, dtype=t.float16) + 1.0, "float16"),
    (lambda t: t.tensor([1, 2]) * 2.5, "float32"),                       # int tensor * float -> default float
    (lambda t: t.tensor([1, 2]) * 2, "int64"),
    (lambda t: t.tensor([1, 2]) * t.ones(2), "float32"),                # int tensor * float32 tensor
    (lambda t: t.tensor([1, 2]) * t.ones(2, dtype=t.float64), "float64"),
    (lambda t: t.ones(2) + t.ones(2, dtype=t.float64), "float64"),      # float32 + float64 -> float64
    (lambda t: t.tensor([1, 2], dtype=t.int32) + t.tensor([1, 2]), "int64"),
    (lambda t: t.tensor([1, 2]) / 2, "float32"),                         # true division of ints
    (lambda t: t.tensor([1, 2]) ** 0.5, "float32"),
    (lambda t: t.exp(t.tensor([1, 2])), "float32"),
    (lambda t: t.tensor([True, False]) + 1, "int64"),
    (lambda t: t.ones(2) > 0, "bool"),
    (lambda t: t.ones(2) + t.tensor(2.0, dtype=t.float64), "float32"),  # a 0-d tensor does not promote
    (lambda t: t.tensor(2) + t.ones(2, dtype=t.int32), "int32"),        # ... within its kind,
    (lambda t: t.tensor(2.5, dtype=t.float64) * t.tensor([1, 2]), "float64"),  # but a higher kind wins
]


@pytest.mark.parametrize("make, expected", DTYPE_RULES)
def test_result_dtype(make, expected):
    assert make(tn).dtype == np.dtype(expected)


@pytest.mark.parity
@pytest.mark.parametrize("make, expected", DTYPE_RULES)
def test_result_dtype_matches_torch(make, expected):
    torch = pytest.importorskip("torch")
    assert make(torch).dtype == getattr(torch, expected)


def test_float32_gradient_of_float64_operand_keeps_each_dtype():
    a = tn.ones(3, requires_grad=True)
    b = tn.ones(3, dtype=tn.float64, requires_grad=True)
    (a * b).sum().backward()
    assert a.grad.dtype == tn.float32 and b.grad.dtype == tn.float64


def test_0d_float64_parameter_times_float32_vector_keeps_its_gradient():
    scale = tn.tensor(2.0, dtype=tn.float64, requires_grad=True)
    out = tn.ones(3) * scale
    assert out.dtype == tn.float32
    out.sum().backward()
    assert scale.grad.dtype == tn.float64 and scale.grad.item() == 3.0


def test_int_tensor_cannot_require_grad():
    with pytest.raises(RuntimeError, match="floating point"):
        tn.tensor([1, 2], requires_grad=True)


# --- errors name the op and the shapes -----------------------------------------------------


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "maximum"])
def test_broadcast_error_names_op_and_shapes(op):
    with pytest.raises((ValueError, RuntimeError), match=rf"{op}.*\(2, 3\).*\(4, 5\)"):
        getattr(tn, op)(tn.ones(2, 3), tn.ones(4, 5))


def test_where_broadcast_error_names_shapes():
    with pytest.raises((ValueError, RuntimeError), match=r"where.*\(2,\).*\(3,\)"):
        tn.where(tn.ones(2) > 0, tn.ones(3), tn.ones(2))


def test_clamp_needs_a_bound():
    with pytest.raises(ValueError, match="clamp"):
        tn.clamp(tn.ones(2))


# --- properties: broadcasting binary ops against NumPy ---------------------------------


@st.composite
def broadcastable_pair(draw):
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=4))
    a = draw(hnp.arrays(np.float64, shapes.input_shapes[0], elements=st.floats(-3, 3)))
    b = draw(hnp.arrays(np.float64, shapes.input_shapes[1], elements=st.floats(0.5, 3)))
    return a, b


@settings(max_examples=40, deadline=None)
@given(pair=broadcastable_pair(), op=st.sampled_from(["add", "sub", "mul", "div", "maximum"]))
def test_binary_broadcasting_matches_numpy(pair, op):
    a, b = pair
    reference = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide, "maximum": np.maximum}[op]
    x, y = tn.tensor(a, requires_grad=True), tn.tensor(b, requires_grad=True)
    out = getattr(tn, op)(x, y)
    np.testing.assert_allclose(out.numpy(), reference(a, b), rtol=1e-12)
    out.sum().backward()
    # Gradients are reduced back to each input's own shape.
    assert x.grad.shape == a.shape and y.grad.shape == b.shape
    if op in ("add", "sub"):
        n_copies = out.numel() / max(a.size, 1)
        np.testing.assert_allclose(x.grad.numpy(), np.full(a.shape, n_copies))


def test_comparison_broadcast_error_names_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4, 5\)"):
        tn.ones(2, 3) < tn.ones(4, 5)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_pow_with_zero_exponent_has_zero_gradient_at_zero_base():
    base = tn.zeros(2, requires_grad=True)
    (base ** tn.tensor([0.0, 1.0])).sum().backward()  # d(a^0) = 0 even at a = 0 (PyTorch)
    assert base.grad.tolist() == [0.0, 1.0]
