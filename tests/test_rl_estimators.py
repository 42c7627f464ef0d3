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
        successes=torch.zeros(1, 16, 2, dtype=torch.float64),
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


class Draws:
    """One inner step on a batch of N = 2 trajectories, then a batch of M = 4 trajectories from
    the adapted policy for the outer policy gradient, as the algorithms sample them.

    Every estimator averages its objective over the batch's episodes, so a batch's inner
    gradient and Hessian are the means of its trajectories': those of the 16 trajectories and
    of the 256 ordered pairs give every batch's adapted parameters and meta-gradient Jacobian,
    and the 16 trajectories' outer gradients at each pair's adapted parameters give the outer
    estimates, exactly as sampled. Expectations and variances over the draws are then sums.
    """

    N, M, ALPHA = 2, 4, 0.1

    def __init__(self, seed: int = 2):
        theta, forward_of = setup(seed)
        episodes, world, returns = trajectories()
        self.theta, self.forward_of = theta, forward_of
        self.episodes = sampled_by(episodes, forward_of(theta))
        self.world, self.returns = world, returns
        self.p = probabilities(forward_of(theta), self.episodes, world).detach()
        self.pairs = torch.tensor(list(itertools.product(range(16), repeat=self.N)))

        def inner(name, k):
            return lambda t: objective(name, t, forward_of, one(self.episodes, k))

        grads = torch.stack([torch.func.grad(inner("reinforce", k))(theta) for k in range(16)])
        self.adapted = theta + self.ALPHA * grads[self.pairs].mean(1)  # 256 x d
        eye = torch.eye(len(theta), dtype=theta.dtype)
        self.jacobians = {}  # d theta' / d theta per pair, each estimator's
        for name in ESTIMATORS:
            hessians = torch.stack(
                [torch.autograd.functional.hessian(inner(name, k), theta) for k in range(16)]
            )
            self.jacobians[name] = eye + self.ALPHA * hessians[self.pairs].mean(1)
        # After each pair's step: the 16 trajectories' probabilities and REINFORCE gradients.
        self.after_p = torch.func.vmap(self.probabilities)(self.adapted)
        self.after_g = torch.func.vmap(torch.func.jacrev(self.returns_to_go))(self.adapted)
        self.weights = self.p[self.pairs].prod(1)  # P(pair)

    def probabilities(self, moved: torch.Tensor) -> torch.Tensor:
        return probabilities(self.forward_of(moved), self.episodes, self.world)

    def returns_to_go(self, moved: torch.Tensor) -> torch.Tensor:
        """Each trajectory's REINFORCE objective sum_t log pi(a_t | s_t) A_t at ``moved``."""
        log_pi = CategoricalPolicy.log_prob(
            self.forward_of(moved)(self.episodes.observations), self.episodes.actions
        )[0]
        return (log_pi * self.episodes.advantages[0]).sum(-1)

    def batch(self, name: str, pair: tuple[int, int]) -> torch.Tensor:
        """d theta' / d theta on one pair straight from the estimator's loss on both rows."""
        rows = Episodes(*(x[:, list(pair)] for x in self.episodes))

        def step(t):
            gradient = torch.func.grad(lambda u: objective(name, u, self.forward_of, rows))(t)
            return t + self.ALPHA * gradient / self.N

        return torch.func.jacrev(step)(self.theta)

    def exact(self) -> torch.Tensor:
        """grad J, J(theta) = E_B V(theta + alpha g(B)), both expectations enumerated."""
        theta = self.theta.clone().requires_grad_()
        forward = self.forward_of(theta)
        grads = []
        for k in range(16):
            inner = objective("reinforce", theta, self.forward_of, one(self.episodes, k))
            grads.append(torch.autograd.grad(inner, theta, create_graph=True)[0])
        adapted = theta + self.ALPHA * torch.stack(grads)[self.pairs].mean(1)
        weights = probabilities(forward, self.episodes, self.world)[self.pairs].prod(1)
        values = torch.func.vmap(self.value)(adapted)
        return torch.autograd.grad((weights * values).sum(), theta)[0]

    def value(self, moved: torch.Tensor) -> torch.Tensor:
        return value(moved, self.forward_of, self.episodes, self.world, self.returns)

    def sampling_term(self) -> torch.Tensor:
        """E_B grad log p(B) V(theta'(B)): the pre-update sampling term."""
        theta = self.theta.clone().requires_grad_()
        log_pi = CategoricalPolicy.log_prob(
            self.forward_of(theta)(self.episodes.observations), self.episodes.actions
        )[0].sum(-1)
        scores = torch.stack([torch.autograd.grad(x, theta, retain_graph=True)[0] for x in log_pi])[
            self.pairs
        ].sum(1)
        values = torch.func.vmap(self.value)(self.adapted)
        return (self.weights[:, None] * scores * values[:, None]).sum(0)

    def moments(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The exact mean and per-component variance of the estimator's meta-gradient."""
        outer_mean = torch.einsum("bk,bkd->bd", self.after_p, self.after_g)  # grad V(theta')
        centred = self.after_g - outer_mean[:, None]
        outer_cov = torch.einsum("bk,bkd,bke->bde", self.after_p, centred, centred) / self.M
        jac = self.jacobians[name]
        given = torch.einsum("bij,bi->bj", jac, outer_mean)  # E[meta | B]
        mean = (self.weights[:, None] * given).sum(0)
        within = torch.einsum("bij,bik,bkj->bj", jac, outer_cov, jac)  # Var[meta | B]
        between = (given - mean) ** 2
        return mean, (self.weights[:, None] * (within + between)).sum(0)

    def sample(self, name: str, draws: int, generator: torch.Generator) -> torch.Tensor:
        """``draws`` meta-gradients, each from its own sampled inner and outer batches."""
        inner = torch.multinomial(self.p, draws * self.N, replacement=True, generator=generator)
        pair = (inner.view(draws, self.N) * torch.tensor([16, 1])).sum(1)
        outer = torch.multinomial(self.after_p[pair], self.M, replacement=True, generator=generator)
        outer_gradient = self.after_g[pair[:, None], outer].mean(1)
        return torch.einsum("sij,si->sj", self.jacobians[name][pair], outer_gradient)


@pytest.fixture(scope="module")
def draws():
    return Draws()


def test_batch_estimators_average_their_episodes(draws):
    for name in ESTIMATORS:
        for pair in [(3, 3), (0, 9), (14, 5)]:
            index = pair[0] * 16 + pair[1]
            torch.testing.assert_close(
                draws.batch(name, pair), draws.jacobians[name][index], rtol=1e-12, atol=1e-12
            )


def test_sampled_meta_gradients_converge_dice_to_grad_j_reinforce_without_sampling_term(draws):
    """20,000 draws of N = 2 inner and M = 4 outer trajectories at alpha = 0.1: DiCE's mean lies
    within a few standard errors of grad J (its O(alpha^2) error is far below them), the
    original estimator's within a few of grad J minus the pre-update sampling term and many
    from grad J."""
    exact, sampling = draws.exact(), draws.sampling_term()
    generator = torch.Generator().manual_seed(0)
    z = {}
    for name in ESTIMATORS:
        sample = draws.sample(name, 20_000, generator)
        mean, error = sample.mean(0), sample.std(0) / len(sample) ** 0.5
        z[name] = (mean - exact) / error, (mean - exact + sampling) / error
        exact_mean, variance = draws.moments(name)
        torch.testing.assert_close(sample.var(0), variance, rtol=0.1, atol=0)
        assert ((mean - exact_mean) / error).abs().max() < 4
    assert z["dice"][0].abs().max() < 4
    assert z["reinforce"][1].abs().max() < 4 and z["reinforce"][0].abs().max() > 10


def test_exact_moments_reinforce_misses_the_sampling_term_lvc_trades_bias_for_variance(draws):
    """By exact sums over the draws: the original estimator's mean is grad J minus the
    pre-update sampling term; DiCE's is off grad J by O(alpha^2) only. ProMP's claim (Rothfuss et
    al. 2019, sec. 5): LVC's curvature estimate is biased, by much less than the original
    estimator's, and of far lower variance than DiCE's; its meta-gradient inherits both. The
    inequalities are pinned on this MDP, not a theorem."""
    exact, sampling = draws.exact(), draws.sampling_term()
    moments = {name: draws.moments(name) for name in ESTIMATORS}
    torch.testing.assert_close(moments["reinforce"][0], exact - sampling, rtol=1e-12, atol=1e-12)
    bias = {name: (mean - exact).norm() for name, (mean, _) in moments.items()}
    variance = {name: var.sum() for name, (_, var) in moments.items()}
    assert bias["dice"] < 0.05 * bias["reinforce"] and bias["dice"] < bias["lvc"]
    assert bias["lvc"] < 0.1 * bias["reinforce"]
    assert variance["reinforce"] < variance["lvc"] < variance["dice"]
    eye = torch.eye(len(draws.theta), dtype=draws.theta.dtype)
    weights = draws.weights[:, None, None]
    curvature = {}  # the Hessian estimate's variance over inner batches, summed over entries
    for name, jacobians in draws.jacobians.items():
        hessians = (jacobians - eye) / draws.ALPHA
        curvature[name] = (weights * (hessians - (weights * hessians).sum(0)) ** 2).sum()
    assert curvature["lvc"] < 0.1 * curvature["dice"]
