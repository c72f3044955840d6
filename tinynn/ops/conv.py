"""Convolutions as differentiable ops: ``conv1d``, ``conv2d``, ``conv_transpose1d/2d``,
``unfold`` and ``fold``, with PyTorch's ``torch.nn.functional`` signatures.

Everything is built on three kernels (``tinynn.backend.kernels``): ``conv2d_forward``,
``conv2d_backward_input`` and ``conv2d_backward_weight``. Each of them is a
``Function`` here, and each one's backward is written with the other two, so a
convolution can be differentiated any number of times (DeZero's ``Conv2DGradW``
pattern). The three maps are bilinear:

    y  = conv(x, W)                      forward
    dx = conv_input_grad(dy, W)          = conv^T(dy): the adjoint of conv in x
    dW = conv_weight_grad(dy, x)         <dW', dW> = <conv(x, dW'), dy>

so the gradients of each with respect to either argument are the other two maps.

A 1-d convolution is a 2-d one with H = 1, and a transposed convolution is the
input-gradient map (its backward is the ordinary convolution).
"""
from __future__ import annotations

from typing import Sequence, Union

import numpy as np

from ..autograd import Function
from ..backend import kernels
from ..backend.device import device_of_array
from ..kernels.cpu.shapes import conv_output_size
from . import shape as shape_ops

IntOrPair = Union[int, Sequence[int]]


def _kernel(op: str, array):
    return kernels.get(op, device_of_array(array))


# --------------------------------------------------------------------------------------
# the three bilinear maps, each a Function whose backward uses the other two
# --------------------------------------------------------------------------------------

class Conv2d(Function):
    """y = conv(x, W); no bias (added by ``conv2d`` with ordinary ops)."""

    @staticmethod
    def forward(ctx, x, w, stride, padding, dilation, groups):
        ctx.save_for_backward(x, w)
        ctx.geometry = (stride, padding, dilation, groups)
        return _kernel("conv2d_forward", x)(x, w, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, grad_y):
        x, w = ctx.saved_tensors
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:  # dx = conv^T(dy, W)
            grad_x = Conv2dGradInput.apply(grad_y, w, tuple(x.shape), *ctx.geometry)
        if ctx.needs_input_grad[1]:  # dW = sum over images and pixels of dy * x-patches
            grad_w = Conv2dGradWeight.apply(grad_y, x, tuple(w.shape), *ctx.geometry)
        return grad_x, grad_w, None, None, None, None


class Conv2dGradInput(Function):
    """dx = conv^T(dy, W): the gradient of a convolution with respect to its input
    (and the forward pass of a transposed convolution)."""

    @staticmethod
    def forward(ctx, grad_y, w, x_shape, stride, padding, dilation, groups):
        ctx.save_for_backward(grad_y, w)
        ctx.geometry = (stride, padding, dilation, groups)
        return _kernel("conv2d_backward_input", grad_y)(grad_y, w, x_shape, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, grad_grad_x):
        grad_y, w = ctx.saved_tensors
        d_grad_y = d_w = None
        if ctx.needs_input_grad[0]:  # conv^T is linear in dy; its adjoint is conv
            d_grad_y = Conv2d.apply(grad_grad_x, w, *ctx.geometry)
        if ctx.needs_input_grad[1]:  # <ggx, conv^T(dy, W)> = <conv(ggx, W), dy>: a weight gradient
            d_w = Conv2dGradWeight.apply(grad_y, grad_grad_x, tuple(w.shape), *ctx.geometry)
        return d_grad_y, d_w, None, None, None, None, None


class Conv2dGradWeight(Function):
    """dW: the gradient of a convolution with respect to its weight."""

    @staticmethod
    def forward(ctx, grad_y, x, w_shape, stride, padding, dilation, groups):
        ctx.save_for_backward(grad_y, x)
        ctx.geometry = (stride, padding, dilation, groups)
        return _kernel("conv2d_backward_weight", grad_y)(grad_y, x, w_shape, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, grad_grad_w):
        grad_y, x = ctx.saved_tensors
        d_grad_y = d_x = None
        if ctx.needs_input_grad[0]:  # <ggW, dW(dy, x)> = <conv(x, ggW), dy>
            d_grad_y = Conv2d.apply(x, grad_grad_w, *ctx.geometry)
        if ctx.needs_input_grad[1]:  # ... = <x, conv^T(dy, ggW)>
            d_x = Conv2dGradInput.apply(grad_y, grad_grad_w, tuple(x.shape), *ctx.geometry)
        return d_grad_y, d_x, None, None, None, None, None


# --------------------------------------------------------------------------------------
# argument handling
# --------------------------------------------------------------------------------------

def _pair(value: IntOrPair, name: str, op: str, n: int = 2) -> tuple:
    """``value`` as a tuple of ``n`` ints: an int (or a 1-tuple) is repeated; other lengths raise,
    naming ``op`` and the argument. Shared with ops/pooling.py."""
    if isinstance(value, (int, np.integer)):
        return (int(value),) * n
    value = tuple(int(v) for v in value)
    if len(value) == 1:
        return value * n
    if len(value) != n:
        raise ValueError(f"{op}: {name} must be an int or a tuple of {n} ints, got {value}")
    return value


def _check_positive(values: tuple, name: str, op: str, allow_zero: bool = False) -> None:
    if any(v < 0 or (v == 0 and not allow_zero) for v in values):
        kind = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{op}: {name} must be {kind}, got {values}")


def _check_conv_operands(op: str, x, w, bias, groups: int, spatial: int, transposed: bool = False) -> None:
    if w.ndim != spatial + 2:
        raise ValueError(f"{op}: weight must be {spatial + 2}-d, got shape {tuple(w.shape)}")
    if x.ndim != spatial + 2:
        raise ValueError(f"{op}: expected a {spatial + 2}-d (batched) or {spatial + 1}-d (unbatched) input, "
                         f"got shape {tuple(x.shape)}")
    if x.dtype != w.dtype:
        raise TypeError(f"{op}: input dtype {x.dtype} and weight dtype {w.dtype} should be the same")
    if groups < 1:
        raise ValueError(f"{op}: groups must be a positive integer, got {groups}")
    if transposed:
        in_channels, out_channels = w.shape[0], w.shape[1] * groups
        if x.shape[1] != in_channels:
            raise ValueError(f"{op}: input has {x.shape[1]} channels but weight expects {in_channels} "
                             f"(groups={groups}); input {tuple(x.shape)}, weight {tuple(w.shape)}")
        if in_channels % groups:
            raise ValueError(f"{op}: in_channels {in_channels} must be divisible by groups {groups}")
    else:
        out_channels = w.shape[0]
        if x.shape[1] != w.shape[1] * groups:
            raise ValueError(f"{op}: input has {x.shape[1]} channels but weight expects {w.shape[1] * groups} "
                             f"(groups={groups}); input {tuple(x.shape)}, weight {tuple(w.shape)}")
        if out_channels % groups:
            raise ValueError(f"{op}: out_channels {out_channels} (weight {tuple(w.shape)}) must be divisible by "
                             f"groups {groups}")
    if bias is not None:
        if tuple(bias.shape) != (out_channels,):
            raise ValueError(f"{op}: bias must have shape ({out_channels},), got {tuple(bias.shape)}")
        if bias.dtype != x.dtype:
            raise TypeError(f"{op}: input dtype {x.dtype} and bias dtype {bias.dtype} should be the same")


def _add_bias(y, bias):
    if bias is None:
        return y
    return y + bias.reshape(1, -1, *([1] * (y.ndim - 2)))


def _batched(x, spatial: int):
    """Accept an unbatched input (C, *spatial) like PyTorch: returns (batched x, was_unbatched)."""
    if x.ndim == spatial + 1:
        return x.unsqueeze(0), True
    return x, False


def _same_padding(kernel: tuple, dilation: tuple) -> tuple:
    """Per spatial dim, (left, right) zero padding that keeps the size: total d*(k-1), extra on the right."""
    totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
    return tuple((t // 2, t - t // 2) for t in totals)


def _resolve_padding(op: str, padding, x, w, stride: tuple, dilation: tuple, spatial: int):
    """Returns (x, symmetric padding pair): 'same' with an odd total pads x itself on the right/bottom."""
    if isinstance(padding, str):
        if padding == "valid":
            return x, (0,) * spatial
        if padding != "same":
            raise ValueError(f"{op}: padding must be an int, a tuple, 'valid' or 'same', got {padding!r}")
        if any(s != 1 for s in stride):
            raise ValueError(f"{op}: padding='same' is not supported for strided convolutions (stride={stride})")
        sides = _same_padding(tuple(w.shape[2:]), dilation)
        if any(lo != hi for lo, hi in sides):
            widths = []
            for lo, hi in reversed(sides):  # F.pad lists the last dim first
                widths += [lo, hi]
            return shape_ops.pad(x, widths), (0,) * spatial
        return x, tuple(lo for lo, _ in sides)
    padding = _pair(padding, "padding", op, spatial)
    _check_positive(padding, "padding", op, allow_zero=True)
    return x, padding


# --------------------------------------------------------------------------------------
# public functions (torch.nn.functional signatures)
# --------------------------------------------------------------------------------------

def conv2d(input, weight, bias=None, stride: IntOrPair = 1, padding: Union[IntOrPair, str] = 0,
           dilation: IntOrPair = 1, groups: int = 1):
    """2-d convolution (cross-correlation) over (N, C, H, W) or unbatched (C, H, W) input.

    weight (out_channels, in_channels // groups, KH, KW); padding an int, a pair, 'valid' or 'same'.
    """
    op = "conv2d"
    stride, dilation = _pair(stride, "stride", op), _pair(dilation, "dilation", op)
    _check_positive(stride, "stride", op)
    _check_positive(dilation, "dilation", op)
    x, unbatched = _batched(input, 2)
    _check_conv_operands(op, x, weight, bias, int(groups), 2)
    x, padding = _resolve_padding(op, padding, x, weight, stride, dilation, 2)
    _check_output_size(op, x.shape[2:], weight.shape[2:], stride, padding, dilation, x.shape, weight.shape)
    y = _add_bias(Conv2d.apply(x, weight, stride, padding, dilation, int(groups)), bias)
    return y.squeeze(0) if unbatched else y


def conv1d(input, weight, bias=None, stride: IntOrPair = 1, padding: Union[IntOrPair, str] = 0,
           dilation: IntOrPair = 1, groups: int = 1):
    """1-d convolution over (N, C, L) or unbatched (C, L) input: a 2-d convolution with H = 1."""
    op = "conv1d"
    x, unbatched = _batched(input, 1)
    if weight.ndim != 3:
        raise ValueError(f"{op}: weight must be 3-d (out_channels, in_channels // groups, K), "
                         f"got {tuple(weight.shape)}")
    if x.ndim != 3:
        raise ValueError(f"{op}: expected a 3-d (batched) or 2-d (unbatched) input, got shape {tuple(input.shape)}")
    if not isinstance(padding, str):
        padding = (0, _pair(padding, "padding", op, 1)[0])
    y = conv2d(x.unsqueeze(2), weight.unsqueeze(2), bias, (1, _pair(stride, "stride", op, 1)[0]), padding,
               (1, _pair(dilation, "dilation", op, 1)[0]), groups)
    y = y.squeeze(2)
    return y.squeeze(0) if unbatched else y


def _check_output_size(op, spatial_in, kernel, stride, padding, dilation, x_shape, w_shape):
    out = [conv_output_size(s, k, st, p, d) for s, k, st, p, d in zip(spatial_in, kernel, stride, padding, dilation)]
    if any(o <= 0 for o in out):
        raise ValueError(f"{op}: input {tuple(x_shape)} is too small for weight {tuple(w_shape)} with "
                         f"padding {padding} and dilation {dilation} (output size would be {tuple(out)})")


def conv_transpose2d(input, weight, bias=None, stride: IntOrPair = 1, padding: IntOrPair = 0,
                     output_padding: IntOrPair = 0, groups: int = 1, dilation: IntOrPair = 1):
    """Transposed 2-d convolution (the gradient of conv2d with respect to its input).

    weight (in_channels, out_channels // groups, KH, KW);
    H_out = (H - 1)*stride - 2*padding + dilation*(KH - 1) + output_padding + 1.
    """
    op = "conv_transpose2d"
    stride, padding = _pair(stride, "stride", op), _pair(padding, "padding", op)
    output_padding, dilation = _pair(output_padding, "output_padding", op), _pair(dilation, "dilation", op)
    _check_positive(stride, "stride", op)
    _check_positive(dilation, "dilation", op)
    _check_positive(padding, "padding", op, allow_zero=True)
    _check_positive(output_padding, "output_padding", op, allow_zero=True)
    if any(op_ >= max(s, d) for op_, s, d in zip(output_padding, stride, dilation)):
        raise ValueError(f"{op}: output_padding {output_padding} must be smaller than either stride {stride} "
                         f"or dilation {dilation}")
    x, unbatched = _batched(input, 2)
    groups = int(groups)
    _check_conv_operands(op, x, weight, bias, groups, 2, transposed=True)
    N, _, H, W = x.shape
    out_hw = [(size - 1) * s - 2 * p + d * (k - 1) + o + 1
              for size, s, p, d, k, o in zip((H, W), stride, padding, dilation, weight.shape[2:], output_padding)]
    if any(o <= 0 for o in out_hw):
        raise ValueError(f"{op}: output size would be {tuple(out_hw)} for input {tuple(x.shape)}, "
                         f"weight {tuple(weight.shape)}")
    out_shape = (N, weight.shape[1] * groups, *out_hw)
    y = _add_bias(Conv2dGradInput.apply(x, weight, out_shape, stride, padding, dilation, groups), bias)
    return y.squeeze(0) if unbatched else y


def conv_transpose1d(input, weight, bias=None, stride: IntOrPair = 1, padding: IntOrPair = 0,
                     output_padding: IntOrPair = 0, groups: int = 1, dilation: IntOrPair = 1):
    """Transposed 1-d convolution: a transposed 2-d one with H = 1."""
    op = "conv_transpose1d"
    x, unbatched = _batched(input, 1)
    if weight.ndim != 3 or x.ndim != 3:
        raise ValueError(f"{op}: expected a 3-d input and weight, got input {tuple(input.shape)}, "
                         f"weight {tuple(weight.shape)}")

    def as_2d(value, name: str, height_value: int) -> tuple:
        """A 1-d argument as the (height, width) pair of the H = 1 convolution."""
        return (height_value, _pair(value, name, op, 1)[0])

    y = conv_transpose2d(x.unsqueeze(2), weight.unsqueeze(2), bias, as_2d(stride, "stride", 1),
                         as_2d(padding, "padding", 0), as_2d(output_padding, "output_padding", 0), groups,
                         as_2d(dilation, "dilation", 1)).squeeze(2)
    return y.squeeze(0) if unbatched else y


# --------------------------------------------------------------------------------------
# unfold / fold (im2col / col2im) as grouped convolutions with one-hot weights
# --------------------------------------------------------------------------------------

def _one_hot_taps(channels: int, kernel: tuple, dtype, xp):
    """Weight (C*KH*KW, 1, KH, KW) with groups=C: output channel c*KH*KW + t copies tap t of channel c,
    which is exactly unfold's row order (c, kh, kw)."""
    taps = kernel[0] * kernel[1]
    eye = xp.eye(taps, dtype=dtype).reshape(taps, 1, *kernel)
    return xp.ascontiguousarray(xp.tile(eye, (channels, 1, 1, 1)))


def unfold(input, kernel_size: IntOrPair, dilation: IntOrPair = 1, padding: IntOrPair = 0, stride: IntOrPair = 1):
    """Extract sliding blocks (im2col): (N, C, H, W) -> (N, C*KH*KW, L), as ``torch.nn.functional.unfold``."""
    op = "unfold"
    if input.ndim not in (3, 4):
        raise ValueError(f"{op}: expected a 3-d or 4-d input, got shape {tuple(input.shape)}")
    x, unbatched = _batched(input, 2)
    kernel, dilation = _pair(kernel_size, "kernel_size", op), _pair(dilation, "dilation", op)
    padding, stride = _pair(padding, "padding", op), _pair(stride, "stride", op)
    C = x.shape[1]
    _check_output_size(op, x.shape[2:], kernel, stride, padding, dilation, x.shape, kernel)
    w = _tensor_like(_one_hot_taps(C, kernel, x.dtype, x.xp), x)
    cols = Conv2d.apply(x, w, stride, padding, dilation, C)
    cols = cols.reshape(cols.shape[0], cols.shape[1], -1)
    return cols.squeeze(0) if unbatched else cols


def fold(input, output_size: IntOrPair, kernel_size: IntOrPair, dilation: IntOrPair = 1, padding: IntOrPair = 0,
         stride: IntOrPair = 1):
    """Sum sliding blocks back into an image (col2im): (N, C*KH*KW, L) -> (N, C, *output_size)."""
    op = "fold"
    if input.ndim not in (2, 3):
        raise ValueError(f"{op}: expected a 2-d or 3-d input, got shape {tuple(input.shape)}")
    cols = input.unsqueeze(0) if input.ndim == 2 else input
    out_hw, kernel = _pair(output_size, "output_size", op), _pair(kernel_size, "kernel_size", op)
    dilation, padding = _pair(dilation, "dilation", op), _pair(padding, "padding", op)
    stride = _pair(stride, "stride", op)
    taps = kernel[0] * kernel[1]
    if cols.shape[1] % taps:
        raise ValueError(f"{op}: expected size of input's dimension 1 to be divisible by the product of "
                         f"kernel_size {kernel}, got input {tuple(input.shape)}")
    blocks = [conv_output_size(s, k, st, p, d) for s, k, st, p, d in zip(out_hw, kernel, stride, padding, dilation)]
    if cols.shape[2] != blocks[0] * blocks[1]:
        raise ValueError(f"{op}: input {tuple(input.shape)} has {cols.shape[2]} blocks, but output_size {out_hw} "
                         f"with kernel_size {kernel} gives {blocks[0]}x{blocks[1]} = {blocks[0] * blocks[1]}")
    N, C = cols.shape[0], cols.shape[1] // taps
    w = _tensor_like(_one_hot_taps(C, kernel, cols.dtype, cols.xp), cols)
    image = Conv2dGradInput.apply(cols.reshape(N, C * taps, *blocks), w, (N, C, *out_hw), stride, padding,
                                  dilation, C)
    return image.squeeze(0) if input.ndim == 2 else image


def _tensor_like(array, like):
    return type(like)._make(array, like.device)


__all__ = ["conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d", "unfold", "fold",
           "Conv2d", "Conv2dGradInput", "Conv2dGradWeight"]
