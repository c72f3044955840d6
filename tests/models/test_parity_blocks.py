"""Building blocks against the same blocks assembled from torch.nn by hand, weights copied via state_dict."""
from __future__ import annotations

import numpy as np
import pytest

import tinynn as tn
from tinynn import models
from tinynn.models.mobilenet import InvertedResidual

torch = pytest.importorskip("torch")
tnn = torch.nn

pytestmark = pytest.mark.parity


def _to_tinynn_state(torch_module) -> dict:
    return {k: v.detach().numpy().copy() for k, v in torch_module.state_dict().items()}


def _compare(ours, theirs, x: np.ndarray, train: bool, atol: float = 1e-5):
    """Same state, same input: forward outputs, input gradients and parameter gradients agree."""
    ours.load_state_dict(_to_tinynn_state(theirs))
    ours.train(train)
    theirs.train(train)
    xt = torch.tensor(x, requires_grad=True)
    xo = tn.tensor(x, requires_grad=True)
    yt, yo = theirs(xt), ours(xo)
    np.testing.assert_allclose(yo.numpy(), yt.detach().numpy(), atol=atol, rtol=1e-4)
    g = np.random.default_rng(1).standard_normal(yt.shape).astype(np.float32)
    yt.backward(torch.tensor(g))
    yo.backward(tn.tensor(g))
    np.testing.assert_allclose(xo.grad.numpy(), xt.grad.numpy(), atol=atol, rtol=1e-4)
    their_grads = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), their_grads[name].grad.numpy(), atol=atol * 10, rtol=1e-3,
                                   err_msg=name)
    if train:  # running statistics moved the same way
        their_state = theirs.state_dict()
        for key, value in ours.state_dict().items():
            if "running" in key:
                np.testing.assert_allclose(value.numpy(), their_state[key].numpy(), atol=1e-5, err_msg=key)


class TorchBasicBlock(tnn.Module):
    """torchvision's BasicBlock, written out with torch.nn."""

    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        self.conv1 = tnn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(planes)
        self.relu = tnn.ReLU(inplace=True)
        self.conv2 = tnn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = tnn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = tnn.Sequential(tnn.Conv2d(inplanes, planes, 1, stride, bias=False),
                                             tnn.BatchNorm2d(planes))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


def _randomise_bn(module):
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, tnn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)


@pytest.mark.parametrize("stride,inplanes,planes", [(1, 8, 8), (2, 8, 16)])
@pytest.mark.parametrize("train", [True, False])
def test_basic_block_matches_torch(stride, inplanes, planes, train):
    torch.manual_seed(0)
    theirs = TorchBasicBlock(inplanes, planes, stride)
    _randomise_bn(theirs)
    downsample = None
    if stride != 1 or inplanes != planes:
        downsample = models.resnet.nn.Sequential(models.resnet.conv1x1(inplanes, planes, stride),
                                                 models.resnet.nn.BatchNorm2d(planes))
    ours = models.BasicBlock(inplanes, planes, stride, downsample)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    x = np.random.default_rng(0).standard_normal((2, inplanes, 8, 8)).astype(np.float32)
    _compare(ours, theirs, x, train)


class TorchInvertedResidual(tnn.Module):
    """torchvision's InvertedResidual, written out with torch.nn (Conv2dNormActivation = Sequential)."""

    def __init__(self, inp, oup, stride, expand_ratio):
        super().__init__()
        hidden = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers = []
        if expand_ratio != 1:
            layers.append(tnn.Sequential(tnn.Conv2d(inp, hidden, 1, bias=False), tnn.BatchNorm2d(hidden),
                                         tnn.ReLU6(inplace=True)))
        layers += [tnn.Sequential(tnn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
                                  tnn.BatchNorm2d(hidden), tnn.ReLU6(inplace=True)),
                   tnn.Conv2d(hidden, oup, 1, bias=False), tnn.BatchNorm2d(oup)]
        self.conv = tnn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


@pytest.mark.parametrize("inp,oup,stride,t", [(8, 8, 1, 6), (8, 16, 2, 6), (16, 8, 1, 1)])
@pytest.mark.parametrize("train", [True, False])
def test_inverted_residual_matches_torch(inp, oup, stride, t, train):
    torch.manual_seed(0)
    theirs = TorchInvertedResidual(inp, oup, stride, t)
    _randomise_bn(theirs)
    ours = InvertedResidual(inp, oup, stride, t)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    x = np.random.default_rng(0).standard_normal((2, inp, 7, 7)).astype(np.float32)
    _compare(ours, theirs, x, train)


class TorchBasicConv2d(tnn.Module):
    def __init__(self, cin, cout, **kw):
        super().__init__()
        self.conv = tnn.Conv2d(cin, cout, bias=False, **kw)
        self.bn = tnn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x)))


class TorchInception(tnn.Module):
    """torchvision's Inception module (its "5×5" branch uses a 3×3 kernel), written out with torch.nn."""

    def __init__(self, cin, c1, c3r, c3, c5r, c5, pp):
        super().__init__()
        self.branch1 = TorchBasicConv2d(cin, c1, kernel_size=1)
        self.branch2 = tnn.Sequential(TorchBasicConv2d(cin, c3r, kernel_size=1),
                                      TorchBasicConv2d(c3r, c3, kernel_size=3, padding=1))
        self.branch3 = tnn.Sequential(TorchBasicConv2d(cin, c5r, kernel_size=1),
                                      TorchBasicConv2d(c5r, c5, kernel_size=3, padding=1))
        self.branch4 = tnn.Sequential(tnn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True),
                                      TorchBasicConv2d(cin, pp, kernel_size=1))

    def forward(self, x):
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


@pytest.mark.parametrize("train", [True, False])
def test_inception_module_matches_torch(train):
    from tinynn.models.googlenet import Inception

    torch.manual_seed(0)
    theirs = TorchInception(6, 4, 3, 5, 2, 3, 2)
    _randomise_bn(theirs)
    ours = Inception(6, 4, 3, 5, 2, 3, 2)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    x = np.random.default_rng(0).standard_normal((2, 6, 7, 7)).astype(np.float32)
    _compare(ours, theirs, x, train)


class TorchDenseLayer(tnn.Module):
    def __init__(self, cin, growth, bn_size):
        super().__init__()
        self.norm1 = tnn.BatchNorm2d(cin)
        self.relu1 = tnn.ReLU()
        self.conv1 = tnn.Conv2d(cin, bn_size * growth, 1, bias=False)
        self.norm2 = tnn.BatchNorm2d(bn_size * growth)
        self.relu2 = tnn.ReLU()
        self.conv2 = tnn.Conv2d(bn_size * growth, growth, 3, padding=1, bias=False)

    def forward(self, features):
        x = torch.cat(features, 1)
        return self.conv2(self.relu2(self.norm2(self.conv1(self.relu1(self.norm1(x))))))


class TorchDenseBlock(tnn.ModuleDict):
    """torchvision's _DenseBlock: a ModuleDict of denselayerN, the output concatenates everything."""

    def __init__(self, num_layers, cin, bn_size, growth):
        super().__init__()
        for i in range(num_layers):
            self.add_module(f"denselayer{i + 1}", TorchDenseLayer(cin + i * growth, growth, bn_size))

    def forward(self, x):
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)


@pytest.mark.parametrize("train", [True, False])
def test_dense_block_matches_torch(train):
    from tinynn.models.densenet import _DenseBlock

    torch.manual_seed(0)
    theirs = TorchDenseBlock(3, 4, 2, 3)
    _randomise_bn(theirs)
    ours = _DenseBlock(3, 4, 2, 3, drop_rate=0.0)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    x = np.random.default_rng(0).standard_normal((2, 4, 5, 5)).astype(np.float32)
    _compare(ours, theirs, x, train)
