"""Attach the ops as ``Tensor`` methods (``t.sum()``, ``t.reshape(...)``, ...)."""
from __future__ import annotations

from .. import ops
from ..tensor import Tensor

_SAME_NAME = [
    "sum", "mean", "var", "std", "max", "min", "amax", "amin", "argmax", "argmin", "logsumexp", "prod",
    "cumsum", "norm", "all", "any",
    "reshape", "view", "flatten", "unflatten", "squeeze", "unsqueeze", "permute", "transpose", "expand",
    "expand_as", "repeat", "flip", "narrow", "split", "chunk", "unbind", "tril", "triu", "movedim", "t",
    "swapaxes",
    "exp", "log", "log1p", "expm1", "sqrt", "rsqrt", "sin", "cos", "tanh", "sigmoid", "relu", "abs", "neg",
    "clamp", "clip", "square", "reciprocal", "sign", "floor", "ceil", "round", "trunc", "erf",
    "add", "sub", "mul", "div", "pow", "maximum", "minimum", "matmul", "mm", "bmm", "dot",
    "eq", "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or", "logical_xor", "logical_not",
    "isnan", "isinf", "isfinite", "allclose", "equal",
    "softmax", "log_softmax", "masked_fill", "gather", "scatter_add", "index_select",
]


def _attach(name):
    fn = getattr(ops, name)

    def method(self, *args, **kwargs):
        return fn(self, *args, **kwargs)

    method.__name__ = name
    method.__doc__ = fn.__doc__
    setattr(Tensor, name, method)


for _name in _SAME_NAME:
    _attach(_name)

Tensor.subtract = Tensor.sub
Tensor.multiply = Tensor.mul
Tensor.divide = Tensor.div
Tensor.greater = Tensor.gt
Tensor.less = Tensor.lt
Tensor.absolute = Tensor.abs


def _view_as(self, other):
    return ops.reshape(self, other.shape)


def _where(self, condition, other):
    return ops.where(condition, self, other)


def _masked_fill_(self, mask, value):
    self._check_inplace("masked_fill_")
    self.data[mask.data if isinstance(mask, Tensor) else mask] = value
    return self


Tensor.view_as = _view_as
Tensor.reshape_as = _view_as
Tensor.where = _where
Tensor.masked_fill_ = _masked_fill_
