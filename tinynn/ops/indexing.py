"""Indexing ops: ``t[index]``, gather, scatter_add, masked_fill.

The backward of picking elements is putting the gradient back where they came
from; elements picked twice (repeated indices) get the sum of both gradients.
"""
from __future__ import annotations

import numpy as np

from ..autograd.function import Function
from ..backend.device import get_array_module as _xp  # numpy or cupy, for an array
from ._common import is_tensor, normalize_dim


def normalize_index(index, xp):
    """Replace tensors and lists inside an index by arrays of the right module."""
    if isinstance(index, tuple):
        return tuple(_index_part(i, xp) for i in index)
    return _index_part(index, xp)


def _index_part(part, xp):
    if is_tensor(part):
        return part.data
    if isinstance(part, list):
        return xp.asarray(part)
    if part is not None and not isinstance(part, (int, slice, type(Ellipsis), np.integer)) and hasattr(part, "dtype"):
        return xp.asarray(part)
    return part


def _is_basic(index) -> bool:
    """Basic indexing (ints, slices, None, ...) never repeats an element."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(p is None or p is Ellipsis or isinstance(p, (int, slice, np.integer)) for p in parts)


def index_add_array(xp, target, index, values) -> None:
    """``target[index] += values`` that also adds up repeated indices."""
    if _is_basic(index):
        target[index] += values
    elif xp is np:
        np.add.at(target, index, values)
    else:
        import cupyx
        cupyx.scatter_add(target, index, values)


class GetItem(Function):
    @staticmethod
    def forward(ctx, a, index):
        ctx.input_shape, ctx.index = a.shape, index
        return a[index]

    @staticmethod
    def backward(ctx, grad):  # put the gradient back where the elements came from
        return IndexBackward.apply(grad, ctx.input_shape, ctx.index), None


class IndexBackward(Function):
    """zeros(shape) with ``grad`` added at ``index``: the backward of ``a[index]``."""

    @staticmethod
    def forward(ctx, grad, shape, index):
        ctx.index = index
        xp = _xp(grad)
        out = xp.zeros(shape, dtype=grad.dtype)
        index_add_array(xp, out, index, grad)
        return out

    @staticmethod
    def backward(ctx, grad):  # linear in its input: its derivative picks the same elements
        return grad[ctx.index], None, None


class Gather(Function):
    @staticmethod
    def forward(ctx, a, dim, index):
        ctx.input_shape, ctx.dim = a.shape, dim
        ctx.save_for_backward(index)
        # As in PyTorch, index may be smaller than a in the other dims: use that corner of a.
        corner = tuple(slice(None) if d == dim else slice(0, s) for d, s in enumerate(index.shape))
        return _xp(a).take_along_axis(a[corner], index, axis=dim)

    @staticmethod
    def backward(ctx, grad):  # scatter the gradient back to the gathered positions
        (index,) = ctx.saved_tensors
        return scatter_add(grad.new_zeros(ctx.input_shape), ctx.dim, index, grad), None, None


class ScatterAdd(Function):
    @staticmethod
    def forward(ctx, a, dim, index, src):
        ctx.dim, ctx.src_shape = dim, src.shape
        ctx.save_for_backward(index)
        xp = _xp(a)
        out = a.copy()
        index_add_array(xp, out, _scatter_positions(xp, index, dim), src[tuple(slice(0, s) for s in index.shape)])
        return out

    @staticmethod
    def backward(ctx, grad):  # out = a + scatter(src): a's gradient passes, src's is gathered
        (index,) = ctx.saved_tensors
        grad_src = None
        if ctx.needs_input_grad[3]:
            grad_src = gather(grad, ctx.dim, index)
            if grad_src.shape != ctx.src_shape:  # only src[:index.shape] was used: zeros for the rest
                from .shape import pad
                widths = [(0, s - i) for s, i in zip(ctx.src_shape, index.shape)]
                grad_src = pad(grad_src, [w for lo_hi in reversed(widths) for w in lo_hi])
        return grad, None, None, grad_src


def _scatter_positions(xp, index, dim):
    """The full index tuple of a scatter along ``dim``: ``index`` there, a grid elsewhere."""
    grids = list(xp.ogrid[tuple(slice(0, s) for s in index.shape)]) if index.ndim else []
    grids[dim] = index
    return tuple(grids)


class MaskedFill(Function):
    @staticmethod
    def forward(ctx, a, mask, value):
        ctx.save_for_backward(mask)
        return _xp(a).where(mask, _xp(a).asarray(value, dtype=a.dtype), a)

    @staticmethod
    def backward(ctx, grad):  # filled positions no longer depend on the input
        (mask,) = ctx.saved_tensors
        return grad * (~mask.data), None, None




# --- public functions ------------------------------------------------------------
def getitem(a, index):
    index = normalize_index(index, a.xp)
    _check_index(a, index)
    return GetItem.apply(a, index)


def _check_index(a, index):
    """Turn NumPy's IndexError for boolean masks into one that names the shapes."""
    parts = index if isinstance(index, tuple) else (index,)
    for p in parts:
        if hasattr(p, "dtype") and p.dtype == np.bool_ and p.ndim > 0:
            if p.shape != a.shape[:p.ndim] and len(parts) == 1:
                raise IndexError(f"index: the shape of the mask {tuple(p.shape)} does not match the shape of the "
                                 f"indexed tensor {a.shape}")


def index_select(a, dim: int, index):
    dim = normalize_dim(dim, a.ndim, "index_select")
    return getitem(a, (slice(None),) * dim + (index,))


def gather(a, dim: int, index):
    dim = normalize_dim(dim, a.ndim, "gather")
    if index.ndim != a.ndim:
        raise RuntimeError(f"gather: index tensor must have the same number of dimensions as input "
                           f"(index {index.shape}, input {a.shape})")
    if index.dtype.kind not in "iu":
        raise RuntimeError(f"gather: expected an integer index tensor, got {index.dtype}")
    return Gather.apply(a, dim, index.data if is_tensor(index) else index)


def scatter_add(a, dim: int, index, src):
    dim = normalize_dim(dim, a.ndim, "scatter_add")
    index = index if is_tensor(index) else _as_tensor(index, a)
    if index.ndim != a.ndim or src.ndim != a.ndim:
        raise RuntimeError(f"scatter_add: index {index.shape} and src {src.shape} must have as many dims as "
                           f"input {a.shape}")
    return ScatterAdd.apply(a, dim, index, src)


def masked_fill(a, mask, value):
    mask = mask if is_tensor(mask) else _as_tensor(mask, a)
    if mask.dtype != np.bool_:
        raise RuntimeError(f"masked_fill: expected a boolean mask, got {mask.dtype}")
    try:
        fits = np.broadcast_shapes(mask.shape, a.shape) == a.shape  # the mask may not enlarge the tensor
    except ValueError:
        fits = False
    if not fits:
        raise RuntimeError(f"masked_fill: the mask of shape {mask.shape} does not broadcast to the tensor's "
                           f"shape {a.shape}")
    if is_tensor(value):
        value = value.item()
    return MaskedFill.apply(a, mask, value)


def _as_tensor(data, like):
    from ..creation import as_tensor
    return as_tensor(data, device=like.device)
