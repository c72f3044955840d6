"""2-D convolution on the GPU: im2col + one GEMM per group (cuBLAS) + col2im.

The column matrix folds the batch into the GEMM's columns, so each group is one
large GEMM instead of N small ones::

    cols[(c*KH + kh)*KW + kw, (n*OH + oh)*OW + ow] = x[n, c, oh*sh - ph + kh*dh, ow*sw - pw + kw*dw]

(zero where the index falls in the padding). The rows of one group are
contiguous, so ``cols.reshape(G, Cg*KH*KW, N*OH*OW)`` splits it per group and

    forward          y_g      = w_g   @ cols_g          (G, Og, N*OH*OW)
    grad input       gcols_g  = w_g^T @ gy_g            then col2im (a gather, no atomics)
    grad weight      gw_g     = gy_g  @ cols_g^T

Two implementations share the GEMMs and differ in how columns are built:
``numba_cuda`` gathers them with Numba CUDA kernels (one launch each way), ``cupy``
with a strided view copy and per-tap strided adds (CuPy calls only).
"""
from __future__ import annotations

from numba import cuda

from ...backend.kernels import register
from ..cpu.shapes import check_pair, conv_output_size
from ._launch import array_module, launch_elementwise


@cuda.jit(cache=True)  # compiled on first launch, then cached on disk
def _im2col_kernel(x, cols, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, out_h, out_w):
    """One item per element of ``cols`` (rows: c, kh, kw; columns: n, oh, ow)."""
    _, _, height, width = x.shape
    n_columns = cols.shape[1]
    count = cols.shape[0] * n_columns
    for item in range(cuda.grid(1), count, cuda.gridsize(1)):
        row = item // n_columns
        column = item % n_columns
        kw = row % kernel_w
        kh = (row // kernel_w) % kernel_h
        c = row // (kernel_w * kernel_h)
        ow = column % out_w
        oh = (column // out_w) % out_h
        n = column // (out_w * out_h)
        ih = oh * stride_h - pad_h + kh * dil_h
        iw = ow * stride_w - pad_w + kw * dil_w
        if 0 <= ih < height and 0 <= iw < width:
            cols[row, column] = x[n, c, ih, iw]
        else:
            cols[row, column] = 0


@cuda.jit(cache=True)  # compiled on first launch, then cached on disk
def _col2im_kernel(cols, grad_x, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w,
                   out_h, out_w, zero):
    """grad_x[n, c, ih, iw] = sum of cols[(c, kh, kw), (n, oh, ow)] over every (kh, oh) with
    ih = oh*sh - ph + kh*dh (and the same along w): each thread gathers its own input
    element, so no two threads write the same place. ``zero`` is a 0 of the dtype,
    so sums stay in that precision."""
    batch, channels, height, width = grad_x.shape
    count = batch * channels * height * width
    for item in range(cuda.grid(1), count, cuda.gridsize(1)):
        iw = item % width
        ih = (item // width) % height
        c = (item // (width * height)) % channels
        n = item // (width * height * channels)
        total = zero
        for kh in range(kernel_h):
            top = ih + pad_h - kh * dil_h  # = oh * stride_h when this tap hits ih
            if top < 0 or top % stride_h != 0:
                continue
            oh = top // stride_h
            if oh >= out_h:
                continue
            for kw in range(kernel_w):
                left = iw + pad_w - kw * dil_w
                if left < 0 or left % stride_w != 0:
                    continue
                ow = left // stride_w
                if ow >= out_w:
                    continue
                row = (c * kernel_h + kh) * kernel_w + kw
                total += cols[row, (n * out_h + oh) * out_w + ow]
        grad_x[n, c, ih, iw] = total


def _geometry(x_shape, w_shape, stride, padding, dilation):
    stride, padding, dilation = check_pair("stride", stride), check_pair("padding", padding), check_pair(
        "dilation", dilation)
    kernel_h, kernel_w = w_shape[2], w_shape[3]
    out_h = conv_output_size(x_shape[2], kernel_h, stride[0], padding[0], dilation[0])
    out_w = conv_output_size(x_shape[3], kernel_w, stride[1], padding[1], dilation[1])
    if out_h <= 0 or out_w <= 0:
        raise ValueError(f"conv2d: input {tuple(x_shape)} is too small for kernel {tuple(w_shape)} "
                         f"with padding {padding} and dilation {dilation}")
    return (kernel_h, kernel_w, *stride, *padding, *dilation), out_h, out_w


# ----------------------------------------------------------------------------- two ways to build the columns
def _im2col_numba(x, geometry, out_h, out_w):
    """cols (C*KH*KW, N*OH*OW) gathered by one Numba CUDA kernel."""
    xp = array_module(x)
    batch, channels = x.shape[0], x.shape[1]
    kernel_h, kernel_w = geometry[0], geometry[1]
    cols = xp.empty((channels * kernel_h * kernel_w, batch * out_h * out_w), dtype=x.dtype)
    launch_elementwise(_im2col_kernel, cols.size, x, cols, *geometry, out_h, out_w)
    return cols


def _col2im_numba(grad_cols, x_shape, geometry, out_h, out_w):
    """grad_x gathered by one Numba CUDA kernel (each thread sums its own input element)."""
    xp = array_module(grad_cols)
    grad_x = xp.empty(tuple(x_shape), dtype=grad_cols.dtype)
    zero = grad_x.dtype.type(0)
    launch_elementwise(_col2im_kernel, grad_x.size, grad_cols, grad_x, *geometry, out_h, out_w, zero)
    return grad_x


def _im2col_strided(x, geometry, out_h, out_w):
    """cols from a strided view of the padded input, copied by CuPy in one launch:
    windows[c, kh, kw, n, oh, ow] = x_padded[n, c, kh*dh + oh*sh, kw*dw + ow*sw]."""
    xp = array_module(x)
    kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w = geometry
    padded = xp.ascontiguousarray(xp.pad(x, ((0, 0), (0, 0), (pad_h, pad_h), (pad_w, pad_w))))
    batch, channels = padded.shape[:2]
    step_n, step_c, step_h, step_w = padded.strides
    windows = xp.lib.stride_tricks.as_strided(
        padded, shape=(channels, kernel_h, kernel_w, batch, out_h, out_w),
        strides=(step_c, step_h * dil_h, step_w * dil_w, step_n, step_h * stride_h, step_w * stride_w))
    return xp.ascontiguousarray(windows).reshape(channels * kernel_h * kernel_w, batch * out_h * out_w)


def _col2im_per_tap(grad_cols, x_shape, geometry, out_h, out_w):
    """grad_x by adding each tap's columns into a strided slice of the padded gradient
    (KH*KW CuPy adds; taps never overlap themselves, so no atomics)."""
    xp = array_module(grad_cols)
    kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w = geometry
    batch, channels, height, width = x_shape
    grad_padded = xp.zeros((batch, channels, height + 2 * pad_h, width + 2 * pad_w), dtype=grad_cols.dtype)
    per_tap = grad_cols.reshape(channels, kernel_h, kernel_w, batch, out_h, out_w)
    for kh in range(kernel_h):
        rows = slice(kh * dil_h, kh * dil_h + stride_h * (out_h - 1) + 1, stride_h)
        for kw in range(kernel_w):
            cols = slice(kw * dil_w, kw * dil_w + stride_w * (out_w - 1) + 1, stride_w)
            grad_padded[:, :, rows, cols] += per_tap[:, kh, kw].transpose(1, 0, 2, 3)
    return xp.ascontiguousarray(grad_padded[:, :, pad_h:pad_h + height, pad_w:pad_w + width])


# ----------------------------------------------------------------------------- the GEMMs, shared
def _grad_y_per_group(grad_y, groups):
    """(N, O, OH, OW) -> (G, O/G, N*OH*OW), the GEMM layout of the columns."""
    xp = array_module(grad_y)
    batch, out_channels = grad_y.shape[:2]
    per_channel = xp.ascontiguousarray(grad_y.transpose(1, 0, 2, 3))
    return per_channel.reshape(groups, out_channels // groups, -1)


def _check(x, w, groups):
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError(f"conv2d: expected 4-D input and weight, got {tuple(x.shape)} and {tuple(w.shape)}")
    if x.shape[1] != w.shape[1] * groups or w.shape[0] % groups != 0:
        raise ValueError(f"conv2d: input {tuple(x.shape)} and weight {tuple(w.shape)} do not match groups={groups}")


def _forward(im2col, x, w, stride, padding, dilation, groups):
    """y[n, o] = sum over c in o's group, kh, kw of w[o, c, kh, kw] * x_padded[n, c, oh*s + kh*d, ow*s + kw*d]."""
    _check(x, w, groups)
    xp = array_module(x)
    geometry, out_h, out_w = _geometry(x.shape, w.shape, stride, padding, dilation)
    batch = x.shape[0]
    out_channels = w.shape[0]
    cols = im2col(x, geometry, out_h, out_w)
    w_per_group = w.reshape(groups, out_channels // groups, -1)
    y = xp.matmul(w_per_group, cols.reshape(groups, w_per_group.shape[2], -1))  # (G, Og, N*OH*OW)
    y = y.reshape(out_channels, batch, out_h, out_w).transpose(1, 0, 2, 3)
    return xp.ascontiguousarray(y)


def _backward_input(col2im, grad_y, w, x_shape, stride, padding, dilation, groups):
    """grad_x = col2im(w_g^T @ grad_y_g): every output gradient flows back through the taps that made it."""
    xp = array_module(grad_y)
    geometry, out_h, out_w = _geometry(x_shape, w.shape, stride, padding, dilation)
    out_channels = w.shape[0]
    w_per_group = w.reshape(groups, out_channels // groups, -1)
    grad_cols = xp.matmul(w_per_group.transpose(0, 2, 1), _grad_y_per_group(grad_y, groups))
    grad_cols = grad_cols.reshape(-1, grad_cols.shape[2])  # (C*KH*KW, N*OH*OW)
    return col2im(grad_cols, x_shape, geometry, out_h, out_w)


def _backward_weight(im2col, grad_y, x, w_shape, stride, padding, dilation, groups):
    """grad_w_g = grad_y_g @ cols_g^T: each weight sums (output grad x input it multiplied) over batch and positions."""
    xp = array_module(grad_y)
    geometry, out_h, out_w = _geometry(x.shape, w_shape, stride, padding, dilation)
    cols = im2col(x, geometry, out_h, out_w)
    cols_per_group = cols.reshape(groups, cols.shape[0] // groups, -1)
    grad_w = xp.matmul(_grad_y_per_group(grad_y, groups), cols_per_group.transpose(0, 2, 1))
    return grad_w.reshape(tuple(w_shape))


# ----------------------------------------------------------------------------- registered implementations
@register("conv2d_forward", "numba_cuda", device="cuda", priority=10)
def conv2d_forward(x, w, stride, padding, dilation, groups: int):
    return _forward(_im2col_numba, x, w, stride, padding, dilation, groups)


@register("conv2d_backward_input", "numba_cuda", device="cuda", priority=10)
def conv2d_backward_input(grad_y, w, x_shape, stride, padding, dilation, groups: int):
    return _backward_input(_col2im_numba, grad_y, w, x_shape, stride, padding, dilation, groups)


@register("conv2d_backward_weight", "numba_cuda", device="cuda", priority=10)
def conv2d_backward_weight(grad_y, x, w_shape, stride, padding, dilation, groups: int):
    return _backward_weight(_im2col_numba, grad_y, x, w_shape, stride, padding, dilation, groups)


# The same GEMMs around column builders made only of CuPy calls: no Numba launch
# (about 100 us each, against about 10 us for a CuPy kernel), at the price of a
# padded copy and KH*KW adds in the backward pass. Benchmarks decide the default.
@register("conv2d_forward", "cupy", device="cuda", priority=5)
def conv2d_forward_cupy(x, w, stride, padding, dilation, groups: int):
    return _forward(_im2col_strided, x, w, stride, padding, dilation, groups)


@register("conv2d_backward_input", "cupy", device="cuda", priority=5)
def conv2d_backward_input_cupy(grad_y, w, x_shape, stride, padding, dilation, groups: int):
    return _backward_input(_col2im_per_tap, grad_y, w, x_shape, stride, padding, dilation, groups)


@register("conv2d_backward_weight", "cupy", device="cuda", priority=5)
def conv2d_backward_weight_cupy(grad_y, x, w_shape, stride, padding, dilation, groups: int):
    return _backward_weight(_im2col_strided, grad_y, x, w_shape, stride, padding, dilation, groups)
