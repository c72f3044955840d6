"""Every layer against PyTorch (one table entry each) and through gradcheck."""
from __future__ import annotations

import numpy as np
import pytest

from tests.nn.harness import Case, integers, randn, run_gradcheck, run_gradgradcheck, run_parity

LAYERS = [
    Case("Identity", lambda nn: nn.Identity(), [randn(2, 3)]),
    Case("Linear", lambda nn: nn.Linear(4, 3), [randn(2, 4)]),
    Case("Linear-3d-input", lambda nn: nn.Linear(4, 3), [randn(2, 2, 4)]),
    Case("Linear-1d-input", lambda nn: nn.Linear(4, 3), [randn(4)]),
    Case("Linear-no-bias", lambda nn: nn.Linear(3, 2, bias=False), [randn(2, 3)]),
    Case("Bilinear", lambda nn: nn.Bilinear(3, 2, 2), [randn(2, 3), randn(2, 2)]),
    Case("Flatten", lambda nn: nn.Flatten(), [randn(2, 2, 3)]),
    Case("Unflatten", lambda nn: nn.Unflatten(1, (2, 3)), [randn(2, 6)]),
    # convolutions
    Case("Conv1d", lambda nn: nn.Conv1d(2, 3, 3, stride=2, padding=1), [randn(2, 2, 7)]),
    Case("Conv2d", lambda nn: nn.Conv2d(2, 3, 3), [randn(2, 2, 5, 5)]),
    Case("Conv2d-stride-pad-dilation", lambda nn: nn.Conv2d(2, 2, 3, stride=2, padding=2, dilation=2),
         [randn(1, 2, 6, 7)]),
    Case("Conv2d-groups-no-bias", lambda nn: nn.Conv2d(4, 2, (1, 2), groups=2, bias=False), [randn(1, 4, 3, 4)]),
    Case("Conv2d-same", lambda nn: nn.Conv2d(2, 2, (3, 2), padding="same"), [randn(1, 2, 4, 5)]),
    Case("Conv2d-valid", lambda nn: nn.Conv2d(2, 2, 2, padding="valid"), [randn(1, 2, 4, 4)]),
    Case("Conv2d-reflect", lambda nn: nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect"), [randn(1, 1, 4, 5)]),
    Case("Conv2d-replicate", lambda nn: nn.Conv2d(1, 2, 3, padding=(1, 2), padding_mode="replicate"),
         [randn(1, 1, 4, 4)]),
    Case("Conv2d-circular", lambda nn: nn.Conv2d(1, 1, 3, padding=1, padding_mode="circular"), [randn(1, 1, 4, 4)]),
    Case("Conv2d-unbatched", lambda nn: nn.Conv2d(1, 2, 2), [randn(1, 3, 3)]),
    Case("ConvTranspose2d", lambda nn: nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1, output_padding=1),
         [randn(1, 2, 3, 3)]),
    Case("ConvTranspose2d-groups", lambda nn: nn.ConvTranspose2d(2, 2, 2, groups=2, bias=False), [randn(1, 2, 3, 2)]),
    Case("ConvTranspose1d", lambda nn: nn.ConvTranspose1d(2, 1, 3, stride=2), [randn(1, 2, 4)]),
    Case("Unfold", lambda nn: nn.Unfold(2, padding=1, stride=2), [randn(1, 2, 4, 3)]),
    Case("Fold", lambda nn: nn.Fold((4, 5), 2, stride=1), [randn(1, 2 * 4, 12)]),
    Case("ZeroPad2d", lambda nn: nn.ZeroPad2d((1, 0, 2, 1)), [randn(1, 1, 2, 3)]),
    Case("ConstantPad1d", lambda nn: nn.ConstantPad1d(2, 3.5), [randn(1, 2, 3)]),
    Case("ReflectionPad2d", lambda nn: nn.ReflectionPad2d(1), [randn(1, 2, 3, 3)]),
    Case("ReplicationPad1d", lambda nn: nn.ReplicationPad1d((2, 1)), [randn(1, 2, 3)]),
    Case("CircularPad2d", lambda nn: nn.CircularPad2d((1, 1, 0, 2)), [randn(1, 1, 3, 3)]),
    # pooling
    Case("MaxPool2d", lambda nn: nn.MaxPool2d(2), [randn(1, 2, 4, 4)]),
    Case("MaxPool2d-ceil-pad", lambda nn: nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True), [randn(1, 1, 6, 5)]),
    Case("MaxPool2d-indices", lambda nn: nn.MaxPool2d(2, return_indices=True), [randn(1, 2, 4, 4)]),
    Case("AvgPool2d", lambda nn: nn.AvgPool2d(2), [randn(1, 2, 4, 4)]),
    Case("AvgPool2d-pad-exclude", lambda nn: nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False),
         [randn(1, 1, 5, 5)]),
    Case("AdaptiveAvgPool2d", lambda nn: nn.AdaptiveAvgPool2d((2, 3)), [randn(1, 2, 5, 7)]),
    Case("AdaptiveMaxPool2d", lambda nn: nn.AdaptiveMaxPool2d(2), [randn(1, 2, 5, 5)]),
    Case("MaxPool1d", lambda nn: nn.MaxPool1d(2), [randn(1, 2, 6)]),
    Case("AvgPool1d", lambda nn: nn.AvgPool1d(3, stride=2), [randn(1, 2, 7)]),
    Case("AdaptiveAvgPool1d", lambda nn: nn.AdaptiveAvgPool1d(3), [randn(1, 2, 7)]),
    # normalisation
    Case("BatchNorm1d", lambda nn: nn.BatchNorm1d(3), [randn(4, 3, scale=2.0, offset=1.0)], train_eval_differ=True,
         steps=3),
    Case("BatchNorm1d-3d", lambda nn: nn.BatchNorm1d(2), [randn(3, 2, 4)], train_eval_differ=True, steps=2),
    Case("BatchNorm2d", lambda nn: nn.BatchNorm2d(2), [randn(2, 2, 3, 3, scale=3.0, offset=-1.0)],
         train_eval_differ=True, steps=3),
    Case("BatchNorm2d-momentum-None", lambda nn: nn.BatchNorm2d(2, momentum=None), [randn(2, 2, 2, 3)],
         train_eval_differ=True, steps=3),
    Case("BatchNorm2d-no-affine", lambda nn: nn.BatchNorm2d(2, affine=False), [randn(2, 2, 2, 2)],
         train_eval_differ=True, steps=2),
    Case("BatchNorm2d-no-running-stats", lambda nn: nn.BatchNorm2d(2, track_running_stats=False),
         [randn(2, 2, 2, 2)], train_eval_differ=True),
    Case("BatchNorm2d-no-bias", lambda nn: nn.BatchNorm2d(2, bias=False), [randn(2, 2, 2, 2)],
         train_eval_differ=True, steps=2),
    Case("LayerNorm", lambda nn: nn.LayerNorm(4), [randn(2, 3, 4, scale=2.0, offset=1.0)]),
    Case("LayerNorm-2d-shape", lambda nn: nn.LayerNorm((2, 3), elementwise_affine=True), [randn(2, 2, 3)]),
    Case("LayerNorm-no-affine", lambda nn: nn.LayerNorm(3, elementwise_affine=False), [randn(2, 3)]),
    Case("GroupNorm", lambda nn: nn.GroupNorm(2, 4), [randn(2, 4, 3, scale=2.0, offset=0.5)]),
    Case("GroupNorm-no-bias", lambda nn: nn.GroupNorm(3, 6, bias=False), [randn(2, 6, 2)]),
    Case("LayerNorm-no-bias", lambda nn: nn.LayerNorm(3, bias=False), [randn(2, 3)]),
    Case("GroupNorm-4d", lambda nn: nn.GroupNorm(1, 2, affine=False), [randn(2, 2, 2, 2)]),
    Case("RMSNorm", lambda nn: nn.RMSNorm(4), [randn(2, 3, 4)]),
    Case("RMSNorm-eps", lambda nn: nn.RMSNorm((2, 3), eps=1e-3), [randn(2, 2, 3)]),
    Case("LocalResponseNorm", lambda nn: nn.LocalResponseNorm(3, alpha=0.1, beta=0.75, k=2.0), [randn(2, 5, 2, 2)]),
    Case("LocalResponseNorm-3d", lambda nn: nn.LocalResponseNorm(2), [randn(2, 4, 3)]),
    Case("InstanceNorm2d", lambda nn: nn.InstanceNorm2d(2, affine=True), [randn(2, 2, 3, 3)]),
    # dropout (random in training: compared in eval mode; the statistics are tested elsewhere)
    Case("Dropout", lambda nn: nn.Dropout(0.3), [randn(3, 4)], random=True),
    Case("Dropout2d", lambda nn: nn.Dropout2d(0.5), [randn(2, 3, 2, 2)], random=True),
    # embedding
    Case("Embedding", lambda nn: nn.Embedding(5, 3), [integers(5, 2, 4)]),
    Case("Embedding-padding", lambda nn: nn.Embedding(4, 2, padding_idx=1), [integers(4, 3, 3)]),
    # activations
    Case("ReLU", lambda nn: nn.ReLU(), [randn(3, 4)]),
    Case("PReLU", lambda nn: nn.PReLU(), [randn(3, 4)]),
    Case("PReLU-channels", lambda nn: nn.PReLU(3, init=0.1), [randn(2, 3, 4)]),
    Case("ReLU6", lambda nn: nn.ReLU6(), [randn(3, 4, scale=5.0)]),
    Case("LeakyReLU", lambda nn: nn.LeakyReLU(0.2), [randn(3, 4)]),
    Case("ELU", lambda nn: nn.ELU(alpha=0.7), [randn(3, 4)]),
    Case("SELU", lambda nn: nn.SELU(), [randn(3, 4)]),
    Case("CELU", lambda nn: nn.CELU(alpha=1.5), [randn(3, 4)]),
    Case("GELU", lambda nn: nn.GELU(), [randn(3, 4, scale=2.0)]),
    Case("GELU-tanh", lambda nn: nn.GELU(approximate="tanh"), [randn(3, 4, scale=2.0)]),
    Case("SiLU", lambda nn: nn.SiLU(), [randn(3, 4, scale=3.0)]),
    Case("Mish", lambda nn: nn.Mish(), [randn(3, 4, scale=3.0)]),
    Case("Sigmoid", lambda nn: nn.Sigmoid(), [randn(3, 4, scale=3.0)]),
    Case("Tanh", lambda nn: nn.Tanh(), [randn(3, 4)]),
    Case("Softmax", lambda nn: nn.Softmax(dim=1), [randn(2, 3, 2)]),
    Case("Softmax-implicit-dim", lambda nn: nn.Softmax(), [randn(2, 3)]),
    Case("LogSoftmax", lambda nn: nn.LogSoftmax(dim=-1), [randn(2, 4)]),
    Case("Softmin", lambda nn: nn.Softmin(dim=0), [randn(2, 4)]),
    Case("Softplus", lambda nn: nn.Softplus(beta=2.0, threshold=3.0), [randn(3, 4, scale=3.0)]),
    Case("Hardtanh", lambda nn: nn.Hardtanh(-0.5, 0.7), [randn(3, 4)]),
    Case("Hardsigmoid", lambda nn: nn.Hardsigmoid(), [randn(3, 4, scale=4.0)]),
    Case("Hardswish", lambda nn: nn.Hardswish(), [randn(3, 4, scale=4.0)]),
    Case("LogSigmoid", lambda nn: nn.LogSigmoid(), [randn(3, 4, scale=3.0)]),
    Case("Softsign", lambda nn: nn.Softsign(), [randn(3, 4)]),
    Case("Tanhshrink", lambda nn: nn.Tanhshrink(), [randn(3, 4)]),
    Case("GLU", lambda nn: nn.GLU(dim=1), [randn(2, 4)]),
    # resampling
    Case("Upsample-nearest", lambda nn: nn.Upsample(scale_factor=2), [randn(1, 2, 2, 3)]),
    Case("Upsample-nearest-size", lambda nn: nn.Upsample(size=(5, 4)), [randn(1, 1, 3, 3)]),
    Case("Upsample-bilinear", lambda nn: nn.Upsample(scale_factor=2, mode="bilinear"), [randn(1, 2, 3, 2)]),
    Case("Upsample-bilinear-align", lambda nn: nn.Upsample(size=(4, 5), mode="bilinear", align_corners=True),
         [randn(1, 1, 3, 3)]),
    Case("Upsample-bilinear-down", lambda nn: nn.Upsample(size=(2, 3), mode="bilinear"), [randn(1, 1, 5, 4)]),
    Case("Upsample-linear", lambda nn: nn.Upsample(scale_factor=1.5, mode="linear"), [randn(1, 2, 4)]),
    Case("PixelShuffle", lambda nn: nn.PixelShuffle(2), [randn(1, 8, 2, 3)]),
]

# Embedding with padding_idx: its padding row gets no gradient by design (not the true derivative).
NO_GRADCHECK = {"Embedding-padding"}


@pytest.mark.parity
@pytest.mark.parametrize("case", LAYERS, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layer_matches_torch(case, dtype):
    pytest.importorskip("torch")
    run_parity(case, dtype, train=not case.random)
    if case.train_eval_differ or case.random:
        run_parity(case, dtype, train=False)


@pytest.mark.parametrize("case", [c for c in LAYERS if c.name not in NO_GRADCHECK], ids=str)
def test_layer_gradcheck(case):
    run_gradcheck(case)


@pytest.mark.parametrize("case", [c for c in LAYERS if c.name not in NO_GRADCHECK], ids=str)
def test_layer_double_backward(case):
    run_gradgradcheck(case)


@pytest.mark.parity
def test_conv_transpose_output_size_matches_torch():
    torch = pytest.importorskip("torch")
    import tinynn as tn
    import tinynn.nn as nn
    tc = torch.nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1)
    conv = nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1)
    conv.load_state_dict({k: v.detach().numpy() for k, v in tc.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((1, 2, 4, 4)).astype(np.float32)
    ours, theirs = conv(tn.tensor(x), output_size=(8, 8)), tc(torch.tensor(x), output_size=(8, 8))
    assert ours.shape == (1, 3, 8, 8)
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="not reachable"):
        conv(tn.tensor(x), output_size=(12, 12))


def test_embedding_from_pretrained_is_frozen_by_default():
    import tinynn as tn
    import tinynn.nn as nn
    table = tn.tensor([[1.0, 2.0], [3.0, 4.0]])
    emb = nn.Embedding.from_pretrained(table)
    assert not emb.weight.requires_grad
    np.testing.assert_array_equal(emb(tn.tensor([1, 0])).numpy(), [[3.0, 4.0], [1.0, 2.0]])
    assert nn.Embedding.from_pretrained(table, freeze=False).weight.requires_grad


# Realistic sizes in float32 with inputs far from zero: the fused statistics (one-pass einsum sums)
# must stay within float32 parity tolerance where rounding errors accumulate over many elements.
REALISTIC = [
    Case("BatchNorm2d-large", lambda nn: nn.BatchNorm2d(16), [randn(32, 16, 12, 12, scale=3.0, offset=20.0)],
         steps=2),
    Case("LayerNorm-large", lambda nn: nn.LayerNorm(256), [randn(8, 32, 256, scale=2.0, offset=-10.0)]),
    Case("GroupNorm-large", lambda nn: nn.GroupNorm(4, 32), [randn(8, 32, 16, 16, scale=0.5, offset=5.0)]),
    Case("Linear-large", lambda nn: nn.Linear(512, 256), [randn(64, 512)]),
]


@pytest.mark.parity
@pytest.mark.parametrize("case", REALISTIC, ids=str)
def test_realistic_sizes_float32(case):
    pytest.importorskip("torch")
    run_parity(case, np.float32)
