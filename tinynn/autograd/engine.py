"""The backward pass: walk the graph in reverse topological order.

1. Collect every node reachable from the outputs with an explicit stack (no
   recursion, so a 100,000-op chain is fine) and count, for each node, how many
   edges point into it.
2. Start from the outputs' nodes. A node runs once all its consumers have
   sent their gradient (its count drops to zero). Its ``backward`` turns the
   gradient of its outputs into gradients of its inputs; the engine then
   - reduces a gradient that was broadcast back to the input's shape,
   - casts it to the input's dtype,
   - adds it into the buffer of the input's node (an input used twice gets the sum).
3. At a leaf, ``AccumulateGrad`` adds into ``leaf.grad`` (PyTorch's semantics:
   calling backward twice accumulates), or ``grad()`` captures it instead.
Unless ``retain_graph``, each node frees what it saved once it has run.
"""
from __future__ import annotations

from . import anomaly
from ..ops.shape import sum_to_shape
from .function import AccumulateGrad, _gradient_edge
from .grad_mode import set_grad_enabled

Tensor = None  # set by tinynn.tensor once the class exists


def _collect(root_nodes):
    """Every node reachable from ``root_nodes`` and the number of edges into each."""
    dependencies = {}
    stack = [n for n in root_nodes]
    seen = set(id(n) for n in stack)
    nodes = list(stack)
    while stack:
        node = stack.pop()
        for edge in node.next_nodes:
            if edge is None:
                continue
            child = edge[0]
            dependencies[child] = dependencies.get(child, 0) + 1
            if id(child) not in seen:
                seen.add(id(child))
                nodes.append(child)
                stack.append(child)
    return nodes, dependencies


def _needed(nodes, targets):
    """Nodes that must run for ``grad()``: those with a target strictly below them. A target
    itself runs only if another target lies beyond it (its gradient is captured, not used)."""
    parents = {}
    for node in nodes:
        for edge in node.next_nodes:
            if edge is not None:
                parents.setdefault(edge[0], []).append(node)
    needed = set()
    stack = [p for t in targets for p in parents.get(t, ())]
    while stack:
        node = stack.pop()
        if node in needed:
            continue
        needed.add(node)
        stack.extend(parents.get(node, ()))
    return needed


def _reduce_to_input(grad, shape, dtype):
    """Sum a broadcast gradient back to ``shape`` and cast it to ``dtype``."""
    if grad.shape != shape:
        grad = sum_to_shape(grad, shape)
    if grad.dtype != dtype and dtype.kind in "fc":
        grad = grad.to(dtype)
    return grad


def _accumulate(buffers, node, index, grad):
    slots = buffers.get(node)
    if slots is None:
        slots = buffers[node] = [None] * node.num_outputs
    slots[index] = grad if slots[index] is None else slots[index] + grad


def run_backward(roots, grad_roots, retain_graph: bool, create_graph: bool, inputs=None):
    """Backpropagate ``grad_roots`` from ``roots``.

    With ``inputs=None`` gradients accumulate into the ``.grad`` of leaves; otherwise
    the gradients of ``inputs`` are returned (a list, ``None`` where unreachable).
    """
    buffers = {}
    root_nodes = []
    for tensor, grad in zip(roots, grad_roots):
        edge = _root_edge(tensor)
        if edge is None:
            raise RuntimeError("element of tensors does not require grad and does not have a grad_fn")
        _accumulate(buffers, edge[0], edge[1], grad)
        root_nodes.append(edge[0])

    nodes, dependencies = _collect(root_nodes)
    captures = {}
    if inputs is not None:
        for i, t in enumerate(inputs):
            edge = _root_edge(t)
            if edge is not None:
                captures.setdefault((edge[0], edge[1]), []).append(i)
        needed = _needed(nodes, {node for node, _ in captures})
    results = [None] * (len(inputs) if inputs is not None else 0)

    ready = [n for n in dict.fromkeys(root_nodes) if dependencies.get(n, 0) == 0]
    with set_grad_enabled(create_graph):
        while ready:
            node = ready.pop()
            grads = buffers.pop(node, None) or [None] * node.num_outputs
            grads = _run_hooks(node, grads)
            if inputs is not None:
                for index, grad in enumerate(grads):
                    for i in captures.get((node, index), ()):
                        results[i] = grad
            if isinstance(node, AccumulateGrad):
                if inputs is None:
                    _accumulate_into_leaf(node, grads[0], create_graph)
                continue
            if inputs is None or node in needed:  # nodes that do not run keep what they saved
                _run_node(node, grads, buffers, retain_graph)
            for edge in node.next_nodes:
                if edge is None:
                    continue
                child = edge[0]
                dependencies[child] -= 1
                if dependencies[child] == 0:
                    ready.append(child)
    return results


def _root_edge(tensor):
    return _gradient_edge(tensor)


def _run_node(node, grads, buffers, retain_graph: bool) -> None:
    """Call one node's backward and hand each input's gradient to the next node."""
    grads = [g if g is not None else _zeros(node, i) for i, g in enumerate(grads)]
    if anomaly._state.enabled:
        anomaly._state.in_backward = True
        try:
            input_grads = node.backward(node, *grads)
        finally:
            anomaly._state.in_backward = False
    else:
        input_grads = node.backward(node, *grads)
    if not isinstance(input_grads, tuple):
        input_grads = (input_grads,)
    if not retain_graph:
        node._release()
    positions = node.tensor_positions
    if len(input_grads) < len(positions) or (len(input_grads) != len(node.needs_input_grad)
                                             and len(input_grads) != len(positions)):
        raise RuntimeError(f"{node.name()}.backward returned {len(input_grads)} gradients, "
                           f"expected {len(node.needs_input_grad)} (one per forward input)")
    if len(input_grads) != len(positions):  # one per forward argument: keep those of tensors
        input_grads = [input_grads[p] for p in positions]
    for edge, (shape, dtype), grad in zip(node.next_nodes, node.input_meta, input_grads):
        if edge is None or grad is None:
            continue
        if not isinstance(grad, Tensor):
            grad = Tensor._make(grad, _device_of(grad))
        if anomaly.is_anomaly_enabled():
            site = getattr(node, "_creation_site", None)
            anomaly.check_finite(grad.xp, grad.data, node.name(), "its input gradient (backward)", site)
        _accumulate(buffers, edge[0], edge[1], _reduce_to_input(grad, shape, dtype))


def _zeros(node, index):
    """Materialise a zero gradient for an output that received none."""
    shape, dtype = node.output_meta[index]
    return Tensor._make(node.device_xp().zeros(shape, dtype=dtype), node.device)


def _device_of(array):
    from ..backend.device import device_of_array
    return device_of_array(array)


def _run_hooks(node, grads):
    hooks = getattr(node, "_tensor_hooks", None)
    if not hooks:
        return grads
    grads = list(grads)
    for index, fns in hooks.items():
        for fn in fns:
            if grads[index] is None:
                continue
            replaced = fn(grads[index])
            if replaced is not None:
                grads[index] = replaced
    return grads


def _accumulate_into_leaf(node, grad, create_graph: bool) -> None:
    """``leaf.grad += grad``, as PyTorch does: gradients accumulate across backward calls."""
    leaf = node.variable
    if leaf is None or grad is None:
        return
    if create_graph:  # keep the gradient's own graph, for higher-order derivatives
        if not grad.data.flags.writeable:  # e.g. a broadcast view: .grad gets updated in place later
            grad = grad.clone()
        leaf.grad = grad if leaf.grad is None else leaf.grad + grad
    elif leaf.grad is None:
        # A private copy: the same gradient array may also flow to another input,
        # and users (clip_grad_norm_, optimizers) modify .grad in place.
        leaf.grad = Tensor._make(grad.data.copy(), grad._device)
    else:
        leaf.grad.data += grad.data
