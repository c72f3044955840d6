"""The zoo's public surface: names exported, torchvision-style constructor arguments."""
from __future__ import annotations

import inspect

import pytest

from tinynn import models

IMAGE_CONSTRUCTORS = ["alexnet", "vgg11", "vgg16", "vgg16_bn", "vgg19", "googlenet", "resnet18", "resnet34",
                      "resnet50", "densenet121", "mobilenet_v2"]


def test_every_exported_name_exists():
    missing = [name for name in models.__all__ if not hasattr(models, name)]
    assert not missing


@pytest.mark.parametrize("name", IMAGE_CONSTRUCTORS)
def test_image_constructors_take_num_classes_in_channels_small_input(name):
    parameters = inspect.signature(getattr(models, name)).parameters
    assert list(parameters)[0] == "num_classes" and parameters["num_classes"].default == 1000
    assert "in_channels" in parameters and parameters["small_input"].default is False


def test_small_model_defaults():
    assert inspect.signature(models.lenet5).parameters["num_classes"].default == 10
    assert inspect.signature(models.resnet18_cifar).parameters["num_classes"].default == 10
    assert inspect.signature(models.googlenet).parameters["aux_logits"].default is False
