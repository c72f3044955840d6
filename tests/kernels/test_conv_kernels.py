"""conv2d kernels: the fast (Numba im2col + BLAS) implementation against the NumPy reference,
and the reference against PyTorch, over odd geometries, dtypes and memory layouts."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinynn.backend import kernels
from tinynn.kernels.cpu import conv as conv_kernels

OPS = ("conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight")

# (N, C, H, W, O, KH, KW, stride, padding, dilation, groups)
GEOMETRIES = [
    (2, 3, 7, 9, 4, 3, 2, (2, 1), (1, 0), (1, 2), 1),   # odd sizes, mixed strides/dilation
    (1, 4, 8, 8, 6, 3, 3, (1, 1), (1, 1), (1, 1), 2),   # batch 1, groups
    (2, 4, 5, 6, 4, 3, 3, (2, 2), (1, 1), (1, 1), 4),   # depthwise
    (2, 3, 6, 5, 6, 3, 3, (1, 1), (2, 2), (2, 2), 3),   # depthwise with channel multiplier, big padding
    (3, 2, 6, 6, 5, 1, 1, (1, 1), (0, 0), (1, 1), 1),   # pointwise (no gathering)
    (2, 4, 9, 7, 3, 1, 1, (2, 3), (0, 0), (1, 1), 1),   # strided 1x1 (ResNet shortcut)
    (2, 1, 11, 10, 2, 5, 5, (1, 1), (2, 2), (1, 1), 1),  # LeNet-like
    (1, 2, 4, 4, 3, 4, 4, (3, 3), (0, 0), (1, 1), 1),   # kernel as large as the input
    (2, 2, 5, 12, 2, 2, 3, (1, 4), (0, 2), (1, 1), 1),  # stride larger than the kernel
]


def _ids(geometries):
    return ["N{}C{}H{}W{}O{}k{}x{}s{}p{}d{}g{}".format(*g[:7], *(f"{a}{b}" for a, b in g[7:10]), g[10])
            for g in geometries]


def _operands(geometry, dtype, contiguous, seed=0):
    N, C, H, W, O, KH, KW, stride, padding, dilation, groups = geometry
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((O, C // groups, KH, KW)).astype(dtype)
    if not contiguous:  # the same values in a transposed memory layout
        x = np.asfortranarray(x)
        w = np.asfortranarray(w)
        assert not x.flags.c_contiguous
    OH = (H + 2 * padding[0] - dilation[0] * (KH - 1) - 1) // stride[0] + 1
    OW = (W + 2 * padding[1] - dilation[1] * (KW - 1) - 1) // stride[1] + 1
    grad_y = rng.standard_normal((N, O, OH, OW)).astype(dtype)
    if not contiguous:
        grad_y = grad_y.transpose(0, 1, 3, 2).copy().transpose(0, 1, 3, 2)
    return x, w, grad_y, (stride, padding, dilation, groups)


def _all_passes(name, x, w, grad_y, geometry):
    with kernels.use(OPS[0], name), kernels.use(OPS[1], name), kernels.use(OPS[2], name):
        y = kernels.get(OPS[0])(x, w, *geometry)
        grad_x = kernels.get(OPS[1])(grad_y, w, x.shape, *geometry)
        grad_w = kernels.get(OPS[2])(grad_y, x, w.shape, *geometry)
    return y, grad_x, grad_w


TOL = {np.float32: dict(rtol=1e-4, atol=1e-4), np.float64: dict(rtol=1e-11, atol=1e-11)}


@pytest.mark.parametrize("contiguous", [True, False], ids=["contiguous", "strided"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=_ids(GEOMETRIES))
def test_numba_matches_reference(geometry, dtype, contiguous):
    x, w, grad_y, args = _operands(geometry, dtype, contiguous)
    expected = _all_passes("reference", x, w, grad_y, args)
    actual = _all_passes("numba", x, w, grad_y, args)
    for what, a, e in zip(("forward", "backward_input", "backward_weight"), actual, expected):
        assert a.shape == e.shape, what
        assert a.dtype == dtype, f"{what}: dtype {a.dtype}"
        np.testing.assert_allclose(a, e, err_msg=what, **TOL[dtype])


@settings(max_examples=30, deadline=None, derandomize=True)
@given(N=st.integers(1, 2), C_per_group=st.integers(1, 3), groups=st.integers(1, 3), O_per_group=st.integers(1, 3),
       H=st.integers(1, 9), W=st.integers(1, 9), KH=st.integers(1, 4), KW=st.integers(1, 4),
       sh=st.integers(1, 3), sw=st.integers(1, 3), ph=st.integers(0, 2), pw=st.integers(0, 2),
       dh=st.integers(1, 2), dw=st.integers(1, 2))
def test_numba_matches_reference_random_geometry(N, C_per_group, groups, O_per_group, H, W, KH, KW, sh, sw, ph, pw,
                                                 dh, dw):
    OH = (H + 2 * ph - dh * (KH - 1) - 1) // sh + 1
    OW = (W + 2 * pw - dw * (KW - 1) - 1) // sw + 1
    if OH <= 0 or OW <= 0:
        return
    geometry = (N, C_per_group * groups, H, W, O_per_group * groups, KH, KW, (sh, sw), (ph, pw), (dh, dw), groups)
    x, w, grad_y, args = _operands(geometry, np.float64, True)
    for a, e in zip(_all_passes("numba", x, w, grad_y, args), _all_passes("reference", x, w, grad_y, args)):
        np.testing.assert_allclose(a, e, rtol=1e-11, atol=1e-11)


@pytest.mark.parity
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=_ids(GEOMETRIES))
def test_reference_matches_torch(geometry):
    torch = pytest.importorskip("torch")
    x, w, grad_y, (stride, padding, dilation, groups) = _operands(geometry, np.float64, True)
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    yt = torch.nn.functional.conv2d(xt, wt, stride=stride, padding=padding, dilation=dilation, groups=groups)
    yt.backward(torch.tensor(grad_y))
    y, grad_x, grad_w = _all_passes("reference", x, w, grad_y, (stride, padding, dilation, groups))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grad_x, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grad_w, wt.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parity
@pytest.mark.parametrize("geometry", GEOMETRIES[:4], ids=_ids(GEOMETRIES[:4]))
def test_im2col_is_torch_unfold(geometry):
    torch = pytest.importorskip("torch")
    x, w, _, (stride, padding, dilation, _) = _operands(geometry, np.float32, True)
    kernel = w.shape[2:]
    cols = conv_kernels.im2col(x, kernel, stride, padding, dilation)
    unfolded = torch.nn.functional.unfold(torch.tensor(x), kernel, dilation, padding, stride).numpy()
    N, K, P = unfolded.shape
    np.testing.assert_array_equal(cols.reshape(K, N, P).transpose(1, 0, 2), unfolded)


def test_col2im_is_the_adjoint_of_im2col(rng):
    """<im2col(x), c> == <x, col2im(c)> for every x and c."""
    args = ((3, 2), (2, 1), (1, 2), (2, 1))
    x = rng.standard_normal((2, 3, 7, 6))
    cols = conv_kernels.im2col(x, *args)
    c = rng.standard_normal(cols.shape)
    assert np.isclose(np.sum(cols * c), np.sum(x * conv_kernels.col2im(c, x.shape, *args)))


@pytest.mark.parametrize("name", ["reference", "numba"])
def test_too_small_input_raises(name):
    x = np.zeros((1, 1, 2, 2), np.float32)
    w = np.zeros((1, 1, 3, 3), np.float32)
    with kernels.use("conv2d_forward", name), pytest.raises(ValueError, match="too small"):
        kernels.get("conv2d_forward")(x, w, (1, 1), (0, 0), (1, 1), 1)


def test_mixed_dtypes_promote():
    x = np.ones((1, 1, 3, 3), np.float32)
    w = np.ones((1, 1, 2, 2), np.float64)
    y = kernels.get("conv2d_forward")(x, w, (1, 1), (0, 0), (1, 1), 1)
    assert y.dtype == np.float64 and np.all(y == 4)


SPLIT = [GEOMETRIES[0], GEOMETRIES[3], GEOMETRIES[5]]


@pytest.mark.parametrize("geometry", SPLIT, ids=_ids(SPLIT))
@pytest.mark.parametrize("split", ["threads", "chunks"])
def test_batch_split_matches_reference(geometry, split, monkeypatch):
    """The fast kernels process the batch in chunks of images, and im2col / col2im hand parts of
    a chunk to worker threads above a size threshold; force both at test sizes."""
    if split == "threads":  # 3 threads for 3 images
        monkeypatch.setattr(conv_kernels, "MIN_PARALLEL_ELEMENTS", 0)
        monkeypatch.setattr(conv_kernels, "_threads", lambda: 3)
    else:  # one image per chunk
        monkeypatch.setattr(conv_kernels, "CHUNK_BYTES", 1)
    geometry = (3, *geometry[1:])
    x, w, grad_y, args = _operands(geometry, np.float64, True)
    for a, e in zip(_all_passes("numba", x, w, grad_y, args), _all_passes("reference", x, w, grad_y, args)):
        np.testing.assert_allclose(a, e, rtol=1e-11, atol=1e-11)
