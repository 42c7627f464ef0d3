"""Supervised meta-training: sample tasks, meta-loss, Adam step, log (the run loop is
``maml.run.loop``)."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils._pytree import tree_leaves, tree_map
from torch.utils.tensorboard import SummaryWriter

from maml.learner import MAML
from maml.msl import msl_weights
from maml.run import loop
from maml.run.distributed import ONE_PROCESS, Ranks
from maml.run.errors import UsageError
from maml.run.loop import Clock, NonFinite
from maml_sl.build import build_learner
from maml_sl.config import TrainConfig
from maml_sl.tasks import TaskSetup

VAL_STEPS = (0, 1, 5, 10)
VAL_SEED_OFFSET = 10_007  # held-out tasks come from a generator of their own


class SupervisedTrainer:
    """The supervised front end of :func:`maml.run.loop.run`: Adam on the meta-loss."""

    def __init__(
        self, config: TrainConfig, device: torch.device, ranks: Ranks = ONE_PROCESS
    ) -> None:
        self.config, self.device, self.label, self.ranks = config, device, config.task, ranks
        self.learner, self.setup = build_learner(config, device)
        self.parameters = list(self.learner.parameters())
        self.optimizer = torch.optim.Adam(self.parameters, lr=config.meta_lr, foreach=True)
        # Tasks come from a CPU generator on every device: a run resumes on another device,
        # and a seed gives the same tasks on CPU and CUDA.
        self.generator = torch.Generator().manual_seed(config.seed)
        self.validation = _fixed_validation_tasks(self.setup, config)
        self.window = (time.perf_counter(), 0.0, 0)  # start, summed loss, iterations
        self.traffic = ranks.counters()  # the ranks' collective seconds, bytes and calls so far

    def describe(self) -> str:
        path = f"meta-objective path {self.learner.path} ({self.learner.path_reason})"
        threads = f" with {self.config.threads} threads" if self.device.type == "cpu" else ""
        split = f", {self.setup.describe_split()}" if self.setup.split else ""
        return f"{self.config.task} on {self.device}{threads}{split}, {path}"

    def facts(self) -> dict[str, Any]:
        return {"split": self.setup.split} if self.setup.split else {}

    def state_dict(self) -> dict[str, Any]:
        return {
            "learner": self.learner.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.learner.load_state_dict(state["learner"])
        self.optimizer.load_state_dict(state["optimizer"])
        try:
            self.generator.set_state(state["generator"].cpu())
        except RuntimeError:  # CUDA runs from before tasks came from a CPU generator
            raise UsageError(
                "this checkpoint's task generator is not a CPU generator's (an older CUDA run); "
                "resume it on the device it was trained on, with the toolkit it was trained with"
            ) from None
        torch.set_rng_state(state["torch_rng"].cpu())

    def metrics(self) -> list[str]:
        names = self.setup.measure_names
        return ["losses/meta_loss"] + [
            f"val/query_{name}_after_{k}_steps" for name in names for k in VAL_STEPS
        ]

    def iteration(
        self, iteration: int, writer: SummaryWriter | None, clock: Clock
    ) -> dict[str, str]:
        config, learner, ranks = self.config, self.learner, self.ranks
        generator_state, rng_state = self.generator.get_state(), torch.get_rng_state()
        # Every rank draws the iteration's tasks and keeps its block of them.
        support, query = tree_map(
            lambda x: x[ranks.share(config.meta_batch)],
            self.setup.sampler.sample(
                config.meta_batch, config.shots, config.query, self.generator
            ),
        )
        weights = None
        if config.multi_step_loss:
            weights = msl_weights(config.inner_steps, iteration / config.msl_anneal_iterations)
        for group in self.optimizer.param_groups:
            group["lr"] = meta_lr_at(config, iteration)
        self.optimizer.zero_grad(set_to_none=True)
        loss = learner.meta_backward(support, query, step_weights=weights)
        grads = [p.grad for p in self.parameters if p.grad is not None]
        if ranks.world > 1:  # this rank's mean, weighted by its share; summed over the ranks
            weight = _task_count(support) / config.meta_batch
            loss = loss * weight
            torch._foreach_mul_(grads, weight)
            ranks.sum([loss, *grads])
        # One host sync: a non-finite loss or gradient shows in this sum.
        total = loss + sum(g.sum() for g in grads)
        if not torch.isfinite(total):
            self.generator.set_state(generator_state)
            torch.set_rng_state(rng_state)
            raise NonFinite(f"meta-loss {loss.item()} (or its gradient) is not finite")
        self.optimizer.step()
        started, summed, count = self.window
        summed, count = summed + loss.detach(), count + 1
        self.window = (started, summed, count)
        done = iteration + 1
        last = done == config.iterations
        postfix = {}
        logged = done % config.log_every == 0 or last
        if logged:
            now = time.perf_counter()
            mean_loss = float(summed) / count
            seconds, sent, calls = (
                (current - before) / count
                for current, before in zip(ranks.counters(), self.traffic, strict=True)
            )
            adaptation = self._adaptation(support, query)  # a collective: on every rank
            postfix["loss"] = f"{mean_loss:.4f}"
        if writer is not None:
            if logged:
                writer.add_scalar("losses/meta_loss", mean_loss, done)
                for m, name in enumerate(self.setup.measure_names):
                    before, after = adaptation[0, m].item(), adaptation[-1, m].item()
                    writer.add_scalar(f"losses/query_{name}_before_adaptation", before, done)
                    writer.add_scalar(f"losses/query_{name}_after_adaptation", after, done)
                writer.add_scalar("charts/meta_lr", self.optimizer.param_groups[0]["lr"], done)
                writer.add_scalar("charts/iterations_per_second", count / (now - started), done)
                writer.add_scalar("charts/wall_time", clock(), done)
                _log_inner_lrs(writer, learner, done)
                if ranks.world > 1:  # per iteration: rank 0's all-reduces, waiting included
                    writer.add_scalar("time/collectives_seconds", seconds, done)
                    writer.add_scalar("charts/bytes_all_reduced", sent, done)
                    writer.add_scalar("charts/all_reduces", calls, done)
            if done % config.val_every == 0 or last:
                _validate(writer, learner, self.setup, self.validation, done)
            if done % config.figure_every == 0 and not last:
                self.snapshot(writer, done)
        if logged:
            # The next window starts here: its rate and traffic are the training iterations',
            # without the measures, validation and figures above.
            self.window = (time.perf_counter(), 0.0, 0)
            self.traffic = ranks.counters()
        return postfix

    def _adaptation(self, support, query) -> torch.Tensor:
        """Query measures before and after the inner steps, averaged over the iteration's tasks
        (over every rank's): (steps + 1, measures)."""
        values = _measures(self.learner, self.setup, support, query, self.learner.inner_steps)
        if self.ranks.world > 1:
            values = values * (_task_count(support) / self.config.meta_batch)
            self.ranks.sum([values])
        return values

    def snapshot(self, writer: SummaryWriter | None, done: int) -> None:
        """The fit on held-out tasks, where the family has a figure (the sinusoid)."""
        if self.setup.figure is None or writer is None:
            return
        generator = torch.Generator().manual_seed(self.config.seed + VAL_SEED_OFFSET + 1)
        with torch.no_grad():
            figure = self.setup.figure(
                self.learner, self.setup.val_sampler, generator, self.config.shots
            )
        writer.add_figure("val/held_out_tasks", figure, done)

    def close(self) -> None:
        pass


def train(config: TrainConfig, run_dir: Path, resume: bool = False) -> Path:
    """Meta-train into ``run_dir``, or resume the run there; returns the checkpoint's path.

    Under torchrun, every rank trains its share of each meta-batch (``maml.run.distributed``).
    """
    return loop.train(SupervisedTrainer, config, run_dir, resume)


def _task_count(batch) -> int:
    return tree_leaves(batch)[0].shape[0]


def meta_lr_at(config: TrainConfig, iteration: int) -> float:
    """The meta step size at ``iteration`` (0-based), a function of it alone (exact resumes)."""
    if config.meta_lr_schedule == "cosine":
        return config.meta_lr * 0.5 * (1 + math.cos(math.pi * iteration / config.iterations))
    return config.meta_lr


def _fixed_validation_tasks(setup: TaskSetup, config: TrainConfig):
    generator = torch.Generator().manual_seed(config.seed + VAL_SEED_OFFSET)
    return setup.val_sampler.sample(config.val_tasks, config.shots, setup.val_query, generator)


def _measures(learner: MAML, setup: TaskSetup, support, query, steps: int) -> torch.Tensor:
    """Mean over tasks of every query measure after 0..steps inner steps: (steps + 1, measures)."""
    with torch.no_grad():
        values = learner.step_losses(support, query, steps=steps, measure=setup.measure)
    return (values if values.dim() == 3 else values.unsqueeze(-1)).mean(dim=0)


def _validate(writer: SummaryWriter, learner: MAML, setup: TaskSetup, tasks, step: int) -> None:
    values = _measures(learner, setup, *tasks, max(VAL_STEPS))
    for m, name in enumerate(setup.measure_names):
        for k in VAL_STEPS:
            writer.add_scalar(f"val/query_{name}_after_{k}_steps", values[k, m].item(), step)


def _log_inner_lrs(writer: SummaryWriter, learner: MAML, step: int) -> None:
    for name, rate in learner.inner_lr.rates.items():
        writer.add_scalar(f"inner_lr/{name}", rate.detach().mean().item(), step)
