"""``tinynn.nn.functional``: the stateless maths behind every layer and loss.

Most functions compose differentiable ops from ``tinynn.ops``. The hot ones get
their own ``Function`` with a forward on raw arrays and a compact backward
formula written in tinynn ops (so double backward still works):
``linear`` (one GEMM plus bias), ``batch_norm``, ``layer_norm``, ``group_norm``,
``cross_entropy``, and the smooth activations (GELU, SiLU, ELU, softplus, ...).

Convolution, pooling, attention and im2col come from ``tinynn.ops`` (kernels
registry behind them) and are re-exported here.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from .. import ops
from ..autograd.function import Function
from ..autograd.grad_mode import is_grad_enabled, no_grad
from ..backend.device import get_array_module
from ..backend.random import default_generator
from ..tensor import Tensor
from ..ops import pad  # noqa: F401  (F.pad is the core op)
from ..ops import softmax as _softmax_op, log_softmax as _log_softmax_op

# Re-exports: the kernel-backed ops live in tinynn/ops (PyTorch's F.* signatures).
from ..ops.attention import scaled_dot_product_attention  # noqa: F401,E402
from ..ops.conv import conv1d, conv2d, conv_transpose1d, conv_transpose2d, fold, unfold  # noqa: F401,E402
from ..ops.pooling import (adaptive_avg_pool1d, adaptive_avg_pool2d, adaptive_max_pool1d,  # noqa: F401,E402
                           adaptive_max_pool2d, avg_pool1d, avg_pool2d, max_pool1d, max_pool2d)


def _shape(t) -> tuple:
    return tuple(t.shape)


# =====================================================================================
# Linear layers
# =====================================================================================
class Addmm(Function):
    """y = x @ w^T + b for 2-d x: one GEMM, the bias added in place."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        y = x @ weight.T
        if bias is not None:
            y += bias
        return y

    @staticmethod
    def backward(ctx, grad):  # dx = g w,  dw = g^T x,  db = sum_rows g
        x, weight = ctx.saved_tensors
        grad_x = grad @ weight if ctx.needs_input_grad[0] else None
        grad_w = grad.mT @ x if ctx.needs_input_grad[1] else None
        grad_b = grad.sum(0) if len(ctx.needs_input_grad) > 2 and ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """y = x W^T + b over the last dim of ``input`` (any number of leading dims)."""
    in_features = weight.shape[-1]
    if input.ndim == 0 or input.shape[-1] != in_features:
        raise ValueError(f"linear: expected input with last dimension {in_features} (weight shape "
                         f"{_shape(weight)}), got input of shape {_shape(input)}")
    if input.ndim == 2:
        return Addmm.apply(input, weight, bias)
    if input.ndim == 1:
        return Addmm.apply(input.unsqueeze(0), weight, bias).squeeze(0)
    lead = input.shape[:-1]
    y = Addmm.apply(input.reshape(-1, in_features), weight, bias)
    return y.reshape(*lead, weight.shape[0])


def bilinear(input1: Tensor, input2: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """y_k = x1^T W_k x2 + b_k."""
    if input1.shape[-1] != weight.shape[1] or input2.shape[-1] != weight.shape[2]:
        raise ValueError(f"bilinear: weight of shape {_shape(weight)} expects inputs with last dims "
                         f"{weight.shape[1]} and {weight.shape[2]}, got {_shape(input1)} and {_shape(input2)}")
    lead = input1.shape[:-1]
    x1 = input1.reshape(-1, input1.shape[-1])
    x2 = input2.reshape(-1, input2.shape[-1])
    y = ops.einsum("bi,kij,bj->bk", x1, weight, x2)
    if bias is not None:
        y = y + bias
    return y.reshape(*lead, weight.shape[0])


# =====================================================================================
# Activations
# =====================================================================================
def relu(input: Tensor, inplace: bool = False) -> Tensor:
    return ops.relu(input)


def hardtanh(input: Tensor, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> Tensor:
    return Hardtanh.apply(input, float(min_val), float(max_val))


def relu6(input: Tensor, inplace: bool = False) -> Tensor:
    return Hardtanh.apply(input, 0.0, 6.0)


def sigmoid(input: Tensor) -> Tensor:
    return ops.sigmoid(input)


def tanh(input: Tensor) -> Tensor:
    return ops.tanh(input)


# Fused kernels (normalisation, GELU) come from the kernel registry on cpu float arrays.
def _kernel(op: str, x):
    """The implementation of ``op`` for array ``x``: the registry's default (Numba) for
    float32/float64 NumPy arrays, otherwise the NumPy reference, which also runs on CuPy
    arrays and any float dtype (both live in ``tinynn/kernels/cpu``)."""
    from ..backend import kernels
    if _is_cpu_float(x):
        return kernels.get(op, "cpu")
    from ..kernels.cpu import activation, normalization
    module = normalization if hasattr(normalization, f"{op}_reference") else activation
    return getattr(module, f"{op}_reference")


def _contiguous(a):
    """``a`` in C order (the kernels index raw memory); no copy when it already is."""
    return a if a.flags.c_contiguous else get_array_module(a).ascontiguousarray(a)


def _flat(a):
    return None if a is None else a.reshape(-1)


def _is_cpu_float(a) -> bool:
    return isinstance(a, np.ndarray) and a.dtype in (np.float32, np.float64)


# The smooth activations below each write their derivative ONCE, as a formula over a
# small maths namespace: backward evaluates it on raw arrays (fast, the usual case) or,
# when a graph is being recorded for double backward, with differentiable tinynn ops.
class _ArrayMath:
    """Elementwise maths on raw arrays (NumPy or CuPy)."""

    @staticmethod
    def exp(a):
        return get_array_module(a).exp(a)

    @staticmethod
    def tanh(a):
        return get_array_module(a).tanh(a)

    @staticmethod
    def where(condition, a, b):
        return get_array_module(condition).where(condition, a, b)

    @staticmethod
    def minimum(a, b):
        return get_array_module(a).minimum(a, b)

    @staticmethod
    def erf(a):
        return ops.elementwise._erf_array(a)

    @staticmethod
    def sigmoid(a):
        return _sigmoid_array(a)

    @staticmethod
    def softplus(a):
        return _softplus_array(a)


class _TensorMath:
    """The same names as differentiable tinynn ops."""
    exp = staticmethod(ops.exp)
    tanh = staticmethod(ops.tanh)
    where = staticmethod(ops.where)
    minimum = staticmethod(lambda a, b: ops.clamp(a, max=b))
    erf = staticmethod(ops.erf)
    sigmoid = staticmethod(ops.sigmoid)
    softplus = staticmethod(lambda a: softplus(a))


def _sigmoid_array(x):
    xp = get_array_module(x)
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype, copy=False)


def _softplus_array(x):
    """log(1 + e^x) without overflow: max(x, 0) + log1p(e^-|x|)."""
    xp = get_array_module(x)
    return xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x)))


class _Pointwise(Function):
    """y = f(x) elementwise; subclasses give ``value(x, ctx)`` (arrays) and ``derivative(x, m, ctx)``."""

    @classmethod
    def forward(cls, ctx, x, *params):
        ctx.save_for_backward(x)
        ctx.params = params
        return cls.value(x, *params).astype(x.dtype, copy=False)

    @classmethod
    def backward(cls, ctx, grad):  # dx = g * f'(x)
        (x,) = ctx.saved_tensors
        nones = (None,) * len(ctx.params)
        if is_grad_enabled():
            return (grad * cls.derivative(x, _TensorMath, *ctx.params),) + nones
        slope = cls.array_derivative(ctx, x.data)
        return ((grad.data * slope).astype(grad.dtype, copy=False),) + nones

    @classmethod
    def array_derivative(cls, ctx, x):
        """f'(x) on arrays; subclasses may reuse what their forward kept on ``ctx``."""
        return cls.derivative(x, _ArrayMath, *ctx.params)


class LeakyRelu(_Pointwise):
    @staticmethod
    def value(x, slope):
        return get_array_module(x).where(x > 0, x, x * slope)

    @staticmethod
    def derivative(x, m, slope):  # 1 for x > 0, slope otherwise
        return m.where(x > 0, 1.0, slope)


class Hardtanh(_Pointwise):
    @staticmethod
    def value(x, low, high):
        return get_array_module(x).clip(x, low, high)

    @staticmethod
    def derivative(x, m, low, high):  # 1 strictly inside (low, high), 0 outside and at the ends (as PyTorch)
        return m.where((x > low) & (x < high), 1.0, 0.0)


def prelu(input: Tensor, weight: Tensor) -> Tensor:
    """max(0, x) + w * min(0, x), ``w`` one slope or one per channel (dim 1)."""
    if weight.numel() != 1:
        if input.ndim < 2 or input.shape[1] != weight.numel():
            raise ValueError(f"prelu: {weight.numel()} slopes need an input with {weight.numel()} channels in dim 1, "
                             f"got input of shape {_shape(input)}")
        weight = weight.reshape((weight.numel(),) + (1,) * (input.ndim - 2))
    return ops.relu(input) - weight * ops.relu(-input)


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    return LeakyRelu.apply(input, float(negative_slope))


class Elu(_Pointwise):
    @staticmethod
    def value(x, alpha, scale):  # scale * (x if x > 0 else alpha (e^x - 1))
        xp = get_array_module(x)
        return scale * xp.where(x > 0, x, alpha * xp.expm1(xp.minimum(x, 0)))

    @staticmethod
    def derivative(x, m, alpha, scale):  # scale for x > 0, scale * alpha * e^x otherwise
        return m.where(x > 0, 1.0, m.exp(m.minimum(x, 0.0)) * alpha) * scale


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    return Elu.apply(input, float(alpha), 1.0)


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def selu(input: Tensor, inplace: bool = False) -> Tensor:
    return Elu.apply(input, _SELU_ALPHA, _SELU_SCALE)


def celu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """max(0, x) + min(0, alpha (e^(x/alpha) - 1))."""
    return Elu.apply(input / alpha, 1.0, 1.0) * alpha if alpha != 1.0 else Elu.apply(input, 1.0, 1.0)


_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_GELU_C = 0.044715


class Gelu(_Pointwise):
    """x Phi(x) or its tanh approximation. First-order forward and backward run the fused
    ``gelu_forward`` / ``gelu_backward`` kernels (tinynn/kernels/cpu/activation.py) on cpu
    float32/float64; other arrays (CuPy, float16) use the formulas below."""

    @classmethod
    def forward(cls, ctx, x, approximate):
        if _is_cpu_float(x):
            ctx.save_for_backward(x)
            ctx.params = (approximate,)
            return _kernel("gelu_forward", x)(_contiguous(x), approximate)
        if approximate == "tanh":
            return super().forward(ctx, x, approximate)
        ctx.save_for_backward(x)
        ctx.params = (approximate,)
        ctx.cdf = 0.5 * (1.0 + _ArrayMath.erf(x * _INV_SQRT_2))  # Phi(x), kept for backward (erf is costly)
        return (x * ctx.cdf).astype(x.dtype, copy=False)

    @classmethod
    def backward(cls, ctx, grad):
        (x,) = ctx.saved_tensors
        if is_grad_enabled() or not _is_cpu_float(x.data):
            return super().backward(ctx, grad)
        g = _contiguous(grad.data.astype(x.dtype, copy=False))
        return _kernel("gelu_backward", x.data)(g, _contiguous(x.data), ctx.params[0]), None

    @classmethod
    def array_derivative(cls, ctx, x):
        if ctx.params[0] == "tanh":
            return super().array_derivative(ctx, x)
        return ctx.cdf + x * get_array_module(x).exp(x * x * -0.5) * _INV_SQRT_2PI

    @staticmethod
    def value(x, approximate):
        if approximate == "tanh":  # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
            inner = (x + _GELU_C * x * x * x) * _SQRT_2_OVER_PI
            return 0.5 * x * (1.0 + get_array_module(x).tanh(inner))
        return x * (0.5 * (1.0 + _ArrayMath.erf(x * _INV_SQRT_2)))  # x Phi(x)

    @staticmethod
    def derivative(x, m, approximate):
        if approximate == "tanh":  # 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2)
            t = m.tanh((x + x * x * x * _GELU_C) * _SQRT_2_OVER_PI)
            return (t + 1.0) * 0.5 + x * 0.5 * (1.0 - t * t) * ((x * x * (3 * _GELU_C) + 1.0) * _SQRT_2_OVER_PI)
        # d/dx x Phi(x) = Phi(x) + x phi(x)
        return (m.erf(x * _INV_SQRT_2) + 1.0) * 0.5 + x * m.exp(x * x * -0.5) * _INV_SQRT_2PI


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return Gelu.apply(input, approximate)


class Silu(_Pointwise):
    @classmethod
    def forward(cls, ctx, x):
        ctx.save_for_backward(x)
        ctx.params = ()
        ctx.sig = _sigmoid_array(x)  # kept for backward
        return x * ctx.sig

    @classmethod
    def array_derivative(cls, ctx, x):
        s = ctx.sig
        return s * (x * (1.0 - s) + 1.0)

    @staticmethod
    def value(x):
        return x * _sigmoid_array(x)

    @staticmethod
    def derivative(x, m):  # d x s(x) = s (1 + x (1 - s))
        s = m.sigmoid(x)
        return s * (x * (1.0 - s) + 1.0)


def silu(input: Tensor, inplace: bool = False) -> Tensor:
    return Silu.apply(input)


class Softplus(_Pointwise):
    @staticmethod
    def value(x, beta, threshold):  # log(1 + e^(beta x)) / beta, linear above the threshold
        bx = x * beta
        return get_array_module(x).where(bx > threshold, x, _softplus_array(bx) / beta)

    @staticmethod
    def derivative(x, m, beta, threshold):  # sigmoid(beta x), or 1 above the threshold
        bx = x * beta
        return m.where(bx > threshold, 1.0, m.sigmoid(bx))


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    return Softplus.apply(input, float(beta), float(threshold))


class Mish(_Pointwise):
    @staticmethod
    def value(x):  # x tanh(softplus(x))
        return x * get_array_module(x).tanh(_softplus_array(x))

    @staticmethod
    def derivative(x, m):  # tanh(sp(x)) + x sigmoid(x) (1 - tanh^2(sp(x)))
        t = m.tanh(m.softplus(x))
        return t + x * m.sigmoid(x) * (1.0 - t * t)


def mish(input: Tensor, inplace: bool = False) -> Tensor:
    return Mish.apply(input)


def hardsigmoid(input: Tensor, inplace: bool = False) -> Tensor:
    """clamp(x / 6 + 1/2, 0, 1): hardtanh of x on [-3, 3], rescaled."""
    return Hardtanh.apply(input, -3.0, 3.0) / 6.0 + 0.5


class Hardswish(_Pointwise):
    @staticmethod
    def value(x):  # x * relu6(x + 3) / 6
        return x * get_array_module(x).clip(x + 3.0, 0.0, 6.0) / 6.0

    @staticmethod
    def derivative(x, m):  # 0 for x <= -3, 1 for x >= 3, (2x + 3) / 6 between (PyTorch's values at the ends)
        return m.where(x <= -3.0, 0.0, m.where(x >= 3.0, 1.0, x * (1.0 / 3.0) + 0.5))


def hardswish(input: Tensor, inplace: bool = False) -> Tensor:
    return Hardswish.apply(input)


def logsigmoid(input: Tensor) -> Tensor:
    return -softplus(-input)


def softsign(input: Tensor) -> Tensor:
    return input / (ops.abs(input) + 1.0)


def tanhshrink(input: Tensor) -> Tensor:
    return input - ops.tanh(input)


def glu(input: Tensor, dim: int = -1) -> Tensor:
    a, b = ops.chunk(input, 2, dim)
    return a * ops.sigmoid(b)


def _softmax_dim(ndim: int) -> int:
    """PyTorch's legacy implicit dim: 0 for 0-, 1- and 3-d inputs, else 1."""
    return 0 if ndim in (0, 1, 3) else 1


def softmax(input: Tensor, dim: int | None = None, dtype=None) -> Tensor:
    return _softmax_op(input, _softmax_dim(input.ndim) if dim is None else dim, dtype=dtype)


def log_softmax(input: Tensor, dim: int | None = None, dtype=None) -> Tensor:
    return _log_softmax_op(input, _softmax_dim(input.ndim) if dim is None else dim, dtype=dtype)


def softmin(input: Tensor, dim: int | None = None, dtype=None) -> Tensor:
    return softmax(-input, dim, dtype)


# =====================================================================================
# Dropout
# =====================================================================================
def _dropout_mask(input: Tensor, p: float, shape: tuple, generator) -> Tensor:
    """Keep each element with probability 1 - p and scale survivors by 1 / (1 - p)."""
    gen = generator if generator is not None else default_generator(input.device)
    keep = gen.bernoulli(shape, 1.0 - p, input.dtype)
    keep *= input.dtype.type(1.0 / (1.0 - p))
    return Tensor._make(keep, input.device)


def _check_p(p: float, name: str) -> None:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name}: dropout probability has to be between 0 and 1, but got {p}")


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False,
            generator=None) -> Tensor:
    _check_p(p, "dropout")
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * 0.0
    return input * _dropout_mask(input, p, input.shape, generator)


def _channel_dropout(input: Tensor, p: float, training: bool, generator, name: str, spatial_dims: int) -> Tensor:
    _check_p(p, name)
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * 0.0
    batched = input.ndim == spatial_dims + 2
    # One draw per (sample, channel): whole feature maps are zeroed together.
    shape = input.shape[:2] if batched else input.shape[:1]
    mask_shape = tuple(shape) + (1,) * (input.ndim - len(shape))
    return input * _dropout_mask(input, p, mask_shape, generator)


def dropout1d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False, generator=None):
    return _channel_dropout(input, p, training, generator, "dropout1d", 1)


def dropout2d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False, generator=None):
    return _channel_dropout(input, p, training, generator, "dropout2d", 2)


def dropout3d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False, generator=None):
    return _channel_dropout(input, p, training, generator, "dropout3d", 3)


def alpha_dropout(input: Tensor, p: float = 0.5, training: bool = False, inplace: bool = False,
                  generator=None) -> Tensor:
    """Dropout for SELU networks: dropped units take SELU's negative saturation, then an affine fix-up
    keeps mean and variance."""
    _check_p(p, "alpha_dropout")
    if not training or p == 0.0:
        return input
    alpha_prime = -_SELU_ALPHA * _SELU_SCALE
    a = ((1 - p) * (1 + p * alpha_prime ** 2)) ** -0.5
    b = -a * alpha_prime * p
    gen = generator if generator is not None else default_generator(input.device)
    keep = Tensor._make(gen.bernoulli(input.shape, 1.0 - p, input.dtype), input.device)
    return (input * keep + (1.0 - keep) * alpha_prime) * a + b


# =====================================================================================
# Normalisation: shared pieces
#
# Batch, layer and group norm all standardise x over some axes,
#     xhat = (x - mean) * invstd,   invstd = 1 / sqrt(var + eps)   (biased variance),
# then scale and shift. Their backward is the same formula over the same axes:
#     dx = invstd * (gxhat - mean(gxhat) - xhat * mean(gxhat * xhat)),   gxhat = g * weight.
# Each Function keeps the statistics (mean, invstd) from the forward. Backward has two
# paths with one formula: a fused kernel on raw arrays (the usual case: ``*_forward`` /
# ``*_backward`` in tinynn/kernels/cpu/normalization.py), and, when a graph is being
# recorded (create_graph=True, double backward), the same formula in tinynn ops with the
# statistics recomputed from x so that they carry their own gradient.
# =====================================================================================
def _standardize_graph(x: Tensor, axes: tuple, eps: float):
    """xhat and invstd as differentiable functions of ``x`` (for double backward)."""
    mean = x.mean(axes, keepdim=True)
    centered = x - mean
    invstd = ops.rsqrt((centered * centered).mean(axes, keepdim=True) + eps)
    return centered * invstd, invstd


def _standardize_backward(grad_xhat: Tensor, xhat: Tensor, invstd: Tensor, axes: tuple) -> Tensor:
    """The same formula in tinynn ops (differentiable)."""
    return invstd * (grad_xhat - grad_xhat.mean(axes, keepdim=True)
                     - xhat * (grad_xhat * xhat).mean(axes, keepdim=True))


def _needs(ctx, i: int) -> bool:
    return len(ctx.needs_input_grad) > i and ctx.needs_input_grad[i]


# =====================================================================================
# Batch normalisation
# =====================================================================================
class BatchNormTrain(Function):
    """Batch norm with the batch's statistics: y = xhat * w + b, statistics over every dim but
    the channel dim (1). Also returns the batch mean and biased variance (not differentiable).
    Kernels ``batch_norm_forward`` / ``batch_norm_backward`` see x as (N, C, L)."""

    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        x3 = _contiguous(x).reshape(x.shape[0], x.shape[1], -1)
        y, mean, invstd, var = _kernel("batch_norm_forward", x3)(x3, weight, bias, eps)
        ctx.save_for_backward(x, weight)
        ctx.axes, ctx.eps, ctx.x3, ctx.mean, ctx.invstd = (0,) + tuple(range(2, x.ndim)), eps, x3, mean, invstd
        ctx.channel_shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
        ctx.mark_non_differentiable(mean, var)
        return y.reshape(x.shape), mean, var

    @staticmethod
    def backward(ctx, grad, _grad_mean, _grad_var):
        x, weight = ctx.saved_tensors
        if is_grad_enabled():
            return BatchNormTrain._backward_graph(ctx, grad, x, weight)
        # dw = sum(g xhat), db = sum(g), dx = w invstd (g - mean(g) - xhat mean(g xhat))
        g = _contiguous(grad.data.astype(ctx.x3.dtype, copy=False)).reshape(ctx.x3.shape)
        grad_x, grad_w, grad_b = _kernel("batch_norm_backward", g)(
            g, ctx.x3, ctx.mean, ctx.invstd, None if weight is None else weight.data)
        return (grad_x.reshape(x.shape) if ctx.needs_input_grad[0] else None,
                grad_w if _needs(ctx, 1) else None, grad_b if _needs(ctx, 2) else None, None)

    @staticmethod
    def _backward_graph(ctx, grad, x, weight):
        xhat, invstd = _standardize_graph(x, ctx.axes, ctx.eps)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_xhat = grad * weight.reshape(ctx.channel_shape) if weight is not None else grad
            grad_x = _standardize_backward(grad_xhat, xhat, invstd, ctx.axes)
        if _needs(ctx, 1):
            grad_w = (grad * xhat).sum(ctx.axes)
        if _needs(ctx, 2):
            grad_b = grad.sum(ctx.axes)
        return grad_x, grad_w, grad_b, None


def batch_norm(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
               weight: Tensor | None = None, bias: Tensor | None = None, training: bool = False,
               momentum: float | None = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalise each channel (dim 1). In training, use the batch's statistics and update the
    running ones in place: running = (1 - momentum) running + momentum batch (unbiased variance)."""
    if input.ndim < 2:
        raise ValueError(f"batch_norm: expected an input with at least 2 dims (N, C, ...), got {_shape(input)}")
    channels = input.shape[1]
    for name, t in (("weight", weight), ("bias", bias), ("running_mean", running_mean), ("running_var", running_var)):
        if t is not None and t.numel() != channels:
            raise ValueError(f"batch_norm: {name} has {t.numel()} elements but the input has {channels} channels "
                             f"(input shape {_shape(input)})")
    if not training:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: running_mean and running_var are needed when training=False")
        channel_shape = (1, channels) + (1,) * (input.ndim - 2)
        scale = ops.rsqrt(running_var + eps)
        if weight is not None:
            scale = scale * weight
        shift = -running_mean * scale
        if bias is not None:
            shift = shift + bias
        return input * scale.reshape(channel_shape) + shift.reshape(channel_shape)
    count = input.numel() // channels
    if count <= 1:
        raise ValueError(f"batch_norm: expected more than 1 value per channel when training, "
                         f"got input of shape {_shape(input)}")
    y, batch_mean, batch_var = BatchNormTrain.apply(input, weight, bias, float(eps))
    if running_mean is not None and running_var is not None:
        m = 0.0 if momentum is None else momentum
        unbiased = batch_var.data * (count / (count - 1))
        running_mean.data *= 1.0 - m
        running_mean.data += m * batch_mean.data.astype(running_mean.dtype, copy=False)
        running_var.data *= 1.0 - m
        running_var.data += m * unbiased.astype(running_var.dtype, copy=False)
    return y


# =====================================================================================
# Layer / group / RMS / local response normalisation
# =====================================================================================
class LayerNormFn(Function):
    """y = xhat * w + b, standardised over the last ``k`` dims. Kernels ``layer_norm_forward`` /
    ``layer_norm_backward`` see x as (rows, features)."""

    @staticmethod
    def forward(ctx, x, weight, bias, k, eps):
        features = int(np.prod(x.shape[x.ndim - k:]))
        x2d = _contiguous(x).reshape(-1, features)
        y, mean, rstd = _kernel("layer_norm_forward", x2d)(x2d, _flat(weight), _flat(bias), eps)
        ctx.save_for_backward(x, weight)
        ctx.axes, ctx.eps, ctx.x2d, ctx.mean, ctx.rstd = tuple(range(x.ndim - k, x.ndim)), eps, x2d, mean, rstd
        return y.reshape(x.shape)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        lead = tuple(range(x.ndim - len(ctx.axes)))
        if is_grad_enabled():
            xhat, invstd = _standardize_graph(x, ctx.axes, ctx.eps)
            grad_x = grad_w = grad_b = None
            if ctx.needs_input_grad[0]:
                grad_x = _standardize_backward(grad * weight if weight is not None else grad, xhat, invstd, ctx.axes)
            if _needs(ctx, 1):
                grad_w = (grad * xhat).sum(lead)  # dw = sum over the leading dims of g * xhat
            if _needs(ctx, 2):
                grad_b = grad.sum(lead)
            return grad_x, grad_w, grad_b, None, None
        g = _contiguous(grad.data.astype(ctx.x2d.dtype, copy=False)).reshape(ctx.x2d.shape)
        grad_x, grad_w, grad_b = _kernel("layer_norm_backward", g)(
            g, ctx.x2d, ctx.mean, ctx.rstd, None if weight is None else _flat(weight.data))
        return (grad_x.reshape(x.shape) if ctx.needs_input_grad[0] else None,
                grad_w.reshape(weight.shape) if _needs(ctx, 1) else None,
                grad_b.reshape(weight.shape if weight is not None else x.shape[x.ndim - len(ctx.axes):])
                if _needs(ctx, 2) else None, None, None)


def _normalized_shape(normalized_shape) -> tuple:
    if isinstance(normalized_shape, numbers.Integral):
        return (int(normalized_shape),)
    return tuple(int(s) for s in normalized_shape)


def layer_norm(input: Tensor, normalized_shape, weight: Tensor | None = None, bias: Tensor | None = None,
               eps: float = 1e-5) -> Tensor:
    shape = _normalized_shape(normalized_shape)
    if _shape(input)[input.ndim - len(shape):] != shape or input.ndim < len(shape):
        raise ValueError(f"layer_norm: normalized_shape {list(shape)} does not match the last dims of the input "
                         f"of shape {_shape(input)}")
    return LayerNormFn.apply(input, weight, bias, len(shape), float(eps))


class GroupNormFn(Function):
    """Split the channels into groups; standardise each (sample, group) over its channels and
    positions; then scale and shift per channel. Kernels ``group_norm_forward`` /
    ``group_norm_backward`` see x as (N, C, L)."""

    @staticmethod
    def forward(ctx, x, weight, bias, groups, eps):
        x3 = _contiguous(x).reshape(x.shape[0], x.shape[1], -1)
        y, mean, rstd = _kernel("group_norm_forward", x3)(x3, weight, bias, groups, eps)
        ctx.save_for_backward(x, weight)
        ctx.groups, ctx.eps, ctx.x3, ctx.mean, ctx.rstd = groups, eps, x3, mean, rstd
        ctx.channel_shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
        return y.reshape(x.shape)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        n, shape = x.shape[0], x.shape
        channel_axes = (0,) + tuple(range(2, x.ndim))
        if is_grad_enabled():
            xhat, invstd = _standardize_graph(x.reshape(n, ctx.groups, -1), (2,), ctx.eps)
            grad_x = grad_w = grad_b = None
            if ctx.needs_input_grad[0]:
                w = weight.reshape(ctx.channel_shape) if weight is not None else None
                grad_xhat = (grad * w if w is not None else grad).reshape(n, ctx.groups, -1)
                grad_x = _standardize_backward(grad_xhat, xhat, invstd, (2,)).reshape(shape)
            if _needs(ctx, 1):
                grad_w = (grad * xhat.reshape(shape)).sum(channel_axes)
            if _needs(ctx, 2):
                grad_b = grad.sum(channel_axes)
            return grad_x, grad_w, grad_b, None, None
        g = _contiguous(grad.data.astype(ctx.x3.dtype, copy=False)).reshape(ctx.x3.shape)
        grad_x, grad_w, grad_b = _kernel("group_norm_backward", g)(
            g, ctx.x3, ctx.mean, ctx.rstd, None if weight is None else weight.data, ctx.groups)
        return (grad_x.reshape(shape) if ctx.needs_input_grad[0] else None,
                grad_w if _needs(ctx, 1) else None, grad_b if _needs(ctx, 2) else None, None, None)


def group_norm(input: Tensor, num_groups: int, weight: Tensor | None = None, bias: Tensor | None = None,
               eps: float = 1e-5) -> Tensor:
    if input.ndim < 2 or input.shape[1] % num_groups:
        raise ValueError(f"group_norm: expected an input (N, C, ...) with C divisible by num_groups={num_groups}, "
                         f"got input of shape {_shape(input)}")
    return GroupNormFn.apply(input, weight, bias, int(num_groups), float(eps))


def instance_norm(input: Tensor, running_mean=None, running_var=None, weight=None, bias=None,
                  use_input_stats: bool = True, momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalise each (sample, channel) over its positions: group norm with one channel per group."""
    return group_norm(input, input.shape[1], weight, bias, eps)


def rms_norm(input: Tensor, normalized_shape, weight: Tensor | None = None, eps: float | None = None) -> Tensor:
    """y = x / sqrt(mean(x^2) + eps) * w over the last dims (eps defaults to the dtype's machine epsilon)."""
    shape = _normalized_shape(normalized_shape)
    if _shape(input)[input.ndim - len(shape):] != shape:
        raise ValueError(f"rms_norm: normalized_shape {list(shape)} does not match the last dims of the input "
                         f"of shape {_shape(input)}")
    eps = float(np.finfo(input.dtype).eps) if eps is None else eps
    axes = tuple(range(input.ndim - len(shape), input.ndim))
    y = input * ops.rsqrt((input * input).mean(axes, keepdim=True) + eps)
    return y * weight if weight is not None else y


def local_response_norm(input: Tensor, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0) -> Tensor:
    """x / (k + alpha/size * sum of x^2 over ``size`` neighbouring channels)^beta (zero padded)."""
    if input.ndim < 3:
        raise ValueError(f"local_response_norm: expected an input with 3 or more dims, got {_shape(input)}")
    channels = input.shape[1]
    squared = input * input
    widths = [0, 0] * (input.ndim - 2) + [size // 2, (size - 1) // 2]
    padded = ops.pad(squared, widths)
    window_sum = padded.narrow(1, 0, channels)
    for offset in range(1, size):
        window_sum = window_sum + padded.narrow(1, offset, channels)
    return input / ((window_sum * (alpha / size) + k) ** beta)


def _vector_norm(input: Tensor, p: float, dim: int, keepdim: bool = False) -> Tensor:
    """The p-norm along ``dim`` whose gradient at a zero vector is 0 (PyTorch's subgradient),
    not the NaN that d sqrt(s) / ds = inf times 0 would give."""
    if p != 2:
        return ops.norm(input, p, dim, keepdim=keepdim)
    squares = (input * input).sum(dim, keepdim=keepdim)
    nonzero = squares != 0
    return ops.sqrt(ops.where(nonzero, squares, 1.0)) * nonzero


def normalize(input: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12) -> Tensor:
    """x / max(||x||_p, eps) along ``dim``."""
    return input / ops.clamp(_vector_norm(input, p, dim, keepdim=True), min=eps)


# =====================================================================================
# Embedding, one-hot, distances
# =====================================================================================
class EmbeddingFn(Function):
    """out = weight[indices]; the padding row receives no gradient."""

    @staticmethod
    def forward(ctx, weight, indices, padding_idx):
        ctx.weight_shape, ctx.indices, ctx.padding_idx = weight.shape, indices, padding_idx
        return weight[indices]

    @staticmethod
    def backward(ctx, grad):  # scatter-add each looked-up row's gradient into its weight row
        if ctx.padding_idx is not None:
            keep = Tensor._make((ctx.indices != ctx.padding_idx)[..., None].astype(grad.dtype), grad.device)
            grad = grad * keep
        from ..ops.indexing import IndexBackward
        return IndexBackward.apply(grad, ctx.weight_shape, ctx.indices), None, None


def embedding(input: Tensor, weight: Tensor, padding_idx: int | None = None, max_norm: float | None = None,
              norm_type: float = 2.0, scale_grad_by_freq: bool = False, sparse: bool = False) -> Tensor:
    indices = input.data if isinstance(input, Tensor) else np.asarray(input)
    if indices.dtype.kind not in "iu":
        raise TypeError(f"embedding: expected integer indices, got dtype {indices.dtype}")
    num = weight.shape[0]
    if indices.size and (int(indices.min()) < 0 or int(indices.max()) >= num):
        bad = int(indices.max()) if int(indices.max()) >= num else int(indices.min())
        raise IndexError(f"embedding: index {bad} is out of range for an embedding table with {num} rows")
    if padding_idx is not None and padding_idx < 0:
        padding_idx += num
    if max_norm is not None:
        _embedding_renorm_(weight, indices, max_norm, norm_type)
    return EmbeddingFn.apply(weight, indices, padding_idx)


def _embedding_renorm_(weight: Tensor, indices, max_norm: float, norm_type: float) -> None:
    """Rescale, in place, the looked-up rows whose norm exceeds ``max_norm`` (as PyTorch)."""
    xp = weight.xp
    rows = xp.unique(indices.reshape(-1))
    with no_grad():
        selected = weight.data[rows]
        norms = (xp.abs(selected) ** norm_type).sum(axis=1) ** (1.0 / norm_type)
        scale = xp.where(norms > max_norm, max_norm / (norms + 1e-7), 1.0).astype(weight.dtype)
        weight.data[rows] = selected * scale[:, None]


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    data = tensor.data
    if data.dtype.kind not in "iu":
        raise TypeError(f"one_hot: expected an integer tensor, got dtype {data.dtype}")
    xp = tensor.xp
    if num_classes < 0:
        num_classes = int(data.max()) + 1 if data.size else 0
    if data.size and (int(data.min()) < 0 or int(data.max()) >= num_classes):
        raise ValueError(f"one_hot: class values must be in [0, {num_classes}), got values in "
                         f"[{int(data.min())}, {int(data.max())}]")
    out = (data[..., None] == xp.arange(num_classes)).astype(np.int64)
    return Tensor._make(out, tensor.device)


def cosine_similarity(x1: Tensor, x2: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """sum(x1/max(||x1||, eps) * x2/max(||x2||, eps)) along ``dim``."""
    n1 = ops.clamp(_vector_norm(x1, 2, dim, keepdim=True), min=eps)
    n2 = ops.clamp(_vector_norm(x2, 2, dim, keepdim=True), min=eps)
    return ((x1 / n1) * (x2 / n2)).sum(dim)


def pairwise_distance(x1: Tensor, x2: Tensor, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False) -> Tensor:
    """||x1 - x2 + eps||_p along the last dim."""
    ndim = max(x1.ndim, x2.ndim)
    return _vector_norm(x1 - x2 + eps, p, ndim - 1 if ndim else None, keepdim=keepdim)


# =====================================================================================
# Resampling
# =====================================================================================
def _pair_sizes(value, n: int, name: str) -> tuple:
    if isinstance(value, (tuple, list)):
        if len(value) != n:
            raise ValueError(f"interpolate: {name} must have {n} elements for this input, got {value}")
        return tuple(value)
    return (value,) * n


def _source_index(out_size: int, in_size: int, scale, mode: str, align_corners: bool):
    """For each output position, the (fractional) source position, as PyTorch computes it."""
    dst = np.arange(out_size, dtype=np.float64)
    if mode in ("nearest", "nearest-exact"):
        ratio = (1.0 / scale) if scale is not None else in_size / out_size
        src = np.floor((dst + 0.5) * ratio) if mode == "nearest-exact" else np.floor(dst * ratio)
        return np.minimum(src.astype(np.int64), in_size - 1)
    if align_corners:
        return dst * ((in_size - 1) / (out_size - 1)) if out_size > 1 else np.zeros_like(dst)
    ratio = (1.0 / scale) if scale is not None else in_size / out_size
    return np.maximum((dst + 0.5) * ratio - 0.5, 0.0)


def _interpolate_dim(x: Tensor, dim: int, out_size: int, scale, mode: str, align_corners: bool) -> Tensor:
    in_size = x.shape[dim]
    src = _source_index(out_size, in_size, scale, mode, align_corners)
    lead = (slice(None),) * dim
    if mode in ("nearest", "nearest-exact"):
        return x[lead + (x.xp.asarray(src),)]
    # Linear: mix the two neighbouring source positions with weights (1 - l, l).
    low = np.floor(src).astype(np.int64)
    low = np.minimum(low, in_size - 1)
    high = np.minimum(low + 1, in_size - 1)
    lam = (src - low).astype(x.dtype)
    lam_shape = (-1,) + (1,) * (x.ndim - dim - 1)
    lam_t = Tensor._make(x.xp.asarray(lam.reshape(lam_shape)), x.device)
    return x[lead + (x.xp.asarray(low),)] * (1.0 - lam_t) + x[lead + (x.xp.asarray(high),)] * lam_t


def interpolate(input: Tensor, size=None, scale_factor=None, mode: str = "nearest", align_corners: bool | None = None,
                recompute_scale_factor: bool | None = None, antialias: bool = False) -> Tensor:
    """Resize the spatial dims (all dims after N, C): nearest, nearest-exact, linear, bilinear, trilinear.
    Linear modes are separable, so they resample one dim at a time."""
    spatial = input.ndim - 2
    linear_modes = {"linear": 1, "bilinear": 2, "trilinear": 3}
    if mode not in ("nearest", "nearest-exact") and mode not in linear_modes:
        raise NotImplementedError(f"interpolate: mode {mode!r} is not supported (nearest, nearest-exact, linear, "
                                  "bilinear, trilinear)")
    if mode in linear_modes and linear_modes[mode] != spatial:
        raise ValueError(f"interpolate: mode {mode!r} expects a {linear_modes[mode] + 2}-d input, got shape "
                         f"{_shape(input)}")
    if mode in ("nearest", "nearest-exact") and align_corners is not None:
        raise ValueError("align_corners option can only be set with the interpolating modes: linear | bilinear | "
                         "bicubic | trilinear")
    if (size is None) == (scale_factor is None):
        raise ValueError("interpolate: give exactly one of size and scale_factor")
    if size is not None:
        out_sizes = tuple(int(s) for s in _pair_sizes(size, spatial, "size"))
        scales = (None,) * spatial
    else:
        factors = _pair_sizes(scale_factor, spatial, "scale_factor")
        out_sizes = tuple(int(math.floor(input.shape[2 + i] * f)) for i, f in enumerate(factors))
        scales = (None,) * spatial if recompute_scale_factor else tuple(float(f) for f in factors)
    out = input
    for i in range(spatial):
        if out_sizes[i] != input.shape[2 + i] or scales[i] not in (None, 1.0):
            out = _interpolate_dim(out, 2 + i, out_sizes[i], scales[i], mode, bool(align_corners))
    return out


def upsample(input: Tensor, size=None, scale_factor=None, mode: str = "nearest", align_corners=None) -> Tensor:
    return interpolate(input, size, scale_factor, mode, align_corners)


def pixel_shuffle(input: Tensor, upscale_factor: int) -> Tensor:
    """(N, C r^2, H, W) -> (N, C, H r, W r)."""
    if input.ndim != 4:
        raise ValueError(f"pixel_shuffle: expected a 4-d input (N, C, H, W), got {_shape(input)}")
    n, c, h, w = input.shape
    r = upscale_factor
    out_c = c // (r * r)
    x = input.reshape(n, out_c, r, r, h, w).permute(0, 1, 4, 2, 5, 3)
    return x.reshape(n, out_c, h * r, w * r)


# =====================================================================================
# Losses
# =====================================================================================
def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"{reduction} is not a valid value for reduction (expected 'mean', 'sum' or 'none')")


def _check_same_shape(input: Tensor, target: Tensor, name: str) -> None:
    if _shape(input) != _shape(target):
        raise ValueError(f"{name}: target size {_shape(target)} must be the same as input size {_shape(input)}")


def mse_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    _check_same_shape(input, target, "mse_loss")
    diff = input - target
    return _reduce(diff * diff, reduction)


def l1_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    _check_same_shape(input, target, "l1_loss")
    return _reduce(ops.abs(input - target), reduction)


def smooth_l1_loss(input: Tensor, target: Tensor, reduction: str = "mean", beta: float = 1.0) -> Tensor:
    """0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta."""
    _check_same_shape(input, target, "smooth_l1_loss")
    d = ops.abs(input - target)
    if beta == 0.0:
        return _reduce(d, reduction)
    return _reduce(ops.where(d < beta, d * d * (0.5 / beta), d - 0.5 * beta), reduction)


def huber_loss(input: Tensor, target: Tensor, reduction: str = "mean", delta: float = 1.0) -> Tensor:
    """0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta)."""
    _check_same_shape(input, target, "huber_loss")
    d = ops.abs(input - target)
    return _reduce(ops.where(d < delta, d * d * 0.5, (d - 0.5 * delta) * delta), reduction)


class _ClassTargets:
    """Class-index targets as the target matrix Q of ``loss = -sum_c Q_c log p_c``, kept sparse:

        Q = coef * onehot(index) + valid * smooth

    ``coef`` is (1 - label_smoothing) * weight[target] (0 where ignored), ``smooth`` the per-class
    label-smoothing mass weight_c * label_smoothing / C, ``valid`` 0 at ignored positions.
    Arrays keep a size-1 class dim (N, 1, d1, ...) so they broadcast against (N, C, d1, ...)."""

    def __init__(self, index, coef, valid, smooth):
        self.index, self.coef, self.valid, self.smooth = index, coef, valid, smooth

    def loss(self, logp):
        """-sum_c Q_c log p_c per element, with the class dim removed."""
        xp = get_array_module(logp)
        per = -(xp.take_along_axis(logp, self.index, axis=1) * self.coef)
        if self.smooth is not None:
            per -= self.valid * (logp * self.smooth).sum(axis=1, keepdims=True)
        return per.squeeze(1)

    def rowsum(self):
        return self.coef if self.smooth is None else self.coef + self.valid * self.smooth.sum()

    def gradient(self, p):
        """d loss / d logits = rowsum(Q) p - Q, on arrays (p is consumed)."""
        xp = get_array_module(p)
        p *= self.rowsum()
        if self.smooth is not None:
            p -= self.valid * self.smooth
        at_target = xp.take_along_axis(p, self.index, axis=1) - self.coef
        xp.put_along_axis(p, self.index, at_target, axis=1)
        return p

    def dense(self, shape, dtype):
        xp = get_array_module(self.coef)
        q = xp.zeros(shape, dtype=dtype) if self.smooth is None else xp.broadcast_to(self.valid * self.smooth,
                                                                                      shape).astype(dtype)
        xp.put_along_axis(q, self.index, xp.take_along_axis(q, self.index, axis=1) + self.coef, axis=1)
        return q


class _DenseTargets:
    """Class-probability targets: Q given in full (already weighted and smoothed)."""

    def __init__(self, q):
        self.q = q

    def loss(self, logp):
        return -(self.q * logp).sum(axis=1)

    def rowsum(self):
        return self.q.sum(axis=1, keepdims=True)

    def gradient(self, p):
        p *= self.rowsum()
        p -= self.q
        return p

    def dense(self, shape, dtype):
        return self.q


def _class_targets(input: Tensor, target, weight, ignore_index: int, label_smoothing: float, op: str):
    """Check class-index targets and build their ``_ClassTargets`` and the mean's denominator D
    (PyTorch divides by the summed weights of the non-ignored targets)."""
    xp = input.xp
    t = target.data if isinstance(target, Tensor) else xp.asarray(target)
    if t.dtype.kind not in "iu":
        raise TypeError(f"{op}: expected class indices of an integer dtype (or class probabilities of the "
                        f"input's shape), got target dtype {t.dtype}")
    expected = (input.shape[0],) + tuple(input.shape[2:])
    if tuple(t.shape) != expected:
        raise ValueError(f"{op}: expected target of shape {expected} for input of shape {_shape(input)}, "
                         f"got {tuple(t.shape)}")
    classes = input.shape[1]
    valid = t != ignore_index
    if t.size:
        checked = t[valid]
        if checked.size and (int(checked.min()) < 0 or int(checked.max()) >= classes):
            bad = int(checked.max()) if int(checked.max()) >= classes else int(checked.min())
            raise IndexError(f"{op}: target {bad} is out of bounds: the input has {classes} classes "
                             f"(valid targets are 0..{classes - 1}, or ignore_index={ignore_index})")
    index = xp.expand_dims(xp.where(valid, t, 0), 1)
    valid = xp.expand_dims(valid, 1).astype(input.dtype)
    if weight is None:
        target_weight = valid
        denominator = float(valid.sum())
    else:
        w = weight.data.astype(input.dtype, copy=False)
        target_weight = w[index] * valid
        denominator = float(target_weight.sum())
    smooth = None
    if label_smoothing > 0.0:
        per_class = xp.full(classes, label_smoothing / classes, dtype=input.dtype) if weight is None \
            else w * (label_smoothing / classes)
        smooth = per_class.reshape((1, classes) + (1,) * (input.ndim - 2))
    coef = target_weight * (1.0 - label_smoothing) if label_smoothing else target_weight
    return _ClassTargets(index, coef.astype(input.dtype, copy=False), valid, smooth), denominator


def _log_softmax_array(x, axis: int):
    xp = get_array_module(x)
    shifted = x - x.max(axis=axis, keepdims=True)
    shifted -= xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))
    return shifted


class SoftmaxCrossEntropy(Function):
    """loss = -sum_c Q_c log softmax(x)_c per element, reduced; Q (the targets) is constant.
    The gradient is (rowsum(Q) softmax(x) - Q) / D."""

    @staticmethod
    def forward(ctx, x, targets, denominator, reduction):
        logp = _log_softmax_array(x, 1)
        per_element = targets.loss(logp)
        ctx.save_for_backward(x)
        ctx.logp, ctx.targets, ctx.denominator, ctx.reduction = logp, targets, denominator, reduction
        if reduction == "none":
            return per_element
        total = per_element.sum()
        return (total / denominator if reduction == "mean" else total).astype(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        if is_grad_enabled():  # double backward: softmax recomputed with ops, Q made dense
            q = Tensor._make(ctx.targets.dense(x.shape, x.dtype), x.device)
            d_loss = _softmax_op(x, 1) * q.sum(1, keepdim=True) - q
        else:
            d_loss = Tensor._make(ctx.targets.gradient(x.xp.exp(ctx.logp)), x.device)
        if ctx.reduction == "none":
            return d_loss * grad.unsqueeze(1), None, None, None
        if ctx.reduction == "mean":
            grad = grad / ctx.denominator
        return d_loss * grad, None, None, None


def _check_reduction(reduction: str) -> None:
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{reduction} is not a valid value for reduction (expected 'mean', 'sum' or 'none')")


def cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None, size_average=None,
                  ignore_index: int = -100, reduce=None, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """Softmax cross-entropy over dim 1 of (N, C) or (N, C, d1, ...) logits (or (C,) unbatched).

    ``target`` holds class indices (N, d1, ...) or class probabilities (same shape as input)."""
    _check_reduction(reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be between 0.0 and 1.0, got {label_smoothing}")
    if input.ndim == 1:  # unbatched (C,) input
        target = target if isinstance(target, Tensor) else Tensor(np.asarray(target))
        loss = cross_entropy(input.unsqueeze(0), target.unsqueeze(0), weight, None, ignore_index, None,
                             reduction, label_smoothing)
        return loss.squeeze(0) if reduction == "none" else loss
    if input.ndim == 0:
        raise ValueError("cross_entropy: expected an input of shape (C,), (N, C) or (N, C, d1, ...), got a scalar")
    classes = input.shape[1]
    if weight is not None and _shape(weight) != (classes,):
        raise ValueError(f"cross_entropy: weight must have shape ({classes},) for {classes} classes, "
                         f"got {_shape(weight)}")
    if isinstance(target, Tensor) and target.dtype.kind == "f":
        return _cross_entropy_probabilities(input, target, weight, reduction, label_smoothing)
    targets, denominator = _class_targets(input, target, weight, ignore_index, label_smoothing, "cross_entropy")
    return SoftmaxCrossEntropy.apply(input, targets, denominator, reduction)


def _cross_entropy_probabilities(input, target, weight, reduction, label_smoothing):
    """-sum_c w_c t_c log p_c with t smoothed towards uniform; 'mean' divides by the number of samples."""
    _check_same_shape(input, target, "cross_entropy (class probabilities)")
    classes = input.shape[1]
    if label_smoothing > 0.0:
        target = target * (1.0 - label_smoothing) + label_smoothing / classes
    if not target.requires_grad:
        q = target.data
        if weight is not None:
            q = q * weight.data.reshape((1, classes) + (1,) * (input.ndim - 2))
        count = input.numel() // classes
        return SoftmaxCrossEntropy.apply(input, _DenseTargets(q.astype(input.dtype, copy=False)), float(count),
                                         reduction)
    logp = _log_softmax_op(input, 1)
    if weight is not None:
        logp = logp * weight.reshape((1, classes) + (1,) * (input.ndim - 2))
    return _reduce(-(target * logp).sum(1), reduction)


def nll_loss(input: Tensor, target: Tensor, weight: Tensor | None = None, size_average=None,
             ignore_index: int = -100, reduce=None, reduction: str = "mean") -> Tensor:
    """-input[target] (input holds log-probabilities), weighted; 'mean' divides by the summed weights."""
    _check_reduction(reduction)
    if input.ndim == 1:
        target = target if isinstance(target, Tensor) else Tensor(np.asarray(target))
        loss = nll_loss(input.unsqueeze(0), target.unsqueeze(0), weight, None, ignore_index, None, reduction)
        return loss.squeeze(0) if reduction == "none" else loss
    targets, denominator = _class_targets(input, target, weight, ignore_index, 0.0, "nll_loss")
    # -input[target] * weight[target]: a gather of the log-probabilities (its backward scatters)
    picked = ops.gather(input, 1, Tensor._make(targets.index, input.device))
    per_element = -(picked * Tensor._make(targets.coef, input.device)).squeeze(1)
    if reduction == "mean":
        return per_element.sum() / denominator
    return _reduce(per_element, reduction)


def binary_cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None, size_average=None,
                         reduce=None, reduction: str = "mean") -> Tensor:
    """-(t log x + (1 - t) log(1 - x)), each log clamped at -100 as PyTorch does."""
    _check_same_shape(input, target, "binary_cross_entropy")
    if input.numel() and (float(input.data.min()) < 0 or float(input.data.max()) > 1):
        raise ValueError("binary_cross_entropy: all elements of input should be between 0 and 1 "
                         "(use binary_cross_entropy_with_logits for logits)")
    log_x = ops.clamp(ops.log(input), min=-100.0)
    log_1mx = ops.clamp(ops.log(1.0 - input), min=-100.0)
    loss = -(target * log_x + (1.0 - target) * log_1mx)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def binary_cross_entropy_with_logits(input: Tensor, target: Tensor, weight: Tensor | None = None,
                                     size_average=None, reduce=None, reduction: str = "mean",
                                     pos_weight: Tensor | None = None) -> Tensor:
    """(1 - t) x + (1 + (pw - 1) t) softplus(-x): the stable form of BCE(sigmoid(x), t)."""
    _check_same_shape(input, target, "binary_cross_entropy_with_logits")
    softplus_neg = softplus(-input)  # = -log sigmoid(x)
    if pos_weight is not None:
        loss = (1.0 - target) * input + (1.0 + (pos_weight - 1.0) * target) * softplus_neg
    else:
        loss = (1.0 - target) * input + softplus_neg
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def kl_div(input: Tensor, target: Tensor, size_average=None, reduce=None, reduction: str = "mean",
           log_target: bool = False) -> Tensor:
    """target * (log target - input) pointwise (0 where target = 0); ``input`` holds log-probabilities.
    'batchmean' divides the sum by the batch size (the true KL divergence)."""
    if log_target:
        loss = ops.exp(target) * (target - input)
    else:
        positive = target > 0
        safe = ops.where(positive, target, 1.0)
        loss = ops.where(positive, target * (ops.log(safe) - input), -input * 0.0)
    if reduction == "batchmean":
        return loss.sum() / (input.shape[0] if input.ndim else 1)
    return _reduce(loss, reduction)


def poisson_nll_loss(input: Tensor, target: Tensor, log_input: bool = True, full: bool = False,
                     size_average=None, eps: float = 1e-8, reduce=None, reduction: str = "mean") -> Tensor:
    loss = ops.exp(input) - target * input if log_input else input - target * ops.log(input + eps)
    if full:
        stirling = target * ops.log(ops.where(target > 1, target, 1.0)) - target + \
            0.5 * ops.log(ops.where(target > 1, target, 1.0) * (2 * math.pi))
        loss = loss + ops.where(target > 1, stirling, 0.0)
    return _reduce(loss, reduction)


def cosine_embedding_loss(input1: Tensor, input2: Tensor, target: Tensor, margin: float = 0.0,
                          size_average=None, reduce=None, reduction: str = "mean") -> Tensor:
    """1 - cos(x1, x2) where y = 1, max(0, cos(x1, x2) - margin) where y = -1."""
    dim = 1 if input1.ndim == 2 else 0
    eps = 1e-12
    dot = (input1 * input2).sum(dim)
    denom = (((input1 * input1).sum(dim) + eps) * ((input2 * input2).sum(dim) + eps)).sqrt()
    cos = dot / denom
    zero = cos * 0.0
    loss = ops.where(target == 1, 1.0 - cos, zero) + ops.where(target == -1, ops.clamp(cos - margin, min=0.0), zero)
    return _reduce(loss, reduction)


def margin_ranking_loss(input1: Tensor, input2: Tensor, target: Tensor, margin: float = 0.0, size_average=None,
                        reduce=None, reduction: str = "mean") -> Tensor:
    """max(0, -y (x1 - x2) + margin)."""
    return _reduce(ops.clamp(-target * (input1 - input2) + margin, min=0.0), reduction)


def hinge_embedding_loss(input: Tensor, target: Tensor, margin: float = 1.0, size_average=None, reduce=None,
                         reduction: str = "mean") -> Tensor:
    """x where y = 1, max(0, margin - x) where y = -1."""
    zero = input * 0.0
    loss = ops.where(target == 1, input, zero) + ops.where(target == -1, ops.clamp(margin - input, min=0.0), zero)
    return _reduce(loss, reduction)


def soft_margin_loss(input: Tensor, target: Tensor, size_average=None, reduce=None, reduction: str = "mean"):
    """log(1 + exp(-y x))."""
    return _reduce(softplus(-target * input), reduction)


def triplet_margin_loss(anchor: Tensor, positive: Tensor, negative: Tensor, margin: float = 1.0, p: float = 2.0,
                        eps: float = 1e-6, swap: bool = False, size_average=None, reduce=None,
                        reduction: str = "mean") -> Tensor:
    """max(0, margin + d(a, p) - d(a, n)), d the pairwise p-norm distance (``swap``: use d(p, n) if smaller)."""
    for name, t in (("positive", positive), ("negative", negative)):
        if t.ndim != anchor.ndim:
            raise ValueError(f"triplet_margin_loss: anchor ({_shape(anchor)}) and {name} ({_shape(t)}) must have "
                             "the same number of dims")
    d_pos = pairwise_distance(anchor, positive, p, eps)
    d_neg = pairwise_distance(anchor, negative, p, eps)
    if swap:
        d_neg = ops.minimum(d_neg, pairwise_distance(positive, negative, p, eps))
    return _reduce(ops.clamp(d_pos - d_neg + margin, min=0.0), reduction)


def gaussian_nll_loss(input: Tensor, target: Tensor, var: Tensor, full: bool = False, eps: float = 1e-6,
                      reduction: str = "mean") -> Tensor:
    """0.5 (log(max(var, eps)) + (x - t)^2 / max(var, eps)) (+ 0.5 log(2 pi) if ``full``)."""
    var = ops.clamp(var, min=eps)
    loss = 0.5 * (ops.log(var) + (input - target) ** 2 / var)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return _reduce(loss, reduction)
