"""Post-training int8 weight quantization (symmetric), and what it costs in accuracy.

A float weight ``w`` becomes an integer ``q = clamp(round(w / scale), -127, 127)`` with
``scale = max|w| / 127`` (per tensor: one scale; per channel: one scale per output channel,
i.e. per slice along ``axis``, usually 0). ``dequantize`` gives back ``q · scale``; the error
per element is at most ``scale / 2``. Per-channel scales follow each filter's own range, so
a filter with small weights does not lose all its precision to a large neighbour.

``quantize_model`` stores int8 weights (4× smaller than float32) and puts dequantized weights
back into a copy of the model ("fake quantization"), so any model runs unchanged and its
accuracy drop can be measured with ``evaluate_quantization``.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

import tinynn as tn
import tinynn.nn as nn

QMAX = 127  # symmetric int8: [-127, 127], so that 0 maps to 0 and the range is symmetric


@dataclass
class QuantizedTensor:
    """int8 ``values`` and float32 ``scale`` (a scalar, or one per slice along ``axis``)."""
    values: np.ndarray
    scale: np.ndarray
    axis: int | None = None

    def dequantize(self):
        return dequantize(self)

    @property
    def nbytes(self) -> int:
        return int(self.values.nbytes + np.asarray(self.scale).nbytes)


def _as_array(w) -> np.ndarray:
    data = w.data if isinstance(w, tn.Tensor) else w
    return np.asarray(data.get() if hasattr(data, "get") else data, dtype=np.float32)  # cupy -> numpy


def _quantize(w: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(w / scale), -QMAX, QMAX).astype(np.int8)


def quantize_per_tensor(weight) -> QuantizedTensor:
    """One scale for the whole tensor: ``scale = max|w| / 127``."""
    w = _as_array(weight)
    scale = np.float32(max(np.abs(w).max(initial=0.0), 1e-12) / QMAX)
    return QuantizedTensor(_quantize(w, scale), np.asarray(scale, dtype=np.float32), None)


def quantize_per_channel(weight, axis: int = 0) -> QuantizedTensor:
    """One scale per slice along ``axis`` (the output channels of a Conv2d/Linear weight)."""
    w = _as_array(weight)
    if not -w.ndim <= axis < w.ndim:
        raise ValueError(f"quantize_per_channel: axis {axis} is out of range for a weight of shape {w.shape}")
    axis = axis % w.ndim
    reduce_axes = tuple(i for i in range(w.ndim) if i != axis)
    scale = np.maximum(np.abs(w).max(axis=reduce_axes, keepdims=True), 1e-12) / QMAX
    return QuantizedTensor(_quantize(w, scale), scale.astype(np.float32), axis)


def dequantize(qt: QuantizedTensor):
    """``q · scale`` as a float32 tensor."""
    return tn.from_numpy((qt.values.astype(np.float32) * qt.scale).astype(np.float32))


def _quantizable(module: nn.Module) -> bool:
    """Linear and convolution layers (whichever of them ``tinynn.nn`` defines)."""
    kinds = tuple(getattr(nn, name) for name in ("Linear", "Conv1d", "Conv2d", "ConvTranspose1d", "ConvTranspose2d")
                  if hasattr(nn, name))
    return isinstance(module, kinds) and getattr(module, "weight", None) is not None


def quantize_model(model: nn.Module, per_channel: bool = True) -> tuple[nn.Module, dict]:
    """A copy of ``model`` whose Linear/Conv weights are replaced by their int8 round trip, and a
    ``{"weight_name": QuantizedTensor}`` dict (biases and norms stay float32, as in PyTorch's
    dynamic/static int8 schemes). The original model is not modified."""
    quantized_model = copy.deepcopy(model)
    stored = {}
    for name, module in quantized_model.named_modules():
        if not _quantizable(module):
            continue
        # ConvTranspose2d keeps output channels on axis 1 of its weight.
        axis = 1 if type(module).__name__.startswith("ConvTranspose") else 0
        qt = quantize_per_channel(module.weight, axis) if per_channel else quantize_per_tensor(module.weight)
        stored[f"{name}.weight" if name else "weight"] = qt
        with tn.no_grad():
            module.weight.data[...] = dequantize(qt).to(module.weight.device).data.astype(module.weight.dtype)
    return quantized_model, stored


def model_size_bytes(model: nn.Module, quantized: dict | None = None) -> int:
    """Bytes of the parameters, counting ``quantized`` weights at their int8 size."""
    quantized = quantized or {}
    total = 0
    for name, p in model.named_parameters():
        total += quantized[name].nbytes if name in quantized else int(p.data.nbytes)
    return total


def _accuracy(model: nn.Module, inputs, targets, batch_size: int) -> float:
    model.eval()
    correct = 0
    targets = _as_array(targets).astype(np.int64) if not isinstance(targets, np.ndarray) else targets
    with tn.no_grad():
        for start in range(0, inputs.shape[0], batch_size):
            logits = model(inputs[start:start + batch_size])
            predictions = logits.argmax(-1).numpy()
            correct += int((predictions == targets[start:start + batch_size]).sum())
    return correct / inputs.shape[0]


def evaluate_quantization(model: nn.Module, inputs, targets, per_channel: bool = True,
                          batch_size: int = 256) -> dict:
    """Accuracy of ``model`` and of its int8 version on ``(inputs, targets)``, the drop, and the sizes."""
    quantized_model, stored = quantize_model(model, per_channel)
    float_acc = _accuracy(model, inputs, targets, batch_size)
    int8_acc = _accuracy(quantized_model, inputs, targets, batch_size)
    return {"float_accuracy": float_acc, "int8_accuracy": int8_acc, "accuracy_drop": float_acc - int8_acc,
            "float_bytes": model_size_bytes(model), "int8_bytes": model_size_bytes(model, stored),
            "model": quantized_model}
