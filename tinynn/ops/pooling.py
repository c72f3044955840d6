"""Pooling as differentiable ops, with PyTorch's ``torch.nn.functional`` signatures:
``max_pool1d/2d``, ``avg_pool1d/2d``, ``adaptive_avg_pool1d/2d``, ``adaptive_max_pool1d/2d``.

Each pooling kernel's backward is itself a ``Function`` with a real backward, so
pooling is twice differentiable (DeZero's ``Pooling2DGrad`` pattern):

* max pooling picks x[argmax]; its gradient scatters dy to the argmax positions
  (``MaxPool2dGrad``), whose own gradient gathers from those positions again;
* average pooling is linear, so its gradient (``AvgPool2dGrad``, the adjoint) has
  average pooling itself as its gradient.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np

from ..autograd import Function
from ..backend import kernels
from ..backend.device import device_of_array
from .conv import _pair

IntOrPair = Union[int, Sequence[int]]


def _kernel(op: str, array):
    return kernels.get(op, device_of_array(array))


# --------------------------------------------------------------------------------------
# max pooling: forward picks, backward scatters, double backward gathers
# --------------------------------------------------------------------------------------

class MaxPool2d(Function):
    """(y, indices) = max over each window; used by max_pool2d and adaptive_max_pool2d."""

    @staticmethod
    def forward(ctx, x, op, *geometry):
        y, indices = _kernel(op, x)(x, *geometry)
        ctx.x_shape, ctx.indices, ctx.num_args = x.shape, indices, 2 + len(geometry)
        ctx.mark_non_differentiable(indices)
        return y, indices

    @staticmethod
    def backward(ctx, grad_y, _grad_indices):
        # dx[argmax] += dy
        return (MaxPool2dGrad.apply(grad_y, ctx.indices, ctx.x_shape),) + (None,) * (ctx.num_args - 1)


class MaxPool2dGrad(Function):
    """dx = scatter of dy to the argmax positions (``max_pool2d_backward``)."""

    @staticmethod
    def forward(ctx, grad_y, indices, x_shape):
        ctx.indices = indices
        return _kernel("max_pool2d_backward", grad_y)(grad_y, indices, x_shape)

    @staticmethod
    def backward(ctx, grad_grad_x):
        # linear in dy: d(dy) = ggx[argmax], a gather from each (n, c) plane
        N, C, OH, OW = ctx.indices.shape
        planes = grad_grad_x.reshape(N, C, -1)
        index = ctx.indices.reshape(N, C, OH * OW)
        return planes.gather(2, type(grad_grad_x)._make(index, grad_grad_x.device)).reshape(N, C, OH, OW), None, None


# --------------------------------------------------------------------------------------
# average pooling (regular and adaptive): linear, so forward and backward are adjoints
# --------------------------------------------------------------------------------------

class AvgPool2d(Function):
    """y = windowed mean. ``kind`` is "avg" (geometry: kernel, stride, padding, ceil_mode,
    count_include_pad, divisor_override) or "adaptive_avg" (geometry: output_size)."""

    @staticmethod
    def forward(ctx, x, kind, *geometry):
        ctx.kind, ctx.geometry, ctx.x_shape = kind, geometry, x.shape
        ctx.num_args = 2 + len(geometry)
        return _kernel(f"{kind}_pool2d_forward", x)(x, *geometry)

    @staticmethod
    def backward(ctx, grad_y):
        # dx = each window's share of dy (the adjoint of the windowed mean)
        return (AvgPool2dGrad.apply(grad_y, ctx.kind, ctx.x_shape, *ctx.geometry),) + (None,) * (ctx.num_args - 1)


class AvgPool2dGrad(Function):
    @staticmethod
    def forward(ctx, grad_y, kind, x_shape, *geometry):
        ctx.kind, ctx.geometry, ctx.num_args = kind, geometry, 3 + len(geometry)
        if kind == "adaptive_avg":
            return _kernel("adaptive_avg_pool2d_backward", grad_y)(grad_y, x_shape)
        return _kernel("avg_pool2d_backward", grad_y)(grad_y, x_shape, *geometry)

    @staticmethod
    def backward(ctx, grad_grad_x):
        # the adjoint of the adjoint is the pooling itself
        return (AvgPool2d.apply(grad_grad_x, ctx.kind, *ctx.geometry),) + (None,) * (ctx.num_args - 1)


# --------------------------------------------------------------------------------------
# argument handling
# --------------------------------------------------------------------------------------

def _batched(x, op: str):
    """(N, C, H, W) or unbatched (C, H, W) -> 4-d input, and whether to squeeze the result."""
    if x.ndim == 4:
        return x, False
    if x.ndim == 3:
        return x.unsqueeze(0), True
    raise ValueError(f"{op}: expected a 3-d (unbatched) or 4-d (batched) input, got shape {tuple(x.shape)}")


def _pool_geometry(op: str, x, kernel_size, stride, padding, dilation=1):
    kernel = _pair(kernel_size, "kernel_size", op)
    stride = kernel if stride is None or (not isinstance(stride, int) and len(stride) == 0) \
        else _pair(stride, "stride", op)
    padding, dilation = _pair(padding, "padding", op), _pair(dilation, "dilation", op)
    if any(v <= 0 for v in kernel + stride + dilation) or any(p < 0 for p in padding):
        raise ValueError(f"{op}: kernel_size {kernel}, stride {stride} and dilation {dilation} must be positive "
                         f"and padding {padding} non-negative")
    if any(p > k // 2 for p, k in zip(padding, kernel)):
        raise ValueError(f"{op}: pad should be at most half of effective kernel size, but got padding={padding} "
                         f"and kernel_size={kernel}")
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating-point input, got {x.dtype}")
    return kernel, stride, padding, dilation


def _unsqueeze_result(result, unbatched: bool):
    if not unbatched:
        return result
    if isinstance(result, tuple):
        return tuple(r.squeeze(0) for r in result)
    return result.squeeze(0)


# --------------------------------------------------------------------------------------
# public functions
# --------------------------------------------------------------------------------------

def max_pool2d(input, kernel_size: IntOrPair, stride: Optional[IntOrPair] = None, padding: IntOrPair = 0,
               dilation: IntOrPair = 1, ceil_mode: bool = False, return_indices: bool = False):
    """2-d max pooling; stride defaults to kernel_size. With return_indices, also the flat
    index (ih * W + iw) of each maximum in its (n, c) plane."""
    op = "max_pool2d"
    x, unbatched = _batched(input, op)
    kernel, stride, padding, dilation = _pool_geometry(op, x, kernel_size, stride, padding, dilation)
    y, indices = MaxPool2d.apply(x, "max_pool2d_forward", kernel, stride, padding, dilation, bool(ceil_mode))
    return _unsqueeze_result((y, indices) if return_indices else y, unbatched)


def avg_pool2d(input, kernel_size: IntOrPair, stride: Optional[IntOrPair] = None, padding: IntOrPair = 0,
               ceil_mode: bool = False, count_include_pad: bool = True, divisor_override: Optional[int] = None):
    """2-d average pooling; stride defaults to kernel_size."""
    op = "avg_pool2d"
    x, unbatched = _batched(input, op)
    kernel, stride, padding, _ = _pool_geometry(op, x, kernel_size, stride, padding)
    if divisor_override is not None and divisor_override == 0:
        raise ValueError(f"{op}: divisor_override must be non-zero")
    y = AvgPool2d.apply(x, "avg", kernel, stride, padding, bool(ceil_mode), bool(count_include_pad),
                        divisor_override)
    return _unsqueeze_result(y, unbatched)


def _adaptive_output(op: str, x, output_size) -> tuple:
    size = (output_size,) * 2 if isinstance(output_size, (int, np.integer)) or output_size is None \
        else tuple(output_size)
    if len(size) != 2:
        raise ValueError(f"{op}: output_size must be an int or a pair, got {output_size!r}")
    # None keeps the input's size along that dim (PyTorch)
    size = tuple(int(x.shape[-2 + i]) if s is None else int(s) for i, s in enumerate(size))
    if any(s <= 0 for s in size):
        raise ValueError(f"{op}: output_size must be positive, got {size}")
    if any(d == 0 for d in x.shape[-2:]):
        raise ValueError(f"{op}: input {tuple(x.shape)} has an empty spatial dim")
    return size


def adaptive_avg_pool2d(input, output_size):
    """Average over the windows [floor(i*H/OH), ceil((i+1)*H/OH)) x (same for W)."""
    op = "adaptive_avg_pool2d"
    x, unbatched = _batched(input, op)
    size = _adaptive_output(op, x, output_size)
    return _unsqueeze_result(AvgPool2d.apply(x, "adaptive_avg", size), unbatched)


def adaptive_max_pool2d(input, output_size, return_indices: bool = False):
    """Max over the adaptive windows; with return_indices, also their flat indices."""
    op = "adaptive_max_pool2d"
    x, unbatched = _batched(input, op)
    size = _adaptive_output(op, x, output_size)
    y, indices = MaxPool2d.apply(x, "adaptive_max_pool2d_forward", size)
    return _unsqueeze_result((y, indices) if return_indices else y, unbatched)


# --- 1-d versions: 2-d pooling over (N, C, 1, L) ------------------------------------------

def _one(value, name: str, op: str, fill: int):
    return None if value is None else (fill, _pair(value, name, op, 1)[0])


def _to_2d(input, op: str):
    if input.ndim not in (2, 3):
        raise ValueError(f"{op}: expected a 2-d (unbatched) or 3-d (batched) input, got shape {tuple(input.shape)}")
    return input.unsqueeze(-2)


def _from_2d(result):
    if isinstance(result, tuple):
        return tuple(r.squeeze(-2) for r in result)
    return result.squeeze(-2)


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    op = "max_pool1d"
    return _from_2d(max_pool2d(_to_2d(input, op), _one(kernel_size, "kernel_size", op, 1),
                               _one(stride, "stride", op, 1), _one(padding, "padding", op, 0),
                               _one(dilation, "dilation", op, 1), ceil_mode, return_indices))


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    op = "avg_pool1d"
    return _from_2d(avg_pool2d(_to_2d(input, op), _one(kernel_size, "kernel_size", op, 1),
                               _one(stride, "stride", op, 1), _one(padding, "padding", op, 0),
                               ceil_mode, count_include_pad))


def adaptive_avg_pool1d(input, output_size):
    op = "adaptive_avg_pool1d"
    return _from_2d(adaptive_avg_pool2d(_to_2d(input, op), (1, _pair(output_size, "output_size", op, 1)[0])))


def adaptive_max_pool1d(input, output_size, return_indices: bool = False):
    op = "adaptive_max_pool1d"
    return _from_2d(adaptive_max_pool2d(_to_2d(input, op), (1, _pair(output_size, "output_size", op, 1)[0]),
                                        return_indices))


__all__ = ["max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d", "adaptive_avg_pool1d", "adaptive_avg_pool2d",
           "adaptive_max_pool1d", "adaptive_max_pool2d", "MaxPool2d", "MaxPool2dGrad", "AvgPool2d", "AvgPool2dGrad"]
