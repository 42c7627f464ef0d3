"""The meta-learner: a model, a task-level loss, and the inner-loop settings."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from maml.inner_lr import InnerLR, LearnedLR
from maml.inner_step import Params, inner_step
from maml.msl import step_weights_tensor, weigh
from maml.paths import MetaPath, PathChoice
from maml.support import support_at, task_at, task_count, task_slice

Forward = Callable[..., Any]
TaskLoss = Callable[[Forward, Any], Tensor]
TASKS_PER_BACKWARD = 4  # tasks per backward of meta_backward on the loop path


class MAML(nn.Module):
    """Model-Agnostic Meta-Learning (Finn et al. 2017) around any ``nn.Module``.

    The learner adapts the model's trainable parameters (a dict name -> tensor, evaluated with
    ``torch.func.functional_call``) by ``inner_steps`` steps of SGD on ``task_loss(forward, batch)``
    and meta-learns them through the adaptation. Parameters with ``requires_grad=False`` stay fixed.

    Args:
        model: any module whose forward is a function of its parameters and buffers.
        task_loss: ``task_loss(forward, batch) -> scalar``; ``forward(inputs)`` runs the model with
            the parameters being adapted, ``batch`` is the front end's task data (never inspected).
        inner_steps: SGD steps on the support set per task (0 evaluates the meta-parameters).
        inner_lr: the inner step size (the initial one when learned).
        first_order: drop second-order terms (FOMAML).
        learn_inner_lr: ``None``, ``"per_step"`` (MAML++ LSLR) or ``"per_element"`` (Meta-SGD).
        query_loss: outer loss on the query set; the task loss by default.
        path: ``"auto"``, ``"vmap"`` (tasks batched by ``torch.func.vmap``) or ``"loop"``; both give
            the same loss and gradient, ``"auto"`` picks the right, then the fastest, one.

    Example:
        >>> model = nn.Sequential(nn.Linear(1, 40), nn.ReLU(), nn.Linear(40, 1))
        >>> mse = lambda forward, batch: ((forward(batch[0]) - batch[1]) ** 2).mean()
        >>> learner = MAML(model, mse, inner_lr=0.01)
        >>> x, y = torch.randn(25, 20, 1), torch.randn(25, 20, 1)  # 25 tasks, 20 points each
        >>> loss = learner.meta_loss((x[:, :10], y[:, :10]), (x[:, 10:], y[:, 10:]))
        >>> loss.backward()  # meta-gradient in model's .grad
    """

    def __init__(
        self,
        model: nn.Module,
        task_loss: TaskLoss,
        *,
        inner_steps: int = 1,
        inner_lr: float = 0.01,
        first_order: bool = False,
        learn_inner_lr: LearnedLR | None = None,
        query_loss: TaskLoss | None = None,
        path: MetaPath = "auto",
    ) -> None:
        super().__init__()
        if isinstance(inner_steps, bool) or not isinstance(inner_steps, int) or inner_steps < 0:
            raise ValueError(f"inner_steps must be a non-negative int, got {inner_steps!r}")
        if not inner_lr > 0:
            raise ValueError(f"inner_lr must be positive, got {inner_lr!r}")
        self.model = model
        self.task_loss = task_loss
        self.query_loss = query_loss or task_loss
        self.inner_steps = inner_steps
        self.first_order = first_order
        first = next(model.parameters())
        shapes = {n: p.shape for n, p in model.named_parameters() if p.requires_grad}
        self.inner_lr = InnerLR(
            shapes, inner_lr, max(inner_steps, 1), learn_inner_lr, first.device, first.dtype
        )
        self._paths = PathChoice(model, path)
        _ = self.path  # validates the requested path now, not at the first meta-iteration

    @property
    def path(self) -> str:
        """How the tasks run now, ``"vmap"`` or ``"loop"`` (it depends on mode and device)."""
        return self._paths.choose(next(self.model.parameters()).device, self.first_order)[0]

    @property
    def path_reason(self) -> str:
        """Why :attr:`path` was chosen."""
        return self._paths.choose(next(self.model.parameters()).device, self.first_order)[1]

    def _vmap(self, params: Params, first_order: bool) -> bool:
        """Whether tasks run batched under vmap (else one after another), for the order run: a
        second-order call on a learner built first order must not take a first-order path."""
        device = next(iter(params.values())).device
        return self._paths.choose(device, first_order)[0] == "vmap"

    def meta_params(self) -> Params:
        """The adapted (trainable) parameters of the model, by name."""
        return self._split()[0]

    def _split(self) -> tuple[Params, dict[str, Tensor]]:
        """Trainable parameters, and what stays fixed (frozen parameters and buffers)."""
        trainable, fixed = {}, {}
        for name, p in self.model.named_parameters():
            (trainable if p.requires_grad else fixed)[name] = p
        fixed.update(self.model.named_buffers())
        return trainable, fixed

    def functional(self, params: Params) -> Forward:
        """``forward(inputs)`` of the model with ``params`` in place of its trainable parameters."""
        return self._forward(params, self._split()[1])

    def _forward(self, params: Params, fixed: dict) -> Forward:
        state = (params, fixed) if fixed else params
        return lambda *args, **kwargs: torch.func.functional_call(self.model, state, args, kwargs)

    def task_losses(self, params: Params, batch: Any, loss: TaskLoss | None = None) -> Tensor:
        """Each task's ``loss`` (the task loss by default) at its own parameters: ``params`` and
        ``batch`` carry a leading task axis; the result too."""
        loss, fixed = loss or self.task_loss, self._split()[1]
        if self._vmap(params, self.first_order):
            return self._losses(params, batch, loss, fixed, vmap=True)
        tasks = range(task_count(params))
        return torch.cat(
            [self._losses(task_at(params, t), task_at(batch, t), loss, fixed) for t in tasks]
        )

    def _losses(
        self, params: Params, batch: Any, loss: TaskLoss, fixed: dict, vmap: bool = False
    ) -> Tensor:
        """Every task's loss under vmap (a leading task axis), or one task's as a batch of one."""

        def one(p: Params, b: Any) -> Tensor:
            return loss(self._forward(p, fixed), b)

        if vmap:
            return torch.func.vmap(one, randomness="different")(params, batch)
        return one(params, batch).unsqueeze(0)

    def adapt(
        self,
        support: Any,
        steps: int | None = None,
        *,
        params: Params | None = None,
        step_sizes: Sequence[float] | None = None,
        first_order: bool | None = None,
    ) -> Params:
        """Every task's parameters after ``steps`` inner steps on its ``support`` batch.

        ``support`` has a leading task axis, and so has the result. The steps start from the
        meta-parameters, or from ``params`` (each task's own, a leading task axis) when given.
        ``step_sizes`` (one per step, the last repeats) replace the learner's inner step sizes.
        Differentiable to second order unless ``first_order`` (the learner's by default) or
        under ``torch.no_grad()``.
        """
        steps = self.inner_steps if steps is None else steps
        return self._over_tasks(support, None, steps, first_order, params, step_sizes)[0]

    def step_losses(
        self,
        support: Any,
        query: Any,
        steps: int | None = None,
        first_order: bool | None = None,
        *,
        record: bool = True,
        measure: TaskLoss | None = None,
    ) -> Tensor:
        """Query losses of every task after 0, 1, ..., ``steps`` inner steps: (tasks, steps + 1).

        ``support`` and ``query`` are batches (any pytree of tensors) with a leading task axis.
        Under ``torch.no_grad()`` it evaluates (first order, nothing kept for a meta-gradient).
        With ``record=False`` only the loss after the last step is computed: shape (tasks, 1).
        ``measure(forward, query)`` replaces the query loss, e.g. to return a vector
        ``[loss, accuracy]``: the result is then (tasks, steps + 1, measures).
        """
        steps = self.inner_steps if steps is None else steps
        outer = (measure or self.query_loss, record)
        return self._over_tasks(support, query, steps, first_order, None, None, outer)[1]

    def _over_tasks(
        self,
        support: Any,
        query: Any,
        steps: int,
        first_order: bool | None,
        params: Params | None,
        step_sizes: Sequence[float] | None,
        outer: tuple[TaskLoss, bool] | None = None,
    ) -> tuple[Params, Tensor | None]:
        """The adaptation of every task, and its query losses where ``outer`` (loss, record) asks:
        all tasks at once under vmap, or one after another; the one place that decides."""
        first_order = self.first_order if first_order is None else first_order
        first_order = first_order or not torch.is_grad_enabled()
        shared, fixed = self._split()
        tasks = task_count(support, query, params)
        settings = (steps, first_order, step_sizes, outer, fixed)
        if self._vmap(shared, first_order):
            if params is None:  # every task starts from the meta-parameters
                params = {n: p.expand(tasks, *p.shape) for n, p in shared.items()}
            return self._trajectory(params, support, query, *settings, vmap=True)

        # Task by task: a task's graph holds only its own parameters.
        one = [
            self._trajectory(
                shared if params is None else task_at(params, t),
                task_at(support, t),
                None if query is None else task_at(query, t),
                *settings,
                vmap=False,
            )
            for t in range(tasks)
        ]
        adapted = {n: torch.stack([a[n] for a, _ in one]) for n in shared}
        return adapted, None if outer is None else torch.cat([losses for _, losses in one])

    def _trajectory(
        self,
        params: Params,
        support: Any,
        query: Any,
        steps: int,
        first_order: bool,
        step_sizes: Sequence[float] | None,
        outer: tuple[TaskLoss, bool] | None,
        fixed: dict,
        vmap: bool,
    ) -> tuple[Params, Tensor | None]:
        losses = []
        for step in range(steps):
            if outer is not None and outer[1]:
                losses.append(self._losses(params, query, outer[0], fixed, vmap))
            batch = support_at(support, step)

            def support_loss(p: Params, batch: Any = batch) -> Tensor:
                return self._losses(p, batch, self.task_loss, fixed, vmap).sum()

            sizes = self.inner_lr.at_step(step, step_sizes)
            params = inner_step(support_loss, params, sizes, create_graph=not first_order)
        if outer is None:
            return params, None
        losses.append(self._losses(params, query, outer[0], fixed, vmap))
        return params, torch.stack(losses, dim=1)

    def meta_loss(
        self, support: Any, query: Any, step_weights: Sequence[float] | Tensor | None = None
    ) -> Tensor:
        """Mean over tasks of the query loss after adaptation on the support set.

        ``step_weights`` (one per inner step) turns on the multi-step loss of MAML++: the weighted
        sum of the query losses after every inner step.
        """
        weights = step_weights_tensor(step_weights, self.inner_steps)
        losses = self.step_losses(support, query, record=weights is not None)
        return weigh(losses, weights).mean()

    def meta_backward(
        self, support: Any, query: Any, step_weights: Sequence[float] | Tensor | None = None
    ) -> Tensor:
        """``meta_loss(...).backward()`` in less memory; returns the meta-loss, detached.

        The meta-gradient is accumulated into the ``.grad`` of the learner's parameters, as
        ``backward`` does. On the loop path the tasks go ``TASKS_PER_BACKWARD`` at a time, one
        backward each: memory holds one group's graphs, not the whole meta-batch's, at little
        cost in time (benchmarks/RESULTS.md, speed_omniglot). Use :meth:`meta_loss` when the
        meta-objective itself must be differentiated again.
        """
        if not torch.is_grad_enabled():
            raise RuntimeError("meta_backward needs gradients; it was called under torch.no_grad()")
        tasks = task_count(support, query)
        vmap = self._vmap(self.meta_params(), self.first_order)
        group = tasks if vmap else TASKS_PER_BACKWARD
        total = None
        for start in range(0, tasks, group):
            part = slice(start, min(start + group, tasks))
            loss = self.meta_loss(task_slice(support, part), task_slice(query, part), step_weights)
            loss = loss * ((part.stop - part.start) / tasks)
            loss.backward()
            total = loss.detach() if total is None else total + loss.detach()
        return total
