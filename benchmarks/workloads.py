"""The benchmark workloads: the same small model in tinynn and in PyTorch, the same data,
the same optimizer, and one function per framework that runs a training step.

Each workload is built by ``build(name, framework, seed)``, which returns a ``Workload``
whose ``step()`` does forward, loss, zero_grad, backward and the optimizer step.
The tinynn model starts from the PyTorch model's weights (via ``state_dict``) so both
sides compute the same numbers; ``check_same_loss`` verifies that once.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

WORKLOADS = ("mlp", "lenet5", "resnet8", "transformer", "lstm")

DESCRIPTIONS = {
    "mlp": "MLP 784-256-256-10 ReLU, batch 128, SGD momentum 0.9",
    "lenet5": "LeNet-5 (ReLU, max pool) 1x28x28, batch 128, Adam",
    "resnet8": "ResNet-8 (CIFAR, 16/32/64 ch) 3x32x32, batch 32, SGD momentum 0.9",
    "transformer": "1 post-LN encoder layer d=128 h=4 ffn=512, seq 64, batch 16, Adam",
    "lstm": "LSTM 32->128, seq 50, batch 32, last hidden -> Linear, Adam",
}


@dataclass
class Workload:
    name: str
    framework: str
    model: object
    step: Callable[[], float]  # one training step; returns the loss as a float


def _data(name: str, seed: int):
    """Inputs and integer targets (float32 / int64 NumPy arrays) for a workload."""
    rng = np.random.default_rng(seed)
    shapes = {"mlp": (128, 784), "lenet5": (128, 1, 28, 28), "resnet8": (32, 3, 32, 32),
              "transformer": (16, 64, 128), "lstm": (32, 50, 32)}
    x = rng.standard_normal(shapes[name]).astype(np.float32)
    y = rng.integers(0, 10, size=shapes[name][0]).astype(np.int64)
    return x, y


# --------------------------------------------------------------------------------------
# model definitions, written once against a framework's ``nn`` namespace
# --------------------------------------------------------------------------------------

def _models(nn, functional):
    """Model classes for one framework (``nn`` is torch.nn or tinynn.nn)."""

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                                     nn.Linear(256, 10))

        def forward(self, x):
            return self.net(x)

    class LeNet5(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2))
            self.classifier = nn.Sequential(
                nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))

        def forward(self, x):
            return self.classifier(self.features(x))

    class BasicBlock(nn.Module):
        def __init__(self, in_channels, out_channels, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(out_channels)
            self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(out_channels)
            self.shortcut = nn.Sequential()
            if stride != 1 or in_channels != out_channels:
                self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                              nn.BatchNorm2d(out_channels))

        def forward(self, x):
            out = functional.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return functional.relu(out + self.shortcut(x))

    class ResNet8(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
            self.layers = nn.Sequential(BasicBlock(16, 16, 1), BasicBlock(16, 32, 2), BasicBlock(32, 64, 2))
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(64, 10)

        def forward(self, x):
            return self.fc(self.pool(self.layers(self.stem(x))).flatten(1))

    class Transformer(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.TransformerEncoderLayer(128, 4, dim_feedforward=512, dropout=0.0, batch_first=True)
            self.head = nn.Linear(128, 10)

        def forward(self, x):
            return self.head(self.encoder(x).mean(1))

    class LSTMClassifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(32, 128, batch_first=True)
            self.head = nn.Linear(128, 10)

        def forward(self, x):
            _, (h, _) = self.lstm(x)
            return self.head(h[-1])

    return {"mlp": MLP, "lenet5": LeNet5, "resnet8": ResNet8, "transformer": Transformer, "lstm": LSTMClassifier}


def _optimizer(optim, name: str, params):
    if name in ("mlp", "resnet8"):
        return optim.SGD(params, lr=0.01, momentum=0.9)
    return optim.Adam(params, lr=1e-3)


def build_torch(name: str, seed: int = 0) -> Workload:
    import torch
    torch.manual_seed(seed)
    model = _models(torch.nn, torch.nn.functional)[name]()
    x, y = (torch.from_numpy(a) for a in _data(name, seed))
    opt = _optimizer(torch.optim, name, model.parameters())
    loss_fn = torch.nn.CrossEntropyLoss()

    def step() -> float:
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return float(loss.detach())

    return Workload(name, "torch", model, step)


def build_tinynn(name: str, seed: int = 0, weights_from=None) -> Workload:
    """``weights_from``: a torch model whose state_dict the tinynn model loads (same starting point)."""
    import tinynn as tn
    import tinynn.nn as tnn
    import tinynn.nn.functional as tF
    import tinynn.optim as toptim
    tn.manual_seed(seed)
    model = _models(tnn, tF)[name]()
    if weights_from is not None:
        model.load_state_dict({k: v.detach().numpy().copy() for k, v in weights_from.state_dict().items()})
    x, y = (tn.from_numpy(a) for a in _data(name, seed))
    opt = _optimizer(toptim, name, model.parameters())
    loss_fn = tnn.CrossEntropyLoss()

    def step() -> float:
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return float(loss.item())

    return Workload(name, "tinynn", model, step)


def build_pair(name: str, seed: int = 0) -> tuple[Workload, Workload]:
    theirs = build_torch(name, seed)
    ours = build_tinynn(name, seed, weights_from=theirs.model)
    return ours, theirs


def training_flops(name: str) -> float:
    """FLOPs of one training step (forward + backward), counted by PyTorch's FlopCounterMode
    on the PyTorch model (the maths is the same on both sides). Optimizer FLOPs are not counted."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    work = build_torch(name)
    x, y = (torch.from_numpy(a) for a in _data(name, 0))
    with FlopCounterMode(display=False) as counter:
        loss = torch.nn.functional.cross_entropy(work.model(x), y)
        loss.backward()
    return float(counter.get_total_flops())
