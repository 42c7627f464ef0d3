"""The RL building blocks against hand computations and reference implementations."""

import numpy as np
import pytest
import torch
from torch.distributions import Categorical, Normal, kl_divergence
from torch.utils._pytree import tree_map

from maml import MAML
from maml_rl.adapt import adapted_params
from maml_rl.baseline import baseline_values, features, fit_linear_baseline, fitted_baseline
from maml_rl.episodes import Episodes
from maml_rl.fisher import gauss_newton_fvp, subset
from maml_rl.losses import reinforce_loss, surrogate_and_kl
from maml_rl.policies import CategoricalPolicy, GaussianPolicy
from maml_rl.returns import discounted_returns, gae
from maml_rl.trpo import conjugate_gradient, flat, line_search, unflat


def episodes(tasks=2, rollouts=3, horizon=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    rewards = torch.randn(tasks, rollouts, horizon, generator=g, dtype=torch.float64)
    lengths = torch.randint(2, horizon + 1, (tasks, rollouts), generator=g)
    mask = (torch.arange(horizon) < lengths.unsqueeze(-1)).double()
    return rewards * mask, mask


def test_discounted_returns_by_hand():
    rewards, mask = episodes()
    got = discounted_returns(rewards, mask, gamma=0.9)
    for t_, r_ in np.ndindex(*rewards.shape[:2]):
        n = int(mask[t_, r_].sum())
        for h in range(rewards.shape[-1]):
            expected = (
                sum(0.9**k * rewards[t_, r_, h + k].item() for k in range(n - h)) if h < n else 0
            )
            assert got[t_, r_, h].item() == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("lam", [1.0, 0.95, 0.0])
def test_gae_by_hand(lam):
    rewards, mask = episodes(seed=1)
    values = torch.randn(
        rewards.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(2)
    )
    gamma = 0.99
    got = gae(rewards, values, mask, gamma, lam)
    for t_, r_ in np.ndindex(*rewards.shape[:2]):
        n = int(mask[t_, r_].sum())
        v = [values[t_, r_, h].item() for h in range(n)] + [0.0]  # no bootstrap after the end
        deltas = [rewards[t_, r_, h].item() + gamma * v[h + 1] - v[h] for h in range(n)]
        for h in range(rewards.shape[-1]):
            expected = sum((gamma * lam) ** k * deltas[h + k] for k in range(n - h)) if h < n else 0
            assert got[t_, r_, h].item() == pytest.approx(expected, abs=1e-12)
    if lam == 1.0:
        expected = discounted_returns(rewards, mask, gamma) - values * mask
        torch.testing.assert_close(got, expected)


def test_linear_baseline_fit_matches_lstsq():
    rewards, mask = episodes(tasks=3, rollouts=4, horizon=7, seed=3)
    observations = torch.randn(3, 4, 7, 2, dtype=torch.float64) * 4
    returns = discounted_returns(rewards, mask, 0.99)
    weights = fit_linear_baseline(observations, returns, mask)
    for t in range(3):
        phi = features(observations[t], mask[t]).reshape(-1, 8).numpy()
        target = (returns[t] * mask[t]).reshape(-1).numpy()
        ridge = np.sqrt(1e-5) * np.eye(
            8
        )  # min |phi w - G|^2 + c |w|^2 as one least-squares problem
        expected = np.linalg.lstsq(
            np.vstack([phi, ridge]), np.concatenate([target, np.zeros(8)]), rcond=None
        )[0]
        np.testing.assert_allclose(weights[t].numpy(), expected, rtol=1e-6, atol=1e-8)
    values = baseline_values(observations, mask, weights)
    assert values.shape == rewards.shape and (values[mask == 0] == 0).all()
    assert torch.equal(fitted_baseline(observations, returns, mask), values)  # features once


@pytest.mark.parametrize("gae_lambda", [1.0, 0.9])
def test_advantages_are_a_plain_per_episode_computation(gae_lambda):
    """rllab's recipe step by step in numpy on episodes that end early: the ridge fit on each
    task's steps (time = the step's index in its episode), GAE within each episode, then the
    task's advantages normalised."""
    from maml_rl.episodes import Episodes, with_advantages

    rewards, mask = episodes(tasks=3, rollouts=5, horizon=9, seed=4)
    observations = torch.randn(3, 5, 9, 2, dtype=torch.float64) * 4
    assert len(set(mask.sum(-1).flatten().tolist())) > 2  # episodes of several lengths
    batch = Episodes(
        observations, observations, rewards, mask, observations, 0 * rewards, 0 * rewards
    )
    got = with_advantages(batch, gamma=0.95, gae_lambda=gae_lambda).advantages
    for t in range(3):
        rows, targets, lengths = [], [], []
        for r in range(5):
            n = int(mask[t, r].sum())
            if n == 0:
                continue
            o = np.clip(observations[t, r, :n].numpy(), -10, 10)
            time = np.arange(n)[:, None] / 100.0
            rows.append(np.hstack([o, o**2, time, time**2, time**3, np.ones((n, 1))]))
            rew = rewards[t, r, :n].numpy()
            targets.append([sum(0.95**k * x for k, x in enumerate(rew[i:])) for i in range(n)])
            lengths.append((r, n))
        phi, target = np.vstack(rows), np.concatenate(targets)
        w = np.linalg.solve(phi.T @ phi + 1e-5 * np.eye(phi.shape[1]), phi.T @ target)
        advantages, start = {}, 0
        for r, n in lengths:
            values = np.append(phi[start : start + n] @ w, 0.0)
            rew = rewards[t, r, :n].numpy()
            deltas = rew + 0.95 * values[1:] - values[:-1]
            advantages[r] = [
                sum((0.95 * gae_lambda) ** k * d for k, d in enumerate(deltas[i:]))
                for i in range(n)
            ]
            start += n
        flat = np.concatenate(list(advantages.values()))
        mean, std = flat.mean(), flat.std()
        for r, n in lengths:
            expected = (np.array(advantages[r]) - mean) / (std + 1e-8)
            np.testing.assert_allclose(got[t, r, :n].numpy(), expected, rtol=1e-6, atol=1e-8)
            assert (got[t, r, n:] == 0).all()


def test_conjugate_gradient_solves_an_spd_system():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(20, 20, generator=g, dtype=torch.float64)
    spd = a @ a.T + 0.5 * torch.eye(20, dtype=torch.float64)
    b = torch.randn(20, generator=g, dtype=torch.float64)
    x, residual = conjugate_gradient(lambda v: spd @ v, b, iterations=60, tolerance=1e-20)
    torch.testing.assert_close(x, torch.linalg.solve(spd, b), rtol=1e-7, atol=1e-9)
    torch.testing.assert_close(residual, b - spd @ x, rtol=0, atol=1e-9)


def test_conjugate_gradient_residual_gives_the_curvature_after_few_iterations():
    """Stopped early (as TRPO's 10 iterations are), the returned residual is still b - A x, so
    x @ (b - residual) is the curvature x @ A @ x that the step size needs."""
    g = torch.Generator().manual_seed(1)
    a = torch.randn(50, 50, generator=g, dtype=torch.float64)
    spd = a @ a.T + 1e-3 * torch.eye(50, dtype=torch.float64)
    b = torch.randn(50, generator=g, dtype=torch.float64)
    x, residual = conjugate_gradient(lambda v: spd @ v, b, iterations=5)
    assert (b - spd @ x).norm() > 1e-3 * b.norm()  # not converged: the check is not trivial
    torch.testing.assert_close(residual, b - spd @ x, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(x @ (b - residual), x @ spd @ x, rtol=1e-10, atol=0)


def _fisher_problem(inner_steps, first_order, seed=0):
    """A tiny Gaussian policy, random train episodes per inner step, and valid episodes whose
    "old" outputs are the adapted policy's own (where the KL's gradient vanishes)."""
    torch.manual_seed(seed)
    policy = GaussianPolicy(3, 2, hidden=(4,), activation="tanh").double()
    learner = MAML(
        policy,
        reinforce_loss(GaussianPolicy),
        inner_steps=inner_steps,
        inner_lr=0.3,
        first_order=first_order,
    )
    g = torch.Generator().manual_seed(seed)

    def batch(tasks=2, rollouts=4, horizon=3):
        obs = torch.randn(tasks, rollouts, horizon, 3, generator=g, dtype=torch.float64)
        mask = torch.ones(tasks, rollouts, horizon, dtype=torch.float64)
        mask[:, 0, 2] = 0
        act = torch.randn(tasks, rollouts, horizon, 2, generator=g, dtype=torch.float64)
        adv = torch.randn(tasks, rollouts, horizon, generator=g, dtype=torch.float64)
        out = torch.zeros(tasks, rollouts, horizon, 4, dtype=torch.float64)
        return Episodes(obs, act, torch.zeros_like(adv), mask, out, adv, torch.zeros_like(adv))

    train = [batch() for _ in range(inner_steps)]
    adapted = adapted_params(learner, train)[-1]
    valid = batch()
    outputs = torch.func.vmap(lambda p, o: torch.func.functional_call(policy, p, (o,)))(
        adapted, valid.observations
    )
    return learner, train, valid._replace(outputs=outputs.detach())


def _explicit_gauss_newton(learner, train, valid, train_hessian_on, valid_hessian_on):
    """mean over tasks of J^T F J from explicit Hessian matrices (hand-written adaptation)."""
    names = list(learner.meta_params())
    like = list(learner.meta_params().values())
    theta = flat(like).detach()
    loss, lr = learner.task_loss, 0.3

    def forward(vector):
        return lambda x: torch.func.functional_call(
            learner.model, dict(zip(names, unflat(vector, like), strict=True)), (x,)
        )

    def task_of(episodes, t):
        return Episodes(*(x[t] for x in episodes))

    total = 0
    for t in range(valid.mask.shape[0]):
        point, jacobian = theta, torch.eye(theta.numel(), dtype=theta.dtype)
        for k, episodes in enumerate(train):
            sub = task_of(train_hessian_on[k], t)
            h = torch.autograd.functional.hessian(lambda v, e=sub: loss(forward(v), e), point)
            if not learner.first_order:
                jacobian = (torch.eye(theta.numel(), dtype=theta.dtype) - lr * h) @ jacobian
            v = point.clone().requires_grad_()
            step = torch.autograd.grad(loss(forward(v), task_of(episodes, t)), v)[0]
            point = (point - lr * step).detach()
        e = task_of(valid_hessian_on, t)

        def kl(v, e=e):
            out = forward(v)(e.observations)
            return (GaussianPolicy.kl(e.outputs, out) * e.mask).sum() / e.mask.sum()

        fisher = torch.autograd.functional.hessian(kl, point)
        total = total + jacobian.T @ fisher @ jacobian
    return total / valid.mask.shape[0]


@pytest.mark.parametrize("inner_steps,first_order", [(1, False), (2, False), (2, True)])
def test_post_adaptation_fisher_equals_the_hessian_of_the_kl_through_adaptation(
    inner_steps, first_order
):
    learner, train, valid = _fisher_problem(inner_steps, first_order)
    names = list(learner.meta_params())
    like = list(learner.meta_params().values())
    theta = flat(like).detach()

    def kl_through_adaptation(vector):  # hand-written differentiable adaptation, then the KL
        total = 0
        for t in range(valid.mask.shape[0]):
            params = dict(zip(names, unflat(vector, like), strict=True))
            for episodes in train:
                e = Episodes(*(x[t] for x in episodes))
                value = learner.task_loss(
                    lambda x, p=params: torch.func.functional_call(learner.model, p, (x,)), e
                )
                grads = torch.autograd.grad(
                    value, list(params.values()), create_graph=not first_order
                )
                params = {n: p - 0.3 * g for (n, p), g in zip(params.items(), grads, strict=True)}
            e = Episodes(*(x[t] for x in valid))
            out = torch.func.functional_call(learner.model, params, (e.observations,))
            total = total + (GaussianPolicy.kl(e.outputs, out) * e.mask).sum() / e.mask.sum()
        return total / valid.mask.shape[0]

    hessian = torch.autograd.functional.hessian(kl_through_adaptation, theta)
    product = gauss_newton_fvp(
        learner,
        train,
        valid,
        surrogate_and_kl(GaussianPolicy),
        fraction=1.0,
        damping=1e-3,
        generator=torch.Generator().manual_seed(0),
        adapted=adapted_params(learner, train),
    )
    v = torch.randn_like(theta)
    torch.testing.assert_close(product(v), hessian @ v + 1e-3 * v, rtol=1e-7, atol=1e-10)


def _half_fisher(learner, train, valid, seed, fraction=0.5, adapted=None, **settings):
    """The Gauss-Newton product on half of the episodes, without damping."""
    return gauss_newton_fvp(
        learner,
        train,
        valid,
        surrogate_and_kl(GaussianPolicy),
        fraction=fraction,
        damping=0.0,
        generator=torch.Generator().manual_seed(seed),
        adapted=adapted_params(learner, train) if adapted is None else adapted,
        **settings,
    )


def test_subsampled_fisher_is_gauss_newton_on_the_subsets_at_the_exact_adapted_point():
    learner, train, valid = _fisher_problem(2, False, seed=1)
    product = _half_fisher(learner, train, valid, 3)
    g = torch.Generator().manual_seed(3)  # the same draws: each train step's subset, then valid
    train_subsets = [subset(e, 0.5, g) for e in train]
    valid_subset = subset(valid, 0.5, g)
    assert train_subsets[0].mask.shape[1] == 2
    expected = _explicit_gauss_newton(learner, train, valid, train_subsets, valid_subset)
    v = torch.randn(expected.shape[0], dtype=torch.float64)
    torch.testing.assert_close(product(v), expected @ v, rtol=1e-7, atol=1e-10)
    assert torch.linalg.eigvalsh(expected).min() > -1e-10  # a Fisher estimate stays PSD


def test_fisher_of_a_block_of_tasks_is_exact_gauss_newton_on_those_tasks():
    """A block of the tasks, with their own adapted parameters (as a rank holds them, or as
    benchmarks/trpo_curvature.py slices a fraction of the tasks): the product is exact
    Gauss-Newton on those tasks, their mean, or their share of ``total_tasks``' mean."""
    learner, train, valid = _fisher_problem(2, False, seed=4)
    adapted = adapted_params(learner, train)
    chosen = torch.randperm(2, generator=torch.Generator().manual_seed(6))[:1]
    pick = lambda e: tree_map(lambda x: x.index_select(0, chosen), e)  # noqa: E731
    train_chosen, valid_chosen = [pick(e) for e in train], pick(valid)
    adapted_chosen = [pick(a) for a in adapted]
    product = _half_fisher(learner, train_chosen, valid_chosen, 6, 1.0, adapted_chosen)
    expected = _explicit_gauss_newton(
        learner, train_chosen, valid_chosen, train_chosen, valid_chosen
    )
    other = _explicit_gauss_newton(learner, train, valid, train, valid)  # both tasks
    v = torch.randn(expected.shape[0], dtype=torch.float64)
    torch.testing.assert_close(product(v), expected @ v, rtol=1e-7, atol=1e-10)
    assert not torch.allclose(product(v), other @ v)  # one task, not the mean of both
    share = _half_fisher(learner, train_chosen, valid_chosen, 6, 1.0, adapted_chosen, total_tasks=2)
    torch.testing.assert_close(share(v), expected @ v / 2, rtol=1e-7, atol=1e-10)


def test_adapted_params_are_a_plain_loop_of_sgd_steps_and_their_count_is_checked():
    """Each step's parameters (as the sampler ran them) are those of hand-written SGD steps of
    each task on its own episodes; a list that does not hold one entry per step is refused."""
    learner, train, valid = _fisher_problem(2, False, seed=2)
    adapted = adapted_params(learner, train)
    assert len(adapted) == len(train)
    for t in range(valid.mask.shape[0]):
        params = {n: p.detach() for n, p in learner.meta_params().items()}
        for k, episodes in enumerate(train):
            e = Episodes(*(x[t] for x in episodes))
            leaves = {n: p.clone().requires_grad_() for n, p in params.items()}
            value = learner.task_loss(
                lambda x, p=leaves: torch.func.functional_call(learner.model, p, (x,)), e
            )
            grads = torch.autograd.grad(value, list(leaves.values()))
            params = {n: p - 0.3 * g for (n, p), g in zip(params.items(), grads, strict=True)}
            for name, p in params.items():
                torch.testing.assert_close(adapted[k][name][t], p, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="adapted holds 1 steps' parameters for 2 steps"):
        _half_fisher(learner, train, valid, 5, adapted=adapted[:1])


def test_line_search_keeps_kl_and_improvement():
    # surrogate and KL along the step: the full step is too far, a shorter one is better
    def evaluate(f):
        return (f - 0.6) ** 2, 0.05 * f**2

    result = line_search(evaluate, max_kl=0.01, steps=15, ratio=0.8)
    assert result.accepted and result.kl <= 0.01 and result.improvement > 0
    assert result.fraction == pytest.approx(0.8**result.steps)
    for k in range(result.steps):  # every longer step tried first broke a condition
        loss, kl = evaluate(0.8**k)
        assert loss >= evaluate(0.0)[0] or kl > 0.01

    rejected = line_search(lambda f: (1.0 + f, 0.0), max_kl=0.01)  # every step is worse
    assert not rejected.accepted and rejected.fraction == 0.0

    # a given start loss replaces evaluate(0.0): the same search, one evaluation fewer
    calls = []
    given = line_search(lambda f: calls.append(f) or evaluate(f), 0.01, start=evaluate(0.0)[0])
    assert given == result and 0.0 not in calls


def test_policy_densities_match_torch_distributions():
    torch.manual_seed(0)
    gaussian = GaussianPolicy(3, 2, hidden=(5,))
    obs = torch.randn(7, 3)
    out, other = gaussian(obs), gaussian(obs) + 0.3
    actions = GaussianPolicy.sample(out, torch.Generator().manual_seed(1))
    mean, log_std = GaussianPolicy.split(out)
    normal = Normal(mean, log_std.exp())
    torch.testing.assert_close(
        GaussianPolicy.log_prob(out, actions), normal.log_prob(actions).sum(-1)
    )
    other_normal = Normal(*GaussianPolicy.split(other)[:1], GaussianPolicy.split(other)[1].exp())
    torch.testing.assert_close(
        GaussianPolicy.kl(out, other), kl_divergence(normal, other_normal).sum(-1)
    )
    categorical = CategoricalPolicy(3, 4, hidden=(5,))
    logits, shifted = categorical(obs), categorical(obs) * 1.5
    picks = CategoricalPolicy.sample(logits, torch.Generator().manual_seed(2))
    torch.testing.assert_close(
        CategoricalPolicy.log_prob(logits, picks), Categorical(logits=logits).log_prob(picks)
    )
    torch.testing.assert_close(
        CategoricalPolicy.kl(logits, shifted),
        kl_divergence(Categorical(logits=logits), Categorical(logits=shifted)),
    )


def test_categorical_draws_follow_the_probabilities():
    logits = torch.log(torch.tensor([[0.2, 0.3, 0.5], [0.0, 0.9, 0.1]]))
    picks = CategoricalPolicy.sample(logits.expand(100_000, 2, 3), torch.Generator().manual_seed(0))
    counts = torch.stack([torch.bincount(picks[:, i], minlength=3) for i in range(2)]) / 100_000
    torch.testing.assert_close(counts, logits.exp(), rtol=0, atol=0.01)  # 6 standard errors
    assert (picks[:, 1] != 0).all()  # never an action of probability 0
    edges = torch.tensor([[0.0], [0.2], [0.49], [0.5], [0.9999999]])
    assert CategoricalPolicy.act(logits[:1].expand(5, 3), edges).tolist() == [0, 1, 1, 2, 2]


@pytest.mark.parametrize("policy_class", [GaussianPolicy, CategoricalPolicy])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_batched_policy_equals_a_loop_over_tasks(policy_class, activation):
    # The sampler's per-task forward: task i's own parameters on task i's observations.
    torch.manual_seed(0)
    policy = policy_class(5, 3, hidden=(7, 6), activation=activation)
    params = {n: p.detach() + torch.randn(4, *p.shape) for n, p in policy.named_parameters()}
    obs = torch.randn(4, 9, 5)
    expected = torch.stack(
        [
            torch.func.functional_call(policy, {n: p[t] for n, p in params.items()}, (obs[t],))
            for t in range(4)
        ]
    )
    torch.testing.assert_close(policy.batched(params, obs), expected, rtol=1e-6, atol=1e-6)


def test_xavier_init_gives_xavier_uniform_weights_and_zero_biases():
    from gymnasium import spaces

    from maml_rl.policies import make_policy

    obs, act = spaces.Box(-1, 1, (20,)), spaces.Box(-1, 1, (6,))
    torch.manual_seed(0)
    policy = make_policy(obs, act, (100, 100), "relu", init="xavier")
    layers = [m for m in policy.modules() if isinstance(m, torch.nn.Linear)]
    assert [tuple(m.weight.shape) for m in layers] == [(100, 20), (100, 100), (6, 100)]
    for layer in layers:
        fan_out, fan_in = layer.weight.shape
        bound = (6.0 / (fan_in + fan_out)) ** 0.5
        w = layer.weight.detach()
        assert w.abs().max() <= bound
        assert w.abs().max() > 0.95 * bound  # uniform up to the bound, not a narrower law
        assert abs(w.var().item() - bound**2 / 3) < 0.15 * bound**2 / 3  # U(-b, b): b^2 / 3
        assert torch.equal(layer.bias.detach(), torch.zeros_like(layer.bias))
    assert torch.equal(policy.log_std.detach(), torch.zeros(6))  # std 1, as the authors'
    torch.manual_seed(0)
    default = make_policy(obs, act, (100, 100), "relu")
    assert default.mean[0].bias.abs().sum() > 0  # torch's own init is kept by default
    with pytest.raises(ValueError, match="'he' is unknown; allowed: torch, xavier"):
        make_policy(obs, act, (100, 100), "relu", init="he")
