"""nn.init and the layers' default initialisation: distributions checked statistically.

Tolerances come from the sample size: the sample mean of x^2 over n draws has standard
deviation sd(x^2) / sqrt(n), and each check allows 5 of those (a false failure is
then a ~1e-6 event)."""
from __future__ import annotations

import math

import numpy as np
import pytest

import tinynn as tn
import tinynn.nn as nn
from tinynn.nn import init


def _check_uniform(values: np.ndarray, bound: float) -> None:
    """U(-bound, bound): inside the bounds, reaching close to them, variance bound^2 / 3."""
    v = values.astype(np.float64).reshape(-1)
    n = v.size
    assert np.abs(v).max() <= bound * (1 + 1e-6)
    assert np.abs(v).max() >= bound * (1 - 20.0 / n)  # the largest of n draws is within ~bound/n of bound
    second_moment_sd = math.sqrt(4.0 / 45.0) * bound ** 2 / math.sqrt(n)  # sd(x^2) = sqrt(4/45) b^2
    assert abs((v ** 2).mean() - bound ** 2 / 3) < 5 * second_moment_sd
    assert abs(v.mean()) < 5 * bound / math.sqrt(3 * n)


def _check_normal(values: np.ndarray, std: float, mean: float = 0.0) -> None:
    v = values.astype(np.float64).reshape(-1)
    n = v.size
    assert abs(v.mean() - mean) < 5 * std / math.sqrt(n)
    assert abs(v.var() - std ** 2) < 5 * math.sqrt(2.0) * std ** 2 / math.sqrt(n)  # sd(s^2) = sqrt(2) s^2 / sqrt(n)
    # Gaussian tails: about 4.55% of the draws lie beyond 2 std (binomial sd sqrt(p(1-p)/n)).
    beyond = np.mean(np.abs(v - mean) > 2 * std)
    assert abs(beyond - 0.0455) < 5 * math.sqrt(0.0455 * 0.9545 / n)


def test_uniform_and_normal():
    t = tn.empty(200, 300)
    init.uniform_(t, -0.5, 0.5)
    _check_uniform(t.numpy() , 0.5)
    init.normal_(t, 1.0, 0.2)
    _check_normal(t.numpy(), 0.2, mean=1.0)


def test_constant_zeros_ones_eye_dirac():
    t = tn.empty(3, 4)
    assert np.all(init.constant_(t, 2.5).numpy() == 2.5)
    assert np.all(init.zeros_(t).numpy() == 0)
    assert np.all(init.ones_(t).numpy() == 1)
    np.testing.assert_array_equal(init.eye_(t).numpy(), np.eye(3, 4))
    w = init.dirac_(tn.empty(2, 2, 3, 3))
    x = tn.randn(1, 2, 5, 5)
    np.testing.assert_allclose(nn.functional.conv2d(x, w, padding=1).numpy(), x.numpy(), rtol=1e-6)


@pytest.mark.parity
def test_calculate_gain_matches_torch():
    torch = pytest.importorskip("torch")
    for name, param in [("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None), ("relu", None),
                        ("leaky_relu", None), ("leaky_relu", 0.2), ("selu", None)]:
        assert init.calculate_gain(name, param) == pytest.approx(torch.nn.init.calculate_gain(name, param))
    with pytest.raises(ValueError, match="Unsupported nonlinearity"):
        init.calculate_gain("swish")


def test_fans():
    assert init._calculate_fan_in_and_fan_out(tn.empty(5, 3)) == (3, 5)
    assert init._calculate_fan_in_and_fan_out(tn.empty(8, 4, 3, 2)) == (24, 48)
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init._calculate_fan_in_and_fan_out(tn.empty(5))


def test_xavier():
    t = tn.empty(300, 200)
    init.xavier_uniform_(t, gain=2.0)
    _check_uniform(t.numpy(), 2.0 * math.sqrt(6.0 / 500))
    init.xavier_normal_(t)
    _check_normal(t.numpy(), math.sqrt(2.0 / 500))


def test_kaiming():
    t = tn.empty(128, 64, 3, 3)
    init.kaiming_uniform_(t, nonlinearity="relu")
    _check_uniform(t.numpy(), math.sqrt(2.0) * math.sqrt(3.0 / (64 * 9)))
    init.kaiming_normal_(t, mode="fan_out", nonlinearity="relu")
    _check_normal(t.numpy(), math.sqrt(2.0 / (128 * 9)))
    init.kaiming_uniform_(t, a=0.1)  # leaky_relu with slope 0.1
    _check_uniform(t.numpy(), math.sqrt(2.0 / 1.01) * math.sqrt(3.0 / (64 * 9)))
    with pytest.raises(ValueError, match="Mode fan_avg not supported"):
        init.kaiming_normal_(t, mode="fan_avg")


def test_orthogonal():
    for shape in [(6, 4), (4, 6), (3, 2, 2)]:
        t = init.orthogonal_(tn.empty(*shape, dtype=tn.float64), gain=1.5)
        m = t.numpy().reshape(shape[0], -1)
        small = m.T @ m if m.shape[0] >= m.shape[1] else m @ m.T
        np.testing.assert_allclose(small, 2.25 * np.eye(small.shape[0]), atol=1e-10)


def test_trunc_normal():
    t = init.trunc_normal_(tn.empty(100, 100), mean=0.5, std=1.0, a=-1.0, b=1.5)
    v = t.numpy()
    assert v.min() >= -1.0 and v.max() <= 1.5
    # Truncated to [mean - 1.5, mean + 1]: the mean moves left by std * (phi(alpha) - phi(beta)) / Z.
    phi = lambda z: math.exp(-z * z / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    cdf = lambda z: 0.5 * (1 + math.erf(z / math.sqrt(2)))  # noqa: E731
    alpha, beta = -1.5, 1.0
    expected = 0.5 + (phi(alpha) - phi(beta)) / (cdf(beta) - cdf(alpha))
    assert abs(v.mean() - expected) < 5 * 1.0 / math.sqrt(v.size)


def test_generator_makes_init_reproducible():
    a = init.normal_(tn.empty(4, 4), generator=tn.Generator().manual_seed(3))
    b = init.normal_(tn.empty(4, 4), generator=tn.Generator().manual_seed(3))
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_init_does_not_record_a_graph():
    p = nn.Parameter(tn.empty(3, 3))
    init.kaiming_uniform_(p)
    assert p.is_leaf and p.grad_fn is None


# --- the layers' default initialisation (PyTorch's) -------------------------------------------
def test_linear_default_init():
    layer = nn.Linear(400, 300)
    _check_uniform(layer.weight.numpy(), 1 / math.sqrt(400))  # kaiming_uniform(a=sqrt(5))
    b = layer.bias.numpy()
    assert np.abs(b).max() <= 1 / math.sqrt(400) and b.std() > 0.5 / math.sqrt(3 * 400)


def test_conv_default_init():
    conv = nn.Conv2d(16, 64, 3, groups=2)
    bound = 1 / math.sqrt(8 * 9)
    _check_uniform(conv.weight.numpy(), bound)
    assert np.abs(conv.bias.numpy()).max() <= bound
    deconv = nn.ConvTranspose2d(64, 32, 4)  # weight (in, out, k, k): fan_in = 32 * 16
    _check_uniform(deconv.weight.numpy(), 1 / math.sqrt(32 * 16))


def test_norm_and_embedding_default_init():
    bn = nn.BatchNorm2d(5)
    assert np.all(bn.weight.numpy() == 1) and np.all(bn.bias.numpy() == 0)
    assert np.all(bn.running_var.numpy() == 1) and bn.num_batches_tracked.item() == 0
    ln = nn.LayerNorm((2, 3))
    assert ln.weight.shape == (2, 3) and np.all(ln.weight.numpy() == 1)
    emb = nn.Embedding(300, 100, padding_idx=3)
    w = emb.weight.numpy()
    assert np.all(w[3] == 0)
    _check_normal(np.delete(w, 3, axis=0), 1.0)


def test_manual_seed_makes_layers_reproducible():
    tn.manual_seed(5)
    a = nn.Linear(3, 3).weight.numpy().copy()
    tn.manual_seed(5)
    b = nn.Linear(3, 3).weight.numpy()
    np.testing.assert_array_equal(a, b)
