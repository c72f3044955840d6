"""Design patterns as reusable pieces.

* ``Residual``: ``y = f(x) + shortcut(x)`` — the skip that makes deep nets trainable (ResNet).
* ``DenseBlock``: each layer gets all earlier outputs, concatenated on channels (DenseNet).
* ``MultiTaskModel``: a shared trunk, one head per task, a weighted sum of per-task losses.
* ``Ensemble``: several models' predictions averaged (probabilities) or voted (labels).
* ``EarlyExitClassifier``: classifiers after several stages; at inference a sample leaves at the
  first exit whose confidence (max softmax probability) reaches ``threshold``.
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np

import tinynn as tn
import tinynn.nn as nn


class Residual(nn.Module):
    """``activation(body(x) + shortcut(x))``; ``shortcut`` defaults to the identity (shapes must match)."""

    def __init__(self, body: nn.Module, shortcut: nn.Module | None = None, activation: nn.Module | None = None):
        super().__init__()
        self.body = body
        self.shortcut = shortcut if shortcut is not None else nn.Identity()
        self.activation = activation if activation is not None else nn.Identity()

    def forward(self, x):
        out, skip = self.body(x), self.shortcut(x)
        if out.shape != skip.shape:
            raise ValueError(f"Residual: body output {out.shape} and shortcut output {skip.shape} differ; "
                             "pass a shortcut (e.g. a 1×1 conv) that maps the input to the body's shape")
        return self.activation(out + skip)


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU())


class DenseBlock(nn.Module):
    """``num_layers`` layers; layer ``i`` sees ``cat(x, y_1, ..., y_{i-1})`` and adds ``growth_rate`` channels.

    Output channels: ``in_channels + num_layers·growth_rate``. ``make_layer(in_ch, out_ch)`` builds a layer.
    """

    def __init__(self, in_channels: int, growth_rate: int, num_layers: int,
                 make_layer: Callable[[int, int], nn.Module] = conv_bn_relu):
        super().__init__()
        self.layers = nn.ModuleList([make_layer(in_channels + i * growth_rate, growth_rate)
                                     for i in range(num_layers)])
        self.out_channels = in_channels + num_layers * growth_rate

    def forward(self, x):
        features = [x]
        for layer in self.layers:
            features.append(layer(tn.cat(features, 1)))
        return tn.cat(features, 1)


class MultiTaskModel(nn.Module):
    """``forward(x) -> {task: head(trunk(x))}``; ``loss(outputs, targets)`` = Σ weight_t · loss_t."""

    def __init__(self, trunk: nn.Module, heads: Mapping[str, nn.Module], loss_fns: Mapping[str, Callable],
                 loss_weights: Mapping[str, float] | None = None):
        super().__init__()
        if set(heads) != set(loss_fns):
            raise ValueError(f"MultiTaskModel: heads {sorted(heads)} and loss_fns {sorted(loss_fns)} differ")
        self.trunk = trunk
        self.heads = nn.ModuleDict(dict(heads))
        self.loss_fns = dict(loss_fns)
        self.loss_weights = {name: 1.0 for name in heads} if loss_weights is None else dict(loss_weights)

    def forward(self, x) -> dict:
        shared = self.trunk(x)
        return {name: head(shared) for name, head in self.heads.items()}

    def loss(self, outputs: Mapping, targets: Mapping):
        """Returns ``(total, {task: loss})``: the weighted total to backpropagate and each task's loss."""
        per_task = {name: self.loss_fns[name](outputs[name], targets[name]) for name in self.heads}
        total = None
        for name, value in per_task.items():
            term = value * self.loss_weights.get(name, 1.0)
            total = term if total is None else total + term
        return total, per_task


class Ensemble(nn.Module):
    """Combine classifiers: ``mode="average"`` returns the mean of their softmax probabilities (B, C);
    ``mode="vote"`` returns the majority label (B,) (ties go to the smallest label)."""

    def __init__(self, models: Sequence[nn.Module], mode: str = "average"):
        super().__init__()
        if mode not in ("average", "vote"):
            raise ValueError(f"Ensemble: mode must be 'average' or 'vote', got {mode!r}")
        if not models:
            raise ValueError("Ensemble: needs at least one model")
        self.models = nn.ModuleList(list(models))
        self.mode = mode

    def forward(self, x):
        logits = [model(x) for model in self.models]
        if self.mode == "average":
            return tn.stack([tn.softmax(z, -1) for z in logits], 0).mean(0)
        votes = np.stack([z.detach().numpy().argmax(-1) for z in logits], 0)  # (M, B)
        num_classes = logits[0].shape[-1]
        counts = np.stack([(votes == c).sum(0) for c in range(num_classes)], -1)  # (B, C)
        return tn.from_numpy(counts.argmax(-1).astype(np.int64))


class EarlyExitClassifier(nn.Module):
    """Stages with an exit classifier after each (BranchyNet, Teerapittayanon et al. 2016).

    Training (``model.train()``): ``forward`` returns every exit's logits; ``loss`` weighs their
    cross-entropies. Inference (``model.eval()``): ``forward`` returns ``(logits, exit_index)``; each
    sample takes the logits of the first exit whose max probability is ≥ ``threshold`` (the last exit
    always answers), and later stages run only for the samples still undecided.
    """

    def __init__(self, stages: Sequence[nn.Module], exits: Sequence[nn.Module], threshold: float = 0.9):
        super().__init__()
        if len(stages) != len(exits):
            raise ValueError(f"EarlyExitClassifier: {len(stages)} stages but {len(exits)} exits")
        self.stages = nn.ModuleList(list(stages))
        self.exits = nn.ModuleList(list(exits))
        self.threshold = threshold

    def forward(self, x):
        if self.training:
            outputs = []
            for stage, exit_head in zip(self.stages, self.exits):
                x = stage(x)
                outputs.append(exit_head(x))
            return outputs
        return self._adaptive_forward(x)

    def _adaptive_forward(self, x):
        batch = x.shape[0]
        result, exit_index = None, np.full(batch, -1, dtype=np.int64)
        active = np.arange(batch)  # rows of the original batch still undecided
        last = len(self.stages) - 1
        for i, (stage, exit_head) in enumerate(zip(self.stages, self.exits)):
            x = stage(x)
            logits = exit_head(x)
            if result is None:
                result = np.zeros((batch, logits.shape[-1]), dtype=logits.dtype)
            confidence = tn.softmax(logits.detach(), -1).numpy().max(-1)
            done = np.ones(len(active), dtype=bool) if i == last else confidence >= self.threshold
            result[active[done]] = logits.detach().numpy()[done]
            exit_index[active[done]] = i
            active = active[~done]
            if active.size == 0:
                break
            keep = np.nonzero(~done)[0]
            x = x[tn.from_numpy(keep)]
        return tn.from_numpy(result), tn.from_numpy(exit_index)

    def loss(self, outputs: Sequence, target, weights: Sequence[float] | None = None):
        import tinynn.nn.functional as F
        weights = [1.0] * len(outputs) if weights is None else list(weights)
        total = None
        for w, logits in zip(weights, outputs):
            term = F.cross_entropy(logits, target) * w
            total = term if total is None else total + term
        return total
