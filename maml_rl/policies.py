"""Policies: an MLP that maps observations to the parameters of an action distribution.

``forward`` returns one tensor (vmap-friendly); ``log_prob``, ``kl`` and ``sample`` are pure
functions of that tensor, so the core can adapt the policy's parameters like any model's.
``batched(params, obs)`` runs every task's own parameters on its observations at once, as the
sampler does at each time step.
"""

from __future__ import annotations

import math

import torch
from gymnasium import spaces
from torch import Tensor, nn

from maml_rl.config import INITS

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}


def mlp(inputs: int, outputs: int, hidden: tuple[int, ...], activation: str) -> nn.Sequential:
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation {activation!r} is unknown; allowed: {', '.join(ACTIVATIONS)}")
    layers: list[nn.Module] = []
    width = inputs
    for size in hidden:
        layers += [nn.Linear(width, size), ACTIVATIONS[activation]()]
        width = size
    layers.append(nn.Linear(width, outputs))
    return nn.Sequential(*layers)


def batched_mlp(layers: nn.Sequential, params: dict[str, Tensor], prefix: str, x: Tensor) -> Tensor:
    """``layers`` with task i's parameters on ``x[i]``: params with a leading task axis, named
    as in the policy (``prefix.0.weight``, ...), ``x`` (tasks, n, inputs) -> (tasks, n, outputs).

    Batched matrix products: what ``vmap`` of ``functional_call`` computes, in less time at the
    sampler's sizes (one policy call per time step).
    """
    for name, layer in layers.named_children():
        if isinstance(layer, nn.Linear):
            weight, bias = params[f"{prefix}.{name}.weight"], params[f"{prefix}.{name}.bias"]
            x = torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))
        else:
            x = layer(x)
    return x


class GaussianPolicy(nn.Module):
    """A diagonal Gaussian with an MLP mean and a state-independent log standard deviation.

    ``forward(obs)`` returns ``[mean, log_std]`` concatenated on the last axis.
    """

    def __init__(
        self,
        observations: int,
        actions: int,
        hidden: tuple[int, ...] = (100, 100),
        activation: str = "relu",
        init_std: float = 1.0,
    ) -> None:
        super().__init__()
        self.mean = mlp(observations, actions, hidden, activation)
        self.log_std = nn.Parameter(torch.full((actions,), math.log(init_std)))

    def forward(self, observations: Tensor) -> Tensor:
        mean = self.mean(observations)
        return torch.cat([mean, self.log_std.expand_as(mean)], dim=-1)

    def batched(self, params: dict[str, Tensor], observations: Tensor) -> Tensor:
        """``forward`` of each task's parameters: (tasks, n, obs) -> (tasks, n, 2 * actions)."""
        mean = batched_mlp(self.mean, params, "mean", observations)
        log_std = params["log_std"].unsqueeze(1).expand_as(mean)
        return torch.cat([mean, log_std], dim=-1)

    @staticmethod
    def split(out: Tensor) -> tuple[Tensor, Tensor]:
        return out.chunk(2, dim=-1)

    @classmethod
    def log_prob(cls, out: Tensor, actions: Tensor) -> Tensor:
        mean, log_std = cls.split(out)
        z = (actions - mean) * torch.exp(-log_std)
        return (-0.5 * z**2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)

    @classmethod
    def kl(cls, old: Tensor, new: Tensor) -> Tensor:
        """KL(old || new) per row."""
        mean_old, log_std_old = cls.split(old)
        mean_new, log_std_new = cls.split(new)
        var_old, var_new = torch.exp(2 * log_std_old), torch.exp(2 * log_std_new)
        terms = log_std_new - log_std_old + (var_old + (mean_old - mean_new) ** 2) / (2 * var_new)
        return (terms - 0.5).sum(-1)

    @classmethod
    def noise(cls, out: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The standard normal draws ``act`` turns into actions for the outputs ``out``."""
        mean, _ = cls.split(out)
        return torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)

    @classmethod
    def act(cls, out: Tensor, noise: Tensor) -> Tensor:
        mean, log_std = cls.split(out)
        return mean + torch.exp(log_std) * noise

    @classmethod
    def sample(cls, out: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return cls.act(out, cls.noise(out, generator))


class CategoricalPolicy(nn.Module):
    """A categorical distribution over discrete actions; ``forward(obs)`` returns the logits."""

    def __init__(
        self,
        observations: int,
        actions: int,
        hidden: tuple[int, ...] = (100, 100),
        activation: str = "relu",
    ) -> None:
        super().__init__()
        self.logits = mlp(observations, actions, hidden, activation)

    def forward(self, observations: Tensor) -> Tensor:
        return self.logits(observations)

    def batched(self, params: dict[str, Tensor], observations: Tensor) -> Tensor:
        """``forward`` of each task's parameters: (tasks, n, obs) -> (tasks, n, actions)."""
        return batched_mlp(self.logits, params, "logits", observations)

    @staticmethod
    def log_prob(out: Tensor, actions: Tensor) -> Tensor:
        log_p = torch.log_softmax(out, dim=-1)
        return log_p.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)

    @staticmethod
    def kl(old: Tensor, new: Tensor) -> Tensor:
        log_old, log_new = torch.log_softmax(old, -1), torch.log_softmax(new, -1)
        return (log_old.exp() * (log_old - log_new)).sum(-1)

    @staticmethod
    def noise(out: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The uniform draws in [0, 1) ``act`` turns into actions for the logits ``out``."""
        shape = (*out.shape[:-1], 1)
        return torch.rand(shape, generator=generator, dtype=out.dtype, device=out.device)

    @staticmethod
    def act(out: Tensor, noise: Tensor) -> Tensor:
        """The action whose interval of the cumulative probabilities holds the draw."""
        below = torch.softmax(out, -1).cumsum(-1) <= noise
        return below.sum(-1).clamp(max=out.shape[-1] - 1)

    @classmethod
    def sample(cls, out: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return cls.act(out, cls.noise(out, generator))


def initialise(policy: nn.Module, init: str) -> nn.Module:
    """Re-initialise the linear layers of ``policy`` by the scheme ``init`` (one of ``INITS``)."""
    if init not in INITS:
        raise ValueError(f"init {init!r} is unknown; allowed: {', '.join(INITS)}")
    if init == "xavier":
        for layer in policy.modules():
            if isinstance(layer, nn.Linear):
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)
    return policy


def make_policy(
    observation_space: spaces.Space,
    action_space: spaces.Space,
    hidden: tuple[int, ...],
    activation: str,
    init: str = "torch",
) -> GaussianPolicy | CategoricalPolicy:
    """The policy for an env's spaces: Gaussian for boxes, categorical for discrete actions."""
    if not isinstance(observation_space, spaces.Box) or len(observation_space.shape) != 1:
        raise ValueError(f"policies need a flat Box observation space; got {observation_space}")
    observations = observation_space.shape[0]
    if isinstance(action_space, spaces.Box) and len(action_space.shape) == 1:
        policy = GaussianPolicy(observations, action_space.shape[0], hidden, activation)
    elif isinstance(action_space, spaces.Discrete):
        policy = CategoricalPolicy(observations, int(action_space.n), hidden, activation)
    else:
        raise ValueError(f"no policy for action space {action_space}; allowed: flat Box, Discrete")
    return initialise(policy, init)
