"""AlexNet (Krizhevsky et al., 2012), in torchvision's one-GPU form (64-192-384-256-256 channels).

``state_dict`` keys match torchvision (``features.0.weight`` ... ``classifier.6.bias``);
61,100,840 parameters for 1000 classes. ``lrn=True`` adds the paper's local response
normalisation after the first two ReLUs (no parameters, but it shifts the ``features``
indices after it, so such a model no longer loads torchvision weights).
"""
from __future__ import annotations

import tinynn.nn as nn


class AlexNet(nn.Module):
    def __init__(self, num_classes: int = 1000, dropout: float = 0.5, lrn: bool = False, in_channels: int = 3,
                 small_input: bool = False):
        super().__init__()

        def lrn_layer() -> list:
            # The paper's constants: size 5, alpha 1e-4, beta 0.75, k 2.
            return [nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)] if lrn else []

        if small_input:  # 32×32 / 28×28: a 3×3 stride-1 first conv and 2×2 pools keep a 3×3 map at the end
            stem = [nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1), nn.ReLU(inplace=True)]
            pool = lambda: nn.MaxPool2d(kernel_size=2, stride=2)  # noqa: E731
        else:
            stem = [nn.Conv2d(in_channels, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(inplace=True)]
            pool = lambda: nn.MaxPool2d(kernel_size=3, stride=2)  # noqa: E731
        self.features = nn.Sequential(
            *stem, *lrn_layer(), pool(),
            nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(inplace=True), *lrn_layer(), pool(),
            nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            pool(),
        )
        pooled = 3 if small_input else 6
        hidden = 1024 if small_input else 4096
        self.avgpool = nn.AdaptiveAvgPool2d((pooled, pooled))
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout), nn.Linear(256 * pooled * pooled, hidden), nn.ReLU(inplace=True),
            nn.Dropout(p=dropout), nn.Linear(hidden, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return self.classifier(x.flatten(1))


def alexnet(num_classes: int = 1000, dropout: float = 0.5, lrn: bool = False, in_channels: int = 3,
            small_input: bool = False) -> AlexNet:
    """AlexNet; ``small_input=True`` is a CIFAR/MNIST-sized variant (3×3 stem, 1024-wide classifier)."""
    return AlexNet(num_classes, dropout, lrn, in_channels, small_input)
