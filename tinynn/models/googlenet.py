"""GoogLeNet / Inception v1 (Szegedy et al., 2014), as torchvision builds it.

An Inception module runs 1×1, 3×3 and "5×5" convolutions and a pooled 1×1 projection side
by side and concatenates them; cheap 1×1 convolutions shrink the channels first.
torchvision's ``BasicConv2d`` (conv without bias -> BatchNorm(eps=1e-3) -> ReLU) and keys
(``conv1.conv.weight``, ``inception3a.branch2.1.bn.running_mean`` ...); like torchvision,
the "5×5" branch uses a 3×3 kernel. 6,624,904 parameters for 1000 classes without the
auxiliary classifiers (``aux_logits=False``, the default here).
With ``aux_logits=True`` a training-mode forward returns ``GoogLeNetOutputs(logits, aux_logits2,
aux_logits1)``, as torchvision does; ``googlenet_loss`` weighs them 1, 0.3, 0.3.

``small_input=True``: a stride-1 3×3 stem and no first max-pool, for 28×28 / 32×32 images (the
Inception stages then run at 1/2, 1/4 and 1/8 of the input size).
"""
from __future__ import annotations

from collections import namedtuple

import tinynn as tn
import tinynn.nn as nn
import tinynn.nn.functional as F

GoogLeNetOutputs = namedtuple("GoogLeNetOutputs", ["logits", "aux_logits2", "aux_logits1"])


class BasicConv2d(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, **kwargs):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class Inception(nn.Module):
    def __init__(self, in_channels: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int, ch5x5: int,
                 pool_proj: int):
        super().__init__()
        self.branch1 = BasicConv2d(in_channels, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(BasicConv2d(in_channels, ch3x3red, kernel_size=1),
                                     BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1))
        self.branch3 = nn.Sequential(BasicConv2d(in_channels, ch5x5red, kernel_size=1),
                                     BasicConv2d(ch5x5red, ch5x5, kernel_size=3, padding=1))
        self.branch4 = nn.Sequential(nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
                                     BasicConv2d(in_channels, pool_proj, kernel_size=1))

    def forward(self, x):
        return tn.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class InceptionAux(nn.Module):
    """Auxiliary classifier on an intermediate map: pool to 4×4, 1×1 conv, two Linear layers."""

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.7):
        super().__init__()
        self.conv = BasicConv2d(in_channels, 128, kernel_size=1)
        self.fc1 = nn.Linear(2048, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(p=dropout)

    def forward(self, x):
        x = self.conv(F.adaptive_avg_pool2d(x, (4, 4))).flatten(1)
        x = self.dropout(F.relu(self.fc1(x)))
        return self.fc2(x)


class GoogLeNet(nn.Module):
    def __init__(self, num_classes: int = 1000, aux_logits: bool = False, dropout: float = 0.2,
                 dropout_aux: float = 0.7, in_channels: int = 3, small_input: bool = False):
        super().__init__()
        self.aux_logits = aux_logits
        if small_input:
            self.conv1 = BasicConv2d(in_channels, 64, kernel_size=3, stride=1, padding=1)
            self.maxpool1 = nn.Identity()
        else:
            self.conv1 = BasicConv2d(in_channels, 64, kernel_size=7, stride=2, padding=3)
            self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, kernel_size=1)
        self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)

        self.inception3a = Inception(192, 64, 96, 128, 16, 32, 32)
        self.inception3b = Inception(256, 128, 128, 192, 32, 96, 64)
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a = Inception(480, 192, 96, 208, 16, 48, 64)
        self.inception4b = Inception(512, 160, 112, 224, 24, 64, 64)
        self.inception4c = Inception(512, 128, 128, 256, 24, 64, 64)
        self.inception4d = Inception(512, 112, 144, 288, 32, 64, 64)
        self.inception4e = Inception(528, 256, 160, 320, 32, 128, 128)
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.inception5a = Inception(832, 256, 160, 320, 32, 128, 128)
        self.inception5b = Inception(832, 384, 192, 384, 48, 128, 128)

        if aux_logits:
            self.aux1 = InceptionAux(512, num_classes, dropout=dropout_aux)
            self.aux2 = InceptionAux(528, num_classes, dropout=dropout_aux)
        else:
            self.aux1 = None
            self.aux2 = None
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(1024, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        """torchvision: truncated N(0, 0.01²) in [-2, 2] for conv and Linear weights, BN at (1, 0)."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(m.weight, 0.0, 0.01)
                with tn.no_grad():
                    m.weight.data[...] = m.weight.data.clip(-2.0, 2.0)  # 200 σ: the truncation never bites
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        aux1 = self.aux1(x) if self.aux1 is not None and self.training else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        aux2 = self.aux2(x) if self.aux2 is not None and self.training else None
        x = self.maxpool4(self.inception4e(x))
        x = self.inception5b(self.inception5a(x))
        x = self.dropout(self.avgpool(x).flatten(1))
        x = self.fc(x)
        if self.aux_logits and self.training:
            return GoogLeNetOutputs(x, aux2, aux1)
        return x


def googlenet(num_classes: int = 1000, aux_logits: bool = False, in_channels: int = 3, small_input: bool = False,
              dropout: float = 0.2) -> GoogLeNet:
    return GoogLeNet(num_classes, aux_logits, dropout, in_channels=in_channels, small_input=small_input)


def googlenet_loss(outputs, target, aux_weight: float = 0.3):
    """Cross-entropy of the main logits plus ``aux_weight`` times each auxiliary classifier's."""
    if isinstance(outputs, GoogLeNetOutputs):
        loss = F.cross_entropy(outputs.logits, target)
        for aux in (outputs.aux_logits1, outputs.aux_logits2):
            if aux is not None:
                loss = loss + aux_weight * F.cross_entropy(aux, target)
        return loss
    return F.cross_entropy(outputs, target)
