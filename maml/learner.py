"""The meta-learner: a model, a task-level loss, and the inner-loop settings."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils._pytree import tree_leaves, tree_map

from maml.inner_loop import GradFn, Params, autograd_grad, func_grad, sgd_step
from maml.inner_lr import InnerLR, LearnedLR
from maml.paths import MetaPath, choose_path
from maml.support import support_at

log = logging.getLogger("maml")

Forward = Callable[..., Any]
TaskLoss = Callable[[Forward, Any], Tensor]


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
        self.requested_path = path
        first = next(model.parameters())
        shapes = {n: p.shape for n, p in model.named_parameters() if p.requires_grad}
        self.inner_lr = InnerLR(
            shapes, inner_lr, max(inner_steps, 1), learn_inner_lr, first.device, first.dtype
        )
        self._choices: dict[tuple, tuple[str, str]] = {}
        _ = self.path  # validates the requested path now, not at the first meta-iteration

    @property
    def path(self) -> str:
        """The meta-objective implementation in use now (it depends on mode and device)."""
        return self._choose(next(self.model.parameters()).device, self.first_order)[0]

    def _choose(self, device: torch.device, first_order: bool) -> tuple[str, str]:
        """``(path, reason)`` for the order actually run: a second-order call on a learner built
        first order must not take a path that is only right for first order."""
        key = (self.model.training, first_order, device)
        if key not in self._choices:
            path, reason = choose_path(self.model, self.requested_path, first_order, device)
            log.info("meta-objective path: %s (%s)", path, reason)
            self._choices[key] = (path, reason)
        return self._choices[key]

    @contextmanager
    def use_path(self, path: MetaPath) -> Iterator[None]:
        """Use ``path`` for the meta-objective inside the ``with`` block (e.g. the loop path for
        double backward, where it measures faster than vmap), then the requested one again."""
        requested, choices = self.requested_path, self._choices
        self.requested_path, self._choices = path, {}
        try:
            _ = self.path  # validates now
            yield
        finally:
            self.requested_path, self._choices = requested, choices

    @property
    def path_reason(self) -> str:
        """Why :attr:`path` was chosen."""
        return self._choose(next(self.model.parameters()).device, self.first_order)[1]

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

    def _fixed(self) -> dict[str, Tensor]:
        return self._split()[1]

    def functional(self, params: Params) -> Forward:
        """``forward(inputs)`` of the model with ``params`` in place of its trainable parameters."""
        return self._forward(params, self._fixed())

    def adapt(
        self,
        params: Params,
        support: Any,
        steps: int | None = None,
        first_order: bool | None = None,
    ) -> Params:
        """Adapt ``params`` to one task's ``support`` batch; differentiable and vmappable."""
        steps = self.inner_steps if steps is None else steps
        first_order = self.first_order if first_order is None else first_order
        fixed = self._fixed()
        for step in range(steps):
            params = self._inner_step(params, fixed, support, step, first_order, func_grad)
        return params

    def _inner_step(
        self, params: Params, fixed: dict, support: Any, step: int, first_order: bool, grad: GradFn
    ) -> Params:
        batch = support_at(support, step)

        def support_loss(p: Params) -> Tensor:
            return self.task_loss(self._forward(p, fixed), batch)

        grads = grad(support_loss, params, not first_order)
        return sgd_step(params, grads, self.inner_lr.at_step(step))

    def _forward(self, params: Params, fixed: dict) -> Forward:
        state = (params, fixed) if fixed else params
        return lambda *args, **kwargs: torch.func.functional_call(self.model, state, args, kwargs)

    def _task_losses(
        self,
        params: Params,
        fixed: dict,
        support: Any,
        query: Any,
        steps: int,
        first_order: bool,
        record: bool,
        outer: TaskLoss,
    ) -> Tensor:
        losses = []
        for step in range(steps):
            if record:
                losses.append(outer(self._forward(params, fixed), query))
            params = self._inner_step(params, fixed, support, step, first_order, autograd_grad)
        losses.append(outer(self._forward(params, fixed), query))
        return torch.stack(losses)

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
        outer = measure or self.query_loss
        steps = self.inner_steps if steps is None else steps
        first_order = self.first_order if first_order is None else first_order
        first_order = first_order or not torch.is_grad_enabled()
        tasks = _task_count(support, query)
        params, fixed = self._split()
        if self._choose(next(iter(params.values())).device, first_order)[0] == "vmap":
            return self._batched_losses(
                params, fixed, support, query, tasks, steps, first_order, record, outer
            )
        return torch.stack(
            [
                self._task_losses(
                    params, fixed, *_task(support, query, t), steps, first_order, record, outer
                )
                for t in range(tasks)
            ]
        )

    def _batched_losses(
        self,
        params: Params,
        fixed: dict,
        support: Any,
        query: Any,
        tasks: int,
        steps: int,
        first_order: bool,
        record: bool,
        outer: TaskLoss,
    ) -> Tensor:
        # Every task gets its own view of the parameters (expanded along a task axis), the model
        # runs under vmap over that axis, and one autograd call on the sum of the task losses gives
        # each task its own gradient. Measured faster than vmap over torch.func.grad, which pays
        # for a functorch grad level per step.
        def losses_of(p: Params, batch: Any, loss: TaskLoss) -> Tensor:
            def one(p_t: Params, b_t: Any) -> Tensor:
                return loss(self._forward(p_t, fixed), b_t)

            return torch.func.vmap(one, randomness="different")(p, batch)

        stacked = {n: p.expand(tasks, *p.shape) for n, p in params.items()}
        losses = []
        for step in range(steps):
            if record:
                losses.append(losses_of(stacked, query, outer))
            batch = support_at(support, step)
            grads = autograd_grad(
                lambda p, b=batch: losses_of(p, b, self.task_loss).sum(), stacked, not first_order
            )
            stacked = sgd_step(stacked, grads, self.inner_lr.at_step(step))
        losses.append(losses_of(stacked, query, outer))
        return torch.stack(losses, dim=1)

    def meta_loss(
        self, support: Any, query: Any, step_weights: Sequence[float] | Tensor | None = None
    ) -> Tensor:
        """Mean over tasks of the query loss after adaptation on the support set.

        ``step_weights`` (one per inner step) turns on the multi-step loss of MAML++: the weighted
        sum of the query losses after every inner step.
        """
        weights = self._step_weights(step_weights)
        losses = self.step_losses(support, query, record=weights is not None)
        return _weigh(losses, weights).mean()

    def meta_backward(
        self,
        support: Any,
        query: Any,
        step_weights: Sequence[float] | Tensor | None = None,
        tasks_per_backward: int = 4,
    ) -> Tensor:
        """``meta_loss(...).backward()`` in less memory; returns the meta-loss, detached.

        The meta-gradient is accumulated into the ``.grad`` of the learner's parameters, as
        ``backward`` does. On the loop path each task's graph is freed as soon as its share of the
        gradient is taken, so memory holds one task's graph rather than the whole meta-batch's
        Tasks are taken ``tasks_per_backward`` at a time: one backward per group keeps memory near
        one group's graphs at little cost in time (benchmarks/RESULTS.md, speed_omniglot).
        Use :meth:`meta_loss` when the meta-objective itself must be differentiated again.
        """
        if (
            isinstance(tasks_per_backward, bool)
            or not isinstance(tasks_per_backward, int)
            or (tasks_per_backward < 1)
        ):
            raise ValueError(
                f"tasks_per_backward must be a positive int, got {tasks_per_backward!r}"
            )
        if not torch.is_grad_enabled():
            raise RuntimeError("meta_backward needs gradients; it was called under torch.no_grad()")
        params, fixed = self._split()
        if self._choose(next(iter(params.values())).device, self.first_order)[0] == "vmap":
            loss = self.meta_loss(support, query, step_weights)
            loss.backward()
            return loss.detach()
        weights = self._step_weights(step_weights)
        tasks = _task_count(support, query)
        total, group = torch.zeros(()), []
        for t in range(tasks):
            losses = self._task_losses(
                params,
                fixed,
                *_task(support, query, t),
                self.inner_steps,
                self.first_order,
                weights is not None,
                self.query_loss,
            )
            group.append(_weigh(losses.unsqueeze(0), weights)[0] / tasks)
            if len(group) == tasks_per_backward or t == tasks - 1:
                loss = torch.stack(group).sum()
                loss.backward()
                total, group = total.to(loss) + loss.detach(), []
        return total

    def _step_weights(self, step_weights: Sequence[float] | Tensor | None) -> Tensor | None:
        if step_weights is None:
            return None
        # Kept in float64 until it meets the losses (then their dtype): a float64 model's
        # multi-step loss must not carry float32 rounding of its weights.
        weights = torch.as_tensor(step_weights, dtype=torch.float64)
        if weights.shape != (self.inner_steps,):
            raise ValueError(
                f"step_weights has shape {tuple(weights.shape)}; "
                f"expected one weight per inner step: ({self.inner_steps},)"
            )
        return weights


def _weigh(losses: Tensor, weights: Tensor | None) -> Tensor:
    """Per-task meta-loss from (tasks, steps + 1) query losses: the last, or weighted over steps."""
    if weights is None:
        return losses[:, -1]
    return (losses[:, 1:] * weights.to(losses)).sum(dim=1)


def _task(support: Any, query: Any, t: int) -> tuple[Any, Any]:
    """Task ``t``'s support and query batches."""
    return tree_map(lambda x: x[t], support), tree_map(lambda x: x[t], query)


def _task_count(support: Any, query: Any) -> int:
    leaves = tree_leaves(support) + tree_leaves(query)
    if not leaves:
        raise ValueError("support and query hold no tensors")
    counts = {tuple(x.shape[:1]) for x in leaves}
    if len(counts) != 1 or counts == {()}:
        shapes = [tuple(x.shape) for x in leaves]
        raise ValueError(
            f"support and query tensors must share a leading task axis; got shapes {shapes}"
        )
    return leaves[0].shape[0]
