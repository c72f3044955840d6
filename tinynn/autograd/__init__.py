"""Reverse-mode automatic differentiation: ``backward``, ``grad``, grad modes, ``Function``,
anomaly detection and gradient checking."""
from __future__ import annotations

from .anomaly import detect_anomaly, is_anomaly_enabled
from .engine import run_backward
from .function import Function
from .grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .gradcheck import GradcheckError, gradcheck, gradgradcheck


def _seed_gradients(outputs, grad_outputs, op):
    from ..tensor import Tensor
    seeds = []
    for i, (out, g) in enumerate(zip(outputs, grad_outputs)):
        if g is None:
            if out.numel() != 1:
                raise RuntimeError(f"{op}: grad can be implicitly created only for scalar outputs; output {i} has "
                                   f"shape {out.shape}, pass a gradient of that shape")
            g = Tensor._make(out.xp.ones(out.shape, dtype=out.dtype), out.device)
        elif not isinstance(g, Tensor):
            g = Tensor._make(out.xp.asarray(g, dtype=out.dtype), out.device)
        if g.shape != out.shape:
            raise RuntimeError(f"{op}: mismatch in shape: grad_output[{i}] has a shape of {g.shape} and "
                               f"output[{i}] has a shape of {out.shape}")
        seeds.append(g)
    return seeds


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph: bool = False, inputs=None) -> None:
    """Accumulate gradients of ``tensors`` into the ``.grad`` of the leaves (``Tensor.backward``)."""
    tensors = list(tensors) if isinstance(tensors, (list, tuple)) else [tensors]
    if grad_tensors is None:
        grad_tensors = [None] * len(tensors)
    elif not isinstance(grad_tensors, (list, tuple)):
        grad_tensors = [grad_tensors]
    for t in tensors:
        if not t.requires_grad:
            raise RuntimeError("backward: element 0 of tensors does not require grad and does not have a grad_fn")
    if retain_graph is None:
        retain_graph = create_graph
    seeds = _seed_gradients(tensors, grad_tensors, "backward")
    if inputs is not None:
        inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        grads = run_backward(tensors, seeds, retain_graph, create_graph, inputs=inputs)
        for t, g in zip(inputs, grads):
            if g is not None:
                t.grad = g if t.grad is None else t.grad + g
        return
    run_backward(tensors, seeds, retain_graph, create_graph)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph: bool = False,
         allow_unused: bool = False):
    """The gradients of ``outputs`` with respect to ``inputs``, returned (not accumulated)."""
    single = not isinstance(inputs, (list, tuple))
    outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
    inputs = [inputs] if single else list(inputs)
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    elif not isinstance(grad_outputs, (list, tuple)):
        grad_outputs = [grad_outputs]
    for i, t in enumerate(inputs):
        if not t.requires_grad:
            raise RuntimeError(f"grad: input {i} does not require grad")
    if retain_graph is None:
        retain_graph = create_graph
    seeds = _seed_gradients(outputs, grad_outputs, "grad")
    results = run_backward(outputs, seeds, retain_graph, create_graph, inputs=inputs)
    if not allow_unused:
        for i, r in enumerate(results):
            if r is None:
                raise RuntimeError(f"grad: input {i} was not used in the graph; pass allow_unused=True "
                                   "if this is expected")
    if not create_graph:
        results = [r.detach() if r is not None else None for r in results]
    return tuple(results)


__all__ = ["Function", "backward", "grad", "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled",
           "detect_anomaly", "is_anomaly_enabled", "gradcheck", "gradgradcheck", "GradcheckError"]
