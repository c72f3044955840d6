"""Model compression: post-training int8 quantization and knowledge distillation.

Pruning lives in ``tinynn.nn.utils.prune`` (PyTorch's place for it).
"""
from .distillation import distillation_loss, distill_step
from .quantization import (QuantizedTensor, dequantize, evaluate_quantization, model_size_bytes, quantize_model,
                           quantize_per_channel, quantize_per_tensor)

__all__ = ["distillation_loss", "distill_step", "QuantizedTensor", "quantize_per_tensor", "quantize_per_channel",
           "dequantize", "quantize_model", "evaluate_quantization", "model_size_bytes"]
