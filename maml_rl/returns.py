"""Discounted returns and generalized advantage estimation over a time axis (the last one).

Episodes are padded to the horizon: ``mask`` is 1 on the steps that happened and 0 after an
episode terminated. An episode cut by the horizon is bootstrapped with 0, as in the MAML code.
"""

from __future__ import annotations

import torch
from torch import Tensor


def discounted_returns(rewards: Tensor, mask: Tensor, gamma: float) -> Tensor:
    """``G_t = r_t + gamma * G_{t+1}`` within each episode; shape of ``rewards``."""
    returns = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[..., 0])
    for t in reversed(range(rewards.shape[-1])):
        running = (rewards[..., t] + gamma * running) * mask[..., t]
        returns[..., t] = running
    return returns


def gae(rewards: Tensor, values: Tensor, mask: Tensor, gamma: float, lam: float) -> Tensor:
    """Generalized advantage estimates (Schulman et al. 2016); lam = 1 gives returns - values."""
    values = values * mask
    next_values = torch.cat([values[..., 1:], torch.zeros_like(values[..., :1])], dim=-1)
    deltas = (rewards + gamma * next_values - values) * mask
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[..., 0])
    for t in reversed(range(rewards.shape[-1])):
        running = (deltas[..., t] + gamma * lam * running) * mask[..., t]
        advantages[..., t] = running
    return advantages
