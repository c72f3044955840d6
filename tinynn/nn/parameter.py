"""``Parameter``: a tensor that a ``Module`` registers as one of its learnable weights."""
from __future__ import annotations

from ..tensor import Tensor


class Parameter(Tensor):
    """A leaf tensor with ``requires_grad=True`` by default. Assigning one to a module
    attribute registers it, so it shows up in ``parameters()`` and ``state_dict()``."""

    def __new__(cls, data=None, requires_grad: bool = True):
        return object.__new__(cls)

    def __init__(self, data=None, requires_grad: bool = True):
        if data is None:
            from ..creation import empty
            data = empty(0)
        if isinstance(data, Tensor):
            self._init(data.data, data.device, requires_grad)
        else:
            super().__init__(data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()

    def __reduce_ex__(self, protocol):
        return (Parameter, (Tensor(self.data), self.requires_grad))
