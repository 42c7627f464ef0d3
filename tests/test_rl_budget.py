"""The step-budget sampler against a plain simulation of rllab's lockstep loop."""

import numpy as np
import pytest
import torch

from maml_rl.budget import completed_within_budget, sample_within_budget
from maml_rl.episodes import Episodes


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


@pytest.mark.parametrize("budget", [1, 7, 40, 95, 300])
def test_kept_episodes_match_the_lockstep_loop(budget):
    rng = np.random.default_rng(budget)
    tasks, lanes, rounds = 5, 4, 60
    lengths = torch.as_tensor(rng.integers(1, 21, size=(tasks, lanes, rounds)))
    lengths[0] = 20  # full-length episodes only
    lengths[1, :, ::3] = 1  # many ties
    kept, decided = completed_within_budget(lengths, budget)
    assert decided.all()
    for t in range(tasks):
        expected = rllab_loop(lengths[t].tolist(), budget)
        assert {tuple(i) for i in torch.nonzero(kept[t]).tolist()} == expected
        assert sum(int(lengths[t, a, b]) for a, b in expected) >= budget


def test_too_few_rounds_are_reported_undecided():
    lengths = torch.tensor([[[5, 5], [50, 50]], [[1, 1], [1, 1]]])  # (2 tasks, 2 lanes, 2)
    # Task 0: 20 steps are done at t = 50 (lane 0's unsampled episodes would end before that);
    # task 1: 4 steps is all there is.
    kept, decided = completed_within_budget(lengths, 20)
    assert decided.tolist() == [False, False]
    kept, decided = completed_within_budget(lengths, 10)
    assert decided.tolist() == [True, False] and kept[0].tolist() == [[True, True], [False, False]]
    with pytest.raises(ValueError, match="budget must be positive, got 0"):
        completed_within_budget(lengths, 0)


def _episodes(lengths: torch.Tensor, horizon: int) -> Episodes:
    tasks, lanes = lengths.shape
    mask = (torch.arange(horizon) < lengths.unsqueeze(-1)).float()
    rewards = torch.randn(tasks, lanes, horizon) * mask
    obs = torch.randn(tasks, lanes, horizon, 2)
    return Episodes(
        obs, obs.clone(), rewards, mask, torch.randn(tasks, lanes, horizon, 4), 0 * rewards
    )


def test_sample_within_budget_keeps_the_loops_episodes_and_masks_the_rest():
    horizon, budget = 10, 25
    draws = iter(torch.randint(1, horizon + 1, (50, 3, 4), generator=torch.Generator()))
    episodes, kept = sample_within_budget(lambda seed: _episodes(next(draws), horizon), budget, 0)
    rounds = episodes.mask.shape[1] // 4
    lengths = torch.stack([episodes.mask[:, k * 4 : (k + 1) * 4].sum(-1) for k in range(rounds)])
    assert kept.shape == (3, rounds * 4)
    for t in range(3):
        per_lane = [[int(x) for x in lengths[:, t, lane]] for lane in range(4)]
        in_loop = {k * 4 + lane for lane, k in rllab_loop(per_lane, budget)}
        assert set(torch.nonzero(kept[t]).flatten().tolist()) == in_loop
        # Dropped episodes keep no valid step; kept ones keep all of theirs.
        steps = episodes.mask[t].sum(-1)
        assert (steps[~kept[t]] == 0).all()
        assert steps[kept[t]].sum() >= budget
