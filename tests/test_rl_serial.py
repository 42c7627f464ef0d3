"""The step-budget sampler (``Sampler(..., sampling="steps")``: one env per task, episodes back
to back until a step budget, run on many lanes at once) against a plain loop of single envs, one
episode after another. The budget of ``sampling="steps"`` is ``rollouts x horizon``; other lane
counts for the same budget go through the sampler's ``_budget``, which that rule calls."""

import numpy as np
import pytest
import torch
from torch import nn

import envs
from maml_rl.policies import GaussianPolicy
from maml_rl.sampler import Sampler, episode_seed


class ElementwisePolicy(GaussianPolicy):
    """A Gaussian whose mean is elementwise in the first observations (no matrix product), so
    a row's outputs do not depend on how many rows a call has: exact comparisons across lanes."""

    def __init__(self, actions: int, log_std: float) -> None:
        nn.Module.__init__(self)
        self.scale = nn.Parameter(torch.linspace(-3.0, 3.0, actions))
        self.log_std = nn.Parameter(torch.full((actions,), log_std))

    def forward(self, observations):
        mean = torch.tanh(observations[..., : len(self.scale)] * self.scale)
        return torch.cat([mean, self.log_std.expand_as(mean)], dim=-1)

    def batched(self, params, observations):
        mean = torch.tanh(observations[..., : len(self.scale)] * params["scale"].unsqueeze(1))
        return torch.cat([mean, params["log_std"].unsqueeze(1).expand_as(mean)], dim=-1)


CASES = {  # family: (tasks, horizon, budget, the policy's log std); wide noise makes Ants jump
    "navigation-2d": (3, 25, 125, -0.5),
    "ant-vel": (2, 100, 300, 1.5),
}


def setup(name: str, seed: int = 0):
    tasks, horizon, budget, log_std = CASES[name]
    family = envs.family_class(name)
    goals = family.sample_tasks(tasks, np.random.default_rng(seed))
    if name == "navigation-2d":
        goals = goals * 0.1  # within reach: episodes end at the goal
    template = family()
    policy = ElementwisePolicy(template.action_space.shape[0], log_std)
    template.close()
    shared = {n: p.detach() for n, p in policy.named_parameters()}
    own = {n: p + 0.3 * torch.randn(tasks, *p.shape) for n, p in shared.items()}
    return family, goals, policy, shared, own, horizon, budget


def budget_sample(sampler, policy, params, per_task, seed, budget):
    """The episodes of a step ``budget``: the public rule where it is ``rollouts x horizon``,
    else the rule's own ``_budget`` on that many lanes."""
    if sampler.rollouts * sampler.horizon == budget:
        return sampler.sample(policy, params, per_task, seed)
    return sampler._budget(policy, params, per_task, seed, budget)


def sample(name, lanes, params, per_task, seed=7, share=None):
    family, goals, policy, *_, horizon, budget = setup(name)
    sampler = Sampler(
        name, len(goals), lanes, horizon=horizon, nthread=1, tasks=share, sampling="steps"
    )
    try:
        sampler.set_tasks(goals[share or slice(None)])
        episodes = budget_sample(sampler, policy, params, per_task, seed, budget)
        return episodes, sampler.steps_taken
    finally:
        sampler.close()


def plain_loop(name, params, per_task, seed=7):
    """Each task on its own single env: episodes one after another, each from its seed, until
    the completed ones hold the budget; the episodes' observations, actions and rewards."""
    family, goals, policy, *_, horizon, budget = setup(name)
    template = family()
    low, high = template.action_space.low.astype(np.float64), template.action_space.high
    episodes = []
    for task, goal in enumerate(goals):
        env, kept, steps = family(task=goal), [], 0
        own = {n: p[task] for n, p in params.items()} if per_task else params
        while steps < budget:
            number = len(kept)
            obs, _ = env.reset(seed=episode_seed(seed, task, number))
            draws = torch.Generator().manual_seed(episode_seed(seed, task, number))
            columns = {"obs": [], "act": [], "rew": []}
            for t in range(horizon):
                observation = torch.as_tensor(obs, dtype=torch.float32)
                out = torch.func.functional_call(policy, own, (observation,))
                if t == 0:
                    noise = policy.noise(out.expand(horizon, -1), draws)
                action = policy.act(out, noise[t])
                box = (high + low) / 2 + (high - low) / 2 * action.double().numpy()
                obs, reward, terminated, _, _ = env.step(np.clip(box, low, high))
                columns["obs"].append(observation)
                columns["act"].append(action)
                columns["rew"].append(float(reward))
                if terminated:
                    break
            kept.append(columns)
            steps += len(columns["rew"])
        env.close()
        episodes.append(kept)
    template.close()
    return episodes


@pytest.mark.parametrize("per_task", [False, True])
@pytest.mark.parametrize("name", list(CASES))
def test_serial_episodes_are_a_plain_loops_of_one_env_per_task(name, per_task):
    *_, shared, own, horizon, budget = setup(name)
    params = own if per_task else shared
    expected = plain_loop(name, params, per_task)
    assert budget % horizon == 0  # budget // horizon lanes take the public path
    for lanes in (1, 2, budget // horizon, budget // horizon + 3):
        episodes, steps_taken = sample(name, lanes, params, per_task)
        lengths = episodes.mask.sum(-1).long()
        assert steps_taken == int(lengths.sum())  # no step wasted on an episode not kept
        for task, kept in enumerate(expected):
            assert (lengths[task] > 0).sum() == len(kept)
            for k, columns in enumerate(kept):
                n = len(columns["rew"])
                assert lengths[task, k] == n
                assert torch.equal(episodes.observations[task, k, :n], torch.stack(columns["obs"]))
                assert torch.equal(episodes.actions[task, k, :n], torch.stack(columns["act"]))
                assert episodes.rewards[task, k, :n].tolist() == pytest.approx(
                    columns["rew"], rel=1e-6
                )
            # The one-lane rule: all but the last kept episode fall short of the budget.
            total = [len(columns["rew"]) for columns in kept]
            assert sum(total[:-1]) < budget <= sum(total)
    if name == "ant-vel":  # the case is a test of early ends only if some episodes end early
        assert any(len(columns["rew"]) < horizon for kept in expected for columns in kept)


def test_a_block_of_tasks_gets_the_whole_batchs_episodes():
    *_, own, horizon, budget = setup("navigation-2d")
    whole, _ = sample("navigation-2d", 2, own, per_task=True)
    ours = {n: p[1:3] for n, p in own.items()}
    block, _ = sample("navigation-2d", 2, ours, per_task=True, share=slice(1, 3))
    assert whole.mask.shape[1] > budget // horizon  # more episodes than a budget of whole ones
    width = block.mask.shape[1]
    for a, b in zip(whole, block, strict=True):
        torch.testing.assert_close(a[1:3, :width], b, rtol=0, atol=0)


def test_the_mlp_policy_gives_the_same_episodes_on_any_lanes_up_to_rounding():
    """Matrix products round by the number of rows: one lane and four agree to float32."""
    sampler_episodes = []
    torch.manual_seed(0)
    policy = GaussianPolicy(2, 2, hidden=(16, 16))
    params = dict(policy.named_parameters())
    for lanes in (1, 4):
        with Sampler("navigation-2d", 3, lanes, horizon=25, nthread=1, sampling="steps") as sampler:
            sampler.set_tasks(np.array([[0.05, 0.02], [-0.1, 0.1], [0.3, -0.2]]))
            sampler_episodes.append(budget_sample(sampler, policy, params, False, 3, budget=100))
    for a, b in zip(*sampler_episodes, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_an_unknown_sampling_is_named():
    with pytest.raises(ValueError, match="sampling 'budget' is unknown; allowed: episodes, steps"):
        Sampler("navigation-2d", 2, 2, horizon=5, sampling="budget")
