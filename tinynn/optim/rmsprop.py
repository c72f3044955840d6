"""RMSprop (Hinton's lecture 6e), with optional momentum and the centered variant."""
from __future__ import annotations

from typing import Any, Callable

from ..backend import kernels
from ..backend.device import get_array_module
from .optimizer import Optimizer, ParamsT, check_non_negative, decayed_grad, lerp_

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    r"""RMSprop (``torch.optim.RMSprop``), step for step::

        g   = -grad if maximize else grad
        g   = g + weight_decay * p                     (if weight_decay != 0)
        v   = alpha * v + (1 - alpha) * g * g
        avg = sqrt(v) + eps,   or, if centered:
        m   = lerp(m, g, 1 - alpha);  avg = sqrt(v - m * m) + eps
        b   = momentum * b + g / avg;  p = p - lr * b  (if momentum > 0)
        p   = p - lr * g / avg                         (otherwise)
    """

    def __init__(self, params: ParamsT, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False, *,
                 maximize: bool = False) -> None:
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                        centered=centered, maximize=maximize)
        super().__init__(params, defaults)

    def _check_hyperparameters(self, group: dict[str, Any]) -> None:
        for name in ("lr", "alpha", "eps", "weight_decay", "momentum"):
            check_non_negative("RMSprop", name, group[name])

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = self._run_closure(closure)
        for group in self.param_groups:
            options = dict(lr=group["lr"], alpha=group["alpha"], eps=group["eps"],
                           weight_decay=group["weight_decay"], momentum=group["momentum"],
                           centered=group["centered"], maximize=group["maximize"])
            for p, update, param, grad in self._params_with_grad(group, "optim_rmsprop"):
                update(param, grad, self.state[p], **options)
        return loss


def init_rmsprop_state(param, state: dict, momentum: float, centered: bool) -> None:
    xp = get_array_module(param)
    state["step"] = 0
    state["square_avg"] = xp.zeros_like(param)
    if momentum > 0:
        state["momentum_buffer"] = xp.zeros_like(param)
    if centered:
        state["grad_avg"] = xp.zeros_like(param)


@kernels.register("optim_rmsprop", "reference", device="cpu")
@kernels.register("optim_rmsprop", "reference", device="cuda")
def rmsprop_update(param, grad, state: dict, *, lr: float, alpha: float, eps: float, weight_decay: float,
                   momentum: float, centered: bool, maximize: bool) -> None:
    """One RMSprop step on the raw array ``param`` in place."""
    xp = get_array_module(param)
    if not state:
        init_rmsprop_state(param, state, momentum, centered)
    state["step"] += 1
    grad = decayed_grad(param, grad, weight_decay=weight_decay, maximize=maximize)  # g + wd * p

    square_avg = state["square_avg"]
    scratch = xp.multiply(grad, grad)
    scratch *= 1 - alpha
    square_avg *= alpha
    square_avg += scratch                                 # v = alpha * v + (1 - alpha) * g^2

    if centered:
        grad_avg = state["grad_avg"]
        lerp_(grad_avg, grad, 1 - alpha, scratch)         # m = alpha * m + (1 - alpha) * g
        avg = xp.multiply(grad_avg, grad_avg, out=scratch)
        xp.subtract(square_avg, avg, out=avg)
        xp.sqrt(avg, out=avg)                             # sqrt(v - m^2)
    else:
        avg = xp.sqrt(square_avg, out=scratch)            # sqrt(v)
    avg += eps

    if momentum > 0:
        buf = state["momentum_buffer"]
        buf *= momentum
        xp.divide(grad, avg, out=avg)
        buf += avg                                        # b = momentum * b + g / avg
        param -= lr * buf                                 # p - lr * b
    else:
        xp.divide(grad, avg, out=avg)
        avg *= -lr
        param += avg                                      # p - lr * g / avg
