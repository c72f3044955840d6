"""Pruning by reparametrisation, as ``torch.nn.utils.prune`` does it.

Pruning ``module.weight`` replaces the parameter by
* ``weight_orig`` (a Parameter: the trained values, still learnable),
* ``weight_mask`` (a buffer of 0s and 1s),
and a forward pre-hook that recomputes ``module.weight = weight_orig * weight_mask``
before every call. Pruning the same tensor again prunes among the entries still
alive and multiplies the masks. ``remove(module, "weight")`` makes it permanent:
``weight`` becomes a plain Parameter holding ``weight_orig * weight_mask``.
"""
from __future__ import annotations

import numbers

import numpy as np

from ...backend.random import default_generator
from ...tensor import Tensor
from ..parameter import Parameter


def _prune_count(amount, total: int) -> int:
    """``amount``: a fraction in [0, 1] of ``total``, or an absolute number of entries."""
    if isinstance(amount, numbers.Integral) and not isinstance(amount, bool):
        if amount < 0 or amount > total:
            raise ValueError(f"prune: amount={amount} should be a non-negative int no larger than the number of "
                             f"prunable entries ({total})")
        return int(amount)
    if isinstance(amount, numbers.Real) and 0.0 <= amount <= 1.0:
        return int(round(amount * total))
    raise ValueError(f"prune: amount={amount} should either be a float in [0, 1] or a non-negative integer")


def _unstructured_mask(scores: np.ndarray, amount) -> np.ndarray:
    """Zero the ``amount`` entries with the smallest scores."""
    count = _prune_count(amount, scores.size)
    mask = np.ones(scores.size, dtype=np.float64)
    if count:
        mask[np.argsort(scores.reshape(-1), kind="stable")[:count]] = 0
    return mask.reshape(scores.shape)


def _structured_mask(values: np.ndarray, amount, n, dim: int) -> np.ndarray:
    """Zero whole slices along ``dim`` with the smallest L``n`` norms."""
    dim = dim % values.ndim
    others = tuple(d for d in range(values.ndim) if d != dim)
    flat = np.moveaxis(values, dim, 0).reshape(values.shape[dim], -1)
    norms = np.linalg.norm(flat, ord=n, axis=1) if flat.shape[1] else np.zeros(values.shape[dim])
    count = _prune_count(amount, values.shape[dim])
    keep = np.zeros(values.shape[dim], dtype=np.float64)
    keep_count = values.shape[dim] - count
    if keep_count:
        keep[np.argsort(-norms, kind="stable")[:keep_count]] = 1
    shape = [1] * values.ndim
    shape[dim] = values.shape[dim]
    del others
    return np.broadcast_to(keep.reshape(shape), values.shape).copy()


def _to_numpy(array) -> np.ndarray:
    return array.get() if hasattr(array, "get") else np.asarray(array)


class _PruningHook:
    """The forward pre-hook: ``module.<name> = <name>_orig * <name>_mask``."""

    def __init__(self, name: str):
        self.name = name

    def __call__(self, module, inputs) -> None:
        setattr(module, self.name, _pruned_tensor(module, self.name))


def _pruned_tensor(module, name: str) -> Tensor:
    return getattr(module, name + "_orig") * getattr(module, name + "_mask")


def _hooks(module) -> dict:
    if "_pruning_handles" not in module.__dict__:
        object.__setattr__(module, "_pruning_handles", {})
    return module.__dict__["_pruning_handles"]


def _apply_mask(module, name: str, compute_mask, structured_dim=None, importance_scores=None, full_mask=None):
    """Reparametrise ``module.<name>`` (first time) and combine the new mask with the old one."""
    if name + "_orig" in module._parameters:  # already pruned: prune among the entries still alive
        orig = module._parameters[name + "_orig"]
        old_mask = _to_numpy(module._buffers[name + "_mask"].data)
    else:
        if name not in module._parameters or module._parameters[name] is None:
            raise AttributeError(f"prune: module {type(module).__name__} has no parameter named '{name}'")
        orig = module._parameters[name]
        old_mask = np.ones(orig.shape)
    scores = _to_numpy(orig.data if importance_scores is None else importance_scores.data).astype(np.float64)
    if scores.shape != tuple(orig.shape):
        raise ValueError(f"prune: importance_scores of shape {scores.shape} must match {name} of shape "
                         f"{tuple(orig.shape)}")
    if full_mask is not None:
        new_mask = old_mask * full_mask
    elif structured_dim is None:
        alive = old_mask == 1
        new_mask = old_mask.copy()
        new_mask[alive] = compute_mask(scores[alive])
    else:
        dim = structured_dim % scores.ndim
        other = tuple(d for d in range(scores.ndim) if d != dim)
        alive = old_mask.sum(axis=other) != 0
        index = [slice(None)] * scores.ndim
        index[dim] = alive
        new_mask = old_mask.copy()
        new_mask[tuple(index)] = compute_mask(scores[tuple(index)]) * old_mask[tuple(index)]
    mask = Tensor._make(orig.xp.asarray(new_mask.astype(orig.dtype)), orig.device)
    if name + "_orig" not in module._parameters:
        del module._parameters[name]
        module.register_parameter(name + "_orig", orig)
        module.register_buffer(name + "_mask", mask)
        _hooks(module)[name] = module.register_forward_pre_hook(_PruningHook(name))
    else:
        module._buffers[name + "_mask"] = mask
    setattr(module, name, _pruned_tensor(module, name))
    return module


def l1_unstructured(module, name: str, amount, importance_scores: Tensor | None = None):
    """Prune the ``amount`` entries of ``module.<name>`` with the smallest absolute value."""
    return _apply_mask(module, name, lambda s: _unstructured_mask(np.abs(s), amount),
                       importance_scores=importance_scores)


def random_unstructured(module, name: str, amount):
    """Prune ``amount`` entries chosen at random."""
    gen = default_generator("cpu")

    def compute(scores):
        return _unstructured_mask(np.asarray(_to_numpy(gen.uniform(scores.shape, np.float64))), amount)
    return _apply_mask(module, name, compute)


def ln_structured(module, name: str, amount, n, dim: int, importance_scores: Tensor | None = None):
    """Prune the ``amount`` slices along ``dim`` (e.g. output channels for dim=0) with the smallest Ln norm."""
    ndim = module._parameters.get(name + "_orig", module._parameters.get(name)).ndim
    if not -ndim <= dim < ndim:
        raise IndexError(f"ln_structured: dim {dim} is out of range for a tensor with {ndim} dims")
    return _apply_mask(module, name, lambda s: _structured_mask(s, amount, n, dim), structured_dim=dim,
                       importance_scores=importance_scores)


def random_structured(module, name: str, amount, dim: int):
    gen = default_generator("cpu")

    def compute(scores):
        d = dim % scores.ndim
        random_norms = np.asarray(_to_numpy(gen.uniform((scores.shape[d],), np.float64)))
        shape = [1] * scores.ndim
        shape[d] = scores.shape[d]
        return _structured_mask(np.broadcast_to(random_norms.reshape(shape), scores.shape), amount, 1, d)
    return _apply_mask(module, name, compute, structured_dim=dim)


def identity(module, name: str):
    """Reparametrise with an all-ones mask (prunes nothing)."""
    return _apply_mask(module, name, lambda s: np.ones(s.shape))


def global_unstructured(parameters, pruning_method=None, importance_scores=None, amount=0.2, **kwargs) -> None:
    """Prune the ``amount`` smallest-magnitude entries across several (module, name) pairs together."""
    parameters = list(parameters)
    scores = []
    for module, name in parameters:
        orig = module._parameters.get(name + "_orig", module._parameters.get(name))
        mask = module._buffers.get(name + "_mask") if name + "_orig" in module._parameters else None
        values = np.abs(_to_numpy(orig.data).astype(np.float64))
        if mask is not None:  # entries already pruned rank first (score -inf) so they stay pruned
            values = np.where(_to_numpy(mask.data) == 0, -np.inf, values)
        scores.append(values)
    flat = np.concatenate([s.reshape(-1) for s in scores])
    already = int(np.isneginf(flat).sum())
    count = _prune_count(amount, flat.size - already) + already
    global_mask = np.ones(flat.size)
    global_mask[np.argsort(flat, kind="stable")[:count]] = 0
    offset = 0
    for (module, name), s in zip(parameters, scores):
        piece = global_mask[offset:offset + s.size].reshape(s.shape)
        offset += s.size
        custom_from_mask(module, name, piece)


def custom_from_mask(module, name: str, mask):
    """Prune with a given mask (multiplied into any existing one)."""
    mask = _to_numpy(mask.data if isinstance(mask, Tensor) else mask).astype(np.float64)
    return _apply_mask(module, name, None, full_mask=mask)


def is_pruned(module) -> bool:
    """Whether any submodule carries a pruning reparametrisation."""
    return any(m.__dict__.get("_pruning_handles") for m in module.modules())


def remove(module, name: str):
    """Make pruning permanent: ``<name>`` becomes a Parameter holding orig * mask; orig, mask and hook go."""
    if name + "_orig" not in module._parameters:
        raise ValueError(f"Parameter '{name}' of module {type(module).__name__} has to be pruned before "
                         "pruning can be removed")
    orig = module._parameters.pop(name + "_orig")
    mask = module._buffers.pop(name + "_mask")
    handle = _hooks(module).pop(name, None)
    if handle is not None:
        handle.remove()
    module.__dict__.pop(name, None)
    module.register_parameter(name, Parameter(Tensor._make(orig.data * mask.data, orig.device)))
    return module
