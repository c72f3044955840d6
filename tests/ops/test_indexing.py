"""Indexing: ``t[...]`` with ints, slices, None, Ellipsis, integer arrays (repeated indices
accumulate their gradients) and boolean masks; index_select, gather, scatter_add, masked_fill."""
from __future__ import annotations

import numpy as np
import pytest

import tinynn as tn
from tests.ops.harness import OpCase, op_tests, torch_module

INDEX = np.array([0, 2, 2, 1])       # a repeated index: its gradient must be summed
MASK = np.array([[True, False, True, True], [False, False, True, False], [True, True, False, False]])
ROW_MASK = np.array([True, False, True])
GATHER_INDEX = np.array([[0, 0, 3], [2, 1, 1], [3, 3, 3]])


def _lib_of(t):
    if isinstance(t, tn.Tensor):
        return tn
    import torch
    return torch


def index_case(name, make_index, shape=(3, 4), **options) -> OpCase:
    """``a[make_index(lib)]``: the index is built with the library of the tensor, so tensors
    inside it are tinynn tensors for tinynn and torch tensors for torch."""
    return OpCase(f"getitem_{name}", lambda a: a[make_index(_lib_of(a))], lambda a: a[make_index(None)],
                  lambda a: a[make_index(_lib_of(a))], [shape], **options)


def _arr(values, lib):
    """An index array as a tensor of ``lib`` (None: a NumPy array, for the reference)."""
    return np.asarray(values) if lib is None else lib.tensor(values)


CASES: list[OpCase] = [
    index_case("int", lambda lib: 1),
    index_case("neg_int", lambda lib: -1),
    index_case("int_int", lambda lib: (2, 1)),
    index_case("slice", lambda lib: slice(1, None)),
    index_case("step_slice", lambda lib: (slice(None), slice(None, None, 2))),
    index_case("none", lambda lib: (None, slice(None), None)),
    index_case("ellipsis", lambda lib: (Ellipsis, 1)),
    index_case("ellipsis_none", lambda lib: (Ellipsis, None, slice(0, 2)), shape=(2, 3, 4)),
    index_case("int_array_repeated", lambda lib: _arr(INDEX[:3], lib)),
    index_case("int_array_dim1", lambda lib: (slice(None), _arr(INDEX, lib))),
    index_case("int_array_list", lambda lib: [0, 0, 2]),
    index_case("two_int_arrays", lambda lib: (_arr([0, 2, 2, 0], lib), _arr([1, 1, 3, 1], lib))),
    index_case("int_array_2d", lambda lib: _arr([[0, 1], [1, 1]], lib)),
    index_case("mixed_basic_advanced", lambda lib: (None, Ellipsis, _arr([0, 2, 2], lib), slice(1, None)),
               shape=(2, 3, 4)),
    index_case("int_arrays_broadcast", lambda lib: (_arr([[0], [2]], lib), _arr([1, 3, 0], lib))),
    index_case("int_arrays_split_by_slice", lambda lib: (_arr([0, 1], lib), slice(None), _arr([3, 3], lib)),
               shape=(2, 3, 4)),
    index_case("bool_mask", lambda lib: _arr(MASK, lib)),
    index_case("bool_row_mask", lambda lib: _arr(ROW_MASK, lib)),
    index_case("bool_mask_then_slice", lambda lib: (_arr(ROW_MASK, lib), slice(1, 3))),
    OpCase("index_select", lambda a: a.index_select(1, tn.tensor(INDEX)), lambda a: a[:, INDEX],
           lambda a: a.index_select(1, torch_module().tensor(INDEX)), [(3, 4)]),
    OpCase("gather_dim1", lambda a: a.gather(1, tn.tensor(GATHER_INDEX)),
           lambda a: np.take_along_axis(a, GATHER_INDEX, 1),
           lambda a: a.gather(1, torch_module().tensor(GATHER_INDEX)), [(3, 4)]),
    OpCase("gather_dim0", lambda a: a.gather(0, tn.tensor(GATHER_INDEX[:2, :2] % 3)),
           lambda a: np.take_along_axis(a[:, :2], GATHER_INDEX[:2, :2] % 3, 0),  # index smaller than a in dim 1
           lambda a: a.gather(0, torch_module().tensor(GATHER_INDEX[:2, :2] % 3)), [(3, 4)]),
    OpCase("scatter_add", lambda a, s: a.scatter_add(1, tn.tensor(GATHER_INDEX), s),
           lambda a, s: _np_scatter_add(a, 1, GATHER_INDEX, s),
           lambda a, s: a.scatter_add(1, torch_module().tensor(GATHER_INDEX), s), [(3, 4), (3, 3)]),
    # src larger than index: only src[:index.shape] is scattered; the rest gets a zero gradient.
    # (PyTorch fails on this backward, so no parity here.)
    OpCase("scatter_add_larger_src", lambda a, s: a.scatter_add(0, tn.tensor([[1, 0, 1, 1]]), s),
           lambda a, s: _np_scatter_add(a, 0, np.array([[1, 0, 1, 1]]), s), None, [(3, 4), (2, 4)]),
    OpCase("masked_fill", lambda a: a.masked_fill(tn.tensor(MASK), -1.5),
           lambda a: np.where(MASK, a.dtype.type(-1.5), a),
           lambda a: a.masked_fill(torch_module().tensor(MASK), -1.5), [(3, 4)]),
    OpCase("masked_fill_broadcast_mask", lambda a: a.masked_fill(tn.tensor(MASK[0]), 0.0) * a,
           lambda a: np.where(MASK[0], 0, a) * a,
           lambda a: a.masked_fill(torch_module().tensor(MASK[0]), 0.0) * a, [(3, 4)]),
]

(test_forward, test_non_contiguous_inputs, test_gradcheck, test_gradgradcheck,
 test_torch_parity) = op_tests(CASES)


def _np_scatter_add(a, dim, index, src):
    out = a.copy()
    for position in np.ndindex(*index.shape):
        target = list(position)
        target[dim] = index[position]
        out[tuple(target)] += src[position]
    return out


# --- gradients of repeated indices add up ------------------------------------------------


def test_repeated_integer_index_accumulates_gradient():
    x = tn.zeros(3, requires_grad=True)
    x[tn.tensor([0, 2, 2, 2])].sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1, 0, 3])


def test_repeated_gather_index_accumulates_gradient():
    x = tn.zeros(1, 3, requires_grad=True)
    x.gather(1, tn.tensor([[1, 1, 1, 0]])).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[1, 3, 0]])


def test_scatter_add_adds_repeated_targets():
    out = tn.zeros(4).scatter_add(0, tn.tensor([1, 1, 3]), tn.tensor([1.0, 2.0, 5.0]))
    np.testing.assert_array_equal(out.numpy(), [0, 3, 0, 5])


def test_boolean_mask_from_comparison():
    x = tn.tensor([[-1.0, 2.0], [3.0, -4.0]], requires_grad=True)
    picked = x[x > 0]
    assert picked.tolist() == [2.0, 3.0]
    picked.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0, 1], [1, 0]])


def test_setitem_writes_data_outside_autograd():
    x = tn.zeros(2, 3)
    x[0, tn.tensor([0, 2])] = 5.0
    assert x.tolist() == [[5, 0, 5], [0, 0, 0]]
    leaf = tn.zeros(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="in place"):
        leaf[0] = 1.0


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("call, error, message", [
    (lambda: tn.ones(3, 4)[tn.tensor([True, False])], IndexError, r"mask.*\(2,\).*\(3, 4\)"),
    (lambda: tn.ones(3, 4).gather(1, tn.tensor([0, 1])), RuntimeError, r"gather.*\(2,\).*\(3, 4\)"),
    (lambda: tn.ones(3, 4).gather(1, tn.ones(3, 4)), RuntimeError, r"gather.*integer"),
    (lambda: tn.ones(3, 4).masked_fill(tn.ones(3, 4), 0.0), RuntimeError, r"masked_fill.*bool"),
    (lambda: tn.ones(3, 4).masked_fill(tn.ones(2, 4) > 0, 0.0), RuntimeError, r"masked_fill.*\(2, 4\).*\(3, 4\)"),
    (lambda: tn.ones(4).masked_fill(tn.ones(3, 4) > 0, 0.0), RuntimeError, r"masked_fill.*\(3, 4\).*\(4,\)"),
    (lambda: tn.ones(3, 4).gather(2, tn.tensor([[0]])), IndexError, r"gather.*dimension 2"),
])
def test_indexing_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()
