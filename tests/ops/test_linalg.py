"""Matrix products: matmul (1-d, 2-d, batched, broadcasting), mm/bmm/dot/outer, einsum."""
from __future__ import annotations

import numpy as np
import pytest

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
