"""conv2d CUDA kernels (im2col + GEMM + col2im) under Numba's CUDA simulator, against the cpu reference."""
import numpy as np
import pytest

from tinynn.backend import kernels

from cudasim_helpers import IN_SIMULATOR, SKIP_REASON, assert_close

pytestmark = [pytest.mark.cudasim,
              pytest.mark.skipif(not IN_SIMULATOR, reason=SKIP_REASON)]

# (N, C, H, W, O, KH, KW, stride, padding, dilation, groups, dtype)
CASES = [
    (2, 4, 5, 6, 6, 3, 2, (2, 1), (1, 0), (1, 2), 2, np.float64),
    (1, 2, 4, 4, 3, 1, 1, (1, 1), (0, 0), (1, 1), 1, np.float64),
    (1, 3, 7, 5, 3, 3, 3, (2, 2), (2, 1), (2, 1), 3, np.float64),  # depthwise, dilated
    (2, 2, 3, 3, 4, 3, 3, (1, 1), (1, 1), (1, 1), 1, np.float32),
]


def _conv_kernel(op, name="numba_cuda"):
    with kernels.use(op, name, device="cuda"):
        return kernels.get(op, "cuda")


@pytest.mark.parametrize("name", ["numba_cuda", "cupy"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "x{}w{}s{}p{}d{}g{}-{}".format(
    c[:4], c[4:7], c[7], c[8], c[9], c[10], np.dtype(c[11]).name))
def test_conv2d_forward_and_backward_match_reference(name, case, rng, cpu_reference):
    N, C, H, W, O, KH, KW, stride, padding, dilation, groups, dtype = case
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((O, C // groups, KH, KW)).astype(dtype)
    geometry = (stride, padding, dilation, groups)

    y = _conv_kernel("conv2d_forward", name)(x, w, *geometry)
    assert y.dtype == dtype
    assert_close(y, cpu_reference("conv2d_forward")(x, w, *geometry), dtype, "conv2d_forward")

    grad_y = rng.standard_normal(y.shape).astype(dtype)
    grad_x = _conv_kernel("conv2d_backward_input", name)(grad_y, w, x.shape, *geometry)
    assert grad_x.shape == x.shape
    assert_close(grad_x, cpu_reference("conv2d_backward_input")(grad_y, w, x.shape, *geometry), dtype,
                 "conv2d_backward_input")
    grad_w = _conv_kernel("conv2d_backward_weight", name)(grad_y, x, w.shape, *geometry)
    assert grad_w.shape == w.shape
    assert_close(grad_w, cpu_reference("conv2d_backward_weight")(grad_y, x, w.shape, *geometry), dtype,
                 "conv2d_backward_weight")


@pytest.mark.parity
def test_conv2d_matches_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 4, 5, 5))
    w = rng.standard_normal((4, 2, 3, 2))
    geometry = ((2, 1), (1, 1), (1, 2), 2)
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    yt = torch.nn.functional.conv2d(xt, wt, None, *geometry)
    grad_y = rng.standard_normal(tuple(yt.shape))
    yt.backward(torch.tensor(grad_y))
    assert_close(_conv_kernel("conv2d_forward")(x, w, *geometry), yt.detach().numpy(), np.float64, "forward")
    assert_close(_conv_kernel("conv2d_backward_input")(grad_y, w, x.shape, *geometry), xt.grad.numpy(),
                 np.float64, "grad input")
    assert_close(_conv_kernel("conv2d_backward_weight")(grad_y, x, w.shape, *geometry), wt.grad.numpy(),
                 np.float64, "grad weight")


def test_conv2d_rejects_an_input_smaller_than_the_kernel():
    x = np.zeros((1, 1, 2, 2))
    w = np.zeros((1, 1, 3, 3))
    with pytest.raises(ValueError, match="too small"):
        _conv_kernel("conv2d_forward")(x, w, (1, 1), (0, 0), (1, 1), 1)


def test_conv2d_rejects_mismatched_groups():
    with pytest.raises(ValueError, match="groups"):
        _conv_kernel("conv2d_forward")(np.zeros((1, 3, 4, 4)), np.zeros((2, 2, 1, 1)), (1, 1), (0, 0), (1, 1), 1)
