"""Reductions with dim/keepdim: sum mean var std max min amax amin logsumexp prod cumsum,
and argmax/argmin (forward only)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinynn as tn
from tests.ops.harness import OpCase, cases, op_tests

# (dim, keepdim) combinations: all elements, one dim (negative too), several dims.
DIMS = [dict(), dict(dim=1), dict(dim=-1, keepdim=True), dict(dim=(0, 2)), dict(dim=(0, 2), keepdim=True)]
SINGLE_DIMS = [dict(dim=0), dict(dim=-1, keepdim=True), dict(dim=1)]
SHAPE = [(2, 3, 4)]


def _axis(kwargs_dim):
    return tuple(kwargs_dim) if isinstance(kwargs_dim, (tuple, list)) else kwargs_dim


def _np_reduce(fn, **np_kwargs):
    """A NumPy reduction taking PyTorch's (dim, keepdim)."""
    def ref(a, dim=None, keepdim=False):
        return np.asarray(fn(a, axis=_axis(dim), keepdims=keepdim, **np_kwargs), dtype=a.dtype)
    return ref


def _np_logsumexp(a, dim, keepdim=False):
    m = np.max(a, axis=dim, keepdims=True)
    out = np.log(np.sum(np.exp(a - m), axis=dim, keepdims=True)) + m
    return out if keepdim else np.squeeze(out, axis=dim)


def _np_max_dim(take_min):
    def ref(a, dim, keepdim=False):
        indices = np.argmin(a, axis=dim, keepdims=True) if take_min else np.argmax(a, axis=dim, keepdims=True)
        values = np.take_along_axis(a, indices, axis=dim)
        if not keepdim:
            values, indices = values.squeeze(dim), indices.squeeze(dim)
        return values, indices.astype(np.int64)
    return ref


def _np_arg(fn):
    def ref(a, dim=None, keepdim=False):
        if dim is None:
            out = fn(a.reshape(-1))
            return np.asarray(out, dtype=np.int64).reshape((1,) * a.ndim if keepdim else ())
        return fn(a, axis=dim, keepdims=keepdim).astype(np.int64)
    return ref


def _np_norm(a, p, axis, keepdim):
    """The entrywise p-norm (np.linalg.norm would take a matrix norm over two axes)."""
    if p == float("inf"):
        return np.max(np.abs(a), axis=axis, keepdims=keepdim)
    return (np.sum(np.abs(a) ** p, axis=axis, keepdims=keepdim) ** (1 / p)).astype(a.dtype)


CASES: list[OpCase] = [
    *cases("sum", tn.sum, _np_reduce(np.sum), "sum", [SHAPE], DIMS),
    *cases("mean", tn.mean, _np_reduce(np.mean), "mean", [SHAPE], DIMS),
    *cases("var", tn.var, _np_reduce(np.var, ddof=1), "var", [SHAPE], DIMS),
    OpCase("var_biased", lambda a: tn.var(a, dim=1, unbiased=False), lambda a: np.var(a, axis=1),
           lambda a: a.var(dim=1, unbiased=False), [(3, 4)]),
    OpCase("var_correction0", lambda a: tn.var(a, 0, correction=0), lambda a: np.var(a, axis=0),
           lambda a: a.var(0, correction=0), [(3, 4)]),
    *cases("std", tn.std, _np_reduce(np.std, ddof=1), "std", [SHAPE], DIMS),
    OpCase("max_all", tn.max, np.max, "max", [(3, 4)], domain="distinct"),
    OpCase("min_all", tn.min, np.min, "min", [(3, 4)], domain="distinct"),
    *cases("max_dim", tn.max, _np_max_dim(False), "max", [SHAPE], SINGLE_DIMS, domain="distinct"),
    *cases("min_dim", tn.min, _np_max_dim(True), "min", [SHAPE], SINGLE_DIMS, domain="distinct"),
    *cases("amax", tn.amax, _np_reduce(np.max), "amax", [SHAPE], DIMS[1:], domain="distinct"),
    *cases("amin", tn.amin, _np_reduce(np.min), "amin", [SHAPE], DIMS[1:], domain="distinct"),
    *cases("logsumexp", tn.logsumexp, _np_logsumexp, "logsumexp", [SHAPE],
           [dict(dim=1), dict(dim=-1, keepdim=True), dict(dim=(0, 2))]),
    OpCase("prod_all", tn.prod, lambda a: np.asarray(np.prod(a), dtype=a.dtype), "prod", [(2, 3)]),
    *cases("prod", tn.prod, lambda a, dim, keepdim=False: np.prod(a, axis=dim, keepdims=keepdim), "prod",
           [SHAPE], SINGLE_DIMS),
    *cases("cumsum", tn.cumsum, lambda a, dim: np.cumsum(a, axis=dim), "cumsum", [SHAPE],
           [dict(dim=0), dict(dim=-1)]),
    *cases("norm", tn.norm, lambda a, p=2, dim=None, keepdim=False: _np_norm(a, p, _axis(dim), keepdim), "norm",
           [[(3, 4)]], [dict(), dict(p=1, dim=1), dict(p=2, dim=0), dict(p=2, dim=(0, 1), keepdim=True),
                        dict(p=3, dim=1), dict(p=float("inf"), dim=0)], domain="distinct"),
    # argmax/argmin are integer-valued: forward only.
    *cases("argmax", tn.argmax, _np_arg(np.argmax), "argmax", [SHAPE],
           [dict(), dict(dim=1), dict(dim=-1, keepdim=True)], domain="distinct", grad=False),
    *cases("argmin", tn.argmin, _np_arg(np.argmin), "argmin", [SHAPE],
           [dict(), dict(dim=0), dict(dim=2, keepdim=True)], domain="distinct", grad=False),
]

(test_forward, test_non_contiguous_inputs, test_gradcheck, test_gradgradcheck,
 test_torch_parity) = op_tests(CASES)


# --- gradients at ties and zeros ------------------------------------------------------------


def test_max_all_splits_gradient_between_ties():
    x = tn.tensor([1.0, 3.0, 3.0, 2.0], requires_grad=True)
    x.max().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0, 0.5, 0.5, 0])


def test_max_dim_gives_gradient_to_first_maximum():
    x = tn.tensor([[1.0, 3.0, 3.0]], requires_grad=True)
    values, indices = x.max(dim=1)
    values.sum().backward()
    assert indices.tolist() == [1] and not indices.requires_grad
    np.testing.assert_allclose(x.grad.numpy(), [[0, 1, 0]])


@pytest.mark.parametrize("dim", [None, 1])
def test_prod_gradient_with_zeros(dim):
    x = np.array([[0.0, 2.0, 3.0], [1.0, 0.0, 0.0], [2.0, 0.5, 4.0]])
    inputs = [tn.tensor(x, requires_grad=True)]
    fn = (lambda a: a.prod()) if dim is None else (lambda a: a.prod(dim))
    assert tn.autograd.gradcheck(fn, inputs)


@pytest.mark.parametrize("dim", [None, 1])
def test_prod_second_derivative_with_zeros(dim):
    # A single zero makes prod/a_i undefined; the second derivative must still be right.
    x = np.array([[0.0, 2.0, 3.0], [1.0, 0.5, 2.0]])
    inputs = [tn.tensor(x, requires_grad=True)]
    fn = (lambda a: a.prod()) if dim is None else (lambda a: a.prod(dim))
    assert tn.autograd.gradgradcheck(fn, inputs)


@pytest.mark.parametrize("dim", [None, 1])
def test_norm_of_zero_vector_has_zero_gradient(dim):
    x = tn.tensor([[0.0, 0.0], [3.0, 4.0]], requires_grad=True)
    tn.norm(x, dim=dim).sum().backward()
    # Row-wise the zero row gets 0 and (3, 4) / 5 the other; over all elements the norm is 5 as well.
    np.testing.assert_allclose(x.grad.numpy(), [[0, 0], [0.6, 0.8]], rtol=1e-6)
    zero = tn.zeros(3, requires_grad=True)
    zero.norm().backward()
    assert zero.grad.tolist() == [0.0, 0.0, 0.0]


@pytest.mark.filterwarnings("ignore:divide by zero encountered in log")
def test_logsumexp_of_all_minus_inf_is_minus_inf():
    x = tn.tensor([[-np.inf, -np.inf], [0.0, 1.0]])
    out = tn.logsumexp(x, dim=1)
    assert out[0].item() == -np.inf and np.isfinite(out[1].item())


def test_logsumexp_does_not_overflow():
    x = tn.tensor([1000.0, 1000.0])
    np.testing.assert_allclose(tn.logsumexp(x, 0).item(), 1000 + np.log(2), rtol=1e-6)


# --- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["sum", "mean", "amax", "logsumexp", "cumsum", "prod", "softmax"])
def test_bad_dim_names_op_and_range(op):
    with pytest.raises(IndexError, match=rf"{op}.*dimension 3.*\[-2, 1\]"):
        getattr(tn, op)(tn.ones(2, 3), 3)


def test_max_over_empty_tensors():
    assert tn.ones(0, 3).max(1).values.shape == (0,)
    with pytest.raises(IndexError, match=r"max.*dim 0.*non-zero size.*\(0, 3\)"):
        tn.ones(0, 3).max(0)
    with pytest.raises(RuntimeError, match="min.*numel"):
        tn.ones(0, 3).min()


def test_mean_of_integers_raises():
    with pytest.raises(RuntimeError, match="mean"):
        tn.tensor([1, 2]).mean()


def test_repeated_dim_raises():
    with pytest.raises(ValueError, match="sum.*multiple"):
        tn.ones(2, 3).sum((1, 1))


# --- properties: reductions over random shapes, dims and keepdim --------------------------


@st.composite
def array_and_dims(draw):
    a = draw(hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=4, max_side=4),
                        elements=st.floats(-3, 3)))
    dims = draw(st.lists(st.integers(0, a.ndim - 1), unique=True, min_size=1, max_size=a.ndim))
    negative = draw(st.booleans())
    dims = tuple(d - a.ndim if negative else d for d in dims)
    return a, dims, draw(st.booleans())


@settings(max_examples=40, deadline=None)
@given(data=array_and_dims(), op=st.sampled_from(["sum", "mean", "amax", "amin", "var", "logsumexp"]))
def test_reductions_match_numpy(data, op):
    a, dims, keepdim = data
    numpy_axis = tuple(d % a.ndim for d in dims)
    if op == "var" and np.prod([a.shape[d] for d in numpy_axis]) < 2:
        return  # unbiased variance of one element is nan in both; nothing to compare
    reference = {
        "sum": lambda: np.sum(a, axis=numpy_axis, keepdims=keepdim),
        "mean": lambda: np.mean(a, axis=numpy_axis, keepdims=keepdim),
        "amax": lambda: np.max(a, axis=numpy_axis, keepdims=keepdim),
        "amin": lambda: np.min(a, axis=numpy_axis, keepdims=keepdim),
        "var": lambda: np.var(a, axis=numpy_axis, keepdims=keepdim, ddof=1),
        "logsumexp": lambda: _np_logsumexp(a, numpy_axis, keepdim),
    }[op]()
    x = tn.tensor(a, requires_grad=True)
    out = getattr(tn, op)(x, dims, keepdim=keepdim)
    np.testing.assert_allclose(out.numpy(), reference, rtol=1e-10, atol=1e-12)
    out.sum().backward()
    assert x.grad.shape == a.shape
    if op == "sum":
        np.testing.assert_array_equal(x.grad.numpy(), np.ones_like(a))


@pytest.mark.parametrize("dim", [None, 1])
def test_std_of_constant_input_has_zero_gradient(dim):
    x = tn.ones(2, 3, requires_grad=True)  # variance 0: PyTorch's subgradient is 0, not nan
    tn.std(x, dim).sum().backward()
    assert x.grad.tolist() == [[0.0] * 3] * 2
