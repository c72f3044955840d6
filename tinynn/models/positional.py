"""Ways to tell attention where each token is.

* ``SinusoidalPositionalEncoding``: Vaswani et al.'s fixed sines and cosines, added to the embeddings,
  ``PE[pos, 2i] = sin(pos / 10000^(2i/d))``, ``PE[pos, 2i+1] = cos(pos / 10000^(2i/d))``.
* ``LearnedPositionalEmbedding``: one trained vector per position (BERT, GPT-2), added likewise.
* ``RotaryEmbedding`` (RoPE, Su et al. 2021): rotates each (query, key) channel pair by an angle
  proportional to the position, so ``q·k`` depends only on the *relative* offset; applied inside attention.
* ``alibi_bias`` (ALiBi, Press et al. 2021): no embedding at all; each head adds ``-slope·|i-j|`` to its
  attention scores, a linear penalty on distance that extrapolates to longer sequences.
"""
from __future__ import annotations

import math

import numpy as np

import tinynn as tn
import tinynn.nn as nn


def sinusoidal_table(max_len: int, d_model: int) -> np.ndarray:
    """The ``max_len × d_model`` float32 table of sines (even channels) and cosines (odd channels)."""
    position = np.arange(max_len, dtype=np.float64)[:, None]
    div_term = np.exp(np.arange(0, d_model, 2, dtype=np.float64) * (-math.log(10000.0) / d_model))
    table = np.zeros((max_len, d_model), dtype=np.float64)
    table[:, 0::2] = np.sin(position * div_term)
    table[:, 1::2] = np.cos(position * div_term[: d_model // 2])
    return table.astype(np.float32)


def _check_length(name: str, length: int, max_len: int) -> None:
    if length > max_len:
        raise ValueError(f"{name}: sequence length {length} exceeds max_len={max_len}")


class SinusoidalPositionalEncoding(nn.Module):
    """``x + PE[:T]`` for ``x`` of shape (B, T, d_model), then dropout. The table is a non-persistent buffer."""

    def __init__(self, d_model: int, max_len: int = 512, dropout: float = 0.0):
        super().__init__()
        self.max_len = max_len
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("pe", tn.from_numpy(sinusoidal_table(max_len, d_model)), persistent=False)

    def forward(self, x, offset: int = 0):
        _check_length("SinusoidalPositionalEncoding", offset + x.shape[1], self.max_len)
        return self.dropout(x + self.pe[offset:offset + x.shape[1]].to(x.dtype))


class LearnedPositionalEmbedding(nn.Module):
    """``x + E[pos]`` with a trained ``max_len × d_model`` table (``weight`` inside ``embedding``)."""

    def __init__(self, d_model: int, max_len: int = 512, dropout: float = 0.0):
        super().__init__()
        self.max_len = max_len
        self.embedding = nn.Embedding(max_len, d_model)
        nn.init.normal_(self.embedding.weight, 0.0, 0.02)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, offset: int = 0):
        _check_length("LearnedPositionalEmbedding", offset + x.shape[1], self.max_len)
        positions = tn.arange(offset, offset + x.shape[1], device=x.device)
        return self.dropout(x + self.embedding(positions))


class RotaryEmbedding(nn.Module):
    """RoPE on (B, H, T, head_dim) queries/keys, in the "rotate half" layout (GPT-NeoX, LLaMA in HF).

    Channel ``i`` and ``i + d/2`` form a pair rotated by ``pos · base^(-2i/d)``:
    ``rope(x) = x·cos + rotate_half(x)·sin`` with ``rotate_half([x1, x2]) = [-x2, x1]``.
    """

    def __init__(self, head_dim: int, max_len: int = 512, base: float = 10000.0):
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"RotaryEmbedding: head_dim must be even, got {head_dim}")
        self.max_len = max_len
        inv_freq = base ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
        angles = np.arange(max_len, dtype=np.float64)[:, None] * inv_freq[None, :]
        angles = np.concatenate([angles, angles], axis=1)  # (max_len, head_dim)
        self.register_buffer("cos", tn.from_numpy(np.cos(angles).astype(np.float32)), persistent=False)
        self.register_buffer("sin", tn.from_numpy(np.sin(angles).astype(np.float32)), persistent=False)

    @staticmethod
    def rotate_half(x):
        x1, x2 = x.chunk(2, -1)
        return tn.cat([-x2, x1], -1)

    def forward(self, x, offset: int = 0):
        length = x.shape[-2]
        _check_length("RotaryEmbedding", offset + length, self.max_len)
        cos = self.cos[offset:offset + length].to(x.dtype)
        sin = self.sin[offset:offset + length].to(x.dtype)
        return x * cos + self.rotate_half(x) * sin


def alibi_slopes(num_heads: int) -> np.ndarray:
    """Head ``h`` (1-based) gets slope ``2^(-8h/n)`` for ``n`` a power of two; other counts interleave
    the slopes of the next power of two, as in the paper's reference code."""
    def power_of_two_slopes(n: int) -> list:
        start = 2.0 ** (-8.0 / n)
        return [start ** (i + 1) for i in range(n)]

    if math.log2(num_heads).is_integer():
        slopes = power_of_two_slopes(num_heads)
    else:
        closest = 2 ** math.floor(math.log2(num_heads))
        slopes = power_of_two_slopes(closest) + power_of_two_slopes(2 * closest)[0::2][: num_heads - closest]
    return np.asarray(slopes, dtype=np.float32)


def alibi_bias(num_heads: int, query_len: int, key_len: int, causal: bool = False, offset: int = 0) -> np.ndarray:
    """(H, Tq, Tk) additive scores ``-slope_h · |i - j|`` (queries sit at ``offset + i``). With ``causal``
    the future is left to the attention mask; the bias is then ``-slope·(i - j)`` for ``j ≤ i``."""
    q_pos = np.arange(offset, offset + query_len)[:, None]
    k_pos = np.arange(key_len)[None, :]
    distance = np.abs(q_pos - k_pos) if not causal else np.maximum(q_pos - k_pos, 0)
    return -alibi_slopes(num_heads)[:, None, None] * distance[None].astype(np.float32)
