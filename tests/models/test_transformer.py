"""Transformers: variants (positions, FFNs, norms), masks, decoding, and parity with torch.nn."""
from __future__ import annotations

import math

import numpy as np
import pytest

import tinynn as tn
import tinynn.nn.functional as F
from tinynn import models
from tinynn.models.positional import alibi_slopes, sinusoidal_table

from model_helpers import assert_state_dict_round_trip, loss_after_steps


def _tokens(batch=4, length=7, vocab=11, seed=0, low=1):
    rng = np.random.default_rng(seed)
    return tn.from_numpy(rng.integers(low, vocab, (batch, length)).astype(np.int64))


VARIANTS = [
    dict(positional="sinusoidal", activation="relu", norm_first=False, norm="layernorm"),
    dict(positional="learned", activation="gelu", norm_first=True, norm="layernorm"),
    dict(positional="rope", activation="swiglu", norm_first=True, norm="rmsnorm"),
    dict(positional="alibi", activation="geglu", norm_first=False, norm="rmsnorm"),
    dict(positional="none", activation="relu", norm_first=True, norm="layernorm", pooling="cls"),
]


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(str(x) for x in v.values()))
def test_classifier_variants_train_and_round_trip(variant, tmp_path):
    def make():
        return models.TransformerClassifier(vocab_size=11, num_classes=3, d_model=16, nhead=2, num_layers=2,
                                            dim_feedforward=24, dropout=0.0, max_len=16, padding_idx=0, **variant)
    model = make()
    tokens = _tokens()
    labels = tn.tensor([0, 1, 2, 1])
    assert tuple(model(tokens).shape) == (4, 3)
    before, after = loss_after_steps(model, (tokens, labels), lambda m, b: F.cross_entropy(m(b[0]), b[1]),
                                     steps=3, lr=0.01, optimizer="adam")
    assert after < before
    assert_state_dict_round_trip(model, make(), tmp_path)


def test_gated_ffn_doubles_linear1_and_rmsnorm_has_no_bias():
    model = models.TransformerClassifier(11, 3, d_model=16, nhead=2, num_layers=1, dim_feedforward=24,
                                         activation="swiglu", norm="rmsnorm")
    keys = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert keys["encoder.layers.0.linear1.weight"] == (48, 16)
    assert keys["encoder.layers.0.linear2.weight"] == (16, 24)
    assert "encoder.layers.0.norm1.weight" in keys and "encoder.layers.0.norm1.bias" not in keys


def test_padding_tokens_do_not_change_the_logits():
    model = models.TransformerClassifier(11, 3, d_model=16, nhead=2, num_layers=2, dim_feedforward=24,
                                         dropout=0.0, padding_idx=0)
    model.eval()
    a = tn.tensor([[3, 4, 5, 0, 0]])
    b = tn.tensor([[3, 4, 5, 0, 0, 0, 0]])
    np.testing.assert_allclose(model(a).numpy(), model(b).numpy(), atol=1e-5)


def test_look_ahead_mask_hides_the_future():
    layer = models.TransformerEncoderLayer(16, 2, 24, dropout=0.0)
    layer.eval()
    x = tn.randn(1, 6, 16)
    y = x.data.copy()
    y[:, 4:] += 1.0  # change the future
    mask = models.generate_square_subsequent_mask(6)
    out_x = layer(x, src_mask=mask).numpy()
    out_y = layer(tn.from_numpy(y), src_mask=mask).numpy()
    np.testing.assert_allclose(out_x[:, :4], out_y[:, :4], atol=1e-5)
    assert not np.allclose(out_x[:, 4:], out_y[:, 4:])


def test_sinusoidal_table_formula():
    table = sinusoidal_table(10, 8)
    pos, i = 7, 3
    assert table[pos, 2 * i] == pytest.approx(math.sin(pos / 10000 ** (2 * i / 8)), abs=1e-6)
    assert table[pos, 2 * i + 1] == pytest.approx(math.cos(pos / 10000 ** (2 * i / 8)), abs=1e-6)


def test_rope_scores_depend_only_on_relative_position():
    rope = models.RotaryEmbedding(8, max_len=32)
    rng = np.random.default_rng(0)
    q = rng.standard_normal(8).astype(np.float32)
    k = rng.standard_normal(8).astype(np.float32)
    seq = np.zeros((1, 1, 20, 8), dtype=np.float32)

    def score(m, n):
        qs, ks = seq.copy(), seq.copy()
        qs[0, 0, m], ks[0, 0, n] = q, k
        return float((rope(tn.from_numpy(qs)).numpy()[0, 0, m] * rope(tn.from_numpy(ks)).numpy()[0, 0, n]).sum())

    assert score(5, 2) == pytest.approx(score(15, 12), abs=1e-4)
    assert score(5, 2) != pytest.approx(score(5, 4), abs=1e-3)
    np.testing.assert_allclose(rope(tn.from_numpy(seq + 1)).numpy()[0, 0, 0], 1.0, atol=1e-6)  # position 0: no turn


def test_alibi_slopes_and_bias():
    np.testing.assert_allclose(alibi_slopes(8), [2.0 ** -(i + 1) for i in range(8)])
    assert len(alibi_slopes(6)) == 6
    bias = models.alibi_bias(2, 3, 3)
    np.testing.assert_allclose(bias[0], -0.0625 * np.abs(np.arange(3)[:, None] - np.arange(3)[None, :]))


def test_attention_weights_are_kept_for_plots():
    model = models.TransformerClassifier(11, 3, d_model=16, nhead=2, num_layers=1, dim_feedforward=24)
    model.eval()
    model(_tokens(batch=2, length=5))
    weights = model.encoder.layers[0].self_attn.last_attention_weights
    assert tuple(weights.shape) == (2, 2, 5, 5)
    np.testing.assert_allclose(weights.numpy().sum(-1), 1.0, atol=1e-5)


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="positional"):
        models.TransformerClassifier(11, 3, positional="relative")
    with pytest.raises(ValueError, match="divisible"):
        models.TransformerClassifier(11, 3, d_model=10, nhead=3)
    with pytest.raises(ValueError, match="activation"):
        models.TransformerClassifier(11, 3, activation="swish")
    with pytest.raises(ValueError, match="max_len"):
        models.TransformerClassifier(11, 3, max_len=4)(_tokens(length=9))


# --- Seq2Seq ------------------------------------------------------------------------------------
def _seq2seq(**kw):
    args = dict(d_model=16, nhead=2, num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=24, dropout=0.0,
                max_len=32)
    args.update(kw)
    return models.Seq2SeqTransformer(10, 10, **args)


@pytest.mark.parametrize("positional", ["sinusoidal", "rope", "alibi"])
def test_seq2seq_shapes_training_and_round_trip(positional, tmp_path):
    model = _seq2seq(positional=positional)
    src = _tokens(batch=3, length=5, vocab=10, low=3)
    tgt = tn.cat([tn.full((3, 1), 1, dtype=tn.int64), src], 1)  # BOS + copy
    tgt_in, tgt_out = tgt[:, :-1], tgt[:, 1:]
    logits = model(src, tgt_in)
    assert tuple(logits.shape) == (3, 5, 10)

    def loss_fn(m, batch):
        return F.cross_entropy(m(batch[0], batch[1]).reshape(-1, 10), batch[2].reshape(-1))
    before, after = loss_after_steps(model, (src, tgt_in, tgt_out), loss_fn, steps=3, lr=0.01, optimizer="adam")
    assert after < before
    assert_state_dict_round_trip(model, _seq2seq(positional=positional), tmp_path)


def test_decoder_is_causal():
    model = _seq2seq()
    model.eval()
    src = _tokens(batch=1, length=5, vocab=10, low=3)
    a = tn.tensor([[1, 4, 5, 6, 7]])
    b = tn.tensor([[1, 4, 5, 9, 9]])
    np.testing.assert_allclose(model(src, a).numpy()[:, :3], model(src, b).numpy()[:, :3], atol=1e-5)


def test_greedy_and_beam_search():
    model = _seq2seq()
    model.eval()
    src = _tokens(batch=2, length=5, vocab=10, low=3)
    greedy = model.greedy_decode(src, max_len=6)
    assert greedy.shape[0] == 2 and greedy.shape[1] <= 6
    beams = model.beam_search(src, beam_size=1, max_len=6)
    for row, beam in zip(greedy.numpy().tolist(), beams):
        expected = row[:row.index(2) + 1] if 2 in row else row  # up to and including EOS
        assert beam == expected
    wide = model.beam_search(src, beam_size=3, max_len=6)
    assert len(wide) == 2 and all(1 <= len(b) <= 6 for b in wide)


def _sequence_log_prob(model, src, tokens):
    tgt_in = tn.tensor([[model.bos_idx] + tokens[:-1]])
    log_probs = tn.log_softmax(model(src, tgt_in), -1).numpy()[0]
    return float(sum(log_probs[i, t] for i, t in enumerate(tokens)))


def test_beam_search_finds_at_least_the_greedy_score():
    model = _seq2seq()
    model.eval()
    src = _tokens(batch=1, length=4, vocab=10, low=3, seed=3)
    with tn.no_grad():
        greedy = model.beam_search(src, beam_size=1, max_len=4)[0]
        beam = model.beam_search(src, beam_size=4, max_len=4)[0]
        if len(beam) == len(greedy) and (beam[-1] == 2) == (greedy[-1] == 2):
            assert _sequence_log_prob(model, src, beam) >= _sequence_log_prob(model, src, greedy) - 1e-5


# --- parity with torch.nn -------------------------------------------------------------------------
@pytest.mark.parity
@pytest.mark.parametrize("norm_first,activation", [(False, "relu"), (True, "gelu")])
def test_classifier_matches_torch_transformer_encoder(norm_first, activation):
    torch = pytest.importorskip("torch")
    tnn = torch.nn
    d, heads, layers, ff, vocab, length = 16, 2, 2, 24, 11, 6

    class TorchClassifier(tnn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = tnn.Embedding(vocab, d, padding_idx=0)
            layer = tnn.TransformerEncoderLayer(d, heads, ff, dropout=0.0, activation=activation,
                                                batch_first=True, norm_first=norm_first)
            self.encoder = tnn.TransformerEncoder(layer, layers, norm=tnn.LayerNorm(d) if norm_first else None,
                                                  enable_nested_tensor=False)
            self.classifier = tnn.Linear(d, 3)
            self.register_buffer("pe", torch.tensor(sinusoidal_table(32, d)), persistent=False)

        def forward(self, tokens):
            pad = tokens == 0
            x = self.embedding(tokens) * math.sqrt(d) + self.pe[:tokens.shape[1]]
            x = self.encoder(x, src_key_padding_mask=pad)
            keep = (~pad).float().unsqueeze(-1)
            return self.classifier((x * keep).sum(1) / keep.sum(1))

    torch.manual_seed(0)
    theirs = TorchClassifier()
    ours = models.TransformerClassifier(vocab, 3, d_model=d, nhead=heads, num_layers=layers, dim_feedforward=ff,
                                        dropout=0.0, max_len=32, activation=activation, norm_first=norm_first,
                                        padding_idx=0)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    tokens = np.random.default_rng(0).integers(1, vocab, (3, length))
    tokens[1, 4:] = 0  # padding
    labels = np.array([0, 2, 1])
    yt = theirs(torch.tensor(tokens))
    yo = ours(tn.from_numpy(tokens))
    np.testing.assert_allclose(yo.numpy(), yt.detach().numpy(), atol=1e-5, rtol=1e-4)
    torch.nn.functional.cross_entropy(yt, torch.tensor(labels)).backward()
    F.cross_entropy(yo, tn.from_numpy(labels)).backward()
    their_grads = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), their_grads[name].grad.numpy(), atol=1e-5, rtol=1e-3,
                                   err_msg=name)


@pytest.mark.parity
def test_seq2seq_matches_torch_transformer_layers():
    torch = pytest.importorskip("torch")
    tnn = torch.nn
    d, heads, ff, vocab = 16, 2, 24, 10

    class TorchSeq2Seq(tnn.Module):
        def __init__(self):
            super().__init__()
            self.src_embedding = tnn.Embedding(vocab, d, padding_idx=0)
            self.tgt_embedding = tnn.Embedding(vocab, d, padding_idx=0)
            enc = tnn.TransformerEncoderLayer(d, heads, ff, dropout=0.0, batch_first=True)
            dec = tnn.TransformerDecoderLayer(d, heads, ff, dropout=0.0, batch_first=True)
            self.encoder = tnn.TransformerEncoder(enc, 2, norm=tnn.LayerNorm(d), enable_nested_tensor=False)
            self.decoder = tnn.TransformerDecoder(dec, 2, norm=tnn.LayerNorm(d))
            self.generator = tnn.Linear(d, vocab)
            self.register_buffer("pe", torch.tensor(sinusoidal_table(32, d)), persistent=False)

        def forward(self, src, tgt):
            src_pad, tgt_pad = src == 0, tgt == 0
            mask = tnn.Transformer.generate_square_subsequent_mask(tgt.shape[1], dtype=torch.bool)
            memory = self.encoder(self.src_embedding(src) * math.sqrt(d) + self.pe[:src.shape[1]],
                                  src_key_padding_mask=src_pad)
            out = self.decoder(self.tgt_embedding(tgt) * math.sqrt(d) + self.pe[:tgt.shape[1]], memory,
                               tgt_mask=mask, tgt_key_padding_mask=tgt_pad, memory_key_padding_mask=src_pad)
            return self.generator(out)

    torch.manual_seed(0)
    theirs = TorchSeq2Seq()
    ours = models.Seq2SeqTransformer(vocab, vocab, d_model=d, nhead=heads, num_encoder_layers=2,
                                     num_decoder_layers=2, dim_feedforward=ff, dropout=0.0, max_len=32)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    src = np.array([[3, 4, 5, 6, 0], [7, 8, 9, 3, 4]])
    tgt = np.array([[1, 6, 5, 4], [1, 4, 3, 9]])
    np.testing.assert_allclose(ours(tn.from_numpy(src), tn.from_numpy(tgt)).numpy(),
                               theirs(torch.tensor(src), torch.tensor(tgt)).detach().numpy(), atol=1e-5, rtol=1e-4)


# --- the slow one: learn to reverse ------------------------------------------------------------------
@pytest.mark.slow
def test_seq2seq_learns_to_reverse_sequences():
    """Greedy decoding reaches ≥ 95 % token accuracy on held-out sequences within 1,000 steps
    (usually 500-700; checked every 100 steps, so the test stops as soon as it gets there)."""
    from tinynn.optim import Adam

    rng = np.random.default_rng(0)
    bos, eos, first_symbol, vocab, length = 1, 2, 3, 11, 6  # 0 is padding (unused: fixed lengths)

    def batch(n):
        src = rng.integers(first_symbol, vocab, (n, length))
        rev = src[:, ::-1]
        tgt_in = np.concatenate([np.full((n, 1), bos), rev], 1)
        tgt_out = np.concatenate([rev, np.full((n, 1), eos)], 1)
        return src, tgt_in, tgt_out

    model = models.Seq2SeqTransformer(vocab, vocab, d_model=32, nhead=4, num_encoder_layers=2,
                                      num_decoder_layers=2, dim_feedforward=64, dropout=0.0, max_len=16,
                                      norm_first=True)
    opt = Adam(model.parameters(), lr=3e-3)
    held_out_src, _, held_out_tgt = batch(200)

    def greedy_accuracy() -> float:
        model.eval()
        decoded = model.greedy_decode(tn.from_numpy(held_out_src), max_len=length + 1).numpy()
        model.train()
        return float((decoded[:, :length] == held_out_tgt[:, :length]).mean())

    accuracy, history = 0.0, []
    for step in range(1, 1001):
        src, tgt_in, tgt_out = batch(32)
        logits = model(tn.from_numpy(src), tn.from_numpy(tgt_in))
        loss = F.cross_entropy(logits.reshape(-1, vocab), tn.from_numpy(tgt_out.reshape(-1)))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step >= 400 and step % 100 == 0:
            accuracy = greedy_accuracy()
            history.append((step, round(accuracy, 3)))
            if accuracy >= 0.95:
                break
    assert accuracy >= 0.95, f"greedy token accuracy by step: {history} (last loss {loss.item():.3f})"


# --- gradients of the attention variants against finite differences (float64) -----------------------
@pytest.mark.parametrize("kind", ["plain", "rope", "alibi"])
def test_attention_variants_pass_gradcheck(kind):
    rotary = models.RotaryEmbedding(4, max_len=8) if kind == "rope" else None
    attention = models.MultiheadAttention(8, 2, rotary=rotary, alibi=kind == "alibi").double()
    if rotary is not None:
        rotary.double()
    x = tn.randn(2, 3, 8, dtype=tn.float64, requires_grad=True)
    pad = tn.tensor([[False, False, True], [False, False, False]])
    mask = models.generate_square_subsequent_mask(3)

    def fn(inputs):
        return attention(inputs, inputs, inputs, attn_mask=mask, key_padding_mask=pad)[0]
    assert tn.autograd.gradcheck(fn, (x,))


def test_rmsnorm_passes_gradcheck_and_normalises():
    norm = models.RMSNorm(6).double()
    x = tn.randn(3, 6, dtype=tn.float64, requires_grad=True)
    assert tn.autograd.gradcheck(norm, (x,))
    y = norm(x).detach().numpy()
    np.testing.assert_allclose((y ** 2).mean(-1), 1.0, rtol=1e-4)


def test_per_head_attention_mask_combines_with_padding():
    """A (B·H, Tq, Tk) mask, PyTorch's per-head form, together with a key padding mask."""
    attention = models.MultiheadAttention(8, 2)
    x = tn.randn(2, 4, 8)
    pad = tn.tensor([[False, False, False, True], [False, False, False, False]])
    causal = models.generate_square_subsequent_mask(4)
    per_head = tn.from_numpy(np.broadcast_to(causal.numpy(), (4, 4, 4)).copy())  # B·H = 4
    a = attention(x, x, x, attn_mask=per_head, key_padding_mask=pad, need_weights=True)[1]
    b = attention(x, x, x, attn_mask=causal, key_padding_mask=pad, need_weights=True)[1]
    np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)
    assert tuple(a.shape) == (2, 4, 4)
    assert np.all(a.numpy()[0, :, 3] == 0) and np.all(np.triu(a.numpy()[1], 1) == 0)
