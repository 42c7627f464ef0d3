"""The meta-gradient of every path against independent computations."""

import numpy as np
import pytest
import torch
from torch import nn

from maml import MAML


def mse(forward, batch):
    x, y = batch
    return ((forward(x) - y) ** 2).mean()


def tiny_mlp():
    return nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1)).double()


def regression_tasks(tasks=3, support=4, query=5, dim=2):
    g = torch.Generator().manual_seed(1)
    xs = torch.randn(tasks, support, dim, generator=g, dtype=torch.float64)
    xq = torch.randn(tasks, query, dim, generator=g, dtype=torch.float64)
    w = torch.randn(tasks, dim, 1, generator=g, dtype=torch.float64)
    return (xs, torch.sin(xs @ w)), (xq, torch.sin(xq @ w))


def meta_grad(learner, support, query, **kw):
    learner.zero_grad()
    loss = learner.meta_loss(support, query, **kw)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in learner.named_parameters()}


def finite_difference(learner, support, query, eps=1e-6, **kw):
    grads = {}
    with torch.no_grad():
        for name, p in learner.named_parameters():
            g = torch.zeros_like(p)
            for i in range(p.numel()):
                flat = p.view(-1)
                orig = flat[i].item()
                flat[i] = orig + eps
                with torch.enable_grad():
                    up = learner.meta_loss(support, query, **kw).item()
                flat[i] = orig - eps
                with torch.enable_grad():
                    down = learner.meta_loss(support, query, **kw).item()
                flat[i] = orig
                g.view(-1)[i] = (up - down) / (2 * eps)
            grads[name] = g
    return grads


@pytest.mark.parametrize("path", ["vmap", "loop"])
@pytest.mark.parametrize("steps", [1, 3])
def test_second_order_meta_gradient_matches_finite_differences(path, steps):
    learner = MAML(tiny_mlp(), mse, inner_steps=steps, inner_lr=0.3, path=path)
    support, query = regression_tasks()
    _, analytic = meta_grad(learner, support, query)
    numeric = finite_difference(learner, support, query)
    for name in analytic:
        torch.testing.assert_close(analytic[name], numeric[name], atol=1e-8, rtol=1e-6)


@pytest.mark.parametrize("path", ["vmap", "loop"])
def test_learned_lr_and_multi_step_loss_gradients_match_finite_differences(path):
    learner = MAML(
        tiny_mlp(), mse, inner_steps=2, inner_lr=0.2, learn_inner_lr="per_step", path=path
    )
    support, query = regression_tasks()
    weights = [0.3, 0.7]
    _, analytic = meta_grad(learner, support, query, step_weights=weights)
    numeric = finite_difference(learner, support, query, step_weights=weights)
    assert any(n.startswith("inner_lr") for n in analytic)
    for name in analytic:
        torch.testing.assert_close(analytic[name], numeric[name], atol=1e-8, rtol=1e-6)


def linear_closed_form(w, xs, ys, xq, yq, lr, first_order):
    """Hand-derived MAML meta-gradient of mean-squared error for f(x) = x @ w, one inner step."""
    total = np.zeros_like(w)
    for s_x, s_y, q_x, q_y in zip(xs, ys, xq, yq, strict=True):
        n_s, n_q = len(s_x), len(q_x)
        adapted = w - lr * 2 / n_s * s_x.T @ (s_x @ w - s_y)
        outer = 2 / n_q * q_x.T @ (q_x @ adapted - q_y)
        jacobian = np.eye(len(w)) - lr * 2 / n_s * s_x.T @ s_x
        total += outer if first_order else jacobian @ outer
    return total / len(xs)


@pytest.mark.parametrize("path", ["vmap", "loop"])
@pytest.mark.parametrize("first_order", [False, True])
def test_linear_model_meta_gradient_matches_hand_derived_formula(path, first_order):
    model = nn.Linear(2, 1, bias=False).double()
    learner = MAML(model, mse, inner_lr=0.1, first_order=first_order, path=path)
    (xs, ys), (xq, yq) = regression_tasks()
    _, grads = meta_grad(learner, (xs, ys), (xq, yq))
    w = model.weight.detach().numpy().T
    expected = linear_closed_form(
        w, xs.numpy(), ys.numpy(), xq.numpy(), yq.numpy(), 0.1, first_order
    )
    np.testing.assert_allclose(grads["model.weight"].numpy().T, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("path", ["vmap", "loop"])
def test_first_order_differs_from_second_order(path):
    support, query = regression_tasks()
    model = tiny_mlp()
    second = MAML(model, mse, inner_lr=0.3, path=path)
    first = MAML(model, mse, inner_lr=0.3, first_order=True, path=path)
    _, g2 = meta_grad(second, support, query)
    _, g1 = meta_grad(first, support, query)
    assert (g1["model.0.weight"] - g2["model.0.weight"]).abs().max() > 1e-4


@pytest.mark.parametrize("learn", [None, "per_step", "per_element"])
@pytest.mark.parametrize("first_order", [False, True])
@pytest.mark.parametrize("steps", [1, 3])
def test_vmap_and_loop_paths_agree(learn, first_order, steps):
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 1))
    support, query = (tuple(t.float() for t in batch) for batch in regression_tasks(tasks=5))
    results = {}
    for path in ("vmap", "loop"):
        learner = MAML(
            model,
            mse,
            inner_steps=steps,
            inner_lr=0.05,
            first_order=first_order,
            learn_inner_lr=learn,
            path=path,
        )
        results[path] = meta_grad(learner, support, query)
    (loss_v, grads_v), (loss_l, grads_l) = results["vmap"], results["loop"]
    torch.testing.assert_close(loss_v, loss_l, atol=1e-6, rtol=0)
    assert grads_v.keys() == grads_l.keys()
    for name in grads_v:
        torch.testing.assert_close(grads_v[name], grads_l[name], atol=1e-6, rtol=0)


@pytest.mark.parametrize("learn", ["per_step", "per_element"])
@pytest.mark.parametrize("path", ["vmap", "loop"])
def test_learned_inner_lrs_receive_gradients(learn, path):
    learner = MAML(tiny_mlp(), mse, inner_steps=2, learn_inner_lr=learn, path=path)
    support, query = regression_tasks()
    _, grads = meta_grad(learner, support, query)
    lr_grads = {n: g for n, g in grads.items() if n.startswith("inner_lr")}
    assert len(lr_grads) == 4  # one entry per parameter tensor
    assert all(g.abs().sum() > 0 for g in lr_grads.values())
    shapes = {n: g.shape for n, g in lr_grads.items()}
    if learn == "per_step":
        assert all(s == (2,) for s in shapes.values())
    else:
        assert shapes["inner_lr.rates.0__weight"] == (3, 2)


@pytest.mark.parametrize("path", ["vmap", "loop"])
def test_frozen_parameters_are_not_adapted_and_get_no_gradient(path):
    model = tiny_mlp()
    model[0].weight.requires_grad_(False)
    learner = MAML(model, mse, inner_steps=2, inner_lr=0.3, path=path)
    assert "0.weight" not in learner.meta_params()
    support, query = regression_tasks()
    frozen_before = model[0].weight.clone()
    learner.meta_loss(support, query).backward()
    assert model[0].weight.grad is None
    assert model[2].weight.grad is not None
    adapted = learner.adapt(tuple(t[:1] for t in support))
    assert set(adapted) == {"0.bias", "2.weight", "2.bias"}
    torch.testing.assert_close(model[0].weight, frozen_before)


@pytest.mark.parametrize("path", ["vmap", "loop"])
def test_adapt_equals_plain_sgd_on_each_task_alone(path):
    learner = MAML(tiny_mlp(), mse, inner_steps=3, inner_lr=0.2, path=path)
    support, _ = regression_tasks()
    adapted = learner.adapt(support)
    for t in range(support[0].shape[0]):
        params = {n: p.detach().requires_grad_() for n, p in learner.meta_params().items()}
        for _ in range(3):
            loss = mse(learner.functional(params), tuple(x[t] for x in support))
            grads = torch.autograd.grad(loss, list(params.values()))
            params = {
                n: (p - 0.2 * g).detach().requires_grad_()
                for (n, p), g in zip(params.items(), grads, strict=True)
            }
        for name in params:
            torch.testing.assert_close(adapted[name][t], params[name], atol=1e-12, rtol=0)


@pytest.mark.parametrize("path", ["vmap", "loop"])
def test_adapt_continues_from_each_tasks_parameters_with_the_step_sizes_given(path):
    learner = MAML(tiny_mlp(), mse, inner_steps=3, inner_lr=0.2, path=path)
    support, _ = regression_tasks()
    once = learner.adapt(support, 1, step_sizes=[0.5])
    twice = learner.adapt(support, 1, params=once, step_sizes=[0.1])
    expected = learner.adapt(support, 2, step_sizes=[0.5, 0.1])
    for name in expected:
        torch.testing.assert_close(twice[name], expected[name], atol=1e-12, rtol=0)
    default = learner.adapt(support, 1)
    assert not torch.equal(once["2.bias"], default["2.bias"])  # 0.5, not the learner's 0.2
    with pytest.raises(ValueError, match="step sizes must be positive"):
        learner.adapt(support, 1, step_sizes=[0.0])


def test_step_losses_records_each_step_and_matches_meta_loss():
    learner = MAML(tiny_mlp(), mse, inner_steps=3, inner_lr=0.2)
    support, query = regression_tasks()
    losses = learner.step_losses(support, query)
    assert losses.shape == (3, 4)
    torch.testing.assert_close(losses[:, -1].mean(), learner.meta_loss(support, query))
    torch.testing.assert_close(
        learner.meta_loss(support, query, step_weights=[0.2, 0.3, 0.5]),
        (losses[:, 1:] * torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)).sum(1).mean(),
    )
    with torch.no_grad():
        evaluated = learner.step_losses(support, query, steps=3, first_order=False)
    torch.testing.assert_close(evaluated, losses.detach())


@pytest.mark.parametrize("path", ["vmap", "loop"])
def test_step_losses_can_measure_several_things_at_once(path):
    learner = MAML(tiny_mlp(), mse, inner_steps=2, inner_lr=0.2, path=path)
    support, query = regression_tasks()

    def loss_and_max_error(forward, batch):
        x, y = batch
        error = forward(x) - y
        return torch.stack([(error**2).mean(), error.abs().max()])

    with torch.no_grad():
        both = learner.step_losses(support, query, measure=loss_and_max_error)
        losses = learner.step_losses(support, query)
    assert both.shape == (3, 3, 2)
    torch.testing.assert_close(both[..., 0], losses)
    assert (both[..., 1] ** 2 >= both[..., 0]).all()


def plain_loop_meta_loss(learner, support, query, weights, first_order):
    """The meta-loss written out task by task with torch.autograd alone (no core code but the
    learner's step sizes): the reference for every path of ``meta_backward``."""
    model = learner.model
    names = [n for n, _ in model.named_parameters()]
    total = 0
    for t in range(support[0].shape[0]):
        params = dict(model.named_parameters())
        query_losses = []
        for step in range(learner.inner_steps):
            x, y = support[0][t], support[1][t]
            loss = mse(lambda v, p=params: torch.func.functional_call(model, p, (v,)), (x, y))
            grads = torch.autograd.grad(
                loss, [params[n] for n in names], create_graph=not first_order
            )
            rates = learner.inner_lr.at_step(step)
            params = {
                n: params[n] - rates[n] * (g.detach() if first_order else g)
                for n, g in zip(names, grads, strict=True)
            }
            query_losses.append(
                mse(
                    lambda v, p=params: torch.func.functional_call(model, p, (v,)),
                    (query[0][t], query[1][t]),
                )
            )
        if weights is None:
            total = total + query_losses[-1]
        else:
            total = total + sum(w * q for w, q in zip(weights, query_losses, strict=True))
    return total / support[0].shape[0]


@pytest.mark.parametrize("path", ["vmap", "loop"])
@pytest.mark.parametrize("first_order", [False, True])
@pytest.mark.parametrize("weights", [None, [0.2, 0.3, 0.5]])
@pytest.mark.parametrize("tasks", [1, 4, 6])  # groups of 4 on the loop path: one, one, a rest
def test_meta_backward_matches_a_plain_loop_reference(path, first_order, weights, tasks):
    learner = MAML(
        tiny_mlp(),
        mse,
        inner_steps=3,
        inner_lr=0.3,
        first_order=first_order,
        learn_inner_lr="per_step",
        path=path,
    )
    with torch.no_grad():  # distinct learned step sizes, so a mix-up of steps would show
        for rate in learner.inner_lr.parameters():
            rate.mul_(torch.tensor([0.8, 1.0, 1.2], dtype=rate.dtype))
    support, query = regression_tasks(tasks=tasks)
    learner.zero_grad()
    loss = plain_loop_meta_loss(learner, support, query, weights, first_order)
    loss.backward()
    expected = {n: p.grad.clone() for n, p in learner.named_parameters()}
    learner.zero_grad()
    got = learner.meta_backward(support, query, step_weights=weights)
    assert not got.requires_grad
    torch.testing.assert_close(got, loss.detach(), rtol=1e-12, atol=1e-12)
    for name, p in learner.named_parameters():
        assert expected[name].abs().max() > 0, name
        torch.testing.assert_close(p.grad, expected[name], rtol=1e-10, atol=1e-12)


def test_meta_backward_accumulates_like_backward_and_needs_gradients():
    learner = MAML(tiny_mlp(), mse, inner_lr=0.3, path="loop")
    support, query = regression_tasks()
    _, once = meta_grad(learner, support, query)
    learner.meta_backward(support, query)  # onto the gradient already there
    for name, p in learner.named_parameters():
        torch.testing.assert_close(p.grad, 2 * once[name])
    with torch.no_grad(), pytest.raises(RuntimeError, match="no_grad"):
        learner.meta_backward(support, query)


@pytest.mark.parametrize("path", ["vmap", "loop"])
def test_per_step_support_equals_chaining_one_step_adaptations(path):
    """Fresh support data per inner step: step k adapts on batch k, gradients flow through all."""
    from maml import PerStep

    learner = MAML(tiny_mlp(), mse, inner_steps=2, inner_lr=0.3, path=path)
    (x0, y0), query = regression_tasks()
    x1, y1 = x0.flip(1) * 0.5, y0.flip(1)
    support = PerStep([(x0, y0), (x1, y1)])
    _, grads = meta_grad(learner, support, query)

    def by_hand(params):  # a plain loop over tasks and steps with torch.func
        total = 0
        for t in range(x0.shape[0]):
            p = params
            for xs, ys in ((x0[t], y0[t]), (x1[t], y1[t])):
                g = torch.func.grad(lambda q, b=(xs, ys): mse(learner.functional(q), b))(p)
                p = {n: p[n] - 0.3 * g[n] for n in p}
            total = total + mse(learner.functional(p), (query[0][t], query[1][t]))
        return total / x0.shape[0]

    params = {n: p.detach() for n, p in learner.model.named_parameters()}
    expected = torch.func.grad(by_hand)(params)
    for name, g in expected.items():
        torch.testing.assert_close(grads[f"model.{name}"], g, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="PerStep holds 2 support batch"):
        learner.step_losses(support, query, steps=3)


@pytest.mark.parametrize("path", ["vmap", "loop"])
def test_task_losses_are_each_tasks_loss_at_its_own_parameters(path):
    learner = MAML(tiny_mlp(), mse, inner_lr=0.3, path=path)
    support, query = regression_tasks()
    params = learner.adapt(support)
    got = learner.task_losses(params, query)
    for t in range(query[0].shape[0]):
        own = learner.functional({n: p[t] for n, p in params.items()})
        expected = mse(own, tuple(x[t] for x in query))
        torch.testing.assert_close(got[t], expected, atol=1e-12, rtol=0)
