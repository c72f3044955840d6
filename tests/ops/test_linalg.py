"""Matrix products: matmul (1-d, 2-d, batched, broadcasting), mm/bmm/dot/outer, einsum."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinynn as tn
from tests.ops.harness import OpCase, cases, op_tests, torch_module

MATMUL_SHAPES = [
    ((3,), (3,)),             # dot product
    ((3,), (3, 2)),           # vector @ matrix
    ((2, 3), (3,)),           # matrix @ vector
    ((2, 3), (3, 4)),
    ((2, 2, 3), (2, 3, 4)),   # batched
    ((2, 1, 2, 3), (3, 3, 2)),  # batch dims broadcast
    ((3,), (2, 3, 2)),        # vector @ batch
    ((2, 2, 3), (3,)),        # batch @ vector
]

EINSUM = [
    ("ij,jk->ik", [(2, 3), (3, 4)]),
    ("bij,bjk->bik", [(2, 2, 3), (2, 3, 2)]),         # batch
    ("...ij,...jk->...ik", [(2, 1, 2, 3), (3, 3, 2)]),  # ellipsis with broadcasting
    ("...i,...i->...", [(2, 3, 4), (3, 4)]),
    ("ij->", [(2, 3)]),                                # sum everything
    ("ij->j", [(2, 3)]),                               # sum over a letter of one operand only
    ("ij->ji", [(2, 3)]),
    ("i,j->ij", [(2,), (3,)]),                          # outer
    ("bhqd,bhkd->bhqk", [(1, 2, 3, 2), (1, 2, 4, 2)]),  # attention scores
    ("ij,jk,kl->il", [(2, 3), (3, 2), (2, 2)]),         # three operands
    ("ij,jk", [(2, 3), (3, 2)]),                        # implicit output
    ("ik,k->i", [(2, 3), (3,)]),
    ("ii->", [(3, 3)]),                                 # trace: a repeated letter reads a diagonal
    ("ii->i", [(3, 3)]),                                # diagonal
    ("bii->b", [(2, 3, 3)]),                            # batched trace
    ("iij,j->i", [(2, 2, 3), (3,)]),
]

CASES: list[OpCase] = [
    *cases("matmul", lambda a, b: a @ b, np.matmul, "matmul", MATMUL_SHAPES),
    OpCase("mm", tn.mm, np.matmul, "mm", [(2, 3), (3, 2)]),
    OpCase("bmm", tn.bmm, np.matmul, "bmm", [(2, 2, 3), (2, 3, 2)]),
    OpCase("dot", tn.dot, np.dot, "dot", [(4,), (4,)]),
    OpCase("outer", tn.outer, np.outer, "outer", [(2,), (3,)]),
    *[OpCase(f"einsum_{eq}", lambda *ops, eq=eq: tn.einsum(eq, *ops), lambda *ops, eq=eq: np.einsum(eq, *ops),
             lambda *ops, eq=eq: torch_module().einsum(eq, *ops), shapes) for eq, shapes in EINSUM],
    OpCase("einsum_list_operands", lambda a, b: tn.einsum("ij,jk->ik", [a, b]),
           lambda a, b: a @ b, lambda a, b: torch_module().einsum("ij,jk->ik", [a, b]), [(2, 3), (3, 2)]),
]

(test_forward, test_non_contiguous_inputs, test_gradcheck, test_gradgradcheck,
 test_torch_parity) = op_tests(CASES)


def test_matmul_inner_dimension_error_names_shapes():
    with pytest.raises(ValueError, match=r"matmul: \(2, 3\) @ \(4, 5\): inner dimensions 3 and 4 differ"):
        tn.ones(2, 3) @ tn.ones(4, 5)


@pytest.mark.parametrize("call, message", [
    (lambda: tn.ones(2, 2, 3) @ tn.ones(3, 3, 2), r"matmul.*batch dimensions \(2,\) and \(3,\)"),
    (lambda: tn.matmul(tn.ones(()), tn.ones(2)), r"matmul.*at least 1 dimension"),
    (lambda: tn.mm(tn.ones(2, 3, 1), tn.ones(1, 2)), r"mm.*2-d"),
    (lambda: tn.bmm(tn.ones(2, 2, 3), tn.ones(3, 3, 2)), r"bmm.*batch"),
    (lambda: tn.dot(tn.ones(2, 2), tn.ones(2)), r"dot.*1-d"),
    (lambda: tn.einsum("ij,jk->ik", tn.ones(2, 3)), r"einsum.*2 operands"),
    (lambda: tn.einsum("ijk->i", tn.ones(2, 3)), r"einsum.*'ijk'.*\(2, 3\)"),
    (lambda: tn.einsum("ij,jk->ik", tn.ones(2, 3), tn.ones(3, 2, dtype=tn.float64)), r"einsum.*dtype"),
])
def test_linalg_errors(call, message):
    with pytest.raises((ValueError, RuntimeError, TypeError), match=message):
        call()


def test_matmul_float32_gradient_dtypes():
    a = tn.randn(4, 3, requires_grad=True)
    b = tn.randn(3, 2, requires_grad=True)
    (a @ b).sum().backward()
    assert a.grad.dtype == tn.float32 and b.grad.dtype == tn.float32
    np.testing.assert_allclose(a.grad.numpy(), np.ones((4, 2)) @ b.numpy().T, rtol=1e-6)


def test_einsum_trace_gradient_is_the_identity():
    x = tn.tensor(np.arange(9.0).reshape(3, 3), requires_grad=True)
    trace = tn.einsum("ii->", x)
    assert trace.item() == 12.0
    trace.backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.eye(3))


# --- property: matmul over random batch shapes that broadcast ---------------------------------


@st.composite
def matmul_operands(draw):
    n, k, m = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    batch = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3))
    a_shape = batch.input_shapes[0] + (n, k) if draw(st.booleans()) else (k,)
    b_shape = batch.input_shapes[1] + (k, m) if draw(st.booleans()) else (k,)
    elements = st.floats(-2, 2)
    return (draw(hnp.arrays(np.float64, a_shape, elements=elements)),
            draw(hnp.arrays(np.float64, b_shape, elements=elements)))


@settings(max_examples=40, deadline=None)
@given(operands=matmul_operands())
def test_matmul_matches_numpy_on_random_shapes(operands):
    a, b = operands
    x, y = tn.tensor(a, requires_grad=True), tn.tensor(b, requires_grad=True)
    out = x @ y
    np.testing.assert_allclose(out.numpy(), np.matmul(a, b), rtol=1e-12, atol=1e-12)
    out.sum().backward()
    # d sum(A @ B) = ones @ B^T for A and A^T @ ones for B, summed over broadcast batch dims
    # (1-d operands are promoted to a row / a column first, as matmul does).
    a2, b2 = (a[None, :] if a.ndim == 1 else a), (b[:, None] if b.ndim == 1 else b)
    ones = np.ones(np.matmul(a2, b2).shape)
    grad_a = _np_sum_to(ones @ np.swapaxes(b2, -1, -2), a2.shape).reshape(a.shape)
    grad_b = _np_sum_to(np.swapaxes(a2, -1, -2) @ ones, b2.shape).reshape(b.shape)
    np.testing.assert_allclose(x.grad.numpy(), grad_a, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(y.grad.numpy(), grad_b, rtol=1e-12, atol=1e-12)


def _np_sum_to(g, shape):
    """Sum a broadcast array back to ``shape`` (NumPy, for the reference)."""
    g = g.sum(axis=tuple(range(g.ndim - len(shape))))
    return g.sum(axis=tuple(i for i, s in enumerate(shape) if s == 1 and g.shape[i] != 1), keepdims=True)
