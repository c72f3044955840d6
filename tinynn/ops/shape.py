"""Shape ops: they move elements around without changing them, so each backward
undoes the move (reshape back, permute back, sum what was broadcast, ...)."""
from __future__ import annotations

import math

import numpy as np

from ..autograd.function import Function
from ..backend.device import get_array_module as _xp  # numpy or cupy, for an array
from ._common import normalize_dim, normalize_dims, shape_arg




class Reshape(Function):
    @staticmethod
    def forward(ctx, a, shape):
        ctx.input_shape = a.shape
        return a.reshape(shape)

    @staticmethod
    def backward(ctx, grad):
        return grad.reshape(ctx.input_shape), None


class Permute(Function):
    @staticmethod
    def forward(ctx, a, dims):
        ctx.dims = dims
        return a.transpose(dims)

    @staticmethod
    def backward(ctx, grad):  # apply the inverse permutation
        return grad.permute(*np.argsort(ctx.dims).tolist()), None


class Expand(Function):
    @staticmethod
    def forward(ctx, a, shape):
        ctx.input_shape = a.shape
        return _xp(a).broadcast_to(a, shape)

    @staticmethod
    def backward(ctx, grad):  # broadcast copies: sum their gradients
        return sum_to_shape(grad, ctx.input_shape), None


class SumToShape(Function):
    """Sum a broadcast array back down to ``shape`` (the engine's broadcast reduction)."""

    @staticmethod
    def forward(ctx, a, shape):
        ctx.input_shape = a.shape
        lead = a.ndim - len(shape)
        dims = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape) if s == 1 and a.shape[lead + i] != 1)
        out = a.sum(axis=dims, keepdims=True) if dims else a
        return out.reshape(shape)

    @staticmethod
    def backward(ctx, grad):
        return grad.expand(ctx.input_shape), None


class Repeat(Function):
    @staticmethod
    def forward(ctx, a, repeats):
        ctx.input_shape = a.shape
        return _xp(a).tile(a, repeats)

    @staticmethod
    def backward(ctx, grad):  # sum the gradient over the copies: view as (r0, s0, r1, s1, ...)
        shape = ctx.input_shape
        lead = grad.ndim - len(shape)
        grad = grad.sum(tuple(range(lead))) if lead else grad
        split = []
        for r, s in zip(grad.shape, shape):
            split += [r // s, s]
        return grad.reshape(tuple(split)).sum(tuple(range(0, 2 * len(shape), 2))), None


class Flip(Function):
    @staticmethod
    def forward(ctx, a, dims):
        ctx.dims = dims
        return _xp(a).flip(a, axis=dims)

    @staticmethod
    def backward(ctx, grad):
        return grad.flip(ctx.dims), None


class Cat(Function):
    @staticmethod
    def forward(ctx, dim, *arrays):
        ctx.dim = dim
        ctx.sizes = [a.shape[dim] for a in arrays]
        return _xp(arrays[0]).concatenate(arrays, axis=dim)

    @staticmethod
    def backward(ctx, grad):  # each input gets its slice of the gradient
        grads, start = [None], 0
        for size, needed in zip(ctx.sizes, ctx.needs_input_grad[1:]):
            grads.append(grad.narrow(ctx.dim, start, size) if needed else None)
            start += size
        return tuple(grads)


class Triangle(Function):
    @staticmethod
    def forward(ctx, a, diagonal, upper):
        ctx.diagonal, ctx.upper = diagonal, upper
        xp = _xp(a)
        return xp.triu(a, diagonal) if upper else xp.tril(a, diagonal)

    @staticmethod
    def backward(ctx, grad):  # the kept elements pass their gradient through
        return (grad.triu(ctx.diagonal) if ctx.upper else grad.tril(ctx.diagonal)), None, None


class ConstantPad(Function):
    @staticmethod
    def forward(ctx, a, widths, value):
        ctx.slices = tuple(slice(lo, lo + s) for (lo, _), s in zip(widths, a.shape))
        return _xp(a).pad(a, widths, mode="constant", constant_values=value)

    @staticmethod
    def backward(ctx, grad):  # the padding had no input: crop the gradient
        return grad[ctx.slices], None, None


# --- public functions ------------------------------------------------------------
def _resolve_shape(shape, numel, op, input_shape):
    shape = list(shape)
    unknown = [i for i, s in enumerate(shape) if s == -1]
    if len(unknown) > 1:
        raise RuntimeError(f"{op}: only one dimension can be inferred, got shape {tuple(shape)}")
    known = math.prod(s for s in shape if s != -1)
    if unknown:
        if known == 0 or numel % known:
            raise RuntimeError(f"{op}: shape {tuple(shape)} is invalid for input of size {numel} "
                               f"(shape {input_shape})")
        shape[unknown[0]] = numel // known
    elif known != numel:
        raise RuntimeError(f"{op}: shape {tuple(shape)} is invalid for input of size {numel} (shape {input_shape})")
    return tuple(shape)


def reshape(a, *shape):
    shape = _resolve_shape(shape_arg(shape), a.numel(), "reshape", a.shape)
    if shape == a.shape:
        return a
    return Reshape.apply(a, shape)


view = reshape


def flatten(a, start_dim: int = 0, end_dim: int = -1):
    if a.ndim == 0:
        return reshape(a, 1)
    start = normalize_dim(start_dim, a.ndim, "flatten")
    end = normalize_dim(end_dim, a.ndim, "flatten")
    if start > end:
        raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
    return reshape(a, a.shape[:start] + (-1,) + a.shape[end + 1:])


def unflatten(a, dim: int, sizes):
    dim = normalize_dim(dim, a.ndim, "unflatten")
    sizes = _resolve_shape(tuple(sizes), a.shape[dim], "unflatten", a.shape)
    return reshape(a, a.shape[:dim] + sizes + a.shape[dim + 1:])


def squeeze(a, dim=None):
    if dim is None:
        return reshape(a, tuple(s for s in a.shape if s != 1))
    dims = normalize_dims(dim, a.ndim, "squeeze")
    return reshape(a, tuple(s for i, s in enumerate(a.shape) if not (i in dims and s == 1)))


def unsqueeze(a, dim: int):
    dim = normalize_dim(dim, a.ndim + 1, "unsqueeze")
    return reshape(a, a.shape[:dim] + (1,) + a.shape[dim:])


def permute(a, *dims):
    dims = shape_arg(dims)
    if len(dims) != a.ndim:
        raise RuntimeError(f"permute: number of dims {len(dims)} does not match the tensor's {a.ndim} dims "
                           f"(shape {a.shape})")
    dims = tuple(normalize_dim(d, a.ndim, "permute") for d in dims)
    if len(set(dims)) != len(dims):
        raise RuntimeError(f"permute: repeated dim in {dims}")
    if dims == tuple(range(a.ndim)):
        return a
    return Permute.apply(a, dims)


def transpose(a, dim0: int, dim1: int):
    if a.ndim < 2 and dim0 in (0, -1) and dim1 in (0, -1):
        return a
    dims = list(range(a.ndim))
    d0, d1 = normalize_dim(dim0, a.ndim, "transpose"), normalize_dim(dim1, a.ndim, "transpose")
    dims[d0], dims[d1] = dims[d1], dims[d0]
    return permute(a, *dims)


def swapaxes(a, dim0, dim1):
    return transpose(a, dim0, dim1)


def movedim(a, source: int, destination: int):
    dims = list(range(a.ndim))
    src = normalize_dim(source, a.ndim, "movedim")
    dims.pop(src)
    dims.insert(normalize_dim(destination, a.ndim, "movedim"), src)
    return permute(a, *dims)


def t(a):
    if a.ndim > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but got {a.ndim}")
    return transpose(a, 0, -1) if a.ndim == 2 else a


def expand(a, *sizes):
    sizes = shape_arg(sizes)
    if len(sizes) < a.ndim:
        raise RuntimeError(f"expand: the number of sizes provided ({len(sizes)}) must be greater or equal "
                           f"to the number of dimensions in the tensor ({a.ndim}), shape {a.shape}")
    lead = len(sizes) - a.ndim
    shape = []
    for i, s in enumerate(sizes):
        current = a.shape[i - lead] if i >= lead else 1
        if s == -1:
            if i < lead:
                raise RuntimeError("expand: -1 is not allowed in a leading, non-existing dimension")
            s = current
        if current != 1 and current != s:
            raise RuntimeError(f"expand: the expanded size of the tensor ({s}) must match the existing size "
                               f"({current}) at non-singleton dimension {i}. Target sizes: {sizes}. "
                               f"Tensor sizes: {a.shape}")
        shape.append(s)
    shape = tuple(shape)
    if shape == a.shape:
        return a
    return Expand.apply(a, shape)


def expand_as(a, other):
    return expand(a, other.shape)


def broadcast_to(a, shape):
    return expand(a, tuple(shape))


def sum_to_shape(a, shape):
    shape = tuple(shape)
    if a.shape == shape:
        return a
    return SumToShape.apply(a, shape)


def repeat(a, *repeats):
    repeats = shape_arg(repeats)
    if len(repeats) < a.ndim:
        raise RuntimeError(f"repeat: number of repeat dims ({len(repeats)}) can not be smaller than the number of "
                           f"dimensions of the tensor ({a.ndim})")
    if len(repeats) > a.ndim:
        a = reshape(a, (1,) * (len(repeats) - a.ndim) + a.shape)
    return Repeat.apply(a, repeats)


def flip(a, dims):
    return Flip.apply(a, normalize_dims(dims, a.ndim, "flip"))


def _check_cat(tensors, dim, op):
    if not tensors:
        raise ValueError(f"{op}: expected a non-empty list of tensors")
    first = tensors[0]
    for i, t in enumerate(tensors[1:], 1):
        if t.ndim != first.ndim or any(s != f for k, (s, f) in enumerate(zip(t.shape, first.shape)) if k != dim):
            raise RuntimeError(f"{op}: sizes of tensors must match except in dimension {dim}; tensor 0 has shape "
                               f"{first.shape} and tensor {i} has shape {t.shape}")


def cat(tensors, dim: int = 0):
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat: expected a non-empty list of tensors")
    dim = normalize_dim(dim, tensors[0].ndim, "cat")
    _check_cat(tensors, dim, "cat")
    dtype = np.result_type(*[t.dtype for t in tensors])
    tensors = [t if t.dtype == dtype else t.to(dtype) for t in tensors]
    return Cat.apply(dim, *tensors)


concat = concatenate = cat


def stack(tensors, dim: int = 0):
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: expected a non-empty list of tensors")
    for i, t in enumerate(tensors[1:], 1):
        if t.shape != tensors[0].shape:
            raise RuntimeError(f"stack: expects each tensor to be equal size, but got {tensors[0].shape} at entry 0 "
                               f"and {t.shape} at entry {i}")
    dim = normalize_dim(dim, tensors[0].ndim + 1, "stack")
    return cat([unsqueeze(t, dim) for t in tensors], dim)


def narrow(a, dim: int, start: int, length: int):
    dim = normalize_dim(dim, a.ndim, "narrow")
    index = (slice(None),) * dim + (slice(start, start + length),)
    return a[index]


def split(a, split_size_or_sections, dim: int = 0):
    dim = normalize_dim(dim, a.ndim, "split")
    size = a.shape[dim]
    if isinstance(split_size_or_sections, (int, np.integer)):
        step = int(split_size_or_sections)
        if step <= 0:
            raise ValueError(f"split: split_size must be positive, got {step}")
        sections = [min(step, size - s) for s in range(0, size, step)] or [0]
    else:
        sections = [int(s) for s in split_size_or_sections]
        if np.sum(sections) != size:
            raise RuntimeError(f"split: split sizes {sections} don't add up to the tensor's size {size} in dim {dim}")
    out, start = [], 0
    for s in sections:
        out.append(narrow(a, dim, start, s))
        start += s
    return tuple(out)


def chunk(a, chunks: int, dim: int = 0):
    size = a.shape[normalize_dim(dim, a.ndim, "chunk")]
    step = -(-size // chunks)
    return split(a, max(step, 1), dim)


def unbind(a, dim: int = 0):
    dim = normalize_dim(dim, a.ndim, "unbind")
    return tuple(a[(slice(None),) * dim + (i,)] for i in range(a.shape[dim]))


def _check_matrix(a, op):
    if a.ndim < 2:  # NumPy would broadcast a 1-d input into a square matrix
        raise RuntimeError(f"{op}: input tensor must have at least 2 dimensions, got shape {a.shape}")


def tril(a, diagonal: int = 0):
    _check_matrix(a, "tril")
    return Triangle.apply(a, diagonal, False)


def triu(a, diagonal: int = 0):
    _check_matrix(a, "triu")
    return Triangle.apply(a, diagonal, True)


def pad(a, pad, mode: str = "constant", value: float = 0.0):
    """``F.pad``: ``pad`` lists (left, right) widths starting from the LAST dim, as PyTorch.
    Modes: constant, reflect, replicate, circular. Negative widths crop."""
    pad = tuple(int(p) for p in pad)
    if len(pad) % 2 or len(pad) // 2 > a.ndim:
        raise ValueError(f"pad: padding length must be even and at most 2 * ndim, got {len(pad)} for shape {a.shape}")
    widths = [(0, 0)] * a.ndim
    for i in range(len(pad) // 2):
        widths[a.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    if any(lo < 0 or hi < 0 for lo, hi in widths):  # crop first, then pad what is positive
        crop = tuple(slice(max(-lo, 0), s - max(-hi, 0)) for (lo, hi), s in zip(widths, a.shape))
        a = a[crop]
        widths = [(max(lo, 0), max(hi, 0)) for lo, hi in widths]
    if mode == "constant":
        return ConstantPad.apply(a, tuple(widths), value)
    if mode not in ("reflect", "replicate", "circular"):
        raise NotImplementedError(f"pad: unknown mode {mode!r}")
    # Other modes copy existing elements: gather them with an index array per dim,
    # so the backward (scatter-add of the gradient) comes from indexing.
    numpy_mode = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}[mode]
    for d, (lo, hi) in enumerate(widths):
        if lo == 0 and hi == 0:
            continue
        if mode == "reflect" and (lo >= a.shape[d] or hi >= a.shape[d]):
            raise ValueError(f"pad: padding ({lo}, {hi}) should be less than the input size {a.shape[d]} in dim {d} "
                             f"for reflect mode (input shape {a.shape})")
        index = np.pad(np.arange(a.shape[d]), (lo, hi), mode=numpy_mode)
        a = a[(slice(None),) * d + (a.xp.asarray(index),)]
    return a
