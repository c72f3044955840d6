"""RAdam (Liu et al. 2020): Adam whose adaptive step is switched on once its variance is tractable."""
from __future__ import annotations

from typing import Any, Callable

from ..backend import kernels
from ..backend.device import get_array_module
from .optimizer import Optimizer, ParamsT, check_beta, check_non_negative, decayed_grad, lerp_

__all__ = ["RAdam"]


class RAdam(Optimizer):
    r"""RAdam (``torch.optim.RAdam``), step for step::

        t     = t + 1
        g     = -grad if maximize else grad
        p     = p * (1 - lr * weight_decay)   or   g = g + weight_decay * p   (decoupled or not)
        m     = lerp(m, g, 1 - beta1);   v = beta2 * v + (1 - beta2) * g * g
        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - 2 t beta2^t / (1 - beta2^t)
        if rho_t > 5:   r = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
                        p = p - lr * m / (1 - beta1^t) * sqrt(1 - beta2^t) / (sqrt(v) + eps) * r
        else:           p = p - lr * m / (1 - beta1^t)        (plain SGD with momentum)
    """

    def __init__(self, params: ParamsT, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, decoupled_weight_decay: bool = False, *,
                 maximize: bool = False) -> None:
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      decoupled_weight_decay=decoupled_weight_decay, maximize=maximize))

    def _check_hyperparameters(self, group: dict[str, Any]) -> None:
        for name in ("lr", "eps", "weight_decay"):
            check_non_negative("RAdam", name, group[name])
        check_beta("RAdam", "beta1", group["betas"][0])
        check_beta("RAdam", "beta2", group["betas"][1])

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = self._run_closure(closure)
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            options = dict(lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"],
                           weight_decay=group["weight_decay"], decoupled_weight_decay=group["decoupled_weight_decay"],
                           maximize=group["maximize"])
            for p, update, param, grad in self._params_with_grad(group, "optim_radam"):
                update(param, grad, self.state[p], **options)
        return loss


@kernels.register("optim_radam", "reference", device="cpu")
@kernels.register("optim_radam", "reference", device="cuda")
def radam_update(param, grad, state: dict, *, lr: float, beta1: float, beta2: float, eps: float,
                 weight_decay: float, decoupled_weight_decay: bool, maximize: bool) -> None:
    """One RAdam step on the raw array ``param`` in place."""
    xp = get_array_module(param)
    if not state:
        state.update(step=0, exp_avg=xp.zeros_like(param), exp_avg_sq=xp.zeros_like(param))
    state["step"] += 1
    step = state["step"]
    grad = decayed_grad(param, grad, weight_decay=weight_decay, maximize=maximize, lr=lr,
                        decoupled_weight_decay=decoupled_weight_decay)
    exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
    scratch = xp.empty_like(param)
    lerp_(exp_avg, grad, 1 - beta1, scratch)               # m = beta1 * m + (1 - beta1) * g
    exp_avg_sq *= beta2
    exp_avg_sq += (1 - beta2) * grad * grad                # v = beta2 * v + (1 - beta2) * g^2

    bias_correction1 = 1 - beta1 ** step
    bias_correction2 = 1 - beta2 ** step
    update = xp.divide(exp_avg, bias_correction1)
    update *= lr                                           # lr * m / (1 - beta1^t)
    rho_inf = 2 / (1 - beta2) - 1
    rho_t = rho_inf - 2 * step * (beta2 ** step) / bias_correction2
    if rho_t > 5.0:
        rect = ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
        xp.sqrt(exp_avg_sq, out=scratch)
        scratch += eps
        xp.divide(bias_correction2 ** 0.5, scratch, out=scratch)   # the adaptive lr
        update *= scratch
        update *= rect
    param -= update
