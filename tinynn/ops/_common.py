"""Helpers shared by the ops: turning arguments into tensors, dims, dtypes."""
from __future__ import annotations

import numbers

import numpy as np

from ..backend.dtypes import get_default_dtype


TensorClass = None  # set by tinynn.tensor once the class exists (it imports the ops)


def is_tensor(x) -> bool:
    return isinstance(x, TensorClass)


def scalar_tensor(value, like):
    """A Python number as a 0-d tensor next to ``like``: a "weak" scalar that takes
    ``like``'s dtype (``x * 2`` stays float32), except that a float scalar with an
    integer tensor gives the default float dtype, as in PyTorch."""
    dtype = like.dtype
    if isinstance(value, (bool, np.bool_)):
        dtype = like.dtype
    elif isinstance(value, numbers.Integral):
        if dtype.kind == "b":
            dtype = np.dtype(np.int64)
    elif isinstance(value, numbers.Real):
        if dtype.kind != "f":
            dtype = get_default_dtype()
    else:
        raise TypeError(f"unsupported operand type {type(value).__name__}")
    return TensorClass._make(like.xp.asarray(value, dtype=dtype), like.device)


def binary_operands(a, b):
    """Make both operands tensors of a common kind: Python numbers become scalar tensors,
    and an integer/bool tensor combined with a floating one takes the floating dtype."""
    a_is, b_is = is_tensor(a), is_tensor(b)
    if not a_is and not b_is:
        raise TypeError("expected at least one tensor operand")
    if not a_is:
        a = _from_other(a, b)
    if not b_is:
        b = _from_other(b, a)
    ka, kb = a.dtype.kind, b.dtype.kind
    if ka != kb:
        if kb == "f" or (ka == "b" and kb != "f"):
            a = _cast_raw(a, b.dtype)
        elif ka == "f" or kb == "b":
            b = _cast_raw(b, a.dtype)
    elif a.dtype != b.dtype and (a.ndim == 0) != (b.ndim == 0):
        # PyTorch: within one kind, a 0-d tensor does not promote a tensor with dims
        # (float32 vector + float64 0-d tensor stays float32).
        if a.ndim == 0:
            a = _cast_keeping_graph(a, b.dtype)
        else:
            b = _cast_keeping_graph(b, a.dtype)
    return a, b


def _cast_keeping_graph(t, dtype):
    if t.requires_grad:
        from .elementwise import cast
        return cast(t, dtype)
    return _cast_raw(t, dtype)


def _from_other(value, like):
    if isinstance(value, (numbers.Number, np.number, np.bool_)):
        return scalar_tensor(value, like)
    from ..creation import tensor
    return tensor(value, device=like.device)


def _cast_raw(t, dtype):
    """Cast a tensor that carries no gradient (ints, bools, scalars)."""
    return TensorClass._make(t.data.astype(dtype), t.device)


def normalize_dim(dim: int, ndim: int, op: str = "op") -> int:
    """A dim in [-ndim, ndim) as a non-negative index, with a clear error otherwise."""
    bound = max(ndim, 1)
    if not -bound <= dim < bound:
        raise IndexError(f"{op}: dimension {dim} is out of range for a tensor with {ndim} dims "
                         f"(expected to be in range [{-bound}, {bound - 1}])")
    return dim % bound


def normalize_dims(dim, ndim: int, op: str = "op") -> tuple:
    """None -> all dims; an int or a sequence -> a sorted tuple of non-negative dims."""
    if dim is None:
        return tuple(range(ndim))
    if isinstance(dim, (int, np.integer)):
        dim = (int(dim),)
    dims = tuple(sorted(normalize_dim(int(d), ndim, op) for d in dim))
    if len(set(dims)) != len(dims):
        raise ValueError(f"{op}: dim {tuple(dim)} appears multiple times in the list of dims")
    return dims


def shape_arg(size) -> tuple:
    """Accept ``f(2, 3)``, ``f((2, 3))`` and ``f([2, 3])``."""
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    return tuple(int(s) for s in size)
