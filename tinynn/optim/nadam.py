"""NAdam (Dozat 2016): Adam with Nesterov momentum and a momentum-decay schedule."""
from __future__ import annotations

from typing import Any, Callable

from ..backend import kernels
from ..backend.device import get_array_module
from .optimizer import Optimizer, ParamsT, check_beta, check_non_negative, decayed_grad, lerp_

__all__ = ["NAdam"]


class NAdam(Optimizer):
    r"""NAdam (``torch.optim.NAdam``), step for step::

        t     = t + 1
        g     = -grad if maximize else grad
        p     = p * (1 - lr * weight_decay)   or   g = g + weight_decay * p   (decoupled or not)
        mu_t  = beta1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))
        prod  = prod * mu_t                   (the product of all mu so far)
        m     = lerp(m, g, 1 - beta1);   v = beta2 * v + (1 - beta2) * g * g
        denom = sqrt(v / (1 - beta2 ** t)) + eps
        p     = p - lr * (1 - mu_t) / (1 - prod) * g / denom
                  - lr * mu_{t+1} / (1 - prod * mu_{t+1}) * m / denom

    PyTorch keeps ``prod`` in the default float dtype (float32 unless changed); here it
    is a Python float.
    """

    def __init__(self, params: ParamsT, lr: float = 2e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, momentum_decay: float = 4e-3,
                 decoupled_weight_decay: bool = False, *, maximize: bool = False) -> None:
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      momentum_decay=momentum_decay, decoupled_weight_decay=decoupled_weight_decay,
                                      maximize=maximize))

    def _check_hyperparameters(self, group: dict[str, Any]) -> None:
        for name in ("lr", "eps", "weight_decay", "momentum_decay"):
            check_non_negative("NAdam", name, group[name])
        check_beta("NAdam", "beta1", group["betas"][0])
        check_beta("NAdam", "beta2", group["betas"][1])

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = self._run_closure(closure)
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            options = dict(lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"],
                           weight_decay=group["weight_decay"], momentum_decay=group["momentum_decay"],
                           decoupled_weight_decay=group["decoupled_weight_decay"], maximize=group["maximize"])
            for p, update, param, grad in self._params_with_grad(group, "optim_nadam"):
                update(param, grad, self.state[p], **options)
        return loss


@kernels.register("optim_nadam", "reference", device="cpu")
@kernels.register("optim_nadam", "reference", device="cuda")
def nadam_update(param, grad, state: dict, *, lr: float, beta1: float, beta2: float, eps: float,
                 weight_decay: float, momentum_decay: float, decoupled_weight_decay: bool, maximize: bool) -> None:
    """One NAdam step on the raw array ``param`` in place."""
    xp = get_array_module(param)
    if not state:
        state.update(step=0, mu_product=1.0, exp_avg=xp.zeros_like(param), exp_avg_sq=xp.zeros_like(param))
    state["step"] += 1
    step = state["step"]
    grad = decayed_grad(param, grad, weight_decay=weight_decay, maximize=maximize, lr=lr,
                        decoupled_weight_decay=decoupled_weight_decay)
    mu = beta1 * (1.0 - 0.5 * 0.96 ** (step * momentum_decay))
    mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((step + 1) * momentum_decay))
    state["mu_product"] *= mu
    mu_product = state["mu_product"]

    exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
    scratch = xp.empty_like(param)
    lerp_(exp_avg, grad, 1 - beta1, scratch)               # m = beta1 * m + (1 - beta1) * g
    exp_avg_sq *= beta2
    exp_avg_sq += (1 - beta2) * grad * grad                # v = beta2 * v + (1 - beta2) * g^2
    denom = xp.divide(exp_avg_sq, 1 - beta2 ** step)
    xp.sqrt(denom, out=denom)
    denom += eps                                           # sqrt(v / (1 - beta2^t)) + eps
    xp.divide(grad, denom, out=scratch)
    scratch *= -lr * (1.0 - mu) / (1.0 - mu_product)
    param += scratch                                       # the gradient's share of the Nesterov step
    xp.divide(exp_avg, denom, out=scratch)
    scratch *= -lr * mu_next / (1.0 - mu_product * mu_next)
    param += scratch                                       # the momentum's share
