"""Matrix products: matmul (batched, broadcasting) and einsum."""
from __future__ import annotations

import string

from ..autograd.function import Function
from ..backend.device import get_array_module as _xp  # numpy or cupy, for an array




def _blas_ready(a):
    """BLAS needs each matrix with one unit stride; broadcast views (stride 0, e.g. the
    gradient of a sum) would send NumPy to its slow non-BLAS loop, so copy those."""
    if a.ndim >= 2 and 0 in a.strides[-2:] and a.size > 1:
        return _xp(a).ascontiguousarray(a)
    return a


class Matmul(Function):
    """a @ b for a, b with at least 2 dims; leading (batch) dims broadcast."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return _xp(a).matmul(_blas_ready(a), _blas_ready(b))

    @staticmethod
    def backward(ctx, grad):  # d(ab) = da b + a db  ->  grad_a = g b^T, grad_b = a^T g
        a, b = ctx.saved_tensors
        grad_a = grad @ b.mT if ctx.needs_input_grad[0] else None
        grad_b = a.mT @ grad if ctx.needs_input_grad[1] else None
        return grad_a, grad_b


def matmul(a, b):
    from ._common import binary_operands
    a, b = binary_operands(a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise RuntimeError(f"matmul: both arguments need at least 1 dimension, got shapes {a.shape} and {b.shape}")
    inner_a = a.shape[-1]
    inner_b = b.shape[-2] if b.ndim >= 2 else b.shape[0]
    if inner_a != inner_b:
        raise ValueError(f"matmul: {a.shape} @ {b.shape}: inner dimensions {inner_a} and {inner_b} differ")
    # 1-d operands are treated as row/column vectors, and that dim is dropped again.
    if a.ndim == 1 and b.ndim == 1:
        return (a * b).sum()
    if a.ndim == 1:
        return Matmul.apply(a.unsqueeze(0), b).squeeze(-2)
    if b.ndim == 1:
        return Matmul.apply(a, b.unsqueeze(-1)).squeeze(-1)
    try:
        import numpy as np
        np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ValueError(f"matmul: {a.shape} @ {b.shape}: batch dimensions {a.shape[:-2]} and {b.shape[:-2]} "
                         f"do not broadcast") from None
    return Matmul.apply(a, b)


def mm(a, b):
    if a.ndim != 2 or b.ndim != 2:
        raise RuntimeError(f"mm: expected 2-d tensors, got {a.shape} and {b.shape}")
    return matmul(a, b)


def bmm(a, b):
    if a.ndim != 3 or b.ndim != 3 or a.shape[0] != b.shape[0]:
        raise RuntimeError(f"bmm: expected 3-d tensors with the same batch size, got {a.shape} and {b.shape}")
    return matmul(a, b)


def dot(a, b):
    if a.ndim != 1 or b.ndim != 1:
        raise RuntimeError(f"dot: expected 1-d tensors, got {a.shape} and {b.shape}")
    return matmul(a, b)


def outer(a, b):
    return a.unsqueeze(1) * b.unsqueeze(0)


# --- einsum -------------------------------------------------------------------------
class Einsum(Function):
    @staticmethod
    def forward(ctx, equation, *operands):
        ctx.equation = equation
        ctx.save_for_backward(*operands)
        return _xp(operands[0]).einsum(equation, *operands, optimize=len(operands) > 2)

    @staticmethod
    def backward(ctx, grad):
        """The gradient of operand i is the einsum of the output gradient with all the
        other operands, producing operand i's subscripts ("swap i with the output")."""
        inputs, output = _parse(ctx.equation)
        operands = ctx.saved_tensors
        grads = [None]
        for i, (sub, needed) in enumerate(zip(inputs, ctx.needs_input_grad[1:])):
            if not needed:
                grads.append(None)
                continue
            others = [(s, op) for j, (s, op) in enumerate(zip(inputs, operands)) if j != i]
            available = set(output) | {c for s, _ in others for c in s}
            unique = "".join(dict.fromkeys(sub))  # a letter repeated in `sub` reads a diagonal
            sizes = {c: operands[i].shape[sub.index(c)] for c in unique}
            target = "".join(c for c in unique if c in available)
            eq = ",".join([output] + [s for s, _ in others]) + "->" + target
            g = einsum(eq, grad, *[op for _, op in others])
            if target != unique:  # letters summed out of operand i alone: broadcast back
                g = g.reshape(tuple(sizes[c] if c in available else 1 for c in unique))
                g = g.expand(tuple(sizes[c] for c in unique))
            if unique != sub:
                g = _onto_diagonal(g, unique, sub, sizes, ctx.equation)
            grads.append(g)
        return tuple(grads)


def _onto_diagonal(g, unique: str, sub: str, sizes: dict, equation: str):
    """Spread ``g`` (subscripts ``unique``) onto the diagonal of an operand with subscripts
    ``sub`` (some letters repeated), zeros elsewhere: each repeated occurrence of a letter c
    gets a fresh letter c' and a factor eye[c, c']. Built from einsum, so it is differentiable."""
    from ..creation import eye
    fresh = iter(c for c in string.ascii_letters if c not in equation)
    renamed, factors, seen = "", [], set()
    for c in sub:
        if c in seen:
            new = next(fresh)
            factors.append(c + new)
            renamed += new
        else:
            seen.add(c)
            renamed += c
    identities = [eye(sizes[pair[0]], dtype=g.dtype, device=g.device) for pair in factors]
    return einsum(",".join([unique] + factors) + "->" + renamed, g, *identities)


def _parse(equation: str):
    inputs, _, output = equation.partition("->")
    return inputs.split(","), output


def _expand_ellipsis(equation: str, operands) -> str:
    """Rewrite '...' with explicit letters and add the implicit output if '->' is missing."""
    equation = equation.replace(" ", "")
    inputs, arrow, output = equation.partition("->")
    subs = inputs.split(",")
    if len(subs) != len(operands):
        raise ValueError(f"einsum: equation {equation!r} has {len(subs)} operands but {len(operands)} were given")
    used = set(c for c in equation if c.isalpha())
    free = [c for c in string.ascii_letters if c not in used]
    ell_ndim = 0
    for s, op in zip(subs, operands):
        if "..." in s:
            ell_ndim = max(ell_ndim, op.ndim - (len(s) - 3))
    ell = "".join(free[:ell_ndim])
    new_subs = []
    for s, op in zip(subs, operands):
        if "..." in s:
            n = op.ndim - (len(s) - 3)
            s = s.replace("...", ell[ell_ndim - n:])
        if len(s) != op.ndim:
            raise ValueError(f"einsum: subscripts {s!r} do not match operand of shape {op.shape}")
        new_subs.append(s)
    if arrow:
        output = output.replace("...", ell)
    else:  # implicit output: letters that appear once, in alphabetical order, after the ellipsis dims
        counts = {}
        for s in new_subs:
            for c in s:
                counts[c] = counts.get(c, 0) + 1
        output = ell + "".join(sorted(c for c, n in counts.items() if n == 1 and c not in ell))
    return ",".join(new_subs) + "->" + output


def einsum(equation: str, *operands):
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    equation = _expand_ellipsis(equation, operands)
    dtype = operands[0].dtype
    for op in operands[1:]:
        if op.dtype != dtype:
            raise TypeError(f"einsum: all operands must have the same dtype, got {[o.dtype for o in operands]}")
    return Einsum.apply(equation, *operands)
