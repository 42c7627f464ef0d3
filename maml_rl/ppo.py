"""The PPO meta-update (ProMP's outer step, Rothfuss et al. 2019): Adam on PPO's clipped
objective of the post-adaptation episodes, re-adapting through the inner steps at every epoch."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from maml import MAML
from maml.inner_step import Params
from maml.run.distributed import ONE_PROCESS, Ranks
from maml_rl.episodes import Episodes

Forward = Callable[[Tensor], Tensor]


@dataclass
class PPOSettings:
    """ProMP's settings (jonasrothfuss/ProMP, run_scripts/pro-mp_run_mujoco.py)."""

    epochs: int = 5  # num_promp_steps: Adam steps on one batch of episodes
    clip: float = 0.3  # clip_eps
    inner_kl_penalty: float = 0.0  # init_inner_kl_penalty (ProMP: 5e-4, fixed)


def clipped_objective(policy: type, clip: float) -> Callable[[Forward, Episodes], Tensor]:
    """``[loss, KL(old || new)]`` of a task: minus PPO's clipped surrogate
    ``min(r A, clip(r, 1 - clip, 1 + clip) A)``, ``r`` the ratio to the sampling policy
    (``episodes.outputs``), and the KL, each averaged over the valid steps."""

    def measure(forward: Forward, episodes: Episodes) -> Tensor:
        outputs = forward(episodes.observations)
        old = policy.log_prob(episodes.outputs, episodes.actions)
        ratio = torch.exp(policy.log_prob(outputs, episodes.actions) - old)
        advantages = episodes.advantages
        clipped = torch.minimum(ratio * advantages, ratio.clamp(1 - clip, 1 + clip) * advantages)
        count = episodes.mask.sum()
        kl = (policy.kl(episodes.outputs, outputs) * episodes.mask).sum() / count
        return torch.stack([-(clipped * episodes.mask).sum() / count, kl])

    return measure


def inner_kl(policy: type) -> Callable[[Forward, Episodes], Tensor]:
    """A task's mean KL from the policy that sampled ``episodes`` to ``forward``'s."""

    def measure(forward: Forward, episodes: Episodes) -> Tensor:
        kl = policy.kl(episodes.outputs, forward(episodes.observations)) * episodes.mask
        return kl.sum() / episodes.mask.sum()

    return measure


def ppo_objective(
    learner: MAML, train: list[Episodes], valid: Episodes, settings: PPOSettings
) -> tuple[Tensor, Tensor]:
    """This rank's mean over tasks of ``[clipped loss + inner KL penalty, outer KL]``,
    differentiable in the meta-parameters through the inner steps (re-adapted from them).

    ProMP's penalty: ``inner_kl_penalty`` times the mean over inner steps k of the KL, on step
    k's episodes, from the policy that sampled them to the re-adapted one before step k.
    """
    policy = type(learner.model)
    tasks = valid.mask.shape[0]
    meta = {n: p.expand(tasks, *p.shape) for n, p in learner.meta_params().items()}
    params: Params | None = None  # each task's after the steps so far; None: the meta-parameters
    penalty = torch.zeros(())
    for episodes in train:
        if settings.inner_kl_penalty:
            start = meta if params is None else params
            kl = learner.task_losses(start, episodes, inner_kl(policy)).mean()
            penalty = penalty + kl / len(train)
        params = learner.adapt(episodes, 1, params=params)
    final = meta if params is None else params
    values = learner.task_losses(final, valid, clipped_objective(policy, settings.clip))
    loss, kl = values.mean(dim=0)
    return loss + settings.inner_kl_penalty * penalty.to(loss), kl


def ppo_step(
    learner: MAML,
    optimizer: torch.optim.Optimizer,
    train: list[Episodes],
    valid: Episodes,
    settings: PPOSettings,
    ranks: Ranks = ONE_PROCESS,
    total_tasks: int | None = None,
) -> dict[str, float]:
    """``settings.epochs`` Adam steps of ``optimizer`` on :func:`ppo_objective`; returns what
    to log. Under torchrun each rank holds its block of ``total_tasks`` tasks: the gradients
    and the logged values are means over every rank's tasks."""
    share = valid.mask.shape[0] / (total_tasks or valid.mask.shape[0])
    params = [p for group in optimizer.param_groups for p in group["params"]]
    first = None
    for _ in range(settings.epochs):
        optimizer.zero_grad()
        loss, kl = ppo_objective(learner, train, valid, settings)
        (loss * share).backward()
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        ranks.sum(grads)
        for p, g in zip(params, grads, strict=True):
            p.grad = g
        optimizer.step()
        if first is None:
            first = _summed(torch.stack([loss, kl]).detach() * share, ranks)
    with torch.no_grad():
        loss, kl = ppo_objective(learner, train, valid, settings)
    after = _summed(torch.stack([loss, kl]) * share, ranks)
    return {
        "surrogate_before": first[0].item(),
        "surrogate_after": after[0].item(),
        "kl": after[1].item(),
    }


def _summed(value: Tensor, ranks: Ranks) -> Tensor:
    value = value.clone()
    ranks.sum([value])
    return value
