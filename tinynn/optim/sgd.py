"""Stochastic gradient descent, with momentum, dampening, Nesterov and weight decay."""
from __future__ import annotations

from typing import Any, Callable

from ..backend import kernels
from ..backend.device import get_array_module
from .optimizer import Optimizer, ParamsT, check_non_negative

__all__ = ["SGD"]


class SGD(Optimizer):
    r"""SGD as PyTorch implements it (``torch.optim.SGD``), step for step::

        g  = -grad if maximize else grad
        g  = g + weight_decay * p                         (if weight_decay != 0)
        b  = g                               on the first step,
        b  = momentum * b + (1 - dampening) * g   after   (if momentum != 0)
        g  = g + momentum * b  if nesterov else  b        (if momentum != 0)
        p  = p - lr * g

    Note the first momentum buffer is the gradient itself (no dampening), as in PyTorch.
    """

    def __init__(self, params: ParamsT, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, *, maximize: bool = False) -> None:
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults)

    def _check_hyperparameters(self, group: dict[str, Any]) -> None:
        for name in ("lr", "momentum", "dampening", "weight_decay"):
            check_non_negative("SGD", name, group[name])
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("SGD: Nesterov momentum requires a momentum > 0 and zero dampening "
                             f"(got momentum={group['momentum']}, dampening={group['dampening']})")

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = self._run_closure(closure)
        for group in self.param_groups:
            lr, momentum, dampening = group["lr"], group["momentum"], group["dampening"]
            weight_decay, nesterov, maximize = group["weight_decay"], group["nesterov"], group["maximize"]
            for p, update, param, grad in self._params_with_grad(group, "optim_sgd"):
                state = self.state[p] if momentum != 0 else None
                update(param, grad, state, lr=lr, momentum=momentum, dampening=dampening,
                           weight_decay=weight_decay, nesterov=nesterov, maximize=maximize)
        return loss


@kernels.register("optim_sgd", "reference", device="cpu")
@kernels.register("optim_sgd", "reference", device="cuda")
def sgd_update(param, grad, state: dict | None, *, lr: float, momentum: float, dampening: float,
               weight_decay: float, nesterov: bool, maximize: bool) -> None:
    """One SGD step on the raw array ``param`` in place (``state`` holds the momentum buffer)."""
    xp = get_array_module(param)
    direction, is_temporary = grad, False  # is_temporary: ours to overwrite
    if maximize:
        direction, is_temporary = xp.negative(grad), True
    if weight_decay != 0:
        decayed = xp.multiply(param, weight_decay)
        decayed += direction                          # g + weight_decay * p
        direction, is_temporary = decayed, True
    if momentum != 0:
        buf = state.get("momentum_buffer")
        if buf is None:
            buf = state["momentum_buffer"] = direction.copy()   # b_1 = g_1
        else:
            buf *= momentum
            if dampening == 0:
                buf += direction                      # b = momentum * b + g
            else:
                buf += (1 - dampening) * direction    # b = momentum * b + (1 - dampening) * g
        if nesterov:
            ahead = xp.multiply(buf, momentum)
            ahead += direction                        # g + momentum * b
            direction, is_temporary = ahead, True
        else:
            direction, is_temporary = buf, False
    if is_temporary:
        direction *= -lr
        param += direction                            # p - lr * g
    else:
        param -= lr * direction
