"""``Tensor``: an array plus what autograd needs to differentiate through it.

    data           the raw array (numpy.ndarray on cpu, cupy.ndarray on cuda)
    requires_grad  whether gradients should flow to this tensor
    grad_fn        the node (a ``Function`` ctx) that produced it; None for leaves
    grad           after ``backward()``, the gradient of a leaf (a Tensor)

Every differentiable op lives in ``tinynn/ops``; the methods here only forward to
them, so ``a + b`` and ``tn.add(a, b)`` are the same code.
"""
from __future__ import annotations

import numpy as np

from .autograd.grad_mode import _state as _grad_state
from .backend.device import CPU, array_module_for, as_device, device_of_array
from .backend.dtypes import as_dtype, get_default_dtype


class RemovableHandle:
    """Returned by ``register_hook``: ``handle.remove()`` unregisters the hook."""

    def __init__(self, hooks: list, hook):
        self._hooks, self._hook = hooks, hook

    def remove(self) -> None:
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


class Tensor:
    __slots__ = ("data", "grad", "requires_grad", "grad_fn", "_output_nr", "_device", "_accumulator",
                 "_retains_grad", "__weakref__", "__dict__")
    __array_ufunc__ = None  # make `ndarray + Tensor` call Tensor.__radd__
    __array_priority__ = 1000

    def __init__(self, data, requires_grad: bool = False, dtype=None, device=None):
        from .creation import _to_array

        dev = as_device(device) if device is not None else (
            data._device if isinstance(data, Tensor) else device_of_array(data))
        self._init(_to_array(data, as_dtype(dtype), dev), dev, requires_grad)

    def _init(self, array, device, requires_grad=False, grad_fn=None, output_nr=0):
        """Set every field; shared by the constructor, ``_make`` and ``Parameter``."""
        self.data = array
        self._device = device
        self.grad = None
        self.grad_fn = grad_fn
        self._output_nr = output_nr
        self.requires_grad = requires_grad or grad_fn is not None
        self._accumulator = None
        self._retains_grad = False
        if requires_grad and array.dtype.kind not in "fc":
            raise RuntimeError(f"only tensors of floating point dtype can require gradients, got {array.dtype}")

    @classmethod
    def _make(cls, array, device, requires_grad=False, grad_fn=None, output_nr=0) -> "Tensor":
        """Wrap an array without copying or checking (the engine's fast path)."""
        t = object.__new__(Tensor)
        t._init(array, device, requires_grad, grad_fn, output_nr)
        return t

    # --- attributes -------------------------------------------------------------
    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def device(self):
        return self._device

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    @property
    def is_cuda(self) -> bool:
        return self._device.type == "cuda"

    @property
    def xp(self):
        """The array module of this tensor's device (numpy or cupy)."""
        return array_module_for(self._device)

    @property
    def T(self) -> "Tensor":
        return self.permute(*reversed(range(self.ndim)))

    @property
    def mT(self) -> "Tensor":
        return self.transpose(-2, -1)

    def size(self, dim: int | None = None):
        return self.shape if dim is None else self.shape[dim]

    def dim(self) -> int:
        return self.ndim

    def numel(self) -> int:
        return int(self.data.size)

    def element_size(self) -> int:
        return self.data.itemsize

    @property
    def nbytes(self) -> int:
        return int(self.data.nbytes)

    def is_floating_point(self) -> bool:
        return self.dtype.kind == "f"

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __hash__(self):
        return id(self)

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise RuntimeError(f"Boolean value of Tensor with {self.data.size} values is ambiguous")
        return bool(self.data)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if self.dtype.kind not in "iub":
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self.item())

    def __repr__(self) -> str:
        body = np.array2string(self.numpy(), separator=", ", prefix="tensor(", precision=4)
        extras = []
        if self._device.type != "cpu":
            extras.append(f"device='{self._device}'")
        if self.dtype not in (get_default_dtype(), np.dtype(np.int64), np.dtype(np.bool_)):
            extras.append(f"dtype=tinynn.{self.dtype}")
        if self.grad_fn is not None:
            extras.append(f"grad_fn={self.grad_fn!r}")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + body + "".join(", " + e for e in extras) + ")"

    # --- conversion -------------------------------------------------------------
    def numpy(self) -> np.ndarray:
        if self.requires_grad and _grad_state.enabled and not self.is_leaf:
            pass  # PyTorch refuses; we allow reading values, as .detach().numpy() would
        if self._device.type == "cpu":
            return self.data
        return self.data.get()

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item(): only one element tensors can be converted to Python scalars, "
                             f"got shape {self.shape}")
        return self.data.reshape(()).item() if self._device.type == "cpu" else self.data.get().item()

    def tolist(self):
        return self.numpy().tolist()

    def to(self, *args, **kwargs) -> "Tensor":
        """``to(device)``, ``to(dtype)``, ``to(device, dtype)`` or ``to(other_tensor)``."""
        device, dtype = kwargs.pop("device", None), kwargs.pop("dtype", None)
        kwargs.pop("non_blocking", None)
        kwargs.pop("copy", None)
        if kwargs:
            raise TypeError(f"to(): unexpected arguments {sorted(kwargs)}")
        for a in args:
            if isinstance(a, Tensor):
                device, dtype = a.device, a.dtype
            elif isinstance(a, str) and a.split(":")[0] in ("cpu", "cuda") or hasattr(a, "index") and hasattr(a, "type"):
                device = a
            else:
                dtype = a
        out = self
        if dtype is not None and as_dtype(dtype) != out.dtype:
            out = ops.cast(out, as_dtype(dtype))
        if device is not None and as_device(device) != out.device:
            out = ops.to_device(out, as_device(device))
        return out

    def cpu(self) -> "Tensor":
        return self.to(CPU)

    def cuda(self, device=None) -> "Tensor":
        return self.to("cuda" if device is None else f"cuda:{device}" if isinstance(device, int) else device)

    def float(self) -> "Tensor":
        return self.to(np.float32)

    def double(self) -> "Tensor":
        return self.to(np.float64)

    def half(self) -> "Tensor":
        return self.to(np.float16)

    def long(self) -> "Tensor":
        return self.to(np.int64)

    def int(self) -> "Tensor":
        return self.to(np.int32)

    def bool(self) -> "Tensor":
        return self.to(np.bool_)

    def type_as(self, other: "Tensor") -> "Tensor":
        return self.to(other.dtype)

    # --- autograd ---------------------------------------------------------------
    def backward(self, gradient=None, retain_graph: bool | None = None, create_graph: bool = False,
                 inputs=None) -> None:
        """Accumulate d(self)/d(leaf) into ``leaf.grad`` for every leaf that requires grad.

        ``gradient`` is needed unless ``self`` holds a single element. Calling backward
        twice adds up gradients; the graph is freed unless ``retain_graph=True``.
        """
        from .autograd import backward
        backward(self, gradient, retain_graph=retain_graph, create_graph=create_graph, inputs=inputs)

    def detach(self) -> "Tensor":
        """The same data, cut from the graph."""
        return Tensor._make(self.data, self._device)

    def detach_(self) -> "Tensor":
        self.grad_fn = None
        self.requires_grad = False
        return self

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        if not self.is_leaf and not requires_grad:
            raise RuntimeError("requires_grad_(False): you can only change requires_grad flags of leaf tensors")
        if requires_grad and self.dtype.kind not in "fc":
            raise RuntimeError(f"only tensors of floating point dtype can require gradients, got {self.dtype}")
        self.requires_grad = requires_grad
        return self

    def retain_grad(self) -> None:
        """Keep ``.grad`` of a non-leaf tensor after backward."""
        if self.is_leaf or self._retains_grad:
            return
        import weakref
        ref = weakref.ref(self)

        def store(grad):
            t = ref()
            if t is not None:
                t.grad = grad.detach() if t.grad is None else t.grad + grad.detach()
        self._retains_grad = True
        self.register_hook(store)

    def register_hook(self, hook):
        """Call ``hook(grad)`` when this tensor's gradient is computed; a returned tensor replaces it."""
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        node = self.grad_fn
        index = self._output_nr
        if node is None:
            from .autograd.function import _gradient_edge
            node, index = _gradient_edge(self)
        if not hasattr(node, "_tensor_hooks"):
            node._tensor_hooks = {}
        hooks = node._tensor_hooks.setdefault(index, [])
        hooks.append(hook)
        return RemovableHandle(hooks, hook)

    # --- in-place (outside autograd: data updates such as initialisation) -------
    def _check_inplace(self, name: str) -> None:
        if self.requires_grad and _grad_state.enabled:
            raise RuntimeError(f"{name}: a tensor that requires grad cannot be modified in place "
                               "while grad mode is on; use `with tn.no_grad():`")

    def zero_(self) -> "Tensor":
        self._check_inplace("zero_")
        self.data[...] = 0
        return self

    def fill_(self, value) -> "Tensor":
        self._check_inplace("fill_")
        self.data[...] = value.item() if isinstance(value, Tensor) else value
        return self

    def copy_(self, src) -> "Tensor":
        self._check_inplace("copy_")
        src_data = src.data if isinstance(src, Tensor) else src
        try:
            fits = tuple(np.broadcast_shapes(np.shape(src_data), self.shape)) == self.shape
        except ValueError:
            fits = False
        if not fits:
            raise RuntimeError(f"copy_: cannot copy a tensor of shape {np.shape(src_data)} into shape {self.shape}")
        if self._device.type == "cpu":
            src_data = src_data.get() if hasattr(src_data, "get") else src_data
        self.data[...] = self.xp.asarray(src_data)
        return self

    def _inplace_binary(self, name, ufunc, other) -> "Tensor":
        self._check_inplace(name)
        ufunc(self.data, other.data if isinstance(other, Tensor) else other, out=self.data, casting="unsafe")
        return self

    def add_(self, other, alpha=1) -> "Tensor":
        return self._inplace_binary("add_", self.xp.add, other if alpha == 1 else other * alpha)

    def sub_(self, other, alpha=1) -> "Tensor":
        return self._inplace_binary("sub_", self.xp.subtract, other if alpha == 1 else other * alpha)

    def mul_(self, other) -> "Tensor":
        return self._inplace_binary("mul_", self.xp.multiply, other)

    def div_(self, other) -> "Tensor":
        return self._inplace_binary("div_", self.xp.true_divide, other)

    def clamp_(self, min=None, max=None) -> "Tensor":
        self._check_inplace("clamp_")
        self.xp.clip(self.data, min, max, out=self.data)
        return self

    def uniform_(self, a: float = 0.0, b: float = 1.0, generator=None) -> "Tensor":
        from .backend.random import default_generator
        self._check_inplace("uniform_")
        gen = generator or default_generator(self._device)
        self.data[...] = gen.uniform(self.shape, self.dtype, a, b)
        return self

    def normal_(self, mean: float = 0.0, std: float = 1.0, generator=None) -> "Tensor":
        from .backend.random import default_generator
        self._check_inplace("normal_")
        gen = generator or default_generator(self._device)
        self.data[...] = gen.normal(self.shape, self.dtype, mean, std)
        return self

    def clone(self) -> "Tensor":
        return ops.clone(self)

    def contiguous(self) -> "Tensor":
        return ops.contiguous(self)

    def is_contiguous(self) -> bool:
        return bool(self.data.flags.c_contiguous)

    def new_tensor(self, data, dtype=None) -> "Tensor":
        from .creation import tensor
        return tensor(data, dtype=dtype or self.dtype, device=self.device)

    def new_zeros(self, *size, dtype=None) -> "Tensor":
        from .creation import zeros
        return zeros(*size, dtype=dtype or self.dtype, device=self.device)

    def new_ones(self, *size, dtype=None) -> "Tensor":
        from .creation import ones
        return ones(*size, dtype=dtype or self.dtype, device=self.device)

    def new_full(self, size, fill_value, dtype=None) -> "Tensor":
        from .creation import full
        return full(size, fill_value, dtype=dtype or self.dtype, device=self.device)

    def new_empty(self, *size, dtype=None) -> "Tensor":
        from .creation import empty
        return empty(*size, dtype=dtype or self.dtype, device=self.device)

    # --- operators ----------------------------------------------------------------
    def __add__(self, other): return ops.add(self, other)
    def __radd__(self, other): return ops.add(other, self)
    def __sub__(self, other): return ops.sub(self, other)
    def __rsub__(self, other): return ops.sub(other, self)
    def __mul__(self, other): return ops.mul(self, other)
    def __rmul__(self, other): return ops.mul(other, self)
    def __truediv__(self, other): return ops.div(self, other)
    def __rtruediv__(self, other): return ops.div(other, self)
    def __pow__(self, other): return ops.pow(self, other)
    def __rpow__(self, other): return ops.pow(other, self)
    def __matmul__(self, other): return ops.matmul(self, other)
    def __rmatmul__(self, other): return ops.matmul(other, self)
    def __neg__(self): return ops.neg(self)
    def __pos__(self): return self
    def __abs__(self): return ops.abs(self)
    def __floordiv__(self, other): return ops.floor_divide(self, other)
    def __mod__(self, other): return ops.remainder(self, other)
    def __eq__(self, other): return ops.eq(self, other)
    def __ne__(self, other): return ops.ne(self, other)
    def __lt__(self, other): return ops.lt(self, other)
    def __le__(self, other): return ops.le(self, other)
    def __gt__(self, other): return ops.gt(self, other)
    def __ge__(self, other): return ops.ge(self, other)
    def __and__(self, other): return ops.logical_and(self, other)
    def __or__(self, other): return ops.logical_or(self, other)
    def __xor__(self, other): return ops.logical_xor(self, other)
    def __invert__(self): return ops.logical_not(self)
    def __getitem__(self, index): return ops.getitem(self, index)

    def __setitem__(self, index, value) -> None:
        """Assignment writes into ``data`` (not recorded by autograd)."""
        self._check_inplace("__setitem__")
        from .ops.indexing import normalize_index
        value = value.data if isinstance(value, Tensor) else value
        self.data[normalize_index(index, self.xp)] = value


from .autograd import engine as _engine, function as _function  # noqa: E402
from .ops import _common as _ops_common  # noqa: E402

_function.Tensor = _engine.Tensor = _ops_common.TensorClass = Tensor
from . import ops  # noqa: E402  (ops import Tensor; the methods above resolve it at call time)
from .ops import _methods  # noqa: E402,F401  (attaches tensor methods such as .sum(), .reshape())
