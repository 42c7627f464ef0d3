"""The RL inner step: every task's parameters after policy-gradient steps on its episodes."""

from __future__ import annotations

import torch

from maml import MAML
from maml.inner_step import Params
from maml_rl.config import TrainConfig
from maml_rl.episodes import Episodes, with_advantages
from maml_rl.losses import inner_rows


def adapt_step(
    learner: MAML,
    episodes: Episodes,
    params: Params | None = None,
    step_size: float | None = None,
) -> Params:
    """Every task's parameters after one inner step on its ``episodes`` (advantages computed),
    from ``params`` (each task's, a leading task axis) or the meta-parameters: values only
    (first order computes the same values, cheaper). ``step_size`` defaults to the learner's."""
    sizes = None if step_size is None else [step_size]
    with torch.no_grad():
        return learner.adapt(
            inner_rows(episodes, learner.task_loss), 1, params=params, step_sizes=sizes
        )


def adapted_params(learner: MAML, train: list[Episodes]) -> list[Params]:
    """Every task's parameters after each inner step k on ``train[k]``: (tasks, ...) each."""
    params, adapted = None, []
    for episodes in train:
        params = adapt_step(learner, episodes, params)
        adapted.append(params)
    return adapted


def adapt_sampled(
    learner: MAML,
    config: TrainConfig,
    episodes: Episodes,
    params: Params | None,
    step_size: float,
) -> Params:
    """:func:`adapt_step` on episodes as sampled: their advantages first, as training computes
    them (the linear baseline and GAE of ``config``), on the learner's device."""
    device = next(learner.model.parameters()).device
    episodes = with_advantages(episodes.to(device), config.gamma, config.gae_lambda)
    return adapt_step(learner, episodes, params, step_size)
