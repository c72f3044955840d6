"""Max, average and adaptive pooling on the GPU (Numba CUDA), one thread per output
element in the forward passes.

Backward passes are gathers (each thread sums the output gradients that reach its
input element, so no atomics) wherever the window geometry is known. The max-pool
backward only gets the saved argmax indices, so it scatters with atomic adds.
Max-pool indices are PyTorch's: the flat position ``ih * W + iw`` of the maximum in
its (n, c) plane.
"""
from __future__ import annotations

import math

from numba import cuda

from ...backend.kernels import register
from ..cpu.shapes import check_pair, pool_output_size
from ._launch import array_module, launch_elementwise


def _unflatten(item, channels, height, width):
    """(n, c, h, w) of a flat index into an (N, C, H, W) array."""
    w = item % width
    h = (item // width) % height
    c = (item // (width * height)) % channels
    n = item // (width * height * channels)
    return n, c, h, w


_unflatten_device = cuda.jit(device=True)(_unflatten)


# ----------------------------------------------------------------------------- max pooling
@cuda.jit(cache=True)  # compiled on first launch, then cached on disk
def _max_pool_kernel(x, y, indices, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w):
    """y = max of the window; indices = ih*W + iw of the first maximum (NaN wins, as in PyTorch)."""
    _, _, height, width = x.shape
    batch, channels, out_h, out_w = y.shape
    for item in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        n, c, oh, ow = _unflatten_device(item, channels, out_h, out_w)
        best_index = -1
        best = x[n, c, 0, 0]
        for kh in range(kernel_h):
            ih = oh * stride_h - pad_h + kh * dil_h
            if ih < 0 or ih >= height:
                continue
            for kw in range(kernel_w):
                iw = ow * stride_w - pad_w + kw * dil_w
                if iw < 0 or iw >= width:
                    continue
                value = x[n, c, ih, iw]
                if best_index < 0 or value > best or math.isnan(value):
                    best = value
                    best_index = ih * width + iw
        y[n, c, oh, ow] = best
        indices[n, c, oh, ow] = best_index


@cuda.jit(cache=True)  # compiled on first launch, then cached on disk
def _max_pool_backward_kernel(grad_y, indices, grad_x):
    """grad_x[plane, indices[plane, k]] += grad_y[plane, k]; windows may overlap, hence atomics."""
    planes, outputs = grad_y.shape
    for item in range(cuda.grid(1), planes * outputs, cuda.gridsize(1)):
        plane = item // outputs
        k = item % outputs
        index = indices[plane, k]
        if index >= 0:
            cuda.atomic.add(grad_x, (plane, index), grad_y[plane, k])


@register("max_pool2d_forward", "numba_cuda", device="cuda", priority=10)
def max_pool2d_forward(x, kernel_size, stride, padding, dilation, ceil_mode: bool):
    """(y, indices): the maximum of each (dilated) window and its flat index in the H*W plane."""
    xp = array_module(x)
    kernel_size, stride = check_pair("kernel_size", kernel_size), check_pair("stride", stride)
    padding, dilation = check_pair("padding", padding), check_pair("dilation", dilation)
    batch, channels, height, width = x.shape
    out_h = pool_output_size(height, kernel_size[0], stride[0], padding[0], dilation[0], ceil_mode)
    out_w = pool_output_size(width, kernel_size[1], stride[1], padding[1], dilation[1], ceil_mode)
    y = xp.empty((batch, channels, out_h, out_w), dtype=x.dtype)
    indices = xp.empty(y.shape, dtype=xp.int64)
    launch_elementwise(_max_pool_kernel, y.size, x, y, indices, *kernel_size, *stride, *padding, *dilation)
    return y, indices


@register("max_pool2d_backward", "numba_cuda", device="cuda", priority=10)
def max_pool2d_backward(grad_y, indices, x_shape):
    """grad_x: each output gradient goes to the input element that was the maximum (also for adaptive max pooling)."""
    xp = array_module(grad_y)
    batch, channels, height, width = x_shape
    planes = batch * channels
    # CUDA has no float16 atomic add on these arrays: half precision accumulates in float32
    accumulate = xp.float32 if grad_y.dtype == xp.float16 else grad_y.dtype
    grad_x = xp.zeros((planes, height * width), dtype=accumulate)
    flat_grad_y = xp.ascontiguousarray(grad_y, dtype=accumulate).reshape(planes, -1)
    flat_indices = xp.ascontiguousarray(indices).reshape(planes, -1)
    launch_elementwise(_max_pool_backward_kernel, flat_grad_y.size, flat_grad_y, flat_indices, grad_x)
    return grad_x.reshape(tuple(x_shape)).astype(grad_y.dtype, copy=False)


# ----------------------------------------------------------------------------- average pooling
@cuda.jit(device=True)
def _avg_window(oh, ow, height, width, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w,
                count_include_pad, divisor_override):
    """PyTorch's window of output (oh, ow): clipped bounds and the divisor of its sum."""
    top = oh * stride_h - pad_h
    left = ow * stride_w - pad_w
    bottom = min(top + kernel_h, height + pad_h)
    right = min(left + kernel_w, width + pad_w)
    padded_size = (bottom - top) * (right - left)  # counts the padding, not past it
    top, left = max(top, 0), max(left, 0)
    bottom, right = min(bottom, height), min(right, width)
    if divisor_override > 0:
        divisor = divisor_override
    elif count_include_pad:
        divisor = padded_size
    else:
        divisor = (bottom - top) * (right - left)
    return top, left, bottom, right, divisor


@cuda.jit(cache=True)  # compiled on first launch, then cached on disk
def _avg_pool_kernel(x, y, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, count_include_pad,
                     divisor_override, zero):
    _, _, height, width = x.shape
    batch, channels, out_h, out_w = y.shape
    for item in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        n, c, oh, ow = _unflatten_device(item, channels, out_h, out_w)
        top, left, bottom, right, divisor = _avg_window(oh, ow, height, width, kernel_h, kernel_w, stride_h,
                                                        stride_w, pad_h, pad_w, count_include_pad,
                                                        divisor_override)
        total = zero
        for ih in range(top, bottom):
            for iw in range(left, right):
                total += x[n, c, ih, iw]
        y[n, c, oh, ow] = total / divisor


@cuda.jit(cache=True)  # compiled on first launch, then cached on disk
def _avg_pool_backward_kernel(grad_y, grad_x, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w,
                              count_include_pad, divisor_override, zero):
    """grad_x[ih, iw] = sum of grad_y[oh, ow] / divisor(oh, ow) over the windows that contain (ih, iw)."""
    batch, channels, height, width = grad_x.shape
    out_h, out_w = grad_y.shape[2], grad_y.shape[3]
    for item in range(cuda.grid(1), grad_x.size, cuda.gridsize(1)):
        n, c, ih, iw = _unflatten_device(item, channels, height, width)
        # window oh covers rows [oh*s - p, oh*s - p + k): those with oh*s - p <= ih < oh*s - p + k
        first_oh = max(0, (ih + pad_h - kernel_h) // stride_h + 1)
        last_oh = min(out_h - 1, (ih + pad_h) // stride_h)
        first_ow = max(0, (iw + pad_w - kernel_w) // stride_w + 1)
        last_ow = min(out_w - 1, (iw + pad_w) // stride_w)
        total = zero
        for oh in range(first_oh, last_oh + 1):
            for ow in range(first_ow, last_ow + 1):
                window = _avg_window(oh, ow, height, width, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w,
                                     count_include_pad, divisor_override)
                total += grad_y[n, c, oh, ow] / window[4]
        grad_x[n, c, ih, iw] = total


def _avg_arguments(kernel_size, stride, padding, count_include_pad, divisor_override):
    kernel_size, stride, padding = (check_pair("kernel_size", kernel_size), check_pair("stride", stride),
                                    check_pair("padding", padding))
    return (*kernel_size, *stride, *padding, bool(count_include_pad), int(divisor_override or 0))


@register("avg_pool2d_forward", "numba_cuda", device="cuda", priority=10)
def avg_pool2d_forward(x, kernel_size, stride, padding, ceil_mode: bool, count_include_pad: bool,
                       divisor_override):
    """y = (sum of the window) / divisor, the divisor chosen as PyTorch does."""
    xp = array_module(x)
    arguments = _avg_arguments(kernel_size, stride, padding, count_include_pad, divisor_override)
    batch, channels, height, width = x.shape
    kh, kw, sh, sw, ph, pw = arguments[:6]
    out_h = pool_output_size(height, kh, sh, ph, 1, ceil_mode)
    out_w = pool_output_size(width, kw, sw, pw, 1, ceil_mode)
    y = xp.empty((batch, channels, out_h, out_w), dtype=x.dtype)
    launch_elementwise(_avg_pool_kernel, y.size, x, y, *arguments, x.dtype.type(0))
    return y


@register("avg_pool2d_backward", "numba_cuda", device="cuda", priority=10)
def avg_pool2d_backward(grad_y, x_shape, kernel_size, stride, padding, ceil_mode: bool, count_include_pad: bool,
                        divisor_override):
    """grad_x: each output gradient is spread evenly (1/divisor) over its window."""
    xp = array_module(grad_y)
    arguments = _avg_arguments(kernel_size, stride, padding, count_include_pad, divisor_override)
    grad_x = xp.empty(tuple(x_shape), dtype=grad_y.dtype)
    launch_elementwise(_avg_pool_backward_kernel, grad_x.size, grad_y, grad_x, *arguments, grad_y.dtype.type(0))
    return grad_x


# ----------------------------------------------------------------------------- adaptive pooling
@cuda.jit(device=True)
def _adaptive_start(index, in_size, out_size):
    return (index * in_size) // out_size  # floor(index * in / out)


@cuda.jit(device=True)
def _adaptive_end(index, in_size, out_size):
    return ((index + 1) * in_size + out_size - 1) // out_size  # ceil((index + 1) * in / out)


@cuda.jit(cache=True)  # compiled on first launch, then cached on disk
def _adaptive_avg_pool_kernel(x, y, zero):
    _, _, height, width = x.shape
    batch, channels, out_h, out_w = y.shape
    for item in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        n, c, oh, ow = _unflatten_device(item, channels, out_h, out_w)
        top, bottom = _adaptive_start(oh, height, out_h), _adaptive_end(oh, height, out_h)
        left, right = _adaptive_start(ow, width, out_w), _adaptive_end(ow, width, out_w)
        total = zero
        for ih in range(top, bottom):
            for iw in range(left, right):
                total += x[n, c, ih, iw]
        y[n, c, oh, ow] = total / ((bottom - top) * (right - left))


@cuda.jit(cache=True)  # compiled on first launch, then cached on disk
def _adaptive_avg_pool_backward_kernel(grad_y, grad_x, zero):
    """grad_x[ih, iw] = sum of grad_y[oh, ow] / window size over the cells whose window contains (ih, iw):
    those with floor(ih*OH/H) <= oh < ceil((ih+1)*OH/H)."""
    batch, channels, height, width = grad_x.shape
    out_h, out_w = grad_y.shape[2], grad_y.shape[3]
    for item in range(cuda.grid(1), grad_x.size, cuda.gridsize(1)):
        n, c, ih, iw = _unflatten_device(item, channels, height, width)
        total = zero
        for oh in range(_adaptive_start(ih, out_h, height), _adaptive_end(ih, out_h, height)):
            rows = _adaptive_end(oh, height, out_h) - _adaptive_start(oh, height, out_h)
            for ow in range(_adaptive_start(iw, out_w, width), _adaptive_end(iw, out_w, width)):
                cols = _adaptive_end(ow, width, out_w) - _adaptive_start(ow, width, out_w)
                total += grad_y[n, c, oh, ow] / (rows * cols)
        grad_x[n, c, ih, iw] = total


@cuda.jit(cache=True)  # compiled on first launch, then cached on disk
def _adaptive_max_pool_kernel(x, y, indices):
    _, _, height, width = x.shape
    batch, channels, out_h, out_w = y.shape
    for item in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        n, c, oh, ow = _unflatten_device(item, channels, out_h, out_w)
        top, bottom = _adaptive_start(oh, height, out_h), _adaptive_end(oh, height, out_h)
        left, right = _adaptive_start(ow, width, out_w), _adaptive_end(ow, width, out_w)
        best = x[n, c, top, left]
        best_index = top * width + left
        for ih in range(top, bottom):
            for iw in range(left, right):
                value = x[n, c, ih, iw]
                if value > best or math.isnan(value):
                    best = value
                    best_index = ih * width + iw
        y[n, c, oh, ow] = best
        indices[n, c, oh, ow] = best_index


def _adaptive_output_size(x_shape, output_size) -> tuple[int, int]:
    """An int or an (int | None, int | None) pair; None keeps the input size."""
    if isinstance(output_size, int):
        output_size = (output_size, output_size)
    out_h, out_w = output_size
    return (x_shape[2] if out_h is None else int(out_h)), (x_shape[3] if out_w is None else int(out_w))


@register("adaptive_avg_pool2d_forward", "numba_cuda", device="cuda", priority=10)
def adaptive_avg_pool2d_forward(x, output_size):
    """y[oh, ow] = mean of x over rows [floor(oh*H/OH), ceil((oh+1)*H/OH)) and the same for columns."""
    xp = array_module(x)
    out_h, out_w = _adaptive_output_size(x.shape, output_size)
    y = xp.empty((x.shape[0], x.shape[1], out_h, out_w), dtype=x.dtype)
    launch_elementwise(_adaptive_avg_pool_kernel, y.size, x, y, x.dtype.type(0))
    return y


@register("adaptive_avg_pool2d_backward", "numba_cuda", device="cuda", priority=10)
def adaptive_avg_pool2d_backward(grad_y, x_shape):
    """grad_x: each cell's gradient spread evenly over its window."""
    xp = array_module(grad_y)
    grad_x = xp.empty(tuple(x_shape), dtype=grad_y.dtype)
    launch_elementwise(_adaptive_avg_pool_backward_kernel, grad_x.size, grad_y, grad_x, grad_y.dtype.type(0))
    return grad_x


@register("adaptive_max_pool2d_forward", "numba_cuda", device="cuda", priority=10)
def adaptive_max_pool2d_forward(x, output_size):
    """(y, indices) over adaptive windows; the backward is ``max_pool2d_backward``."""
    xp = array_module(x)
    out_h, out_w = _adaptive_output_size(x.shape, output_size)
    y = xp.empty((x.shape[0], x.shape[1], out_h, out_w), dtype=x.dtype)
    indices = xp.empty(y.shape, dtype=xp.int64)
    launch_elementwise(_adaptive_max_pool_kernel, y.size, x, y, indices)
    return y, indices
