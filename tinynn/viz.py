"""Pictures that explain a network: its autograd graph, its gradient flow, its attention.

* ``make_dot(output)``: the graph that ``output.backward()`` will walk, as Graphviz DOT text —
  one box per op (``grad_fn``), one ellipse per leaf (parameters by name, with shapes) and, once
  ``backward()`` has run, each leaf's gradient norm. ``render_dot`` turns it into SVG/PNG when
  Graphviz's ``dot`` program is installed (``apt install graphviz``).
* ``plot_grad_flow(model.named_parameters())``: mean and max |grad| per layer, to spot vanishing
  or exploding gradients.
* ``plot_attention(weights, ...)``: a heat map of an attention matrix.

matplotlib is imported only when plotting (``pip install matplotlib``).
"""
from __future__ import annotations

import shutil
import subprocess
from typing import Iterable, Mapping, Sequence

import numpy as np

from .tensor import Tensor


def _to_numpy(array) -> np.ndarray:
    if isinstance(array, Tensor):
        array = array.data
    return np.asarray(array.get() if hasattr(array, "get") else array)


def _shape_text(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _leaf_label(tensor, names: Mapping[int, str], show_grad_norms: bool) -> str:
    lines = [names.get(id(tensor), "leaf"), _shape_text(tensor.shape)]
    if show_grad_norms and tensor.grad is not None:
        lines.append(f"|grad| = {float(np.linalg.norm(_to_numpy(tensor.grad).ravel())):.3g}")
    return "\\n".join(_escape(line) for line in lines)


def _op_label(node) -> str:
    name = node.name() if hasattr(node, "name") else type(node).__name__
    lines = [f"{name}Backward"]
    shapes = [meta[0] for meta in getattr(node, "output_meta", ()) if meta is not None]
    if shapes:
        lines.append("-> " + ", ".join(_shape_text(s) for s in shapes))
    return "\\n".join(_escape(line) for line in lines)


def make_dot(outputs, params: Mapping[str, Tensor] | Iterable | None = None, show_grad_norms: bool = True,
             title: str | None = None) -> str:
    """Graphviz DOT text of the autograd graph behind ``outputs`` (a Tensor or a sequence of them).

    ``params``: ``dict(model.named_parameters())`` (or the iterator itself) to label leaves by name.
    The walk is iterative (``grad_fn.next_nodes``, down to ``AccumulateGrad`` nodes whose
    ``.variable`` is the leaf tensor), so deep graphs do not hit Python's recursion limit.
    """
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    if params is None:
        names = {}
    else:
        items = params.items() if isinstance(params, Mapping) else params
        names = {id(tensor): name for name, tensor in items}
    lines = ["digraph autograd {", '  graph [rankdir=BT, fontname="Helvetica"];',
             '  node [fontname="Helvetica", fontsize=10];']
    if title:
        lines.append(f'  labelloc="t"; label="{_escape(title)}";')
    ids: dict[int, str] = {}
    seen_edges: set = set()

    def node_id(node) -> str:
        key = id(node)
        if key not in ids:
            ids[key] = f"n{len(ids)}"
        return ids[key]

    stack = []
    for i, out in enumerate(outputs):
        out_id = f"out{i}"
        lines.append(f'  {out_id} [label="output {i}\\n{_shape_text(out.shape)}", shape=ellipse, '
                     'style=filled, fillcolor="#a9dfbf"];')
        if out.grad_fn is not None:
            lines.append(f"  {node_id(out.grad_fn)} -> {out_id};")
            stack.append(out.grad_fn)
    visited: set = set()
    while stack:
        node = stack.pop()
        if id(node) in visited:
            continue
        visited.add(id(node))
        this = node_id(node)
        variable = getattr(node, "variable", None)
        if variable is not None or type(node).__name__ == "AccumulateGrad":
            label = _leaf_label(variable, names, show_grad_norms) if variable is not None else "leaf (freed)"
            lines.append(f'  {this} [label="{label}", shape=ellipse, style=filled, fillcolor="#aed6f1"];')
            continue
        lines.append(f'  {this} [label="{_op_label(node)}", shape=box, style=filled, fillcolor="#f5f5f5"];')
        for edge in getattr(node, "next_nodes", ()):
            if edge is None:
                continue
            child = edge[0] if isinstance(edge, tuple) else edge
            key = (id(child), id(node))
            if key not in seen_edges:
                seen_edges.add(key)
                lines.append(f"  {node_id(child)} -> {this};")
            stack.append(child)
    lines.append("}")
    return "\n".join(lines)


def render_dot(dot_source: str, path: str, format: str = "svg") -> str:
    """Write ``dot_source`` rendered by Graphviz to ``path`` (``svg`` or ``png``); returns ``path``.

    Raises ``RuntimeError`` naming the package to install when the ``dot`` program is missing.
    """
    if format not in ("svg", "png", "pdf"):
        raise ValueError(f"render_dot: format must be 'svg', 'png' or 'pdf', got {format!r}")
    dot = shutil.which("dot")
    if dot is None:
        raise RuntimeError("render_dot: Graphviz's 'dot' program is not installed (apt install graphviz); "
                           "make_dot() text can still be pasted into any Graphviz viewer")
    result = subprocess.run([dot, f"-T{format}", "-o", str(path)], input=dot_source.encode(),
                            capture_output=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"render_dot: dot failed: {result.stderr.decode(errors='replace').strip()}")
    return str(path)


def gradient_stats(named_parameters: Iterable) -> list[tuple[str, float, float]]:
    """``(name, mean |grad|, max |grad|)`` for every weight (ndim > 1) that has a gradient."""
    stats = []
    for name, p in named_parameters:
        if p.grad is None or p.ndim < 2:
            continue
        g = np.abs(_to_numpy(p.grad))
        stats.append((name, float(g.mean()), float(g.max())))
    return stats


def _pyplot():
    try:
        import matplotlib
        import matplotlib.pyplot as plt
    except ImportError as error:  # optional dependency
        raise ImportError("tinynn.viz plotting needs matplotlib: pip install matplotlib") from error
    return matplotlib, plt


def plot_grad_flow(named_parameters: Iterable, ax=None, log_scale: bool = True):
    """Bar chart of max and mean |grad| per weight tensor, input side on the left. Returns the axes."""
    stats = gradient_stats(named_parameters)
    if not stats:
        raise ValueError("plot_grad_flow: no parameter has a gradient; call loss.backward() first")
    _, plt = _pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(max(4.0, 0.4 * len(stats)), 3.5))
    names = [s[0] for s in stats]
    x = np.arange(len(stats))
    ax.bar(x, [s[2] for s in stats], alpha=0.4, color="c", label="max |grad|")
    ax.bar(x, [s[1] for s in stats], alpha=0.8, color="b", label="mean |grad|")
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=90, fontsize=7)
    if log_scale:
        ax.set_yscale("log")
    ax.set_ylabel("gradient magnitude")
    ax.set_title("Gradient flow per layer")
    ax.legend(fontsize=8)
    return ax


def plot_attention(weights, x_labels: Sequence[str] | None = None, y_labels: Sequence[str] | None = None,
                   ax=None, title: str = "attention", cmap: str = "viridis"):
    """Heat map of a (Tq, Tk) attention matrix (a Tensor or array; leading size-1 dims are dropped).
    Rows are queries, columns keys. Returns the axes."""
    matrix = _to_numpy(weights)
    while matrix.ndim > 2 and matrix.shape[0] == 1:
        matrix = matrix[0]
    if matrix.ndim != 2:
        raise ValueError(f"plot_attention: expected a (Tq, Tk) matrix, got shape {matrix.shape}")
    _, plt = _pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    image = ax.imshow(matrix, cmap=cmap, vmin=0.0, aspect="auto")
    ax.figure.colorbar(image, ax=ax, fraction=0.046)
    if x_labels is not None:
        ax.set_xticks(range(len(x_labels)))
        ax.set_xticklabels(list(x_labels), rotation=90)
    if y_labels is not None:
        ax.set_yticks(range(len(y_labels)))
        ax.set_yticklabels(list(y_labels))
    ax.set_xlabel("key")
    ax.set_ylabel("query")
    ax.set_title(title)
    return ax
