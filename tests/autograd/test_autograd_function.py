"""User-defined ``Function``s (save_for_backward, needs_input_grad, mark_non_differentiable,
several outputs), tensor hooks and ``retain_grad``, and ``detect_anomaly``."""
from __future__ import annotations

import numpy as np
import pytest

import tinynn as tn
from tinynn.autograd import Function, gradcheck, gradgradcheck


class ScaledLinear(Function):
    """y = (x @ w) * scale, with a Python-number argument and gradients for two inputs."""

    calls = []

    @staticmethod
    def forward(ctx, x, w, scale):
        assert isinstance(x, np.ndarray) and isinstance(w, np.ndarray)  # raw arrays, not Tensors
        ctx.save_for_backward(x, w)
        ctx.scale = scale
        ScaledLinear.calls.append(ctx.needs_input_grad)
        return x @ w * scale

    @staticmethod
    def backward(ctx, grad_y):
        x, w = ctx.saved_tensors  # the input Tensors themselves
        grad_x = grad_y @ w.T * ctx.scale if ctx.needs_input_grad[0] else None
        grad_w = x.T @ grad_y * ctx.scale if ctx.needs_input_grad[1] else None
        return grad_x, grad_w, None


def test_custom_function_gradients_and_double_backward():
    x = tn.randn(2, 3, dtype=tn.float64, requires_grad=True)
    w = tn.randn(3, 4, dtype=tn.float64, requires_grad=True)
    assert gradcheck(lambda a, b: ScaledLinear.apply(a, b, 0.5), (x, w))
    assert gradgradcheck(lambda a, b: ScaledLinear.apply(a, b, 0.5), (x, w))


def test_custom_function_needs_input_grad():
    ScaledLinear.calls.clear()
    x = tn.randn(2, 3, requires_grad=True)
    w = tn.randn(3, 4)  # a constant: no gradient needed
    y = ScaledLinear.apply(x, w, 2.0)
    assert ScaledLinear.calls[-1] == (True, False, False)
    y.sum().backward()
    assert w.grad is None
    np.testing.assert_allclose(x.grad.numpy(), np.ones((2, 4)) @ w.numpy().T * 2.0, rtol=1e-6)
    with tn.no_grad():
        ScaledLinear.apply(x, w, 2.0)
    assert ScaledLinear.calls[-1] == (False, False, False)


def test_custom_function_output_is_graph_node():
    x = tn.randn(2, 3, requires_grad=True)
    y = ScaledLinear.apply(x, tn.randn(3, 1), 1.0)
    assert isinstance(y.grad_fn, ScaledLinear) and y.requires_grad
    assert not ScaledLinear.apply(tn.randn(2, 3), tn.randn(3, 1), 1.0).requires_grad


class SortValues(Function):
    """Two outputs: sorted values (differentiable) and the permutation (not)."""

    @staticmethod
    def forward(ctx, x):
        order = np.argsort(x, axis=-1)
        ctx.mark_non_differentiable(order)
        ctx.save_for_backward(order)
        return np.take_along_axis(x, order, axis=-1), order

    @staticmethod
    def backward(ctx, grad_values, grad_order):
        (order,) = ctx.saved_tensors
        return tn.zeros(grad_values.shape, dtype=grad_values.dtype).scatter_add(-1, order, grad_values)


def test_mark_non_differentiable_and_multiple_outputs():
    x = tn.tensor([[3.0, 1.0, 2.0]], dtype=tn.float64, requires_grad=True)
    values, order = SortValues.apply(x)
    assert values.requires_grad and not order.requires_grad and order.grad_fn is None
    assert order.tolist() == [[1, 2, 0]]
    (values * tn.tensor([[1.0, 10.0, 100.0]], dtype=tn.float64)).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[100, 1, 10]])
    assert gradcheck(lambda a: SortValues.apply(a)[0], (tn.randn(2, 4, dtype=tn.float64, requires_grad=True),))


class WrongCube(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x ** 3

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * 2 * x * x  # wrong: should be 3 x^2


def test_gradcheck_catches_a_wrong_backward_and_names_input_and_element():
    x = tn.tensor([[0.5, -1.0], [2.0, 1.5]], dtype=tn.float64, requires_grad=True)
    with pytest.raises(tn.autograd.GradcheckError) as info:
        gradcheck(WrongCube.apply, (x,))
    message = str(info.value)
    assert "input 0" in message and "element (0, 0)" in message
    assert "analytic" in message and "numeric" in message
    assert gradcheck(WrongCube.apply, (x,), raise_exception=False) is False


def test_gradcheck_fast_mode_catches_a_wrong_backward():
    x = tn.randn(3, 4, dtype=tn.float64, requires_grad=True)
    with pytest.raises(tn.autograd.GradcheckError, match="random direction"):
        gradcheck(WrongCube.apply, (x,), fast_mode=True)
    assert gradcheck(lambda a: a ** 3, (x,), fast_mode=True)


def test_backward_returning_the_wrong_number_of_gradients_is_reported():
    class TooFew(Function):
        @staticmethod
        def forward(ctx, a, b):
            return a + b

        @staticmethod
        def backward(ctx, grad):
            return (grad,)

    a, b = tn.ones(2, requires_grad=True), tn.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="TooFew.backward returned 1 gradients, expected 2"):
        TooFew.apply(a, b).sum().backward()


# --- hooks ------------------------------------------------------------------------------------


def test_register_hook_sees_and_can_replace_the_gradient():
    x = tn.tensor([1.0, 2.0], requires_grad=True)
    h = x * 2
    seen = []
    h.register_hook(lambda g: seen.append(g.numpy().copy()))
    x.register_hook(lambda g: g * 10)  # a leaf hook that replaces the gradient
    (h * 3).sum().backward()
    np.testing.assert_array_equal(seen[0], [3, 3])
    np.testing.assert_array_equal(x.grad.numpy(), [60, 60])


def test_retain_grad_keeps_a_non_leaf_gradient():
    x = tn.tensor([1.0, 2.0], requires_grad=True)
    h = x * x
    h.retain_grad()
    (h * 3).sum().backward()
    np.testing.assert_array_equal(h.grad.numpy(), [3, 3])
    np.testing.assert_array_equal(x.grad.numpy(), [6, 12])


def test_hook_on_tensor_without_grad_raises():
    with pytest.raises(RuntimeError, match="doesn't require gradient"):
        tn.ones(2).register_hook(lambda g: g)


# --- detect_anomaly ---------------------------------------------------------------------------


def test_anomaly_forward_names_the_op_and_the_line():
    x = tn.tensor([-1.0, 1.0], requires_grad=True)
    with pytest.warns(RuntimeWarning), tn.autograd.detect_anomaly():
        with pytest.raises(RuntimeError, match=r"(?s)'Log' returned nan.*forward.*test_autograd_function.py"):
            x.log()


class NanBackward(Function):
    @staticmethod
    def forward(ctx, x):
        return x * 1.0

    @staticmethod
    def backward(ctx, grad):
        return grad.data * np.nan  # a raw array: no tinynn op runs inside this backward


def test_anomaly_backward_names_the_node_whose_backward_made_nan():
    x = tn.ones(2, requires_grad=True)
    with tn.autograd.detect_anomaly():
        y = (NanBackward.apply(x) * 2).sum()
        with pytest.raises(RuntimeError, match="NanBackward"):
            y.backward()


def test_anomaly_backward_names_the_op_not_its_helpers():
    x = tn.tensor([0.0, 1.0], requires_grad=True)
    with pytest.warns(RuntimeWarning), tn.autograd.detect_anomaly():
        y = x.sqrt().sum()
        with pytest.raises(RuntimeError, match="Sqrt"):
            y.backward()


def test_anomaly_mode_is_quiet_without_nan_and_restored_after():
    x = tn.ones(2, requires_grad=True)
    with tn.autograd.detect_anomaly():
        assert tn.autograd.is_anomaly_enabled()
        (x.exp() * 2).sum().backward()
    assert not tn.autograd.is_anomaly_enabled()


def test_register_hook_returns_a_removable_handle():
    x = tn.ones(2, requires_grad=True)
    handle = x.register_hook(lambda g: g * 100)
    handle.remove()
    (x * 1).sum().backward()
    assert x.grad.tolist() == [1.0, 1.0]
