"""Checking analytic gradients against finite differences.

``gradcheck(fn, inputs)`` perturbs each element of each floating input by ±eps and
compares the central difference (f(x+eps) - f(x-eps)) / 2eps with the gradient that
backward computes, for every output element (the full Jacobian, so use small inputs;
``fast_mode=True`` compares along one random direction instead, Chainer's trick for
large inputs). On failure it raises ``GradcheckError`` naming the input, the element,
both values and the tolerance.
"""
from __future__ import annotations

import numpy as np



class GradcheckError(RuntimeError):
    pass


def _as_tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _differentiable_inputs(inputs):
    from ..tensor import Tensor
    return [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]


def _check_float64(inputs):
    from ..tensor import Tensor
    for i, t in enumerate(inputs):
        if isinstance(t, Tensor) and t.requires_grad and t.dtype != np.float64:
            raise GradcheckError(f"gradcheck: input {i} has dtype {t.dtype}; finite differences need float64 "
                                 "inputs (use .double())")


def _outputs(fn, inputs):
    from ..tensor import Tensor
    return [o for o in _as_tuple(fn(*inputs)) if isinstance(o, Tensor) and o.dtype.kind == "f"]


def _numeric_jacobian_column(fn, inputs, index, flat_pos, eps):
    """d outputs / d inputs[index].flat[flat_pos] by central differences."""
    data = inputs[index].data
    position = np.unravel_index(flat_pos, data.shape)  # works for non-contiguous inputs too
    original = data[position].item()
    # Evaluated with grad mode on: fn may itself take gradients (gradgradcheck).
    data[position] = original + eps
    plus = [o.data.copy() for o in _outputs(fn, inputs)]
    data[position] = original - eps
    minus = [o.data.copy() for o in _outputs(fn, inputs)]
    data[position] = original
    return [((p - m) / (2 * eps)).reshape(-1) for p, m in zip(plus, minus)]


def _analytic_rows(fn, inputs, wrt):
    """For each output element, the gradient of that element w.r.t. each input in ``wrt``."""
    from . import grad as autograd_grad
    outputs = _outputs(fn, inputs)
    rows = []  # rows[o][k] -> array (numel(out o), numel(input wrt[k]))
    for out in outputs:
        per_input = [np.zeros((out.numel(), inputs[i].numel())) for i in wrt]
        for k in range(out.numel()):
            seed = out.xp.zeros(out.shape, dtype=out.dtype)
            seed.reshape(-1)[k] = 1.0
            grads = autograd_grad([out], [inputs[i] for i in wrt], grad_outputs=[_wrap(seed, out)],
                                  retain_graph=True, allow_unused=True)
            for j, g in enumerate(grads):
                if g is not None:
                    per_input[j][k] = np.asarray(g.numpy(), dtype=np.float64).reshape(-1)
        rows.append(per_input)
    return outputs, rows


def _wrap(array, like):
    from ..tensor import Tensor
    return Tensor._make(array, like.device)


def gradcheck(fn, inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              raise_exception: bool = True, fast_mode: bool = False, seed: int = 0) -> bool:
    """Compare backward's gradients of ``fn(*inputs)`` with central finite differences."""
    inputs = _as_tuple(inputs)
    _check_float64(inputs)
    wrt = _differentiable_inputs(inputs)
    if not wrt:
        raise GradcheckError("gradcheck: none of the inputs requires grad")
    try:
        if fast_mode:
            _check_random_direction(fn, inputs, wrt, eps, atol, rtol, seed)
        else:
            _check_full_jacobian(fn, inputs, wrt, eps, atol, rtol)
    except GradcheckError:
        if raise_exception:
            raise
        return False
    return True


def _check_full_jacobian(fn, inputs, wrt, eps, atol, rtol):
    outputs, rows = _analytic_rows(fn, inputs, wrt)
    for k, i in enumerate(wrt):
        for pos in range(inputs[i].numel()):
            numeric_cols = _numeric_jacobian_column(fn, inputs, i, pos, eps)
            for o, numeric in enumerate(numeric_cols):
                analytic = rows[o][k][:, pos]
                bad = np.abs(analytic - numeric) > atol + rtol * np.abs(numeric)
                if bad.any():
                    j = int(np.argmax(bad))
                    element = np.unravel_index(pos, inputs[i].shape)
                    raise GradcheckError(
                        f"gradcheck: Jacobian mismatch for output {o} element {j} with respect to input {i} "
                        f"(shape {inputs[i].shape}) element {tuple(int(e) for e in element)}:\n"
                        f"  analytic {analytic[j]!r}\n  numeric  {numeric[j]!r}\n"
                        f"  tolerance atol={atol} + rtol={rtol} * |numeric|")


def _check_random_direction(fn, inputs, wrt, eps, atol, rtol, seed):
    """Compare u^T J v with the directional finite difference, for random u and v."""
    from . import grad as autograd_grad
    rng = np.random.default_rng(seed)
    directions = {i: rng.standard_normal(inputs[i].shape) for i in wrt}
    outputs = _outputs(fn, inputs)
    weights = [rng.standard_normal(o.shape) for o in outputs]
    grads = autograd_grad(outputs, [inputs[i] for i in wrt],
                          grad_outputs=[_wrap(o.xp.asarray(w), o) for w, o in zip(weights, outputs)],
                          allow_unused=True)
    analytic = sum(float(np.sum(g.numpy() * directions[i])) for g, i in zip(grads, wrt) if g is not None)
    originals = {i: inputs[i].data.copy() for i in wrt}

    def value_at(step):
        for i in wrt:
            inputs[i].data[...] = originals[i] + step * directions[i]
        outs = _outputs(fn, inputs)
        return sum(float(np.sum(o.numpy() * w)) for o, w in zip(outs, weights))

    numeric = (value_at(eps) - value_at(-eps)) / (2 * eps)
    for i in wrt:
        inputs[i].data[...] = originals[i]
    if abs(analytic - numeric) > atol + rtol * abs(numeric):
        raise GradcheckError(f"gradcheck (random direction): u^T J v analytic {analytic!r} vs numeric {numeric!r} "
                             f"for inputs {wrt}; tolerance atol={atol} + rtol={rtol} * |numeric|")


def gradgradcheck(fn, inputs, grad_outputs=None, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
                  raise_exception: bool = True, seed: int = 0) -> bool:
    """Check second derivatives: gradcheck the function (inputs, v) -> J(inputs)^T v, whose
    backward is the double backward of ``fn``."""
    from . import grad as autograd_grad
    from ..tensor import Tensor
    inputs = _as_tuple(inputs)
    _check_float64(inputs)
    wrt = _differentiable_inputs(inputs)
    outputs = _outputs(fn, inputs)
    rng = np.random.default_rng(seed)
    if grad_outputs is None:
        grad_outputs = [Tensor._make(o.xp.asarray(rng.standard_normal(o.shape)), o.device).requires_grad_()
                        for o in outputs]
    n = len(inputs)

    def first_derivative(*args):
        ins, vs = args[:n], args[n:]
        outs = _outputs(fn, ins)
        grads = autograd_grad(outs, [ins[i] for i in wrt], grad_outputs=list(vs), create_graph=True,
                              allow_unused=True)
        return tuple(g for g in grads if g is not None)

    return gradcheck(first_derivative, tuple(inputs) + tuple(grad_outputs), eps=eps, atol=atol, rtol=rtol,
                     raise_exception=raise_exception)
