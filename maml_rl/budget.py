"""Episodes gathered as the MAML authors' rllab sampler gathered them: a step budget per task.

rllab's ``VectorizedSampler`` (``cbfinn/maml_rl``, ``sandbox/rocky/tf/samplers/
vectorized_sampler.py``) steps ``lanes`` envs in lockstep, starts a new episode in a lane as soon
as its episode ends, and stops after the time step at which the completed episodes hold at least
``budget`` steps; episodes still running then are dropped. With episodes that end early (2D
navigation reaching its goal) that keeps more episodes than ``lanes`` and favours short ones: a
lane's long episode is the one most often cut off. The authors' test scripts report the mean
return over the kept episodes (rllab's ``AverageReturn``) and adapt on them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from maml_rl.episodes import Episodes


def completed_within_budget(lengths: Tensor, budget: int) -> tuple[Tensor, Tensor]:
    """Which episodes rllab's lockstep sampler keeps, and whether enough were sampled.

    ``lengths`` (tasks, lanes, K): the length of each lane's k-th episode, the lanes' episodes
    run back to back. Returns ``kept`` (tasks, lanes, K), True for the episodes completed by the
    first time step at which the completed ones hold ``budget`` steps, and ``decided`` (tasks,):
    False where the K episodes per lane do not settle that step (sample more and ask again).
    """
    if budget < 1:
        raise ValueError(f"budget must be positive, got {budget}")
    tasks = lengths.shape[0]
    lengths = lengths.to(torch.int64)
    ends = lengths.cumsum(-1)  # the time step at which each episode completes
    flat_ends, flat_lengths = ends.reshape(tasks, -1), lengths.reshape(tasks, -1)
    order = flat_ends.argsort(dim=-1, stable=True)
    sorted_ends = flat_ends.gather(-1, order)
    done_steps = flat_lengths.gather(-1, order).cumsum(-1)
    # Episodes that complete at the same time step count together: the total at a time step is
    # the cumulative sum at the last episode that completes then.
    last = torch.searchsorted(sorted_ends, sorted_ends, right=True) - 1
    totals = done_steps.gather(-1, last)
    never = torch.iinfo(torch.int64).max
    stop = torch.where(totals >= budget, sorted_ends, never).min(dim=-1).values
    sampled_until = ends[..., -1].min(dim=-1).values  # later, some lane has unsampled episodes
    decided = (stop != never) & (stop <= sampled_until)
    kept = ends <= stop.view(tasks, 1, 1)
    return kept, decided


def sample_within_budget(
    sample: Callable[[int], Episodes], budget: int, seed: int, max_rounds: int = 1000
) -> tuple[Episodes, Tensor]:
    """Episodes as rllab's sampler kept them, and which of them it kept.

    ``sample(seed)`` returns one episode per lane and task, (tasks, lanes, H, ...); it is called
    again (a round: each lane's next episode) until every task's budget is settled. Returns the
    rounds side by side, (tasks, rounds * lanes, H, ...), with the mask of the episodes rllab
    would have dropped set to zero, and ``kept`` (tasks, rounds * lanes).
    """
    rounds: list[Episodes] = []
    lengths: list[Tensor] = []  # per round: (tasks, lanes)
    seeds = np.random.SeedSequence(seed)
    while True:
        rounds.append(sample(int(seeds.spawn(1)[0].generate_state(1)[0])))
        lengths.append(rounds[-1].mask.sum(-1))
        kept, decided = completed_within_budget(torch.stack(lengths, dim=-1), budget)
        if decided.all():
            break
        if len(rounds) >= max_rounds:
            raise RuntimeError(f"{budget} steps per task not settled after {max_rounds} rounds")
    kept = kept.transpose(1, 2).flatten(1, 2)  # round-major, as the episodes are concatenated
    episodes = Episodes(*(torch.cat(parts, dim=1) for parts in zip(*rounds, strict=True)))
    mask = episodes.mask * kept.unsqueeze(-1).to(episodes.mask.dtype)
    return episodes._replace(mask=mask), kept
