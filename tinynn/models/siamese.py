"""Siamese networks for metric learning: one shared embedding network applied to two or three inputs.

* contrastive loss (Hadsell et al., 2006), ``same`` = 1 for a matching pair:
  ``same·d² + (1 - same)·max(0, margin - d)²``, averaged, with ``d = ‖e1 - e2‖``;
* triplet loss (Schroff et al., 2015): ``max(0, ‖a - p‖ - ‖a - n‖ + margin)``, averaged.
"""
from __future__ import annotations

import tinynn.nn as nn


def _pairwise_distance(a, b, eps: float = 1e-6):
    """Euclidean distance per row, ``‖a - b + eps‖`` as ``F.pairwise_distance`` computes it."""
    diff = a - b + eps
    return (diff * diff).sum(-1).sqrt()


def contrastive_loss(embedding1, embedding2, same, margin: float = 1.0):
    same = same.to(embedding1.dtype)
    d = _pairwise_distance(embedding1, embedding2)
    push = (margin - d).clamp(min=0.0)
    return (same * d * d + (1 - same) * push * push).mean()


def triplet_loss(anchor, positive, negative, margin: float = 1.0):
    d_pos = _pairwise_distance(anchor, positive)
    d_neg = _pairwise_distance(anchor, negative)
    return (d_pos - d_neg + margin).clamp(min=0.0).mean()


class SiameseNetwork(nn.Module):
    """``forward(x1, x2[, x3])`` embeds each input with the same ``embedding_net`` (shared weights).

    The default embedding network is a small CNN for 28×28 images (``in_channels``×28×28 -> ``embedding_dim``).
    """

    def __init__(self, embedding_net: nn.Module | None = None, embedding_dim: int = 32, in_channels: int = 1):
        super().__init__()
        self.embedding_net = embedding_net if embedding_net is not None else nn.Sequential(
            nn.Conv2d(in_channels, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, embedding_dim),
        )

    def embed(self, x):
        return self.embedding_net(x)

    def forward(self, *inputs):
        if not 1 <= len(inputs) <= 3:
            raise ValueError(f"SiameseNetwork: expected 1 to 3 inputs, got {len(inputs)}")
        embeddings = tuple(self.embed(x) for x in inputs)
        return embeddings[0] if len(embeddings) == 1 else embeddings

