"""The RL building blocks against hand computations and reference implementations."""

import numpy as np
import pytest
import torch
from torch.distributions import Categorical, Normal, kl_divergence

from maml_rl.baseline import baseline_values, features, fit_linear_baseline
from maml_rl.policies import CategoricalPolicy, GaussianPolicy
from maml_rl.returns import discounted_returns, gae
from maml_rl.trpo import conjugate_gradient, fisher_vector_product, flat, line_search, unflat


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


def test_conjugate_gradient_solves_an_spd_system():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(20, 20, generator=g, dtype=torch.float64)
    spd = a @ a.T + 0.5 * torch.eye(20, dtype=torch.float64)
    b = torch.randn(20, generator=g, dtype=torch.float64)
    x = conjugate_gradient(lambda v: spd @ v, b, iterations=60, tolerance=1e-20)
    torch.testing.assert_close(x, torch.linalg.solve(spd, b), rtol=1e-7, atol=1e-9)


def test_fisher_vector_product_equals_the_explicit_hessian_of_the_kl():
    torch.manual_seed(0)
    policy = GaussianPolicy(3, 2, hidden=(4,), activation="tanh").double()
    obs = torch.randn(10, 3, dtype=torch.float64)
    params = list(policy.parameters())
    shifted = [p.detach() + 0.1 * torch.randn_like(p) for p in params]  # away from the minimum too
    with torch.no_grad():
        for p, s in zip(params, shifted, strict=True):
            p.copy_(s)
    old = policy(obs).detach()

    def kl_of(vector):
        state = dict(
            zip([n for n, _ in policy.named_parameters()], unflat(vector, params), strict=True)
        )
        return GaussianPolicy.kl(old, torch.func.functional_call(policy, state, (obs,))).mean()

    theta = flat(params).detach()
    hessian = torch.autograd.functional.hessian(kl_of, theta)
    product = fisher_vector_product(
        GaussianPolicy.kl(old, policy(obs)).mean(), params, damping=1e-3
    )
    v = torch.randn_like(theta)
    torch.testing.assert_close(product(v), hessian @ v + 1e-3 * v, rtol=1e-8, atol=1e-10)


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
