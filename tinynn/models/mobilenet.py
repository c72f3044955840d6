"""MobileNetV2 (Sandler et al., 2018): inverted residuals with linear bottlenecks.

A block expands the channels ×t with a 1×1 conv, filters each channel on its own with a
3×3 *depthwise* conv (``groups=channels``), and projects back down with a 1×1 conv and no
activation; the skip joins the two narrow ends. Depthwise + pointwise ("depthwise separable")
costs about ``1/k² + 1/C_out`` of a full k×k convolution.

torchvision's keys (``features.0.0.weight``, ``features.1.conv.0.0.weight`` ...,
``classifier.1.weight``); 3,504,872 parameters for 1000 classes at ``width_mult=1``.
``small_input=True``: stride-1 stem and a stride-1 second stage, for 28×28 / 32×32 images.
"""
from __future__ import annotations

import tinynn.nn as nn
import tinynn.nn.functional as F

from ._init import init_conv_bn_linear


def _make_divisible(v: float, divisor: int, min_value: int | None = None) -> int:
    """Round ``v`` to the nearest multiple of ``divisor`` without going below 90 % of it."""
    min_value = divisor if min_value is None else min_value
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class Conv2dNormActivation(nn.Sequential):
    """Conv (no bias) -> BatchNorm -> ReLU6, with "same" padding for odd kernels."""

    def __init__(self, in_planes: int, out_planes: int, kernel_size: int = 3, stride: int = 1, groups: int = 1,
                 activation: bool = True):
        padding = (kernel_size - 1) // 2
        layers = [nn.Conv2d(in_planes, out_planes, kernel_size, stride, padding, groups=groups, bias=False),
                  nn.BatchNorm2d(out_planes)]
        if activation:
            layers.append(nn.ReLU6(inplace=True))
        super().__init__(*layers)


class InvertedResidual(nn.Module):
    """expand 1×1 (ReLU6) -> depthwise 3×3 (ReLU6) -> project 1×1 (linear); skip when shapes allow."""

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"InvertedResidual: stride should be 1 or 2, got {stride}")
        self.stride = stride
        hidden_dim = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(Conv2dNormActivation(inp, hidden_dim, kernel_size=1))
        layers += [
            Conv2dNormActivation(hidden_dim, hidden_dim, stride=stride, groups=hidden_dim),  # depthwise
            nn.Conv2d(hidden_dim, oup, 1, 1, 0, bias=False),  # pointwise, linear
            nn.BatchNorm2d(oup),
        ]
        self.conv = nn.Sequential(*layers)
        self.out_channels = oup

    def forward(self, x):
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    # t (expansion), c (channels), n (repeats), s (first stride)
    SETTINGS = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1], [6, 160, 3, 2],
                [6, 320, 1, 1]]

    def __init__(self, num_classes: int = 1000, width_mult: float = 1.0, round_nearest: int = 8,
                 dropout: float = 0.2, in_channels: int = 3, small_input: bool = False):
        super().__init__()
        input_channel = _make_divisible(32 * width_mult, round_nearest)
        self.last_channel = _make_divisible(1280 * max(1.0, width_mult), round_nearest)
        features: list[nn.Module] = [Conv2dNormActivation(in_channels, input_channel,
                                                          stride=1 if small_input else 2)]
        for stage, (t, c, n, s) in enumerate(self.SETTINGS):
            if small_input and stage == 1:
                s = 1
            output_channel = _make_divisible(c * width_mult, round_nearest)
            for i in range(n):
                features.append(InvertedResidual(input_channel, output_channel, s if i == 0 else 1, t))
                input_channel = output_channel
        features.append(Conv2dNormActivation(input_channel, self.last_channel, kernel_size=1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(self.last_channel, num_classes))
        init_conv_bn_linear(self, conv_mode="fan_out", linear_std=0.01)

    def forward(self, x):
        x = F.adaptive_avg_pool2d(self.features(x), (1, 1)).flatten(1)
        return self.classifier(x)


def mobilenet_v2(num_classes: int = 1000, width_mult: float = 1.0, in_channels: int = 3,
                 small_input: bool = False, dropout: float = 0.2) -> MobileNetV2:
    return MobileNetV2(num_classes, width_mult, dropout=dropout, in_channels=in_channels, small_input=small_input)
