"""ImageNet-sized models: torchvision's parameter counts, state_dict keys and shapes, a cheap forward.

The counts are torchvision's published figures (``sum(p.numel() for p in m.parameters())``
for the default 1000 classes); the keys come from torchvision's module structure.
"""
from __future__ import annotations

import gc

import numpy as np
import pytest

import tinynn as tn
from tinynn import models

from model_helpers import shapes

TORCHVISION_COUNTS = {
    "alexnet": 61_100_840,
    "vgg16": 138_357_544,
    "googlenet": 6_624_904,
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "densenet121": 7_978_856,
    "mobilenet_v2": 3_504_872,
}

# (key, shape) samples from torchvision's state_dicts, and the number of state_dict entries.
KEY_SAMPLES = {
    "alexnet": (16, {"features.0.weight": (64, 3, 11, 11), "features.3.weight": (192, 64, 5, 5),
                     "features.10.bias": (256,), "classifier.1.weight": (4096, 9216),
                     "classifier.6.weight": (1000, 4096)}),
    "vgg16": (32, {"features.0.weight": (64, 3, 3, 3), "features.28.weight": (512, 512, 3, 3),
                   "classifier.0.weight": (4096, 25088), "classifier.6.bias": (1000,)}),
    "googlenet": (344, {"conv1.conv.weight": (64, 3, 7, 7), "conv1.bn.num_batches_tracked": (),
                        "inception3a.branch3.1.conv.weight": (32, 16, 3, 3),
                        "inception4e.branch4.1.bn.running_mean": (128,),
                        "inception5b.branch2.1.conv.weight": (384, 192, 3, 3), "fc.weight": (1000, 1024)}),
    "resnet18": (122, {"conv1.weight": (64, 3, 7, 7), "bn1.running_mean": (64,),
                       "layer1.0.conv1.weight": (64, 64, 3, 3), "layer2.0.downsample.0.weight": (128, 64, 1, 1),
                       "layer2.0.downsample.1.num_batches_tracked": (), "layer4.1.bn2.bias": (512,),
                       "fc.weight": (1000, 512)}),
    "resnet34": (218, {"layer3.5.conv2.weight": (256, 256, 3, 3), "layer4.2.bn2.running_var": (512,)}),
    "densenet121": (727, {"features.conv0.weight": (64, 3, 7, 7), "features.norm0.running_mean": (64,),
                          "features.denseblock1.denselayer1.norm1.weight": (64,),
                          "features.denseblock1.denselayer1.conv1.weight": (128, 64, 1, 1),
                          "features.denseblock1.denselayer6.conv2.weight": (32, 128, 3, 3),
                          "features.transition1.conv.weight": (128, 256, 1, 1),
                          "features.denseblock4.denselayer16.norm1.running_var": (992,),
                          "features.norm5.weight": (1024,), "classifier.weight": (1000, 1024)}),
    "mobilenet_v2": (314, {"features.0.0.weight": (32, 3, 3, 3), "features.0.1.running_mean": (32,),
                           "features.1.conv.0.0.weight": (32, 1, 3, 3), "features.1.conv.1.weight": (16, 32, 1, 1),
                           "features.1.conv.2.weight": (16,), "features.2.conv.0.0.weight": (96, 16, 1, 1),
                           "features.2.conv.1.0.weight": (96, 1, 3, 3), "features.2.conv.3.bias": (24,),
                           "features.17.conv.2.weight": (320, 960, 1, 1),
                           "features.18.0.weight": (1280, 320, 1, 1), "classifier.1.weight": (1000, 1280)}),
}


def _build(name: str):
    return getattr(models, name)()


@pytest.mark.parametrize("name", list(TORCHVISION_COUNTS))
def test_parameter_count_and_keys_match_torchvision(name):
    model = _build(name)
    assert models.count_parameters(model) == TORCHVISION_COUNTS[name]
    n_entries, samples = KEY_SAMPLES[name]
    got = shapes(model)
    assert len(got) == n_entries
    for key, shape in samples.items():
        assert got.get(key) == shape, key
    del model
    gc.collect()


def test_vgg16_bn_adds_batchnorm_at_torchvision_indices():
    """torchvision's vgg16_bn has 138,365,992 parameters: vgg16's plus 2 per conv channel (γ, β).
    Checked on the small-input classifier, whose features are the full model's."""
    plain = models.vgg16(num_classes=10, small_input=True)
    with_bn = models.vgg16_bn(num_classes=10, small_input=True)
    assert models.count_parameters(with_bn) - models.count_parameters(plain) == 138_365_992 - 138_357_544
    got = shapes(with_bn)
    assert len([k for k in got if k.startswith("features.")]) == 26 + 13 * 5
    assert got["features.1.running_var"] == (64,) and got["features.41.weight"] == (512,)
    assert got["features.40.weight"] == (512, 512, 3, 3)


def test_googlenet_aux_classifiers():
    model = models.googlenet(num_classes=10, aux_logits=True, small_input=True)
    got = shapes(model)
    assert got["aux1.fc1.weight"] == (1024, 2048) and got["aux2.conv.conv.weight"] == (128, 528, 1, 1)
    assert got["aux1.fc2.weight"] == (10, 1024)
    out = model(tn.randn(2, 3, 16, 16))
    assert isinstance(out, models.GoogLeNetOutputs)
    assert [tuple(o.shape) for o in out] == [(2, 10)] * 3
    loss = models.googlenet_loss(out, tn.tensor([1, 2]))
    assert np.isfinite(loss.item())
    model.eval()
    assert tuple(model(tn.randn(1, 3, 16, 16)).shape) == (1, 10)


def test_alexnet_lrn_adds_no_parameters():
    with_lrn = models.alexnet(num_classes=10, lrn=True, small_input=True)
    plain = models.alexnet(num_classes=10, small_input=True)
    assert models.count_parameters(with_lrn) == models.count_parameters(plain)
    with tn.no_grad():
        assert tuple(with_lrn(tn.randn(1, 3, 32, 32)).shape) == (1, 10)
    assert any(type(m).__name__ == "LocalResponseNorm" for m in with_lrn.modules())


@pytest.mark.parametrize("name,size", [("resnet18", 32), ("mobilenet_v2", 32), ("densenet121", 32),
                                       ("googlenet", 32), ("alexnet", 64)])
def test_forward_at_small_resolution(name, size):
    model = getattr(models, name)(num_classes=7)
    model.eval()
    with tn.no_grad():
        out = model(tn.randn(1, 3, size, size))
    assert tuple(out.shape) == (1, 7)
    assert np.isfinite(out.numpy()).all()


def test_mobilenet_width_mult_follows_make_divisible():
    model = models.mobilenet_v2(num_classes=10, width_mult=0.5)
    got = shapes(model)
    assert got["features.0.0.weight"] == (16, 3, 3, 3)  # _make_divisible(32 * 0.5, 8)
    assert got["features.1.conv.1.weight"] == (8, 16, 1, 1)  # 16 * 0.5 = 8
    assert got["features.18.0.weight"] == (1280, 160, 1, 1)  # last channel never shrinks below 1280
