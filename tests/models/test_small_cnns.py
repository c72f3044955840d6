"""Small image models: output shapes, one training step lowers the loss, checkpoint round trip."""
from __future__ import annotations

import numpy as np
import pytest

import tinynn as tn
import tinynn.nn.functional as F
from tinynn import models

from model_helpers import assert_state_dict_round_trip, loss_after_steps, shapes

# name -> (constructor, input channels, input size); every one trains on 28×28 or 32×32 input.
SMALL_MODELS = {
    "mlp": (lambda: models.mlp(784, (32,), 10), 1, 28),
    "mlp_bn": (lambda: models.mlp(784, (32, 16), 10, batch_norm=True, activation="tanh"), 1, 28),
    "lenet5": (lambda: models.lenet5(), 1, 28),
    "lenet5_original": (lambda: models.lenet5(activation="tanh", pool="avg"), 1, 28),
    "small_cnn": (lambda: models.small_cnn(width=8), 1, 28),
    "resnet18_cifar": (lambda: models.resnet18_cifar(num_classes=10), 3, 8),
    "mobilenet_v2_small": (lambda: models.mobilenet_v2(10, width_mult=0.25, in_channels=1, small_input=True,
                                                       dropout=0.0), 1, 28),
    "densenet_cifar": (lambda: models.densenet_cifar(10, growth_rate=4, block_config=(2, 2)), 3, 32),
    "vgg11_small": (lambda: models.vgg11(10, in_channels=1, small_input=True, dropout=0.0), 1, 28),
    "alexnet_small": (lambda: models.alexnet(10, in_channels=1, small_input=True, dropout=0.0), 1, 28),
    "googlenet_small": (lambda: models.googlenet(10, small_input=True, dropout=0.0), 3, 8),
}


def _ce(model, batch):
    x, y = batch
    return F.cross_entropy(model(x), y)


@pytest.mark.parametrize("name", list(SMALL_MODELS))
def test_shape_training_step_and_round_trip(name, fixed_images, tmp_path):
    make, channels, size = SMALL_MODELS[name]
    model = make()
    x, y = fixed_images(n=4, c=channels, h=size, w=size)
    assert tuple(model(x).shape) == (4, 10)
    before, after = loss_after_steps(model, (x, y), _ce, steps=1, lr=0.01 if "googlenet" in name else 0.05)
    assert after < before
    assert_state_dict_round_trip(model, make(), tmp_path)


def test_lenet5_structure_and_errors():
    model = models.lenet5(activation="tanh", pool="avg")
    assert models.count_parameters(model) == 61_706  # LeCun's LeNet-5 with 28×28 padded input
    assert shapes(model)["features.0.weight"] == (6, 1, 5, 5)
    assert shapes(model)["classifier.0.weight"] == (120, 400)
    with pytest.raises(ValueError, match="pool"):
        models.lenet5(pool="median")
    with pytest.raises(ValueError, match="activation"):
        models.lenet5(activation="swish")


def test_resnet18_cifar_count_and_stem():
    model = models.resnet18_cifar(num_classes=10)
    assert models.count_parameters(model) == 11_173_962
    assert shapes(model)["conv1.weight"] == (64, 3, 3, 3)
    assert type(model.maxpool).__name__ == "Identity"


def test_resnet_zero_init_residual_starts_blocks_at_identity():
    model = models.resnet18_cifar(num_classes=10, zero_init_residual=True)
    assert np.all(model.layer1[0].bn2.weight.numpy() == 0)


def test_vgg_small_input_accepts_28_and_32():
    model = models.vgg16(num_classes=10, in_channels=1, small_input=True)
    model.eval()
    with tn.no_grad():
        assert tuple(model(tn.randn(1, 1, 28, 28)).shape) == (1, 10)
        assert tuple(model(tn.randn(1, 1, 32, 32)).shape) == (1, 10)
