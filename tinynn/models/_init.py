"""Weight initialisation shared by the zoo, written as torchvision writes it."""
from __future__ import annotations

import tinynn.nn as nn


def init_conv_bn_linear(model: nn.Module, conv_mode: str = "fan_out", linear_std: float | None = 0.01) -> None:
    """Kaiming-normal convolutions, BatchNorm at (1, 0), Linear at N(0, std) with zero bias.

    ``linear_std=None`` keeps Linear's default (PyTorch's uniform) initialisation.
    """
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, mode=conv_mode, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and linear_std is not None:
            nn.init.normal_(m.weight, 0.0, linear_std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters (``sum(p.numel())``), as torchvision reports it."""
    return sum(int(p.data.size) for p in model.parameters() if p.requires_grad or not trainable_only)
