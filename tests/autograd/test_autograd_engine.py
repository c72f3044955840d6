"""The backward engine: deep graphs, freeing, retain_graph, accumulation into .grad,
shared inputs, seeds, and the ``inputs=`` argument."""
from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

import tinynn as tn


def test_100k_op_chain_backpropagates_and_frees_without_recursion_error():
    x = tn.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y * 1.0
    y.backward()
    assert x.grad.item() == 1.0
    del y  # dropping the head of a deep graph must not overflow the stack either
    gc.collect()


def test_intermediate_tensors_are_freed_after_backward():
    x = tn.randn(3, requires_grad=True)
    hidden = x * 2
    hidden_ref = weakref.ref(hidden)
    hidden_data_ref = weakref.ref(hidden.data)
    loss = (hidden * hidden).sum()  # Mul saves `hidden` for its backward
    del hidden
    assert hidden_ref() is not None, "the graph should keep what backward needs"
    loss.backward()
    gc.collect()
    assert hidden_ref() is None and hidden_data_ref() is None, "backward should release saved tensors"


def test_graph_is_freed_with_its_output():
    x = tn.randn(3, requires_grad=True)
    loss = (x.exp() * 3).sum()
    node_ref = weakref.ref(loss.grad_fn)
    del loss
    gc.collect()
    assert node_ref() is None


def test_second_backward_without_retain_graph_raises():
    x = tn.randn(3, requires_grad=True)
    loss = (x * x).sum()
    loss.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time.*retain_graph=True"):
        loss.backward()


def test_second_backward_with_retain_graph_accumulates():
    x = tn.tensor([1.0, 2.0, 3.0], requires_grad=True)
    loss = (x * x).sum()
    loss.backward(retain_graph=True)
    np.testing.assert_allclose(x.grad.numpy(), [2, 4, 6])
    loss.backward()
    np.testing.assert_allclose(x.grad.numpy(), [4, 8, 12])


def test_grad_accumulates_across_graphs_until_reset():
    x = tn.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3 + 2, 3 + 4])
    x.grad = None
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3, 3])


def test_grad_is_a_private_copy_per_leaf():
    a = tn.ones(2, requires_grad=True)
    b = tn.ones(2, requires_grad=True)
    (a + b).sum().backward()  # both receive the very same gradient array from Add
    a.grad.data[...] = 100.0
    np.testing.assert_array_equal(b.grad.numpy(), [1, 1])


def test_input_used_twice_gets_the_sum_of_gradients():
    x = tn.tensor(3.0, requires_grad=True)
    y = x * x + x.exp() + x  # x reaches the output along three paths
    y.backward()
    np.testing.assert_allclose(x.grad.item(), 2 * 3 + np.exp(3) + 1, rtol=1e-6)


def test_diamond_graph():
    x = tn.tensor(2.0, requires_grad=True)
    h = x * 3
    y = h.sin() * h.cos()  # h feeds two branches that meet again
    y.backward()
    np.testing.assert_allclose(x.grad.item(), 3 * np.cos(2 * 6.0), rtol=1e-6)


def test_non_leaf_grad_is_not_kept_and_leaf_flags():
    x = tn.randn(2, requires_grad=True)
    h = x * 2
    h.sum().backward()
    assert x.is_leaf and not h.is_leaf and h.grad is None and h.requires_grad
    assert h.grad_fn is not None and x.grad_fn is None


def test_backward_of_non_scalar_needs_a_gradient():
    x = tn.randn(3, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"scalar outputs.*\(3,\)"):
        (x * 2).backward()


def test_backward_with_explicit_gradient():
    x = tn.randn(3, requires_grad=True)
    (x * 2).backward(tn.tensor([1.0, 10.0, 100.0]))
    np.testing.assert_allclose(x.grad.numpy(), [2, 20, 200])


def test_backward_gradient_shape_mismatch_raises():
    x = tn.randn(3, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"shape.*\(2,\).*\(3,\)"):
        (x * 2).backward(tn.ones(2))


def test_backward_on_tensor_without_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        tn.ones(2).sum().backward()


def test_backward_inputs_argument_accumulates_only_those():
    a = tn.ones(2, requires_grad=True)
    b = tn.ones(2, requires_grad=True)
    (a * b * 3).sum().backward(inputs=[a])
    np.testing.assert_array_equal(a.grad.numpy(), [3, 3])
    assert b.grad is None


def test_detach_cuts_the_graph():
    x = tn.tensor(2.0, requires_grad=True)
    y = x * x.detach()  # only the first factor carries gradient
    y.backward()
    assert x.grad.item() == 2.0
    assert not x.detach().requires_grad


def test_gradients_flow_to_each_dtype():
    a = tn.ones(2, dtype=tn.float32, requires_grad=True)
    b = tn.ones(2, dtype=tn.float64, requires_grad=True)
    (a * b).sum().backward()
    assert a.grad.dtype == tn.float32 and b.grad.dtype == tn.float64


def test_broadcast_gradient_is_reduced_to_input_shape():
    bias = tn.zeros(3, requires_grad=True)
    x = tn.ones(4, 3)
    (x + bias).sum().backward()
    np.testing.assert_array_equal(bias.grad.numpy(), [4, 4, 4])


def test_in_place_change_of_a_leaf_that_requires_grad_raises():
    w = tn.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="in place"):
        w.add_(1.0)
    with tn.no_grad():
        w.add_(1.0)
    assert w.tolist() == [2.0, 2.0]


def test_grad_from_create_graph_backward_can_be_updated_in_place():
    x = tn.ones(3, requires_grad=True)
    x.sum().backward(create_graph=True)
    with tn.no_grad():
        x.grad.mul_(2)
    assert x.grad.tolist() == [2.0, 2.0, 2.0]


def test_grad_wrt_a_non_leaf_does_not_run_or_free_its_node():
    # grad() with respect to h stops at h: h's own node (exp) neither runs nor frees its
    # saved tensors, so a later backward through h still works (as in PyTorch).
    x = tn.randn(3, requires_grad=True)
    h = x.exp()
    (g,) = tn.autograd.grad((h * 2).sum(), [h])
    assert g.tolist() == [2.0, 2.0, 2.0]
    (h * 3).sum().backward()
    assert x.grad.numpy() == pytest.approx(3 * np.exp(x.numpy()))
