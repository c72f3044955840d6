"""Design patterns: residual and dense connections, multi-task, ensembles, early exit."""
from __future__ import annotations

import numpy as np
import pytest

import tinynn as tn
import tinynn.nn as nn
import tinynn.nn.functional as F
from tinynn import models

from model_helpers import assert_state_dict_round_trip, loss_after_steps


def test_residual_adds_the_input_and_checks_shapes():
    body = nn.Linear(4, 4)
    block = models.Residual(body)
    x = tn.randn(3, 4)
    np.testing.assert_allclose(block(x).numpy(), body(x).numpy() + x.numpy(), atol=1e-6)
    projected = models.Residual(nn.Linear(4, 6), shortcut=nn.Linear(4, 6, bias=False), activation=nn.ReLU())
    assert tuple(projected(x).shape) == (3, 6) and projected(x).numpy().min() >= 0
    with pytest.raises(ValueError, match="shortcut"):
        models.Residual(nn.Linear(4, 6))(x)


def test_residual_gives_gradient_a_short_path():
    """With a body whose gradient vanishes, the identity still passes dL/dx = 1 through."""
    body = nn.Sequential(nn.Linear(4, 4), nn.Sigmoid(), nn.Linear(4, 4))
    with tn.no_grad():
        body[2].weight.data[...] = 0.0
    x = tn.randn(2, 4, requires_grad=True)
    models.Residual(body)(x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 1.0, atol=1e-6)


def test_dense_block_concatenates_features():
    block = models.DenseBlock(in_channels=3, growth_rate=2, num_layers=3)
    x = tn.randn(2, 3, 5, 5)
    y = block(x)
    assert tuple(y.shape) == (2, 3 + 3 * 2, 5, 5) and block.out_channels == 9
    np.testing.assert_allclose(y.numpy()[:, :3], x.numpy())  # the input passes through unchanged
    assert block.layers[2][0].weight.shape[1] == 3 + 2 * 2  # layer 3 sees the input and two outputs


def test_multi_task_model_weights_the_losses(tmp_path):
    def make():
        return models.MultiTaskModel(
            trunk=nn.Sequential(nn.Linear(5, 8), nn.ReLU()),
            heads={"label": nn.Linear(8, 3), "value": nn.Linear(8, 1)},
            loss_fns={"label": F.cross_entropy, "value": lambda out, t: F.mse_loss(out.reshape(-1), t)},
            loss_weights={"label": 1.0, "value": 0.5})
    model = make()
    x = tn.randn(6, 5)
    targets = {"label": tn.tensor([0, 1, 2, 0, 1, 2]), "value": tn.randn(6)}
    outputs = model(x)
    assert tuple(outputs["label"].shape) == (6, 3) and tuple(outputs["value"].shape) == (6, 1)
    total, per_task = model.loss(outputs, targets)
    assert total.item() == pytest.approx(per_task["label"].item() + 0.5 * per_task["value"].item(), rel=1e-6)
    before, after = loss_after_steps(model, x, lambda m, b: m.loss(m(b), targets)[0], steps=3, lr=0.05)
    assert after < before
    assert_state_dict_round_trip(model, make(), tmp_path)
    with pytest.raises(ValueError, match="heads"):
        models.MultiTaskModel(nn.Identity(), {"a": nn.Identity()}, {"b": F.mse_loss})


class _Constant(nn.Module):
    def __init__(self, logits):
        super().__init__()
        self.logits = tn.tensor(logits)

    def forward(self, x):
        return self.logits.expand(x.shape[0], self.logits.shape[0])


def test_ensemble_average_and_vote():
    members = [_Constant([2.0, 0.0, 0.0]), _Constant([0.0, 1.0, 0.0]), _Constant([0.0, 1.5, 0.0])]
    x = tn.zeros(2, 1)
    probs = models.Ensemble(members, "average")(x).numpy()
    expected = np.mean([np.exp(m.logits.numpy()) / np.exp(m.logits.numpy()).sum() for m in members], 0)
    np.testing.assert_allclose(probs[0], expected, rtol=1e-5)
    assert models.Ensemble(members, "vote")(x).numpy().tolist() == [1, 1]  # two of three say class 1
    with pytest.raises(ValueError, match="mode"):
        models.Ensemble(members, "median")


def test_early_exit_classifier_stops_when_confident():
    stages = [nn.Identity(), nn.Identity()]
    # Exit 0 is confident for inputs whose first feature is large; exit 1 always answers class 2.
    exit0 = nn.Linear(2, 3)
    exit1 = nn.Linear(2, 3)
    with tn.no_grad():
        exit0.weight.data[...] = np.array([[10.0, 0.0], [0.0, 0.0], [0.0, 0.0]], dtype=np.float32)
        exit0.bias.data[...] = 0.0
        exit1.weight.data[...] = 0.0
        exit1.bias.data[...] = np.array([0.0, 0.0, 5.0], dtype=np.float32)
    model = models.EarlyExitClassifier(stages, [exit0, exit1], threshold=0.9)
    x = tn.tensor([[1.0, 0.0], [0.0, 0.0], [2.0, 1.0]])
    model.train()
    all_exits = model(x)
    assert len(all_exits) == 2
    loss = model.loss(all_exits, tn.tensor([0, 2, 0]), weights=[0.5, 1.0])
    expected = 0.5 * F.cross_entropy(all_exits[0], tn.tensor([0, 2, 0])).item() \
        + F.cross_entropy(all_exits[1], tn.tensor([0, 2, 0])).item()
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    model.eval()
    logits, exit_index = model(x)
    assert exit_index.numpy().tolist() == [0, 1, 0]
    assert logits.numpy().argmax(-1).tolist() == [0, 2, 0]
