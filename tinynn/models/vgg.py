"""VGG (Simonyan & Zisserman, 2014): stacks of 3×3 convolutions, torchvision's keys.

``vgg16()`` has 138,357,544 parameters and ``vgg16_bn()`` 138,365,992 for 1000 classes,
keys ``features.0.weight`` ... ``classifier.6.bias`` as in torchvision.

``small_input=True`` (28×28 and 32×32 images): the pools round up (``ceil_mode``) so
five of them leave a 1×1 map even from 28×28, the classifier is 512 -> 512 -> 512 -> classes
with the same indices, and ``in_channels`` may be 1.
"""
from __future__ import annotations

import tinynn.nn as nn

from ._init import init_conv_bn_linear

# "M" is a 2×2 max-pool; numbers are 3×3 convolutions' output channels.
CONFIGS = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"],
}


def make_layers(config: list, batch_norm: bool = False, in_channels: int = 3, ceil_mode: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    for item in config:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=ceil_mode))
            continue
        layers.append(nn.Conv2d(in_channels, item, kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(item))
        layers.append(nn.ReLU(inplace=True))
        in_channels = item
    return nn.Sequential(*layers)


class VGG(nn.Module):
    def __init__(self, features: nn.Sequential, num_classes: int = 1000, dropout: float = 0.5,
                 small_input: bool = False):
        super().__init__()
        self.features = features
        pooled, hidden = (1, 512) if small_input else (7, 4096)
        self.avgpool = nn.AdaptiveAvgPool2d((pooled, pooled))
        self.classifier = nn.Sequential(
            nn.Linear(512 * pooled * pooled, hidden), nn.ReLU(inplace=True), nn.Dropout(p=dropout),
            nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Dropout(p=dropout),
            nn.Linear(hidden, num_classes),
        )
        init_conv_bn_linear(self, conv_mode="fan_out", linear_std=0.01)

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return self.classifier(x.flatten(1))


def _vgg(name: str, batch_norm: bool, num_classes: int, in_channels: int, small_input: bool, dropout: float) -> VGG:
    features = make_layers(CONFIGS[name], batch_norm, in_channels, ceil_mode=small_input)
    return VGG(features, num_classes, dropout, small_input)


def vgg11(num_classes: int = 1000, in_channels: int = 3, small_input: bool = False, dropout: float = 0.5) -> VGG:
    return _vgg("vgg11", False, num_classes, in_channels, small_input, dropout)


def vgg16(num_classes: int = 1000, in_channels: int = 3, small_input: bool = False, dropout: float = 0.5) -> VGG:
    """VGG-16 (configuration D)."""
    return _vgg("vgg16", False, num_classes, in_channels, small_input, dropout)


def vgg16_bn(num_classes: int = 1000, in_channels: int = 3, small_input: bool = False, dropout: float = 0.5) -> VGG:
    """VGG-16 with BatchNorm after every convolution."""
    return _vgg("vgg16", True, num_classes, in_channels, small_input, dropout)


def vgg19(num_classes: int = 1000, in_channels: int = 3, small_input: bool = False, dropout: float = 0.5) -> VGG:
    return _vgg("vgg19", False, num_classes, in_channels, small_input, dropout)
