"""The test-time step-budget sampler (``maml_rl.paper.sample_lockstep``) against a plain
simulation of rllab's lockstep loop, on scripted episode lengths and on real envs."""

import numpy as np
import pytest
import torch

from maml_rl.paper import sample_lockstep
from maml_rl.policies import GaussianPolicy
from maml_rl.sampler import Sampler


def rllab_loop(lane_lengths: list[list[int]], budget: int) -> set[tuple[int, int]]:
    """rllab's VectorizedSampler.obtain_samples, step by step: (lane, k) of the kept episodes."""
    lanes = len(lane_lengths)
    index, elapsed, kept, samples = [0] * lanes, [0] * lanes, set(), 0
    while samples < budget:
        for lane in range(lanes):  # every lane steps, then the budget is checked
            elapsed[lane] += 1
            if elapsed[lane] == lane_lengths[lane][index[lane]]:
                kept.add((lane, index[lane]))
                samples += elapsed[lane]
                index[lane], elapsed[lane] = index[lane] + 1, 0
    return kept


class ScriptedEnv:
    """Lanes whose episodes last the scripted numbers of steps; each observation says the lane,
    the episode's number in its lane and the step within it."""

    def __init__(self, lengths: np.ndarray) -> None:
        self.lengths = lengths  # (lanes, episodes per lane)
        self.episode = np.zeros(len(lengths), dtype=np.int64)
        self.step_in = np.zeros(len(lengths), dtype=np.int64)

    def _obs(self) -> np.ndarray:
        lanes = np.arange(len(self.lengths))
        return np.stack([lanes, self.episode, self.step_in], axis=1).astype(np.float64)

    def reset(self, seed=None, options=None):
        mask = (options or {}).get("reset_mask", np.ones(len(self.lengths), dtype=bool))
        if seed is None:  # a restart: the lane's next episode
            self.episode[mask] += 1
        self.step_in[mask] = 0
        return self._obs(), {}

    def step(self, actions):
        self.step_in += 1
        length = self.lengths[np.arange(len(self.lengths)), self.episode]
        terminated = self.step_in >= length
        return self._obs(), np.ones(len(self.lengths)), terminated, terminated, {}

    def close(self) -> None:
        pass


def scripted_sampler(lengths: np.ndarray, tasks: int, horizon: int) -> Sampler:
    sampler = Sampler("navigation-2d", tasks, lengths.shape[0] // tasks, horizon=horizon)
    sampler.env.close()
    sampler.env = ScriptedEnv(lengths)
    return sampler


@pytest.mark.parametrize("budget", [1, 7, 40, 95, 300])
def test_kept_episodes_are_those_of_rllabs_loop(budget):
    rng = np.random.default_rng(budget)
    tasks, rollouts, horizon = 4, 3, 20
    lengths = rng.integers(1, horizon + 1, size=(tasks * rollouts, 200))
    lengths[:rollouts] = horizon  # task 0: full-length episodes only
    lengths[rollouts : 2 * rollouts, ::3] = 1  # task 1: many episodes ending together
    sampler = scripted_sampler(lengths, tasks, horizon)
    policy = GaussianPolicy(3, 2, hidden=(4,))
    params = dict(policy.named_parameters())
    episodes = sample_lockstep(sampler, policy, params, per_task=False, seed=0, budget=budget)
    steps = episodes.mask.sum(-1)
    for task in range(tasks):
        lanes = lengths[task * rollouts : (task + 1) * rollouts].tolist()
        expected = rllab_loop(lanes, budget)
        kept = steps[task] > 0
        first = episodes.observations[task, kept, 0]  # (lane, episode, 0) of each kept episode
        got = {(int(lane) - task * rollouts, int(k)) for lane, k, _ in first.tolist()}
        assert got == expected
        # Each kept episode is whole and in order: its scripted length, steps 0, 1, 2, ...
        for episode, n in zip(episodes.observations[task, kept], steps[task, kept], strict=True):
            lane, k = int(episode[0, 0]), int(episode[0, 1])
            assert int(n) == lengths[lane, k]
            assert episode[: int(n), 2].tolist() == list(range(int(n)))
        assert int(episodes.rewards[task].sum()) == int(steps[task].sum()) >= budget
        # Padding episodes hold nothing.
        assert (episodes.observations[task, ~kept] == 0).all()
    with pytest.raises(ValueError, match="budget must be positive, got 0"):
        sample_lockstep(sampler, policy, params, per_task=False, seed=0, budget=0)


def test_without_early_ends_the_budget_sampler_gives_the_plain_episodes():
    """HalfCheetah episodes never end early: rollouts x horizon steps are the plain episodes."""
    sampler = Sampler("halfcheetah-vel", 2, 3, horizon=15, nthread=1)
    try:
        sampler.set_tasks(np.array([[0.5], [1.5]]))
        policy = GaussianPolicy(sampler.env.single_observation_space.shape[0], 6, hidden=(8,))
        params = dict(policy.named_parameters())
        plain = sampler.sample(policy, params, per_task=False, seed=4)
        budgeted = sample_lockstep(sampler, policy, params, per_task=False, seed=4, budget=45)
    finally:
        sampler.close()
    for a, b in zip(plain, budgeted, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_a_block_of_tasks_gets_the_whole_batchs_episodes():
    """Navigation episodes end at the goal; a rank's block samples what one sampler would."""
    policy = GaussianPolicy(2, 2, hidden=(8,))
    params = dict(policy.named_parameters())
    tasks = np.random.default_rng(0).uniform(-0.05, 0.05, size=(4, 2))  # goals within reach

    def sample(share):
        sampler = Sampler("navigation-2d", 4, 3, horizon=30, tasks=share)
        sampler.set_tasks(tasks[share or slice(None)])
        return sample_lockstep(sampler, policy, params, per_task=False, seed=9, budget=150)

    whole, block = sample(None), sample(slice(1, 3))
    assert (whole.mask.sum(-1) < 30).any()  # some episodes ended early
    assert whole.mask.shape[1] > 3  # so the budget took more episodes than lanes
    steps = block.mask.shape[1]
    for a, b in zip(whole, block, strict=True):
        torch.testing.assert_close(a[1:3, :steps], b)


def test_padding_episodes_changes_no_return_advantage_or_loss():
    from maml_rl.episodes import with_advantages
    from maml_rl.losses import reinforce_loss

    sampler = Sampler("navigation-2d", 3, 2, horizon=12)
    sampler.set_tasks(np.array([[0.1, 0.0], [0.0, -0.2], [0.3, 0.3]]))
    policy = GaussianPolicy(2, 2, hidden=(8,))
    params = dict(policy.named_parameters())
    episodes = sample_lockstep(sampler, policy, params, per_task=False, seed=1, budget=30)
    padded = episodes.padded(episodes.mask.shape[1] + 3)
    assert padded.mask.shape[1] == episodes.mask.shape[1] + 3 and padded.mask[:, -3:].sum() == 0
    assert episodes.padded(1) is episodes
    torch.testing.assert_close(padded.returns_per_task(), episodes.returns_per_task())
    torch.testing.assert_close(padded.lengths_per_task(), episodes.lengths_per_task())
    a, b = with_advantages(episodes, 0.99, 1.0), with_advantages(padded, 0.99, 1.0)
    torch.testing.assert_close(b.advantages[:, : a.mask.shape[1]], a.advantages)
    loss = reinforce_loss(GaussianPolicy)

    def forward(obs):
        return torch.func.functional_call(policy, params, (obs,))

    for task in range(3):
        one_a, one_b = (type(e)(*(x[task] for x in e)) for e in (a, b))
        torch.testing.assert_close(loss(forward, one_b), loss(forward, one_a))


def budget_batch():
    """Ant episodes sampled by step budget: an untrained policy's Ants jump out of the healthy
    range at many different steps, so episodes of many lengths, tasks with different numbers
    of them (one inner step: train, then valid)."""
    from maml_rl.adapt import adapted_params
    from maml_rl.build import build_learner
    from maml_rl.config import TrainConfig
    from maml_rl.episodes import with_advantages

    config = TrainConfig(env="ant-vel", hidden=16, init="xavier")
    torch.manual_seed(0)
    learner = build_learner(config, torch.device("cpu"))
    with Sampler("ant-vel", 3, 3, nthread=1, sampling="steps") as sampler:  # 3 x 200 steps
        assert sampler.rollouts * sampler.horizon == 600
        sampler.set_tasks(np.array([[0.5], [1.5], [2.5]]))
        params, per_task, batches = learner.meta_params(), False, []
        for seed in (1, 2):
            episodes = sampler.sample(learner.model, params, per_task, seed)
            batches.append(with_advantages(episodes, 0.99, 1.0))
            params, per_task = adapted_params(learner, batches)[-1], True
    return learner, batches[:1], batches[1]


def test_packing_keeps_each_tasks_steps_in_order_in_fewer_rows():
    _, train, valid = budget_batch()
    for episodes in (*train, valid):
        packed = episodes.packed()
        lengths = episodes.mask.sum(-1)
        assert (lengths[lengths > 0] < 200).any()  # episodes end early
        most = int(episodes.mask.sum(dim=(1, 2)).max())
        assert packed.mask.shape[1] == -(-most // 200) <= episodes.mask.shape[1]
        assert packed.mask.shape != episodes.mask.shape or not packed.mask.equal(episodes.mask)
        for task in range(3):
            valid_steps, packed_steps = episodes.mask[task] > 0, packed.mask[task] > 0
            count = int(valid_steps.sum())
            assert (
                packed_steps.reshape(-1)[:count].all()
                and not packed_steps.reshape(-1)[count:].any()
            )
            for before, after in zip(episodes, packed, strict=True):
                torch.testing.assert_close(after[task][packed_steps], before[task][valid_steps])
        assert packed.packed() is packed  # nothing left to pack


def test_the_update_on_packed_steps_is_the_update_on_the_episodes():
    """The inner loss, the surrogate and the KL average over steps: packing changes none of
    them, so a TRPO step with the whole Fisher is the same step (to rounding)."""
    from maml_rl.meta_update import TRPOSettings, trpo_step

    steps = []
    for pack in (False, True):
        learner, train, valid = budget_batch()
        if pack:
            train, valid = [e.packed() for e in train], valid.packed()
        settings = TRPOSettings(max_kl=0.01, cg_iterations=5, fisher_fraction=1.0)
        stats = trpo_step(learner, train, valid, settings, torch.Generator().manual_seed(0))
        assert stats["accepted"] == 1.0
        steps.append(torch.cat([p.detach().flatten() for p in learner.parameters()]))
        steps.append(torch.tensor([stats["surrogate_after"], stats["kl"]]))
    torch.testing.assert_close(steps[2], steps[0], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(steps[3], steps[1], rtol=1e-4, atol=1e-8)
