"""The differentiable primitives, one ``Function`` each, grouped by kind."""
from .elementwise import (abs, add, allclose, cast, ceil, clamp, clip, clone, contiguous, cos, div, eq, equal, erf,
                          exp, expm1, floor, floor_divide, ge, gt, isfinite, isinf, isnan, le, log, log1p,
                          logical_and, logical_not, logical_or, logical_xor, lt, maximum, minimum, mul, ne, neg,
                          pow, reciprocal, relu, remainder, round, rsqrt, sigmoid, sign, sin, sqrt, square, sub,
                          tanh, to_device, true_divide, trunc, where)
from .indexing import gather, getitem, index_select, masked_fill, scatter_add
from .linalg import bmm, dot, einsum, matmul, mm, outer
from .nn import log_softmax, softmax
from .reduction import (all, amax, amin, any, argmax, argmin, cumsum, logsumexp, max, mean, min, norm, prod, std,
                        sum, var)
from .shape import (broadcast_to, cat, chunk, concat, concatenate, expand, expand_as, flatten, flip, movedim, narrow,
                    pad, permute, repeat, reshape, split, squeeze, stack, sum_to_shape, swapaxes, t, transpose,
                    tril, triu, unbind, unflatten, unsqueeze, view)

# Only the functions: `from tinynn.ops import *` must not export the submodules
# (ops.nn would shadow the tinynn.nn package).
__all__ = [name for name, value in globals().items() if callable(value) and not name.startswith("_")]
