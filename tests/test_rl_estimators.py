"""The inner policy-gradient estimators against exact expectations on an enumerable MDP.

Two states, two actions, two steps, a tabular softmax policy: the 16 trajectories and their
probabilities are enumerated, so the expected return V(theta), its gradient and Hessian, and
the expectation of any estimator over a trajectory come from autograd, without sampling.
"""

import itertools

import pytest
import torch

from maml_rl.episodes import Episodes
from maml_rl.losses import dice_loss, lvc_loss, reinforce_loss
from maml_rl.policies import CategoricalPolicy

START = torch.tensor([0.6, 0.4], dtype=torch.float64)
MOVES = torch.tensor(  # P(s' | s, a)
    [[[0.9, 0.1], [0.2, 0.8]], [[0.5, 0.5], [0.1, 0.9]]], dtype=torch.float64
)
REWARDS = torch.tensor([[1.0, -0.5], [0.3, 2.0]], dtype=torch.float64)  # r(s, a)
BASELINE = torch.tensor([0.7, -0.4], dtype=torch.float64)  # any function of the state
ESTIMATORS = {"reinforce": reinforce_loss, "dice": dice_loss, "lvc": lvc_loss}


def trajectories() -> tuple[Episodes, torch.Tensor, torch.Tensor]:
    """All 16 trajectories as one task's episodes (advantages: return to go minus the
    baseline), their start-and-move probabilities (the policy's part left out) and returns."""
    rows = list(itertools.product(range(2), repeat=4))  # s0, a0, s1, a1
    states = torch.tensor([[r[0], r[2]] for r in rows])
    actions = torch.tensor([[r[1], r[3]] for r in rows], dtype=torch.float64)
    rewards = REWARDS[states, actions.long()]
    to_go = rewards.flip(-1).cumsum(-1).flip(-1)
    world = torch.tensor([START[s0] * MOVES[s0, a0, s1] for s0, a0, s1, _ in rows])
    episodes = Episodes(
        observations=torch.nn.functional.one_hot(states, 2).double()[None],
        actions=actions[None],
        rewards=rewards[None],
        mask=torch.ones(1, 16, 2, dtype=torch.float64),
        outputs=torch.zeros(1, 16, 2, 2, dtype=torch.float64),
        advantages=(to_go - BASELINE[states])[None],
    )
    return episodes, world, rewards.sum(-1)


def setup(seed=0):
    torch.manual_seed(seed)
    policy = CategoricalPolicy(2, 2, hidden=()).double()
    names = [n for n, _ in policy.named_parameters()]
    shapes = [p.shape for _, p in policy.named_parameters()]
    theta = torch.cat([p.detach().reshape(-1) for p in policy.parameters()]) * 2

    def params_of(vector):
        sizes = [s.numel() for s in shapes]
        parts = vector.split(sizes)
        return {n: x.view(s) for n, x, s in zip(names, parts, shapes, strict=True)}

    def forward_of(vector):
        return lambda obs: torch.func.functional_call(policy, params_of(vector), (obs,))

    return theta, forward_of


def one(episodes: Episodes, k: int) -> Episodes:
    return Episodes(*(x[:, k : k + 1] for x in episodes))


def sampled_by(episodes: Episodes, forward) -> Episodes:
    """The episodes as the policy ``forward`` sampled them (its outputs recorded)."""
    return episodes._replace(outputs=forward(episodes.observations).detach())


def probabilities(forward, episodes, world):
    log_pi = CategoricalPolicy.log_prob(forward(episodes.observations), episodes.actions)
    return world * log_pi[0].sum(-1).exp()


def value(theta, forward_of, episodes, world, returns):
    """V(theta): the exact expected return."""
    return (probabilities(forward_of(theta), episodes, world) * returns).sum()


def objective(name, theta, forward_of, episodes):
    """The estimator's objective on ``episodes`` (minus the loss, summed over steps)."""
    return -ESTIMATORS[name](CategoricalPolicy)(forward_of(theta), episodes) * episodes.mask.sum()


def expected(fn, theta, forward_of, episodes, world):
    """E over one trajectory of fn(theta, trajectory), the probabilities held fixed."""
    weights = probabilities(forward_of(theta), episodes, world).detach()
    return sum(weights[k] * fn(one(episodes, k)) for k in range(16))


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_each_estimators_gradient_is_reinforces_and_unbiased(name):
    theta, forward_of = setup()
    episodes, world, returns = trajectories()
    episodes = sampled_by(episodes, forward_of(theta))

    def gradient(batch):
        return torch.func.grad(lambda t: objective(name, t, forward_of, batch))(theta)

    reinforce = torch.func.grad(lambda t: objective("reinforce", t, forward_of, episodes))(theta)
    torch.testing.assert_close(gradient(episodes), reinforce, rtol=1e-12, atol=1e-12)
    exact = torch.func.grad(lambda t: value(t, forward_of, episodes, world, returns))(theta)
    got = expected(gradient, theta, forward_of, episodes, world)
    torch.testing.assert_close(got, exact, rtol=1e-10, atol=1e-12)


def score_terms(theta, forward_of, trajectory):
    """Per step t: the gradients of the log-likelihood up to t-1 (c) and of step t's (l)."""
    log_pi = CategoricalPolicy.log_prob(
        forward_of(theta)(trajectory.observations), trajectory.actions
    )[0, 0]
    grads = [torch.autograd.grad(x, theta, retain_graph=True)[0] for x in log_pi]
    before = [torch.zeros_like(theta), grads[0]]
    return list(zip(before, grads, strict=True))


def test_dice_hessian_is_unbiased_lvc_drops_the_cross_step_scores_reinforce_all_scores():
    theta, forward_of = setup(seed=1)
    episodes, world, returns = trajectories()
    episodes = sampled_by(episodes, forward_of(theta))
    exact = torch.autograd.functional.hessian(
        lambda t: value(t, forward_of, episodes, world, returns), theta
    )

    def hessian(name):
        return lambda batch: torch.autograd.functional.hessian(
            lambda t: objective(name, t, forward_of, batch), theta
        )

    def scores(cross_only):
        def term(batch):
            leaf = theta.clone().requires_grad_()
            total = torch.zeros(len(theta), len(theta), dtype=theta.dtype)
            for t, (c, g) in enumerate(score_terms(leaf, forward_of, batch)):
                cross = torch.outer(c, g) + torch.outer(g, c)
                step = cross if cross_only else cross + torch.outer(g, g)
                total += step * batch.advantages[0, 0, t]
            return total

        return term

    dice = expected(hessian("dice"), theta, forward_of, episodes, world)
    lvc = expected(hessian("lvc"), theta, forward_of, episodes, world)
    reinforce = expected(hessian("reinforce"), theta, forward_of, episodes, world)
    cross = expected(scores(cross_only=True), theta, forward_of, episodes, world)
    every = expected(scores(cross_only=False), theta, forward_of, episodes, world)
    torch.testing.assert_close(dice, exact, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(lvc, exact - cross, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(reinforce, exact - every, rtol=1e-10, atol=1e-12)
    assert (lvc - exact).abs().max() > 1e-2 and (reinforce - exact).abs().max() > 1e-2


def meta_gradients(alpha, seed=2):
    """The exact gradient of J(theta) = E_tau V(theta + alpha g(tau)), g REINFORCE's gradient on
    one trajectory, and each estimator's expected meta-gradient (the outer value exact)."""
    theta, forward_of = setup(seed)
    episodes, world, returns = trajectories()
    episodes = sampled_by(episodes, forward_of(theta))

    def step(name, t, trajectory):
        inner = objective(name, t, forward_of, trajectory)
        return t + alpha * torch.autograd.grad(inner, t, create_graph=True)[0]

    def exact_j(t):
        weights = probabilities(forward_of(t), episodes, world)
        after = [
            value(step("reinforce", t, one(episodes, k)), forward_of, episodes, world, returns)
            for k in range(16)
        ]
        return (weights * torch.stack(after)).sum()

    leaf = theta.clone().requires_grad_()
    exact = torch.autograd.grad(exact_j(leaf), leaf)[0]

    def meta(name):
        def gradient(trajectory):
            t = theta.clone().requires_grad_()
            after = value(step(name, t, trajectory), forward_of, episodes, world, returns)
            return torch.autograd.grad(after, t)[0]

        return expected(gradient, theta, forward_of, episodes, world)

    def sampling_term(trajectory):  # grad log p(tau) V(theta'(tau))
        t = theta.clone().requires_grad_()
        log_p = CategoricalPolicy.log_prob(
            forward_of(t)(trajectory.observations), trajectory.actions
        ).sum()
        moved = step("reinforce", theta.clone().requires_grad_(), trajectory)
        after = value(moved, forward_of, episodes, world, returns)
        return torch.autograd.grad(log_p, t)[0] * after.detach()

    sampling = expected(sampling_term, theta, forward_of, episodes, world)
    return exact, sampling, {name: meta(name) for name in ESTIMATORS}


def test_reinforce_meta_gradient_misses_exactly_the_pre_update_sampling_term():
    exact, sampling, got = meta_gradients(alpha=0.3)
    torch.testing.assert_close(got["reinforce"], exact - sampling, rtol=1e-10, atol=1e-12)
    assert sampling.abs().max() > 1e-2


def test_dice_meta_gradient_is_exact_to_first_order_in_the_step_lvc_and_reinforce_are_not():
    """DiCE's Hessian stands for the pre-update sampling term to first order in alpha: its
    expected meta-gradient is off grad J by O(alpha^2). REINFORCE's is off by O(alpha) (the
    whole term), LVC's by O(alpha) too, a fraction of REINFORCE's (it keeps each step's own
    scores)."""
    errors = {}
    for alpha in (0.01, 0.005):
        exact, _, got = meta_gradients(alpha)
        errors[alpha] = {n: (g - exact).norm().item() for n, g in got.items()}
    ratio = {n: errors[0.01][n] / errors[0.005][n] for n in ESTIMATORS}
    assert 3.0 < ratio["dice"] < 5.0  # halving alpha quarters the error
    assert 1.7 < ratio["reinforce"] < 2.3 and 1.7 < ratio["lvc"] < 2.3  # and halves these
    assert errors[0.005]["lvc"] < 0.2 * errors[0.005]["reinforce"]
    assert errors[0.005]["dice"] < 0.02 * errors[0.005]["reinforce"]
