"""Adamax (Kingma & Ba 2015, section 7): Adam with the infinity norm in place of the second moment."""
from __future__ import annotations

from typing import Any, Callable

from ..backend import kernels
from ..backend.device import get_array_module
from .optimizer import Optimizer, ParamsT, check_beta, check_non_negative, decayed_grad, lerp_

__all__ = ["Adamax"]


class Adamax(Optimizer):
    r"""Adamax (``torch.optim.Adamax``), step for step::

        t = t + 1
        g = -grad if maximize else grad
        g = g + weight_decay * p                  (if weight_decay != 0)
        m = lerp(m, g, 1 - beta1)
        u = max(beta2 * u, |g| + eps)
        p = p - lr / (1 - beta1 ** t) * m / u
    """

    def __init__(self, params: ParamsT, lr: float = 2e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, *, maximize: bool = False) -> None:
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      maximize=maximize))

    def _check_hyperparameters(self, group: dict[str, Any]) -> None:
        for name in ("lr", "eps", "weight_decay"):
            check_non_negative("Adamax", name, group[name])
        check_beta("Adamax", "beta1", group["betas"][0])
        check_beta("Adamax", "beta2", group["betas"][1])

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = self._run_closure(closure)
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            options = dict(lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"],
                           weight_decay=group["weight_decay"], maximize=group["maximize"])
            for p, update, param, grad in self._params_with_grad(group, "optim_adamax"):
                update(param, grad, self.state[p], **options)
        return loss


@kernels.register("optim_adamax", "reference", device="cpu")
@kernels.register("optim_adamax", "reference", device="cuda")
def adamax_update(param, grad, state: dict, *, lr: float, beta1: float, beta2: float, eps: float,
                  weight_decay: float, maximize: bool) -> None:
    """One Adamax step on the raw array ``param`` in place."""
    xp = get_array_module(param)
    if not state:
        state.update(step=0, exp_avg=xp.zeros_like(param), exp_inf=xp.zeros_like(param))
    state["step"] += 1
    grad = decayed_grad(param, grad, weight_decay=weight_decay, maximize=maximize)  # g + wd * p
    exp_avg, exp_inf = state["exp_avg"], state["exp_inf"]
    scratch = xp.empty_like(param)
    lerp_(exp_avg, grad, 1 - beta1, scratch)               # m = beta1 * m + (1 - beta1) * g
    exp_inf *= beta2
    xp.abs(grad, out=scratch)
    scratch += eps
    xp.maximum(exp_inf, scratch, out=exp_inf)              # u = max(beta2 * u, |g| + eps)
    clr = lr / (1 - beta1 ** state["step"])
    xp.divide(exp_avg, exp_inf, out=scratch)
    scratch *= -clr
    param += scratch                                       # p - lr / (1 - beta1^t) * m / u
