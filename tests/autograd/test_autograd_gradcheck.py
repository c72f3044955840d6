"""gradcheck / gradgradcheck themselves: they pass right gradients, catch wrong ones,
and explain what they compared."""
from __future__ import annotations

import numpy as np
import pytest

import tinynn as tn
from tinynn.autograd import Function, GradcheckError, gradcheck, gradgradcheck


def _x(*shape):
    return tn.randn(*shape, dtype=tn.float64, requires_grad=True)


def test_gradcheck_passes_several_inputs_and_outputs():
    assert gradcheck(lambda a, b: (a * b, (a - b).exp()), (_x(2, 3), _x(3)))


def test_gradcheck_ignores_inputs_without_grad():
    constant = tn.randn(3, dtype=tn.float64)
    assert gradcheck(lambda a, c: a * c, (_x(3), constant))


def test_gradcheck_needs_float64():
    with pytest.raises(GradcheckError, match="input 0 has dtype float32.*float64"):
        gradcheck(lambda a: a * 2, (tn.randn(3, requires_grad=True),))


def test_gradcheck_needs_an_input_that_requires_grad():
    with pytest.raises(GradcheckError, match="none of the inputs requires grad"):
        gradcheck(lambda a: a * 2, (tn.randn(3, dtype=tn.float64),))


def test_gradcheck_leaves_inputs_unchanged():
    x = _x(2, 3)
    before = x.numpy().copy()
    gradcheck(lambda a: a.sin(), (x,))
    gradcheck(lambda a: a.sin(), (x,), fast_mode=True)
    np.testing.assert_array_equal(x.numpy(), before)


def test_gradcheck_fast_mode_on_a_large_input():
    x = _x(40, 50)  # 2000 elements: the full Jacobian would take 4000 evaluations
    assert gradcheck(lambda a: (a.tanh() @ a.T).sum(1), (x,), fast_mode=True)


class CubeWithFrozenBackward(Function):
    """Right first derivative, but computed on raw arrays: its own derivative is lost,
    the kind of silent second-order bug gradgradcheck exists for."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x ** 3

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * tn.tensor(3 * x.data ** 2)  # a constant: d/dx of it is lost


def test_gradgradcheck_catches_a_backward_that_is_not_differentiable():
    x = _x(3)
    assert gradcheck(CubeWithFrozenBackward.apply, (x,))
    with pytest.raises(GradcheckError, match="Jacobian mismatch"):
        gradgradcheck(CubeWithFrozenBackward.apply, (x,))


def test_gradgradcheck_passes_the_real_cube():
    assert gradgradcheck(lambda a: a ** 3, (_x(3),))


def test_gradgradcheck_with_given_grad_outputs():
    x = _x(3)
    v = tn.randn(3, dtype=tn.float64, requires_grad=True)
    assert gradgradcheck(lambda a: a.exp() * a, (x,), grad_outputs=[v])


@pytest.mark.parity
def test_gradcheck_agrees_with_torch_on_the_same_jacobian():
    torch = pytest.importorskip("torch")
    a = np.random.default_rng(0).standard_normal((2, 3))
    ours = tn.tensor(a, requires_grad=True)
    theirs = torch.tensor(a, requires_grad=True)
    (ours.tanh() * ours).sum().backward()
    (theirs.tanh() * theirs).sum().backward()
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-12)
    assert gradcheck(lambda t: t.tanh() * t, (tn.tensor(a, requires_grad=True),))
    assert torch.autograd.gradcheck(lambda t: t.tanh() * t, (torch.tensor(a, requires_grad=True),))


def test_gradcheck_of_a_non_contiguous_input():
    x = tn.randn(3, 2, dtype=tn.float64).T.detach().requires_grad_()
    assert not x.is_contiguous()
    assert gradcheck(lambda a: a.sin(), (x,))
