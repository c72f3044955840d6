"""Normalisation kernels on raw arrays: layer, group and batch norm, forward and backward.

All three standardise ``x`` over some set of elements and then scale and shift:

    xhat = (x - mean) * rstd,   rstd = 1 / sqrt(var + eps),   y = xhat * w + b

and share one backward formula per standardised set of ``n`` elements
(``gxhat = g * w``):

    dx = rstd * (gxhat - sum(gxhat) / n - xhat * sum(gxhat * xhat) / n)
    dw = sum(g * xhat),  db = sum(g)     (over everything but the affine dim)

They differ only in the layout of the sets:

    op           x layout        statistics per   affine per
    layer_norm   (rows, F)       row              feature F (last dim)
    group_norm   (N, C, L)       (n, group)       channel C
    batch_norm   (N, C, L)       channel C        channel C

Statistics (``mean``, ``rstd``, batch norm's ``var``) come back in ``x``'s dtype;
backward recomputes ``xhat`` from them instead of keeping a copy of ``x``'s size.

``reference`` (priority 0) is NumPy (it also runs on CuPy arrays: it only uses
the array's own methods). ``numba`` (priority 10) fuses each op into one or two
passes over memory, accumulating sums in float64 so that float32 statistics over
many elements do not drift. It is serial: these ops are memory-bound and small,
and ``parallel=True`` costs more per call than it saves here (see KERNELS.md).
Callers pass C-contiguous float32/float64 arrays; ``weight``/``bias`` may be None.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from tinynn.backend.kernels import register

# Reductions may be reordered (lets LLVM vectorise the float64 sums); nothing else is relaxed.
_FAST = {"reassoc", "contract"}


def _affine_or_default(weight, bias, size: int, dtype):
    """The numba kernels always scale and shift: ones/zeros stand in for a missing weight/bias."""
    w = np.ones(size, dtype) if weight is None else np.ascontiguousarray(weight, dtype=dtype).reshape(size)
    b = np.zeros(size, dtype) if bias is None else np.ascontiguousarray(bias, dtype=dtype).reshape(size)
    return w, b


# ======================================================================================
# Layer norm: x (rows, F), statistics per row, affine per feature
# ======================================================================================
def _stats_reference(x, axes: tuple, eps: float):
    """mean and rstd over ``axes`` (kept as size-1 dims), in x's dtype."""
    xp = _xp(x)
    mean = x.mean(axis=axes, keepdims=True)
    centered = x - mean
    var = (centered * centered).mean(axis=axes, keepdims=True)
    rstd = (1.0 / xp.sqrt(var + eps)).astype(x.dtype, copy=False)
    return mean, var, rstd


def _xp(x):
    from tinynn.backend.device import get_array_module
    return get_array_module(x)


@register("layer_norm_forward", "reference", device="cpu", priority=0)
def layer_norm_forward_reference(x, weight, bias, eps: float):
    """(y, mean, rstd) of layer norm over the last dim of ``x`` (rows, F); mean/rstd are (rows,)."""
    mean, _, rstd = _stats_reference(x, (1,), eps)
    y = (x - mean) * rstd
    if weight is not None:
        y *= weight
    if bias is not None:
        y += bias
    return y, mean[:, 0], rstd[:, 0]


@register("layer_norm_backward", "reference", device="cpu", priority=0)
def layer_norm_backward_reference(grad_y, x, mean, rstd, weight):
    """(grad_x, grad_w, grad_b) of layer norm; grad_w/grad_b are (F,)."""
    xhat = (x - mean[:, None]) * rstd[:, None]
    gxhat = grad_y * weight if weight is not None else grad_y
    n = x.shape[1]
    # dx = rstd * (gxhat - mean(gxhat) - xhat * mean(gxhat * xhat))
    grad_x = gxhat - gxhat.sum(axis=1, keepdims=True) / n - xhat * ((gxhat * xhat).sum(axis=1, keepdims=True) / n)
    grad_x *= rstd[:, None]
    return grad_x, (grad_y * xhat).sum(axis=0), grad_y.sum(axis=0)


@njit(cache=True, fastmath=_FAST)
def _layer_norm_forward_numba(x, w, b, eps, y, mean, rstd):
    rows, features = x.shape
    for r in range(rows):
        total = 0.0
        for f in range(features):
            total += x[r, f]
        m = total / features
        squares = 0.0
        for f in range(features):
            d = x[r, f] - m
            squares += d * d
        inv = 1.0 / math.sqrt(squares / features + eps)
        mean[r] = m
        rstd[r] = inv
        for f in range(features):
            y[r, f] = (x[r, f] - m) * inv * w[f] + b[f]


@njit(cache=True, fastmath=_FAST)
def _layer_norm_backward_numba(g, x, mean, rstd, w, grad_x, grad_w, grad_b):
    rows, features = x.shape
    acc_w = np.zeros(features)  # float64 accumulators over the rows
    acc_b = np.zeros(features)
    for r in range(rows):
        m, inv = np.float64(mean[r]), np.float64(rstd[r])
        sum_gh = 0.0
        sum_ghx = 0.0
        for f in range(features):
            xhat = (x[r, f] - m) * inv
            gh = g[r, f] * w[f]
            sum_gh += gh
            sum_ghx += gh * xhat
            acc_w[f] += g[r, f] * xhat
            acc_b[f] += g[r, f]
        mean_gh, mean_ghx = sum_gh / features, sum_ghx / features
        for f in range(features):  # dx = rstd * (gxhat - mean(gxhat) - xhat * mean(gxhat * xhat))
            xhat = (x[r, f] - m) * inv
            grad_x[r, f] = inv * (g[r, f] * w[f] - mean_gh - xhat * mean_ghx)
    grad_w[:] = acc_w
    grad_b[:] = acc_b


@register("layer_norm_forward", "numba", device="cpu", priority=10)
def layer_norm_forward_numba(x, weight, bias, eps: float):
    rows, features = x.shape
    w, b = _affine_or_default(weight, bias, features, x.dtype)
    y = np.empty_like(x)
    mean, rstd = np.empty(rows, x.dtype), np.empty(rows, x.dtype)
    _layer_norm_forward_numba(x, w, b, float(eps), y, mean, rstd)
    return y, mean, rstd


def _run_backward_kernel(kernel, grad_y, x, mean, scale, weight, *extra):
    """Run a norm's Numba backward kernel: the weight defaults to ones, and the gradients of x
    and of the affine weight and bias (one per entry of dim 1: feature or channel) are
    allocated here. ``extra`` (the group count) goes between the weight and the outputs."""
    features = x.shape[1]
    w, _ = _affine_or_default(weight, None, features, x.dtype)
    grad_x = np.empty_like(x)
    grad_w, grad_b = np.empty(features, x.dtype), np.empty(features, x.dtype)
    kernel(grad_y, x, mean, scale, w, *extra, grad_x, grad_w, grad_b)
    return grad_x, grad_w, grad_b


@register("layer_norm_backward", "numba", device="cpu", priority=10)
def layer_norm_backward_numba(grad_y, x, mean, rstd, weight):
    return _run_backward_kernel(_layer_norm_backward_numba, grad_y, x, mean, rstd, weight)


# ======================================================================================
# Group norm: x (N, C, L), statistics per (n, group of C // G channels), affine per channel
# ======================================================================================
def _channel_shape(x):
    return (1, x.shape[1], 1)


@register("group_norm_forward", "reference", device="cpu", priority=0)
def group_norm_forward_reference(x, weight, bias, groups: int, eps: float):
    """(y, mean, rstd) of group norm of ``x`` (N, C, L); mean/rstd are (N, groups)."""
    n = x.shape[0]
    grouped = x.reshape(n, groups, -1)
    mean, _, rstd = _stats_reference(grouped, (2,), eps)
    y = ((grouped - mean) * rstd).reshape(x.shape)
    if weight is not None:
        y *= weight.reshape(_channel_shape(x))
    if bias is not None:
        y += bias.reshape(_channel_shape(x))
    return y, mean[:, :, 0], rstd[:, :, 0]


@register("group_norm_backward", "reference", device="cpu", priority=0)
def group_norm_backward_reference(grad_y, x, mean, rstd, weight, groups: int):
    """(grad_x, grad_w, grad_b) of group norm; grad_w/grad_b are (C,)."""
    n = x.shape[0]
    xhat = ((x.reshape(n, groups, -1) - mean[:, :, None]) * rstd[:, :, None]).reshape(x.shape)
    gxhat = grad_y * weight.reshape(_channel_shape(x)) if weight is not None else grad_y
    grad_x = layer_norm_backward_reference(gxhat.reshape(n * groups, -1), x.reshape(n * groups, -1),
                                           mean.reshape(-1), rstd.reshape(-1), None)[0].reshape(x.shape)
    return grad_x, (grad_y * xhat).sum(axis=(0, 2)), grad_y.sum(axis=(0, 2))


@njit(cache=True, fastmath=_FAST)
def _group_norm_forward_numba(x, w, b, groups, eps, y, mean, rstd):
    batch, channels, length = x.shape
    per_group = channels // groups
    count = per_group * length
    for n in range(batch):
        for grp in range(groups):
            c0 = grp * per_group
            total = 0.0
            for c in range(c0, c0 + per_group):
                for i in range(length):
                    total += x[n, c, i]
            m = total / count
            squares = 0.0
            for c in range(c0, c0 + per_group):
                for i in range(length):
                    d = x[n, c, i] - m
                    squares += d * d
            inv = 1.0 / math.sqrt(squares / count + eps)
            mean[n, grp] = m
            rstd[n, grp] = inv
            for c in range(c0, c0 + per_group):
                scale = inv * w[c]  # y = x * scale + shift
                shift = b[c] - m * scale
                for i in range(length):
                    y[n, c, i] = x[n, c, i] * scale + shift


@njit(cache=True, fastmath=_FAST)
def _group_norm_backward_numba(g, x, mean, rstd, w, groups, grad_x, grad_w, grad_b):
    batch, channels, length = x.shape
    per_group = channels // groups
    count = per_group * length
    acc_w = np.zeros(channels)  # float64 accumulators over the batch
    acc_b = np.zeros(channels)
    for n in range(batch):
        for grp in range(groups):
            c0 = grp * per_group
            m, inv = np.float64(mean[n, grp]), np.float64(rstd[n, grp])
            sum_gh = 0.0
            sum_ghx = 0.0
            for c in range(c0, c0 + per_group):
                sum_g = 0.0
                sum_gx = 0.0
                for i in range(length):
                    gi = g[n, c, i]
                    sum_g += gi
                    sum_gx += gi * ((x[n, c, i] - m) * inv)
                acc_w[c] += sum_gx
                acc_b[c] += sum_g
                sum_gh += sum_g * w[c]
                sum_ghx += sum_gx * w[c]
            mean_gh, mean_ghx = sum_gh / count, sum_ghx / count
            for c in range(c0, c0 + per_group):  # dx = rstd * (g w - mean(g w) - xhat * mean(g w xhat))
                wc = np.float64(w[c])
                for i in range(length):
                    xhat = (x[n, c, i] - m) * inv
                    grad_x[n, c, i] = inv * (g[n, c, i] * wc - mean_gh - xhat * mean_ghx)
    grad_w[:] = acc_w
    grad_b[:] = acc_b


@register("group_norm_forward", "numba", device="cpu", priority=10)
def group_norm_forward_numba(x, weight, bias, groups: int, eps: float):
    w, b = _affine_or_default(weight, bias, x.shape[1], x.dtype)
    y = np.empty_like(x)
    mean, rstd = np.empty((x.shape[0], groups), x.dtype), np.empty((x.shape[0], groups), x.dtype)
    _group_norm_forward_numba(x, w, b, int(groups), float(eps), y, mean, rstd)
    return y, mean, rstd


@register("group_norm_backward", "numba", device="cpu", priority=10)
def group_norm_backward_numba(grad_y, x, mean, rstd, weight, groups: int):
    return _run_backward_kernel(_group_norm_backward_numba, grad_y, x, mean, rstd, weight, int(groups))


# ======================================================================================
# Batch norm (training): x (N, C, L), statistics and affine per channel
# ======================================================================================
@register("batch_norm_forward", "reference", device="cpu", priority=0)
def batch_norm_forward_reference(x, weight, bias, eps: float):
    """(y, mean, invstd, var) of batch norm with the batch's statistics; the last three are (C,)
    and ``var`` is the biased variance (for the running statistics)."""
    mean, var, invstd = _stats_reference(x, (0, 2), eps)
    y = (x - mean) * invstd
    if weight is not None:
        y *= weight.reshape(_channel_shape(x))
    if bias is not None:
        y += bias.reshape(_channel_shape(x))
    return y, mean.reshape(-1), invstd.reshape(-1), var.reshape(-1)


@register("batch_norm_backward", "reference", device="cpu", priority=0)
def batch_norm_backward_reference(grad_y, x, mean, invstd, weight):
    """(grad_x, grad_w, grad_b) of training-mode batch norm; grad_w/grad_b are (C,)."""
    shape = _channel_shape(x)
    count = x.shape[0] * x.shape[2]
    xhat = (x - mean.reshape(shape)) * invstd.reshape(shape)
    sum_g = grad_y.sum(axis=(0, 2), keepdims=True)
    sum_gx = (grad_y * xhat).sum(axis=(0, 2), keepdims=True)
    scale = invstd.reshape(shape) if weight is None else invstd.reshape(shape) * weight.reshape(shape)
    # dx = w * invstd * (g - mean(g) - xhat * mean(g xhat))
    grad_x = (grad_y - sum_g / count - xhat * (sum_gx / count)) * scale
    return grad_x, sum_gx.reshape(-1), sum_g.reshape(-1)


@njit(cache=True, fastmath=_FAST)
def _batch_norm_forward_numba(x, w, b, eps, y, mean, invstd, var):
    batch, channels, length = x.shape
    count = batch * length
    # One pass for the statistics: sums of d = x - shift and d^2 in float64, shifted by one
    # sample of each channel so that var = mean(d^2) - mean(d)^2 does not cancel catastrophically
    # when the mean is large against the spread.
    shift = np.empty(channels)
    for c in range(channels):
        shift[c] = x[0, c, 0]
    sums = np.zeros(channels)
    squares = np.zeros(channels)
    for n in range(batch):
        for c in range(channels):
            s = 0.0
            q = 0.0
            for i in range(length):
                d = x[n, c, i] - shift[c]
                s += d
                q += d * d
            sums[c] += s
            squares[c] += q
    mean_d = sums / count
    m = shift + mean_d
    v = np.maximum(squares / count - mean_d * mean_d, 0.0)
    inv = 1.0 / np.sqrt(v + eps)
    scale = inv * w  # second pass: y = x * scale + shift
    offset = b - m * scale
    for n in range(batch):
        for c in range(channels):
            sc, off = scale[c], offset[c]
            for i in range(length):
                y[n, c, i] = x[n, c, i] * sc + off
    mean[:] = m
    invstd[:] = inv
    var[:] = v


@njit(cache=True, fastmath=_FAST)
def _batch_norm_backward_numba(g, x, mean, invstd, w, grad_x, grad_w, grad_b):
    batch, channels, length = x.shape
    count = batch * length
    sum_g = np.zeros(channels)
    sum_gx = np.zeros(channels)
    for n in range(batch):
        for c in range(channels):
            m, inv = np.float64(mean[c]), np.float64(invstd[c])
            s = 0.0
            q = 0.0
            for i in range(length):
                gi = g[n, c, i]
                s += gi
                q += gi * ((x[n, c, i] - m) * inv)
            sum_g[c] += s
            sum_gx[c] += q
    for n in range(batch):
        for c in range(channels):  # dx = w invstd (g - mean(g) - xhat * mean(g xhat))
            m, inv = np.float64(mean[c]), np.float64(invstd[c])
            scale = inv * w[c]
            mean_g, mean_gx = sum_g[c] / count, sum_gx[c] / count
            for i in range(length):
                xhat = (x[n, c, i] - m) * inv
                grad_x[n, c, i] = scale * (g[n, c, i] - mean_g - xhat * mean_gx)
    grad_w[:] = sum_gx
    grad_b[:] = sum_g


@register("batch_norm_forward", "numba", device="cpu", priority=10)
def batch_norm_forward_numba(x, weight, bias, eps: float):
    channels = x.shape[1]
    w, b = _affine_or_default(weight, bias, channels, x.dtype)
    y = np.empty_like(x)
    mean, invstd, var = (np.empty(channels, x.dtype) for _ in range(3))
    _batch_norm_forward_numba(x, w, b, float(eps), y, mean, invstd, var)
    return y, mean, invstd, var


@register("batch_norm_backward", "numba", device="cpu", priority=10)
def batch_norm_backward_numba(grad_y, x, mean, invstd, weight):
    return _run_backward_kernel(_batch_norm_backward_numba, grad_y, x, mean, invstd, weight)
