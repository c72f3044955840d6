"""Pooling CUDA kernels under Numba's CUDA simulator, against the cpu reference (and PyTorch)."""
import numpy as np
import pytest

from tinynn.backend import kernels

from cudasim_helpers import IN_SIMULATOR, SKIP_REASON, assert_close

pytestmark = [pytest.mark.cudasim, pytest.mark.skipif(not IN_SIMULATOR, reason=SKIP_REASON)]

# (kernel_size, stride, padding, dilation, ceil_mode)
MAX_CASES = [
    ((3, 2), (2, 2), (1, 1), (1, 1), True),
    ((2, 2), (1, 2), (0, 1), (2, 1), False),
    ((2, 3), (2, 2), (0, 0), (1, 1), True),  # last window hangs over the edge
]
# (kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
AVG_CASES = [
    ((3, 2), (2, 2), (1, 1), True, True, None),
    ((3, 3), (2, 1), (1, 0), True, False, None),
    ((2, 2), (1, 2), (0, 1), False, True, 3),
]
ADAPTIVE_SIZES = [(3, 4), (2, 5), (1, 1)]


def cuda_kernel(op):
    return kernels.get(op, "cuda")


@pytest.fixture(params=[np.float64, np.float32], ids=["float64", "float32"])
def x(request, rng):
    return rng.standard_normal((2, 2, 5, 6)).astype(request.param)


@pytest.mark.parametrize("geometry", MAX_CASES)
def test_max_pool2d_matches_reference(geometry, x, rng, cpu_reference):
    y, indices = cuda_kernel("max_pool2d_forward")(x, *geometry)
    y_ref, indices_ref = cpu_reference("max_pool2d_forward")(x, *geometry)
    assert_close(y, y_ref, x.dtype, "max_pool2d_forward")
    assert indices.dtype == np.int64
    np.testing.assert_array_equal(indices, indices_ref)
    grad_y = rng.standard_normal(y.shape).astype(x.dtype)
    assert_close(cuda_kernel("max_pool2d_backward")(grad_y, indices, x.shape),
                 cpu_reference("max_pool2d_backward")(grad_y, indices_ref, x.shape), x.dtype, "max_pool2d_backward")


@pytest.mark.parametrize("geometry", AVG_CASES)
def test_avg_pool2d_matches_reference(geometry, x, rng, cpu_reference):
    y = cuda_kernel("avg_pool2d_forward")(x, *geometry)
    assert_close(y, cpu_reference("avg_pool2d_forward")(x, *geometry), x.dtype, "avg_pool2d_forward")
    grad_y = rng.standard_normal(y.shape).astype(x.dtype)
    assert_close(cuda_kernel("avg_pool2d_backward")(grad_y, x.shape, *geometry),
                 cpu_reference("avg_pool2d_backward")(grad_y, x.shape, *geometry), x.dtype, "avg_pool2d_backward")


@pytest.mark.parametrize("output_size", ADAPTIVE_SIZES)
def test_adaptive_pools_match_reference(output_size, x, rng, cpu_reference):
    y = cuda_kernel("adaptive_avg_pool2d_forward")(x, output_size)
    assert_close(y, cpu_reference("adaptive_avg_pool2d_forward")(x, output_size), x.dtype, "adaptive avg")
    grad_y = rng.standard_normal(y.shape).astype(x.dtype)
    assert_close(cuda_kernel("adaptive_avg_pool2d_backward")(grad_y, x.shape),
                 cpu_reference("adaptive_avg_pool2d_backward")(grad_y, x.shape), x.dtype, "adaptive avg backward")
    y, indices = cuda_kernel("adaptive_max_pool2d_forward")(x, output_size)
    y_ref, indices_ref = cpu_reference("adaptive_max_pool2d_forward")(x, output_size)
    assert_close(y, y_ref, x.dtype, "adaptive max")
    np.testing.assert_array_equal(indices, indices_ref)


def test_max_pool2d_backward_adds_up_overlapping_windows():
    # a 3x3 plane whose maximum sits in the middle: all four 2x2 windows (stride 1) pick it
    x = np.zeros((1, 1, 3, 3))
    x[0, 0, 1, 1] = 1.0
    y, indices = cuda_kernel("max_pool2d_forward")(x, (2, 2), (1, 1), (0, 0), (1, 1), False)
    np.testing.assert_array_equal(indices, np.full((1, 1, 2, 2), 4))
    grad_x = cuda_kernel("max_pool2d_backward")(np.ones_like(y), indices, x.shape)
    expected = np.zeros_like(x)
    expected[0, 0, 1, 1] = 4.0
    np.testing.assert_array_equal(grad_x, expected)


@pytest.mark.parity
def test_pools_match_torch(rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = rng.standard_normal((1, 2, 5, 6))
    for kernel_size, stride, padding, dilation, ceil_mode in MAX_CASES:
        xt = torch.tensor(x, requires_grad=True)
        yt, it = F.max_pool2d(xt, kernel_size, stride, padding, dilation, ceil_mode, return_indices=True)
        grad_y = rng.standard_normal(tuple(yt.shape))
        yt.backward(torch.tensor(grad_y))
        y, indices = cuda_kernel("max_pool2d_forward")(x, kernel_size, stride, padding, dilation, ceil_mode)
        assert_close(y, yt.detach().numpy(), np.float64, "max pool")
        np.testing.assert_array_equal(indices, it.numpy())
        assert_close(cuda_kernel("max_pool2d_backward")(grad_y, indices, x.shape), xt.grad.numpy(), np.float64,
                     "max pool backward")
    for geometry in AVG_CASES:
        xt = torch.tensor(x, requires_grad=True)
        yt = F.avg_pool2d(xt, *geometry)
        grad_y = rng.standard_normal(tuple(yt.shape))
        yt.backward(torch.tensor(grad_y))
        assert_close(cuda_kernel("avg_pool2d_forward")(x, *geometry), yt.detach().numpy(), np.float64, "avg pool")
        assert_close(cuda_kernel("avg_pool2d_backward")(grad_y, x.shape, *geometry), xt.grad.numpy(), np.float64,
                     "avg pool backward")
    for output_size in ADAPTIVE_SIZES:
        xt = torch.tensor(x, requires_grad=True)
        yt = F.adaptive_avg_pool2d(xt, output_size)
        grad_y = rng.standard_normal(tuple(yt.shape))
        yt.backward(torch.tensor(grad_y))
        assert_close(cuda_kernel("adaptive_avg_pool2d_forward")(x, output_size), yt.detach().numpy(), np.float64,
                     "adaptive avg")
        assert_close(cuda_kernel("adaptive_avg_pool2d_backward")(grad_y, x.shape), xt.grad.numpy(), np.float64,
                     "adaptive avg backward")
        yt, it = F.adaptive_max_pool2d(torch.tensor(x), output_size, return_indices=True)
        y, indices = cuda_kernel("adaptive_max_pool2d_forward")(x, output_size)
        assert_close(y, yt.numpy(), np.float64, "adaptive max")
        np.testing.assert_array_equal(indices, it.numpy())
