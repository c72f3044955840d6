"""Recurrent sequence classifiers: Embedding (or raw features) -> RNN/LSTM/GRU -> Linear.

Input is either token ids (B, T) (give ``vocab_size``) or features (B, T, input_size).
With ``lengths`` (B,) the classifier reads each sequence's state at its own last step,
so padding after the end never reaches the logits; ``pooling="mean"`` averages the valid steps.
A bidirectional model concatenates the forward state at the last step with the backward
state at the first (where the backward pass ends). Without packed sequences the backward
direction starts at the end of the padded batch, so for bidirectional models padding after
a short sequence does reach its backward state: group sequences of equal length, or use
``pooling="mean"`` / a unidirectional model when lengths vary.
"""
from __future__ import annotations

import numpy as np

import tinynn as tn
import tinynn.nn as nn


class _RecurrentClassifier(nn.Module):
    cell_type = "RNN"

    def __init__(self, num_classes: int, hidden_size: int = 64, vocab_size: int | None = None,
                 embed_dim: int = 32, input_size: int | None = None, num_layers: int = 1,
                 bidirectional: bool = False, dropout: float = 0.0, padding_idx: int | None = None,
                 pooling: str = "last"):
        super().__init__()
        if (vocab_size is None) == (input_size is None):
            raise ValueError(f"{type(self).__name__}: give exactly one of vocab_size (token ids) or "
                             "input_size (feature vectors)")
        if pooling not in ("last", "mean"):
            raise ValueError(f"{type(self).__name__}: pooling must be 'last' or 'mean', got {pooling!r}")
        self.pooling, self.bidirectional, self.hidden_size = pooling, bidirectional, hidden_size
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=padding_idx) if vocab_size else None
        rnn_input = embed_dim if vocab_size else input_size
        rnn_class = getattr(nn, self.cell_type)
        self.rnn = rnn_class(rnn_input, hidden_size, num_layers=num_layers, batch_first=True,
                             bidirectional=bidirectional, dropout=dropout if num_layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(hidden_size * (2 if bidirectional else 1), num_classes)

    def forward(self, x, lengths=None):
        if self.embedding is not None:
            if x.ndim != 2:
                raise ValueError(f"{type(self).__name__}: expected token ids (B, T), got shape {x.shape}")
            x = self.embedding(x)
        elif x.ndim != 3:
            raise ValueError(f"{type(self).__name__}: expected features (B, T, input_size), got shape {x.shape}")
        outputs = self.rnn(x)[0]  # (B, T, H·directions)
        return self.fc(self.dropout(self._pool(outputs, lengths)))

    def _pool(self, outputs, lengths):
        batch, steps = outputs.shape[0], outputs.shape[1]
        lengths = np.full(batch, steps) if lengths is None else np.asarray(
            lengths.numpy() if isinstance(lengths, tn.Tensor) else lengths, dtype=np.int64)
        if lengths.min() < 1 or lengths.max() > steps:
            raise ValueError(f"{type(self).__name__}: lengths must lie in [1, {steps}], got {lengths.tolist()}")
        if self.pooling == "mean":
            valid = (np.arange(steps)[None, :] < lengths[:, None]).astype(outputs.dtype)
            valid = tn.from_numpy(valid).to(outputs.device).unsqueeze(-1)  # (B, T, 1)
            counts = tn.from_numpy(lengths.astype(outputs.dtype)).to(outputs.device).unsqueeze(-1)  # (B, 1)
            return (outputs * valid).sum(1) / counts
        rows = np.arange(batch)
        last = outputs[rows, lengths - 1]  # forward direction: state after each sequence's last token
        if not self.bidirectional:
            return last
        h = self.hidden_size
        return tn.cat([last[:, :h], outputs[:, 0, h:]], -1)  # backward direction ends at step 0


class RNNClassifier(_RecurrentClassifier):
    """Elman RNN (tanh) classifier."""
    cell_type = "RNN"


class LSTMClassifier(_RecurrentClassifier):
    """LSTM classifier."""
    cell_type = "LSTM"


class GRUClassifier(_RecurrentClassifier):
    """GRU classifier."""
    cell_type = "GRU"
