"""Helpers shared by the model tests: a training step, a checkpoint round trip."""
from __future__ import annotations

import numpy as np

import tinynn as tn


def loss_after_steps(model, inputs, loss_fn, steps: int = 1, lr: float = 0.05, optimizer: str = "sgd"):
    """(loss before, loss after) ``steps`` optimizer steps on one fixed batch, both in train mode.

    Dropout must be 0 in ``model`` (so both losses see the same function); BatchNorm uses batch
    statistics in train mode, so the two evaluations are comparable.
    """
    from tinynn.optim import SGD, Adam

    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = SGD(params, lr=lr) if optimizer == "sgd" else Adam(params, lr=lr)
    before = None
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn(model, inputs)
        if before is None:
            before = loss.item()
        loss.backward()
        opt.step()
    with tn.no_grad():
        after = loss_fn(model, inputs).item()
    return before, after


def assert_state_dict_round_trip(model, fresh_model, tmp_path):
    """Save ``model``'s state_dict with tn.save, load it into ``fresh_model``: every entry is equal."""
    path = tmp_path / "model.npz"
    tn.save(model.state_dict(), str(path))
    loaded = tn.load(str(path))
    assert list(loaded) == list(model.state_dict())
    fresh_model.load_state_dict(loaded)
    for (key, a), (key2, b) in zip(model.state_dict().items(), fresh_model.state_dict().items()):
        assert key == key2
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=key)


def shapes(model) -> dict:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}
