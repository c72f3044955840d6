"""Multi-layer perceptrons and LeNet-5: the first two models anyone trains."""
from __future__ import annotations

from typing import Sequence

import tinynn.nn as nn

_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU}


def _activation(name: str) -> nn.Module:
    try:
        return _ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {name!r}") from None


def mlp(in_features: int = 784, hidden_sizes: Sequence[int] = (256, 128), num_classes: int = 10,
        activation: str = "relu", dropout: float = 0.0, batch_norm: bool = False) -> nn.Sequential:
    """``Flatten -> [Linear -> (BatchNorm1d) -> act -> (Dropout)] * len(hidden_sizes) -> Linear``.

    Images of any shape are flattened first, so ``mlp()`` eats N×1×28×28 batches directly.
    """
    layers: list[nn.Module] = [nn.Flatten()]
    width = in_features
    for hidden in hidden_sizes:
        layers.append(nn.Linear(width, hidden))
        if batch_norm:
            layers.append(nn.BatchNorm1d(hidden))
        layers.append(_activation(activation))
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = hidden
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


class LeNet5(nn.Module):
    """LeNet-5 for 28×28 input (LeCun et al., 1998, with MNIST's 28×28 padded to 32×32 by conv1).

    ``features``: 6@5×5 (pad 2) -> pool -> 16@5×5 -> pool;  ``classifier``: 400 -> 120 -> 84 -> classes.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, activation: str = "relu", pool: str = "max"):
        super().__init__()
        if pool not in ("max", "avg"):
            raise ValueError(f"lenet5: pool must be 'max' or 'avg', got {pool!r}")
        pool_layer = nn.MaxPool2d if pool == "max" else nn.AvgPool2d
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, kernel_size=5, padding=2), _activation(activation), pool_layer(2),
            nn.Conv2d(6, 16, kernel_size=5), _activation(activation), pool_layer(2),
        )
        self.classifier = nn.Sequential(
            nn.Linear(16 * 5 * 5, 120), _activation(activation),
            nn.Linear(120, 84), _activation(activation),
            nn.Linear(84, num_classes),
        )

    def forward(self, x):
        x = self.features(x)
        return self.classifier(x.flatten(1))


def lenet5(num_classes: int = 10, in_channels: int = 1, activation: str = "relu", pool: str = "max") -> LeNet5:
    """LeNet-5; ``activation="tanh", pool="avg"`` is LeCun's original (61,706 parameters for 10 classes)."""
    return LeNet5(num_classes, in_channels, activation, pool)


def small_cnn(num_classes: int = 10, in_channels: int = 1, width: int = 16, batch_norm: bool = True,
              dropout: float = 0.25) -> nn.Sequential:
    """A two-block CNN with batch normalisation for 28×28 images (Fashion-MNIST's benchmark
    table lists such 2-conv CNNs at 0.916–0.939):
    ``[Conv 3×3 -> BN -> ReLU] × 2 -> MaxPool`` at ``width`` and ``2 * width`` channels, then
    ``Flatten -> Dropout -> Linear(2w·7·7, 128) -> ReLU -> Linear(128, classes)``."""
    def block(cin: int, cout: int) -> list[nn.Module]:
        layers: list[nn.Module] = []
        for c_in in (cin, cout):
            layers.append(nn.Conv2d(c_in, cout, kernel_size=3, padding=1, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(cout))
            layers.append(nn.ReLU())
        return layers + [nn.MaxPool2d(2)]

    return nn.Sequential(
        *block(in_channels, width), *block(width, 2 * width),
        nn.Flatten(), nn.Dropout(dropout),
        nn.Linear(2 * width * 7 * 7, 128), nn.ReLU(),
        nn.Linear(128, num_classes),
    )
