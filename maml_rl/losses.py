"""The policy-gradient losses, in the core's task-loss form ``loss(forward, episodes)``."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from maml_rl.episodes import Episodes

Forward = Callable[[Tensor], Tensor]


def reinforce_loss(policy: type) -> Callable[[Forward, Episodes], Tensor]:
    """The inner loss: REINFORCE with baseline advantages, averaged over the valid steps."""

    def loss(forward: Forward, episodes: Episodes) -> Tensor:
        log_probs = policy.log_prob(forward(episodes.observations), episodes.actions)
        weighted = log_probs * episodes.advantages * episodes.mask
        return -weighted.sum() / episodes.mask.sum()

    return loss


def surrogate_and_kl(policy: type) -> Callable[[Forward, Episodes], Tensor]:
    """The TRPO measures of a task: ``[surrogate loss, KL(old || new)]`` over the valid steps.

    The surrogate is minus the importance-weighted advantage of the new policy against the one
    that sampled the episodes (``episodes.outputs``).
    """

    def measure(forward: Forward, episodes: Episodes) -> Tensor:
        outputs = forward(episodes.observations)
        ratio = torch.exp(
            policy.log_prob(outputs, episodes.actions)
            - policy.log_prob(episodes.outputs, episodes.actions)
        )
        count = episodes.mask.sum()
        surrogate = -(ratio * episodes.advantages * episodes.mask).sum() / count
        kl = (policy.kl(episodes.outputs, outputs) * episodes.mask).sum() / count
        return torch.stack([surrogate, kl])

    return measure
