"""``Function``: one differentiable op, and the node it leaves in the graph.

Calling ``MyOp.apply(*args)`` runs ``MyOp.forward(ctx, *arrays)`` on the raw arrays
of the tensor arguments. If any input requires a gradient (and grad mode is on),
the ``ctx`` object becomes the output's ``grad_fn``: a node that remembers

* ``next_nodes``: for each tensor input, the node its gradient goes to next
  (the input's own ``grad_fn``, or an ``AccumulateGrad`` node for a leaf),
* ``input_meta``: each input's shape and dtype, so the engine can reduce a
  broadcast gradient back to the input's shape and cast it to its dtype,
* what ``forward`` saved for ``backward``.

Nodes point to their inputs' nodes, never back: a graph is freed with its output.
"""
from __future__ import annotations

import weakref

from ..backend.device import CPU, array_module_for
from . import anomaly
from .grad_mode import _state as _grad_state

Tensor = None  # set by tinynn.tensor once the class exists (tensor.py imports this module)

_RELEASED = object()  # marks saved values freed after backward (retain_graph=False)


class Function:
    """Base class of differentiable ops. Subclasses define static ``forward(ctx, ...)``
    and ``backward(ctx, *grad_outputs)``; users call ``Op.apply(...)``."""

    # Filled by apply() on the ctx/node of a recorded op.
    next_nodes: tuple = ()
    input_meta: tuple = ()
    needs_input_grad: tuple = ()
    _saved: tuple = ()

    @staticmethod
    def forward(ctx, *args):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, *grad_outputs):
        raise NotImplementedError

    # --- what forward keeps for backward --------------------------------------
    def save_for_backward(self, *values) -> None:
        """Keep arrays (or tensors) for backward. Input arrays come back as the input
        Tensors themselves and output arrays as the outputs, so higher-order
        gradients flow through them; other arrays come back as constants."""
        self._to_save = values

    @property
    def saved_tensors(self) -> tuple:
        saved = self._saved
        if saved is _RELEASED:
            raise RuntimeError(
                f"{self.name()}: trying to backward through the graph a second time (or to read saved "
                "tensors after they were freed). Pass retain_graph=True to the first backward() "
                "if you need to backward through the graph again.")
        return tuple(self._unpack(entry) for entry in saved)

    def mark_non_differentiable(self, *arrays) -> None:
        """Outputs that never carry a gradient (e.g. the indices of a max)."""
        self._non_differentiable = {id(a) for a in arrays}

    @classmethod
    def name(cls) -> str:
        return cls.__name__

    def __repr__(self) -> str:
        return f"<{self.name()}Backward>"

    # --- apply: run forward, record the node ---------------------------------
    @classmethod
    def apply(cls, *args):
        ctx = cls()
        raw, needs_grad, device = [], [], None
        for a in args:
            if isinstance(a, Tensor):
                raw.append(a.data)
                needs_grad.append(a.requires_grad)
                if device is None:
                    device = a._device
                elif a._device is not device and a._device != device:
                    raise _device_mismatch(cls, args)
            else:
                raw.append(a)
                needs_grad.append(False)
        record = _grad_state.enabled and True in needs_grad
        ctx.needs_input_grad = tuple(needs_grad) if record else (False,) * len(args)
        ctx._to_save = ()
        outputs = cls.forward(ctx, *raw)
        single = not isinstance(outputs, tuple)
        output_arrays = (outputs,) if single else outputs
        if device is None:
            device = CPU
        if anomaly._state.enabled and not anomaly._state.in_backward:
            xp = _xp(device)
            for i, out in enumerate(output_arrays):
                anomaly.check_finite(xp, out, cls.name(), f"its output {i} (forward)", anomaly.creation_site())

        # An op that moves data (ToDevice) says where its output lives.
        device = ctx.__dict__.get("output_device", device)
        if not record:
            if single:
                return Tensor._make(outputs, device)
            return tuple(Tensor._make(out, device) if out is not None else None for out in output_arrays)
        ctx.device = device
        ctx._record(args, output_arrays)
        if single:
            return Tensor._make(outputs, device, grad_fn=ctx if ctx._differentiable(outputs) else None)
        return tuple(
            Tensor._make(out, device, grad_fn=ctx if ctx._differentiable(out) else None, output_nr=i)
            if out is not None else None
            for i, out in enumerate(output_arrays))

    def _record(self, args, output_arrays) -> None:
        """Turn this ctx into a graph node: link inputs' nodes and pack saved values."""
        positions, edges, meta = [], [], []
        for i, a in enumerate(args):
            if isinstance(a, Tensor):
                positions.append(i)
                edges.append(_gradient_edge(a))
                meta.append((a.data.shape, a.data.dtype))
        self.tensor_positions = tuple(positions)
        self.next_nodes = tuple(edges)
        self.input_meta = tuple(meta)
        self.num_outputs = len(output_arrays)
        self.output_meta = tuple((o.shape, o.dtype) if o is not None else None for o in output_arrays)
        self._saved = tuple(_pack(v, args, output_arrays) for v in self._to_save) if self._to_save else ()
        del self._to_save
        if anomaly._state.enabled:
            self._creation_site = anomaly.creation_site()

    def _differentiable(self, array) -> bool:
        if array.dtype.kind not in "fc":
            return False
        return id(array) not in getattr(self, "_non_differentiable", ())

    def _unpack(self, entry):
        kind, value = entry
        if kind == "tensor":
            return value
        if kind == "output":  # re-create the output as a tensor that points back at this node
            index, array = value
            return Tensor._make(array, self.device, grad_fn=self if _grad_state.enabled else None,
                                output_nr=index)
        if kind == "array":
            return Tensor._make(value, self.device)
        return None

    def device_xp(self):
        return _xp(self.device)

    def _release(self) -> None:
        self._saved = _RELEASED


class AccumulateGrad:
    """The node at a leaf tensor: adds the incoming gradient into ``leaf.grad``."""

    next_nodes: tuple = ()

    def __init__(self, leaf):
        self._leaf = weakref.ref(leaf)
        self.input_meta = ((leaf.shape, leaf.dtype),)
        self.num_outputs = 1

    @property
    def variable(self):
        return self._leaf()

    @staticmethod
    def name() -> str:
        return "AccumulateGrad"

    def __repr__(self) -> str:
        return "<AccumulateGrad>"


def _gradient_edge(tensor):
    """The node (and output index) that receives the gradient of ``tensor``."""
    if not tensor.requires_grad:
        return None
    if tensor.grad_fn is not None:
        return (tensor.grad_fn, tensor._output_nr)
    acc = tensor._accumulator
    if acc is None:
        acc = tensor._accumulator = AccumulateGrad(tensor)
    return (acc, 0)


def _pack(value, args, output_arrays):
    if value is None:
        return ("none", None)
    if isinstance(value, Tensor):
        return ("tensor", value)
    for a in args:
        if isinstance(a, Tensor) and a.data is value:
            return ("tensor", a)
    for i, out in enumerate(output_arrays):
        if out is value:
            return ("output", (i, value))
    return ("array", value)


def _device_mismatch(cls, args) -> RuntimeError:
    """All tensor inputs of an op must live on one device."""
    devices = ", ".join(str(a._device) for a in args if isinstance(a, Tensor))
    return RuntimeError(f"{cls.name()}: expected all tensors to be on the same device, but found tensors on {devices}")


def _xp(device):
    return array_module_for(device)
