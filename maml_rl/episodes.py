"""A batch of episodes as tensors shaped (tasks, rollouts, horizon, ...), and their advantages."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from maml_rl.baseline import fitted_baseline
from maml_rl.returns import discounted_returns, gae


class Episodes(NamedTuple):
    """Episodes padded to the horizon; ``mask`` is 1 on steps that happened (a pytree)."""

    observations: Tensor  # (T, R, H, obs)
    actions: Tensor  # (T, R, H, act)
    rewards: Tensor  # (T, R, H)
    mask: Tensor  # (T, R, H)
    outputs: Tensor  # (T, R, H, out): the sampling policy's outputs (the "old" policy)
    advantages: Tensor  # (T, R, H); zeros until with_advantages
    successes: Tensor  # (T, R, H): 1 where the env's info["success"] was 1 (0 where it has none)

    def returns_per_episode(self) -> Tensor:
        """Undiscounted return of each episode: (T, R)."""
        return (self.rewards * self.mask).sum(-1)

    def returns_per_task(self) -> Tensor:
        """Mean undiscounted return over each task's episodes, padding left out: (T,)."""
        return self.returns_per_episode().sum(dim=1) / self._episodes_per_task()

    def success_per_task(self) -> Tensor:
        """Fraction of each task's episodes that succeeded at any step, padding left out: (T,)."""
        succeeded = (self.successes * self.mask).amax(dim=-1) > 0
        return succeeded.sum(dim=1) / self._episodes_per_task()

    def lengths_per_task(self) -> Tensor:
        """Mean episode length over each task's episodes, padding left out: (T,)."""
        return self.mask.sum(dim=(1, 2)) / self._episodes_per_task()

    def _episodes_per_task(self) -> Tensor:
        """How many episodes each task has, not counting padding (episodes with no step)."""
        return self.mask.any(dim=-1).sum(dim=1)

    def padded(self, episodes: int) -> Episodes:
        """The same episodes, then masked-out empty ones up to ``episodes`` per task."""
        extra = episodes - self.mask.shape[1]
        if extra <= 0:
            return self
        return Episodes(
            *(torch.cat([x, x.new_zeros(x.shape[0], extra, *x.shape[2:])], dim=1) for x in self)
        )

    def packed(self) -> Episodes:
        """Each task's steps in their order, in rows of the horizon's width with no gap but at
        the end of its last row: (T, rows, H), rows as few as the task with most steps needs.

        For losses that average over a task's steps (the inner loss, the surrogate, the KL),
        which see the same batch in fewer rows where episodes end early and tasks differ in how
        many they kept (an Ant's: a third of the rows). The rows are not episodes: returns,
        lengths and advantages must come before.
        """
        packing = Packing(self.mask)
        return self if packing.identity else Episodes(*(packing.pack(x) for x in self))

    def to(self, device: torch.device | str) -> Episodes:
        return Episodes(*(x.to(device) for x in self))


class Packing:
    """Where each step that happened in a (T, E, H) batch goes when each task's steps are laid
    end to end in rows of width H: (T, rows, H), rows as few as the fullest task needs."""

    def __init__(self, mask: Tensor) -> None:
        tasks, episodes, horizon = mask.shape
        self.valid = mask.reshape(tasks, -1) > 0
        counts = self.valid.sum(dim=1)
        self.rows = max(1, -(-int(counts.max()) // horizon))
        prefix = torch.arange(self.valid.shape[1], device=mask.device) < counts[:, None]
        # Packed already (or every step of every episode happened): nothing moves.
        self.identity = self.rows == episodes and bool((self.valid == prefix).all())
        offsets = torch.arange(tasks, device=mask.device)[:, None] * (self.rows * horizon)
        self.places = (self.valid.cumsum(dim=1) - 1 + offsets)[self.valid]
        self.shape = (tasks, episodes, horizon)

    def pack(self, x: Tensor) -> Tensor:
        """(T, E, H, ...) -> (T, rows, H, ...), zeros after each task's last step."""
        if self.identity:
            return x
        tasks, episodes, horizon = self.shape
        out = x.new_zeros(tasks * self.rows * horizon, *x.shape[3:])
        out[self.places] = x.reshape(tasks * episodes * horizon, *x.shape[3:])[self.valid.view(-1)]
        return out.view(tasks, self.rows, horizon, *x.shape[3:])

    def unpack(self, x: Tensor) -> Tensor:
        """(T, rows, H, ...) -> (T, E, H, ...), zeros where no step happened."""
        if self.identity:
            return x
        tasks, episodes, horizon = self.shape
        out = x.new_zeros(tasks * episodes * horizon, *x.shape[3:])
        out[self.valid.view(-1)] = x.reshape(-1, *x.shape[3:])[self.places]
        return out.view(tasks, episodes, horizon, *x.shape[3:])


def with_advantages(
    episodes: Episodes, gamma: float, gae_lambda: float, normalize: bool = True
) -> Episodes:
    """Fit the linear baseline per task, then GAE advantages (normalised per task, as in the
    MAML code: zero mean and unit variance over the task's valid steps)."""
    returns = discounted_returns(episodes.rewards, episodes.mask, gamma)
    # The fit over the steps that happened only: packed, with each step's time in its episode.
    packing = Packing(episodes.mask)
    time = torch.arange(episodes.mask.shape[-1], device=episodes.mask.device)
    observations, mask, time = (
        packing.pack(x) for x in (episodes.observations, episodes.mask, time.expand_as(returns))
    )
    values = packing.unpack(fitted_baseline(observations, packing.pack(returns), mask, time))
    advantages = gae(episodes.rewards, values, episodes.mask, gamma, gae_lambda)
    if normalize:
        count = episodes.mask.sum(dim=(1, 2), keepdim=True)
        mean = advantages.sum(dim=(1, 2), keepdim=True) / count
        centered = (advantages - mean) * episodes.mask
        std = ((centered**2).sum(dim=(1, 2), keepdim=True) / count).sqrt()
        advantages = centered / (std + 1e-8)
    return episodes._replace(advantages=advantages.to(episodes.rewards.dtype))
