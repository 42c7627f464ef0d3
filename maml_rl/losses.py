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


def magic_box(x: Tensor) -> Tensor:
    """DiCE's magic box (Foerster et al. 2018): 1 in value, ``d box(x) = box(x) dx``."""
    return torch.exp(x - x.detach())


def dice_loss(policy: type) -> Callable[[Forward, Episodes], Tensor]:
    """An inner loss with DiCE's derivatives: Loaded DiCE (Farquhar et al. 2019),
    ``-sum_t (box(c_t) - box(c_{t-1})) A_t`` with ``c_t`` the episode's log-likelihood up to step
    t, averaged over the valid steps.

    Its gradient is REINFORCE's (:func:`reinforce_loss`); its Hessian adds the score terms of the
    episodes' sampling, so that it estimates the Hessian of the expected return without bias
    (undiscounted, for any baseline of the state in ``A_t``; tested by enumeration). Each row of
    ``episodes`` must be one episode: packed rows (``Episodes.packed``) would join episodes.
    """

    def loss(forward: Forward, episodes: Episodes) -> Tensor:
        log_probs = policy.log_prob(forward(episodes.observations), episodes.actions)
        log_probs = log_probs * episodes.mask
        upto = log_probs.cumsum(-1)
        weights = magic_box(upto) - magic_box(upto - log_probs)
        return -(weights * episodes.advantages * episodes.mask).sum() / episodes.mask.sum()

    loss.whole_episodes = True  # type: ignore[attr-defined]
    return loss


def lvc_loss(policy: type) -> Callable[[Forward, Episodes], Tensor]:
    """ProMP's low-variance curvature inner loss (Rothfuss et al. 2019, eq. 7, as its code
    computes it): ``-r_t A_t`` averaged over the valid steps, ``r_t`` the likelihood ratio of
    the action to the policy that sampled it (``episodes.outputs``).

    At the sampling parameters ``r_t`` is 1 and behaves as ``box(log pi(a_t | s_t))``: the
    gradient is REINFORCE's, the Hessian keeps each step's own score term and drops DiCE's
    products of scores across steps (biased, lower variance; tested by enumeration).
    """

    def loss(forward: Forward, episodes: Episodes) -> Tensor:
        log_probs = policy.log_prob(forward(episodes.observations), episodes.actions)
        ratio = torch.exp(log_probs - policy.log_prob(episodes.outputs, episodes.actions))
        weighted = ratio * episodes.advantages * episodes.mask
        return -weighted.sum() / episodes.mask.sum()

    return loss


INNER_LOSSES = {"reinforce": reinforce_loss, "dice": dice_loss, "lvc": lvc_loss}


def inner_rows(episodes: Episodes, loss: Callable) -> Episodes:
    """The rows the inner ``loss`` takes: each task's steps packed (fewer rows to compute), or
    whole episodes where the loss needs them (DiCE's likelihood of each episode so far)."""
    return episodes if getattr(loss, "whole_episodes", False) else episodes.packed()


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
