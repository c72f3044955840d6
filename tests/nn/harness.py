"""One harness for every layer and loss: a case names a constructor that works for both
``torch.nn`` and ``tinynn.nn``, and how to make its inputs. From it the tests check
against PyTorch (state_dict keys and shapes, outputs, input and parameter gradients,
train and eval mode, buffers after a few steps) and run ``gradcheck`` in float64."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

import tinynn as tn
import tinynn.nn as tnn


@dataclass
class Input:
    """One forward argument: ``make(rng)`` gives a NumPy array; floats are differentiable
    unless ``grad=False``."""
    make: Callable
    grad: bool = True


def randn(*shape, scale: float = 1.0, offset: float = 0.0) -> Input:
    return Input(lambda rng: rng.standard_normal(shape) * scale + offset)


def uniform(*shape, low: float = 0.0, high: float = 1.0, grad: bool = True) -> Input:
    return Input(lambda rng: rng.uniform(low, high, shape), grad=grad)


def integers(high: int, *shape, low: int = 0) -> Input:
    return Input(lambda rng: rng.integers(low, high, shape).astype(np.int64), grad=False)


def constant(array_fn: Callable, grad: bool = False) -> Input:
    return Input(lambda rng: array_fn(rng), grad=grad)


@dataclass
class Case:
    """``make(nn)`` builds the module from either library's ``nn`` namespace."""
    name: str
    make: Callable
    inputs: list
    train_eval_differ: bool = False   # compare eval mode separately (BatchNorm, Dropout)
    random: bool = False              # output is random in train mode: compare in eval mode only
    steps: int = 1                    # forward/backward steps (buffers such as running stats evolve)
    gradcheck: bool = True
    rtol32: float = 1e-4
    tags: tuple = field(default_factory=tuple)

    def __str__(self) -> str:
        return self.name


def _torch_dtype(torch, dtype):
    return {np.float32: torch.float32, np.float64: torch.float64}[np.dtype(dtype).type]


def build_pair(case: Case, dtype, seed: int = 0):
    """A torch module and a tinynn module with the same constructor arguments and weights."""
    import torch
    torch.manual_seed(seed)
    torch_module = case.make(torch.nn).to(_torch_dtype(torch, dtype))
    tn_module = case.make(tnn).to(dtype)
    return torch_module, tn_module


def make_inputs(case: Case, dtype, seed: int = 0):
    rng = np.random.default_rng(seed)
    arrays = []
    for spec in case.inputs:
        a = np.asarray(spec.make(rng))
        if a.dtype.kind == "f":
            a = a.astype(dtype)
        arrays.append((a, spec.grad and a.dtype.kind == "f"))
    return arrays


def as_tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def assert_close(actual, expected, rtol: float, what: str, atol_scale: float = 1.0):
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != torch's {expected.shape}"
    if expected.dtype.kind in "iub":
        np.testing.assert_array_equal(actual, expected, err_msg=what)
        return
    # Relative tolerance, plus an absolute floor relative to the values' scale (for entries near 0).
    scale = max(float(np.abs(expected).max()) if expected.size else 0.0, 1.0) * atol_scale
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale, err_msg=what)


def run_parity(case: Case, dtype, train: bool = True) -> None:
    """Forward and backward on both libraries and compare everything observable."""
    import torch
    rtol = 1e-6 if np.dtype(dtype) == np.float64 else case.rtol32
    torch_module, tn_module = build_pair(case, dtype)
    torch_sd = torch_module.state_dict()
    tn_sd = tn_module.state_dict()
    assert list(tn_sd.keys()) == list(torch_sd.keys()), "state_dict keys differ from PyTorch's"
    for key in torch_sd:
        assert tuple(tn_sd[key].shape) == tuple(torch_sd[key].shape), f"{key}: shape differs"
        assert tn_sd[key].dtype == torch_sd[key].numpy().dtype, f"{key}: dtype differs"
    result = tn_module.load_state_dict({k: v.detach().numpy() for k, v in torch_sd.items()})
    assert not result.missing_keys and not result.unexpected_keys
    torch_module.train(train)
    tn_module.train(train)
    for step in range(case.steps):
        arrays = make_inputs(case, dtype, seed=step)
        t_inputs = [torch.tensor(a, requires_grad=g) for a, g in arrays]
        n_inputs = [tn.tensor(a, requires_grad=g) for a, g in arrays]
        t_out = as_tuple(torch_module(*t_inputs))
        n_out = as_tuple(tn_module(*n_inputs))
        assert len(t_out) == len(n_out)
        for i, (a, e) in enumerate(zip(n_out, t_out)):
            assert_close(a.numpy(), e.detach().numpy(), rtol, f"{case} output {i} (step {step}, train={train})")
        # Backward from the first output with a random upstream gradient.
        rng = np.random.default_rng(100 + step)
        upstream = rng.standard_normal(t_out[0].shape).astype(dtype)
        if not t_out[0].requires_grad:
            continue
        torch_module.zero_grad()
        tn_module.zero_grad()
        t_out[0].backward(torch.tensor(upstream))
        n_out[0].backward(tn.tensor(upstream))
        for i, (tt, nt) in enumerate(zip(t_inputs, n_inputs)):
            if tt.requires_grad:
                assert nt.grad is not None, f"{case}: input {i} got no gradient"
                assert_close(nt.grad.numpy(), tt.grad.numpy(), rtol, f"{case} grad of input {i}")
        t_params = dict(torch_module.named_parameters())
        for name, p in tn_module.named_parameters():
            tp = t_params[name]
            if tp.grad is None:
                assert p.grad is None or not np.any(p.grad.numpy()), f"{case}: {name} has a gradient, torch's none"
                continue
            assert p.grad is not None, f"{case}: parameter {name} got no gradient"
            assert_close(p.grad.numpy(), tp.grad.numpy(), rtol, f"{case} grad of {name}")
    # Buffers (running statistics) after the steps.
    torch_sd = torch_module.state_dict()
    for key, value in tn_module.state_dict().items():
        assert_close(value.numpy(), torch_sd[key].detach().numpy(), rtol,
                     f"{case} state {key} after {case.steps} steps")


def _float64_function_of_inputs_and_params(case: Case):
    """A float64 instance of the case's module as fn(*inputs, *params), and those tensors."""
    tn.manual_seed(0)
    module = case.make(tnn).double()
    if case.random:
        module.eval()
    arrays = make_inputs(case, np.float64)
    inputs = [tn.tensor(a, requires_grad=g) for a, g in arrays]
    params = [p for p in module.parameters() if p.requires_grad]
    n = len(inputs)

    def fn(*args):
        return module(*args[:n])
    return fn, inputs + params


def run_gradcheck(case: Case) -> None:
    """Finite differences in float64 for the inputs and the parameters."""
    from tinynn.autograd import gradcheck
    fn, tensors = _float64_function_of_inputs_and_params(case)
    assert gradcheck(fn, tensors, eps=1e-6, atol=1e-5, rtol=1e-3)


def run_gradgradcheck(case: Case) -> None:
    """Second derivatives (double backward) by finite differences of the first, in float64."""
    from tinynn.autograd import gradgradcheck
    fn, tensors = _float64_function_of_inputs_and_params(case)
    assert gradgradcheck(fn, tensors)
