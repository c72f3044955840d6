"""Sequence helpers: ``pad_sequence``."""
from __future__ import annotations

from ... import ops
from ...tensor import Tensor


def pad_sequence(sequences, batch_first: bool = False, padding_value: float = 0.0,
                 padding_side: str = "right") -> Tensor:
    """Stack variable-length sequences (L_i, *) into (L_max, B, *) (or (B, L_max, *) with batch_first),
    padding with ``padding_value`` (differentiable)."""
    sequences = list(sequences)
    if not sequences:
        raise ValueError("pad_sequence: received an empty list of sequences")
    if padding_side not in ("left", "right"):
        raise ValueError(f"pad_sequence: padding_side must be 'left' or 'right', got {padding_side!r}")
    trailing = tuple(sequences[0].shape[1:])
    for s in sequences:
        if tuple(s.shape[1:]) != trailing:
            raise ValueError(f"pad_sequence: all sequences must share their trailing dims, got {trailing} and "
                             f"{tuple(s.shape[1:])}")
    longest = max(s.shape[0] for s in sequences)
    padded = []
    for s in sequences:
        missing = longest - s.shape[0]
        widths = [0, 0] * len(trailing) + ([0, missing] if padding_side == "right" else [missing, 0])
        padded.append(ops.pad(s, widths, value=padding_value) if missing else s)
    return ops.stack(padded, 0 if batch_first else 1)
