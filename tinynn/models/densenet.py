"""DenseNet (Huang et al., 2016): every layer sees the concatenation of all earlier maps.

torchvision's keys (``features.conv0``, ``features.denseblock1.denselayer1.norm1`` ...,
``features.transition1.conv``, ``features.norm5``, ``classifier``); ``densenet121()``
has 7,978,856 parameters (growth rate 32, bottleneck width 4·32, compression 0.5).

``small_input=True``: 3×3 stride-1 ``conv0`` and no ``pool0`` for 28×28 / 32×32 images.
"""
from __future__ import annotations

import tinynn as tn
import tinynn.nn as nn
import tinynn.nn.functional as F


class _DenseLayer(nn.Module):
    """BN-ReLU-Conv1×1 (to ``bn_size·k`` maps) then BN-ReLU-Conv3×3 (to ``k`` new maps)."""

    def __init__(self, num_input_features: int, growth_rate: int, bn_size: int, drop_rate: float):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(num_input_features)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(num_input_features, bn_size * growth_rate, kernel_size=1, stride=1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, kernel_size=3, stride=1, padding=1, bias=False)
        self.drop_rate = float(drop_rate)

    def forward(self, previous_features: list):
        x = tn.cat(previous_features, 1)
        x = self.conv1(self.relu1(self.norm1(x)))
        x = self.conv2(self.relu2(self.norm2(x)))
        if self.drop_rate > 0:
            x = F.dropout(x, p=self.drop_rate, training=self.training)
        return x


class _DenseBlock(nn.ModuleDict):
    """``num_layers`` dense layers; the block outputs its input and all new maps, concatenated."""

    def __init__(self, num_layers: int, num_input_features: int, bn_size: int, growth_rate: int,
                 drop_rate: float):
        super().__init__()
        for i in range(num_layers):
            layer = _DenseLayer(num_input_features + i * growth_rate, growth_rate, bn_size, drop_rate)
            self.add_module(f"denselayer{i + 1}", layer)

    def forward(self, init_features):
        features = [init_features]
        for layer in self.values():
            features.append(layer(features))
        return tn.cat(features, 1)


class _Transition(nn.Sequential):
    """BN-ReLU-Conv1×1 (halving the channels) then 2×2 average pooling (halving the size)."""

    def __init__(self, num_input_features: int, num_output_features: int):
        super().__init__()
        self.add_module("norm", nn.BatchNorm2d(num_input_features))
        self.add_module("relu", nn.ReLU(inplace=True))
        self.add_module("conv", nn.Conv2d(num_input_features, num_output_features, kernel_size=1, stride=1,
                                          bias=False))
        self.add_module("pool", nn.AvgPool2d(kernel_size=2, stride=2))


class DenseNet(nn.Module):
    def __init__(self, growth_rate: int = 32, block_config: tuple = (6, 12, 24, 16), num_init_features: int = 64,
                 bn_size: int = 4, drop_rate: float = 0.0, num_classes: int = 1000, in_channels: int = 3,
                 small_input: bool = False):
        super().__init__()
        if small_input:
            stem = [("conv0", nn.Conv2d(in_channels, num_init_features, kernel_size=3, padding=1, bias=False)),
                    ("norm0", nn.BatchNorm2d(num_init_features)), ("relu0", nn.ReLU(inplace=True))]
        else:
            stem = [("conv0", nn.Conv2d(in_channels, num_init_features, kernel_size=7, stride=2, padding=3,
                                        bias=False)),
                    ("norm0", nn.BatchNorm2d(num_init_features)), ("relu0", nn.ReLU(inplace=True)),
                    ("pool0", nn.MaxPool2d(kernel_size=3, stride=2, padding=1))]
        self.features = nn.Sequential()
        for name, module in stem:
            self.features.add_module(name, module)

        num_features = num_init_features
        for i, num_layers in enumerate(block_config):
            block = _DenseBlock(num_layers, num_features, bn_size, growth_rate, drop_rate)
            self.features.add_module(f"denseblock{i + 1}", block)
            num_features += num_layers * growth_rate
            if i != len(block_config) - 1:
                self.features.add_module(f"transition{i + 1}", _Transition(num_features, num_features // 2))
                num_features //= 2
        self.features.add_module("norm5", nn.BatchNorm2d(num_features))
        self.classifier = nn.Linear(num_features, num_classes)

        for m in self.modules():  # torchvision's init: Kaiming (fan_in) convs, BN (1, 0), zero Linear bias
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = F.relu(self.features(x))
        x = F.adaptive_avg_pool2d(x, (1, 1)).flatten(1)
        return self.classifier(x)


def densenet121(num_classes: int = 1000, in_channels: int = 3, small_input: bool = False, growth_rate: int = 32,
                drop_rate: float = 0.0) -> DenseNet:
    return DenseNet(growth_rate, (6, 12, 24, 16), 64, 4, drop_rate, num_classes, in_channels, small_input)


def densenet_cifar(num_classes: int = 10, in_channels: int = 3, growth_rate: int = 12,
                   block_config: tuple = (6, 12, 24, 16), drop_rate: float = 0.0) -> DenseNet:
    """A DenseNet-121-shaped network for 32×32 images with growth rate 12 (about 1M parameters)."""
    return DenseNet(growth_rate, block_config, 2 * growth_rate, 4, drop_rate, num_classes, in_channels,
                    small_input=True)
