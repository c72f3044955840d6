"""The optimizers inside a real training loop: tinynn autograd computes the gradients.

A two-layer tanh network is fitted in float64 by tinynn and by PyTorch from the same
initial weights; after every step the weights must agree, which checks that
``backward`` + ``step`` + ``zero_grad`` work together as in PyTorch.
"""
import numpy as np
import pytest

import tinynn as tn
from tinynn import optim
from tinynn.optim import lr_scheduler

STEPS = 15


def data_and_weights():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((16, 5))
    y = np.sin(x @ rng.standard_normal((5, 1)))
    weights = [rng.standard_normal((5, 8)) * 0.5, np.zeros(8), rng.standard_normal((8, 1)) * 0.5, np.zeros(1)]
    return x, y, weights


def forward_loss(lib, x, y, params):
    w1, b1, w2, b2 = params
    hidden = lib.tanh(x @ w1 + b1)
    return ((hidden @ w2 + b2 - y) ** 2).mean()


@pytest.mark.parity
@pytest.mark.parametrize("name,kwargs", [("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
                                         ("Adam", dict(lr=0.01, weight_decay=1e-3)),
                                         ("AdamW", dict(lr=0.01, amsgrad=True)),
                                         ("RMSprop", dict(lr=0.01, centered=True)),
                                         ("Adagrad", dict(lr=0.1))])
def test_training_loop_matches_pytorch(name, kwargs):
    torch = pytest.importorskip("torch")
    x, y, weights = data_and_weights()

    params = [tn.tensor(w, requires_grad=True) for w in weights]
    opt = getattr(optim, name)(params, **kwargs)
    scheduler = lr_scheduler.StepLR(opt, step_size=5, gamma=0.5)
    x_tn, y_tn = tn.tensor(x), tn.tensor(y)

    torch_params = [torch.tensor(w, requires_grad=True) for w in weights]
    torch_opt = getattr(torch.optim, name)(torch_params, **kwargs)
    torch_scheduler = torch.optim.lr_scheduler.StepLR(torch_opt, step_size=5, gamma=0.5)
    x_t, y_t = torch.from_numpy(x), torch.from_numpy(y)

    losses = []
    for step in range(STEPS):
        opt.zero_grad()
        loss = forward_loss(tn, x_tn, y_tn, params)
        loss.backward()
        opt.step()
        scheduler.step()
        losses.append(loss.item())

        torch_opt.zero_grad()
        torch_loss = forward_loss(torch, x_t, y_t, torch_params)
        torch_loss.backward()
        torch_opt.step()
        torch_scheduler.step()

        assert loss.item() == pytest.approx(torch_loss.item(), rel=1e-9)
        for ours, theirs in zip(params, torch_params):
            np.testing.assert_allclose(ours.data, theirs.detach().numpy(), rtol=1e-9, atol=1e-12,
                                       err_msg=f"step {step + 1}")
    assert losses[-1] < losses[0]


def test_closure_runs_with_gradients_enabled_inside_no_grad():
    x, y, weights = data_and_weights()
    params = [tn.tensor(w, requires_grad=True) for w in weights]
    opt = optim.SGD(params, lr=0.1)

    def closure():
        opt.zero_grad()
        loss = forward_loss(tn, tn.tensor(x), tn.tensor(y), params)
        loss.backward()
        return loss

    with tn.no_grad():
        first = opt.step(closure).item()
    second = opt.step(closure).item()
    assert second < first
