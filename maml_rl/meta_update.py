"""The MAML-TRPO meta-update: TRPO on the post-adaptation surrogate, through the adaptation."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn.utils import vector_to_parameters

from maml import MAML, PerStep
from maml.inner_step import Params
from maml.run.distributed import ONE_PROCESS, Ranks
from maml_rl.adapt import adapted_params
from maml_rl.episodes import Episodes
from maml_rl.fisher import gauss_newton_fvp
from maml_rl.losses import surrogate_and_kl
from maml_rl.trpo import conjugate_gradient, flat, line_search


@dataclass
class TRPOSettings:
    max_kl: float = 0.01
    cg_iterations: int = 10
    cg_damping: float = 1e-5
    line_search_steps: int = 15
    line_search_ratio: float = 0.8
    fisher_fraction: float = 0.2


def trpo_step(
    learner: MAML,
    train: list[Episodes],
    valid: Episodes,
    settings: TRPOSettings,
    generator: torch.Generator,
    adapted: list[Params] | None = None,
    ranks: Ranks = ONE_PROCESS,
    total_tasks: int | None = None,
) -> dict[str, float]:
    """One TRPO update of the meta-parameters; returns what to log.

    The surrogate and KL of each task come from the core's meta-objective: adapt on the task's
    train episodes (second order unless the learner is first order), then measure on its valid
    episodes. The Fisher-vector products are those of ``maml_rl.fisher.gauss_newton_fvp`` on
    ``fisher_fraction`` of each task's train and valid episodes; the surrogate's gradient and the
    line search's surrogate and KL use all of them. ``adapted`` (each inner step's parameters,
    as ``sample_iteration`` returns them; computed here when not given) are the points where the
    Fisher takes each step's curvature.

    Under torchrun each rank holds its block of the ``total_tasks`` tasks (``ranks.share``): the
    surrogate's gradient, every Fisher-vector product and the line search's surrogate and KL are
    sums over the ranks, so conjugate gradient and the line search run the same on every rank.
    """
    policy = type(learner.model)
    measure = surrogate_and_kl(policy)
    support = PerStep(train)
    params = list(learner.meta_params().values())  # the order of the Fisher's vectors
    local = valid.mask.shape[0]
    share = local / (total_tasks or local)  # this rank's weight in a mean over all tasks

    def measures(valid_episodes: Episodes) -> torch.Tensor:  # this rank's part of the mean
        values = learner.step_losses(support, valid_episodes, record=False, measure=measure)
        return values[:, -1].mean(dim=0) * share

    def summed(value: torch.Tensor) -> torch.Tensor:
        value = value.detach().clone()
        ranks.sum([value])
        return value

    local_surrogate = measures(valid)[0]
    gradient = summed(flat(torch.autograd.grad(local_surrogate, params)))
    surrogate = summed(local_surrogate)
    fvp = gauss_newton_fvp(
        learner,
        train,
        valid,
        measure,
        settings.fisher_fraction,
        settings.cg_damping,
        generator,
        adapted or adapted_params(learner, train),
        ranks,
        total_tasks,
    )
    direction, residual = conjugate_gradient(fvp, gradient, settings.cg_iterations)
    curvature = 0.5 * (direction @ (gradient - residual))  # d^T F d without an 11th product
    start = flat(params).detach().clone()
    stats = {"surrogate_before": surrogate.item(), "gradient_norm": gradient.norm().item()}
    if not curvature > 0:  # no descent direction (e.g. a zero gradient)
        return {
            **stats,
            "surrogate_after": stats["surrogate_before"],
            "kl": 0.0,
            "line_search_steps": 0.0,
            "accepted": 0.0,
        }
    full_step = direction * math.sqrt(settings.max_kl / curvature.item())

    def evaluate(fraction: float) -> tuple[float, float]:
        vector_to_parameters(start - fraction * full_step, params)
        with torch.no_grad():
            surrogate_value, kl = summed(measures(valid))
        return surrogate_value.item(), kl.item()

    result = line_search(
        evaluate,
        settings.max_kl,
        settings.line_search_steps,
        settings.line_search_ratio,
        start=stats["surrogate_before"],  # the surrogate at the start, computed above
    )
    vector_to_parameters(start - result.fraction * full_step, params)
    return {
        **stats,
        "surrogate_after": stats["surrogate_before"] - result.improvement,
        "kl": result.kl,
        "line_search_steps": float(result.steps),
        "accepted": float(result.accepted),
    }
