"""Pooling kernels: Numba against the NumPy reference, and the reference against PyTorch."""
from __future__ import annotations

import numpy as np
import pytest

from tinynn.backend import kernels

# (shape, kernel, stride, padding, dilation, ceil_mode)
MAX_GEOMETRIES = [
    ((2, 3, 7, 9), (3, 2), (2, 1), (1, 1), (1, 2), False),
    ((1, 2, 8, 8), (2, 2), (2, 2), (0, 0), (1, 1), False),  # LeNet's pooling, batch 1
    ((2, 2, 7, 7), (3, 3), (2, 2), (1, 1), (1, 1), True),   # ceil_mode adds a partial window
    ((2, 2, 6, 5), (2, 3), (3, 2), (1, 0), (2, 1), True),
    ((1, 1, 5, 5), (5, 5), (1, 1), (2, 2), (1, 1), False),  # windows mostly padding
]
# (shape, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
AVG_GEOMETRIES = [
    ((2, 3, 7, 9), (3, 2), (2, 1), (1, 1), False, True, None),
    ((2, 3, 7, 9), (3, 2), (2, 1), (1, 1), False, False, None),
    ((2, 2, 7, 7), (3, 3), (2, 2), (1, 1), True, True, None),
    ((2, 2, 7, 7), (3, 3), (2, 2), (1, 1), True, False, None),
    ((1, 2, 6, 5), (2, 3), (2, 2), (1, 1), True, True, 5),
]
ADAPTIVE = [((2, 3, 7, 9), (3, 4)), ((2, 2, 8, 8), (1, 1)), ((1, 2, 5, 5), (5, 5)), ((2, 1, 6, 7), (4, 3)),
            ((1, 1, 3, 2), (5, 4))]  # output larger than input: overlapping one-pixel windows

TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-12)}


def _run(name, op, *args):
    with kernels.use(op, name):
        return kernels.get(op)(*args)


def _input(shape, dtype, contiguous, seed=0):
    x = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    return x if contiguous else np.asfortranarray(x)


def _both(op, *args):
    return _run("numba", op, *args), _run("reference", op, *args)


layouts = pytest.mark.parametrize("contiguous", [True, False], ids=["contiguous", "strided"])
dtypes = pytest.mark.parametrize("dtype", [np.float32, np.float64])


@layouts
@dtypes
@pytest.mark.parametrize("geometry", MAX_GEOMETRIES)
def test_max_pool_numba_matches_reference(geometry, dtype, contiguous):
    shape, *args = geometry
    x = _input(shape, dtype, contiguous)
    (y, idx), (y_ref, idx_ref) = _both("max_pool2d_forward", x, *args)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(idx, idx_ref)
    assert y.dtype == dtype and idx.dtype == np.int64
    grad_y = _input(y.shape, dtype, contiguous, seed=1)
    grad_x, grad_x_ref = _both("max_pool2d_backward", grad_y, idx, x.shape)
    np.testing.assert_allclose(grad_x, grad_x_ref, **TOL[dtype])


@layouts
@dtypes
@pytest.mark.parametrize("geometry", AVG_GEOMETRIES)
def test_avg_pool_numba_matches_reference(geometry, dtype, contiguous):
    shape, *args = geometry
    x = _input(shape, dtype, contiguous)
    y, y_ref = _both("avg_pool2d_forward", x, *args)
    np.testing.assert_allclose(y, y_ref, **TOL[dtype])
    assert y.dtype == dtype
    grad_y = _input(y.shape, dtype, contiguous, seed=1)
    grad_x, grad_x_ref = _both("avg_pool2d_backward", grad_y, x.shape, *args)
    np.testing.assert_allclose(grad_x, grad_x_ref, **TOL[dtype])


@layouts
@dtypes
@pytest.mark.parametrize("shape, output_size", ADAPTIVE)
def test_adaptive_numba_matches_reference(shape, output_size, dtype, contiguous):
    x = _input(shape, dtype, contiguous)
    y, y_ref = _both("adaptive_avg_pool2d_forward", x, output_size)
    np.testing.assert_allclose(y, y_ref, **TOL[dtype])
    grad_y = _input(y.shape, dtype, contiguous, seed=1)
    grad_x, grad_x_ref = _both("adaptive_avg_pool2d_backward", grad_y, x.shape)
    np.testing.assert_allclose(grad_x, grad_x_ref, **TOL[dtype])
    (m, idx), (m_ref, idx_ref) = _both("adaptive_max_pool2d_forward", x, output_size)
    np.testing.assert_array_equal(m, m_ref)
    np.testing.assert_array_equal(idx, idx_ref)


@pytest.mark.parametrize("name", ["reference", "numba"])
def test_max_pool_propagates_nan_and_keeps_first_of_ties(name):
    x = np.array([[[[1.0, 1.0], [0.0, np.nan]]]])
    y, idx = _run(name, "max_pool2d_forward", x, (2, 2), (2, 2), (0, 0), (1, 1), False)
    assert np.isnan(y[0, 0, 0, 0]) and idx[0, 0, 0, 0] == 3
    two_nans = np.array([[[[np.nan, 1.0], [np.nan, 2.0]]]])  # PyTorch returns the last NaN's index
    for padding in ((0, 0), (1, 1)):  # the dense and the window-list kernels
        y, idx = _run(name, "max_pool2d_forward", two_nans, (2, 2), (2, 2), padding, (1, 1), False)
        assert np.isnan(y[0, 0, 0, 0]) and idx[0, 0, 0, 0] == (2 if padding == (0, 0) else 0)
    y, idx = _run(name, "max_pool2d_forward", np.ones((1, 1, 2, 2)), (2, 2), (2, 2), (0, 0), (1, 1), False)
    assert idx[0, 0, 0, 0] == 0  # PyTorch keeps the first maximum


@dtypes
@pytest.mark.parametrize("values", ["ties", "nans"])
def test_max_pool_2x2_fast_path_equals_reference_on_ties_and_nans(values, dtype):
    # 2x2 windows with stride 2 take their own branch-free kernel: same values and indices.
    rng = np.random.default_rng(0)
    x = np.round(rng.standard_normal((3, 4, 10, 12))).astype(dtype)  # rounding makes many ties
    if values == "nans":
        x[rng.random(x.shape) < 0.15] = np.nan
    (y, idx), (y_ref, idx_ref) = _both("max_pool2d_forward", x, (2, 2), (2, 2), (0, 0), (1, 1), False)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(idx, idx_ref)


@pytest.mark.parity
@pytest.mark.parametrize("geometry", MAX_GEOMETRIES)
def test_max_pool_reference_matches_torch(geometry):
    torch = pytest.importorskip("torch")
    shape, kernel, stride, padding, dilation, ceil_mode = geometry
    x = _input(shape, np.float64, True)
    xt = torch.tensor(x, requires_grad=True)
    yt, it = torch.nn.functional.max_pool2d(xt, kernel, stride, padding, dilation, ceil_mode, return_indices=True)
    grad_y = _input(yt.shape, np.float64, True, seed=1)
    yt.backward(torch.tensor(grad_y))
    y, idx = _run("reference", "max_pool2d_forward", x, kernel, stride, padding, dilation, ceil_mode)
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_array_equal(idx, it.numpy())
    np.testing.assert_allclose(_run("reference", "max_pool2d_backward", grad_y, idx, x.shape), xt.grad.numpy())


@pytest.mark.parity
@pytest.mark.parametrize("geometry", AVG_GEOMETRIES)
def test_avg_pool_reference_matches_torch(geometry):
    torch = pytest.importorskip("torch")
    shape, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override = geometry
    x = _input(shape, np.float64, True)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.avg_pool2d(xt, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
    grad_y = _input(yt.shape, np.float64, True, seed=1)
    yt.backward(torch.tensor(grad_y))
    args = (kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
    np.testing.assert_allclose(_run("reference", "avg_pool2d_forward", x, *args), yt.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(_run("reference", "avg_pool2d_backward", grad_y, x.shape, *args), xt.grad.numpy(),
                               rtol=1e-12)


@pytest.mark.parity
@pytest.mark.parametrize("shape, output_size", ADAPTIVE)
def test_adaptive_reference_matches_torch(shape, output_size):
    torch = pytest.importorskip("torch")
    x = _input(shape, np.float64, True)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.adaptive_avg_pool2d(xt, output_size)
    grad_y = _input(yt.shape, np.float64, True, seed=1)
    yt.backward(torch.tensor(grad_y))
    np.testing.assert_allclose(_run("reference", "adaptive_avg_pool2d_forward", x, output_size), yt.detach().numpy(),
                               rtol=1e-12)
    np.testing.assert_allclose(_run("reference", "adaptive_avg_pool2d_backward", grad_y, x.shape), xt.grad.numpy(),
                               rtol=1e-12)
    mt, it = torch.nn.functional.adaptive_max_pool2d(torch.tensor(x), output_size, return_indices=True)
    m, idx = _run("reference", "adaptive_max_pool2d_forward", x, output_size)
    np.testing.assert_array_equal(m, mt.numpy())
    np.testing.assert_array_equal(idx, it.numpy())


@pytest.mark.parametrize("name", ["reference", "numba"])
def test_padding_larger_than_half_the_kernel_raises(name):
    with pytest.raises(ValueError, match="at most half"):
        _run(name, "max_pool2d_forward", np.zeros((1, 1, 4, 4)), (2, 2), (1, 1), (2, 2), (1, 1), False)
