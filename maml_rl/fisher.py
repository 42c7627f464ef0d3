"""Fisher-vector products of the post-adaptation KL in Gauss-Newton form, on episode subsets.

With adapted parameters ``theta_K(theta)`` after K inner steps ``theta_{k+1} = theta_k - lr
grad L_k(theta_k)``, the Hessian of ``KL(theta_K(theta))`` at the sampling parameters is
``J^T F J``: ``F`` the Fisher of the adapted policy, ``J = J_{K-1} ... J_0`` with ``J_k = I - lr
H_k`` (``H_k`` the Hessian of step k's inner loss), because the KL's gradient vanishes there.
Double backprop through the whole adaptation computes the same product, but every product
then runs back through the inner gradients of all the train episodes. Here each factor is a
Hessian-vector product on its own random subset of the episodes (rllab's subsampling of the
Fisher, carried over to the train episodes): the step values stay exact (full episodes), the
curvature is estimated; TRPO's line search still checks the exact KL on all valid episodes.
With all episodes it equals the double-backprop product (tested).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.utils._pytree import tree_map

from maml import MAML
from maml.inner_loop import Params
from maml.run.distributed import ONE_PROCESS, Ranks
from maml_rl.config import SUBSAMPLES
from maml_rl.episodes import Episodes
from maml_rl.trpo import flat, unflat

Measure = Callable[..., Tensor]


def subset(episodes: Episodes, fraction: float, generator: torch.Generator) -> Episodes:
    """A random ``fraction`` of each task's episodes (the same rollout indices for every task);
    of its rows of steps where the trainer packed them (``Episodes.packed``)."""
    rollouts = episodes.mask.shape[1]
    keep = max(1, round(fraction * rollouts))
    if keep >= rollouts:
        return episodes
    index = torch.randperm(rollouts, generator=generator)[:keep].to(episodes.mask.device)
    return tree_map(lambda x: x.index_select(1, index), episodes)


def _tasks(episodes: Episodes, which: int | slice | Tensor) -> Episodes:
    """The tasks ``which`` (an index, a slice or an index tensor) of every field."""
    if isinstance(which, Tensor):
        return tree_map(lambda x: x.index_select(0, which), episodes)
    return tree_map(lambda x: x[which], episodes)


def _gradient(
    learner: MAML, loss: Callable, params: dict[str, Tensor], batch: Episodes, graph: bool
) -> tuple[list[Tensor], list[Tensor]]:
    """Leaves at ``params`` (leading task axis) and each task's loss gradient at its own leaves,
    differentiable again with ``graph``."""
    leaves = [p.detach().requires_grad_() for p in params.values()]
    named = dict(zip(params, leaves, strict=True))
    if batch.mask.shape[0] == 1:  # one task: no vmap
        value = loss(learner.functional({n: p[0] for n, p in named.items()}), _tasks(batch, 0))
    else:
        value = torch.func.vmap(lambda p, e: loss(learner.functional(p), e))(named, batch).sum()
    return leaves, list(torch.autograd.grad(value, leaves, create_graph=graph))


def _hvp(graph: tuple[list[Tensor], list[Tensor]], vector: list[Tensor]) -> list[Tensor]:
    """Each task's Hessian times its own slice of ``vector`` (leading task axis)."""
    leaves, grads = graph
    live = [i for i, g in enumerate(grads) if g.requires_grad]
    out = torch.autograd.grad(
        [grads[i] for i in live],
        leaves,
        grad_outputs=[vector[i] for i in live],
        retain_graph=True,
        materialize_grads=True,
    )
    return list(out)


def gauss_newton_fvp(
    learner: MAML,
    train: list[Episodes],
    valid: Episodes,
    measure: Measure,
    fraction: float,
    damping: float,
    generator: torch.Generator,
    tasks_per_product: int | None = 1,
    adapted: list[Params] | None = None,
    subsample: str = "episodes",
    ranks: Ranks = ONE_PROCESS,
    total_tasks: int | None = None,
) -> Callable[[Tensor], Tensor]:
    """``v -> (mean over tasks of J^T F J + damping I) v`` over the learner's meta-parameters.

    ``train[k]`` are the episodes of inner step k, ``valid`` those sampled after adaptation,
    all with a leading task axis; ``measure(forward, episodes)`` returns ``[surrogate, kl]``.
    With ``subsample="episodes"`` each Hessian-vector product uses ``fraction`` of each task's
    episodes: ``J`` then appears twice with the same noise, and the product overestimates the
    curvature by ``lr^2 E[dH^T F dH]`` (``dH`` the subsample's error in the inner Hessian).
    With ``"tasks"`` it uses all episodes of ``fraction`` of the tasks: each task's term exact,
    their mean unbiased. Either way ``tasks_per_product`` tasks go at once under vmap
    (``None``: all; 1: a loop over tasks).
    ``adapted[k]``, when given, are every task's parameters after inner step k + 1 (as the
    sampler used them): the exact step values then need no gradient over all train episodes.
    Under torchrun the episodes are this rank's block of ``total_tasks`` tasks
    (``ranks.share``); every rank draws the same subsets of the whole batch and the products
    are summed over the ranks.
    """
    if any(p.requires_grad for p in learner.inner_lr.parameters()):
        raise ValueError("the Gauss-Newton Fisher needs fixed inner step sizes, not learned ones")
    if subsample not in SUBSAMPLES:
        raise ValueError(f"subsample {subsample!r} is unknown; allowed: {', '.join(SUBSAMPLES)}")
    total = total_tasks or valid.mask.shape[0]
    if subsample == "tasks" and fraction < 1:
        chosen = torch.randperm(total, generator=generator)[: max(1, round(fraction * total))]
        share = ranks.share(total)
        mine = (chosen >= share.start) & (chosen < share.stop)
        index = (chosen[mine] - share.start).to(valid.mask.device)
        total = len(chosen)
        train = [_tasks(e, index) for e in train]
        valid = _tasks(valid, index)
        if adapted is not None:
            adapted = [{n: p.index_select(0, index) for n, p in a.items()} for a in adapted]
        fraction = 1.0
    meta = {n: p.detach() for n, p in learner.meta_params().items()}
    lrs = [learner.inner_lr.at_step(k) for k in range(len(train))]
    subsets = [subset(e, fraction, generator) for e in train]
    valid_subset = subset(valid, fraction, generator)
    task_count = valid.mask.shape[0]  # this rank's
    size = max(task_count, 1) if tasks_per_product is None else tasks_per_product
    if size < 1:
        raise ValueError(f"tasks_per_product must be positive or None, got {tasks_per_product}")
    if adapted is not None and len(adapted) != len(train):
        raise ValueError(f"adapted holds {len(adapted)} steps' parameters for {len(train)} steps")

    def kl(forward: Callable, episodes: Episodes) -> Tensor:
        return measure(forward, episodes)[1]

    # Per chunk of tasks: the graphs of each inner step's gradient on its subset at that step's
    # exact parameters, and of the KL's gradient at the adapted parameters; built once, reused by
    # every product of the conjugate-gradient solve.
    chunks: list[tuple[int, list, tuple]] = []
    for start in range(0, task_count, size):
        chunk = slice(start, min(start + size, task_count))
        count = chunk.stop - chunk.start
        params, steps = {n: p.expand(count, *p.shape) for n, p in meta.items()}, []
        for k, episodes in enumerate(train):
            if not learner.first_order:  # first-order MAML takes J = I
                part = _tasks(subsets[k], chunk)
                steps.append(_gradient(learner, learner.task_loss, params, part, True))
            if adapted is not None:
                params = {n: p[chunk].detach() for n, p in adapted[k].items()}
                continue
            if steps and subsets[k] is episodes:  # all episodes: the step's gradient is there
                grads = steps[-1][1]
            else:
                full = _tasks(episodes, chunk)
                grads = _gradient(learner, learner.task_loss, params, full, False)[1]
            params = {
                n: (p - lrs[k][n] * g).detach()
                for (n, p), g in zip(params.items(), grads, strict=True)
            }
        valid_part = _tasks(valid_subset, chunk)
        chunks.append((count, steps, _gradient(learner, kl, params, valid_part, True)))

    shapes = list(meta.values())
    total_count = total

    def product(vector: Tensor) -> Tensor:
        v = unflat(vector, shapes)
        total = torch.zeros_like(vector)
        for count, steps, kl_graph in chunks:
            u = [x.expand(count, *x.shape) for x in v]
            for k, graph in enumerate(steps):  # J v
                u = [x - lrs[k][n] * h for x, h, n in zip(u, _hvp(graph, u), meta, strict=True)]
            w = _hvp(kl_graph, u)  # F J v
            for k in reversed(range(len(steps))):  # J^T F J v (each J_k is symmetric)
                hw = _hvp(steps[k], w)
                w = [x - lrs[k][n] * h for x, h, n in zip(w, hw, meta, strict=True)]
            total += flat([x.sum(0) for x in w])
        ranks.sum([total])
        return total / total_count + damping * vector

    return product
