"""RNN / LSTM / GRU classifiers: shapes, lengths, bidirectional reading, a training step, round trip."""
from __future__ import annotations

import numpy as np
import pytest

import tinynn as tn
import tinynn.nn.functional as F
from tinynn import models

from model_helpers import assert_state_dict_round_trip, loss_after_steps

CLASSES = [models.RNNClassifier, models.LSTMClassifier, models.GRUClassifier]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_token_classifier_trains_and_round_trips(cls, bidirectional, tmp_path):
    def make():
        return cls(num_classes=3, hidden_size=12, vocab_size=9, embed_dim=8, num_layers=2,
                   bidirectional=bidirectional, padding_idx=0)
    model = make()
    tokens = tn.from_numpy(np.random.default_rng(0).integers(1, 9, (4, 6)))
    labels = tn.tensor([0, 1, 2, 0])
    assert tuple(model(tokens).shape) == (4, 3)
    before, after = loss_after_steps(model, (tokens, labels), lambda m, b: F.cross_entropy(m(b[0]), b[1]),
                                     steps=3, lr=0.02, optimizer="adam")
    assert after < before
    assert_state_dict_round_trip(model, make(), tmp_path)
    assert f"rnn.weight_ih_l1{'_reverse' if bidirectional else ''}" in model.state_dict()


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_lengths_ignore_padding_after_the_end(pooling):
    model = models.GRUClassifier(num_classes=2, hidden_size=8, input_size=5, pooling=pooling)
    model.eval()
    x = np.random.default_rng(0).standard_normal((2, 7, 5)).astype(np.float32)
    lengths = [4, 7]
    y = x.copy()
    y[0, 4:] = 100.0  # garbage after sequence 0's end
    a = model(tn.from_numpy(x), lengths=lengths).numpy()
    b = model(tn.from_numpy(y), lengths=lengths).numpy()
    np.testing.assert_allclose(a, b, atol=1e-5)
    short = model(tn.from_numpy(x[:1, :4])).numpy()
    np.testing.assert_allclose(a[:1], short, atol=1e-5)


def test_bidirectional_reads_last_forward_and_first_backward_state():
    model = models.LSTMClassifier(num_classes=2, hidden_size=4, input_size=3, bidirectional=True)
    model.eval()
    x = tn.randn(2, 5, 3)
    outputs = model.rnn(x)[0].numpy()
    features = np.concatenate([outputs[:, -1, :4], outputs[:, 0, 4:]], -1)
    expected = features @ model.fc.weight.numpy().T + model.fc.bias.numpy()
    np.testing.assert_allclose(model(x).numpy(), expected, atol=1e-5)


def test_recurrent_classifier_errors():
    with pytest.raises(ValueError, match="exactly one"):
        models.RNNClassifier(num_classes=2, vocab_size=5, input_size=3)
    model = models.RNNClassifier(num_classes=2, vocab_size=5)
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        model(tn.randn(2, 3, 4))
    with pytest.raises(ValueError, match="lengths"):
        model(tn.tensor([[1, 2, 3]]), lengths=[4])
