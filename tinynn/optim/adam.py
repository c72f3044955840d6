"""Adam and AdamW (Kingma & Ba 2015; Loshchilov & Hutter 2019), as PyTorch computes them."""
from __future__ import annotations

from typing import Any, Callable

from ..backend import kernels
from ..backend.device import get_array_module
from .optimizer import Optimizer, ParamsT, check_beta, check_non_negative, decayed_grad, lerp_

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    r"""Adam (``torch.optim.Adam``), step for step::

        t  = t + 1
        g  = -grad if maximize else grad
        p  = p * (1 - lr * weight_decay)       (AdamW: decoupled weight decay)
        g  = g + weight_decay * p               (Adam: L2 penalty in the gradient)
        m  = lerp(m, g, 1 - beta1)              = beta1 * m + (1 - beta1) * g
        v  = beta2 * v + (1 - beta2) * g * g
        v_max = max(v_max, v)                   (amsgrad; then v_max replaces v below)
        denom = sqrt(v) / sqrt(1 - beta2 ** t) + eps
        p  = p - lr / (1 - beta1 ** t) * m / denom
    """

    _decoupled_weight_decay = False

    def __init__(self, params: ParamsT, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False, *,
                 maximize: bool = False) -> None:
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize)
        super().__init__(params, defaults)

    def _check_hyperparameters(self, group: dict[str, Any]) -> None:
        name = type(self).__name__
        for option in ("lr", "eps", "weight_decay"):
            check_non_negative(name, option, group[option])
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"{name}: betas must be a pair (beta1, beta2), got {betas!r}")
        check_beta(name, "beta1", betas[0])
        check_beta(name, "beta2", betas[1])

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = self._run_closure(closure)
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            options = dict(lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"],
                           weight_decay=group["weight_decay"], amsgrad=group["amsgrad"],
                           maximize=group["maximize"], decoupled_weight_decay=self._decoupled_weight_decay)
            for p, update, param, grad in self._params_with_grad(group, "optim_adam"):
                update(param, grad, self.state[p], **options)
        return loss


class AdamW(Adam):
    """AdamW (``torch.optim.AdamW``): Adam whose weight decay shrinks the weights directly
    (``p = p * (1 - lr * weight_decay)``) instead of entering the gradient and the moments."""

    _decoupled_weight_decay = True

    def __init__(self, params: ParamsT, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                         maximize=maximize)


def init_adam_state(param, state: dict, amsgrad: bool) -> None:
    xp = get_array_module(param)
    state["step"] = 0
    state["exp_avg"] = xp.zeros_like(param)
    state["exp_avg_sq"] = xp.zeros_like(param)
    if amsgrad:
        state["max_exp_avg_sq"] = xp.zeros_like(param)


@kernels.register("optim_adam", "reference", device="cpu")
@kernels.register("optim_adam", "reference", device="cuda")
def adam_update(param, grad, state: dict, *, lr: float, beta1: float, beta2: float, eps: float,
                weight_decay: float, amsgrad: bool, maximize: bool, decoupled_weight_decay: bool) -> None:
    """One Adam/AdamW step on the raw array ``param`` in place."""
    xp = get_array_module(param)
    if not state:
        init_adam_state(param, state, amsgrad)
    state["step"] += 1
    step = state["step"]
    exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]

    grad = decayed_grad(param, grad, weight_decay=weight_decay, maximize=maximize, lr=lr,
                        decoupled_weight_decay=decoupled_weight_decay)

    scratch = xp.empty_like(param)                        # the one temporary of this step
    lerp_(exp_avg, grad, 1 - beta1, scratch)              # m = beta1 * m + (1 - beta1) * g
    exp_avg_sq *= beta2
    xp.multiply(grad, grad, out=scratch)
    scratch *= 1 - beta2
    exp_avg_sq += scratch                                 # v = beta2 * v + (1 - beta2) * g^2

    second_moment = exp_avg_sq
    if amsgrad:
        second_moment = state["max_exp_avg_sq"]
        xp.maximum(second_moment, exp_avg_sq, out=second_moment)   # v_max = max(v_max, v)

    bias_correction1 = 1 - beta1 ** step
    bias_correction2_sqrt = (1 - beta2 ** step) ** 0.5
    step_size = lr / bias_correction1

    denom = xp.sqrt(second_moment, out=scratch)
    denom /= bias_correction2_sqrt
    denom += eps                                          # sqrt(v / (1 - beta2^t)) + eps
    xp.divide(exp_avg, denom, out=denom)
    denom *= -step_size
    param += denom                                        # p - lr / (1 - beta1^t) * m / denom
