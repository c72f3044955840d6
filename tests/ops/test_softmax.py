"""softmax and log_softmax: values, gradients, numerical stability."""
from __future__ import annotations

import numpy as np
import pytest

import tinynn as tn
from tests.ops.harness import cases, op_tests


def _np_softmax(a, dim):
    e = np.exp(a - a.max(axis=dim, keepdims=True))
    return e / e.sum(axis=dim, keepdims=True)


def _np_log_softmax(a, dim):
    shifted = a - a.max(axis=dim, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=dim, keepdims=True))


DIMS = [dict(dim=0), dict(dim=1), dict(dim=-1)]
CASES = [
    *cases("softmax", tn.softmax, _np_softmax, "softmax", [[(2, 3, 4)]], DIMS),
    *cases("log_softmax", tn.log_softmax, _np_log_softmax, "log_softmax", [[(2, 3, 4)]], DIMS),
    *cases("softmax_1d", tn.softmax, _np_softmax, "softmax", [[(5,)]], [dict(dim=0)]),
]

(test_forward, test_non_contiguous_inputs, test_gradcheck, test_gradgradcheck,
 test_torch_parity) = op_tests(CASES)


@pytest.mark.parametrize("op", [tn.softmax, tn.log_softmax])
def test_large_logits_do_not_overflow(op):
    out = op(tn.tensor([[1000.0, 0.0, -1000.0]]), dim=1)
    assert np.isfinite(out.numpy()).all()


def test_softmax_rows_sum_to_one_and_gradient_of_sum_is_zero():
    x = tn.randn(4, 5, requires_grad=True)
    y = tn.softmax(x, dim=1)
    np.testing.assert_allclose(y.sum(1).numpy(), np.ones(4), rtol=1e-6)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.zeros((4, 5)), atol=1e-6)


def test_log_softmax_equals_log_of_softmax():
    x = tn.randn(3, 4, dtype=tn.float64)
    np.testing.assert_allclose(tn.log_softmax(x, 1).numpy(), np.log(tn.softmax(x, 1).numpy()), rtol=1e-12)


def test_softmax_dtype_argument():
    assert tn.softmax(tn.ones(3), 0, dtype=tn.float64).dtype == tn.float64


@pytest.mark.parametrize("op", [tn.softmax, tn.log_softmax])
def test_softmax_of_integers_gives_default_float(op):
    out = op(tn.tensor([1, 2, 3]), 0)
    assert out.dtype == tn.float32
    np.testing.assert_allclose(out.numpy(), op(tn.tensor([1.0, 2.0, 3.0]), 0).numpy())
