"""nn.utils: gradient clipping, parameter vectors, pruning, pad_sequence (against PyTorch)."""
from __future__ import annotations

import numpy as np
import pytest

import tinynn as tn
import tinynn.nn as nn
from tinynn.nn.utils import prune
from tinynn.nn.utils.rnn import pad_sequence


def _model_pair():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    tm = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3)).double()
    m = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    m.load_state_dict({k: v.numpy() for k, v in tm.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((5, 4)) * 3
    (tm(torch.tensor(x)) ** 2).sum().backward()
    (m(tn.tensor(x)) ** 2).sum().backward()
    return tm, m


@pytest.mark.parity
@pytest.mark.parametrize("norm_type", [2.0, 1.0, float("inf")])
def test_clip_grad_norm_matches_torch(norm_type):
    torch = pytest.importorskip("torch")
    tm, m = _model_pair()
    total_t = torch.nn.utils.clip_grad_norm_(tm.parameters(), 0.5, norm_type=norm_type)
    total = nn.utils.clip_grad_norm_(m.parameters(), 0.5, norm_type=norm_type)
    assert total.item() == pytest.approx(total_t.item(), rel=1e-10)
    for p, tp in zip(m.parameters(), tm.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-10)


def test_clip_grad_norm_leaves_small_gradients_alone():
    p = nn.Parameter(tn.tensor([3.0, 4.0]))
    p.grad = tn.tensor([0.3, 0.4])
    assert nn.utils.clip_grad_norm_([p], 10.0).item() == pytest.approx(0.5)
    np.testing.assert_allclose(p.grad.numpy(), [0.3, 0.4])
    p.grad = tn.tensor([float("nan"), 1.0])
    with pytest.raises(RuntimeError, match="non-finite"):
        nn.utils.clip_grad_norm_([p], 1.0, error_if_nonfinite=True)


def test_clip_grad_value():
    p = nn.Parameter(tn.zeros(4))
    p.grad = tn.tensor([-3.0, -0.5, 0.2, 5.0])
    nn.utils.clip_grad_value_([p], 1.0)
    np.testing.assert_allclose(p.grad.numpy(), [-1.0, -0.5, 0.2, 1.0])


def test_parameters_to_vector_and_back():
    m = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
    vec = nn.utils.parameters_to_vector(m.parameters())
    assert vec.shape == (3 * 2 + 2 + 2 + 1,)
    np.testing.assert_array_equal(vec.numpy()[:6], m[0].weight.numpy().reshape(-1))
    (vec * vec).sum().backward()  # differentiable: gradients reach the parameters
    np.testing.assert_allclose(m[0].weight.grad.numpy(), 2 * m[0].weight.numpy(), rtol=1e-6)
    nn.utils.vector_to_parameters(tn.arange(11, dtype=tn.float32), m.parameters())
    np.testing.assert_array_equal(m[0].bias.numpy(), [6.0, 7.0])
    np.testing.assert_array_equal(m[1].bias.numpy(), [10.0])
    with pytest.raises(ValueError, match="hold 11 elements"):
        nn.utils.vector_to_parameters(tn.zeros(5), m.parameters())


@pytest.mark.parity
def test_l1_unstructured_matches_torch_including_iterative_pruning():
    torch = pytest.importorskip("torch")
    import torch.nn.utils.prune  # noqa: F401  (a submodule torch does not import by itself)
    tl = torch.nn.Linear(6, 5)
    layer = nn.Linear(6, 5)
    layer.load_state_dict({k: v.numpy() for k, v in tl.state_dict().items()})
    torch.nn.utils.prune.l1_unstructured(tl, "weight", amount=0.3)
    prune.l1_unstructured(layer, "weight", amount=0.3)
    assert list(layer.state_dict()) == list(tl.state_dict())  # bias, weight_orig, weight_mask
    np.testing.assert_array_equal(layer.weight_mask.numpy(), tl.weight_mask.numpy())
    torch.nn.utils.prune.l1_unstructured(tl, "weight", amount=4)  # prunes 4 more among the survivors
    prune.l1_unstructured(layer, "weight", amount=4)
    np.testing.assert_array_equal(layer.weight_mask.numpy(), tl.weight_mask.numpy())
    assert int((layer.weight_mask.numpy() == 0).sum()) == 9 + 4
    np.testing.assert_allclose(layer.weight.numpy(), tl.weight.detach().numpy())


@pytest.mark.parity
def test_ln_structured_matches_torch():
    torch = pytest.importorskip("torch")
    import torch.nn.utils.prune  # noqa: F401
    tc = torch.nn.Conv2d(3, 6, 3)
    conv = nn.Conv2d(3, 6, 3)
    conv.load_state_dict({k: v.numpy() for k, v in tc.state_dict().items()})
    torch.nn.utils.prune.ln_structured(tc, "weight", amount=0.5, n=2, dim=0)
    prune.ln_structured(conv, "weight", amount=0.5, n=2, dim=0)
    np.testing.assert_array_equal(conv.weight_mask.numpy(), tc.weight_mask.numpy())
    torch.nn.utils.prune.ln_structured(tc, "weight", amount=1, n=1, dim=1)
    prune.ln_structured(conv, "weight", amount=1, n=1, dim=1)
    np.testing.assert_array_equal(conv.weight_mask.numpy(), tc.weight_mask.numpy())


def test_pruned_weight_follows_orig_and_trains_only_survivors():
    layer = nn.Linear(4, 3)
    prune.l1_unstructured(layer, "weight", amount=0.5)
    assert "weight" not in dict(layer.named_parameters())
    assert {"weight_orig", "bias"} == set(dict(layer.named_parameters()))
    assert prune.is_pruned(layer)
    x = tn.randn(2, 4)
    layer(x).sum().backward()
    mask = layer.weight_mask.numpy()
    assert np.all(layer.weight_orig.grad.numpy()[mask == 0] == 0)
    with tn.no_grad():
        layer.weight_orig.data += 1.0
    layer(x)  # the pre-hook recomputes weight = weight_orig * weight_mask
    np.testing.assert_allclose(layer.weight.numpy(), layer.weight_orig.numpy() * mask)


def test_prune_remove_makes_it_permanent():
    layer = nn.Linear(4, 3)
    prune.l1_unstructured(layer, "weight", amount=5)
    expected = layer.weight.numpy().copy()
    prune.remove(layer, "weight")
    assert list(layer.state_dict()) == ["bias", "weight"]
    assert isinstance(layer.weight, nn.Parameter)
    np.testing.assert_array_equal(layer.weight.numpy(), expected)
    assert int((expected == 0).sum()) == 5
    assert not prune.is_pruned(layer) and not layer._forward_pre_hooks
    with pytest.raises(ValueError, match="has to be pruned before"):
        prune.remove(layer, "weight")


def test_random_unstructured_and_amount_errors():
    layer = nn.Linear(10, 10)
    prune.random_unstructured(layer, "weight", amount=0.25)
    assert int((layer.weight_mask.numpy() == 0).sum()) == 25
    with pytest.raises(ValueError, match="amount"):
        prune.l1_unstructured(nn.Linear(2, 2), "weight", amount=1.5)
    with pytest.raises(ValueError, match="no larger than"):
        prune.l1_unstructured(nn.Linear(2, 2), "weight", amount=10)


def test_global_unstructured_prunes_across_layers():
    a, b = nn.Linear(4, 4), nn.Linear(4, 4)
    with tn.no_grad():
        a.weight.data[...] = 10.0
        b.weight.data[...] = np.arange(16, dtype=np.float32).reshape(4, 4)
    prune.global_unstructured([(a, "weight"), (b, "weight")], amount=8)
    assert np.all(a.weight_mask.numpy() == 1)
    np.testing.assert_array_equal(b.weight_mask.numpy().reshape(-1), [0] * 8 + [1] * 8)


@pytest.mark.parity
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("side", ["right", "left"])
def test_pad_sequence_matches_torch(batch_first, side):
    torch = pytest.importorskip("torch")
    arrays = [np.random.default_rng(i).standard_normal((n, 2)) for i, n in enumerate([3, 1, 4])]
    ours = pad_sequence([tn.tensor(a) for a in arrays], batch_first=batch_first, padding_value=-1.0,
                        padding_side=side)
    theirs = torch.nn.utils.rnn.pad_sequence([torch.tensor(a) for a in arrays], batch_first=batch_first,
                                             padding_value=-1.0, padding_side=side)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_pad_sequence_is_differentiable():
    seqs = [tn.randn(2, 3, requires_grad=True), tn.randn(4, 3, requires_grad=True)]
    pad_sequence(seqs).sum().backward()
    assert all(np.all(s.grad.numpy() == 1) for s in seqs)
