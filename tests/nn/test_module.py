"""The Module system: registration, iteration, state_dict, loading, hooks, modes, devices, repr."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest

import tinynn as tn
import tinynn.nn as nn


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)
        self.register_buffer("scale", tn.ones(3))
        self.register_buffer("cache", tn.zeros(2), persistent=False)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 5))

    def forward(self, x):
        return self.head(self.bn(self.conv(x)) * self.scale.reshape(1, 3, 1, 1))


def _torch_block():
    import torch
    tnn = torch.nn

    class TorchBlock(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv = tnn.Conv2d(2, 3, 3, padding=1)
            self.bn = tnn.BatchNorm2d(3)
            self.register_buffer("scale", torch.ones(3))
            self.register_buffer("cache", torch.zeros(2), persistent=False)
            self.head = tnn.Sequential(tnn.Flatten(), tnn.Linear(3 * 4 * 4, 5))

        def forward(self, x):
            return self.head(self.bn(self.conv(x)) * self.scale.reshape(1, 3, 1, 1))
    return TorchBlock()


# --- registration and iteration ---------------------------------------------------------
def test_attributes_are_registered_by_kind():
    m = Block()
    assert set(m._parameters) == set()
    assert list(m._modules) == ["conv", "bn", "head"]
    assert list(m._buffers) == ["scale", "cache"]
    assert isinstance(m.conv.weight, nn.Parameter) and m.conv.weight.requires_grad
    assert m.scale.shape == (3,)


def test_named_parameters_and_buffers_order():
    m = Block()
    assert [n for n, _ in m.named_parameters()] == ["conv.weight", "conv.bias", "bn.weight", "bn.bias",
                                                   "head.1.weight", "head.1.bias"]
    assert [n for n, _ in m.named_buffers()] == ["scale", "cache", "bn.running_mean", "bn.running_var",
                                                "bn.num_batches_tracked"]
    assert [n for n, _ in m.named_parameters(recurse=False)] == []
    assert [n for n, _ in m.conv.named_parameters(prefix="x")] == ["x.weight", "x.bias"]


def test_children_and_modules():
    m = Block()
    assert [type(c).__name__ for c in m.children()] == ["Conv2d", "BatchNorm2d", "Sequential"]
    assert [n for n, _ in m.named_modules()] == ["", "conv", "bn", "head", "head.0", "head.1"]
    assert len(list(m.modules())) == 6
    assert m.get_submodule("head.1") is m.head[1]
    with pytest.raises(AttributeError, match="nope"):
        m.get_submodule("head.nope")


def test_shared_parameters_reported_once():
    lin = nn.Linear(3, 3)
    m = nn.Sequential(lin, nn.ReLU(), lin)
    assert len(list(m.parameters())) == 2
    assert [n for n, _ in m.named_parameters()] == ["0.weight", "0.bias"]
    tied = nn.Module()
    tied.a = nn.Linear(2, 2)
    tied.b = nn.Linear(2, 2)
    tied.b.weight = tied.a.weight
    assert len(list(tied.parameters())) == 3
    assert list(tied.state_dict()) == ["a.weight", "a.bias", "b.weight", "b.bias"]  # state_dict keeps both names
    assert list(m.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    result = m.load_state_dict(m.state_dict())  # every name of a shared module is expected
    assert result.missing_keys == [] and result.unexpected_keys == []


def test_reassigning_and_deleting_attributes():
    m = nn.Module()
    m.w = nn.Parameter(tn.ones(2))
    m.sub = nn.Linear(2, 2)
    m.register_buffer("buf", tn.zeros(1))
    assert "w" in m._parameters and "sub" in m._modules
    m.w = None
    assert m.w is None and list(m.parameters()) == list(m.sub.parameters())
    with pytest.raises(TypeError, match="parameter 'w'"):
        m.w = tn.ones(2)
    m.buf = tn.ones(1)
    assert m._buffers["buf"] is m.buf
    del m.sub
    assert "sub" not in m._modules
    with pytest.raises(AttributeError, match="has no attribute 'sub'"):
        m.sub
    with pytest.raises(KeyError, match="contain"):
        m.register_buffer("a.b", tn.zeros(1))


def test_assigning_before_init_is_an_error():
    class Bad(nn.Module):
        def __init__(self):
            self.lin = nn.Linear(2, 2)
    with pytest.raises(AttributeError, match="before Module.__init__"):
        Bad()


def test_parameter_is_a_leaf_tensor_with_grad():
    p = nn.Parameter(tn.ones(2, 3))
    assert isinstance(p, tn.Tensor) and p.is_leaf and p.requires_grad
    assert repr(p).startswith("Parameter containing:\ntensor(")
    assert not nn.Parameter(tn.ones(1), requires_grad=False).requires_grad


# --- state_dict ------------------------------------------------------------------------
@pytest.mark.parity
def test_state_dict_keys_order_and_persistence_match_torch():
    pytest.importorskip("torch")
    tm, m = _torch_block(), Block()
    assert list(m.state_dict()) == list(tm.state_dict())
    assert "cache" not in m.state_dict()
    assert m.state_dict()["bn.num_batches_tracked"].dtype == np.int64


@pytest.mark.parity
def test_load_state_dict_from_torch_gives_same_outputs():
    torch = pytest.importorskip("torch")
    tm, m = _torch_block(), Block()
    m.load_state_dict({k: v.numpy() for k, v in tm.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((2, 2, 4, 4)).astype(np.float32)
    tm.eval(), m.eval()
    np.testing.assert_allclose(m(tn.tensor(x)).numpy(), tm(torch.tensor(x)).detach().numpy(), rtol=1e-4, atol=1e-5)


def test_state_dict_values_share_memory_and_are_detached():
    m = nn.Linear(2, 2)
    sd = m.state_dict()
    assert not sd["weight"].requires_grad
    sd["weight"].data[...] = 7.0
    assert np.all(m.weight.numpy() == 7.0)
    assert m.state_dict(keep_vars=True)["weight"] is m.weight


def test_load_state_dict_round_trip_with_tensors():
    a, b = Block(), Block()
    a.bn.running_mean.data[...] = 3.0
    result = b.load_state_dict(a.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    for (k, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        np.testing.assert_array_equal(va.numpy(), vb.numpy(), err_msg=k)
    # Copies, not aliases.
    a.conv.weight.data[...] = 0
    assert np.any(b.conv.weight.numpy() != 0)


def test_strict_load_names_missing_and_unexpected_keys():
    m = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    sd = m.state_dict()
    del sd["1.running_var"]
    sd["extra.weight"] = np.zeros(1)
    with pytest.raises(RuntimeError) as info:
        m.load_state_dict(sd)
    message = str(info.value)
    assert 'Missing key(s) in state_dict: "1.running_var"' in message
    assert 'Unexpected key(s) in state_dict: "extra.weight"' in message


def test_non_strict_load_returns_keys():
    m = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    sd = {k: v.numpy().copy() for k, v in m.state_dict().items()}
    del sd["0.bias"]
    sd["foo"] = np.ones(2)
    result = m.load_state_dict(sd, strict=False)
    assert result.missing_keys == ["0.bias"]
    assert result.unexpected_keys == ["foo"]


def test_load_state_dict_checks_shapes():
    m = nn.Linear(2, 3)
    with pytest.raises(RuntimeError, match=r"size mismatch for weight: copying a param with shape \(3, 3\)"):
        m.load_state_dict({"weight": np.zeros((3, 3)), "bias": np.zeros(3)})


def test_load_state_dict_casts_to_the_parameter_dtype():
    m = nn.Linear(2, 1)
    m.load_state_dict({"weight": np.array([[1.0, 2.0]], dtype=np.float64), "bias": np.array([0.5])})
    assert m.weight.dtype == np.float32
    np.testing.assert_array_equal(m.weight.numpy(), [[1.0, 2.0]])


# --- hooks --------------------------------------------------------------------------------
def test_forward_hooks_see_and_replace_values():
    m = nn.Linear(2, 2)
    seen = []
    h1 = m.register_forward_pre_hook(lambda mod, args: (args[0] * 0.0,))
    h2 = m.register_forward_hook(lambda mod, args, out: seen.append((mod, args[0].numpy().copy(), out)))
    x = tn.ones(1, 2)
    out = m(x)
    assert seen[0][0] is m and np.all(seen[0][1] == 0.0)
    np.testing.assert_allclose(out.numpy(), m.bias.numpy()[None], rtol=1e-6)
    h1.remove()
    h2.remove()
    m(x)
    assert len(seen) == 1
    h3 = m.register_forward_hook(lambda mod, args, out: out * 2)
    np.testing.assert_allclose(m(x).numpy(), 2 * (x.numpy() @ m.weight.numpy().T + m.bias.numpy()), rtol=1e-6)
    h3.remove()


def test_hooks_on_submodules_fire_during_parent_forward():
    m = Block()
    names = []
    for name, sub in m.named_modules():
        if name:
            sub.register_forward_hook(lambda mod, args, out, name=name: names.append(name))
    m(tn.randn(1, 2, 4, 4))
    assert names == ["conv", "bn", "head.0", "head.1", "head"]


# --- modes, apply, grads -------------------------------------------------------------------
def test_train_eval_propagates():
    m = Block()
    assert all(s.training for s in m.modules())
    assert m.eval() is m
    assert not any(s.training for s in m.modules())
    m.train()
    assert all(s.training for s in m.modules())
    m.head.train(False)
    assert m.training and not m.head[1].training


def test_apply_visits_children_first():
    m = Block()
    order = []
    m.apply(lambda mod: order.append(type(mod).__name__))
    assert order == ["Conv2d", "BatchNorm2d", "Flatten", "Linear", "Sequential", "Block"]

    def zero_linear(mod):
        if isinstance(mod, nn.Linear):
            nn.init.zeros_(mod.weight)
    m.apply(zero_linear)
    assert not np.any(m.head[1].weight.numpy())


def test_zero_grad_and_requires_grad():
    m = nn.Linear(3, 2)
    m(tn.randn(4, 3)).sum().backward()
    assert m.weight.grad is not None
    m.zero_grad(set_to_none=False)
    assert m.weight.grad is not None and not np.any(m.weight.grad.numpy())
    m.zero_grad()
    assert m.weight.grad is None and m.bias.grad is None
    m.requires_grad_(False)
    assert not any(p.requires_grad for p in m.parameters())


def test_to_dtype_keeps_parameter_objects():
    m = Block()
    weight = m.conv.weight
    m.double()
    assert m.conv.weight is weight and weight.dtype == np.float64
    assert m.bn.running_mean.dtype == np.float64
    assert m.bn.num_batches_tracked.dtype == np.int64  # integer buffers keep their dtype
    m.float()
    assert weight.dtype == np.float32
    m.to("cpu")
    assert weight.device == tn.device("cpu")
    with pytest.raises(TypeError, match="floating point"):
        m.to(np.int64)


def test_double_model_trains_in_float64():
    m = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)).double()
    out = m(tn.randn(2, 3, dtype=tn.float64))
    out.sum().backward()
    assert out.dtype == np.float64 and m[0].weight.grad.dtype == np.float64


# --- containers ------------------------------------------------------------------------
def test_sequential_indexing_slicing_and_ordered_dict():
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    assert len(seq) == 3 and isinstance(seq[-1], nn.Linear)
    head = seq[:2]
    assert isinstance(head, nn.Sequential) and len(head) == 2 and head[0] is seq[0]
    assert head(tn.randn(4, 2)).shape == (4, 3)
    seq.append(nn.Sigmoid())
    assert [type(m).__name__ for m in seq] == ["Linear", "ReLU", "Linear", "Sigmoid"]
    named = nn.Sequential(OrderedDict([("fc", nn.Linear(2, 2)), ("act", nn.ReLU())]))
    assert list(named.state_dict()) == ["fc.weight", "fc.bias"]
    assert named.fc is named[0]
    del seq[1]
    assert [type(m).__name__ for m in seq] == ["Linear", "Linear", "Sigmoid"]
    assert list(seq._modules) == ["0", "1", "2"]


def test_module_list_and_dict():
    layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    layers.append(nn.Linear(2, 1))
    assert len(layers) == 4 and len(list(layers.parameters())) == 8
    assert list(layers.state_dict())[:2] == ["0.weight", "0.bias"]
    assert isinstance(layers[1:], nn.ModuleList) and len(layers[1:]) == 3
    d = nn.ModuleDict({"enc": nn.Linear(2, 3), "dec": nn.Linear(3, 2)})
    assert list(d.keys()) == ["enc", "dec"] and "enc" in d
    assert list(d.state_dict()) == ["enc.weight", "enc.bias", "dec.weight", "dec.bias"]
    plist = nn.ParameterList([nn.Parameter(tn.ones(2)), tn.zeros(3)])
    assert [n for n, _ in plist.named_parameters()] == ["0", "1"] and plist[1].requires_grad


# --- printing ----------------------------------------------------------------------------
@pytest.mark.parity
def test_repr_matches_torch():
    torch = pytest.importorskip("torch")

    def build(lib):
        return lib.Sequential(lib.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), lib.BatchNorm2d(8),
                              lib.ReLU(inplace=True), lib.MaxPool2d(2), lib.Flatten(), lib.Dropout(0.5),
                              lib.Linear(8, 10), lib.GELU(approximate="tanh"), lib.LayerNorm(10),
                              lib.Embedding(5, 2, padding_idx=0), lib.LeakyReLU(0.2), lib.Softmax(dim=1),
                              lib.AdaptiveAvgPool2d((1, 1)), lib.GroupNorm(2, 4), lib.Upsample(scale_factor=2),
                              lib.BatchNorm1d(4, affine=False), lib.LayerNorm(3, bias=False),
                              lib.InstanceNorm2d(3), lib.RMSNorm(3), lib.ConvTranspose2d(2, 3, 2, stride=2),
                              lib.AvgPool2d(3, stride=1), lib.Bilinear(2, 3, 4), lib.Conv1d(2, 2, 3, groups=2),
                              lib.Hardtanh(-2.0, 2.0), lib.Softplus(beta=2.0), lib.ELU(alpha=0.5), lib.PReLU(3),
                              lib.ZeroPad2d(1), lib.ReflectionPad2d((1, 0, 2, 1)), lib.ConstantPad1d(2, 1.5),
                              lib.Unfold(2, stride=2), lib.Fold((4, 4), 2))
    assert repr(build(nn)) == repr(build(torch.nn))


def test_repr_nests_submodules():
    text = repr(Block())
    assert text.startswith("Block(\n  (conv): Conv2d(2, 3, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))")
    assert "  (head): Sequential(\n    (0): Flatten(start_dim=1, end_dim=-1)" in text


# --- copying and checkpoints -----------------------------------------------------------------
def test_deepcopy_and_pickle_give_independent_modules(tmp_path):
    import copy
    import pickle
    m = Block()
    for clone in (copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
        assert list(clone.state_dict()) == list(m.state_dict())
        assert clone.conv.weight is not m.conv.weight and isinstance(clone.conv.weight, nn.Parameter)
        np.testing.assert_array_equal(clone.conv.weight.numpy(), m.conv.weight.numpy())
        clone.conv.weight.data[...] = 0
        assert np.any(m.conv.weight.numpy() != 0)
    path = tmp_path / "block.ckpt"
    tn.save(m.state_dict(), str(path))
    fresh = Block()
    assert not fresh.load_state_dict(tn.load(str(path))).missing_keys
    x = tn.randn(1, 2, 4, 4)
    m.eval(), fresh.eval()
    np.testing.assert_allclose(fresh(x).numpy(), m(x).numpy(), rtol=1e-6)
