"""``tn.Tensor``: attributes, conversions, autograd flags, in-place data updates, operators."""
from __future__ import annotations

import numpy as np
import pytest

import tinynn as tn


def test_attributes():
    x = tn.zeros(2, 3)
    assert x.shape == (2, 3) and x.ndim == 2 and x.dtype == tn.float32 and isinstance(x.dtype, np.dtype)
    assert str(x.device) == "cpu" and x.device == tn.device("cpu") and not x.is_cuda
    assert isinstance(x.data, np.ndarray) and x.grad is None and x.grad_fn is None and x.is_leaf
    assert x.size() == (2, 3) and x.size(1) == 3 and x.dim() == 2 and x.numel() == 6 and len(x) == 2
    assert x.element_size() == 4 and x.nbytes == 24 and x.is_floating_point()


def test_repr_shows_grad_information():
    assert repr(tn.tensor([1, 2])) == "tensor([1, 2])"
    assert "requires_grad=True" in repr(tn.ones(2, requires_grad=True))
    assert "grad_fn=<MulBackward>" in repr(tn.ones(2, requires_grad=True) * 2)
    assert "dtype=tinynn.float64" in repr(tn.ones(2, dtype=tn.float64))


def test_conversions():
    x = tn.tensor([[1.5, 2.0]])
    assert x.tolist() == [[1.5, 2.0]] and isinstance(x.numpy(), np.ndarray)
    assert tn.tensor(2.5).item() == 2.5 and isinstance(tn.tensor(3).item(), int)
    assert float(tn.tensor([2.0])) == 2.0 and int(tn.tensor(3)) == 3
    assert [1, 2, 3][tn.tensor(1)] == 2
    with pytest.raises(ValueError, match=r"item.*\(1, 2\)"):
        x.item()


@pytest.mark.parametrize("convert, dtype", [
    (lambda t: t.double(), tn.float64), (lambda t: t.float(), tn.float32), (lambda t: t.half(), tn.float16),
    (lambda t: t.long(), tn.int64), (lambda t: t.int(), tn.int32), (lambda t: t.bool(), tn.bool),
    (lambda t: t.to(tn.float64), tn.float64), (lambda t: t.to("cpu", tn.float64), tn.float64),
    (lambda t: t.to(dtype=tn.int64), tn.int64), (lambda t: t.type_as(tn.ones(1, dtype=tn.float64)), tn.float64),
])
def test_dtype_conversions(convert, dtype):
    assert convert(tn.tensor([1.0, 0.0])).dtype == dtype


def test_to_same_dtype_and_device_returns_self():
    x = tn.ones(2)
    assert x.to(tn.float32) is x and x.to("cpu") is x and x.cpu() is x


def test_dtype_conversion_is_differentiable():
    x = tn.ones(2, requires_grad=True)
    x.double().sum().backward()
    assert x.grad.dtype == tn.float32 and x.grad.tolist() == [1.0, 1.0]


def test_bool_of_tensor():
    assert bool(tn.tensor([1.0])) and not bool(tn.tensor(0.0))
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(tn.ones(2))


def test_iteration_and_len_of_0d():
    assert [t.item() for t in tn.tensor([1.0, 2.0])] == [1.0, 2.0]
    with pytest.raises(TypeError, match="0-d"):
        len(tn.tensor(1.0))


def test_requires_grad_rules():
    x = tn.ones(2)
    assert x.requires_grad_() is x and x.requires_grad
    with pytest.raises(RuntimeError, match="floating point"):
        tn.ones(2, dtype=tn.int64).requires_grad_()
    with pytest.raises(RuntimeError, match="leaf"):
        (x * 2).requires_grad_(False)


def test_detach_shares_data_and_clone_copies_with_gradient():
    x = tn.ones(2, requires_grad=True)
    d = x.detach()
    assert d.data is x.data and not d.requires_grad
    c = x.clone()
    assert c.data is not x.data and c.requires_grad
    (c * 3).sum().backward()
    assert x.grad.tolist() == [3.0, 3.0]


def test_in_place_updates_outside_autograd():
    x = tn.zeros(3)
    x.fill_(2.0).add_(1.0).mul_(2.0).sub_(1.0, alpha=2).div_(2.0)
    assert x.tolist() == [2.0, 2.0, 2.0]
    x.clamp_(max=1.5)
    assert x.tolist() == [1.5] * 3
    x.copy_(tn.tensor([1.0, 2.0, 3.0]))
    assert x.tolist() == [1.0, 2.0, 3.0]
    x.zero_()
    assert x.tolist() == [0.0] * 3


def test_copy_shape_error_names_shapes():
    with pytest.raises(RuntimeError, match=r"copy_.*\(2,\).*\(3,\)"):
        tn.zeros(3).copy_(tn.ones(2))


def test_in_place_random_init_is_seeded():
    tn.manual_seed(3)
    a = tn.empty(4).uniform_(-1, 1)
    tn.manual_seed(3)
    b = tn.empty(4).uniform_(-1, 1)
    assert a.tolist() == b.tolist() and all(-1 <= v < 1 for v in a.tolist())
    assert tn.empty(1000).normal_(5.0, 0.1).mean().item() == pytest.approx(5.0, abs=0.05)


def test_operators_match_functions():
    a, b = tn.tensor([1.0, 4.0]), tn.tensor([2.0, 2.0])
    assert (a + b).tolist() == [3, 6] and (a - b).tolist() == [-1, 2] and (a * b).tolist() == [2, 8]
    assert (a / b).tolist() == [0.5, 2] and (a ** b).tolist() == [1, 16] and (-a).tolist() == [-1, -4]
    assert (a // b).tolist() == [0, 2] and (a % b).tolist() == [1, 0] and abs(-a).tolist() == [1, 4]
    assert (1 + a).tolist() == [2, 5] and (1 - a).tolist() == [0, -3] and (2 / b).tolist() == [1, 1]
    assert (a > b).tolist() == [False, True] and (a == b).tolist() == [False, False]
    assert ((a > 1) & (b > 1)).tolist() == [False, True] and (~(a > 1)).tolist() == [True, False]
    m = tn.ones(2, 3)
    assert (m @ tn.ones(3)).tolist() == [3, 3]


def test_numpy_array_on_the_left_gives_a_tensor():
    out = np.ones(2) + tn.ones(2)
    assert isinstance(out, tn.Tensor)


def test_methods_are_the_functions():
    x = tn.randn(2, 3)
    np.testing.assert_array_equal(x.sum(1).numpy(), tn.sum(x, 1).numpy())
    np.testing.assert_array_equal(x.exp().numpy(), tn.exp(x).numpy())
    assert x.view_as(tn.ones(3, 2)).shape == (3, 2)
    assert x.where(x > 0, 0.0).shape == (2, 3)


def test_new_tensor_helpers_keep_dtype():
    x = tn.ones(2, dtype=tn.float64)
    for made in (x.new_zeros(3), x.new_ones((3,)), x.new_full((3,), 2.0), x.new_empty(3), x.new_tensor([1, 2])):
        assert made.dtype == tn.float64
    assert x.new_zeros(2, dtype=tn.int64).dtype == tn.int64


def test_hash_is_identity_and_eq_is_elementwise():
    a = tn.ones(2)
    assert {a: 1}[a] == 1 and (a == tn.ones(2)).tolist() == [True, True]


@pytest.mark.cuda
def test_mixed_device_op_raises_naming_devices():
    with pytest.raises(RuntimeError, match="same device.*cpu.*cuda"):
        tn.ones(2) + tn.ones(2, device="cuda")


@pytest.mark.cuda
def test_to_cuda_and_back_is_differentiable():
    x = tn.ones(2, requires_grad=True)
    y = x.cuda() * 2
    assert y.device == tn.device("cuda") and y.cpu().device == tn.device("cpu")
    y.sum().backward()
    assert x.grad.device == tn.device("cpu") and x.grad.tolist() == [2.0, 2.0]
