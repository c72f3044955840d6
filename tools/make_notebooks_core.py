"""Write the core teaching notebooks (01 autograd from the inside, 02 gradient checking).

    python tools/make_notebooks_core.py

The notebooks are saved WITHOUT outputs: CI executes them (tests/test_notebooks.py), so
what a reader sees is always what the current code does. Edit the cells here, not in
the .ipynb files.
"""
from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def md(text: str):
    return new_markdown_cell(text.strip())


def code(text: str):
    return new_code_cell(text.strip())


AUTOGRAD_FROM_THE_INSIDE = [
    md("""
# 01 · Autograd from the inside

`loss.backward()` fills `.grad` of every leaf. This notebook opens it up:

1. build a small expression and look at the **graph** it leaves behind,
2. put the graph's nodes in the **order the backward walk visits them**,
3. run the backward pass **by hand**, node by node, and compare with `.backward()`,
4. confirm the gradients with **finite differences** (`gradcheck`).

Everything here is public API: `Tensor.grad_fn`, each node's `next_nodes`, and each op's
`backward(ctx, grad_output)`.
"""),
    code("""
import numpy as np
import tinynn as tn

tn.manual_seed(0)
a = tn.tensor([1.0, 2.0, 3.0], requires_grad=True)
b = tn.tensor([0.5, -1.0, 2.0], requires_grad=True)

c = a * b          # Mul
d = c.sin()        # Sin
e = d + a          # Add: `a` is used twice, its gradients must add up
loss = e.sum()     # Sum
loss
"""),
    md("""
## The graph

Every tensor made by an op remembers the node that made it: `grad_fn`. A node points to
the nodes of its inputs through `next_nodes`, a tuple of `(node, output_index)` edges,
one per tensor input. A leaf that requires grad is represented by an `AccumulateGrad`
node: its job is to add the incoming gradient into `leaf.grad`.

Nodes point **backwards only** (from outputs to inputs), so nothing keeps a graph alive
once its output is gone.
"""),
    code("""
def describe(node):
    if type(node).__name__ == "AccumulateGrad":
        leaf = node.variable
        return f"AccumulateGrad(leaf {'a' if leaf is a else 'b'})"
    return type(node).__name__

print("loss.grad_fn =", describe(loss.grad_fn))
for node, index in loss.grad_fn.next_nodes:
    print("  its input comes from", describe(node), "output", index)
"""),
    md("""
## The order of the backward walk

A node may run its backward only once **all** the gradients flowing into it have arrived:
`Add` must wait for nothing, but `AccumulateGrad(a)` receives from both `Add` and `Mul`.
That is a topological order of the reversed graph. We find it the way the engine does,
without recursion (a recursive walk overflows Python's stack on deep graphs):

1. collect every node reachable from `loss.grad_fn` with an explicit stack, counting how
   many edges point into each node;
2. start from the root; when a node has run, decrement the count of each of its inputs'
   nodes, and a node whose count reaches zero is ready.
"""),
    code("""
def reachable_with_counts(root):
    counts, stack, seen = {}, [root], {root}
    while stack:
        node = stack.pop()
        for edge in node.next_nodes:
            if edge is None:            # an input that needs no gradient
                continue
            child = edge[0]
            counts[child] = counts.get(child, 0) + 1
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return counts

def backward_order(root):
    counts = reachable_with_counts(root)
    order, ready = [], [root]
    while ready:
        node = ready.pop()
        order.append(node)
        for edge in node.next_nodes:
            if edge is None:
                continue
            counts[edge[0]] -= 1
            if counts[edge[0]] == 0:
                ready.append(edge[0])
    return order

order = backward_order(loss.grad_fn)
for step, node in enumerate(order):
    print(step, describe(node))
"""),
    md("""
## Running the backward pass by hand

Each op is a `Function` whose static `backward(ctx, grad_output)` turns the gradient of
its output into one gradient per forward argument (`None` for non-tensor arguments such
as `Sum`'s `dim`). The node **is** the `ctx`, so we call `node.backward(node, grad)`.

We keep one gradient buffer per node, walk `order`, and for each node:

* call its backward on the gradient accumulated so far,
* keep the gradients of its tensor inputs (`node.tensor_positions` says which arguments
  were tensors) and add each into the buffer of the input's node: this addition is where
  `a`'s two contributions meet,
* at an `AccumulateGrad` node, the buffer **is** the leaf's gradient.

(The real engine also sums a broadcast gradient back to the input's shape; nothing is
broadcast here.)
"""),
    code("""
buffers = {loss.grad_fn: tn.ones(())}         # d loss / d loss = 1
by_hand = {}
with tn.no_grad():                            # as the engine: backward records no graph
    for node in order:                        # (unless backward(create_graph=True))
        grad = buffers.pop(node)
        if type(node).__name__ == "AccumulateGrad":
            by_hand['a' if node.variable is a else 'b'] = grad
            continue
        input_grads = node.backward(node, grad)
        if not isinstance(input_grads, tuple):
            input_grads = (input_grads,)
        if len(input_grads) != len(node.next_nodes):   # one per argument: keep the tensors' ones
            input_grads = [input_grads[p] for p in node.tensor_positions]
        for (child, _), g in zip(node.next_nodes, input_grads):
            buffers[child] = g if child not in buffers else buffers[child] + g
            print(f"{describe(node):>22} -> {describe(child):<22} gradient {np.round(g.numpy(), 4)}")

by_hand
"""),
    md("""
By the chain rule: `loss = sum(sin(a*b) + a)`, so
`dloss/da = cos(a*b) * b + 1` and `dloss/db = cos(a*b) * a`. The engine must agree:
"""),
    code("""
loss.backward()
print("engine  a.grad:", a.grad.numpy(), " b.grad:", b.grad.numpy())
print("by hand       :", by_hand['a'].numpy(), "        ", by_hand['b'].numpy())
A, B = a.numpy(), b.numpy()
print("formula       :", np.cos(A * B) * B + 1, "        ", np.cos(A * B) * A)
assert np.allclose(a.grad.numpy(), by_hand['a'].numpy()) and np.allclose(b.grad.numpy(), by_hand['b'].numpy())
"""),
    md("""
Calling `backward()` again would fail: after the walk each node frees what it saved for
its backward (here `Mul` kept `a` and `b`, `Sin` kept `c`), unless you pass
`retain_graph=True`. And calling backward on a new graph **adds** into `.grad`, as in
PyTorch; set `a.grad = None` (or use an optimizer's `zero_grad()`) between steps.
"""),
    code("""
try:
    loss.backward()
except RuntimeError as error:
    print("RuntimeError:", error)
"""),
    md("""
## Confirming with finite differences

`gradcheck` perturbs each input element by ±eps in float64 and compares the central
difference with what backward computes, for every output element. It raises if any
entry disagrees (notebook 02 looks at it closely).
"""),
    code("""
from tinynn.autograd import gradcheck, gradgradcheck

def expression(a, b):
    return ((a * b).sin() + a).sum()

inputs = (a.detach().double().requires_grad_(), b.detach().double().requires_grad_())
print("gradcheck:", gradcheck(expression, inputs))
print("gradgradcheck (second derivatives):", gradgradcheck(expression, inputs))
"""),
]


GRADIENT_CHECKING = [
    md("""
# 02 · Gradient checking

A backward pass is a hand-written formula, and formulas have bugs. The independent
check is the definition of the derivative: nudge an input, watch the output.

1. forward vs central differences, and how their error depends on the step `eps`
   in float32 and float64;
2. checking a custom op with `gradcheck` (and its second derivative with `gradgradcheck`);
3. catching a wrong backward;
4. the cheap random-direction check for big inputs.
"""),
    md("""
## Finite differences and their error

* forward difference: `(f(x + eps) - f(x)) / eps`, error about `eps/2 · f''(x)` (first order)
* central difference: `(f(x + eps) - f(x - eps)) / (2 eps)`, error about `eps²/6 · f'''(x)` (second order)

Both also suffer **rounding**: `f(x ± eps)` is only known to about `u · |f|`, where `u` is the
unit roundoff (`6e-8` in float32, `1.1e-16` in float64), and dividing by `eps` magnifies
that to `u / eps`. Small `eps` is not better: the total error is smallest near
`eps ≈ sqrt(u)` (forward) or `eps ≈ u^(1/3)` (central).
"""),
    code("""
import numpy as np
import matplotlib.pyplot as plt
import tinynn as tn

x0 = 1.0
exact = np.cos(x0)                 # d/dx sin(x)
steps = np.logspace(-14, -1, 40)

def derivative_errors(dtype):
    f = lambda v: tn.sin(tn.tensor(v, dtype=dtype)).item()
    forward = [abs((f(x0 + h) - f(x0)) / h - exact) for h in steps]
    central = [abs((f(x0 + h) - f(x0 - h)) / (2 * h) - exact) for h in steps]
    return np.array(forward), np.array(central)

errors = {name: derivative_errors(dtype) for name, dtype in [("float32", tn.float32), ("float64", tn.float64)]}
for name, (forward, central) in errors.items():
    print(f"{name}: best forward error {forward.min():.1e} at eps={steps[forward.argmin()]:.0e}, "
          f"best central error {central.min():.1e} at eps={steps[central.argmin()]:.0e}")
"""),
    code("""
fig, ax = plt.subplots(figsize=(7, 4))
for (name, (forward, central)), color in zip(errors.items(), ["tab:red", "tab:blue"]):
    ax.loglog(steps, np.maximum(forward, 1e-18), "--", color=color, label=f"forward, {name}")
    ax.loglog(steps, np.maximum(central, 1e-18), "-", color=color, label=f"central, {name}")
ax.set_xlabel("step eps")
ax.set_ylabel("|finite difference - cos(1)|")
ax.set_title("d/dx sin(x) at x = 1")
ax.legend()
plt.show()
"""),
    md("""
Read the plot from the right: the error first falls with `eps` (slope 1 for forward,
slope 2 for central), then rounding takes over and it rises again as `u / eps`. In
float32 the best forward difference is good to about `1e-4` and the best central one
to about `1e-6`, at a step that depends on the function: too coarse to tell a right
gradient from a slightly wrong one reliably. So `gradcheck` always works in **float64** with
central differences and `eps = 1e-6` (near float64's sweet spot, `u^(1/3) ≈ 5e-6`).
"""),
    md("""
## Checking a custom op

A user-defined op is a `Function`: `forward` works on raw arrays, `backward` returns one
gradient per input. Here is softplus, `log(1 + e^x)`, whose derivative is the sigmoid.
Writing the backward with tinynn ops (not raw arrays) makes it differentiable too, so
`gradgradcheck` can verify second derivatives.
"""),
    code("""
from tinynn.autograd import Function, GradcheckError, gradcheck, gradgradcheck

class Softplus(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.logaddexp(0.0, x)          # log(1 + e^x) without overflow

    @staticmethod
    def backward(ctx, grad):                 # d softplus(x) = sigmoid(x) dx
        (x,) = ctx.saved_tensors
        return grad * x.sigmoid()

x = tn.randn(3, 4, dtype=tn.float64, requires_grad=True)
print("gradcheck:", gradcheck(Softplus.apply, (x,)))
print("gradgradcheck:", gradgradcheck(Softplus.apply, (x,)))
"""),
    md("""
## Catching a wrong backward

A classic slip: the derivative of softplus written as `tanh` instead of the sigmoid
(both are S-shaped). `gradcheck` raises, naming the input, the element, both values and
the tolerance; that is where to start debugging.
"""),
    code("""
class WrongSoftplus(Softplus):
    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * x.tanh()               # wrong derivative

try:
    gradcheck(WrongSoftplus.apply, (x,))
except GradcheckError as error:
    print(error)
"""),
    md("""
## Big inputs: one random direction

The full check costs two evaluations per input element. For big inputs, compare one
number instead: for random `u` (output weights) and `v` (input direction),
`uᵀ J v` from backward against the directional finite difference
`(uᵀf(x + eps v) - uᵀf(x - eps v)) / 2 eps` (Chainer's trick). A wrong backward is
still caught with probability one.
"""),
    code("""
big = tn.randn(200, 300, dtype=tn.float64, requires_grad=True)
print("right backward, fast mode:", gradcheck(Softplus.apply, (big,), fast_mode=True))
try:
    gradcheck(WrongSoftplus.apply, (big,), fast_mode=True)
except GradcheckError as error:
    print(error)
"""),
]


def write(name: str, cells) -> Path:
    notebook = new_notebook(cells=cells, metadata={
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    })
    path = NOTEBOOKS / name
    path.parent.mkdir(exist_ok=True)
    nbformat.write(notebook, path)
    return path


if __name__ == "__main__":
    for name, cells in [("01_autograd_from_the_inside.ipynb", AUTOGRAD_FROM_THE_INSIDE),
                        ("02_gradient_checking.ipynb", GRADIENT_CHECKING)]:
        print("wrote", write(name, cells))
