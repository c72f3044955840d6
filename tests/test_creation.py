"""Creating tensors: tensor/as_tensor/from_numpy, filled and random constructors, *_like."""
from __future__ import annotations

import numpy as np
import pytest

import tinynn as tn


@pytest.mark.parametrize("data, dtype", [
    ([1.0, 2.0], tn.float32), ([1, 2], tn.int64), ([True, False], tn.bool), (3.5, tn.float32), (7, tn.int64),
    (np.ones(2, dtype=np.float64), tn.float64), (np.ones(2, dtype=np.int32), tn.int32), ([[1, 2.5]], tn.float32),
])
def test_tensor_infers_dtype_like_pytorch(data, dtype):
    assert tn.tensor(data).dtype == dtype


def test_tensor_copies_and_from_numpy_shares():
    a = np.zeros(3, dtype=np.float32)
    copied, shared, as_t = tn.tensor(a), tn.from_numpy(a), tn.as_tensor(a)
    a[0] = 5
    assert copied[0].item() == 0 and shared[0].item() == 5 and as_t[0].item() == 5
    with pytest.raises(TypeError, match="from_numpy"):
        tn.from_numpy([1, 2])


def test_tensor_from_tensor_and_explicit_dtype():
    x = tn.tensor([1, 2], dtype=tn.float64, requires_grad=True)
    assert x.dtype == tn.float64 and x.requires_grad and x.is_leaf
    y = tn.tensor(x)
    assert y.data is not x.data and not y.requires_grad
    assert tn.tensor([1, 2], dtype="float32").dtype == tn.float32 and tn.tensor([1], dtype=float).dtype == tn.float64


@pytest.mark.parametrize("make, shape, dtype, value", [
    (lambda: tn.zeros(2, 3), (2, 3), tn.float32, 0), (lambda: tn.zeros((2, 3)), (2, 3), tn.float32, 0),
    (lambda: tn.ones([4]), (4,), tn.float32, 1), (lambda: tn.ones(2, dtype=tn.int64), (2,), tn.int64, 1),
    (lambda: tn.full((2, 2), 7.0), (2, 2), tn.float32, 7), (lambda: tn.full((2,), 3), (2,), tn.int64, 3),
    (lambda: tn.zeros_like(tn.ones(3, dtype=tn.float64)), (3,), tn.float64, 0),
    (lambda: tn.ones_like(tn.ones(2, 2)), (2, 2), tn.float32, 1),
    (lambda: tn.full_like(tn.ones(2), 4.0), (2,), tn.float32, 4),
])
def test_filled(make, shape, dtype, value):
    t = make()
    assert t.shape == shape and t.dtype == dtype and (t.numpy() == value).all()


def test_empty_and_zero_size():
    assert tn.empty(2, 0).shape == (2, 0) and tn.empty_like(tn.ones(3)).shape == (3,)
    assert tn.zeros(0).sum().item() == 0


def test_arange_linspace_eye_match_numpy():
    assert tn.arange(5).dtype == tn.int64 and tn.arange(5).tolist() == list(range(5))
    assert tn.arange(1, 2, 0.25).dtype == tn.float32
    np.testing.assert_allclose(tn.arange(1, 2, 0.25).numpy(), np.arange(1, 2, 0.25))
    np.testing.assert_allclose(tn.linspace(0, 1, 5).numpy(), np.linspace(0, 1, 5))
    assert tn.linspace(0, 1, 5).dtype == tn.float32
    np.testing.assert_array_equal(tn.eye(2, 3).numpy(), np.eye(2, 3))


@pytest.mark.parametrize("sample", [lambda: tn.rand(3, 4), lambda: tn.randn(3, 4), lambda: tn.randint(0, 10, (3, 4)),
                                    lambda: tn.randperm(12), lambda: tn.rand_like(tn.ones(2, dtype=tn.float64))])
def test_random_is_reproducible_with_manual_seed(sample):
    tn.manual_seed(123)
    first = sample().numpy().copy()
    tn.manual_seed(123)
    np.testing.assert_array_equal(sample().numpy(), first)


def test_random_ranges_and_dtypes():
    u = tn.rand(1000)
    assert u.dtype == tn.float32 and 0 <= u.numpy().min() and u.numpy().max() < 1
    n = tn.randn(10000, dtype=tn.float64)
    assert n.dtype == tn.float64 and abs(n.mean().item()) < 0.05 and abs(n.std().item() - 1) < 0.05
    r = tn.randint(3, 6, (1000,))
    assert r.dtype == tn.int64 and set(r.tolist()) == {3, 4, 5}
    assert sorted(tn.randperm(6).tolist()) == list(range(6))
    assert tn.randn(2, requires_grad=True).requires_grad


@pytest.mark.parametrize("make, dtype, low, high", [
    (lambda: tn.randint(10, (50,)), tn.int64, 0, 10),                 # randint(high, size)
    (lambda: tn.randint(3, 6, (50,)), tn.int64, 3, 6),
    (lambda: tn.randint(0, 4, (50,), dtype=tn.int32), tn.int32, 0, 4),
    (lambda: tn.randint(0, 4, (50,), dtype=tn.float32), tn.float32, 0, 4),
    (lambda: tn.randint_like(tn.ones(50), 5), tn.float32, 0, 5),      # keeps the float dtype, as PyTorch
])
def test_randint_call_forms(make, dtype, low, high):
    t = make()
    assert t.shape == (50,) and t.dtype == dtype
    values = t.numpy()
    assert (values == np.round(values)).all() and values.min() >= low and values.max() < high


def test_generator_gives_independent_reproducible_streams():
    a = tn.rand(4, generator=tn.Generator().manual_seed(1))
    b = tn.rand(4, generator=tn.Generator().manual_seed(1))
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_bernoulli_and_multinomial():
    p = tn.full((2000,), 0.25)
    assert abs(tn.bernoulli(p).mean().item() - 0.25) < 0.05
    draws = tn.multinomial(tn.tensor([0.0, 1.0, 3.0]), 400, replacement=True)
    counts = np.bincount(draws.numpy(), minlength=3)
    assert counts[0] == 0 and 0.6 < counts[2] / 400 < 0.9
    no_repeat = tn.multinomial(tn.tensor([1.0, 1.0, 1.0, 1.0]), 4)
    assert sorted(no_repeat.tolist()) == [0, 1, 2, 3]


def test_creation_with_requires_grad_needs_float():
    assert tn.zeros(2, requires_grad=True).requires_grad
    with pytest.raises(RuntimeError, match="floating point"):
        tn.zeros(2, dtype=tn.int64, requires_grad=True)
