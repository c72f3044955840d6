"""Bad inputs raise errors that name the layer and the shapes involved."""
from __future__ import annotations

import re

import numpy as np
import pytest

import tinynn as tn
import tinynn.nn as nn
import tinynn.nn.functional as F


def test_conv2d_wrong_channel_count():
    conv = nn.Conv2d(3, 8, 3)
    expected = "Conv2d(3, 8, kernel_size=(3, 3)): expected input with 3 channels, got input of shape (2, 4, 8, 8)"
    with pytest.raises(ValueError, match=re.escape(expected)):
        conv(tn.randn(2, 4, 8, 8))


def test_conv2d_wrong_rank():
    message = r"Conv2d\(3, 8, kernel_size=\(3, 3\)\): expected a 3-d .* got input of shape \(8, 8\)"
    with pytest.raises(ValueError, match=message):
        nn.Conv2d(3, 8, 3)(tn.randn(8, 8))


def test_conv_constructor_errors():
    with pytest.raises(ValueError, match="divisible by groups"):
        nn.Conv2d(3, 6, 3, groups=2)
    with pytest.raises(ValueError, match="padding='same' is not supported for strided"):
        nn.Conv2d(3, 6, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="padding_mode"):
        nn.Conv2d(3, 6, 3, padding_mode="mirror")


def test_linear_wrong_feature_size():
    with pytest.raises(ValueError, match=re.escape("Linear(in_features=4, out_features=2, bias=True): expected input "
                                                   "with last dimension 4, got input of shape (3, 5)")):
        nn.Linear(4, 2)(tn.randn(3, 5))
    with pytest.raises(ValueError, match=r"linear: expected input with last dimension 4 .* got input of shape \(5,\)"):
        F.linear(tn.randn(5), tn.randn(2, 4))


def test_cross_entropy_target_out_of_range_names_value_and_classes():
    loss = nn.CrossEntropyLoss()
    with pytest.raises(IndexError, match="target 7 is out of bounds: the input has 5 classes"):
        loss(tn.randn(3, 5), tn.tensor([0, 7, 1]))
    with pytest.raises(IndexError, match="target -2 is out of bounds: the input has 5 classes"):
        loss(tn.randn(3, 5), tn.tensor([0, -2, 1]))
    # ignore_index is allowed even though it is out of range
    assert np.isfinite(loss(tn.randn(3, 5), tn.tensor([0, -100, 1])).item())


def test_cross_entropy_shape_and_dtype_errors():
    with pytest.raises(ValueError, match=r"expected target of shape \(3,\) for input of shape \(3, 5\), got \(4,\)"):
        F.cross_entropy(tn.randn(3, 5), tn.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match=r"weight must have shape \(5,\)"):
        F.cross_entropy(tn.randn(3, 5), tn.tensor([0, 1, 2]), weight=tn.ones(4))
    with pytest.raises(ValueError, match="not a valid value for reduction"):
        F.cross_entropy(tn.randn(3, 5), tn.tensor([0, 1, 2]), reduction="avg")


def test_batchnorm_wrong_dims_and_channels():
    with pytest.raises(ValueError, match=re.escape("BatchNorm2d(3): expected 4D input (got 3D input of shape "
                                                   "(2, 3, 4))")):
        nn.BatchNorm2d(3)(tn.randn(2, 3, 4))
    with pytest.raises(ValueError, match=re.escape("BatchNorm1d(3): expected 2D or 3D input (got 4D input")):
        nn.BatchNorm1d(3)(tn.randn(2, 3, 4, 4))
    with pytest.raises(ValueError, match=re.escape("BatchNorm1d(3): expected input with 3 channels (dim 1), got "
                                                   "input of shape (2, 4)")):
        nn.BatchNorm1d(3)(tn.randn(2, 4))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm1d(3)(tn.randn(1, 3))


def test_norm_layers_wrong_shapes():
    with pytest.raises(ValueError, match=r"expected input whose last dims are \(4,\), got input of shape \(2, 5\)"):
        nn.LayerNorm(4)(tn.randn(2, 5))
    with pytest.raises(ValueError, match="num_channels .6. must be divisible by num_groups .4."):
        nn.GroupNorm(4, 6)
    with pytest.raises(ValueError, match=r"expected input \(N, 6, ...\), got input of shape \(2, 4, 3\)"):
        nn.GroupNorm(3, 6)(tn.randn(2, 4, 3))


def test_loss_shape_mismatch():
    with pytest.raises(ValueError, match=r"mse_loss: target size \(3,\) must be the same as input size \(3, 1\)"):
        F.mse_loss(tn.randn(3, 1), tn.randn(3))
    with pytest.raises(ValueError, match="between 0 and 1"):
        F.binary_cross_entropy(tn.tensor([0.5, 1.5]), tn.tensor([0.0, 1.0]))


def test_embedding_index_out_of_range():
    with pytest.raises(IndexError, match="index 10 is out of range for an embedding table with 10 rows"):
        nn.Embedding(10, 3)(tn.tensor([1, 10]))
    with pytest.raises(TypeError, match="integer indices"):
        nn.Embedding(10, 3)(tn.tensor([1.0]))


def test_dropout_probability_checked():
    with pytest.raises(ValueError, match="between 0 and 1, but got 1.5"):
        nn.Dropout(1.5)


def test_interpolate_argument_errors():
    x = tn.randn(1, 1, 4, 4)
    with pytest.raises(ValueError, match="exactly one of size and scale_factor"):
        F.interpolate(x)
    with pytest.raises(ValueError, match="align_corners option can only be set"):
        F.interpolate(x, scale_factor=2, align_corners=True)
    with pytest.raises(NotImplementedError, match="bicubic"):
        F.interpolate(x, scale_factor=2, mode="bicubic")
