"""``MultiheadAttention``: PyTorch's layer, parameters and masks.

    MultiHead(Q, K, V) = concat(head_1, ..., head_h) W_out^T + b_out
    head_i = softmax(Q W_q,i^T (K W_k,i^T)^T / sqrt(d) + mask) V W_v,i^T

Shapes (``batch_first=False``): query (L, N, E), key (S, N, kdim), value (S, N, vdim);
with ``batch_first=True`` the first two dims are swapped; unbatched inputs are (L, E).

Masks, as in PyTorch:
* ``attn_mask``: (L, S) or (N * num_heads, L, S); bool (True = may NOT attend) or
  float (added to the scores).
* ``key_padding_mask``: (N, S) (or (S,) unbatched); bool (True = padding, ignored) or float.
Both become one additive float mask. The attention itself is the fused
``scaled_dot_product_attention`` op when the weights are not asked for
(``need_weights=False``); otherwise the scores are materialised
(matmul, softmax, matmul) so the weights can be returned.
"""
from __future__ import annotations

import math

import numpy as np

from .. import ops
from ..ops.attention import scaled_dot_product_attention
from ..autograd.function import Function
from ..tensor import Tensor
from . import functional as F
from . import init
from .linear import Linear
from .module import Module
from .parameter import Parameter

__all__ = ["MultiheadAttention", "NonDynamicallyQuantizableLinear"]


class NonDynamicallyQuantizableLinear(Linear):
    """PyTorch's name for the output projection's class (a plain ``Linear``)."""


class UnbindQKV(Function):
    """(3, ...) -> its three slices q, k, v, as one op: the backward stacks the three
    gradients in one copy (``qkv[0]``, ``qkv[1]``, ``qkv[2]`` would each scatter into a
    zero-filled (3, ...) array, and the engine would then add the three)."""

    @staticmethod
    def forward(ctx, qkv):
        return qkv[0], qkv[1], qkv[2]

    @staticmethod
    def backward(ctx, grad_q, grad_k, grad_v):  # d qkv = stack(dq, dk, dv)
        return ops.stack([grad_q, grad_k, grad_v])


def _new_parameter(*shape, device=None, dtype=None) -> Parameter:
    from ..creation import empty
    return Parameter(empty(*shape, device=device, dtype=dtype))


class MultiheadAttention(Module):
    """Attention with ``num_heads`` heads of size ``embed_dim // num_heads``.

    Parameters (PyTorch's names): ``in_proj_weight`` (3E, E) and ``in_proj_bias`` (3E,);
    or ``q_proj_weight`` (E, E), ``k_proj_weight`` (E, kdim), ``v_proj_weight`` (E, vdim) when
    kdim/vdim differ from embed_dim; ``out_proj`` (a Linear); ``bias_k``/``bias_v`` (1, 1, E)
    with ``add_bias_kv``. ``forward`` returns ``(output, weights)``; weights is None unless
    ``need_weights``, and is averaged over heads unless ``average_attn_weights=False``.
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False, kdim: int | None = None,
                 vdim: int | None = None, batch_first: bool = False, device=None, dtype=None) -> None:
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(f"MultiheadAttention: embed_dim and num_heads must be greater than 0, "
                             f"got embed_dim={embed_dim} and num_heads={num_heads} instead")
        if embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim ({embed_dim}) must be divisible by num_heads "
                             f"({num_heads})")
        self.embed_dim = embed_dim
        self.kdim = kdim if kdim is not None else embed_dim
        self.vdim = vdim if vdim is not None else embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.num_heads = num_heads
        self.dropout = dropout
        self.batch_first = batch_first
        self.head_dim = embed_dim // num_heads
        factory = {"device": device, "dtype": dtype}
        if self._qkv_same_embed_dim:
            self.in_proj_weight = _new_parameter(3 * embed_dim, embed_dim, **factory)
            self.register_parameter("q_proj_weight", None)
            self.register_parameter("k_proj_weight", None)
            self.register_parameter("v_proj_weight", None)
        else:
            self.q_proj_weight = _new_parameter(embed_dim, embed_dim, **factory)
            self.k_proj_weight = _new_parameter(embed_dim, self.kdim, **factory)
            self.v_proj_weight = _new_parameter(embed_dim, self.vdim, **factory)
            self.register_parameter("in_proj_weight", None)
        if bias:
            self.in_proj_bias = _new_parameter(3 * embed_dim, **factory)
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = NonDynamicallyQuantizableLinear(embed_dim, embed_dim, bias=bias, **factory)
        if add_bias_kv:
            self.bias_k = _new_parameter(1, 1, embed_dim, **factory)
            self.bias_v = _new_parameter(1, 1, embed_dim, **factory)
        else:
            self.bias_k = self.bias_v = None
        self.add_zero_attn = add_zero_attn
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        """PyTorch's init: Xavier-uniform projections, zero biases, Xavier-normal bias_k/bias_v."""
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            for w in (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
                init.xavier_uniform_(w)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)
        if self.bias_k is not None:
            init.xavier_normal_(self.bias_k)
            init.xavier_normal_(self.bias_v)

    # --- forward -------------------------------------------------------------------------
    def forward(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Tensor | None = None,
                need_weights: bool = True, attn_mask: Tensor | None = None, average_attn_weights: bool = True,
                is_causal: bool = False):
        batched = self._check_inputs(query, key, value)
        self_attention = query is key and key is value
        if not batched:  # (L, E) -> (L, 1, E), in the sequence-first layout used below
            query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        seq_dim = 1 if self.batch_first and batched else 0  # where the sequence dim of the inputs is
        batch = query.shape[1 - seq_dim]
        tgt_len, src_len = query.shape[seq_dim], key.shape[seq_dim]

        mask, is_causal = self._merged_mask(attn_mask, key_padding_mask, is_causal, need_weights, query,
                                            batch, tgt_len, src_len)
        q, k, v = self._project_to_heads(query, key, value, self_attention, seq_dim)  # (N, h, L|S, d)
        if self.bias_k is not None:
            k, v, mask = self._append_bias_kv(k, v, mask)
        if self.add_zero_attn:
            k, v, mask = self._append_zero_attn(k, v, mask)

        dropout_p = self.dropout if self.training else 0.0
        if need_weights:
            out, weights = _attention_with_weights(q, k, v, mask, dropout_p)
            weights = weights.mean(1) if average_attn_weights else weights
            if not batched:
                weights = weights.squeeze(0)
        else:
            out = scaled_dot_product_attention(q, k, v, attn_mask=_as_tensor(mask, q), dropout_p=dropout_p,
                                               is_causal=is_causal)
            weights = None
        # (N, h, L, d) -> (L, N, E) or (N, L, E), then the output projection
        out = out.permute(2, 0, 1, 3) if seq_dim == 0 else out.permute(0, 2, 1, 3)
        out = self.out_proj(out.reshape(*out.shape[:2], self.embed_dim))
        if not batched:
            out = out.squeeze(1)
        return out, weights

    def _check_inputs(self, query, key, value) -> bool:
        for name, t in (("query", query), ("key", key), ("value", value)):
            if not isinstance(t, Tensor):
                raise TypeError(f"MultiheadAttention: {name} must be a Tensor, got {type(t).__name__}")
        if query.ndim not in (2, 3):
            raise ValueError(f"MultiheadAttention: query should be unbatched 2D or batched 3D tensor but received "
                             f"{query.ndim}-D query tensor (shape {tuple(query.shape)})")
        if key.ndim != query.ndim or value.ndim != query.ndim:
            raise ValueError(f"MultiheadAttention: query, key and value must have the same number of dims, got "
                             f"query {tuple(query.shape)}, key {tuple(key.shape)}, value {tuple(value.shape)}")
        for name, t, size in (("query", query, self.embed_dim), ("key", key, self.kdim), ("value", value, self.vdim)):
            if t.shape[-1] != size:
                raise ValueError(f"MultiheadAttention: was expecting {name} embedding dimension of {size}, "
                                 f"but got {t.shape[-1]} ({name} shape {tuple(t.shape)})")
        if key.shape[:-1] != value.shape[:-1]:
            raise ValueError(f"MultiheadAttention: key shape {tuple(key.shape)} does not match value shape "
                             f"{tuple(value.shape)} (apart from the last dim)")
        batched = query.ndim == 3
        batch_dim = 0 if self.batch_first else 1
        if batched and key.shape[batch_dim] != query.shape[batch_dim]:
            raise ValueError(f"MultiheadAttention: query and key batch sizes differ: query {tuple(query.shape)}, "
                             f"key {tuple(key.shape)} (batch_first={self.batch_first})")
        return batched

    def _project_to_heads(self, query, key, value, self_attention: bool, seq_dim: int):
        """The input projections, reshaped to heads: (N, num_heads, seq, head_dim) each."""
        E, h, d = self.embed_dim, self.num_heads, self.head_dim
        # (seq, N, h, d) -> (N, h, seq, d), or (N, seq, h, d) -> (N, h, seq, d)
        to_heads = (1, 2, 0, 3) if seq_dim == 0 else (0, 2, 1, 3)
        if self_attention and self._qkv_same_embed_dim:
            # One matmul for q, k and v: (.., 3E) -> (.., 3, h, d) -> (3, N, h, seq, d)
            qkv = F.linear(query, self.in_proj_weight, self.in_proj_bias)
            qkv = qkv.reshape(*qkv.shape[:2], 3, h, d).permute(2, *(i if i < 2 else i + 1 for i in to_heads))
            return UnbindQKV.apply(qkv)
        weights = (self.in_proj_weight[:E], self.in_proj_weight[E:2 * E], self.in_proj_weight[2 * E:]) \
            if self._qkv_same_embed_dim else (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight)
        b = self.in_proj_bias
        biases = (b[:E], b[E:2 * E], b[2 * E:]) if b is not None else (None, None, None)
        heads = []
        for x, w, bias in zip((query, key, value), weights, biases):
            y = F.linear(x, w, bias)
            heads.append(y.reshape(*y.shape[:2], h, d).permute(*to_heads))
        return tuple(heads)

    def _merged_mask(self, attn_mask, key_padding_mask, is_causal, need_weights, query, batch, tgt_len, src_len):
        """attn_mask and key_padding_mask as ONE additive float array broadcastable to
        (N, h, L, S) (or None), and whether to pass ``is_causal`` to the attention instead."""
        xp, dtype = query.xp, query.dtype
        if is_causal and attn_mask is None:
            raise RuntimeError("MultiheadAttention: Need attn_mask if specifying the is_causal hint. You may use "
                               "Transformer.generate_square_subsequent_mask to create this mask.")
        kpm = _additive_mask(key_padding_mask, "key_padding_mask", xp, dtype)
        if kpm is not None:
            if tuple(kpm.shape) != (batch, src_len):
                raise ValueError(f"MultiheadAttention: expecting key_padding_mask shape of {(batch, src_len)}, but "
                                 f"got {tuple(key_padding_mask.shape)}")
            kpm = kpm.reshape(batch, 1, 1, src_len)
        if is_causal and kpm is None and not need_weights:
            return None, True  # the fused attention applies the causal mask itself
        mask = _additive_mask(attn_mask, "attn_mask", xp, dtype)
        if mask is not None:
            if mask.ndim == 2:
                if tuple(mask.shape) != (tgt_len, src_len):
                    raise ValueError(f"MultiheadAttention: The shape of the 2D attn_mask is {tuple(mask.shape)}, "
                                     f"but should be {(tgt_len, src_len)}.")
            elif mask.ndim == 3:
                expected = (batch * self.num_heads, tgt_len, src_len)
                if tuple(mask.shape) != expected:
                    raise ValueError(f"MultiheadAttention: The shape of the 3D attn_mask is {tuple(mask.shape)}, "
                                     f"but should be {expected}.")
                mask = mask.reshape(batch, self.num_heads, tgt_len, src_len)
            else:
                raise ValueError(f"MultiheadAttention: attn_mask's dimension {mask.ndim} is not supported "
                                 f"(shape {tuple(mask.shape)}); expected (L, S) or (N * num_heads, L, S)")
        if kpm is not None:
            mask = kpm if mask is None else mask + kpm
        return mask, False

    def _append_bias_kv(self, k, v, mask):
        """add_bias_kv: one more key/value position holding the learnt bias_k / bias_v."""
        n, h, _, d = k.shape
        bias_k = self.bias_k.reshape(1, h, 1, d).expand(n, h, 1, d)
        bias_v = self.bias_v.reshape(1, h, 1, d).expand(n, h, 1, d)
        return ops.cat([k, bias_k], dim=2), ops.cat([v, bias_v], dim=2), _pad_last(mask)

    @staticmethod
    def _append_zero_attn(k, v, mask):
        """add_zero_attn: one more key/value position of zeros."""
        from ..creation import zeros
        zero = zeros(*k.shape[:2], 1, k.shape[3], dtype=k.dtype, device=k.device)
        return ops.cat([k, zero], dim=2), ops.cat([v, zero], dim=2), _pad_last(mask)

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, batch_first={self.batch_first}"


# --- helpers --------------------------------------------------------------------------
def _additive_mask(mask, name: str, xp, dtype):
    """A bool mask (True = masked out) as -inf/0, a float mask as is; a raw array or None."""
    if mask is None:
        return None
    array = mask.data if isinstance(mask, Tensor) else xp.asarray(mask)
    if array.dtype == np.bool_:
        return xp.where(array, xp.asarray(-np.inf, dtype=dtype), xp.zeros((), dtype=dtype))
    if array.dtype.kind != "f":
        raise TypeError(f"MultiheadAttention: only bool and floating types of {name} are supported, "
                        f"got {array.dtype}")
    return array.astype(dtype, copy=False)


def _pad_last(mask):
    """One more (unmasked) key position: pad the mask's last dim with a 0 column."""
    if mask is None:
        return None
    xp = _array_module(mask)
    width = [(0, 0)] * (mask.ndim - 1) + [(0, 1)]
    return xp.pad(mask, width)


def _array_module(array):
    from ..backend.device import get_array_module
    return get_array_module(array)


def _as_tensor(array, like: Tensor):
    return None if array is None else Tensor._make(array, like.device)


def _attention_with_weights(q, k, v, mask, dropout_p: float):
    """softmax(q k^T / sqrt(d) + mask) v, keeping the probabilities: (out, weights (N, h, L, S))."""
    scores = (q * (1.0 / math.sqrt(q.shape[-1]))) @ k.transpose(-2, -1)
    if mask is not None:
        scores = scores + _as_tensor(mask, q)
    weights = ops.softmax(scores, dim=-1)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p, training=True)
    return weights @ v, weights
