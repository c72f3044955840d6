"""nn.functional beyond the layer table: double backward through the fused Functions,
dropout statistics, and the functional-only helpers against PyTorch."""
from __future__ import annotations

import math

import numpy as np
import pytest

import tinynn as tn
import tinynn.nn.functional as F
from tinynn.autograd import gradcheck, gradgradcheck


def _t(*shape, seed=0, scale=1.0, grad=True):
    rng = np.random.default_rng(seed)
    return tn.tensor(rng.standard_normal(shape) * scale, dtype=tn.float64, requires_grad=grad)


# --- double backward through the fused Functions ---------------------------------------------
SECOND_ORDER = {
    "linear": (lambda x, w, b: F.linear(x, w, b), lambda: [_t(3, 4), _t(2, 4, seed=1), _t(2, seed=2)]),
    "linear-3d": (lambda x, w: F.linear(x, w), lambda: [_t(2, 2, 3), _t(2, 3, seed=1)]),
    "batch_norm-train": (lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
                         lambda: [_t(4, 3, 2, scale=2.0), _t(3, seed=1), _t(3, seed=2)]),
    "batch_norm-no-affine": (lambda x: F.batch_norm(x, None, None, training=True), lambda: [_t(5, 2)]),
    "layer_norm": (lambda x, w, b: F.layer_norm(x, (4,), w, b), lambda: [_t(3, 4), _t(4, seed=1), _t(4, seed=2)]),
    "group_norm": (lambda x, w, b: F.group_norm(x, 2, w, b), lambda: [_t(2, 4, 3), _t(4, seed=1), _t(4, seed=2)]),
    "cross_entropy": (lambda x: F.cross_entropy(x, tn.tensor([0, 2, 1, 2])), lambda: [_t(4, 3)]),
    "cross_entropy-weight-smoothing-ignore": (
        lambda x: F.cross_entropy(x, tn.tensor([0, -100, 1, 2]), weight=tn.tensor([1.0, 2.0, 0.5], dtype=tn.float64),
                                  label_smoothing=0.2), lambda: [_t(4, 3)]),
    "cross_entropy-spatial-none": (lambda x: F.cross_entropy(x, tn.tensor([[0, 2], [1, 1]]), reduction="none"),
                                   lambda: [_t(2, 3, 2)]),
    "gelu": (lambda x: F.gelu(x), lambda: [_t(5)]),
    "gelu-tanh": (lambda x: F.gelu(x, approximate="tanh"), lambda: [_t(5)]),
    "silu": (F.silu, lambda: [_t(5)]),
    "mish": (F.mish, lambda: [_t(5)]),
    "softplus": (lambda x: F.softplus(x, beta=2.0), lambda: [_t(5)]),
    "elu": (F.elu, lambda: [_t(5)]),
    "leaky_relu": (lambda x: F.leaky_relu(x, 0.1) * x, lambda: [_t(5)]),
    "embedding": (lambda w: F.embedding(tn.tensor([[0, 2], [2, 1]]), w) ** 2, lambda: [_t(3, 2)]),
    "bce_with_logits": (lambda x: F.binary_cross_entropy_with_logits(
        x, tn.tensor([0.0, 1.0, 0.3], dtype=tn.float64), pos_weight=tn.tensor([2.0, 1.0, 0.5], dtype=tn.float64)),
        lambda: [_t(3)]),
    "interpolate-bilinear": (lambda x: F.interpolate(x, size=(3, 4), mode="bilinear") ** 2,
                             lambda: [_t(1, 1, 2, 3)]),
}


@pytest.mark.parametrize("name", list(SECOND_ORDER))
def test_double_backward(name):
    fn, make = SECOND_ORDER[name]
    inputs = make()
    assert gradcheck(fn, inputs)
    assert gradgradcheck(fn, inputs)


def test_batch_norm_double_backward_matches_torch():
    torch = pytest.importorskip("torch")
    x = _t(4, 3, scale=2.0)
    w = _t(3, seed=1)
    y = F.batch_norm(x, None, None, w, None, training=True)
    (gx,) = tn.autograd.grad((y ** 3).sum(), [x], create_graph=True)
    (gx * gx).sum().backward()
    xt = torch.tensor(x.numpy(), requires_grad=True)
    wt = torch.tensor(w.numpy(), requires_grad=True)
    yt = torch.nn.functional.batch_norm(xt, None, None, wt, None, training=True)
    (gxt,) = torch.autograd.grad((yt ** 3).sum(), [xt], create_graph=True)
    (gxt * gxt).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(w.grad.numpy(), wt.grad.numpy(), rtol=1e-6, atol=1e-9)


# --- dropout -----------------------------------------------------------------------------------
def test_dropout_statistics():
    n, p = 200_000, 0.3
    x = tn.ones(n)
    y = F.dropout(x, p, training=True).numpy()
    dropped = np.mean(y == 0)
    assert abs(dropped - p) < 5 * math.sqrt(p * (1 - p) / n)
    np.testing.assert_allclose(y[y != 0], 1 / (1 - p), rtol=1e-6)  # survivors are scaled by 1 / (1 - p)


def test_dropout_gradient_uses_the_same_mask():
    x = tn.randn(1000, requires_grad=True)
    y = F.dropout(x, 0.5)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy() == 0, y.numpy() == 0)


def test_dropout_eval_and_edge_probabilities():
    x = tn.randn(10, 10)
    assert F.dropout(x, 0.5, training=False) is x
    assert np.all(F.dropout(x, 1.0).numpy() == 0)
    np.testing.assert_array_equal(F.dropout(x, 0.0).numpy(), x.numpy())
    layer = tn.nn.Dropout(0.5).eval()
    np.testing.assert_array_equal(layer(x).numpy(), x.numpy())


def test_dropout2d_zeroes_whole_channels():
    y = F.dropout2d(tn.ones(8, 16, 3, 3), 0.5).numpy()
    per_channel = y.reshape(8, 16, 9)
    assert np.all((per_channel == 0).all(-1) | (per_channel == 2.0).all(-1))
    assert 0 < np.mean(per_channel[..., 0] == 0) < 1


def test_dropout_generator_and_seed_reproducible():
    x = tn.ones(100)
    a = F.dropout(x, 0.5, generator=tn.Generator().manual_seed(1)).numpy()
    b = F.dropout(x, 0.5, generator=tn.Generator().manual_seed(1)).numpy()
    np.testing.assert_array_equal(a, b)
    tn.manual_seed(7)
    c = tn.nn.Dropout(0.5)(x).numpy()
    tn.manual_seed(7)
    np.testing.assert_array_equal(c, tn.nn.Dropout(0.5)(x).numpy())


# --- functional helpers against PyTorch ---------------------------------------------------------
def _both(shape, seed=0):
    torch = pytest.importorskip("torch")
    a = np.random.default_rng(seed).standard_normal(shape)
    return tn.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)


def _compare(ours, x, theirs, xt, rtol=1e-6):
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=rtol, atol=1e-10)
    g = np.random.default_rng(1).standard_normal(ours.shape)
    import torch
    ours.backward(tn.tensor(g))
    theirs.backward(torch.tensor(g))
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=rtol, atol=1e-10)


INTERPOLATIONS = [
    dict(scale_factor=2, mode="nearest"),
    dict(scale_factor=1.7, mode="nearest"),
    dict(size=(3, 7), mode="nearest"),
    dict(scale_factor=0.6, mode="nearest", recompute_scale_factor=True),
    dict(size=(5, 6), mode="nearest-exact"),
    dict(scale_factor=1.5, mode="bilinear"),
    dict(scale_factor=2, mode="bilinear", align_corners=True),
    dict(size=(2, 9), mode="bilinear", align_corners=False),
    dict(size=(1, 1), mode="bilinear", align_corners=True),
]


@pytest.mark.parity
@pytest.mark.parametrize("kwargs", INTERPOLATIONS, ids=lambda k: "-".join(f"{v}" for v in k.values()))
def test_interpolate_matches_torch(kwargs):
    torch = pytest.importorskip("torch")
    x, xt = _both((2, 2, 4, 5))
    _compare(F.interpolate(x, **kwargs), x, torch.nn.functional.interpolate(xt, **kwargs), xt)


@pytest.mark.parity
def test_interpolate_linear_and_trilinear_match_torch():
    torch = pytest.importorskip("torch")
    x, xt = _both((1, 2, 5))
    _compare(F.interpolate(x, size=8, mode="linear"), x,
             torch.nn.functional.interpolate(xt, size=8, mode="linear"), xt)
    x, xt = _both((1, 1, 2, 3, 2))
    _compare(F.interpolate(x, scale_factor=2, mode="trilinear", align_corners=True), x,
             torch.nn.functional.interpolate(xt, scale_factor=2, mode="trilinear", align_corners=True), xt)


@pytest.mark.parity
@pytest.mark.parametrize("name, ours, theirs", [
    ("normalize", lambda x: F.normalize(x, p=2, dim=1), lambda F_, x: F_.normalize(x, p=2, dim=1)),
    ("normalize-p1-dim0", lambda x: F.normalize(x, p=1, dim=0), lambda F_, x: F_.normalize(x, p=1, dim=0)),
    ("cosine_similarity", lambda x: F.cosine_similarity(x, x * x + 1.0, dim=1),
     lambda F_, x: F_.cosine_similarity(x, x * x + 1.0, dim=1)),
    ("pairwise_distance", lambda x: F.pairwise_distance(x, x.flip(0)),
     lambda F_, x: F_.pairwise_distance(x, x.flip(0))),
    ("pairwise_distance-p3-keepdim", lambda x: F.pairwise_distance(x, x * 2.0, p=3, keepdim=True),
     lambda F_, x: F_.pairwise_distance(x, x * 2.0, p=3, keepdim=True)),
    ("softmax-implicit", lambda x: F.softmax(x), lambda F_, x: F_.softmax(x, dim=1)),
    ("log_softmax", lambda x: F.log_softmax(x, dim=0), lambda F_, x: F_.log_softmax(x, dim=0)),
    ("pad-reflect", lambda x: F.pad(x, (1, 2), mode="reflect"), lambda F_, x: F_.pad(x, (1, 2), mode="reflect")),
    ("glu", lambda x: F.glu(x, dim=0), lambda F_, x: F_.glu(x, dim=0)),
    ("rms_norm", lambda x: F.rms_norm(x, (4,)), lambda F_, x: F_.rms_norm(x, (4,))),
    ("local_response_norm", lambda x: F.local_response_norm(x.reshape(1, 4, 4), 3),
     lambda F_, x: F_.local_response_norm(x.reshape(1, 4, 4), 3)),
    ("instance_norm", lambda x: F.instance_norm(x.reshape(2, 2, 4)),
     lambda F_, x: F_.instance_norm(x.reshape(2, 2, 4))),
])
def test_functional_matches_torch(name, ours, theirs):
    torch = pytest.importorskip("torch")
    x, xt = _both((4, 4))
    _compare(ours(x), x, theirs(torch.nn.functional, xt), xt)


@pytest.mark.parity
def test_batch_norm_functional_updates_running_stats_like_torch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal((6, 3, 2)) * 2 + 1
    rm, rv = tn.zeros(3, dtype=tn.float64), tn.ones(3, dtype=tn.float64)
    rmt, rvt = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    for momentum in (0.1, 0.5):
        F.batch_norm(tn.tensor(x), rm, rv, training=True, momentum=momentum)
        torch.nn.functional.batch_norm(torch.tensor(x), rmt, rvt, training=True, momentum=momentum)
    np.testing.assert_allclose(rm.numpy(), rmt.numpy(), rtol=1e-12)
    np.testing.assert_allclose(rv.numpy(), rvt.numpy(), rtol=1e-12)
    out = F.batch_norm(tn.tensor(x), rm, rv, training=False)
    np.testing.assert_allclose(out.numpy(), torch.nn.functional.batch_norm(torch.tensor(x), rmt, rvt).numpy(),
                               rtol=1e-10)


def test_one_hot():
    out = F.one_hot(tn.tensor([[0, 2], [1, 0]]), num_classes=4)
    assert out.dtype == np.int64 and out.shape == (2, 2, 4)
    np.testing.assert_array_equal(out.numpy()[0, 1], [0, 0, 1, 0])
    assert F.one_hot(tn.tensor([3, 1])).shape == (2, 4)
    with pytest.raises(ValueError, match="class values must be in"):
        F.one_hot(tn.tensor([5]), num_classes=3)


@pytest.mark.parity
def test_embedding_max_norm_renormalises_rows_like_torch():
    torch = pytest.importorskip("torch")
    w = np.random.default_rng(0).standard_normal((5, 3)) * 3
    idx = np.array([[0, 2], [2, 4]])
    ours = tn.tensor(w.copy())
    theirs = torch.tensor(w.copy())
    out = F.embedding(tn.tensor(idx), ours, max_norm=1.5)
    out_t = torch.nn.functional.embedding(torch.tensor(idx), theirs, max_norm=1.5)
    np.testing.assert_allclose(out.numpy(), out_t.numpy(), rtol=1e-6)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6)  # rows 0, 2, 4 rescaled in place


def test_linear_fused_matches_composition():
    x, w, b = tn.randn(5, 3, requires_grad=True), tn.randn(4, 3, requires_grad=True), tn.randn(4, requires_grad=True)
    y = F.linear(x, w, b)
    np.testing.assert_allclose(y.numpy(), x.numpy() @ w.numpy().T + b.numpy(), rtol=1e-5)
    y.sum().backward()
    np.testing.assert_allclose(b.grad.numpy(), np.full(4, 5.0), rtol=1e-6)
    np.testing.assert_allclose(w.grad.numpy(), np.tile(x.numpy().sum(0), (4, 1)), rtol=1e-5)


def test_reexported_kernel_ops_exist():
    for name in ["conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d", "max_pool1d", "max_pool2d",
                 "avg_pool1d", "avg_pool2d", "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_max_pool2d",
                 "scaled_dot_product_attention", "unfold", "fold", "pad"]:
        assert callable(getattr(F, name)), name


@pytest.mark.parity
@pytest.mark.parametrize("name", ["relu6", "hardtanh", "hardsigmoid", "hardswish", "relu", "leaky_relu", "elu"])
def test_piecewise_activations_match_torch_at_the_kinks(name):
    """Exactly at the breakpoints PyTorch picks one side's derivative; so must we."""
    torch = pytest.importorskip("torch")
    x = np.array([-4.0, -3.0, -1.0, 0.0, 1.0, 3.0, 6.0, 7.0])
    ours, theirs = tn.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    getattr(F, name)(ours).sum().backward()
    getattr(torch.nn.functional, name)(theirs).sum().backward()
    np.testing.assert_allclose(getattr(F, name)(ours).detach().numpy(),
                               getattr(torch.nn.functional, name)(theirs).detach().numpy(), rtol=1e-12)
    # rtol 1e-7: PyTorch's float64 hardsigmoid backward multiplies by a float32 1/6.
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-7)


@pytest.mark.parity
@pytest.mark.parametrize("name", ["normalize", "cosine_similarity"])
def test_zero_vectors_give_torch_gradients_not_nan(name):
    torch = pytest.importorskip("torch")
    x, xt = tn.zeros(2, 3, requires_grad=True), torch.zeros(2, 3, requires_grad=True)
    if name == "normalize":
        F.normalize(x).sum().backward()
        torch.nn.functional.normalize(xt).sum().backward()
    else:
        F.cosine_similarity(x, x + 1.0).sum().backward()
        torch.nn.functional.cosine_similarity(xt, xt + 1.0).sum().backward()
    assert np.all(np.isfinite(x.grad.numpy()))
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-6)


def test_batch_norm_statistics_stay_accurate_over_a_million_elements():
    """float32 running variance over 4 x 250k values per channel: within 1e-6 of float64."""
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((4, 2, 500, 500)) * 3 + 5).astype(np.float32)
    running_mean, running_var = tn.zeros(2), tn.ones(2)
    F.batch_norm(tn.tensor(x), running_mean, running_var, training=True, momentum=1.0)
    expected = x.astype(np.float64).var(axis=(0, 2, 3), ddof=1)
    np.testing.assert_allclose(running_var.numpy(), expected, rtol=1e-6)
