"""Pooling ops: PyTorch parity (values, indices, gradients), gradcheck through both kernel
implementations, double backward, and argument errors."""
from __future__ import annotations

import contextlib

import numpy as np
import pytest

import tinynn as tn
from tinynn.autograd import gradcheck, gradgradcheck
from tinynn.backend import kernels
from tinynn.ops import pooling as P

POOL_OPS = ("max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward",
            "adaptive_avg_pool2d_forward", "adaptive_avg_pool2d_backward", "adaptive_max_pool2d_forward")


@pytest.fixture(params=["numba", "reference"])
def impl(request):
    with contextlib.ExitStack() as stack:
        for op in POOL_OPS:
            stack.enter_context(kernels.use(op, request.param))
        yield request.param


def _distinct(shape, seed=0):
    """Values at least 0.1 apart: no ties, so max pooling's finite differences are well defined."""
    n = int(np.prod(shape))
    return np.random.default_rng(seed).permutation(np.arange(n) * 0.1 - n * 0.05).reshape(shape)


# (function name, input shape, kwargs)
PARITY = [
    ("max_pool2d", (2, 3, 7, 8), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, return_indices=True)),
    ("max_pool2d", (2, 3, 8, 8), dict(kernel_size=2)),
    ("max_pool2d", (3, 7, 7), dict(kernel_size=(3, 2), stride=(1, 2), dilation=(2, 1), return_indices=True)),
    ("avg_pool2d", (2, 3, 7, 8), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)),
    ("avg_pool2d", (2, 3, 7, 8), dict(kernel_size=(2, 3), padding=1, divisor_override=4)),
    ("avg_pool2d", (3, 6, 6), dict(kernel_size=2)),
    ("adaptive_avg_pool2d", (2, 3, 7, 9), dict(output_size=(3, 4))),
    ("adaptive_avg_pool2d", (2, 3, 8, 8), dict(output_size=1)),
    ("adaptive_avg_pool2d", (2, 3, 7, 9), dict(output_size=(None, 2))),
    ("adaptive_max_pool2d", (2, 3, 7, 9), dict(output_size=(3, 4), return_indices=True)),
    ("max_pool1d", (2, 3, 9), dict(kernel_size=3, stride=2, padding=1, return_indices=True)),
    ("max_pool1d", (3, 10), dict(kernel_size=2, ceil_mode=True)),
    ("avg_pool1d", (2, 3, 9), dict(kernel_size=3, stride=2, padding=1, count_include_pad=False)),
    ("adaptive_avg_pool1d", (2, 3, 9), dict(output_size=4)),
    ("adaptive_max_pool1d", (2, 3, 9), dict(output_size=4, return_indices=True)),
]


@pytest.mark.parity
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, shape, kwargs", PARITY, ids=[f"{n}-{s}-{k}".replace(" ", "") for n, s, k in PARITY])
def test_torch_parity(name, shape, kwargs, dtype, impl):
    torch = pytest.importorskip("torch")
    x = _distinct(shape).astype(dtype)
    ours, theirs = tn.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, y_t = getattr(P, name)(ours, **kwargs), getattr(torch.nn.functional, name)(theirs, **kwargs)
    if kwargs.get("return_indices"):
        (y, indices), (y_t, indices_t) = y, y_t
        assert indices.dtype == np.int64
        np.testing.assert_array_equal(indices.numpy(), indices_t.numpy())
    assert y.shape == tuple(y_t.shape) and y.dtype == dtype
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(y.detach().numpy(), y_t.detach().numpy(), **tol)
    grad = np.random.default_rng(1).standard_normal(y.shape).astype(dtype)
    y.backward(tn.tensor(grad))
    y_t.backward(torch.tensor(grad))
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), **tol)


GRADCHECK = [
    ("max_pool2d", dict(kernel_size=2, stride=1, padding=1)),
    ("max_pool2d", dict(kernel_size=3, stride=2, dilation=2, ceil_mode=True)),
    ("avg_pool2d", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)),
    ("avg_pool2d", dict(kernel_size=2, divisor_override=3)),
    ("adaptive_avg_pool2d", dict(output_size=(2, 3))),
    ("adaptive_max_pool2d", dict(output_size=3)),
]


@pytest.mark.parametrize("name, kwargs", GRADCHECK, ids=[f"{n}-{k}" for n, k in GRADCHECK])
def test_gradcheck_and_gradgradcheck(name, kwargs, impl):
    x = tn.tensor(_distinct((1, 2, 4, 5)), requires_grad=True)

    def fn(x):
        return getattr(P, name)(x, **kwargs)

    assert gradcheck(fn, (x,))
    assert gradgradcheck(fn, (x,))


def test_max_pool_indices_carry_no_gradient():
    x = tn.tensor(_distinct((1, 1, 4, 4)), requires_grad=True)
    y, indices = P.max_pool2d(x, 2, return_indices=True)
    assert y.requires_grad and not indices.requires_grad


@pytest.mark.parametrize("call, message", [
    (lambda: P.max_pool2d(tn.zeros(1, 1, 4, 4), 2, padding=2), r"max_pool2d: pad should be at most half"),
    (lambda: P.max_pool2d(tn.zeros(4, 4), 2), r"max_pool2d: expected a 3-d \(unbatched\) or 4-d"),
    (lambda: P.avg_pool2d(tn.zeros(1, 1, 4, 4), 2, stride=0), r"avg_pool2d: .*must be positive"),
    (lambda: P.max_pool2d(tn.zeros(1, 1, 2, 2), 3), r"max_pool2d: input \(1, 1, 2, 2\) is too small"),
    (lambda: P.adaptive_avg_pool2d(tn.zeros(1, 1, 4, 4), (0, 2)), r"output_size must be positive"),
    (lambda: P.avg_pool1d(tn.zeros(1, 1, 2, 4), 2), r"avg_pool1d: expected a 2-d \(unbatched\) or 3-d"),
    (lambda: P.max_pool2d(tn.zeros(1, 1, 4, 4, dtype=tn.int64), 2), r"floating"),
])
def test_errors_name_the_op(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()
