"""tinynn.viz: DOT text of autograd graphs, rendering, gradient-flow and attention plots."""
from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

import tinynn as tn
from tinynn import viz


def _small_graph():
    x = tn.randn(3, 4, requires_grad=True)
    w = tn.randn(4, 2, requires_grad=True)
    return x, w, (x @ w).relu().sum()


def _edges(dot: str) -> list[tuple[str, str]]:
    return re.findall(r"^\s+(\w+) -> (\w+);$", dot, flags=re.M)


def _label_of(dot: str, node: str) -> str:
    return re.search(rf'^\s+{node} \[label="([^"]*)"', dot, flags=re.M).group(1)


def test_make_dot_lists_ops_leaves_shapes_and_edges():
    x, w, loss = _small_graph()
    dot = viz.make_dot(loss, {"x": x, "w": w})
    assert dot.startswith("digraph") and dot.rstrip().endswith("}")
    labels = dict(re.findall(r'^\s+(\w+) \[label="([^"]*)"', dot, flags=re.M))
    texts = list(labels.values())
    assert any(t.startswith("SumBackward") for t in texts)
    assert any(t.startswith("ReluBackward\\n-> (3, 2)") for t in texts)
    assert any(t.startswith("MatmulBackward") for t in texts)
    assert "x\\n(3, 4)" in texts and "w\\n(4, 2)" in texts
    # sum <- relu <- matmul <- {x, w}, and the sum feeds the output: 5 edges.
    assert len(_edges(dot)) == 5
    assert "|grad|" not in dot  # no gradients yet


def test_make_dot_shows_gradient_norms_after_backward():
    x, w, loss = _small_graph()
    loss.backward()
    dot = viz.make_dot(loss, {"x": x, "w": w})
    leaf = [n for n, label in re.findall(r'^\s+(\w+) \[label="([^"]*)"', dot, flags=re.M) if label.startswith("w\\n")]
    label = _label_of(dot, leaf[0])
    shown = float(label.split("|grad| = ")[1])
    assert shown == pytest.approx(np.linalg.norm(w.grad.numpy()), rel=1e-2)


def test_make_dot_accepts_named_parameters_iterator_and_shared_nodes():
    x = tn.randn(2, 2, requires_grad=True)
    y = x * x + x  # x feeds two ops: one leaf node, three edges into it or its users
    dot = viz.make_dot(y, iter([("input", x)]))
    assert dot.count('label="input\\n(2, 2)"') == 1


def test_make_dot_deep_chain_is_iterative():
    x = tn.randn(2, requires_grad=True)
    y = x
    for _ in range(3000):
        y = y * 1.0
    dot = viz.make_dot(y.sum())
    assert dot.count("MulBackward") == 3000


def test_render_dot_without_graphviz_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="graphviz"):
        viz.render_dot("digraph {}", str(tmp_path / "g.svg"))
    with pytest.raises(ValueError, match="format"):
        viz.render_dot("digraph {}", str(tmp_path / "g.gif"), format="gif")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_render_dot_writes_svg(tmp_path):
    _, _, loss = _small_graph()
    path = viz.render_dot(viz.make_dot(loss), str(tmp_path / "graph.svg"))
    assert open(path).read().lstrip().startswith(("<?xml", "<svg"))


def test_plot_grad_flow_and_attention():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    w1 = tn.randn(4, 3, requires_grad=True)
    b1 = tn.randn(3, requires_grad=True)
    w2 = tn.randn(3, 2, requires_grad=True)
    ((tn.randn(5, 4) @ w1 + b1).tanh() @ w2).sum().backward()
    named = [("w1", w1), ("b1", b1), ("w2", w2)]
    stats = viz.gradient_stats(named)
    assert [s[0] for s in stats] == ["w1", "w2"]  # biases (1-D) are skipped
    assert stats[0][1] == pytest.approx(np.abs(w1.grad.numpy()).mean())
    ax = viz.plot_grad_flow(named)
    assert len(ax.patches) == 4  # a max bar and a mean bar per weight
    plt.close("all")

    weights = tn.softmax(tn.randn(1, 5, 6), -1)
    ax = viz.plot_attention(weights, x_labels=list("abcdef"), y_labels=list("vwxyz"))
    assert ax.images[0].get_array().shape == (5, 6)
    with pytest.raises(ValueError, match="Tq, Tk"):
        viz.plot_attention(tn.randn(2, 3, 4))
    plt.close("all")


def test_plot_grad_flow_without_gradients_raises():
    w = tn.randn(2, 2, requires_grad=True)
    with pytest.raises(ValueError, match="backward"):
        viz.plot_grad_flow([("w", w)])
