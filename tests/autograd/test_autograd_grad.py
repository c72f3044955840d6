"""``tn.autograd.grad`` (allow_unused, create_graph, higher-order derivatives) and the
grad modes (no_grad, enable_grad, set_grad_enabled as contexts, calls and decorators)."""
from __future__ import annotations

import numpy as np
import pytest

import tinynn as tn
from tinynn.autograd import grad


# --- tn.autograd.grad ------------------------------------------------------------------------


def test_grad_returns_without_accumulating():
    x = tn.tensor([1.0, 2.0], requires_grad=True)
    (g,) = grad((x * x).sum(), x)
    np.testing.assert_array_equal(g.numpy(), [2, 4])
    assert x.grad is None and not g.requires_grad


def test_grad_of_several_inputs_and_outputs():
    a = tn.tensor(2.0, requires_grad=True)
    b = tn.tensor(3.0, requires_grad=True)
    ga, gb = grad([a * b, a + b], [a, b])  # d(ab + a + b)
    assert (ga.item(), gb.item()) == (3.0 + 1.0, 2.0 + 1.0)


def test_grad_with_grad_outputs():
    x = tn.tensor([1.0, 2.0], requires_grad=True)
    (g,) = grad(x * 3, x, grad_outputs=tn.tensor([1.0, -1.0]))
    np.testing.assert_array_equal(g.numpy(), [3, -3])


def test_grad_of_unused_input_raises_unless_allowed():
    x = tn.tensor(1.0, requires_grad=True)
    unused = tn.tensor(1.0, requires_grad=True)
    with pytest.raises(RuntimeError, match="input 1 was not used.*allow_unused=True"):
        grad(x * 2, [x, unused])
    gx, gu = grad(x * 2, [x, unused], allow_unused=True)
    assert gx.item() == 2.0 and gu is None


def test_grad_of_input_that_does_not_require_grad_raises():
    x = tn.tensor(1.0, requires_grad=True)
    with pytest.raises(RuntimeError, match="input 0 does not require grad"):
        grad(x * 2, tn.tensor(1.0))


def test_second_and_third_derivative_of_cube():
    x = tn.tensor(2.0, requires_grad=True)
    (d1,) = grad(x ** 3, x, create_graph=True)    # 3x^2 = 12
    (d2,) = grad(d1, x, create_graph=True)        # 6x = 12
    (d3,) = grad(d2, x)                           # 6
    assert (d1.item(), d2.item(), d3.item()) == (12.0, 12.0, 6.0)
    assert d1.requires_grad and not d3.requires_grad


def test_second_derivative_through_a_network_like_expression():
    x = tn.tensor([0.3, -0.7], dtype=tn.float64, requires_grad=True)
    (g,) = grad(x.tanh().sum(), x, create_graph=True)
    (h,) = grad(g.sum(), x)  # d/dx (1 - tanh^2) = -2 tanh (1 - tanh^2)
    t = np.tanh(x.numpy())
    np.testing.assert_allclose(h.numpy(), -2 * t * (1 - t * t), rtol=1e-12)


def test_hessian_vector_product():
    x = tn.tensor([1.0, 2.0, 3.0], dtype=tn.float64, requires_grad=True)
    v = tn.tensor([1.0, 0.0, -1.0], dtype=tn.float64)
    (g,) = grad((x ** 3).sum(), x, create_graph=True)
    (hv,) = grad((g * v).sum(), x)  # the Hessian is diag(6x)
    np.testing.assert_allclose(hv.numpy(), 6 * x.numpy() * v.numpy())


def test_backward_with_create_graph_builds_graph_of_grad():
    x = tn.tensor(3.0, requires_grad=True)
    (x ** 2).backward(create_graph=True)
    assert x.grad.item() == 6.0 and x.grad.requires_grad
    (g2,) = grad(x.grad, x)
    assert g2.item() == 2.0


# --- grad modes --------------------------------------------------------------------------------


def test_no_grad_context_records_nothing():
    x = tn.ones(2, requires_grad=True)
    with tn.no_grad():
        y = x * 2
        assert not tn.is_grad_enabled()
    assert tn.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None


def test_no_grad_decorator():
    x = tn.ones(2, requires_grad=True)

    @tn.no_grad()
    def double(t):
        return t * 2

    assert not double(x).requires_grad and tn.is_grad_enabled()
    assert double.__name__ == "double"


def test_enable_grad_inside_no_grad_as_context_and_decorator():
    x = tn.ones(2, requires_grad=True)

    @tn.enable_grad()
    def recorded(t):
        return t * 2

    with tn.no_grad():
        with tn.enable_grad():
            inside = x * 2
        outside = x * 2
        decorated = recorded(x)
    assert inside.requires_grad and decorated.requires_grad and not outside.requires_grad


def test_set_grad_enabled_as_call_context_and_decorator():
    x = tn.ones(2, requires_grad=True)
    try:
        tn.set_grad_enabled(False)
        assert not (x * 2).requires_grad
    finally:
        tn.set_grad_enabled(True)
    with tn.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert tn.is_grad_enabled()

    @tn.set_grad_enabled(False)
    def frozen(t):
        return t * 2

    assert tn.is_grad_enabled(), "decorating must not switch the mode"
    assert not frozen(x).requires_grad and tn.is_grad_enabled()


def test_grad_mode_restored_after_exception():
    with pytest.raises(ValueError):
        with tn.no_grad():
            raise ValueError
    assert tn.is_grad_enabled()


def test_requires_grad_propagates_only_from_inputs_that_need_it():
    a = tn.ones(2)
    b = tn.ones(2, requires_grad=True)
    assert not (a * 2).requires_grad
    assert (a * b).requires_grad


def test_no_grad_decorator_without_parentheses():
    @tn.no_grad
    def double(t):
        return t * 2

    assert not double(tn.ones(2, requires_grad=True)).requires_grad
