"""2-d pooling kernels on raw NumPy arrays: max, average and adaptive pooling.

All of them see an image plane through the same description of its windows: for
output row ``oh`` the window covers input rows ``row_start[oh] + i * row_step`` for
``i < row_count[oh]`` (and likewise for columns), already clipped to the image.
Max pooling with padding and dilation, average pooling and adaptive pooling only
differ in how those three numbers are computed (``_*_windows`` helpers below), so
one max kernel and one average kernel (each with its backward) serve them all.

``reference`` (priority 0) loops over output pixels in Python and reduces each
window over the whole batch with NumPy; ``numba`` (priority 10) runs the same loops
compiled, one (n, c) plane at a time (serial: see conv.py for why not parallel).

Indices returned by max pooling are flat offsets ``ih * W + iw`` into each (n, c)
plane, exactly as PyTorch's ``return_indices``.
"""
from __future__ import annotations

import functools

import numpy as np
from numba import njit, uint64

from tinynn.backend.kernels import register

from .shapes import adaptive_window, pool_output_size

Pair = tuple[int, int]


# --------------------------------------------------------------------------------------
# window descriptions, per axis
# --------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=256)  # geometry repeats every step; arrays are never mutated
def _strided_windows(size: int, out: int, kernel: int, stride: int, padding: int, dilation: int):
    """(start, count, step) of each window of a padded, dilated pooling, clipped to the input:
    taps at o*stride - padding + k*dilation for k < kernel, keeping those in [0, size)."""
    starts = np.empty(out, dtype=np.int64)
    counts = np.empty(out, dtype=np.int64)
    for o in range(out):
        taps = [o * stride - padding + k * dilation for k in range(kernel)]
        valid = [t for t in taps if 0 <= t < size]
        starts[o] = valid[0] if valid else 0
        counts[o] = len(valid)
    return starts, counts, dilation


@functools.lru_cache(maxsize=256)  # geometry repeats every step; arrays are never mutated
def _adaptive_windows(size: int, out: int):
    """Adaptive pooling windows: [floor(o*size/out), ceil((o+1)*size/out))."""
    starts = np.empty(out, dtype=np.int64)
    counts = np.empty(out, dtype=np.int64)
    for o in range(out):
        start, end = adaptive_window(o, size, out)
        starts[o], counts[o] = start, end - start
    return starts, counts, 1


@functools.lru_cache(maxsize=256)  # geometry repeats every step; arrays are never mutated
def _avg_divisors(H, W, OH, OW, kernel_size, stride, padding, ceil_mode, count_include_pad,
                  divisor_override) -> np.ndarray:
    """PyTorch's average-pooling divisor for every output pixel, as an (OH, OW) float64 array.

    The window [o*s - p, o*s - p + k) is first clipped to the padded input [-p, size + p)
    (that size counts with count_include_pad), then to the input (that size counts without).
    """
    if divisor_override:
        return np.full((OH, OW), float(divisor_override))

    def sizes(size, out, k, s, p):
        start = np.arange(out) * s - p
        end = np.minimum(start + k, size + p)
        padded = end - start
        valid = np.minimum(end, size) - np.maximum(start, 0)
        return padded, valid

    padded_h, valid_h = sizes(H, OH, kernel_size[0], stride[0], padding[0])
    padded_w, valid_w = sizes(W, OW, kernel_size[1], stride[1], padding[1])
    if count_include_pad:
        return np.outer(padded_h, padded_w).astype(np.float64)
    return np.outer(valid_h, valid_w).astype(np.float64)


def _pool_output_hw(x_shape, kernel_size, stride, padding, dilation, ceil_mode, op: str) -> Pair:
    H, W = x_shape[-2:]
    for k, p in zip(kernel_size, padding):
        if p > k // 2:
            raise ValueError(f"{op}: padding {padding} must be at most half of kernel_size {kernel_size}")
    OH = pool_output_size(H, kernel_size[0], stride[0], padding[0], dilation[0], ceil_mode)
    OW = pool_output_size(W, kernel_size[1], stride[1], padding[1], dilation[1], ceil_mode)
    if OH <= 0 or OW <= 0:
        raise ValueError(f"{op}: input {tuple(x_shape)} is too small for kernel_size {kernel_size}, "
                         f"padding {padding}, dilation {dilation} (output would be {OH}x{OW})")
    return OH, OW


def _planes(x: np.ndarray) -> np.ndarray:
    """(N, C, H, W) -> contiguous (N*C, H, W)."""
    return np.ascontiguousarray(x).reshape(-1, *x.shape[-2:])


# --------------------------------------------------------------------------------------
# reference: Python loop over output pixels, NumPy over the batch
# --------------------------------------------------------------------------------------

def _window_max_reference(x, rows, cols):
    """y[:, oh, ow] = max of each window; index = flat offset of the first maximum (NaN wins, like PyTorch)."""
    planes = _planes(x)
    (rs, rc, rstep), (cs, cc, cstep) = rows, cols
    OH, OW, W = len(rs), len(cs), x.shape[-1]
    y = np.empty((planes.shape[0], OH, OW), dtype=x.dtype)
    indices = np.empty((planes.shape[0], OH, OW), dtype=np.int64)
    for oh in range(OH):
        row_idx = rs[oh] + rstep * np.arange(rc[oh])
        for ow in range(OW):
            col_idx = cs[ow] + cstep * np.arange(cc[ow])
            window = planes[:, row_idx][:, :, col_idx].reshape(planes.shape[0], -1)
            # NaN counts as the maximum so it propagates; like PyTorch, the LAST NaN of a window wins
            best = np.argmax(np.where(np.isnan(window), np.inf, window), axis=1)
            nan_rows = np.isnan(window).any(axis=1)
            best[nan_rows] = window.shape[1] - 1 - np.argmax(np.isnan(window[nan_rows][:, ::-1]), axis=1)
            y[:, oh, ow] = window[np.arange(window.shape[0]), best]
            indices[:, oh, ow] = row_idx[best // len(col_idx)] * W + col_idx[best % len(col_idx)]
    return y.reshape(*x.shape[:-2], OH, OW), indices.reshape(*x.shape[:-2], OH, OW)


def _window_avg_reference(x, rows, cols, divisors):
    planes = _planes(x)
    (rs, rc, rstep), (cs, cc, cstep) = rows, cols
    OH, OW = len(rs), len(cs)
    y = np.empty((planes.shape[0], OH, OW), dtype=x.dtype)
    for oh in range(OH):
        row_idx = rs[oh] + rstep * np.arange(rc[oh])
        for ow in range(OW):
            col_idx = cs[ow] + cstep * np.arange(cc[ow])
            y[:, oh, ow] = planes[:, row_idx][:, :, col_idx].sum(axis=(1, 2)) / divisors[oh, ow]
    return y.reshape(*x.shape[:-2], OH, OW)


def _window_avg_backward_reference(grad_y, x_shape, rows, cols, divisors):
    """Each input pixel gets grad_y / divisor from every window that covers it."""
    gy = _planes(grad_y)
    (rs, rc, rstep), (cs, cc, cstep) = rows, cols
    grad_x = np.zeros((gy.shape[0], *x_shape[-2:]), dtype=grad_y.dtype)
    for oh in range(len(rs)):
        row_idx = rs[oh] + rstep * np.arange(rc[oh])
        for ow in range(len(cs)):
            col_idx = cs[ow] + cstep * np.arange(cc[ow])
            grad_x[:, row_idx[:, None], col_idx[None, :]] += (gy[:, oh, ow] / divisors[oh, ow])[:, None, None]
    return grad_x.reshape(x_shape)


@register("max_pool2d_backward", "reference", priority=0)
def max_pool2d_backward_reference(grad_y, indices, x_shape):
    """grad_x[n, c].flat[indices[n, c, oh, ow]] += grad_y[n, c, oh, ow]"""
    gy = _planes(grad_y).reshape(-1, grad_y.shape[-2] * grad_y.shape[-1])
    idx = _planes(indices).reshape(gy.shape)
    grad_x = np.zeros((gy.shape[0], x_shape[-2] * x_shape[-1]), dtype=grad_y.dtype)
    for plane in range(gy.shape[0]):
        np.add.at(grad_x[plane], idx[plane], gy[plane])
    return grad_x.reshape(x_shape)


# --------------------------------------------------------------------------------------
# numba: the same loops, compiled, one (n, c) plane at a time
# --------------------------------------------------------------------------------------

@njit(cache=True)
def _window_max_kernel(x, rs, rc, rstep, cs, cc, cstep, y, indices):
    planes, H, W = x.shape
    OH, OW = y.shape[1], y.shape[2]
    for p in range(planes):
        for oh in range(OH):
            for ow in range(OW):
                best = -np.inf
                best_index = -1
                for i in range(rc[oh]):
                    ih = rs[oh] + i * rstep
                    for j in range(cc[ow]):
                        iw = cs[ow] + j * cstep
                        value = x[p, ih, iw]
                        # strict '>' keeps the first maximum; a NaN always wins, so the last NaN (PyTorch's rule)
                        if value > best or np.isnan(value) or best_index < 0:
                            best = value
                            best_index = ih * W + iw
                y[p, oh, ow] = best
                indices[p, oh, ow] = best_index


@njit(cache=True, boundscheck=False)
def _dense_max_kernel(x, KH, KW, sh, sw, y, indices):
    """Max pooling whose windows all lie fully inside the image (no padding, no dilation, no
    partial ceil_mode window): plain index arithmetic, unsigned so Numba skips wrap-around checks.
    1.5x faster than the window-list kernel at LeNet's 2x2 pooling."""
    planes, H, W = x.shape
    OH, OW = y.shape[1], y.shape[2]
    x_flat, y_flat, index_flat = x.ravel(), y.ravel(), indices.ravel()
    for p in range(planes):
        plane = p * H * W
        for oh in range(OH):
            for ow in range(OW):
                best_index = oh * sh * W + ow * sw
                best = x_flat[uint64(plane + best_index)]
                for i in range(KH):
                    row = (oh * sh + i) * W + ow * sw
                    for j in range(KW):
                        value = x_flat[uint64(plane + row + j)]
                        if value > best or value != value:  # first maximum; last NaN (PyTorch's rule)
                            best = value
                            best_index = row + j
                out = uint64((p * OH + oh) * OW + ow)
                y_flat[out] = best
                index_flat[out] = best_index


@njit(cache=True, boundscheck=False)
def _max2x2_kernel(x, y, indices):
    """2×2 windows with stride 2 (LeNet's, VGG's, most CNNs' pooling). On random data the
    compare-and-branch loop mispredicts half its branches; this one compares in a tournament
    whose outcome becomes an index by arithmetic, without branches: 6x faster at LeNet's
    pool1. A window holding a NaN (rare) takes the ordinary scan, where the last NaN wins."""
    planes, H, W = x.shape
    OH, OW = y.shape[1], y.shape[2]
    for p in range(planes):
        for oh in range(OH):
            r0 = 2 * oh
            for ow in range(OW):
                c0 = 2 * ow
                a, b = x[p, r0, c0], x[p, r0, c0 + 1]
                c, d = x[p, r0 + 1, c0], x[p, r0 + 1, c0 + 1]
                if a != a or b != b or c != c or d != d:
                    best, best_index = a, r0 * W + c0
                    for k, value in enumerate((b, c, d)):
                        if value > best or value != value:
                            best = value
                            best_index = (r0 + (k + 1) // 2) * W + c0 + (k + 1) % 2
                else:  # strict '>' at each match keeps the first maximum, as the scan does
                    right_on_top, right_below = int(b > a), int(d > c)
                    top, bottom = max(a, b), max(c, d)
                    below = int(bottom > top)
                    best = max(top, bottom)
                    best_index = (r0 + below) * W + c0 + right_on_top + below * (right_below - right_on_top)
                y[p, oh, ow] = best
                indices[p, oh, ow] = best_index


def _dense(windows):
    """(kernel, stride) if the windows are [o*stride, o*stride + kernel) with no clipping, else None."""
    starts, counts, step = windows
    if step != 1 or starts[0] != 0 or np.any(counts != counts[0]):
        return None
    stride = int(starts[1] - starts[0]) if len(starts) > 1 else 1
    if stride <= 0 or np.any(starts != np.arange(len(starts)) * stride):
        return None
    return int(counts[0]), stride


@njit(cache=True)
def _max_backward_kernel(grad_y, indices, grad_x):
    """grad_x is (planes, H*W), zeroed; grad_y and indices are (planes, OH*OW)."""
    for p in range(grad_y.shape[0]):
        for o in range(grad_y.shape[1]):
            grad_x[p, indices[p, o]] += grad_y[p, o]


@njit(cache=True)
def _window_avg_kernel(x, rs, rc, rstep, cs, cc, cstep, divisors, y):
    planes = x.shape[0]
    OH, OW = y.shape[1], y.shape[2]
    for p in range(planes):
        for oh in range(OH):
            for ow in range(OW):
                total = 0.0
                for i in range(rc[oh]):
                    ih = rs[oh] + i * rstep
                    for j in range(cc[ow]):
                        total += x[p, ih, cs[ow] + j * cstep]
                y[p, oh, ow] = total / divisors[oh, ow]


@njit(cache=True)
def _window_avg_backward_kernel(grad_y, rs, rc, rstep, cs, cc, cstep, divisors, grad_x):
    planes = grad_y.shape[0]
    OH, OW = grad_y.shape[1], grad_y.shape[2]
    for p in range(planes):
        for oh in range(OH):
            for ow in range(OW):
                share = grad_y[p, oh, ow] / divisors[oh, ow]
                for i in range(rc[oh]):
                    ih = rs[oh] + i * rstep
                    for j in range(cc[ow]):
                        grad_x[p, ih, cs[ow] + j * cstep] += share


def _window_max_numba(x, rows, cols):
    planes = _planes(x)
    OH, OW = len(rows[0]), len(cols[0])
    y = np.empty((planes.shape[0], OH, OW), dtype=x.dtype)
    indices = np.empty((planes.shape[0], OH, OW), dtype=np.int64)
    dense_rows, dense_cols = _dense(rows), _dense(cols)
    if dense_rows == (2, 2) and dense_cols == (2, 2):
        _max2x2_kernel(planes, y, indices)
    elif dense_rows and dense_cols:
        _dense_max_kernel(planes, dense_rows[0], dense_cols[0], dense_rows[1], dense_cols[1], y, indices)
    else:
        _window_max_kernel(planes, *rows, *cols, y, indices)
    return y.reshape(*x.shape[:-2], OH, OW), indices.reshape(*x.shape[:-2], OH, OW)


def _window_avg_numba(x, rows, cols, divisors):
    planes = _planes(x)
    y = np.empty((planes.shape[0], len(rows[0]), len(cols[0])), dtype=x.dtype)
    _window_avg_kernel(planes, *rows, *cols, divisors, y)
    return y.reshape(*x.shape[:-2], *y.shape[1:])


def _window_avg_backward_numba(grad_y, x_shape, rows, cols, divisors):
    gy = _planes(grad_y)
    grad_x = np.zeros((gy.shape[0], *x_shape[-2:]), dtype=grad_y.dtype)
    _window_avg_backward_kernel(gy, *rows, *cols, divisors, grad_x)
    return grad_x.reshape(x_shape)


@register("max_pool2d_backward", "numba", priority=10)
def max_pool2d_backward_numba(grad_y, indices, x_shape):
    gy = _planes(grad_y).reshape(-1, grad_y.shape[-2] * grad_y.shape[-1])
    idx = _planes(indices).reshape(gy.shape)
    grad_x = np.zeros((gy.shape[0], x_shape[-2] * x_shape[-1]), dtype=grad_y.dtype)
    _max_backward_kernel(gy, idx, grad_x)
    return grad_x.reshape(x_shape)


# --------------------------------------------------------------------------------------
# the registered ops: geometry -> windows -> the shared kernels
# --------------------------------------------------------------------------------------

def _max_pool_windows(x_shape, kernel_size, stride, padding, dilation, ceil_mode):
    OH, OW = _pool_output_hw(x_shape, kernel_size, stride, padding, dilation, ceil_mode, "max_pool2d")
    H, W = x_shape[-2:]
    rows = _strided_windows(H, OH, kernel_size[0], stride[0], padding[0], dilation[0])
    cols = _strided_windows(W, OW, kernel_size[1], stride[1], padding[1], dilation[1])
    return rows, cols


def _avg_pool_windows(x_shape, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    OH, OW = _pool_output_hw(x_shape, kernel_size, stride, padding, (1, 1), ceil_mode, "avg_pool2d")
    H, W = x_shape[-2:]
    rows = _strided_windows(H, OH, kernel_size[0], stride[0], padding[0], 1)
    cols = _strided_windows(W, OW, kernel_size[1], stride[1], padding[1], 1)
    divisors = _avg_divisors(H, W, OH, OW, kernel_size, stride, padding, ceil_mode, count_include_pad,
                             divisor_override)
    return rows, cols, divisors


def _adaptive_windows_2d(x_shape, output_size):
    H, W = x_shape[-2:]
    OH, OW = output_size
    rows, cols = _adaptive_windows(H, OH), _adaptive_windows(W, OW)
    return rows, cols, np.outer(rows[1], cols[1]).astype(np.float64)


def _register_pooling(name: str, priority: int, window_max, window_avg, window_avg_backward) -> None:
    """Register the five pooling ops for one implementation of the three window kernels."""

    @register("max_pool2d_forward", name, priority=priority)
    def max_pool2d_forward(x, kernel_size, stride, padding, dilation, ceil_mode):
        return window_max(x, *_max_pool_windows(x.shape, kernel_size, stride, padding, dilation, ceil_mode))

    @register("avg_pool2d_forward", name, priority=priority)
    def avg_pool2d_forward(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
        windows = _avg_pool_windows(x.shape, kernel_size, stride, padding, ceil_mode, count_include_pad,
                                    divisor_override)
        return window_avg(x, *windows)

    @register("avg_pool2d_backward", name, priority=priority)
    def avg_pool2d_backward(grad_y, x_shape, kernel_size, stride, padding, ceil_mode, count_include_pad,
                            divisor_override):
        windows = _avg_pool_windows(x_shape, kernel_size, stride, padding, ceil_mode, count_include_pad,
                                    divisor_override)
        return window_avg_backward(grad_y, tuple(x_shape), *windows)

    @register("adaptive_avg_pool2d_forward", name, priority=priority)
    def adaptive_avg_pool2d_forward(x, output_size):
        return window_avg(x, *_adaptive_windows_2d(x.shape, output_size))

    @register("adaptive_avg_pool2d_backward", name, priority=priority)
    def adaptive_avg_pool2d_backward(grad_y, x_shape):
        windows = _adaptive_windows_2d(x_shape, grad_y.shape[-2:])
        return window_avg_backward(grad_y, tuple(x_shape), *windows)

    @register("adaptive_max_pool2d_forward", name, priority=priority)
    def adaptive_max_pool2d_forward(x, output_size):
        rows, cols, _ = _adaptive_windows_2d(x.shape, output_size)
        return window_max(x, rows, cols)


_register_pooling("reference", 0, _window_max_reference, _window_avg_reference, _window_avg_backward_reference)
_register_pooling("numba", 10, _window_max_numba, _window_avg_numba, _window_avg_backward_numba)
