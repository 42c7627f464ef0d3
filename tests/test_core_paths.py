"""Path selection: the core never returns a wrong gradient, and bad settings fail clearly."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from maml import MAML
from tests.test_core_gradients import meta_grad


def cross_entropy(forward, batch):
    x, y = batch
    return F.cross_entropy(forward(x), y)


def conv_bn_net():
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.BatchNorm2d(8, track_running_stats=False),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(8 * 4 * 4, 3),
    ).double()


def image_tasks(tasks=3, per_task=6):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(tasks, per_task, 1, 8, 8, generator=g, dtype=torch.float64)
    y = torch.arange(per_task).remainder(3).expand(tasks, per_task)
    return (x[:, :3], y[:, :3]), (x[:, 3:], y[:, 3:])


def directional_derivative(learner, support, query, direction, eps=1e-6):
    """Central difference of the meta-loss along ``direction`` (a dict like the parameters)."""
    params = dict(learner.named_parameters())
    values = []
    with torch.no_grad():
        for sign in (1, -1):
            for name, d in direction.items():
                params[name].add_(sign * eps * d)
            with torch.enable_grad():
                values.append(learner.meta_loss(support, query).item())
            for name, d in direction.items():
                params[name].sub_(sign * eps * d)
    return (values[0] - values[1]) / (2 * eps)


@pytest.mark.parametrize("steps", [1, 2])
def test_auto_path_avoids_vmap_for_second_order_batchnorm_and_is_exact(steps):
    learner = MAML(conv_bn_net(), cross_entropy, inner_steps=steps, inner_lr=0.5)
    assert learner.path == "loop"
    assert "batch" in learner.path_reason
    support, query = image_tasks()
    _, auto = meta_grad(learner, support, query)
    _, loop = meta_grad(
        MAML(learner.model, cross_entropy, inner_steps=steps, inner_lr=0.5, path="loop"),
        support,
        query,
    )
    for name in auto:
        torch.testing.assert_close(auto[name], loop[name], atol=0, rtol=0)
    g = torch.Generator().manual_seed(5)
    for _ in range(3):
        direction = {n: torch.randn(p.shape, generator=g, dtype=p.dtype) for n, p in auto.items()}
        analytic = sum((auto[n] * direction[n]).sum() for n in auto).item()
        numeric = directional_derivative(learner, support, query, direction)
        assert analytic == pytest.approx(numeric, rel=1e-6, abs=1e-9)


def test_requesting_vmap_for_second_order_batchnorm_is_refused():
    with pytest.raises(ValueError, match="BatchNorm"):
        MAML(conv_bn_net(), cross_entropy, path="vmap")


def test_first_order_batchnorm_vmap_agrees_with_loop():
    model = conv_bn_net()
    support, query = image_tasks(tasks=3)
    _, v = meta_grad(MAML(model, cross_entropy, first_order=True, path="vmap"), support, query)
    _, lp = meta_grad(MAML(model, cross_entropy, first_order=True, path="loop"), support, query)
    for name in v:
        torch.testing.assert_close(v[name], lp[name], atol=1e-10, rtol=1e-8)


def test_running_statistics_are_refused_under_vmap():
    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3), nn.Linear(3, 1))
    with pytest.raises(ValueError, match="track_running_stats=False"):
        MAML(model, cross_entropy, first_order=True, path="vmap")


def test_mlp_uses_vmap_and_conv_uses_loop_on_cpu():
    mlp = nn.Sequential(nn.Linear(1, 4), nn.ReLU(), nn.Linear(4, 1))
    conv = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(8, 2))
    assert MAML(mlp, cross_entropy).path == "vmap"
    assert MAML(conv, cross_entropy, first_order=True).path == "loop"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"path": "fused"}, "'fused' is unknown"),
        ({"inner_steps": -1}, "inner_steps must be a non-negative int, got -1"),
        ({"inner_lr": 0.0}, "inner_lr must be positive, got 0.0"),
        ({"learn_inner_lr": "per_layer"}, "'per_layer' is unknown"),
    ],
)
def test_bad_settings_name_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MAML(nn.Linear(1, 1), cross_entropy, **kwargs)


def test_mismatched_task_axes_name_the_shapes():
    learner = MAML(nn.Linear(1, 1), cross_entropy)
    support = (torch.zeros(3, 5, 1), torch.zeros(3, 5))
    query = (torch.zeros(4, 5, 1), torch.zeros(4, 5))
    with pytest.raises(ValueError, match=r"leading task axis.*\(4, 5, 1\)"):
        learner.meta_loss(support, query)


def test_step_weights_must_have_one_per_step():
    learner = MAML(nn.Linear(1, 1), cross_entropy, inner_steps=2)
    batch = (torch.zeros(2, 3, 1), torch.zeros(2, 3, 1))
    with pytest.raises(ValueError, match=r"shape \(3,\).*\(2,\)"):
        learner.meta_loss(batch, batch, step_weights=[0.2, 0.3, 0.5])


@pytest.mark.cuda
def test_cuda_paths_agree_with_cpu():
    model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1)).double()
    mse = lambda f, b: ((f(b[0]) - b[1]) ** 2).mean()  # noqa: E731
    support = (torch.randn(4, 5, 2).double(), torch.randn(4, 5, 1).double())
    query = (torch.randn(4, 5, 2).double(), torch.randn(4, 5, 1).double())
    _, cpu = meta_grad(MAML(model, mse, inner_steps=2), support, query)
    model.cuda()
    to_cuda = lambda b: tuple(t.cuda() for t in b)  # noqa: E731
    for path in ("vmap", "loop"):
        _, gpu = meta_grad(
            MAML(model, mse, inner_steps=2, path=path), to_cuda(support), to_cuda(query)
        )
        for name in cpu:
            torch.testing.assert_close(gpu[name].cpu(), cpu[name], atol=1e-10, rtol=1e-8)


def bn_mlp():
    """BatchNorm without convolutions: the auto path takes vmap for first order on the CPU."""
    return nn.Sequential(
        nn.Linear(4, 6), nn.BatchNorm1d(6, track_running_stats=False), nn.ReLU(), nn.Linear(6, 3)
    ).double()


def vector_tasks(tasks=3, per_task=6):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(tasks, per_task, 4, generator=g, dtype=torch.float64)
    y = torch.arange(per_task).remainder(3).expand(tasks, per_task)
    return (x[:, :3], y[:, :3]), (x[:, 3:], y[:, 3:])


def test_second_order_call_on_a_first_order_learner_takes_a_second_order_path(monkeypatch):
    model = bn_mlp()
    support, query = vector_tasks()
    first = MAML(model, cross_entropy, inner_lr=0.5, first_order=True)
    assert first.path == "vmap"  # right for first order
    batched = []
    original = MAML._trajectory
    monkeypatch.setattr(
        MAML,
        "_trajectory",
        lambda self, *a, vmap: batched.append(vmap) or original(self, *a, vmap=vmap),
    )
    model.zero_grad()
    first.step_losses(support, query, first_order=False)[:, -1].mean().backward()
    assert not any(batched)  # second order through BatchNorm: the loop, not vmap
    got = {n: p.grad.clone() for n, p in model.named_parameters()}
    _, expected = meta_grad(MAML(model, cross_entropy, inner_lr=0.5, path="loop"), support, query)
    for name in got:
        torch.testing.assert_close(got[name], expected[f"model.{name}"], atol=1e-12, rtol=1e-10)
    batched.clear()
    with torch.no_grad():
        first.step_losses(support, query)
    assert batched == [True]  # its own (first) order still takes vmap


def test_second_order_call_on_a_first_order_vmap_learner_is_refused():
    learner = MAML(bn_mlp(), cross_entropy, first_order=True, path="vmap")
    support, query = vector_tasks()
    learner.step_losses(support, query)  # first order: allowed
    with pytest.raises(ValueError, match="BatchNorm"):
        learner.step_losses(support, query, first_order=False)


def test_step_weights_keep_the_precision_of_a_float64_model():
    learner = MAML(bn_mlp(), cross_entropy, inner_steps=3, inner_lr=0.5, path="loop")
    support, query = vector_tasks()
    weights = [0.1, 0.2, 0.7]
    losses = learner.step_losses(support, query).detach()
    exact = sum(w * losses[:, k + 1] for k, w in enumerate(weights)).mean()
    got = learner.meta_loss(support, query, step_weights=weights).detach()
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, exact, rtol=1e-15, atol=0)
