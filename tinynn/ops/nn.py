"""Softmax and log-softmax: the normalisations every classifier and attention uses."""
from __future__ import annotations

from ..autograd.function import Function
from ..backend.device import get_array_module as _xp  # numpy or cupy, for an array
from ._common import normalize_dim




class Softmax(Function):
    @staticmethod
    def forward(ctx, a, dim):
        xp = _xp(a)
        shifted = a - a.max(axis=dim, keepdims=True)  # subtracting the max avoids overflow
        e = xp.exp(shifted)
        y = e / e.sum(axis=dim, keepdims=True)
        ctx.dim = dim
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):  # dy_i = y_i (g_i - sum_j g_j y_j)
        (y,) = ctx.saved_tensors
        return y * (grad - (grad * y).sum(ctx.dim, keepdim=True)), None


class LogSoftmax(Function):
    @staticmethod
    def forward(ctx, a, dim):
        xp = _xp(a)
        shifted = a - a.max(axis=dim, keepdims=True)
        y = shifted - xp.log(xp.exp(shifted).sum(axis=dim, keepdims=True))
        ctx.dim = dim
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):  # d log softmax: g - softmax * sum(g)
        (y,) = ctx.saved_tensors
        return grad - y.exp() * grad.sum(ctx.dim, keepdim=True), None


def softmax(a, dim: int, dtype=None):
    if dtype is not None:
        a = a.to(dtype)
    elif a.dtype.kind != "f":  # integers: compute in the default float dtype, like the unary ops
        from ..backend.dtypes import get_default_dtype
        a = a.to(get_default_dtype())
    return Softmax.apply(a, normalize_dim(dim, a.ndim, "softmax"))


def log_softmax(a, dim: int, dtype=None):
    if dtype is not None:
        a = a.to(dtype)
    elif a.dtype.kind != "f":  # integers: compute in the default float dtype, like the unary ops
        from ..backend.dtypes import get_default_dtype
        a = a.to(get_default_dtype())
    return LogSoftmax.apply(a, normalize_dim(dim, a.ndim, "log_softmax"))
