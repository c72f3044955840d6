"""Adadelta (Zeiler 2012): steps scaled by the ratio of running RMS of updates and of gradients."""
from __future__ import annotations

from typing import Any, Callable

from ..backend import kernels
from ..backend.device import get_array_module
from .optimizer import Optimizer, ParamsT, check_non_negative, decayed_grad

__all__ = ["Adadelta"]


class Adadelta(Optimizer):
    r"""Adadelta (``torch.optim.Adadelta``), step for step::

        g     = -grad if maximize else grad
        g     = g + weight_decay * p                       (if weight_decay != 0)
        v     = rho * v + (1 - rho) * g * g
        delta = sqrt(u + eps) / sqrt(v + eps) * g
        u     = rho * u + (1 - rho) * delta * delta
        p     = p - lr * delta
    """

    def __init__(self, params: ParamsT, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0.0, *, maximize: bool = False) -> None:
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize))

    def _check_hyperparameters(self, group: dict[str, Any]) -> None:
        for name in ("lr", "eps", "weight_decay"):
            check_non_negative("Adadelta", name, group[name])
        if not 0.0 <= group["rho"] <= 1.0:
            raise ValueError(f"Adadelta: invalid rho: {group['rho']!r} (expected 0 <= rho <= 1)")

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = self._run_closure(closure)
        for group in self.param_groups:
            options = dict(lr=group["lr"], rho=group["rho"], eps=group["eps"], weight_decay=group["weight_decay"],
                           maximize=group["maximize"])
            for p, update, param, grad in self._params_with_grad(group, "optim_adadelta"):
                update(param, grad, self.state[p], **options)
        return loss


@kernels.register("optim_adadelta", "reference", device="cpu")
@kernels.register("optim_adadelta", "reference", device="cuda")
def adadelta_update(param, grad, state: dict, *, lr: float, rho: float, eps: float, weight_decay: float,
                    maximize: bool) -> None:
    """One Adadelta step on the raw array ``param`` in place."""
    xp = get_array_module(param)
    if not state:
        state.update(step=0, square_avg=xp.zeros_like(param), acc_delta=xp.zeros_like(param))
    state["step"] += 1
    grad = decayed_grad(param, grad, weight_decay=weight_decay, maximize=maximize)  # g + wd * p
    square_avg, acc_delta = state["square_avg"], state["acc_delta"]
    square_avg *= rho
    square_avg += (1 - rho) * grad * grad                  # v = rho * v + (1 - rho) * g^2
    std = xp.sqrt(square_avg + eps)
    delta = xp.sqrt(acc_delta + eps)
    delta /= std
    delta *= grad                                          # sqrt(u + eps) / sqrt(v + eps) * g
    acc_delta *= rho
    acc_delta += (1 - rho) * delta * delta                 # u = rho * u + (1 - rho) * delta^2
    delta *= -lr
    param += delta                                         # p - lr * delta
