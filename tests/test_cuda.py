"""tinynn on a CUDA GPU, compared with the same computation on the cpu.

Every test here carries the ``cuda`` marker and is skipped without a GPU (and
CuPy); they run on a GPU machine. Each one builds the same thing on both devices
from the same numbers and compares: ops forward and backward, layers, every
registered cuda kernel against the cpu reference, optimizer steps, a training
step; plus mixed-device errors, seeding, and checkpoints written from the GPU
and read on the cpu.

float64 comparisons are tight (the GPU does the same arithmetic in another
order); float32 ones allow for cuBLAS's different summation order.
"""
from __future__ import annotations

import copy
import os

import numpy as np
import pytest

import tinynn as tn
from tinynn import optim

pytestmark = pytest.mark.cuda

# TINYNN_TEST_DEVICE=cpu runs this file against the cpu itself (a dry run of the
# test code on machines without a GPU: ``pytest --noconftest tests/test_cuda.py``).
DEVICE = os.environ.get("TINYNN_TEST_DEVICE", "cuda")
F64 = dict(rtol=1e-9, atol=1e-10)
F32 = dict(rtol=2e-4, atol=2e-5)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def host(x) -> np.ndarray:
    """A NumPy copy of a Tensor or an array on any device."""
    data = x.data if isinstance(x, tn.Tensor) else x
    return data.get() if hasattr(data, "get") and not isinstance(data, np.ndarray) else np.asarray(data)


def to_device_array(a: np.ndarray):
    if DEVICE == "cpu":
        return a
    import cupy
    return cupy.asarray(a)


def assert_same(gpu, cpu, tolerance, what=""):
    np.testing.assert_allclose(host(gpu), host(cpu), err_msg=what, **tolerance)


def pair(array: np.ndarray, requires_grad: bool = True):
    """The same numbers as a cpu tensor and a device tensor (both leaves)."""
    cpu = tn.tensor(array, requires_grad=requires_grad)
    dev = tn.tensor(array, device=DEVICE, requires_grad=requires_grad)
    return cpu, dev


# ----------------------------------------------------------------------------- the tn.cuda module
def test_cuda_module_reports_the_gpu():
    assert tn.backend.device_of_array(to_device_array(np.zeros(1))).type == DEVICE
    if DEVICE == "cuda":
        import tinynn.cuda
        assert tinynn.cuda.is_available()
        assert tinynn.cuda.device_count() >= 1
        assert tinynn.cuda.current_device() == 0
        tinynn.cuda.synchronize()
        tinynn.cuda.empty_cache()


def test_tensors_move_between_devices():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    t = tn.tensor(a).to(DEVICE)
    assert t.device == tn.device(DEVICE)
    assert type(t.data).__module__.split(".")[0] == ("cupy" if DEVICE == "cuda" else "numpy")
    back = t.cpu()
    assert back.device == tn.device("cpu") and isinstance(back.data, np.ndarray)
    np.testing.assert_array_equal(back.numpy(), a)
    np.testing.assert_array_equal(t.numpy(), a)  # numpy() copies a cuda tensor to the host
    assert t.sum().item() == a.sum()
    # gradients flow back across a device move
    x = tn.tensor(a, requires_grad=True)
    (x.to(DEVICE) * 2).sum().backward()
    assert x.grad.device == tn.device("cpu")
    np.testing.assert_array_equal(x.grad.numpy(), np.full_like(a, 2))


# ----------------------------------------------------------------------------- ops
def _binary_inputs(rng):
    return rng.standard_normal((3, 4)), rng.standard_normal((4,))


OPS = {
    "add_broadcast": (lambda a, b: a + b, _binary_inputs),
    "mul_div": (lambda a, b: a * b / (b * b + 1), _binary_inputs),
    "pow_abs": (lambda a, b: (a.abs() + 1) ** b, _binary_inputs),
    "exp_log": (lambda a: (a.exp() + 1).log(), lambda rng: (rng.standard_normal((3, 5)),)),
    "tanh_sigmoid_relu": (lambda a: a.tanh() + a.sigmoid() + a.relu(), lambda rng: (rng.standard_normal((4, 3)),)),
    "softmax_log_softmax": (lambda a: a.softmax(-1) * a.log_softmax(0), lambda rng: (rng.standard_normal((3, 5)),)),
    "sum_mean_var": (lambda a: a.sum(1, keepdim=True) * a.mean(0) + a.var(1, keepdim=True),
                     lambda rng: (rng.standard_normal((3, 4)),)),
    "max_amax_logsumexp": (lambda a: a.max(1)[0] + a.amax(1) + a.logsumexp(1), lambda rng: (rng.standard_normal((3, 6)),)),
    "matmul_batched": (lambda a, b: a @ b, lambda rng: (rng.standard_normal((2, 3, 4)), rng.standard_normal((4, 5)))),
    "reshape_permute": (lambda a: a.reshape(2, 6).t().permute(1, 0).flatten() * 3,
                        lambda rng: (rng.standard_normal((3, 4)),)),
    "cat_stack_split": (lambda a, b: tn.stack([tn.cat([a, b], 0), tn.cat([b, a], 0)]).split(2, dim=1)[1],
                        lambda rng: (rng.standard_normal((2, 3)), rng.standard_normal((2, 3)))),
    "clamp_where": (lambda a: tn.where(a > 0, a.clamp(max=0.5), a * 2), lambda rng: (rng.standard_normal((5,)),)),
    "cumsum_prod": (lambda a: a.cumsum(0) * a.prod(1, keepdim=True), lambda rng: (rng.standard_normal((3, 3)),)),
    "einsum": (lambda a, b: tn.einsum("ij,jk->ik", a, b), lambda rng: (rng.standard_normal((2, 3)),
                                                                       rng.standard_normal((3, 4)))),
    "tril_triu_pad": (lambda a: tn.tril(a) - tn.triu(a, 1) + tn.pad(a, (1, 2)).sum(), lambda rng: (
        rng.standard_normal((4, 4)),)),
}


@pytest.mark.parametrize("name", sorted(OPS))
def test_ops_forward_and_backward_match_cpu(name, rng):
    fn, make_inputs = OPS[name]
    arrays = make_inputs(rng)
    cpu_inputs, dev_inputs = zip(*(pair(a) for a in arrays))
    out_cpu, out_dev = fn(*cpu_inputs), fn(*dev_inputs)
    assert out_dev.device == tn.device(DEVICE)
    assert_same(out_dev, out_cpu, F64, f"{name} forward")
    grad = rng.standard_normal(out_cpu.shape)
    out_cpu.backward(tn.tensor(grad))
    out_dev.backward(tn.tensor(grad, device=DEVICE))
    for i, (c, d) in enumerate(zip(cpu_inputs, dev_inputs)):
        assert d.grad.device == tn.device(DEVICE)
        assert_same(d.grad, c.grad, F64, f"{name} grad of input {i}")


def test_indexing_gather_scatter_match_cpu(rng):
    a = rng.standard_normal((5, 4))
    index = np.array([[0, 2], [1, 1], [3, 0], [2, 2], [0, 0]])
    cpu, dev = pair(a)

    def fn(t, index_tensor):
        picked = t[[0, 2, 2, 4]]  # repeated rows: their gradients add up
        masked = t[t > 0].sum()
        gathered = t.gather(1, index_tensor)
        scattered = tn.zeros(5, 4, dtype=t.dtype, device=t.device).scatter_add(1, index_tensor, gathered)
        filled = t.masked_fill(t < -0.5, 0.0)
        return picked.sum() * 2 + masked + (scattered * filled).sum()

    out_cpu = fn(cpu, tn.tensor(index))
    out_dev = fn(dev, tn.tensor(index, device=DEVICE))
    assert_same(out_dev, out_cpu, F64, "forward")
    out_cpu.backward()
    out_dev.backward()
    assert_same(dev.grad, cpu.grad, F64, "backward")


# ----------------------------------------------------------------------------- kernels
def _cuda_kernel(op, name="numba_cuda"):
    from tinynn.backend import kernels
    with kernels.use(op, name, device="cuda"):
        return kernels.get(op, "cuda")


def _cpu_reference(op):
    from tinynn.backend import kernels
    with kernels.use(op, "reference", device="cpu"):
        return kernels.get(op, "cpu")


def _skip_on_cpu_dry_run():
    if DEVICE != "cuda":
        pytest.skip("calls the cuda kernels directly")
    import cupy
    if cupy.__version__.endswith("fake"):
        pytest.skip("the fake CuPy of tests/kernels/cuda/fake_cupy cannot run Numba CUDA kernels")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("geometry", [
    ((2, 8, 17, 19), (16, 4, 3, 3), ((2, 1), (1, 1), (1, 2), 2)),
    ((4, 3, 32, 32), (8, 3, 5, 5), ((1, 1), (2, 2), (1, 1), 1)),
    ((1, 16, 9, 9), (16, 1, 3, 3), ((1, 1), (1, 1), (1, 1), 16)),  # depthwise
    ((2, 6, 7, 7), (4, 6, 1, 1), ((1, 1), (0, 0), (1, 1), 1)),
])
@pytest.mark.parametrize("name", ["numba_cuda", "cupy"])
def test_conv_kernels_match_cpu_reference(name, geometry, dtype, rng):
    _skip_on_cpu_dry_run()
    x_shape, w_shape, args = geometry
    tolerance = F64 if dtype == np.float64 else dict(rtol=1e-4, atol=1e-4)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    y = _cuda_kernel("conv2d_forward", name)(to_device_array(x), to_device_array(w), *args)
    y_ref = _cpu_reference("conv2d_forward")(x, w, *args)
    assert_same(y, y_ref, tolerance, "forward")
    grad_y = rng.standard_normal(y_ref.shape).astype(dtype)
    assert_same(_cuda_kernel("conv2d_backward_input", name)(to_device_array(grad_y), to_device_array(w), x.shape,
                                                            *args),
                _cpu_reference("conv2d_backward_input")(grad_y, w, x.shape, *args), tolerance, "grad input")
    assert_same(_cuda_kernel("conv2d_backward_weight", name)(to_device_array(grad_y), to_device_array(x), w.shape,
                                                             *args),
                _cpu_reference("conv2d_backward_weight")(grad_y, x, w.shape, *args), tolerance, "grad weight")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pooling_kernels_match_cpu_reference(dtype, rng):
    _skip_on_cpu_dry_run()
    tolerance = F64 if dtype == np.float64 else F32
    x = rng.standard_normal((3, 5, 13, 11)).astype(dtype)
    xd = to_device_array(x)
    for geometry in [((3, 3), (2, 2), (1, 1), (1, 1), True), ((2, 2), (2, 2), (0, 0), (1, 1), False),
                     ((3, 2), (1, 2), (1, 0), (2, 1), False)]:
        y, indices = _cuda_kernel("max_pool2d_forward")(xd, *geometry)
        y_ref, indices_ref = _cpu_reference("max_pool2d_forward")(x, *geometry)
        assert_same(y, y_ref, tolerance, f"max pool {geometry}")
        np.testing.assert_array_equal(host(indices), indices_ref)
        grad_y = rng.standard_normal(y_ref.shape).astype(dtype)
        assert_same(_cuda_kernel("max_pool2d_backward")(to_device_array(grad_y), indices, x.shape),
                    _cpu_reference("max_pool2d_backward")(grad_y, indices_ref, x.shape), tolerance, "max backward")
    for geometry in [((3, 3), (2, 2), (1, 1), True, True, None), ((3, 2), (2, 1), (1, 1), False, False, None),
                     ((2, 2), (2, 2), (0, 0), False, True, 3)]:
        y = _cuda_kernel("avg_pool2d_forward")(xd, *geometry)
        y_ref = _cpu_reference("avg_pool2d_forward")(x, *geometry)
        assert_same(y, y_ref, tolerance, f"avg pool {geometry}")
        grad_y = rng.standard_normal(y_ref.shape).astype(dtype)
        assert_same(_cuda_kernel("avg_pool2d_backward")(to_device_array(grad_y), x.shape, *geometry),
                    _cpu_reference("avg_pool2d_backward")(grad_y, x.shape, *geometry), tolerance, "avg backward")
    for size in [(1, 1), (4, 3), (13, 11), (5, 7)]:
        y = _cuda_kernel("adaptive_avg_pool2d_forward")(xd, size)
        assert_same(y, _cpu_reference("adaptive_avg_pool2d_forward")(x, size), tolerance, f"adaptive avg {size}")
        grad_y = rng.standard_normal(y.shape).astype(dtype)
        assert_same(_cuda_kernel("adaptive_avg_pool2d_backward")(to_device_array(grad_y), x.shape),
                    _cpu_reference("adaptive_avg_pool2d_backward")(grad_y, x.shape), tolerance, "adaptive backward")
        y, indices = _cuda_kernel("adaptive_max_pool2d_forward")(xd, size)
        y_ref, indices_ref = _cpu_reference("adaptive_max_pool2d_forward")(x, size)
        assert_same(y, y_ref, tolerance, f"adaptive max {size}")
        np.testing.assert_array_equal(host(indices), indices_ref)


@pytest.mark.parametrize("name", ["numba_cuda", "cupy"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(2, 4, 100, 130, 64, 64), (1, 2, 7, 5, 16, 8), (3, 1, 257, 257, 128, 32),
                                   (1, 1, 3, 4, 300, 300)])  # the last one falls back to the composed kernel
def test_attention_kernels_match_cpu_reference(name, dtype, shape, rng):
    _skip_on_cpu_dry_run()
    B, H, L, S, E, Ev = shape
    tolerance = F64 if dtype == np.float64 else dict(rtol=1e-3, atol=1e-4)
    q = rng.standard_normal((B, H, L, E)).astype(dtype)
    k = rng.standard_normal((B, H, S, E)).astype(dtype)
    v = rng.standard_normal((B, H, S, Ev)).astype(dtype)
    mask = (rng.standard_normal((L, S)) * 0.5).astype(dtype)
    dropout = ((rng.random((B, 1, L, S)) > 0.1) / 0.9).astype(dtype)
    grad_out = rng.standard_normal((B, H, L, Ev)).astype(dtype)
    scale = 1 / np.sqrt(E)
    for is_causal, m, d in [(False, None, None), (True, mask, None), (False, mask, dropout)]:
        args_dev = [to_device_array(a) for a in (q, k, v)]
        m_dev = None if m is None else to_device_array(m)
        d_dev = None if d is None else to_device_array(d)
        out, lse = _cuda_kernel("attention_forward", name)(*args_dev, m_dev, is_causal, scale, d_dev)
        out_ref, lse_ref = _cpu_reference("attention_forward")(q, k, v, m, is_causal, scale, d)
        assert_same(out, out_ref, tolerance, f"out causal={is_causal}")
        assert_same(lse, lse_ref, tolerance, f"lse causal={is_causal}")
        grads = _cuda_kernel("attention_backward", name)(to_device_array(grad_out), *args_dev, out, lse, m_dev,
                                                         is_causal, scale, d_dev)
        grads_ref = _cpu_reference("attention_backward")(grad_out, q, k, v, out_ref, lse_ref, m, is_causal, scale, d)
        for g, g_ref, what in zip(grads, grads_ref, ("q", "k", "v")):
            assert_same(g, g_ref, tolerance, f"grad {what} causal={is_causal}")


def test_kernels_run_on_cupys_current_stream(rng):
    _skip_on_cpu_dry_run()
    import cupy
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    expected = _cpu_reference("conv2d_forward")(x, w, (1, 1), (1, 1), (1, 1), 1)
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        xd, wd = cupy.asarray(x), cupy.asarray(w)
        y = _cuda_kernel("conv2d_forward")(xd, wd, (1, 1), (1, 1), (1, 1), 1)
        pooled, _ = _cuda_kernel("max_pool2d_forward")(y, (2, 2), (2, 2), (0, 0), (1, 1), False)
        result = pooled.get(stream=stream)
    stream.synchronize()
    expected_pooled, _ = _cpu_reference("max_pool2d_forward")(expected, (2, 2), (2, 2), (0, 0), (1, 1), False)
    np.testing.assert_allclose(result, expected_pooled, **F32)


def test_kernels_run_on_cupys_current_device(rng):
    _skip_on_cpu_dry_run()
    import cupy

    import tinynn.cuda
    if tinynn.cuda.device_count() < 2:
        pytest.skip("needs two GPUs")
    x = rng.standard_normal((2, 3, 6, 6))
    w = rng.standard_normal((4, 3, 3, 3))
    with cupy.cuda.Device(1):
        y = _cuda_kernel("conv2d_forward")(cupy.asarray(x), cupy.asarray(w), (1, 1), (1, 1), (1, 1), 1)
        assert y.device.id == 1
        result = y.get()
    np.testing.assert_allclose(result, _cpu_reference("conv2d_forward")(x, w, (1, 1), (1, 1), (1, 1), 1), **F64)
    # and a tensor on cuda:1 runs the whole op there
    import tinynn.nn.functional as F
    t = tn.tensor(x, device="cuda:1", requires_grad=True)
    out = F.max_pool2d(t, 2)
    assert out.device == tn.device("cuda:1")
    out.sum().backward()
    assert t.grad.device == tn.device("cuda:1")


# ----------------------------------------------------------------------------- layers
def _layer_cases():
    import tinynn.nn as nn
    return {
        "conv2d": (lambda: nn.Conv2d(4, 6, 3, stride=2, padding=1, dilation=1, groups=2), (2, 4, 9, 9)),
        "conv_transpose2d": (lambda: nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1), (2, 3, 5, 5)),
        "pools": (lambda: nn.Sequential(nn.MaxPool2d(2), nn.AvgPool2d(2, 1, 1), nn.AdaptiveAvgPool2d((2, 3))),
                  (2, 3, 10, 9)),
        "batchnorm_relu": (lambda: nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()), (4, 3, 6, 6)),
        "linear_layernorm_gelu": (lambda: nn.Sequential(nn.Linear(5, 7), nn.LayerNorm(7), nn.GELU()), (3, 5)),
        "lstm": (lambda: nn.LSTM(4, 5, num_layers=2, batch_first=True), (2, 6, 4)),
        "gru": (lambda: nn.GRU(4, 3, bidirectional=True), (5, 2, 4)),
        "multihead_attention": (lambda: nn.MultiheadAttention(8, 2, batch_first=True), (2, 5, 8)),
        "transformer_encoder": (lambda: nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0,
                                                                   batch_first=True), (2, 5, 8)),
    }


def _first(output):
    return output[0] if isinstance(output, tuple) else output


@pytest.mark.parametrize("name", ["conv2d", "conv_transpose2d", "pools", "batchnorm_relu", "linear_layernorm_gelu",
                                  "lstm", "gru", "multihead_attention", "transformer_encoder"])
def test_layers_forward_and_backward_match_cpu(name, rng):
    make, input_shape = _layer_cases()[name]
    tn.manual_seed(0)
    layer_cpu = make().double()
    layer_dev = copy.deepcopy(layer_cpu).to(DEVICE)
    x_cpu, x_dev = pair(rng.standard_normal(input_shape))
    if name in ("multihead_attention",):
        out_cpu, out_dev = layer_cpu(x_cpu, x_cpu, x_cpu)[0], layer_dev(x_dev, x_dev, x_dev)[0]
    else:
        out_cpu, out_dev = _first(layer_cpu(x_cpu)), _first(layer_dev(x_dev))
    assert_same(out_dev, out_cpu, F64, "forward")
    grad = rng.standard_normal(out_cpu.shape)
    out_cpu.backward(tn.tensor(grad))
    out_dev.backward(tn.tensor(grad, device=DEVICE))
    assert_same(x_dev.grad, x_cpu.grad, F64, "grad input")
    for (key, p_cpu), (_, p_dev) in zip(layer_cpu.named_parameters(), layer_dev.named_parameters()):
        assert p_dev.device == tn.device(DEVICE), key
        assert_same(p_dev.grad, p_cpu.grad, F64, f"grad {key}")
    for (key, b_cpu), (_, b_dev) in zip(layer_cpu.named_buffers(), layer_dev.named_buffers()):
        assert_same(b_dev, b_cpu, F64, f"buffer {key}")


def test_scaled_dot_product_attention_matches_cpu(rng):
    import tinynn.nn.functional as F
    q_cpu, q_dev = pair(rng.standard_normal((2, 3, 6, 4)))
    k_cpu, k_dev = pair(rng.standard_normal((2, 1, 7, 4)))  # shared across heads: its gradient is reduced
    v_cpu, v_dev = pair(rng.standard_normal((2, 1, 7, 5)))
    keep = rng.random((2, 1, 1, 7)) > 0.3
    keep[..., 0] = True
    mask_cpu, mask_dev = tn.tensor(keep), tn.tensor(keep, device=DEVICE)
    out_cpu = F.scaled_dot_product_attention(q_cpu, k_cpu, v_cpu, attn_mask=mask_cpu)
    out_dev = F.scaled_dot_product_attention(q_dev, k_dev, v_dev, attn_mask=mask_dev)
    causal_cpu = F.scaled_dot_product_attention(q_cpu, k_cpu, v_cpu, is_causal=True)
    causal_dev = F.scaled_dot_product_attention(q_dev, k_dev, v_dev, is_causal=True)
    assert_same(out_dev, out_cpu, F64, "masked")
    assert_same(causal_dev, causal_cpu, F64, "causal")
    (out_cpu.sum() + (causal_cpu ** 2).sum()).backward()
    (out_dev.sum() + (causal_dev ** 2).sum()).backward()
    for t_dev, t_cpu, what in ((q_dev, q_cpu, "q"), (k_dev, k_cpu, "k"), (v_dev, v_cpu, "v")):
        assert_same(t_dev.grad, t_cpu.grad, F64, f"grad {what}")


def test_losses_match_cpu(rng):
    import tinynn.nn.functional as F
    logits_cpu, logits_dev = pair(rng.standard_normal((6, 5)))
    target = rng.integers(0, 5, size=6)
    target[0] = -100
    t_cpu, t_dev = tn.tensor(target), tn.tensor(target, device=DEVICE)
    y_cpu, y_dev = pair(rng.random((6, 5)), requires_grad=False)

    def losses(logits, t, y):
        return (F.cross_entropy(logits, t, ignore_index=-100, label_smoothing=0.1)
                + F.mse_loss(logits.sigmoid(), y) + F.binary_cross_entropy_with_logits(logits, y)
                + F.nll_loss(logits.log_softmax(1), t.clamp(min=0)) + F.smooth_l1_loss(logits, y))

    loss_cpu, loss_dev = losses(logits_cpu, t_cpu, y_cpu), losses(logits_dev, t_dev, y_dev)
    assert_same(loss_dev, loss_cpu, F64, "loss")
    loss_cpu.backward()
    loss_dev.backward()
    assert_same(logits_dev.grad, logits_cpu.grad, F64, "grad")


# ----------------------------------------------------------------------------- optimizers and training
def _small_cnn():
    import tinynn.nn as nn
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 8, 3), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))


@pytest.mark.parametrize("make_optimizer", [
    lambda p: optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
    lambda p: optim.Adam(p, lr=1e-2, amsgrad=True),
    lambda p: optim.AdamW(p, lr=1e-2, weight_decay=0.1),
    lambda p: optim.RMSprop(p, lr=1e-2, momentum=0.5, centered=True),
    lambda p: optim.Adagrad(p, lr=1e-1),
], ids=["sgd", "adam", "adamw", "rmsprop", "adagrad"])
def test_optimizer_steps_match_cpu(make_optimizer, rng):
    import tinynn.nn.functional as F
    tn.manual_seed(0)
    model_cpu = _small_cnn().double()
    model_dev = copy.deepcopy(model_cpu).to(DEVICE)
    opt_cpu, opt_dev = make_optimizer(model_cpu.parameters()), make_optimizer(model_dev.parameters())
    images = rng.standard_normal((4, 1, 8, 8))
    labels = rng.integers(0, 3, size=4)
    for _ in range(3):
        for model, opt, device in ((model_cpu, opt_cpu, "cpu"), (model_dev, opt_dev, DEVICE)):
            opt.zero_grad()
            loss = F.cross_entropy(model(tn.tensor(images, device=device)), tn.tensor(labels, device=device))
            loss.backward()
            opt.step()
    for (key, p_cpu), (_, p_dev) in zip(model_cpu.named_parameters(), model_dev.named_parameters()):
        assert_same(p_dev, p_cpu, dict(rtol=1e-8, atol=1e-9), key)


def test_a_float32_training_run_lowers_the_loss_on_the_gpu(rng):
    import tinynn.nn.functional as F
    tn.manual_seed(0)
    model = _small_cnn().to(DEVICE)
    optimizer = optim.Adam(model.parameters(), lr=1e-2)
    images = tn.tensor(rng.standard_normal((16, 1, 8, 8)).astype(np.float32), device=DEVICE)
    labels = tn.tensor(rng.integers(0, 3, size=16), device=DEVICE)
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


# ----------------------------------------------------------------------------- errors, seeds, checkpoints
def test_mixed_device_ops_raise_naming_the_devices():
    if DEVICE == "cpu":
        pytest.skip("needs two devices")
    a = tn.ones(3)
    b = tn.ones(3, device="cuda")
    for op in (lambda: a + b, lambda: b * a, lambda: tn.cat([a, b]), lambda: a @ b):
        with pytest.raises(RuntimeError, match="cuda"):
            op()


def test_manual_seed_makes_gpu_sampling_reproducible():
    import tinynn.cuda
    tn.manual_seed(123)
    first = tn.randn(5, device=DEVICE).numpy()
    tn.manual_seed(123)
    np.testing.assert_array_equal(tn.randn(5, device=DEVICE).numpy(), first)
    tinynn.cuda.manual_seed(7)
    second = tn.rand(4, device=DEVICE).numpy()
    tinynn.cuda.manual_seed_all(7)
    if DEVICE == "cuda":
        np.testing.assert_array_equal(tn.rand(4, device=DEVICE).numpy(), second)
    # dropout draws from the device's generator too
    import tinynn.nn.functional as F
    tn.manual_seed(5)
    drop1 = F.dropout(tn.ones(100, device=DEVICE), 0.5).numpy()
    tn.manual_seed(5)
    np.testing.assert_array_equal(F.dropout(tn.ones(100, device=DEVICE), 0.5).numpy(), drop1)


def test_a_checkpoint_saved_from_the_gpu_loads_on_the_cpu(tmp_path, rng):
    tn.manual_seed(0)
    model_dev = _small_cnn().to(DEVICE)
    optimizer = optim.Adam(model_dev.parameters(), lr=1e-3)
    import tinynn.nn.functional as F
    loss = F.cross_entropy(model_dev(tn.randn(2, 1, 8, 8, device=DEVICE)), tn.tensor([0, 2], device=DEVICE))
    loss.backward()
    optimizer.step()
    path = tmp_path / "model.ckpt"
    tn.save({"model": model_dev.state_dict(), "optimizer": optimizer.state_dict()}, path)
    loaded = tn.load(path)
    for key, value in loaded["model"].items():
        assert value.device == tn.device("cpu"), key
    model_cpu = _small_cnn()
    model_cpu.load_state_dict(loaded["model"])
    x = rng.standard_normal((3, 1, 8, 8)).astype(np.float32)
    model_cpu.eval()
    model_dev.eval()
    assert_same(model_dev(tn.tensor(x, device=DEVICE)), model_cpu(tn.tensor(x)), F32, "outputs")
    # and back onto the GPU
    model_again = _small_cnn().to(DEVICE)
    model_again.load_state_dict(loaded["model"])
    model_again.eval()
    assert_same(model_again(tn.tensor(x, device=DEVICE)), model_cpu(tn.tensor(x)), F32, "reloaded on the gpu")
    optimizer_cpu = optim.Adam(model_cpu.parameters(), lr=1e-3)
    optimizer_cpu.load_state_dict(loaded["optimizer"])
