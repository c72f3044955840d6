"""Post-training int8 quantization: round-trip error bounds, per-channel vs per-tensor, accuracy drop."""
from __future__ import annotations

import numpy as np
import pytest

import tinynn as tn
import tinynn.nn as nn
import tinynn.nn.functional as F
from tinynn.compress import (dequantize, evaluate_quantization, model_size_bytes, quantize_model,
                             quantize_per_channel, quantize_per_tensor)


def test_per_tensor_round_trip_error_is_at_most_half_a_step():
    w = np.random.default_rng(0).standard_normal((8, 5)).astype(np.float32)
    qt = quantize_per_tensor(tn.from_numpy(w))
    assert qt.values.dtype == np.int8 and np.abs(qt.values).max() == 127
    assert float(qt.scale) == pytest.approx(np.abs(w).max() / 127)
    error = np.abs(dequantize(qt).numpy() - w)
    assert error.max() <= float(qt.scale) / 2 + 1e-7


def test_per_channel_uses_each_rows_range():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    w[0] *= 100.0  # one large filter
    qt = quantize_per_channel(w, axis=0)
    assert qt.scale.shape == (4, 1, 1, 1)
    np.testing.assert_allclose(qt.scale.ravel(), np.abs(w).reshape(4, -1).max(1) / 127, rtol=1e-6)
    per_channel_error = np.abs(dequantize(qt).numpy() - w)[1:].max()
    per_tensor_error = np.abs(dequantize(quantize_per_tensor(w)).numpy() - w)[1:].max()
    assert per_channel_error < per_tensor_error / 10  # small filters keep their precision
    with pytest.raises(ValueError, match="axis"):
        quantize_per_channel(w, axis=4)


def test_zero_weight_does_not_divide_by_zero():
    qt = quantize_per_channel(np.zeros((2, 3), dtype=np.float32))
    np.testing.assert_array_equal(dequantize(qt).numpy(), 0.0)


def _trained_classifier():
    """A small MLP trained on three Gaussian blobs until it is accurate."""
    from tinynn.optim import Adam

    rng = np.random.default_rng(0)
    centres = np.array([[2.0, 0.0], [-2.0, 1.0], [0.0, -2.5]], dtype=np.float32)
    labels = rng.integers(0, 3, 300)
    inputs = (centres[labels] + 0.6 * rng.standard_normal((300, 2))).astype(np.float32)
    model = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 3))
    opt = Adam(model.parameters(), lr=0.02)
    x, y = tn.from_numpy(inputs), tn.from_numpy(labels)
    for _ in range(100):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return model, inputs, labels


@pytest.mark.parametrize("per_channel", [True, False])
def test_quantize_model_measures_a_small_accuracy_drop(per_channel):
    model, inputs, labels = _trained_classifier()
    original = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    report = evaluate_quantization(model, tn.from_numpy(inputs), labels, per_channel=per_channel)
    assert report["float_accuracy"] > 0.9
    assert abs(report["accuracy_drop"]) <= 0.02
    assert report["int8_bytes"] < report["float_bytes"]  # tiny model: scales and float biases weigh in
    for key, value in model.state_dict().items():  # the original model is untouched
        np.testing.assert_array_equal(value.numpy(), original[key])
    quantized = report["model"]
    assert not np.array_equal(quantized[0].weight.numpy(), model[0].weight.numpy())
    np.testing.assert_array_equal(quantized[0].bias.numpy(), model[0].bias.numpy())  # biases stay float


def test_quantize_model_stores_int8_weights_for_conv_and_linear():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4 * 4 * 4, 2))
    quantized, stored = quantize_model(model)
    assert set(stored) == {"0.weight", "2.weight"}
    assert stored["0.weight"].values.dtype == np.int8 and stored["0.weight"].scale.shape == (4, 1, 1, 1)
    np.testing.assert_allclose(quantized[0].weight.numpy(), dequantize(stored["0.weight"]).numpy())
    float_bytes = model_size_bytes(model)
    int8_bytes = model_size_bytes(model, stored)
    weight_bytes = sum(int(model.state_dict()[k].numpy().nbytes) for k in stored)
    assert float_bytes - int8_bytes == weight_bytes - sum(q.nbytes for q in stored.values())


def test_conv_transpose_is_quantized_per_output_channel():
    """ConvTranspose2d keeps its output channels on axis 1 of the weight (in, out, kh, kw)."""
    model = nn.Sequential(nn.ConvTranspose2d(3, 5, 2))
    _, stored = quantize_model(model)
    assert stored["0.weight"].axis == 1 and stored["0.weight"].scale.shape == (1, 5, 1, 1)
