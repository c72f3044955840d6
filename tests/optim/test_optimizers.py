"""Optimizers: float64 trajectories against PyTorch's, parameter groups, state dicts, errors.

The gradients come from a fixed Rosenbrock-like loss computed in NumPy, so these
tests exercise only the optimizers (not the autograd): both libraries see exactly
the same gradient for the same parameter values at every step.
"""
import contextlib
import copy

import numpy as np
import pytest

import tinynn as tn
from tinynn import optim
from tinynn.serialization import load, save
from tinynn.tensor import Tensor

N_STEPS = 25
RTOL, ATOL = 1e-10, 1e-12  # float64; the two libraries round a few operations differently


UPDATE_OPS = ("optim_sgd", "optim_adam", "optim_rmsprop", "optim_adagrad")


@pytest.fixture(autouse=True)
def torch_float64_scalars():
    """PyTorch keeps a few scalar states (NAdam's mu_product) in its default dtype; make it
    float64 so that the float64 trajectories can be compared to 1e-10."""
    try:
        import torch
    except ImportError:
        yield
        return
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


@pytest.fixture(params=["reference", "numba"])
def implementation(request):
    """Run the test with the NumPy reference updates, then with the fused Numba kernels."""
    with contextlib.ExitStack() as stack:
        for op in UPDATE_OPS:
            stack.enter_context(tn.backend.kernels.use(op, request.param))
        yield request.param


def loss_grad(x: np.ndarray) -> np.ndarray:
    """Gradient of sum((1 - x_i)^2 + 2 (x_{i+1} - x_i^2)^2) over x's flattened entries."""
    v = x.ravel()
    g = np.zeros_like(v)
    g[:-1] += -2.0 * (1.0 - v[:-1]) - 8.0 * v[:-1] * (v[1:] - v[:-1] ** 2)
    g[1:] += 4.0 * (v[1:] - v[:-1] ** 2)
    return g.reshape(x.shape)


def initial_values() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.uniform(-1.5, 1.5, size=(3, 4)), rng.uniform(-1.5, 1.5, size=(5,))]


def make_params(values) -> list[Tensor]:
    return [Tensor(v.copy(), requires_grad=True) for v in values]


def gets_grad(param_index: int, step: int) -> bool:
    """The second parameter gets no gradient on every third step, so the optimizers must
    skip it (as PyTorch does)."""
    return not (param_index == 1 and step % 3 == 2)


def objective_sign(opt) -> float:
    """With maximize=True the optimizers climb, so we hand them the gradient of -loss."""
    return -1.0 if opt.param_groups[0].get("maximize") else 1.0


def run_tinynn(opt, params, steps, start=0):
    history = []
    sign = objective_sign(opt)
    for step in range(start, start + steps):
        for i, p in enumerate(params):
            p.grad = Tensor(sign * loss_grad(p.data)) if gets_grad(i, step) else None
        opt.step()
        history.append([p.data.copy() for p in params])
    return history


def run_torch(torch, opt, params, steps):
    history = []
    sign = objective_sign(opt)
    for step in range(steps):
        for i, p in enumerate(params):
            p.grad = torch.from_numpy(sign * loss_grad(p.detach().numpy())) if gets_grad(i, step) else None
        opt.step()
        history.append([p.detach().numpy().copy() for p in params])
    return history


def assert_same_trajectory(ours, theirs):
    assert len(ours) == len(theirs)
    assert all(np.all(np.isfinite(p)) for params in ours for p in params)
    for step, (a_params, b_params) in enumerate(zip(ours, theirs)):
        for a, b in zip(a_params, b_params):
            np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL, err_msg=f"step {step + 1}")


CONFIGS = [
    ("SGD", dict(lr=0.01)),
    ("SGD", dict(lr=0.01, momentum=0.9)),
    ("SGD", dict(lr=0.01, momentum=0.9, dampening=0.3)),
    ("SGD", dict(lr=0.01, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.01, momentum=0.5, weight_decay=0.1)),
    ("SGD", dict(lr=0.01, momentum=0.9, nesterov=True, weight_decay=0.05, maximize=True)),
    ("SGD", dict(lr=0.01, weight_decay=0.1, maximize=True)),
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05)),
    ("Adagrad", dict(lr=0.1, initial_accumulator_value=0.5, weight_decay=0.1)),
    ("Adagrad", dict(lr=0.1, eps=1e-3, maximize=True)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, alpha=0.9)),
    ("RMSprop", dict(lr=0.01, momentum=0.9)),
    ("RMSprop", dict(lr=0.01, centered=True)),
    ("RMSprop", dict(lr=0.01, alpha=0.8, momentum=0.5, centered=True, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.01, eps=1e-3, maximize=True)),
    ("Adam", dict(lr=0.05)),
    ("Adam", dict(lr=0.05, betas=(0.8, 0.99))),
    ("Adam", dict(lr=0.05, betas=(0.3, 0.9))),  # 1 - beta1 >= 0.5: lerp's other branch
    ("Adam", dict(lr=0.05, amsgrad=True)),
    ("Adam", dict(lr=0.05, weight_decay=0.1)),
    ("Adam", dict(lr=0.05, weight_decay=0.1, amsgrad=True, eps=1e-4, maximize=True)),
    ("AdamW", dict(lr=0.05)),
    ("AdamW", dict(lr=0.05, weight_decay=0.3)),
    ("AdamW", dict(lr=0.05, weight_decay=0.1, amsgrad=True, betas=(0.7, 0.95))),
    ("Adadelta", dict()),
    ("Adadelta", dict(lr=0.5, rho=0.8, eps=1e-4, weight_decay=0.1, maximize=True)),
    ("Adamax", dict(lr=0.05)),
    ("Adamax", dict(lr=0.05, betas=(0.3, 0.9), weight_decay=0.1, eps=1e-3, maximize=True)),
    ("NAdam", dict(lr=0.05)),
    ("NAdam", dict(lr=0.05, momentum_decay=0.01, weight_decay=0.1)),
    ("NAdam", dict(lr=0.05, weight_decay=0.1, decoupled_weight_decay=True, maximize=True)),
    ("RAdam", dict(lr=0.05)),
    ("RAdam", dict(lr=0.05, betas=(0.8, 0.9), weight_decay=0.1)),
    ("RAdam", dict(lr=0.05, weight_decay=0.1, decoupled_weight_decay=True, maximize=True)),
]


def config_id(config):
    name, kwargs = config
    return name + "(" + ",".join(f"{k}={v}" for k, v in kwargs.items()) + ")"


@pytest.mark.parity
@pytest.mark.parametrize("config", CONFIGS, ids=[config_id(c) for c in CONFIGS])
def test_trajectory_matches_pytorch(config, implementation):
    torch = pytest.importorskip("torch")
    name, kwargs = config
    values = initial_values()
    params = make_params(values)
    ours = run_tinynn(getattr(optim, name)(params, **kwargs), params, N_STEPS)
    torch_params = [torch.tensor(v, requires_grad=True) for v in values]
    theirs = run_torch(torch, getattr(torch.optim, name)(torch_params, **kwargs), torch_params, N_STEPS)
    assert_same_trajectory(ours, theirs)
    assert not np.allclose(ours[-1][0], values[0])  # the parameters did move


GROUP_CONFIGS = [
    ("SGD", dict(lr=0.01), [dict(momentum=0.9), dict(lr=0.02, momentum=0.5, nesterov=True, weight_decay=0.1)]),
    ("Adagrad", dict(lr=0.1), [dict(lr_decay=0.1), dict(eps=0.1, weight_decay=0.2)]),
    ("RMSprop", dict(lr=0.01), [dict(centered=True), dict(momentum=0.8, alpha=0.9)]),
    ("Adam", dict(lr=0.05), [dict(amsgrad=True), dict(lr=0.01, betas=(0.5, 0.9), weight_decay=0.2)]),
    ("AdamW", dict(lr=0.05), [dict(weight_decay=0.5), dict(lr=0.02, amsgrad=True)]),
]


@pytest.mark.parity
@pytest.mark.parametrize("name,defaults,group_options", GROUP_CONFIGS, ids=[c[0] for c in GROUP_CONFIGS])
def test_parameter_groups_match_pytorch(name, defaults, group_options, implementation):
    torch = pytest.importorskip("torch")
    values = initial_values()
    params = make_params(values)
    groups = [dict(params=[p], **options) for p, options in zip(params, group_options)]
    opt = getattr(optim, name)(groups, **defaults)
    ours = run_tinynn(opt, params, N_STEPS)

    torch_params = [torch.tensor(v, requires_grad=True) for v in values]
    torch_groups = [dict(params=[p], **options) for p, options in zip(torch_params, group_options)]
    torch_opt = getattr(torch.optim, name)(torch_groups, **defaults)
    theirs = run_torch(torch, torch_opt, torch_params, N_STEPS)
    assert_same_trajectory(ours, theirs)

    # the state dict has PyTorch's layout and keys
    ours_sd, theirs_sd = opt.state_dict(), torch_opt.state_dict()
    assert sorted(ours_sd["state"]) == sorted(theirs_sd["state"]) == [0, 1]
    for index in ours_sd["state"]:
        assert set(ours_sd["state"][index]) == set(theirs_sd["state"][index])
        for key, value in ours_sd["state"][index].items():
            if key != "step":
                np.testing.assert_allclose(value.data, theirs_sd["state"][index][key].numpy(), rtol=RTOL, atol=ATOL)
    torch_only = {"foreach", "fused", "capturable", "differentiable", "decoupled_weight_decay"}
    for ours_group, theirs_group in zip(ours_sd["param_groups"], theirs_sd["param_groups"]):
        assert set(ours_group) == set(theirs_group) - torch_only
        for key in ours_group:
            assert ours_group[key] == theirs_group[key], key


@pytest.mark.parametrize("config", CONFIGS[::2], ids=[config_id(c) for c in CONFIGS[::2]])
@pytest.mark.parametrize("through_file", [False, True], ids=["in_memory", "tn_save"])
def test_state_dict_round_trip_continues_identically(config, through_file, tmp_path, implementation):
    name, kwargs = config
    values = initial_values()
    reference_params = make_params(values)
    reference = run_tinynn(getattr(optim, name)(reference_params, **kwargs), reference_params, N_STEPS)

    params = make_params(values)
    opt = getattr(optim, name)(params, **kwargs)
    run_tinynn(opt, params, 10)
    state = opt.state_dict()
    if through_file:
        save({"optimizer": state, "params": [p.data for p in params]}, tmp_path / "ckpt.tnn")
        checkpoint = load(tmp_path / "ckpt.tnn")
        state, saved_values = checkpoint["optimizer"], checkpoint["params"]
    else:
        state, saved_values = copy.deepcopy(state), [p.data.copy() for p in params]
    del opt, params

    resumed_params = make_params(saved_values)
    resumed = getattr(optim, name)(resumed_params, lr=123.0)  # hyperparameters come from the state dict
    resumed.load_state_dict(state)
    continued = run_tinynn(resumed, resumed_params, N_STEPS - 10, start=10)
    for step, (a_params, b_params) in enumerate(zip(continued, reference[10:])):
        for a, b in zip(a_params, b_params):
            np.testing.assert_array_equal(a, b, err_msg=f"step {step + 11}")


def test_load_state_dict_copies_and_casts_buffers():
    params = make_params(initial_values())
    opt = optim.Adam(params, lr=0.1)
    run_tinynn(opt, params, 2)
    state = opt.state_dict()
    float32_params = [Tensor(p.data.astype(np.float32), requires_grad=True) for p in params]
    other = optim.Adam(float32_params, lr=0.1)
    other.load_state_dict(state)
    loaded = other.state[float32_params[0]]
    assert loaded["step"] == 2 and type(loaded["step"]) is int
    assert loaded["exp_avg"].dtype == np.float32
    assert loaded["exp_avg"] is not state["state"][0]["exp_avg"].data
    state["state"][0]["exp_avg"].data[...] = 7.0  # changing the dict does not change the optimizer
    assert not np.any(loaded["exp_avg"] == 7.0)


def test_load_state_dict_rejects_mismatched_groups():
    params = make_params(initial_values())
    opt = optim.SGD(params, lr=0.1, momentum=0.9)
    run_tinynn(opt, params, 1)
    state = opt.state_dict()
    with pytest.raises(ValueError, match="parameter groups"):
        optim.SGD([{"params": params[:1]}, {"params": params[1:]}], lr=0.1).load_state_dict(state)
    with pytest.raises(ValueError, match="parameters"):
        optim.SGD(params[:1], lr=0.1).load_state_dict(state)


def test_state_dict_indexes_parameters_in_group_order():
    a, b, c = make_params([np.ones(2), np.ones(3), np.ones(4)])
    opt = optim.SGD([{"params": [a, b]}, {"params": [c], "lr": 0.5}], lr=0.1, momentum=0.9)
    for p in (a, c):
        p.grad = Tensor(np.ones_like(p.data))
    opt.step()
    state = opt.state_dict()
    assert [g["params"] for g in state["param_groups"]] == [[0, 1], [2]]
    assert sorted(state["state"]) == [0, 2]  # b never had a gradient
    assert state["state"][2]["momentum_buffer"].shape == (4,)
    assert state["param_groups"][1]["lr"] == 0.5 and state["param_groups"][0]["lr"] == 0.1


def test_zero_grad():
    params = make_params(initial_values())
    opt = optim.SGD(params, lr=0.1)
    for p in params:
        p.grad = Tensor(np.ones_like(p.data))
    opt.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not np.any(p.grad.data) for p in params)
    opt.zero_grad()
    assert all(p.grad is None for p in params)


def test_step_with_closure_returns_loss():
    (p,) = make_params([np.array([1.0, -2.0])])
    opt = optim.SGD([p], lr=0.25)
    calls = []

    def closure():
        calls.append(1)
        p.grad = Tensor(2 * p.data)  # loss = |p|^2
        return float(np.sum(p.data ** 2))

    assert opt.step(closure) == 5.0
    assert calls == [1]
    np.testing.assert_array_equal(p.data, [0.5, -1.0])


def test_adagrad_initial_accumulator_value_per_group():
    # PyTorch fills every group's accumulator with the constructor's value; we honour the group's
    a, b = make_params([np.ones(2), np.ones(3)])
    opt = optim.Adagrad([{"params": [a]}, {"params": [b], "initial_accumulator_value": 0.3}],
                        initial_accumulator_value=0.1)
    np.testing.assert_array_equal(opt.state[a]["sum"], np.full(2, 0.1))
    np.testing.assert_array_equal(opt.state[b]["sum"], np.full(3, 0.3))
    assert opt.state[a]["step"] == 0


def test_add_param_group_uses_defaults():
    a, b = make_params([np.ones(2), np.ones(3)])
    opt = optim.Adam([a], lr=0.01, betas=(0.8, 0.9))
    opt.add_param_group({"params": b, "lr": 0.5})
    assert opt.param_groups[1]["lr"] == 0.5
    assert opt.param_groups[1]["betas"] == (0.8, 0.9)
    assert opt.param_groups[1]["params"] == [b] or opt.param_groups[1]["params"][0] is b


def test_update_is_in_place_on_the_parameter_array():
    (p,) = make_params([np.ones(3)])
    array = p.data
    opt = optim.Adam([p], lr=0.1)
    p.grad = Tensor(np.ones(3))
    opt.step()
    assert p.data is array
    assert np.all(array < 1.0)


def test_float32_parameters_stay_float32(implementation):
    for cls in (optim.SGD, optim.Adagrad, optim.RMSprop, optim.Adam, optim.AdamW):
        p = Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
        opt = cls([p], lr=0.1, **({"momentum": 0.9} if cls in (optim.SGD, optim.RMSprop) else {}))
        for _ in range(2):
            p.grad = Tensor(np.full(3, 0.5, dtype=np.float32))
            opt.step()
        assert p.data.dtype == np.float32, cls.__name__
        assert all(v.dtype == np.float32 for v in opt.state[p].values() if hasattr(v, "dtype")), cls.__name__


@pytest.mark.parametrize("make", [
    lambda ps: optim.SGD(ps, lr=-0.1),
    lambda ps: optim.SGD(ps, lr=0.1, momentum=-0.5),
    lambda ps: optim.SGD(ps, lr=0.1, weight_decay=-1),
    lambda ps: optim.SGD(ps, lr=0.1, nesterov=True),
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True),
    lambda ps: optim.Adam(ps, betas=(1.0, 0.999)),
    lambda ps: optim.Adam(ps, betas=(0.9, -0.1)),
    lambda ps: optim.Adam(ps, eps=-1e-8),
    lambda ps: optim.AdamW(ps, lr=-1e-3),
    lambda ps: optim.Adagrad(ps, lr_decay=-1),
    lambda ps: optim.Adagrad(ps, initial_accumulator_value=-1),
    lambda ps: optim.RMSprop(ps, alpha=-0.1),
    lambda ps: optim.RMSprop(ps, lr="fast"),
    lambda ps: optim.SGD([{"params": ps, "lr": -1.0}], lr=0.1),
])
def test_invalid_hyperparameters_raise(make):
    with pytest.raises(ValueError, match="invalid|Nesterov|betas|beta"):
        make(make_params(initial_values()))


def test_invalid_params_raise():
    a, b = make_params([np.ones(2), np.ones(3)])
    with pytest.raises(ValueError, match="more than one parameter group"):
        optim.SGD([{"params": [a]}, {"params": [a, b]}], lr=0.1)
    with pytest.raises(TypeError, match="only optimize Tensors"):
        optim.SGD([a, np.ones(3)], lr=0.1)
    with pytest.raises(TypeError, match="single Tensor"):
        optim.SGD(a, lr=0.1)
    with pytest.raises(TypeError, match="set"):
        optim.SGD({a, b}, lr=0.1)
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.Adam([], lr=0.1)
    opt = optim.SGD([a], lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [a]})


@pytest.mark.parametrize("name,kwargs", [("SGD", dict(lr=0.01, momentum=0.9, nesterov=True, weight_decay=0.1)),
                                         ("Adagrad", dict(lr=0.1, lr_decay=0.01)),
                                         ("RMSprop", dict(lr=0.01, momentum=0.5, centered=True)),
                                         ("Adam", dict(lr=0.05, amsgrad=True, weight_decay=0.1)),
                                         ("AdamW", dict(lr=0.05))])
def test_fused_kernels_agree_with_reference_in_float32_and_on_strided_arrays(name, kwargs):
    rng = np.random.default_rng(3)
    base = rng.standard_normal((4, 6)).astype(np.float32)
    results = {}
    for impl in ("reference", "numba"):
        # a C-contiguous parameter, and a transposed view (the kernels fall back to the reference)
        params = [Tensor(base.copy(), requires_grad=True), Tensor(base.copy(), requires_grad=True)]
        params[1].data = np.ascontiguousarray(base.T).T
        with tn.backend.kernels.use(f"optim_{name.lower().replace('adamw', 'adam')}", impl):
            opt = getattr(optim, name)(params, **kwargs)
            for _ in range(10):
                for p in params:
                    p.grad = Tensor(loss_grad(p.data.astype(np.float64)).astype(np.float32))
                opt.step()
        assert all(p.data.dtype == np.float32 and np.all(np.isfinite(p.data)) for p in params)
        results[impl] = [p.data.copy() for p in params]
    for ours, reference in zip(results["numba"], results["reference"]):
        np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(results["numba"][1], results["reference"][1])  # the strided one fell back


def test_named_parameters_are_accepted_and_saved():
    a, b = make_params([np.ones(2), np.ones(3)])
    opt = optim.SGD([("layer.weight", a), ("layer.bias", b)], lr=0.1)
    assert opt.param_groups[0]["params"][1] is b
    assert opt.state_dict()["param_groups"][0]["param_names"] == ["layer.weight", "layer.bias"]
    with pytest.raises(ValueError, match="names"):
        optim.SGD([("layer.weight", a), b], lr=0.1)


def test_subclass_step_is_counted():
    class PlainDescent(optim.Optimizer):
        def __init__(self, params, lr=0.1):
            super().__init__(params, dict(lr=lr))

        def step(self, closure=None):
            for group in self.param_groups:
                for p in group["params"]:
                    p.data -= group["lr"] * p.grad.data

    (p,) = make_params([np.ones(2)])
    opt = PlainDescent([p])
    p.grad = Tensor(np.ones(2))
    opt.step()
    assert opt._step_count == 1
    np.testing.assert_array_equal(p.data, [0.9, 0.9])


def test_gradient_of_the_wrong_shape_raises():
    (p,) = make_params([np.ones((2, 3))])
    opt = optim.Adam([p])
    p.grad = Tensor(np.ones(3))
    with pytest.raises(RuntimeError, match=r"Adam.step: a parameter of shape \(2, 3\) has a gradient of shape \(3,\)"):
        opt.step()


@pytest.mark.cuda
@pytest.mark.parametrize("config", CONFIGS[::3], ids=[config_id(c) for c in CONFIGS[::3]])
def test_cuda_parameters_follow_the_cpu_trajectory(config):
    cupy = pytest.importorskip("cupy")
    name, kwargs = config
    values = initial_values()
    cpu_params = make_params(values)
    cpu_history = run_tinynn(getattr(optim, name)(cpu_params, **kwargs), cpu_params, 10)

    params = [tn.tensor(v, device="cuda", requires_grad=True) for v in values]
    opt = getattr(optim, name)(params, **kwargs)
    sign = objective_sign(opt)
    for step in range(10):
        for i, p in enumerate(params):
            grad = sign * loss_grad(p.data.get())
            p.grad = tn.tensor(grad, device="cuda") if gets_grad(i, step) else None
        opt.step()
        for p, expected in zip(params, cpu_history[step]):
            assert isinstance(p.data, cupy.ndarray)
            np.testing.assert_allclose(p.data.get(), expected, rtol=1e-9, atol=1e-12)
    state = opt.state_dict()
    resumed_params = [tn.tensor(p.data.get(), device="cuda", requires_grad=True) for p in params]
    resumed = getattr(optim, name)(resumed_params, **kwargs)
    resumed.load_state_dict(state)
    for buffers in resumed.state.values():
        assert all(isinstance(v, cupy.ndarray) for v in buffers.values() if hasattr(v, "shape"))


@pytest.mark.parametrize("config", CONFIGS, ids=[config_id(c) for c in CONFIGS])
def test_step_leaves_the_gradients_untouched(config, implementation):
    name, kwargs = config
    params = make_params(initial_values())
    opt = getattr(optim, name)(params, **kwargs)
    for _ in range(2):
        grads = [loss_grad(p.data) for p in params]
        for p, g in zip(params, grads):
            p.grad = Tensor(g.copy())
        opt.step()
        for p, g in zip(params, grads):
            np.testing.assert_array_equal(p.grad.data, g)
