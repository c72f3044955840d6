"""Adagrad (Duchi et al. 2011): per-coordinate steps shrinking with the summed squared gradients."""
from __future__ import annotations

from typing import Any, Callable

from ..backend import kernels
from ..backend.device import get_array_module
from .optimizer import Optimizer, ParamsT, check_non_negative, decayed_grad

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    r"""Adagrad (``torch.optim.Adagrad``), step for step::

        t   = t + 1
        g   = -grad if maximize else grad
        g   = g + weight_decay * p             (if weight_decay != 0)
        clr = lr / (1 + (t - 1) * lr_decay)
        s   = s + g * g                        (s starts at initial_accumulator_value)
        p   = p - clr * g / (sqrt(s) + eps)

    One difference from PyTorch: a group's own ``initial_accumulator_value`` is
    honoured (PyTorch fills every group's ``sum`` with the constructor's value).
    """

    def __init__(self, params: ParamsT, lr: float = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10, *, maximize: bool = False) -> None:
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, maximize=maximize)
        super().__init__(params, defaults)
        for group in self.param_groups:  # PyTorch creates Adagrad's state up front
            for p in group["params"]:
                init_adagrad_state(p.data, self.state[p], group["initial_accumulator_value"])

    def _check_hyperparameters(self, group: dict[str, Any]) -> None:
        for name in ("lr", "lr_decay", "eps", "weight_decay", "initial_accumulator_value"):
            check_non_negative("Adagrad", name, group[name])

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = self._run_closure(closure)
        for group in self.param_groups:
            options = dict(lr=group["lr"], lr_decay=group["lr_decay"], eps=group["eps"],
                           weight_decay=group["weight_decay"], maximize=group["maximize"])
            for p, update, param, grad in self._params_with_grad(group, "optim_adagrad"):
                state = self.state[p]
                if not state:  # a parameter added later with add_param_group
                    init_adagrad_state(param, state, group["initial_accumulator_value"])
                update(param, grad, state, **options)
        return loss


def init_adagrad_state(param, state: dict, initial_accumulator_value: float) -> None:
    xp = get_array_module(param)
    state["step"] = 0
    state["sum"] = xp.full_like(param, initial_accumulator_value)


@kernels.register("optim_adagrad", "reference", device="cpu")
@kernels.register("optim_adagrad", "reference", device="cuda")
def adagrad_update(param, grad, state: dict, *, lr: float, lr_decay: float, eps: float,
                   weight_decay: float, maximize: bool) -> None:
    """One Adagrad step on the raw array ``param`` in place."""
    xp = get_array_module(param)
    state["step"] += 1
    step = state["step"]
    grad = decayed_grad(param, grad, weight_decay=weight_decay, maximize=maximize)  # g + wd * p

    clr = lr / (1 + (step - 1) * lr_decay)
    square_sum = state["sum"]
    scratch = xp.multiply(grad, grad)
    square_sum += scratch                                 # s = s + g^2
    std = xp.sqrt(square_sum, out=scratch)
    std += eps
    xp.divide(grad, std, out=scratch)
    scratch *= -clr
    param += scratch                                      # p - clr * g / (sqrt(s) + eps)
