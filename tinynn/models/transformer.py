"""Transformers built from visible parts: attention, feed-forward, norms, positions, masks.

The layers keep PyTorch's parameter names (``self_attn.in_proj_weight``, ``self_attn.out_proj``,
``multihead_attn``, ``linear1``, ``linear2``, ``norm1``...), so a standard configuration
(LayerNorm, ReLU/GELU, no RoPE/ALiBi) loads weights from ``torch.nn.TransformerEncoderLayer``
/ ``TransformerDecoderLayer`` through ``load_state_dict``. The variants it adds:

* ``norm_first``: post-LN ``x = norm(x + f(x))`` (the 2017 paper) or pre-LN ``x = x + f(norm(x))``
  (GPT-2 onwards: a clean residual path, trains without warm-up),
* ``norm="rmsnorm"``: ``x / sqrt(mean(x²) + eps) · g`` (no centring, no bias),
* ``activation``: ``relu``, ``gelu``, or the gated ``swiglu`` (``silu(xW)·(xV)``) and ``geglu``
  (``gelu(xW)·(xV)``), whose ``linear1`` produces both halves,
* ``positional``: ``sinusoidal``, ``learned``, ``rope`` (inside attention) or ``alibi`` (a score bias).

Masks follow PyTorch: boolean ``True`` means "may not attend"; float masks are added to the scores;
``key_padding_mask`` is (B, S) with ``True`` at padding.
"""
from __future__ import annotations

import math

import numpy as np

import tinynn as tn
import tinynn.nn as nn
import tinynn.nn.functional as F

from .positional import (LearnedPositionalEmbedding, RotaryEmbedding, SinusoidalPositionalEncoding, alibi_bias)

POSITIONALS = ("sinusoidal", "learned", "rope", "alibi", "none")
ACTIVATIONS = ("relu", "gelu", "swiglu", "geglu")


def generate_square_subsequent_mask(size: int, device=None):
    """(size, size) boolean look-ahead mask: ``True`` above the diagonal (position i may not see j > i)."""
    return tn.from_numpy(np.triu(np.ones((size, size), dtype=np.bool_), k=1)).to(device or "cpu")


def padding_mask(tokens, pad_idx: int):
    """(B, T) boolean mask, ``True`` where ``tokens == pad_idx``."""
    return tokens.eq(pad_idx)


class RMSNorm(nn.Module):
    """``x / sqrt(mean(x², last dim) + eps) · weight`` (Zhang & Sennrich, 2019)."""

    def __init__(self, normalized_shape: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(tn.ones(normalized_shape))

    def forward(self, x):
        mean_square = (x * x).mean(-1, keepdim=True)
        return x * (mean_square + self.eps).rsqrt() * self.weight


def make_norm(kind: str, d_model: int, eps: float = 1e-5) -> nn.Module:
    if kind == "layernorm":
        return nn.LayerNorm(d_model, eps=eps)
    if kind == "rmsnorm":
        return nn.RMSNorm(d_model, eps=eps) if hasattr(nn, "RMSNorm") else RMSNorm(d_model, eps=eps)
    raise ValueError(f"norm must be 'layernorm' or 'rmsnorm', got {kind!r}")


def _as_additive(mask, dtype):
    """Boolean mask (True = blocked) -> 0 / -inf floats; float masks are used as they are."""
    if mask.dtype == np.bool_:
        return tn.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(mask, float("-inf"))
    return mask.to(dtype)


def _combine_masks(attn_mask, key_padding_mask, batch: int, num_heads: int, dtype):
    """One additive float mask broadcastable to the scores (B, H, Tq, Tk), or None.

    ``attn_mask``: (Tq, Tk) or PyTorch's (B·H, Tq, Tk); ``key_padding_mask``: (B, Tk).
    """
    total = None
    if attn_mask is not None:
        total = _as_additive(attn_mask, dtype)
        if total.ndim == 3:
            total = total.reshape(batch, num_heads, *total.shape[1:])
    if key_padding_mask is not None:
        pad = _as_additive(key_padding_mask, dtype)[:, None, None, :]  # (B, 1, 1, Tk)
        total = pad if total is None else total + pad
    return total


class MultiheadAttention(nn.Module):
    """Multi-head attention with PyTorch's parameters (``in_proj_weight`` = [W_q; W_k; W_v], ``out_proj``).

    ``attention(Q, K, V) = softmax(Q Kᵀ / sqrt(d_head) + bias + mask) V`` per head, heads concatenated
    and projected by ``out_proj``. Inputs are batch-first (B, T, E). ``rotary`` rotates queries and
    keys (RoPE); ``alibi=True`` adds ALiBi's distance penalty.
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 rotary: RotaryEmbedding | None = None, alibi: bool = False, causal_alibi: bool = False):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, embed_dim // num_heads
        self.dropout = dropout
        self.in_proj_weight = nn.Parameter(tn.empty(3 * embed_dim, embed_dim))
        self.in_proj_bias = nn.Parameter(tn.zeros(3 * embed_dim)) if bias else None
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        nn.init.xavier_uniform_(self.in_proj_weight)
        if bias:
            nn.init.zeros_(self.out_proj.bias)
        self.rotary = [rotary]  # a list, so the shared rotary module is not registered once per layer
        self.alibi, self.causal_alibi = alibi, causal_alibi
        self.last_attention_weights = None  # (B, H, Tq, Tk) of the last forward, for plots

    def _project(self, x, index: int):
        """(B, T, E) -> (B, H, T, d_head) with rows ``index·E : (index+1)·E`` of the input projection."""
        e = self.embed_dim
        weight = self.in_proj_weight[index * e:(index + 1) * e]
        y = x @ weight.transpose(0, 1)
        if self.in_proj_bias is not None:
            y = y + self.in_proj_bias[index * e:(index + 1) * e]
        batch, length = x.shape[0], x.shape[1]
        return y.reshape(batch, length, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, query, key, value, key_padding_mask=None, need_weights: bool = False, attn_mask=None,
                average_attn_weights: bool = True, query_offset: int = 0):
        if query.ndim != 3 or key.ndim != 3 or value.ndim != 3:
            raise ValueError(f"MultiheadAttention: expected batch-first (B, T, E) inputs, got query {query.shape}, "
                             f"key {key.shape}, value {value.shape}")
        q, k, v = self._project(query, 0), self._project(key, 1), self._project(value, 2)
        rotary = self.rotary[0]
        if rotary is not None:
            q, k = rotary(q, offset=query_offset), rotary(k)
        scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.head_dim))  # (B, H, Tq, Tk)
        if self.alibi:
            bias = alibi_bias(self.num_heads, q.shape[2], k.shape[2], self.causal_alibi, offset=query_offset)
            scores = scores + tn.from_numpy(bias).to(query.device).to(scores.dtype)
        mask = _combine_masks(attn_mask, key_padding_mask, scores.shape[0], self.num_heads, scores.dtype)
        if mask is not None:
            scores = scores + mask
        weights = tn.softmax(scores, -1)
        self.last_attention_weights = weights.detach()
        attended = F.dropout(weights, p=self.dropout, training=self.training) @ v  # (B, H, Tq, d_head)
        batch, length = attended.shape[0], attended.shape[2]
        out = self.out_proj(attended.transpose(1, 2).reshape(batch, length, self.embed_dim))
        if not need_weights:
            return out, None
        return out, (weights.mean(1) if average_attn_weights else weights)


class _FeedForwardMixin:
    """``linear2(dropout(act(linear1(x))))``; gated activations split ``linear1``'s output in two."""

    def _init_feed_forward(self, d_model: int, dim_feedforward: int, dropout: float, activation: str) -> None:
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        self.activation_name = activation
        gated = activation in ("swiglu", "geglu")
        self.linear1 = nn.Linear(d_model, dim_feedforward * (2 if gated else 1))
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)

    def _feed_forward(self, x):
        h = self.linear1(x)
        act = self.activation_name
        if act == "relu":
            h = F.relu(h)
        elif act == "gelu":
            h = F.gelu(h)
        else:
            gate, up = h.chunk(2, -1)
            gate = gate * tn.sigmoid(gate) if act == "swiglu" else F.gelu(gate)  # silu(g)·u or gelu(g)·u
            h = gate * up
        return self.linear2(self.dropout(h))


class TransformerEncoderLayer(_FeedForwardMixin, nn.Module):
    """Self-attention and feed-forward, each wrapped in a residual connection and a norm."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation: str = "relu", norm_first: bool = False, norm: str = "layernorm",
                 layer_norm_eps: float = 1e-5, rotary: RotaryEmbedding | None = None, alibi: bool = False):
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, rotary=rotary, alibi=alibi)
        self._init_feed_forward(d_model, dim_feedforward, dropout, activation)
        self.norm_first = norm_first
        self.norm1 = make_norm(norm, d_model, layer_norm_eps)
        self.norm2 = make_norm(norm, d_model, layer_norm_eps)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def _self_attention(self, x, attn_mask, key_padding_mask):
        out, _ = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask)
        return self.dropout1(out)

    def forward(self, src, src_mask=None, src_key_padding_mask=None):
        x = src
        if self.norm_first:  # pre-LN: x + f(norm(x))
            x = x + self._self_attention(self.norm1(x), src_mask, src_key_padding_mask)
            return x + self.dropout2(self._feed_forward(self.norm2(x)))
        x = self.norm1(x + self._self_attention(x, src_mask, src_key_padding_mask))  # post-LN: norm(x + f(x))
        return self.norm2(x + self.dropout2(self._feed_forward(x)))


class TransformerDecoderLayer(_FeedForwardMixin, nn.Module):
    """Masked self-attention, cross-attention over the encoder's ``memory``, feed-forward."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation: str = "relu", norm_first: bool = False, norm: str = "layernorm",
                 layer_norm_eps: float = 1e-5, rotary: RotaryEmbedding | None = None, alibi: bool = False):
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, rotary=rotary, alibi=alibi,
                                            causal_alibi=True)
        self.multihead_attn = MultiheadAttention(d_model, nhead, dropout=dropout)
        self._init_feed_forward(d_model, dim_feedforward, dropout, activation)
        self.norm_first = norm_first
        self.norm1 = make_norm(norm, d_model, layer_norm_eps)
        self.norm2 = make_norm(norm, d_model, layer_norm_eps)
        self.norm3 = make_norm(norm, d_model, layer_norm_eps)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)

    def _sa(self, x, mask, padding, offset):
        return self.dropout1(self.self_attn(x, x, x, attn_mask=mask, key_padding_mask=padding,
                                            query_offset=offset)[0])

    def _ca(self, x, memory, mask, padding):
        return self.dropout2(self.multihead_attn(x, memory, memory, attn_mask=mask, key_padding_mask=padding)[0])

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None):
        x = tgt
        if self.norm_first:
            x = x + self._sa(self.norm1(x), tgt_mask, tgt_key_padding_mask, 0)
            x = x + self._ca(self.norm2(x), memory, memory_mask, memory_key_padding_mask)
            return x + self.dropout3(self._feed_forward(self.norm3(x)))
        x = self.norm1(x + self._sa(x, tgt_mask, tgt_key_padding_mask, 0))
        x = self.norm2(x + self._ca(x, memory, memory_mask, memory_key_padding_mask))
        return self.norm3(x + self.dropout3(self._feed_forward(x)))


class TransformerEncoder(nn.Module):
    """``num_layers`` encoder layers (keys ``layers.0...``) and an optional final ``norm``."""

    def __init__(self, make_layer, num_layers: int, norm: nn.Module | None = None):
        super().__init__()
        self.layers = nn.ModuleList([make_layer() for _ in range(num_layers)])
        self.norm = norm

    def forward(self, src, mask=None, src_key_padding_mask=None):
        for layer in self.layers:
            src = layer(src, src_mask=mask, src_key_padding_mask=src_key_padding_mask)
        return src if self.norm is None else self.norm(src)


class TransformerDecoder(nn.Module):
    def __init__(self, make_layer, num_layers: int, norm: nn.Module | None = None):
        super().__init__()
        self.layers = nn.ModuleList([make_layer() for _ in range(num_layers)])
        self.norm = norm

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None):
        for layer in self.layers:
            tgt = layer(tgt, memory, tgt_mask, memory_mask, tgt_key_padding_mask, memory_key_padding_mask)
        return tgt if self.norm is None else self.norm(tgt)


def _make_positional(kind: str, d_model: int, nhead: int, max_len: int, dropout: float):
    """(module added to the embeddings or None, rotary module or None, alibi flag)."""
    if kind not in POSITIONALS:
        raise ValueError(f"positional must be one of {POSITIONALS}, got {kind!r}")
    if kind == "sinusoidal":
        return SinusoidalPositionalEncoding(d_model, max_len, dropout), None, False
    if kind == "learned":
        return LearnedPositionalEmbedding(d_model, max_len, dropout), None, False
    if kind == "rope":
        return None, RotaryEmbedding(d_model // nhead, max_len), False
    return None, None, kind == "alibi"


class TransformerClassifier(nn.Module):
    """Encoder-only Transformer over token ids (B, T) -> logits (B, num_classes).

    ``pooling``: ``"mean"`` (average of the non-padding positions) or ``"cls"`` (a learned
    ``cls_token`` prepended to every sequence, whose final state is classified, as in BERT/ViT).
    Tokens equal to ``padding_idx`` are masked out of attention and of the mean.
    Keys: ``embedding``, ``pos_encoder`` (sinusoidal: no parameters), ``encoder.layers.N.*``,
    ``encoder.norm`` (pre-LN only), ``classifier``.
    """

    def __init__(self, vocab_size: int, num_classes: int, d_model: int = 64, nhead: int = 4, num_layers: int = 2,
                 dim_feedforward: int = 128, dropout: float = 0.1, max_len: int = 512,
                 positional: str = "sinusoidal", activation: str = "relu", norm_first: bool = False,
                 norm: str = "layernorm", pooling: str = "mean", padding_idx: int | None = None):
        super().__init__()
        if pooling not in ("mean", "cls"):
            raise ValueError(f"TransformerClassifier: pooling must be 'mean' or 'cls', got {pooling!r}")
        self.d_model, self.pooling, self.padding_idx = d_model, pooling, padding_idx
        self.embedding = nn.Embedding(vocab_size, d_model, padding_idx=padding_idx)
        extra = 1 if pooling == "cls" else 0
        self.pos_encoder, rotary, alibi = _make_positional(positional, d_model, nhead, max_len + extra, dropout)
        self.rotary = rotary
        if pooling == "cls":
            self.cls_token = nn.Parameter(tn.zeros(1, 1, d_model))
            nn.init.normal_(self.cls_token, 0.0, 0.02)

        def make_layer():
            return TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout, activation, norm_first, norm,
                                           rotary=rotary, alibi=alibi)
        self.encoder = TransformerEncoder(make_layer, num_layers, make_norm(norm, d_model) if norm_first else None)
        self.classifier = nn.Linear(d_model, num_classes)

    def forward(self, tokens, src_key_padding_mask=None):
        if tokens.ndim != 2:
            raise ValueError(f"TransformerClassifier: expected token ids of shape (B, T), got {tokens.shape}")
        if src_key_padding_mask is None and self.padding_idx is not None:
            src_key_padding_mask = padding_mask(tokens, self.padding_idx)
        x = self.embedding(tokens) * math.sqrt(self.d_model)
        if self.pooling == "cls":
            x = tn.cat([self.cls_token.expand(x.shape[0], 1, self.d_model), x], 1)
            if src_key_padding_mask is not None:
                no_pad = tn.zeros((tokens.shape[0], 1), dtype=tn.bool, device=tokens.device)
                src_key_padding_mask = tn.cat([no_pad, src_key_padding_mask], 1)
        if self.pos_encoder is not None:
            x = self.pos_encoder(x)
        x = self.encoder(x, src_key_padding_mask=src_key_padding_mask)
        return self.classifier(self._pool(x, src_key_padding_mask))

    def _pool(self, x, key_padding_mask):
        if self.pooling == "cls":
            return x[:, 0]
        if key_padding_mask is None:
            return x.mean(1)
        keep = key_padding_mask.logical_not().to(x.dtype).unsqueeze(-1)  # (B, T, 1)
        return (x * keep).sum(1) / keep.sum(1).clamp(min=1.0)


class Seq2SeqTransformer(nn.Module):
    """Encoder–decoder Transformer (Vaswani et al., 2017) with teacher-forced training and decoding.

    ``forward(src, tgt_in)`` -> logits (B, T_tgt, tgt_vocab): the decoder sees ``tgt_in`` (the target
    shifted right, starting with ``bos_idx``) under a look-ahead mask, and padding is masked on both
    sides. ``greedy_decode`` and ``beam_search`` generate from ``bos_idx`` until ``eos_idx``.
    Keys follow ``torch.nn.Transformer`` inside: ``encoder.layers.N.*``, ``encoder.norm``,
    ``decoder.layers.N.*``, ``decoder.norm``; plus ``src_embedding``, ``tgt_embedding``, ``generator``.
    """

    def __init__(self, src_vocab_size: int, tgt_vocab_size: int, d_model: int = 64, nhead: int = 4,
                 num_encoder_layers: int = 2, num_decoder_layers: int = 2, dim_feedforward: int = 128,
                 dropout: float = 0.1, max_len: int = 256, positional: str = "sinusoidal",
                 activation: str = "relu", norm_first: bool = False, norm: str = "layernorm",
                 pad_idx: int = 0, bos_idx: int = 1, eos_idx: int = 2):
        super().__init__()
        self.d_model, self.pad_idx, self.bos_idx, self.eos_idx = d_model, pad_idx, bos_idx, eos_idx
        self.src_embedding = nn.Embedding(src_vocab_size, d_model, padding_idx=pad_idx)
        self.tgt_embedding = nn.Embedding(tgt_vocab_size, d_model, padding_idx=pad_idx)
        self.positional, rotary, alibi = _make_positional(positional, d_model, nhead, max_len, dropout)
        self.rotary = rotary
        layer_args = (d_model, nhead, dim_feedforward, dropout, activation, norm_first, norm)
        self.encoder = TransformerEncoder(
            lambda: TransformerEncoderLayer(*layer_args, rotary=rotary, alibi=alibi), num_encoder_layers,
            make_norm(norm, d_model))
        self.decoder = TransformerDecoder(
            lambda: TransformerDecoderLayer(*layer_args, rotary=rotary, alibi=alibi), num_decoder_layers,
            make_norm(norm, d_model))
        self.generator = nn.Linear(d_model, tgt_vocab_size)

    def _embed(self, embedding, tokens, offset: int = 0):
        x = embedding(tokens) * math.sqrt(self.d_model)
        return self.positional(x, offset=offset) if self.positional is not None else x

    def encode(self, src, src_key_padding_mask=None):
        if src_key_padding_mask is None:
            src_key_padding_mask = padding_mask(src, self.pad_idx)
        return self.encoder(self._embed(self.src_embedding, src), src_key_padding_mask=src_key_padding_mask)

    def decode(self, tgt_in, memory, memory_key_padding_mask=None, tgt_key_padding_mask=None):
        """Logits for every target position, given the encoder's ``memory``."""
        look_ahead = generate_square_subsequent_mask(tgt_in.shape[1], tgt_in.device)
        x = self.decoder(self._embed(self.tgt_embedding, tgt_in), memory, tgt_mask=look_ahead,
                         tgt_key_padding_mask=tgt_key_padding_mask,
                         memory_key_padding_mask=memory_key_padding_mask)
        return self.generator(x)

    def forward(self, src, tgt_in):
        src_pad = padding_mask(src, self.pad_idx)
        memory = self.encode(src, src_pad)
        return self.decode(tgt_in, memory, memory_key_padding_mask=src_pad,
                           tgt_key_padding_mask=padding_mask(tgt_in, self.pad_idx))

    # --- decoding ------------------------------------------------------------------------------
    def greedy_decode(self, src, max_len: int):
        """(B, ≤ max_len) generated tokens (without BOS); sequences that ended are padded with ``pad_idx``."""
        with tn.no_grad():
            src_pad = padding_mask(src, self.pad_idx)
            memory = self.encode(src, src_pad)
            batch = src.shape[0]
            generated = np.full((batch, 1), self.bos_idx, dtype=np.int64)
            finished = np.zeros(batch, dtype=bool)
            for _ in range(max_len):
                logits = self.decode(tn.from_numpy(generated).to(src.device), memory, src_pad)
                next_token = logits[:, -1].argmax(-1).numpy().astype(np.int64)
                next_token[finished] = self.pad_idx
                generated = np.concatenate([generated, next_token[:, None]], axis=1)
                finished |= next_token == self.eos_idx
                if finished.all():
                    break
        return tn.from_numpy(generated[:, 1:])

    def beam_search(self, src, beam_size: int = 4, max_len: int = 32, length_penalty: float = 0.0) -> list:
        """Beam search per source sequence; returns a list of token lists (EOS included when reached).

        Each step extends every live hypothesis by every token, keeps the ``beam_size`` best by
        total log-probability, and sets finished ones (ending in EOS) aside; the winner maximises
        ``log p / length^length_penalty`` (0 = plain log-probability).
        """
        results = []
        with tn.no_grad():
            for i in range(src.shape[0]):
                results.append(self._beam_search_one(src[i:i + 1], beam_size, max_len, length_penalty))
        return results

    def _beam_search_one(self, src, beam_size: int, max_len: int, length_penalty: float) -> list:
        src_pad = padding_mask(src, self.pad_idx)
        memory = self.encode(src, src_pad)
        beams = [([self.bos_idx], 0.0)]
        finished = []

        def score(tokens, logp):
            return logp / (max(len(tokens) - 1, 1) ** length_penalty)

        for _ in range(max_len):
            prefixes = tn.from_numpy(np.asarray([b[0] for b in beams], dtype=np.int64)).to(src.device)
            n = len(beams)
            logits = self.decode(prefixes, memory.expand(n, *memory.shape[1:]),
                                 src_pad.expand(n, src_pad.shape[1]))
            log_probs = tn.log_softmax(logits[:, -1], -1).numpy()  # (n, V)
            totals = np.asarray([b[1] for b in beams])[:, None] + log_probs
            best = np.argsort(-totals, axis=None)[: 2 * beam_size]
            candidates = []
            for flat in best:
                beam_index, token = divmod(int(flat), log_probs.shape[1])
                tokens = beams[beam_index][0] + [token]
                if token == self.eos_idx:
                    finished.append((tokens, float(totals.flat[flat])))
                else:
                    candidates.append((tokens, float(totals.flat[flat])))
                if len(candidates) == beam_size:
                    break
            beams = candidates
            if not beams:  # every surviving hypothesis ended
                break
            best_finished = max((score(*f) for f in finished), default=-np.inf)
            if len(finished) >= beam_size and best_finished >= max(score(*b) for b in beams):
                break
        pool = finished if finished else beams
        winner = max(pool, key=lambda item: score(*item))
        return winner[0][1:]
