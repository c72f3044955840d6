"""The ``Optimizer`` base class: parameter groups, per-parameter state, state dicts.

An optimizer holds ``param_groups``, a list of dicts. Each group has its own
``"params"`` (a list of tensors) and its own copy of every hyperparameter
(``"lr"``, ``"momentum"``, ...), filled from the optimizer's ``defaults`` where the
group does not say otherwise. ``state[p]`` is a dict of per-parameter buffers
(``"step"``, ``"exp_avg"``, ...), created lazily on the first ``step()``.

Subclasses implement ``step()`` by updating the raw arrays ``p.data`` in place from
``p.grad.data``. Buffers in ``state`` are raw arrays (NumPy or CuPy, on the
parameter's device), so an update allocates no Tensors.

``state_dict()`` uses PyTorch's layout: parameters are replaced by their position
(counting through all groups in order), so a checkpoint does not depend on object
identity::

    {"state": {0: {"step": 3, "exp_avg": Tensor, ...}, 1: {...}},
     "param_groups": [{"lr": 0.01, ..., "params": [0, 1]}]}
"""
from __future__ import annotations

import functools
import warnings
from collections.abc import Iterable, Iterator, MutableMapping
from typing import Any, Callable, Union

import numpy as np

from ..backend import kernels
from ..backend.device import device_of_array, get_array_module
from ..autograd.grad_mode import enable_grad
from ..tensor import Tensor

__all__ = ["Optimizer", "ParamsT"]

# what an optimizer accepts: tensors, (name, tensor) pairs, or parameter-group dicts
ParamsT = Union[Iterable[Tensor], Iterable[tuple[str, Tensor]], Iterable[dict[str, Any]]]


class ParamState(MutableMapping):
    """``optimizer.state``: a dict keyed by parameter *identity*.

    Tensors compare elementwise (``a == b`` is a tensor), so they cannot be keys of
    an ordinary dict by value; this mapping keys them by ``id`` and keeps the
    parameter alive next to its state. ``state[p]`` on a new ``p`` creates ``{}``.
    """

    def __init__(self) -> None:
        self._entries: dict[int, tuple[Tensor, dict]] = {}

    def __getitem__(self, param: Tensor) -> dict:
        entry = self._entries.get(id(param))
        if entry is None:
            entry = self._entries[id(param)] = (param, {})
        return entry[1]

    def __setitem__(self, param: Tensor, value: dict) -> None:
        self._entries[id(param)] = (param, value)

    def __delitem__(self, param: Tensor) -> None:
        del self._entries[id(param)]

    def __contains__(self, param: object) -> bool:
        return id(param) in self._entries

    def __iter__(self) -> Iterator[Tensor]:
        return (param for param, _ in self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"ParamState({len(self)} parameters)"


class Optimizer:
    """Base class of all optimizers (PyTorch's ``torch.optim.Optimizer``).

    Args:
        params: an iterable of tensors, or of dicts that each define a parameter
            group (``{"params": [...], "lr": ...}``).
        defaults: the default value of every hyperparameter, used by groups that
            do not set it.
    """

    def __init_subclass__(cls, **kwargs) -> None:
        """Make every subclass's ``step`` count its calls in ``_step_count``, so the LR
        schedulers can warn when they are stepped before the optimizer (as PyTorch does)."""
        super().__init_subclass__(**kwargs)
        if "step" in cls.__dict__:
            cls.step = _counting_calls(cls.__dict__["step"])

    def __init__(self, params: ParamsT, defaults: dict[str, Any]) -> None:
        self.defaults = dict(defaults)
        self.state = ParamState()
        self.param_groups: list[dict[str, Any]] = []
        self._step_count = 0  # how many times step() ran; the LR schedulers check the call order

        if isinstance(params, Tensor):
            raise TypeError("optimizer: params must be an iterable of Tensors or dicts, but got a single "
                            "Tensor (wrap it in a list)")
        if isinstance(params, (set, frozenset)):
            raise TypeError("optimizer: params must be an ordered iterable (a list), not a set: the order "
                            "of parameters must be the same between runs for state_dict to work")
        param_groups = list(params)
        if len(param_groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for group in param_groups:
            self.add_param_group(group)

    # ------------------------------------------------------------------ groups

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters with its own hyperparameters (e.g. a new layer to fine-tune)."""
        if not isinstance(param_group, dict):
            raise TypeError(f"optimizer: a parameter group must be a dict, got {type(param_group).__name__}")
        group = dict(param_group)
        params = group.get("params")
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError("optimizer: the parameters of a group must be an ordered iterable (a list), not a set")
        elif params is None:
            raise ValueError("optimizer: a parameter group needs a 'params' entry")
        params = list(params)
        if any(isinstance(p, tuple) for p in params):  # model.named_parameters(): (name, tensor) pairs
            if not all(isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str) for p in params):
                raise ValueError("optimizer: all parameters of a group must be given with names (name, tensor) "
                                 "or all without names")
            group["param_names"] = [name for name, _ in params]
            params = [p for _, p in params]
        if self.param_groups and ("param_names" in group) != ("param_names" in self.param_groups[0]):
            raise ValueError("optimizer: all parameter groups must be given with parameter names, or all without")
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, but parameter {i} of the group is a "
                                f"{type(p).__name__}")
            if not getattr(p, "is_leaf", True):
                raise ValueError(f"optimizer can't optimize a non-leaf Tensor (parameter {i} of the group has a "
                                 "grad_fn); use a leaf tensor, e.g. x.detach().requires_grad_()")
        if len({id(p) for p in params}) != len(params):
            warnings.warn("optimizer contains a parameter group with duplicate parameters; in future, this "
                          "will cause an error", UserWarning, stacklevel=3)
        group["params"] = params

        for name, default in self.defaults.items():
            group.setdefault(name, default)
        self._check_hyperparameters(group)

        existing = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in existing for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(group)

    def _check_hyperparameters(self, group: dict[str, Any]) -> None:
        """Subclasses raise ValueError for invalid hyperparameters of a group."""

    # ------------------------------------------------------------------ stepping

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients of all parameters: to ``None`` (default) or to zeros."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    if p.grad.grad_fn is not None:  # a gradient built with create_graph=True
                        p.grad = p.grad.detach()
                    p.grad.data[...] = 0

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient; returns ``closure()``'s loss if given."""
        raise NotImplementedError

    def _run_closure(self, closure: Callable[[], Any] | None) -> Any:
        """Run ``closure`` with gradients enabled (it usually calls ``backward``); return its loss."""
        if closure is None:
            return None
        with enable_grad():
            return closure()

    def _params_with_grad(self, group: dict[str, Any], op: str) -> Iterator[tuple[Tensor, Callable, Any, Any]]:
        """Yield ``(param, update, param_array, grad_array)`` for each parameter of ``group`` that
        has a gradient; ``update`` is the registered implementation of ``op`` for the parameter's
        device (e.g. the fused Numba kernel on the cpu, the NumPy/CuPy reference otherwise)."""
        for p in group["params"]:
            if p.grad is None:
                continue
            param, grad = p.data, p.grad.data
            if grad.shape != param.shape:
                raise RuntimeError(f"{type(self).__name__}.step: a parameter of shape {tuple(param.shape)} has a "
                                   f"gradient of shape {tuple(grad.shape)}")
            if grad.dtype != param.dtype:  # e.g. a float64 gradient set by hand on a float32 parameter
                grad = grad.astype(param.dtype)
            yield p, kernels.get(op, p.device), param, grad

    # ------------------------------------------------------------------ state dicts

    def state_dict(self) -> dict[str, Any]:
        """The optimizer's state in PyTorch's layout (parameters replaced by their index).

        Buffers are returned as tensors sharing memory with the live state (as in
        PyTorch); ``tn.save`` it, or deep-copy it, to keep a snapshot.
        """
        index_of: dict[int, int] = {}
        packed_groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            for p in group["params"]:
                index_of.setdefault(id(p), len(index_of))
            packed["params"] = [index_of[id(p)] for p in group["params"]]
            packed_groups.append(packed)
        packed_state = {
            index_of[id(p)]: {name: _wrap(value) for name, value in param_state.items()}
            for p, param_state in self.state.items()
            if id(p) in index_of
        }
        return {"state": packed_state, "param_groups": packed_groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state produced by :meth:`state_dict` (of an optimizer with the same groups).

        Buffers are copied onto each parameter's device; floating buffers take the
        parameter's dtype. The hyperparameters of the groups are replaced too.
        """
        if not isinstance(state_dict, dict) or "state" not in state_dict or "param_groups" not in state_dict:
            raise ValueError("load_state_dict: expected a dict with 'state' and 'param_groups' "
                             "(the result of optimizer.state_dict())")
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"loaded state dict has {len(saved_groups)} parameter groups, but the optimizer "
                             f"has {len(self.param_groups)}")
        for i, (group, saved) in enumerate(zip(self.param_groups, saved_groups)):
            if len(group["params"]) != len(saved["params"]):
                raise ValueError(f"loaded state dict contains a parameter group {i} with {len(saved['params'])} "
                                 f"parameters, but the optimizer's group {i} has {len(group['params'])}")

        param_of = {saved_index: p
                    for group, saved in zip(self.param_groups, saved_groups)
                    for saved_index, p in zip(saved["params"], group["params"])}
        self.state = ParamState()
        for index, param_state in state_dict["state"].items():
            if index not in param_of:
                continue  # torch keeps state of unknown ids; it can never be used, so drop it
            p = param_of[index]
            self.state[p] = {name: _to_param_buffer(name, value, p) for name, value in param_state.items()}

        new_groups = []
        for group, saved in zip(self.param_groups, saved_groups):
            new_group = {k: _copy_option(v) for k, v in saved.items() if k != "params"}
            new_group["params"] = group["params"]
            new_groups.append(new_group)
        self.param_groups = new_groups

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(k for k in group if k != "params"):
                lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)


def _counting_calls(step: Callable) -> Callable:
    @functools.wraps(step)
    def counted_step(self, *args, **kwargs):
        self._step_count += 1
        return step(self, *args, **kwargs)
    return counted_step


def _is_array(value: Any) -> bool:
    return isinstance(value, np.ndarray) or type(value).__module__.startswith("cupy")


def _wrap(value: Any) -> Any:
    """A state buffer as the state dict shows it: arrays become tensors (no copy)."""
    return Tensor._make(value, device_of_array(value)) if _is_array(value) else value


def _to_param_buffer(name: str, value: Any, param: Tensor) -> Any:
    """A loaded state value as the optimizer keeps it: a fresh array on ``param``'s device."""
    if isinstance(value, Tensor):
        value = value.data
    if name == "step":  # a count; PyTorch stores it as a float tensor
        return int(float(value))
    if not (_is_array(value) or isinstance(value, np.generic)):
        return value
    xp = get_array_module(param.data)
    if xp is np and _is_array(value) and not isinstance(value, np.ndarray):
        value = value.get()  # a CuPy buffer loaded into a cpu parameter
    dtype = param.data.dtype if np.dtype(value.dtype).kind == "f" else value.dtype
    return xp.array(value, dtype=dtype, copy=True)


def _copy_option(value: Any) -> Any:
    """Hyperparameters are copied so that the loaded optimizer does not share lists with the dict."""
    if isinstance(value, list):
        return [_copy_option(v) for v in value]
    return value


# ---------------------------------------------------------------------- helpers for subclasses

def check_non_negative(optimizer: str, name: str, value: float) -> None:
    """Raise a clear ValueError for a negative (or non-numeric) hyperparameter."""
    if not isinstance(value, (int, float, np.floating, np.integer)) or isinstance(value, bool) or not value >= 0:
        raise ValueError(f"{optimizer}: invalid {name}: {value!r} (expected a number >= 0)")


def check_beta(optimizer: str, name: str, value: float) -> None:
    """Betas and smoothing constants must lie in [0, 1)."""
    if not isinstance(value, (int, float, np.floating, np.integer)) or isinstance(value, bool) \
            or not 0.0 <= value < 1.0:
        raise ValueError(f"{optimizer}: invalid {name}: {value!r} (expected 0 <= {name} < 1)")


def decayed_grad(param, grad, *, weight_decay: float, maximize: bool, lr: float = 0.0,
                 decoupled_weight_decay: bool = False):
    """The gradient a step follows: ``-grad`` when maximizing, then weight decay, either
    classic (L2: ``g + weight_decay * p``) or decoupled (AdamW: ``p *= 1 - lr * weight_decay``
    in place, ``g`` left as is). The caller's ``grad`` array is never modified."""
    xp = get_array_module(param)
    if maximize:
        grad = xp.negative(grad)
    if weight_decay != 0:
        if decoupled_weight_decay:
            param *= 1 - lr * weight_decay                # p * (1 - lr * wd)
        else:
            decayed = xp.multiply(param, weight_decay)
            decayed += grad                               # g + wd * p
            grad = decayed
    return grad


def lerp_(start, end, weight: float, scratch) -> None:
    """``start <- start + weight * (end - start)`` in place, as ``torch.lerp_`` rounds it.

    PyTorch switches formula at weight 0.5 to stay accurate near both ends;
    ``scratch`` is a buffer of ``start``'s shape that gets overwritten.
    """
    xp = get_array_module(start)
    xp.subtract(end, start, out=scratch)
    if abs(weight) < 0.5:
        scratch *= weight
        start += scratch              # start + w * (end - start)
    else:
        scratch *= 1.0 - weight
        xp.subtract(end, scratch, out=start)  # end - (1 - w) * (end - start)
