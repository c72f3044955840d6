"""Reductions: sum, mean, var, max, logsumexp, prod, cumsum, ...

The backward of a reduction spreads the gradient back over the reduced dims:
``unreduce`` reshapes it so it broadcasts against the input again.
"""
from __future__ import annotations

import builtins
from collections import namedtuple

import numpy as np

from ..autograd.function import Function
from ..backend.device import get_array_module as _xp  # numpy or cupy, for an array
from ..autograd.grad_mode import is_grad_enabled
from ._common import normalize_dim, normalize_dims

values_indices = namedtuple("values_indices", ["values", "indices"])


def unreduce(grad, input_shape, dims, keepdim: bool):
    """Give a reduced gradient back its reduced dims (size 1) so it broadcasts to the input."""
    if keepdim or not dims or grad.ndim == 0:  # a 0-d gradient already broadcasts
        return grad
    shape = list(input_shape)
    for d in dims:
        shape[d] = 1
    return grad.reshape(tuple(shape))


class Sum(Function):
    @staticmethod
    def forward(ctx, a, dims, keepdim):
        ctx.input_shape, ctx.dims, ctx.keepdim = a.shape, dims, keepdim
        return a.sum(axis=dims, keepdims=keepdim)

    @staticmethod
    def backward(ctx, grad):  # every input element contributed once: broadcast the gradient back
        return unreduce(grad, ctx.input_shape, ctx.dims, ctx.keepdim).expand(ctx.input_shape), None, None


class Amax(Function):
    """max over dims, the gradient shared equally among tied maxima (``amax``, ``max()``)."""

    @staticmethod
    def forward(ctx, a, dims, keepdim, take_min):
        y = a.min(axis=dims, keepdims=True) if take_min else a.max(axis=dims, keepdims=True)
        ctx.save_for_backward(a)
        ctx.dims, ctx.keepdim, ctx.kept = dims, keepdim, y
        return y if keepdim else y.reshape(tuple(s for i, s in enumerate(a.shape) if i not in dims))

    @staticmethod
    def backward(ctx, grad):  # d max = sum over the argmax elements, split between ties
        (a,) = ctx.saved_tensors
        is_extreme = (a.data == ctx.kept)
        share = is_extreme / is_extreme.sum(axis=ctx.dims, keepdims=True)
        return unreduce(grad, a.shape, ctx.dims, ctx.keepdim) * share.astype(a.dtype), None, None, None


class MaxDim(Function):
    """``max(dim)`` / ``min(dim)``: values and the index of the first extreme element."""

    @staticmethod
    def forward(ctx, a, dim, keepdim, take_min):
        xp = _xp(a)
        indices = xp.argmin(a, axis=dim) if take_min else xp.argmax(a, axis=dim)
        indices = xp.expand_dims(indices, dim)
        values = xp.take_along_axis(a, indices, axis=dim)
        if not keepdim:
            values, indices = values.squeeze(dim), indices.squeeze(dim)
        indices = indices.astype(np.int64, copy=False)
        ctx.input_shape, ctx.dim, ctx.keepdim = a.shape, dim, keepdim
        ctx.save_for_backward(indices)
        ctx.mark_non_differentiable(indices)
        return values, indices

    @staticmethod
    def backward(ctx, grad_values, grad_indices):  # the gradient goes to the chosen element
        (indices,) = ctx.saved_tensors
        from .indexing import scatter_add
        if not ctx.keepdim:
            grad_values, indices = grad_values.unsqueeze(ctx.dim), indices.unsqueeze(ctx.dim)
        zeros = grad_values.new_zeros(ctx.input_shape)
        return scatter_add(zeros, ctx.dim, indices, grad_values), None, None, None


class LogSumExp(Function):
    @staticmethod
    def forward(ctx, a, dims, keepdim):
        xp = _xp(a)
        m = a.max(axis=dims, keepdims=True)
        m = xp.where(xp.isfinite(m), m, 0)  # all -inf rows stay -inf, without nan
        y = xp.log(xp.exp(a - m).sum(axis=dims, keepdims=True)) + m
        if not keepdim:
            y = y.reshape(tuple(s for i, s in enumerate(a.shape) if i not in dims))
        ctx.dims, ctx.keepdim = dims, keepdim
        ctx.save_for_backward(a, y)
        return y

    @staticmethod
    def backward(ctx, grad):  # d logsumexp(a) = softmax(a) da
        a, y = ctx.saved_tensors
        y = unreduce(y, a.shape, ctx.dims, ctx.keepdim)
        return unreduce(grad, a.shape, ctx.dims, ctx.keepdim) * (a - y).exp(), None, None


class Prod(Function):
    @staticmethod
    def forward(ctx, a, dim, keepdim):
        y = a.prod(axis=dim, keepdims=keepdim)
        ctx.save_for_backward(a, y)
        ctx.dim, ctx.keepdim = dim, keepdim
        return y

    @staticmethod
    def backward(ctx, grad):
        """d prod = prod / a_i for each i. Where inputs are zero that division fails, so
        there the product of the other elements is computed directly."""
        a, y = ctx.saved_tensors
        dims = tuple(range(a.ndim)) if ctx.dim is None else (ctx.dim,)
        grad = unreduce(grad, a.shape, dims, ctx.keepdim)
        y = unreduce(y, a.shape, dims, ctx.keepdim)
        if not bool((a.data == 0).any()):
            return grad * (y / a), None, None
        if is_grad_enabled():  # create_graph: the product of the others, built from ops
            return grad * _product_of_others_differentiable(a, ctx.dim), None, None
        others = _product_of_others(a.data, ctx.dim)
        return grad * others, None, None


def _product_of_others_differentiable(a, dim):
    """For each element, the product of the other elements along ``dim`` (all if None),
    written with tinynn ops: copy the n elements into n rows, put a 1 in place of row i's
    own element, and take each row's product. O(n^2), used only for double backward."""
    from .elementwise import where
    from .shape import movedim
    flat = a.reshape(-1) if dim is None else movedim(a, dim, -1)
    n = flat.shape[-1]
    rows = flat.unsqueeze(-2).expand(flat.shape[:-1] + (n, n))  # rows[..., i, j] = flat[..., j]
    own = a.xp.eye(n, dtype=bool)
    others = where(own, 1.0, rows).prod(-1)
    return others.reshape(a.shape) if dim is None else movedim(others, -1, dim)


def _product_of_others(a, dim):
    """For each element, the product of the other elements along ``dim`` (all dims if None)."""
    xp = _xp(a)
    flat = a.reshape(-1) if dim is None else xp.moveaxis(a, dim, -1)
    ones = xp.ones(flat.shape[:-1] + (1,), dtype=a.dtype)
    left = xp.concatenate([ones, xp.cumprod(flat, axis=-1)[..., :-1]], axis=-1)
    right = xp.flip(xp.concatenate([ones, xp.cumprod(xp.flip(flat, -1), axis=-1)[..., :-1]], axis=-1), -1)
    others = left * right
    return others.reshape(a.shape) if dim is None else xp.moveaxis(others, -1, dim)


class Cumsum(Function):
    @staticmethod
    def forward(ctx, a, dim):
        ctx.dim = dim
        return _xp(a).cumsum(a, axis=dim)

    @staticmethod
    def backward(ctx, grad):  # each input reaches every later output: a reversed cumsum
        return grad.flip(ctx.dim).cumsum(ctx.dim).flip(ctx.dim), None




def _float_input(a, op):
    if a.dtype.kind == "b":
        return a.long()
    return a


# --- public functions ------------------------------------------------------------
def sum(a, dim=None, keepdim: bool = False, dtype=None):
    if dtype is not None:
        a = a.to(dtype)
    a = _float_input(a, "sum")
    return Sum.apply(a, normalize_dims(dim, a.ndim, "sum"), keepdim)


def mean(a, dim=None, keepdim: bool = False, dtype=None):
    if dtype is not None:
        a = a.to(dtype)
    if a.dtype.kind != "f":
        raise RuntimeError(f"mean(): could not infer output dtype. Input dtype must be floating point, got {a.dtype}")
    dims = normalize_dims(dim, a.ndim, "mean")
    count = int(np.prod([a.shape[d] for d in dims])) if dims else 1
    return Sum.apply(a, dims, keepdim) / float(count) if count else Sum.apply(a, dims, keepdim) * float("nan")


def var(a, dim=None, unbiased=None, keepdim: bool = False, correction=None):
    """Variance with Bessel's correction by default (``correction=1``), as PyTorch."""
    if correction is None:
        correction = 1 if unbiased is None or unbiased else 0
    dims = normalize_dims(dim, a.ndim, "var")
    count = int(np.prod([a.shape[d] for d in dims])) if dims else 1
    centered = a - mean(a, dims, keepdim=True)
    return sum(centered * centered, dims, keepdim) / float(builtins.max(count - correction, 0))


class SqrtOfVariance(Function):
    """sqrt for ``std``: where the variance is 0 the gradient is 0 (PyTorch), not inf * 0 = nan."""

    @staticmethod
    def forward(ctx, variance):
        y = _xp(variance).sqrt(variance)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):  # d sqrt(v) = dv / (2 sqrt(v)), taken as 0 where v = 0
        from .elementwise import where
        (y,) = ctx.saved_tensors
        return where(y == 0, 0.0, grad / (where(y == 0, 1.0, y) * 2.0))


def std(a, dim=None, unbiased=None, keepdim: bool = False, correction=None):
    return SqrtOfVariance.apply(var(a, dim, unbiased, keepdim, correction))


def _max_or_min(a, dim, keepdim, take_min):
    name = "min" if take_min else "max"
    if dim is None:
        if a.numel() == 0:
            raise RuntimeError(f"{name}(): Expected reduction dim to be specified for input.numel() == 0")
        return Amax.apply(a, tuple(range(a.ndim)), False, take_min)
    if isinstance(dim, tuple) or not isinstance(dim, (int, np.integer)):
        raise TypeError(f"{name}(): dim must be an int (use amax/amin for several dims)")
    dim = normalize_dim(dim, a.ndim, name)
    if a.ndim and a.shape[dim] == 0:
        raise IndexError(f"{name}(): Expected reduction dim {dim} to have non-zero size (input shape {a.shape})")
    values, indices = MaxDim.apply(a, dim, keepdim, take_min)
    return values_indices(values, indices)


def max(a, dim=None, keepdim: bool = False):
    """``max(a)``: the largest element; ``max(a, dim)``: (values, indices) along ``dim``;
    ``max(a, b)`` with a tensor ``b`` is ``maximum``."""
    from ._common import is_tensor
    if is_tensor(dim):
        from .elementwise import maximum
        return maximum(a, dim)
    return _max_or_min(a, dim, keepdim, take_min=False)


def min(a, dim=None, keepdim: bool = False):
    from ._common import is_tensor
    if is_tensor(dim):
        from .elementwise import minimum
        return minimum(a, dim)
    return _max_or_min(a, dim, keepdim, take_min=True)


def amax(a, dim=None, keepdim: bool = False):
    return Amax.apply(a, normalize_dims(dim, a.ndim, "amax"), keepdim, False)


def amin(a, dim=None, keepdim: bool = False):
    return Amax.apply(a, normalize_dims(dim, a.ndim, "amin"), keepdim, True)


def _arg_extreme(a, dim, keepdim, fn_name):
    from ..tensor import Tensor
    xp = a.xp
    if dim is None:
        out = getattr(xp, fn_name)(a.data.reshape(-1))
        return Tensor._make(xp.asarray(out, dtype=np.int64).reshape((1,) * a.ndim if keepdim else ()), a.device)
    dim = normalize_dim(dim, a.ndim, fn_name)
    out = getattr(xp, fn_name)(a.data, axis=dim)
    if keepdim:
        out = xp.expand_dims(out, dim)
    return Tensor._make(out.astype(np.int64, copy=False), a.device)


def argmax(a, dim=None, keepdim: bool = False):
    return _arg_extreme(a, dim, keepdim, "argmax")


def argmin(a, dim=None, keepdim: bool = False):
    return _arg_extreme(a, dim, keepdim, "argmin")


def logsumexp(a, dim, keepdim: bool = False):
    return LogSumExp.apply(a, normalize_dims(dim, a.ndim, "logsumexp"), keepdim)


def prod(a, dim=None, keepdim: bool = False):
    a = _float_input(a, "prod")
    if dim is not None:
        dim = normalize_dim(dim, a.ndim, "prod")
    return Prod.apply(a, dim, keepdim)


def cumsum(a, dim: int):
    a = _float_input(a, "cumsum")
    return Cumsum.apply(a, normalize_dim(dim, a.ndim, "cumsum"))


class L2Norm(Function):
    """sqrt(sum a^2) over ``dims``, with PyTorch's zero subgradient at a zero vector."""

    @staticmethod
    def forward(ctx, a, dims, keepdim):
        y = _xp(a).sqrt((a * a).sum(axis=dims, keepdims=keepdim))
        ctx.dims, ctx.keepdim = dims, keepdim
        ctx.save_for_backward(a, y)
        return y

    @staticmethod
    def backward(ctx, grad):  # d ||a|| = a / ||a|| da; where ||a|| = 0, a = 0 too: dividing by 1 gives 0
        from .elementwise import where
        a, y = ctx.saved_tensors
        y = unreduce(y, a.shape, ctx.dims, ctx.keepdim)
        safe_y = where(y == 0, 1.0, y)
        return unreduce(grad, a.shape, ctx.dims, ctx.keepdim) * a / safe_y, None, None


def norm(a, p=2, dim=None, keepdim: bool = False):
    """The p-norm over ``dim`` (all elements by default), built from differentiable ops."""
    if p in ("fro", 2):
        return L2Norm.apply(a, normalize_dims(dim, a.ndim, "norm"), keepdim)
    if p == float("inf"):
        return amax(a.abs(), dim, keepdim)
    if p == 1:
        return sum(a.abs(), dim, keepdim)
    return sum(a.abs() ** p, dim, keepdim) ** (1.0 / p)


def all(a, dim=None, keepdim: bool = False):
    from ..tensor import Tensor
    return Tensor._make(a.xp.asarray(a.data.astype(bool).all(axis=dim, keepdims=keepdim)), a.device)


def any(a, dim=None, keepdim: bool = False):
    from ..tensor import Tensor
    return Tensor._make(a.xp.asarray(a.data.astype(bool).any(axis=dim, keepdims=keepdim)), a.device)
