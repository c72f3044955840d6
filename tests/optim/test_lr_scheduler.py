"""LR schedulers: 30-epoch learning-rate sequences against PyTorch's, and state-dict round trips."""
import math
import warnings

import numpy as np
import pytest

from tinynn import optim
from tinynn.optim import lr_scheduler
from tinynn.serialization import load, save
from tinynn.tensor import Tensor

N_EPOCHS = 30
GROUP_LRS = (0.1, 0.05)


class WarmupThenDecay:
    """A picklable-free callable object: LambdaLR saves its ``__dict__`` (as PyTorch does)."""

    def __init__(self, warmup: int):
        self.warmup = warmup

    def __call__(self, epoch: int) -> float:
        return (epoch + 1) / self.warmup if epoch < self.warmup else 0.9 ** (epoch - self.warmup)


class HalfEvery:
    """A custom CyclicLR scale function with state (saved in the scheduler's state dict)."""

    def __init__(self, period: int):
        self.period = period

    def __call__(self, x: float) -> float:
        return 0.5 ** (x // self.period)


# Each case builds its schedulers from a module (tinynn's or torch's lr_scheduler) and an optimizer.
CASES = {
    "StepLR": lambda m, o: [m.StepLR(o, step_size=7, gamma=0.5)],
    "MultiStepLR": lambda m, o: [m.MultiStepLR(o, milestones=[3, 10, 10, 22], gamma=0.3)],
    "ExponentialLR": lambda m, o: [m.ExponentialLR(o, gamma=0.9)],
    "CosineAnnealingLR": lambda m, o: [m.CosineAnnealingLR(o, T_max=30, eta_min=0.001)],
    "CosineAnnealingLR_wave": lambda m, o: [m.CosineAnnealingLR(o, T_max=8, eta_min=0.01)],
    "LinearLR": lambda m, o: [m.LinearLR(o, start_factor=0.25, end_factor=0.9, total_iters=12)],
    "LambdaLR": lambda m, o: [m.LambdaLR(o, lr_lambda=lambda epoch: 1.0 / (1 + 0.3 * epoch))],
    "LambdaLR_per_group": lambda m, o: [m.LambdaLR(o, lr_lambda=[lambda e: 0.95 ** e, WarmupThenDecay(5)])],
    "OneCycleLR_cos": lambda m, o: [m.OneCycleLR(o, max_lr=[1.0, 0.5], total_steps=N_EPOCHS + 1)],
    "OneCycleLR_linear_three_phase": lambda m, o: [m.OneCycleLR(
        o, max_lr=0.8, epochs=4, steps_per_epoch=8, pct_start=0.25, anneal_strategy="linear",
        three_phase=True, div_factor=10.0, final_div_factor=100.0)],
    "SequentialLR": lambda m, o: [m.SequentialLR(o, schedulers=[
        m.LinearLR(o, start_factor=0.1, total_iters=5), m.CosineAnnealingLR(o, T_max=25)], milestones=[5])],
    "SequentialLR_three": lambda m, o: [m.SequentialLR(o, schedulers=[
        m.ExponentialLR(o, gamma=0.8), m.StepLR(o, step_size=3, gamma=0.5), m.ExponentialLR(o, gamma=1.05)],
        milestones=[6, 20])],
    "chained_StepLR_ExponentialLR": lambda m, o: [m.StepLR(o, step_size=5, gamma=0.5), m.ExponentialLR(o, gamma=0.95)],
    "MultiplicativeLR": lambda m, o: [m.MultiplicativeLR(o, lr_lambda=lambda epoch: 0.9 if epoch % 2 else 0.97)],
    "ConstantLR": lambda m, o: [m.ConstantLR(o, factor=0.4, total_iters=6), m.ExponentialLR(o, gamma=0.97)],
    "PolynomialLR": lambda m, o: [m.PolynomialLR(o, total_iters=20, power=2.0)],
    "CosineAnnealingWarmRestarts": lambda m, o: [m.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2, eta_min=0.001)],
    "CyclicLR_triangular": lambda m, o: [m.CyclicLR(o, base_lr=0.01, max_lr=[0.1, 0.2], step_size_up=4,
                                                    step_size_down=3)],
    "CyclicLR_triangular2": lambda m, o: [m.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=3,
                                                     mode="triangular2", base_momentum=0.7)],
    "CyclicLR_exp_range_OneCycle_adam": lambda m, o: [m.CyclicLR(o, base_lr=[0.01, 0.02], max_lr=0.1, step_size_up=5,
                                                                 mode="exp_range", gamma=0.97)],
    "CyclicLR_scale_fn": lambda m, o: [m.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=4,
                                                  scale_fn=HalfEvery(3), scale_mode="iterations",
                                                  cycle_momentum=False)],
    "ChainedScheduler": lambda m, o: [m.ChainedScheduler([m.ConstantLR(o, factor=0.5, total_iters=4),
                                                          m.ExponentialLR(o, gamma=0.9)])],
}


def make_optimizer(module, params, case: str):
    groups = [{"params": [p], "lr": lr} for p, lr in zip(params, GROUP_LRS)]
    if case.endswith("three_phase") or case.endswith("adam"):
        return module.Adam(groups)  # OneCycleLR and CyclicLR then cycle beta1
    return module.SGD(groups, lr=0.1, momentum=0.9)


def tinynn_setup(case):
    params = [Tensor(np.zeros(2), requires_grad=True) for _ in GROUP_LRS]
    opt = make_optimizer(optim, params, case)
    return opt, CASES[case](lr_scheduler, opt)


def torch_setup(torch, case):
    params = [torch.zeros(2, requires_grad=True) for _ in GROUP_LRS]
    opt = make_optimizer(torch.optim, params, case)
    return opt, CASES[case](torch.optim.lr_scheduler, opt)


def group_values(opt):
    """Everything a scheduler may change: lr and momentum / beta1 of every group."""
    values = []
    for group in opt.param_groups:
        values.append(group["lr"])
        values.append(group["betas"][0] if "betas" in group else group["momentum"])
    return values


def run(opt, schedulers, epochs):
    history = []
    for _ in range(epochs):
        opt.step()
        for scheduler in schedulers:
            scheduler.step()
        history.append(group_values(opt) + list(schedulers[-1].get_last_lr()))
    return history


@pytest.mark.parity
@pytest.mark.parametrize("case", sorted(CASES))
def test_lr_sequence_matches_pytorch(case):
    torch = pytest.importorskip("torch")
    opt, schedulers = tinynn_setup(case)
    torch_opt, torch_schedulers = torch_setup(torch, case)
    assert group_values(opt) == pytest.approx(group_values(torch_opt), rel=1e-13, abs=0)
    ours = np.array(run(opt, schedulers, N_EPOCHS))
    theirs = np.array(run(torch_opt, torch_schedulers, N_EPOCHS))
    np.testing.assert_allclose(ours, theirs, rtol=1e-13, atol=0)
    assert len(set(ours[:, 0])) > 2  # the lr did change


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("through_file", [False, True], ids=["in_memory", "tn_save"])
def test_state_dict_round_trip_continues_identically(case, through_file, tmp_path):
    opt, schedulers = tinynn_setup(case)
    reference = run(opt, schedulers, N_EPOCHS)

    opt, schedulers = tinynn_setup(case)
    run(opt, schedulers, 12)
    checkpoint = {"optimizer": opt.state_dict(), "schedulers": [s.state_dict() for s in schedulers]}
    if through_file:
        save(checkpoint, tmp_path / "ckpt")
        checkpoint = load(tmp_path / "ckpt")

    # as PyTorch recommends: build the scheduler, then load the optimizer, then the scheduler
    new_opt, new_schedulers = tinynn_setup(case)
    new_opt.load_state_dict(checkpoint["optimizer"])
    for scheduler, state in zip(new_schedulers, checkpoint["schedulers"]):
        scheduler.load_state_dict(state)
    continued = run(new_opt, new_schedulers, N_EPOCHS - 12)
    assert continued == reference[12:]


@pytest.mark.parity
def test_closed_form_with_explicit_epoch_matches_pytorch():
    torch = pytest.importorskip("torch")
    results = []
    for module, make_params in ((optim, lambda: [Tensor(np.zeros(2), requires_grad=True)]),
                                (torch.optim, lambda: [torch.zeros(2, requires_grad=True)])):
        opt = module.SGD(make_params(), lr=0.1)
        schedulers = [module.lr_scheduler.StepLR(opt, step_size=4, gamma=0.5),
                      module.lr_scheduler.MultiStepLR(opt, milestones=[2, 9], gamma=0.1),
                      module.lr_scheduler.CosineAnnealingLR(opt, T_max=10),
                      module.lr_scheduler.LinearLR(opt, total_iters=6),
                      module.lr_scheduler.ExponentialLR(opt, gamma=0.7),
                      module.lr_scheduler.ConstantLR(opt, factor=0.5, total_iters=5),
                      module.lr_scheduler.PolynomialLR(opt, total_iters=10, power=1.5),
                      module.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=2, T_mult=3)]
        values = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for scheduler in schedulers:
                for epoch in (3, 9, 4, 12, 1.5, 7.25):
                    opt.step()
                    scheduler.step(epoch)
                    values.append(opt.param_groups[0]["lr"])
        results.append(values)
    np.testing.assert_allclose(results[0], results[1], rtol=1e-13, atol=0)


REDUCE_CASES = [
    dict(patience=3),
    dict(mode="min", factor=0.5, patience=2, cooldown=1, min_lr=0.002),
    dict(mode="min", factor=0.5, patience=1, threshold=0.05, threshold_mode="abs"),
    dict(mode="max", factor=0.2, patience=2, threshold=0.01, min_lr=[0.0, 0.004]),
    dict(mode="max", factor=0.7, patience=0, threshold=0.0, threshold_mode="abs", cooldown=2, eps=1e-3),
]
METRICS = [1.0, 0.9, 0.95, 0.92, 0.91, 0.905, 0.7, 0.71, 0.7, 0.69, 0.72, 0.75, 0.6, 0.6, 0.6,
           0.59, 0.6, 0.61, 0.3, 0.31, 0.32, 0.33, 0.34, 0.2, 0.2, 0.2, 0.2, 0.21, 0.19, 0.19]


@pytest.mark.parity
@pytest.mark.parametrize("options", REDUCE_CASES, ids=[str(i) for i in range(len(REDUCE_CASES))])
def test_reduce_lr_on_plateau_matches_pytorch(options):
    torch = pytest.importorskip("torch")
    sequences = []
    for module, make_param in ((optim, lambda: Tensor(np.zeros(2), requires_grad=True)),
                               (torch.optim, lambda: torch.zeros(2, requires_grad=True))):
        opt = module.SGD([{"params": [make_param()], "lr": lr} for lr in GROUP_LRS], lr=0.1)
        scheduler = module.lr_scheduler.ReduceLROnPlateau(opt, **options)
        sequence = []
        for metric in METRICS:
            opt.step()
            scheduler.step(metric)
            sequence.append([g["lr"] for g in opt.param_groups] + list(scheduler.get_last_lr())
                            + [scheduler.num_bad_epochs, scheduler.cooldown_counter, scheduler.best])
        sequences.append(sequence)
    np.testing.assert_allclose(np.array(sequences[0]), np.array(sequences[1]), rtol=1e-13, atol=0)
    assert len({row[0] for row in sequences[0]}) > 1  # the lr was reduced


def test_reduce_lr_on_plateau_state_dict_round_trip(tmp_path):
    def build():
        opt = optim.SGD([Tensor(np.zeros(2), requires_grad=True)], lr=0.1)
        return opt, lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=1, cooldown=1)

    opt, scheduler = build()
    reference = []
    for metric in METRICS:
        scheduler.step(metric)
        reference.append(opt.param_groups[0]["lr"])

    opt, scheduler = build()
    for metric in METRICS[:10]:
        scheduler.step(metric)
    save({"optimizer": opt.state_dict(), "scheduler": scheduler.state_dict()}, tmp_path / "ckpt")
    checkpoint = load(tmp_path / "ckpt")
    opt, scheduler = build()
    opt.load_state_dict(checkpoint["optimizer"])
    scheduler.load_state_dict(checkpoint["scheduler"])
    continued = []
    for metric in METRICS[10:]:
        scheduler.step(metric)
        continued.append(opt.param_groups[0]["lr"])
    assert continued == reference[10:]
    assert scheduler.best == min(METRICS)


def test_fresh_reduce_lr_on_plateau_state_survives_save(tmp_path):
    opt = optim.SGD([Tensor(np.zeros(2), requires_grad=True)], lr=0.1)
    scheduler = lr_scheduler.ReduceLROnPlateau(opt)
    save(scheduler.state_dict(), tmp_path / "s")
    state = load(tmp_path / "s")
    assert state["best"] == math.inf and state["mode_worse"] == math.inf


def test_one_cycle_lr_raises_past_total_steps():
    opt = optim.SGD([Tensor(np.zeros(2), requires_grad=True)], lr=0.1, momentum=0.9)
    scheduler = lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=3)
    for _ in range(3):
        opt.step()
        scheduler.step()
    with pytest.raises(ValueError, match="total steps"):
        scheduler.step()


def test_scheduler_errors():
    opt = optim.SGD([Tensor(np.zeros(2), requires_grad=True)], lr=0.1)
    with pytest.raises(TypeError, match="not an Optimizer"):
        lr_scheduler.StepLR("sgd", step_size=2)
    with pytest.raises(ValueError, match="factor"):
        lr_scheduler.ReduceLROnPlateau(opt, factor=1.5)
    with pytest.raises(ValueError, match="mode"):
        lr_scheduler.ReduceLROnPlateau(opt, mode="best")
    with pytest.raises(ValueError, match="start_factor"):
        lr_scheduler.LinearLR(opt, start_factor=0.0)
    with pytest.raises(ValueError, match="milestone"):
        lr_scheduler.SequentialLR(opt, [lr_scheduler.StepLR(opt, 2)], milestones=[3])
    with pytest.raises(ValueError, match="total_steps"):
        lr_scheduler.OneCycleLR(opt, max_lr=1.0)
    with pytest.raises(KeyError, match="initial_lr"):
        lr_scheduler.StepLR(optim.SGD([Tensor(np.zeros(2), requires_grad=True)], lr=0.1), 2, last_epoch=3)


def test_warns_when_scheduler_steps_before_optimizer():
    opt = optim.SGD([Tensor(np.zeros(2), requires_grad=True)], lr=0.1)
    scheduler = lr_scheduler.StepLR(opt, step_size=2)
    with pytest.warns(UserWarning, match="before `optimizer.step\\(\\)`"):
        scheduler.step()


@pytest.mark.parity
@pytest.mark.parametrize("make", [
    lambda m, o, last: m.CosineAnnealingLR(o, T_max=10, eta_min=0.01, last_epoch=last),
    lambda m, o, last: m.StepLR(o, step_size=3, gamma=0.5, last_epoch=last),
    lambda m, o, last: m.LinearLR(o, start_factor=0.5, total_iters=8, last_epoch=last),
    lambda m, o, last: m.CosineAnnealingWarmRestarts(o, T_0=4, T_mult=2, last_epoch=last),
], ids=["CosineAnnealingLR", "StepLR", "LinearLR", "CosineAnnealingWarmRestarts"])
def test_resuming_with_last_epoch_matches_pytorch(make):
    torch = pytest.importorskip("torch")
    sequences = []
    for module, make_param in ((optim, lambda: Tensor(np.zeros(2), requires_grad=True)),
                               (torch.optim, lambda: torch.zeros(2, requires_grad=True))):
        opt = module.SGD([make_param()], lr=0.1)
        opt.param_groups[0]["initial_lr"] = 0.2  # as left by a scheduler in a checkpoint
        scheduler = make(module.lr_scheduler, opt, 5)
        sequence = [opt.param_groups[0]["lr"]]
        for _ in range(12):
            opt.step()
            scheduler.step()
            sequence.append(opt.param_groups[0]["lr"])
        sequences.append(sequence)
    np.testing.assert_allclose(sequences[0], sequences[1], rtol=1e-13, atol=0)
